// The police forces this deployment serves: infra/forces.json (docs/FORCES.md, issue 17).
//
// One definition, like resources.json is for the tables: the CDK app makes one operators'
// topic and one operator role per force from it, and the runtime parameter
// /vigil/<stage>/forces (the same document, each force with its topic's ARN); the local
// harness reads the same file. Like resources.json's loader, unknown fields are rejected: a
// field added to the file must be implemented where it is read, never silently ignored.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { INFRA_DIR } from './resources';

/** A force's id: its name in every record (docs/FORCES.md), in its role and topic names. */
export const FORCE_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** The scope of the national administrators (`VIGIL_FORCE=national`, the `national` group,
 * the role vigil-<stage>-national): never a force's id. */
export const NATIONAL = 'national';
/** Alphanumeric SMS sender ids: 3-11 letters and digits, at least one letter. */
export const SMS_SENDER_ID = /^(?=.*[A-Za-z])[A-Za-z0-9]{3,11}$/;
/** A language tag as the victims' messages are chosen by: `en`, `cy`, `pt-BR`. */
// The languages the victims' message templates exist in (vigil_core::Language).
export const LANGUAGE = /^(en|es|fr|de)$/;
/** IAM allows role names of at most 64 characters. */
const ROLE_NAME_MAX = 64;

/** A GeoJSON Polygon (WGS84 [lon, lat]) with its one ring, closed. */
export interface ForceArea {
  readonly type: 'Polygon';
  readonly coordinates: readonly (readonly (readonly [number, number])[])[];
}

export interface ForceDef {
  readonly id: string;
  readonly name: string;
  /** The sender id its victims' SMS carry, or null for the deployment's. */
  readonly sms_sender_id: string | null;
  readonly default_language: string;
  readonly audit_retention_years: number;
  readonly area: ForceArea;
}

export interface Forces {
  readonly default_force: string;
  readonly forces: readonly ForceDef[];
  /** The file as read, without `$comment`: what the runtime parameter carries (each force with
   * its topic's ARN added). */
  readonly document: { readonly default_force: unknown; readonly forces: readonly Record<string, unknown>[] } & Record<string, unknown>;
  /** Where it was read from, for messages. */
  readonly source: string;
}

/** The shipped file. */
export const FORCES_FILE = path.join(INFRA_DIR, 'forces.json');

/** Reads and checks a forces file (infra/forces.json unless another is named). */
export function loadForces(file = FORCES_FILE): Forces {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read the forces file (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
  return parseForces(raw, file);
}

/** Checks a parsed forces file; throws an error naming the file, the force and the field. */
export function parseForces(raw: unknown, source = 'forces.json'): Forces {
  const fail = (what: string): never => {
    throw new Error(`${source}: ${what}`);
  };
  const obj = (v: unknown, where: string, known: string[]): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where} must be an object`);
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) fail(`${where}: unknown field ${JSON.stringify(k)} (known: ${known.join(', ')})`);
    }
    for (const k of known.filter((k) => k !== '$comment')) if (!(k in o)) fail(`${where}: missing field ${JSON.stringify(k)}`);
    return o;
  };

  const top = obj(raw, 'the file', ['$comment', 'default_force', 'forces']);
  if (!Array.isArray(top.forces)) fail('forces must be a list');
  const list = top.forces as unknown[];
  if (list.length === 0) fail('forces is empty: a deployment serves at least one force');

  const seen = new Map<string, string>();
  const forces = list.map((v, i): ForceDef => {
    // Named by its id once that is known to be one, else by its place in the list.
    const rawId = (v as Record<string, unknown> | null)?.id;
    let where = typeof rawId === 'string' && FORCE_ID.test(rawId) ? `force ${JSON.stringify(rawId)}` : `forces[${i}]`;
    const f = obj(v, where, ['id', 'name', 'sms_sender_id', 'default_language', 'audit_retention_years', 'area']);
    const field = (name: string, rule: string): never => fail(`${where}: ${name} is ${JSON.stringify(f[name])}: ${rule}`);

    if (typeof f.id !== 'string' || !FORCE_ID.test(f.id)) field('id', 'must be 1-64 of A-Za-z0-9._-');
    const id = f.id as string;
    where = `force ${JSON.stringify(id)}`;
    if (id.toLowerCase() === NATIONAL) field('id', `"${NATIONAL}" is reserved for the national administrators' scope`);
    // IAM role names are unique whatever their case: "met" and "MET" would be one role.
    const key = id.toLowerCase();
    if (seen.has(key)) {
      const first = seen.get(key)!;
      fail(first === id ? `force ${JSON.stringify(id)} is declared twice` : `forces ${JSON.stringify(first)} and ${JSON.stringify(id)} differ only in case (their IAM roles would be one)`);
    }
    seen.set(key, id);

    if (typeof f.name !== 'string' || f.name.trim() === '') field('name', 'must be a non-empty string');
    if (f.sms_sender_id !== null && (typeof f.sms_sender_id !== 'string' || !SMS_SENDER_ID.test(f.sms_sender_id))) {
      field('sms_sender_id', 'must be null (the deployment\'s) or 3-11 letters and digits with at least one letter');
    }
    if (typeof f.default_language !== 'string' || !LANGUAGE.test(f.default_language)) {
      field('default_language', 'must be a language the victims\' messages exist in: en, es, fr or de');
    }
    const years = f.audit_retention_years;
    if (typeof years !== 'number' || !Number.isInteger(years) || years < 1 || years > 100) field('audit_retention_years', 'must be a whole number of years, 1 to 100');

    return {
      id,
      name: f.name as string,
      sms_sender_id: f.sms_sender_id as string | null,
      default_language: f.default_language as string,
      audit_retention_years: years as number,
      area: parseArea(f.area, `${where}: area`, fail),
    };
  });

  if (typeof top.default_force !== 'string' || !forces.some((f) => f.id === top.default_force)) {
    fail(`default_force ${JSON.stringify(top.default_force)} is not one of the forces (${forces.map((f) => f.id).join(', ')})`);
  }
  const { $comment: _comment, ...document } = top;
  return { default_force: top.default_force as string, forces, document: document as Forces['document'], source };
}

