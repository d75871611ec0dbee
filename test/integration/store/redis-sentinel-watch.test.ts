// The failover detector of a client for the master Redis Sentinel names, with real processes: a master and two
// sentinels. A sentinel that stops answering while the master serves is one line in the connection log (failovers it
// announces would be missed), and one more when it answers again; nothing else would say so, since every call still
// counts.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../support/app.js';
import { startRedis, startRedisSentinel, type RedisSentinel, type RedisServer } from '../../support/redis-server.js';
import { createRedisClient, type RedisClient } from '../../../src/store/redis-client.js';
import { watchRedisConnection } from '../../../src/store/redis-connection-log.js';
import { systemClock } from '../../../src/shared/clock.js';

describe('a client through Redis Sentinel tells when a sentinel stops answering and when it is back', () => {
  let master: RedisServer;
  let first: RedisSentinel;
  let second: RedisSentinel;
  let client: RedisClient;
  const lines: string[] = [];

  before(async () => {
    master = await startRedis();
    first = await startRedisSentinel({ master });
    second = await startRedisSentinel({ master });
    client = createRedisClient({ sentinel: { master: first.name, nodes: [first.url, second.url], username: undefined, password: undefined } });
    watchRedisConnection(client, {
      down: (reason) => lines.push(`down ${reason}`),
      up: () => lines.push('up'),
      seedSkipped: (reason) => lines.push(`skipped ${reason}`),
      sentinelLost: (reason) => lines.push(`lost ${reason}`),
      sentinelBack: (sentinel) => lines.push(`back ${sentinel}`),
    }, { redact: (text) => text, clock: systemClock });
    await eventually(async () => (await client.ping().catch(() => '')) === 'PONG', 5000, 'the master answering');
  });

  after(async () => {
    client?.disconnect();
    await Promise.all([first?.stop(), second?.stop(), master?.stop()]);
  });

  it('one line when the second sentinel is killed, the master still serving; one when it is back', async () => {
    const address = `127.0.0.1:${second.server.port}`;
    await second.server.kill();
    await eventually(() => lines.some((l) => l.startsWith('lost')), 5000, 'a line about the sentinel');
    assert.deepEqual(lines, [`lost ${address}: connect ECONNREFUSED ${address}`]);
    assert.equal(await client.set('k', '1'), 'OK', 'the master serves meanwhile');
    // It keeps failing every second: still one line.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(lines.filter((l) => l.startsWith('lost')).length, 1, lines.join('\n'));

    await second.server.restart();
    await eventually(() => lines.length > 1, 5000, 'a second line');
    assert.deepEqual(lines, [`lost ${address}: connect ECONNREFUSED ${address}`, `back ${address}`], 'the master connection never failed');
  });
});
