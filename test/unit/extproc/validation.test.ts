import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import type { ValidateRules } from '../../../src/extproc/config.js';
import { escapePointerToken, hasRequestBody, MAX_JSON_DEPTH, needsBody, problemDocument, validateBody, validateHeaders } from '../../../src/extproc/validation.js';

const schema = new Ajv({ allErrors: true }).compile({ type: 'object', required: ['name'], properties: { name: { type: 'string' } }, additionalProperties: false });
const RULES: ValidateRules = {
  contentTypes: ['application/json', 'application/*'], maxBodyBytes: 10, jsonSchema: { file: 'x.json', validate: schema },
  requiredHeaders: ['x-client-version'], requiredQueryParams: ['q'],
};
const base = { headers: [['x-client-version', '1'], ['content-type', 'application/json; charset=utf-8']] as [string, string][], query: [['q', '1']] as [string, string][], hasBody: true };

describe('validateHeaders', () => {
  const table: [string, Partial<typeof base>, number | undefined][] = [
    ['all present', {}, undefined],
    ['missing header', { headers: [['content-type', 'application/json']] }, 400],
    ['missing query', { query: [] }, 400],
    ['wrong media type', { headers: [['x-client-version', '1'], ['content-type', 'text/plain']] }, 415],
    ['no content type with a body', { headers: [['x-client-version', '1']] }, 415],
    ['wildcard media type', { headers: [['x-client-version', '1'], ['content-type', 'application/xml']] }, undefined],
    ['no body: content type not checked', { headers: [['x-client-version', '1']], hasBody: false }, undefined],
    ['content-length over the limit', { headers: [['x-client-version', '1'], ['content-type', 'application/json'], ['content-length', '11']] }, 413],
  ];
  for (const [name, facts, status] of table) {
    it(name, () => assert.equal(validateHeaders(RULES, { ...base, ...facts })?.status, status));
  }
  it('names every missing parameter', () => {
    const p = validateHeaders(RULES, { ...base, headers: [], query: [] });
    assert.deepEqual(p?.errors.map((e) => `${e.location}:${e.name}`), ['header:x-client-version', 'query:q']);
  });
});

describe('body', () => {
  it('has a body unless headers end the stream or content-length is 0', () => {
    assert.equal(hasRequestBody([], false), true);
    assert.equal(hasRequestBody([], true), false);
    assert.equal(hasRequestBody([['content-length', '0']], false), false);
  });
  it('asks for the body only when a rule needs its bytes', () => {
    assert.equal(needsBody(RULES, base), true);
    assert.equal(needsBody({ ...RULES, jsonSchema: undefined }, base), true, 'size limit without content-length');
    assert.equal(needsBody({ ...RULES, jsonSchema: undefined }, { ...base, headers: [['content-length', '5']] }), false);
    assert.equal(needsBody(RULES, { ...base, hasBody: false }), false);
  });
  const table: [string, string, number | undefined, string[]][] = [
    ['truncated JSON', '{"name":"a', 400, ['']],
    ['wrong type', '{"name":1}', 400, ['/name']],
    ['too large', '{"name":"abcdefghij"}', 413, ['']],
    ['not JSON', '{nam', 400, ['']],
    ['missing and extra', '{"x":1}', 400, ['/name', '/x']],
  ];
  for (const [name, text, status, pointers] of table) {
    it(name, () => {
      const p = validateBody(RULES, Buffer.from(text));
      assert.equal(p?.status, status);
      if (p && p.status === 400 && pointers[0] !== '') assert.deepEqual(p.errors.map((e) => e.name).sort(), pointers);
    });
  }
  it('an invalid JSON body is refused without quoting it (V8\'s message does: a password in the body would be answered and logged)', () => {
    for (const text of ['{"user": "u", "password": hunter2}', '{"password": "hunter2', '{hunter2', '[1, hunter2]']) {
      const p = validateBody({ ...RULES, maxBodyBytes: undefined }, Buffer.from(text));
      assert.equal(p?.type, 'urn:portcullis:problem:invalid-json', text);
      assert.match(p?.detail ?? '', /^not valid JSON( \(at position \d+\))?$/, text);
      assert.ok(!JSON.stringify(p).includes('hunter'), JSON.stringify(p));
    }
  });
  it(`refuses a body nested deeper than ${MAX_JSON_DEPTH} levels before a recursive schema walks it`, () => {
    const recursive = { file: 'r.json', validate: new Ajv().compile({ type: 'array', items: { $ref: '#' } }) };
    const rules = { ...RULES, maxBodyBytes: undefined, jsonSchema: recursive };
    const nested = (n: number): Buffer => Buffer.from('['.repeat(n) + ']'.repeat(n));
    assert.equal(validateBody(rules, nested(MAX_JSON_DEPTH)), undefined);
    assert.equal(validateBody(rules, nested(MAX_JSON_DEPTH + 1))?.type, 'urn:portcullis:problem:too-deep');
    // Deep enough to overflow the stack inside Ajv, were it asked.
    assert.equal(validateBody(rules, nested(200_000))?.status, 400);
  });


  // errors[].name is a JSON pointer into the body, also for names that hold `/` or `~` (RFC 6901).
  const pointerRules = { ...RULES, maxBodyBytes: undefined, jsonSchema: { file: 'p.json', validate: new Ajv({ allErrors: true }).compile({
    type: 'object', required: ['a/b', 'c~d'], additionalProperties: false,
    properties: { 'a/b': { type: 'string' }, 'c~d': { type: 'string' }, 'e/f': { type: 'string' }, n: { type: 'object', required: ['~/'] } },
  }) } };
  const pointers: [string, string, string[]][] = [
    ['missing names with / and ~', '{"a/b":"x"}', ['/c~0d']],
    ['an additional name with / and ~', '{"a/b":"x","c~d":"y","x/y~z":1}', ['/x~1y~0z']],
    ['a wrong type under a name with /', '{"a/b":1,"c~d":"y"}', ['/a~1b']],
    ['a missing name nested under one', '{"a/b":"x","c~d":"y","n":{}}', ['/n/~0~1']],
    ['every kind at once', '{"e/f":1,"x/y~z":2}', ['/a~1b', '/c~0d', '/e~1f', '/x~1y~0z']],
  ];
  for (const [name, text, expected] of pointers) {
    it(`names with JSON pointers: ${name}`, () => {
      assert.deepEqual(validateBody(pointerRules, Buffer.from(text))?.errors.map((e) => e.name).sort(), expected);
    });
  }
  const tokens: [string, string][] = [['plain', 'plain'], ['a/b', 'a~1b'], ['c~d', 'c~0d'], ['~1', '~01'], ['/~', '~1~0'], ['', '']];
  for (const [raw, escaped] of tokens) it(`escapes the pointer token ${JSON.stringify(raw)} as ${JSON.stringify(escaped)}`, () => assert.equal(escapePointerToken(raw), escaped));

  it('accepts a valid body', () => assert.equal(validateBody({ ...RULES, maxBodyBytes: 100 }, Buffer.from('{"name":"alice"}')), undefined));
  it('writes an RFC 9457 document', () => {
    const p = validateBody(RULES, Buffer.from('{"x":1}'))!;
    const doc = JSON.parse(problemDocument(p, '/users', 'r1').toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc), ['type', 'title', 'status', 'detail', 'instance', 'request_id', 'errors']);
    assert.equal(doc['status'], 400);
    assert.equal(doc['instance'], '/users');
  });
});
