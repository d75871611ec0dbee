// ext_proc in domain form: what src/server/extproc-handler.ts decodes from a ProcessingRequest and encodes into a
// ProcessingResponse. Nothing here knows protobuf.

import type { HeaderList, HeaderMutation } from './headers.js';
import type { Identity } from './identity.js';

export type Phase = 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';

export type ProcessingMessage =
  | { readonly kind: 'request_headers' | 'response_headers'; readonly headers: HeaderList; readonly endOfStream: boolean }
  | { readonly kind: 'request_body' | 'response_body'; readonly body: Buffer; readonly endOfStream: boolean }
  | { readonly kind: 'request_trailers' | 'response_trailers'; readonly trailers: HeaderList };

export interface ProcessingInput {
  readonly message: ProcessingMessage;
  /** From metadata_context (namespace envoy.filters.http.ext_authz), when Envoy forwarded it. */
  readonly identity: Identity | undefined;
  /** Request attributes (`source.address`, ...) as strings, when configured in the filter. */
  readonly attributes: Readonly<Record<string, string>>;
}

/** `NONE`: no body for this direction; BUFFERED: the whole body in one message; BUFFERED_PARTIAL: up to Envoy's buffer limit. */
export type BodyMode = 'NONE' | 'BUFFERED' | 'BUFFERED_PARTIAL';

export interface ModeOverride {
  /** Both body modes are always sent: Envoy reads a missing one as NONE. */
  readonly requestBody: BodyMode;
  readonly responseBody: BodyMode;
  /** SKIP: Envoy sends no response_headers message, so the stream has no response phase. */
  readonly responseHeaders: 'SEND' | 'SKIP';
  /**
   * SEND: Envoy sends request_trailers. Asked for with a body to validate: an HTTP/2 body followed by trailers arrives
   * without end_of_stream, and only the trailers say it is complete. Absent: not sent (SKIP, Envoy's default).
   */
  readonly requestTrailers?: 'SEND';
}

export type ProcessingAnswer =
  | {
      readonly kind: 'request_headers' | 'response_headers' | 'request_body' | 'response_body';
      readonly mutation: HeaderMutation;
      readonly modeOverride: ModeOverride | undefined;
    }
  | { readonly kind: 'request_trailers' | 'response_trailers' }
  | {
      readonly kind: 'immediate';
      readonly status: number;
      readonly headers: HeaderMutation;
      readonly body: Buffer;
      /** Envoy's %RESPONSE_CODE_DETAILS% (spaces become _). */
      readonly details: string;
    };

/** What a stream reports, for metrics (bounded labels only). */
export interface ExtprocObserver {
  stream(): void;
  message(phase: Phase): void;
  /** stale: answered from a stale entry (as a 304 too) while another request refreshes it. */
  cache(result: 'hit' | 'stale' | 'miss' | 'bypass' | 'stored' | 'not_modified' | 'invalidated'): void;
  cacheError(operation: 'get' | 'set' | 'invalidate' | 'lock'): void;
  validationFailed(status: number): void;
  /** A path normalization refuses: answered 400 (a reading of it validates), or passed on (none does). */
  ambiguousPath(action: 'rejected' | 'passed'): void;
  /**
   * A request body a validating route asked for (mode_override BUFFERED): received (whole, or past its size limit),
   * or never came because the stream ended first (ExtprocStream.endedWithoutAskedBody).
   */
  askedBody(outcome: 'received' | 'never_came'): void;
}

/** The slice of a logger a stream uses (pino's Logger satisfies it). */
export interface StreamLog {
  child(bindings: Record<string, unknown>): StreamLog;
  /** pino's: lets a stream skip building its bound child for lines that would not be written. */
  isLevelEnabled?(level: 'debug' | 'info' | 'warn'): boolean;
  debug(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}
