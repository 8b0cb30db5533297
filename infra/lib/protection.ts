// What makes the record survive an insider or an accident (issue 16, items 6 and 10):
// backups of every table into a locked vault, a CloudTrail trail with data events on the
// tables that hold orders, zones, tags and victims' devices (who wrote what, whatever tool
// they used), and an alarm to the operators when a KMS key is disabled or scheduled for
// deletion. One table is kept out of all of it, on purpose: victims' positions (below); the
// watchdog's deadline index, derived and rebuilt by the watchdog itself, has no backups either.

import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** Days a backup is kept; the vault lock refuses anything shorter, and deletion before. */
export const BACKUP_RETENTION_DAYS = 35;
/** The tables whose every write CloudTrail records with its principal: operators' changes
 * (and ingest's open-zone marks on tags). */
export const AUDITED_TABLES = ['orders', 'zones', 'tags', 'devices'] as const;
/** Victims' latest positions, one item per device, expiring after minutes (TTL). Her past
 * positions must not outlive that TTL in a copy kept longer: this table has no point-in-time
 * recovery (a continuous history restorable to any second of 35 days), is in no backup (the
 * vault lock keeps each recovery point 35 days, and nobody can delete one earlier), and has
 * no CloudTrail data events (which would log her device's id with each write, for as long as
 * the trail bucket keeps them). Nothing is lost for safety: a position older than the age
 * limit (5 minutes by default) is never compared, so a restored one would be worthless. */
export const VICTIM_POSITIONS = 'victim-positions';
/** The watchdog's deadline index (`watch`): per minute, the tags due then, and the watchdog's
 * cursor; each part expires a day after its minute (TTL). It is derived, not a record: the
 * watchdog's sweep arms every tag with an order, read from `tags`, on its first run, after a
 * gap and every 15 minutes, so a lost or emptied table costs one sweep, and a restored one
 * would bring back a past schedule and cursor for the next runs to undo. So: no point-in-time
 * recovery and no backup (a 35-day locked copy of a one-day index is cost without use), and
 * no CloudTrail data events (several writes a minute, none of them a person's: cost and
 * noise; the watchdog's marks on `tags` are recorded, since `tags` is audited). Like every
 * table it is encrypted with the data key, deletion-protected and retained. */
export const DERIVED_TABLES = ['watch'] as const;
/** The tables kept out of point-in-time recovery and backups: her positions (privacy) and the
 * derived ones (rebuildable). */
export const NOT_BACKED_UP: readonly string[] = [VICTIM_POSITIONS, ...DERIVED_TABLES];

export interface ProtectionProps {
  readonly stage: string;
  readonly key: kms.Key;
  readonly tables: ReadonlyMap<string, dynamodb.Table>;
  readonly operators: sns.Topic;
  /** Waives a checkov finding on a construct, with the reason (see vigil-stack.ts). */
  readonly waive: (c: Construct, checkov: { id: string; why: string }[]) => void;
}

export class Protection extends Construct {
  readonly vault: backup.BackupVault;
  readonly trail: cloudtrail.Trail;

