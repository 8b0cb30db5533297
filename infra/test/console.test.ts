// The monitoring centre's console (issue 13, docs/CONSOLE.md): operators sign in with the
// Cognito user pool (no self sign-up, MFA required, a group per force, `national`, `admin`);
// every API route needs the user pool's token (the HTTP API's JWT authorizer, audience the
// console's client); the web app is private in S3 behind CloudFront with its content security
// policy; /api/* reaches the API through the same distribution, uncached, with the
// Authorization header; the operator API function has exactly the operator actions' grants.

import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { ADMIN_GROUP, CONSOLE_RESERVED_CONCURRENCY, NATIONAL_GROUP, contentSecurityPolicy, forceGroup } from '../lib/console';
import { identityStatements, logicalId, ofType, synth, target } from './helpers';

const s = synth();
const R = s.json.Resources;
const one = (type: string): [string, any] => {
  const all = Object.entries(ofType(s, type));
  assert.equal(all.length, 1, `one ${type}`);
  return all[0];
};
const [poolId, pool] = one('AWS::Cognito::UserPool');
const [clientId, client] = one('AWS::Cognito::UserPoolClient');
const [apiId] = one('AWS::ApiGatewayV2::Api');
const [, authorizer] = one('AWS::ApiGatewayV2::Authorizer');
const [, distribution] = one('AWS::CloudFront::Distribution');
const [, headers] = one('AWS::CloudFront::ResponseHeadersPolicy');
const consoleId = logicalId(s, 'AWS::Lambda::Function', 'FunctionName', `vigil-${s.config.stage}-console`);

