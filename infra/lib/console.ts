// The monitoring centre's console (docs/CONSOLE.md): operators sign in with the Cognito user
// pool (no self sign-up, MFA required, groups decide the role: `force-<id>` per force,
// `national`, `admin`); the static web app is served from a private S3 bucket by CloudFront,
// with its content security policy and security headers; `/api/*` on the same CloudFront
// domain goes to the HTTP API, whose JWT authorizer verifies the user pool's access token
// before the console function (functions/console) sees a request. One origin for the page and
// the API: no CORS, and the CSP's connect-src is 'self'.

import { CfnOutput, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import type { Forces } from './forces';
import { REPO_ROOT } from './resources';
import * as path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';

/** The built web app (functions/console/web: `node build.mjs`; infra/test.sh builds it). */
export const CONSOLE_WEB_DIST = path.join(REPO_ROOT, 'functions', 'console', 'web', 'dist');

/** The group whose members may change orders and zones (functions/console/src/auth.rs). */
export const ADMIN_GROUP = 'admin';
/** The national administrators' group. */
export const NATIONAL_GROUP = 'national';
/** A force's operators' group: `force-<id>`. */
export const forceGroup = (force: string) => `force-${force}`;

/** The id suffix of CDK's BucketDeployment singleton handler (256 MiB, as set below). */
export const BUCKET_DEPLOYMENT_ID = '8693BB64968944B69AAFB0CC9EB8756C256MiB';

/** The operator API's reserved concurrency: operators, not devices. */
export const CONSOLE_RESERVED_CONCURRENCY = 10;

/** How often the console polls the API, ms: a new alert shows within about this. */
export const POLL_MS = 2000;

/** The console's content security policy (functions/console/web/csp.json, which the local
 * console sends too: tools/vigil-stack/src/console.rs), plus the user pool's domain for the
 * sign-in's token call and a tile server's origin when one is configured. */
export function contentSecurityPolicy(extraConnect: string[], tiles?: string): string {
  const policy = JSON.parse(readFileSync(path.join(REPO_ROOT, 'functions', 'console', 'web', 'csp.json'), 'utf8')) as Record<string, string[] | string>;
  return Object.entries(policy)
    .filter(([directive]) => !directive.startsWith('$'))
    // In the order of their names, as the local console writes them.
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([directive, sources]) => {
      const all = [...(sources as string[])];
      if (directive === 'connect-src') all.push(...extraConnect);
      if (directive === 'img-src' && tiles) all.push(tiles);
      return `${directive} ${all.join(' ')}`;
    })
    .join('; ');
}

export interface ConsoleSiteProps {
  readonly stage: string;
  readonly forces: Forces;
  /** The operator API function (functions/console). */
  readonly api: lambda.IFunction;
  /** The built web app (functions/console/web/dist). */
  readonly webDist: string;
  /** A tile server's URL template for the map, one host (none: a plain background). */
  readonly tileUrl?: string;
  /** The log retention of the API's access log. */
  readonly logRetention: logs.RetentionDays;
  /** The key the stack's log groups are encrypted with. */
  readonly logKey: kms.IKey;
}

export class ConsoleSite extends Construct {
  readonly userPool: cognito.UserPool;
  readonly client: cognito.UserPoolClient;
  readonly httpApi: apigwv2.HttpApi;
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;

