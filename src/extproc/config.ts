// The `extproc:` section of portcullis.yaml: schema, and the compile step that turns it into the frozen structure the
// stream processor reads (templates parsed, JSON Schemas compiled with ajv, statuses parsed). Everything that can be
// wrong with it is reported at load time with file, line and path, like the rest of the config.

import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { IssueCollector } from '../config/errors.js';
import { joinPath } from '../config/errors.js';
import { parseJson } from '../config/json-text.js';
import { boolean, list, number, object, oneOf, secret, string, type Field } from '../config/schema.js';
import { writtenText, type YamlValue } from '../config/yaml.js';
import { foldPathCase, ignoreCaseProblem, matchPathProblem, normalizedMatchPath } from '../shared/normalize-path.js';
import { compileTemplate, type Template } from './templates.js';

// ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
const METHODS: readonly Method[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export interface HeaderRules {
  /** Overwrite (all values of) the header. */
  readonly set: readonly (readonly [string, Template])[];
  /** Add one more value. */
  readonly append: readonly (readonly [string, Template])[];
  readonly remove: readonly string[];
}

export interface ValidateRules {
  /** Media types (lower case, without parameters); `type/*` matches a whole type. Empty: any. */
  readonly contentTypes: readonly string[];
  readonly maxBodyBytes: number | undefined;
  readonly jsonSchema: { readonly file: string; readonly validate: ValidateFunction } | undefined;
  readonly requiredHeaders: readonly string[];
  readonly requiredQueryParams: readonly string[];
}

export interface RouteCacheRules {
  /** TTL by status; a status not listed is never stored. */
  readonly ttlSecondsByStatus: ReadonlyMap<number, number>;
  /** false: the key includes the caller (identity from ext_authz, else a hash of the credential). */
  readonly public: boolean;
  /**
   * Seconds past its lifetime an entry may be served stale while one request refreshes it; a response's own
   * stale-while-revalidate can only shorten it (cacheability.ts staleWindowSeconds). 0: never served stale.
   */
  readonly staleWhileRevalidateSeconds: number;
}

export interface ExtprocRoute {
  readonly name: string;
  /**
   * `path`/`path_prefix` normalized as request paths are (src/shared/normalize-path.ts); `ignoreCase`: compared with
   * ASCII letters folded (the upstream reads paths case-insensitively).
   */
  readonly match: {
    readonly path: string | undefined;
    readonly pathPrefix: string | undefined;
    readonly methods: readonly Method[] | undefined;
    readonly ignoreCase: boolean;
  };
  /** match.path and match.path_prefix as compared: case-folded under ignore_case. */
  readonly matchPath: string | undefined;
  readonly matchPrefix: string | undefined;
  readonly requestHeaders: HeaderRules;
  readonly responseHeaders: HeaderRules;
  readonly validate: ValidateRules | undefined;
  readonly cache: RouteCacheRules | undefined;
}

export interface ExtprocSettings {
  readonly requestId: {
    readonly header: string;
    /**
     * Who puts the request id on the response. `portcullis`: the response phase does, whatever Envoy's config.
     * `envoy`: the connection manager does (always_set_request_id_in_response), so a request whose response Portcullis
     * has nothing else to do with is answered without a response phase (needsResponsePhase).
     */
    readonly echo: 'portcullis' | 'envoy';
  };
  readonly tracing: { readonly mirror: { readonly traceId: string | undefined; readonly spanId: string | undefined } };
  readonly cache: {
    readonly maxEntryBytes: number;
    /** Memory store only: the bound on everything it holds. */
    readonly maxMemoryBytes: number;
    /** Budget of one cache store call; keep it well below Envoy's message_timeout (default 200 ms). */
    readonly timeoutMs: number;
    readonly keyPrefix: string;
    /**
     * How long the one request refreshing a stale entry holds the refresh lock: past it (the refresh failed, was not
     * stored, or is slower) the next request takes it. About the origin's slowest normal answer.
     */
    readonly refreshLockMs: number;
  };
  /** Largest gRPC message accepted from Envoy (a BUFFERED body travels in one message). */
  readonly maxMessageBytes: number;
  readonly routes: readonly ExtprocRoute[];
}

/** The header Envoy's connection manager generates and copies onto the response. */
const ENVOY_REQUEST_ID = 'x-request-id';

/**
 * A day: the store keeps every entry its lifetime plus this window, so the bound is also one on how long a stale
 * window keeps dead entries (and their memory or Redis bytes) around.
 */
export const MAX_STALE_WHILE_REVALIDATE_SECONDS = 86_400;

const headerName = (fallback: string): Field<string> =>
  string(fallback, (s) => (/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(s) ? undefined : `expected a lower-case HTTP header name, got '${s}'`));

/** A mapping of header name → template string. */
function headerMap(): Field<(readonly [string, string, number])[]> {
  return (v, p, issues) => {
    if (v === undefined || v === null || (v.kind === 'scalar' && v.value === null)) return [];
    if (v.kind !== 'map') {
      issues.add(v.line, p, 'expected a mapping of header name to value');
      return [];
    }
    const out: (readonly [string, string, number])[] = [];
    for (const entry of v.entries) {
      const name = entry.key.kind === 'scalar' ? String(entry.key.value) : '';
      const at = joinPath(p, name);
      const checked = headerName('')(entry.key, at, issues, entry.key.line);
      if (checked === '') continue;
      const value = entry.value;
      if (value === null || value.kind !== 'scalar' || value.value === null || typeof value.value === 'object') {
        issues.add(value?.line ?? entry.key.line, at, 'expected a string value');
        continue;
      }
      out.push([name, writtenText(value), value.line]);
    }
    return out;
  };
}

/** A mapping of status code → seconds. */
function statusTtls(): Field<(readonly [string, number, number])[]> {
  return (v, p, issues) => {
    if (v === undefined || v === null || (v.kind === 'scalar' && v.value === null)) return [];
    if (v.kind !== 'map') {
      issues.add(v.line, p, 'expected a mapping of HTTP status to seconds, e.g. { "200": 300 }');
      return [];
    }
    const out: (readonly [string, number, number])[] = [];
    for (const entry of v.entries) {
      const key = entry.key.kind === 'scalar' ? String(entry.key.value) : '';
      const seconds = number(-1, { min: 1, integer: true })(entry.value, joinPath(p, key), issues, entry.key.line);
      out.push([key, seconds, entry.key.line]);
    }
    return out;
  };
}

const headerRules = () => object({ set: headerMap(), append: headerMap(), remove: list(headerName('')) });

const routeSchema = object({
  name: string(''),
  match: object({
    path: string('', matchPathProblem),
    path_prefix: string('', matchPathProblem),
    ignore_case: boolean(false),
    methods: list(string('', (s) => ((METHODS as readonly string[]).includes(s) ? undefined : `must be one of ${METHODS.join(', ')}, got '${s}'`))),
  }),
  // A header rule's value may be the credential it adds for the upstream.
  headers: secret(object({ request: headerRules(), response: headerRules() })),
  validate: object({
    content_types: list(string('', (s) => (/^[a-z0-9!#$&^_.+-]+\/([a-z0-9!#$&^_.+-]+|\*)$/.test(s) ? undefined : `expected a lower-case media type such as application/json, got '${s}'`))),
    max_body_bytes: number(0, { min: 1, integer: true }),
    json_schema: string(''),
    required_headers: list(headerName('')),
    required_query_params: list(string('')),
  }),
  cache: object({
    ttl_seconds: statusTtls(),
    public: boolean(false),
    stale_while_revalidate_seconds: number(0, { min: 0, max: MAX_STALE_WHILE_REVALIDATE_SECONDS, integer: true }),
  }),
});

export const extprocSchema = object({
  request_id: object({ header: headerName('x-request-id'), echo: oneOf(['portcullis', 'envoy'] as const, 'portcullis') }),
  tracing: object({ mirror: object({ trace_id: headerName(''), span_id: headerName('') }) }),
  cache: object({
    max_entry_bytes: number(1_048_576, { min: 1, integer: true }),
    max_memory_bytes: number(64 * 1_048_576, { min: 1, integer: true }),
    timeout_ms: number(50, { min: 1, integer: true }),
    key_prefix: string('portcullis:cache:'),
    refresh_lock_ms: number(5_000, { min: 100, max: 60_000, integer: true }),
  }),
  max_message_bytes: number(64 * 1_048_576, { min: 4 * 1_048_576, integer: true }),
  routes: list(routeSchema),
});

export type RawExtproc = ReturnType<typeof extprocSchema>;

/** The YAML node at `key` of a map (for line numbers of nested problems found after the schema pass). */
function child(node: YamlValue | null | undefined, key: string | number): YamlValue | null | undefined {
  if (node === null || node === undefined) return undefined;
  if (typeof key === 'number') return node.kind === 'seq' ? node.items[key] : undefined;
  if (node.kind !== 'map') return undefined;
  return [...node.entries].reverse().find((e) => e.key.kind === 'scalar' && e.key.value === key)?.value;
}

/**
 * Second pass over the schema's output: templates, JSON Schemas, statuses, names. `node` is the `extproc:` YAML
 * node (for line numbers), `dir` the config file's directory (relative schema paths resolve against it), `readSchema`
 * what reads a JSON Schema file's text (throwing as readFileSync does).
 */
export function compileExtproc(
  raw: RawExtproc,
  node: YamlValue | null | undefined,
  dir: string,
  issues: IssueCollector,
  readSchema: (file: string) => string,
): ExtprocSettings {
  // ownProperties: a parsed body is a plain object, so without it `constructor`, `valueOf` and the rest of
  // Object.prototype count as present (`required: [constructor]` accepts {}, an optional `valueOf` refuses it).
  const ajv = addFormats(new Ajv({ allErrors: true, strict: false, ownProperties: true }));
  const names = new Set<string>();
  const routes: ExtprocRoute[] = [];
  (raw.routes ?? []).forEach((r, i) => {
    const at = joinPath('extproc.routes', i);
    const routeNode = child(child(node, 'routes'), i);
    const line = routeNode?.line;
    if (r.name === '') issues.add(line, joinPath(at, 'name'), 'every route needs a name');
    else if (names.has(r.name)) issues.add(child(routeNode, 'name')?.line ?? line, joinPath(at, 'name'), `duplicate route name '${r.name}'`);
    names.add(r.name);
    if (r.match.path !== '' && r.match.path_prefix !== '') {
      issues.add(child(routeNode, 'match')?.line ?? line, joinPath(at, 'match'), 'set either path or path_prefix, not both');
    }
    if (r.match.ignore_case) {
      for (const key of ['path_prefix', 'path'] as const) {
        const problem = ignoreCaseProblem(r.match[key], 'name the route with x-portcullis-route on the Envoy route');
        if (problem !== undefined) issues.add(child(child(routeNode, 'match'), key)?.line ?? line, joinPath(at, `match.${key}`), problem);
      }
    }
    const rules = (raw: ReturnType<ReturnType<typeof headerRules>>, where: string): HeaderRules => {
      const compile = (entries: readonly (readonly [string, string, number])[], kind: string): (readonly [string, Template])[] =>
        entries.flatMap(([name, text, l]) => {
          const compiled = compileTemplate(text);
          if (typeof compiled === 'string') {
            issues.add(l, joinPath(joinPath(joinPath(at, where), kind), name), compiled);
            return [];
          }
          return [[name, compiled] as const];
        });
      return { set: compile(raw.set, 'set'), append: compile(raw.append, 'append'), remove: (raw.remove ?? []).filter((n) => n !== '') };
    };
    const requestHeaders = rules(r.headers.request, 'headers.request');
    const responseHeaders = rules(r.headers.response, 'headers.response');
    for (const [name] of [...requestHeaders.set, ...requestHeaders.append, ...responseHeaders.set, ...responseHeaders.append]) {
      if (name.startsWith(':') || name === 'host' || name.startsWith('x-envoy')) {
        issues.add(line, joinPath(at, 'headers'), `header '${name}' cannot be set by ext_proc (Envoy refuses it)`);
      }
    }

    const validateNode = child(routeNode, 'validate');
    let validate: ValidateRules | undefined;
    if (validateNode !== undefined && validateNode !== null) {
      let jsonSchema: ValidateRules['jsonSchema'];
      if (r.validate.json_schema !== '') {
        const file = path.resolve(dir, r.validate.json_schema);
        const where = joinPath(at, 'validate.json_schema');
        const schemaLine = child(validateNode, 'json_schema')?.line;
        try {
          const parsed = parseJson(readSchema(file));
          if (!parsed.ok) issues.add(schemaLine, where, `cannot use JSON Schema ${file}: invalid JSON at line ${parsed.line}, column ${parsed.column}: ${parsed.message}`);
          else jsonSchema = { file, validate: ajv.compile(parsed.value as object) };
        } catch (error) {
          issues.add(schemaLine, where, `cannot use JSON Schema ${file}: ${(error as Error).message}`);
        }
      }
      validate = {
        contentTypes: (r.validate.content_types ?? []).filter((t) => t !== ''),
        maxBodyBytes: r.validate.max_body_bytes === 0 ? undefined : r.validate.max_body_bytes,
        jsonSchema,
        requiredHeaders: (r.validate.required_headers ?? []).filter((h) => h !== ''),
        requiredQueryParams: (r.validate.required_query_params ?? []).filter((q) => q !== ''),
      };
    }

    const cacheNode = child(routeNode, 'cache');
    let cache: RouteCacheRules | undefined;
    if (cacheNode !== undefined && cacheNode !== null) {
      const ttls = new Map<number, number>();
      for (const [status, seconds, l] of r.cache.ttl_seconds) {
        if (!/^[1-5]\d\d$/.test(status)) issues.add(l, joinPath(at, `cache.ttl_seconds.${status}`), `expected an HTTP status (100-599), got '${status}'`);
        else if (seconds > 0) ttls.set(Number(status), seconds);
      }
      if (r.cache.ttl_seconds.length === 0) issues.add(cacheNode.line, joinPath(at, 'cache.ttl_seconds'), 'a cached route needs ttl_seconds for at least one status');
      cache = { ttlSecondsByStatus: ttls, public: r.cache.public, staleWhileRevalidateSeconds: r.cache.stale_while_revalidate_seconds };
    }

    const match = {
      path: normalizedMatchPath(r.match.path),
      pathPrefix: normalizedMatchPath(r.match.path_prefix),
      methods: r.match.methods?.filter((m): m is Method => m !== ''),
      ignoreCase: r.match.ignore_case,
    };
    const fold = match.ignoreCase ? foldPathCase : (p: string): string => p;
    routes.push({
      name: r.name,
      match,
      matchPath: match.path === undefined ? undefined : fold(match.path),
      matchPrefix: match.pathPrefix === undefined ? undefined : fold(match.pathPrefix),
      requestHeaders,
      responseHeaders,
      validate,
      cache,
    });
  });
  if (raw.request_id.echo === 'envoy' && raw.request_id.header !== ENVOY_REQUEST_ID) {
    const requestIdNode = child(node, 'request_id');
    issues.add(child(requestIdNode, 'echo')?.line ?? requestIdNode?.line, 'extproc.request_id.echo',
      `Envoy echoes only ${ENVOY_REQUEST_ID}; with header '${raw.request_id.header}' use echo: portcullis`);
  }
  return {
    requestId: { header: raw.request_id.header, echo: raw.request_id.echo },
    tracing: { mirror: { traceId: raw.tracing.mirror.trace_id || undefined, spanId: raw.tracing.mirror.span_id || undefined } },
    cache: {
      maxEntryBytes: raw.cache.max_entry_bytes,
      maxMemoryBytes: raw.cache.max_memory_bytes,
      timeoutMs: raw.cache.timeout_ms,
      keyPrefix: raw.cache.key_prefix,
      refreshLockMs: raw.cache.refresh_lock_ms,
    },
    maxMessageBytes: raw.max_message_bytes,
    routes,
  };
}

/** Files the compiled config read besides portcullis.yaml (JSON Schemas): a reload must notice their changes. */
export function extprocInputs(settings: ExtprocSettings): string[] {
  return settings.routes.flatMap((r) => (r.validate?.jsonSchema ? [r.validate.jsonSchema.file] : []));
}
