import { newApiKey } from '../authz/apikey.js';
import { isUsableSubject, UNUSABLE_SUBJECT } from '../authz/subject.js';
import { createHttpClient } from '../authz/http-client.js';
import { underscoredNames } from '../authz/header-fold.js';
import { normalizePath } from '../shared/normalize-path.js';
import { selectPolicy } from '../authz/policy.js';
import { AuthzService, readAuthzFiles } from '../authz/service.js';
import type { CheckInput, Decision } from '../authz/types.js';
import { ConfigError } from '../config/errors.js';
import { loadPortcullisConfig, type PortcullisConfig } from '../config/portcullis-config.js';
import { systemClock } from '../shared/clock.js';
import { ErrorCode, PortcullisError } from '../shared/errors.js';
import { MemoryRevocationList, RedisRevocationList } from '../store/revocation-list.js';
import { createRedisClient, type RedisClient } from '../store/redis-client.js';
import type { AuthzSettings } from '../authz/config.js';
import { bearerChallenge } from '../authz/decide.js';
import { checkBudgetMs } from '../authz/wait.js';
import type { RevocationList } from '../authz/ports.js';
import { describeId, formatRevocations, revokeRequest, untilPhrase, type RevokeOptions } from './revoke-request.js';

export type { RevokeOptions } from './revoke-request.js';

const silentObserver = { jwksRefresh: () => undefined, cacheLookup: () => undefined, introspectionError: () => undefined, introspectionAnswered: () => undefined, introspectionShed: () => undefined, revocationUnavailable: () => undefined };

/** `portcullis validate`: the authz section and the files it names (keys, JWKS files, secret); throws ConfigError. */
export async function validateAuthz(config: PortcullisConfig): Promise<string[] | undefined> {
  if (config.authz === undefined) return undefined;
  const service = new AuthzService({ clock: systemClock, http: createHttpClient(), observer: silentObserver, revocation: new MemoryRevocationList(systemClock) });
  try {
    const settings = { ...config.authz, jwt: config.authz.jwt && { ...config.authz.jwt, providers: config.authz.jwt.providers.filter((p) => p.jwks.kind === 'file') } };
    return service.prepare(settings, await readAuthzFiles(config.authz)).policies.ordered.map((p) => p.name);
  } finally {
    service.close();
  }
}

/** `portcullis keys new --id ID [--owner O] [--tier T]`: the key once on stdout, and the entry holding only its hash. */
export function keysNew(options: { id?: string; owner?: string; tier?: string }, out: (s: string) => void): number {
  if (!options.id || !/^[A-Za-z0-9._:-]{1,128}$/.test(options.id)) {
    out('keys new: --id ID is required (letters, digits and ._:-)\n');
    return 2;
  }
  // The key is shown once: an entry the keys file would refuse, or a tier no header carries as written, wastes it.
  for (const [flag, value] of [['--owner', options.owner], ['--tier', options.tier]] as const) {
    if (value && !isUsableSubject(value)) {
      out(`keys new: ${flag} ${UNUSABLE_SUBJECT}\n`);
      return 2;
    }
  }
  const { key, entry } = newApiKey(options.id, options.owner || options.id, options.tier ?? '');
  out(`API key (shown once, store it now; Portcullis keeps only its hash):\n\n  ${key}\n\nAdd this entry to your keys file:\n\n${entry}\n`);
  return 0;
}

export interface ExplainOptions {
  readonly config?: string;
  readonly method?: string;
  readonly path?: string;
  readonly header?: readonly string[];
  readonly principal?: string;
  readonly sourceIp?: string;
  readonly policy?: string;
  /** Envoy's ext_authz timeout (grpc_service.timeout), in ms, when shorter than authz.timeout_ms. */
  readonly timeoutMs?: string;
}

/**
 * `portcullis explain`: runs one Check through the real evaluators (keys files, JWKS, introspection) and prints the
 * policy chosen, every method tried with its outcome, and the answer Envoy would get.
 */
