import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { callerKey, keyHost, pathKey, splitPath, variantKey, varyValue } from '../../../src/extproc/cache-key.js';

describe('splitPath', () => {
  // raw, normalized path, whether raw was already normal, the query as keyed (by name; a name's values in order).
  // Normalized as ext_authz normalizes (src/shared/normalize-path.ts); what it refuses is in the next table.
  const table: [string, string, boolean, string][] = [
    ['/a/b', '/a/b', true, ''],
    ['/a/./b/../c', '/a/c', false, ''],
    ['/a/b/..', '/a/', false, ''],
    ['/../x', '/x', false, ''],
    ['/%7Euser/%c3%a9', '/~user/%C3%A9', false, ''],
    ['/caf\u00c3\u00a9', '/caf%C3%A9', false, ''],
    ['/a/%2e%2e/b', '/b', false, ''],
    ['/p?b=2&a=1', '/p', true, 'a=1&b=2'],
    ['/p?a=%7e&a=1', '/p', true, 'a=~&a=1'],
    ['/p?id=2&id=1', '/p', true, 'id=2&id=1'],
    ['/p?b=1&a=2&b=0&a', '/p', true, 'a=2&a&b=1&b=0'],
    ['/p?&&x', '/p', true, 'x'],
    ['/p#frag', '/p', true, ''],
    ['/a//b/', '/a/b/', false, ''],
    ['/a.b/.well-known/c..d', '/a.b/.well-known/c..d', true, ''],
    ['/x/.', '/x/', false, ''],
    ['/p?', '/p', true, ''],
    ['/p?x=1;y=2', '/p', true, 'x=1;y=2'],
  ];
  for (const [raw, path, normal, sorted] of table) {
    it(`${raw} → ${path} (${normal ? 'normal' : 'normalized'}) ? ${sorted}`, () => {
      const s = splitPath(raw);
      assert.equal(s.path, path);
      assert.equal(s.normal, normal);
      assert.equal(s.sortedQuery, sorted);
    });
  }
  // Refused: kept as sent (without the query), never normal, so never cached; the route is chosen on its readings.
  const refused: [string, string, string][] = [
    ['/api/orders;x', '/api/orders;x', 'semicolon (path parameter) in path'],
    ['/api/orders%2Fx?q=1', '/api/orders%2Fx', 'encoded slash or backslash in path'],
    ['/api/%252e%252e/orders', '/api/%252e%252e/orders', 'double-encoded percent-escape (%25 before two hex digits) in path'],
    ['/a%C0%AE', '/a%C0%AE', 'overlong UTF-8 escape in path'],
    ['/a\u00c0\u00ae', '/a\u00c0\u00ae', 'overlong UTF-8 escape in path'],
    ['', '', 'path does not start with /'],
    ['a/b', 'a/b', 'path does not start with /'],
  ];
  for (const [raw, path, reason] of refused) {
    it(`${raw}: refused (${reason})`, () => {
      const s = splitPath(raw);
      assert.deepEqual([s.path, s.normal, s.refused], [path, false, reason]);
    });
  }
  it('decodes query parameters for validation', () => {
    assert.deepEqual(splitPath('/s?q=a+b&x=%C3%A9&flag').query, [['q', 'a b'], ['x', 'é'], ['flag', '']]);
  });
});

describe('keys', () => {
  it('the path key depends on host (case-insensitive) and path only', () => {
    assert.equal(pathKey('API.example', '/a'), pathKey('api.example', '/a'));
    assert.notEqual(pathKey('api.example', '/a'), pathKey('api.example', '/b'));
    assert.notEqual(pathKey('a.example', '/a'), pathKey('b.example', '/a'));
  });
  // RFC 3986 §6.2.3: a default port, given or left out, names the same URI.
  const hosts: [string, string | undefined, string][] = [
    ['shop:80', undefined, 'shop'], ['SHOP:80', 'http', 'shop'], ['shop:443', undefined, 'shop'], ['shop:443', 'https', 'shop'],
    ['shop:443', 'http', 'shop:443'], ['shop:80', 'https', 'shop:80'], ['shop:8080', undefined, 'shop:8080'],
    ['shop:', 'http', 'shop'], ['shop:0080', 'HTTP', 'shop'], ['shop', 'https', 'shop'],
    ['[::1]:80', 'http', '[::1]'], ['[::80]', 'http', '[::80]'], ['[::1]:8443', 'https', '[::1]:8443'], ['10.0.0.1:443', 'https', '10.0.0.1'],
  ];
  for (const [host, scheme, expected] of hosts) {
    it(`the path key's host: ${host} (${scheme ?? 'scheme unknown'}) is ${expected}`, () => {
      assert.equal(keyHost(host, scheme), expected);
      assert.equal(pathKey(host, '/a', scheme) === pathKey(expected, '/a', scheme), true);
    });
  }

  it('the variant depends on the query and the caller', () => {
    assert.notEqual(variantKey('a=1', ''), variantKey('a=2', ''));
    assert.notEqual(variantKey('a=1', 'id:x'), variantKey('a=1', 'id:y'));
  });
  it('the caller is the identity, else a hash of the credentials, never the raw value', () => {
    assert.match(callerKey('user_id=alice', ['Bearer t']), /^id:[0-9a-f]{64}$/);
    const cred = callerKey(undefined, ['Bearer secret', undefined]);
    assert.match(cred, /^cred:[0-9a-f]{64}$/);
    assert.ok(!cred.includes('secret'));
    assert.notEqual(cred, callerKey(undefined, ['Bearer other']));
    assert.equal(callerKey(undefined, [undefined, '']), 'anonymous');
  });
  it('Vary values are compared trimmed with whitespace collapsed', () => {
    assert.equal(varyValue('  gzip,   br '), 'gzip, br');
    assert.equal(varyValue(undefined), null);
  });
});
