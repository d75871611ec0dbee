import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { duplicateKey, parseJson, syntaxErrorOffset } from '../../../src/config/json-text.js';

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

describe('duplicateKey', () => {
  const cases: [string, string, string | undefined][] = [
    ['no object', '[1, "a", null]', undefined],
    ['distinct names', '{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}', undefined],
    ['a name twice', '{"a": 1, "b": 2, "a": 3}', 'a'],
    ['twice in a nested object', '{"a": {"x": 1, "x": 2}}', 'x'],
    ['twice in an object inside a list', '{"l": [{"k": 1}, {"k": 1, "k": 2}]}', 'k'],
    ['the same name once escaped', '{"domain": "d", "d\\u006fmain": "e"}', 'domain'],
    ['the same name after a closed sibling object', '{"a": {}, "b": {"a": 1}, "a": 2}', 'a'],
    ['names that differ only in case', '{"a": 1, "A": 2}', undefined],
    ['a string value equal to a name', '{"a": "a", "b": "a"}', undefined],
  ];
  for (const [name, text, expected] of cases) {
    it(name, () => {
      assert.doesNotThrow(() => JSON.parse(text));
      assert.equal(duplicateKey(text), expected);
    });
  }
});
