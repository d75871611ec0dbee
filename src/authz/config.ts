import { isIP } from 'node:net';
import path from 'node:path';
import { IssueCollector, joinPath } from '../config/errors.js';
import { boolean, isAbsent, list, number, object, oneOf, required, secret, string, type Field } from '../config/schema.js';
import { writtenText, type YamlValue } from '../config/yaml.js';
import { foldName } from './header-fold.js';
import { ignoreCaseProblem, matchPathProblem, normalizedMatchPath } from '../shared/normalize-path.js';
import { AUTH_METHODS, type AuthMethod } from './types.js';

/** Asymmetric algorithms only: HMAC never shares a verifier with public keys, and `none` is not an algorithm. */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export type JwksSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'uri'; readonly url: string }
  /** `url`: where discovery is read; `issuer`: the provider's issuer, which the discovery document must name (OIDC Discovery §4.3). */
  | { readonly kind: 'oidc'; readonly url: string; readonly issuer: string };

export interface JwtProviderSettings {
  readonly name: string;
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly algorithms: readonly JwtAlgorithm[];
  readonly jwks: JwksSource;
  readonly clockSkewSeconds: number;
  readonly requiredClaims: readonly string[];
  /** `typ` header the token must carry (e.g. at+jwt), when set. */
  readonly type: string | undefined;
  readonly refreshSeconds: number;
  readonly refetchCooldownSeconds: number;
  readonly claims: { readonly subject: string; readonly scopes: string; readonly roles: string; readonly tier: string };
}

export interface PolicySettings {
  readonly name: string;
  readonly line: number;
  /** undefined: only chosen through context_extensions.policy. */
  readonly match: {
    readonly pathPrefix: string | undefined;
    readonly path: string | undefined;
    readonly methods: readonly string[] | undefined;
    /** `path`/`path_prefix` compared with ASCII letters folded (the upstream reads paths case-insensitively). */
    readonly ignoreCase: boolean;
  } | undefined;
  readonly authenticate: readonly { readonly method: AuthMethod; readonly provider: string | undefined }[];
  readonly require: {
    readonly scopes: readonly string[];
    readonly roles: readonly string[];
    /** Claim name → accepted values; the claim (or one of its list items) must equal one. */
    readonly claims: ReadonlyMap<string, readonly string[]>;
    readonly principals: readonly string[];
  };
  /** CIDRs; undefined: any address. */
  readonly ipAllow: readonly string[] | undefined;
}

/** The `authz:` section of portcullis.yaml, parsed and frozen. Paths are absolute. */
export interface AuthzSettings {
  /** `deny`, or the name of the policy a request that matches none gets. */
  readonly defaultPolicy: string;
  readonly clientIp: { readonly trustedHops: number };
  /** Deadline when Envoy sends none. */
  readonly timeoutMs: number;
  readonly logDecisions: boolean;
  readonly identityHeaders: { readonly userId: string; readonly authMethod: string; readonly apiKeyId: string; readonly tier: string; readonly scopes: string };
  readonly apiKeys: { readonly header: string; readonly query: string | undefined; readonly file: string } | undefined;
  readonly jwt: { readonly providers: readonly JwtProviderSettings[]; readonly cacheMaxEntries: number; readonly maxTokenBytes: number } | undefined;
  readonly introspection: {
    readonly url: string;
    readonly clientId: string;
    readonly clientSecretFile: string;
    readonly cacheSeconds: number;
    readonly cacheMaxEntries: number;
    readonly onFailure: 'deny' | 'error';
    /** Calls to the endpoint under way at most; a token that would need another gets on_failure at once. */
    readonly maxInFlight: number;
    readonly claims: { readonly tier: string };
  } | undefined;
  readonly mtls: { readonly principalsHeader: string; readonly trusted: readonly string[] } | undefined;
  readonly revocation: { readonly enabled: boolean; readonly refreshMs: number; readonly maxStalenessMs: number; readonly onUnavailable: 'allow' | 'deny' };
  readonly policies: readonly PolicySettings[];
}

