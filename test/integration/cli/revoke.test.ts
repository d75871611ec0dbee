// `portcullis revoke` as operators run it: what reaches the shared revocation list, and what it says when it cannot.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestApp } from '../../support/app.js';
import { runCommand, repoRoot } from '../../support/envoy.js';
import { portcullisBin, writeConfig } from '../../support/portcullis.js';
import { sendCommand, startRedis, startRedisSentinel, type RedisServer } from '../../support/redis-server.js';
import { createRedisClient } from '../../../src/store/redis-client.js';
import { RedisRevocationList } from '../../../src/store/revocation-list.js';
import { systemClock } from '../../../src/shared/clock.js';

const descriptors = path.join(repoRoot(), 'envoy', 'ratelimit');
const authz = { policies: [{ name: 'open', match: { path_prefix: '/' }, authenticate: ['anonymous'] }], revocation: { enabled: true } };
const revoke = (...args: string[]): ReturnType<typeof runCommand> => runCommand(process.execPath, [portcullisBin(), 'revoke', ...args]);
// sendCommand returns raw RESP: a bulk string is `$<length>\r\n<value>\r\n` (`$-1` for none), an integer `:<n>`.
const bulk = (reply: string): number => Number(reply.split('\r\n')[1]);
const VERSION = '{portcullis:authz}:revoked:version';

