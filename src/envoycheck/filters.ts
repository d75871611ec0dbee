// `portcullis check-envoy`, the ext_authz and ext_proc half: which authz policy and which extproc route each Envoy
// route reaches, decided by Portcullis' own selection functions (src/authz/policy.ts selectPolicy,
// src/extproc/route-choice.ts selectExtprocRoute). Pure: route sites (routes.ts) and compiled settings in, findings out.
//
//   NO_AUTHZ_POLICY            ext_authz runs on the route and no request it can carry reaches a policy: only
//                              default_policy deny answers (the route is silently closed, 403 for everyone)
//   PARTIAL_AUTHZ_POLICY       some requests the route carries (a path under its prefix, a method) reach no policy
//   UNKNOWN_AUTHZ_POLICY       the route names a policy (context_extensions.policy) the config lacks: 403 for everyone
//   UNKNOWN_EXTPROC_ROUTE      the route names an extproc route (gRPC initial metadata x-portcullis-route) the config
//                              lacks: Portcullis falls back to path matching
//   EXTPROC_ROUTE_UNREACHABLE  an extproc route that no Envoy route with ext_proc active can reach
//   UNSUPPORTED_MATCH          a route path match this check cannot read (safe_regex, path_match_policy …)
//   REQUEST_ID_NOT_ECHOED      extproc.request_id.echo is envoy, and a connection manager running ext_proc lacks
//                              always_set_request_id_in_response: responses without a response phase carry no id
//   AUTHZ_METADATA_MISSING     a rate limit action reads ext_authz's dynamic metadata (user_id, api_key_id, tier …)
//                              where ext_authz does not run before the ratelimit filter: Envoy never has the value, so
//                              the descriptor (or its entry) is never sent and the per-caller limit silently vanishes
//   AUTHZ_BYPASSED             ext_authz is disabled on a route that reaches an upstream, and the policy Portcullis
//                              would apply there does not let anonymous callers in (or no policy covers it, so
//                              default_policy deny would): those requests reach the upstream unauthenticated
//   EXTPROC_STREAM_RESETS      ext_proc is in the bootstrap without the runtime flag
//                              envoy.reloadable_features.ext_proc_graceful_grpc_close: Envoy then resets every stream,
//                              and Node's HTTP/2 reset budget refuses streams from ~35 requests/s (docs/extproc.md)
//   CASE_INSENSITIVE_ROUTE     a route matches its path ignoring case (case_sensitive: false) and ext_authz or ext_proc
//                              runs there unpinned, and a spelling of one of its requests in another case takes
//                              another policy or extproc route: Portcullis matches case-sensitively unless the policy
//                              or route says ignore_case, so `/API/orders` escapes the policy of `/api/orders`
//   EXTPROC_RESPONSE_PHASE_ALWAYS  an ext_proc filter (or a route's ExtProcPerRoute.overrides.processing_mode) whose
//                              response_header_mode is not SKIP: a 400 Envoy makes itself for a request its codec
//                              refuses is held for a response phase, and the client gets no answer (docs/extproc.md)
//   EXTPROC_MODE_OVERRIDE_IGNORED  an ext_proc filter that does not take Portcullis' mode_override (allow_mode_override
//                              not true, send_body_without_waiting_for_header_response, a FULL_DUPLEX_STREAMED body
//                              mode, or an allowed_override_modes list): validation never gets a body, so an invalid
//                              one reaches the upstream, and the response cache never stores anything
//
// What a route "can carry" is probed, not proven: for its path match (prefix, path or path_separated_prefix) the
// probes are the match itself, one path below it (`P/~probe`), for a plain `prefix` one that continues its last
// segment (`P~probe`: Envoy's prefix is a string prefix, a policy's path_prefix a whole-segment one), and every
// policy or extproc path the match admits (and one below each); under case_sensitive: false a path is admitted, and
// taken by an earlier route, with ASCII case folded, as Envoy compares. Methods: the route's exact `:method` header
// matcher, else GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS. A probe an earlier route of the virtual host takes
// whatever the headers (path and at most a `:method` matcher) is dropped. Other header and query matchers are
// ignored: they only narrow what a route carries.

