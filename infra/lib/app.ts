// Builds the CDK app: settings from context and environment, resources from resources.json,
// the forces from forces.json.
// bin/vigil.ts (the `cdk` entry point) and the tests both build the app here, so the tests
// check exactly what `cdk synth` produces.

import * as path from 'node:path';
import { App, Tags } from 'aws-cdk-lib';
import { BUNDLING_STACKS } from 'aws-cdk-lib/cx-api';
import { VigilConfig, readConfig } from './config';
import { FORCES_FILE, Forces, checkDeployable, loadForces } from './forces';
import { Resources, loadResources } from './resources';
import { VigilStack } from './vigil-stack';

export interface BuiltApp {
  readonly app: App;
  readonly stack: VigilStack;
  readonly config: VigilConfig;
  readonly resources: Resources;
  readonly forces: Forces;
}

export function buildApp(options: { context?: Record<string, unknown>; env?: NodeJS.ProcessEnv; outdir?: string } = {}): BuiltApp {
  const env = options.env ?? process.env;
  const app = new App({ context: options.context, outdir: options.outdir });
  const config = readConfig(app.node, env);
  if (config.skipBundling) {
    // CDK's own switch: no stack is bundled, so RustFunction never runs cargo lambda. The
    // template is otherwise identical; VigilStack adds a rule that makes it undeployable.
    app.node.setContext(BUNDLING_STACKS, []);
  }
  const resources = loadResources();
  // infra/forces.json, or the file the forcesFile setting names (relative to the working
  // directory); names AWS would refuse for this stage fail here, before any construct.
  const forces = loadForces(config.forcesFile === undefined ? FORCES_FILE : path.resolve(config.forcesFile));
  checkDeployable(forces, config.stage);
  const stack = new VigilStack(app, `Vigil-${config.stage}`, {
    config,
    resources,
    forces,
    description: `Vigil (${config.stage}): GPS tag alerts for victim protection`,
    // The account is whatever the deploying credentials belong to; never written down.
    env: { account: env.CDK_DEFAULT_ACCOUNT, region: config.region },
  });
  Tags.of(app).add('project', 'vigil');
  Tags.of(app).add('stage', config.stage);
  return { app, stack, config, resources, forces };
}
