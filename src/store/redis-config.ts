// portcullis.yaml's `redis:` section: one of three topologies, as envoyproxy/ratelimit's REDIS_TYPE has them (single,
// cluster, sentinel), parsed once into what createRedisClient takes. The whole section is a secret (schema.ts):
// its errors never quote what the file holds there, and /config shows it redacted (redactRedisSettings).

import type { IssueCollector } from '../config/errors.js';
import { joinPath } from '../config/errors.js';
import { list, number, object, secret, string, type Field } from '../config/schema.js';

/** A master watched by Redis Sentinel: the sentinels are asked where it is, and asked again after a failover. */
export interface SentinelSettings {
  /** The name the sentinels monitor it under (`sentinel monitor <name> …`). */
  readonly master: string;
  /** The sentinels, redis:// or rediss:// URLs; the user info (or ?username= / ?password=) is the sentinels' own. */
  readonly nodes: readonly string[];
  /** The master's (and its replicas') credentials, as redis.url's user info is the single node's. */
  readonly username: string | undefined;
  readonly password: string | undefined;
}

/** Exactly one of url, cluster and sentinel is set. */
export interface RedisSettings {
  readonly url: string | undefined;
  readonly cluster: readonly string[] | undefined;
  readonly sentinel: SentinelSettings | undefined;
  readonly connectTimeoutMs: number;
}