import type { AuthzSettings } from '../authz/config.js';
import { normalizePath } from '../shared/normalize-path.js';
import { unmetRequirement } from '../authz/decide.js';
import { compilePolicies, selectPolicy, type CompiledPolicy, type PolicyChoice } from '../authz/policy.js';
import type { Identity } from '../authz/types.js';
import { splitPath } from '../extproc/cache-key.js';
import type { ExtprocRoute, ExtprocSettings } from '../extproc/config.js';
import { selectExtprocRoute } from '../extproc/route-choice.js';
import type { Finding } from './check.js';
import { isFilter, list, perRouteFilter, record, text, type Json, type RouteSite } from './routes.js';

export type FilterFindingCode =
  | 'NO_AUTHZ_POLICY'
  | 'PARTIAL_AUTHZ_POLICY'
  | 'UNKNOWN_AUTHZ_POLICY'
  | 'UNKNOWN_EXTPROC_ROUTE'
  | 'EXTPROC_ROUTE_UNREACHABLE'
  | 'UNSUPPORTED_MATCH'
  | 'REQUEST_ID_NOT_ECHOED'
  | 'AUTHZ_METADATA_MISSING'
  | 'EXTPROC_STREAM_RESETS'
  | 'CASE_INSENSITIVE_ROUTE'
  | 'EXTPROC_RESPONSE_PHASE_ALWAYS'
  | 'EXTPROC_MODE_OVERRIDE_IGNORED'
  | 'AUTHZ_BYPASSED'
  | 'UNKNOWN_METADATA_NAMESPACE'
  | 'UNKNOWN_AUTHZ_METADATA_KEY';

export type FilterFinding = Finding<FilterFindingCode>;

export interface FilterCheckSummary {
  readonly findings: readonly FilterFinding[];
  /** Route sites where ext_authz is active. */
  readonly authzRoutes: number;
  /** Route sites where ext_proc is active. */
  readonly extprocRoutes: number;
}

export const EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';
export const EXT_PROC_FILTER = 'envoy.filters.http.ext_proc';
export const EXT_AUTHZ_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
export const EXT_PROC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';
/** gRPC initial metadata naming an extproc route; the same key as src/server/extproc-handler.ts ROUTE_METADATA_KEY. */
export const EXTPROC_ROUTE_METADATA = 'x-portcullis-route';

const PROBE_SEGMENT = '~probe';
const PROBE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const EXAMPLES = 3;

type FilterState = 'absent' | 'disabled' | 'active';

interface PathMatch {
  readonly kind: 'prefix' | 'path' | 'path_separated_prefix';
  readonly value: string;
  /** RouteMatch.case_sensitive: false (Envoy 1.40 honours it for prefix, path and path_separated_prefix). */
  readonly ignoreCase: boolean;
}

interface Probe {
  readonly path: string;
  readonly method: string;
}

