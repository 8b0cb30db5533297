// Shared by the tests: synthesize the app exactly as bin/vigil.ts does, minus the Rust build
// (skipBundling uses CDK's own bundling switch), and read the template by logical names.

import { Template } from 'aws-cdk-lib/assertions';
import { BuiltApp, buildApp } from '../lib/app';

export interface Synth extends BuiltApp {
  readonly template: Template;
  /** The whole template as plain JSON. */
  readonly json: { Resources: Record<string, { Type: string; Properties?: any; Metadata?: any; DeletionPolicy?: string }>; [k: string]: any };
}

/** Synthesizes with the given context (and an empty environment unless one is given). */
export function synth(context: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Synth {
  const built = buildApp({ context: { skipBundling: 'true', ...context }, env });
  const template = Template.fromStack(built.stack);
  return { ...built, template, json: template.toJSON() as Synth['json'] };
}

/** Resources of one type, by logical id. */
export function ofType(s: Synth, type: string): Record<string, any> {
  return Object.fromEntries(Object.entries(s.json.Resources).filter(([, r]) => r.Type === type));
}

/** The SNS calls of the stack's SMS settings resource (lib/sms.ts): its Create and Update, in
 * that order; none when the stack does not manage the settings. */
export function smsSettingsCalls(s: Synth): { service: string; action: string; parameters: any }[] {
  return Object.values(ofType(s, 'Custom::VigilSmsSettings')).flatMap((r) =>
    ['Create', 'Update', 'Delete'].filter((k) => r.Properties[k] !== undefined).map((k) => JSON.parse(joined(r.Properties[k]))));
}

/** A CloudFormation string that may be an Fn::Join of literals and tokens (tokens become "?"). */
function joined(v: unknown): string {
  if (typeof v === 'string') return v;
  const j = (v as any)?.['Fn::Join'];
  if (!j) throw new Error(`not a string or Fn::Join: ${JSON.stringify(v)}`);
  return (j[1] as unknown[]).map((p) => (typeof p === 'string' ? p : '?')).join(j[0]);
}

/** Logical id of the resource whose property `prop` equals `value` (e.g. TableName). */
export function logicalId(s: Synth, type: string, prop: string, value: unknown): string {
  const hits = Object.entries(ofType(s, type)).filter(([, r]) => r.Properties?.[prop] === value);
  if (hits.length !== 1) throw new Error(`expected one ${type} with ${prop}=${JSON.stringify(value)}, found ${hits.length}`);
  return hits[0][0];
}

export interface Statement {
  readonly policy: string;
  readonly role: string;
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string[];
  readonly Resource: unknown[];
  readonly Condition?: Record<string, any>;
}

const asList = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** Every statement of every identity policy (AWS::IAM::Policy and inline role policies). */
export function identityStatements(s: Synth): Statement[] {
  const out: Statement[] = [];
  const add = (policy: string, roles: unknown[], doc: any) => {
    for (const st of asList(doc.Statement) as any[]) {
      for (const r of roles) {
        out.push({ ...st, policy, role: (r as any).Ref ?? String(r), Action: asList(st.Action) as string[], Resource: asList(st.Resource) });
      }
    }
  };
  for (const [id, r] of Object.entries(ofType(s, 'AWS::IAM::Policy'))) add(id, asList(r.Properties.Roles), r.Properties.PolicyDocument);
  for (const [id, r] of Object.entries(ofType(s, 'AWS::IAM::ManagedPolicy'))) add(id, asList(r.Properties.Roles), r.Properties.PolicyDocument);
  for (const [id, r] of Object.entries(ofType(s, 'AWS::IAM::Role'))) {
    for (const p of asList(r.Properties.Policies) as any[]) add(`${id}/${p.PolicyName}`, [{ Ref: id }], p.PolicyDocument);
  }
  return out;
}

/** The logical id a resource reference points at ({Ref} or {Fn::GetAtt}), or the literal. */
export function target(ref: unknown): string {
  if (typeof ref === 'string') return ref;
  const r = ref as any;
  if (r?.Ref) return r.Ref;
  if (r?.['Fn::GetAtt']) return r['Fn::GetAtt'][0];
  return JSON.stringify(ref);
}
