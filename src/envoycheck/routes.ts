// Reads what an Envoy bootstrap asks of Portcullis, route by route: which rate limit descriptors each route can
// send to which domain. Pure: takes the parsed bootstrap (YAML or JSON, as a plain object).
//
// Envoy's rules, as implemented in envoy.filters.http.ratelimit (1.40), for each rate limit filter in the chain:
//   - a filter disabled for the route (FilterConfig disabled, or disabled in the chain and not configured for the
//     route) sends nothing;
//   - a route answered by Envoy itself (direct_response, redirect) has no route entry: no descriptor is sent;
//   - the route's RateLimitPerRoute is the most specific typed_per_filter_config for the filter: the route's, else
//     its virtual host's, else its route configuration's;
//   - its domain, when set, replaces the filter's domain;
//   - its rate_limits, when set (not empty: protobuf has no empty-but-set list), replace everything else;
//   - else the filter's own rate_limits, when set, apply to every route (route and vhost lists are ignored);
//   - else the route's route.rate_limits plus, by RateLimitPerRoute.vh_rate_limits, the virtual host's:
//     OVERRIDE (default) only when the route has none, INCLUDE always, IGNORE never (route.include_vh_rate_limits
//     makes it INCLUDE); of these only the policies
//     whose `stage` (default 0) is the filter's `stage` apply;
//   - an action with skip_if_absent that finds nothing adds no entry, and the descriptor is still sent;
//   - a weighted cluster's typed_per_filter_config is more specific than its route's (a real Envoy 1.40 disabled
//     ext_authz and took RateLimitPerRoute.domain from it), so a route whose weighted clusters configure filters is
//     one site per such cluster (and one for the clusters that do not);
//   - destination_cluster sends the cluster's name, known from `cluster` or `weighted_clusters`; a metadata action
//     with `source: ROUTE_ENTRY` reads the route's own `metadata`, known too. Metadata values are strings only: a
//     number or a mapping at the path counts as absent, as does an empty string.
// The ext_authz and ext_proc checks (filters.ts) read the same RouteSite list: its match, the HCM's filters and the
// typed_per_filter_config of the weighted cluster, the route, its virtual host and its route configuration.

export type Json = Record<string, unknown>;

/** One entry of a descriptor as Envoy builds it: a fixed value, or any value taken from the request. */
export interface ShapeEntry {
  readonly key: string;
  /** undefined: the value comes from the request (header, address, metadata …). */
  readonly value: string | undefined;
  /** Where the value comes from, for messages: `request_headers x-user-id`, `generic_key` … */
  readonly source: string;
}

export interface DescriptorShape {
  readonly entries: readonly ShapeEntry[];
}

/** A rate limit action reading the request's dynamic metadata (`metadata` with source DYNAMIC, `dynamic_metadata`). */
export interface MetadataRead {
  /** metadata_key.key: the filter namespace. */
  readonly namespace: string;
  /** metadata_key.path, as keys. */
  readonly path: readonly string[];
  /** default_value; '' when unset (Envoy treats both alike). */
  readonly defaultValue: string;
  readonly skipIfAbsent: boolean;
  /** As ShapeEntry.source. */
  readonly source: string;
}

/** What one rate limit filter asks for on a route. */
export interface RateLimitCall {
  /** The filter's name in http_filters. */
  readonly filter: string;
  /** Where the descriptors go: RateLimitPerRoute.domain, else the filter's. */
  readonly domain: string;
  /** Descriptor shapes the filter can send on this route (empty: none). */
  readonly shapes: readonly DescriptorShape[];
  /** The dynamic metadata its actions read (metadata.ts checks that a filter before it writes there). */
  readonly metadataReads: readonly MetadataRead[];
}

export interface RouteSite {
  /** `listener http / vhost gateway / route users` (`… / weighted cluster c1` for a cluster with its own filter configs). */
  readonly where: string;
  readonly routeName: string;
  /** One entry per rate limit filter running on the route, in chain order (empty: none, or all disabled). */
  readonly rateLimits: readonly RateLimitCall[];
  /** Actions that cannot be analysed (an `extension` action …), as messages. */
  readonly unsupported: readonly string[];
  /** The route's typed_per_filter_config, for checks of other filters. */
  readonly perFilterConfig: Json;
  /** typed_per_filter_config of the weighted cluster (if the site is one), the route, its virtual host and its route configuration: most specific first. */
  readonly perFilterConfigChain: readonly Json[];
  /** Whether Envoy answers this route itself. */
  readonly direct: boolean;
  /** The route's `match`. */
  readonly match: Json;
  /** The `match` of every route before this one in its virtual host (Envoy takes the first that matches). */
  readonly earlierMatches: readonly Json[];
  /** The connection manager's http_filters, in order. */
  readonly httpFilters: readonly Json[];
  /** The connection manager's always_set_request_id_in_response: Envoy copies x-request-id onto every response. */
  readonly requestIdInResponse: boolean;
}

