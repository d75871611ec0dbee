import { KeyObject } from 'node:crypto';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWK, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import type { Clock } from '../shared/clock.js';
import { untilAborted } from './wait.js';
import type { JwksSource } from './config.js';
import type { HttpClient } from './ports.js';
import type { MaybePromise } from './types.js';

/** The keys cannot be had right now (never fetched, issuer down): not the token's fault. */
export class KeysUnavailableError extends Error {
  override readonly name = 'KeysUnavailableError';
}

/**
 * Resolves the keys that may have signed a token, from its protected header, as node:crypto's verify takes them:
 * one, or up to MAX_CANDIDATE_KEYS when several match (a header without `kid` while a rotation publishes two).
 * Synchronous for a header whose keys were found before, so a token signed by a known key is verified without a
 * promise; a promise (never a throw) otherwise.
 */
export interface KeySource {
  resolve(header: JWTHeaderParameters, token: FlattenedJWSInput, signal: AbortSignal): MaybePromise<readonly KeyObject[]>;
  close(): void;
}

const MAX_KEYS = 100;
/** A token that matches several keys is tried against this many at most: a forged one costs a bounded few verifies. */
export const MAX_CANDIDATE_KEYS = 4;
/** Key fetches have their own bound; a Check only ever waits for one up to its own deadline. */
const FETCH_TIMEOUT_MS = 5000;
const RETRY_AFTER_FAILURE_MS = 2000;

interface KeySet {
  readonly resolve: (header: JWTHeaderParameters, token: FlattenedJWSInput) => MaybePromise<readonly KeyObject[]>;
  readonly kids: ReadonlySet<string>;
}

/**
 * A JWKS document → a key set. Only public signing keys survive: symmetric (`oct`) keys would let a token be
 * signed with a public key as HMAC secret, private members mean a leaked key, and at most 100 keys are kept.
 * Throws on anything that is not a JWKS.
 */
