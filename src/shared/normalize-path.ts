/**
 * The one path normalization of the codebase: ext_authz matches its policies (src/authz/) and ext_proc its routes
 * (src/extproc/) on what it returns, so a path is read one way whichever filter runs.
 *
 * The path a policy or route is matched against. Envoy hands ext_authz the raw `:path` (query included, nothing decoded,
 * unless its HCM normalizes), while the upstream will decode and resolve it: matching the raw string lets
 * `/public/../admin` or `/%61dmin` past a policy on `/admin`. So the path is normalized the way an upstream reads it
 * and matched only after that:
 *   - query and fragment cut off;
 *   - percent-escapes of unreserved characters decoded (`%61` → `a`, `%2e` → `.`), other escapes upper-cased;
 *   - `//` merged; `.` and `..` segments removed (RFC 3986 §5.2.4), never above the root;
 *   - encoded slashes and backslashes (`%2F`, `%5C`, `\`), malformed escapes, NUL and control bytes refused:
 *     upstreams disagree on what they mean, so no answer would be safe;
 *   - `;` (raw or `%3B`) refused: Tomcat, Jetty and Spring strip `;params` from a segment before resolving dots, so
 *     `/public/..;/admin` is `/admin` to them but a `/public` path here;
 *   - overlong UTF-8 refused: `%C0`, `%C1`, `%E0` before `%80`–`%9F`, `%F0` before `%80`–`%8F`, and `%F5`–`%FF`
 *     (never valid UTF-8), yet lenient decoders read `%C0%AE`, `%E0%80%AE` and `%F0%80%80%AE` as `.`;
 *   - an escape that decodes to another escape refused (`%25` before two hex digits, spelled raw or escaped:
 *     `%252e`, `%25%32%65`): this path holds the text `%2e`, yet an upstream or second proxy that decodes twice reads
 *     `.`, so `/public/%252e%252e/admin` is `/admin` to it;
 *   - raw non-ASCII characters percent-encoded as UTF-8 (`é` → `%C3%A9`): the upstream reads both spellings as one
 *     path, so a policy on either protects both.
 * Policy and route paths in the config are normalized the same way (matchPathProblem, normalizedMatchPath), so
 * they are compared like with like.
 */
export type NormalizedPath =
  | { readonly ok: true; readonly path: string; readonly query: string }
  | { readonly ok: false; readonly reason: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;

export function normalizePath(raw: string): NormalizedPath {
  const hash = raw.indexOf('#');
  const withoutFragment = hash >= 0 ? raw.slice(0, hash) : raw;
  const q = withoutFragment.indexOf('?');
  const target = q >= 0 ? withoutFragment.slice(0, q) : withoutFragment;
  const query = q >= 0 ? withoutFragment.slice(q + 1) : '';
  // Most paths need nothing: no escapes, no `;`, no empty, `.` or `..` segments.
  if (alreadyNormal(target)) return { ok: true, path: target, query };
  if (!target.startsWith('/')) return { ok: false, reason: 'path does not start with /' };
  if (target.includes('\\')) return { ok: false, reason: 'backslash in path' };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(target)) return { ok: false, reason: 'control character in path' };
  // Before the fast path below: `/admin;x` has nothing else to normalize, yet an upstream serves it as `/admin`.
  if (target.includes(';')) return { ok: false, reason: 'semicolon (path parameter) in path' };

  // eslint-disable-next-line no-control-regex
  if (!/%|\/\/|\/\.\.?(\/|$)|[^\u0000-\u007f]/.test(target)) return { ok: true, path: target, query };

  let decoded = '';
  // The escape just before this one, for the overlong forms that only its follower reveals (`%E0%80`).
  let prior = '';
  for (let i = 0; i < target.length; i++) {
    const c = target[i]!;
    const after = prior;
    prior = '';
    if (c > '\u007f') {
      // A whole code point (a surrogate pair is one); a lone surrogate encodes as U+FFFD, as it would on the wire.
      const point = String.fromCodePoint(target.codePointAt(i)!);
      decoded += [...Buffer.from(point, 'utf8')].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
      i += point.length - 1;
      continue;
    }
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = target.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { ok: false, reason: 'malformed percent-escape in path' };
    const char = String.fromCharCode(parseInt(hex, 16));
    const upper = hex.toUpperCase();
    if (upper === '2F' || upper === '5C') return { ok: false, reason: 'encoded slash or backslash in path' };
    if (upper === '3B') return { ok: false, reason: 'encoded semicolon (path parameter) in path' };
    const byte = parseInt(hex, 16);
    if (upper === 'C0' || upper === 'C1' || byte >= 0xf5 || (after === 'E0' && byte < 0xa0) || (after === 'F0' && byte < 0x90)) {
      return { ok: false, reason: 'overlong UTF-8 escape in path' };
    }
    prior = upper;
    if (byte < 0x20 || byte === 0x7f) return { ok: false, reason: 'encoded control character in path' };
    decoded += UNRESERVED.test(char) ? char : `%${upper}`;
    i += 2;
  }

  // After one decode every `%` left starts an escape (a bare `%` was refused above), so a `%25` followed by hex
  // digits here is exactly what a second decode would change. Hex digits are unreserved, so `%25%32%65` is here too.
  if (/%25[0-9A-Fa-f]{2}/.test(decoded)) return { ok: false, reason: 'double-encoded percent-escape (%25 before two hex digits) in path' };

  const output: string[] = [];
  const segments = decoded.split('/').slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') output.pop();
      if (last) output.push('');
      return;
    }
    if (segment === '' && !last) return; // merged slash
    output.push(segment);
  });
  return { ok: true, path: `/${output.join('/')}`, query };
}

