// Least privilege, statement by statement: no wildcard actions, no "*" resource except the one
// SMS statement, each role only the actions and resources its code uses, the ingest
// function (offender-facing) can never read a victim's phone number, nothing but the ingest
// function can reach her positions, and her device's item only ingest (reads) and the alert
// function (reads, and writes of the pursuit-mode command attribute alone) can reach. The alert
// function's IoT grant is exactly the two command topics.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { physicalName } from '../lib/resources';
import { COMMAND_ATTRIBUTE } from '../lib/vigil-stack';
import { Statement, identityStatements, logicalId, ofType, synth, target } from './helpers';

const s = synth();
const stage = s.config.stage;
const statements = identityStatements(s);
const roleOf = (fn: string) => target(s.json.Resources[logicalId(s, 'AWS::Lambda::Function', 'FunctionName', `vigil-${stage}-${fn}`)].Properties.Role);
const tableId = (logical: string) => logicalId(s, 'AWS::DynamoDB::Table', 'TableName', physicalName(s.resources, stage, logical));
const keyId = Object.keys(ofType(s, 'AWS::KMS::Key')).find((id) => id.startsWith('DataKey'))!;

/** role -> "resource logical id or *" -> sorted allowed actions (the key excluded). */
function grants(role: string): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const st of statements.filter((x) => x.role === role && x.Effect === 'Allow')) {
    for (const r of st.Resource) {
      const id = target(r);
      if (id === keyId) continue;
      for (const a of st.Action) (out[id] ??= new Set()).add(a);
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}
const sorted = (...a: string[]) => a.sort();

/** An Allow statement anywhere in the template, with whom it applies to: the roles (users,
 * groups) of an identity policy, else its own Principal. Resources are rendered as ARN
 * patterns: a table reference becomes that table's ARN, any other token a wildcard. */
interface Allow {
  readonly where: string;
  readonly sid?: string;
  readonly who: string[];
  readonly actions: string[];
  readonly resources: string[];
}

function everyAllow(): Allow[] {
  const tables = ofType(s, 'AWS::DynamoDB::Table');
  const render = (v: any): string => {
    if (typeof v === 'string') return v;
    if (v?.['Fn::Join']) return v['Fn::Join'][1].map(render).join(v['Fn::Join'][0]);
    if (v?.['Fn::Sub']) return [v['Fn::Sub']].flat()[0].replace(/\$\{[^}]*\}/g, '*');
    const id = v?.['Fn::GetAtt']?.[0];
    if (id in tables && v['Fn::GetAtt'][1] === 'Arn') return `arn:*:dynamodb:*:*:table/${tables[id].Properties.TableName}`;
    return '*';
  };
  const list = (v: unknown): any[] => (v === undefined ? [] : [v].flat());
  const out: Allow[] = [];
  const visit = (where: string, who: (st: any) => string[], node: any) => {
    if (typeof node !== 'object' || node === null) return;
    if (node.Statement !== undefined) {
      for (const st of list(node.Statement).filter((x) => x.Effect === 'Allow')) {
        // NotAction and NotResource grant by exclusion: counted as everything.
        out.push({ where, sid: st.Sid, who: who(st), actions: st.NotAction ? ['*'] : list(st.Action), resources: st.NotResource ? ['*'] : list(st.Resource).map(render) });
      }
      return;
    }
    for (const child of Object.values(node)) visit(where, who, child);
  };
  for (const [id, r] of Object.entries(s.json.Resources)) {
    const p = r.Properties ?? {};
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      const holders = [...list(p.Roles), ...list(p.Users), ...list(p.Groups)].map(target);
      visit(id, () => holders, p.PolicyDocument);
    } else if (r.Type === 'AWS::IAM::Role') {
      visit(id, () => [id], p.Policies);
      visit(`${id}/trust`, (st) => [JSON.stringify(st.Principal)], p.AssumeRolePolicyDocument);
    } else {
      visit(id, (st) => [JSON.stringify(st.Principal)], p);
    }
  }
  return out;
}

