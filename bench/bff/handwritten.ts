// The baseline for the composer benchmark: the same fan-out written by hand, Promise.all over undici Pools with the
// same settings as the composer's client (keep-alive, 64 connections per service), the identity headers forwarded,
// the path parameter encoded, every body parsed and one JSON answer built.
//
// Usage: node dist/bench/bff/handwritten.js <port>,<port>,<port>
// Prints `handwritten listening <port>` on stdout. Answers GET /bff/bench/{userId}.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const pools = (process.argv[2] ?? '').split(',').map((port) => new Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 }));
const [users, orders, recs] = pools;
if (!users || !orders || !recs) throw new Error('usage: handwritten.js <port>,<port>,<port>');

async function getJson(pool: Pool, path: string, headers: Record<string, string>): Promise<unknown> {
  const { statusCode, body } = await pool.request({ method: 'GET', path, headers, signal: AbortSignal.timeout(10_000) });
  if (statusCode !== 200) {
    await body.dump();
    throw new Error(`status ${statusCode}`);
  }
  return body.json();
}

const server = createServer((req, res) => {
  const userId = encodeURIComponent(decodeURIComponent((req.url ?? '').split('?')[0]?.split('/')[3] ?? ''));
  const headers: Record<string, string> = {};
  for (const name of ['x-user-id', 'x-request-id', 'traceparent']) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  Promise.all([
    getJson(users, `/users/${userId}`, headers),
    getJson(orders, `/orders?user=${userId}&limit=5`, headers),
    getJson(recs, `/recommendations/${userId}`, headers),
  ]).then(
    ([user, recentOrders, recommendations]) => {
      const payload = JSON.stringify({ user, recentOrders, recommendations });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
    },
    () => {
      res.writeHead(502);
      res.end();
    },
  );
});
server.keepAliveTimeout = 75_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`handwritten listening ${(server.address() as AddressInfo).port}\n`));
