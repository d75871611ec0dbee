import { createPublicKey, KeyObject, type JsonWebKey } from 'node:crypto';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWK, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import { Backoff, type BackoffPolicy } from '../shared/backoff.js';
import type { Clock } from '../shared/clock.js';
import { retryAfterMs } from '../shared/retry-after.js';
import { untilAborted } from './wait.js';
import { JWT_ALGORITHMS, type JwksSource, type JwtAlgorithm } from './config.js';
import { rsaKeyFault, shown } from './jws.js';
import { HttpStatusError, type HttpClient } from './ports.js';
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
  /**
   * Changes whenever the keys change (a refresh that brought a different set). A token verified under another
   * version is verified again: a key the issuer withdrew (after a compromise, say) stops vouching for cached tokens.
   */
  readonly version: number;
  close(): void;
}

const MAX_KEYS = 100;
/** A token that matches several keys is tried against this many at most: a forged one costs a bounded few verifies. */
export const MAX_CANDIDATE_KEYS = 4;
/** Key fetches have their own bound; a Check only ever waits for one up to its own deadline. */
const FETCH_TIMEOUT_MS = 5000;
/**
 * Retries of a failing key fetch: 2 s, 4 s, 8 s … up to 60 s (each up to a fifth shorter, backoff.ts), and never
 * slower than the provider's refresh_seconds (a failing issuer is not asked less often than a healthy one). The keys
 * held keep serving meanwhile, so a slower retry costs only how soon keys published during the outage are seen: 2 s
 * gets past a restart of the issuer at once, and a minute is as long as a rotation announced while it was down waits.
 * At a retry every 2 s, a fleet of gateways with a few providers each kept a down issuer busy for as long as it was
 * down; at 60 s it is one request per gateway and provider a minute. A 429 or 503 with Retry-After makes that retry
 * wait at least as long as asked, up to the same cap (60 s, or refresh_seconds): longer would leave keys published
 * meanwhile unseen for as long as the issuer (or whatever answers for it) cares to say.
 */
export const JWKS_RETRY: BackoffPolicy = Object.freeze({ firstMs: 2000, maxMs: 60_000, jitter: 0.2 });

interface KeySet {
  readonly resolve: (header: JWTHeaderParameters, token: FlattenedJWSInput) => MaybePromise<readonly KeyObject[]>;
  readonly kids: ReadonlySet<string>;
  /** The keys kept, as text: a refresh that brings the same keys keeps the source's version. */
  readonly fingerprint: string;
  /** Why keys of the document were left out although they looked like signing keys (for a log line). */
  readonly skipped: readonly string[];
}

/** The key type (and curve) each algorithm takes, as jose selects them. */
const KEY_TYPE: Record<JwtAlgorithm, { readonly kty: string; readonly crv?: string }> = {
  RS256: { kty: 'RSA' }, RS384: { kty: 'RSA' }, RS512: { kty: 'RSA' }, PS256: { kty: 'RSA' }, PS384: { kty: 'RSA' }, PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' }, ES384: { kty: 'EC', crv: 'P-384' }, ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' }, Ed25519: { kty: 'OKP', crv: 'Ed25519' },
};

/** Could jose ever pick this key for one of `algorithms` (its own filter: kty, crv, alg, key_ops)? */
function fitsAlgorithms(key: JWK, algorithms: readonly JwtAlgorithm[]): boolean {
  if (key.key_ops !== undefined && !(Array.isArray(key.key_ops) && key.key_ops.includes('verify'))) return false;
  return algorithms.some((alg) => {
    const want = KEY_TYPE[alg];
    return key.kty === want.kty && (want.crv === undefined || key.crv === want.crv) && (key.alg === undefined || key.alg === alg);
  });
}

/**
 * Why a key of a JWKS document (one not for encryption) is no public key, or undefined. Symmetric (`oct`) keys would let a token be
 * signed with a public key as HMAC secret; a private member (`d`, `p`, …) means the issuer published its private key,
 * which anyone could now sign with.
 */