const HCM_NAME = 'envoy.filters.network.http_connection_manager';
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const RATELIMIT = 'envoy.filters.http.ratelimit';
const RATELIMIT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';

/**
 * Whether a filter is the extension `name`/`type`: Envoy picks the extension by its typed_config's @type, and the
 * name is only a label (per-route configs are keyed by it). Without a @type, the well-known name.
 */
export function isFilter(filter: Json, name: string, type: string): boolean {
  const configType = record(filter['typed_config'])['@type'];
  return typeof configType === 'string' ? configType === type : filter['name'] === name;
}

/**
 * Why a parsed file is not an Envoy bootstrap this check can read, or undefined when it is one: a mapping with
 * static_resources.listeners or dynamic_resources. Anything else (an empty file, a descriptor file given by mistake)
 * would otherwise pass as a bootstrap without routes, with no finding.
 */
export function notABootstrap(parsed: unknown): string | undefined {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return parsed === null || parsed === undefined ? 'the file is empty' : 'it is not a YAML or JSON mapping';
  }
  const bootstrap = parsed as Json;
  if (Array.isArray(record(bootstrap['static_resources'])['listeners']) || typeof bootstrap['dynamic_resources'] === 'object') return undefined;
  return 'it has neither static_resources.listeners nor dynamic_resources, so it is not an Envoy bootstrap';
}

/** Every HTTP connection manager of the static listeners, with its listener's name: filter chains and the default one. */
function connectionManagers(bootstrap: unknown): { listenerName: string; hcm: Json }[] {
  const found: { listenerName: string; hcm: Json }[] = [];
  const listeners = list(record(record(bootstrap)['static_resources'])['listeners']);
  for (const listener of listeners.map(record)) {
    const chains = [...list(listener['filter_chains']), ...(listener['default_filter_chain'] === undefined ? [] : [listener['default_filter_chain']])];
    for (const chain of chains.map(record)) {
      for (const filter of list(chain['filters']).map(record)) {
        if (isFilter(filter, HCM_NAME, HCM_TYPE)) found.push({ listenerName: text(listener['name'], '?'), hcm: record(filter['typed_config']) });
      }
    }
  }
  return found;
}

export function routeSites(bootstrap: unknown): RouteSite[] {
  return connectionManagers(bootstrap).flatMap(({ listenerName, hcm }) => hcmSites(listenerName, hcm));
}

/**
 * What the bootstrap holds that this check cannot read, in words: listeners from LDS, and connection managers whose
 * routes come from RDS or scoped routes. Their rate limits, policies and ext_proc routes go unchecked, so each is a
 * finding: a clean result must mean everything was read.
 */
export function unreadRouteSources(bootstrap: unknown): string[] {
  const unread: string[] = [];
  const dynamic = record(record(bootstrap)['dynamic_resources']);
  if (dynamic['lds_config'] !== undefined || dynamic['lds_resources_locator'] !== undefined) {
    unread.push('listeners come from LDS (dynamic_resources): only static_resources.listeners are read, so those listeners are not checked');
  }
  for (const { listenerName, hcm } of connectionManagers(bootstrap)) {
    const source = hcm['rds'] !== undefined ? `RDS (route_config_name ${text(record(hcm['rds'])['route_config_name'], '?')})` : hcm['scoped_routes'] !== undefined ? 'scoped routes' : undefined;
    if (source !== undefined) unread.push(`listener ${listenerName}: the connection manager takes its routes from ${source}, which this check cannot read: its rate limits, ext_authz policies and ext_proc routes are not checked`);
  }
  return unread;
}