export function checkEnvoyFilters(sites: readonly RouteSite[], authz: AuthzSettings | undefined, extproc: ExtprocSettings | undefined): FilterCheckSummary {
  const findings = new Findings();
  const policies = compilePolicies(authz);
  const extprocRoutes = extproc?.routes ?? [];
  const interesting = [
    ...policies.ordered.flatMap((p) => [p.match?.pathPrefix, p.match?.path]),
    ...extprocRoutes.flatMap((r) => [r.match.pathPrefix, r.match.path]),
  ].filter((p): p is string => p !== undefined);

  let authzRoutes = 0;
  let extprocActive = 0;
  let anyExtprocFilter = false;
  const reached = new Set<ExtprocRoute>();

  for (const site of sites) {
    const authzState = filterState(site, EXT_AUTHZ_FILTER);
    const extprocState = filterState(site, EXT_PROC_FILTER);
    if (extprocState !== 'absent') anyExtprocFilter = true;
    checkAuthzMetadataOrder(site, authzState, findings);
    // A route Envoy answers itself has no upstream to protect: ext_authz is disabled there on purpose.
    const bypassed = authzState === 'disabled' && !site.direct;
    if (authzState !== 'active' && extprocState !== 'active' && !bypassed) continue;

    const pathMatch = pathMatchOf(site.match);
    if (pathMatch === undefined) {
      findings.add('UNSUPPORTED_MATCH', `route '${site.routeName}': its path match (${Object.keys(site.match).join(', ') || 'none'}) cannot be analysed, so its ext_authz policy and extproc route are not checked`, site.where);
      continue;
    }
    const probes = probesFor(site, pathMatch, interesting);

    if (bypassed) checkAuthzBypass(site, probes, policies, findings);
    if (authzState === 'active') {
      authzRoutes += 1;
      checkAuthz(site, probes, policies, findings);
      if (pathMatch.ignoreCase && contextExtensions(site)['policy'] === undefined) {
        checkCaseVariants(site, probes, findings, {
          what: 'authz policy',
          choose: (probe) => {
            const normalized = normalizePath(probe.path);
            if (!normalized.ok) return undefined;
            const choice = selectPolicy(policies, probe.method, normalized.path, undefined);
            return { label: policyLabel(choice), name: choice.kind === 'policy' ? choice.policy.name : undefined };
          },
          pin: 'name the policy on the Envoy route (ExtAuthzPerRoute check_settings.context_extensions.policy)',
        });
      }
    }
    if (extprocState === 'active') {
      extprocActive += 1;
      if (extproc?.requestId.echo === 'envoy' && !site.requestIdInResponse) {
        findings.add('REQUEST_ID_NOT_ECHOED', 'extproc.request_id.echo is envoy, but this connection manager does not set always_set_request_id_in_response: true: a response Portcullis has nothing else to do with gets no x-request-id', site.where);
      }
      const hint = extprocRouteHint(site);
      const named = hint === undefined ? undefined : extprocRoutes.find((r) => r.name === hint);
      if (hint !== undefined && named === undefined) {
        findings.add('UNKNOWN_EXTPROC_ROUTE', `route '${site.routeName}' names extproc route '${hint}' (${EXTPROC_ROUTE_METADATA}), which the config lacks (known: ${extprocRoutes.map((r) => r.name).join(', ') || 'none'}): Portcullis falls back to matching by path`, site.where);
      }
      for (const probe of probes) {
        const route = selectExtprocRoute(extprocRoutes, splitPath(probe.path).path, probe.method, hint);
        if (route !== undefined) reached.add(route);
      }
      if (pathMatch.ignoreCase && named === undefined) {
        checkCaseVariants(site, probes, findings, {
          what: 'extproc route',
          choose: (probe) => {
            const route = selectExtprocRoute(extprocRoutes, splitPath(probe.path).path, probe.method, undefined);
            return route === undefined ? { label: 'no extproc route', name: undefined } : { label: `'${route.name}'`, name: route.name };
          },
          pin: `name the extproc route on the Envoy route (ExtProcPerRoute overrides.grpc_initial_metadata ${EXTPROC_ROUTE_METADATA})`,
        });
      }
    }
  }

  // A bootstrap without any ext_proc filter (a rate-limit-only example sharing the config) is not about extproc.
  if (anyExtprocFilter) {
    for (const route of extprocRoutes) {
      if (!reached.has(route)) {
        findings.add('EXTPROC_ROUTE_UNREACHABLE', `extproc route '${route.name}' (${describeExtprocMatch(route)}) is never reached: no Envoy route with ext_proc active carries a request it matches before an earlier extproc route does`, undefined);
      }
    }
  }
  return { findings: findings.list(), authzRoutes, extprocRoutes: extprocActive };
}

function checkAuthz(site: RouteSite, probes: readonly Probe[], policies: ReturnType<typeof compilePolicies>, findings: Findings): void {
  const named = contextExtensions(site)['policy'];
  if (named !== undefined) {
    if (!policies.byName.has(named)) {
      findings.add('UNKNOWN_AUTHZ_POLICY', `route '${site.routeName}' names authz policy '${named}' (context_extensions.policy), which the config lacks: every request is denied (403 unknown_policy)`, site.where);
    }
    return;
  }
  if (probes.length === 0) return;
  const closed = probes.filter((probe) => {
    const normalized = normalizePath(probe.path);
    return normalized.ok && selectPolicy(policies, probe.method, normalized.path, undefined).kind === 'none';
  });
  if (closed.length === 0) return;
  const examples = closed.slice(0, EXAMPLES).map((p) => `${p.method} ${p.path}`).join(', ');
  if (closed.length === probes.length) {
    findings.add('NO_AUTHZ_POLICY', `route '${site.routeName}': no authz policy matches any request it carries (e.g. ${examples}): only default_policy deny answers, so the route is closed (403 no_policy)`, site.where);
  } else {
    findings.add('PARTIAL_AUTHZ_POLICY', `route '${site.routeName}': some requests it carries match no authz policy and are denied by default_policy (e.g. ${examples}${closed.length > EXAMPLES ? ', …' : ''})`, site.where);
  }
}

