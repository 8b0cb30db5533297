// Many forces on one deployment (issue 17, docs/FORCES.md): infra/forces.json is checked as
// strictly as resources.json; each force gets its operators' topic and its operator role (the
// names are a contract with the CLI), the national administrators one role; the runtime
// parameter /vigil/<stage>/forces carries the file with each force's topic ARN; the functions
// read it, and the alert function publishes to every force's topic. A force's role subscribes
// to its own force's topic only.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { FORCES_FILE, checkDeployable, loadForces, parseForces, runtimeDocumentMaxBytes } from '../lib/forces';
import { FORCE_SESSION_HOURS, NATIONAL_SESSION_HOURS } from '../lib/operators';
import { Synth, identityStatements, logicalId, ofType, synth, target } from './helpers';

const shipped = JSON.parse(readFileSync(FORCES_FILE, 'utf8'));
const copy = () => JSON.parse(JSON.stringify(shipped));
const dir = mkdtempSync(path.join(tmpdir(), 'vigil-forces-'));
/** Writes a forces file to a temporary folder; returns its path. */
const file = (name: string, content: unknown) => {
  const p = path.join(dir, name);
  writeFileSync(p, JSON.stringify(content, null, 2));
  return p;
};

/** A square area around (lon, lat). */
const square = (lon: number, lat: number, d = 0.1) => ({
  type: 'Polygon',
  coordinates: [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]],
});
const kent = { id: 'kent', name: 'Kent Police', sms_sender_id: null, default_language: 'en', audit_retention_years: 10, area: square(0.8, 51.2) };

/** The parameter's value as its JSON, each topic reference written `<ref:LogicalId>`. */
function parameterDocument(s: Synth): any {
  const p = s.json.Resources[logicalId(s, 'AWS::SSM::Parameter', 'Name', `/vigil/${s.config.stage}/forces`)].Properties;
  const v = p.Value;
  const text = typeof v === 'string' ? v : v['Fn::Join'][1].map((x: any) => (typeof x === 'string' ? x : `<ref:${x.Ref}>`)).join(v['Fn::Join'][0]);
  return JSON.parse(text);
}

const roleId = (s: Synth, name: string) => logicalId(s, 'AWS::IAM::Role', 'RoleName', name);
const topicId = (s: Synth, name: string) => logicalId(s, 'AWS::SNS::Topic', 'TopicName', name);

/** What a role may subscribe to: the topics (logical ids) of every Allow of sns:Subscribe. */
const subscribable = (s: Synth, role: string) =>
  identityStatements(s).filter((st) => st.role === role && st.Effect === 'Allow' && st.Action.includes('sns:Subscribe')).flatMap((st) => st.Resource.map(target)).sort();

