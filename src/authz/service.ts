import path from 'node:path';
import { MAX_REFERENCED_FILE_BYTES, readConfigFile } from '../config/config-text.js';
import { ConfigError } from '../config/errors.js';
import { parseJson } from '../config/json-text.js';
import type { Clock } from '../shared/clock.js';
import { ErrorCode, PortcullisError } from '../shared/errors.js';
import { sha256 } from '../shared/sha256.js';
import { evaluateApiKey, keyParameterIn, parseKeysFile, type ApiKeySet } from './apikey.js';
import { authzFileRefs, type AuthzSettings, type JwksSource, type JwtAlgorithm } from './config.js';
import { decide, deny } from './decide.js';
import { foldTargets, lookalikes, type FoldTargets } from './header-fold.js';
import { evaluateIntrospection, IntrospectionBreaker, OutstandingCalls, type IntrospectionDeps } from './introspection.js';
import { RemoteKeySource, staticKeySource, type KeySource } from './jwks.js';
import { evaluateJwt, type JwtEvaluatorDeps, type JwtProvider, type VerifiedToken } from './jwt.js';
import { ExpiringLru } from './lru.js';
import { evaluateMtls } from './mtls.js';
import { addressSet, clientAddress, type AddressSet } from './network.js';
import { normalizePath } from '../shared/normalize-path.js';
import { compilePolicies, selectPolicy, type AttemptStep, type CompiledPolicy, type PolicySet } from './policy.js';
import type { AuthzObserver, HttpClient, RevocationKind, RevocationList } from './ports.js';
import type { Attempt, CheckInput, Decision, Identity, MaybePromise, Outcome } from './types.js';

/** Everything a Check reads, built once per (re)load and swapped whole. */
export interface AuthzSnapshot {
  readonly settings: AuthzSettings | undefined;
  readonly policies: PolicySet;
  readonly apiKeys: ApiKeySet | undefined;
  readonly providers: readonly JwtProvider[];
  readonly mtlsTrusted: AddressSet;
  /** The identity and API key header names, folded as upstreams that read `_` as `-` fold them (header-fold.ts). */
  readonly foldTargets: FoldTargets;
  /** API key revocation as the settings want it (on_unavailable applied); undefined: unknown, not to be assumed. */
  readonly isKeyRevoked: (id: string) => boolean | undefined;
  /** What the jwt and introspection evaluators read, when the section configures them. */
  readonly jwt: JwtEvaluatorDeps | undefined;
  readonly introspection: IntrospectionDeps | undefined;
}

export const EMPTY_AUTHZ: AuthzSnapshot = Object.freeze({
  settings: undefined, policies: compilePolicies(undefined), apiKeys: undefined, providers: [], mtlsTrusted: addressSet([]), foldTargets: foldTargets(undefined),
  isKeyRevoked: () => false, jwt: undefined, introspection: undefined,
});

/**
 * The files the section points at, read: path → text. A file that cannot be read (missing, a directory, a dangling
 * symlink, not a regular file, over MAX_REFERENCED_FILE_BYTES, not UTF-8) is a config error naming it and its setting.
 */
export async function readAuthzFiles(settings: AuthzSettings | undefined): Promise<ReadonlyMap<string, string>> {
  const files = new Map<string, string>();
  for (const { file, setting } of authzFileRefs(settings)) {
    files.set(file, await readConfigFile({ file, setting, what: `the file ${setting} names`, maxBytes: MAX_REFERENCED_FILE_BYTES }));
  }
  return files;
}

export interface AuthzServiceDeps {
  readonly clock: Clock;
  readonly http: HttpClient;
  readonly observer: AuthzObserver;
  readonly revocation: RevocationList;
  /** Where key refreshes are reported (failures are logged by the caller). */
  readonly onKeyRefresh?: (provider: string, result: 'success' | 'error', error?: string) => void;
  /** Keys of a JWKS (file or fetched) left out because they cannot be imported or serve none of the algorithms. */
  readonly onKeysSkipped?: (provider: string, skipped: readonly string[]) => void;
  /** In [0, 1): the jitter of the backoff after JWKS and introspection failures (default Math.random). */
  readonly random?: () => number;
}

