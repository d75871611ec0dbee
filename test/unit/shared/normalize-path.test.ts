import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alreadyNormal, matchesPrefix, normalizePath, upstreamReadings } from '../../../src/shared/normalize-path.js';
import { prng } from '../../support/prng.js';

describe('normalizePath', () => {
  const table: [string, string | null, string?][] = [
    ['/', '/'],
    ['/api/orders', '/api/orders'],
    ['/api/orders?x=1&api_key=k', '/api/orders', 'x=1&api_key=k'],
    ['/api/orders#frag', '/api/orders'],
    ['/a/../b', '/b'],
    ['/a/./b', '/a/b'],
    ['/public/../admin', '/admin'],
    ['/../../admin', '/admin'],
    ['/a/b/..', '/a/'],
    ['/a/..', '/'],
    ['//admin', '/admin'],
    ['/a//b///c', '/a/b/c'],
    ['/%2e%2e/admin', '/admin'],
    ['/public/%2E%2E/admin', '/admin'],
    ['/public/.%2e/admin', '/admin'],
    ['/%61dmin', '/admin'],
    ['/a%7eb', '/a~b'],
    ['/a%3ab', '/a%3Ab'],
    ['/a%3Ab', '/a%3Ab'],
    ['/a%20b', '/a%20b'],
    ['/trailing/', '/trailing/'],
    ['/admin%2Fsecret', null],
    ['/admin%2fsecret', null],
    ['/admin%5Csecret', null],
    ['/admin\\secret', null],
    ['/a%zzb', null],
    ['/a%2', null],
    ['/a%00b', null],
    // Path parameters: Tomcat/Jetty/Spring strip `;…` and would serve these as /admin.
    ['/public/..;/admin', null],
    ['/public/%2e%2e;/admin', null],
    ['/public/..;jsessionid=x/admin/users', null],
    ['/admin;x', null],
    ['/public/..%3B/admin', null],
    ['/public/..%3b/admin', null],
    ['/a/b;', null],
    // Overlong UTF-8 (`%C0%AE` read as `.` by lenient decoders); `%C2%AE` is valid UTF-8 and kept.
    ['/public/%C0%AE%C0%AE/admin', null],
    ['/public/%c0%ae%c0%ae/admin', null],
    ['/a%C1%81', null],
    ['/a%c2%ae', '/a%C2%AE'],
    // The longer overlong forms: `%E0%80%AE` and `%F0%80%80%AE` are `.` to the same decoders; `%F5`–`%FF` never lead.
    ['/public/%E0%80%AE%E0%80%AE/admin', null],
    ['/public/%e0%9f%bf', null],
    ['/public/%F0%80%80%AE%F0%80%80%AE/admin', null],
    ['/public/%f0%8f%bf%bf', null],
    ['/public/%FC%80%80%80%80%AE', null],
    ['/a%F5%80%80%80', null],
    ['/a%E0%A0%80', '/a%E0%A0%80'],
    ['/a%F0%90%80%80', '/a%F0%90%80%80'],
    ['/a%E0/%80', '/a%E0/%80'],
    ['/a%E0x%80', '/a%E0x%80'],
    // An escape that decodes to an escape: `%2e` here, `.` to an upstream (or second proxy) that decodes twice.
    ['/public/%252e%252e/admin', null],
    ['/public/%252E%252E/admin', null],
    ['/%2561dmin', null],
    ['/public/%25%32%65%25%32%65/admin', null], // the hex digits escaped: `%2e%2e` after one decode all the same
    ['/a%252Fb', null],
    ['/a%2525', null],
    ['/a/%252', '/a/%252'], // `%25` and one digit: `%2` is no escape, decoded twice or not
    ['/100%25', '/100%25'],
    ['/100%25/x', '/100%25/x'],
    ['/a%25zz', '/a%25zz'],
    ['/a%25%C3%A9', '/a%25%C3%A9'],
    // Raw non-ASCII is the same path to the upstream as its UTF-8 escapes, so it is matched as them.
    ['/café', '/caf%C3%A9'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/a/\u{1F600}/b', '/a/%F0%9F%98%80/b'],
    ['/a\uD800', '/a%EF%BF%BD'],
    ['/a\u0000b', null],
    ['*', null],
    ['http://evil/admin', null],
    ['', null],
  ];
  for (const [raw, want, query] of table) {
    it(`${JSON.stringify(raw)} → ${want ?? 'refused'}`, () => {
      const got = normalizePath(raw);
      if (want === null) assert.equal(got.ok, false);
      else {
        assert.deepEqual(got.ok && got.path, want);
        if (query !== undefined) assert.equal(got.ok && got.query, query);
      }
    });
  }
});

describe('normalizePath: each refusal says why', () => {
  const table: [string, string][] = [
    ['/public/%252e%252e/admin', 'double-encoded percent-escape (%25 before two hex digits) in path'],
    ['/public/%25%32%65/admin', 'double-encoded percent-escape (%25 before two hex digits) in path'],
    ['/public/%2e%2e%2Fadmin', 'encoded slash or backslash in path'],
    ['/public/%C0%AE/admin', 'overlong UTF-8 escape in path'],
  ];
  for (const [raw, reason] of table) it(`${raw}: ${reason}`, () => assert.deepEqual(normalizePath(raw), { ok: false, reason }));
});

describe('matchesPrefix: whole segments', () => {
  const table: [string, string, boolean][] = [
    ['/public', '/public', true],
    ['/public/x', '/public', true],
    ['/public/', '/public', true],
    ['/publicity', '/public', false],
    ['/public', '/public/', true],
    ['/publicx/y', '/public/', false],
    ['/anything', '/', true],
    ['/Public', '/public', false],
  ];
  for (const [path, prefix, want] of table) it(`${path} ${want ? 'matches' : 'does not match'} ${prefix}`, () => assert.equal(matchesPrefix(path, prefix), want));
});

describe('upstreamReadings: how upstreams may read a path normalizePath refuses', () => {
  // path as sent, readings that must be among them (each in normal form)
  const table: [string, string[]][] = [
    ['/api/orders;x', ['/api/orders', '/api/orders;x']],
    ['/public/..;/admin?q=1', ['/admin', '/public/..;/admin']],
    ['/api%2Forders', ['/api/orders', '/api%2Forders']],
    ['/a%5Cb\\c', ['/a/b/c', '/a%5Cb%5Cc']],
    ['/x/%252e%252e/admin', ['/admin', '/x/%252e%252e/admin']],
    ['/x/%C0%AE%C0%AE/admin', ['/admin']],
    ['/caf%C3%A9;v=1', ['/caf%C3%A9', '/caf%C3%A9;v=1']],
    ['/a%00b', ['/a%00b']],
    ['/%25', ['/%25']],
  ];
  for (const [raw, expected] of table) {
    it(`${raw} → ${expected.join(', ')}`, () => {
      const readings = upstreamReadings(raw);
      for (const reading of expected) assert.ok(readings.includes(reading), `${reading} not in ${readings.join(', ')}`);
    });
  }
});

describe('alreadyNormal: the fast path never answers for a path normalizePath would change or refuse', () => {
  it('agrees with normalizePath on 20,000 seeded paths of hostile pieces', () => {
    const random = prng(7);
    const pieces = ['/', 'a', 'B', '.', '..', '%2e', '%2F', ';', '\\', '%', '%25', '\u0000', '\u007f', '\u00e9', ' ', '~', '-', '//', '/.', '?', '#'];
    for (let n = 0; n < 20_000; n++) {
      let path = random() < 0.9 ? '/' : '';
      const length = Math.floor(random() * 8);
      for (let i = 0; i < length; i++) path += pieces[Math.floor(random() * pieces.length)];
      const target = path.split(/[?#]/, 1)[0]!;
      if (!alreadyNormal(target)) continue;
      assert.deepEqual(normalizePath(target), { ok: true, path: target, query: '' }, JSON.stringify(target));
    }
  });
  it('takes the common paths', () => {
    for (const path of ['/', '/api/users/123', '/v2/a-b_c~d/e.f', '/a/']) assert.equal(alreadyNormal(path), true, path);
  });
});
