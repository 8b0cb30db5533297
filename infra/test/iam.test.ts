// Least privilege, statement by statement: no wildcard actions, no "*" resource but for actions
// IAM gives no resource ARN (SMS, the SMS settings, IoT CSR signing), each role only the actions and resources its code uses, the ingest
// function (offender-facing) can never read a victim's phone number, nothing but the ingest
// function can reach her positions, and her device's item only ingest (reads), the alert
// function (reads, and writes of the pursuit-mode command attribute alone) and the operator
// roles (which set the order on it) can reach. The alert
// function's IoT grant is exactly the two command topics, and its one grant on the watchdog's
// `watch` table puts escalation parts (key, event, TTL only). The watchdog reads the tags due and
// writes only its deadline index, its own marks on tags and alert events; it never reaches
// orders, her positions, notices or audit. The operator roles (one per force and the national
// one; their statements are in forces.test.ts) touch IoT only through the registry, never the
// data plane.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { physicalName } from '../lib/resources';
import { COMMAND_ATTRIBUTE, ESCALATION_ATTRIBUTE, WATCH_MARK_PATTERN } from '../lib/vigil-stack';
import { Statement, identityStatements, logicalId, ofType, synth, target } from './helpers';

const s = synth();
const stage = s.config.stage;
const statements = identityStatements(s);
const roleOf = (fn: string) => target(s.json.Resources[logicalId(s, 'AWS::Lambda::Function', 'FunctionName', `vigil-${stage}-${fn}`)].Properties.Role);
const tableId = (logical: string) => logicalId(s, 'AWS::DynamoDB::Table', 'TableName', physicalName(s.resources, stage, logical));
const keyId = Object.keys(ofType(s, 'AWS::KMS::Key')).find((id) => id.startsWith('DataKey'))!;
const functionRoles = ['ingest', 'alert', 'watchdog'].map(roleOf);
/** The operator roles (lib/operators.ts): each force's, and the national one. */
const operatorRoleId = (name: string) => logicalId(s, 'AWS::IAM::Role', 'RoleName', `vigil-${stage}-${name}`);
const operatorRoles = [...s.forces.forces.map((f) => operatorRoleId(`operator-${f.id}`)), operatorRoleId('national')];
/** IoT data-plane actions (MQTT and shadows), as opposed to the registry's. */
const iotDataPlane = /^iot:(Connect|Publish|RetainPublish|Subscribe|Receive|GetRetainedMessage|ListRetainedMessages|\w*ThingShadow\w*)$/i;

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
    // A table's stream: its change records, not the table's items or any other table's.
    if (id in tables && v['Fn::GetAtt'][1] === 'StreamArn') return `arn:*:dynamodb:*:*:table/${tables[id].Properties.TableName}/stream/*`;
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
// dynamodb:ListStreams lists the account's stream ARNs (no item, no record): IAM gives it no
// resource, and the stream event source asks for it on "*".
const actionOnTable = (a: string) => (a.toLowerCase().startsWith('dynamodb:') && a !== 'dynamodb:ListStreams') || matches(a, 'dynamodb:GetItem');
/** A resource pattern that covers the table or anything under it (indexes, stream). */
const covers = (pattern: string, tableArn: string) => matches(pattern, tableArn) || matches(pattern, `${tableArn}/index/any`);

