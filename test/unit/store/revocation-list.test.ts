import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RedisClient } from '../../../src/store/redis-client.js';
import { MemoryRevocationList, RedisRevocationList, scoredIds } from '../../../src/store/revocation-list.js';
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
    defineCommand: () => undefined,
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

describe('scoredIds: a ZRANGEBYSCORE WITHSCORES reply as id → until', () => {
  const rows: [string, string[], [string, number][]][] = [
    ['empty', [], []],
    ['ms since epoch', ['a', '1700000000000', 'b', '5'], [['a', 1_700_000_000_000], ['b', 5]]],
    // An operator's ZADD … +inf id: revoked for good, not NaN (which is never above now: not revoked at all).
    ['+inf as Redis sends it', ['forever', 'inf'], [['forever', Number.POSITIVE_INFINITY]]],
    ['+inf spelled out', ['forever', '+inf'], [['forever', Number.POSITIVE_INFINITY]]],
    ['-inf', ['gone', '-inf'], [['gone', Number.NEGATIVE_INFINITY]]],
    ['a trailing member without a score is not an entry', ['a', '7', 'b'], [['a', 7]]],
  ];
  for (const [name, flat, want] of rows) it(name, () => assert.deepEqual([...scoredIds(flat)], want));

  it('an id revoked with +inf in Redis is revoked on the instances', async () => {
    const clock = new FakeClock(NOW_MS);
    const redis = fakeRedis({});
    const client = { ...(redis.client as unknown as Record<string, unknown>), zrangebyscore: (key: string) => Promise.resolve(key.endsWith(':jti') ? ['forever', 'inf'] : []) };
    const list = new RedisRevocationList(client as unknown as RedisClient, { clock, refreshMs: 1000, maxStalenessMs: 5000 });
    await list.refresh();
    assert.equal(list.isRevoked('jti', 'forever'), true);
    await list.close();
  });
});

describe('MemoryRevocationList: revoke, lift, entries', () => {
  // [what, steps (revoke: until offset; lift: expected answer), isRevoked after, entries' until offsets after]
  type Step = ['revoke', number, number] | ['lift', boolean] | ['advance', number];
  const rows: [string, Step[], boolean, number[]][] = [
    ['revoked', [['revoke', 60_000, 60_000]], true, [60_000]],
    ['a shorter revoke keeps the longer one', [['revoke', 60_000, 60_000], ['revoke', 1000, 60_000]], true, [60_000]],
    ['a longer revoke extends', [['revoke', 1000, 1000], ['revoke', 60_000, 60_000]], true, [60_000]],
    ['lifted', [['revoke', 60_000, 60_000], ['lift', true]], false, []],
    ['lifted twice: the second finds nothing', [['revoke', 60_000, 60_000], ['lift', true], ['lift', false]], false, []],
    ['never revoked: nothing to lift', [['lift', false]], false, []],
    ['expired: not listed, nothing to lift', [['revoke', 1000, 1000], ['advance', 1000], ['lift', false]], false, []],
    ['revoked again after a lift', [['revoke', 60_000, 60_000], ['lift', true], ['revoke', 1000, 1000]], true, [1000]],
  ];
  for (const [what, steps, revoked, untils] of rows) {
    it(what, async () => {
      const clock = new FakeClock(NOW_MS);
      const list = new MemoryRevocationList(clock);
      for (const step of steps) {
        if (step[0] === 'revoke') assert.equal(await list.revoke('key', 'k', NOW_MS + step[1]), NOW_MS + step[2]);
        else if (step[0] === 'lift') assert.equal(await list.lift('key', 'k'), step[1]);
        else clock.advance(step[1]);
      }
      assert.equal(list.isRevoked('key', 'k'), revoked);
      assert.equal(list.isRevoked('jti', 'k'), false, 'another kind');
      assert.deepEqual(await list.entries(), untils.map((u) => ({ kind: 'key', id: 'k', untilMs: NOW_MS + u })));
    });
  }
});

describe('RedisRevocationList: a refresh abandoned at its timeout', () => {
  it('does not write its older copy over a newer refresh (a lifted id would be refused again)', async (t) => {
    const clock = new FakeClock(NOW_MS);
    const redis = { version: '1', jti: ['x', String(NOW_MS + 3_600_000)] };
    let release: (() => void) | undefined;
    let calls = 0;
    const client = {
      get: () => Promise.resolve(redis.version),
      zrangebyscore: (key: string) => {
        const reply = key.endsWith(':jti') ? redis.jti : [];
        // The first read of the set hangs until released, then answers with the set as it was when asked.
        if (calls++ === 0) return new Promise((resolve) => (release = () => resolve(reply)));
        return Promise.resolve(reply);
      },
      disconnect: () => undefined,
      defineCommand: () => undefined,
    } as unknown as RedisClient;
    const errors: string[] = [];
    const list = new RedisRevocationList(client, { clock, refreshMs: 1000, maxStalenessMs: 30, onError: (e) => errors.push(e.message) });
    // The refresh timeout is unref'd (it must not hold a process open) and the first read never answers: without a
    // handle of its own the loop could run dry and the runner cancel this test before the timeout fires.
    const keepAlive = setInterval(() => undefined, 1000);
    t.after(() => clearInterval(keepAlive));
    await list.refresh();
    assert.deepEqual(errors, ['revocation refresh timed out']);
    // Lifted in Redis; the next refresh reads it.
    redis.version = '2';
    redis.jti = [];
    await list.refresh();
    assert.equal(list.isRevoked('jti', 'x'), false);
    release!();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(list.isRevoked('jti', 'x'), false, 'the abandoned refresh landed after the newer one');
    await list.close();
  });
});

describe('RedisRevocationList: a version that comes back with other sets behind it', () => {
  it('is caught by the full read every 30 s (a failover to a replica that missed a change, then one more change)', async () => {
    const clock = new FakeClock(NOW_MS);
    const redis = { version: '5', jti: [] as string[] };
    let setReads = 0;
    const client = {
      get: () => Promise.resolve(redis.version),
      zrangebyscore: (key: string) => {
        setReads++;
        return Promise.resolve(key.endsWith(':jti') ? redis.jti : []);
      },
      disconnect: () => undefined,
      defineCommand: () => undefined,
    } as unknown as RedisClient;
    const list = new RedisRevocationList(client, { clock, refreshMs: 1000, maxStalenessMs: 60_000 });
    await list.refresh();
    // The replica promoted had version 4; a revoke there made it 5 again, with a set this instance has not seen.
    redis.jti = ['x', String(NOW_MS + 3_600_000)];
    const readsBefore = setReads;
    for (let s = 1; s < 30; s++) {
      clock.advance(1000);
      await list.refresh();
    }
    assert.equal(setReads, readsBefore, 'an unchanged version costs one GET, not the sets');
    assert.equal(list.isRevoked('jti', 'x'), false, 'the copy cannot know before the full read');
    clock.advance(1000);
    await list.refresh();
    assert.equal(list.isRevoked('jti', 'x'), true);
    await list.close();
  });
});