function parseArea(v: unknown, where: string, fail: (what: string) => never): ForceArea {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where} must be a GeoJSON Polygon object`);
  const a = v as Record<string, unknown>;
  for (const k of Object.keys(a)) {
    if (k !== 'type' && k !== 'coordinates') fail(`${where}: unknown field ${JSON.stringify(k)} (known: type, coordinates)`);
  }
  if (a.type !== 'Polygon') fail(`${where}.type is ${JSON.stringify(a.type)}: must be "Polygon"`);
  const rings = a.coordinates;
  if (!Array.isArray(rings) || rings.length !== 1) fail(`${where}.coordinates must hold exactly one ring (no holes)`);
  const ring = (rings as unknown[])[0];
  if (!Array.isArray(ring) || ring.length < 4) fail(`${where}: the ring must have at least 4 points (a closed triangle)`);
  const points = (ring as unknown[]).map((p, j): [number, number] => {
    const ok = Array.isArray(p) && p.length === 2 && p.every((c) => typeof c === 'number' && Number.isFinite(c));
    if (!ok) fail(`${where}: point ${j} is ${JSON.stringify(p)}: must be [lon, lat], two numbers`);
    const [lon, lat] = p as [number, number];
    if (lon < -180 || lon > 180 || lat < -90 || lat > 90) {
      fail(`${where}: point ${j} ${JSON.stringify(p)} is outside WGS84 (lon -180..180, lat -90..90; GeoJSON is [lon, lat])`);
    }
    return [lon, lat];
  });
  const [first, last] = [points[0], points[points.length - 1]];
  if (first[0] !== last[0] || first[1] !== last[1]) fail(`${where}: the ring is not closed (its first point ${JSON.stringify(first)} and last ${JSON.stringify(last)} differ)`);
  return { type: 'Polygon', coordinates: [points] };
}

/** `vigil-<stage>-operator-<id>`: the role a force's operators assume. A contract with the
 * CLI, which reads the force from the assumed-role ARN. */
export function operatorRoleName(stage: string, forceId: string): string {
  return `vigil-${stage}-operator-${forceId}`;
}

/** `vigil-<stage>-national`: the national administrators' role (every force). */
export function nationalRoleName(stage: string): string {
  return `vigil-${stage}-${NATIONAL}`;
}

/** `vigil-<stage>-operators-<id>`: a force's operators' topic. */
export function forceTopicName(stage: string, forceId: string): string {
  return `vigil-${stage}-operators-${forceId}`;
}

/** `/vigil/<stage>/forces`: the runtime parameter the functions read the forces from. */
export function forcesParameterName(stage: string): string {
  return `/vigil/${stage}/forces`;
}

/** What the file allows but this stage cannot deploy: names AWS would refuse. Throws naming
 * the force and the field. */
export function checkDeployable(forces: Forces, stage: string): void {
  for (const f of forces.forces) {
    const role = operatorRoleName(stage, f.id);
    if (role.length > ROLE_NAME_MAX) {
      throw new Error(`${forces.source}: force ${JSON.stringify(f.id)}: id is too long for stage ${stage}: its role ${role} would be ${role.length} characters, IAM allows ${ROLE_NAME_MAX} (ids up to ${ROLE_NAME_MAX - operatorRoleName(stage, '').length} characters here)`);
    }
    // SNS topic names are letters, digits, '-' and '_' only.
    if (f.id.includes('.')) {
      throw new Error(`${forces.source}: force ${JSON.stringify(f.id)}: id contains '.', which SNS topic names do not allow (its topic would be ${forceTopicName(stage, f.id)}); use '-' or '_'`);
    }
  }
}

/** SSM String parameters: 4 KB in the Standard tier, 8 KB in the Advanced (which costs). */
export const PARAMETER_STANDARD_MAX_BYTES = 4096;
export const PARAMETER_ADVANCED_MAX_BYTES = 8192;

/** The runtime document of /vigil/<stage>/forces: the file without `$comment`, each force
 * with one more field, `operators_topic_arn`, its topic's ARN (`arnOf`, a token in the stack). */
export function runtimeDocument(forces: Forces, arnOf: (forceId: string) => string): Record<string, unknown> {
  return {
    ...forces.document,
    forces: forces.document.forces.map((f, i) => ({ ...f, operators_topic_arn: arnOf(forces.forces[i].id) })),
  };
}

/** The largest the runtime document can be once deployed, in bytes: each topic ARN at its
 * longest (the longest partition name, a 12-digit account). */
export function runtimeDocumentMaxBytes(forces: Forces, stage: string, region: string): number {
  const arn = (id: string) => `arn:aws-us-gov:sns:${region}:000000000000:${forceTopicName(stage, id)}`;
  return Buffer.byteLength(JSON.stringify(runtimeDocument(forces, arn)), 'utf8');
}