function hcmSites(listenerName: string, hcm: Json): RouteSite[] {
  const httpFilters = list(hcm['http_filters']).map(record);
  const rateLimitFilters = httpFilters.filter(isRateLimitFilter);
  const sites: RouteSite[] = [];
  const routeConfig = record(hcm['route_config']);
  for (const vhost of list(routeConfig['virtual_hosts']).map(record)) {
    const vhostRoutes = list(vhost['routes']).map(record);
    for (const [index, route] of vhostRoutes.entries()) {
      const routeName = text(route['name'], `#${index}`);
      const perFilterConfig = record(route['typed_per_filter_config'] ?? {});
      const action = route['route'] === undefined ? undefined : record(route['route']);
      for (const group of clusterGroups(action)) {
        const perFilterConfigChain = [
          ...(group.perFilterConfig === undefined ? [] : [group.perFilterConfig]),
          perFilterConfig, record(vhost['typed_per_filter_config'] ?? {}), record(routeConfig['typed_per_filter_config'] ?? {}),
        ];
        const unsupported: string[] = [];
        const context: ActionContext = { routeMetadata: record(route['metadata']), clusters: group.clusters };
        // Envoy takes the most specific RateLimitPerRoute whole (weighted cluster, route, virtual host, route
        // configuration): no field is merged from a less specific level. A disabled filter sends nothing: neither its
        // domain nor its descriptors are judged.
        const rateLimits = rateLimitFilters
          .map((filter) => ({ filter, perRoute: perRouteFilter(filter, perFilterConfigChain) }))
          .filter(({ perRoute }) => perRoute.active)
          .map(({ filter, perRoute }) => rateLimitCall(filter, perRoute.config, vhost, action, context, unsupported));
        sites.push({
          where: `listener ${listenerName} / vhost ${text(vhost['name'], '?')} / route ${routeName}${group.where}`,
          routeName, rateLimits, unsupported, perFilterConfig, direct: action === undefined, perFilterConfigChain,
          match: record(route['match']),
          earlierMatches: vhostRoutes.slice(0, index).map((r) => record(r['match'])),
          httpFilters,
          requestIdInResponse: hcm['always_set_request_id_in_response'] === true,
        });
      }
    }
  }
  return sites;
}

interface ClusterGroup {
  /** Appended to the site's `where`. */
  readonly where: string;
  /** The weighted cluster's typed_per_filter_config; undefined: the route's apply. */
  readonly perFilterConfig: Json | undefined;
  /** The cluster names destination_cluster can send; undefined: taken from the request (cluster_header …). */
  readonly clusters: readonly string[] | undefined;
}

/**
 * The route split by weighted cluster where a cluster has filter configs of its own (each its own site); clusters
 * without any share the route's configs and one site.
 */
function clusterGroups(action: Json | undefined): ClusterGroup[] {
  if (action === undefined) return [{ where: '', perFilterConfig: undefined, clusters: undefined }];
  if (typeof action['cluster'] === 'string') return [{ where: '', perFilterConfig: undefined, clusters: [action['cluster']] }];
  const weighted = list(record(action['weighted_clusters'])['clusters']).map(record);
  if (weighted.length === 0) return [{ where: '', perFilterConfig: undefined, clusters: undefined }];
  const own = weighted.filter((c) => Object.keys(record(c['typed_per_filter_config'])).length > 0);
  const shared = weighted.filter((c) => !own.includes(c));
  return [
    ...(shared.length > 0 ? [{ where: '', perFilterConfig: undefined, clusters: shared.map((c) => text(c['name'], '')) }] : []),
    ...own.map((c) => ({ where: ` / weighted cluster ${text(c['name'], '?')}`, perFilterConfig: record(c['typed_per_filter_config']), clusters: [text(c['name'], '')] })),
  ];
}

/**
 * A filter's most specific typed_per_filter_config for a route (unwrapped from envoy.config.route.v3.FilterConfig),
 * and whether the filter runs there: not when that config disables it, nor when the chain disables it and no level
 * configures it for the route.
 */
export function perRouteFilter(filter: Json, perFilterConfigChain: readonly Json[]): { active: boolean; config: Json } {
  const name = text(filter['name'], '');
  const perRoute = perFilterConfigChain.map((c) => c[name]).find((c) => c !== undefined);
  if (perRoute === undefined) return { active: filter['disabled'] !== true, config: {} };
  const config = record(perRoute);
  // FilterConfig wraps the filter's own per-route config in `config` and may disable the filter itself.
  const inner = config['config'] === undefined ? config : record(config['config']);
  return { active: config['disabled'] !== true && inner['disabled'] !== true, config: inner };
}

