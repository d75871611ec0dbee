// portcullis.yaml's `redis:` section: one of three topologies, as envoyproxy/ratelimit's REDIS_TYPE has them (single,
// cluster, sentinel), parsed once into what createRedisClient takes. The whole section is a secret (schema.ts):
// its errors never quote what the file holds there, and /config shows it redacted (redactRedisSettings).

import { isIP } from 'node:net';
import path from 'node:path';
import { readNamedFileSync } from '../config/config-text.js';
import { joinPath, type IssueCollector } from '../config/errors.js';
import { list, number, object, secret, string, type Field } from '../config/schema.js';
import { keyPairProblem, MAX_PEM_FILE_BYTES, parsePemCertificates, parsePemPrivateKey } from '../shared/pem.js';

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

/**
 * `redis.tls`: the files for every connection a client makes (the node, every node of a cluster, the sentinels and
 * the master they name), read and checked once at load. Only with rediss:// URLs, which are what turns TLS on.
 */
export interface RedisTlsSettings {
  /** The CAs that replace the ones Node trusts (its Mozilla list and NODE_EXTRA_CA_CERTS); undefined: those. */
  readonly caFile: string | undefined;
  /** The client certificate (a chain: the client's first) shown to a server with tls-auth-clients, and its key. */
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  /** The name sent as SNI and checked against the servers' certificates instead of the host connected to. */
  readonly serverName: string | undefined;
  /**
   * The files' text as read at load. Undefined for a file not set, and for every file when the config was only checked
   * (checkPortcullisConfigOffThread): createRedisClient refuses that. The key is never shown (redactRedisSettings).
   */
  readonly pem: { readonly ca: string | undefined; readonly cert: string | undefined; readonly key: string | undefined };
}

/** Exactly one of url, cluster and sentinel is set. */
export interface RedisSettings {
  readonly url: string | undefined;
  readonly cluster: readonly string[] | undefined;
  readonly sentinel: SentinelSettings | undefined;
  readonly tls: RedisTlsSettings | undefined;
  readonly connectTimeoutMs: number;
}

/**
 * Reads a file redis.tls names (an absolute path); throws with why it cannot. compileRedis is given none (null) when
 * the config is only checked, off the serving thread, as a function of its text.
 */
export type RedisTlsFileReader = (file: string) => string;

/** Reads a redis.tls file from disk, as every file the config names is read (a regular file, bounded, UTF-8). */
export const readRedisTlsFile: RedisTlsFileReader = (file) => readNamedFileSync(file, MAX_PEM_FILE_BYTES);

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

/** A `redis.tls` setting as written, with its line (for the checks compileRedis makes of the files it names). */
interface Located {
  readonly value: string;
  readonly line: number | undefined;
}
interface RawRedisTls {
  readonly line: number | undefined;
  readonly caFile: Located | undefined;
  readonly certFile: Located | undefined;
  readonly keyFile: Located | undefined;
  readonly serverName: Located | undefined;
}

const nonEmpty = (s: string): string | undefined => (s.trim() === '' ? 'expected a file path' : undefined);
// SNI carries a host name only (Node refuses an IP address there): an IP is checked against the certificate as is.
const serverName = (s: string): string | undefined =>
  isIP(s) !== 0 ? 'an IP address is not a server name: leave server_name out, certificates are checked against the address connected to'
    : /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$/.test(s) ? undefined
      : 'expected a host name (the name the servers\' certificates carry)';

/** `redis.tls`, as written: the files are read and checked by compileRedis, which knows the topology and the config's directory. */
const tlsField: Field<RawRedisTls | undefined> = (v, path, issues, parentLine) => {
  const raw = object({ ca_file: string('', nonEmpty), cert_file: string('', nonEmpty), key_file: string('', nonEmpty), server_name: string('', serverName) })(v, path, issues, parentLine);
  if (v === undefined || v === null || v.kind !== 'map') return undefined;
  const at = (key: string, value: string): Located | undefined => {
    const entry = v.entries.find((e) => e.key.kind === 'scalar' && e.key.value === key);
    return value === '' ? undefined : { value, line: entry?.value?.line ?? entry?.key.line };
  };
  return {
    // The `tls:` key's: where a problem with the section as a whole is reported.
    line: parentLine,
    caFile: at('ca_file', raw.ca_file), certFile: at('cert_file', raw.cert_file), keyFile: at('key_file', raw.key_file), serverName: at('server_name', raw.server_name),
  };
};

/** The `redis:` section as the schema reads it; compileRedis() checks the topologies against each other. */
export const redisField = secret(object({
  url: redisUrl,
  cluster: sameSchemeUrls('seed', 'every node of a cluster is reached over TLS or none is'),
  sentinel: sentinelField,
  tls: tlsField,
  connect_timeout_ms: number(2000, { min: 1, max: 60_000, integer: true }),
}));

type RawRedis = ReturnType<typeof redisField>;

/** Where the files redis.tls names are: relative paths are the config file's directory's; `read` null: not read. */
export interface RedisFiles {
  readonly dir: string;
  readonly read: RedisTlsFileReader | null;
}

/**
 * undefined: no Redis (the in-memory store). `section` is the `redis` key's line, for the check across keys. The files
 * redis.tls names are read with `files.read` and checked here, each problem reported at the setting that names the file.
 */
