// No drift between cloud and laptop: the synthesized template must declare exactly the tables,
// queues and topics of infra/resources.json (which tools/vigil-local provisions locally), with
// the same keys, TTL, FIFO flag, timeouts, retention, redrive and billing mode.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { VICTIM_POSITIONS } from '../lib/protection';

/** The tables without point-in-time recovery: her positions (must not outlive their TTL) and
 * the watchdog's deadline index (derived, rebuilt by its sweep). Written out, not imported: a
 * table added to the list in lib/ must be added here on purpose. */
const NO_PITR = [VICTIM_POSITIONS, 'watch'];
import { forceTopicName } from '../lib/forces';
import { INFRA_DIR, parseResources, physicalName, queueName } from '../lib/resources';
import { logicalId, ofType, synth, target } from './helpers';

const s = synth();
const raw = JSON.parse(readFileSync(path.join(INFRA_DIR, 'resources.json'), 'utf8'));
const stage = s.config.stage;

describe('the template agrees with resources.json', () => {
  test('every table, with its keys, TTL, billing mode, PITR (not for victims\' positions nor the watchdog\'s index) and the customer-managed key', () => {
    const keyId = Object.keys(ofType(s, 'AWS::KMS::Key')).find((id) => id.startsWith('DataKey'))!;
    for (const t of raw.tables) {
      const id = logicalId(s, 'AWS::DynamoDB::Table', 'TableName', physicalName(s.resources, stage, t.name));
      const p = s.json.Resources[id].Properties;
      const keys = [{ AttributeName: t.partition_key.name, KeyType: 'HASH' }];
      const attrs = [{ AttributeName: t.partition_key.name, AttributeType: t.partition_key.type }];
      if (t.sort_key) {
        keys.push({ AttributeName: t.sort_key.name, KeyType: 'RANGE' });
        attrs.push({ AttributeName: t.sort_key.name, AttributeType: t.sort_key.type });
      }
      assert.deepEqual(p.KeySchema, keys, t.name);
      assert.deepEqual(p.AttributeDefinitions, attrs, `${t.name}: only key attributes are declared`);
      assert.equal(p.BillingMode, t.billing_mode, t.name);
      assert.deepEqual(p.TimeToLiveSpecification, t.ttl_attribute ? { AttributeName: t.ttl_attribute, Enabled: true } : undefined, `${t.name} TTL`);
      // Every table but victims' positions, which must not outlive their TTL, and the derived
      // watch index (protection.ts).
      assert.equal(p.PointInTimeRecoverySpecification?.PointInTimeRecoveryEnabled, !NO_PITR.includes(t.name), `${t.name} PITR`);
      assert.equal(p.SSESpecification?.SSEEnabled, true, `${t.name} SSE`);
      assert.equal(p.SSESpecification?.SSEType, 'KMS', `${t.name} SSE type`);
      assert.equal(target(p.SSESpecification?.KMSMasterKeyId), keyId, `${t.name} uses the stack's key`);
      assert.equal(s.json.Resources[id].DeletionPolicy, 'Retain', `${t.name} survives a stack deletion`);
    }
  });

  test('every queue: physical name (.fifo), FIFO flag, visibility timeout, retention, redrive, KMS', () => {
    for (const q of raw.queues) {
      const name = queueName(s.resources, stage, q);
      assert.equal(name.endsWith('.fifo'), q.fifo === true, `${q.name}: .fifo suffix`);
      const id = logicalId(s, 'AWS::SQS::Queue', 'QueueName', name);
      const p = s.json.Resources[id].Properties;
      assert.equal(p.FifoQueue, q.fifo ? true : undefined, `${q.name} FifoQueue`);
      assert.equal(p.ContentBasedDeduplication, q.fifo ? false : undefined, `${q.name} dedup by id, as locally`);
      assert.equal(p.VisibilityTimeout, q.visibility_timeout_s, `${q.name} visibility timeout`);
      assert.equal(p.MessageRetentionPeriod, q.retention_period_s, `${q.name} retention`);
      if (q.dead_letter) {
        const dlq = raw.queues.find((d: any) => d.name === q.dead_letter.queue);
        const dlqId = logicalId(s, 'AWS::SQS::Queue', 'QueueName', queueName(s.resources, stage, dlq));
        assert.equal(target(p.RedrivePolicy.deadLetterTargetArn), dlqId, `${q.name} redrives to ${dlq.name}`);
        assert.equal(p.RedrivePolicy.maxReceiveCount, q.dead_letter.max_receive_count, `${q.name} maxReceiveCount`);
      } else {
        assert.equal(p.RedrivePolicy, undefined, `${q.name} has no redrive`);
      }
      assert.ok(p.KmsMasterKeyId, `${q.name} encrypted with the stack's key`);
    }
  });

  test('every topic, encrypted with the stack key', () => {
    for (const t of raw.topics) {
      const id = logicalId(s, 'AWS::SNS::Topic', 'TopicName', physicalName(s.resources, stage, t.name));
      assert.ok(s.json.Resources[id].Properties.KmsMasterKeyId, `${t.name} encrypted`);
    }
  });

  test('nothing else: no table, topic or queue that resources.json does not declare (but the forces\' topics, one per force of forces.json)', () => {
    const names = (type: string, prop: string) => Object.values(ofType(s, type)).map((r: any) => r.Properties[prop]).sort();
    assert.deepEqual(names('AWS::DynamoDB::Table', 'TableName'), raw.tables.map((t: any) => physicalName(s.resources, stage, t.name)).sort());
    assert.deepEqual(names('AWS::SNS::Topic', 'TopicName'), [
      ...raw.topics.map((t: any) => physicalName(s.resources, stage, t.name)),
      ...s.forces.forces.map((f) => forceTopicName(stage, f.id)),
    ].sort());
    assert.deepEqual(
      names('AWS::SQS::Queue', 'QueueName'),
      raw.queues.map((q: any) => queueName(s.resources, stage, q)).sort(),
    );
  });

  test('every IoT policy that resources.json names, with its placeholders filled', () => {
    for (const p of raw.iot_policies ?? []) {
      const id = logicalId(s, 'AWS::IoT::Policy', 'PolicyName', physicalName(s.resources, stage, p.name));
      const text = JSON.stringify(s.json.Resources[id].Properties.PolicyDocument);
      assert.doesNotMatch(text, /\{\{/, 'no placeholder left');
      assert.match(text, /"Ref":"AWS::AccountId"/, 'account from the deploying credentials');
    }
  });
});

describe('the loader is as strict as the local harness', () => {
  const base = () => JSON.parse(JSON.stringify(raw));

  test('an unknown field is rejected, not ignored', () => {
    const r = base();
    r.tables[0].global_indexes = [];
    assert.throws(() => parseResources(r), /tables\[0\]: unknown field "global_indexes"/);
  });

  test('streams, keys and buckets: only the kinds Vigil uses', () => {
    const stream = base();
    stream.tables[0].stream = 'EVERYTHING';
    assert.throws(() => parseResources(stream), /tables\[0\].stream must be one of NEW_AND_OLD_IMAGES/);
    const key = base();
    key.keys[1].key_usage = 'ENCRYPT_DECRYPT';
    assert.throws(() => parseResources(key), /keys\[1\]: ECC_NIST_P256\/ENCRYPT_DECRYPT is not a key Vigil uses/);
    const bucket = base();
    bucket.buckets[0].object_lock = 'GOVERNANCE';
    assert.throws(() => parseResources(bucket), /buckets\[0\].object_lock: only COMPLIANCE is supported/);
    const shipped = parseResources(base());
    assert.equal(shipped.tables.find((t) => t.name === 'audit')!.stream, 'NEW_AND_OLD_IMAGES');
    assert.deepEqual(shipped.buckets, [{ name: 'anchors', object_lock: 'COMPLIANCE', env: 'VIGIL_ANCHOR_BUCKET' }]);
    assert.deepEqual(shipped.keys.map((k) => k.key_usage), ['GENERATE_VERIFY_MAC', 'SIGN_VERIFY']);
  });

  test('a dead-letter queue must be declared first and match the FIFO flag', () => {
    const r = base();
    r.queues.reverse();
    assert.throws(() => parseResources(r), /must be declared earlier/);
    const f = base();
    delete f.queues.find((q: any) => q.name === 'alerts-dlq').fifo;
    assert.throws(() => parseResources(f), /FIFO/);
  });

  test('only on-demand tables', () => {
    const r = base();
    r.tables[0].billing_mode = 'PROVISIONED';
    assert.throws(() => parseResources(r), /only PAY_PER_REQUEST/);
  });
});