/**
 * A path normalizePath returns unchanged, told by one pass over its chars (the hot path of both filters): it starts
 * with `/` and holds no `%`, `;`, `\\`, control or non-ASCII character, and no `/` before `/` or `.`. A path this
 * refuses (`/.well-known`, say) is checked in full.
 */
export function alreadyNormal(path: string): boolean {
  if (path.charCodeAt(0) !== 0x2f) return false;
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 ? c < 0x20 : c >= 0x7f || c === 0x25 || c === 0x3b || c === 0x5c) return false;
    if (c === 0x2f || c === 0x2e) {
      if (path.charCodeAt(i - 1) === 0x2f) return false;
    }
  }
  return true;
}

/** Whole-segment prefix: `/public` matches `/public` and `/public/x`, never `/publicity`. */
export function matchesPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return path === bare || path.startsWith(`${bare}/`);
}

/**
 * What is wrong with a config `path`/`path_prefix` (authz policies, ext_proc routes): it is compared with normalized
 * request paths, so a path normalization refuses, or one with a query or fragment, could never match, and the
 * requests it was meant for would fall through to a later policy or route.
 */
export function matchPathProblem(s: string): string | undefined {
  if (!s.startsWith('/')) return `must start with /, got '${s}'`;
  if (/[?#]/.test(s)) return `must be a path with no query or fragment, got '${s}'`;
  const normalized = normalizePath(s);
  return normalized.ok ? undefined : `no request path can match '${s}': ${normalized.reason}`;
}

/** A config path as requests are matched: `/caf%c3%a9`, `/café` → `/caf%C3%A9`; `/%7Euser` → `/~user`. */
export function normalizedMatchPath(s: string): string | undefined {
  if (s === '') return undefined;
  const normalized = normalizePath(s);
  return normalized.ok ? normalized.path : s;
}

/**
 * ASCII letters folded, for `match.ignore_case`. A normalized path is ASCII (other characters are UTF-8 escapes,
 * their hex upper-cased), so `%C3%A9` and `%c3%a9` fold alike and `É` (`%C3%89`) stays apart from `é` (`%C3%A9`):
 * casedNonAscii finds such a letter in an ignore_case path, which the config refuses.
 */
export function foldPathCase(path: string): string {
  return path.toLowerCase();
}

/**
 * A letter outside ASCII that has another case, in a config path (`/café`, `/caf%C3%A9` → `é`). ignore_case folds
 * ASCII letters only: how an upstream folds the others is its own (Unicode simple or full folding, Turkish `İ`/`ı`,
 * the Kelvin sign `K` as `k`), and folding more than the upstream lets a request into an ignore_case policy or route
 * as surely as folding less lets one past it.
 */
function casedNonAscii(written: string): string | undefined {
  const normalized = normalizePath(written);
  if (!normalized.ok || !normalized.path.includes('%')) return undefined;
  const bytes = Buffer.from(normalized.path.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
  return [...new TextDecoder().decode(bytes)].find((c) => c > '\u007f' && (c.toLowerCase() !== c || c.toUpperCase() !== c));
}

/**
 * Why a config path cannot be matched with `ignore_case` (it holds a cased letter outside ASCII, see casedNonAscii),
 * or undefined. `remedy` names the way to pick the policy or route without matching its path.
 */
export function ignoreCaseProblem(written: string, remedy: string): string | undefined {
  const letter = casedNonAscii(written);
  return letter === undefined
    ? undefined
    : `ignore_case folds ASCII letters only, and '${written}' holds '${letter}', which has another case an upstream may or may not fold: match it case-sensitively, or ${remedy}`;
}

/**
 * The paths upstreams may read a path as, for one normalizePath refuses: each escape decoded once, or twice (an
 * upstream or second proxy that decodes again); `%2F`, `%5C` and `\` as segment separators, or kept inside their
 * segment; `;params` cut from each segment (Tomcat, Jetty, Spring), or kept; overlong UTF-8 read as the character it
 * spells; `//` merged and dot segments removed. Each reading is in normal form (as normalizePath writes paths), so it
 * compares with config paths. A filter that cannot tell which one the upstream serves asks what each would choose.
 */
export function upstreamReadings(rawPath: string): string[] {
  const cut = rawPath.search(/[?#]/);
  const target = cut >= 0 ? rawPath.slice(0, cut) : rawPath;
  const readings = new Set<string>();
  for (const decodes of [1, 2]) {
    for (const slashes of [true, false]) {
      for (const params of [true, false]) readings.add(reading(target, decodes, slashes, params));
    }
  }
  return [...readings];
}

const SEPARATORS = /[/\\]/;

function reading(target: string, decodes: number, slashes: boolean, cutParams: boolean): string {
  const pieces = target.split(slashes ? SEPARATORS : '/').flatMap((raw) => {
    let bytes = raw;
    for (let i = 0; i < decodes; i++) bytes = bytes.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    const text = lenientUtf8(bytes);
    return slashes ? text.split(SEPARATORS) : [text];
  });
  const out: string[] = [];
  // pieces[0] is what precedes the first `/` (nothing, in a path that starts with one).
  pieces.slice(1).forEach((full, i, all) => {
    const segment = cutParams ? full.split(';', 1)[0]! : full;
    const last = i === all.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') out.pop();
      if (last) out.push('');
      return;
    }
    if (segment === '' && !last) return;
    out.push(encodeSegment(segment));
  });
  return `/${out.join('/')}`;
}

/** A decoded segment in normal form: unreserved characters and sub-delimiters as they are, the rest escaped. */
function encodeSegment(text: string): string {
  if (/^[A-Za-z0-9\-._~!$&'()*+,;=:@]*$/.test(text)) return text;
  let out = '';
  for (const c of text) {
    out += /[A-Za-z0-9\-._~!$&'()*+,;=:@]/.test(c) ? c : [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  }
  return out;
}

/** Bytes (a latin1 string) → text, reading overlong UTF-8 as the character it spells, as lenient decoders do. */
function lenientUtf8(bytes: string): string {
  if (!/[\u0080-\u00ff]/.test(bytes)) return bytes;
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.charCodeAt(i);
    const length = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    if (length === 1 || b >= 0xf8) {
      out += b < 0x80 ? bytes[i]! : '\ufffd';
      continue;
    }
    let point = b & (0x7f >> length);
    let j = 1;
    for (; j < length && i + j < bytes.length && (bytes.charCodeAt(i + j) & 0xc0) === 0x80; j++) point = (point << 6) | (bytes.charCodeAt(i + j) & 0x3f);
    if (j < length) {
      out += '\ufffd';
      continue;
    }
    out += point < 0xd800 || (point > 0xdfff && point <= 0x10ffff) ? String.fromCodePoint(point) : '\ufffd';
    i += length - 1;
  }
  return out;
}
