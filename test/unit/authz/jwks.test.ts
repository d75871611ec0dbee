import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { errors, type JWK, type JWTHeaderParameters } from 'jose';
import type { JwtAlgorithm } from '../../../src/authz/config.js';
import { jwksUriFault, keySetFrom, KeysUnavailableError, RemoteKeySource, staticKeySource } from '../../../src/authz/jwks.js';
import { HttpStatusError, type HttpClient } from '../../../src/authz/ports.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { eventually } from '../../support/app.js';
import { keyPair } from '../../support/key-pairs.js';
import { fakeHttp } from './support.js';

const jwk = (kid: string | undefined): JWK => {
  const { publicKey } = keyPair({ type: 'ec', namedCurve: 'P-256' });
  return { ...(publicKey.export({ format: 'jwk' }) as JWK), ...(kid === undefined ? {} : { kid }), use: 'sig' };
};
const TOKEN = { protected: '', payload: '', signature: '' };
const signal = new AbortController().signal;

describe('jwks: keys found for a header are found again synchronously', () => {
  const [a, b] = [jwk('a'), jwk('b')];
  const source = staticKeySource({ keys: [a, b] });
  const resolve = (header: Record<string, unknown>) => source.resolve(header as JWTHeaderParameters, TOKEN, signal);
  const exported = (keys: readonly KeyObject[]) => keys.map((k) => k.export({ format: 'jwk' }).x);

  it('first a promise, then the same keys without one, per alg and kid', async () => {
    const first = resolve({ alg: 'ES256', kid: 'a' });
    assert.ok(first instanceof Promise);
    const keys = await first;
    assert.deepEqual(exported(keys), [a.x]);
    const again = resolve({ alg: 'ES256', kid: 'a' });
    assert.ok(!(again instanceof Promise));
    assert.equal(again, keys);
    const other = resolve({ alg: 'ES256', kid: 'b' });
    assert.ok(other instanceof Promise, 'another kid is looked up, not served from a');
    assert.deepEqual(exported(await other), [b.x]);
  });

  it('a header without kid: every matching key, kept apart from the kid entries', async () => {
    assert.deepEqual(exported(await resolve({ alg: 'ES256' })).sort(), [a.x, b.x].sort());
    const again = resolve({ alg: 'ES256' });
    assert.ok(Array.isArray(again) && again.length === 2);
  });

  for (const [name, header, error] of [
    ['an unknown kid', { alg: 'ES256', kid: 'zzz' }, errors.JWKSNoMatchingKey],
    ['an alg no key has', { alg: 'RS256', kid: 'a' }, errors.JWKSNoMatchingKey],
    ['an alg jose does not know', { alg: 'XX1', kid: 'a' }, errors.JOSENotSupported],
    ['a kid that is not a string', { alg: 'ES256', kid: 7 }, errors.JWKSNoMatchingKey],
  ] as const) {
    it(`${name}: refused every time, never kept`, async () => {
      for (let i = 0; i < 2; i++) {
        const outcome = resolve(header);
        assert.ok(outcome instanceof Promise);
        await assert.rejects(outcome, error);
      }
    });
  }
});