/** The identity Portcullis gives a caller without credentials (src/authz/service.ts ANONYMOUS). */
const ANONYMOUS_IDENTITY: Identity = { method: 'anonymous', subject: 'anonymous', scopes: [], roles: [], claims: {} };

/** Whether a caller without credentials, from any address, passes the policy: then skipping it costs nothing. */
function letsAnyoneIn(policy: CompiledPolicy): boolean {
  return policy.authenticate.some((a) => a.method === 'anonymous') && policy.ipAllow === undefined && unmetRequirement(policy, ANONYMOUS_IDENTITY) === undefined;
}

/** AUTHZ_BYPASSED: ext_authz disabled where the policy covering the route's requests would refuse an anonymous caller. */
function checkAuthzBypass(site: RouteSite, probes: readonly Probe[], policies: ReturnType<typeof compilePolicies>, findings: Findings): void {
  const named = contextExtensions(site)['policy'];
  const skipped = new Map<string, Probe>();
  for (const probe of probes) {
    const normalized = normalizePath(probe.path);
    if (!normalized.ok) continue;
    const choice = selectPolicy(policies, probe.method, normalized.path, named);
    // A path refused for its trailing slash is one a lenient upstream serves as the path an exact policy protects.
    const label = policyLabel(choice);
    if (choice.kind === 'policy' && letsAnyoneIn(choice.policy)) continue;
    if (!skipped.has(label)) skipped.set(label, probe);
  }
  if (skipped.size === 0) return;
  const which = [...skipped].map(([label, probe]) => `${label} (e.g. ${probe.method} ${probe.path})`).join(', ');
  findings.add('AUTHZ_BYPASSED', `route '${site.routeName}': ext_authz is disabled here, but Portcullis would not let an anonymous caller in: ${which}; these requests reach the upstream without authentication`, site.where);
}

function policyLabel(choice: PolicyChoice): string {
  switch (choice.kind) {
    case 'policy': return `'${choice.policy.name}'`;
    case 'unknown': return `'${choice.name}' (unknown)`;
    case 'bad_path': return `400 bad_path (${choice.reason})`;
    case 'none': return 'default_policy deny';
  }
}

/** What a probe is given by Portcullis: a label for messages, and the policy or extproc route's name, if any. */
interface CaseChoice {
  readonly label: string;
  readonly name: string | undefined;
}

/**
 * CASE_INSENSITIVE_ROUTE: on a route Envoy matches ignoring case, the same request spelled in another case (which the
 * route carries to the same upstream, and with a prefix_rewrite rewrites to the very path it serves) must get the
 * policy or extproc route its own spelling gets. Portcullis matches case-sensitively unless the policy or route says
 * ignore_case, so `/API/orders` can fall through to a later, weaker one.
 */
function checkCaseVariants(
  site: RouteSite,
  probes: readonly Probe[],
  findings: Findings,
  how: { readonly what: string; readonly choose: (probe: Probe) => CaseChoice | undefined; readonly pin: string },
): void {
  const differences = new Map<string, { probe: Probe; variant: Probe; own: CaseChoice; other: CaseChoice }>();
  for (const probe of probes) {
    const own = how.choose(probe);
    if (own === undefined) continue;
    for (const path of caseVariants(probe.path)) {
      const variant = { path, method: probe.method };
      if (site.earlierMatches.some((earlier) => shadows(earlier, variant))) continue;
      const other = how.choose(variant);
      if (other === undefined || other.label === own.label) continue;
      const key = `${own.label}\u0001${other.label}`;
      if (!differences.has(key)) differences.set(key, { probe, variant, own, other });
    }
  }
  if (differences.size === 0) return;
  const all = [...differences.values()];
  const examples = all.slice(0, EXAMPLES).map((d) => `${d.variant.method} ${d.variant.path} takes ${d.other.label} where ${d.probe.method} ${d.probe.path} takes ${d.own.label}`);
  const names = [...new Set(all.map((d) => d.own.name).filter((n): n is string => n !== undefined))];
  const fold = names.length === 0 ? `give the ${how.what} for these paths` : `give ${how.what} ${names.map((n) => `'${n}'`).join(', ')}`;
  findings.add(
    'CASE_INSENSITIVE_ROUTE',
    `route '${site.routeName}' matches paths ignoring case (case_sensitive: false), but Portcullis chooses the ${how.what} case-sensitively: ${examples.join('; ')}${all.length > EXAMPLES ? '; …' : ''}; ${fold} match: {ignore_case: true} in portcullis.yaml, or ${how.pin}`,
    site.where,
  );
}

