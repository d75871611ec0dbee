// `portcullis check-envoy`: where the dynamic metadata a rate limit action reads comes from. Pure: route sites in,
// findings out. Runs with or without a portcullis.yaml (what Portcullis' ext_authz writes is fixed in code).
//
//   UNKNOWN_METADATA_NAMESPACE   an action reads a namespace no HTTP filter before the ratelimit filter writes (a
//                                misspelt `envoy.filters.http.ext_authz`, the ext_authz filter's own name …)
//   UNKNOWN_AUTHZ_METADATA_KEY   an action reads ext_authz's namespace at a path Portcullis never sets to a string
//
// Either way Envoy never finds a value: with a default_value it always sends that (one bucket shared by every
// caller), with skip_if_absent it always leaves the entry out, else it never sends the descriptor and the limit
// silently never applies. Envoy 1.40 writes ext_authz's metadata under `envoy.filters.http.ext_authz` whatever the
// filter is named, and a metadata action takes only a non-empty string (ext_authz's own number ext_authz_duration
// reads as absent): both seen on a real Envoy sending descriptors to a fake rate limit service.
//
// What a filter writes is known for the filters below; a filter this check does not know (lua, wasm, golang, a
// custom extension …) may write any namespace, so reads after it are not judged. Namespace readers of ext_authz's
// namespace where ext_authz does not run first are AUTHZ_METADATA_MISSING's (filters.ts).

import { METADATA_KEYS } from '../authz/decide.js';
import { EXT_AUTHZ_FILTER, Findings, type FilterFinding } from './filters.js';
import { list, perRouteFilter, record, text, type Json, type MetadataRead, type RouteSite } from './routes.js';

/** Keys Portcullis' ext_authz sets, every one a string (src/authz/decide.ts buildGrant). */
const AUTHZ_STRING_KEYS: ReadonlySet<string> = new Set(Object.values(METADATA_KEYS));

/** Filters that write no dynamic metadata a later filter could read. */
const SILENT = new Set([
  'envoy.filters.http.router', 'envoy.filters.http.cors', 'envoy.filters.http.buffer', 'envoy.filters.http.fault',
  'envoy.filters.http.health_check', 'envoy.filters.http.compressor', 'envoy.filters.http.decompressor',
  'envoy.filters.http.grpc_web', 'envoy.filters.http.csrf', 'envoy.filters.http.local_ratelimit',
  'envoy.filters.http.header_mutation', 'envoy.filters.http.grpc_json_transcoder',
]);

/** The extension a filter is: from its typed_config @type (`…/envoy.extensions.filters.http.X.v3.Y` → envoy.filters.http.X), else its name. */
export function extensionOf(filter: Json): string {
  const type = record(filter['typed_config'])['@type'];
  const fromType = typeof type === 'string' ? /\/envoy\.extensions\.filters\.http\.([a-z0-9_]+)\.v\d+/.exec(type)?.[1] : undefined;
  return fromType !== undefined ? `envoy.filters.http.${fromType}` : text(filter['name'], '');
}

/** The namespaces a filter writes on a route, or 'any' when this check cannot know. */
export function namespacesWritten(filter: Json, perRoute: Json): readonly string[] | 'any' {
  const extension = extensionOf(filter);
  const config = record(filter['typed_config']);
  switch (extension) {
    case EXT_AUTHZ_FILTER:
    case 'envoy.filters.http.jwt_authn':
    case 'envoy.filters.http.ratelimit':
      return [extension];
    case 'envoy.filters.http.rbac':
      return [extension, 'envoy.common'];
    case 'envoy.filters.http.ext_proc':
      // Only the namespaces it is told to accept from the processor.
      return [config, perRoute].flatMap((c) => list(record(record(c['metadata_options'])['receiving_namespaces'])['untyped']).map((n) => text(n, '')));
    case 'envoy.filters.http.header_to_metadata':
    case 'envoy.filters.http.json_to_metadata':
    case 'envoy.filters.http.set_metadata':
      // Each rule names its namespace (the filter's name by default), in the filter's config or a per-route one.
      return [extension, ...metadataNamespaces(config), ...metadataNamespaces(perRoute)];
    default:
      return SILENT.has(extension) ? [] : 'any';
  }
}

function metadataNamespaces(value: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 16 || typeof value !== 'object' || value === null) return out;
  for (const [key, inner] of Object.entries(value)) {
    if (key === 'metadata_namespace' && typeof inner === 'string') out.push(inner);
    else metadataNamespaces(inner, out, depth + 1);
  }
  return out;
}

export function checkMetadataReads(sites: readonly RouteSite[]): FilterFinding[] {
  const findings = new Findings();
  for (const site of sites) {
    for (const call of site.rateLimits) {
      const callAt = site.httpFilters.findIndex((f) => text(f['name'], '') === call.filter);
      const written = new Set<string>();
      let opaque = false;
      for (const filter of site.httpFilters.slice(0, Math.max(callAt, 0))) {
        const perRoute = perRouteFilter(filter, site.perFilterConfigChain);
        if (!perRoute.active) continue;
        const namespaces = namespacesWritten(filter, perRoute.config);
        if (namespaces === 'any') opaque = true;
        else for (const n of namespaces) written.add(n);
      }
      for (const read of call.metadataReads) {
        if (read.namespace === EXT_AUTHZ_FILTER) {
          const problem = authzKeyProblem(read.path);
          if (problem !== undefined) {
            findings.add('UNKNOWN_AUTHZ_METADATA_KEY', `the ratelimit filter '${call.filter}' reads ${read.source}, ${problem}: ${consequence(read)}`, site.where);
          }
          continue;
        }
        if (opaque || written.has(read.namespace)) continue;
        // One message for every route with the problem: what each route's filters do write would split it.
        findings.add('UNKNOWN_METADATA_NAMESPACE', `the ratelimit filter '${call.filter}' reads ${read.source}, a namespace no filter running before it writes (Portcullis' ext_authz writes ${EXT_AUTHZ_FILTER}, whatever the filter's name): ${consequence(read)}`, site.where);
      }
    }
  }
  return findings.list();
}

/** Why Portcullis never sets a string at this path of its namespace, or undefined when it can. */
function authzKeyProblem(path: readonly string[]): string | undefined {
  const [first] = path;
  const known = `it sets ${[...AUTHZ_STRING_KEYS].join(', ')}`;
  if (first === 'ext_authz_duration') return 'which Envoy sets as a number, and a rate limit action takes only a string';
  if (first === undefined || !AUTHZ_STRING_KEYS.has(first)) return `a key Portcullis' ext_authz never sets (${known})`;
  if (path.length > 1) return `a path below ${first}, which Portcullis sets as a string (${known}, nothing nested)`;
  return undefined;
}

function consequence(read: MetadataRead): string {
  if (read.defaultValue !== '') return `Envoy always sends its default_value '${read.defaultValue}', one bucket shared by every request`;
  if (read.skipIfAbsent) return 'Envoy always leaves that entry out (skip_if_absent)';
  return 'Envoy never sends that descriptor, so its limit never applies';
}
