import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RedisOptions } from 'ioredis';
import type { SentinelSettings } from '../../../src/store/redis-config.js';
import { sentinelOptions } from '../../../src/store/redis-client.js';

const settings = (nodes: string[], master: Partial<SentinelSettings> = {}): SentinelSettings => ({ master: 'mymaster', nodes, username: undefined, password: undefined, ...master });

/** What ioredis is told about the sentinels, the master and TLS; the failure behaviour is the same for every case. */
const picked = (options: RedisOptions): Record<string, unknown> => Object.fromEntries(Object.entries(options).filter(([key]) =>
  ['name', 'role', 'sentinels', 'username', 'password', 'sentinelUsername', 'sentinelPassword', 'tls', 'enableTLSForSentinelMode', 'sentinelTLS'].includes(key)));

describe('sentinelOptions: how the master named by Redis Sentinel is reached', () => {
  const cases: { name: string; sentinel: SentinelSettings; expected: Record<string, unknown> }[] = [
    {
      name: 'plain sentinels, no credentials; a node without a port is on 26379',
      sentinel: settings(['redis://s1:26380', 'redis://s2']),
      expected: { name: 'mymaster', role: 'master', sentinels: [{ host: 's1', port: 26380 }, { host: 's2', port: 26379 }] },
    },
    {
      name: "the master's credentials, and the sentinels' from the node that has them",
      sentinel: settings(['redis://s1:1', 'redis://sent:s%40cret@s2:2'], { username: 'app', password: 'mp' }),
      expected: { name: 'mymaster', role: 'master', sentinels: [{ host: 's1', port: 1 }, { host: 's2', port: 2 }], username: 'app', password: 'mp', sentinelUsername: 'sent', sentinelPassword: 's@cret' },
    },
    {
      name: "the sentinels' password as ?password=",
      sentinel: settings(['redis://s1:1?password=sp']),
      expected: { name: 'mymaster', role: 'master', sentinels: [{ host: 's1', port: 1 }], sentinelPassword: 'sp' },
    },
    {
      name: 'rediss:// sentinels: TLS to them and to the master',
      sentinel: settings(['rediss://s1:1', 'rediss://[::1]:2']),
      expected: { name: 'mymaster', role: 'master', sentinels: [{ host: 's1', port: 1 }, { host: '::1', port: 2 }], tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} },
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(picked(sentinelOptions(c.sentinel, { connectTimeout: 300 })), c.expected));

  it('fails at once while disconnected, follows failovers, and drops a demoted master', () => {
    const options = sentinelOptions(settings(['redis://s1:1']), { connectTimeout: 300 });
    assert.equal(options.enableOfflineQueue, false);
    assert.equal(options.failoverDetector, true);
    assert.equal(options.sentinelCommandTimeout, 300, 'a paused sentinel does not hold the lookup');
    assert.ok((options.disconnectTimeout ?? Infinity) <= 100, 'a paused master is dropped at once');
    const reconnect = options.reconnectOnError as (error: Error) => unknown;
    assert.equal(reconnect(new Error("READONLY You can't write against a read only replica.")), true);
    assert.equal(reconnect(new Error('OOM command not allowed')), false);
  });
});
