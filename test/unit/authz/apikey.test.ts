import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { evaluateApiKey, keyParameterIn, parseKeysFile, parseKeysFileOffThread } from '../../../src/authz/apikey.js';
import { ConfigError } from '../../../src/config/errors.js';
import { normalizePath } from '../../../src/shared/normalize-path.js';
import { input } from './support.js';

const A = 'pk_alpha-key-for-tests-0000000000000000000000';
const B = 'pk_bravo-key-for-tests-0000000000000000000000';
const sha = (k: string): string => createHash('sha256').update(k).digest('hex');
const KEYS = parseKeysFile(`- { id: alpha-1, sha256: ${sha(A)}, owner: alice }\n- { id: bravo-1, sha256: ${sha(B)}, owner: bob }\n`, 'keys.yaml');
const SETTINGS = { header: 'x-api-key', query: 'api_key' };

describe('evaluateApiKey: one key or none', () => {
  // The outcome kind and, when invalid, its reason; a subject when the key names a caller.
  const table: { name: string; path: string; headers?: Record<string, string>; want: string }[] = [
    { name: 'header key', path: '/api', headers: { 'x-api-key': A }, want: 'success alice' },
    { name: 'query key', path: `/api?x=1&api_key=${B}`, want: 'success bob' },
    { name: 'no key', path: '/api?x=1', want: 'absent' },
    { name: 'empty header, query key', path: `/api?api_key=${B}`, headers: { 'x-api-key': '' }, want: 'success bob' },
    { name: 'header "A, B" (comma-joined repeat)', path: '/api', headers: { 'x-api-key': `${A}, ${B}` }, want: 'invalid api_key_ambiguous' },
    { name: 'query parameter twice', path: `/api?api_key=${A}&api_key=${B}`, want: 'invalid api_key_ambiguous' },
    { name: 'query parameter twice, one key', path: `/api?api_key=${A}&api_key=${A}`, want: 'invalid api_key_ambiguous' },
    { name: 'good key then garbage', path: `/api?api_key=${A}&api_key=garbage`, want: 'invalid api_key_ambiguous' },
    { name: 'good key then empty', path: `/api?api_key=${A}&api_key=`, want: 'invalid api_key_ambiguous' },
    { name: 'header and query', path: `/api?api_key=${B}`, headers: { 'x-api-key': A }, want: 'invalid api_key_ambiguous' },
    { name: 'header and query, same key', path: `/api?api_key=${A}`, headers: { 'x-api-key': A }, want: 'invalid api_key_ambiguous' },
    { name: 'other parameter names do not count', path: `/api?api_key2=${B}&xapi_key=${B}&api_key=${A}`, want: 'success alice' },
    { name: 'unknown key', path: '/api?api_key=pk_nope', want: 'invalid api_key_unknown' },
    { name: 'empty query key', path: '/api?api_key=', want: 'invalid api_key_malformed' },
  ];
  for (const { name, path, headers, want } of table) {
    it(`${name} → ${want}`, () => {
      const normalized = normalizePath(path);
      assert.ok(normalized.ok);
      const o = evaluateApiKey(input({ rawPath: path, headers }), normalized.query, SETTINGS, KEYS, () => false);
      const got = o.kind === 'success' ? `success ${o.identity.subject}` : o.kind === 'absent' ? 'absent' : `${o.kind} ${o.reason}`;
      assert.equal(got, want, o.detail);
    });
  }

  it('without a query parameter configured, the query is not read', () => {
    const o = evaluateApiKey(input({ headers: { 'x-api-key': A } }), `api_key=${B}`, { header: 'x-api-key', query: undefined }, KEYS, () => false);
    assert.equal(o.kind === 'success' && o.identity.subject, 'alice');
  });
});