  constructor(scope: Construct, id: string, props: ConsoleSiteProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { stage } = props;

    // ---- Who may sign in ----
    this.userPool = new cognito.UserPool(this, 'Operators', {
      userPoolName: `vigil-${stage}-console`,
      // Accounts are made by an administrator (AdminCreateUser) and put in their force's group.
      selfSignUpEnabled: false,
      signInAliases: { username: true, email: true },
      mfa: cognito.Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      passwordPolicy: { minLength: 14, requireDigits: true, requireLowercase: true, requireUppercase: true, requireSymbols: true, tempPasswordValidity: Duration.days(3) },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      featurePlan: cognito.FeaturePlan.PLUS,
      standardThreatProtectionMode: cognito.StandardThreatProtectionMode.FULL_FUNCTION,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const groups: [string, string][] = [
      [ADMIN_GROUP, 'May create and end orders and change zones (with a force group, or national)'],
      [NATIONAL_GROUP, 'National administrators: every force\'s records, each access audited'],
      ...props.forces.forces.map((f) => [forceGroup(f.id), `Operators of force ${f.id}`] as [string, string]),
    ];
    for (const [name, description] of groups) {
      new cognito.CfnUserPoolGroup(this, `Group-${name}`, { userPoolId: this.userPool.userPoolId, groupName: name, description });
    }

    // ---- The web app: private bucket, CloudFront ----
    this.bucket = new s3.Bucket(this, 'Site', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: false,
    });

    // ---- The operator API ----
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      logGroupName: `/aws/apigateway/vigil-${stage}-console`,
      retention: props.logRetention,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.httpApi = new apigwv2.HttpApi(this, 'Api', {
      apiName: `vigil-${stage}-console`,
      description: 'Vigil operator API (the console): Cognito JWT on every route',
      createDefaultStage: false,
      disableExecuteApiEndpoint: false,
    });
    const apiStage = new apigwv2.HttpStage(this, 'ApiStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: 50, burstLimit: 100 },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        // No IP address, no user agent, no path parameters' values beyond the route's key.
        format: apigw.AccessLogFormat.custom(JSON.stringify({
          requestId: '$context.requestId',
          routeKey: '$context.routeKey',
          status: '$context.status',
          sub: '$context.authorizer.claims.sub',
          error: '$context.authorizer.error',
          latency: '$context.integrationLatency',
          time: '$context.requestTimeEpoch',
        })),
      },
    });
    this.client = this.userPool.addClient('Console', {
      userPoolClientName: `vigil-${stage}-console`,
      generateSecret: false,
      authFlows: { userSrp: false, userPassword: false, adminUserPassword: false, custom: false },
      oAuth: {
        flows: { authorizationCodeGrant: true, implicitCodeGrant: false },
        scopes: [cognito.OAuthScope.OPENID],
        // Set below, once the distribution's domain exists.
        callbackUrls: ['https://localhost/'],
      },
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.hours(8),
      preventUserExistenceErrors: true,
      enableTokenRevocation: true,
    });
    const domain = this.userPool.addDomain('SignIn', {
      cognitoDomain: { domainPrefix: `vigil-${stage}-console-${stack.account}` },
      managedLoginVersion: cognito.ManagedLoginVersion.NEWER_MANAGED_LOGIN,
    });
    new cognito.CfnManagedLoginBranding(this, 'SignInBranding', {
      userPoolId: this.userPool.userPoolId,
      clientId: this.client.userPoolClientId,
      useCognitoProvidedValues: true,
    });
    const authorizer = new HttpJwtAuthorizer('Cognito', `https://cognito-idp.${stack.region}.amazonaws.com/${this.userPool.userPoolId}`, {
      jwtAudience: [this.client.userPoolClientId],
      identitySource: ['$request.header.Authorization'],
    });
    this.httpApi.addRoutes({
      path: '/api/{proxy+}',
      methods: [apigwv2.HttpMethod.ANY],
      integration: new HttpLambdaIntegration('Console', props.api, { payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0 }),
      authorizer,
    });

