import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cluster, Redis } from 'ioredis';
import { ErrorCode, PortcullisError } from '../../../src/shared/errors.js';
import { createRedisClient, type RedisClient } from '../../../src/store/redis-client.js';

// ioredis's Cluster reads a seed URL's host, port and credentials but not its scheme: only redisOptions.tls makes a
// node connection TLS, for the seeds and for every node learnt from CLUSTER SLOTS alike.
describe('createRedisClient: a cluster whose seeds are rediss:// is reached over TLS', () => {
  /** The options ioredis builds every node connection from (the client is closed before it connects anywhere). */
  const nodeOptions = (cluster: readonly string[]): Record<string, unknown> => {
    const client = createRedisClient({ cluster }) as Cluster;
    client.disconnect();
    return { ...client.options.redisOptions };
  };

  const table: [string, string[], boolean][] = [
    ['rediss:// seeds', ['rediss://:s3cret@127.0.0.1:1', 'rediss://127.0.0.1:2'], true],
    ['one rediss:// seed', ['rediss://127.0.0.1:1'], true],
    ['redis:// seeds', ['redis://:s3cret@127.0.0.1:1', 'redis://127.0.0.1:2'], false],
    ['host:port seeds', ['127.0.0.1:1'], false],
  ];
  for (const [name, seeds, tls] of table) {
    it(`${name}: ${tls ? 'TLS' : 'no TLS'} for every node`, () => {
      const options = nodeOptions(seeds);
      assert.equal(options['tls'] !== undefined, tls, JSON.stringify(options));
    });
  }

  it('keeps the seed credentials for every node, TLS or not', () => {
    assert.equal(nodeOptions(['rediss://:s3cret@127.0.0.1:1'])['password'], 's3cret');
  });

  // The config refuses these with the file and line; a caller that skips it must not get a half-TLS cluster.
  it('refuses seeds that mix rediss:// and redis://, whichever comes first', () => {
    for (const seeds of [['rediss://127.0.0.1:1', 'redis://127.0.0.1:2'], ['127.0.0.1:1', 'rediss://127.0.0.1:2']]) {
      let client: RedisClient | undefined;
      try {
        assert.throws(() => (client = createRedisClient({ cluster: seeds })), (error: unknown) =>
          error instanceof PortcullisError && error.code === ErrorCode.CONFIG_INVALID && /rediss:\/\//.test(error.message));
      } finally {
        client?.disconnect(); // would reconnect forever, keeping the test process alive
      }
    }
  });

  it('the single node keeps reading its own scheme (ioredis turns rediss:// into TLS there)', () => {
    const client = createRedisClient({ url: 'rediss://127.0.0.1:1' }) as Redis;
    client.disconnect();
    assert.ok(client.options.tls !== undefined);
  });
});
