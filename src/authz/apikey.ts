import { randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { ConfigError, IssueCollector, joinPath, NOT_SHOWN } from '../config/errors.js';
import { boolean, list, object, required, string } from '../config/schema.js';
import { runOffThread } from '../config/off-thread.js';
import { parseYaml } from '../config/yaml.js';
import { sha256 } from '../shared/sha256.js';
import { isUsableSubject, UNUSABLE_SUBJECT } from './subject.js';
import type { CheckInput, Identity, Outcome } from './types.js';

/** One entry of keys.yaml, indexed. Only the SHA-256 of a key is ever stored. */
export interface ApiKeyEntry extends Omit<KeyEntryData, 'sha256'> {
  readonly sha256: Buffer;
  /** Built once per entry: every request with this key names the same caller (and so shares one Grant). */
  readonly identity: Identity;
}

/** keys.yaml compiled: entries by hex digest, for an O(1) lookup. */
export interface ApiKeySet {
  readonly byHash: ReadonlyMap<string, ApiKeyEntry>;
}

const entrySchema = object({
  id: required(string('', (s) => (/^[A-Za-z0-9._:-]{1,128}$/.test(s) ? undefined : `expected an id of letters, digits and ._:- , got '${s}'`))),
  sha256: required(string('', (s) => (/^[0-9a-f]{64}$/.test(s) ? undefined : 'expected 64 lower-case hex digits (sha256 of the key)'))),
  // The caller's name upstream (x-user-id); the id when not given.
  owner: string('', (s) => (isUsableSubject(s) ? undefined : UNUSABLE_SUBJECT)),
  tier: string(''),
  scopes: list(string('')),
  roles: list(string('')),
  disabled: boolean(false),
});

/** The keys of an entry (entrySchema's): an unknown one is not shown. */
const ENTRY_KEYS = { id: true, sha256: true, owner: true, tier: true, scopes: true, roles: true, disabled: true } as const;

/**
 * The issues of a keys file quote nothing the file says, in messages or paths: a plaintext key pasted where its
 * sha256, id or owner goes, as a list item or as a key name would be printed by validate and logged by a reload.
 * The whole file is secret-bearing (IssueCollector's concealing rule, numbers and values holding `'` included).
 */
class UnquotingIssues extends IssueCollector {
  constructor(file: string) {
    super(file, [], true);
  }
  override add(line: number | undefined, at: string, message: string): void {
    const shownPath = at.replace(/\.([^.[\]]+)/g, (whole, key: string) => (Object.hasOwn(ENTRY_KEYS, key) ? whole : `.${NOT_SHOWN}`));
    super.add(line, shownPath, message);
  }
}

/** One entry of keys.yaml as read, before it is indexed: plain data (it crosses from a worker thread). */
export interface KeyEntryData {
  readonly id: string;
  /** Lower-case hex. */
  readonly sha256: string;
  readonly owner: string;
  readonly tier: string;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly disabled: boolean;
}

/** Parses keys.yaml (a YAML list); throws ConfigError naming file, line and path of every problem. */
export function parseKeysFile(text: string, file: string): ApiKeySet {
  return keySetOf(readKeyEntries({ text, file }));
}

/**
 * parseKeysFile with the parse in a worker thread, within `timeoutMs`: a keys file may hold a hundred thousand keys
 * (seconds of YAML), or be hostile, and the serving thread only indexes what comes back.
 */
export async function parseKeysFileOffThread(text: string, file: string, timeoutMs: number): Promise<ApiKeySet> {
  const entries = await runOffThread<KeyEntryData[]>(new URL(import.meta.url), 'readKeyEntries', { text, file }, {
    timeoutMs, what: path.basename(file), setting: 'the keys file load budget',
  });
  return keySetOf(entries);
}

/** keys.yaml's entries, validated; throws ConfigError naming file, line and path of every problem. */
export function readKeyEntries({ text, file }: { readonly text: string; readonly file: string }): KeyEntryData[] {
  const issues = new UnquotingIssues(path.basename(file));
  // An empty file is what a reload reads while an editor rewrites the file in place (truncate, then write): taken as
  // "no keys", it would refuse every key, and stay the last good file if what follows is broken.
  if (text.trim() === '') {
    issues.add(1, '', 'keys file is empty (write [] for a file without keys)');
    throw new ConfigError(issues.issues);
  }
  const parsed = parseYaml(text, { singleDocument: true });
  if (!parsed.ok) {
    issues.add(parsed.line, '', `invalid YAML: ${parsed.message}`);
    throw new ConfigError(issues.issues);
  }
  const entries: KeyEntryData[] = [];
  const hashes = new Set<string>();
  const ids = new Set<string>();
  const root = parsed.root;
  if (root !== null && root.kind !== 'seq') issues.add(root.line, '', 'expected a list of keys');
  const items = root?.kind === 'seq' ? root.items : [];
  items.forEach((item, i) => {
    const at = joinPath('', i);
    const raw = entrySchema(item, at, issues, item?.line ?? 1);
    const line = item?.line;
    if (raw.id !== '' && ids.has(raw.id)) issues.add(line, `${at}.id`, `duplicate key id '${raw.id}'`);
    if (raw.sha256 !== '' && hashes.has(raw.sha256)) issues.add(line, `${at}.sha256`, 'duplicate sha256: two entries for one key');
    ids.add(raw.id);
    hashes.add(raw.sha256);
    entries.push({ id: raw.id, sha256: raw.sha256, owner: raw.owner || raw.id, tier: raw.tier, scopes: raw.scopes ?? [], roles: raw.roles ?? [], disabled: raw.disabled });
  });
  if (issues.issues.length > 0) throw new ConfigError(issues.issues);
  return entries;
}

/** Validated entries indexed by hash, each with the Identity every request with its key shares. */
export function keySetOf(entries: readonly KeyEntryData[]): ApiKeySet {
  const byHash = new Map<string, ApiKeyEntry>();
  for (const e of entries) {
    const scopes = Object.freeze([...e.scopes]);
    const roles = Object.freeze([...e.roles]);
    byHash.set(e.sha256, {
      id: e.id,
      sha256: Buffer.from(e.sha256, 'hex'),
      owner: e.owner,
      tier: e.tier,
      scopes,
      roles,
      disabled: e.disabled,
      identity: Object.freeze({ method: 'api_key', subject: e.owner, apiKeyId: e.id, tier: e.tier || undefined, scopes, roles, claims: {}, reused: true }),
    });
  }
  return { byHash };
}

/** Keys this long or longer are refused unhashed: nobody was issued one. */
const MAX_KEY_LENGTH = 256;

/**
 * Every key presented: the header (when not empty) and each occurrence of the query parameter, so that a second key
 * is refused rather than one of them chosen. `from` says where a key sits, for the detail.
 */
function presentedKeys(input: CheckInput, header: string, query: string | undefined, rawQuery: string): { key: string; from: 'header' | 'query' }[] {
  const found: { key: string; from: 'header' | 'query' }[] = [];
  const fromHeader = input.headers.get(header);
  if (fromHeader !== undefined && fromHeader !== '') found.push({ key: fromHeader.trim(), from: 'header' });
  if (query === undefined || rawQuery === '') return found;
  for (const pair of rawQuery.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq >= 0 ? pair.slice(0, eq) : pair;
    if (name !== query) continue;
    try {
      found.push({ key: decodeURIComponent((eq >= 0 ? pair.slice(eq + 1) : '').replace(/\+/g, ' ')), from: 'query' });
    } catch {
      found.push({ key: '', from: 'query' });
    }
  }
  return found;
}

/**
 * A parameter name as the frameworks behind a gateway read it: escapes (byte by byte, a malformed one kept) and `+`
 * decoded, in any case; PHP's `$_GET` also drops leading spaces and turns `.`, ` ` and an unmatched `[` into `_`, and
 * PHP, Rails and qs read `name[]`, `name[0]`, `name[a][b]` as `name`.
 */
function readAs(raw: string): string {
  const decoded = raw.replace(/\+/g, ' ').replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return decoded.toLowerCase().replace(/\[[^\]]*\].*$/, '').trimStart().replace(/[. []/g, '_');
}

/** Most names are none of the key's spellings at a glance: nothing to decode or fold, another length. */
const FOLDED = /[%+.\[ ]/;

/**
 * Whether the query holds the API key parameter as configured, and the first parameter that is only another spelling
 * of it (`api%5Fkey`, `API_KEY`, `api_key[]`, `api.key`, `;api_key` after a `;`, which Rack, older Python and Java
 * servlet containers take for a separator, or `api_key;` before one with no `=` between). Envoy's query_parameters_to_remove matches names as written between `&`s,
 * so another spelling would reach the upstream with its key, where a framework may well read it as the parameter.
 */
export function keyParameterIn(rawQuery: string, name: string): { present: boolean; miswritten: string | undefined } {
  let present = false;
  if (rawQuery === '') return { present, miswritten: undefined };
  const wanted = readAs(name);
  const spelling = (raw: string): boolean => (raw.length === name.length || FOLDED.test(raw)) && readAs(raw) === wanted;
  for (const pair of rawQuery.split('&')) {
    const pieces = pair.includes(';') ? pair.split(';') : [pair];
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      const eq = piece.indexOf('=');
      const raw = eq >= 0 ? piece.slice(0, eq) : piece;
      if (i === 0 && raw === name) {
        // `api_key;x=1`: Envoy reads the name up to the `=` (`api_key;x`) and removes nothing, while an upstream
        // that splits on `;` reads an `api_key` parameter.
        if (eq < 0 && pieces.length > 1) return { present, miswritten: `${raw};` };
        present = true;
      } else if (spelling(raw)) return { present, miswritten: i === 0 ? raw : `;${raw}` };
    }
  }
  return { present, miswritten: undefined };
}

export interface ApiKeyEvaluatorSettings {
  readonly header: string;
  readonly query: string | undefined;
}

/**
 * API key: SHA-256 of the presented key looked up in a Map (O(1), nothing to time), then the stored digest compared
 * in constant time. `isRevoked(id)` is the Redis-backed revocation (undefined: revocation state unknown).
 */
export function evaluateApiKey(
  input: CheckInput,
  rawQuery: string,
  settings: ApiKeyEvaluatorSettings,
  keys: ApiKeySet,
  isRevoked: (id: string) => boolean | undefined,
): Outcome {
  const presented = presentedKeys(input, settings.header, settings.query, rawQuery);
  const found = presented[0];
  if (found === undefined) return { kind: 'absent', detail: `no ${settings.header} header${settings.query ? ` or ${settings.query} query parameter` : ''}` };
  // Header and query, or the parameter twice: an upstream or a later hop may read the other one.
  if (presented.length > 1) return { kind: 'invalid', reason: 'api_key_ambiguous', detail: `more than one API key sent (${presented.map((p) => p.from).join(', ')})` };
  if (found.key.includes(',')) return { kind: 'invalid', reason: 'api_key_ambiguous', detail: 'more than one API key sent' };
  if (found.key === '' || found.key.length > MAX_KEY_LENGTH) return { kind: 'invalid', reason: 'api_key_malformed', detail: 'API key empty or too long' };
  const digest = sha256(found.key, 'hex');
  const entry = keys.byHash.get(digest);
  if (entry === undefined || !timingSafeEqual(entry.sha256, Buffer.from(digest, 'hex'))) return { kind: 'invalid', reason: 'api_key_unknown', detail: `unknown API key (from ${found.from})` };
  if (entry.disabled) return { kind: 'invalid', reason: 'api_key_disabled', detail: `API key ${entry.id} is disabled` };
  const revoked = isRevoked(entry.id);
  if (revoked === undefined) return { kind: 'unavailable', reason: 'revocation_unavailable', detail: `revocation list unavailable for API key ${entry.id}` };
  if (revoked) return { kind: 'invalid', reason: 'api_key_revoked', detail: `API key ${entry.id} is revoked` };
  return {
    kind: 'success',
    detail: `API key ${entry.id} of ${entry.owner} (from ${found.from})`,
    identity: entry.identity,
  };
}

/** A fresh key (`pk_` + 256 random bits, base64url) and the keys.yaml entry that holds only its hash. */
export function newApiKey(id: string, owner = id, tier = ''): { key: string; entry: string } {
  const key = `pk_${randomBytes(32).toString('base64url')}`;
  const entry = [`- id: ${JSON.stringify(id)}`, `  sha256: ${sha256(key, 'hex')}`, `  owner: ${JSON.stringify(owner)}`, ...(tier ? [`  tier: ${JSON.stringify(tier)}`] : []), '  scopes: []'].join('\n');
  return { key, entry };
}
