// The one definition of Vigil's tables, queues, topics and IoT policies: infra/resources.json.
//
// tools/vigil-local builds the local stack from the same file, so the cloud and the laptop
// cannot drift. Like the local harness, this loader rejects fields it does not know: a field
// added to the file must be implemented on both sides, never silently ignored on one.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';

/** infra/, where resources.json, rules/ and iot/ live. */
export const INFRA_DIR = path.resolve(__dirname, '..');
/** The Cargo workspace root (functions/ and shared/ live there). */
export const REPO_ROOT = path.resolve(INFRA_DIR, '..');

export type KeyType = 'S' | 'N' | 'B';

export interface KeyDef {
  readonly name: string;
  readonly type: KeyType;
}

export interface TableDef {
  readonly name: string;
  readonly billing_mode: 'PAY_PER_REQUEST';
  readonly partition_key: KeyDef;
  readonly sort_key?: KeyDef;
  readonly ttl_attribute?: string;
  /** The table's DynamoDB stream view, if it has a stream (the audit table's feeds the anchor function). */
  readonly stream?: 'NEW_AND_OLD_IMAGES' | 'NEW_IMAGE' | 'OLD_IMAGE' | 'KEYS_ONLY';
}

export interface QueueDef {
  readonly name: string;
  readonly fifo?: boolean;
  readonly visibility_timeout_s?: number;
  readonly retention_period_s?: number;
  readonly dead_letter?: { readonly queue: string; readonly max_receive_count: number };
}

export interface TopicDef {
  readonly name: string;
}

export interface IotPolicyDef {
  readonly name: string;
  /** A policy document relative to infra/, with {{region}}, {{account}} and {{stage}}. */
  readonly document: string;
}

/** A KMS key the functions use by ARN, from the environment variable `env`. */
export interface KmsKeyDef {
  readonly name: string;
  /** KMS KeySpec: HMAC_256 (a MAC key) or ECC_NIST_P256 (a signing key). */
  readonly key_spec: 'HMAC_256' | 'ECC_NIST_P256';
  /** KMS KeyUsage: GENERATE_VERIFY_MAC with HMAC_256, SIGN_VERIFY with ECC_NIST_P256. */
  readonly key_usage: 'GENERATE_VERIFY_MAC' | 'SIGN_VERIFY';
  readonly env: string;
}

/** An S3 bucket whose name the functions read from the environment variable `env`. */
export interface BucketDef {
  readonly name: string;
  /** Object Lock: every object locked in compliance mode (docs/EVIDENCE.md). */
  readonly object_lock?: 'COMPLIANCE';
  readonly env: string;
}

export interface Resources {
  readonly naming: { readonly pattern: string; readonly default_stage: string };
  readonly tables: readonly TableDef[];
  readonly queues: readonly QueueDef[];
  readonly topics: readonly TopicDef[];
  readonly keys: readonly KmsKeyDef[];
  readonly buckets: readonly BucketDef[];
  readonly iot_policies: readonly IotPolicyDef[];
}

/** Reads and checks infra/resources.json (or another file, for tests). */
export function loadResources(file = path.join(INFRA_DIR, 'resources.json')): Resources {
  return parseResources(JSON.parse(readFileSync(file, 'utf8')), file);
}