/** An optional subsection: its required keys are required only when the subsection is there. */
function section<T>(field: Field<T>): Field<T> {
  return (v, p, issues, line) => field(v, p, isAbsent(v) ? new IssueCollector('') : issues, line);
}

/** A mapping with any string keys, each value read by `item`. */
function mapOf<T>(item: Field<T>): Field<Map<string, T>> {
  return (v, p, issues, line) => {
    const out = new Map<string, T>();
    if (isAbsent(v)) return out;
    if (v.kind !== 'map') {
      issues.add(v.line, p, 'expected a mapping');
      return out;
    }
    for (const e of v.entries) out.set(String(e.key.kind === 'scalar' ? e.key.value : ''), item(e.value, joinPath(p, String(e.key.kind === 'scalar' ? e.key.value : '')), issues, e.key.line ?? line));
    return out;
  };
}

/** A claim value as written (`1.10` is "1.10", not 1.1), or a list of them. */
const claimValue: Field<string> = (v, p, issues, line) =>
  !isAbsent(v) && v.kind === 'scalar' && v.value !== null && typeof v.value !== 'object' ? writtenText(v) : string('')(v, p, issues, line);
const stringOrList: Field<string[]> = (v, p, issues, line) =>
  !isAbsent(v) && v.kind === 'seq' ? (list(claimValue)(v, p, issues, line) ?? []) : [claimValue(v, p, issues, line)];

const nonEmpty = (s: string): string | undefined => (s.trim() === '' ? 'must not be empty' : undefined);
const headerName = (s: string): string | undefined => (/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(s) ? undefined : `expected a lower-case HTTP header name, got '${s}'`);
const httpUrl = (s: string): string | undefined => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:' ? undefined : `expected an http(s) URL, got '${s}'`;
  } catch {
    return `expected an http(s) URL, got '${s}'`;
  }
};
export function cidrProblem(s: string): string | undefined {
  const [address, bits, ...rest] = s.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return `expected an IP address or CIDR, got '${s}'`;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))) return `bad prefix length in '${s}'`;
  return undefined;
}
const cidr = string('', cidrProblem);
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'];

const providerSchema = object({
  name: required(string('', nonEmpty)),
  issuer: required(string('', nonEmpty)),
  audiences: list(string('', nonEmpty)),
  algorithms: list(oneOf(JWT_ALGORITHMS, 'RS256')),
  jwks: required(object({ file: string(''), uri: string('', httpUrl), oidc_discovery: string('', httpUrl) })),
  clock_skew_seconds: number(30, { min: 0, max: 600, integer: true }),
  required_claims: list(string('', nonEmpty)),
  type: string(''),
  refresh_seconds: number(300, { min: 1, integer: true }),
  refetch_cooldown_seconds: number(30, { min: 0, integer: true }),
  claims: object({ subject: string('sub'), scopes: string('scope'), roles: string('roles'), tier: string('tier') }),
});

const policySchema = object({
  name: required(string('', nonEmpty)),
  match: object({
    path_prefix: string('', matchPathProblem),
    path: string('', matchPathProblem),
    methods: list(oneOf(METHODS, 'GET')),
    ignore_case: boolean(false),
  }),
  authenticate: required(list(string('', nonEmpty))),
  require: object({ scopes: list(string('', nonEmpty)), roles: list(string('', nonEmpty)), claims: mapOf(stringOrList), principals: list(string('', nonEmpty)) }),
  ip_allow: list(cidr),
});

