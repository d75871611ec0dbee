import type { AuthzSettings, PolicySettings } from './config.js';
import { addressSet, type AddressSet } from './network.js';
import { foldPathCase, matchesPrefix } from '../shared/normalize-path.js';
import type { AuthMethod } from './types.js';

/** One evaluator run of a policy: a method, and for jwt the providers it may use (undefined: any). */
export interface AttemptStep {
  readonly method: AuthMethod;
  readonly providers: ReadonlySet<string> | undefined;
}

export interface CompiledPolicy extends PolicySettings {
  readonly allowedAddresses: AddressSet | undefined;
  /** `authenticate` as the evaluators run it, in order. */
  readonly steps: readonly AttemptStep[];
  /** match.path and match.path_prefix as compared: case-folded under ignore_case. */
  readonly matchPath: string | undefined;
  readonly matchPrefix: string | undefined;
}

export interface PolicySet {
  readonly ordered: readonly CompiledPolicy[];
  readonly byName: ReadonlyMap<string, CompiledPolicy>;
  /** undefined: deny what matches nothing. */
  readonly fallback: CompiledPolicy | undefined;
}

export function compilePolicies(settings: AuthzSettings | undefined): PolicySet {
  const ordered = (settings?.policies ?? []).map((p): CompiledPolicy => {
    const fold = p.match?.ignoreCase === true ? foldPathCase : (s: string): string => s;
    const matchPath = p.match?.path === undefined ? undefined : fold(p.match.path);
    const matchPrefix = p.match?.pathPrefix === undefined ? undefined : fold(p.match.pathPrefix);
    return Object.freeze({ ...p, allowedAddresses: p.ipAllow && addressSet(p.ipAllow), steps: stepsOf(p.authenticate), matchPath, matchPrefix });
  });
  const byName = new Map(ordered.map((p) => [p.name, p]));
  const fallback = settings && settings.defaultPolicy !== 'deny' ? byName.get(settings.defaultPolicy) : undefined;
  return Object.freeze({ ordered, byName, fallback });
}

/** `jwt` and `jwt:NAME` entries next to each other are one step over the providers they name. */
function stepsOf(authenticate: PolicySettings['authenticate']): readonly AttemptStep[] {
  const out: { method: AuthMethod; providers: Set<string> | undefined }[] = [];
  for (const entry of authenticate) {
    const previous = out[out.length - 1];
    if (entry.method === 'jwt' && previous?.method === 'jwt') {
      if (entry.provider === undefined) previous.providers = undefined;
      else previous.providers?.add(entry.provider);
      continue;
    }
    out.push({ method: entry.method, providers: entry.method === 'jwt' && entry.provider !== undefined ? new Set([entry.provider]) : undefined });
  }
  return Object.freeze(out.map((step) => Object.freeze(step)));
}

export type PolicyChoice =
  | { readonly kind: 'policy'; readonly policy: CompiledPolicy; readonly why: string }
  | { readonly kind: 'none' }
  | { readonly kind: 'unknown'; readonly name: string };

/**
 * The policy for a request: the one Envoy names in context_extensions.policy (an unknown name denies: a typo in a
 * route must not open it), else the first whose match holds for the method and the normalized path, else the
 * default policy.
 */
export function selectPolicy(set: PolicySet, method: string, normalizedPath: string, named: string | undefined): PolicyChoice {
  if (named !== undefined) {
    const policy = set.byName.get(named);
    return policy ? { kind: 'policy', policy, why: 'context_extensions.policy' } : { kind: 'unknown', name: named };
  }
  let folded: string | undefined;
  for (const policy of set.ordered) {
    const m = policy.match;
    if (m === undefined) continue;
    if (m.methods !== undefined && !m.methods.includes(method)) continue;
    const path = m.ignoreCase ? (folded ??= foldPathCase(normalizedPath)) : normalizedPath;
    if (policy.matchPath !== undefined && policy.matchPath !== path) continue;
    if (policy.matchPrefix !== undefined && !matchesPrefix(path, policy.matchPrefix)) continue;
    return { kind: 'policy', policy, why: m.ignoreCase ? 'match, ignoring case' : 'match' };
  }
  return set.fallback ? { kind: 'policy', policy: set.fallback, why: 'default_policy' } : { kind: 'none' };
}