function isRateLimitFilter(filter: Json): boolean {
  return isFilter(filter, RATELIMIT, RATELIMIT_TYPE);
}

/** What one rate limit filter sends for a route (`action` undefined: Envoy answers the route itself). */
function rateLimitCall(filter: Json, perRoute: Json, vhost: Json, action: Json | undefined, context: ActionContext, unsupported: string[]): RateLimitCall {
  const filterConfig = record(filter['typed_config']);
  const filterName = text(filter['name'], '');
  const stage = integer(filterConfig['stage']);
  // RateLimitPerRoute.domain replaces the filter's for this route; empty is unset.
  const domain = text(perRoute['domain'], '') || text(filterConfig['domain'], '');
  let policies: unknown[] = [];
  if (action !== undefined) {
    const perRouteLimits = optionalList(perRoute['rate_limits']);
    const filterLimits = optionalList(filterConfig['rate_limits']);
    if (perRouteLimits !== undefined) policies = perRouteLimits;
    else if (filterLimits !== undefined) policies = filterLimits;
    else {
      const routeLimits = optionalList(action['rate_limits']) ?? [];
      const vhostLimits = optionalList(vhost['rate_limits']) ?? [];
      // The route's include_vh_rate_limits forces INCLUDE, whatever RateLimitPerRoute says.
      const mode = action['include_vh_rate_limits'] === true ? 'INCLUDE' : vhRateLimits(perRoute['vh_rate_limits']);
      // OVERRIDE looks at the route's policies of every stage, not only this filter's.
      const includeVhost = mode === 'INCLUDE' || (mode === 'OVERRIDE' && routeLimits.length === 0);
      // Route and virtual host policies go to the filter of their stage (Envoy refuses `stage` in the lists above).
      policies = [...routeLimits, ...(includeVhost ? vhostLimits : [])].filter((p) => integer(record(p)['stage']) === stage);
    }
  }
  const metadataReads: MetadataRead[] = [];
  const shapes = policies.flatMap((policy) => policyShapes(record(policy), context, metadataReads, unsupported));
  return { filter: filterName, domain, shapes, metadataReads };
}

/** RateLimitPerRoute.vh_rate_limits by name or, as the JSON mapping allows, by number (0, 1, 2). */
function vhRateLimits(value: unknown): 'OVERRIDE' | 'INCLUDE' | 'IGNORE' {
  const mode = typeof value === 'number' ? ['OVERRIDE', 'INCLUDE', 'IGNORE'][value] : value;
  return mode === 'INCLUDE' || mode === 'IGNORE' ? mode : 'OVERRIDE';
}

/** A uint32 field as the JSON mapping reads it (a number or a decimal string); 0 (the default) otherwise. */
function integer(value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  return 0;
}

/** What an action's value can be known from besides the request. */
interface ActionContext {
  /** The route's `metadata` (what `source: ROUTE_ENTRY` reads). */
  readonly routeMetadata: Json;
  /** What destination_cluster sends; undefined: a name from the request. */
  readonly clusters: readonly string[] | undefined;
}

/**
 * The descriptors one rate limit policy can produce, or none if they cannot be known. Each action gives the entries
 * it can add: one (any request value, or a fixed one), one per known value, `null` when Envoy leaves the entry out and
 * still calls (skip_if_absent with nothing found), or none when Envoy then sends no descriptor at all.
 */
function policyShapes(policy: Json, context: ActionContext, metadataReads: MetadataRead[], unsupported: string[]): DescriptorShape[] {
  let shapes: ShapeEntry[][] = [[]];
  for (const action of list(policy['actions']).map(record)) {
    const alternatives = actionEntries(action, context, metadataReads);
    if (alternatives === undefined) {
      unsupported.push(`rate limit action ${Object.keys(action).join(', ')} cannot be analysed`);
      return [];
    }
    shapes = alternatives.flatMap((entry) => shapes.map((entries) => (entry === null ? entries : [...entries, entry])));
  }
  return shapes.filter((entries) => entries.length > 0).map((entries) => ({ entries }));
}

