import type { KeyObject } from 'node:crypto';
import { errors, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { Clock } from '../shared/clock.js';
import { sha256 } from '../shared/sha256.js';
import { bearerToken } from './bearer.js';
import type { JwtAlgorithm, JwtProviderSettings } from './config.js';
import { KeysUnavailableError, type KeySource } from './jwks.js';
import { claimsRefusal, decodeJws, headerRefusal, NO_MATCHING_KEY, shown, signatureRefusal, type Refusal } from './jws.js';
import { scopeList } from './scopes.js';
import { isUsableSubject, tierOf } from './subject.js';
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
  readonly issuer: string;
  readonly identity: Identity;
  /** The provider's key version it was verified under (KeySource.version): another version verifies it again. */
  readonly keysVersion: number;
  /** Providers with this issuer that were tried before `provider` and refused the token (see answersFor). */
  readonly refusedBy: readonly string[];
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

/** A key lookup's failure → our reason codes (for logs and explain; the metric reason is coarser). */
function keyLookupRefusal(error: unknown): { kind: 'invalid' | 'unavailable'; reason: string; detail: string } {
  if (error instanceof KeysUnavailableError) return { kind: 'unavailable', reason: 'jwks_unavailable', detail: error.message };
  if (error instanceof errors.JWKSNoMatchingKey) return { kind: 'invalid', ...NO_MATCHING_KEY };
  if (error instanceof errors.JOSENotSupported) return { kind: 'invalid', reason: 'jwt_unsupported', detail: error.message };
  // jose refuses to import a key the JWKS describes wrongly for this alg (use, key_ops, alg of the key).
  return { kind: 'invalid', reason: 'jwt_unknown_key', detail: (error as Error).message ?? String(error) };
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return value.split(' ').filter((s) => s !== '');
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function identityOf(provider: JwtProviderSettings, payload: JWTPayload, reused: boolean): Identity | undefined {
  const subject = payload[provider.claims.subject];
  if (!isUsableSubject(subject)) return undefined;
  const scopes = payload[provider.claims.scopes] ?? (provider.claims.scopes === 'scope' ? payload['scp'] : undefined);
  const tier = payload[provider.claims.tier];
  return {
    method: 'jwt',
    subject,
    provider: provider.name,
    scopes: scopeList(scopes),
    roles: strings(payload[provider.claims.roles]),
    tier: tierOf(tier),
    claims: payload as Record<string, unknown>,
    jti: typeof payload.jti === 'string' ? payload.jti : undefined,
    reused,
  };
}

/**
 * JWT: the provider is chosen by the token's `iss` among those the policy allows (a token of another provider never
 * meets this provider's keys), then verified with that provider's pinned algorithms, issuer, audiences, skew and
 * required claims. Verified tokens are cached by hash until exp; revocation by jti is checked
 * on every call, cached or not. A cached token is answered synchronously: no promise for a repeat caller.
 */
export function evaluateJwt(input: CheckInput, allowed: ReadonlySet<string> | undefined, deps: JwtEvaluatorDeps, signal: AbortSignal): MaybePromise<Outcome> {
  const bearer = bearerToken(input.headers, deps.maxTokenBytes);
  if (bearer.kind === 'absent') return { kind: 'absent', detail: 'no bearer token' };
  if (bearer.kind === 'invalid') return bearer;
  const token = bearer.token;
  const nowMs = deps.clock.nowMs();
  const cacheKey = `${deps.generation}:${sha256(token, 'base64url')}`;
  const entry = deps.cache.get(cacheKey, nowMs);
  // Verified under keys the provider no longer has as they were: verified again, against the keys it has now.
  const cached = entry !== undefined && keysOf(deps, entry.provider)?.version === entry.keysVersion && answersFor(entry, allowed, deps) ? entry : undefined;
  deps.observer.cacheLookup('jwt', cached ? 'hit' : 'miss');
  if (cached !== undefined) return checkRevoked(cached.identity, deps, `token of ${cached.identity.subject} from ${cached.provider} (cached)`);
  // Only verified tokens are cached, so only a token the cache does not know needs its shape checked.
  if (!JWT_SHAPE.test(token)) return { kind: 'invalid', reason: 'jwt_malformed', detail: 'not a compact JWS (three base64url parts)' };
  return verify(token, cacheKey, nowMs, allowed, deps, signal);
}

/**
 * A token not in the cache: its provider by `iss`, then that provider's header rules, key, signature and claims
 * (jws.ts); verified tokens are cached. Synchronous unless a provider's keys must be fetched or imported first, or
 * the alg's signatures are checked on the thread pool (jws.ts).
 */
function verify(token: string, cacheKey: string, nowMs: number, allowed: ReadonlySet<string> | undefined, deps: JwtEvaluatorDeps, signal: AbortSignal): MaybePromise<Outcome> {
  const decoded = decodeJws(token);
  if ('reason' in decoded) return { kind: 'invalid', ...decoded };
  const { header, payload, parts: jws, signingInput, signature } = decoded;
  const issuer = payload.iss;
  const candidates = deps.providers.filter((p) => p.settings.issuer === issuer && (allowed === undefined || allowed.has(p.settings.name)));
  if (candidates.length === 0) return { kind: 'invalid', reason: 'jwt_unknown_issuer', detail: `no provider allowed here has issuer ${shown(issuer)}` };
  const nowS = Math.floor(nowMs / 1000);

  type Verdict = { answer: Outcome } | { refusal: Outcome };
  /** The verdict of one provider once the signature is judged: the answer, or a refusal that lets the next one try. */
  const judge = (s: JwtProviderSettings, signatureFault: Refusal | undefined, keysVersion: number, refusedBy: readonly string[]): Verdict => {
    const fault = signatureFault ?? claimsRefusal(s, header, payload, nowS);
    if (fault !== undefined) return { refusal: { kind: 'invalid', ...fault } };
    const identity = identityOf(s, payload, deps.cache.holdsEntries);
    if (identity === undefined) return { refusal: { kind: 'invalid', reason: 'jwt_claim_invalid', detail: `claim ${s.claims.subject} missing, blank, or not a string fit for a header` } };
    const expMs = typeof payload.exp === 'number' ? (payload.exp + s.clockSkewSeconds) * 1000 : nowMs;
    deps.cache.set(cacheKey, { provider: s.name, issuer: s.issuer, identity, keysVersion, refusedBy }, Math.min(expMs, nowMs + MAX_CACHE_MS));
    return { answer: checkRevoked(identity, deps, `token of ${identity.subject} from ${s.name}`) };
  };
  /** `keysVersion`: the source's version when these keys were handed out, which a cached verification keeps. */
  const withKeys = (s: JwtProviderSettings, keys: readonly KeyObject[], keysVersion: number, refusedBy: readonly string[]): MaybePromise<Verdict> => {
    const signatureFault = signatureRefusal(header.alg as JwtAlgorithm, keys, signingInput, signature);
    return signatureFault instanceof Promise ? signatureFault.then((fault) => judge(s, fault, keysVersion, refusedBy)) : judge(s, signatureFault, keysVersion, refusedBy);
  };
  /** `refusedBy`: the candidates before `first` that refused the token (a provider that could not answer is not one). */
  const tryFrom = (first: number, last: Outcome, refusedBy: readonly string[]): MaybePromise<Outcome> => {
    for (let i = first; i < candidates.length; i++) {
      const s = candidates[i]!.settings;
      const headerFault = headerRefusal(header, s.algorithms);
      if (headerFault !== undefined) {
        last = { kind: 'invalid', ...headerFault };
        refusedBy = [...refusedBy, s.name];
        continue;
      }
      const source = candidates[i]!.keys;
      const keys = source.resolve(header as JWTHeaderParameters, jws, signal);
      const tried = refusedBy;
      const verdict = keys instanceof Promise
        ? keys.then((k) => withKeys(s, k, source.version, tried), (error: unknown): Verdict => ({ refusal: keyLookupRefusal(error) }))
        : withKeys(s, keys, source.version, tried);
      const next = (refusal: Outcome): readonly string[] => (refusal.kind === 'invalid' ? [...tried, s.name] : tried);
      if (verdict instanceof Promise) return verdict.then((v) => ('answer' in v ? v.answer : tryFrom(i + 1, v.refusal, next(v.refusal))));
      if ('answer' in verdict) return verdict.answer;
      last = verdict.refusal;
      refusedBy = next(verdict.refusal);
    }
    return last;
  };
  return tryFrom(0, { kind: 'invalid', reason: 'jwt_unknown_issuer', detail: '' }, NONE);
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * Whether a cached verification is the answer verifying again would give on a route allowing `allowed`: its provider
 * is allowed here, and every allowed provider with the same issuer that verification would try first refused the
 * token when it was cached. Providers sharing an issuer read other claims (another subject, other scopes): a token
 * cached as one route's provider must neither answer as that provider where another comes first, nor be refused
 * where only another is allowed. Else it is verified again, as a cold cache would.
 */
function answersFor(entry: VerifiedToken, allowed: ReadonlySet<string> | undefined, deps: JwtEvaluatorDeps): boolean {
  if (allowed !== undefined && !allowed.has(entry.provider)) return false;
  for (const { settings: s } of deps.providers) {
    if (s.name === entry.provider) return true;
    if (s.issuer === entry.issuer && (allowed === undefined || allowed.has(s.name)) && !entry.refusedBy.includes(s.name)) return false;
  }
  return true;
}

function keysOf(deps: JwtEvaluatorDeps, provider: string): KeySource | undefined {
  for (const p of deps.providers) if (p.settings.name === provider) return p.keys;
  return undefined;
}

function checkRevoked(identity: Identity, deps: JwtEvaluatorDeps, detail: string): Outcome {
  if (identity.jti !== undefined) {
    const revoked = deps.isRevoked('jti', identity.jti);
    if (revoked === undefined) return { kind: 'unavailable', reason: 'revocation_unavailable', detail: 'revocation list unavailable' };
    if (revoked) return { kind: 'invalid', reason: 'jwt_revoked', detail: `token ${identity.jti} is revoked` };
  }
  return { kind: 'success', identity, detail };
}
