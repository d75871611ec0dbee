import type { AuthzSettings } from './config.js';
import type { HeaderLookup } from './types.js';

/**
 * Header names as an upstream that reads `_` as `-` reads them: CGI and WSGI (`HTTP_X_USER_ID`), PHP, Rails and many
 * Python frameworks take a client's `x_user_id` or `x-user_id` for `x-user-id`. Envoy forwards names holding `_` under
 * its default `headers_with_underscores_action` (ALLOW) and removes headers by exact name only, so every such spelling
 * of a header Portcullis vouches for that a request carried is named in the answer's removals (decide.ts).
 */
export function foldName(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}

/** The headers to guard, folded once per load: the identity headers and the API key header. */
export interface FoldTargets {
  /** Folded name → the exact name Portcullis sets or removes. */
  readonly byFold: ReadonlyMap<string, string>;
  /** Every exact name, which is never also a lookalike (it is set or removed by name already). */
  readonly exact: ReadonlySet<string>;
  /** A configured name holding `_`, folded: a client's all-`-` spelling holds no `_`, so is looked up by name. */
  readonly dashed: readonly string[];
  /** 1 at each guarded name's length (folding keeps it): most names a request carries are ruled out by it alone. */
  readonly lengths: Uint8Array;
}

export function foldTargets(settings: AuthzSettings | undefined): FoldTargets {
  const names = settings === undefined ? [] : [...Object.values(settings.identityHeaders), ...(settings.apiKeys ? [settings.apiKeys.header] : [])];
  const byFold = new Map<string, string>();
  for (const name of names) if (!byFold.has(foldName(name))) byFold.set(foldName(name), name);
  const exact = new Set(names);
  const dashed = [...byFold.keys()].filter((folded) => !exact.has(folded));
  const lengths = new Uint8Array(Math.max(0, ...names.map((n) => n.length)) + 1);
  for (const name of names) lengths[name.length] = 1;
  return Object.freeze({ byFold, exact, dashed: Object.freeze(dashed), lengths });
}

/**
 * A name that may be a lookalike: of a guarded name's length, holding `_`. Run on every name of every Check
 * (CheckInput.underscoredNames), so the length goes first: a string search on every name measured ≈ 140 ns a Check,
 * ≈ 2% of a cached one in process (bench/authz/check-loop.ts). The table is read within its end: reads past it are
 * correct (undefined) but measured slower.
 */
export function mayFold(targets: FoldTargets, name: string): boolean {
  const lengths = targets.lengths;
  return name.length < lengths.length && lengths[name.length] === 1 && name.includes('_');
}

/** The one empty list of names: what nearly every request has, allocated once. */
export const NO_NAMES: readonly string[] = Object.freeze([]);

/**
 * The names, as the request carried them (lower case), an upstream may read as a guarded header without being it.
 * `underscored` is CheckInput.underscoredNames: for a request without `_` in any header name (nearly all of them)
 * and the default header names, this is two length checks.
 */
export function lookalikes(targets: FoldTargets, headers: HeaderLookup, underscored: readonly string[]): readonly string[] {
  if (underscored.length === 0 && targets.dashed.length === 0) return NO_NAMES;
  let out: string[] | undefined;
  const add = (name: string): void => {
    if (targets.exact.has(name) || out?.includes(name)) return;
    (out ??= []).push(name);
  };
  for (const name of underscored) if (targets.byFold.has(foldName(name))) add(name);
  for (const folded of targets.dashed) if (headers.get(folded) !== undefined) add(folded);
  return out ?? NO_NAMES;
}

/**
 * Lower-case header names holding `_`, each once, the shared empty list when none do (CheckInput.underscoredNames);
 * with `targets`, only those that mayFold onto one of them.
 */
export function underscoredNames(names: Iterable<string>, targets?: FoldTargets): readonly string[] {
  let out: string[] | undefined;
  for (const name of names) {
    if (targets === undefined ? !name.includes('_') : !mayFold(targets, name)) continue;
    const lower = name.toLowerCase();
    if (!out?.includes(lower)) (out ??= []).push(lower);
  }
  return out ?? NO_NAMES;
}
