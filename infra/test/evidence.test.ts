// Evidence that survives an insider (issue 14, docs/EVIDENCE.md): the audit table's stream,
// the anchors bucket under Object Lock in compliance mode (default retention the forces'
// longest), the anchor function on the stream (write-only to anchors/, never skipping a
// record), the evidence signing key (ECC P-256, sign and verify; only operators sign), the
// alarms and the outputs.

import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { FORCES_FILE } from '../lib/forces';
import { ANCHOR_BATCH_SIZE, ANCHOR_WINDOW_S } from '../lib/vigil-stack';
import { Synth, identityStatements, logicalId, ofType, synth, target } from './helpers';

const s = synth();
const R = s.json.Resources;
const [bucketId, bucket] = Object.entries(ofType(s, 'AWS::S3::Bucket')).filter(([, b]) => b.Properties.ObjectLockEnabled)[0];
/** The anchors bucket's policy statements. */
const bucketPolicy = (x: Synth, id: string): any[] =>
  Object.values(ofType(x, 'AWS::S3::BucketPolicy')).find((p) => target(p.Properties.Bucket) === id)!.Properties.PolicyDocument.Statement;
const anchorId = logicalId(s, 'AWS::Lambda::Function', 'FunctionName', `vigil-${s.config.stage}-anchor`);
const anchorRole = target(R[anchorId].Properties.Role);
const auditId = logicalId(s, 'AWS::DynamoDB::Table', 'TableName', `vigil-${s.config.stage}-audit`);
const signingKeys = Object.entries(ofType(s, 'AWS::KMS::Key')).filter(([, k]) => k.Properties.KeyUsage === 'SIGN_VERIFY');
const allows = (role: string, action: string) =>
  identityStatements(s).filter((st) => st.role === role && st.Effect === 'Allow' && st.Action.includes(action));

