// Three sample services for the composer benchmark (bench/bff/run.ts), in one process: each answers a small JSON
// document after a fixed delay.
//
// Usage: node dist/bench/bff/upstreams.js <delay ms>,<delay ms>,<delay ms>
// Prints `upstreams listening <port>,<port>,<port>` on stdout.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const delays = (process.argv[2] ?? '5,10,20').split(',').map(Number);
const ports: number[] = [];
for (const [i, delay] of delays.entries()) {
  const payload = JSON.stringify({ service: i, items: Array.from({ length: 5 }, (_, n) => ({ id: `${i}-${n}`, name: `item ${n}`, total: n * 3 })) });
  const server = createServer((req, res) => {
    req.resume();
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  ports.push((server.address() as AddressInfo).port);
}
process.stdout.write(`upstreams listening ${ports.join(',')}\n`);