describe('forces.json is checked: each mistake fails synth naming the force and the field', () => {
  const bad = (mutate: (f: any) => void, message: RegExp) => {
    const f = copy();
    mutate(f);
    assert.throws(() => parseForces(f, 'forces.json'), message);
  };

  test('the shipped file: met and tvp, default met', () => {
    const f = loadForces();
    assert.deepEqual(f.forces.map((x) => x.id), ['met', 'tvp']);
    assert.equal(f.default_force, 'met');
    assert.equal(f.document.$comment, undefined);
  });

  test('ids: 1-64 of A-Za-z0-9._-, no duplicates (whatever their case: IAM role names), not "national"', () => {
    bad((f) => { f.forces[1].id = 'thames valley'; }, /forces\[1\]: id is "thames valley": must be 1-64 of A-Za-z0-9._-/);
    bad((f) => { f.forces[1].id = ''; }, /forces\[1\]: id is "": must be 1-64/);
    bad((f) => { f.forces[1].id = 'x'.repeat(65); }, /forces\[1\]: id is "x{65}": must be 1-64/);
    bad((f) => { f.forces[1].id = 7; }, /forces\[1\]: id is 7/);
    bad((f) => { f.forces[1].id = 'met'; }, /force "met" is declared twice/);
    bad((f) => { f.forces[1].id = 'MET'; }, /forces "met" and "MET" differ only in case/);
    bad((f) => { f.forces[1].id = 'national'; }, /force "national": id is "national": "national" is reserved/);
    bad((f) => { f.forces[1].id = 'National'; }, /force "National": id is "National": "national" is reserved/);
  });

  test('default_force must be one of the forces; there must be one', () => {
    bad((f) => { f.default_force = 'kent'; }, /default_force "kent" is not one of the forces \(met, tvp\)/);
    bad((f) => { delete f.default_force; }, /the file: missing field "default_force"/);
    bad((f) => { f.forces = []; }, /forces is empty/);
    bad((f) => { f.forces = {}; }, /forces must be a list/);
  });

  test('sms_sender_id: null or 3-11 letters and digits with a letter', () => {
    bad((f) => { f.forces[1].sms_sender_id = '+447700900123'; }, /force "tvp": sms_sender_id is "\+447700900123": must be null .* or 3-11 letters and digits/);
    bad((f) => { f.forces[1].sms_sender_id = '12345'; }, /force "tvp": sms_sender_id is "12345"/);
    bad((f) => { f.forces[1].sms_sender_id = 'ThamesValleyPolice'; }, /force "tvp": sms_sender_id/);
    bad((f) => { f.forces[1].sms_sender_id = 'TV'; }, /force "tvp": sms_sender_id/);
    bad((f) => { delete f.forces[1].sms_sender_id; }, /force "tvp": missing field "sms_sender_id"/);
    const ok = copy();
    ok.forces[1].sms_sender_id = null;
    assert.equal(parseForces(ok).forces[1].sms_sender_id, null);
  });

  test('default_language: one the victims\' messages exist in (en, es, fr, de)', () => {
    for (const l of ['EN', 'english', 'en_GB', 'en-gb', '', 'cy', 'pt-BR']) bad((f) => { f.forces[0].default_language = l; }, /force "met": default_language is .*: must be a language/);
    for (const l of ['en', 'es', 'fr', 'de']) {
      const ok = copy();
      ok.forces[0].default_language = l;
      assert.equal(parseForces(ok).forces[0].default_language, l);
    }
  });

  test('audit_retention_years: a whole number 1..100', () => {
    for (const y of [0, 101, 7.5, '7', null]) bad((f) => { f.forces[0].audit_retention_years = y; }, /force "met": audit_retention_years is .*: must be a whole number of years, 1 to 100/);
  });

  test('name: a non-empty string', () => {
    bad((f) => { f.forces[0].name = ' '; }, /force "met": name is " ": must be a non-empty string/);
  });

  test('area: a GeoJSON Polygon, one closed ring of at least 4 [lon, lat] points in WGS84', () => {
    bad((f) => { f.forces[0].area.type = 'MultiPolygon'; }, /force "met": area.type is "MultiPolygon": must be "Polygon"/);
    bad((f) => { f.forces[0].area.coordinates.push(f.forces[0].area.coordinates[0]); }, /force "met": area.coordinates must hold exactly one ring/);
    bad((f) => { f.forces[0].area.coordinates = [[[0, 0], [1, 0], [0, 0]]]; }, /force "met": area: the ring must have at least 4 points/);
    bad((f) => { f.forces[0].area.coordinates[0][2] = [51.29, -0.51, 10]; }, /force "met": area: point 2 is \[51.29,-0.51,10\]: must be \[lon, lat\]/);
    bad((f) => { f.forces[0].area.coordinates[0][2] = ['0.05', 51.29]; }, /force "met": area: point 2/);
    bad((f) => { f.forces[0].area.coordinates[0][2] = [51.29, 181]; }, /force "met": area: point 2 \[51.29,181\] is outside WGS84/);
    bad((f) => { f.forces[0].area.coordinates[0][2] = [-181, 51.29]; }, /force "met": area: point 2 \[-181,51.29\] is outside WGS84/);
    bad((f) => { f.forces[0].area.coordinates[0].pop(); }, /force "met": area: the ring is not closed/);
    bad((f) => { f.forces[0].area.bbox = [0, 0, 1, 1]; }, /force "met": area: unknown field "bbox"/);
    bad((f) => { f.forces[0].area = 'London'; }, /force "met": area must be a GeoJSON Polygon object/);
  });

  test('unknown fields are rejected, not ignored (as resources.json\'s): in a force and at the top', () => {
    bad((f) => { f.forces[0].operators_topic_arn = 'arn:aws:sns:eu-west-2:000000000000:x'; }, /force "met": unknown field "operators_topic_arn"/);
    bad((f) => { f.forces[0].smsSenderId = 'MetVigil'; }, /force "met": unknown field "smsSenderId"/);
    bad((f) => { f.national_role = 'x'; }, /the file: unknown field "national_role"/);
    bad((f) => { delete f.forces[0].area; }, /force "met": missing field "area"/);
  });

  test('the file is named in every message; a file that is not JSON says so', () => {
    assert.throws(() => loadForces(file('broken.json', '{')), /broken.json: /);
    writeFileSync(path.join(dir, 'not-json.json'), '{ "forces": [');
    assert.throws(() => loadForces(path.join(dir, 'not-json.json')), /not-json.json: not JSON/);
    assert.throws(() => loadForces(path.join(dir, 'missing.json')), /missing.json: cannot read the forces file/);
  });

  test('what this stage cannot deploy: an id too long for its role name (64), a "." (SNS topic names)', () => {
    const long = copy();
    long.forces[1].id = 'a'.repeat(46);
    const f = parseForces(long, 'forces.json');
    assert.throws(() => checkDeployable(f, 'dev'), /force "a{46}": id is too long for stage dev: its role vigil-dev-operator-a{46} would be 65 characters, IAM allows 64 \(ids up to 45/);
    long.forces[1].id = 'a'.repeat(45);
    assert.doesNotThrow(() => checkDeployable(parseForces(long), 'dev'));
    const dotted = copy();
    dotted.forces[1].id = 'thames.valley';
    assert.throws(() => checkDeployable(parseForces(dotted, 'forces.json'), 'dev'), /force "thames.valley": id contains '.', which SNS topic names do not allow/);
    // ... and synthesis fails with it, before any construct.
    assert.throws(() => synth({ forcesFile: file('dotted.json', dotted) }), /force "thames.valley": id contains '.'/);
  });

  test('a bad file fails synthesis with its message (the setting forcesFile, context or VIGIL_FORCES_FILE)', () => {
    const f = copy();
    f.forces[1].audit_retention_years = 0;
    const p = file('bad-years.json', f);
    assert.throws(() => synth({ forcesFile: p }), /bad-years.json: force "tvp": audit_retention_years is 0/);
    assert.throws(() => synth({}, { VIGIL_FORCES_FILE: p }), /bad-years.json: force "tvp": audit_retention_years is 0/);
  });
});

describe('two forces (the shipped forces.json): topics, roles, the parameter, the functions', () => {
  const s = synth();
  const stage = s.config.stage;
  const R = s.json.Resources;
  const keyId = Object.keys(ofType(s, 'AWS::KMS::Key')).find((id) => id.startsWith('DataKey'))!;
  const met = topicId(s, `vigil-${stage}-operators-met`);
  const tvp = topicId(s, `vigil-${stage}-operators-tvp`);
  const national = topicId(s, `vigil-${stage}-operators`);
  const metRole = roleId(s, `vigil-${stage}-operator-met`);
  const tvpRole = roleId(s, `vigil-${stage}-operator-tvp`);
  const nationalRole = roleId(s, `vigil-${stage}-national`);
  const fn = (name: string) => R[logicalId(s, 'AWS::Lambda::Function', 'FunctionName', `vigil-${stage}-${name}`)].Properties;
  const parameterId = logicalId(s, 'AWS::SSM::Parameter', 'Name', `/vigil/${stage}/forces`);

  test('one topic per force, vigil-<stage>-operators-<id>, encrypted with the stack key, TLS only; the national topic stays', () => {
    const topics = Object.values(ofType(s, 'AWS::SNS::Topic')).map((t: any) => t.Properties.TopicName).sort();
    assert.deepEqual(topics, [`vigil-${stage}-operators`, `vigil-${stage}-operators-met`, `vigil-${stage}-operators-tvp`]);
    for (const id of [met, tvp]) {
      assert.equal(target(R[id].Properties.KmsMasterKeyId), keyId);
      const policies = (Object.values(ofType(s, 'AWS::SNS::TopicPolicy')) as any[]).filter((p) => p.Properties.Topics.some((t: any) => target(t) === id));
      assert.equal(policies.length, 1);
      const deny = policies[0].Properties.PolicyDocument.Statement.find((st: any) => st.Effect === 'Deny');
      assert.deepEqual(deny.Condition, { Bool: { 'aws:SecureTransport': 'false' } });
    }
    // Alarms stay on the national topic.
    for (const a of Object.values(ofType(s, 'AWS::CloudWatch::Alarm')) as any[]) assert.deepEqual(a.Properties.AlarmActions, [{ Ref: national }]);
  });

  test('the roles, by the names the CLI reads: vigil-<stage>-operator-<id> per force, vigil-<stage>-national; no other operator role', () => {
    const names = Object.values(ofType(s, 'AWS::IAM::Role')).map((r: any) => r.Properties.RoleName).filter((n) => typeof n === 'string' && /operator|national/.test(n)).sort();
    assert.deepEqual(names, [`vigil-${stage}-national`, `vigil-${stage}-operator-met`, `vigil-${stage}-operator-tvp`]);
    assert.match(JSON.stringify(s.json.Outputs.NationalRoleArn.Value), new RegExp(nationalRole));
  });

  test('each is assumed by this account\'s principals with MFA only, for at most 1-4 hours', () => {
    for (const [id, hours] of [[metRole, FORCE_SESSION_HOURS], [tvpRole, FORCE_SESSION_HOURS], [nationalRole, NATIONAL_SESSION_HOURS]] as const) {
      const p = R[id].Properties;
      assert.ok(hours >= 1 && hours <= 4);
      assert.equal(p.MaxSessionDuration, hours * 3600);
      const trust = p.AssumeRolePolicyDocument.Statement;
      assert.equal(trust.length, 1);
      assert.equal(trust[0].Effect, 'Allow');
      assert.equal(trust[0].Action, 'sts:AssumeRole');
      assert.deepEqual(trust[0].Condition, { Bool: { 'aws:MultiFactorAuthPresent': 'true' } });
      assert.match(JSON.stringify(trust[0].Principal), /"arn:",\{"Ref":"AWS::Partition"\},":iam::",\{"Ref":"AWS::AccountId"\},":root"/, 'this account only');
    }
  });

  test('a force\'s role subscribes to its own force\'s topic only; the national role to every force\'s and the national one', () => {
    assert.deepEqual(subscribable(s, metRole), [met]);
    assert.deepEqual(subscribable(s, tvpRole), [tvp]);
    assert.ok(!subscribable(s, metRole).includes(tvp), 'met cannot subscribe to tvp\'s topic');
    assert.ok(!subscribable(s, tvpRole).includes(met), 'tvp cannot subscribe to met\'s topic');
    assert.deepEqual(subscribable(s, nationalRole), [met, national, tvp].sort());
    // Nor by any other Allow of the template: no topic policy lets anyone subscribe.
    for (const p of Object.values(ofType(s, 'AWS::SNS::TopicPolicy')) as any[]) {
      for (const st of p.Properties.PolicyDocument.Statement) if (st.Effect === 'Allow') assert.ok(![st.Action].flat().some((a: string) => /subscribe|\*/i.test(a)), JSON.stringify(st));
    }
  });

  // Statement by statement, as iam.test.ts does for the functions: a grant added here must be
  // added to the test too.
  const statements = identityStatements(s);
  const named = (r: unknown): string => {
    const id = target(r);
    const res = R[id];
    if (id === keyId) return 'key:data';
    if (!res) {
      const j = (r as any)?.['Fn::Join'];
      if (r === '*' || !j) return String(r === '*' ? '*' : id);
      return j[1].map((p: any) => (typeof p === 'string' ? p : p.Ref === 'AWS::Partition' ? 'aws' : p.Ref === 'AWS::AccountId' ? '<account>' : '*')).join(j[0]);
    }
    const p = res.Properties ?? {};
    switch (res.Type) {
      case 'AWS::DynamoDB::Table': return `table:${p.TableName.replace(`vigil-${stage}-`, '')}`;
      case 'AWS::SQS::Queue': return `queue:${p.QueueName.replace(`vigil-${stage}-`, '')}`;
      case 'AWS::SNS::Topic': return `topic:${p.TopicName.replace(`vigil-${stage}-`, '')}`;
      case 'AWS::KMS::Key': return `key:${p.KeySpec}`;
      case 'AWS::Lambda::Function': return `function:${p.FunctionName}`;
      default: return `${res.Type}:${id}`;
    }
  };
  const written = (role: string) => statements.filter((st) => st.role === role)
    .map((st) => `${st.Sid ?? '(cdk)'} ${[...st.Action].sort().join(',')} ${st.Resource.map(named).sort().join(',')}${st.Condition ? ` if ${JSON.stringify(st.Condition)}` : ''}`);
  const region = s.stack.region;
  const via = (...services: string[]) => ` if ${JSON.stringify({ StringEquals: { 'kms:ViaService': services.map((x) => `${x}.${region}.amazonaws.com`) } })}`;
  const common = [
    'Orders dynamodb:GetItem,dynamodb:PutItem,dynamodb:Scan table:orders',
    'Zones dynamodb:DeleteItem,dynamodb:GetItem,dynamodb:PutItem,dynamodb:Query,dynamodb:Scan table:zones',
    'ZoneIndex dynamodb:UpdateItem table:zone-cells',
    'TagsOfOrders dynamodb:GetItem,dynamodb:Scan,dynamodb:UpdateItem table:tags',
    'DevicesOfOrders dynamodb:GetItem,dynamodb:Scan,dynamodb:UpdateItem table:devices',
    'ReadQuarantine dynamodb:Query table:quarantine',
    `ArmNewTags dynamodb:PutItem table:watch if ${JSON.stringify({ 'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['minute', 'part', 'tags', 'expires_at'] }, StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' } })}`,
    'ReadZoneStates dynamodb:Query table:zone-state',
    'AuditChains dynamodb:PutItem,dynamodb:Query table:audit',
    `DataKey kms:Decrypt,kms:DescribeKey,kms:Encrypt,kms:GenerateDataKey key:data${via('dynamodb')}`,
    'HashSmsDestinations kms:GenerateMac key:HMAC_256',
    `ReadForces ssm:GetParameter arn:aws:ssm:${region}:<account>:parameter/vigil/${stage}/forces`,
    // Evidence export (docs/EVIDENCE.md): anchors listed and read, the manifest signed.
    `ListAnchors s3:ListBucket AWS::S3::Bucket:AnchorsBucket9A78CFB3 if ${JSON.stringify({ StringLike: { 's3:prefix': ['anchors/*'] } })}`,
    'ReadAnchors s3:GetObject,s3:GetObjectRetention */anchors/*',
    'SignEvidence kms:GetPublicKey,kms:Sign key:ECC_NIST_P256',
    `RegisterThings iot:CreateThing,iot:DeleteThing,iot:DescribeThing,iot:ListThingPrincipals arn:aws:iot:${region}:<account>:thing/*`,
    `RegisterCertificates iot:AttachPolicy,iot:AttachThingPrincipal,iot:DeleteCertificate,iot:DetachPolicy,iot:DetachThingPrincipal,iot:UpdateCertificate arn:aws:iot:${region}:<account>:cert/*`,
    'SignCsrsFindEndpoint iot:CreateCertificateFromCsr,iot:DescribeEndpoint *',
  ];

  test('a force\'s role: exactly what the vigil CLI calls, on this stage\'s resources, and its own topic', () => {
    assert.deepEqual(written(metRole), [
      'SubscribeToOwnForce sns:ListSubscriptionsByTopic,sns:Subscribe topic:operators-met',
      ...common,
    ]);
    assert.deepEqual(written(tvpRole), [
      'SubscribeToOwnForce sns:ListSubscriptionsByTopic,sns:Subscribe topic:operators-tvp',
      ...common,
    ]);
  });

  test('the national role: the same, every topic, and `vigil dlq` (list both queues, redrive rule-errors by invoking ingest)', () => {
    assert.deepEqual(written(nationalRole), [
      'SubscribeToEveryForce sns:ListSubscriptionsByTopic,sns:Subscribe topic:operators,topic:operators-met,topic:operators-tvp',
      'InspectDeadLetters sqs:ChangeMessageVisibility,sqs:GetQueueAttributes,sqs:GetQueueUrl,sqs:ReceiveMessage queue:alerts-dlq.fifo,queue:rule-errors',
      'RedriveRuleErrors sqs:DeleteMessage queue:rule-errors',
      `InvokeIngestAgain lambda:InvokeFunction function:vigil-${stage}-ingest`,
      `DeadLetterKey kms:Decrypt key:data${via('sqs')}`,
      ...common,
    ]);
    // Dead letters hold every force's messages: no force's role reaches them.
    for (const role of [metRole, tvpRole]) assert.ok(!statements.some((st) => st.role === role && st.Action.some((a) => a.startsWith('sqs:') || a.startsWith('lambda:'))));
  });

  test('no operator role reaches her positions, her notices, the claims or the histories; the quarantine only by Query, the watchdog\'s index only by the conditional put of a new tag', () => {
    const forbidden = ['victim-positions', 'notices', 'idempotency', 'last-seen']
      .map((t) => logicalId(s, 'AWS::DynamoDB::Table', 'TableName', `vigil-${stage}-${t}`));
    const table = (t: string) => logicalId(s, 'AWS::DynamoDB::Table', 'TableName', `vigil-${stage}-${t}`);
    for (const st of statements.filter((x) => [metRole, tvpRole, nationalRole].includes(x.role))) {
      for (const r of st.Resource) {
        assert.ok(!forbidden.includes(target(r)), `${st.Sid} reaches ${target(r)}`);
        assert.doesNotMatch(JSON.stringify(r), /table\/|victim-positions|notices|idempotency|last-seen/, `${st.Sid}`);
        if (target(r) === table('quarantine')) assert.deepEqual([st.Sid, st.Action], ['ReadQuarantine', ['dynamodb:Query']]);
        if (target(r) === table('watch')) {
          assert.deepEqual([st.Sid, st.Action], ['ArmNewTags', ['dynamodb:PutItem']]);
          assert.ok(st.Condition, 'attribute-limited');
        }
      }
    }
  });

  test('/vigil/<stage>/forces: exactly forces.json without $comment, each force with its topic\'s ARN; Standard tier', () => {
    const { $comment: _c, ...expected } = copy();
    expected.forces = expected.forces.map((f: any) => ({ ...f, operators_topic_arn: `<ref:${topicId(s, `vigil-${stage}-operators-${f.id}`)}>` }));
    assert.deepEqual(parameterDocument(s), expected);
    assert.deepEqual(Object.keys(parameterDocument(s).forces[0]), [...Object.keys(shipped.forces[0]), 'operators_topic_arn'], 'the file\'s order of fields');
    const p = R[parameterId].Properties;
    assert.equal(p.Type, 'String');
    assert.equal(p.Tier, 'Standard');
    assert.equal(target(s.json.Outputs.ForcesParameterName.Value), parameterId);
  });

  test('the alert function: VIGIL_FORCES_PARAMETER, GetParameter on that parameter only, Publish to every force\'s topic and the national one', () => {
    assert.equal(target(fn('alert').Environment.Variables.VIGIL_FORCES_PARAMETER), parameterId);
    const alertRole = target(fn('alert').Role);
    const publish = statements.filter((st) => st.role === alertRole && st.Action.includes('sns:Publish') && !st.Resource.includes('*'));
    assert.deepEqual(publish.flatMap((st) => st.Resource.map(target)).sort(), [met, national, tvp].sort());
    const ssm = statements.filter((st) => st.role === alertRole && st.Action.some((a) => a.startsWith('ssm:')));
    assert.equal(ssm.length, 1);
    assert.deepEqual(ssm[0].Action, ['ssm:GetParameter']);
    assert.deepEqual(ssm[0].Resource.map(named), [`arn:aws:ssm:${region}:<account>:parameter/vigil/${stage}/forces`]);
  });

  test('ingest and the watchdog: no forces parameter (the force of a record comes with the order\'s terms they read anyway), nothing on SSM or the topics', () => {
    for (const name of ['ingest', 'watchdog']) {
      assert.equal(fn(name).Environment.Variables.VIGIL_FORCES_PARAMETER, undefined, name);
      const role = target(fn(name).Role);
      assert.ok(!statements.some((st) => st.role === role && st.Action.some((a) => a.startsWith('ssm:'))), `${name} reads no parameter`);
      assert.ok(!statements.some((st) => st.role === role && st.Action.some((a) => a.startsWith('sns:'))), `${name} publishes nothing`);
    }
  });
});

describe('three forces (a file named by the forcesFile setting)', () => {
  const three = copy();
  three.forces.push(kent);
  const s = synth({ forcesFile: file('three.json', three), stage: 'ci' });

  test('three topics, three force roles and the national one, a parameter with the three', () => {
    const topics = Object.values(ofType(s, 'AWS::SNS::Topic')).map((t: any) => t.Properties.TopicName).sort();
    assert.deepEqual(topics, ['vigil-ci-operators', 'vigil-ci-operators-kent', 'vigil-ci-operators-met', 'vigil-ci-operators-tvp']);
    for (const id of ['met', 'tvp', 'kent']) {
      const role = roleId(s, `vigil-ci-operator-${id}`);
      assert.deepEqual(subscribable(s, role), [topicId(s, `vigil-ci-operators-${id}`)], id);
    }
    roleId(s, 'vigil-ci-national');
    const doc = parameterDocument(s);
    assert.deepEqual(doc.forces.map((f: any) => [f.id, f.operators_topic_arn]), ['met', 'tvp', 'kent'].map((id) => [id, `<ref:${topicId(s, `vigil-ci-operators-${id}`)}>`]));
    assert.equal(doc.forces[2].sms_sender_id, null);
    assert.equal(doc.default_force, 'met');
    const alertRole = target(s.json.Resources[logicalId(s, 'AWS::Lambda::Function', 'FunctionName', 'vigil-ci-alert')].Properties.Role);
    const notify = identityStatements(s).find((st) => st.role === alertRole && st.Sid === 'NotifyForces')!;
    assert.deepEqual(notify.Resource.map(target).sort(), ['kent', 'met', 'tvp'].map((id) => topicId(s, `vigil-ci-operators-${id}`)).sort());
  });

  test('VIGIL_FORCES_FILE names it too (the context setting wins)', () => {
    const e = synth({}, { VIGIL_FORCES_FILE: file('three-env.json', three) });
    assert.equal(e.forces.forces.length, 3);
    const c = synth({ forcesFile: FORCES_FILE }, { VIGIL_FORCES_FILE: file('three-env.json', three) });
    assert.equal(c.forces.forces.length, 2);
  });
});

describe('the parameter\'s tier follows the document\'s size', () => {
  /** n forces, each with a ring of `points` points. */
  const many = (n: number, points: number) => {
    const f = copy();
    f.forces = Array.from({ length: n }, (_, i) => {
      const ring = Array.from({ length: points - 1 }, (_, j) => {
        const a = (2 * Math.PI * j) / (points - 1);
        return [Number((-1 + 0.3 * Math.cos(a)).toFixed(5)), Number((52 + 0.2 * Math.sin(a)).toFixed(5))];
      });
      return { ...kent, id: `force-${i}`, name: `Force ${i}`, area: { type: 'Polygon', coordinates: [[...ring, ring[0]]] } };
    });
    f.default_force = 'force-0';
    return f;
  };

  const tier = (f: unknown, name: string) => {
    const t = synth({ forcesFile: file(name, f) });
    return t.json.Resources[logicalId(t, 'AWS::SSM::Parameter', 'Name', '/vigil/dev/forces')].Properties.Tier;
  };
  const bytes = (f: unknown) => runtimeDocumentMaxBytes(parseForces(f), 'dev', 'eu-west-2');

  test('Standard up to 4 KB with its ARNs at their longest, Advanced above; refused past 8 KB, saying what to do', () => {
    // The shipped file is far below: ~750 bytes.
    assert.ok(bytes(shipped) < 1024);
    const under = many(4, 40);
    assert.ok(bytes(under) > 4000 && bytes(under) <= 4096, String(bytes(under)));
    assert.equal(tier(under, 'under.json'), 'Standard');
    const over = many(4, 60);
    assert.ok(bytes(over) > 4096 && bytes(over) <= 8192, String(bytes(over)));
    assert.equal(tier(over, 'over.json'), 'Advanced');
    assert.throws(() => synth({ forcesFile: file('huge.json', many(8, 60)) }), /huge.json: the forces document would be up to \d+ bytes with its topic ARNs, over the 8192 bytes an SSM parameter holds: simplify the areas/);
  });
});
