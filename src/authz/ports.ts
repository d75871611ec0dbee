/** What the authz evaluators need from outside the process. Implementations: http-client.ts, src/store/. */

export interface HttpResponse {
  readonly status: number;
  readonly body: unknown;
  /** The Retry-After header of a 429 or 503 answer, as sent (undefined for other statuses, or without one). */
  readonly retryAfter?: string;
}

/**
 * A GET answered with a non-2xx status. `retryAfter`: the Retry-After header of a 429 or 503 (the statuses RFC 9110
 * §15.6.4 and RFC 6585 §4 give it to as a request to wait), as sent; undefined otherwise.
 */
export class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  constructor(message: string, readonly status: number, readonly retryAfter: string | undefined) {
    super(message);
  }
}

/**
 * A 2xx answer whose body cannot be read (too large, not JSON, nested too deep, compressed): the server answered, and
 * what it said is the problem, unlike a refused connection or a timeout. An introspection endpoint that answers so
 * for one token is not down for the others.
 */
export class UnreadableBodyError extends Error {
  override readonly name = 'UnreadableBodyError';
}

export interface HttpClient {
  /**
   * GET a JSON document; rejects on a non-2xx status (HttpStatusError; redirects are not followed), a body over the size cap, JSON
   * nested too deep, a content-encoding, or bad JSON. The signal bounds the whole call, body included.
   */
  getJson(url: string, signal: AbortSignal): Promise<unknown>;
  /**
   * POST application/x-www-form-urlencoded; resolves with any status, and for a 2xx the parsed JSON body (undefined
   * if none; a body it cannot read rejects with UnreadableBodyError, as for getJson). A non-2xx status comes without
   * its body (a 429 or 503 with its Retry-After).
   */
  postForm(url: string, form: Readonly<Record<string, string>>, headers: Readonly<Record<string, string>>, signal: AbortSignal): Promise<HttpResponse>;
}

export type RevocationKind = 'jti' | 'key';

/** One id on the list: revoked until `untilMs` (Infinity: for good), after which it is forgotten. */
export interface RevocationEntry {
  readonly kind: RevocationKind;
  readonly id: string;
  readonly untilMs: number;
}

/**
 * Revoked token ids and API key ids, read synchronously from a local copy that the implementation keeps fresh.
 * `undefined`: the copy is too old to trust (its source is unreachable); the caller's configured on_unavailable
 * decides.
 */
export interface RevocationList {
  isRevoked(kind: RevocationKind, id: string): boolean | undefined;
  /**
   * Adds an id until `expiresAtMs` (a token's exp): for tests, the CLI and operators' tooling. A revocation is never
   * shortened (a temporary block of an id revoked for good must not end it): resolves with the until that holds.
   */
  revoke(kind: RevocationKind, id: string, expiresAtMs: number): Promise<number>;
  /** Removes an id; resolves true if it was revoked (an expired entry was not), false if there was nothing to lift. */
  lift(kind: RevocationKind, id: string): Promise<boolean>;
  /** The entries in effect now, read from the source every instance reads (not this instance's copy), unsorted. */
  entries(): Promise<RevocationEntry[]>;
  start(): void;
  close(): Promise<void>;
}

/** What the evaluators report; implemented with prom-client in observability/metrics.ts. */
export interface AuthzObserver {
  jwksRefresh(provider: string, result: 'success' | 'error'): void;
  cacheLookup(cache: 'jwt' | 'introspection', result: 'hit' | 'miss'): void;
  /** An introspection call failed or its answer could not be read (`detail` says how: for a log line, not a label). */
  introspectionError(detail: string): void;
  /** The endpoint answered (active or not): ends a run of failures. */
  introspectionAnswered(): void;
  /**
   * A Check whose token needed a call got introspection.on_failure without one: max_in_flight calls to the endpoint
   * were under way (`detail`: for a log line).
   */
  introspectionShed(detail: string): void;
  revocationUnavailable(): void;
}
