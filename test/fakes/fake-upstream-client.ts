import type { BffService } from '../../src/bff/config.js';
import { UpstreamError, type UpstreamClient, type UpstreamRequest, type UpstreamResponse } from '../../src/bff/upstream-client.js';

export interface FakeReply {
  readonly status?: number;
  readonly body?: unknown;
  /** Answer after this many ms (aborting the request's signal rejects earlier, like a real client). */
  readonly delayMs?: number;
  /** Fail like a refused connection. */
  readonly network?: boolean;
}

export interface SeenRequest {
  readonly service: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly startedAt: number;
}

/** An in-memory UpstreamClient: replies by `service path` (path without query), records every request. */
export class FakeUpstreamClient implements UpstreamClient {
  readonly seen: SeenRequest[] = [];
  constructor(private readonly replies: Readonly<Record<string, FakeReply | ((r: UpstreamRequest) => FakeReply)>>, private readonly now: () => number = () => performance.now()) {}

  request(request: UpstreamRequest): Promise<UpstreamResponse> {
    this.seen.push({ service: request.service.name, path: request.path, headers: request.headers, startedAt: this.now() });
    const key = `${request.service.name} ${request.path.split('?')[0]}`;
    const entry = this.replies[key];
    const reply = typeof entry === 'function' ? entry(request) : entry ?? { status: 404 };
    return new Promise((resolve, reject) => {
      const answer = (): void => {
        request.signal.removeEventListener('abort', onAbort);
        if (reply.network) reject(new UpstreamError('network', 'connect ECONNREFUSED'));
        else resolve({ status: reply.status ?? 200, body: reply.body });
      };
      const timer = setTimeout(answer, reply.delayMs ?? 0);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new Error('This operation was aborted'));
      };
      if (request.signal.aborted) onAbort();
      else request.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  retain(_services: Iterable<BffService>): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
