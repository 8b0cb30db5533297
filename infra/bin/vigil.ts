// `cdk synth` / `cdk deploy` entry point (cdk.json: npx tsx bin/vigil.ts). Settings: lib/config.ts.
import { buildApp } from '../lib/app';

buildApp().app.synth();