export function keySetFrom(document: unknown): KeySet {
  if (typeof document !== 'object' || document === null || !Array.isArray((document as { keys?: unknown }).keys)) {
    throw new Error('not a JWKS document (expected {"keys": [...]})');
  }
  const keys = ((document as { keys: unknown[] }).keys)
    .filter((k): k is JWK => typeof k === 'object' && k !== null && !Array.isArray(k))
    .filter((k) => (k.kty === 'RSA' || k.kty === 'EC' || k.kty === 'OKP') && k.d === undefined && (k.use === undefined || k.use === 'sig'))
    .slice(0, MAX_KEYS);
  if (keys.length === 0) throw new Error('JWKS holds no public signing key');
  const jwks: JSONWebKeySet = { keys };
  // jose selects the key for a header (kid, kty, alg, use, key_ops, crv) and imports it once per key and alg; the
  // conversion to a KeyObject is kept beside it, for as long as this set is the provider's.
  const select = createLocalJWKSet(jwks);
  const converted = new WeakMap<CryptoKey, KeyObject>();
  const keyObject = (cryptoKey: CryptoKey): KeyObject => {
    let key = converted.get(cryptoKey);
    if (key === undefined) {
      key = KeyObject.from(cryptoKey);
      converted.set(cryptoKey, key);
    }
    return key;
  };
  const lookUp = async (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<readonly KeyObject[]> => {
    try {
      return [keyObject(await select(header, token))];
    } catch (error) {
      // jose leaves trying each of several matching keys to the caller; it yields the ones that import.
      if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
      const keys: KeyObject[] = [];
      for await (const cryptoKey of error) {
        keys.push(keyObject(cryptoKey));
        if (keys.length === MAX_CANDIDATE_KEYS) break;
      }
      if (keys.length === 0) throw new errors.JWKSNoMatchingKey();
      return keys;
    }
  };
  // jose's choice depends on the header's alg and kid alone (and the set), so a choice once made is kept: the next
  // token with that header gets it without jose's promise. Only keys found are kept, and a kid is only found if the set
  // names it, so this holds at most one entry per alg and kid of the set (plus one per alg without kid).
  const found = new Map<string, Map<string | undefined, readonly KeyObject[]>>();
  const resolve = (header: JWTHeaderParameters, token: FlattenedJWSInput): MaybePromise<readonly KeyObject[]> => {
    const { alg, kid } = header as { alg?: unknown; kid?: unknown };
    if (typeof alg !== 'string' || (kid !== undefined && typeof kid !== 'string')) return lookUp(header, token);
    const known = found.get(alg)?.get(kid);
    if (known !== undefined) return known;
    return lookUp(header, token).then((keys) => {
      let byKid = found.get(alg);
      if (byKid === undefined) found.set(alg, (byKid = new Map()));
      byKid.set(kid, keys);
      return keys;
    });
  };
  return { resolve, kids: new Set(keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string')) };
}

/** Keys from a file, read by the config loader (a garbage file is a config error there). */
export function staticKeySource(document: unknown): KeySource {
  const set = keySetFrom(document);
  return { resolve: (header, token) => set.resolve(header, token), close: () => undefined };
}

export interface RemoteKeySourceOptions {
  readonly source: Exclude<JwksSource, { kind: 'file' }>;
  readonly http: HttpClient;
  readonly clock: Clock;
  readonly refreshMs: number;
  /** At most one fetch per cooldown for unknown kids: random kids must not turn us into a DoS on the issuer. */
  readonly cooldownMs: number;
  readonly onRefresh: (result: 'success' | 'error', error?: string) => void;
}

/**
 * Keys from a JWKS URL or OIDC discovery, refreshed in the background; the last good set keeps serving while the
 * issuer is down. An unknown kid triggers one refetch (single flight, cooldown) that a Check waits for only until
 * its own deadline.
 */
export class RemoteKeySource implements KeySource {
  private keys: KeySet | undefined;
  private inflight: Promise<void> | undefined;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: RemoteKeySourceOptions) {}

  start(): this {
    this.refresh();
    return this;
  }

  /** Starts a fetch unless one is running; resolves when it is done (never rejects). */
  refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    this.lastAttemptMs = this.options.clock.nowMs();
    clearTimeout(this.timer);
    this.inflight = this.fetch().then(
      (keys) => {
        this.keys = keys;
        this.options.onRefresh('success');
        this.schedule(this.options.refreshMs);
      },
      (error: unknown) => {
        this.options.onRefresh('error', (error as Error).message);
        this.schedule(Math.min(this.options.refreshMs, RETRY_AFTER_FAILURE_MS));
      },
    ).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.refresh(), ms);
    this.timer.unref();
  }

  private async fetch(): Promise<KeySet> {
    const signal = AbortSignal.timeout(FETCH_TIMEOUT_MS);
    const { source, http } = this.options;
    let url = source.kind === 'uri' ? source.url : '';
    if (source.kind === 'oidc') {
      const discovery = await http.getJson(`${source.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, signal);
      const d = discovery as { issuer?: unknown; jwks_uri?: unknown } | undefined;
      if (d?.issuer !== source.issuer) throw new Error(`discovery document names issuer ${String(d?.issuer)}, expected ${source.issuer}`);
      if (typeof d.jwks_uri !== 'string' || !/^https?:\/\//.test(d.jwks_uri)) throw new Error('discovery document has no http(s) jwks_uri');
      url = d.jwks_uri;
    }
    return keySetFrom(await http.getJson(url, signal));
  }

  resolve(header: JWTHeaderParameters, token: FlattenedJWSInput, signal: AbortSignal): MaybePromise<readonly KeyObject[]> {
    if (this.keys !== undefined && (header.kid === undefined || this.keys.kids.has(header.kid))) return this.keys.resolve(header, token);
    return this.afterRefetch(header, token, signal);
  }

  /** An unknown kid, or no keys yet: one refetch (if cooled down), waited for until the Check's deadline. */
  private async afterRefetch(header: JWTHeaderParameters, token: FlattenedJWSInput, signal: AbortSignal): Promise<readonly KeyObject[]> {
    const cooled = this.options.clock.nowMs() - this.lastAttemptMs >= this.options.cooldownMs;
    const pending = this.inflight ?? (cooled ? this.refresh() : undefined);
    if (pending) await untilAborted(pending, signal).catch(() => undefined);
    if (this.keys === undefined) throw new KeysUnavailableError('signing keys not available (JWKS not fetched yet)');
    return this.keys.resolve(header, token);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