/**
 * Other spellings of a path in ASCII case (all upper, all lower, the first letter flipped), letters in `%XX` escapes
 * left alone. A few spellings stand for all: a case-sensitive match fails on any change inside its path.
 */
function caseVariants(path: string): string[] {
  const letters = (change: (c: string, nth: number) => string): string => {
    let nth = 0;
    return path.replace(/%[0-9A-Fa-f]{2}|[A-Za-z]/g, (c) => (c.length === 1 ? change(c, nth++) : c));
  };
  const flip = (c: string): string => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase());
  const variants = [letters((c) => c.toUpperCase()), letters((c) => c.toLowerCase()), letters((c, nth) => (nth === 0 ? flip(c) : c))];
  return [...new Set(variants)].filter((v) => v !== path);
}

/**
 * The connection manager's ext_authz or ext_proc filter. Envoy picks the extension by its typed_config @type, whatever
 * the filter's name (its name only keys the per-route configs), as routes.ts does for the ratelimit filter.
 */
/** A descriptor entry (routes.ts ShapeEntry.source) taken from the dynamic metadata ext_authz writes. */
const AUTHZ_METADATA_SOURCE = /^(dynamic_)?metadata envoy\.filters\.http\.ext_authz:/;

/** Rate limit actions that read ext_authz's dynamic metadata on a route where ext_authz has not run before them. */
function checkAuthzMetadataOrder(site: RouteSite, authzState: FilterState, findings: Findings): void {
  const authz = findFilter(site, EXT_AUTHZ_FILTER);
  const authzAt = authz === undefined || authzState !== 'active' ? -1 : site.httpFilters.indexOf(authz);
  for (const call of site.rateLimits) {
    const callAt = site.httpFilters.findIndex((f) => text(f['name'], '') === call.filter);
    if (authzAt !== -1 && authzAt < callAt) continue;
    const sources = [...new Set(call.shapes.flatMap((shape) => shape.entries).map((e) => e.source).filter((source) => AUTHZ_METADATA_SOURCE.test(source)))];
    if (sources.length === 0) continue;
    const why = authzAt === -1 ? 'ext_authz does not run on this route' : 'ext_authz runs after it in http_filters';
    findings.add('AUTHZ_METADATA_MISSING', `the ratelimit filter '${call.filter}' reads ext_authz's dynamic metadata (${sources.join(', ')}), but ${why}: Envoy never has the value, so the descriptor is never sent and its limit never applies`, site.where);
  }
}

function findFilter(site: RouteSite, name: typeof EXT_AUTHZ_FILTER | typeof EXT_PROC_FILTER): Json | undefined {
  const type = name === EXT_AUTHZ_FILTER ? EXT_AUTHZ_TYPE : EXT_PROC_TYPE;
  return site.httpFilters.find((f) => isFilter(f, name, type));
}

/** The key of a filter's per-route configs: its name in http_filters. */
function perRouteKey(site: RouteSite, name: typeof EXT_AUTHZ_FILTER | typeof EXT_PROC_FILTER): string {
  return text(findFilter(site, name)?.['name'], name);
}

/** Whether a filter runs on the route: in the connection manager, and not disabled for it (or enabled where off). */
export function filterState(site: RouteSite, name: typeof EXT_AUTHZ_FILTER | typeof EXT_PROC_FILTER): FilterState {
  const filter = findFilter(site, name);
  if (filter === undefined) return 'absent';
  return perRouteFilter(filter, site.perFilterConfigChain).active ? 'active' : 'disabled';
}

/** ExtAuthzPerRoute.check_settings.context_extensions, merged from the least to the most specific level. */
function contextExtensions(site: RouteSite): Record<string, string> {
  const merged: Record<string, string> = {};
  const key = perRouteKey(site, EXT_AUTHZ_FILTER);
  for (const level of [...site.perFilterConfigChain].reverse()) {
    const extensions = record(record(record(level[key])['check_settings'])['context_extensions']);
    for (const [key, value] of Object.entries(extensions)) {
      const extension = text(value, '');
      if (extension !== '' || value === '') merged[key] = extension;
    }
  }
  return merged;
}

