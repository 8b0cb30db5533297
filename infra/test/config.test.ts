// Settings come from CDK context or the environment (context wins); the defaults deploy a
// London 'dev' stage; bad values fail with the setting's name.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readConfig } from '../lib/config';
import { logicalId, smsSettingsCalls, synth } from './helpers';

const ctx = (c: Record<string, unknown>) => ({ tryGetContext: (k: string) => c[k] });

describe('settings', () => {
  test('defaults: stage dev, eu-west-2, no sender ID, 90-day logs', () => {
    const c = readConfig(ctx({}), {});
    assert.equal(c.stage, 'dev');
    assert.equal(c.region, 'eu-west-2');
    assert.equal(c.smsSenderId, undefined);
    assert.equal(c.logRetentionDays, 90);
    assert.equal(c.skipBundling, false);
    assert.equal(c.forcesFile, undefined, 'infra/forces.json');
  });

  test('the CLI\'s CDK_DEFAULT_REGION (us-east-1 without a profile) does not pick the region', () => {
    assert.equal(readConfig(ctx({}), { CDK_DEFAULT_REGION: 'us-east-1' }).region, 'eu-west-2');
  });

  test('environment variables, and context over environment', () => {
    const env = { VIGIL_STAGE: 'ci', VIGIL_REGION: 'eu-west-1', VIGIL_SMS_SENDER_ID: 'VigilEnv' };
    assert.deepEqual(
      (({ stage, region, smsSenderId }) => ({ stage, region, smsSenderId }))(readConfig(ctx({}), env)),
      { stage: 'ci', region: 'eu-west-1', smsSenderId: 'VigilEnv' },
    );
    const c = readConfig(ctx({ stage: 'prod', region: 'eu-west-2', smsSenderId: 'VigilUK', logRetentionDays: '365' }), env);
    assert.deepEqual([c.stage, c.region, c.smsSenderId, c.logRetentionDays], ['prod', 'eu-west-2', 'VigilUK', 365]);
  });

  test('bad values are refused with the setting named', () => {
    assert.throws(() => readConfig(ctx({ stage: 'my-stage' }), {}), /setting stage .*letters and digits/);
    assert.throws(() => readConfig(ctx({ region: 'London' }), {}), /setting region/);
    assert.throws(() => readConfig(ctx({ smsSenderId: '+447700900123' }), {}), /setting smsSenderId/);
    assert.throws(() => readConfig(ctx({ logRetentionDays: '45' }), {}), /setting logRetentionDays .*one of/);
    assert.throws(() => readConfig(ctx({ ingestReservedConcurrency: '0' }), {}), /ingestReservedConcurrency/);
    assert.throws(() => readConfig(ctx({ skipBundling: 'yes' }), {}), /skipBundling/);
    assert.throws(() => readConfig(ctx({ smsCountries: 'GB,United Kingdom' }), {}), /smsCountries/);
    assert.deepEqual(readConfig(ctx({}), {}).smsCountries, ['GB']);
    assert.deepEqual(readConfig(ctx({}), { VIGIL_SMS_COUNTRIES: 'gb, ie' }).smsCountries, ['GB', 'IE']);
  });

  test('iotDataEndpoint: none by default (the SDK\'s endpoint for the region); a host name, never a URL', () => {
    assert.equal(readConfig(ctx({}), {}).iotDataEndpoint, undefined);
    const host = 'a1b2c3d4e5f6g7-ats.iot.eu-west-2.amazonaws.com';
    assert.equal(readConfig(ctx({}), { VIGIL_IOT_DATA_ENDPOINT: host }).iotDataEndpoint, host);
    assert.equal(readConfig(ctx({ iotDataEndpoint: host }), { VIGIL_IOT_DATA_ENDPOINT: 'other-ats.iot.eu-west-2.amazonaws.com' }).iotDataEndpoint, host);
    for (const bad of [`https://${host}`, `${host}:443`, `${host}/`, 'localhost', 'A1B2-ats.iot.eu-west-2.amazonaws.com', 'a b.amazonaws.com']) {
      assert.throws(() => readConfig(ctx({ iotDataEndpoint: bad }), {}), /setting iotDataEndpoint .*host name/, bad);
    }
  });
});

