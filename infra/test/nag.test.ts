// cdk-nag's AwsSolutions and Serverless packs on the whole app (issue 16.16). Every finding is
// fixed or acknowledged on its construct with the reason (Validations.of(c).acknowledge, next
// to the construct in lib/); a new unacknowledged finding makes synthesis fail, and this test.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { buildApp } from '../lib/app';

describe('cdk-nag', () => {
  test('AwsSolutions and Serverless: no finding left unacknowledged', () => {
    const outdir = mkdtempSync(path.join(tmpdir(), 'vigil-nag-'));
    const { app } = buildApp({ context: { stage: 'dev', skipBundling: 'true' }, env: {}, outdir });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
    assert.doesNotThrow(() => app.synth(), 'cdk-nag findings (see the validation report in the message)');
  });
});