/** The extproc route the Envoy route names: its ExtProcPerRoute overrides, else the filter's own gRPC metadata. */
function extprocRouteHint(site: RouteSite): string | undefined {
  const fromList = (entries: unknown): string | undefined => {
    const entry = list(entries).map(record).find((e) => e['key'] === EXTPROC_ROUTE_METADATA);
    return entry === undefined ? undefined : text(entry['value'], '');
  };
  const key = perRouteKey(site, EXT_PROC_FILTER);
  for (const level of site.perFilterConfigChain) {
    const hint = fromList(record(record(level[key])['overrides'])['grpc_initial_metadata']);
    if (hint !== undefined) return hint;
  }
  const filter = findFilter(site, EXT_PROC_FILTER);
  return fromList(record(record(record(filter?.['typed_config'])['grpc_service']))['initial_metadata']);
}

function pathMatchOf(match: Json): PathMatch | undefined {
  for (const kind of ['prefix', 'path', 'path_separated_prefix'] as const) {
    if (typeof match[kind] === 'string') return { kind, value: match[kind] as string, ignoreCase: match['case_sensitive'] === false };
  }
  return undefined;
}

/** ASCII letters lower-cased, as Envoy compares a case_sensitive: false route (absl's ASCII-only IgnoreCase). */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

function admits(match: PathMatch, path: string): boolean {
  const value = match.ignoreCase ? asciiLower(match.value) : match.value;
  const compared = match.ignoreCase ? asciiLower(path) : path;
  switch (match.kind) {
    case 'prefix': return compared.startsWith(value);
    case 'path': return compared === value;
    case 'path_separated_prefix': return compared === value || compared.startsWith(`${value}/`);
  }
}

/** The exact, not inverted `:method` a route match requires, if any. */
function methodOf(match: Json): string | undefined {
  for (const header of list(match['headers']).map(record)) {
    if (header['name'] !== ':method' || header['invert_match'] === true) continue;
    const exact = record(header['string_match'])['exact'] ?? header['exact_match'];
    if (typeof exact === 'string') return exact;
  }
  return undefined;
}

/** Whether an earlier route takes every request with this path and method (path and at most a :method matcher). */
function shadows(earlier: Json, probe: Probe): boolean {
  const conditions = Object.keys(earlier).filter((k) => !['prefix', 'path', 'path_separated_prefix', 'headers', 'case_sensitive'].includes(k));
  const headers = list(earlier['headers']).map(record);
  if (conditions.length > 0 || headers.some((h) => h['name'] !== ':method') || headers.length > 1) return false;
  const pathMatch = pathMatchOf(earlier);
  const method = methodOf(earlier);
  if (headers.length === 1 && method === undefined) return false;
  return pathMatch !== undefined && admits(pathMatch, probe.path) && (method === undefined || method === probe.method);
}

function probesFor(site: RouteSite, match: PathMatch, interesting: readonly string[]): Probe[] {
  const below = (p: string): string => (p.endsWith('/') ? `${p}${PROBE_SEGMENT}` : `${p}/${PROBE_SEGMENT}`);
  const candidates = new Set<string>([match.value]);
  if (match.kind !== 'path') candidates.add(below(match.value));
  if (match.kind === 'prefix' && !match.value.endsWith('/')) candidates.add(`${match.value}${PROBE_SEGMENT}`);
  for (const p of interesting) {
    candidates.add(p);
    candidates.add(below(p));
  }
  const method = methodOf(site.match);
  const methods = method === undefined ? PROBE_METHODS : [method];
  const probes: Probe[] = [];
  for (const path of candidates) {
    if (!admits(match, path)) continue;
    for (const m of methods) {
      const probe = { path, method: m };
      if (!site.earlierMatches.some((earlier) => shadows(earlier, probe))) probes.push(probe);
    }
  }
  return probes;
}

function describeExtprocMatch(route: ExtprocRoute): string {
  const where = route.match.path !== undefined ? `path ${route.match.path}` : route.match.pathPrefix !== undefined ? `path_prefix ${route.match.pathPrefix}` : 'every path';
  return route.match.methods === undefined ? where : `${where}, ${route.match.methods.join('/')}`;
}

