// `portcullis revoke` as operators run it: what reaches the shared revocation list, and what it says when it cannot.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand, repoRoot } from '../../support/envoy.js';
import { portcullisBin, writeConfig } from '../../support/portcullis.js';
import { sendCommand, startRedis, type RedisServer } from '../../support/redis-server.js';
import { createRedisClient } from '../../../src/store/redis-counter-store.js';
import { RedisRevocationList } from '../../../src/store/revocation-list.js';
import { systemClock } from '../../../src/shared/clock.js';

const descriptors = path.join(repoRoot(), 'envoy', 'ratelimit');
const authz = { policies: [{ name: 'open', match: { path_prefix: '/' }, authenticate: ['anonymous'] }], revocation: { enabled: true } };
const revoke = (...args: string[]): ReturnType<typeof runCommand> => runCommand(process.execPath, [portcullisBin(), 'revoke', ...args]);

describe('portcullis revoke', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  it('adds a jti and an API key id to the list every instance reads, with the default and a given lifetime', async () => {
    const { file } = writeConfig({ redis: { url: redis.url }, ratelimit: { descriptors }, authz });
    const jti = await revoke('--config', file, '--jti', 'token-1', '--ttl', '120');
    assert.equal(jti.code, 0, jti.output);
    assert.match(jti.output, /^revoked jti token-1 until \d{4}-\d\d-\d\dT/);
    const key = await revoke('--config', file, '--api-key-id', 'key-7');
    assert.equal(key.code, 0, key.output);

    // sendCommand returns raw RESP: a bulk string is `$<length>\r\n<value>\r\n`.
    const bulk = (reply: string): number => Number(reply.split('\r\n')[1]);
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
});
