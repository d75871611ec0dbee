import { joinPath, type IssueCollector } from '../config/errors.js';
import { isAbsent, list, number, object, secret, string, type Field } from '../config/schema.js';
import { writtenText, type YamlValue } from '../config/yaml.js';
import { planWaves } from './planner.js';
import { bySpecificity, parseRoute, routeShape, type Route } from './routes.js';
import {
  exprsOf, isName, parseStringTemplate, setKey,
  type Expr, type JsonValue, type StringTemplate, type ValueTemplate,
} from './template.js';

/**
 * The `bff:` section of portcullis.yaml: services, endpoints, calls and respond templates, checked
 * and compiled at load time. Every reference (a service, a call or parameter a template reads, an
 * `after` entry) and every dependency cycle is a load error with its line and path.
 */

export interface BffService {
  readonly name: string;
  /** `http://host:port`, no trailing slash. */
  readonly origin: string;
  /** Path prefix every call to the service gets (`/api`), '' for none. */
  readonly basePath: string;
  /** At most this many requests in flight to the service (connections of its pool). */
  readonly maxConcurrency: number;
}

export interface BffParam {
  readonly name: string;
  readonly in: 'path' | 'query';
  /** The whole value must match. */
  readonly pattern: RegExp | undefined;
  readonly required: boolean;
  readonly default: string | undefined;
}

export interface BffCall {
  readonly name: string;
  readonly service: BffService;
  readonly path: StringTemplate;
  readonly query: readonly (readonly [string, StringTemplate])[];
  readonly headers: readonly (readonly [string, StringTemplate])[];
  readonly timeoutMs: number;
  /** undefined: the call is required, its failure fails the answer. */
  readonly fallback: { readonly value: JsonValue } | undefined;
  /** Calls this one waits for: `after` plus every call its templates read. */
  readonly deps: readonly string[];
  /** The expressions of the path: when one is missing the call cannot be built and is skipped. */
  readonly pathInputs: readonly Expr[];
}

export interface BffEndpoint {
  /** The path template as written, also the metrics label. */
  readonly path: string;
  readonly route: Route;
  readonly params: readonly BffParam[];
  readonly timeoutMs: number;
  /** In plan order: every call comes after the calls it depends on. */
  readonly calls: readonly BffCall[];
  readonly waves: readonly (readonly string[])[];
  readonly respond: ValueTemplate;
  /** Lower-case names of the request headers sent on with every call. */
  readonly forwardHeaders: readonly string[];
}

export interface BffConfig {
  readonly services: ReadonlyMap<string, BffService>;
  /** Most specific first (see routes.ts bySpecificity). */
  readonly endpoints: readonly BffEndpoint[];
  readonly degradedHeader: string;
  readonly maxResponseBytes: number;
}

export const DEFAULT_FORWARD_HEADERS = ['x-user-id', 'x-request-id', 'traceparent', 'tracestate'] as const;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const RESERVED_RESPOND_KEY = '_degraded';

interface Named<T> {
  readonly name: string;
  readonly line: number;
  readonly value: T;
}

interface Located<T> {
  readonly value: T;
  readonly line: number;
}

/** A template and the place it came from, so a bad reference names its line and path. */
interface TemplateRef {
  readonly expr: Expr;
  readonly line: number;
  readonly path: string;
}

/**
 * A key as written: under YAML 1.1 a plain `y`, `on` or `no` key is a boolean, but in a respond
 * template or a name it is meant as text.
 */
const keyText = (key: YamlValue): string => (key.kind !== 'scalar' ? '' : typeof key.value === 'string' ? key.value : key.source.trim());

function located<T>(field: Field<T>): Field<Located<T>> {
  return (v, path, issues, parentLine) => ({ value: field(v, path, issues, parentLine), line: v?.line ?? parentLine });
}

/** A mapping from names the user chooses to values of one shape. */
function mapOf<T>(item: Field<T>, what: string, checkName: (name: string) => string | undefined = () => undefined): Field<Named<T>[]> {
  return (v, path, issues) => {
    if (isAbsent(v)) return [];
    if (v.kind !== 'map') {
      issues.add(v.line, path, `expected a mapping of ${what}, got ${v.kind === 'seq' ? 'a list' : 'a scalar'}`);
      return [];
    }
    const out: Named<T>[] = [];
    const seen = new Set<string>();
    for (const entry of v.entries) {
      const name = keyText(entry.key);
      const itemPath = joinPath(path, name);
      const problem = entry.key.kind !== 'scalar' ? `${what} names must be strings` : checkName(name);
      if (problem !== undefined) {
        issues.add(entry.key.line, itemPath, problem);
        continue;
      }
      if (seen.has(name)) {
        issues.add(entry.key.line, itemPath, `duplicate ${what} '${name}'`);
        continue;
      }
      seen.add(name);
      out.push({ name, line: entry.key.line, value: item(entry.value, itemPath, issues, entry.key.line) });
    }
    return out;
  };
}

