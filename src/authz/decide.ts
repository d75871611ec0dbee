import type { AuthzSettings } from './config.js';
import type { CompiledPolicy } from './policy.js';
import { isHeaderSafe } from './subject.js';
import type { AllowDecision, Attempt, Decision, DenyDecision, Grant, Identity } from './types.js';

/** Dynamic metadata keys under Envoy's `envoy.filters.http.ext_authz` namespace (documented in docs/authz.md). */
export const METADATA_KEYS = { userId: 'user_id', authMethod: 'auth_method', apiKeyId: 'api_key_id', tier: 'tier', policy: 'policy', scopes: 'scopes', provider: 'provider' } as const;

export function deny(policy: string, reason: DenyDecision['reason'], status: DenyDecision['status'], message: string, attempts: readonly Attempt[] = []): DenyDecision {
  const bearerError = status === 401 ? (reason === 'missing_credentials' ? 'invalid_request' : 'invalid_token') : undefined;
  return { allow: false, policy, reason, status, message, attempts, ...(bearerError ? { bearerError } : {}) };
}

/** The WWW-Authenticate challenge a 401 carries (RFC 6750), shown by explain as the client gets it. */
export function bearerChallenge(decision: DenyDecision): string {
  return `Bearer realm="portcullis", error="${decision.bearerError ?? 'invalid_token'}", error_description="${decision.message.replace(/["\\]/g, '')}"`;
}

/**
 * A claim value require.claims compares, as text. Objects and nested lists never match: String() of one says nothing
 * ("[object Object]", "a,b"), and of a list nested thousands deep (an introspection answer is up to 1 MiB) it
 * overflows the stack.
 */
const isScalar = (v: unknown): v is string | number | boolean => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

/** Every require clause holds for the identity; else the first that does not, in words. */
export function unmetRequirement(policy: CompiledPolicy, identity: Identity): string | undefined {
  const r = policy.require;
  for (const scope of r.scopes) if (!identity.scopes.includes(scope)) return `scope ${scope} required`;
  for (const role of r.roles) if (!identity.roles.includes(role)) return `role ${role} required`;
  for (const [claim, accepted] of r.claims) {
    const value = identity.claims[claim];
    const values = (Array.isArray(value) ? value : [value]).filter(isScalar).map(String);
    if (!values.some((v) => accepted.includes(v))) return `claim ${claim} must be one of ${accepted.join(', ')}`;
  }
  if (r.principals.length > 0 && !(identity.principal !== undefined && r.principals.includes(identity.principal))) {
    return `principal ${identity.principal ?? '(none)'} not allowed`;
  }
  return undefined;
}

/**
 * The decision from what the evaluators found: the first method that succeeded names the caller; its identity
 * must then meet the policy's require clauses (403 otherwise). Without a success: 503 when something outside the
 * process failed and no credential was refused, 401 otherwise (a refused credential wins over a missing one).
 * `lookalikes`: the request's header names an upstream may read as an identity or API key header (header-fold.ts),
 * removed too when allowed.
 */
export function decide(settings: AuthzSettings, policy: CompiledPolicy, attempts: readonly Attempt[], queryParam: string | undefined, lookalikes: readonly string[]): Decision {
  let identity: Identity | undefined;
  let invalid = false;
  let unavailable = false;
  for (const { outcome } of attempts) {
    if (outcome.kind === 'success') {
      identity = outcome.identity;
      break;
    }
    invalid ||= outcome.kind === 'invalid';
    unavailable ||= outcome.kind === 'unavailable';
  }
  if (identity === undefined) {
    if (invalid) return deny(policy.name, 'invalid_credentials', 401, 'the credentials presented are not valid', attempts);
    if (unavailable) return deny(policy.name, 'unavailable', 503, 'the credentials could not be checked right now', attempts);
    return deny(policy.name, 'missing_credentials', 401, 'credentials are required', attempts);
  }
  const unmet = unmetRequirement(policy, identity);
  if (unmet !== undefined) return { ...deny(policy.name, 'forbidden', 403, `not allowed: ${unmet}`, attempts), identity };
  return allow(settings, policy.name, identity, attempts, queryParam, lookalikes);
}

function allow(settings: AuthzSettings, policy: string, identity: Identity, attempts: readonly Attempt[], queryParam: string | undefined, lookalikes: readonly string[]): AllowDecision {
  return { allow: true, policy, reason: 'allowed', identity, attempts, grant: grantFor(settings, policy, identity, queryParam, lookalikes) };
}