// Parsed here, as ioredis will: a URL it cannot parse would otherwise stop `serve` with a stack trace that prints it,
// password and all. The URL is shown redacted (ConfigError hides every URL's credentials).
const redisUrl = string('', (s) => (/^rediss?:\/\//.test(s) && URL.canParse(s) ? undefined : `expected a redis:// or rediss:// URL, got '${s}'`));
const isTlsUrl = (url: string): boolean => url.startsWith('rediss://');

/**
 * URLs that are all rediss:// or all redis://: ioredis reaches every node of a cluster, and every sentinel and the
 * master it names, the same way (TLS for all or none, createRedisClient), so one scheme among the others would not
 * do what it says. Each URL whose scheme differs from the first one's is reported at its own line.
 */
const sameSchemeUrls = (what: string, reason: string): Field<string[] | undefined> => (v, path, issues, parentLine) => {
  const urls = list(redisUrl)(v, path, issues, parentLine);
  // A URL that is not one reads as '' (reported already): the first valid one sets the scheme.
  const model = urls?.find((url) => url !== '');
  if (urls === undefined || v?.kind !== 'seq' || model === undefined) return urls;
  const first = isTlsUrl(model);
  urls.forEach((url, i) => {
    if (url === '' || isTlsUrl(url) === first) return;
    const [it, among] = first ? ['redis://', 'rediss://'] : ['rediss://', 'redis://'];
    issues.add(v.items[i]?.line ?? v.line, joinPath(path, i), `a ${it} ${what} among ${among} ${what}s ('${url}'): ${reason}, so all ${what}s must be rediss:// or all redis://`);
  });
  return urls;
};

/**
 * The credentials a redis:// URL carries: its user info, else its `password` / `username` query parameters (as
 * ioredis reads a URL). Empty when it has none or is not a URL.
 */
export function urlCredentials(url: string): { readonly username?: string; readonly password?: string } {
  if (!/^rediss?:\/\//i.test(url) || !URL.canParse(url)) return Object.freeze({});
  const parsed = new URL(url);
  const fromUserInfo = parsed.username !== '' || parsed.password !== '';
  const username = fromUserInfo ? decodeURIComponent(parsed.username) : (parsed.searchParams.get('username') ?? '');
  const password = fromUserInfo ? decodeURIComponent(parsed.password) : (parsed.searchParams.get('password') ?? '');
  return Object.freeze({ ...(username === '' ? {} : { username }), ...(password === '' ? {} : { password }) });
}

const hasCredentials = (c: { readonly username?: string; readonly password?: string }): boolean => c.username !== undefined || c.password !== undefined;

/**
 * `redis.sentinel`. ioredis authenticates to every sentinel with one set of credentials (sentinelUsername /
 * sentinelPassword), also to the sentinels it learns from the others: nodes that carry credentials must carry the same
 * ones (a node without any gets them too).
 */
const sentinelField: Field<SentinelSettings | undefined> = (v, path, issues, parentLine) => {
  const raw = object({
    master: string('', (s) => (/^[^\s]+$/.test(s) ? undefined : `expected the name the sentinels monitor the master under, got '${s}'`)),
    nodes: sameSchemeUrls('sentinel', 'the sentinels and the master they name are reached over TLS or none is'),
    username: string(''),
    password: string(''),
  })(v, path, issues, parentLine);
  if (v === undefined || v === null || v.kind !== 'map') return undefined;
  const line = (key: string): number | undefined => v.entries.find((e) => e.key.kind === 'scalar' && e.key.value === key)?.key.line;
  if (raw.master === '' && line('master') === undefined) issues.add(v.line ?? parentLine, joinPath(path, 'master'), 'is required: the name the sentinels monitor the master under');
  const nodes = raw.nodes ?? [];
  if (nodes.length === 0 && (raw.nodes !== undefined || line('nodes') === undefined)) {
    issues.add(line('nodes') ?? v.line ?? parentLine, joinPath(path, 'nodes'), 'is required: at least one sentinel, redis://host:26379');
  }
  const nodesValue = v.entries.find((e) => e.key.kind === 'scalar' && e.key.value === 'nodes')?.value;
  let shared: { readonly username?: string; readonly password?: string } | undefined;
  nodes.forEach((node, i) => {
    const credentials = urlCredentials(node);
    if (!hasCredentials(credentials)) return;
    if (shared === undefined) shared = credentials;
    else if (shared.username !== credentials.username || shared.password !== credentials.password) {
      issues.add(nodesValue?.kind === 'seq' ? (nodesValue.items[i]?.line ?? nodesValue.line) : undefined, joinPath(joinPath(path, 'nodes'), i),
        `other credentials than an earlier sentinel ('${node}'): every sentinel is authenticated with the same ones, so give each node the same credentials (or give them to one)`);
    }
  });
  return { master: raw.master, nodes, username: raw.username || undefined, password: raw.password || undefined };
};

/** The `redis:` section as the schema reads it; compileRedis() checks the topologies against each other. */
export const redisField = secret(object({
  url: redisUrl,
  cluster: sameSchemeUrls('seed', 'every node of a cluster is reached over TLS or none is'),
  sentinel: sentinelField,
  connect_timeout_ms: number(2000, { min: 1, max: 60_000, integer: true }),
}));

type RawRedis = ReturnType<typeof redisField>;

/** undefined: no Redis (the in-memory store). `section` is the `redis` key's line, for the check across keys. */
export function compileRedis(raw: RawRedis, sectionLine: number | undefined, issues: IssueCollector): RedisSettings | undefined {
  const set = [raw.url !== '' ? 'url' : undefined, raw.cluster !== undefined ? 'cluster' : undefined, raw.sentinel !== undefined ? 'sentinel' : undefined]
    .filter((name) => name !== undefined);
  if (set.length > 1) issues.add(sectionLine, 'redis', `set one of url, cluster and sentinel, not ${set.join(' and ')}`);
  if (set.length === 0) return undefined;
  return { url: raw.url || undefined, cluster: raw.cluster, sentinel: raw.sentinel, connectTimeoutMs: raw.connect_timeout_ms };
}

/** Whether a `redis:` section configures a store (for the checks of other sections, even while it has errors). */
export function redisConfigured(raw: RawRedis): boolean {
  return raw.url !== '' || raw.cluster !== undefined || raw.sentinel !== undefined;
}

/**
 * The settings as /config shows them, minus what redactUrlCredentials cannot see: the master's password is a plain
 * string, not a URL's user info.
 */
export function redactRedisSettings(redis: RedisSettings): RedisSettings {
  if (redis.sentinel?.password === undefined) return redis;
  return { ...redis, sentinel: { ...redis.sentinel, password: '***' } };
}