function notPublicSigningKey(k: JWK): string | undefined {
  if (k.kty !== 'RSA' && k.kty !== 'EC' && k.kty !== 'OKP') return `is of key type ${brief(k.kty)}, not RSA, EC or OKP (a shared secret never verifies)`;
  const secret = PRIVATE_MEMBERS.find((m) => (k as Record<string, unknown>)[m] !== undefined);
  if (secret !== undefined) return `holds private key material (${secret}): the issuer is publishing its private key, which must be replaced`;
  return undefined;
}

/** A value of a fetched document in a log line: the issuer chose it, so it may be a megabyte long. */
const brief = (value: unknown): string => (typeof value === 'string' ? (value.length > 100 ? `${value.slice(0, 100)}…` : value) : shown(value));

const MAX_SKIPPED_SHOWN = 10;
const summary = (skipped: readonly string[]): string =>
  skipped.length === 0 ? '' : `: ${skipped.slice(0, MAX_SKIPPED_SHOWN).join('; ')}${skipped.length > MAX_SKIPPED_SHOWN ? `; and ${skipped.length - MAX_SKIPPED_SHOWN} more` : ''}`;

/** RFC 7518 §6.2.2 and §6.3.2, RFC 8037 §2: the members only a private key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * A JWKS document → a key set. Only public signing keys that can verify one of `algorithms` survive (symmetric keys,
 * private keys, encryption keys, RSA keys jws.ts' keyRefusal would refuse, keys of another type or curve are left
 * out), at most 100 of them. A key left out is named in `skipped` with why, for a warning; a document left with no
 * key is refused like an empty one: swapping it in would refuse every token, so the caller keeps the keys it has.
 * Throws on anything that is not a JWKS.
 */