/** Findings with one message collected once, with every route site that has it (a route is on several listeners). */
export class Findings {
  private readonly byKey = new Map<string, { code: FilterFindingCode; message: string; routes: string[] }>();

  add(code: FilterFindingCode, message: string, where: string | undefined): void {
    const key = `${code}\u0001${message}`;
    let finding = this.byKey.get(key);
    if (finding === undefined) this.byKey.set(key, (finding = { code, message, routes: [] }));
    if (where !== undefined && !finding.routes.includes(where)) finding.routes.push(where);
  }

  list(): FilterFinding[] {
    return [...this.byKey.values()];
  }
}

/**
 * ProcessingMode.response_header_mode as the JSON mapping reads it: SKIP by name or number (2); anything else, unset
 * included, is DEFAULT or SEND, which for response headers both mean SEND.
 */
function skipsResponseHeaders(processingMode: unknown): boolean {
  const mode = record(processingMode)['response_header_mode'];
  return mode === 'SKIP' || mode === 2;
}

/**
 * ExtProcPerRoute.overrides.processing_mode on a route: Envoy 1.40 takes the most specific level's whole, not field by
 * field (mergeProcessingMode), so a route's override without response_header_mode is SEND there. undefined: none.
 */
function routeProcessingMode(site: RouteSite): Json | undefined {
  const key = perRouteKey(site, EXT_PROC_FILTER);
  for (const level of site.perFilterConfigChain) {
    const perRoute = record(level[key]);
    const inner = perRoute['config'] === undefined ? perRoute : record(perRoute['config']);
    const mode = record(inner['overrides'])['processing_mode'];
    if (mode !== undefined) return record(mode);
  }
  return undefined;
}

/**
 * Why Envoy 1.40 ignores the filter's mode_override answers (ext_proc filter.cc: allow_mode_override, no
 * send_body_without_waiting_for_header_response, no FULL_DUPLEX_STREAMED body mode, and the mode listed in
 * allowed_override_modes when that list is set), or undefined when it takes them.
 */
function modeOverrideIgnored(typedConfig: Json): string | undefined {
  if (typedConfig['allow_mode_override'] !== true) return 'allow_mode_override is not true';
  if (typedConfig['send_body_without_waiting_for_header_response'] === true) return 'send_body_without_waiting_for_header_response is true';
  const mode = record(typedConfig['processing_mode']);
  const duplex = (['request_body_mode', 'response_body_mode'] as const).find((k) => mode[k] === 'FULL_DUPLEX_STREAMED' || mode[k] === 4);
  if (duplex !== undefined) return `processing_mode.${duplex} is FULL_DUPLEX_STREAMED`;
  if (list(typedConfig['allowed_override_modes']).length > 0) return 'allowed_override_modes is set, and Envoy then takes only an override equal to one listed';
  return undefined;
}

/**
 * EXTPROC_MODE_OVERRIDE_IGNORED: Portcullis asks for a request body (validation) or a response body (the cache) with
 * mode_override on the request headers' answer; a filter that ignores it sends neither, and the request goes on as if
 * it had been validated.
 */
function checkModeOverride(site: RouteSite, filter: Json, findings: Findings): void {
  const why = modeOverrideIgnored(record(filter['typed_config']));
  if (why === undefined) return;
  findings.add(
    'EXTPROC_MODE_OVERRIDE_IGNORED',
    `the ext_proc filter '${text(filter['name'], EXT_PROC_FILTER)}' ignores Portcullis' mode_override (${why}): validation never receives a request body, so an invalid one reaches the upstream unvalidated, the response cache never stores a response, and with response_header_mode: SKIP no response header rule runs; set allow_mode_override: true and leave allowed_override_modes, send_body_without_waiting_for_header_response and FULL_DUPLEX_STREAMED out (docs/extproc.md)`,
    site.where.split(' / ')[0],
  );
}

/**
 * The ext_proc filter's own modes: EXTPROC_MODE_OVERRIDE_IGNORED (above) where it runs, and
 * EXTPROC_RESPONSE_PHASE_ALWAYS: an ext_proc filter, or a route's override of its processing_mode, that does not say
 * response_header_mode: SKIP. Portcullis asks for the response phase per request (mode_override) when it has work
 * there, so SKIP loses nothing; with SEND, a 400 Envoy makes itself for a request its codec refuses (no request phase,
 * no route) was held for a call to Portcullis while Envoy closed the connection, and the client got no answer.
 */