/** Check as a transport-free service: normalize, choose the policy, run its methods in order, decide. */
export class AuthzService {
  private remoteKeys = new Map<string, RemoteKeySource>();
  private jwtCache = new ExpiringLru<VerifiedToken>(0);
  private introspectionCache = new ExpiringLru<Identity | 'inactive'>(0);
  private cacheSizes = '';
  /** The introspection endpoint's breaker, by endpoint and credentials: a reload keeps it, new credentials reset it. */
  private breaker: { readonly generation: string; readonly breaker: IntrospectionBreaker } | undefined;
  /**
   * Calls under way to the introspection endpoint, by URL: a reload (new credentials included) counts the calls an
   * earlier config made to the same server until they end, another URL starts from none.
   */
  private outstanding: { readonly url: string; readonly calls: OutstandingCalls } | undefined;

  constructor(private readonly deps: AuthzServiceDeps) {}

  /**
   * Compiles a snapshot from settings and the files they name; throws ConfigError. Remote key sources are reused.
   * `keys`: the keys file already parsed (parseKeysFileOffThread: a server parses it off its serving thread).
   */
  prepare(settings: AuthzSettings | undefined, files: ReadonlyMap<string, string>, keys?: ApiKeySet): AuthzSnapshot {
    if (settings === undefined) return EMPTY_AUTHZ;
    const apiKeys = settings.apiKeys && (keys ?? parseKeysFile(files.get(settings.apiKeys.file) ?? '', settings.apiKeys.file));
    const before = new Set(this.remoteKeys.keys());
    let providers: JwtProvider[];
    try {
      providers = (settings.jwt?.providers ?? []).map((p): JwtProvider => ({ settings: p, keys: this.keySource(p.name, p.jwks, p, files) }));
    } catch (error) {
      // A refused config (a later provider's JWKS file is broken) is never swapped in, so retain() would not see the
      // sources made for it until the next good load: they would keep fetching keys nobody uses.
      for (const [key, source] of this.remoteKeys) {
        if (before.has(key)) continue;
        source.close();
        this.remoteKeys.delete(key);
      }
      throw error;
    }
    const sizes = `${settings.jwt?.cacheMaxEntries ?? 0}/${settings.introspection?.cacheMaxEntries ?? 0}`;
    if (sizes !== this.cacheSizes) {
      this.jwtCache = new ExpiringLru(settings.jwt?.cacheMaxEntries ?? 0);
      this.introspectionCache = new ExpiringLru(settings.introspection?.cacheMaxEntries ?? 0);
      this.cacheSizes = sizes;
    }
    const generation = sha256(JSON.stringify([settings.jwt, [...files.entries()].filter(([f]) => f !== settings.apiKeys?.file)]), 'base64url').slice(0, 16);
    const isRevoked = this.revocationFor(settings);
    const { clock, observer, http } = this.deps;
    const i = settings.introspection;
    const introspectionGeneration = i && sha256(JSON.stringify([i.url, i.clientId, files.get(i.clientSecretFile) ?? '']), 'base64url').slice(0, 16);
    if (introspectionGeneration !== undefined && this.breaker?.generation !== introspectionGeneration) {
      this.breaker = { generation: introspectionGeneration, breaker: new IntrospectionBreaker(this.deps.random ?? Math.random) };
    }
    if (i !== undefined && this.outstanding?.url !== i.url) this.outstanding = { url: i.url, calls: new OutstandingCalls() };
    return Object.freeze({
      settings,
      policies: compilePolicies(settings),
      apiKeys,
      providers,
      mtlsTrusted: addressSet(settings.mtls?.trusted ?? []),
      foldTargets: foldTargets(settings),
      isKeyRevoked: (id: string) => isRevoked('key', id),
      jwt: settings.jwt && Object.freeze({ providers, cache: this.jwtCache, generation, maxTokenBytes: settings.jwt.maxTokenBytes, clock, observer, isRevoked }),
      introspection: i && Object.freeze({
        url: i.url, clientId: i.clientId, clientSecret: (files.get(i.clientSecretFile) ?? '').trim(), cacheSeconds: i.cacheSeconds, tierClaim: i.claims.tier,
        http, cache: this.introspectionCache, clock, observer, maxTokenBytes: settings.jwt?.maxTokenBytes ?? 8192, isRevoked,
        calls: new Map(),
        // Cached answers are kept as identities read with claims.tier: a new mapping must not serve the old one's.
        generation: sha256(JSON.stringify([introspectionGeneration, i.claims]), 'base64url').slice(0, 16),
        breaker: this.breaker!.breaker,
        outstanding: this.outstanding!.calls,
        maxInFlight: i.maxInFlight,
      }),
    });
  }