export function keySetFrom(document: unknown, algorithms: readonly JwtAlgorithm[] = JWT_ALGORITHMS): KeySet {
  if (typeof document !== 'object' || document === null || !Array.isArray((document as { keys?: unknown }).keys)) {
    throw new Error('not a JWKS document (expected {"keys": [...]})');
  }
  const skipped: string[] = [];
  const skip = (name: string, why: string): void => void skipped.push(`${name} ${why}`);
  const nameOf = (k: JWK, i: number): string => (typeof k.kid === 'string' ? `key '${brief(k.kid)}'` : `key #${i}`);
  // Cheap checks first, on every key: the cap is on keys this provider could use, so a large multi-tenant set whose
  // first hundred keys are of another type still yields the keys it has for us.
  const fitting: { readonly key: JWK; readonly name: string }[] = [];
  let publicKeys = 0;
  (document as { keys: unknown[] }).keys.forEach((k, i) => {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) return skip(`key #${i}`, 'is not an object');
    const key = k as JWK;
    // Encryption keys beside the signing keys are usual (Keycloak publishes one): left out without a word.
    if (key.use !== undefined && key.use !== 'sig') return;
    const name = nameOf(key, i);
    const unfit = notPublicSigningKey(key);
    if (unfit !== undefined) return skip(name, unfit);
    publicKeys++;
    if (!fitsAlgorithms(key, algorithms)) {
      return skip(name, `(${brief(key.kty)}${key.crv === undefined ? '' : ` ${brief(key.crv)}`}${key.alg === undefined ? '' : ` ${brief(key.alg)}`}) serves none of ${algorithms.join(', ')}`);
    }
    if (fitting.length === MAX_KEYS) return skip(name, `is past the first ${MAX_KEYS} usable keys`);
    fitting.push({ key, name });
  });
  if (publicKeys === 0) throw new Error(`JWKS holds no public signing key${summary(skipped)}`);
  const keys = fitting.filter(({ key, name }) => {
    try {
      const imported = createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
      // Refused at every verify anyway (jws.ts); said once here, where the operator can see which key it is.
      const weak = key.kty === 'RSA' ? rsaKeyFault(imported) : undefined;
      if (weak !== undefined) skip(name, weak);
      return weak === undefined;
    } catch (error) {
      skip(name, `cannot be imported: ${(error as Error).message}`);
      return false;
    }
  }).map(({ key }) => key);
  if (keys.length === 0) throw new Error(`JWKS holds no usable public signing key${summary(skipped)}`);
  // A document of thousands of odd keys must not become a log line of thousands of reasons.
  if (skipped.length > MAX_SKIPPED_SHOWN) skipped.splice(MAX_SKIPPED_SHOWN, skipped.length, `and ${skipped.length - MAX_SKIPPED_SHOWN} more`);
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
  return { resolve, kids: new Set(keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string')), skipped, fingerprint: JSON.stringify(keys) };
}

/** Keys from a file, read by the config loader (a garbage file is a config error there). */
export function staticKeySource(document: unknown, algorithms?: readonly JwtAlgorithm[]): KeySource & { readonly skipped: readonly string[] } {
  const set = keySetFrom(document, algorithms);
  // A file's keys change only with the file, and a changed file is a new config (jwt.ts' cache generation).
  return { resolve: (header, token) => set.resolve(header, token), version: 0, close: () => undefined, skipped: set.skipped };
}

/**
 * Why a discovery document's `jwks_uri` is not to be fetched, or undefined. An http: jwks_uri in a document read over
 * https: would let anyone on the path between gateway and issuer serve keys for the issuer's tokens, so it is a
 * downgrade refused; another host is allowed (Google publishes its keys on www.googleapis.com): the document that
 * names it came over the channel the operator chose.
 */
export function jwksUriFault(jwksUri: unknown, discoveryUrl: string): string | undefined {
  if (typeof jwksUri !== 'string') return 'discovery document has no jwks_uri';
  let url: URL;
  try {
    url = new URL(jwksUri);
  } catch {
    return `discovery document's jwks_uri ${shown(jwksUri)} is not a URL`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `discovery document's jwks_uri ${shown(jwksUri)} is not http(s)`;
  if (url.protocol === 'http:' && new URL(discoveryUrl).protocol === 'https:') return `discovery document's jwks_uri ${shown(jwksUri)} is http: while discovery is https: (a downgrade, refused)`;
  return undefined;
}

export interface RemoteKeySourceOptions {
  readonly source: Exclude<JwksSource, { kind: 'file' }>;
  /** The provider's algorithms: a fetched set with no key for any of them is a failed refresh. */
  readonly algorithms?: readonly JwtAlgorithm[];
  readonly http: HttpClient;
  readonly clock: Clock;
  readonly refreshMs: number;
  /** At most one fetch per cooldown for unknown kids: random kids must not turn us into a DoS on the issuer. */
  readonly cooldownMs: number;
  /** In [0, 1): the jitter of retries after a failure (default Math.random). */
  readonly random?: () => number;
  /** `skipped`: keys of a set taken that were left out (see keySetFrom), to be logged. */
  readonly onRefresh: (result: 'success' | 'error', error?: string, skipped?: readonly string[]) => void;
}

/**
 * Keys from a JWKS URL or OIDC discovery, refreshed in the background; the last good set keeps serving while the
 * issuer is down, and a failed fetch is retried with backoff (JWKS_RETRY). An unknown kid triggers one refetch
 * (single flight, cooldown) that a Check waits for only until its own deadline, except while fetches are failing:
 * then it waits for the next retry like everyone else. Kids are the caller's choice, so a refetch per cooldown for
 * any unknown kid would let anyone set the pace at which a struggling issuer is asked; a token signed with a key
 * published during the outage is refused until a retry brings that key.
 */
export class RemoteKeySource implements KeySource {
  private keys: KeySet | undefined;
  private keysVersion = 0;
  private inflight: Promise<void> | undefined;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly retry: Backoff;

  constructor(private readonly options: RemoteKeySourceOptions) {
    this.retry = new Backoff({ ...JWKS_RETRY, maxMs: Math.min(JWKS_RETRY.maxMs, options.refreshMs) }, options.random ?? Math.random);
  }

  start(): this {
    this.refresh();
    return this;
  }

  /** Resolves once the fetch in flight (the first, after start) is done, whatever its result. */
  settled(): Promise<void> {
    return this.inflight ?? Promise.resolve();
  }

  get version(): number {
    return this.keysVersion;
  }

  /** While fetches fail: when the next is due (on the injected clock); undefined while they succeed. */
  get retryAtMs(): number | undefined {
    return this.retry.failures === 0 ? undefined : this.retry.closedUntilMs;
  }

  /** Starts a fetch unless one is running; resolves when it is done (never rejects). */
  refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    const startedMs = (this.lastAttemptMs = this.options.clock.nowMs());
    clearTimeout(this.timer);
    this.inflight = this.fetch().then(
      (keys) => {
        if (keys.fingerprint !== this.keys?.fingerprint) this.keysVersion += 1;
        this.keys = keys;
        this.retry.succeeded();
        this.options.onRefresh('success', undefined, keys.skipped);
        this.schedule(this.options.refreshMs);
      },
      (error: unknown) => {
        // From the attempt's start, as the cooldown: a fetch that took its whole timeout to fail does not add to it.
        // A 429 or 503 that says how long to wait (discovery or JWKS) is waited for from when it came, up to the cap.
        const nowMs = this.options.clock.nowMs();
        const asked = error instanceof HttpStatusError ? retryAfterMs(error.retryAfter, nowMs) : undefined;
        this.retry.failed(startedMs, asked === undefined ? 0 : nowMs - startedMs + asked);
        this.options.onRefresh('error', (error as Error).message);
        // When the cooldown ends, not a whole delay after this failure: a fetch that took its timeout to fail would
        // otherwise add those seconds to every retry while unknown kids were told the keys would be asked for sooner.
        this.schedule(Math.max(0, this.retry.closedUntilMs - nowMs));
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
      const discovery = await http.getJson(`${source.url.replace(/\/$/, '')}/.well-known/openid-configuration`, signal);
      const d = discovery as { issuer?: unknown; jwks_uri?: unknown } | undefined;
      // The provider's issuer, not the discovery URL: keys published for another issuer must not verify its tokens.
      if (d?.issuer !== source.issuer) throw new Error(`discovery document names issuer ${shown(d?.issuer)}, expected ${source.issuer}`);
      const fault = jwksUriFault(d.jwks_uri, source.url);
      if (fault !== undefined) throw new Error(fault);
      url = d.jwks_uri as string;
    }
    return keySetFrom(await http.getJson(url, signal), this.options.algorithms);
  }

  resolve(header: JWTHeaderParameters, token: FlattenedJWSInput, signal: AbortSignal): MaybePromise<readonly KeyObject[]> {
    if (this.keys !== undefined && (header.kid === undefined || this.keys.kids.has(header.kid))) return this.keys.resolve(header, token);
    return this.afterRefetch(header, token, signal);
  }

  /**
   * An unknown kid, or no keys yet: one refetch (if cooled down, and not while failed fetches back off), waited for
   * until the Check's deadline. A kid still unknown while the fetches fail cannot be judged (the issuer may have
   * rotated it in during the outage): unavailable (503), as with no keys at all, not a token refused.
   */
  private async afterRefetch(header: JWTHeaderParameters, token: FlattenedJWSInput, signal: AbortSignal): Promise<readonly KeyObject[]> {
    const nowMs = this.options.clock.nowMs();
    const cooled = nowMs - this.lastAttemptMs >= this.options.cooldownMs && !this.retry.waiting(nowMs);
    const pending = this.inflight ?? (cooled ? this.refresh() : undefined);
    if (pending) await untilAborted(pending, signal).catch(() => undefined);
    if (this.keys === undefined) throw new KeysUnavailableError('signing keys not available (JWKS not fetched yet)');
    if (header.kid !== undefined && !this.keys.kids.has(header.kid) && this.retry.failures > 0) {
      throw new KeysUnavailableError(`no key ${shown(header.kid)} among the last good keys, and the JWKS cannot be fetched now`);
    }
    return this.keys.resolve(header, token);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
