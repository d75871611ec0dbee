// Cache keys. An entry lives under a path key (host and normalized path: what an unsafe request invalidates as a
// whole) and a variant (sorted query and the caller). The Vary headers the response named are kept in the entry and
// compared on lookup (one variant per key: a different Vary value replaces it).

import { alreadyNormal, normalizePath } from '../shared/normalize-path.js';
import { sha256 } from '../shared/sha256.js';

export interface SplitPath {
  /**
   * Normalized as ext_authz normalizes (src/shared/normalize-path.ts): dot segments removed, `//` merged, unreserved
   * percent-encodings decoded, other encodings upper-cased. A path that normalization refuses (`refused`) is kept as
   * sent, without its query.
   */
  readonly path: string;
  /**
   * Whether the path arrived in normal form. Only such a request may use the cache: the upstream serves the path as
   * sent, so a response to `/a/x/../b` stored as `/b` would be served to everyone asking for `/b`.
   */
  readonly normal: boolean;
  /**
   * Why normalization refused the path (`;`, an encoded slash, a double-encoded escape, …): upstreams read it in
   * different ways, so no single route is its route (route-choice.ts).
   */
  readonly refused: string | undefined;
  /** Decoded query parameters in request order. */
  readonly query: readonly (readonly [string, string])[];
  /**
   * The raw query parameters sorted by name, each name's values kept in request order (`id=1&id=2` and `id=2&id=1`
   * are different requests to most frameworks): the cache key's query part.
   */
  readonly sortedQuery: string;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function normalizeEncoding(segment: string): string {
  if (!segment.includes('%')) return segment;
  return segment.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : `%${hex.toUpperCase()}`;
  });
}

function decode(text: string): string {
  if (!text.includes('%') && !text.includes('+')) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

export function splitPath(rawPath: string): SplitPath {
  const hash = rawPath.indexOf('#');
  const withoutFragment = hash === -1 ? rawPath : rawPath.slice(0, hash);
  const q = withoutFragment.indexOf('?');
  const pathPart = q === -1 ? withoutFragment : withoutFragment.slice(0, q);
  const query = q === -1 ? '' : withoutFragment.slice(q + 1);
  if (alreadyNormal(pathPart)) return new Split(pathPart, true, undefined, query);
  // Header values are latin1 here (one char per byte): a raw byte above 0x7F is escaped as the byte it is, so UTF-8
  // is read as UTF-8 and an overlong or invalid sequence is refused, as ext_authz does with the same bytes.
  // eslint-disable-next-line no-control-regex
  const bytes = /[^\u0000-\u007f]/.test(pathPart) ? pathPart.replace(/[^\u0000-\u007f]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`) : pathPart;
  const normalized = normalizePath(bytes);
  if (!normalized.ok) return new Split(pathPart, false, normalized.reason, query);
  return new Split(normalized.path, normalized.path === pathPart, undefined, query);
}

/** The query is taken apart only when asked: a route with no validation and no cache never reads it. */
class Split implements SplitPath {
  private decoded: SplitPath['query'] | undefined;
  private sorted: string | undefined;
  constructor(readonly path: string, readonly normal: boolean, readonly refused: string | undefined, private readonly queryPart: string) {}
  private pairs(): string[] {
    return this.queryPart.split('&').filter((p) => p !== '');
  }
  get query(): SplitPath['query'] {
    return (this.decoded ??= this.pairs().map((p): readonly [string, string] => {
      const eq = p.indexOf('=');
      return eq === -1 ? [decode(p), ''] : [decode(p.slice(0, eq)), decode(p.slice(eq + 1))];
    }));
  }
  get sortedQuery(): string {
    // Array sort is stable: equal names keep their order.
    return (this.sorted ??= this.pairs().map(normalizeEncoding).sort(byName).join('&'));
  }
}

function nameOf(pair: string): string {
  const eq = pair.indexOf('=');
  return eq === -1 ? pair : pair.slice(0, eq);
}

function byName(a: string, b: string): number {
  const [x, y] = [nameOf(a), nameOf(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

const sha = (text: string): string => sha256(text, 'hex');

/** Key of everything stored for one host + path (invalidated together). `scheme` is the request's :scheme, if sent. */
export function pathKey(host: string, path: string, scheme?: string): string {
  return sha(`${keyHost(host, scheme)}\n${path}`).slice(0, 40);
}

const DEFAULT_PORTS: Readonly<Record<string, readonly string[]>> = { http: ['80'], https: ['443'] };

/**
 * The host as keyed: lower case, without the scheme's default port, so `shop`, `SHOP:80` and `shop:` name one URI
 * (RFC 3986 §6.2.3) and a PUT through one spelling invalidates what a GET through another stored. Without a known
 * scheme both :80 and :443 are dropped: a gateway serves http and https, and those are their ports.
 */
export function keyHost(host: string, scheme: string | undefined): string {
  const lower = host.toLowerCase();
  // The port follows the last colon, and after a bracketed IPv6 literal; a bare colon inside one is not a port.
  const port = /^(\[[^\]]*\]|[^:[\]]*):(\d*)$/.exec(lower);
  if (port === null) return lower;
  const digits = port[2]!.replace(/^0+(?=\d)/, '');
  const defaults = DEFAULT_PORTS[scheme?.toLowerCase() ?? ''] ?? ['80', '443'];
  return digits === '' || defaults.includes(digits) ? port[1]! : lower;
}

/** Variant within a path key: sorted query and caller ('' for a public route). */
export function variantKey(sortedQuery: string, caller: string): string {
  return sha(`${sortedQuery}\n${caller}`).slice(0, 40);
}

/**
 * Who is asking, for a non-public route's key: the identity ext_authz established, else a hash of the credential
 * headers (never the raw value), else 'anonymous'.
 */
export function callerKey(identity: string | undefined, credentials: readonly (string | undefined)[]): string {
  if (identity !== undefined && identity !== '') return `id:${sha(identity)}`;
  const present = credentials.filter((c): c is string => c !== undefined && c !== '');
  return present.length === 0 ? 'anonymous' : `cred:${sha(present.join('\n'))}`;
}

/** A header value as compared for Vary: trimmed, inner whitespace collapsed; null when absent. */
export function varyValue(value: string | undefined): string | null {
  return value === undefined ? null : value.trim().replace(/\s+/g, ' ');
}