const rsaJwk = (bits: number): JWK => keyPair({ type: 'rsa', modulusLength: bits }).publicKey.export({ format: 'jwk' }) as JWK;
const rsa1024 = rsaJwk(1024);
const rsa2048 = rsaJwk(2048);
const privateEc = keyPair({ type: 'ec', namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JWK;

describe('jwks: a set with no key usable for the algorithms is refused like an empty one', () => {
  const good = jwk('good');
  const rows: [string, unknown[], readonly JwtAlgorithm[] | undefined, RegExp | string[]][] = [
    // name, keys, provider algorithms (undefined: all), refusal or the keys skipped from a set taken
    ['an RSA key without n and e', [{ kty: 'RSA', kid: 'k1' }], undefined, /no usable public signing key: key 'k1' cannot be imported/],
    ['an EC key without coordinates', [{ kty: 'EC', crv: 'P-256' }], undefined, /key #0 cannot be imported/],
    ['an EC key off its curve', [{ ...good, x: good.y }], undefined, /key 'good' cannot be imported/],
    ['an EC key for an RS256-only provider', [good], ['RS256'], /key 'good' \(EC P-256\) serves none of RS256/],
    ['a key pinned to another alg', [{ ...good, alg: 'ES384' }], ['ES256'], /serves none of ES256/],
    ['a key for signing only', [{ ...good, key_ops: ['sign'] }], undefined, /serves none of/],
    ['a good key among unusable ones: taken, the others skipped', [{ kty: 'RSA', kid: 'k1' }, good, { kty: 'OKP', crv: 'Ed25519', kid: 'ed' }], undefined,
      [/^key 'k1' cannot be imported/.source, /^key 'ed' cannot be imported/.source]],
    ['a good key alone: nothing skipped', [good], ['ES256'], []],
    ['a shared secret alone', [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }], undefined, /no public signing key: key 'h' is of key type oct, not RSA, EC or OKP/],
    ['a private key alone', [{ ...privateEc, kid: 'p' }], undefined, /no public signing key: key 'p' holds private key material \(d\): the issuer is publishing its private key/],
    ['an encryption key alone', [{ ...jwk('e'), use: 'enc' }], undefined, /: JWKS holds no public signing key$/],
    ['a good key among a secret, a private key, an encryption key (left out without a word), weak RSA keys',
      [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }, { ...privateEc, kid: 'p' }, { ...jwk('e'), use: 'enc' }, { ...rsa1024, kid: 'short' }, { ...rsa2048, e: 'gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE', kid: 'slow' }, good], undefined,
      [/^key 'h' is of key type oct/.source, /^key 'p' holds private key material \(d\)/.source, /^key 'short' is an RSA key of 1024 bits, under 2048$/.source,
        /^key 'slow' is an RSA key whose public exponent is not an odd number from 3 to 2\^31 - 1$/.source]],
  ];
  for (const [name, keys, algorithms, expected] of rows) {
    it(name, () => {
      if (expected instanceof RegExp) {
        assert.throws(() => keySetFrom({ keys }, algorithms), expected);
        return;
      }
      const set = keySetFrom({ keys }, algorithms);
      assert.equal(set.skipped.length, expected.length, set.skipped.join('\n'));
      expected.forEach((pattern, i) => assert.match(set.skipped[i] ?? '', new RegExp(pattern)));
      assert.deepEqual([...set.kids], ['good']);
    });
  }

  it('a remote refresh to such a set fails: the last good keys keep serving, later good sets are taken', async () => {
    let published: unknown = { keys: [good] };
    const results: string[] = [];
    const http = fakeHttp({ 'https://idp.example/jwks': () => published });
    const source = new RemoteKeySource({
      source: { kind: 'uri', url: 'https://idp.example/jwks' }, algorithms: ['ES256'], http, clock: new FakeClock(0), refreshMs: 3_600_000, cooldownMs: 60_000,
      onRefresh: (result) => results.push(result),
    });
    const header = { alg: 'ES256', kid: 'good' } as JWTHeaderParameters;
    const x = async () => (await source.resolve(header, TOKEN, signal)).map((k) => k.export({ format: 'jwk' }).x);
    await source.refresh();
    assert.deepEqual(await x(), [good.x]);
    // Not importable; importable but for ES384 only.
    for (const unusable of [{ keys: [{ kty: 'RSA', kid: 'good' }] }, { keys: [{ ...jwk('good'), alg: 'ES384' }] }]) {
      published = unusable;
      await source.refresh();
      assert.deepEqual(await x(), [good.x], JSON.stringify(published));
    }
    assert.deepEqual(results, ['success', 'error', 'error']);
    const next = jwk('good');
    published = { keys: [{ kty: 'RSA', kid: 'bad' }, next] };
    await source.refresh();
    assert.deepEqual(await x(), [next.x]);
    assert.deepEqual(results, ['success', 'error', 'error', 'success']);
    source.close();
  });
});

describe('jwks: a remote key set found again synchronously, until it is replaced', () => {
  it('a refresh that rotates the key behind a kid serves the new key, not the one kept for the old set', async () => {
    let published = jwk('k1');
    const http = fakeHttp({ 'https://idp.example/jwks': () => ({ keys: [published] }) });
    const source = new RemoteKeySource({
      source: { kind: 'uri', url: 'https://idp.example/jwks' }, http, clock: new FakeClock(0), refreshMs: 3_600_000, cooldownMs: 60_000, onRefresh: () => undefined,
    });
    await source.refresh();
    const header = { alg: 'ES256', kid: 'k1' } as JWTHeaderParameters;
    const x = (keys: readonly KeyObject[]) => keys.map((k) => k.export({ format: 'jwk' }).x);
    assert.deepEqual(x(await source.resolve(header, TOKEN, signal)), [published.x]);
    const again = source.resolve(header, TOKEN, signal);
    assert.ok(!(again instanceof Promise));
    published = jwk('k1');
    await source.refresh();
    const rotated = source.resolve(header, TOKEN, signal);
    assert.ok(rotated instanceof Promise, 'the new set has found nothing yet');
    assert.deepEqual(x(await rotated), [published.x]);
    source.close();
  });
});

describe('jwks: a large set', () => {
  it('keys of another type ahead of ours do not crowd ours out of the first 100', () => {
    const others = Array.from({ length: 150 }, (_, i) => ({ ...rsa2048, kid: `rsa-${i}` }));
    const set = keySetFrom({ keys: [...others, jwk('ours')] }, ['ES256']);
    assert.deepEqual([...set.kids], ['ours']);
  });

  it('at most 100 usable keys are kept; the rest are named; the warning stays short', () => {
    const keys = Array.from({ length: 130 }, (_, i) => jwk(`k${i}`));
    const set = keySetFrom({ keys });
    assert.equal(set.kids.size, 100);
    assert.ok(set.kids.has('k99') && !set.kids.has('k100'));
    assert.equal(set.skipped.length, 11);
    assert.match(set.skipped[0]!, /^key 'k100' is past the first 100 usable keys$/);
    assert.equal(set.skipped[10], 'and 20 more');
  });

  it('a kid a megabyte long is cut in the warning', () => {
    const set = keySetFrom({ keys: [jwk('ours'), { kty: 'oct', k: 'c2VjcmV0', kid: 'x'.repeat(1 << 20) }] });
    assert.ok(set.skipped[0]!.length < 200, `${set.skipped[0]!.length} characters`);
  });
});

describe('jwks: OIDC discovery names where the keys are', () => {
  // [jwks_uri, discovery URL, refusal (undefined: fetched)]
  const rows: [unknown, string, RegExp | undefined][] = [
    ['https://idp.example/jwks', 'https://idp.example', undefined],
    ['https://keys.other.example/jwks', 'https://idp.example', undefined],
    ['http://idp.example/jwks', 'http://idp.example', undefined],
    ['https://idp.example/jwks', 'http://idp.example', undefined],
    ['http://idp.example/jwks', 'https://idp.example', /is http: while discovery is https: \(a downgrade, refused\)/],
    ['HTTP://idp.example/jwks', 'https://idp.example', /a downgrade, refused/],
    ['file:///etc/passwd', 'https://idp.example', /is not http\(s\)/],
    ['/jwks', 'https://idp.example', /is not a URL/],
    [7, 'https://idp.example', /has no jwks_uri/],
    [undefined, 'https://idp.example', /has no jwks_uri/],
  ];
  for (const [jwksUri, discovery, refusal] of rows) {
    it(`${String(jwksUri)} from ${discovery}: ${refusal === undefined ? 'fetched' : 'refused'}`, () => {
      const fault = jwksUriFault(jwksUri, discovery);
      if (refusal === undefined) assert.equal(fault, undefined);
      else assert.match(fault ?? '', refusal);
    });
  }

  it('a downgraded jwks_uri is a failed refresh: never fetched, the keys held keep serving', async () => {
    const issuer = 'https://idp.example';
    let jwksUri = `${issuer}/jwks`;
    const good = jwk('good');
    const errors: string[] = [];
    const http = fakeHttp({
      [`${issuer}/.well-known/openid-configuration`]: () => ({ issuer, jwks_uri: jwksUri }),
      [`${issuer}/jwks`]: () => ({ keys: [good] }),
      'http://idp.example/jwks': () => ({ keys: [jwk('good')] }),
    });
    const source = new RemoteKeySource({
      source: { kind: 'oidc', url: issuer, issuer }, http, clock: new FakeClock(0), refreshMs: 3_600_000, cooldownMs: 0,
      onRefresh: (result, error) => void (result === 'error' && errors.push(error ?? '')),
    });
    await source.refresh();
    jwksUri = 'http://idp.example/jwks';
    await source.refresh();
    assert.match(errors[0] ?? '', /a downgrade, refused/);
    assert.ok(!http.calls.includes('http://idp.example/jwks'));
    const keys = await source.resolve({ alg: 'ES256', kid: 'good' } as JWTHeaderParameters, TOKEN, signal);
    assert.deepEqual(keys.map((k) => k.export({ format: 'jwk' }).x), [good.x]);
    source.close();
  });
});

describe('jwks: a failing issuer is retried with backoff', () => {
  const URI = 'https://idp.example/jwks';
  function failing(options: { refreshMs?: number; cooldownMs?: number; random?: () => number } = {}) {
    let up = true;
    const good = jwk('good');
    const results: string[] = [];
    const clock = new FakeClock(1_000_000);
    const http = fakeHttp({ [URI]: () => { if (!up) throw new Error('connect ECONNREFUSED 192.0.2.1:443'); return { keys: [good] }; } });
    const source = new RemoteKeySource({
      source: { kind: 'uri', url: URI }, http, clock, refreshMs: options.refreshMs ?? 300_000, cooldownMs: options.cooldownMs ?? 30_000,
      random: options.random ?? (() => 0), onRefresh: (result) => results.push(result),
    });
    return { source, clock, http, results, good, down: (v: boolean) => void (up = !v) };
  }

  it('the retry is due a delay after the failed fetch started, not after it failed (a slow failure adds nothing)', async () => {
    // Real time here: the retry timer is what is checked. refresh_seconds 0.7 caps the retry delay at 700 ms.
    const fetches: number[] = [];
    const http: HttpClient = {
      getJson: async () => {
        fetches.push(Date.now());
        await new Promise((resolve) => setTimeout(resolve, 600));
        throw new Error('connect ETIMEDOUT 192.0.2.1:443');
      },
      postForm: async () => assert.fail('no form posts'),
    };
    const source = new RemoteKeySource({
      source: { kind: 'uri', url: URI }, http, clock: { nowMs: () => Date.now() }, refreshMs: 700, cooldownMs: 30_000, random: () => 0, onRefresh: () => undefined,
    });
    try {
      await source.refresh();
      await eventually(() => fetches.length >= 2, 3000, 'the retry');
      const gap = fetches[1]! - fetches[0]!;
      // Due at 700 ms; from the failure it would have been 1,300.
      assert.ok(gap >= 690 && gap < 1100, `the retry started ${gap} ms after the first fetch`);
    } finally {
      source.close();
    }
  });

  // [random, refresh_seconds in ms, the delay before each retry of a run of failures]
  const rows: [number, number, number[]][] = [
    [0, 300_000, [2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]],
    [0.999_999, 300_000, [1600, 3200, 6400, 12_800, 25_600, 48_000, 48_000]],
    [0, 10_000, [2000, 4000, 8000, 10_000, 10_000]],
    [0, 1000, [1000, 1000, 1000]],
  ];
  for (const [random, refreshMs, delays] of rows) {
    it(`random ${random}, refresh every ${refreshMs} ms: retries after ${delays.join(', ')} ms; a success starts over`, async () => {
      const s = failing({ random: () => random, refreshMs });
      s.down(true);
      for (const delay of delays) {
        const started = s.clock.nowMs();
        await s.source.refresh();
        assert.equal(s.source.retryAtMs! - started, delay);
        s.clock.advance(delay);
      }
      assert.deepEqual(s.results, delays.map(() => 'error'), 'each attempt reported (and counted)');
      s.down(false);
      await s.source.refresh();
      assert.equal(s.source.retryAtMs, undefined);
      s.down(true);
      const started = s.clock.nowMs();
      await s.source.refresh();
      assert.equal(s.source.retryAtMs! - started, delays[0]);
      s.source.close();
    });
  }

  it('an unknown kid does not fetch while the retries back off, whatever the cooldown; the keys held keep serving', async () => {
    const s = failing({ cooldownMs: 0 });
    await s.source.refresh();
    s.down(true);
    const known = { alg: 'ES256', kid: 'good' } as JWTHeaderParameters;
    const x = async () => (await s.source.resolve(known, TOKEN, signal)).map((k) => k.export({ format: 'jwk' }).x);
    const unknown = async (i: number) => s.source.resolve({ alg: 'ES256', kid: `attacker-${i}` } as JWTHeaderParameters, TOKEN, signal);
    // The background refresh that fails, run here on the fake clock.
    await s.source.refresh();
    for (const delay of [2000, 4000, 8000]) {
      const fetches = s.http.calls.length;
      for (let i = 0; i < 20; i++) {
        await assert.rejects(unknown(i), KeysUnavailableError);
        s.clock.advance((delay - 1) / 20);
      }
      assert.equal(s.http.calls.length, fetches, `no fetch within the ${delay} ms backoff`);
      assert.deepEqual(await x(), [s.good.x]);
      s.clock.set(s.source.retryAtMs!);
      await assert.rejects(unknown(99), /no key "attacker-99" among the last good keys, and the JWKS cannot be fetched now/);
      assert.equal(s.http.calls.length, fetches + 1, 'once it is over, an unknown kid fetches (and fails: the next backoff)');
      assert.equal(s.source.retryAtMs! - s.clock.nowMs(), delay * 2);
    }
    s.source.close();
  });

  it('a 429 or 503 with Retry-After (JWKS or discovery) holds the retry off as long as asked, up to the cap; a fetch that took a while waits from its answer', async () => {
    const DISCOVERY = 'https://idp.example';
    const DOC = `${DISCOVERY}/.well-known/openid-configuration`;
    // [source, where the 429/503 comes from, status, Retry-After, ms the fetch takes, refresh_seconds in ms, retry due after (ms from the attempt's start)]
    const rows: ['uri' | 'oidc', string, number, string | undefined, number, number, number][] = [
      ['uri', URI, 503, undefined, 0, 300_000, 2000],
      ['uri', URI, 503, '3', 0, 300_000, 3000],
      ['uri', URI, 429, '3', 0, 300_000, 3000],
      ['uri', URI, 429, '1', 0, 300_000, 2000],
      ['uri', URI, 503, '3', 2500, 300_000, 5500],
      ['uri', URI, 503, 'soon', 0, 300_000, 2000],
      ['uri', URI, 503, '999999', 0, 300_000, 60_000],
      ['uri', URI, 503, '999999', 0, 10_000, 10_000],
      ['uri', URI, 503, new Date(1_000_000 + 7000).toUTCString(), 0, 300_000, 7000],
      ['uri', URI, 503, new Date(1_000_000 - 7000).toUTCString(), 0, 300_000, 2000],
      ['oidc', DOC, 503, '3', 0, 300_000, 3000],
      ['oidc', `${DISCOVERY}/jwks`, 429, '5', 0, 300_000, 5000],
    ];
    for (const [kind, failing, status, retryAfter, takesMs, refreshMs, dueMs] of rows) {
      const clock = new FakeClock(1_000_000);
      const refusal = () => {
        clock.advance(takesMs);
        throw new HttpStatusError(`GET ${failing} answered ${status}`, status, retryAfter);
      };
      const http = fakeHttp({
        [DOC]: () => (failing === DOC ? refusal() : { issuer: DISCOVERY, jwks_uri: `${DISCOVERY}/jwks` }),
        [failing]: refusal,
      });
      const source = new RemoteKeySource({
        source: kind === 'uri' ? { kind: 'uri', url: URI } : { kind: 'oidc', url: DISCOVERY, issuer: DISCOVERY },
        http, clock, refreshMs, cooldownMs: 0, random: () => 0, onRefresh: () => undefined,
      });
      await source.refresh();
      const label = `${kind} ${failing} ${status} Retry-After ${String(retryAfter)}, fetch took ${takesMs} ms`;
      assert.equal(source.retryAtMs! - 1_000_000, dueMs, label);
      // An unknown kid does not fetch before then either.
      const fetches = http.calls.length;
      clock.set(source.retryAtMs! - 1);
      await assert.rejects(async () => source.resolve({ alg: 'ES256', kid: 'new' } as JWTHeaderParameters, TOKEN, signal), KeysUnavailableError);
      assert.equal(http.calls.length, fetches, label);
      source.close();
    }
  });
});