    // ---- CloudFront: the app from the bucket, /api/* to the API, the headers on both ----
    const cognitoHost = `${domain.domainName}.auth.${stack.region}.amazoncognito.com`;
    const tiles = props.tileUrl ? new URL(props.tileUrl.replace(/\{[a-z]\}/g, '0')).origin : undefined;
    if (!existsSync(path.join(props.webDist, 'index.html'))) {
      throw new Error(`${props.webDist} has no built console: run \`npm ci && node build.mjs\` in functions/console/web (infra/test.sh does)`);
    }
    const headers = new cloudfront.ResponseHeadersPolicy(this, 'Headers', {
      responseHeadersPolicyName: `vigil-${stage}-console`,
      securityHeadersBehavior: {
        contentSecurityPolicy: { contentSecurityPolicy: contentSecurityPolicy([`https://${cognitoHost}`], tiles), override: true },
        strictTransportSecurity: { accessControlMaxAge: Duration.days(365), includeSubdomains: true, preload: false, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
      },
      customHeadersBehavior: { customHeaders: [{ header: 'Cache-Control', value: 'no-store', override: false }] },
    });
    const apiOrigin = new origins.HttpOrigin(`${this.httpApi.apiId}.execute-api.${stack.region}.amazonaws.com`, {
      protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
    });
    this.distribution = new cloudfront.Distribution(this, 'Cdn', {
      comment: `Vigil ${stage} console`,
      defaultRootObject: 'index.html',
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        responseHeadersPolicy: headers,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
      },
      additionalBehaviors: {
        '/api/*': {
          origin: apiOrigin,
          viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
          allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
          cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
          // Every viewer header but Host (the API's own), so the Authorization header arrives.
          originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
          responseHeadersPolicy: headers,
        },
      },
    });
    const siteUrl = `https://${this.distribution.distributionDomainName}/`;
    const cfnClient = this.client.node.defaultChild as cognito.CfnUserPoolClient;
    cfnClient.callbackUrLs = [siteUrl];
    cfnClient.logoutUrLs = [siteUrl];

    // The app, and its config.json: no secrets (the user pool client is public by design).
    new s3deploy.BucketDeployment(this, 'Deploy', {
      destinationBucket: this.bucket,
      distribution: this.distribution,
      sources: [
        s3deploy.Source.asset(props.webDist),
        s3deploy.Source.jsonData('config.json', {
          apiBase: '',
          signIn: { kind: 'cognito', domain: `https://${cognitoHost}`, clientId: this.client.userPoolClientId, redirectUri: siteUrl },
          tileUrl: props.tileUrl ?? null,
          pollMs: POLL_MS,
        }),
      ],
      prune: true,
      memoryLimit: 256,
    });

    new CfnOutput(stack, 'ConsoleUrl', { description: 'The monitoring centre\'s console (docs/CONSOLE.md)', value: siteUrl });
    new CfnOutput(stack, 'ConsoleUserPoolId', { description: 'Create operators here and add each to their force\'s group (docs/CONSOLE.md)', value: this.userPool.userPoolId });

    void apiStage;
    this.acknowledgeFindings();
  }

  /** cdk-nag findings accepted on the console, each with its reason. */
  private acknowledgeFindings() {
    Validations.of(this.distribution).acknowledge(
      { id: 'AwsSolutions::AwsSolutions-CFR1', reason: 'Operators of UK police forces may work from anywhere a force sends them; sign-in (Cognito, MFA) and the JWT authorizer decide access, not geography.' },
      { id: 'AwsSolutions::AwsSolutions-CFR2', reason: 'No WAF: every API route needs a verified Cognito token (MFA) and is throttled at the stage; a WAF web ACL is the deploying force\'s choice (docs/CONSOLE.md).' },
      { id: 'AwsSolutions::AwsSolutions-CFR3', reason: 'The API\'s own access log (without IP addresses) and the audit chain record what matters; CloudFront access logs would hold every operator\'s IP address for a second time.' },
      { id: 'AwsSolutions::AwsSolutions-CFR4', reason: 'The default CloudFront certificate allows TLS 1.2 minimum for viewers already; a custom domain with its certificate is the deploying force\'s choice.' },
    );
    Validations.of(this.bucket).acknowledge({ id: 'AwsSolutions::AwsSolutions-S1', reason: 'The bucket holds only the built web app, replaced by each deployment; CloudTrail records its writes.' });
  }
}