/** Checks a parsed definition; throws an error naming the file and the offending field. */
export function parseResources(raw: unknown, source = 'resources.json'): Resources {
  const fail = (what: string): never => {
    throw new Error(`${source}: ${what}`);
  };
  const obj = (v: unknown, where: string, known: string[], required: string[]) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where} must be an object`);
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) fail(`${where}: unknown field ${JSON.stringify(k)} (known: ${known.join(', ')})`);
    }
    for (const k of required) if (!(k in o)) fail(`${where}: missing field ${JSON.stringify(k)}`);
    return o;
  };
  const str = (v: unknown, where: string): string =>
    typeof v === 'string' && v.length > 0 ? v : fail(`${where} must be a non-empty string`);
  const seconds = (v: unknown, where: string): number =>
    Number.isInteger(v) && (v as number) >= 0 ? (v as number) : fail(`${where} must be whole seconds`);
  const list = (v: unknown, where: string): unknown[] => (Array.isArray(v) ? v : fail(`${where} must be a list`));
  const key = (v: unknown, where: string): KeyDef => {
    const k = obj(v, where, ['name', 'type'], ['name', 'type']);
    const type = k.type === 'S' || k.type === 'N' || k.type === 'B' ? k.type : fail(`${where}.type must be S, N or B`);
    return { name: str(k.name, `${where}.name`), type };
  };

  const top = obj(raw, 'the file', ['$comment', 'naming', 'tables', 'queues', 'topics', 'keys', 'buckets', 'iot_policies'], ['naming', 'tables', 'queues', 'topics']);
  const naming = obj(top.naming, 'naming', ['pattern', 'default_stage'], ['pattern', 'default_stage']);
  const pattern = str(naming.pattern, 'naming.pattern');
  if (!pattern.includes('{stage}') || !pattern.includes('{name}')) fail('naming.pattern must contain {stage} and {name}');

  const tables = list(top.tables, 'tables').map((v, i): TableDef => {
    const where = `tables[${i}]`;
    const t = obj(v, where, ['name', 'billing_mode', 'partition_key', 'sort_key', 'ttl_attribute', 'stream'], ['name', 'billing_mode', 'partition_key']);
    if (t.billing_mode !== 'PAY_PER_REQUEST') fail(`${where}.billing_mode: only PAY_PER_REQUEST is supported`);
    const views = ['NEW_AND_OLD_IMAGES', 'NEW_IMAGE', 'OLD_IMAGE', 'KEYS_ONLY'];
    if (t.stream !== undefined && !views.includes(t.stream as string)) fail(`${where}.stream must be one of ${views.join(', ')}`);
    return {
      name: str(t.name, `${where}.name`),
      billing_mode: 'PAY_PER_REQUEST',
      partition_key: key(t.partition_key, `${where}.partition_key`),
      sort_key: t.sort_key === undefined ? undefined : key(t.sort_key, `${where}.sort_key`),
      ttl_attribute: t.ttl_attribute === undefined ? undefined : str(t.ttl_attribute, `${where}.ttl_attribute`),
      stream: t.stream as TableDef['stream'],
    };
  });

  const queues: QueueDef[] = [];
  list(top.queues, 'queues').forEach((v, i) => {
    const where = `queues[${i}]`;
    const q = obj(v, where, ['name', 'fifo', 'visibility_timeout_s', 'retention_period_s', 'dead_letter'], ['name']);
    let dead_letter: QueueDef['dead_letter'];
    if (q.dead_letter !== undefined) {
      const d = obj(q.dead_letter, `${where}.dead_letter`, ['queue', 'max_receive_count'], ['queue', 'max_receive_count']);
      const target = queues.find((p) => p.name === d.queue);
      // Same rule as the harness: a dead-letter queue is declared before the queue it serves.
      if (!target) fail(`${where}.dead_letter.queue ${JSON.stringify(d.queue)} must be declared earlier in queues`);
      if (Boolean(target!.fifo) !== Boolean(q.fifo)) fail(`${where}: a FIFO queue needs a FIFO dead-letter queue and vice versa`);
      const count = d.max_receive_count;
      if (!Number.isInteger(count) || (count as number) < 1) fail(`${where}.dead_letter.max_receive_count must be a positive integer`);
      dead_letter = { queue: d.queue as string, max_receive_count: count as number };
    }
    if (q.fifo !== undefined && typeof q.fifo !== 'boolean') fail(`${where}.fifo must be true or false`);
    queues.push({
      name: str(q.name, `${where}.name`),
      fifo: q.fifo === true,
      visibility_timeout_s: q.visibility_timeout_s === undefined ? undefined : seconds(q.visibility_timeout_s, `${where}.visibility_timeout_s`),
      retention_period_s: q.retention_period_s === undefined ? undefined : seconds(q.retention_period_s, `${where}.retention_period_s`),
      dead_letter,
    });
  });

  const topics = list(top.topics, 'topics').map((v, i): TopicDef => {
    const t = obj(v, `topics[${i}]`, ['name'], ['name']);
    return { name: str(t.name, `topics[${i}].name`) };
  });

  const envName = (v: unknown, where: string): string => {
    const env = str(v, where);
    if (!/^[A-Z][A-Z0-9_]*$/.test(env)) fail(`${where} must be an environment variable name`);
    return env;
  };
  // Only the key kinds Vigil uses are accepted: a new kind must be implemented (and tested)
  // here and in the harness, not passed through unchecked.
  const keys = list(top.keys ?? [], 'keys').map((v, i): KmsKeyDef => {
    const where = `keys[${i}]`;
    const k = obj(v, where, ['name', 'key_spec', 'key_usage', 'env'], ['name', 'key_spec', 'key_usage', 'env']);
    const kind = `${k.key_spec}/${k.key_usage}`;
    if (kind !== 'HMAC_256/GENERATE_VERIFY_MAC' && kind !== 'ECC_NIST_P256/SIGN_VERIFY') {
      fail(`${where}: ${kind} is not a key Vigil uses (HMAC_256/GENERATE_VERIFY_MAC or ECC_NIST_P256/SIGN_VERIFY)`);
    }
    return {
      name: str(k.name, `${where}.name`),
      key_spec: k.key_spec as KmsKeyDef['key_spec'],
      key_usage: k.key_usage as KmsKeyDef['key_usage'],
      env: envName(k.env, `${where}.env`),
    };
  });

  const buckets = list(top.buckets ?? [], 'buckets').map((v, i): BucketDef => {
    const where = `buckets[${i}]`;
    const b = obj(v, where, ['name', 'object_lock', 'env'], ['name', 'env']);
    if (b.object_lock !== undefined && b.object_lock !== 'COMPLIANCE') fail(`${where}.object_lock: only COMPLIANCE is supported`);
    return { name: str(b.name, `${where}.name`), object_lock: b.object_lock as BucketDef['object_lock'], env: envName(b.env, `${where}.env`) };
  });

  const iot_policies = list(top.iot_policies ?? [], 'iot_policies').map((v, i): IotPolicyDef => {
    const p = obj(v, `iot_policies[${i}]`, ['name', 'document'], ['name', 'document']);
    return { name: str(p.name, `iot_policies[${i}].name`), document: str(p.document, `iot_policies[${i}].document`) };
  });

  const names = [...tables, ...queues, ...topics, ...keys, ...buckets, ...iot_policies].map((r) => r.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) fail(`the logical name ${JSON.stringify(dup)} is declared twice`);

  return { naming: { pattern, default_stage: str(naming.default_stage, 'naming.default_stage') }, tables, queues, topics, keys, buckets, iot_policies };
}

/** vigil-<stage>-<logical>, by the file's own naming pattern. */
export function physicalName(resources: Resources, stage: string, logical: string): string {
  return resources.naming.pattern.replace('{stage}', stage).replace('{name}', logical);
}

/** A queue's physical name: FIFO queues must end in `.fifo` (SQS requires it). */
export function queueName(resources: Resources, stage: string, queue: QueueDef): string {
  const name = physicalName(resources, stage, queue.name);
  return queue.fifo ? `${name}.fifo` : name;
}

/** A rule's SQL, read verbatim from infra/rules/<file> (one line; the local bridge reads it too). */
export function ruleSql(file: string): string {
  return readFileSync(path.join(INFRA_DIR, 'rules', file), 'utf8').trim();
}
