import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseKeysFile } from '../../../src/authz/apikey.js';
import { explain, keysNew, revoke } from '../../../src/cli/authz-commands.js';
import { createHash } from 'node:crypto';

describe('portcullis keys new / explain', () => {
  it('keys new prints a 256-bit key once and an entry holding only its hash', () => {
    let out = '';
    assert.equal(keysNew({ id: 'svc-1', tier: 'gold' }, (s) => (out += s)), 0);
    const key = /pk_[A-Za-z0-9_-]{43}/.exec(out)?.[0];
    assert.ok(key, out);
    const entry = out.slice(out.indexOf('- id:'));
    assert.ok(!entry.includes(key), 'the entry must not hold the key');
    const set = parseKeysFile(entry, 'keys.yaml');
    assert.equal(set.byHash.get(createHash('sha256').update(key).digest('hex'))?.tier, 'gold');
    assert.equal(keysNew({}, () => undefined), 2);
  });

  it('keys new refuses an owner the keys file would refuse, or a tier the gateway would drop, before a key is shown', () => {
    for (const options of [{ owner: ' admin' }, { owner: 'a\u0000b' }, { tier: 'x\ny' }, { tier: 'gold ' }]) {
      let out = '';
      assert.equal(keysNew({ id: 'svc-1', ...options }, (s) => (out += s)), 2, JSON.stringify(options));
      assert.match(out, /^keys new: --(owner|tier) must not be blank/, JSON.stringify(options));
      assert.doesNotMatch(out, /pk_/, 'no key printed');
    }
  });

  it('explain names the policy, each method and the answer, and never prints the query', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-explain-'));
    try {
      mkdirSync(path.join(dir, 'ratelimit'));
      const key = 'pk_explain-key-000000000000000000000000000000';
      writeFileSync(path.join(dir, 'keys.yaml'), `- { id: k, sha256: ${createHash('sha256').update(key).digest('hex')}, owner: ops }\n`);
      writeFileSync(path.join(dir, 'portcullis.yaml'), `authz:
  api_keys: { query: api_key, file: ./keys.yaml }
  policies:
    - { name: api, match: { path_prefix: /api }, authenticate: [api_key], require: { scopes: [write] } }
`);
      let out = '';
      assert.equal(await explain({ config: path.join(dir, 'portcullis.yaml'), path: `/api/x?api_key=${key}` }, (s) => (out += s)), 0);
      assert.match(out, /policy: {3}api \(chosen by match; line 4\)/);
      assert.match(out, /1\. api_key +success +API key k of ops \(from query\)/);
      assert.match(out, /decision: DENY 403 forbidden: not allowed: scope write required/);
      assert.ok(!out.includes(key));
      out = '';
      await explain({ config: path.join(dir, 'portcullis.yaml'), path: '/elsewhere' }, (s) => (out += s));
      assert.match(out, /none matches, default_policy is deny/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explain chooses as the server does for lenient upstreams: ignore_case folds, a double-encoded escape is refused', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-explain-'));
    try {
      writeFileSync(path.join(dir, 'portcullis.yaml'), `authz:
  policies:
    - { name: admin, match: { path_prefix: /admin, ignore_case: true }, authenticate: [anonymous] }
    - { name: rest, match: { path_prefix: / }, authenticate: [anonymous] }
`);
      let out = '';
      await explain({ config: path.join(dir, 'portcullis.yaml'), path: '/ADMIN/x' }, (s) => (out += s));
      assert.match(out, /policy: {3}admin \(chosen by match, ignoring case; line 3\)/);
      out = '';
      await explain({ config: path.join(dir, 'portcullis.yaml'), path: '/public/%252e%252e/admin' }, (s) => (out += s));
      assert.match(out, /refused: double-encoded percent-escape \(%25 before two hex digits\) in path/);
      assert.match(out, /decision: DENY 400 bad_path/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explain refuses a path whose trailing-slash twin takes another policy, as the server does', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-explain-'));
    try {
      writeFileSync(path.join(dir, 'portcullis.yaml'), `authz:
  mtls: {}
  policies:
    - { name: orders, match: { path: /api/orders }, authenticate: [mtls] }
    - { name: public, match: { path_prefix: / }, authenticate: [anonymous] }
`);
      let out = '';
      await explain({ config: path.join(dir, 'portcullis.yaml'), path: '/api/orders/' }, (s) => (out += s));
      assert.match(out, /policy: {3}none: the path is refused \(trailing slash: the path with and without it take different policies\)/);
      assert.match(out, /decision: DENY 400 bad_path/);
      out = '';
      await explain({ config: path.join(dir, 'portcullis.yaml'), path: '/api/orders' }, (s) => (out += s));
      assert.match(out, /policy: {3}orders \(chosen by match; line 4\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explain answers as the server does: an empty --policy is an unknown policy, introspection down with on_failure error is gRPC UNAVAILABLE', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-explain-'));
    try {
      writeFileSync(path.join(dir, 'secret'), 's\n');
      writeFileSync(path.join(dir, 'portcullis.yaml'), `authz:
  introspection: { url: "http://127.0.0.1:9/introspect", client_id: gw, client_secret_file: ./secret, on_failure: error }
  policies:
    - { name: public, match: { path_prefix: /public }, authenticate: [anonymous] }
    - { name: api, match: { path_prefix: /api }, authenticate: [introspection] }
`);
      const config = path.join(dir, 'portcullis.yaml');
      // [options, exit code, what the output must say]
      const rows: [Partial<Parameters<typeof explain>[0]>, number, RegExp][] = [
        [{ path: '/public/x' }, 0, /decision: ALLOW as anonymous/],
        // A client's x_user_id is removed by that name, as the server's answer does (explain prints the answer).
        [{ path: '/public/x', header: ['X_User_Id: root', 'x_trace: 1'] }, 0, /remove {2}x-user-scopes\n {2}remove {2}x_user_id\n {2}dynamic/],
        [{ path: '/public/x', policy: '' }, 0, /policy: {3}'' from context_extensions is not defined\n.*decision: DENY 403 unknown_policy/s],
        [{ path: '/public/x', policy: 'nope' }, 0, /decision: DENY 403 unknown_policy/],
        [{ path: '/api/x', header: ['authorization: Bearer opaque-SECRET-token'] }, 0, /decision: gRPC UNAVAILABLE \(introspection\.on_failure: error\): introspection failed: /],
        // A malformed -H is named by its position: the argument is most often the credential itself.
        [{ path: '/api/x', header: ['x-a: 1', 'authorization Bearer opaque-SECRET-token'] }, 2, /^explain: -H argument 2 is not NAME: VALUE\n$/],
      ];
      for (const [options, code, expected] of rows) {
        let out = '';
        assert.equal(await explain({ config, ...options }, (s) => (out += s)), code, JSON.stringify(options));
        assert.match(out, expected, JSON.stringify(options));
        assert.ok(!out.includes('SECRET'), 'the token is never printed');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('revoke refuses a --ttl that is not plain whole seconds up to 10 years, before reading the config or writing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-revoke-'));
    try {
      // No redis: a --ttl that passes gets as far as the config (exit 1, no shared list); one that does not, exit 2.
      writeFileSync(path.join(dir, 'portcullis.yaml'), 'authz:\n  policies:\n    - { name: p, authenticate: [anonymous] }\n');
      const rows: [string, number][] = [
        ['1', 1], ['120', 1], ['315360000', 1],
        ['315360001', 2], ['9999999999999', 2], ['1e3', 2], ['0x10', 2], [' 7 ', 2], ['7.0', 2], ['1.5', 2], ['0', 2], ['-5', 2], ['', 2], ['+5', 2],
      ];
      for (const [ttl, code] of rows) {
        let out = '';
        assert.equal(await revoke({ config: path.join(dir, 'portcullis.yaml'), jti: 'j', ttl }, (s) => (out += s)), code, `--ttl '${ttl}': ${out}`);
        if (code === 2) assert.match(out, /--ttl must be a whole number of seconds from 1 to 315360000/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
