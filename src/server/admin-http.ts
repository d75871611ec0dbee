import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../observability/logger.js';

export interface AdminDeps {
  readonly registry: Registry;
  readonly logger: Logger;
  readonly live: () => boolean;
  readonly ready: () => { ready: boolean; reasons: string[] };
  /** Effective config with secrets redacted. */
  readonly config: () => unknown;
}

/** /metrics, /healthz, /readyz, /config. Read-only: nothing here changes the process. */
export function createAdminServer(deps: AdminDeps): Server {
  return createServer((req, res) => {
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const route = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    switch (route) {
      case '/healthz':
        return deps.live() ? send(200, 'text/plain', 'ok\n') : send(503, 'text/plain', 'shutting down\n');
      case '/readyz': {
        const { ready, reasons } = deps.ready();
        return send(ready ? 200 : 503, 'application/json', JSON.stringify({ ready, reasons }) + '\n');
      }
      case '/config':
        return send(200, 'application/json', JSON.stringify(deps.config(), null, 2) + '\n');
      case '/metrics':
        deps.registry.metrics().then(
          (text) => send(200, deps.registry.contentType, text),
          (error: unknown) => {
            deps.logger.error({ err: error }, 'metrics rendering failed');
            send(500, 'text/plain', 'metrics unavailable\n');
          },
        );
        return undefined;
      default:
        return send(404, 'text/plain', 'not found: try /healthz /readyz /metrics /config\n');
    }
  });
}

export async function listen(server: Server, address: string): Promise<string> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return `${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
}
