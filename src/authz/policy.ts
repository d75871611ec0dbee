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
  /**
   * Every exact policy path with and without its trailing slash (folded under ignore_case): only a request path in
   * here can take another policy than its toggled form, so the others skip that second selection.
   */
  readonly exactForms: ReadonlySet<string>;
  readonly foldExact: boolean;
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
  const exact = ordered.filter((p) => p.matchPath !== undefined);
  const exactForms = new Set(exact.flatMap((p) => [p.matchPath!, toggledSlash(p.matchPath!)]));
  const foldExact = exact.some((p) => p.match?.ignoreCase === true);
  return Object.freeze({ ordered, byName, fallback, exactForms, foldExact });
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
  | { readonly kind: 'unknown'; readonly name: string }
  /** The path is refused (400 bad_path), as normalizePath refuses one: upstreams read it in different ways. */
  | { readonly kind: 'bad_path'; readonly reason: string };

export const TRAILING_SLASH_REASON = 'trailing slash: the path with and without it take different policies';

/**
 * The policy for a request: the one Envoy names in context_extensions.policy (an unknown name denies: a typo in a
 * route must not open it), else the first whose match holds for the method and the normalized path, else the
 * default policy.
 *
 * Express without strict routing and Spring MVC before 6 serve `/api/orders/` as `/api/orders` (and Express serves a
 * `/docs/` route at `/docs`), while other upstreams tell them apart. Whole-segment prefixes match a path and its
 * toggled form alike, so only an exact `path` policy can give the two different policies: then the spelling that
 * did not match that exact policy is refused, since neither reading is safe in every config. The spelling the
 * policy names keeps it (refusing it too would close every exact policy beside a catch-all); when both spellings
 * are exact policies of their own, or neither is, both are refused.
 */
export function selectPolicy(set: PolicySet, method: string, normalizedPath: string, named: string | undefined): PolicyChoice {
  if (named !== undefined) {
    const policy = set.byName.get(named);
    return policy ? { kind: 'policy', policy, why: 'context_extensions.policy' } : { kind: 'unknown', name: named };
  }
  const chosen = firstMatch(set, method, normalizedPath);
  if (set.exactForms.size > 0 && normalizedPath !== '/' && (set.exactForms.has(normalizedPath) || (set.foldExact && set.exactForms.has(foldPathCase(normalizedPath))))) {
    const toggled = firstMatch(set, method, toggledSlash(normalizedPath));
    const exactHere = chosen?.matchPath !== undefined;
    const exactThere = toggled?.matchPath !== undefined;
    if (toggled !== chosen && !(exactHere && !exactThere)) return { kind: 'bad_path', reason: TRAILING_SLASH_REASON };
  }
  if (chosen !== undefined) return { kind: 'policy', policy: chosen, why: chosen.match?.ignoreCase ? 'match, ignoring case' : 'match' };
  return set.fallback ? { kind: 'policy', policy: set.fallback, why: 'default_policy' } : { kind: 'none' };
}

function firstMatch(set: PolicySet, method: string, normalizedPath: string): CompiledPolicy | undefined {
  let folded: string | undefined;
  for (const policy of set.ordered) {
    const m = policy.match;
    if (m === undefined) continue;
    if (m.methods !== undefined && !m.methods.includes(method)) continue;
    const path = m.ignoreCase ? (folded ??= foldPathCase(normalizedPath)) : normalizedPath;
    if (policy.matchPath !== undefined && policy.matchPath !== path) continue;
    if (policy.matchPrefix !== undefined && !matchesPrefix(path, policy.matchPrefix)) continue;
    return policy;
  }
  return undefined;
}

/** `/a` ↔ `/a/` (never called for `/`). */
function toggledSlash(path: string): string {
  return path.endsWith('/') ? path.slice(0, -1) : `${path}/`;
}
