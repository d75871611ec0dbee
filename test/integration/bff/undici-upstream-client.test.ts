// The real undici client against a real Node HTTP upstream: how a call ends when its signal aborts while it waits
// in the pool's queue, and when an error status comes with a body that never ends.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { BffService } from '../../../src/bff/config.js';
import { UndiciUpstreamClient } from '../../../src/bff/undici-upstream-client.js';

describe('UndiciUpstreamClient with a real upstream', () => {
  let server: Server;
  let origin: string;
  const seen: string[] = [];
  const hanging: ServerResponse[] = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push(req.url ?? '');
      if (req.url === '/hang') return void hanging.push(res);
      if (req.url === '/error-trickle') {
        // The status at once, then a body that never ends.
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.write('unavailable');
        const timer = setInterval(() => res.write('.'), 50);
        res.on('close', () => clearInterval(timer));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const service = (name: string, maxConcurrency: number): BffService => ({ name, origin, basePath: '', maxConcurrency });
  const call = (client: UndiciUpstreamClient, s: BffService, path: string, signal: AbortSignal) =>
    client.request({ service: s, path, headers: {}, signal, maxBytes: 1 << 20 });

  it('a call waiting in the queue settles with its abort reason at once, and is never sent', { timeout: 5000 }, async () => {
    const client = new UndiciUpstreamClient();
    const s = service('one', 1);
    try {
      const first = new AbortController();
      const holding = call(client, s, '/hang', first.signal);
      holding.catch(() => undefined);
      while (hanging.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const reason = new Error('call timeout');
      const aborter = new AbortController();
      setTimeout(() => aborter.abort(reason), 100);
      const started = performance.now();
      const [queued, alreadyAborted] = await Promise.allSettled([
        call(client, s, '/queued', aborter.signal),
        call(client, s, '/queued-aborted', AbortSignal.abort(reason)),
      ]);
      const ms = performance.now() - started;
      assert.deepEqual([queued, alreadyAborted], [{ status: 'rejected', reason }, { status: 'rejected', reason }]);
      assert.ok(ms < 1000, `settled after ${ms} ms, not when the connection came free`);
      // Free the connection: the aborted calls are dropped, not sent, and the pool serves the next call.
      first.abort(new Error('done'));
      await assert.rejects(holding);
      assert.deepEqual(await call(client, s, '/after', AbortSignal.timeout(5000)), { status: 200, body: { ok: true } });
      assert.deepEqual(seen.filter((p) => p.startsWith('/queued')), []);
    } finally {
      await client.close();
    }
  });

  it('an error status is the answer at once, without waiting for its body to end', { timeout: 5000 }, async () => {
    const client = new UndiciUpstreamClient();
    try {
      const started = performance.now();
      assert.deepEqual(await call(client, service('trickle', 4), '/error-trickle', AbortSignal.timeout(3000)), { status: 503, body: undefined });
      const ms = performance.now() - started;
      assert.ok(ms < 1000, `answered after ${ms} ms, not at the 3000 ms timeout`);
    } finally {
      await client.close();
    }
  });
});
