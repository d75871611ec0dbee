// What a config error may quote (src/config/errors.ts): nothing a secret-bearing field holds but a lone URL (with its
// credentials hidden), and a bounded message everywhere.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseKeysFile } from '../../../src/authz/apikey.js';
import { concealValues, ConfigError, MAX_LISTED_ISSUES, MAX_MESSAGE_CHARS } from '../../../src/config/errors.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';

const SECRET = 'Cn9Secret4242x';
const NUMBER = 424242424242;

function errorOf(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  return assert.fail('expected a ConfigError');
}

describe('concealValues: the quoted span of a message in a secret-bearing field', () => {
  const cases: [string, string][] = [
    [`expected a mapping, got '${SECRET}'`, 'expected a mapping, got (not shown)'],
    // A value holding a quote: the span runs to the last one, not to the value's own.
    [`got 'it's ${SECRET}' here`, 'got (not shown) here'],
    [`got 'a' and '${SECRET}'`, 'got (not shown)'],
    [`got 'don${SECRET}`, 'got (not shown)'],
    ['expected a string value', 'expected a string value'],
    // One URL is shown: ConfigError hides its credentials.
    ["expected a redis:// URL, got 'http://cache:6379'", "expected a redis:// URL, got 'http://cache:6379'"],
    [`got 'redis://:x@h ${SECRET}'`, 'got (not shown)'],
  ];
  for (const [message, shown] of cases) it(JSON.stringify(message), () => assert.equal(concealValues(message), shown));
});

describe('secret-bearing fields: no error quotes what the file holds there, in any check', () => {
  const header = `server: { http: { address: "127.0.0.1:0" } }\nbff:\n  services: { s: "http://127.0.0.1:1" }\n  endpoints:\n    - path: /b\n      calls:\n`;
  const route = 'extproc:\n  routes:\n    - name: r\n      headers:\n';
  const cases: [string, string, string][] = [
    ['a password where the Redis URL goes', `redis:\n  url: ${SECRET}\n`, 'redis.url'],
    ['a password with a quote in it', `redis:\n  url: "it's ${SECRET}"\n`, 'redis.url'],
    ['a number where the Redis URL goes', `redis:\n  url: ${NUMBER}\n`, 'redis.url'],
    ['a password for the redis section', `redis: ${SECRET}\n`, 'redis'],
    ['a password for the cluster list', `redis:\n  cluster: ${SECRET}\n`, 'redis.cluster'],
    ['a password as a cluster seed', `redis:\n  cluster: [${SECRET}]\n`, 'redis.cluster[0]'],
    ['a password for the sentinel section', `redis:\n  sentinel: ${SECRET}\n`, 'redis.sentinel'],
    ['a password as a sentinel node', `redis:\n  sentinel: { master: m, nodes: [${SECRET}] }\n`, 'redis.sentinel.nodes[0]'],
    ['a password where the master name goes', `redis:\n  sentinel: { master: "it's ${SECRET}", nodes: [redis://s:26379] }\n`, 'redis.sentinel.master'],
    ['a list for the master password', `redis:\n  sentinel: { master: m, nodes: [redis://s:26379], password: [${SECRET}] }\n`, 'redis.sentinel.password'],
    ['a number for the master password', `redis:\n  sentinel: { master: m, nodes: [redis://s:26379], password: ${NUMBER} }\n`, 'redis.sentinel.password'],
    ['sentinels with different passwords', `redis:\n  sentinel: { master: m, nodes: ["redis://:x@s:26379", "redis://: ${SECRET}@t:26379"] }\n`, 'redis.sentinel.nodes[1]'],
    ['a header line for the rules', `${route}        request: "authorization: Bearer ${SECRET}"\n`, 'extproc.routes[0].headers.request'],
    ['a header line for the set map', `${route}        request:\n          set: "authorization: Bearer ${SECRET}"\n`, 'extproc.routes[0].headers.request.set'],
    ['a credential as a header to remove', `${route}        request:\n          remove: ["Bearer ${SECRET}"]\n`, 'extproc.routes[0].headers.request.remove[0]'],
    ['a number as a header to remove', `${route}        request:\n          remove: [${NUMBER}]\n`, 'extproc.routes[0].headers.request.remove[0]'],
    ['a key where the API key header goes', `authz:\n  api_keys:\n    header: "Bearer ${SECRET}"\n    file: k\n`, 'authz.api_keys.header'],
    ['a key for the api_keys section', `authz:\n  api_keys: "${SECRET}"\n`, 'authz.api_keys'],
    ['a secret for the introspection section', `authz:\n  introspection: "${SECRET}"\n`, 'authz.introspection'],
    ['a secret where the introspection URL goes', `authz:\n  introspection: { url: "${SECRET}", client_id: c, client_secret_file: s }\n`, 'authz.introspection.url'],
    ['a header line for a composer call', `${header}        a: { service: s, path: /, headers: "x-api-key: ${SECRET}" }\n`, 'bff.endpoints[0].calls.a.headers'],
  ];
  for (const [name, text, path] of cases) {
    it(`${name}: names line and path, not the value`, () => {
      const error = errorOf(() => parsePortcullisConfig(text, '/etc/p/portcullis.yaml'));
      assert.ok(!error.message.includes(SECRET) && !error.message.includes(String(NUMBER)), error.message);
      const issue = error.issues.find((i) => i.path === path);
      assert.ok(issue !== undefined && issue.line !== undefined, error.message);
    });
  }

  it('keys.yaml quotes nothing, a value holding a quote and a number included', () => {
    for (const text of [`- { id: "a'b ${SECRET}", sha256: x }\n`, `- { id: a, sha256: ${NUMBER} }\n`, `- { id: a, sha256: "${'a'.repeat(64)}", owner: " it's ${SECRET}" }\n`]) {
      const error = errorOf(() => parseKeysFile(text, '/etc/p/keys.yaml'));
      assert.ok(!error.message.includes(SECRET) && !error.message.includes(String(NUMBER)), error.message);
    }
  });

  it('fields that are not secret-bearing still quote what is wrong', () => {
    assert.match(errorOf(() => parsePortcullisConfig('log:\n  level: loud\n', '/etc/p/portcullis.yaml')).message, /got 'loud'/);
  });
});