export async function explain(options: ExplainOptions, out: (s: string) => void): Promise<number> {
  if (!options.config || !options.path) {
    out('explain: --config FILE and --path PATH are required\n');
    return 2;
  }
  const envoyTimeoutMs = options.timeoutMs === undefined ? undefined : /^[0-9]{1,9}$/.test(options.timeoutMs) ? Number(options.timeoutMs) : Number.NaN;
  if (envoyTimeoutMs !== undefined && !(envoyTimeoutMs > 0)) {
    out(`explain: --timeout-ms must be a whole number of milliseconds above 0, not '${options.timeoutMs}'\n`);
    return 2;
  }
  const headers = new Map<string, string>();
  for (const [i, h] of (options.header ?? []).entries()) {
    const colon = h.indexOf(':');
    if (colon <= 0) {
      // Not quoted: the argument is a credential more often than not (`-H 'authorization Bearer …'`).
      out(`explain: -H argument ${i + 1} is not NAME: VALUE\n`);
      return 2;
    }
    const name = h.slice(0, colon).trim().toLowerCase();
    const value = h.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)},${value}` : value);
  }
  let service: AuthzService | undefined;
  let revocation: RevocationList | undefined;
  try {
    const config = await loadPortcullisConfig(options.config);
    revocation = await revocationListFor(config, out);
    service = new AuthzService({ clock: systemClock, http: createHttpClient(), observer: silentObserver, revocation });
    const snapshot = service.prepare(config.authz, await readAuthzFiles(config.authz));
    // A running server holds its remote keys before the Checks come: fetched here first, not within the deadline.
    await service.keysFetched();
    const input: CheckInput = {
      method: (options.method ?? 'GET').toUpperCase(),
      rawPath: options.path,
      host: headers.get('host') ?? '',
      headers,
      underscoredNames: underscoredNames(headers.keys()),
      sourceAddress: options.sourceIp ?? '127.0.0.1',
      sourcePrincipal: options.principal ?? '',
      // '' too: a route may set an empty policy name, and the server refuses it as unknown.
      contextExtensions: new Map(options.policy !== undefined ? [['policy', options.policy]] : []),
      requestId: 'explain',
    };
    const normalized = normalizePath(input.rawPath);
    // The query is not printed: it may hold an API key.
    const shown = input.rawPath.split('?')[0] ?? '';
    // The client address decides ip_allow: the one Envoy would report, not this machine's, unless given.
    out(`source:   ${input.sourceAddress}${options.sourceIp === undefined ? ' (the default: pass --source-ip with the address Envoy reports)' : ''}\n`);
    out(`request:  ${input.method} ${shown}${input.rawPath.includes('?') ? '?…' : ''}${normalized.ok ? (normalized.path !== shown ? `  (matched as ${normalized.path})` : '') : `  (refused: ${normalized.reason})`}\n`);
    if (config.authz === undefined) out('policy:   none: the config has no authz section, so every request is denied\n');
    else if (normalized.ok) {
      const choice = selectPolicy(snapshot.policies, input.method, normalized.path, options.policy);
      if (choice.kind === 'policy') out(`policy:   ${choice.policy.name} (chosen by ${choice.why}; line ${choice.policy.line})\n`);
      else if (choice.kind === 'unknown') out(`policy:   '${choice.name}' from context_extensions is not defined\n`);
      else if (choice.kind === 'bad_path') out(`policy:   none: the path is refused (${choice.reason})\n`);
      else out('policy:   none matches, default_policy is deny\n');
    }
    let decision: Decision;
    try {
      // The server's deadline, not a longer one: a dependency too slow for the server must be too slow here too.
      decision = await service.check(input, snapshot, AbortSignal.timeout(checkBudgetMs(config.authz?.timeoutMs ?? 1000, envoyTimeoutMs)));
    } catch (error) {
      // The server answers this with a gRPC error, not a CheckResponse: an answer to print, not a crash.
      if (!(error instanceof PortcullisError) || error.code !== ErrorCode.AUTHZ_UNAVAILABLE) throw error;
      out(`decision: gRPC UNAVAILABLE (introspection.on_failure: error): ${error.message}\n`);
      return 0;
    }
    printDecision(decision, out);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    out(`${error.message}\n`);
    return 1;
  } finally {
    service?.close();
    await revocation?.close();
  }
}

/**
 * The revocation list `serve` would read: the shared one in Redis, refreshed once before the Check so explain
 * refuses what the instances refuse; in memory (empty) otherwise. Redis not answering leaves the list stale, so
 * lookups follow revocation.on_unavailable, as on a server that lost Redis.
 */
async function revocationListFor(config: PortcullisConfig, out: (s: string) => void): Promise<RevocationList> {
  if (config.redis === undefined || config.authz?.revocation.enabled !== true) return new MemoryRevocationList(systemClock);
  const client = createRedisClient(config.redis);
  const list = sharedRevocationList(client, config.authz);
  let timer: NodeJS.Timeout | undefined;
  // The client queues nothing while it connects (enableOfflineQueue: false): wait until it is ready.
  const ready = client.status === 'ready' || await new Promise<boolean>((resolve) => {
    client.once('ready', () => resolve(true));
    timer = setTimeout(() => resolve(false), REVOKE_TIMEOUT_MS);
  });
  clearTimeout(timer);
  if (ready) await list.refresh();
  else out(`revocation: Redis did not answer within ${REVOKE_TIMEOUT_MS} ms: revocation state unknown (on_unavailable: ${config.authz.revocation.onUnavailable})\n`);
  return list;
}

function printDecision(decision: Decision, out: (s: string) => void): void {
  decision.attempts.forEach((a, i) => {
    const o = a.outcome;
    const why = o.kind === 'invalid' || o.kind === 'unavailable' ? `${o.reason}: ${o.detail}` : o.detail;
    out(`  ${i + 1}. ${a.method.padEnd(14)} ${o.kind.padEnd(12)} ${why}\n`);
  });
  if (decision.allow) {
    out(`decision: ALLOW as ${decision.identity.subject} (${decision.identity.method})\n`);
    for (const [k, v] of decision.grant.headers) out(`  set     ${k}: ${v}\n`);
    for (const k of decision.grant.headersToRemove) out(`  remove  ${k}\n`);
    for (const q of decision.grant.queryParamsToRemove) out(`  remove  ?${q}\n`);
    out(`  dynamic metadata (envoy.filters.http.ext_authz): ${JSON.stringify(decision.grant.dynamicMetadata)}\n`);
  } else {
    out(`decision: DENY ${decision.status} ${decision.reason}: ${decision.message}\n`);
    if (decision.status === 401) out(`  www-authenticate: ${bearerChallenge(decision)}\n`);
    // A forbidden deny had a valid credential: whose, as the decision log names it, is half of "why was I denied?".
    if (decision.identity !== undefined) out(`  caller  ${decision.identity.subject} (${decision.identity.method})\n`);
  }
}

/** The Redis revocation list every instance reads, as `serve` builds it and `revoke` writes it. */
export function sharedRevocationList(client: RedisClient, authz: AuthzSettings, onError?: (error: Error) => void): RedisRevocationList {
  return new RedisRevocationList(client, { clock: systemClock, refreshMs: authz.revocation.refreshMs, maxStalenessMs: authz.revocation.maxStalenessMs, onError });
}

const REVOKE_TIMEOUT_MS = 5000;

/**
 * `portcullis revoke --config FILE (--jti ID | --api-key-id ID) [--ttl SECONDS]`: adds the id to the revocation list in
 * Redis that every instance reads (authz.revocation with redis: configured), so each refuses it within about
 * `revocation.refresh_ms`. With --lift it removes the id (each instance accepts it again in the same time; exit 1 if
 * it was not revoked); --list prints every entry in effect. Without Redis there is no shared list: disable a key in
 * the keys file instead.
 */
export async function revoke(options: RevokeOptions, out: (s: string) => void): Promise<number> {
  const request = revokeRequest(options);
  if (request.action === 'usage') {
    out(`revoke: ${request.message}\n`);
    return 2;
  }
  let config: PortcullisConfig;
  try {
    config = await loadPortcullisConfig(request.config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    out(`${error.message}\n`);
    return 1;
  }
  if (config.redis === undefined || config.authz?.revocation.enabled !== true) {
    out(`revoke: ${request.config} has no shared revocation list (it needs redis: and authz.revocation.enabled: true); `
      + 'without Redis, revoke an API key with disabled: true in the keys file (hot reload)\n');
    return 1;
  }
  const refreshMs = config.authz.revocation.refreshMs;
  const client = createRedisClient(config.redis);
  const list = sharedRevocationList(client, config.authz);
  let timer: NodeJS.Timeout | undefined;
  try {
    // The client queues nothing while it connects (enableOfflineQueue: false): wait until it is ready.
    const ready = client.status === 'ready' ? Promise.resolve() : new Promise<void>((resolve) => client.once('ready', () => resolve()));
    const within = <T>(work: () => Promise<T>): Promise<T> => Promise.race([
      ready.then(work),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`Redis did not answer within ${REVOKE_TIMEOUT_MS} ms`)), REVOKE_TIMEOUT_MS))),
    ]);
    if (request.action === 'list') {
      out(formatRevocations(await within(() => list.entries())));
      return 0;
    }
    const who = describeId(request.kind, request.id);
    if (request.action === 'lift') {
      if (!(await within(() => list.lift(request.kind, request.id)))) {
        out(`revoke: ${who} is not revoked: nothing to lift (revoke --list shows what is)\n`);
        return 1;
      }
      out(`lifted the revocation of ${who}; every instance accepts it again within about ${refreshMs} ms\n`);
      return 0;
    }
    const untilMs = systemClock.nowMs() + request.ttlSeconds * 1000;
    const heldMs = await within(() => list.revoke(request.kind, request.id, untilMs));
    out(heldMs > untilMs
      ? `${who} was already revoked ${untilPhrase(heldMs)}, which stays (a revocation is never shortened: --lift it first); `
        + `every instance refuses it\n`
      : `revoked ${who} ${untilPhrase(heldMs)}; every instance refuses it within about ${refreshMs} ms\n`);
    return 0;
  } catch (error) {
    out(`revoke: failed: ${(error as Error).message}\n`);
    return 1;
  } finally {
    clearTimeout(timer);
    await list.close();
  }
}
