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
  stop(): Promise<void>;
}

export async function startUpstream(host = '127.0.0.1', port = 0): Promise<Upstream> {
  let count = 0;
  const server: Server = createServer((request, response) => {
    count += 1;
    const body: EchoBody = { method: request.method ?? '', path: request.url ?? '', headers: request.headers };
    // Drain any request body, then answer.
    request.resume();
    request.on('end', () => {
      const payload = JSON.stringify(body);
      response.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
      });
      response.end(payload);
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
