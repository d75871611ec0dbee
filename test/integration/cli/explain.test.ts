// `portcullis explain` reads the shared revocation list the instances read, so it refuses what they refuse.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import { explain } from '../../../src/cli/authz-commands.js';
import { repoRoot } from '../../support/envoy.js';
import { keyPairFor } from '../../support/key-pairs.js';
import { writeConfig } from '../../support/portcullis.js';
import { sendCommand, startRedis, type RedisServer } from '../../support/redis-server.js';

const descriptors = path.join(repoRoot(), 'envoy', 'ratelimit');
const KEY = 'pk_explain-revoked-000000000000000000000000000';

describe('portcullis explain with a shared revocation list', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  it('a key revoked in Redis is refused, as serve refuses it; Redis down follows on_unavailable', async () => {
    const authz = (keys: string) => ({
      api_keys: { header: 'x-api-key', file: keys },
      revocation: { enabled: true, on_unavailable: 'deny' },
      policies: [{ name: 'api', match: { path_prefix: '/' }, authenticate: ['api_key'] }],
    });
    const { dir } = writeConfig({});
    const keys = path.join(dir, 'keys.yaml');
    writeFileSync(keys, `- { id: alice-1, sha256: ${createHash('sha256').update(KEY).digest('hex')}, owner: alice }\n`);
    const run = async (url: string): Promise<string> => {
      const { file } = writeConfig({ redis: { url, connect_timeout_ms: 200 }, ratelimit: { descriptors }, authz: authz(keys) });
      let out = '';
      assert.equal(await explain({ config: file, path: '/x', header: [`x-api-key: ${KEY}`] }, (s) => (out += s)), 0, out);
      return out;
    };
    assert.match(await run(redis.url), /decision: ALLOW as alice/);
    await sendCommand(redis.port, ['ZADD', '{portcullis:authz}:revoked:key', String(Date.now() + 3_600_000), 'alice-1']);
    await sendCommand(redis.port, ['INCR', '{portcullis:authz}:revoked:version']);
    assert.match(await run(redis.url), /decision: DENY 401 invalid_credentials/);
    const down = await run('redis://127.0.0.1:1');
    assert.match(down, /revocation: Redis did not answer within \d+ ms: revocation state unknown \(on_unavailable: deny\)/);
    assert.match(down, /decision: DENY 503 unavailable/);
  });
});

describe('portcullis explain with remote keys', () => {
  it('waits for the JWKS as a running server holds it, then answers within the server\'s deadline; names a refused caller', async () => {
    const { privateKey, publicKey } = keyPairFor('RS256');
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
    // Slower than the Check's deadline (timeout_ms 300: 240 ms), faster than the fetch's own bound.
    const issuer = createServer((_req, res) => void setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(jwks), 700));
    await new Promise<void>((resolve) => issuer.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}/jwks.json`;
      const { file } = writeConfig({
        ratelimit: { descriptors },
        authz: {
          timeout_ms: 300,
          jwt: { providers: [{ name: 'idp', issuer: 'https://idp.test', audiences: ['api'], jwks: { uri: url } }] },
          policies: [{ name: 'api', match: { path_prefix: '/' }, authenticate: ['jwt'], require: { scopes: ['admin'] } }],
        },
      });
      const token = (scope: string): Promise<string> => new SignJWT({ iss: 'https://idp.test', aud: 'api', sub: 'alice', scope })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuedAt().setExpirationTime('5m').sign(privateKey);
      const run = async (scope: string): Promise<string> => {
        let out = '';
        assert.equal(await explain({ config: file, path: '/x', header: [`authorization: Bearer ${await token(scope)}`] }, (s) => (out += s)), 0, out);
        return out;
      };
      assert.match(await run('admin'), /decision: ALLOW as alice \(jwt\)/);
      const refused = await run('read');
      assert.match(refused, /decision: DENY 403 forbidden: not allowed: scope admin required\n {2}caller {2}alice \(jwt\)\n/);
      assert.doesNotMatch(refused, /www-authenticate/, 'a 403 carries no challenge');
      // A 401 shows the challenge the client gets; the address ip_allow would judge is named, and where it came from.
      let out = '';
      assert.equal(await explain({ config: file, path: '/x', sourceIp: '10.1.2.3' }, (s) => (out += s)), 0, out);
      assert.match(out, /^source: {3}10\.1\.2\.3\n/);
      assert.match(out, /decision: DENY 401 missing_credentials: .*\n {2}www-authenticate: Bearer realm="portcullis", error="invalid_request", error_description="[^"]+"\n/);
      assert.match(refused, /^source: {3}127\.0\.0\.1 \(the default: pass --source-ip with the address Envoy reports\)\n/);
    } finally {
      issuer.closeAllConnections();
      await new Promise((resolve) => issuer.close(resolve));
    }
  });
});
