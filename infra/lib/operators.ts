// The operators' roles (docs/FORCES.md, "Who the operator is"): one per force,
// vigil-<stage>-operator-<id>, and one for the national administrators, vigil-<stage>-national.
//
// The role names are a contract with the `vigil` CLI: it reads the force it acts for from the
// caller's assumed-role ARN (arn:aws:sts::<account>:assumed-role/vigil-<stage>-operator-<id>/<session>
// is force <id>; .../vigil-<stage>-national/... is national). Operators assume them from an
// identity of this account, with MFA, for a few hours at most.
//
// What a role may do is what the CLI calls (tools/vigil-cli, vigil-admin, and the DynamoDB
// adapter in shared/vigil-aws/src/dynamo), statement by statement, on this stage's resources.
// The tables are shared by every force (the order is the unit of ownership, not the table), so
// a force's role reaches every force's items in them, as any operator's access did before
// issue 17: isolation between forces rests on vigil-admin's one authorization rule (the
// record's stored force against the caller's scope; docs/FORCES.md "What isolation rests
// on"), and these roles carry the identity that rule reads. IAM does separate what is the
// force's own: each force's role subscribes to its own force's topic only. Per-force IAM
// conditions on the tables (dynamodb:LeadingKeys on force-prefixed keys) would need every
// table re-keyed; left for a later step, as the design says.

import { Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { Forces, nationalRoleName, operatorRoleName } from './forces';

/** A force's operators renew their session (and MFA) at least every 4 hours. */
export const FORCE_SESSION_HOURS = 4;
/** The national role reaches every force (and the dead-letter queues): every hour. */
export const NATIONAL_SESSION_HOURS = 1;

export interface OperatorRolesProps {
  readonly stage: string;
  readonly forces: Forces;
  /** Each force's operators' topic, by force id. */
  readonly forceTopics: ReadonlyMap<string, sns.ITopic>;
  /** The national operators' topic (every operator event and every alarm). */
  readonly operatorsTopic: sns.ITopic;
  readonly tables: ReadonlyMap<string, dynamodb.ITable>;
  /** The data key of the tables and queues. */
  readonly key: kms.IKey;
  /** The HMAC keys of SMS destinations (the audit of a phone set on an order). */
  readonly macKeys: readonly kms.IKey[];
  /** The forces parameter's ARN. */
  readonly forcesParameterArn: string;
  /** The anchors bucket (docs/EVIDENCE.md): operators list and read anchors to export them. */
  readonly anchorsBucketArn: string;
  /** The evidence signing key: operators sign bundles' manifests and read its public key. */
  readonly evidenceKey: kms.IKey;
  /** The dead-letter queues `vigil dlq` reads (alerts-dlq, rule-errors) and the one it redrives
   * by invoking ingest again (rule-errors). */
  readonly alertsDlq: sqs.IQueue;
  readonly ruleErrors: sqs.IQueue;
  readonly ingest: lambda.IFunction;
  /** Key use through the named services only (vigil-stack.ts). */
  readonly kmsUse: (sid: string, key: kms.IKey, actions: string[], services: string[]) => iam.PolicyStatement;
}

export class OperatorRoles extends Construct {
  /** Each force's role, by force id. */
  readonly forceRoles = new Map<string, iam.Role>();
  readonly national: iam.Role;
  /** What every operator role may do (the CLI's commands on orders, zones, tags, devices,
   * alerts and evidence). */
  readonly common: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: OperatorRolesProps) {
    super(scope, id);
    const { stage, forces, tables } = props;
    const stack = Stack.of(this);
    const arns = (...names: string[]) => names.map((n) => {
      const t = tables.get(n);
      if (!t) throw new Error(`infra/resources.json declares no table ${JSON.stringify(n)}, which the operator roles need`);
      return t.tableArn;
    });
    const iotArn = (resource: string) => stack.formatArn({ service: 'iot', resource, resourceName: '*' });

    this.common = new iam.ManagedPolicy(this, 'Common', {
      managedPolicyName: `vigil-${stage}-operator`,
      description: `Vigil ${stage}: what the vigil CLI does for every operator role (force or national)`,
      statements: [
        // Orders: show (GetItem), list (Scan), create, end and move to another tag (PutItem, the
        // move conditional in a transaction).
        new iam.PolicyStatement({ sid: 'Orders', actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan'], resources: arns('orders') }),
        // Zones: add or replace, remove, list all (Scan) or an order's (Query).
        new iam.PolicyStatement({
          sid: 'Zones',
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Query', 'dynamodb:Scan'],
          resources: arns('zones'),
        }),
        // The geohash index: a zone set in or removed from each cell it covers.
        new iam.PolicyStatement({ sid: 'ZoneIndex', actions: ['dynamodb:UpdateItem'], resources: arns('zone-cells') }),
        // A tag's summary of its orders (and open marks, moved with the order), read when an
        // order moves; open alerts are listed from the tags (Scan).
        new iam.PolicyStatement({ sid: 'TagsOfOrders', actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'], resources: arns('tags') }),
        // Her device names the order and its tag, set with the order; its force (force_id) is
        // read before an order may take it, and the migration lists devices without one (Scan).
        new iam.PolicyStatement({ sid: 'DevicesOfOrders', actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'], resources: arns('devices') }),
        // A tag's rejected messages (`vigil tags quarantined`): Query by tag. Which force may
        // see which is vigil-admin's rule (a message of an unknown tag: national only).
        new iam.PolicyStatement({ sid: 'ReadQuarantine', actions: ['dynamodb:Query'], resources: arns('quarantine') }),
        // A new order's tag is armed for the watchdog's next minute (vigil-admin, one part
        // `new#<tag>`), and an operator's change that ends its tag's batching window (part
        // `c#<order>#<tag>`, turned into the alert function's ask by the watchdog alone: operators
        // never send to the alert queue): PutItem of the key, the tags and the TTL only, nothing
        // returned.
        new iam.PolicyStatement({
          sid: 'ArmNewTags',
          actions: ['dynamodb:PutItem'],
          resources: [props.tables.get('watch')!.tableArn],
          conditions: {
            'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['minute', 'part', 'tags', 'expires_at'] },
            StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
          },
        }),
        // Open alerts: the order's current zone states.
        new iam.PolicyStatement({ sid: 'ReadZoneStates', actions: ['dynamodb:Query'], resources: arns('zone-state') }),
        // The order's audit chain: every change appended (conditional puts in a transaction),
        // read for acknowledgements and evidence.
        new iam.PolicyStatement({ sid: 'AuditChains', actions: ['dynamodb:Query', 'dynamodb:PutItem'], resources: arns('audit') }),
        props.kmsUse('DataKey', props.key, ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], ['dynamodb']),
        // The keyed hash of a victim's phone, recorded in the audit when an order sets it.
        new iam.PolicyStatement({ sid: 'HashSmsDestinations', actions: ['kms:GenerateMac'], resources: props.macKeys.map((k) => k.keyArn) }),
        new iam.PolicyStatement({ sid: 'ReadForces', actions: ['ssm:GetParameter'], resources: [props.forcesParameterArn] }),
        // `vigil evidence export`: an order's anchors listed and read (never written: the bucket
        // policy lets only the anchor function put), the manifest signed, the public key read.
        new iam.PolicyStatement({
          sid: 'ListAnchors',
          actions: ['s3:ListBucket'],
          resources: [props.anchorsBucketArn],
          conditions: { StringLike: { 's3:prefix': ['anchors/*'] } },
        }),
        new iam.PolicyStatement({ sid: 'ReadAnchors', actions: ['s3:GetObject', 's3:GetObjectRetention'], resources: [`${props.anchorsBucketArn}/anchors/*`] }),
        new iam.PolicyStatement({ sid: 'SignEvidence', actions: ['kms:Sign', 'kms:GetPublicKey'], resources: [props.evidenceKey.keyArn] }),
        // `vigil tags register`, `vigil devices register` (and the undoing of a registration that
        // failed part way), `vigil tags deactivate`: the IoT registry. Things are named by the
        // tag or device id, certificates by IoT: neither has a prefix to scope to.
        new iam.PolicyStatement({
          sid: 'RegisterThings',
          actions: ['iot:DescribeThing', 'iot:CreateThing', 'iot:DeleteThing', 'iot:ListThingPrincipals'],
          resources: [iotArn('thing')],
        }),
        new iam.PolicyStatement({
          sid: 'RegisterCertificates',
          actions: ['iot:AttachPolicy', 'iot:DetachPolicy', 'iot:AttachThingPrincipal', 'iot:DetachThingPrincipal', 'iot:UpdateCertificate', 'iot:DeleteCertificate'],
          resources: [iotArn('cert')],
        }),
        // IAM has no resource for these two: signing a CSR makes a new certificate (INACTIVE,
        // with no policy or thing), and the endpoint is the account's.
        new iam.PolicyStatement({ sid: 'SignCsrsFindEndpoint', actions: ['iot:CreateCertificateFromCsr', 'iot:DescribeEndpoint'], resources: ['*'] }),
      ],
    });
    const nagAccount = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    Validations.of(this.common).acknowledge(
      {
        id: 'AwsSolutions::AwsSolutions-IAM5[Resource::<AnchorsBucket9A78CFB3.Arn>/anchors/*]',
        reason: 'Evidence export reads an order\'s anchors, any order\'s (which order an operator may export is vigil-admin\'s force rule): the anchors/ prefix, read only.',
      },
      {
        id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
        reason: 'iot:CreateCertificateFromCsr and iot:DescribeEndpoint have no resource ARN in IAM; the statement allows these two only (tag and device registration by the vigil CLI).',
      },
      ...(['thing', 'cert'] as const).map((r) => ({
        id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:${stack.region}:${nagAccount}:${r}/*]`,
        reason: 'IoT registry actions of the vigil CLI (register, undo a failed registration, deactivate): things are named by tag and device ids and certificates by IoT, so neither has a prefix to scope to; the actions are the registry ones only (no data plane).',
      })),
    );

    // Same account, with MFA: an operator's own identity (IAM Identity Center, a user) assumes
    // the role of their force. CloudTrail records who assumed which, and the CLI records the
    // assumed-role ARN, session name included, in every audit record it writes.
    const trust = () => new iam.AccountRootPrincipal().withConditions({ Bool: { 'aws:MultiFactorAuthPresent': 'true' } });
    const subscribe = (sid: string, topics: sns.ITopic[]) =>
      new iam.PolicyStatement({ sid, actions: ['sns:Subscribe', 'sns:ListSubscriptionsByTopic'], resources: topics.map((t) => t.topicArn) });

    for (const force of forces.forces) {
      const topic = props.forceTopics.get(force.id);
      if (!topic) throw new Error(`no operators' topic for force ${JSON.stringify(force.id)}`);
      const role = new iam.Role(this, `Force-${force.id}`, {
        roleName: operatorRoleName(stage, force.id),
        assumedBy: trust(),
        description: `Vigil ${stage}: operators of force ${force.id} (the vigil CLI reads the force from this role's name)`,
        maxSessionDuration: Duration.hours(FORCE_SESSION_HOURS),
      });
      this.common.attachToRole(role);
      // Its own force's topic only: another force's operator events are not theirs to receive.
      role.addToPolicy(subscribe('SubscribeToOwnForce', [topic]));
      this.forceRoles.set(force.id, role);
    }

    this.national = new iam.Role(this, 'National', {
      roleName: nationalRoleName(stage),
      assumedBy: trust(),
      description: `Vigil ${stage}: national administrators, every force (the vigil CLI reads the scope from this role's name)`,
      maxSessionDuration: Duration.hours(NATIONAL_SESSION_HOURS),
    });
    this.common.attachToRole(this.national);
    // Every force's topic, and the national one (every operator event and every alarm).
    this.national.addToPolicy(subscribe('SubscribeToEveryForce', [props.operatorsTopic, ...forces.forces.map((f) => props.forceTopics.get(f.id)!)]));
    // `vigil dlq`, national only: a dead-letter queue holds messages of every force. Listing
    // receives and shows them again at once (SQS has no peek); a rule-errors redrive invokes
    // ingest with each kept event and deletes the record when ingest succeeded. An alerts-dlq
    // redrive sends to the alerts queue, whose own policy allows only the ingest, watchdog and
    // alert-redrive roles (16.7): that stays with vigil-<stage>-alert-redrive.
    this.national.addToPolicy(new iam.PolicyStatement({
      sid: 'InspectDeadLetters',
      actions: ['sqs:GetQueueUrl', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility'],
      resources: [props.alertsDlq.queueArn, props.ruleErrors.queueArn],
    }));
    this.national.addToPolicy(new iam.PolicyStatement({ sid: 'RedriveRuleErrors', actions: ['sqs:DeleteMessage'], resources: [props.ruleErrors.queueArn] }));
    // Ingest takes the event as the IoT rule hands it (and validates it as it does every message):
    // the national administrators can invoke it with any event, so this is theirs alone.
    this.national.addToPolicy(new iam.PolicyStatement({ sid: 'InvokeIngestAgain', actions: ['lambda:InvokeFunction'], resources: [props.ingest.functionArn] }));
    this.national.addToPolicy(props.kmsUse('DeadLetterKey', props.key, ['kms:Decrypt'], ['sqs']));
  }
}