  private revocationFor(settings: AuthzSettings): (kind: RevocationKind, id: string) => boolean | undefined {
    return (kind, id) => {
      if (!settings.revocation.enabled) return false;
      const revoked = this.deps.revocation.isRevoked(kind, id);
      if (revoked !== undefined) return revoked;
      this.deps.observer.revocationUnavailable();
      return settings.revocation.onUnavailable === 'allow' ? false : undefined;
    };
  }

  /**
   * Resolves once every remote key set's fetch in flight is done (each is bounded by its own fetch timeout): what a
   * running server holds before most Checks arrive. `explain` waits for it, so its Check is not the one that waits
   * for keys within the Check's deadline.
   */
  async keysFetched(): Promise<void> {
    await Promise.all([...this.remoteKeys.values()].map((source) => source.settled()));
  }

  /** After a swap: stops background refreshes no provider of `snapshot` uses any more. */
  retain(snapshot: AuthzSnapshot): void {
    const used = new Set(snapshot.providers.map((p) => p.keys));
    for (const [key, source] of this.remoteKeys) {
      if (!used.has(source)) {
        source.close();
        this.remoteKeys.delete(key);
      }
    }
  }

  close(): void {
    for (const source of this.remoteKeys.values()) source.close();
    this.remoteKeys.clear();
  }

  private keySource(provider: string, source: JwksSource, p: { algorithms: readonly JwtAlgorithm[]; refreshSeconds: number; refetchCooldownSeconds: number }, files: ReadonlyMap<string, string>): KeySource {
    if (source.kind === 'file') {
      const file = path.basename(source.path);
      const parsed = parseJson(files.get(source.path) ?? '');
      if (!parsed.ok) throw new ConfigError([{ file, line: parsed.line, path: '', message: `invalid JSON at column ${parsed.column}: ${parsed.message}` }]);
      let keys: ReturnType<typeof staticKeySource>;
      try {
        keys = staticKeySource(parsed.value, p.algorithms);
      } catch (error) {
        // A problem of the document as a whole (no public signing key usable for the provider's algorithms, not a
        // {"keys": [...]} object): a reload then keeps the last good config, keys included.
        throw new ConfigError([{ file, line: 1, path: '', message: `not a usable JWKS: ${(error as Error).message}` }]);
      }
      if (keys.skipped.length > 0) this.deps.onKeysSkipped?.(provider, keys.skipped);
      return keys;
    }
    const key = JSON.stringify([provider, source, p.algorithms, p.refreshSeconds, p.refetchCooldownSeconds]);
    let remote = this.remoteKeys.get(key);
    if (remote === undefined) {
      remote = new RemoteKeySource({
        source, algorithms: p.algorithms, http: this.deps.http, clock: this.deps.clock, refreshMs: p.refreshSeconds * 1000, cooldownMs: p.refetchCooldownSeconds * 1000,
        random: this.deps.random,
        onRefresh: (result, error, skipped) => {
          this.deps.observer.jwksRefresh(provider, result);
          this.deps.onKeyRefresh?.(provider, result, error);
          if (skipped !== undefined && skipped.length > 0) this.deps.onKeysSkipped?.(provider, skipped);
        },
      }).start();
      this.remoteKeys.set(key, remote);
    }
    return remote;
  }

  /** Sizes of the verified-token caches (for tests and /config). */
  cacheEntries(): { jwt: number; introspection: number } {
    return { jwt: this.jwtCache.size, introspection: this.introspectionCache.size };
  }

