import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { errors, type JWK, type JWTHeaderParameters } from 'jose';
import type { JwtAlgorithm } from '../../../src/authz/config.js';
import { keySetFrom, RemoteKeySource, staticKeySource } from '../../../src/authz/jwks.js';
import { FakeClock } from '../../fakes/fake-clock.js';
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