describe('IAM', () => {
  // CDK's BucketDeployment handler (it copies the console's web app during deployments) holds
  // CDK's own grants, with wildcard actions, on the CDK asset bucket and the site bucket only.
  const deployerRole = Object.keys(ofType(s, 'AWS::IAM::Role')).find((r) => r.startsWith('CustomCDKBucketDeployment'));
  const siteBucket = Object.keys(ofType(s, 'AWS::S3::Bucket')).find((b) => b.startsWith('ConsoleSite'))!;

  test('no identity policy has a wildcard action, but CDK\'s grants to the console\'s deployment, on its buckets only', () => {
    assert.ok(statements.length > 10);
    assert.ok(deployerRole, 'the console is deployed by a BucketDeployment');
    for (const st of statements) {
      if (st.role === deployerRole) {
        for (const r of st.Resource) {
          if (r === '*') {
            assert.deepEqual([...st.Action].sort(), ['cloudfront:CreateInvalidation', 'cloudfront:GetInvalidation']);
          } else {
            assert.match(JSON.stringify(r), new RegExp(`cdk-hnb659fds-assets-|"${siteBucket}"`), JSON.stringify(r));
          }
        }
        continue;
      }
      for (const a of st.Action) assert.doesNotMatch(a, /\*/, `${st.policy} ${st.Sid ?? ''}: ${a}`);
    }
  });

  test('the only "*" resources are actions with no resource ARN: the alert role\'s SMS (sns:Publish), the deployment-time SMS settings (sns:SetSMSAttributes), and the operators\' CSR signing and IoT endpoint', () => {
    const everyStar = statements.filter((st) => st.Resource.includes('*'));
    // The operators' one is in their shared managed policy: once per role it is attached to.
    const csr = everyStar.filter((st) => st.Sid === 'SignCsrsFindEndpoint');
    assert.deepEqual(csr.map((st) => st.role).sort(), [...operatorRoles].sort());
    for (const st of csr) assert.deepEqual([...st.Action].sort(), ['iot:CreateCertificateFromCsr', 'iot:DescribeEndpoint']);
    assert.equal(new Set(csr.map((st) => st.policy)).size, 1, 'one statement, in one policy');
    // The anchor function's stream event source: dynamodb:ListStreams has no resource ARN.
    const listStreams = everyStar.filter((st) => st.Action.length === 1 && st.Action[0] === 'dynamodb:ListStreams');
    assert.deepEqual(listStreams.map((st) => st.role), [roleOf('anchor')]);
    // The console's deployment invalidates its distribution: CDK grants that on "*".
    const invalidation = everyStar.filter((st) => st.role === deployerRole);
    assert.equal(invalidation.length, 1);
    assert.deepEqual([...invalidation[0].Action].sort(), ['cloudfront:CreateInvalidation', 'cloudfront:GetInvalidation']);
    const star = everyStar.filter((st) => !csr.includes(st) && !listStreams.includes(st) && !invalidation.includes(st));
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

  test('alert: orders read-only, notices, idempotency, audit, current states, the MAC key, the operators topic, SMS, escalation parts', () => {
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
    // Escalation: puts its parts in the watchdog's index, nothing more (conditions below).
    assert.deepEqual(g[tableId('watch')], ['dynamodb:PutItem']);
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
    // A table's stream (the anchor function's source): that table's stream only.
    const att = (r as any)?.['Fn::GetAtt'];
    if (att?.[1] === 'StreamArn') return `arn:aws:dynamodb:${s.stack.region}:<account>:table/${s.json.Resources[att[0]].Properties.TableName}/stream/*`;
    const j = (r as any)?.['Fn::Join'];
    if (!j) return '*';
    return j[1].map((p: any) => (typeof p === 'string' ? p : p.Ref === 'AWS::Partition' ? 'aws' : p.Ref === 'AWS::AccountId' ? '<account>' : '*')).join(j[0]);
  };

  test('alert: exactly iot:Publish and iot:RetainPublish (a retained publish needs both), on exactly the two command topics; nothing else on IoT, nor any other role on the data plane', () => {
    const alert = roleOf('alert');
    const iot = statements.filter((st) => st.Action.some((a) => iotDataPlane.test(a)) || (functionRoles.includes(st.role) && st.Action.some((a) => a.toLowerCase().startsWith('iot:'))));
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

  test('ingest has no IoT action at all (it never commands a device), nor does any other function but alert; the operator roles only the registry\'s', () => {
    for (const st of statements.filter((x) => x.role !== roleOf('alert'))) {
      for (const a of st.Action) {
        if (operatorRoles.includes(st.role)) assert.doesNotMatch(a, iotDataPlane, `${st.policy} ${st.Sid ?? ''}: ${a}`);
        else assert.ok(!a.toLowerCase().startsWith('iot:'), `${st.policy} ${st.Sid ?? ''}: ${a}`);
      }
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

  test('alert arms escalations in watch by PutItem alone, of the key, event and expires_at, no old item returned: its one statement there', () => {
    const onWatch = statements.filter((st) => st.role === roleOf('alert') && st.Resource.some((r) => target(r) === tableId('watch')));
    assert.equal(onWatch.length, 1, onWatch.map((st) => st.Sid).join());
    const [w] = onWatch;
    assert.equal(w.Sid, 'ArmEscalations');
    assert.equal(w.Effect, 'Allow');
    assert.deepEqual(w.Action, ['dynamodb:PutItem']);
    assert.deepEqual(w.Resource.map(target), [tableId('watch')], 'the watch table only (no index, no other table)');
    assert.deepEqual(w.Condition, {
      'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['minute', 'part', ESCALATION_ATTRIBUTE, 'expires_at'] },
      // ALL_OLD would return the item it replaced.
      StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
    });
    // The names IAM checks are the table's own: its key and TTL attribute.
    const watch = s.resources.tables.find((t) => t.name === 'watch')!;
    assert.deepEqual([watch.partition_key.name, watch.sort_key?.name, watch.ttl_attribute], ['minute', 'part', 'expires_at']);
    // Not a part's tags, nor the cursor's done_through.
    for (const no of ['tags', 'done_through']) assert.ok(!w.Condition!['ForAllValues:StringEquals']['dynamodb:Attributes'].includes(no), no);
  });

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
  test('devices: ingest reads (BatchGetItem, GetItem); alert reads and updates (only the command attribute, above); the operator roles set the order and force on it and read its force (GetItem, UpdateItem, Scan for the migration); nobody else', () => {
    assert.deepEqual(reachingTable('devices'), {
      [roleOf('ingest')]: sorted('dynamodb:BatchGetItem', 'dynamodb:GetItem'),
      [roleOf('alert')]: sorted('dynamodb:GetItem', 'dynamodb:UpdateItem'),
      ...Object.fromEntries(operatorRoles.map((r) => [r, sorted('dynamodb:GetItem', 'dynamodb:Scan', 'dynamodb:UpdateItem')])),
      // The console's operator API: the same operator actions (vigil-admin).
      [roleOf('console')]: sorted('dynamodb:GetItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'),
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

  test('key use is limited to the services each role goes through (kms:ViaService), but for SQS and stream polling', () => {
    const keyStatements = statements.filter((st) => st.Resource.some((r) => target(r) === keyId));
    assert.ok(keyStatements.length >= 5);
    for (const st of keyStatements) {
      for (const a of st.Action) assert.ok(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'].includes(a), a);
      // The ones CDK adds for the SQS and DynamoDB stream event sources read only (Decrypt,
      // and DescribeKey for the stream); Lambda polls the queue and the stream itself.
      if (!st.Condition) {
        const stream = st.role === roleOf('anchor');
        assert.deepEqual([...st.Action].sort(), stream ? ['kms:Decrypt', 'kms:DescribeKey'] : ['kms:Decrypt'], `${st.policy}: unconditioned key use`);
      }
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
  // Each function role's statements, written out: Sid, actions, resources by logical name. A
  // grant added to ingest or alert (the watchdog's arrival included) must be added here too.
  const named = (r: unknown): string => {
    const id = target(r);
    const res = s.json.Resources[id];
    if (id === keyId) return 'key:data';
    if (!res) return id.startsWith('{') ? arnText(r) : id;
    const p = res.Properties ?? {};
    switch (res.Type) {
      case 'AWS::DynamoDB::Table': return `table:${p.TableName.replace(`vigil-${stage}-`, '')}`;
      case 'AWS::SQS::Queue': return `queue:${p.QueueName.replace(`vigil-${stage}-`, '')}`;
      case 'AWS::SNS::Topic': return `topic:${p.TopicName.replace(`vigil-${stage}-`, '')}`;
      case 'AWS::Logs::LogGroup': return `logs:${p.LogGroupName}`;
      case 'AWS::KMS::Key': return `key:${p.KeySpec}`;
      default: return `${res.Type}:${id}`;
    }
  };
  const written = (fn: string) => statements.filter((st) => st.role === roleOf(fn))
    .map((st) => `${st.Sid ?? '(cdk)'} ${[...st.Action].sort().join(',')} ${st.Resource.map(named).sort().join(',')}${st.Condition ? ` if ${JSON.stringify(st.Condition)}` : ''}`);
  const forcesRead = `ReadForces ssm:GetParameter arn:aws:ssm:${s.stack.region}:<account>:parameter/vigil/${stage}/forces`;
  const kmsVia = (...services: string[]) => ` if ${JSON.stringify({ StringEquals: { 'kms:ViaService': services.map((x) => `${x}.${s.stack.region}.amazonaws.com`) } })}`;
  const updateIf = (key: string, attribute: string, op = 'StringEquals') =>
    ` if ${JSON.stringify({ [`ForAllValues:${op}`]: { 'dynamodb:Attributes': [key, attribute] }, StringEqualsIfExists: { 'dynamodb:ReturnValues': ['NONE', 'UPDATED_OLD', 'UPDATED_NEW'] } })}`;

  test('ingest\'s and alert\'s statements are exactly these (the watchdog changed neither; escalation added ArmEscalations to alert; the forces added ReadForces and NotifyForces to alert)', () => {
    assert.deepEqual(written('ingest'), [
      `WriteOwnLogs logs:CreateLogStream,logs:PutLogEvents logs:/aws/lambda/vigil-${stage}-ingest`,
      'OnFailureDestination sqs:SendMessage queue:rule-errors',
      `OnFailureDestinationKey kms:Decrypt,kms:GenerateDataKey key:data${kmsVia('sqs')}`,
      'ReadZonesTagsAndStates dynamodb:BatchGetItem,dynamodb:GetItem,dynamodb:Query table:last-seen,table:tags,table:zone-cells,table:zone-state,table:zones',
      'WriteTagHistory dynamodb:PutItem table:last-seen',
      'TagEventDigests dynamodb:GetItem,dynamodb:PutItem table:idempotency',
      'CommitTransitions dynamodb:ConditionCheckItem,dynamodb:PutItem,dynamodb:UpdateItem table:zone-state',
      'TrackOpenZones dynamodb:UpdateItem table:tags',
      'ReadVictimDevicesAndPositions dynamodb:BatchGetItem,dynamodb:GetItem table:devices,table:victim-positions',
      'RecordVictimPositions dynamodb:PutItem table:victim-positions',
      'QuarantineBadInput dynamodb:PutItem table:quarantine',
      'QueueAlertEvents sqs:SendMessage queue:alerts.fifo',
      `DataKey kms:Decrypt,kms:DescribeKey,kms:Encrypt,kms:GenerateDataKey key:data${kmsVia('dynamodb', 'sqs')}`,
    ]);
    const region = s.stack.region;
    assert.deepEqual(written('alert'), [
      `WriteOwnLogs logs:CreateLogStream,logs:PutLogEvents logs:/aws/lambda/vigil-${stage}-alert`,
      '(cdk) sqs:ChangeMessageVisibility,sqs:DeleteMessage,sqs:GetQueueAttributes,sqs:GetQueueUrl,sqs:ReceiveMessage queue:alerts.fifo',
      '(cdk) kms:Decrypt key:data',
      'ReadOrders dynamodb:GetItem table:orders',
      'VictimNotices dynamodb:GetItem,dynamodb:PutItem table:notices',
      'ClaimEvents dynamodb:DeleteItem,dynamodb:GetItem,dynamodb:PutItem,dynamodb:UpdateItem table:idempotency',
      'AppendAudit dynamodb:PutItem,dynamodb:Query table:audit',
      'ReadCurrentStates dynamodb:Query table:zone-state',
      'HashSmsDestinations kms:GenerateMac key:HMAC_256',
      `CommandDevices iot:Publish,iot:RetainPublish arn:aws:iot:${region}:<account>:topic/tags/*/cmd,arn:aws:iot:${region}:<account>:topic/victims/*/cmd`,
      'ReadCommandState dynamodb:GetItem table:devices,table:tags',
      `WriteTagCommandState dynamodb:UpdateItem table:tags${updateIf('tag_id', COMMAND_ATTRIBUTE)}`,
      `WriteDeviceCommandState dynamodb:UpdateItem table:devices${updateIf('device_id', COMMAND_ATTRIBUTE)}`,
      `ArmEscalations dynamodb:PutItem table:watch if ${JSON.stringify({ 'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['minute', 'part', ESCALATION_ATTRIBUTE, 'expires_at'] }, StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' } })}`,
      'NotifyOperators sns:Publish topic:operators',
      `NotifyForces sns:Publish ${s.forces.forces.map((f) => `topic:operators-${f.id}`).sort().join(',')}`,
      forcesRead,
      'SendVictimSms sns:Publish *',
      `DataKey kms:Decrypt,kms:DescribeKey,kms:Encrypt,kms:GenerateDataKey key:data${kmsVia('dynamodb', 'sns')}`,
    ]);
  });

  test('watchdog: exactly its deadline index, the tags due with their histories, the sweep, the order\'s zones, its own marks on tags, alert events, its log group', () => {
    assert.deepEqual(written('watchdog'), [
      `WriteOwnLogs logs:CreateLogStream,logs:PutLogEvents logs:/aws/lambda/vigil-${stage}-watchdog`,
      // The cursor (GetItem, conditional PutItem) and each minute's parts (Query, PutItem, DeleteItem).
      'DeadlineIndex dynamodb:DeleteItem,dynamodb:GetItem,dynamodb:PutItem,dynamodb:Query table:watch',
      'ReadTagsDue dynamodb:BatchGetItem table:last-seen,table:tags',
      'SweepTags dynamodb:Scan table:tags',
      'ReadOrderZones dynamodb:Query table:zones',
      `MarkWatchConditions dynamodb:UpdateItem table:tags${updateIf('tag_id', WATCH_MARK_PATTERN, 'StringLike')}`,
      'QueueAlertEvents sqs:SendMessage queue:alerts.fifo',
      `DataKey kms:Decrypt,kms:DescribeKey,kms:Encrypt,kms:GenerateDataKey key:data${kmsVia('dynamodb', 'sqs')}`,
    ]);
    const g = grants(roleOf('watchdog'));
    assert.deepEqual(g[tableId('watch')], sorted('dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'));
    assert.deepEqual(g[tableId('tags')], sorted('dynamodb:BatchGetItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'));
    assert.deepEqual(g[tableId('last-seen')], ['dynamodb:BatchGetItem']);
    assert.deepEqual(g[tableId('zones')], ['dynamodb:Query']);
    assert.equal(Object.keys(g).length, 4 + 1 + 1, `unexpected grants: ${Object.keys(g).join(', ')}`); // tables, alerts + log group
  });

  test('watchdog writes only watch#* marks (and the key) of tags items: its one write there is UpdateItem under dynamodb:Attributes (StringLike) and dynamodb:ReturnValues', () => {
    const onTags = statements.filter((st) => st.role === roleOf('watchdog') && st.Resource.some((r) => target(r) === tableId('tags')));
    const writes = onTags.filter((st) => st.Action.some((a) => !['dynamodb:BatchGetItem', 'dynamodb:Scan'].includes(a)));
    assert.equal(writes.length, 1, writes.map((st) => st.Sid).join());
    const [w] = writes;
    assert.deepEqual(w.Action, ['dynamodb:UpdateItem']);
    assert.deepEqual(w.Resource.map(target), [tableId('tags')]);
    // Every attribute the request names must match one of these: the key, or a watch# mark.
    assert.deepEqual(w.Condition, {
      'ForAllValues:StringLike': { 'dynamodb:Attributes': ['tag_id', 'watch#*'] },
      StringEqualsIfExists: { 'dynamodb:ReturnValues': ['NONE', 'UPDATED_OLD', 'UPDATED_NEW'] },
    });
    // The patterns let nothing else through: not the orders, open zones, silent marks or command.
    const allowed = (attr: string) => w.Condition!['ForAllValues:StringLike']['dynamodb:Attributes'].some((p: string) => matches(p, attr));
    for (const ok of ['tag_id', 'watch#ord-1#silence', 'watch#ord-1#no_gps']) assert.ok(allowed(ok), ok);
    for (const no of ['o#ord-1', 'open#ord-1/z1', 'silent#ord-1', 'cmd', 'watch', 'xwatch#a']) assert.ok(!allowed(no), no);
  });

  test('watchdog never reaches orders (her contact), victim-positions, notices or audit, by reference or by name; ingest never reaches the watch table, and alert only puts there', () => {
    const wd = roleOf('watchdog');
    for (const t of ['orders', 'victim-positions', 'notices', 'audit']) {
      assert.equal(reachingTable(t)[wd], undefined, `watchdog reaches ${t}`);
      for (const st of statements.filter((x) => x.role === wd)) {
        for (const r of st.Resource) {
          assert.notEqual(target(r), tableId(t), `${st.Sid}`);
          assert.doesNotMatch(JSON.stringify(r), new RegExp(`${t}|table/\\*`), `${st.Sid}`);
        }
      }
    }
    // Nor any IoT, SNS, SSM or other KMS key: the watchdog tells people only through alert
    // events (the force it counts tags by comes with the tags it reads).
    for (const st of statements.filter((x) => x.role === wd)) {
      for (const a of st.Action) assert.match(a, /^(dynamodb|sqs|logs|kms):/, `${st.Sid}: ${a}`);
    }
    // Any Allow in the template, by reference, by name or wildcard: the watchdog, and the alert
    // role's escalation puts (no GetItem, Query, Scan, UpdateItem, DeleteItem, batch or
    // transaction there).
    const watch = reachingTable('watch');
    assert.deepEqual(Object.keys(watch).sort(), [wd, roleOf('alert'), roleOf('console'), ...operatorRoles].sort(), 'only the watchdog, alert, console and operator roles reach the watch table');
    assert.deepEqual(watch[roleOf('alert')], ['dynamodb:PutItem']);
    // Operators arm a new order's tag: PutItem of the key, the tags and the TTL, nothing returned.
    for (const r of operatorRoles) assert.deepEqual(watch[r], ['dynamodb:PutItem']);
    const arm = statements.filter((st) => operatorRoles.includes(st.role) && st.Resource.some((x) => target(x) === tableId('watch')));
    assert.ok(arm.length > 0);
    for (const st of arm) {
      assert.equal(st.Sid, 'ArmNewTags');
      assert.deepEqual(st.Condition, {
        'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['minute', 'part', 'tags', 'expires_at'] },
        StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
      });
    }
    assert.equal(watch[roleOf('ingest')], undefined);
  });
});