  constructor(scope: Construct, id: string, props: ProtectionProps) {
    super(scope, id);
    const { stage, key, tables, operators, waive } = props;
    const stack = Stack.of(this);

    // ---- Backups: daily, into a vault whose lock nobody (root included) can lift early ----
    this.vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: `vigil-${stage}-evidence`,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      lockConfiguration: { minRetention: Duration.days(BACKUP_RETENTION_DAYS) },
    });
    const plan = new backup.BackupPlan(this, 'Plan', { backupPlanName: `vigil-${stage}-tables`, backupVault: this.vault });
    plan.addRule(new backup.BackupPlanRule({
      ruleName: 'daily',
      scheduleExpression: events.Schedule.cron({ hour: '3', minute: '0' }),
      deleteAfter: Duration.days(BACKUP_RETENTION_DAYS),
    }));
    const selection = plan.addSelection('Tables', {
      resources: [...tables].filter(([name]) => !NOT_BACKED_UP.includes(name)).map(([, t]) => backup.BackupResource.fromDynamoDbTable(t)),
    });
    Validations.of(selection).acknowledge({
      id: 'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]',
      reason: 'The role AWS Backup documents for backing up DynamoDB; assumed by backup.amazonaws.com only.',
    });

    // ---- CloudTrail: management writes, and every data write to the audited tables ----
    const bucket = new s3.Bucket(this, 'TrailBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(bucket).acknowledge({ id: 'AwsSolutions::AwsSolutions-S1', reason: 'The trail bucket is itself the access record; logging it to another bucket adds a bucket and no evidence.' });
    waive(bucket, [
      { id: 'CKV_AWS_18', why: 'The trail bucket is itself the access record; logging it to another bucket adds a bucket and no evidence.' },
    ]);
    this.trail = new cloudtrail.Trail(this, 'Trail', {
      trailName: `vigil-${stage}`,
      bucket,
      enableFileValidation: true,
      includeGlobalServiceEvents: false,
      isMultiRegionTrail: false,
      managementEvents: cloudtrail.ReadWriteType.WRITE_ONLY,
    });
    // DynamoDB data events need advanced event selectors (the L2 knows S3 and Lambda only).
    const cfnTrail = this.trail.node.defaultChild as cloudtrail.CfnTrail;
    cfnTrail.eventSelectors = undefined;
    cfnTrail.advancedEventSelectors = [
      {
        name: 'Management writes (key changes, table settings, IAM)',
        fieldSelectors: [
          { field: 'eventCategory', equalTo: ['Management'] },
          { field: 'readOnly', equalTo: ['false'] },
        ],
      },
      {
        name: `Every write to ${AUDITED_TABLES.join(', ')}`,
        fieldSelectors: [
          { field: 'eventCategory', equalTo: ['Data'] },
          { field: 'resources.type', equalTo: ['AWS::DynamoDB::Table'] },
          { field: 'readOnly', equalTo: ['false'] },
          { field: 'resources.ARN', equalTo: AUDITED_TABLES.map((t) => tables.get(t)!.tableArn) },
        ],
      },
    ];
    waive(this.trail, [
      { id: 'CKV_AWS_35', why: 'Trail files are encrypted at rest with SSE-S3 in a private TLS-only bucket; they hold API metadata, not victim data.' },
      { id: 'CKV_AWS_67', why: 'Vigil runs in one region; a multi-region trail would record other workloads of the account.' },
    ]);

    // ---- A key disabled or scheduled for deletion makes every table unreadable: page ----
    const keyChange = new events.Rule(this, 'KeyDisabledOrScheduledForDeletion', {
      ruleName: `vigil-${stage}-key-disabled`,
      description: 'A KMS key of this account was disabled or scheduled for deletion',
      eventPattern: {
        source: ['aws.kms'],
        detailType: ['AWS API Call via CloudTrail'],
        detail: { eventSource: ['kms.amazonaws.com'], eventName: ['DisableKey', 'ScheduleKeyDeletion'] },
      },
    });
    // Not targets.SnsTopic: it grants EventBridge the data key with a wildcard action and no
    // condition. The topic accepts this rule only, and the key this account's rules only.
    keyChange.addTarget({ bind: () => ({ id: 'Operators', arn: operators.topicArn }) });
    Validations.of(keyChange).acknowledge({
      id: 'Serverless::Serverless-EventBusDLQ',
      reason: 'EventBridge retries delivery to the topic for 24 hours; the key change itself stays in CloudTrail whatever happens to the alarm.',
    });
    operators.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'KeyAlarmFromEventBridge',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [operators.topicArn],
      conditions: { ArnEquals: { 'aws:SourceArn': keyChange.ruleArn } },
    }));
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'EventBridgePublishToEncryptedTopic',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'], // in a key policy, "*" is this key
      conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
    }));
  }
}
