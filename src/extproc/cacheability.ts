// What the shared response cache may look up, store and serve: a subset of RFC 9111 for a shared cache, as pure
// functions of headers, status and time. The route's TTL table is an upper bound: a response's own freshness
// (s-maxage, max-age, Expires) can only shorten it; so is the route's stale-while-revalidate window (RFC 5861).

import { httpDateMs, imfFixdateMs } from '../shared/http-date.js';
import { hasHeader, headerValue, headerValues, type HeaderList } from './headers.js';

export type Directives = ReadonlyMap<string, string | true>;

/**
 * Cache-Control directives, lower-cased names, quoted values unquoted. Unparseable parts are ignored. Of a repeated
 * directive the first occurrence counts (RFC 9111 §4.2.1), e.g. when a proxy appended its own max-age.
 */
export function parseCacheControl(value: string | undefined): Directives {
  const out = new Map<string, string | true>();
  if (value === undefined) return out;
  for (const part of value.split(',')) {
    const [rawName, ...rest] = part.split('=');
    const name = rawName?.trim().toLowerCase();
    if (!name) continue;
    const raw = rest.join('=').trim();
    if (!out.has(name)) out.set(name, rest.length === 0 ? true : raw.replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

/** A delta-seconds directive value; undefined when absent or not a non-negative integer. */
function seconds(d: Directives, name: string): number | undefined {
  const v = d.get(name);
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** A response freshness directive: its seconds, absent, or present with a value that is not delta-seconds. */
function freshness(d: Directives, name: string): number | 'invalid' | undefined {
  if (!d.has(name)) return undefined;
  return seconds(d, name) ?? 'invalid';
}

/**
 * Statuses a cache may store without explicit freshness (RFC 9110 §15.1, "heuristically cacheable"). Any other status
 * needs max-age, s-maxage, Expires or `public` from the origin (RFC 9111 §3): the route's TTL is a heuristic.
 */
export const HEURISTICALLY_CACHEABLE: ReadonlySet<number> = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 451, 501]);

export type RequestCacheDecision = {
  readonly lookup: boolean;
  readonly store: boolean;
  readonly onlyIfCached: boolean;
  readonly reason: string | undefined;
  /** Request max-age=N (N > 0): an entry older than N seconds is not served (RFC 9111 §5.2.1.1). */
  readonly maxAgeSeconds?: number;
};

/** Whether a request may be answered from the cache (lookup) and whether its response may be stored. */
export function requestCacheDecision(method: string, headers: HeaderList): RequestCacheDecision {
  if (method !== 'GET' && method !== 'HEAD') return { lookup: false, store: false, onlyIfCached: false, reason: 'method' };
  const cc = parseCacheControl(headerValues(headers, 'cache-control'));
  const onlyIfCached = cc.has('only-if-cached');
  if (cc.has('no-store')) return { lookup: false, store: false, onlyIfCached, reason: 'request no-store' };
  if (hasHeader(headers, 'range')) return { lookup: false, store: false, onlyIfCached, reason: 'range' };
  // no-cache (or max-age=0) asks for a fresh answer from the origin; that answer may still be stored.
  const pragmaNoCache = !hasHeader(headers, 'cache-control') && /(^|,)\s*no-cache\s*(,|$)/i.test(headerValues(headers, 'pragma') ?? '');
  if (cc.has('no-cache') || pragmaNoCache || seconds(cc, 'max-age') === 0) {
    return { lookup: false, store: method === 'GET', onlyIfCached, reason: 'request no-cache' };
  }
  const maxAgeSeconds = seconds(cc, 'max-age');
  return { lookup: true, store: method === 'GET', onlyIfCached, reason: undefined, ...(maxAgeSeconds === undefined ? {} : { maxAgeSeconds }) };
}

/** Whether a stored response of `ageSeconds` may answer the request: fresh, and no older than its max-age asks. */
export function servable(ageSeconds: number, lifetimeSeconds: number, decision: RequestCacheDecision): boolean {
  return ageSeconds < lifetimeSeconds && (decision.maxAgeSeconds === undefined || ageSeconds <= decision.maxAgeSeconds);
}

/** What the stream knows of a stored entry it found (its Vary values matched) for a request. */
export interface FoundEntry {
  readonly ageSeconds: number;
  readonly lifetimeSeconds: number;
  readonly staleWhileRevalidateSeconds: number;
  readonly request: RequestCacheDecision;
}

/**
 * Past its lifetime, within its stale-while-revalidate window (RFC 5861 §3), for a request that accepts a stale
 * answer: one without max-age (RFC 9111 §5.2.1.1: "unless max-stale is also present, the client does not wish to
 * receive a stale response"; no-cache and max-age=0 never look up).
 */
function staleServable(entry: FoundEntry): boolean {
  return entry.ageSeconds >= entry.lifetimeSeconds && entry.ageSeconds < entry.lifetimeSeconds + entry.staleWhileRevalidateSeconds
    && entry.request.maxAgeSeconds === undefined;
}

/**
 * Whether the request should try for the entry's refresh lock: the entry is stale but servable, and the request's
 * own response would refresh it: a GET whose response may be stored (a HEAD's has no body to store) that is allowed
 * to reach the origin (not only-if-cached). The others are served the stale entry without asking.
 */
export function needsRefreshLock(entry: FoundEntry): boolean {
  return staleServable(entry) && entry.request.store && !entry.request.onlyIfCached;
}

/** The refresh lock as the stream found it: taken by this request, held by another, the store failed, not asked. */
export type RefreshLock = 'taken' | 'held' | 'failed' | 'unasked';

/**
 * fresh: answered from the entry (HIT). stale-servable: answered from the stale entry at once (STALE) while another
 * request refreshes it. stale-refresh: this request goes to the origin (MISS) and its response replaces the entry.
 * miss: the entry cannot answer this request. A lock the store failed to answer serves stale: the origin is what the
 * window protects, and the entry is refreshed at the latest when the window ends.
 */
export type LookupOutcome = 'fresh' | 'stale-servable' | 'stale-refresh' | 'miss';

export function lookupOutcome(entry: FoundEntry, lock: RefreshLock): LookupOutcome {
  if (servable(entry.ageSeconds, entry.lifetimeSeconds, entry.request)) return 'fresh';
  if (!staleServable(entry)) return 'miss';
  return lock === 'taken' ? 'stale-refresh' : 'stale-servable';
}

export type StoreDecision =
  | {
    readonly store: true; readonly ttlSeconds: number; readonly initialAgeSeconds: number; readonly lifetimeSeconds: number;
    /** Seconds it may be served stale past ttlSeconds (the store keeps it ttlSeconds + this). */
    readonly staleWhileRevalidateSeconds: number;
  }
  | { readonly store: false; readonly reason: string };

export interface StoreInput {
  readonly status: number;
  readonly headers: HeaderList;
  readonly ttlSecondsByStatus: ReadonlyMap<number, number>;
  /** The route is public (one entry for every caller) and the request carried credentials. */
  readonly sharedWithCredentials: boolean;
  readonly nowMs: number;
  /** The route's cache.stale_while_revalidate_seconds (default 0: never served stale). */
  readonly staleWhileRevalidateSeconds?: number;
}

/**
 * How long past its lifetime a response may be served stale: the route's stale_while_revalidate_seconds, shortened
 * (never lengthened) by the response's own `stale-while-revalidate=N`, as the route's TTL is by max-age. None when
 * the response forbids serving it stale (RFC 9111 §4.2.4): must-revalidate, proxy-revalidate, or s-maxage, which
 * carries proxy-revalidate for a shared cache (§5.2.2.10), unless the same response grants stale-while-revalidate
 * itself: `s-maxage=N, stale-while-revalidate=M` is how origins ask a CDN for it, and the RFC 5861 grant is the more
 * specific. A stale-while-revalidate that is not delta-seconds grants nothing.
 */
export function staleWindowSeconds(cc: Directives, routeSeconds: number): number {
  if (routeSeconds <= 0 || cc.has('must-revalidate') || cc.has('proxy-revalidate')) return 0;
  const granted = freshness(cc, 'stale-while-revalidate');
  if (granted === 'invalid') return 0;
  if (granted === undefined) return cc.has('s-maxage') ? 0 : routeSeconds;
  return Math.min(granted, routeSeconds);
}

/** Whether a response may be stored, and for how long (RFC 9111 §3, §4.2, §5.1; plus: never with Set-Cookie). */
export function storeDecision(input: StoreInput): StoreDecision {
  const routeTtl = input.ttlSecondsByStatus.get(input.status);
  if (routeTtl === undefined) return { store: false, reason: `status ${input.status}` };
  if (input.status === 206) return { store: false, reason: 'partial content' };
  // A 304 answers one client's conditional request and has no body: stored, it would answer everyone with nothing.
  if (input.status === 304) return { store: false, reason: 'not modified' };
  const cc = parseCacheControl(headerValues(input.headers, 'cache-control'));
  if (cc.has('no-store')) return { store: false, reason: 'no-store' };
  if (cc.has('private')) return { store: false, reason: 'private' };
  // Stored entries are served without revalidation: a response that demands revalidation is not stored.
  if (cc.has('no-cache')) return { store: false, reason: 'no-cache' };
  if (hasHeader(input.headers, 'set-cookie')) return { store: false, reason: 'set-cookie' };
  const vary = (headerValues(input.headers, 'vary') ?? '').split(',').map((v) => v.trim());
  if (vary.includes('*')) return { store: false, reason: 'vary *' };
  if (input.sharedWithCredentials && !cc.has('public') && !cc.has('s-maxage') && !cc.has('must-revalidate')) {
    return { store: false, reason: 'authorization' };
  }
  const dateMs = httpDateMs(headerValue(input.headers, 'date'), input.nowMs);
  // Invalid freshness information is stale (RFC 9111 §4.2.1), not absent: read as absent, the route's TTL would
  // stand in for a lifetime the origin meant to give. s-maxage overrides max-age here (a shared cache).
  const sMaxAge = freshness(cc, 's-maxage');
  const maxAge = freshness(cc, 'max-age');
  let explicit = sMaxAge ?? maxAge;
  if (explicit === 'invalid') return { store: false, reason: 'invalid freshness' };
  if (explicit === undefined && hasHeader(input.headers, 'expires')) {
    const expiresMs = httpDateMs(headerValue(input.headers, 'expires'), input.nowMs);
    // An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
    explicit = expiresMs === undefined ? 0 : Math.max(0, Math.floor((expiresMs - (dateMs ?? input.nowMs)) / 1000));
  }
  if (explicit === undefined && !HEURISTICALLY_CACHEABLE.has(input.status) && !cc.has('public')) {
    return { store: false, reason: 'no explicit freshness' };
  }
  const lifetimeSeconds = explicit === undefined ? routeTtl : Math.min(explicit, routeTtl);
  const apparentAge = dateMs === undefined ? 0 : Math.max(0, Math.floor((input.nowMs - dateMs) / 1000));
  const ageHeader = Number(headerValue(input.headers, 'age'));
  const initialAgeSeconds = Math.max(apparentAge, Number.isInteger(ageHeader) && ageHeader > 0 ? ageHeader : 0);
  const ttlSeconds = lifetimeSeconds - initialAgeSeconds;
  if (ttlSeconds <= 0) return { store: false, reason: 'stale' };
  return { store: true, ttlSeconds, initialAgeSeconds, lifetimeSeconds, staleWhileRevalidateSeconds: staleWindowSeconds(cc, input.staleWhileRevalidateSeconds ?? 0) };
}

/** Age of a stored response at nowMs (RFC 9111 §4.2.3), whole seconds. */
export function currentAgeSeconds(storedAtMs: number, initialAgeSeconds: number, nowMs: number): number {
  return initialAgeSeconds + Math.max(0, Math.floor((nowMs - storedAtMs) / 1000));
}

/** An entity-tag (RFC 9110 §8.8.3), weak or strong; group 1 is the opaque tag with its quotes. */
const ENTITY_TAG = /(?:W\/)?("[^"]*")/g;

/**
 * If-None-Match against a stored ETag, weak comparison (RFC 9110 §13.1.2). The list is read as entity-tags, not
 * split at commas: a comma may be part of a tag ("v1,2"), and so may a `*` ("a,*,b" is not the wildcard).
 */
export function ifNoneMatchHits(ifNoneMatch: string | undefined, etag: string | undefined): boolean {
  if (ifNoneMatch === undefined || etag === undefined) return false;
  if (ifNoneMatch.replace(ENTITY_TAG, '').split(',').some((candidate) => candidate.trim() === '*')) return true;
  const stored = etag.trim().replace(/^W\//, '');
  for (const candidate of ifNoneMatch.matchAll(ENTITY_TAG)) if (candidate[1] === stored) return true;
  return false;
}

/**
 * If-Modified-Since against a stored response's last modification (RFC 9110 §13.1.3): true when it was not modified
 * after the date. A value that is not one IMF-fixdate (two header lines, the obsolete forms, garbage) is ignored: the
 * full response is always a correct answer, a wrong 304 is not.
 */
export function notModifiedSince(ifModifiedSince: string | undefined, lastModifiedMs: number): boolean {
  if (ifModifiedSince === undefined) return false;
  const sinceMs = imfFixdateMs(ifModifiedSince);
  return sinceMs !== undefined && lastModifiedMs <= sinceMs;
}

/** What a stored response is compared with: its ETag, and when it was last modified (Last-Modified, else Date, else when stored). */
export interface StoredValidators {
  readonly etag: string | undefined;
  readonly lastModifiedMs: number;
}

/**
 * Whether a stored response is answered 304 to the request's conditionals (RFC 9111 §4.3.2): If-None-Match when
 * present, else If-Modified-Since (RFC 9110 §13.1.3 ignores it beside If-None-Match). Only a 2xx is (RFC 9110
 * §13.2.1, a precondition is evaluated only when the response without it would be 2xx), so a cached 404 is served
 * as the 404.
 */
export function answersNotModified(
  status: number, conditions: { readonly ifNoneMatch: string | undefined; readonly ifModifiedSince: string | undefined }, stored: StoredValidators,
): boolean {
  if (status < 200 || status >= 300) return false;
  if (conditions.ifNoneMatch !== undefined) return ifNoneMatchHits(conditions.ifNoneMatch, stored.etag);
  return notModifiedSince(conditions.ifModifiedSince, stored.lastModifiedMs);
}

/** Headers a 304 carries from the stored response (RFC 9110 §15.4.5). */
export const NOT_MODIFIED_HEADERS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary'] as const;

/** Hop-by-hop and per-delivery headers never stored with a response. */
export const UNSTORED_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'content-length', 'age', 'x-cache-status']);
