// A tiny HTTP upstream for e2e tests and the demo: answers every request with 200 and a JSON echo of the method,
// path and headers it received.
//
// As a script (used by scripts/demo.sh): node dist/test/support/upstream.js [--host 127.0.0.1] [--port 8000]

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface EchoBody {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

export interface Upstream {
  host: string;
  port: number;
  url: string;
  /** Number of requests answered so far. */
  requestCount(): number;
  /** Every request received so far, in arrival order. */
  requests(): EchoBody[];
  /** The most requests that were in progress at one time. */
  maxConcurrent(): number;
  stop(): Promise<void>;
}

/** How a test upstream misbehaves: the composer tests need a slow one and a failing one. */
export interface UpstreamBehaviour {
  /** Answer this many ms late. */
  delayMs?: number;
  /** Answer with this status (default 200); the body is still the echo. */
  status?: number;
}

export async function startUpstream(host = '127.0.0.1', port = 0, behaviour: UpstreamBehaviour = {}): Promise<Upstream> {
  let count = 0;
  let active = 0;
  let maxActive = 0;
  const seen: EchoBody[] = [];
  const server: Server = createServer((request, response) => {
    count += 1;
    active += 1;
    maxActive = Math.max(maxActive, active);
    const body: EchoBody = { method: request.method ?? '', path: request.url ?? '', headers: request.headers };
    seen.push(body);
    // Drain any request body, then answer.
    request.resume();
    request.on('end', () => {
      const payload = JSON.stringify(body);
      const answer = (): void => {
        active -= 1;
        response.writeHead(behaviour.status ?? 200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        });
        response.end(payload);
      };
      // setTimeout(…, 0) waits at least 1 ms: an instant upstream answers in the same tick, or every latency
      // measured through it carries that millisecond.
      if (!behaviour.delayMs) {
        answer();
        return;
      }
      const timer = setTimeout(answer, behaviour.delayMs);
      response.once('close', () => {
        if (!response.writableFinished) {
          clearTimeout(timer);
          active -= 1;
        }
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    host,
    port: bound,
    url: `http://${host}:${bound}`,
    requestCount: () => count,
    requests: () => seen,
    maxConcurrent: () => maxActive,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function argument(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
}

const invokedAsScript = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedAsScript) {
  const args = process.argv.slice(2);
  const upstream = await startUpstream(argument(args, '--host') ?? '127.0.0.1', Number(argument(args, '--port') ?? 8000));
  process.stdout.write(`upstream listening on ${upstream.url}\n`);
  const shutdown = (): void => void upstream.stop().then(() => process.exit(0));
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
