// Many forces on one deployment (issue 17, docs/FORCES.md): infra/forces.json is checked as
// strictly as resources.json, and a mistake fails synthesis naming the force and the field.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { FORCES_FILE, checkDeployable, loadForces, parseForces } from '../lib/forces';
import { synth } from './helpers';

const shipped = JSON.parse(readFileSync(FORCES_FILE, 'utf8'));
const copy = () => JSON.parse(JSON.stringify(shipped));
const dir = mkdtempSync(path.join(tmpdir(), 'vigil-forces-'));
/** Writes a forces file to a temporary folder; returns its path. */
const file = (name: string, content: unknown) => {
  const p = path.join(dir, name);
  writeFileSync(p, JSON.stringify(content, null, 2));
  return p;
};

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

  test('default_language: ^[a-z]{2,3}(-[A-Z]{2})?$', () => {
    for (const l of ['EN', 'english', 'en_GB', 'en-gb', '']) bad((f) => { f.forces[0].default_language = l; }, /force "met": default_language is .*: must be a language/);
    for (const l of ['cy', 'pt-BR', 'haw']) {
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
