import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RedisClient } from '../../../src/store/redis-counter-store.js';
import { RedisRevocationList } from '../../../src/store/revocation-list.js';
import { FakeClock } from '../../fakes/fake-clock.js';

const NOW_MS = 1_700_000_000_000;

/** Just what RedisRevocationList reads; `up: false` makes every call fail as a disconnected client does. */
function fakeRedis(jti: Record<string, number>) {
  const state = { up: true };
  const fail = (): Promise<never> => Promise.reject(new Error('Connection is closed.'));
  const client = {
    get: () => (state.up ? Promise.resolve('1') : fail()),
    zrangebyscore: (key: string) => (state.up ? Promise.resolve(key.endsWith(':jti') ? Object.entries(jti).flatMap(([id, until]) => [id, String(until)]) : []) : fail()),
    disconnect: () => undefined,
  };
  return { state, client: client as unknown as RedisClient };
}

describe('RedisRevocationList: a stale copy', () => {
  // [id, fresh copy, stale copy]
  const rows: [string, boolean | undefined, boolean | undefined][] = [
    ['revoked', true, true],
    ['unknown', false, undefined],
    ['expires', true, undefined], // revoked until a moment the stale copy has passed: the token itself has expired
  ];
  for (const [id, fresh, stale] of rows) {
    it(`${id}: ${String(fresh)} while fresh, ${String(stale)} once stale`, async () => {
      const clock = new FakeClock(NOW_MS);
      const redis = fakeRedis({ revoked: NOW_MS + 3_600_000, expires: NOW_MS + 10_000 });
      const list = new RedisRevocationList(redis.client, { clock, refreshMs: 1000, maxStalenessMs: 5000 });
      await list.refresh();
      assert.equal(list.isRevoked('jti', id), fresh);
      assert.equal(list.isRevoked('key', id), false, 'another kind');
      redis.state.up = false;
      clock.advance(20_000);
      await list.refresh();
      assert.equal(list.isRevoked('jti', id), stale);
      assert.equal(list.isRevoked('key', id), undefined, 'another kind: unknown');
      await list.close();
    });
  }
});