export function compileRedis(raw: RawRedis, sectionLine: number | undefined, issues: IssueCollector, files: RedisFiles): RedisSettings | undefined {
  const set = [raw.url !== '' ? 'url' : undefined, raw.cluster !== undefined ? 'cluster' : undefined, raw.sentinel !== undefined ? 'sentinel' : undefined]
    .filter((name) => name !== undefined);
  if (set.length > 1) issues.add(sectionLine, 'redis', `set one of url, cluster and sentinel, not ${set.join(' and ')}`);
  if (set.length === 0) {
    if (raw.tls !== undefined) issues.add(raw.tls.line, 'redis.tls', 'is set but no Redis is: set url, cluster or sentinel (rediss:// URLs) too');
    return undefined;
  }
  const tls = raw.tls === undefined ? undefined : compileTls(raw.tls, plaintextTopology(raw), issues, files);
  return { url: raw.url || undefined, cluster: raw.cluster, sentinel: raw.sentinel, tls, connectTimeoutMs: raw.connect_timeout_ms };
}

/** What is configured over plaintext (redis:// URLs), for the message that refuses redis.tls with it; undefined: TLS. */
function plaintextTopology(raw: RawRedis): string | undefined {
  const plain = (urls: readonly string[]): boolean => urls.some((url) => url !== '') && !urls.some(isTlsUrl);
  if (raw.url !== '' && !isTlsUrl(raw.url)) return 'redis.url is redis://';
  if (raw.cluster !== undefined && plain(raw.cluster)) return 'the cluster seeds are redis://';
  if (raw.sentinel !== undefined && plain(raw.sentinel.nodes)) return 'the sentinels are redis://';
  return undefined;
}

/**
 * redis.tls checked and its files read. With redis:// URLs it is an error, not TLS turned on: the scheme is the one
 * switch for TLS everywhere else (a URL alone, the cluster seeds, the sentinels), and a config that names certificates
 * while its connections are plaintext (the password and every count in the clear) is a mistake to stop at, not to guess at.
 */
function compileTls(raw: RawRedisTls, plaintext: string | undefined, issues: IssueCollector, files: RedisFiles): RedisTlsSettings {
  if (plaintext !== undefined) {
    issues.add(raw.line, 'redis.tls', `TLS settings for plaintext connections (${plaintext}): use rediss:// URLs, which connect over TLS with these settings`);
  }
  // A certificate alone cannot be shown (the handshake needs its key), and a key alone is nothing to show.
  if (raw.certFile !== undefined && raw.keyFile === undefined) issues.add(raw.certFile.line ?? raw.line, 'redis.tls.cert_file', 'needs key_file: the private key of the client certificate');
  if (raw.keyFile !== undefined && raw.certFile === undefined) issues.add(raw.keyFile.line ?? raw.line, 'redis.tls.key_file', 'needs cert_file: the client certificate the key belongs to');
  const absolute = (setting: Located | undefined): string | undefined => (setting === undefined ? undefined : path.resolve(files.dir, setting.value));
  const read = (setting: Located | undefined, key: string): string | undefined => {
    const file = absolute(setting);
    if (setting === undefined || file === undefined || files.read === null) return undefined;
    try {
      return files.read(file);
    } catch (error) {
      issues.add(setting.line ?? raw.line, `redis.tls.${key}`, (error as Error).message);
      return undefined;
    }
  };
  const ca = read(raw.caFile, 'ca_file');
  const cert = read(raw.certFile, 'cert_file');
  const key = read(raw.keyFile, 'key_file');
  const problem = (setting: Located | undefined, name: string, message: string): void =>
    issues.add(setting?.line ?? raw.line, `redis.tls.${name}`, `${absolute(setting) ?? ''} ${message}`);
  if (ca !== undefined) {
    const parsed = parsePemCertificates(ca);
    if ('problem' in parsed) problem(raw.caFile, 'ca_file', parsed.problem);
  }
  const certificate = cert === undefined ? undefined : parsePemCertificates(cert);
  if (certificate !== undefined && 'problem' in certificate) problem(raw.certFile, 'cert_file', certificate.problem);
  const privateKey = key === undefined ? undefined : parsePemPrivateKey(key);
  if (privateKey !== undefined && 'problem' in privateKey) problem(raw.keyFile, 'key_file', privateKey.problem);
  if (certificate !== undefined && 'certificates' in certificate && privateKey !== undefined && 'key' in privateKey) {
    const mismatch = keyPairProblem(certificate.certificates[0]!, privateKey.key);
    if (mismatch !== undefined) problem(raw.keyFile, 'key_file', mismatch.replace(/^the private key/, 'the private key it holds'));
  }
  return {
    caFile: absolute(raw.caFile), certFile: absolute(raw.certFile), keyFile: absolute(raw.keyFile), serverName: raw.serverName?.value,
    pem: { ca, cert, key },
  };
}

/** Whether a `redis:` section configures a store (for the checks of other sections, even while it has errors). */
export function redisConfigured(raw: RawRedis): boolean {
  return raw.url !== '' || raw.cluster !== undefined || raw.sentinel !== undefined;
}

/** The settings as /config shows them: redis.tls's file paths without their text. */
export type ShownRedisSettings = Omit<RedisSettings, 'tls'> & { readonly tls: Omit<RedisTlsSettings, 'pem'> | undefined };

/**
 * The settings as /config shows them, minus what redactUrlCredentials cannot see: the master's password is a plain
 * string, not a URL's user info, and redis.tls's files are shown by their paths alone (the key file's text is the
 * client's private key).
 */
export function redactRedisSettings(redis: RedisSettings): ShownRedisSettings {
  const tls = redis.tls === undefined ? undefined : { caFile: redis.tls.caFile, certFile: redis.tls.certFile, keyFile: redis.tls.keyFile, serverName: redis.tls.serverName };
  return { ...redis, ...(redis.sentinel?.password === undefined ? {} : { sentinel: { ...redis.sentinel, password: '***' } }), tls };
}