describe('ConfigError: a bounded message', () => {
  it(`cuts a message past ${MAX_MESSAGE_CHARS} characters, saying how long it was`, () => {
    const error = errorOf(() => parsePortcullisConfig(`log:\n  level: ${'x'.repeat(100_000)}\n`, '/etc/p/portcullis.yaml'));
    assert.ok(error.message.length < MAX_MESSAGE_CHARS + 100, `${error.message.length} characters`);
    assert.match(error.message, /… \(\d+ characters\) \(line 2, at log\.level\)$/);
  });

  it(`lists ${MAX_LISTED_ISSUES} issues and counts the rest; every one stays in issues`, () => {
    const text = Array.from({ length: 250 }, (_, i) => `k${i}: 1\n`).join('');
    const error = errorOf(() => parsePortcullisConfig(text, '/etc/p/portcullis.yaml'));
    assert.equal(error.issues.length, 250);
    const lines = error.message.split('\n');
    assert.equal(lines.length, MAX_LISTED_ISSUES + 1);
    assert.equal(lines.at(-1), '… and 150 more issues');
  });
});

describe('ConfigError.listed: one log entry per issue', () => {
  it('keeps a message that spans lines (upstream\'s unmarshal errors) in one entry, with its file and line', () => {
    const error = new ConfigError([
      { file: 'd.yaml', line: 2, path: 'domain', message: 'error loading config file: yaml: unmarshal errors:\n  line 2: cannot unmarshal !!seq into string' },
      { file: 'e.yaml', line: 1, path: '', message: 'x' },
    ]);
    assert.deepEqual(error.listed, [
      'd.yaml: error loading config file: yaml: unmarshal errors:\n  line 2: cannot unmarshal !!seq into string (line 2, at domain)',
      'e.yaml: x (line 1)',
    ]);
  });
});