describe('console', () => {
  test('the user pool: accounts made by administrators, MFA required, strong passwords, a group per force, national and admin', () => {
    assert.equal(pool.Properties.AdminCreateUserConfig.AllowAdminCreateUserOnly, true);
    assert.equal(pool.Properties.MfaConfiguration, 'ON');
    assert.ok(pool.Properties.Policies.PasswordPolicy.MinimumLength >= 14);
    const groups = Object.values(ofType(s, 'AWS::Cognito::UserPoolGroup')).map((g: any) => g.Properties.GroupName).sort();
    assert.deepEqual(groups, [ADMIN_GROUP, NATIONAL_GROUP, ...s.forces.forces.map((f) => forceGroup(f.id))].sort());
    for (const g of Object.values(ofType(s, 'AWS::Cognito::UserPoolGroup'))) assert.equal(target((g as any).Properties.UserPoolId), poolId);
  });

  test('the console\'s client: public (no secret), code grant only, back to the distribution', () => {
    assert.equal(client.Properties.GenerateSecret, false);
    assert.deepEqual(client.Properties.AllowedOAuthFlows, ['code']);
    assert.deepEqual(client.Properties.AllowedOAuthScopes, ['openid']);
    assert.match(JSON.stringify(client.Properties.CallbackURLs), /DomainName/);
  });

  test('every route of the API needs the user pool\'s token for the console\'s client', () => {
    const routes = Object.values(ofType(s, 'AWS::ApiGatewayV2::Route')) as any[];
    assert.deepEqual(routes.map((r) => r.Properties.RouteKey), ['ANY /api/{proxy+}']);
    for (const r of routes) {
      assert.equal(r.Properties.AuthorizationType, 'JWT');
      assert.ok(r.Properties.AuthorizerId);
    }
    assert.equal(authorizer.Properties.AuthorizerType, 'JWT');
    assert.equal(target(authorizer.Properties.JwtConfiguration.Audience[0]), clientId);
    assert.match(JSON.stringify(authorizer.Properties.JwtConfiguration.Issuer), new RegExp(`cognito-idp.*${poolId}`));
    const stages = Object.values(ofType(s, 'AWS::ApiGatewayV2::Stage')) as any[];
    assert.equal(stages.length, 1);
    assert.ok(stages[0].Properties.AccessLogSettings.DestinationArn);
    assert.doesNotMatch(stages[0].Properties.AccessLogSettings.Format, /sourceIp|userAgent/, 'no IP address or user agent in the access log');
    assert.ok(stages[0].Properties.DefaultRouteSettings.ThrottlingRateLimit > 0);
    assert.equal(target(stages[0].Properties.ApiId), apiId);
  });

  test('CloudFront: the private bucket through origin access control, /api/* to the API uncached with every viewer header but Host, the CSP on both', () => {
    const d = distribution.Properties.DistributionConfig;
    assert.equal(d.DefaultRootObject, 'index.html');
    assert.equal(d.DefaultCacheBehavior.ViewerProtocolPolicy, 'redirect-to-https');
    const api = d.CacheBehaviors.find((b: any) => b.PathPattern === '/api/*');
    assert.ok(api, 'an /api/* behaviour');
    assert.equal(api.CachePolicyId, '4135ea2d-6df8-44a3-9df3-4b5a84be39ad', 'CachingDisabled');
    assert.equal(api.OriginRequestPolicyId, 'b689b0a8-53d0-40ab-baf2-68738e2966ac', 'AllViewerExceptHostHeader');
    assert.deepEqual(api.AllowedMethods.sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']);
    assert.equal(target(api.ResponseHeadersPolicyId), target(d.DefaultCacheBehavior.ResponseHeadersPolicyId));
    assert.ok(d.Origins.some((o: any) => o.S3OriginConfig && o.OriginAccessControlId));
    const csp = headers.Properties.ResponseHeadersPolicyConfig.SecurityHeadersConfig.ContentSecurityPolicy.ContentSecurityPolicy;
    const text = JSON.stringify(csp);
    for (const part of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", 'connect-src \'self\' https://']) {
      assert.ok(text.includes(part), `CSP has ${part}: ${text}`);
    }
    assert.doesNotMatch(text, /unsafe-inline|unsafe-eval/);
    const site = Object.values(ofType(s, 'AWS::S3::Bucket')).find((b: any) => !b.Properties.ObjectLockEnabled && b.Properties.VersioningConfiguration) as any;
    assert.deepEqual(site.Properties.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
  });

  test('the policy is csp.json\'s, as the local console sends it (tools/vigil-stack/src/console.rs has the same literal)', () => {
    assert.equal(
      contentSecurityPolicy([]),
      "base-uri 'none'; connect-src 'self'; default-src 'none'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; script-src 'self'; style-src 'self'",
    );
    assert.match(contentSecurityPolicy(['https://x.auth'], 'https://tiles.example'), /connect-src 'self' https:\/\/x\.auth; .*img-src 'self' data: https:\/\/tiles\.example;/);
  });

  test('the operator API function: capped concurrency, no secrets in its environment, and only the operator actions\' grants', () => {
    const fn = R[consoleId].Properties;
    assert.equal(fn.ReservedConcurrentExecutions, CONSOLE_RESERVED_CONCURRENCY);
    assert.deepEqual(Object.keys(fn.Environment.Variables).sort(), ['VIGIL_DESTINATION_MAC_KEY', 'VIGIL_FORCES_PARAMETER', 'VIGIL_STAGE']);
    const role = target(fn.Role);
    const actions = new Set(identityStatements(s).filter((st) => st.role === role).flatMap((st) => st.Action));
    for (const a of actions) assert.match(a, /^(dynamodb|kms|ssm|logs):/, a);
    for (const forbidden of ['dynamodb:DeleteTable', 'kms:Sign', 'sns:Publish', 'sqs:SendMessage', 'iot:Publish', 'dynamodb:BatchWriteItem']) {
      assert.ok(!actions.has(forbidden), forbidden);
    }
    // API Gateway alone invokes it.
    const perms = Object.values(ofType(s, 'AWS::Lambda::Permission')).filter((p: any) => target(p.Properties.FunctionName) === consoleId) as any[];
    assert.ok(perms.length >= 1);
    for (const p of perms) assert.equal(p.Properties.Principal, 'apigateway.amazonaws.com');
  });
});
