import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { errors, type JWK, type JWTHeaderParameters } from 'jose';
import { staticKeySource } from '../../../src/authz/jwks.js';
import { keyPair } from '../../support/key-pairs.js';

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