/** Whether an IAM pattern (with * and ?) matches a name, as IAM compares them. */
const matches = (pattern: string, name: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`, 'i').test(name);
const actionOnTable = (a: string) => a.toLowerCase().startsWith('dynamodb:') || matches(a, 'dynamodb:GetItem');
/** A resource pattern that covers the table or anything under it (indexes, stream). */
const covers = (pattern: string, tableArn: string) => matches(pattern, tableArn) || matches(pattern, `${tableArn}/index/any`);

describe('IAM', () => {
  test('no identity policy has a wildcard action', () => {
    assert.ok(statements.length > 10);
    for (const st of statements) for (const a of st.Action) assert.doesNotMatch(a, /\*/, `${st.policy} ${st.Sid ?? ''}: ${a}`);
  });

  test('the only "*" resources are actions with no resource ARN: the alert role\'s SMS (sns:Publish) and the deployment-time SMS settings (sns:SetSMSAttributes)', () => {
    const star = statements.filter((st) => st.Resource.includes('*'));
    assert.equal(star.length, 2, star.map((x) => `${x.policy} ${x.Sid}`).join());
    const sms = star.find((st) => st.Sid === 'SendVictimSms')!;
    assert.equal(sms.role, roleOf('alert'));
    assert.deepEqual(sms.Action, ['sns:Publish']);
    assert.deepEqual(sms.Resource, ['*']);
    const settings = star.find((st) => st !== sms)!;
    assert.deepEqual(settings.Action, ['sns:SetSMSAttributes']);
    assert.deepEqual(settings.Resource, ['*']);
    assert.notEqual(settings.role, roleOf('alert'), 'the alert function cannot change the spend limit');
    assert.notEqual(settings.role, roleOf('ingest'));
  });

  test('no NotAction or NotResource (they grant by exclusion)', () => {
    for (const st of statements) {
      assert.equal((st as any).NotAction, undefined);
      assert.equal((st as any).NotResource, undefined);
    }
  });

  test('ingest: exactly the tables, actions, queue and log group it uses', () => {
    const role = roleOf('ingest');
    const g = grants(role);
    assert.deepEqual(g[tableId('zone-cells')], sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'));
    assert.deepEqual(g[tableId('zones')], sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'));
    // The tag's history: read with the context, written after validation (no rule writes it).
    assert.deepEqual(g[tableId('last-seen')], sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'));
    assert.deepEqual(g[tableId('idempotency')], sorted('dynamodb:GetItem', 'dynamodb:PutItem'));
    assert.deepEqual(g[tableId('tags')], sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem'));
    assert.deepEqual(g[tableId('zone-state')], sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:ConditionCheckItem'));
    // The audit record of a change is the alert function's: a commit never waits on the chain.
    assert.equal(g[tableId('audit')], undefined);
    assert.deepEqual(g[tableId('quarantine')], ['dynamodb:PutItem']);
    // Her device's orders, and her newest position (a conditional put).
    assert.deepEqual(g[tableId('devices')], sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem'));
    assert.deepEqual(g[tableId('victim-positions')], sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem'));
    const alerts = logicalId(s, 'AWS::SQS::Queue', 'QueueName', `vigil-${stage}-alerts.fifo`);
    assert.deepEqual(g[alerts], ['sqs:SendMessage']);
    assert.equal(Object.keys(g).length, 9 + 1 + 2, `unexpected grants: ${Object.keys(g).join(', ')}`); // tables, alerts, rule-errors + log group
  });

  test('ingest can never touch orders (victim phone numbers) or notices', () => {
    const role = roleOf('ingest');
    const forbidden = [tableId('orders'), tableId('notices')];
    for (const st of statements.filter((x) => x.role === role)) {
      for (const r of st.Resource) {
        assert.ok(!forbidden.includes(target(r)), `${st.Sid} reaches ${target(r)}`);
        assert.notEqual(r, '*', `${st.Sid} has a "*" resource`);
        assert.doesNotMatch(JSON.stringify(r), /orders|notices/);
      }
    }
  });

  test('alert: orders read-only, notices, idempotency, audit, current states, the MAC key, the operators topic, SMS', () => {
    const g = grants(roleOf('alert'));
    // Re-reads the order's current level: never a message it contradicts.
    assert.deepEqual(g[tableId('zone-state')], ['dynamodb:Query']);
    const macKey = Object.keys(ofType(s, 'AWS::KMS::Key')).find((id) => id.startsWith('MacKey'))!;
    assert.deepEqual(g[macKey], ['kms:GenerateMac']);
    assert.deepEqual(g[tableId('orders')], ['dynamodb:GetItem']);
    assert.deepEqual(g[tableId('notices')], sorted('dynamodb:GetItem', 'dynamodb:PutItem'));
    assert.deepEqual(g[tableId('idempotency')], sorted('dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'));
    assert.deepEqual(g[tableId('audit')], sorted('dynamodb:PutItem', 'dynamodb:Query'));
    const topic = logicalId(s, 'AWS::SNS::Topic', 'TopicName', physicalName(s.resources, stage, 'operators'));
    assert.deepEqual(g[topic], ['sns:Publish']);
    // Pursuit mode: the command last sent to his tag and her device (only `cmd` is written; the
    // conditions are checked below).
    assert.deepEqual(g[tableId('tags')], sorted('dynamodb:GetItem', 'dynamodb:UpdateItem'));
    assert.deepEqual(g[tableId('devices')], sorted('dynamodb:GetItem', 'dynamodb:UpdateItem'));
    for (const t of ['zone-cells', 'zones', 'last-seen', 'quarantine', 'victim-positions']) assert.equal(g[tableId(t)], undefined, `alert has no business with ${t}`);
  });

  // Which roles an Allow anywhere gives any DynamoDB action on the table, with those actions.
  const reachingTable = (table: string): Record<string, string[]> => {
    const arn = `arn:aws:dynamodb:${s.stack.region}:000000000000:table/${physicalName(s.resources, stage, table)}`;
    const out: Record<string, Set<string>> = {};
    for (const st of everyAllow().filter((x) => x.actions.some(actionOnTable) && x.resources.some((r) => covers(r, arn)))) {
      for (const who of st.who) for (const a of st.actions.filter(actionOnTable)) (out[who] ??= new Set()).add(a);
    }
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
  };

  // An identity statement's resources as ARN text: the partition and account written as
  // `aws` and <account>, any other token as a wildcard.
  const arnText = (r: unknown): string => {
    if (typeof r === 'string') return r;
    const j = (r as any)?.['Fn::Join'];
    if (!j) return '*';
    return j[1].map((p: any) => (typeof p === 'string' ? p : p.Ref === 'AWS::Partition' ? 'aws' : p.Ref === 'AWS::AccountId' ? '<account>' : '*')).join(j[0]);
  };

  test('alert: exactly iot:Publish and iot:RetainPublish (a retained publish needs both), on exactly the two command topics; nothing else on IoT', () => {
    const alert = roleOf('alert');
    const iot = statements.filter((st) => st.Action.some((a) => a.toLowerCase().startsWith('iot:')));
    assert.equal(iot.length, 1, iot.map((st) => `${st.policy} ${st.Sid}`).join());
    const [st] = iot;
    assert.equal(st.role, alert);
    assert.equal(st.Effect, 'Allow');
    assert.equal(st.Condition, undefined);
    assert.deepEqual([...st.Action].sort(), ['iot:Publish', 'iot:RetainPublish']);
    const region = s.stack.region;
    assert.deepEqual(st.Resource.map(arnText).sort(), [
      `arn:aws:iot:${region}:<account>:topic/tags/*/cmd`,
      `arn:aws:iot:${region}:<account>:topic/victims/*/cmd`,
    ]);
  });

  test('ingest has no IoT action at all (it never commands a device), nor does any other role but alert', () => {
    for (const st of statements.filter((x) => x.role !== roleOf('alert'))) {
      for (const a of st.Action) assert.ok(!a.toLowerCase().startsWith('iot:'), `${st.policy} ${st.Sid ?? ''}: ${a}`);
    }
    const ingest = statements.filter((x) => x.role === roleOf('ingest'));
    assert.ok(ingest.length > 5);
    assert.ok(!ingest.some((st) => st.Action.includes('iot:Publish')));
  });

  for (const table of ['tags', 'devices']) {
    test(`alert writes only ${COMMAND_ATTRIBUTE} (and the key) of ${table} items: UpdateItem under dynamodb:Attributes and dynamodb:ReturnValues; every other grant there is GetItem`, () => {
      const key = s.resources.tables.find((t) => t.name === table)!.partition_key.name;
      const onTable = statements.filter((st) => st.role === roleOf('alert') && st.Resource.some((r) => target(r) === tableId(table)));
      const writes = onTable.filter((st) => st.Action.some((a) => a !== 'dynamodb:GetItem'));
      assert.equal(writes.length, 1, writes.map((st) => st.Sid).join());
      const [w] = writes;
      assert.deepEqual(w.Action, ['dynamodb:UpdateItem']);
      assert.deepEqual(w.Resource.map(target), [tableId(table)], 'one table per statement: the key attributes differ');
      assert.deepEqual(w.Condition, {
        'ForAllValues:StringEquals': { 'dynamodb:Attributes': [key, COMMAND_ATTRIBUTE] },
        // ALL_OLD and ALL_NEW would return the whole item.
        StringEqualsIfExists: { 'dynamodb:ReturnValues': ['NONE', 'UPDATED_OLD', 'UPDATED_NEW'] },
      });
      for (const st of onTable.filter((x) => x !== w)) assert.deepEqual(st.Action, ['dynamodb:GetItem'], `${st.Sid}`);
    });
  }

  test('alert cannot touch victim-positions: no identity grant reaches it, and the table\'s own Deny covers the alert role', () => {
    const alert = roleOf('alert');
    assert.equal(reachingTable('victim-positions')[alert], undefined);
    // Nor through a wildcard of its own: no alert statement names the table, by reference or text.
    for (const st of statements.filter((x) => x.role === alert)) {
      for (const r of st.Resource) {
        assert.notEqual(target(r), tableId('victim-positions'), `${st.Sid}`);
        assert.doesNotMatch(JSON.stringify(r), /victim-positions|table\/\*/, `${st.Sid}`);
      }
    }
    const deny = s.json.Resources[tableId('victim-positions')].Properties.ResourcePolicy.PolicyDocument.Statement[0];
    assert.ok(![deny.Condition.ArnNotEquals['aws:PrincipalArn']].flat().map(target).includes(alert), 'the Deny exempts the alert role');
  });

  // Every policy statement of the template, whatever holds it (identity policies, inline role
  // policies, resource policies of tables, queues, topics, keys), is searched: not only the
  // functions' roles.
  test('only the ingest role may do anything to victim-positions, and only BatchGetItem, GetItem, PutItem', () => {
    assert.deepEqual(reachingTable('victim-positions'), {
      [roleOf('ingest')]: sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem'),
    });
  });

  // The devices table has no policy of its own (only her positions' table has one): the
  // identity policies are all there is, and they allow exactly this.
  test('devices: ingest reads (BatchGetItem, GetItem); alert reads and updates (only the command attribute, above); nobody else', () => {
    assert.deepEqual(reachingTable('devices'), {
      [roleOf('ingest')]: sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem'),
      [roleOf('alert')]: sorted('dynamodb:GetItem', 'dynamodb:UpdateItem'),
    });
  });

  test('victim-positions\' own policy denies everyone but the ingest role every read, write and copy of her positions', () => {
    const table = s.json.Resources[tableId('victim-positions')];
    const denies = table.Properties.ResourcePolicy.PolicyDocument.Statement as any[];
    assert.equal(denies.length, 1);
    const [deny] = denies;
    assert.equal(deny.Effect, 'Deny');
    assert.deepEqual(deny.Principal, { AWS: '*' });
    assert.deepEqual(Object.keys(deny.Condition), ['ArnNotEquals']);
    assert.deepEqual([deny.Condition.ArnNotEquals['aws:PrincipalArn']].flat().map(target), [roleOf('ingest')]);
    assert.match(JSON.stringify(deny.Resource), new RegExp(`:table/${physicalName(s.resources, stage, 'victim-positions')}"`));
    const reads = ['GetItem', 'BatchGetItem', 'Query', 'Scan', 'PartiQLSelect'];
    const writes = ['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'PartiQLInsert', 'PartiQLUpdate', 'PartiQLDelete'];
    const copies = ['CreateBackup', 'StartAwsBackupJob', 'ExportTableToPointInTime', 'RestoreTableToPointInTime'];
    for (const a of [...reads, ...writes, ...copies]) assert.ok(deny.Action.includes(`dynamodb:${a}`), `dynamodb:${a} is not denied`);
    // Only her positions' table has a policy: the others are reached by identity policies alone.
    const withPolicy = Object.entries(ofType(s, 'AWS::DynamoDB::Table')).filter(([, t]) => t.Properties.ResourcePolicy).map(([id]) => id);
    assert.deepEqual(withPolicy, [tableId('victim-positions')]);
  });

  test('the one rule role: SendMessage to rule-errors only (no rule writes a table)', () => {
    const ruleRoles = Object.entries(ofType(s, 'AWS::IAM::Role'))
      .filter(([, r]) => JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('iot.amazonaws.com'))
      .map(([id]) => id);
    assert.equal(ruleRoles.length, 1);
    const errors = grants(ruleRoles[0]);
    assert.deepEqual(errors, { [logicalId(s, 'AWS::SQS::Queue', 'QueueName', `vigil-${stage}-rule-errors`)]: ['sqs:SendMessage'] });
  });

  test('key use is limited to the services each role goes through (kms:ViaService), but for SQS polling', () => {
    const keyStatements = statements.filter((st) => st.Resource.some((r) => target(r) === keyId));
    assert.ok(keyStatements.length >= 5);
    for (const st of keyStatements) {
      for (const a of st.Action) assert.ok(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'].includes(a), a);
      // The one CDK adds for the SQS event source is Decrypt only; Lambda polls the queue itself.
      if (!st.Condition) assert.deepEqual(st.Action, ['kms:Decrypt'], `${st.policy}: unconditioned key use`);
      else assert.ok(st.Condition.StringEquals['kms:ViaService'].length >= 1);
    }
  });

  test('resource policies: wildcard actions only in Deny (TLS-only queues) and the key\'s account-root admin statement', () => {
    const docs: Statement[] = [];
    for (const r of Object.values(ofType(s, 'AWS::SQS::QueuePolicy'))) docs.push(...r.Properties.PolicyDocument.Statement);
    for (const r of Object.values(ofType(s, 'AWS::KMS::Key'))) docs.push(...r.Properties.KeyPolicy.Statement);
    for (const r of Object.values(ofType(s, 'AWS::DynamoDB::Table'))) docs.push(...(r.Properties.ResourcePolicy?.PolicyDocument.Statement ?? []));
    for (const st of docs as any[]) {
      const wild = [st.Action].flat().some((a: string) => a.includes('*'));
      if (!wild || st.Effect === 'Deny') continue;
      // Without this, nobody in the account could administer (or schedule deletion of) the key.
      assert.deepEqual([st.Action].flat(), ['kms:*']);
      assert.match(JSON.stringify(st.Principal), /:root/);
    }
  });
});