/** Plain YAML data as JSON (on_error fallbacks). */
function toJson(v: YamlValue | null): JsonValue {
  if (v === null) return null;
  if (v.kind === 'seq') return v.items.map(toJson);
  if (v.kind === 'map') {
    const out: Record<string, JsonValue> = {};
    for (const e of v.entries) setKey(out, keyText(e.key), toJson(e.value));
    return out;
  }
  if (typeof v.value === 'bigint') return Number(v.value);
  return (v.value ?? null) as JsonValue;
}

/** `on_error`: absent means "required"; any value, `null` and `[]` included, is the fallback. */
const fallbackField: Field<{ value: JsonValue } | undefined> = (v) => (v === undefined ? undefined : { value: toJson(v) });

/** Collects templates with their place while a section is read. */
class Templates {
  readonly refs: TemplateRef[] = [];
  string(): Field<StringTemplate> {
    return (v, path, issues, parentLine) => {
      if (isAbsent(v)) return { kind: 'literal', value: '' };
      if (v.kind !== 'scalar' || v.value === null || typeof v.value === 'object') {
        issues.add(v.line, path, `expected a string template, got ${v.kind === 'scalar' ? String(v.value) : v.kind === 'map' ? 'a mapping' : 'a list'}`);
        return { kind: 'literal', value: '' };
      }
      return this.parse(writtenText(v), path, v.line ?? parentLine, issues);
    };
  }
  value(): Field<ValueTemplate> {
    const walk = (v: YamlValue | null, path: string, issues: IssueCollector): ValueTemplate => {
      if (v === null) return { kind: 'json', value: null };
      if (v.kind === 'scalar') {
        if (typeof v.value === 'string') return this.parse(v.value, path, v.line, issues);
        return { kind: 'json', value: toJson(v) };
      }
      if (v.kind === 'seq') return { kind: 'array', items: v.items.map((item, i) => walk(item, joinPath(path, i), issues)) };
      const keys = v.entries.map((e) => keyText(e.key));
      if (keys.some((k) => k.startsWith('$'))) return pickOf(v, keys, path, issues);
      return {
        kind: 'object',
        entries: v.entries.map((e, i) => [keys[i] ?? '', walk(e.value, joinPath(path, keys[i] ?? ''), issues)] as const),
      };
    };
    const pickOf = (v: YamlValue & { kind: 'map' }, keys: string[], path: string, issues: IssueCollector): ValueTemplate => {
      const unknown = keys.filter((k) => k !== '$from' && k !== '$pick');
      if (unknown.length > 0 || !keys.includes('$from') || !keys.includes('$pick')) {
        issues.add(v.line, path, `a selection has exactly the keys $from and $pick, got ${keys.join(', ')}`);
        return { kind: 'json', value: null };
      }
      const fromEntry = v.entries[keys.indexOf('$from')];
      const pickEntry = v.entries[keys.indexOf('$pick')];
      const fields = list(string('', (s) => (s === '' ? 'field names must not be empty' : undefined)))(pickEntry?.value, joinPath(path, '$pick'), issues, pickEntry?.key.line ?? v.line);
      if (fields === undefined || fields.length === 0) issues.add(pickEntry?.key.line ?? v.line, joinPath(path, '$pick'), 'expected a non-empty list of field names');
      return { kind: 'pick', from: walk(fromEntry?.value ?? null, joinPath(path, '$from'), issues), fields: fields ?? [] };
    };
    return (v, path, issues) => walk(v ?? null, path, issues);
  }
  private parse(text: string, path: string, line: number, issues: IssueCollector): StringTemplate {
    try {
      const template = parseStringTemplate(text);
      for (const expr of exprsOf(template)) this.refs.push({ expr, line, path });
      return template;
    } catch (error) {
      // Not quoted: a call's header or query template may hold the credential it sends (the path and line say where).
      issues.add(line, path, `bad template: ${(error as Error).message}`);
      return { kind: 'literal', value: '' };
    }
  }
}

const timeout = number(0, { min: 1, max: 600000, integer: true });

