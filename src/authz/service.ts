import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { Clock } from '../shared/clock.js';
import { ErrorCode, PortcullisError } from '../shared/errors.js';
import { sha256 } from '../shared/sha256.js';
import { evaluateApiKey, parseKeysFile, type ApiKeySet } from './apikey.js';
import { authzFiles, type AuthzSettings, type JwksSource } from './config.js';
import { decide, deny } from './decide.js';
import { evaluateIntrospection } from './introspection.js';
import { RemoteKeySource, staticKeySource, type KeySource } from './jwks.js';
import { evaluateJwt, type JwtProvider, type VerifiedToken } from './jwt.js';
import { ExpiringLru } from './lru.js';
import { evaluateMtls } from './mtls.js';
import { addressSet, clientAddress, type AddressSet } from './network.js';
import { normalizePath } from './normalize-path.js';
import { compilePolicies, selectPolicy, type CompiledPolicy, type PolicySet } from './policy.js';
import type { AuthzObserver, HttpClient, RevocationKind, RevocationList } from './ports.js';
import type { Attempt, AuthMethod, CheckInput, Decision, Identity, Outcome } from './types.js';

/** Everything a Check reads, built once per (re)load and swapped whole. */
export interface AuthzSnapshot {
  readonly settings: AuthzSettings | undefined;
  readonly policies: PolicySet;
  readonly apiKeys: ApiKeySet | undefined;
  readonly providers: readonly JwtProvider[];
  readonly generation: string;
  readonly introspectionSecret: string | undefined;
  readonly mtlsTrusted: AddressSet;
}

export const EMPTY_AUTHZ: AuthzSnapshot = Object.freeze({
  settings: undefined, policies: compilePolicies(undefined), apiKeys: undefined, providers: [], generation: '', introspectionSecret: undefined, mtlsTrusted: addressSet([]),
});