describe('keyParameterIn: the key parameter as written, and any other spelling of it', () => {
  const table: [string, boolean, string | undefined][] = [
    ['', false, undefined],
    ['a=1&b=2', false, undefined],
    ['api_key=x', true, undefined],
    ['a=1&api_key', true, undefined],
    ['api_key2=x&xapi_key=y', false, undefined],
    ['api%5Fkey=x', false, 'api%5Fkey'],
    ['api_key=x&api%5fkey=y', true, 'api%5fkey'],
    ['API_KEY=x', false, 'API_KEY'],
    ['Api_Key=x&z=1', false, 'Api_Key'],
    ['%61pi_key=x', false, '%61pi_key'],
    ['api%ZZkey=x&api_key=y', true, undefined],
    // What PHP, Rails, qs read as api_key, and a `;` that Rack, older Python and servlet containers split on.
    ['api_key[]=x', false, 'api_key[]'],
    ['api_key[0]=x&z=1', false, 'api_key[0]'],
    ['api_key[a][b]=x', false, 'api_key[a][b]'],
    ['API_KEY%5B%5D=x', false, 'API_KEY%5B%5D'],
    ['api.key=x', false, 'api.key'],
    ['api+key=x', false, 'api+key'],
    ['api%20key=x', false, 'api%20key'],
    ['api[key=x', false, 'api[key'],
    ['+api_key=x', false, '+api_key'],
    ['y=1;api_key=x', false, ';api_key'],
    ['api_key=x;y=1', true, undefined],
    // Envoy's name for these is `api_key;y` and `api_key;`: it would remove neither, yet `;` splitters read `api_key`.
    ['api_key;y=1', false, 'api_key;'],
    ['a=1&api_key;=', false, 'api_key;'],
    ['api_key;', false, 'api_key;'],
    ['y=1;API_KEY=x&api_key=z', false, ';API_KEY'],
    ['api[key]=x&apikey=y&api_keys[]=z&api-key=w', false, undefined],
  ];
  for (const [query, present, miswritten] of table) {
    it(`'${query}' → ${present ? 'present' : 'absent'}${miswritten ? `, miswritten as ${miswritten}` : ''}`, () => {
      assert.deepEqual(keyParameterIn(query, 'api_key'), { present, miswritten });
    });
  }
});

describe('parseKeysFile: an empty file', () => {
  it('is refused (a file being rewritten in place); [] is the file without keys', () => {
    for (const text of ['', ' \n']) assert.throws(() => parseKeysFile(text, '/etc/keys.yaml'), /keys\.yaml: keys file is empty \(write \[\] for a file without keys\)/);
    assert.doesNotThrow(() => parseKeysFile('[]\n', '/etc/keys.yaml'));
  });
});

describe('parseKeysFile: a plaintext key in the wrong place is never quoted', () => {
  const KEY = 'pk_live_s3cretkey0123456789';
  const files: [string, string][] = [
    ['where its sha256 goes', `- { id: a, sha256: ${KEY} }\n`],
    ['as a list item', `- ${KEY}\n`],
    ['as the id', `- { id: "${KEY} x", sha256: ${sha('x')} }\n`],
    ['as a key name', `- { id: a, sha256: ${sha('x')}, ${KEY}: 1 }\n`],
    ['as the whole file', `${KEY}\n`],
    ['twice as an id', `- { id: ${KEY}, sha256: ${sha('x')} }\n- { id: ${KEY}, sha256: ${sha('y')} }\n`],
  ];
  for (const [name, text] of files) {
    it(name, () => {
      assert.throws(() => parseKeysFile(text, '/etc/keys.yaml'), (error: Error) => {
        assert.match(error.message, /^keys\.yaml: /);
        assert.ok(!error.message.includes('s3cretkey'), error.message);
        return true;
      });
    });
  }
});

describe('parseKeysFileOffThread: a large keys file parses in a worker, with the same result and the same errors', () => {
  const hash = (key: string): string => createHash('sha256').update(key).digest('hex');
  it('indexes the same entries as parseKeysFile', async () => {
    const text = Array.from({ length: 2000 }, (_, i) => `- { id: k${i}, sha256: ${hash(`key${i}`)}, owner: o${i % 7}, scopes: [read], roles: [r${i % 3}] }\n`).join('');
    const [here, there] = [parseKeysFile(text, '/k/keys.yaml'), await parseKeysFileOffThread(text, '/k/keys.yaml', 30_000)];
    assert.equal(there.byHash.size, 2000);
    assert.deepEqual([...there.byHash.entries()], [...here.byHash.entries()]);
    assert.ok(Buffer.isBuffer(there.byHash.get(hash('key5'))?.sha256));
  });

  it('throws the ConfigError of the worker, values still concealed', async () => {
    const error = await parseKeysFileOffThread(`- { id: a, sha256: 4242424242 }\n- { id: a, sha256: ${hash('x')} }\n`, '/k/keys.yaml', 30_000).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.deepEqual(error.issues.map((i) => [i.file, i.line, i.path, i.message]), [
      ['keys.yaml', 1, '[0].sha256', 'expected a string, got a number'],
      ['keys.yaml', 2, '[1].id', 'duplicate key id (not shown)'],
    ]);
  });
});