/** When the request lacks the value: a non-empty default_value stands in; else skip_if_absent drops the entry; else nothing is sent. */
function whenAbsent(key: string, body: Json, source: string): (ShapeEntry | null)[] {
  const defaultValue = text(body['default_value'], '');
  if (defaultValue !== '') return [{ key, value: defaultValue, source: `${source} (default_value)` }];
  return body['skip_if_absent'] === true ? [null] : [];
}

function actionEntries(action: Json, context: ActionContext, metadataReads: MetadataRead[]): (ShapeEntry | null)[] | undefined {
  const [kind] = Object.keys(action);
  if (kind === undefined) return undefined;
  const body = record(action[kind] ?? {});
  const key = (fallback: string): string => text(body['descriptor_key'], fallback);
  // request_headers and query_parameters: a request without the value skips the entry (skip_if_absent) or the descriptor.
  const fromRequest = (entry: ShapeEntry): (ShapeEntry | null)[] => (body['skip_if_absent'] === true ? [entry, null] : [entry]);
  switch (kind) {
    case 'source_cluster': return [{ key: 'source_cluster', value: undefined, source: kind }];
    case 'destination_cluster':
      return context.clusters === undefined
        ? [{ key: 'destination_cluster', value: undefined, source: kind }]
        : context.clusters.map((cluster) => ({ key: 'destination_cluster', value: cluster, source: kind }));
    case 'remote_address': return [{ key: 'remote_address', value: undefined, source: kind }];
    case 'masked_remote_address': return [{ key: 'masked_remote_address', value: undefined, source: kind }];
    case 'request_headers': return fromRequest({ key: key(''), value: undefined, source: `request_headers ${text(body['header_name'], '?')}` });
    case 'query_parameters': return fromRequest({ key: key(''), value: undefined, source: `query_parameters ${text(body['query_parameter_name'], '?')}` });
    case 'metadata':
    case 'dynamic_metadata': {
      const metadataKey = record(body['metadata_key'] ?? {});
      const namespace = text(metadataKey['key'], '?');
      const path = list(metadataKey['path'] ?? []).map((p) => text(record(p)['key'], '?'));
      // dynamic_metadata (deprecated) has no source and no skip_if_absent: it always reads the request's.
      const routeEntry = kind === 'metadata' && (body['source'] === 'ROUTE_ENTRY' || body['source'] === 1);
      const source = `${routeEntry ? 'route metadata' : kind} ${namespace}:${path.join('.')}`;
      const descriptorKey = key('');
      const absent = whenAbsent(descriptorKey, kind === 'metadata' ? body : { default_value: body['default_value'] }, source);
      if (routeEntry) {
        const value = metadataString(record(record(context.routeMetadata['filter_metadata'])[namespace]), path);
        return value === undefined ? absent : [{ key: descriptorKey, value, source }];
      }
      metadataReads.push({ namespace, path, defaultValue: text(body['default_value'], ''), skipIfAbsent: kind === 'metadata' && body['skip_if_absent'] === true, source });
      const fromRequestValue: ShapeEntry = { key: descriptorKey, value: undefined, source };
      // The default (or the skip) only adds a shape when it differs from "any value".
      return [fromRequestValue, ...absent.filter((entry) => entry === null)];
    }
    case 'generic_key': return [{ key: key('generic_key'), value: text(body['descriptor_value'], ''), source: kind }];
    case 'header_value_match': return [{ key: key('header_match'), value: text(body['descriptor_value'], ''), source: kind }];
    case 'query_parameter_value_match': return [{ key: key('query_match'), value: text(body['descriptor_value'], ''), source: kind }];
    default: return undefined;
  }
}

/** The non-empty string at `path` in a metadata Struct (as Envoy's Metadata::metadataValue(...).string_value()). */
function metadataString(struct: Json, path: readonly string[]): string | undefined {
  if (path.length === 0) return undefined;
  let value: unknown = struct;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Json)[key];
  }
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * A config value where Envoy expects a string. The bootstrap is whatever YAML parsed to: a mapping there is an object
 * whose own `toString` key makes String() and template literals throw. Scalars read as Envoy's JSON mapping would
 * coerce them; anything else counts as absent, so an odd bootstrap gets the check's findings, not a crash.
 */
export function text(value: unknown, fallback: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return value.toString();
  return fallback;
}

export function record(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A repeated field that precedence asks "set?" of: in protobuf an empty list is not set. */
function optionalList(value: unknown): unknown[] | undefined {
  return Array.isArray(value) && value.length > 0 ? value : undefined;
}
