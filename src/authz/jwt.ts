import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../shared/clock.js';
import { sha256 } from '../shared/sha256.js';
import { bearerToken } from './bearer.js';
import type { JwtProviderSettings } from './config.js';
import { KeysUnavailableError, type KeySource } from './jwks.js';
import type { ExpiringLru } from './lru.js';
import type { AuthzObserver, RevocationKind } from './ports.js';
import type { CheckInput, Identity, MaybePromise, Outcome } from './types.js';

export interface JwtProvider {
  readonly settings: JwtProviderSettings;
  readonly keys: KeySource;
}

/** A verified token as cached: who it names and until when the cache may answer for it. */
export interface VerifiedToken {
  readonly provider: string;
  readonly identity: Identity;
}

export interface JwtEvaluatorDeps {
  readonly providers: readonly JwtProvider[];
  /** Keyed by provider generation + SHA-256 of the token; only verified tokens enter it. */
  readonly cache: ExpiringLru<VerifiedToken>;
  /** Changes whenever provider settings change, so a reload never serves a token verified under old rules. */
  readonly generation: string;
  readonly maxTokenBytes: number;
  readonly clock: Clock;
  readonly observer: AuthzObserver;
  /** undefined: revocation state unknown (the caller already applied on_unavailable). */
  readonly isRevoked: (kind: RevocationKind, id: string) => boolean | undefined;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** A cached verification is re-done at least this often, even for long-lived tokens. */
const MAX_CACHE_MS = 3_600_000;

/** jose's error codes → our reason codes (for logs and explain; the metric reason is coarser). */
function reasonOf(error: unknown): { kind: 'invalid' | 'unavailable'; reason: string; detail: string } {
  if (error instanceof KeysUnavailableError) return { kind: 'unavailable', reason: 'jwks_unavailable', detail: error.message };
  if (error instanceof errors.JWTExpired) return { kind: 'invalid', reason: 'jwt_expired', detail: 'token expired' };
  if (error instanceof errors.JWTClaimValidationFailed) {
    const reason = error.claim === 'nbf' ? 'jwt_not_yet_valid' : error.claim === 'aud' ? 'jwt_wrong_audience' : error.claim === 'iss' ? 'jwt_wrong_issuer' : 'jwt_claim_invalid';
    return { kind: 'invalid', reason, detail: `claim ${error.claim}: ${error.message}` };
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return { kind: 'invalid', reason: 'jwt_bad_signature', detail: 'signature does not verify' };
  if (error instanceof errors.JOSEAlgNotAllowed) return { kind: 'invalid', reason: 'jwt_alg_not_allowed', detail: error.message };
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return { kind: 'invalid', reason: 'jwt_unknown_key', detail: 'no signing key matches the token header' };
  if (error instanceof errors.JOSENotSupported) return { kind: 'invalid', reason: 'jwt_unsupported', detail: error.message };
  if (error instanceof errors.JOSEError) return { kind: 'invalid', reason: 'jwt_malformed', detail: `${error.code}: ${error.message}` };
  return { kind: 'invalid', reason: 'jwt_malformed', detail: (error as Error).message ?? String(error) };
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return value.split(' ').filter((s) => s !== '');
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function identityOf(provider: JwtProviderSettings, payload: JWTPayload): Identity | undefined {
  const subject = payload[provider.claims.subject];
  if (typeof subject !== 'string' || subject === '') return undefined;
  const scopes = payload[provider.claims.scopes] ?? (provider.claims.scopes === 'scope' ? payload['scp'] : undefined);
  const tier = payload[provider.claims.tier];
  return {
    method: 'jwt',
    subject,
    provider: provider.name,
    scopes: strings(scopes),
    roles: strings(payload[provider.claims.roles]),
    tier: typeof tier === 'string' && tier !== '' ? tier : undefined,
    claims: payload as Record<string, unknown>,
    jti: typeof payload.jti === 'string' ? payload.jti : undefined,
  };
}

/**
 * JWT via jose: the provider is chosen by the token's `iss` among those the policy allows (a token of another
 * provider never meets this provider's keys), then verified with that provider's pinned algorithms, issuer,
 * audiences, skew and required claims. Verified tokens are cached by hash until exp; revocation by jti is checked
 * on every call, cached or not. A cached token is answered synchronously: no promise for a repeat caller.
 */
export function evaluateJwt(input: CheckInput, allowed: ReadonlySet<string> | undefined, deps: JwtEvaluatorDeps, signal: AbortSignal): MaybePromise<Outcome> {
  const bearer = bearerToken(input.headers, deps.maxTokenBytes);
  if (bearer.kind === 'absent') return { kind: 'absent', detail: 'no bearer token' };
  if (bearer.kind === 'invalid') return bearer;
  const token = bearer.token;
  const nowMs = deps.clock.nowMs();
  const cacheKey = `${deps.generation}:${sha256(token, 'base64url')}`;
  const cached = deps.cache.get(cacheKey, nowMs);
  deps.observer.cacheLookup('jwt', cached ? 'hit' : 'miss');
  if (cached !== undefined) {
    if (allowed !== undefined && !allowed.has(cached.provider)) return { kind: 'invalid', reason: 'jwt_wrong_provider', detail: `token of provider ${cached.provider}, not allowed here` };
    return checkRevoked(cached.identity, deps, `token of ${cached.identity.subject} from ${cached.provider} (cached)`);
  }
  // Only verified tokens are cached, so only a token the cache does not know needs its shape checked.
  if (!JWT_SHAPE.test(token)) return { kind: 'invalid', reason: 'jwt_malformed', detail: 'not a compact JWS (three base64url parts)' };
  return verify(token, cacheKey, nowMs, allowed, deps, signal);
}

/** A token not in the cache: its provider by `iss`, then jose with that provider's rules; verified tokens are cached. */
async function verify(token: string, cacheKey: string, nowMs: number, allowed: ReadonlySet<string> | undefined, deps: JwtEvaluatorDeps, signal: AbortSignal): Promise<Outcome> {
  let issuer: unknown;
  try {
    decodeProtectedHeader(token);
    issuer = decodeJwt(token).iss;
  } catch (error) {
    return { kind: 'invalid', reason: 'jwt_malformed', detail: (error as Error).message };
  }
  const candidates = deps.providers.filter((p) => p.settings.issuer === issuer && (allowed === undefined || allowed.has(p.settings.name)));
  if (candidates.length === 0) return { kind: 'invalid', reason: 'jwt_unknown_issuer', detail: `no provider allowed here has issuer ${JSON.stringify(issuer)}` };

  let last: Outcome = { kind: 'invalid', reason: 'jwt_unknown_issuer', detail: '' };
  for (const provider of candidates) {
    const s = provider.settings;
    try {
      const { payload } = await jwtVerify(token, (header, jws) => provider.keys.resolve(header, jws, signal), {
        issuer: s.issuer,
        audience: [...s.audiences],
        algorithms: [...s.algorithms],
        clockTolerance: s.clockSkewSeconds,
        currentDate: new Date(nowMs),
        requiredClaims: [...s.requiredClaims],
        ...(s.type ? { typ: s.type } : {}),
      });
      const identity = identityOf(s, payload);
      if (identity === undefined) {
        last = { kind: 'invalid', reason: 'jwt_claim_invalid', detail: `claim ${s.claims.subject} missing or not a string` };
        continue;
      }
      const expMs = typeof payload.exp === 'number' ? (payload.exp + s.clockSkewSeconds) * 1000 : nowMs;
      deps.cache.set(cacheKey, { provider: s.name, identity }, Math.min(expMs, nowMs + MAX_CACHE_MS));
      return checkRevoked(identity, deps, `token of ${identity.subject} from ${s.name}`);
    } catch (error) {
      last = reasonOf(error);
    }
  }
  return last;
}

function checkRevoked(identity: Identity, deps: JwtEvaluatorDeps, detail: string): Outcome {
  if (identity.jti !== undefined) {
    const revoked = deps.isRevoked('jti', identity.jti);
    if (revoked === undefined) return { kind: 'unavailable', reason: 'revocation_unavailable', detail: 'revocation list unavailable' };
    if (revoked) return { kind: 'invalid', reason: 'jwt_revoked', detail: `token ${identity.jti} is revoked` };
  }
  return { kind: 'success', identity, detail };
}
