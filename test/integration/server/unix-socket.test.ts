import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../support/app.js';
import { authzClient } from '../../support/authz-client.js';
import { startPortcullis, writeConfig } from '../../support/portcullis.js';
import { rateLimitClient } from '../../support/ratelimit-client.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

// server.grpc.address: unix:/path — Portcullis beside Envoy on one host. Real processes (bin/portcullis.js serve),
// real gRPC clients over the socket.

const LIMITS = `domain: uds
descriptors:
  - key: user
    rate_limit: { unit: minute, requests_per_unit: 2 }
`;
const request = (user: string) => ({ domain: 'uds', descriptors: [{ entries: [{ key: 'user', value: user }] }] });
const AUTHZ = { policies: [{ name: 'public', match: { path_prefix: '/public' }, authenticate: ['anonymous'] }] };

let scratch: string;
let descriptors: string;
before(() => {
  // Short: a socket path is at most 107 bytes, and tmpdir() may be long.
  scratch = mkdtempSync(path.join(tmpdir(), 'pc-uds-'));
  descriptors = path.join(scratch, 'limits');
  mkdirSync(descriptors);
  writeFileSync(path.join(descriptors, 'uds.yaml'), LIMITS);
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const config = (address: string, extra: object = {}) => ({
  server: { grpc: { address }, admin: { address: '127.0.0.1:0' }, shutdown_timeout_ms: 2000 },
  log: { level: 'info' },
  ratelimit: { descriptors, reload: { enabled: false } },
  authz: AUTHZ,
  ...extra,
});

/** A socket file nobody listens on: what a process killed with SIGKILL leaves behind. */
async function staleSocket(socketPath: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(lstatSync(socketPath).isSocket(), 'the killed process left its socket file');
}

describe('gRPC over a Unix socket (one process)', () => {
  it('serves ShouldRateLimit and Check on a socket resolved against the config directory, mode 0660, removed on SIGTERM', async () => {
    // A relative path: next to the config file, wherever the process runs from.
    const { file, dir } = writeConfig(config('unix:grpc.sock'));
    const socketPath = path.join(dir, 'grpc.sock');
    const portcullis = await startPortcullis({}, { configFile: file });
    try {
      assert.equal(portcullis.grpcAddress, `unix:${socketPath}`);
      assert.equal(portcullis.grpcSocket, socketPath);
      const stat = lstatSync(socketPath);
      assert.ok(stat.isSocket());
      assert.equal(stat.mode & 0o777, 0o660, `mode ${(stat.mode & 0o777).toString(8)}`);

      const rl = rateLimitClient(portcullis.grpcAddress);
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await rl.shouldRateLimit(request('alice'))).overall_code);
      assert.deepEqual(codes, ['OK', 'OK', 'OVER_LIMIT']);
      rl.close();
      const authz = authzClient(portcullis.grpcAddress);
      assert.equal((await authz.check({ path: '/public/x' })).status?.code ?? 0, 0);
      assert.equal((await authz.check({ path: '/private' })).status?.code, 7, 'no policy: denied');
      authz.close();
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
    assert.equal(existsSync(socketPath), false, 'SIGTERM removed the socket file');
  });

  it('removes a stale socket file (nobody listening) and serves in its place', async () => {
    const socketPath = path.join(scratch, 'stale.sock');
    await staleSocket(socketPath);
    const portcullis = await startPortcullis(config(`unix:${socketPath}`));
    try {
      const rl = rateLimitClient(portcullis.grpcAddress);
      assert.equal((await rl.shouldRateLimit(request('bob'))).overall_code, 'OK');
      rl.close();
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
    assert.equal(existsSync(socketPath), false);
  });

  it('refuses to start on a path that is not a socket, and leaves the file alone', async () => {
    const notASocket = path.join(scratch, 'notes.txt');
    writeFileSync(notASocket, 'keep me\n');
    await assert.rejects(startPortcullis(config(`unix:${notASocket}`)), /cannot listen on unix:\S+notes\.txt \(gRPC\): the path exists and is not a socket/);
    assert.equal(readFileSync(notASocket, 'utf8'), 'keep me\n');
  });

  it('refuses to start on a socket another process listens on, and leaves it to that process', async () => {
    const socketPath = path.join(scratch, 'taken.sock');
    const other: Server = createServer((c) => c.end());
    await new Promise<void>((resolve) => other.listen(socketPath, resolve));
    try {
      await assert.rejects(startPortcullis(config(`unix:${socketPath}`)), /cannot listen on unix:\S+taken\.sock \(gRPC\): address already in use/);
      assert.ok(lstatSync(socketPath).isSocket(), 'the other process\'s socket is still there');
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });
});

describe('gRPC over a Unix socket with server.workers: 2 (node:cluster hands the socket\'s connections over)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('clears a stale socket once, serves from both workers, and the file goes when the supervisor stops', async () => {
    const socketPath = path.join(scratch, 'workers.sock');
    await staleSocket(socketPath);
    const portcullis = await startPortcullis(config(`unix:${socketPath}`, { redis: { url: redis.url }, server: { grpc: { address: `unix:${socketPath}` }, admin: { address: '127.0.0.1:0' }, workers: 2, shutdown_timeout_ms: 2000 } }), { readyTimeoutMs: 60_000 });
    try {
      assert.equal(lstatSync(socketPath).mode & 0o777, 0o660);
      await eventually(async () => (await fetch(`${portcullis.adminUrl}/readyz`)).status === 200, 20_000, 'both workers ready');
      // Each client on a connection of its own: the supervisor hands connections to the workers in turn.
      const clients = Array.from({ length: 4 }, () => rateLimitClient(portcullis.grpcAddress, true));
      for (const [i, client] of clients.entries()) assert.equal((await client.shouldRateLimit(request(`w${i}`))).overall_code, 'OK');
      for (const client of clients) client.close();
      const served = async (): Promise<number[]> => ((await (await fetch(`${portcullis.adminUrl}/config`)).json()) as { workers: { decisions: number }[] }).workers.map((w) => w.decisions);
      await eventually(async () => (await served()).every((n) => n > 0), 20_000, 'both workers answered over the socket');
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
    assert.equal(existsSync(socketPath), false, 'the supervisor removed the socket file');
  });
});