  /**
   * Synchronous while every evaluator answers from memory (an API key, a cached token, mTLS, anonymous): a repeat
   * caller's Check then costs no promise and no turn of the microtask queue. A promise once one must wait.
   */
  check(input: CheckInput, snapshot: AuthzSnapshot, signal: AbortSignal): MaybePromise<Decision> {
    const settings = snapshot.settings;
    if (settings === undefined) return deny('', 'no_policy', 403, 'no authz configuration: every request is denied');
    const normalized = normalizePath(input.rawPath);
    if (!normalized.ok) return deny('', 'bad_path', 400, `bad request path: ${normalized.reason}`);
    const choice = selectPolicy(snapshot.policies, input.method, normalized.path, input.contextExtensions.get('policy'));
    if (choice.kind === 'bad_path') return deny('', 'bad_path', 400, `bad request path: ${choice.reason}`);
    if (choice.kind === 'unknown') return deny('', 'unknown_policy', 403, `route names unknown policy '${choice.name}'`);
    if (choice.kind === 'none') return deny('', 'no_policy', 403, 'no policy matches this request');
    const policy = choice.policy;
    const keyQuery = settings.apiKeys?.query;
    const keyParameter = keyQuery === undefined ? undefined : keyParameterIn(normalized.query, keyQuery);
    if (keyParameter?.miswritten !== undefined) {
      return deny(policy.name, 'invalid_credentials', 401, `API key query parameter written as '${keyParameter.miswritten}': send it as '${keyQuery}'`);
    }
    if (policy.allowedAddresses !== undefined) {
      const client = clientAddress(input.sourceAddress, input.headers.get('x-forwarded-for'), settings.clientIp.trustedHops);
      if (!policy.allowedAddresses.has(client)) return deny(policy.name, 'ip_not_allowed', 403, `client address ${client} not allowed`);
    }
    // Only a query that carries the key gets query_parameters_to_remove: Envoy rewrites (re-sorts) any query it is
    // asked to remove a parameter from.
    const keyInQuery = keyParameter?.present === true ? keyQuery : undefined;
    return this.attempt({ input, query: normalized.query, keyInQuery, snapshot, settings, policy, signal }, 0, []);
  }

  /** Runs the policy's steps from `next` on, in order, until one succeeds; then decides. */
  private attempt(run: Run, next: number, attempts: Attempt[]): MaybePromise<Decision> {
    for (let i = next; i < run.policy.steps.length; i++) {
      const step = run.policy.steps[i]!;
      const outcome = this.evaluate(step, run);
      if (outcome instanceof Promise) {
        return outcome.then((o) => (this.record(run, step, o, attempts) ? this.decide(run, attempts) : this.attempt(run, i + 1, attempts)));
      }
      if (this.record(run, step, outcome, attempts)) break;
    }
    return this.decide(run, attempts);
  }

  /**
   * Adds the attempt; true when it named the caller. Introspection down with on_failure: error is a gRPC error; an
   * unknown revocation state is not the endpoint's failure and follows revocation.on_unavailable like a JWT's.
   */
  private record(run: Run, step: AttemptStep, outcome: Outcome, attempts: Attempt[]): boolean {
    attempts.push({ method: step.method, outcome });
    if (outcome.kind === 'unavailable' && outcome.reason === 'introspection_unavailable' && run.settings.introspection?.onFailure === 'error') {
      throw new PortcullisError(ErrorCode.AUTHZ_UNAVAILABLE, outcome.detail);
    }
    return outcome.kind === 'success';
  }

  private decide(run: Run, attempts: readonly Attempt[]): Decision {
    return decide(run.settings, run.policy, attempts, run.keyInQuery, lookalikes(run.snapshot.foldTargets, run.input.headers, run.input.underscoredNames));
  }

  private evaluate(step: AttemptStep, run: Run): MaybePromise<Outcome> {
    const { input, query, snapshot, settings, signal } = run;
    switch (step.method) {
      case 'anonymous':
        return ANONYMOUS;
      case 'api_key':
        return evaluateApiKey(input, query, settings.apiKeys!, snapshot.apiKeys!, snapshot.isKeyRevoked);
      case 'mtls':
        return evaluateMtls(input, { principalsHeader: settings.mtls!.principalsHeader, trusted: snapshot.mtlsTrusted, anyTrusted: settings.mtls!.trusted.length > 0 });
      case 'jwt':
        return evaluateJwt(input, step.providers, snapshot.jwt!, signal);
      case 'introspection':
        return evaluateIntrospection(input, snapshot.introspection!, signal);
    }
  }
}

/** One Check's fixed inputs, as the steps see them. */
interface Run {
  readonly input: CheckInput;
  readonly query: string;
  /** The API key query parameter, when this request's query holds it (to be removed before the upstream). */
  readonly keyInQuery: string | undefined;
  readonly snapshot: AuthzSnapshot;
  readonly settings: AuthzSettings;
  readonly policy: CompiledPolicy;
  readonly signal: AbortSignal;
}

/** One object for every anonymous caller, so they share one Grant per policy (decide.ts). */
const ANONYMOUS: Outcome = Object.freeze({ kind: 'success', detail: 'anonymous', identity: Object.freeze({ method: 'anonymous', subject: 'anonymous', scopes: [], roles: [], claims: {}, reused: true }) });
