import type { BffService } from './config.js';

/** One GET to a service: `path` already holds the service's base path and the encoded query. */
export interface UpstreamRequest {
  readonly service: BffService;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  /** A longer body is a failure (reason 'body'), read no further. */
  readonly maxBytes: number;
}

export interface UpstreamResponse {
  readonly status: number;
  /** Parsed JSON when the service says it sent JSON, the text otherwise. */
  readonly body: unknown;
}

/** Why a call failed; bounded, so it is also a metrics label. `input`: a value its path or query reads cannot be sent. */
export type FailureReason = 'timeout' | 'deadline' | 'aborted' | 'status' | 'network' | 'body' | 'input';

export class UpstreamError extends Error {
  constructor(readonly reason: 'network' | 'body', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

/** The composer's port to the services; undici-upstream-client.ts is the real one. */
export interface UpstreamClient {
  /** Rejects with UpstreamError, or with anything once `signal` aborted. */
  request(request: UpstreamRequest): Promise<UpstreamResponse>;
  /** After a reload: closes the connections of services no longer configured (in-flight calls finish first). */
  retain(services: Iterable<BffService>): Promise<void>;
  close(): Promise<void>;
}
