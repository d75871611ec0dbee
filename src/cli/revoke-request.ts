import type { RevocationEntry, RevocationKind } from '../authz/ports.js';

/** A revoked jti is kept a day by default (longer than most access tokens live); a revoked key id a hundred years. */
export const DEFAULT_TTL_SECONDS = { jti: 86_400, key: 100 * 365 * 86_400 } as const;
/** Longer than any token lives; also keeps now + ttl a date `Date` can print (checked before anything is written). */
export const MAX_TTL_SECONDS = 10 * 365 * 86_400;

export interface RevokeOptions {
  readonly config?: string;
  readonly jti?: string;
  readonly apiKeyId?: string;
  /** Seconds the entry is kept; after that it is forgotten (the token has expired, or the key was removed). */
  readonly ttl?: string;
  /** Remove the entry for --jti / --api-key-id instead of adding it. */
  readonly lift?: boolean;
  /** Print every entry in effect. */
  readonly list?: boolean;
}

export type RevokeRequest =
  | { readonly action: 'revoke'; readonly config: string; readonly kind: RevocationKind; readonly id: string; readonly ttlSeconds: number }
  | { readonly action: 'lift'; readonly config: string; readonly kind: RevocationKind; readonly id: string }
  | { readonly action: 'list'; readonly config: string }
  | { readonly action: 'usage'; readonly message: string };

const USAGE = '--config FILE and one of: --jti ID or --api-key-id ID (to revoke; with --lift, to lift), or --list';

/** What a `revoke` command line asks for, or why it asks for nothing sensible (exit 2): decided before any I/O. */
export function revokeRequest(options: RevokeOptions): RevokeRequest {
  const usage = (message: string): RevokeRequest => ({ action: 'usage', message });
  const both = options.jti !== undefined && options.apiKeyId !== undefined;
  const kind = options.jti !== undefined ? 'jti' : options.apiKeyId !== undefined ? 'key' : undefined;
  const id = options.jti ?? options.apiKeyId ?? '';
  if (!options.config) return usage(USAGE);
  if (options.list) {
    if (kind !== undefined || options.lift || options.ttl !== undefined) return usage('--list takes no --jti, --api-key-id, --lift or --ttl');
    return { action: 'list', config: options.config };
  }
  if (kind === undefined || both || id === '') return usage(USAGE);
  if (options.lift) {
    if (options.ttl !== undefined) return usage('--lift takes no --ttl (to shorten a revocation, lift it and revoke again)');
    return { action: 'lift', config: options.config, kind, id };
  }
  // Digits only: Number() would also take '1e3', '0x10' and ' 7 ', which are not what an operator means by seconds.
  const ttl = options.ttl === undefined ? DEFAULT_TTL_SECONDS[kind] : /^[0-9]{1,10}$/.test(options.ttl) ? Number(options.ttl) : Number.NaN;
  if (options.ttl !== undefined && !(ttl > 0 && ttl <= MAX_TTL_SECONDS)) return usage(`--ttl must be a whole number of seconds from 1 to ${MAX_TTL_SECONDS} (10 years), not '${options.ttl}'`);
  return { action: 'revoke', config: options.config, kind, id, ttlSeconds: ttl };
}

/** The kind as operators name it: the option that takes it. */
export const KIND_NAMES: Readonly<Record<RevocationKind, string>> = { jti: 'jti', key: 'api-key-id' };
const KIND_WORDS: Readonly<Record<RevocationKind, string>> = { jti: 'jti', key: 'API key id' };

/**
 * An id as a terminal may show it: control characters (C0, DEL, C1), line and paragraph separators and bidi controls
 * escaped, so an id written straight into Redis cannot move the cursor, recolour, hide or reorder the output.
 * Backslash is escaped too, so every escape is unambiguous.
 */
export function printableId(id: string): string {
  return id.replace(/[\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** An entry's until as ISO time; 'never' for an id revoked for good (+inf), the raw number past what Date can show. */
export function untilText(untilMs: number): string {
  if (untilMs === Number.POSITIVE_INFINITY) return 'never';
  const date = new Date(untilMs);
  return Number.isNaN(date.getTime()) ? String(untilMs) : date.toISOString();
}

/** "until <ISO time>", or "for good" (+inf). */
export function untilPhrase(untilMs: number): string {
  return untilMs === Number.POSITIVE_INFINITY ? 'for good' : `until ${untilText(untilMs)}`;
}

/** Who the message is about: "jti 3f1c" or "API key id alice-1", printable. */
export function describeId(kind: RevocationKind, id: string): string {
  return `${KIND_WORDS[kind]} ${printableId(id)}`;
}

/**
 * `revoke --list`: one line per entry (kind as its option, until, id last so an id with spaces stays readable),
 * sorted by kind then id (code point order: the same on every machine), then the count.
 */
export function formatRevocations(entries: readonly RevocationEntry[]): string {
  const sorted = [...entries].sort((a, b) => cmp(KIND_NAMES[a.kind], KIND_NAMES[b.kind]) || cmp(a.id, b.id));
  const rows = sorted.map((e) => [KIND_NAMES[e.kind], untilText(e.untilMs), printableId(e.id)] as const);
  const widths = [0, 1].map((c) => Math.max(c === 0 ? 'KIND'.length : 'UNTIL'.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]): string => `${cells[0]!.padEnd(widths[0]!)}  ${cells[1]!.padEnd(widths[1]!)}  ${cells[2]!}\n`;
  const count = (kind: RevocationKind): number => entries.filter((e) => e.kind === kind).length;
  const total = `${entries.length} revoked (${count('jti')} jti, ${count('key')} API key id${count('key') === 1 ? '' : 's'})\n`;
  return entries.length === 0 ? total : line(['KIND', 'UNTIL', 'ID']) + rows.map(line).join('') + total;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