export function checkExtprocModes(sites: readonly RouteSite[]): FilterFinding[] {
  const findings = new Findings();
  for (const site of sites) {
    const filter = findFilter(site, EXT_PROC_FILTER);
    if (filter === undefined) continue;
    const name = text(filter['name'], EXT_PROC_FILTER);
    const active = perRouteFilter(filter, site.perFilterConfigChain).active;
    // In observability_mode Envoy waits for nothing and applies nothing Portcullis answers: neither check applies.
    if (record(filter['typed_config'])['observability_mode'] === true) continue;
    if (active) checkModeOverride(site, filter, findings);
    const override = active ? routeProcessingMode(site) : undefined;
    // The codec's 400 has no route: the filter's own mode is the one it meets, unless the filter is off by default.
    const filterModeRuns = filter['disabled'] !== true || (active && override === undefined);
    if (filterModeRuns && !skipsResponseHeaders(record(filter['typed_config'])['processing_mode'])) {
      findings.add(
        'EXTPROC_RESPONSE_PHASE_ALWAYS',
        `the ext_proc filter '${name}' does not set processing_mode.response_header_mode: SKIP (unset is SEND): Envoy's own replies, which had no request phase, wait for a call to Portcullis, and a 400 for a request Envoy's codec refuses gets no answer at all; set response_header_mode: SKIP, with allow_mode_override: true (Portcullis asks for the response phase of each request that needs it, docs/extproc.md)`,
        site.where.split(' / ')[0],
      );
    }
    if (override !== undefined && !skipsResponseHeaders(override)) {
      findings.add(
        'EXTPROC_RESPONSE_PHASE_ALWAYS',
        `route '${site.routeName}' overrides processing_mode of the ext_proc filter '${name}' (ExtProcPerRoute overrides.processing_mode, which replaces the filter's whole) without response_header_mode: SKIP, so it is SEND on this route: Envoy's own replies there (401, 403, 429 …) wait for a call to Portcullis; add response_header_mode: SKIP to the override`,
        site.where,
      );
    }
  }
  return findings.list();
}

export const GRACEFUL_CLOSE_FLAG = 'envoy.reloadable_features.ext_proc_graceful_grpc_close';

/**
 * EXTPROC_STREAM_RESETS when an ext_proc filter is configured and no static runtime layer turns graceful close on.
 * A bootstrap with other runtime layers (disk, admin, RTDS) may set it there: nothing is reported then.
 */
export function checkExtprocStreamClose(bootstrap: unknown, sites: readonly RouteSite[]): FilterFinding[] {
  const withExtproc = sites.filter((site) => filterState(site, EXT_PROC_FILTER) !== 'absent');
  if (withExtproc.length === 0) return [];
  const layers = list(record(record(bootstrap)['layered_runtime'])['layers']).map(record);
  if (layers.some((layer) => layer['static_layer'] === undefined)) return [];
  const flagOn = layers.some((layer) => {
    const flat = flatten(record(layer['static_layer']));
    return flat.get(GRACEFUL_CLOSE_FLAG) === true || flat.get(GRACEFUL_CLOSE_FLAG) === 'true';
  });
  if (flagOn) return [];
  return [{
    code: 'EXTPROC_STREAM_RESETS',
    message: `ext_proc without the runtime flag ${GRACEFUL_CLOSE_FLAG}: true (layered_runtime static_layer): Envoy resets every ext_proc stream and Portcullis' HTTP/2 stack refuses new streams past its reset budget, from about 35 requests/s (docs/extproc.md)`,
    routes: [...new Set(withExtproc.map((site) => site.where.split(' / ')[0]!))],
  }];
}

/**
 * A static layer's keys, nested (`envoy: {reloadable_features: …}`) or dotted, as dotted names. A YAML alias can make
 * the layer contain itself (Envoy would refuse it); a mapping already on the way down is not entered again.
 */
function flatten(object: Json, prefix = '', out = new Map<string, unknown>(), enclosing = new Set<object>()): Map<string, unknown> {
  enclosing.add(object);
  for (const [key, value] of Object.entries(object)) {
    const name = prefix === '' ? key : `${prefix}.${key}`;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      if (!enclosing.has(value)) flatten(value as Json, name, out, enclosing);
    } else out.set(name, value);
  }
  enclosing.delete(object);
  return out;
}