describe('anchors', () => {
  test('the audit table has a stream with the records before and after each write; no other table has one', () => {
    assert.deepEqual(R[auditId].Properties.StreamSpecification, { StreamViewType: 'NEW_AND_OLD_IMAGES' });
    const streams = Object.entries(ofType(s, 'AWS::DynamoDB::Table')).filter(([, t]) => t.Properties.StreamSpecification);
    assert.deepEqual(streams.map(([id]) => id), [auditId]);
  });

  test('the bucket: Object Lock in compliance mode for 7 years by default, versioned, private, TLS only, retained', () => {
    const p = bucket.Properties;
    assert.equal(p.ObjectLockEnabled, true);
    assert.deepEqual(p.ObjectLockConfiguration, { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2557 } } });
    assert.equal(p.VersioningConfiguration.Status, 'Enabled');
    assert.deepEqual(p.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    assert.equal(bucket.DeletionPolicy, 'Retain');
    const policy = bucketPolicy(s, bucketId);
    assert.ok(policy.some((st) => st.Effect === 'Deny' && st.Condition?.Bool?.['aws:SecureTransport'] === 'false'), 'TLS only');
  });

  test('the default retention is the longest any force keeps its audit', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vigil-evidence-'));
    const f = JSON.parse(readFileSync(FORCES_FILE, 'utf8'));
    f.forces[1].audit_retention_years = 10;
    const file = path.join(dir, 'forces.json');
    writeFileSync(file, JSON.stringify(f));
    const ten = synth({ forcesFile: file });
    const p = Object.values(ofType(ten, 'AWS::S3::Bucket')).find((b) => b.Properties.ObjectLockEnabled)!.Properties;
    assert.equal(p.ObjectLockConfiguration.Rule.DefaultRetention.Days, 3653);
  });

  test('only the anchor function may put into the bucket, and nobody may delete from it', () => {
    const policy = bucketPolicy(s, bucketId);
    const puts = policy.find((st) => st.Sid === 'OnlyTheAnchorFunctionWrites');
    assert.equal(puts.Effect, 'Deny');
    assert.deepEqual(puts.Principal, { AWS: '*' });
    assert.deepEqual(puts.Action, ['s3:PutObject', 's3:PutObjectRetention', 's3:PutObjectLegalHold']);
    assert.equal(target(puts.Condition.ArnNotEquals['aws:PrincipalArn']), anchorRole);
    const deletes = policy.find((st) => st.Sid === 'NoAnchorIsDeleted');
    assert.equal(deletes.Effect, 'Deny');
    assert.deepEqual(deletes.Action, ['s3:DeleteObject', 's3:DeleteObjectVersion']);
  });

  test('the anchor function: on the audit stream from its oldest record, batches of 100 gathered for 10 s, retried without limit, from the failed record', () => {
    const maps = Object.values(ofType(s, 'AWS::Lambda::EventSourceMapping')).filter((m) => target(m.Properties.FunctionName) === anchorId);
    assert.equal(maps.length, 1);
    const m = maps[0].Properties;
    assert.equal(target(m.EventSourceArn), auditId);
    assert.equal(m.StartingPosition, 'TRIM_HORIZON');
    assert.equal(m.BatchSize, ANCHOR_BATCH_SIZE);
    assert.equal(m.MaximumBatchingWindowInSeconds, ANCHOR_WINDOW_S);
    assert.equal(m.BisectBatchOnFunctionError, true);
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.equal(m.ParallelizationFactor, 1);
    assert.equal(m.MaximumRetryAttempts, undefined, 'unlimited: evidence is never skipped');
    assert.equal(m.DestinationConfig, undefined, 'no record is ever sent aside');
    const env = R[anchorId].Properties.Environment.Variables;
    assert.equal(target(env.VIGIL_ANCHOR_BUCKET), bucketId);
    assert.ok(env.VIGIL_FORCES_PARAMETER);
  });

  test('the anchor role writes anchors/ only: no read, list or delete in S3; the orders read for their force only', () => {
    const s3 = identityStatements(s).filter((st) => st.role === anchorRole && st.Action.some((a) => a.startsWith('s3:')));
    assert.deepEqual(s3.map((st) => st.Action).flat().sort(), ['s3:PutObject', 's3:PutObjectRetention']);
    assert.deepEqual(s3[0].Resource, [{ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, '/anchors/*']] }]);
    const dynamo = identityStatements(s).filter((st) => st.role === anchorRole && st.Action.some((a) => a.startsWith('dynamodb:')));
    const streamReads = ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'];
    for (const st of dynamo) {
      if (st.Action.includes('dynamodb:BatchGetItem')) {
        assert.deepEqual(st.Action, ['dynamodb:BatchGetItem']);
        assert.deepEqual(st.Resource.map(target), [logicalId(s, 'AWS::DynamoDB::Table', 'TableName', `vigil-${s.config.stage}-orders`)]);
      } else {
        assert.ok(st.Action.every((a) => streamReads.includes(a) || a === 'dynamodb:ListStreams'), `${st.Action}`);
        assert.ok(st.Resource.every((r: any) => r === '*' || (r['Fn::GetAtt']?.[0] === auditId && r['Fn::GetAtt'][1] === 'StreamArn')), JSON.stringify(st.Resource));
      }
    }
    // Nobody else may put into the bucket: no other identity grant names it or "*" (the
    // console's BucketDeployment puts into the console's own site bucket only).
    for (const role of Object.keys(ofType(s, 'AWS::IAM::Role')).filter((r) => r !== anchorRole)) {
      for (const st of allows(role, 's3:PutObject')) {
        for (const r of st.Resource) {
          assert.notEqual(r, '*', `${role} may put anywhere`);
          assert.doesNotMatch(JSON.stringify(r), new RegExp(bucketId), `${role} may put anchors`);
        }
      }
    }
  });

  test('alarms: anchoring behind by 5 minutes, the anchor function failing, an audit record rewritten', () => {
    const alarms = Object.values(ofType(s, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const age = alarms.find((a) => a.AlarmName === `vigil-${s.config.stage}-anchor-iterator-age`);
    assert.equal(age.MetricName, 'IteratorAge');
    assert.equal(age.Threshold, 300000);
    assert.ok(alarms.find((a) => a.AlarmName === `vigil-${s.config.stage}-anchor-errors`));
    const rewritten = alarms.find((a) => a.AlarmName === `vigil-${s.config.stage}-audit-record-rewritten`);
    assert.equal(rewritten.Threshold, 1);
    const names = rewritten.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric.Dimensions[0].Value).sort();
    assert.deepEqual(names, ['modified', 'removed']);
  });
});

describe('the evidence key', () => {
  test('one ECC P-256 key for signing and verifying only, retained', () => {
    assert.equal(signingKeys.length, 1);
    const [, key] = signingKeys[0];
    assert.equal(key.Properties.KeySpec, 'ECC_NIST_P256');
    assert.equal(key.DeletionPolicy, 'Retain');
    assert.ok(!key.Properties.EnableKeyRotation);
  });

  test('operators (and only they) may sign with it and read its public key, and read anchors', () => {
    const keyId = signingKeys[0][0];
    const signers = identityStatements(s).filter((st) => st.Effect === 'Allow' && st.Action.includes('kms:Sign'));
    assert.ok(signers.length > 0);
    for (const st of signers) {
      assert.deepEqual(st.Action.sort(), ['kms:GetPublicKey', 'kms:Sign']);
      assert.deepEqual(st.Resource.map(target), [keyId]);
      assert.match(st.policy, /Operators/, `${st.policy} signs evidence`);
    }
    const reads = identityStatements(s).filter((st) => st.Sid === 'ReadAnchors');
    assert.ok(reads.length > 0 && reads.every((st) => st.Action.join() === 's3:GetObject,s3:GetObjectRetention'));
    const lists = identityStatements(s).filter((st) => st.Sid === 'ListAnchors');
    assert.ok(lists.every((st) => st.Condition?.StringLike?.['s3:prefix']?.[0] === 'anchors/*'));
  });

  test('outputs name the bucket and the key for `vigil evidence`', () => {
    const outputs = s.json.Outputs;
    assert.equal(target(outputs.AnchorsBucketName.Value), bucketId);
    assert.deepEqual(outputs.EvidenceKeyArn.Value, { 'Fn::GetAtt': [signingKeys[0][0], 'Arn'] });
  });
});