const serviceField: Field<Located<{ url: string; max_concurrency: number }>> = located((v, path, issues, parentLine) => {
  const shape = object({ url: string(''), max_concurrency: number(64, { min: 1, max: 10000, integer: true }) });
  if (v?.kind === 'scalar') return { url: string('')(v, path, issues, parentLine), max_concurrency: 64 };
  const raw = shape(v, path, issues, parentLine);
  if (raw.url === '') issues.add(v?.line ?? parentLine, joinPath(path, 'url'), 'a service needs a url');
  return raw;
});

/** A boolean that remembers whether it was written at all. */
const optionalBoolean: Field<boolean | undefined> = (v, path, issues, line) => {
  if (v === undefined) return undefined;
  if (v?.kind === 'scalar' && typeof v.value === 'boolean') return v.value;
  issues.add(v?.line ?? line, path, 'expected true or false');
  return undefined;
};

/**
 * A parameter pattern as matched: anchored, in Unicode mode (so `.{1,64}` counts characters, not UTF-16 units).
 * The load check calls this very function: Unicode mode refuses escapes plain mode takes (`\_`, `\:`), and a
 * pattern checked without it would pass, then throw with no line or path when compiled. The source alone is
 * compiled first: `a)|(b` is no pattern, yet wrapped it would compile and match anything starting with `a`.
 */
function compilePattern(source: string): RegExp {
  new RegExp(source, 'u');
  return new RegExp(`^(?:${source})$`, 'u');
}

const paramField = located(object({
  pattern: string('', (s) => {
    try {
      compilePattern(s);
      return undefined;
    } catch (error) {
      return `bad regular expression: ${(error as Error).message}`;
    }
  }),
  required: optionalBoolean,
  default: string(''),
}));


const headerName = (kind: string) => (name: string): string | undefined =>
  HEADER_NAME.test(name) ? undefined : `'${name}' is not a valid ${kind} name`;

function endpointSchema(templates: Templates) {
  const callShape = located(object({
    service: located(string('')),
    path: located(templates.string()),
    query: mapOf(templates.string(), 'query parameter'),
    // A call's header value may be the credential it sends.
    headers: secret(mapOf(templates.string(), 'header', headerName('header'))),
    timeout_ms: timeout,
    on_error: fallbackField,
    after: located(list(located(string('')))),
  }));
  return located(object({
    path: located(string('')),
    timeout_ms: timeout,
    params: mapOf(paramField, 'parameter', (n) => (isName(n) ? undefined : `parameter names are letters, digits and _, got '${n}'`)),
    forward_headers: list(string('', headerName('header'))),
    calls: mapOf(callShape, 'call', (n) => (isName(n) ? undefined : `call names are letters, digits and _ (templates read them), got '${n}'`)),
    respond: located(templates.value()),
  }));
}

type RawEndpoint = ReturnType<ReturnType<typeof endpointSchema>>['value'];

/** The `bff:` field for the portcullis.yaml schema: reads, checks and compiles the whole section. */
export const bffSection: Field<BffConfig> = (v, path, issues, parentLine) => {
  const templates = new Templates();
  const raw = object({
    services: mapOf(serviceField, 'service'),
    timeout_ms: number(1000, { min: 1, max: 600000, integer: true }),
    forward_headers: list(string('', headerName('header'))),
    degraded_header: string('x-bff-degraded', headerName('header')),
    max_response_bytes: number(1 << 20, { min: 1, integer: true }),
    endpoints: list(endpointSchema(templates)),
  })(v, path, issues, parentLine);

  const services = new Map<string, BffService>();
  for (const s of raw.services) {
    const service = compileService(s.name, s.value.value.url, s.value.value.max_concurrency);
    if (typeof service === 'string') issues.add(s.value.line, joinPath(joinPath(path, 'services'), s.name), service);
    else services.set(s.name, service);
  }
  const globalForward = (raw.forward_headers ?? [...DEFAULT_FORWARD_HEADERS]).map((h) => h.toLowerCase());
  const endpoints: BffEndpoint[] = [];
  const shapes = new Map<string, string>();
  (raw.endpoints ?? []).forEach((e, i) => {
    const endpointPath = joinPath(joinPath(path, 'endpoints'), i);
    const compiled = compileEndpoint(e.value, e.line, endpointPath, issues, services, raw.timeout_ms, globalForward, templates.refs);
    if (compiled === undefined) return;
    const shape = routeShape(compiled.route);
    const other = shapes.get(shape);
    if (other !== undefined) issues.add(e.value.path.line, joinPath(endpointPath, 'path'), `'${compiled.path}' matches the same paths as '${other}'`);
    shapes.set(shape, compiled.path);
    endpoints.push(compiled);
  });
  endpoints.sort((a, b) => bySpecificity(a.route, b.route));
  return {
    services,
    endpoints,
    degradedHeader: raw.degraded_header.toLowerCase(),
    maxResponseBytes: raw.max_response_bytes,
  };
};