/** The files the section points at, read: path → text. An unreadable file is a config error naming it. */
export async function readAuthzFiles(settings: AuthzSettings | undefined): Promise<ReadonlyMap<string, string>> {
  const files = new Map<string, string>();
  for (const file of authzFiles(settings)) {
    try {
      files.set(file, await readFile(file, 'utf8'));
    } catch (error) {
      throw new ConfigError([{ file: path.basename(file), line: undefined, path: '', message: `cannot read: ${(error as Error).message}` }]);
    }
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
}

/** Check as a transport-free service: normalize, choose the policy, run its methods in order, decide. */
export class AuthzService {
  private remoteKeys = new Map<string, RemoteKeySource>();
  private jwtCache = new ExpiringLru<VerifiedToken>(0);
  private introspectionCache = new ExpiringLru<Identity | 'inactive'>(0);
  private cacheSizes = '';

  constructor(private readonly deps: AuthzServiceDeps) {}

  /** Compiles a snapshot from settings and the files they name; throws ConfigError. Remote key sources are reused. */
  prepare(settings: AuthzSettings | undefined, files: ReadonlyMap<string, string>): AuthzSnapshot {
    if (settings === undefined) return EMPTY_AUTHZ;
    const apiKeys = settings.apiKeys && parseKeysFile(files.get(settings.apiKeys.file) ?? '', settings.apiKeys.file);
    const providers = (settings.jwt?.providers ?? []).map((p): JwtProvider => ({ settings: p, keys: this.keySource(p.name, p.jwks, p, files) }));
    const sizes = `${settings.jwt?.cacheMaxEntries ?? 0}/${settings.introspection?.cacheMaxEntries ?? 0}`;
    if (sizes !== this.cacheSizes) {
      this.jwtCache = new ExpiringLru(settings.jwt?.cacheMaxEntries ?? 0);
      this.introspectionCache = new ExpiringLru(settings.introspection?.cacheMaxEntries ?? 0);
      this.cacheSizes = sizes;
    }
    const secretFile = settings.introspection?.clientSecretFile;
    return Object.freeze({
      settings,
      policies: compilePolicies(settings),
      apiKeys,
      providers,
      generation: sha256(JSON.stringify([settings.jwt, [...files.entries()].filter(([f]) => f !== settings.apiKeys?.file)]), 'base64url').slice(0, 16),
      introspectionSecret: secretFile === undefined ? undefined : (files.get(secretFile) ?? '').trim(),
      mtlsTrusted: addressSet(settings.mtls?.trusted ?? []),
    });
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

  private keySource(provider: string, source: JwksSource, p: { refreshSeconds: number; refetchCooldownSeconds: number }, files: ReadonlyMap<string, string>): KeySource {
    if (source.kind === 'file') {
      const text = files.get(source.path) ?? '';
      try {
        return staticKeySource(JSON.parse(text) as unknown);
      } catch (error) {
        throw new ConfigError([{ file: path.basename(source.path), line: undefined, path: '', message: `not a usable JWKS: ${(error as Error).message}` }]);
      }
    }
    const key = JSON.stringify([provider, source, p.refreshSeconds, p.refetchCooldownSeconds]);
    let remote = this.remoteKeys.get(key);
    if (remote === undefined) {
      remote = new RemoteKeySource({
        source, http: this.deps.http, clock: this.deps.clock, refreshMs: p.refreshSeconds * 1000, cooldownMs: p.refetchCooldownSeconds * 1000,
        onRefresh: (result, error) => {
          this.deps.observer.jwksRefresh(provider, result);
          this.deps.onKeyRefresh?.(provider, result, error);
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

  async check(input: CheckInput, snapshot: AuthzSnapshot, signal: AbortSignal): Promise<Decision> {
    const settings = snapshot.settings;
    if (settings === undefined) return deny('', 'no_policy', 403, 'no authz configuration: every request is denied');
    const normalized = normalizePath(input.rawPath);
    if (!normalized.ok) return deny('', 'bad_path', 400, `bad request path: ${normalized.reason}`);
    const choice = selectPolicy(snapshot.policies, input.method, normalized.path, input.contextExtensions.get('policy'));
    if (choice.kind === 'unknown') return deny('', 'unknown_policy', 403, `route names unknown policy '${choice.name}'`);
    if (choice.kind === 'none') return deny('', 'no_policy', 403, 'no policy matches this request');
    const policy = choice.policy;
    if (policy.allowedAddresses !== undefined) {
      const client = clientAddress(input.sourceAddress, input.headers.get('x-forwarded-for'), settings.clientIp.trustedHops);
      if (!policy.allowedAddresses.has(client)) return deny(policy.name, 'ip_not_allowed', 403, `client address ${client} not allowed`);
    }
    const attempts: Attempt[] = [];
    for (const { method, provider } of groupJwt(policy)) {
      const outcome = await this.evaluate(method, provider, input, normalized.query, snapshot, signal);
      attempts.push({ method, outcome });
      if (outcome.kind === 'success') break;
      if (outcome.kind === 'unavailable' && method === 'introspection' && settings.introspection?.onFailure === 'error') {
        throw new PortcullisError(ErrorCode.AUTHZ_UNAVAILABLE, outcome.detail);
      }
    }
    return decide(settings, policy, attempts, settings.apiKeys?.query);
  }

  private isRevoked(settings: AuthzSettings): (kind: RevocationKind, id: string) => boolean | undefined {
    return (kind, id) => {
      if (!settings.revocation.enabled) return false;
      const revoked = this.deps.revocation.isRevoked(kind, id);
      if (revoked !== undefined) return revoked;
      this.deps.observer.revocationUnavailable();
      return settings.revocation.onUnavailable === 'allow' ? false : undefined;
    };
  }

  private async evaluate(method: AuthMethod, providers: ReadonlySet<string> | undefined, input: CheckInput, query: string, snapshot: AuthzSnapshot, signal: AbortSignal): Promise<Outcome> {
    const settings = snapshot.settings!;
    const isRevoked = this.isRevoked(settings);
    switch (method) {
      case 'anonymous':
        return ANONYMOUS;
      case 'api_key':
        return evaluateApiKey(input, query, settings.apiKeys!, snapshot.apiKeys!, (id) => isRevoked('key', id));
      case 'mtls':
        return evaluateMtls(input, { principalsHeader: settings.mtls!.principalsHeader, trusted: snapshot.mtlsTrusted, anyTrusted: settings.mtls!.trusted.length > 0 });
      case 'jwt':
        return evaluateJwt(input, providers, {
          providers: snapshot.providers, cache: this.jwtCache, generation: snapshot.generation, maxTokenBytes: settings.jwt!.maxTokenBytes,
          clock: this.deps.clock, observer: this.deps.observer,
          isRevoked,
        }, signal);
      case 'introspection': {
        const s = settings.introspection!;
        return evaluateIntrospection(input, {
          url: s.url, clientId: s.clientId, clientSecret: snapshot.introspectionSecret ?? '', cacheSeconds: s.cacheSeconds, tierClaim: s.claims.tier,
          http: this.deps.http, cache: this.introspectionCache, clock: this.deps.clock, observer: this.deps.observer, maxTokenBytes: settings.jwt?.maxTokenBytes ?? 8192,
        }, signal);
      }
    }
  }
}

/** One object for every anonymous caller, so they share one Grant per policy (decide.ts). */
const ANONYMOUS: Outcome = Object.freeze({ kind: 'success', detail: 'anonymous', identity: Object.freeze({ method: 'anonymous', subject: 'anonymous', scopes: [], roles: [], claims: {} }) });

/** `jwt` and `jwt:NAME` entries next to each other are one attempt over the providers they name. */
function groupJwt(policy: CompiledPolicy): { method: AuthMethod; provider: ReadonlySet<string> | undefined }[] {
  const out: { method: AuthMethod; provider: Set<string> | undefined }[] = [];
  for (const entry of policy.authenticate) {
    const previous = out[out.length - 1];
    if (entry.method === 'jwt' && previous?.method === 'jwt') {
      if (entry.provider === undefined) previous.provider = undefined;
      else previous.provider?.add(entry.provider);
      continue;
    }
    out.push({ method: entry.method, provider: entry.method === 'jwt' && entry.provider !== undefined ? new Set([entry.provider]) : undefined });
  }
  return out;
}