const sectionSchema = object({
  default_policy: string('deny', nonEmpty),
  client_ip: object({ trusted_hops: number(0, { min: 0, max: 32, integer: true }) }),
  timeout_ms: number(1000, { min: 1, integer: true }),
  log_decisions: boolean(true),
  identity_headers: object({
    user_id: string('x-user-id', headerName),
    auth_method: string('x-auth-method', headerName),
    api_key_id: string('x-api-key-id', headerName),
    tier: string('x-client-tier', headerName),
    scopes: string('x-user-scopes', headerName),
  }),
  // Secret-bearing: a key pasted where its header or file goes; the introspection URL may hold credentials.
  api_keys: section(secret(object({ header: string('x-api-key', headerName), query: string('', (s) => (/^[A-Za-z0-9._~-]+$/.test(s) ? undefined : `bad query parameter name '${s}'`)), file: required(string('', nonEmpty)) }))),
  jwt: section(object({
    providers: required(list(providerSchema)),
    cache_max_entries: number(10000, { min: 0, integer: true }),
    max_token_bytes: number(8192, { min: 256, integer: true }),
  })),
  introspection: section(secret(object({
    url: required(string('', httpUrl)),
    client_id: required(string('', nonEmpty)),
    client_secret_file: required(string('', nonEmpty)),
    cache_seconds: number(60, { min: 0, integer: true }),
    cache_max_entries: number(10000, { min: 0, integer: true }),
    on_failure: oneOf(['deny', 'error'] as const, 'deny'),
    // Per process (each worker has its own). 64 calls at once carry 1,300 new tokens a second at 50 ms each, far past
    // the rate of tokens a gateway has not seen (answers are cached, repeats share a call), while an endpoint slow to
    // CALL_TIMEOUT_MS (5 s) sees 64 connections and 13 calls a second from it, not one per junk token. The maximum
    // keeps a typo from making the bound no bound.
    max_in_flight: number(64, { min: 1, max: 4096, integer: true }),
    claims: object({ tier: string('tier') }),
  }))),
  mtls: object({ principals_header: string('x-forwarded-client-cert', headerName), trusted: list(cidr) }),
  revocation: object({
    enabled: boolean(false),
    refresh_ms: number(1000, { min: 50, integer: true }),
    max_staleness_ms: number(5000, { min: 100, integer: true }),
    on_unavailable: oneOf(['allow', 'deny'] as const, 'deny'),
  }),
  policies: list(policySchema),
});

type RawSection = ReturnType<typeof sectionSchema>;
type Located<T> = { readonly raw: T; readonly present: boolean; readonly lines: Map<string, number> };

/**
 * The schema field for `authz:` (plugged into portcullis.yaml's schema). It remembers whether the section and its
 * optional subsections were there, and where, so compileAuthz can report cross-field problems with lines.
 */
export const authzField: Field<Located<RawSection>> = (v, p, issues, line) => {
  const lines = new Map<string, number>();
  const walk = (node: YamlValue | null | undefined, at: string): void => {
    if (isAbsent(node)) return;
    lines.set(at, node.line);
    if (node.kind === 'map') for (const e of node.entries) if (e.key.kind === 'scalar') walk(e.value, joinPath(at, String(e.key.value)));
    if (node.kind === 'seq') node.items.forEach((it, i) => walk(it, joinPath(at, i)));
  };
  walk(v, p);
  return { raw: sectionSchema(v, p, issues, line), present: !isAbsent(v), lines };
};

/**
 * `authz:` → AuthzSettings, or undefined without the section (Check then denies everything: an unconfigured
 * gateway is closed). Relative paths resolve against the config file's directory.
 */