function compileService(name: string, url: string, maxConcurrency: number): BffService | string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `service '${name}': expected an http:// or https:// URL, got '${url}'`;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `service '${name}': expected an http:// or https:// URL, got '${url}'`;
  // `http://:secret@host` has a password and no user name: refused like `user:secret@`, not silently dropped.
  if (parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') return `service '${name}': the URL may hold a path prefix but no query, fragment or credentials`;
  return Object.freeze({ name, origin: parsed.origin, basePath: parsed.pathname.replace(/\/+$/, ''), maxConcurrency });
}

function compileEndpoint(
  e: RawEndpoint, line: number, path: string, issues: IssueCollector, services: ReadonlyMap<string, BffService>,
  defaultTimeoutMs: number, globalForward: readonly string[], refs: readonly TemplateRef[],
): BffEndpoint | undefined {
  const at = (...keys: (string | number)[]): string => keys.reduce<string>((p, k) => joinPath(p, k), path);
  if (e.path.value === '') {
    issues.add(line, at('path'), 'an endpoint needs a path');
    return undefined;
  }
  let route: Route;
  try {
    route = parseRoute(e.path.value);
  } catch (error) {
    issues.add(e.path.line, at('path'), (error as Error).message);
    return undefined;
  }
  const timeoutMs = e.timeout_ms || defaultTimeoutMs;
  const pathParams = new Set(route.segments.flatMap((s) => (s.kind === 'param' ? [s.name] : [])));
  const params: BffParam[] = [...pathParams].map((name) => ({ name, in: 'path', pattern: undefined, required: true, default: undefined }));
  for (const p of e.params) {
    const inPath = pathParams.has(p.name);
    const spec = p.value.value;
    const param: BffParam = {
      name: p.name,
      in: inPath ? 'path' : 'query',
      pattern: spec.pattern === '' ? undefined : compilePattern(spec.pattern),
      required: inPath || (spec.required ?? false),
      default: spec.default === '' ? undefined : spec.default,
    };
    if (inPath && (spec.default !== '' || spec.required === false)) {
      issues.add(p.line, at('params', p.name), `'${p.name}' is a path parameter: it is always required and has no default`);
    }
    if (param.pattern && param.default !== undefined && !param.pattern.test(param.default)) {
      issues.add(p.line, at('params', p.name, 'default'), `default '${param.default}' does not match the pattern`);
    }
    if (inPath) params[params.findIndex((x) => x.name === p.name)] = param;
    else params.push(param);
  }
  const paramNames = new Set(params.map((p) => p.name));
  const callNames = new Set(e.calls.map((c) => c.name));
  for (const c of e.calls) {
    if (paramNames.has(c.name)) issues.add(c.line, at('calls', c.name), `call '${c.name}' has the name of a parameter; templates could not tell them apart`);
  }
  const callsPath = at('calls');
  const inside = (p: string, prefix: string): boolean => p === prefix || p.startsWith(`${prefix}.`) || p.startsWith(`${prefix}[`);
  const refsUnder = (prefix: string): TemplateRef[] => refs.filter((r) => inside(r.path, prefix));
  const checkRef = (r: TemplateRef): boolean => {
    if (paramNames.has(r.expr.root) || callNames.has(r.expr.root)) return true;
    const known = [...paramNames, ...callNames];
    issues.add(r.line, r.path, `template '{${r.expr.source}}' reads '${r.expr.root}', which is no call or parameter of this endpoint (known: ${known.join(', ') || 'none'})`);
    return false;
  };

  const deps = new Map<string, string[]>();
  const draft: Omit<BffCall, 'deps'>[] = [];
  for (const c of e.calls) {
    const callPath = joinPath(callsPath, c.name);
    const spec = c.value.value;
    const service = services.get(spec.service.value);
    if (spec.service.value === '') issues.add(c.line, joinPath(callPath, 'service'), 'a call needs a service');
    else if (service === undefined) {
      issues.add(spec.service.line, joinPath(callPath, 'service'), `unknown service '${spec.service.value}' (known: ${[...services.keys()].join(', ') || 'none'})`);
    }
    const pathTemplate = spec.path.value;
    // A bad template was reported where it was read; it must not also count as a missing path.
    const badTemplate = issues.issues.some((i) => i.path === joinPath(callPath, 'path'));
    if (!badTemplate && pathTemplate.kind === 'literal' && pathTemplate.value === '') issues.add(c.line, joinPath(callPath, 'path'), 'a call needs a path');
    else if (!badTemplate && !startsWithSlash(pathTemplate)) issues.add(spec.path.line, joinPath(callPath, 'path'), "a call's path must start with '/'");
    const callTimeout = spec.timeout_ms || timeoutMs;
    if (callTimeout > timeoutMs) {
      issues.add(c.line, joinPath(callPath, 'timeout_ms'), `timeout_ms ${callTimeout} exceeds the endpoint's timeout_ms ${timeoutMs}`);
    }
    const own = new Set<string>();
    for (const r of refsUnder(callPath)) {
      if (!checkRef(r)) continue;
      if (r.expr.root === c.name) issues.add(r.line, r.path, `call '${c.name}' reads its own result`);
      else if (callNames.has(r.expr.root)) own.add(r.expr.root);
    }
    const afters = spec.after.value ?? [];
    afters.forEach((a, i) => {
      if (!callNames.has(a.value)) issues.add(a.line, joinPath(joinPath(callPath, 'after'), i), `after: no call named '${a.value}' in this endpoint`);
      else if (a.value === c.name) issues.add(a.line, joinPath(joinPath(callPath, 'after'), i), `call '${c.name}' cannot come after itself`);
      else own.add(a.value);
    });
    deps.set(c.name, [...own]);
    if (service === undefined) continue;
    draft.push({
      name: c.name,
      service,
      path: pathTemplate,
      query: spec.query.map((q) => [q.name, q.value] as const),
      headers: spec.headers.map((h) => [h.name.toLowerCase(), h.value] as const),
      timeoutMs: callTimeout,
      fallback: spec.on_error,
      pathInputs: exprsOf(pathTemplate),
    });
  }
  const respondPath = at('respond');
  for (const r of refsUnder(respondPath)) checkRef(r);
  const respond: ValueTemplate = e.respond.value.kind === 'json' && e.respond.value.value === null
    ? { kind: 'object', entries: e.calls.map((c) => [c.name, { kind: 'ref', expr: { root: c.name, steps: [], source: c.name } }] as const) }
    : e.respond.value;
  if (respond.kind !== 'object' && respond.kind !== 'pick') {
    issues.add(e.respond.line, respondPath, 'respond must be a mapping (the answer is a JSON object)');
  } else if (respond.kind === 'object' && respond.entries.some(([k]) => k === RESERVED_RESPOND_KEY)) {
    issues.add(e.respond.line, joinPath(respondPath, RESERVED_RESPOND_KEY), `'${RESERVED_RESPOND_KEY}' is reserved for the list of degraded parts`);
  }

  const plan = planWaves(deps);
  if (!plan.ok) {
    const first = e.calls.find((c) => c.name === plan.cycle[0]);
    issues.add(first?.line ?? line, joinPath(callsPath, plan.cycle[0] ?? ''), `dependency cycle: ${plan.cycle.join(' -> ')}`);
    return undefined;
  }
  const order = plan.waves.flat();
  const calls = draft
    .map((d): BffCall => ({ ...d, deps: deps.get(d.name) ?? [] }))
    .sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  return {
    path: e.path.value,
    route,
    params,
    timeoutMs,
    calls,
    waves: plan.waves,
    respond,
    forwardHeaders: e.forward_headers?.map((h) => h.toLowerCase()) ?? globalForward,
  };
}

function startsWithSlash(t: StringTemplate): boolean {
  if (t.kind === 'literal') return t.value.startsWith('/');
  if (t.kind === 'text') return typeof t.parts[0] === 'string' && t.parts[0].startsWith('/');
  return false;
}

/** The section as /config shows it: services and each endpoint's plan. */
export function describeBff(config: BffConfig): unknown {
  return {
    services: Object.fromEntries([...config.services.values()].map((s) => [s.name, { url: s.origin + s.basePath, maxConcurrency: s.maxConcurrency }])),
    endpoints: config.endpoints.map((e) => ({ path: e.path, timeoutMs: e.timeoutMs, waves: e.waves, forwardHeaders: e.forwardHeaders })),
  };
}
