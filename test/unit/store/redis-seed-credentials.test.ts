import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seedCredentials } from '../../../src/store/redis-client.js';

describe('seedCredentials: what every node of a cluster authenticates with', () => {
  const table: [string, string[], { username?: string; password?: string }][] = [
    ['no seed has any', ['redis://127.0.0.1:7000', '127.0.0.1:7001'], {}],
    ['password only', ['redis://:s3cret@127.0.0.1:7000'], { password: 's3cret' }],
    ['user and password', ['redis://app:s3cret@127.0.0.1:7000'], { username: 'app', password: 's3cret' }],
    ['percent-encoded', ['redis://a%40b:p%40ss%3Aw@h:1'], { username: 'a@b', password: 'p@ss:w' }],
    ['the first seed that has any', ['redis://h:1', 'redis://:second@h:2', 'redis://:third@h:3'], { password: 'second' }],
    ['query parameters', ['redis://h:1?password=q&username=u'], { username: 'u', password: 'q' }],
    ['user info wins over the query, as in ioredis', ['redis://:info@h:1?password=query'], { password: 'info' }],
    ['rediss', ['rediss://:tls@h:1'], { password: 'tls' }],
    ['host:port seeds have none', ['h:1'], {}],
  ];
  for (const [name, seeds, expected] of table) {
    it(name, () => assert.deepEqual({ ...seedCredentials(seeds) }, expected));
  }
});
