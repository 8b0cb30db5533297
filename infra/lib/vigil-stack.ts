// Vigil's whole system in one stack: tables, queues and topics from infra/resources.json, the
// two Rust functions, the IoT rules from infra/rules/*.sql, the IoT policies (tags, victims'
// devices) from infra/iot/, least-privilege roles, alarms to the operators' topic; per force
// (infra/forces.json) an operators' topic and an operator role, and the runtime parameter
// /vigil/<stage>/forces.
//
// IAM is written out statement by statement instead of with CDK's grant helpers: the grants
// add actions the functions never call (and `kms:GenerateDataKey*`-style wildcards), and a
// reviewer should be able to read each role and see exactly what it can do.

import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { ArnFormat, Aws, CfnOutput, CfnResource, CfnRule, Duration, Fn, RemovalPolicy, Stack, StackProps, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import type { VigilConfig } from './config';
import {
  Forces, PARAMETER_ADVANCED_MAX_BYTES, PARAMETER_STANDARD_MAX_BYTES, forceTopicName, forcesParameterName, runtimeDocument, runtimeDocumentMaxBytes,
} from './forces';
import { OperatorRoles } from './operators';
import { BUCKET_DEPLOYMENT_ID, CONSOLE_RESERVED_CONCURRENCY, CONSOLE_WEB_DIST, ConsoleSite } from './console';
import { DERIVED_TABLES, NOT_BACKED_UP, Protection, VICTIM_POSITIONS } from './protection';
import { SmsSettings, smsAttributes } from './sms';
import { INFRA_DIR, REPO_ROOT, Resources, physicalName, queueName, ruleSql } from './resources';

export interface VigilStackProps extends StackProps {
  readonly config: VigilConfig;
  readonly resources: Resources;
  readonly forces: Forces;
}

/** The rule DLQ is cloud-only plumbing (IoT error actions and Lambda async failures do not
 * exist in the local stack), so it is the one queue not declared in resources.json. */
export const RULE_ERRORS_QUEUE = 'rule-errors';

/** The command topics of pursuit mode, which the alert function publishes to (retained):
 * his tag's and her device's. */
export const PURSUIT_COMMAND_TOPICS = ['tags/*/cmd', 'victims/*/cmd'] as const;
/** The one attribute the alert function writes on `tags` and `devices` items: the last
 * command sent to that device. */
export const COMMAND_ATTRIBUTE = 'cmd';

/** The watchdog's marks on `tags` items, `watch#<order_id>#<condition>` (the episode of a
 * silence or loss of GPS it has told): the only attributes it writes there. */
export const WATCH_MARK_PATTERN = 'watch#*';
/** The attribute of an escalation part (`watch` item `e#<event_id>`) holding the alert event
 * the watchdog queues at its minute: with the key and the TTL, all the alert function writes there. */
export const ESCALATION_ATTRIBUTE = 'event';
/** The watchdog runs once a minute; it must end before the next run starts. */
export const WATCHDOG_TIMEOUT_S = 50;

/** Every IoT rule is named vigil_<stage>_<name>: rule names allow only [A-Za-z0-9_]. */
export function ruleName(stage: string, name: string): string {
  return `vigil_${stage}_${name}`;
}

/** A checkov or cfn-lint finding accepted on one resource, with the reason next to it. */
interface Waiver {
  readonly id: string;
  readonly why: string;
}

/** Records waivers where the linters read them: checkov's `Metadata.checkov.skip` and
 * cfn-lint's `Metadata.cfn-lint.config.ignore_checks` (cfn-lint has no comment field, so the
 * reason is kept beside it under `Metadata.vigil:waivers`). */
export function waive(resource: Construct, checkov: Waiver[], cfnLint: Waiver[] = []): void {
  const cfn = (resource instanceof CfnResource ? resource : resource.node.defaultChild) as CfnResource;
  if (checkov.length > 0) cfn.addMetadata('checkov', { skip: checkov.map((w) => ({ id: w.id, comment: w.why })) });
  if (cfnLint.length > 0) {
    cfn.addMetadata('cfn-lint', { config: { ignore_checks: cfnLint.map((w) => w.id) } });
    cfn.addMetadata('vigil:waivers', Object.fromEntries(cfnLint.map((w) => [w.id, w.why])));
  }
}

/** A Lambda on-failure destination that adds only sqs:SendMessage (and the key use SQS
 * needs) to the function's role; CDK's SqsDestination grants wildcard KMS actions. */
class QueueDestination implements lambda.IDestination {
  constructor(
    private readonly queue: sqs.IQueue,
    private readonly key: kms.IKey,
  ) {}

  bind(_scope: Construct, fn: lambda.IFunction): lambda.DestinationConfig {
    fn.addToRolePolicy(
      new iam.PolicyStatement({ sid: 'OnFailureDestination', actions: ['sqs:SendMessage'], resources: [this.queue.queueArn] }),
    );
    fn.addToRolePolicy(kmsUse('OnFailureDestinationKey', this.key, ['kms:GenerateDataKey', 'kms:Decrypt'], ['sqs']));
    return { destination: this.queue.queueArn };
  }
}

/** Use of the data key, only through the named services (kms:ViaService). */
/** The anchor function's batch size and batching window on the audit stream (the local
 * stack's are the same: tools/vigil-stack/tests/deployed.rs). */
export const ANCHOR_BATCH_SIZE = 100;
export const ANCHOR_WINDOW_S = 10;
/** An anchor's retention when no force says: infra/forces.json's default. */
const DEFAULT_RETENTION_YEARS = 7;

function kmsUse(sid: string, key: kms.IKey, actions: string[], services: string[]): iam.PolicyStatement {
  const stack = Stack.of(key);
  return new iam.PolicyStatement({
    sid,
    actions,
    resources: [key.keyArn],
    conditions: { StringEquals: { 'kms:ViaService': services.map((s) => `${s}.${stack.region}.amazonaws.com`) } },
  });
}

export class VigilStack extends Stack {
  readonly tables = new Map<string, dynamodb.Table>();
  readonly queues = new Map<string, sqs.Queue>();
  readonly topics = new Map<string, sns.Topic>();
  readonly key: kms.Key;
  /** The HMAC keys resources.json declares (the SMS destination hash), by logical name. */
  readonly macKeys = new Map<string, kms.Key>();
  /** The evidence signing key (ECC P-256, sign and verify; docs/EVIDENCE.md). */
  readonly evidenceKey!: kms.Key;
  /** The anchors bucket: Object Lock in compliance mode (docs/EVIDENCE.md). */
  readonly anchorsBucket: s3.Bucket;
  readonly anchor: lambda.Function;
  /** The console's operator API (functions/console). */
  readonly consoleApi: lambda.Function;
  /** The console: user pool, HTTP API, web app on CloudFront (lib/console.ts). */
  readonly console: ConsoleSite;
  readonly ingest: lambda.Function;
  readonly alert: lambda.Function;
  readonly watchdog: lambda.Function;
  readonly ruleErrors: sqs.Queue;
  /** Each force's operators' topic, by force id (forces.json). */
  readonly forceTopics = new Map<string, sns.Topic>();
  /** /vigil/<stage>/forces: the forces document the functions and the CLI read. */
  readonly forcesParameter: ssm.StringParameter;
  readonly operatorRoles: OperatorRoles;

  constructor(scope: Construct, id: string, props: VigilStackProps) {
    super(scope, id, props);
    const { config, resources, forces } = props;
    const stage = config.stage;
    const name = (logical: string) => physicalName(resources, stage, logical);

    // One customer-managed key for every table, queue, topic and log group: victims' data is
    // under a key the force controls, can audit (CloudTrail) and can revoke.
    this.key = new kms.Key(this, 'DataKey', {
      alias: `alias/${name('data')}`,
      description: `Vigil ${stage}: tables, queues, topics and logs`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch alarms publish to the encrypted operators' topic as the CloudWatch service
    // (the key policy AWS documents for alarms on SSE topics).
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublishToEncryptedTopic',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'], // in a key policy, "*" is this key
        // Only for alarms of this account: the service principal alone would let CloudWatch
        // act for any account that names this key.
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    // CloudWatch Logs encrypts the functions' log groups, and only those of this stage.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchLogsEncryptLogGroups',
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: ['*'], // in a key policy, "*" is this key
        conditions: {
          ArnLike: { 'kms:EncryptionContext:aws:logs:arn': this.formatArn({ service: 'logs', resource: 'log-group', resourceName: `/aws/lambda/vigil-${stage}-*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }) },
        },
      }),
    );

    // The evidence signing key (resources.json `keys`, SIGN_VERIFY): ECDSA P-256; the private
    // key never leaves KMS; operators sign evidence bundles' manifests with it, and anyone
    // verifies them offline with its public key (docs/EVIDENCE.md). Retained: bundles signed
    // with it stay verifiable with the saved public key, but a retained key lets a force
    // confirm the public key from KMS itself.
    for (const def of resources.keys.filter((k) => k.key_usage === 'SIGN_VERIFY')) {
      const signing = new kms.Key(this, `SigningKey-${def.name}`, {
        alias: `alias/${name(def.name)}`,
        description: `Vigil ${stage}: ${def.name} (signs evidence bundles)`,
        keySpec: kms.KeySpec.ECC_NIST_P256,
        keyUsage: kms.KeyUsage.SIGN_VERIFY,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      waive(signing, [
        { id: 'CKV_AWS_7', why: 'KMS does not rotate asymmetric keys; a new key would also need its public key handed to courts again. Bundles name the key that signed them.' },
      ]);
      this.evidenceKey = signing;
    }

    if (!this.evidenceKey) throw new Error('infra/resources.json declares no SIGN_VERIFY key: the evidence key is required (docs/EVIDENCE.md)');

    // HMAC keys (resources.json `keys`): the key never leaves KMS, so nobody with only the
    // tables can compute the hash of a number they would redirect SMS to. HMAC keys cannot be
    // rotated automatically; retained, like the data key, because audit records depend on it.
    for (const def of resources.keys.filter((k) => k.key_usage === 'GENERATE_VERIFY_MAC')) {
      const macKey = new kms.Key(this, `MacKey-${def.name}`, {
        alias: `alias/${name(def.name)}`,
        description: `Vigil ${stage}: ${def.name} (HMAC)`,
        keySpec: kms.KeySpec.HMAC_256,
        keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      waive(macKey, [
        { id: 'CKV_AWS_7', why: 'KMS cannot rotate HMAC keys automatically; a rotated MAC key would also break the comparison of destination hashes across the audit trail.' },
      ]);
      this.macKeys.set(def.name, macKey);
    }

    // ---- Tables, queues, topics: built from resources.json, nothing added or left out ----
    for (const def of resources.tables) {
      const attr = (k: { name: string; type: string }) => ({ name: k.name, type: k.type as dynamodb.AttributeType });
      const table = new dynamodb.Table(this, `Table-${def.name}`, {
        tableName: name(def.name),
        partitionKey: attr(def.partition_key),
        sortKey: def.sort_key ? attr(def.sort_key) : undefined,
        timeToLiveAttribute: def.ttl_attribute,
        stream: def.stream ? dynamodb.StreamViewType[def.stream] : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: this.key,
        // Every table but her positions and the derived ones (protection.ts, NOT_BACKED_UP).
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: !NOT_BACKED_UP.includes(def.name) },
        // Orders, audit chains and zones are evidence: a stack deletion never deletes them,
        // and nobody deletes one by accident or alone (deletion protection must be turned off
        // first, a separate, logged API call).
        removalPolicy: RemovalPolicy.RETAIN,
        deletionProtection: true,
      });
      this.tables.set(def.name, table);
    }

    for (const def of resources.queues) {
      const dlq = def.dead_letter;
      const queue = new sqs.Queue(this, `Queue-${def.name}`, {
        queueName: queueName(resources, stage, def),
        fifo: def.fifo ? true : undefined,
        // Same as the local harness: event ids deduplicate, not message bodies.
        contentBasedDeduplication: def.fifo ? false : undefined,
        visibilityTimeout: def.visibility_timeout_s === undefined ? undefined : Duration.seconds(def.visibility_timeout_s),
        retentionPeriod: def.retention_period_s === undefined ? undefined : Duration.seconds(def.retention_period_s),
        deadLetterQueue: dlq ? { queue: this.queues.get(dlq.queue)!, maxReceiveCount: dlq.max_receive_count } : undefined,
        encryption: sqs.QueueEncryption.KMS,
        encryptionMasterKey: this.key,
        enforceSSL: true,
      });
      this.queues.set(def.name, queue);
      // cdk-nag (infra/test/nag.test.ts): a queue that is itself a dead-letter or error queue
      // has no DLQ of its own: it is where failures end, alarmed and kept for operators.
      if (!dlq) {
        Validations.of(queue).acknowledge(
          { id: 'Serverless::Serverless-SQSRedrivePolicy', reason: 'A terminal queue (dead-letter or error queue): alarmed, kept for operators to inspect and redrive.' },
          { id: 'AwsSolutions::AwsSolutions-SQS3', reason: 'A terminal queue (dead-letter or error queue): alarmed, kept for operators to inspect and redrive.' },
        );
      }
    }

    for (const def of resources.topics) {
      this.topics.set(def.name, new sns.Topic(this, `Topic-${def.name}`, { topicName: name(def.name), masterKey: this.key, enforceSSL: true }));
    }

    const table = (n: string) => this.must(this.tables, n, 'table');
    // Her positions are kept no longer than their TTL: no point-in-time recovery, no backups,
    // no CloudTrail data events (protection.ts, VICTIM_POSITIONS, says why).
    const positions = table(VICTIM_POSITIONS);
    const noHistory = 'Victims\' latest positions, expiring after minutes: point-in-time recovery would keep a history of her whereabouts restorable for 35 days; a position older than 5 minutes is never used.';
    Validations.of(positions).acknowledge({ id: 'AwsSolutions::AwsSolutions-DDB3', reason: noHistory });
    waive(positions, [{ id: 'CKV_AWS_28', why: noHistory }]);
    // The derived tables (the watchdog's deadline index): rebuilt by the watchdog's sweep, so
    // neither point-in-time recovery nor backups (protection.ts, DERIVED_TABLES, says why).
    for (const logical of DERIVED_TABLES) {
      const derived = 'A derived index with a one-day TTL (the watchdog\'s due tags per minute, and its cursor): the watchdog\'s sweep rebuilds it from the tags table within 15 minutes, and a restored copy would only bring back a past schedule.';
      Validations.of(table(logical)).acknowledge({ id: 'AwsSolutions::AwsSolutions-DDB3', reason: derived });
      waive(table(logical), [{ id: 'CKV_AWS_28', why: derived }]);
    }
    const alerts = this.must(this.queues, 'alerts', 'queue');
    // The national operators' topic: every operator event and every alarm.
    const operators = this.must(this.topics, 'operators', 'topic');

    // ---- Forces (forces.json, docs/FORCES.md): each force's operators' topic, encrypted and
    // TLS-only as the national one, for its own operator events (and urgent events in its area);
    // the runtime document, with each topic's ARN ----
    for (const force of forces.forces) {
      this.forceTopics.set(force.id, new sns.Topic(this, `ForceTopic-${force.id}`, { topicName: forceTopicName(stage, force.id), masterKey: this.key, enforceSSL: true }));
    }
    // Exactly the file without `$comment`, each force with `operators_topic_arn`; the Advanced
    // tier (which costs) only when the document could outgrow the Standard tier's 4 KB.
    const forcesBytes = runtimeDocumentMaxBytes(forces, stage, this.region);
    if (forcesBytes > PARAMETER_ADVANCED_MAX_BYTES) {
      throw new Error(`${forces.source}: the forces document would be up to ${forcesBytes} bytes with its topic ARNs, over the ${PARAMETER_ADVANCED_MAX_BYTES} bytes an SSM parameter holds: simplify the areas (fewer points, fewer decimals)`);
    }
    this.forcesParameter = new ssm.StringParameter(this, 'ForcesParameter', {
      parameterName: forcesParameterName(stage),
      description: `Vigil ${stage}: the forces this deployment serves (infra/forces.json with each force's operators' topic ARN)`,
      stringValue: this.toJsonString(runtimeDocument(forces, (id) => this.forceTopics.get(id)!.topicArn)),
      tier: forcesBytes > PARAMETER_STANDARD_MAX_BYTES ? ssm.ParameterTier.ADVANCED : ssm.ParameterTier.STANDARD,
    });
    // Read by the functions and operator roles by ARN, from its name (a reference to the
    // parameter would add nothing but a dependency IAM does not need).
    const forcesParameterArn = this.formatArn({ service: 'ssm', resource: 'parameter', resourceName: forcesParameterName(stage).slice(1) });
    const readForces = () => new iam.PolicyStatement({ sid: 'ReadForces', actions: ['ssm:GetParameter'], resources: [forcesParameterArn] });

    // Where IoT rule errors and failed asynchronous ingest invocations go, declared in
    // resources.json like every queue (so the local stack has it too). Standard, not FIFO:
    // neither the IoT SQS action nor Lambda destinations accept FIFO queues.
    this.ruleErrors = this.must(this.queues, RULE_ERRORS_QUEUE, 'queue');
    if (resources.queues.find((q) => q.name === RULE_ERRORS_QUEUE)?.fifo) {
      throw new Error(`resources.json: queue ${RULE_ERRORS_QUEUE} must not be FIFO (IoT error actions and Lambda destinations need a standard queue)`);
    }

    // ---- Functions ----
    // Each function: its crate functions/<crate> (binary of the same name), an explicit log
    // group with retention and the stack key, and a role of its own.
    const fnProps = (fn: string) => {
      const crate = fn.toLowerCase();
      const logGroup = new logs.LogGroup(this, `${fn}Logs`, {
        logGroupName: `/aws/lambda/vigil-${stage}-${crate}`,
        retention: config.logRetentionDays,
        encryptionKey: this.key,
        // What the functions did is part of the record: kept when the stack is deleted.
        removalPolicy: RemovalPolicy.RETAIN,
      });
      // Not AWSLambdaBasicExecutionRole, which may write to (and create) every log group.
      const role = new iam.Role(this, `${fn}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Vigil ${stage} ${crate} function`,
      });
      role.addToPolicy(new iam.PolicyStatement({ sid: 'WriteOwnLogs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }));
      return {
        functionName: `vigil-${stage}-${crate}`,
        manifestPath: path.join(REPO_ROOT, 'functions', crate, 'Cargo.toml'),
        binaryName: crate,
        // --locked: the production build uses exactly Cargo.lock's versions, or fails (16.14).
        bundling: { architecture: lambda.Architecture.ARM_64, cargoLambdaFlags: ['--locked'] },
        architecture: lambda.Architecture.ARM_64,
        memorySize: 256,
        logGroup,
        // JSON format with system logs at WARN: Lambda's START, END and REPORT lines (about
        // 260 bytes per invocation, more than the handler's own EMF line on the quiet path)
        // are not ingested; duration, errors and throttles stay in Lambda's metrics, which the
        // alarms use. The application's lines (EMF, tracing JSON) are kept (docs/PERFORMANCE.md).
        loggingFormat: lambda.LoggingFormat.JSON,
        systemLogLevelV2: lambda.SystemLogLevel.WARN,
        role,
      };
    };

    const ingestProps = fnProps('Ingest');
    this.ingest = new RustFunction(this, 'Ingest', {
      ...ingestProps,
      description: 'Tag and victim-device messages from the IoT rules: zones near the fix, breach decision, alert events',
      // Longer than one SDK operation's own 20 s timeout, so a slow call fails with its reason.
      timeout: Duration.seconds(25),
      reservedConcurrentExecutions: config.ingestReservedConcurrency,
      // The forces: the force of each fix is a dimension of its metrics.
      environment: { VIGIL_STAGE: stage, VIGIL_ALERTS_QUEUE_URL: alerts.queueUrl },
      // The IoT rule invokes asynchronously. Lambda's defaults would keep retrying an event for
      // 6 hours: a fix that old tells a victim nothing current. Two retries within 10 minutes
      // (the alert function's default max event age: older alerts reach operators only), then
      // the event goes to the rule-errors queue, which alarms, for operators to inspect and
      // redrive (docs/DEPLOY.md).
      retryAttempts: 2,
      maxEventAge: Duration.minutes(10),
      onFailure: new QueueDestination(this.ruleErrors, this.key),
    });
    const ingestRole = ingestProps.role;
    const arns = (...names: string[]) => names.map((n) => table(n).tableArn);
    ingestRole.addToPolicy(new iam.PolicyStatement({
      sid: 'ReadZonesTagsAndStates',
      actions: ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'],
      resources: arns('zone-cells', 'tags', 'zones', 'last-seen', 'zone-state'),
    }));
    // The tag's history of accepted fixes: written by ingest after validation, never by a rule
    // (a rule would store rejected fixes too; docs/SAFETY.md).
    ingestRole.addToPolicy(new iam.PolicyStatement({ sid: 'WriteTagHistory', actions: ['dynamodb:PutItem'], resources: arns('last-seen') }));
    // The content digest first seen under a tag event's counter (a repeat with other content
    // is a conflict operators see).
    ingestRole.addToPolicy(new iam.PolicyStatement({ sid: 'TagEventDigests', actions: ['dynamodb:GetItem', 'dynamodb:PutItem'], resources: arns('idempotency') }));
    // One TransactWriteItems commits states and the tag's open set (the audit record of a
    // change is the alert function's). IAM has no TransactWriteItems action: it authorizes
    // each item by its own (Put, Update, ConditionCheck).
    ingestRole.addToPolicy(new iam.PolicyStatement({
      sid: 'CommitTransitions',
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:ConditionCheckItem'],
      resources: arns('zone-state'),
    }));
    // The tag's open zones, and each order's mark that her device is silent.
    ingestRole.addToPolicy(new iam.PolicyStatement({ sid: 'TrackOpenZones', actions: ['dynamodb:UpdateItem'], resources: arns('tags') }));
    // Her device: the orders it serves (written by operators), and its latest position, the
    // most sensitive item in the system, overwritten by a conditional put (her newest wins).
    // Ingest is the only role of the stack that reaches her positions; the alert role reads
    // `devices` items and writes only their `cmd` attribute (pursuit mode, below; iam.test.ts).
    ingestRole.addToPolicy(new iam.PolicyStatement({
      sid: 'ReadVictimDevicesAndPositions',
      actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
      resources: arns('devices', VICTIM_POSITIONS),
    }));
    ingestRole.addToPolicy(new iam.PolicyStatement({ sid: 'RecordVictimPositions', actions: ['dynamodb:PutItem'], resources: arns(VICTIM_POSITIONS) }));
    // Her positions are guarded by the table's own policy too, as alert events are by the
    // queue's (16.7): a Deny holds whatever an identity policy grants (an administrator's
    // dynamodb:* included), so nobody but ingest reads, writes, copies (backup, export) or
    // restores them. Table settings stay manageable; removing this policy is a management
    // write the trail records.
    positions.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'OnlyIngestReachesVictimPositions',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: [
        'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:ConditionCheckItem',
        'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem',
        'dynamodb:PartiQLSelect', 'dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate', 'dynamodb:PartiQLDelete',
        'dynamodb:CreateBackup', 'dynamodb:StartAwsBackupJob', 'dynamodb:ExportTableToPointInTime', 'dynamodb:RestoreTableToPointInTime',
      ],
      // The table's own ARN from its name: a reference to the table here would be circular.
      resources: [this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: name(VICTIM_POSITIONS) })],
      conditions: { ArnNotEquals: { 'aws:PrincipalArn': ingestRole.roleArn } },
    }));
    ingestRole.addToPolicy(new iam.PolicyStatement({ sid: 'QuarantineBadInput', actions: ['dynamodb:PutItem'], resources: arns('quarantine') }));
    ingestRole.addToPolicy(new iam.PolicyStatement({ sid: 'QueueAlertEvents', actions: ['sqs:SendMessage'], resources: [alerts.queueArn] }));

    // Only ingest and the watchdog write alert events (16.7; the queue's Deny is below, after
    // the watchdog). Moving parked events back from alerts-dlq (StartMessageMoveTask) sends
    // with the caller's rights, so it needs the one role made for it, which the account's
    // administrators assume (docs/DEPLOY.md); its use is in CloudTrail.
    const alertsDlqQueue = this.must(this.queues, 'alerts-dlq', 'queue');
    const redrive = new iam.Role(this, 'AlertRedrive', {
      roleName: `vigil-${stage}-alert-redrive`,
      assumedBy: new iam.AccountRootPrincipal(),
      description: 'Moves alert events parked in alerts-dlq back to the alerts queue (the only principal besides ingest and the watchdog that may send to it)',
      maxSessionDuration: Duration.hours(1),
    });
    redrive.addToPolicy(new iam.PolicyStatement({
      sid: 'MoveFromDeadLetters',
      actions: ['sqs:StartMessageMoveTask', 'sqs:ListMessageMoveTasks', 'sqs:CancelMessageMoveTask', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'],
      resources: [alertsDlqQueue.queueArn],
    }));
    redrive.addToPolicy(new iam.PolicyStatement({ sid: 'MoveToAlerts', actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'], resources: [alerts.queueArn] }));
    redrive.addToPolicy(kmsUse('DataKey', this.key, ['kms:Decrypt', 'kms:GenerateDataKey'], ['sqs']));
    ingestRole.addToPolicy(kmsUse('DataKey', this.key, ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], ['dynamodb', 'sqs']));

    const alertProps = fnProps('Alert');
    this.alert = new RustFunction(this, 'Alert', {
      ...alertProps,
      description: 'Alert events from the queue: victim SMS, operators topic, audit',
      // Below the alert claim's 50 s stale window and the queue's visibility timeout.
      timeout: Duration.seconds(30),
      reservedConcurrentExecutions: config.alertReservedConcurrency,
      environment: {
        VIGIL_STAGE: stage,
        VIGIL_OPERATORS_TOPIC_ARN: operators.topicArn,
        // The forces, with each force's topic: where a force's operator events go.
        VIGIL_FORCES_PARAMETER: this.forcesParameter.parameterName,
        VIGIL_SMS_COUNTRIES: config.smsCountries.join(','),
        ...Object.fromEntries([...this.macKeys].map(([logical, k]) => [resources.keys.find((d) => d.name === logical)!.env, k.keyArn])),
        ...(config.smsSenderId ? { VIGIL_SMS_SENDER_ID: config.smsSenderId } : {}),
        // Pursuit-mode commands go to the IoT data plane: this account's endpoint when set
        // (aws-config reads the standard variable), else the SDK's default for the region.
        ...(config.iotDataEndpoint ? { AWS_ENDPOINT_URL_IOT_DATA_PLANE: `https://${config.iotDataEndpoint}` } : {}),
      },
    });
    // Adds sqs:ReceiveMessage/DeleteMessage/ChangeMessageVisibility/GetQueue* on this queue and
    // kms:Decrypt on its key, nothing else.
    this.alert.addEventSource(new SqsEventSource(alerts, { batchSize: 10, reportBatchItemFailures: true }));
    const alertRole = alertProps.role;
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'ReadOrders', actions: ['dynamodb:GetItem'], resources: arns('orders') }));
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'VictimNotices', actions: ['dynamodb:GetItem', 'dynamodb:PutItem'], resources: arns('notices') }));
    alertRole.addToPolicy(new iam.PolicyStatement({
      sid: 'ClaimEvents',
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:GetItem', 'dynamodb:DeleteItem'],
      resources: arns('idempotency'),
    }));
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'AppendAudit', actions: ['dynamodb:Query', 'dynamodb:PutItem'], resources: arns('audit') }));
    // The order's current level, re-read before texting: never a message it contradicts.
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'ReadCurrentStates', actions: ['dynamodb:Query'], resources: arns('zone-state') }));
    // The keyed hash of each SMS destination, recorded in the audit (a redirected SMS shows).
    alertRole.addToPolicy(new iam.PolicyStatement({
      sid: 'HashSmsDestinations',
      actions: ['kms:GenerateMac'],
      resources: [...this.macKeys.values()].map((k) => k.keyArn),
    }));
    // Pursuit mode: at WARNING or BREACH the function tells his tag, and her device if she has
    // one, to report faster, and back after CLEAR: IoT data plane Publish, QoS 1, retained, so
    // a device that is offline gets the latest command when it connects. A retained publish
    // needs iot:RetainPublish as well as iot:Publish. Only the two command topics: in IAM, `*`
    // also spans `/`, but thing names have no `/`, each device's IoT policy lets it subscribe
    // to its own `<kind>/<thing>/cmd` only, and the rules take fix, event and position only.
    alertRole.addToPolicy(new iam.PolicyStatement({
      sid: 'CommandDevices',
      actions: ['iot:Publish', 'iot:RetainPublish'],
      resources: PURSUIT_COMMAND_TOPICS.map((t) => this.formatArn({ service: 'iot', resource: 'topic', resourceName: t })),
    }));
    // What was last commanded (attribute `cmd`), read back before sending the next one.
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'ReadCommandState', actions: ['dynamodb:GetItem'], resources: arns('tags', 'devices') }));
    // ...and written with UpdateItem, only `cmd` (and the key, which every item request
    // names), by DynamoDB's fine-grained access control as AWS documents it for UpdateItem:
    // the alert role cannot change a tag's orders, open or silent marks, nor which orders her
    // device serves. ALL_OLD and ALL_NEW would return whole items, so ReturnValues is limited
    // to the updated attributes (dynamodb:Select is a key of reads, which UpdateItem does not
    // have). One statement per table: their key attributes differ.
    for (const [logical, sid] of [['tags', 'WriteTagCommandState'], ['devices', 'WriteDeviceCommandState']] as const) {
      const key = resources.tables.find((t) => t.name === logical)!.partition_key.name;
      alertRole.addToPolicy(new iam.PolicyStatement({
        sid,
        actions: ['dynamodb:UpdateItem'],
        resources: arns(logical),
        conditions: {
          'ForAllValues:StringEquals': { 'dynamodb:Attributes': [key, COMMAND_ATTRIBUTE] },
          StringEqualsIfExists: { 'dynamodb:ReturnValues': ['NONE', 'UPDATED_OLD', 'UPDATED_NEW'] },
        },
      }));
    }
    // Escalation of an unacknowledged urgent alert (issue 10, docs/WATCHDOG.md "Escalation"):
    // with each urgent operator event it puts one `watch` part, `e#<event_id>`, which the
    // watchdog queues at its minute. PutItem only, of the key, `event` and the TTL
    // (dynamodb:Attributes, as for `cmd`), no old item returned: it never reads the schedule
    // nor writes a part's `tags` or the cursor's `done_through` (a put on their keys would
    // replace them: IAM cannot limit the sort key's values; the sweep re-arms lost tags).
    const watch = resources.tables.find((t) => t.name === 'watch')!;
    alertRole.addToPolicy(new iam.PolicyStatement({
      sid: 'ArmEscalations',
      actions: ['dynamodb:PutItem'],
      resources: arns('watch'),
      conditions: {
        'ForAllValues:StringEquals': { 'dynamodb:Attributes': [watch.partition_key.name, watch.sort_key!.name, ESCALATION_ATTRIBUTE, watch.ttl_attribute!] },
        StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
      },
    }));
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'NotifyOperators', actions: ['sns:Publish'], resources: [operators.topicArn] }));
    // Each force's topic: its own events, and urgent events in its area (docs/FORCES.md).
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'NotifyForces', actions: ['sns:Publish'], resources: [...this.forceTopics.values()].map((t) => t.topicArn) }));
    alertRole.addToPolicy(readForces());
    // Publish(PhoneNumber) has no resource ARN: IAM evaluates it against "*", so this is the one
    // statement in the stack that cannot name its resource. It grants sns:Publish only.
    alertRole.addToPolicy(new iam.PolicyStatement({ sid: 'SendVictimSms', actions: ['sns:Publish'], resources: ['*'] }));
    alertRole.addToPolicy(kmsUse('DataKey', this.key, ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], ['dynamodb', 'sns']));

    // The watchdog (issue 10): once a minute it reads the tags due (the `watch` table's parts
    // for the minutes since its cursor), judges silence and loss of GPS, queues the starts and
    // ends as alert events, marks them on the tag, and arms each tag again at its next check;
    // every 15 minutes a sweep arms tags nobody armed. It never reads orders (her contact),
    // victim-positions, notices or audit: the alert function texts her, from its own reads.
    const watchdogProps = fnProps('Watchdog');
    this.watchdog = new RustFunction(this, 'Watchdog', {
      ...watchdogProps,
      description: 'Every minute: the tags due, silence and no-GPS starts and ends as alert events, next checks',
      // Below the schedule's minute: a run ends before the next one starts.
      timeout: Duration.seconds(WATCHDOG_TIMEOUT_S),
      // One run at a time (the cursor's conditional write guards as well: a second run would
      // fail on it; its events have deterministic ids). Fixed, not a setting.
      reservedConcurrentExecutions: 1,
      // The forces: the force of each tag is a dimension of its metrics.
      environment: { VIGIL_STAGE: stage, VIGIL_ALERTS_QUEUE_URL: alerts.queueUrl },
      // EventBridge invokes asynchronously. No Lambda retries and a one-minute max event age
      // (the least Lambda accepts): the next run starts from the cursor a minute later and
      // does the failed run's work, so a retry would only overlap it, and a run throttled
      // behind the previous one is not kept queued. No on-failure destination: the event
      // carries only the time; a failure is in the logs and alarms (WatchdogErrors; runs that
      // stop, WatchdogStopped), and a record in rule-errors could not be redriven there.
      retryAttempts: 0,
      maxEventAge: Duration.minutes(1),
    });
    const schedule = new events.Rule(this, 'WatchdogSchedule', {
      ruleName: `vigil-${stage}-watchdog`,
      description: 'Runs the watchdog once a minute',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // Delivery retries (EventBridge's, for an Invoke call that failed) within the minute
      // only: a late run would pile up behind the next one. The target adds the invoke
      // permission for this rule alone.
      targets: [new targets.LambdaFunction(this.watchdog, { retryAttempts: 2, maxEventAge: Duration.minutes(1) })],
    });
    Validations.of(schedule).acknowledge({
      id: 'Serverless::Serverless-EventBusDLQ',
      reason: 'A scheduled event carries only the time: an undelivered one is a missed run, which the next run makes up from the cursor, and runs that stop alarm (WatchdogStopped, on the function\'s invocations).',
    });
    const watchdogRole = watchdogProps.role;
    // The deadline index: the cursor (GetItem, conditional PutItem), each minute's parts
    // (Query by `minute`), parts replaced (PutItem) or emptied (DeleteItem).
    watchdogRole.addToPolicy(new iam.PolicyStatement({
      sid: 'DeadlineIndex',
      actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:DeleteItem'],
      resources: arns('watch'),
    }));
    // The tags due with their histories (the items ingest reads too), one BatchGetItem per 50.
    watchdogRole.addToPolicy(new iam.PolicyStatement({ sid: 'ReadTagsDue', actions: ['dynamodb:BatchGetItem'], resources: arns('tags', 'last-seen') }));
    // The sweep, every 15 minutes: which tags have an order (the one read of the whole fleet).
    watchdogRole.addToPolicy(new iam.PolicyStatement({ sid: 'SweepTags', actions: ['dynamodb:Scan'], resources: arns('tags') }));
    // The order's zones, for the zone a silent tag was last near (its summary on the tag item
    // holds no geometry; `orders` is never read).
    watchdogRole.addToPolicy(new iam.PolicyStatement({ sid: 'ReadOrderZones', actions: ['dynamodb:Query'], resources: arns('zones') }));
    // Its marks on the tag, `watch#<order_id>#<condition>`, set and removed once (conditional
    // on the item, and on the mark): UpdateItem of those attributes alone (and the key, which
    // every item request names), by dynamodb:Attributes with StringLike, which IAM applies to
    // multivalued keys with ForAllValues (each name must match one pattern). It cannot change
    // a tag's orders, open zones, silent marks or command. ReturnValues as the alert role's
    // `cmd` write: no whole-item return values.
    watchdogRole.addToPolicy(new iam.PolicyStatement({
      sid: 'MarkWatchConditions',
      actions: ['dynamodb:UpdateItem'],
      resources: arns('tags'),
      conditions: {
        'ForAllValues:StringLike': { 'dynamodb:Attributes': [resources.tables.find((t) => t.name === 'tags')!.partition_key.name, WATCH_MARK_PATTERN] },
        StringEqualsIfExists: { 'dynamodb:ReturnValues': ['NONE', 'UPDATED_OLD', 'UPDATED_NEW'] },
      },
    }));
    watchdogRole.addToPolicy(new iam.PolicyStatement({ sid: 'QueueAlertEvents', actions: ['sqs:SendMessage'], resources: [alerts.queueArn] }));
    watchdogRole.addToPolicy(kmsUse('DataKey', this.key, ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], ['dynamodb', 'sqs']));

    // Only ingest and the watchdog write alert events (16.7), and the redrive role moves them
    // back. A Deny in the queue's own policy holds whatever an identity policy grants (an
    // administrator's sqs:* included): a forged breach, all-clear or silence cannot be queued
    // by anyone else.
    alerts.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'OnlyIngestAndWatchdogQueueAlertEvents',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['sqs:SendMessage'],
      resources: [alerts.queueArn],
      conditions: { ArnNotEquals: { 'aws:PrincipalArn': [ingestRole.roleArn, watchdogRole.roleArn, redrive.roleArn] } },
    }));

    // ---- Evidence (docs/EVIDENCE.md): the anchors bucket and the anchor function ----
    // Object Lock in compliance mode: until an object's retention ends nobody (operators, the
    // functions, the account's root) can delete it or shorten its lock. The default retention
    // is the longest any force keeps its audit; the anchor function sets each object's to its
    // order's force's.
    const bucketDef = resources.buckets.find((b) => b.name === 'anchors');
    if (!bucketDef || bucketDef.object_lock !== 'COMPLIANCE') throw new Error('infra/resources.json must declare the bucket "anchors" with object_lock COMPLIANCE (docs/EVIDENCE.md)');
    const lockYears = Math.max(...forces.forces.map((f) => f.audit_retention_years), DEFAULT_RETENTION_YEARS);
    this.anchorsBucket = new s3.Bucket(this, 'AnchorsBucket', {
      bucketName: `${name(bucketDef.name)}-${this.account}-${this.region}`,
      objectLockEnabled: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(Math.ceil(365.25 * lockYears))),
      versioned: true,
      // Anchors hold an order id, a position and a hash: no personal data, so S3's own keys;
      // the anchor function then needs no key grant, and a court's auditor reads with S3 alone.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const anchorObjects = this.anchorsBucket.arnForObjects('anchors/*');
    const anchorProps = fnProps('Anchor');
    this.anchor = new RustFunction(this, 'Anchor', {
      ...anchorProps,
      description: 'Anchors the heads of changed audit chains in the Object Lock bucket',
      timeout: Duration.seconds(30),
      environment: {
        VIGIL_STAGE: stage,
        [bucketDef.env]: this.anchorsBucket.bucketName,
        VIGIL_FORCES_PARAMETER: this.forcesParameter.parameterName,
      },
    });
    // The audit stream, each shard in order; retried without limit (the default): evidence is
    // never skipped. A batch item failure retries from that record. Anchoring that falls
    // behind alarms (AnchorIteratorAge): the window a rewrite could hide in.
    this.anchor.addEventSource(new DynamoEventSource(table('audit'), {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: ANCHOR_BATCH_SIZE,
      maxBatchingWindow: Duration.seconds(ANCHOR_WINDOW_S),
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      parallelizationFactor: 1,
    }));
    const anchorRole = anchorProps.role;
    // Write-only, anchors/ only: no read, no list, no delete (the bucket policy also refuses
    // every other principal's puts).
    anchorRole.addToPolicy(new iam.PolicyStatement({ sid: 'WriteAnchors', actions: ['s3:PutObject', 's3:PutObjectRetention'], resources: [anchorObjects] }));
    // Each anchor's retention is its order's force's: the force only (a projection), never the victim.
    anchorRole.addToPolicy(new iam.PolicyStatement({ sid: 'ReadOrdersForces', actions: ['dynamodb:BatchGetItem'], resources: arns('orders') }));
    anchorRole.addToPolicy(readForces());
    // The audit table's stream and the orders table are under the data key.
    anchorRole.addToPolicy(kmsUse('DataKey', this.key, ['kms:Decrypt'], ['dynamodb']));
    this.anchorsBucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'OnlyTheAnchorFunctionWrites',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['s3:PutObject', 's3:PutObjectRetention', 's3:PutObjectLegalHold'],
      resources: [this.anchorsBucket.arnForObjects('*')],
      conditions: { ArnNotEquals: { 'aws:PrincipalArn': anchorRole.roleArn } },
    }));
    // Compliance mode already forbids deleting a locked version; said again, for everyone.
    this.anchorsBucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'NoAnchorIsDeleted',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
      resources: [this.anchorsBucket.arnForObjects('*')],
    }));
    const immutable = 'Anchors are written once by one role and never change (Object Lock, compliance mode); CloudTrail records the bucket\'s management calls and the anchor function logs every write; access logs would add a second bucket of records about records.';
    Validations.of(this.anchorsBucket).acknowledge({ id: 'AwsSolutions::AwsSolutions-S1', reason: immutable });
    waive(this.anchorsBucket, [
      { id: 'CKV_AWS_18', why: immutable },
      { id: 'CKV_AWS_145', why: 'Anchors hold no personal data (an order id, a position, a hash); S3-managed encryption lets auditors read them with S3 permissions alone.' },
    ]);
    const anchorNever = 'Invoked only by its DynamoDB stream mapping, which retries without limit: evidence is never skipped, and anchoring that falls behind alarms (AnchorIteratorAge).';
    Validations.of(this.anchor).acknowledge(
      { id: 'Serverless::Serverless-LambdaDLQ', reason: anchorNever },
      { id: 'Serverless::Serverless-LambdaEventSourceMappingDestination', reason: anchorNever },
      { id: 'Serverless::Serverless-LambdaTracing', reason: 'No X-Ray: EMF metrics and structured logs carry what operators and engineers need.' },
    );
    Validations.of(anchorRole).acknowledge(
      {
        id: 'AwsSolutions::AwsSolutions-IAM5[Resource::<AnchorsBucket9A78CFB3.Arn>/anchors/*]',
        reason: 'Anchors are objects under anchors/<order>/, one per fact: the prefix is the narrowest resource; put only.',
      },
      {
        id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
        reason: 'dynamodb:ListStreams (added by the stream event source) has no resource ARN; it lists stream ARNs, no data. The stream reads themselves are on the audit table\'s stream only.',
      },
    );

    // ---- Checkov findings accepted on the functions, each with its reason ----
    const lambdaWaivers = (invokedBy: string): Waiver[] => [
      { id: 'CKV_AWS_117', why: 'No VPC: the functions call only AWS APIs over TLS with IAM; a VPC would add NAT or endpoint cost and no protection.' },
      { id: 'CKV_AWS_173', why: 'Environment holds only the stage, a queue URL, a topic ARN, a key ARN, the forces parameter\'s name, the SMS country list, a sender ID and the IoT data endpoint, all public in this template; no secrets.' },
      { id: 'CKV_AWS_116', why: invokedBy },
    ];
    // cfn-lint W3005: CDK's Function adds DependsOn on its role (so the role's policy exists
    // before the first invocation) although Role is also a GetAtt; redundant and harmless.
    const dependsOnRole: Waiver[] = [{ id: 'W3005', why: 'CDK adds DependsOn on the role it also references with GetAtt; redundant, harmless.' }];
    waive(this.ingest, lambdaWaivers('Async failures go to an on-failure destination (EventInvokeConfig -> rule-errors queue), which keeps the error; checkov only looks for DeadLetterConfig.'), dependsOnRole);
    // cdk-nag acknowledgements for the functions (infra/test/nag.test.ts), each with its reason.
    const noTracing = { id: 'Serverless::Serverless-LambdaTracing', reason: 'No X-Ray: per-trace cost on every fix; EMF metrics, structured logs and the audit chain carry what operators and engineers need.' };
    Validations.of(this.ingest).acknowledge(
      { id: 'Serverless::Serverless-LambdaDLQ', reason: 'Async failures go to an on-failure destination (the rule-errors queue, alarmed), which keeps the whole event.' },
      noTracing,
    );
    Validations.of(this.alert).acknowledge(
      { id: 'Serverless::Serverless-LambdaDLQ', reason: 'Invoked only by its SQS event source: failed messages go to the alerts queue redrive (alerts-dlq, alarmed).' },
      { id: 'Serverless::Serverless-LambdaEventSourceMappingDestination', reason: 'SQS source: failures stay in the queue and move to alerts-dlq by its redrive policy, in order per order.' },
      noTracing,
    );
    Validations.of(alertRole).acknowledge({
      id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      reason: 'sns:Publish to a phone number (victim SMS) has no resource ARN; the statement allows sns:Publish only, and the function texts only the configured countries.',
    });
    // The command topics' `*` is the thing name: one topic per device, each device reading only
    // its own (its IoT policy); see CommandDevices above.
    const nagAccount = Token.isUnresolved(this.account) ? '<AWS::AccountId>' : this.account;
    Validations.of(alertRole).acknowledge(...PURSUIT_COMMAND_TOPICS.map((t) => ({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:${this.region}:${nagAccount}:topic/${t}]`,
      reason: 'Pursuit-mode commands: iot:Publish and iot:RetainPublish on the per-device command topics only; the wildcard is the device id (IoT thing name), and each device may subscribe to its own command topic only.',
    })));
    waive(this.alert, lambdaWaivers('Invoked only by the SQS event source: failed messages go to the alerts queue redrive (alerts-dlq), not to a function DLQ.'), dependsOnRole);
    waive(this.anchor, [
      ...lambdaWaivers('Invoked only by its DynamoDB stream mapping, which retries without limit (evidence is never skipped); anchoring that falls behind alarms.'),
      { id: 'CKV_AWS_115', why: 'Its concurrency is the audit stream\'s shard count (parallelization factor 1), bounded by DynamoDB; a reservation could only throttle anchoring and widen the window a rewrite could hide in.' },
    ], dependsOnRole);
    const watchdogNoDlq = 'Run by a schedule whose event carries only the time: the next run, a minute later, resumes from the cursor and does the failed run\'s work; failures alarm (errors, and invocations that stop).';
    waive(this.watchdog, lambdaWaivers(watchdogNoDlq), dependsOnRole);
    Validations.of(this.watchdog).acknowledge(
      { id: 'Serverless::Serverless-LambdaDLQ', reason: watchdogNoDlq },
      { id: 'Serverless::Serverless-LambdaAsyncFailureDestination', reason: watchdogNoDlq },
      noTracing,
    );
    // The SMS statement's "*" (see SendVictimSms above) is the only wildcard resource.
    waive(alertRole.node.findChild('DefaultPolicy'), [
      { id: 'CKV_AWS_111', why: 'sns:Publish to a phone number (victim SMS) has no resource ARN; the statement allows sns:Publish only.' },
    ]);

    // ---- The console (docs/CONSOLE.md): the operator API behind Cognito, the web app ----
    const consoleProps = fnProps('Console');
    this.consoleApi = new RustFunction(this, 'Console', {
      ...consoleProps,
      description: 'The operator API of the monitoring centre\'s console, behind the HTTP API\'s Cognito JWT authorizer',
      timeout: Duration.seconds(15),
      // Operators, not devices: a handful at once; the cap keeps a runaway client from taking
      // the account's concurrency from ingest and alert.
      reservedConcurrentExecutions: CONSOLE_RESERVED_CONCURRENCY,
      environment: {
        VIGIL_STAGE: stage,
        VIGIL_FORCES_PARAMETER: this.forcesParameter.parameterName,
        ...Object.fromEntries([...this.macKeys].map(([logical, k]) => [resources.keys.find((d) => d.name === logical)!.env, k.keyArn])),
      },
    });
    const consoleRole = consoleProps.role;
    // What vigil-admin calls for the console's routes (the CLI's, less the IoT registry,
    // quarantine, evidence and dead letters), and the watchdog's reading of a tag for its health.
    for (const statement of [
      new iam.PolicyStatement({ sid: 'Orders', actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan'], resources: arns('orders') }),
      new iam.PolicyStatement({ sid: 'Zones', actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Query', 'dynamodb:Scan'], resources: arns('zones') }),
      new iam.PolicyStatement({ sid: 'ZoneIndex', actions: ['dynamodb:UpdateItem'], resources: arns('zone-cells') }),
      new iam.PolicyStatement({ sid: 'TagsOfOrders', actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Scan', 'dynamodb:BatchGetItem'], resources: arns('tags') }),
      new iam.PolicyStatement({ sid: 'TagHistories', actions: ['dynamodb:BatchGetItem'], resources: arns('last-seen') }),
      new iam.PolicyStatement({ sid: 'DevicesOfOrders', actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'], resources: arns('devices') }),
      new iam.PolicyStatement({
        sid: 'ArmNewTags',
        actions: ['dynamodb:PutItem'],
        resources: arns('watch'),
        conditions: {
          'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['minute', 'part', 'tags', 'expires_at'] },
          StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
        },
      }),
      new iam.PolicyStatement({ sid: 'ReadZoneStates', actions: ['dynamodb:Query'], resources: arns('zone-state') }),
      new iam.PolicyStatement({ sid: 'AuditChains', actions: ['dynamodb:Query', 'dynamodb:PutItem'], resources: arns('audit') }),
      kmsUse('DataKey', this.key, ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], ['dynamodb']),
      new iam.PolicyStatement({ sid: 'HashSmsDestinations', actions: ['kms:GenerateMac'], resources: [...this.macKeys.values()].map((k) => k.keyArn) }),
      readForces(),
    ]) {
      consoleRole.addToPolicy(statement);
    }
    this.console = new ConsoleSite(this, 'ConsoleSite', {
      stage,
      forces,
      api: this.consoleApi,
      webDist: CONSOLE_WEB_DIST,
      tileUrl: config.consoleTileUrl,
      logRetention: config.logRetentionDays,
      logKey: this.key,
    });
    // CDK's BucketDeployment handler: copies the built app and config.json into the site bucket
    // and invalidates the distribution, during deployments only.
    const deployer = this.node.tryFindChild(`Custom::CDKBucketDeployment${BUCKET_DEPLOYMENT_ID}`);
    if (deployer) {
      const why = 'CDK\'s BucketDeployment handler: runs only during deployments, to copy the console\'s built web app from the CDK asset bucket into the site bucket and invalidate the distribution.';
      const grants = 'CDK\'s grants to the BucketDeployment handler, on the CDK asset bucket (read) and the console\'s site bucket (read, write, delete) only.';
      Validations.of(deployer).acknowledge(
        { id: 'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]', reason: `${why} The managed policy only lets it write its own logs.` },
        ...['s3:GetObject*', 's3:GetBucket*', 's3:List*', 's3:DeleteObject*', 's3:Abort*'].map((a) => ({ id: `AwsSolutions::AwsSolutions-IAM5[Action::${a}]`, reason: grants })),
        { id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-${this.region}/*]`, reason: grants },
        { id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${this.getLogicalId(this.console.bucket.node.defaultChild as s3.CfnBucket)}.Arn>/*]`, reason: grants },
        { id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]', reason: 'cloudfront:CreateInvalidation and GetInvalidation, granted by CDK on "*"; the handler invalidates only the console\'s distribution.' },
        { id: 'AwsSolutions::AwsSolutions-L1', reason: `${why} Its runtime is the one CDK ships with the construct.` },
        { id: 'Serverless::Serverless-LambdaDLQ', reason: `${why} CloudFormation invokes it and sees every failure.` },
        { id: 'Serverless::Serverless-LambdaTracing', reason: why },
        { id: 'Serverless::Serverless-LambdaLatestVersion', reason: `${why} Its runtime is the one CDK ships with the construct.` },
      );
      waive(deployer, [
        { id: 'CKV_AWS_116', why: `${why} CloudFormation invokes it synchronously and sees every failure.` },
        { id: 'CKV_AWS_117', why: `${why} It calls S3 and CloudFront only; no VPC.` },
        { id: 'CKV_AWS_115', why: `${why} Runs only during deployments; no concurrency to reserve.` },
        { id: 'CKV_AWS_173', why: `${why} No environment variables with secrets.` },
      ], [{ id: 'W3005', why: 'CDK adds DependsOn on the role it also references with GetAtt; redundant, harmless.' }]);
    }
    waive(this.console.bucket, [{ id: 'CKV_AWS_18', why: 'The bucket holds only the built web app, replaced by each deployment; CloudTrail records its writes.' }]);
    waive(this.console.distribution, [
      { id: 'CKV_AWS_68', why: 'No WAF: every API route needs a verified Cognito token (MFA) and is throttled at the stage; a WAF web ACL is the deploying force\'s choice (docs/CONSOLE.md).' },
      { id: 'CKV_AWS_86', why: 'The API\'s own access log (without IP addresses) and the audit chain record what matters; CloudFront access logs would hold every operator\'s IP address a second time.' },
      { id: 'CKV_AWS_174', why: 'The default CloudFront certificate (no custom domain): viewers get TLS 1.2 or later from CloudFront\'s default policy; a custom domain with TLSv1.2_2021 is the deploying force\'s choice (docs/CONSOLE.md).' },
    ]);
    const deployerPolicy = deployer?.node.tryFindChild('ServiceRole')?.node.tryFindChild('DefaultPolicy');
    if (deployerPolicy) {
      waive(deployerPolicy, [{ id: 'CKV_AWS_111', why: 'CDK\'s BucketDeployment grants: writes to the console\'s site bucket only; the "*" is cloudfront:CreateInvalidation, which it uses on the console\'s distribution only.' }]);
    }
    waive(this.consoleApi, lambdaWaivers('Invoked synchronously by API Gateway: a failure is the operator\'s HTTP error; nothing is queued.'), dependsOnRole);
    const consoleNever = 'Invoked synchronously by API Gateway: a failure is the operator\'s HTTP error, retried by them; nothing is queued.';
    Validations.of(this.consoleApi).acknowledge(
      { id: 'Serverless::Serverless-LambdaDLQ', reason: consoleNever },
      { id: 'Serverless::Serverless-LambdaTracing', reason: 'No X-Ray: structured logs (one line per request, by route template) and the audit chain carry what operators and engineers need.' },
    );

    // ---- The operators' roles: one per force and the national one (lib/operators.ts) ----
    this.operatorRoles = new OperatorRoles(this, 'Operators', {
      stage,
      forces,
      forceTopics: this.forceTopics,
      operatorsTopic: operators,
      tables: this.tables,
      key: this.key,
      macKeys: [...this.macKeys.values()],
      forcesParameterArn,
      anchorsBucketArn: this.anchorsBucket.bucketArn,
      evidenceKey: this.evidenceKey,
      alertsDlq: alertsDlqQueue,
      ruleErrors: this.ruleErrors,
      ingest: this.ingest,
      kmsUse,
    });

    // ---- IoT: the rules read their SQL from infra/rules, verbatim ----
    const errorsRole = new iam.Role(this, 'RuleErrorsRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': this.account } } }),
      description: `Vigil ${stage} IoT rules: error action to the rule-errors queue`,
    });
    errorsRole.addToPolicy(new iam.PolicyStatement({ sid: 'SendRuleErrors', actions: ['sqs:SendMessage'], resources: [this.ruleErrors.queueArn] }));
    errorsRole.addToPolicy(kmsUse('DataKey', this.key, ['kms:GenerateDataKey', 'kms:Decrypt'], ['sqs']));
    const errorAction: iot.CfnTopicRule.ActionProperty = {
      sqs: { queueUrl: this.ruleErrors.queueUrl, roleArn: errorsRole.roleArn, useBase64: false },
    };

    // Every rule hands its messages to the ingest function (raw payload, base64: ingest
    // validates everything itself), with the one error action and a permission for that rule
    // alone. Returns the rule's name.
    const toIngest = (id: string, name: string, description: string): string => {
      const physical = ruleName(stage, name);
      const rule = new iot.CfnTopicRule(this, `${id}Rule`, {
        ruleName: physical,
        topicRulePayload: {
          description,
          sql: ruleSql(`${name}.sql`),
          awsIotSqlVersion: '2016-03-23',
          ruleDisabled: false,
          actions: [{ lambda: { functionArn: this.ingest.functionArn } }],
          errorAction,
        },
      });
      this.ingest.addPermission(`InvokedBy${id}Rule`, {
        principal: new iam.ServicePrincipal('iot.amazonaws.com'),
        sourceArn: rule.attrArn,
        sourceAccount: this.account,
      });
      return physical;
    };
    const ingestRuleName = toIngest('Ingest', 'ingest', 'Every tag message (fix, event) to the ingest function, raw payload base64');
    // Her device's positions go to the same function: the moving zone around her is judged
    // there against his latest fix (docs/PROXIMITY.md).
    const victimRuleName = toIngest('Victim', 'victim', 'Every victim device position to the ingest function, raw payload base64');

    // Each IoT policy comes from the document resources.json names (the CLI attaches it to
    // each tag's or victim device's certificate); only the placeholders are filled in here.
    for (const def of resources.iot_policies) {
      const text = readFileSync(path.join(INFRA_DIR, def.document), 'utf8')
        .replaceAll('{{region}}', this.region)
        .replaceAll('{{account}}', this.account)
        .replaceAll('{{stage}}', stage);
      const left = text.match(/\{\{[^}]*\}\}/);
      if (left) throw new Error(`${def.document}: unknown placeholder ${left[0]} (known: {{region}}, {{account}}, {{stage}})`);
      new iot.CfnPolicy(this, `IotPolicy-${def.name}`, { policyName: name(def.name), policyDocument: JSON.parse(text) });
    }

    // ---- Evidence that outlives an insider: backups, CloudTrail, key alarms (protection.ts) ----
    new Protection(this, 'Protection', { stage, key: this.key, tables: this.tables, operators, waive });

    // ---- Alarms: every one goes to the operators' topic ----
    const toOperators = new SnsAction(operators);
    // At or above the threshold, no data being no trouble, unless an alarm says otherwise
    // (a metric whose absence is the trouble: runs that stop).
    const alarm = (id: string, description: string, metric: cloudwatch.IMetric, threshold = 1, below = false) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmName: `vigil-${stage}-${id.replace(/[A-Z]/g, (c, i) => (i ? '-' : '') + c.toLowerCase())}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: below ? cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD : cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: below ? cloudwatch.TreatMissingData.BREACHING : cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(toOperators);
      a.addOkAction(toOperators);
      return a;
    };
    const fiveMin = Duration.minutes(5);
    const alertsDlq = this.must(this.queues, 'alerts-dlq', 'queue');
    alarm('AlertsDlqDepth', 'Alert events failed 5 times and are parked in alerts-dlq: victims may not have been told. Inspect and redrive.',
      alertsDlq.metricApproximateNumberOfMessagesVisible({ period: fiveMin, statistic: 'Maximum' }));
    alarm('RuleErrorsDepth', 'Tag or victim-device messages the IoT rules or the ingest function could not process are parked in rule-errors.',
      this.ruleErrors.metricApproximateNumberOfMessagesVisible({ period: fiveMin, statistic: 'Maximum' }));
    alarm('IngestErrors', 'The ingest function failed (it retries; failures end in rule-errors).', this.ingest.metricErrors({ period: fiveMin, statistic: 'Sum' }));
    alarm('AlertErrors', 'The alert function failed (messages retry, then go to alerts-dlq).', this.alert.metricErrors({ period: fiveMin, statistic: 'Sum' }));
    // The watchdog: a run that fails, runs that stop (the schedule disabled or deleted, its
    // deliveries failing: no data is the alarm), runs close to the timeout (the next
    // minute's run would be throttled behind one), and throttled runs (two at once).
    alarm('WatchdogErrors', 'A watchdog run failed: silent tags may not be reported until a run succeeds (each run resumes from the last minute done).',
      this.watchdog.metricErrors({ period: fiveMin, statistic: 'Sum' }));
    alarm('WatchdogStopped', `The watchdog ran fewer than 4 times in 5 minutes (it runs every minute): silent tags are not being reported. Check the schedule (EventBridge rule vigil-${stage}-watchdog) and the function.`,
      this.watchdog.metricInvocations({ period: fiveMin, statistic: 'Sum' }), 4, true);
    alarm('WatchdogNearTimeout', `A watchdog run took more than 80% of its ${WATCHDOG_TIMEOUT_S} s timeout: runs may soon fail or overlap the next minute's.`,
      this.watchdog.metricDuration({ period: fiveMin, statistic: 'Maximum' }), WATCHDOG_TIMEOUT_S * 1000 * 0.8);
    alarm('WatchdogThrottles', 'A watchdog run was throttled (it runs one at a time): a run lasted into the next minute.',
      this.watchdog.metricThrottles({ period: fiveMin, statistic: 'Sum' }));
    // Evidence: anchoring behind by more than 5 minutes (the most a rewrite may hide in;
    // docs/EVIDENCE.md), failing, or an audit record overwritten or deleted in the table,
    // which Vigil never does.
    alarm('AnchorIteratorAge', 'The oldest audit change not yet anchored is more than 5 minutes old: a rewrite of the audit could hide in that window. Check the anchor function and its stream mapping.',
      this.anchor.metric('IteratorAge', { period: Duration.minutes(1), statistic: 'Maximum' }), 300_000);
    alarm('AnchorErrors', 'The anchor function failed (its stream batch is retried without limit; anchoring is behind until it succeeds).', this.anchor.metricErrors({ period: fiveMin, statistic: 'Sum' }));
    alarm('AuditRecordRewritten', 'An audit record was overwritten or deleted in the audit table, which Vigil never does: its content before is anchored (docs/EVIDENCE.md). Investigate who (CloudTrail data events on the audit table).', new cloudwatch.MathExpression({
      expression: 'FILL(modified, 0) + FILL(removed, 0)',
      usingMetrics: Object.fromEntries(['modified', 'removed'].map((o) => [o, new cloudwatch.Metric({
        namespace: 'Vigil',
        metricName: 'AuditRecordRewritten',
        dimensionsMap: { Observed: o },
        period: fiveMin,
        statistic: 'Sum',
      })])),
      period: fiveMin,
    }));
    // SMS published straight to phone numbers report under PhoneNumber=PhoneNumberDirect.
    alarm('SmsFailures', 'A victim SMS could not be delivered: call the victim.', new cloudwatch.Metric({
      namespace: 'AWS/SNS',
      metricName: 'NumberOfNotificationsFailed',
      dimensionsMap: { PhoneNumber: 'PhoneNumberDirect' },
      period: fiveMin,
      statistic: 'Sum',
    }));
    alarm('SmsSpend', `SMS spend this month passed 80% of the ${config.smsMonthlySpendLimitUsd} USD limit; at the limit SNS stops sending.`, new cloudwatch.Metric({
      namespace: 'AWS/SNS',
      metricName: 'SMSMonthToDateSpentUSD',
      period: fiveMin,
      statistic: 'Maximum',
    }), Math.round(config.smsMonthlySpendLimitUsd * 0.8));

    // A template synthesized without the Rust build must never reach CloudFormation: this rule
    // fails every stack operation (no account id equals that string).
    if (config.skipBundling) {
      new CfnRule(this, 'NotDeployable', {
        assertions: [{
          assert: Fn.conditionEquals(Aws.ACCOUNT_ID, 'synthesized-with-skipBundling'),
          assertDescription: 'Synthesized with skipBundling=true (function code is not built): deploy without it.',
        }],
      });
    }

    // The account's SMS settings (spend limit, type, sender ID): applied by the stack, or, when
    // another stage of the account owns them, printed as the command to check them against.
    if (config.manageSmsSettings) {
      new SmsSettings(this, 'SmsSettings', { stage, monthlySpendLimitUsd: config.smsMonthlySpendLimitUsd, senderId: config.smsSenderId, waive });
    } else {
      const attributes = Object.entries(smsAttributes(config.smsMonthlySpendLimitUsd, config.smsSenderId)).map(([k, v]) => `${k}=${v}`).join(',');
      new CfnOutput(this, 'SmsSettingsCommand', {
        description: 'Account-wide SMS settings this stage expects (manageSmsSettings=false: another stage applies them; docs/DEPLOY.md)',
        value: `aws sns set-sms-attributes --region ${this.region} --attributes ${attributes}`,
      });
    }
    new CfnOutput(this, 'OperatorsTopicArn', { value: operators.topicArn });
    new CfnOutput(this, 'AnchorsBucketName', { description: 'VIGIL_ANCHOR_BUCKET for `vigil evidence export` (docs/EVIDENCE.md)', value: this.anchorsBucket.bucketName });
    new CfnOutput(this, 'EvidenceKeyArn', { description: 'VIGIL_EVIDENCE_KEY for `vigil evidence export` and `public-key` (docs/EVIDENCE.md)', value: this.evidenceKey.keyArn });
    new CfnOutput(this, 'ForcesParameterName', { description: 'The forces this deployment serves, with each force\'s operators\' topic (docs/FORCES.md)', value: this.forcesParameter.parameterName });
    new CfnOutput(this, 'NationalRoleArn', { description: 'Assume (with MFA) as a national administrator; a force\'s operators assume vigil-<stage>-operator-<force> (docs/DEPLOY.md, Forces)', value: this.operatorRoles.national.roleArn });
    new CfnOutput(this, 'AlertsQueueUrl', { value: alerts.queueUrl });
    new CfnOutput(this, 'AlertRedriveRoleArn', { description: 'Assume to move alert events from alerts-dlq back to the alerts queue (docs/DEPLOY.md)', value: redrive.roleArn });
    new CfnOutput(this, 'IngestRuleName', { value: ingestRuleName });
    new CfnOutput(this, 'BasicIngestTopicPrefix', { value: `$aws/rules/${ingestRuleName}/tags/` });
    new CfnOutput(this, 'VictimRuleName', { value: victimRuleName });
    new CfnOutput(this, 'VictimBasicIngestTopicPrefix', { description: 'Where victims\' devices publish their positions with Basic Ingest', value: `$aws/rules/${victimRuleName}/victims/` });
  }

  private must<T>(map: Map<string, T>, logical: string, kind: string): T {
    const v = map.get(logical);
    if (!v) throw new Error(`infra/resources.json declares no ${kind} ${JSON.stringify(logical)}, which the stack needs`);
    return v;
  }
}
