import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { iJsonFault, parseJson, syntaxErrorOffset } from '../../../src/config/json-text.js';

describe('parseJson', () => {
  it('parses valid JSON', () => assert.deepEqual(parseJson('{"keys": [1]}'), { ok: true, value: { keys: [1] } }));

  const rows: [string, string, number, number][] = [
    ['a missing comma on line 3', '{"keys": [\n  {"kty": "RSA"}\n  {"kty": "EC"}\n]}', 3, 3],
    ['a bad token on line 1', '{"a": tru}', 1, 7],
    ['cut short on line 2', '{"keys": [\n  {"kty": "RSA"', 2, 16],
    ['empty', '', 1, 1],
    ['a trailing comma', '{"a": 1,\n}', 2, 1],
    ['a second document', '{"a": 1}\n{"b": 2}', 2, 1],
    ['a bad escape', '{"a": "x\\qy"}', 1, 9],
    ['a control character in a string', '{"a": "x\ty"}', 1, 9],
    ['a leading zero', '[01]', 1, 3],
    ['a single quote', "{'a': 1}", 1, 2],
    ['a missing colon', '{"a" 1}', 1, 6],
    ['a wrong closer', '{"a": [1, 2}', 1, 12],
    ['deep and unclosed', '['.repeat(100_000), 1, 100_001],
  ];
  for (const [name, text, line, column] of rows) {
    it(name, () => {
      const parsed = parseJson(text);
      assert.ok(!parsed.ok);
      assert.deepEqual([parsed.line, parsed.column], [line, column], parsed.message);
      assert.doesNotMatch(parsed.message, /position/);
    });
  }

  it('finds each cut of a valid document at its end, or at the start of the token it cuts', () => {
    const valid = '{"keys": [{"kty": "RSA", "n": "a\\u00e9\\"b", "e": 65537, "x": [-1.5e+3, true, null, {}, []]}]}';
    assert.ok(parseJson(valid).ok);
    assert.equal(syntaxErrorOffset(valid), valid.length);
    for (let cut = 0; cut < valid.length; cut++) {
      const offset = syntaxErrorOffset(valid.slice(0, cut));
      assert.ok(offset <= cut && offset >= cut - 7, `${valid.slice(0, cut)}: ${offset}`);
    }
  });
});

describe('iJsonFault: JSON that JSON.parse takes and I-JSON (RFC 7493) does not, table', () => {
  const table: [text: string, fault: boolean][] = [
    ['{"a":1,"b":2}', false],
    ['{"a":1,"a":1}', true],
    ['{"a":1,"\\u0061":2}', true],
    ['{"a":{"a":{"a":1}}}', false],
    ['{"a":[{"b":1},{"b":1}]}', false],
    ['{"a":[{"b":1,"b":2}]}', true],
    ['{"a":"a","b":"a"}', false],
    ['{"a":"\\"","\\"":1}', false],
    ['{"a\\\\":1,"a\\\\":1}', true],
    ['{"a":{},"b":{},"a":[]}', true],
    ['{ "a" : 1 , "a" : 2 }', true],
    ['{"__proto__":1,"__proto__":2}', true],
    ['{"a":"\\ud83d\\ude00"}', false],
    ['{"a":"😀"}', false],
    ['{"a":"\\ud83d"}', true],
    ['{"a":"\\ude00x"}', true],
    ['{"\\udc00":1}', true],
    ['{"a":1.7976931348623157e308,"b":-1e-400,"c":-0,"d":123456789012345678901234567890}', false],
    ['{"a":2e308}', true],
    ['{"a":-1E309}', true],
    ['{"a":[true,false,null,1e2]}', false],
    [`{"a":${'9'.repeat(308)}}`, false],
    [`{"a":${'9'.repeat(309)}}`, true],
    [`{"a":-${'9'.repeat(309)}}`, true],
  ];
  for (const [text, fault] of table) it(text.length > 80 ? `${text.slice(0, 80)}…` : text, () => assert.equal(iJsonFault(text) !== undefined, fault, iJsonFault(text)));
});
