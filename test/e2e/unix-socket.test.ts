// Portcullis beside Envoy on one host: server.grpc.address is a Unix socket and the generated bootstrap's portcullis
// cluster reaches it with `address: { pipe: { path } }` (src/gateway/envoy-bootstrap.ts, SocketPath). A real Envoy
// calls ext_authz, ratelimit and ext_proc over the socket, and health-checks it there.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ENABLED_FILTERS } from '../../src/gateway/filters.js';
import { send, startGateway, type Gateway } from '../support/gateway.js';
import { awayFromWindowEdge } from '../support/windows.js';

const KEY = `pk_test_${randomBytes(24).toString('base64url')}`;

describe('the gateway with Portcullis on a Unix socket (Envoy cluster address: pipe)', () => {
  let gateway: Gateway | undefined;
  const keysDir = mkdtempSync(path.join(tmpdir(), 'portcullis-uds-keys-'));

  before(async () => {
    writeFileSync(path.join(keysDir, 'keys.yaml'), stringify([{ id: 'uds', sha256: createHash('sha256').update(KEY).digest('hex'), owner: 'uds-owner', tier: 'test' }]));
    gateway = await startGateway({
      redisUrl: undefined, filters: ENABLED_FILTERS, apiKeysFile: path.join(keysDir, 'keys.yaml'),
      // Relative: next to the temp config file (a short path, well inside sun_path's 107 bytes).
      adjustPortcullisConfig: (config) => ({ ...config, server: { ...(config['server'] as object), grpc: { address: 'unix:grpc.sock' } } }),
    });
  });
  after(async () => {
    await gateway?.stop();
    rmSync(keysDir, { recursive: true, force: true });
  });
  const gw = (): Gateway => {
    if (gateway === undefined) throw new Error('gateway not started');
    return gateway;
  };
  const metrics = async (): Promise<string> => (await fetch(`${gw().portcullis.adminUrl}/metrics`)).text();
  const sum = (text: string, prefix: string): number => text.split('\n').filter((l) => l.startsWith(prefix)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

  it('Envoy\'s portcullis cluster is the socket, and its gRPC health check passes there', async () => {
    const socket = gw().portcullis.grpcSocket;
    assert.ok(socket !== undefined && path.isAbsolute(socket), `serving on ${gw().portcullis.grpcAddress}`);
    const clusters = (await (await fetch(`${gw().envoy.adminUrl}/clusters?format=json`)).json()) as {
      cluster_statuses: { name: string; host_statuses?: { address: { pipe?: { path: string } }; health_status: Record<string, unknown> }[] }[];
    };
    const hosts = clusters.cluster_statuses.find((c) => c.name === 'portcullis')?.host_statuses ?? [];
    assert.deepEqual(hosts.map((h) => h.address.pipe?.path), [socket]);
    assert.equal(hosts[0]?.health_status['eds_health_status'], 'HEALTHY');
    assert.equal(hosts[0]?.health_status['failed_active_health_check'], undefined);
  });

  it('every filter is answered over the socket: ext_authz names the caller, ext_proc sets the request id, ratelimit counts', async () => {
    const before = await metrics();
    const reply = await send(gw().port('http'), '/api/users/1', { headers: { 'x-user-id': 'admin' } });
    assert.equal(reply.status, 200, reply.body);
    const seen = (reply.json?.['headers'] ?? {}) as Record<string, string>;
    assert.equal(seen['x-user-id'], 'anonymous', 'ext_authz replaced the spoofed identity');
    assert.match(String(reply.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(seen['x-request-id'], reply.headers['x-request-id'], 'ext_proc\'s id reached the upstream');
    const after = await metrics();
    for (const series of ['portcullis_authz_checks_total{', 'portcullis_ratelimit_decisions_total{domain="gateway"', 'portcullis_extproc_messages_total{phase="request_headers"}']) {
      assert.ok(sum(after, series) > sum(before, series), `${series} grew`);
    }
    assert.equal((await send(gw().port('http'), '/api/orders')).status, 401, 'no key on a closed route: denied by ext_authz');
  });

  it('an API key past its 20 per minute gets 429: the OVER_LIMIT answer crossed the socket', async () => {
    await awayFromWindowEdge(60, 10);
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) statuses.push((await send(gw().port('http'), '/api/orders', { headers: { 'x-api-key': KEY } })).status);
    assert.deepEqual(statuses, [...Array(20).fill(200), 429, 429]);
  });
});
