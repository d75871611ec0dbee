/**
 * Every failure Portcullis reports carries a stable code. Only src/server/status.ts maps codes to
 * gRPC statuses, HTTP statuses and metrics; everything else throws or returns these.
 */
export const ErrorCode = {
  /** A config file (portcullis.yaml or a descriptor file) is invalid. */
  CONFIG_INVALID: 'PC_CONFIG_INVALID',
  /** RateLimitRequest.domain is empty. */
  RL_EMPTY_DOMAIN: 'PC_RL_EMPTY_DOMAIN',
  /** RateLimitRequest.descriptors is empty. */
  RL_EMPTY_DESCRIPTORS: 'PC_RL_EMPTY_DESCRIPTORS',
  /** The request is structurally invalid in another way (too large, too deep). */
  RL_BAD_REQUEST: 'PC_RL_BAD_REQUEST',
  /** No descriptor configuration has loaded yet. */
  RL_NO_CONFIG: 'PC_RL_NO_CONFIG',
  /** The counter store failed (connection refused, script error, cluster down). */
  STORE_UNAVAILABLE: 'PC_STORE_UNAVAILABLE',
  /** The counter store did not answer before the request deadline. */
  STORE_TIMEOUT: 'PC_STORE_TIMEOUT',
  /** ext_authz could not decide because a dependency failed and its failure mode says error, not deny. */
  AUTHZ_UNAVAILABLE: 'PC_AUTHZ_UNAVAILABLE',
  /** A composer (bff) request has a bad parameter: 400. */
  BFF_BAD_REQUEST: 'PC_BFF_BAD_REQUEST',
  /** No composer endpoint has this path: 404. */
  BFF_NOT_FOUND: 'PC_BFF_NOT_FOUND',
  /** A composer endpoint was asked with a method other than GET or HEAD: 405. */
  BFF_METHOD_NOT_ALLOWED: 'PC_BFF_METHOD_NOT_ALLOWED',
  /** A required composer call (no on_error) failed: 502. */
  BFF_UPSTREAM_FAILED: 'PC_BFF_UPSTREAM_FAILED',
  /** A required composer call (no on_error) ran out of time: 504. */
  BFF_UPSTREAM_TIMEOUT: 'PC_BFF_UPSTREAM_TIMEOUT',
  /** A bug: anything that was not classified. */
  INTERNAL: 'PC_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class PortcullisError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PortcullisError';
    this.code = code;
  }
}

/** A counter or cache store failed or timed out. */
export class StoreError extends PortcullisError {
  constructor(code: typeof ErrorCode.STORE_UNAVAILABLE | typeof ErrorCode.STORE_TIMEOUT, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'StoreError';
  }
}

/** Narrow anything caught to a PortcullisError, classifying unknown errors as INTERNAL. */
export function asPortcullisError(error: unknown): PortcullisError {
  if (error instanceof PortcullisError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new PortcullisError(ErrorCode.INTERNAL, message, { cause: error });
}