/**
 * Grants by settings, then identity, then policy and query parameter. Identities served from a cache (an API key
 * entry, a verified token, an introspection answer: `reused`) are the same object on every request, so they get the
 * same Grant back; weak keys let a reload or a cache eviction drop them. Any other identity gets a Grant of its own,
 * and so does a request with lookalike headers: which ones it sent is its own (a client picks the spellings), and
 * caching per spelling would let clients grow the cache.
 */
const grants = new WeakMap<AuthzSettings, WeakMap<Identity, Map<string, Grant>>>();

function grantFor(settings: AuthzSettings, policy: string, identity: Identity, queryParam: string | undefined, lookalikes: readonly string[]): Grant {
  if (identity.reused !== true || lookalikes.length > 0) return buildGrant(settings, policy, identity, queryParam, lookalikes);
  let byIdentity = grants.get(settings);
  if (byIdentity === undefined) grants.set(settings, (byIdentity = new WeakMap()));
  let byPolicy = byIdentity.get(identity);
  if (byPolicy === undefined) byIdentity.set(identity, (byPolicy = new Map()));
  const key = `${policy}\n${queryParam ?? ''}`;
  let grant = byPolicy.get(key);
  if (grant === undefined) byPolicy.set(key, (grant = buildGrant(settings, policy, identity, queryParam, lookalikes, true)));
  return grant;
}

/** A value an upstream can be handed, as a header or as dynamic metadata. */
const forwardable = (value: string | undefined): value is string => value !== undefined && value !== '' && isHeaderSafe(value);
const isSet = (headers: readonly (readonly [string, string])[], name: string): boolean => headers.some((header) => header[0] === name);
const removeOnce = (headersToRemove: string[], name: string): void => {
  if (!headersToRemove.includes(name)) headersToRemove.push(name);
};

// Written out field by field, not as a list of pairs: a one-off identity (an uncached token) builds a Grant on every
// request, and the lists, pairs and iterators were the largest allocation of an uncached Check (2.4 of ≈ 34 KB).
function buildGrant(settings: AuthzSettings, policy: string, identity: Identity, queryParam: string | undefined, lookalikes: readonly string[], shared = false): Grant {
  const h = settings.identityHeaders;
  const scopes = identity.scopes.length > 0 ? identity.scopes.join(' ') : undefined;
  const headers: [string, string][] = [];
  const headersToRemove: string[] = [];
  // Set (overwriting every client copy) or removed, never both: Envoy applies removals after sets.
  const setOrRemove = (name: string, value: string | undefined): void => {
    if (forwardable(value)) headers.push([name, value]);
    else removeOnce(headersToRemove, name);
  };
  setOrRemove(h.userId, identity.subject);
  setOrRemove(h.authMethod, identity.method);
  setOrRemove(h.apiKeyId, identity.apiKeyId);
  setOrRemove(h.tier, identity.tier);
  setOrRemove(h.scopes, scopes);
  // The API key never travels upstream.
  const keyHeader = settings.apiKeys?.header;
  if (keyHeader !== undefined && !isSet(headers, keyHeader)) removeOnce(headersToRemove, keyHeader);
  // Other names of those headers to an upstream that reads `_` as `-`: the client's copies go too (Envoy matches
  // removals by exact name, and lookalikes() leaves out every name set above).
  for (const name of lookalikes) if (!isSet(headers, name)) removeOnce(headersToRemove, name);
  // Metadata feeds rate limit descriptors and access logs: a value refused as a header is refused here too, not
  // forwarded by another road.
  const dynamicMetadata: Record<string, string> = { [METADATA_KEYS.userId]: identity.subject, [METADATA_KEYS.authMethod]: identity.method, [METADATA_KEYS.policy]: policy };
  if (forwardable(identity.apiKeyId)) dynamicMetadata[METADATA_KEYS.apiKeyId] = identity.apiKeyId;
  if (forwardable(identity.tier)) dynamicMetadata[METADATA_KEYS.tier] = identity.tier;
  if (forwardable(scopes)) dynamicMetadata[METADATA_KEYS.scopes] = scopes;
  if (forwardable(identity.provider)) dynamicMetadata[METADATA_KEYS.provider] = identity.provider;
  return Object.freeze({ shared, headers, headersToRemove, queryParamsToRemove: queryParam ? [queryParam] : [], dynamicMetadata });
}