export function compileAuthz(located: Located<RawSection>, configFile: string, issues: IssueCollector): AuthzSettings | undefined {
  if (!located.present) return undefined;
  const { raw, lines } = located;
  const at = (p: string): number | undefined => lines.get(p) ?? lines.get(p.slice(0, p.lastIndexOf('.'))) ?? lines.get('authz');
  const dir = path.dirname(configFile);
  const has = (key: string): boolean => lines.has(`authz.${key}`);

  const providers: JwtProviderSettings[] = [];
  (raw.jwt.providers ?? []).forEach((pr, i) => {
    const where = `authz.jwt.providers[${i}]`;
    const sources = [pr.jwks.file && 'file', pr.jwks.uri && 'uri', pr.jwks.oidc_discovery && 'oidc_discovery'].filter(Boolean);
    if (sources.length !== 1) issues.add(at(`${where}.jwks`), `${where}.jwks`, 'set exactly one of file, uri, oidc_discovery');
    if (providers.some((x) => x.name === pr.name)) issues.add(at(`${where}.name`), `${where}.name`, `duplicate provider name '${pr.name}'`);
    if ((pr.audiences ?? []).length === 0) issues.add(at(where), `${where}.audiences`, 'list at least one audience: a token for another service must not be accepted');
    if (pr.algorithms?.length === 0) issues.add(at(`${where}.algorithms`), `${where}.algorithms`, 'list at least one algorithm (or leave it out for RS256): with none, every token is refused');
    const jwks: JwksSource = pr.jwks.file
      ? { kind: 'file', path: path.resolve(dir, pr.jwks.file) }
      : pr.jwks.uri ? { kind: 'uri', url: pr.jwks.uri } : { kind: 'oidc', url: pr.jwks.oidc_discovery, issuer: pr.issuer };
    providers.push({
      name: pr.name,
      issuer: pr.issuer,
      audiences: pr.audiences ?? [],
      algorithms: [...new Set<JwtAlgorithm>(pr.algorithms ?? ['RS256'])],
      jwks,
      clockSkewSeconds: pr.clock_skew_seconds,
      requiredClaims: [...new Set(['exp', ...(pr.required_claims ?? [])])],
      type: pr.type || undefined,
      refreshSeconds: pr.refresh_seconds,
      refetchCooldownSeconds: pr.refetch_cooldown_seconds,
      claims: pr.claims,
    });
  });

  const configured: Record<AuthMethod, boolean> = {
    anonymous: true, api_key: has('api_keys'), jwt: has('jwt'), introspection: has('introspection'), mtls: has('mtls'),
  };
  const policies: PolicySettings[] = [];
  (raw.policies ?? []).forEach((po, i) => {
    const where = `authz.policies[${i}]`;
    if (policies.some((x) => x.name === po.name)) issues.add(at(`${where}.name`), `${where}.name`, `duplicate policy name '${po.name}'`);
    if (po.name === 'deny') issues.add(at(`${where}.name`), `${where}.name`, "'deny' is reserved for default_policy");
    const authenticate = (po.authenticate ?? []).map((entry, j) => {
      const [method, provider, ...extra] = entry.split(':');
      const p = `${where}.authenticate[${j}]`;
      if (!AUTH_METHODS.includes(method as AuthMethod) || extra.length > 0 || (provider !== undefined && method !== 'jwt')) {
        issues.add(at(p), p, `unknown method '${entry}' (expected one of: ${AUTH_METHODS.join(', ')}, or jwt:PROVIDER)`);
      } else if (!configured[method as AuthMethod]) {
        issues.add(at(p), p, `method '${method}' is used but authz.${method === 'api_key' ? 'api_keys' : method} is not configured`);
      } else if (provider !== undefined && !providers.some((x) => x.name === provider)) {
        issues.add(at(p), p, `unknown JWT provider '${provider}'`);
      }
      return { method: method as AuthMethod, provider };
    });
    if (authenticate.length === 0 && (po.authenticate ?? []).length === 0 && lines.has(`${where}.authenticate`)) {
      issues.add(at(`${where}.authenticate`), `${where}.authenticate`, 'list at least one method');
    }
    const matchPresent = lines.has(`${where}.match`);
    if (po.match.ignore_case) {
      for (const key of ['path_prefix', 'path'] as const) {
        const problem = ignoreCaseProblem(po.match[key], "name the policy in the Envoy route's context_extensions");
        const p = `${where}.match.${key}`;
        if (problem !== undefined) issues.add(at(p), p, problem);
      }
    }
    policies.push({
      name: po.name,
      line: at(where) ?? 0,
      match: matchPresent
        ? { pathPrefix: normalizedMatchPath(po.match.path_prefix), path: normalizedMatchPath(po.match.path), methods: po.match.methods, ignoreCase: po.match.ignore_case }
        : undefined,
      authenticate,
      require: {
        scopes: po.require.scopes ?? [],
        roles: po.require.roles ?? [],
        claims: po.require.claims,
        principals: po.require.principals ?? [],
      },
      ipAllow: po.ip_allow,
    });
  });
  // Two identity headers under one name would overwrite each other (a tier standing in for the caller) or be both
  // set and removed, so each must name a header of its own; `x_tier` and `x-tier` are one name to an upstream that
  // reads `_` as `-` (header-fold.ts). The issue goes to the key the file wrote (a default can be what the written
  // one collides with).
  const identityNames = new Map<string, [key: string, name: string]>();
  for (const [key, name] of Object.entries(raw.identity_headers)) {
    const first = identityNames.get(foldName(name));
    if (first === undefined) {
      identityNames.set(foldName(name), [key, name]);
      continue;
    }
    const [[written, writtenName], [other, otherName]] = lines.has(`authz.identity_headers.${key}`) ? [[key, name], first] : [first, [key, name]];
    const p = `authz.identity_headers.${written}`;
    const clash = writtenName === otherName ? `is also identity_headers.${other}` : `is identity_headers.${other}'s '${otherName}' to an upstream that reads _ as -`;
    issues.add(at(p), p, `header '${writtenName}' ${clash}: each identity header needs a name of its own`);
  }
  if (raw.default_policy !== 'deny' && !policies.some((x) => x.name === raw.default_policy)) {
    issues.add(at('authz.default_policy'), 'authz.default_policy', `expected deny or a policy name, got '${raw.default_policy}'`);
  }

  return {
    defaultPolicy: raw.default_policy,
    clientIp: { trustedHops: raw.client_ip.trusted_hops },
    timeoutMs: raw.timeout_ms,
    logDecisions: raw.log_decisions,
    identityHeaders: {
      userId: raw.identity_headers.user_id,
      authMethod: raw.identity_headers.auth_method,
      apiKeyId: raw.identity_headers.api_key_id,
      tier: raw.identity_headers.tier,
      scopes: raw.identity_headers.scopes,
    },
    apiKeys: has('api_keys') ? { header: raw.api_keys.header, query: raw.api_keys.query || undefined, file: path.resolve(dir, raw.api_keys.file) } : undefined,
    jwt: has('jwt') ? { providers, cacheMaxEntries: raw.jwt.cache_max_entries, maxTokenBytes: raw.jwt.max_token_bytes } : undefined,
    introspection: has('introspection')
      ? {
        url: raw.introspection.url,
        clientId: raw.introspection.client_id,
        clientSecretFile: path.resolve(dir, raw.introspection.client_secret_file),
        cacheSeconds: raw.introspection.cache_seconds,
        cacheMaxEntries: raw.introspection.cache_max_entries,
        onFailure: raw.introspection.on_failure,
        maxInFlight: raw.introspection.max_in_flight,
        claims: raw.introspection.claims,
      }
      : undefined,
    mtls: has('mtls') ? { principalsHeader: raw.mtls.principals_header, trusted: raw.mtls.trusted ?? [] } : undefined,
    revocation: {
      enabled: raw.revocation.enabled,
      refreshMs: raw.revocation.refresh_ms,
      maxStalenessMs: raw.revocation.max_staleness_ms,
      onUnavailable: raw.revocation.on_unavailable,
    },
    policies,
  };
}

/** Files the section points at, for the watcher and the reload fingerprint. */
export function authzFiles(settings: AuthzSettings | undefined): string[] {
  return authzFileRefs(settings).map((r) => r.file);
}

/** Each file the section points at, with the setting that names it (for an error about the file). */
export function authzFileRefs(settings: AuthzSettings | undefined): { readonly file: string; readonly setting: string }[] {
  if (settings === undefined) return [];
  return [
    ...(settings.apiKeys ? [{ file: settings.apiKeys.file, setting: 'authz.api_keys.file' }] : []),
    ...(settings.jwt?.providers.flatMap((p, i) => (p.jwks.kind === 'file' ? [{ file: p.jwks.path, setting: `authz.jwt.providers[${i}].jwks.file` }] : [])) ?? []),
    ...(settings.introspection ? [{ file: settings.introspection.clientSecretFile, setting: 'authz.introspection.client_secret_file' }] : []),
  ];
}
