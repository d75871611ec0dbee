import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { explainRedisError, isUninformative, watchRedisConnection } from '../../../src/store/redis-connection-log.js';

describe('explainRedisError', () => {
  const cases: [message: string, shown: RegExp][] = [
    ['read ECONNRESET', /^ECONNRESET: the server closed the connection \(a server that requires TLS does this to redis:\/\/: use rediss:\/\/\)$/],
    ['write ECONNRESET', /^ECONNRESET: the server closed the connection/],
    ['127.0.0.1:7000: read ECONNRESET', /^127\.0\.0\.1:7000: ECONNRESET: the server closed/],
    ['connect ETIMEDOUT', /^connect ETIMEDOUT: no answer within connect_timeout_ms \(with rediss:\/\/, a server that does not speak TLS times out too\)$/],
    ['WRONGPASS invalid username-password pair or user is disabled.', /^WRONGPASS invalid username-password pair/],
    ['self-signed certificate', /^self-signed certificate$/],
    ['getaddrinfo ENOTFOUND redis.example', /^getaddrinfo ENOTFOUND redis\.example$/],
  ];
  for (const [message, shown] of cases) it(message, () => assert.match(explainRedisError(message), shown));
});

describe('isUninformative', () => {
  const cases: [message: string, uninformative: boolean][] = [
    ['Connection is closed.', true],
    ['Failed to refresh slots cache.', true],
    ["Cluster isn't ready and enableOfflineQueue options is false", true],
    ['None of startup nodes is available', true],
    ['timeout', true],
    ['self-signed certificate', false],
    ['WRONGPASS invalid username-password pair', false],
    ['connect ECONNREFUSED 127.0.0.1:6379', false],
  ];
  for (const [message, expected] of cases) it(message, () => assert.equal(isUninformative(message), expected));
});

describe('watchRedisConnection: one line per kind of reason until the connection works again', () => {
  const watch = (): { client: EventEmitter; lines: string[] } => {
    const client = new EventEmitter() as EventEmitter & { isCluster: boolean };
    client.isCluster = false;
    const lines: string[] = [];
    watchRedisConnection(client as unknown as Redis, { down: (reason) => lines.push(`down ${reason}`), up: () => lines.push('up') }, (text) => text.replace(/:[^@/]*@/, ':***@'));
    return { client, lines };
  };

  it('alternating messages of one kind are one line; a new kind is another; recovery is one line and starts over', () => {
    const { client, lines } = watch();
    for (let i = 0; i < 5; i++) {
      client.emit('error', new Error('read ECONNRESET'));
      client.emit('error', new Error('write ECONNRESET'));
    }
    client.emit('error', new Error('WRONGPASS invalid username-password pair'));
    client.emit('error', new Error('WRONGPASS invalid username-password pair'));
    client.emit('ready');
    client.emit('ready');
    client.emit('error', new Error('read ECONNRESET'));
    assert.deepEqual(lines.map((l) => l.split(':')[0]), ['down ECONNRESET', 'down WRONGPASS invalid username-password pair', 'up', 'down ECONNRESET']);
  });

  it('hides credentials in the reason', () => {
    const { client, lines } = watch();
    client.emit('error', new Error('connect to redis://:s3cret@cache:6379 refused'));
    assert.ok(!lines.join('\n').includes('s3cret'), lines.join('\n'));
  });
});