describe('context overrides reach the template', () => {
  const s = synth({ stage: 'prod', region: 'eu-west-1', smsSenderId: 'VigilUK', smsMonthlySpendLimitUsd: '500', logRetentionDays: '365', iotDataEndpoint: 'a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com' });

  test('stage names every resource; region is the stack\'s', () => {
    assert.equal(s.stack.stackName, 'Vigil-prod');
    assert.equal(s.stack.region, 'eu-west-1');
    logicalId(s, 'AWS::DynamoDB::Table', 'TableName', 'vigil-prod-orders');
    logicalId(s, 'AWS::SQS::Queue', 'QueueName', 'vigil-prod-alerts.fifo');
    logicalId(s, 'AWS::Lambda::Function', 'FunctionName', 'vigil-prod-ingest');
    logicalId(s, 'AWS::IoT::Policy', 'PolicyName', 'vigil-prod-tag');
    logicalId(s, 'AWS::IoT::Policy', 'PolicyName', 'vigil-prod-victim-device');
    const rules = Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::IoT::TopicRule').map((r) => r.Properties.RuleName).sort();
    assert.deepEqual(rules, ['vigil_prod_ingest', 'vigil_prod_victim']);
    assert.match(JSON.stringify(s.json), /\$aws\/rules\/vigil_prod_ingest\/tags\//, 'the tag policy names this stage\'s Basic Ingest topic');
    assert.match(JSON.stringify(s.json), /\$aws\/rules\/vigil_prod_victim\/victims\//, 'the victim-device policy names this stage\'s Basic Ingest topic');
    assert.doesNotMatch(JSON.stringify(s.json), /vigil[-_]dev[-_]/);
    assert.match(JSON.stringify(s.json), /eu-west-1/);
  });

  test('the sender ID and the spend limit reach the alert function and the account\'s SMS settings', () => {
    const alert = s.json.Resources[logicalId(s, 'AWS::Lambda::Function', 'FunctionName', 'vigil-prod-alert')];
    assert.equal(alert.Properties.Environment.Variables.VIGIL_SMS_SENDER_ID, 'VigilUK');
    assert.deepEqual(smsSettingsCalls(s).map((c) => c.parameters.attributes), [
      { DefaultSMSType: 'Transactional', MonthlySpendLimit: '500', DefaultSenderID: 'VigilUK' },
      { DefaultSMSType: 'Transactional', MonthlySpendLimit: '500', DefaultSenderID: 'VigilUK' },
    ]);
  });

  // Without the setting the variable is absent (stack.test.ts lists the alert function's
  // environment exactly), and aws-config uses the SDK's endpoint for the region.
  test('iotDataEndpoint reaches the alert function as AWS_ENDPOINT_URL_IOT_DATA_PLANE (https), and only the alert function', () => {
    const alert = s.json.Resources[logicalId(s, 'AWS::Lambda::Function', 'FunctionName', 'vigil-prod-alert')];
    assert.equal(alert.Properties.Environment.Variables.AWS_ENDPOINT_URL_IOT_DATA_PLANE, 'https://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com');
    const ingest = s.json.Resources[logicalId(s, 'AWS::Lambda::Function', 'FunctionName', 'vigil-prod-ingest')];
    assert.equal(ingest.Properties.Environment.Variables.AWS_ENDPOINT_URL_IOT_DATA_PLANE, undefined);
  });

  test('manageSmsSettings=false: another stage owns the account\'s SMS settings; this one prints the command', () => {
    const other = synth({ stage: 'test', manageSmsSettings: 'false', smsMonthlySpendLimitUsd: '50' });
    assert.deepEqual(smsSettingsCalls(other), []);
    assert.match(JSON.stringify(other.json.Outputs.SmsSettingsCommand.Value), /set-sms-attributes .*MonthlySpendLimit=50/);
    assert.throws(() => readConfig(ctx({ manageSmsSettings: 'no' }), {}), /setting manageSmsSettings .*true or false/);
    assert.equal(readConfig(ctx({}), {}).manageSmsSettings, true);
  });

  test('spend alarm at 80% of the limit; log retention from context', () => {
    const alarms = Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');
    assert.equal(alarms.find((a) => a.Properties.MetricName === 'SMSMonthToDateSpentUSD')!.Properties.Threshold, 400);
    for (const g of Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::Logs::LogGroup')) assert.equal(g.Properties.RetentionInDays, 365);
  });
});
