/** Request headers by lower-case name: all a Check reads of them (a Map is one). */
export interface HeaderLookup {
  get(name: string): string | undefined;
}

/** What one Check asks, after the proto is mapped: transport-free, lower-case header names. */
export interface CheckInput {
  readonly method: string;
  /** The raw `:path` Envoy saw, query string included, not decoded. */
  readonly rawPath: string;
  readonly host: string;
  /** Lower-case names; repeated headers arrive comma-joined (Envoy does that). */
  readonly headers: HeaderLookup;
  /**
   * The names of `headers` holding `_`, lower case, each once (header-fold.ts underscoredNames): what an upstream that
   * reads `_` as `-` may take for an identity header. The Check handler lists only those of a guarded name's length
   * (mayFold); lookalikes() tests each name either way. Empty for nearly every request.
   */
  readonly underscoredNames: readonly string[];
  /** TCP peer address Envoy reports (no port). */
  readonly sourceAddress: string;
  /** mTLS peer identity Envoy derived: URI SAN, else DNS SAN, else subject. Empty without a client certificate. */
  readonly sourcePrincipal: string;
  readonly contextExtensions: ReadonlyMap<string, string>;
  /** x-request-id when present, else Envoy's stream id. */
  readonly requestId: string;
}

export type AuthMethod = 'anonymous' | 'api_key' | 'jwt' | 'introspection' | 'mtls';
export const AUTH_METHODS: readonly AuthMethod[] = ['anonymous', 'api_key', 'jwt', 'introspection', 'mtls'];

/** Who the caller is, once a method succeeded. */
export interface Identity {
  readonly method: AuthMethod;
  /** x-user-id: token `sub`, key owner, mTLS principal, or `anonymous`. */
  readonly subject: string;
  readonly apiKeyId?: string;
  readonly tier?: string;
  /** JWT provider name, for logs and metadata. */
  readonly provider?: string;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  /** Token claims or introspection fields; empty for other methods. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The mTLS principal, when the method is mtls. */
  readonly principal?: string;
  /** Revocation id (JWT jti). */
  readonly jti?: string;
  /**
   * This very object answers later requests too (an API key entry, a cached token or introspection answer,
   * anonymous), so its Grant and encoded answer are kept beside it (decide.ts, authz-handler.ts). A one-off identity's
   * would only wait in a WeakMap until the next full GC: with the token cache off that tripled the mark-compacts.
   */
  readonly reused?: boolean;
}

/**
 * The answer of one evaluator: it succeeded, found no credential of its kind, found one that is not valid, or
 * could not decide because something outside the process failed.
 */
export type Outcome =
  | { readonly kind: 'success'; readonly identity: Identity; readonly detail: string }
  | { readonly kind: 'absent'; readonly detail: string }
  | { readonly kind: 'invalid'; readonly reason: string; readonly detail: string }
  | { readonly kind: 'unavailable'; readonly reason: string; readonly detail: string };

/** What an evaluator returns: synchronously when it can (a cached credential), a promise when it must wait. */
export type MaybePromise<T> = T | Promise<T>;

/** One evaluator's answer as explain prints it and the decision log summarises it. */
export interface Attempt {
  readonly method: AuthMethod;
  readonly outcome: Outcome;
}

/** Bounded set of reasons: metric label values. Details go to the log and to explain, never to labels. */
export type Reason =
  | 'allowed'
  | 'no_policy'
  | 'unknown_policy'
  | 'bad_path'
  | 'ip_not_allowed'
  | 'missing_credentials'
  | 'invalid_credentials'
  | 'forbidden'
  | 'unavailable';

export type Decision = AllowDecision | DenyDecision;

export interface AllowDecision {
  readonly allow: true;
  readonly policy: string;
  readonly reason: 'allowed';
  readonly identity: Identity;
  readonly attempts: readonly Attempt[];
  readonly grant: Grant;
}

/**
 * What an allowed request carries upstream. A function of the settings, the policy and the identity, and of the
 * request's lookalike header names (header-fold.ts) when it has any: without them, one frozen Grant is shared by every
 * request of a cached identity (see decide.ts), and its answer encoded once.
 */
export interface Grant {
  /** This is the Grant every request of its (cached) identity and policy gets: its encoding may be kept beside it. */
  readonly shared: boolean;
  /** Set with overwrite (append false). Never also in headersToRemove. */
  readonly headers: readonly (readonly [string, string])[];
  readonly headersToRemove: readonly string[];
  readonly queryParamsToRemove: readonly string[];
  readonly dynamicMetadata: Readonly<Record<string, string>>;
}

export interface DenyDecision {
  readonly allow: false;
  /** `''` when no policy was chosen. */
  readonly policy: string;
  readonly reason: Exclude<Reason, 'allowed'>;
  readonly status: 400 | 401 | 403 | 503;
  readonly message: string;
  readonly attempts: readonly Attempt[];
  /** `forbidden` only: the caller, whose valid credential the policy's require clauses refused (for the log). */
  readonly identity?: Identity;
  /** The RFC 6750 error code for WWW-Authenticate on 401s. */
  readonly bearerError?: 'invalid_request' | 'invalid_token';
}
