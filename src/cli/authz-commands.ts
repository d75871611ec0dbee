import { newApiKey } from '../authz/apikey.js';
import { createHttpClient } from '../authz/http-client.js';
import { normalizePath } from '../authz/normalize-path.js';
import { selectPolicy } from '../authz/policy.js';
import { AuthzService, readAuthzFiles } from '../authz/service.js';
import type { CheckInput, Decision } from '../authz/types.js';
import { ConfigError } from '../config/errors.js';
import { loadPortcullisConfig } from '../config/portcullis-config.js';
import { systemClock } from '../shared/clock.js';
import { MemoryRevocationList } from '../store/revocation-list.js';

/** `portcullis keys new --id ID [--owner O] [--tier T]`: the key once on stdout, and the entry holding only its hash. */
export function keysNew(options: { id?: string; owner?: string; tier?: string }, out: (s: string) => void): number {
  if (!options.id || !/^[A-Za-z0-9._:-]{1,128}$/.test(options.id)) {
    out('keys new: --id ID is required (letters, digits and ._:-)\n');
    return 2;
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
  const headers = new Map<string, string>();
  for (const h of options.header ?? []) {
    const colon = h.indexOf(':');
    if (colon <= 0) {
      out(`explain: header '${h}' is not NAME: VALUE\n`);
      return 2;
    }
    const name = h.slice(0, colon).trim().toLowerCase();
    const value = h.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)},${value}` : value);
  }
  let service: AuthzService | undefined;
  try {
    const config = await loadPortcullisConfig(options.config);
    const observer = { jwksRefresh: () => undefined, cacheLookup: () => undefined, introspectionError: () => undefined, revocationUnavailable: () => undefined };
    service = new AuthzService({ clock: systemClock, http: createHttpClient(), observer, revocation: new MemoryRevocationList(systemClock) });
    const snapshot = service.prepare(config.authz, await readAuthzFiles(config.authz));
    const input: CheckInput = {
      method: (options.method ?? 'GET').toUpperCase(),
      rawPath: options.path,
      host: headers.get('host') ?? '',
      headers,
      sourceAddress: options.sourceIp ?? '127.0.0.1',
      sourcePrincipal: options.principal ?? '',
      contextExtensions: new Map(options.policy ? [['policy', options.policy]] : []),
      requestId: 'explain',
    };
    const normalized = normalizePath(input.rawPath);
    // The query is not printed: it may hold an API key.
    const shown = input.rawPath.split('?')[0] ?? '';
    out(`request:  ${input.method} ${shown}${input.rawPath.includes('?') ? '?…' : ''}${normalized.ok ? (normalized.path !== shown ? `  (matched as ${normalized.path})` : '') : `  (refused: ${normalized.reason})`}\n`);
    if (config.authz === undefined) out('policy:   none: the config has no authz section, so every request is denied\n');
    else if (normalized.ok) {
      const choice = selectPolicy(snapshot.policies, input.method, normalized.path, options.policy);
      if (choice.kind === 'policy') out(`policy:   ${choice.policy.name} (chosen by ${choice.why}; line ${choice.policy.line})\n`);
      else if (choice.kind === 'unknown') out(`policy:   '${choice.name}' from context_extensions is not defined\n`);
      else out('policy:   none matches, default_policy is deny\n');
    }
    printDecision(await service.check(input, snapshot, AbortSignal.timeout(5000)), out);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    out(`${error.message}\n`);
    return 1;
  } finally {
    service?.close();
  }
}

function printDecision(decision: Decision, out: (s: string) => void): void {
  decision.attempts.forEach((a, i) => {
    const o = a.outcome;
    const why = o.kind === 'invalid' || o.kind === 'unavailable' ? `${o.reason}: ${o.detail}` : o.detail;
    out(`  ${i + 1}. ${a.method.padEnd(14)} ${o.kind.padEnd(12)} ${why}\n`);
  });
  if (decision.allow) {
    out(`decision: ALLOW as ${decision.identity.subject} (${decision.identity.method})\n`);
    for (const [k, v] of decision.headers) out(`  set     ${k}: ${v}\n`);
    for (const k of decision.headersToRemove) out(`  remove  ${k}\n`);
    for (const q of decision.queryParamsToRemove) out(`  remove  ?${q}\n`);
    out(`  dynamic metadata (envoy.filters.http.ext_authz): ${JSON.stringify(decision.dynamicMetadata)}\n`);
  } else {
    out(`decision: DENY ${decision.status} ${decision.reason}: ${decision.message}\n`);
  }
}