describe('portcullis revoke', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  it('reaches the list through Redis Sentinel: the master it names, with both passwords', async () => {
    const master = await startRedis({ password: 'data-pw' });
    const sentinel = await startRedisSentinel({ master, password: 'sentinel-pw', masterPassword: 'data-pw' });
    try {
      const { file } = writeConfig({
        redis: { sentinel: { master: sentinel.name, nodes: [`redis://:sentinel-pw@127.0.0.1:${sentinel.server.port}`], password: 'data-pw' } },
        ratelimit: { descriptors }, authz,
      });
      const revoked = await revoke('--config', file, '--jti', 'via-sentinel');
      assert.equal(revoked.code, 0, revoked.output);
      assert.match(await sendCommand(master.port, ['ZSCORE', '{portcullis:authz}:revoked:jti', 'via-sentinel']), /^\$\d+\r\n\d+/);
      const listed = await revoke('--config', file, '--list');
      assert.equal(listed.code, 0, listed.output);
      assert.match(listed.output, /via-sentinel/);
    } finally {
      await sentinel.stop();
      await master.stop();
    }
  });

  it('adds a jti and an API key id to the list every instance reads, with the default and a given lifetime', async () => {
    const { file } = writeConfig({ redis: { url: redis.url }, ratelimit: { descriptors }, authz });
    const jti = await revoke('--config', file, '--jti', 'token-1', '--ttl', '120');
    assert.equal(jti.code, 0, jti.output);
    assert.match(jti.output, /^revoked jti token-1 until \d{4}-\d\d-\d\dT/);
    const key = await revoke('--config', file, '--api-key-id', 'key-7');
    assert.equal(key.code, 0, key.output);

    const score = bulk(await sendCommand(redis.port, ['ZSCORE', '{portcullis:authz}:revoked:jti', 'token-1']));
    assert.ok(Math.abs(score - (Date.now() + 120_000)) < 30_000, `jti kept until ${score}`);
    const keyScore = bulk(await sendCommand(redis.port, ['ZSCORE', '{portcullis:authz}:revoked:key', 'key-7']));
    assert.ok(keyScore > Date.now() + 50 * 365 * 86_400_000, 'a key id is revoked for good by default');

    // What a running instance's reader sees.
    const client = createRedisClient({ url: redis.url });
    const list = new RedisRevocationList(client, { clock: systemClock, refreshMs: 1000, maxStalenessMs: 5000 });
    try {
      await new Promise((resolve) => client.once('ready', resolve));
      await list.refresh();
      assert.equal(list.isRevoked('jti', 'token-1'), true);
      assert.equal(list.isRevoked('key', 'key-7'), true);
      assert.equal(list.isRevoked('jti', 'token-2'), false);
    } finally {
      await list.close();
    }
  });

  it('refuses without a shared list, with bad arguments, and when Redis does not answer, saying why', async () => {
    const noRedis = writeConfig({ ratelimit: { descriptors }, authz }).file;
    const without = await revoke('--config', noRedis, '--jti', 'x');
    assert.equal(without.code, 1);
    assert.match(without.output, /no shared revocation list \(it needs redis: and authz\.revocation\.enabled: true\)/);

    const withRedis = writeConfig({ redis: { url: redis.url }, ratelimit: { descriptors }, authz }).file;
    assert.equal((await revoke('--config', withRedis)).code, 2);
    assert.equal((await revoke('--config', withRedis, '--jti', 'a', '--api-key-id', 'b')).code, 2);
    const badTtl = await revoke('--config', withRedis, '--jti', 'a', '--ttl', '1.5');
    assert.equal(badTtl.code, 2);
    assert.match(badTtl.output, /--ttl must be a whole number of seconds/);

    const deadRedis = writeConfig({ redis: { url: 'redis://127.0.0.1:1', connect_timeout_ms: 200 }, ratelimit: { descriptors }, authz }).file;
    const dead = await revoke('--config', deadRedis, '--jti', 'a');
    assert.equal(dead.code, 1, dead.output);
    assert.match(dead.output, /^revoke: failed: /m);
  });
  it('--list shows every entry in effect, sorted, ids escaped, and a count; --lift removes one, exit 1 if it is not there', async () => {
    await sendCommand(redis.port, ['FLUSHALL']);
    const { file } = writeConfig({ redis: { url: redis.url }, ratelimit: { descriptors }, authz });
    const empty = await revoke('--config', file, '--list');
    assert.equal(empty.code, 0, empty.output);
    assert.equal(empty.output, '0 revoked (0 jti, 0 API key ids)\n');

    assert.equal((await revoke('--config', file, '--jti', 'token-b', '--ttl', '120')).code, 0);
    assert.equal((await revoke('--config', file, '--api-key-id', 'key-7')).code, 0);
    // Written by hand as docs/authz.md shows: for good (+inf), an id with a terminal escape in it, one expired.
    await sendCommand(redis.port, ['ZADD', '{portcullis:authz}:revoked:jti', '+inf', 'token-a', '+inf', 'evil\x1b[2J\nx', '5', 'expired']);
    const listed = await revoke('--config', file, '--list');
    assert.equal(listed.code, 0, listed.output);
    const lines = listed.output.split('\n');
    assert.equal(lines[0], 'KIND        UNTIL                     ID');
    assert.match(lines[1]!, /^api-key-id {2}21\d\d-\d\d-\d\dT[\d:.]+Z {2}key-7$/);
    assert.equal(lines[2], 'jti         never                     evil\\x1b[2J\\x0ax');
    assert.equal(lines[3], 'jti         never                     token-a');
    assert.match(lines[4]!, /^jti {9}\d{4}-\d\d-\d\dT[\d:.]+Z {2}token-b$/);
    assert.equal(lines[5], '4 revoked (3 jti, 1 API key id)');
    assert.ok(!listed.output.includes('\x1b'), 'no raw escape reaches the terminal');

    const versionBefore = bulk(await sendCommand(redis.port, ['GET', VERSION]));
    const lifted = await revoke('--config', file, '--lift', '--api-key-id', 'key-7');
    assert.equal(lifted.code, 0, lifted.output);
    assert.match(lifted.output, /^lifted the revocation of API key id key-7; every instance accepts it again within about 1000 ms\n$/);
    assert.equal(await sendCommand(redis.port, ['ZSCORE', '{portcullis:authz}:revoked:key', 'key-7']), '$-1\r\n');
    assert.equal(bulk(await sendCommand(redis.port, ['GET', VERSION])), versionBefore + 1, 'a lift moves the version the instances watch');

    for (const args of [['--api-key-id', 'key-7'], ['--jti', 'expired'], ['--jti', 'never-revoked'], ['--api-key-id', 'token-a']]) {
      const missing = await revoke('--config', file, '--lift', ...args);
      assert.equal(missing.code, 1, `${args.join(' ')}: ${missing.output}`);
      assert.match(missing.output, /^revoke: (jti|API key id) [\w-]+ is not revoked: nothing to lift \(revoke --list shows what is\)\n$/);
    }
    assert.equal(bulk(await sendCommand(redis.port, ['GET', VERSION])), versionBefore + 1, 'nothing lifted, no reload on the instances');
    assert.equal((await revoke('--config', file, '--lift', '--jti', 'token-a')).code, 0, 'revoked for good, lifted all the same');
    assert.equal((await revoke('--config', file, '--list')).output.split('\n').at(-2), '2 revoked (2 jti, 0 API key ids)');
  });

  it('a revoke never shortens a revocation in place (an incident\'s hour-long block of a key id revoked for good)', async () => {
    const { file } = writeConfig({ redis: { url: redis.url }, ratelimit: { descriptors }, authz });
    assert.equal((await revoke('--config', file, '--api-key-id', 'for-good')).code, 0);
    const score = async (): Promise<number> => bulk(await sendCommand(redis.port, ['ZSCORE', '{portcullis:authz}:revoked:key', 'for-good']));
    const kept = await score();
    const hour = await revoke('--config', file, '--api-key-id', 'for-good', '--ttl', '3600');
    assert.equal(hour.code, 0, hour.output);
    assert.match(hour.output, /^API key id for-good was already revoked until 21\d\d-.*, which stays \(a revocation is never shortened: --lift it first\)/);
    assert.equal(await score(), kept);
    // Longer does extend; lift, then revoke, shortens.
    assert.equal((await revoke('--config', file, '--jti', 'grows', '--ttl', '60')).code, 0);
    assert.match((await revoke('--config', file, '--jti', 'grows', '--ttl', '600')).output, /^revoked jti grows until /);
    assert.equal((await revoke('--config', file, '--lift', '--api-key-id', 'for-good')).code, 0);
    assert.equal((await revoke('--config', file, '--api-key-id', 'for-good', '--ttl', '3600')).code, 0);
    assert.ok(await score() < Date.now() + 2 * 3_600_000);
  });

  it('a running instance refuses a revoked API key id and accepts it again within a second or two of --lift', async () => {
    const key = 'pk_revoke-lift-key-0000000000000000000000000';
    const refreshMs = 200;
    const app = await startTestApp({
      descriptors: {},
      files: { 'keys.yaml': `- { id: lift-me, sha256: ${createHash('sha256').update(key).digest('hex')}, owner: ops }\n` },
      authz: `api_keys: { header: x-api-key, file: ./keys.yaml }
revocation: { enabled: true, on_unavailable: deny, refresh_ms: ${refreshMs} }
policies:
  - { name: api, match: { path_prefix: / }, authenticate: [api_key] }`,
      // What serve builds from that config (sharedRevocationList), on the CLI's Redis.
      revocation: new RedisRevocationList(createRedisClient({ url: redis.url }), { clock: systemClock, refreshMs, maxStalenessMs: 5000 }),
    });
    const { file } = writeConfig({ redis: { url: redis.url }, ratelimit: { descriptors }, authz });
    try {
      const check = async (): Promise<string> => {
        const r = await app.authz.check({ path: '/orders', headers: { 'x-api-key': key } });
        return r.status?.code === 0 ? 'allow' : 'deny';
      };
      await eventually(async () => (await check()) === 'allow', 5000, 'key accepted');
      assert.equal((await revoke('--config', file, '--api-key-id', 'lift-me')).code, 0);
      const revokedAt = Date.now();
      await eventually(async () => (await check()) === 'deny', 2000, 'revocation seen');
      const refusedAfter = Date.now() - revokedAt;
      const lifted = await revoke('--config', file, '--lift', '--api-key-id', 'lift-me');
      assert.equal(lifted.code, 0, lifted.output);
      const liftedAt = Date.now();
      await eventually(async () => (await check()) === 'allow', 2000, 'lift seen');
      const acceptedAfter = Date.now() - liftedAt;
      assert.ok(acceptedAfter < 1500, `accepted again ${acceptedAfter} ms after the lift (refused ${refusedAfter} ms after the revoke)`);
      // And it stays accepted: no refresh brings the old copy back.
      await new Promise((resolve) => setTimeout(resolve, 3 * refreshMs));
      assert.equal(await check(), 'allow');
    } finally {
      await app.close();
    }
  });

  it('revokes and lifts from two writers racing a reader: once they stop, one refresh gives the reader what Redis holds', async () => {
    await sendCommand(redis.port, ['FLUSHALL']);
    const open = async (): Promise<RedisRevocationList> => {
      const client = createRedisClient({ url: redis.url });
      await new Promise((resolve) => client.once('ready', resolve));
      return new RedisRevocationList(client, { clock: systemClock, refreshMs: 1000, maxStalenessMs: 5000 });
    };
    const [one, two, reader] = await Promise.all([open(), open(), open()]);
    try {
      const ids = Array.from({ length: 8 }, (_, i) => `id-${i}`);
      let writing = true;
      const reading = (async () => {
        while (writing) await reader.refresh();
      })();
      // Each writer flips every id many times; which one wins each id is whatever Redis saw last.
      const writer = async (list: RedisRevocationList, seed: number): Promise<void> => {
        for (let round = 0; round < 40; round++) {
          const id = ids[(round * 7 + seed) % ids.length]!;
          if ((round + seed) % 3 === 0) await list.lift('key', id);
          else await list.revoke('key', id, Date.now() + 60_000);
        }
      };
      await Promise.all([writer(one, 1), writer(two, 2)]);
      // Last, a lift of an id the reader has already loaded: nothing but the lift changes after that load.
      await one.revoke('key', 'last', Date.now() + 60_000);
      writing = false;
      await reading;
      await reader.refresh();
      assert.equal(reader.isRevoked('key', 'last'), true);
      assert.equal(await two.lift('key', 'last'), true);
      await reader.refresh();
      const inRedis = new Set((await reader.entries()).map((e) => e.id));
      assert.ok(!inRedis.has('last'));
      for (const id of [...ids, 'last']) assert.equal(reader.isRevoked('key', id), inRedis.has(id), id);
    } finally {
      await Promise.all([one.close(), two.close(), reader.close()]);
    }
  });

  it('--list and --lift with Redis not answering: a bounded wait, a message, exit 1', async () => {
    const deadRedis = writeConfig({ redis: { url: 'redis://127.0.0.1:1', connect_timeout_ms: 200 }, ratelimit: { descriptors }, authz }).file;
    for (const args of [['--list'], ['--lift', '--jti', 'a']]) {
      const started = Date.now();
      const dead = await revoke('--config', deadRedis, ...args);
      assert.equal(dead.code, 1, dead.output);
      assert.match(dead.output, /^revoke: failed: Redis did not answer within 5000 ms\n$/);
      assert.ok(Date.now() - started < 8000);
    }
    const withRedis = writeConfig({ redis: { url: redis.url }, ratelimit: { descriptors }, authz }).file;
    for (const args of [['--list', '--jti', 'a'], ['--lift'], ['--lift', '--jti', 'a', '--ttl', '5']]) assert.equal((await revoke('--config', withRedis, ...args)).code, 2, args.join(' '));
  });
});
