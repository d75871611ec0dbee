/**
 * The path a policy is matched against. Envoy hands ext_authz the raw `:path` (query included, nothing decoded,
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
 * Policy paths in the config are normalized the same way (config.ts), so they are compared like with like.
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
  if (!target.startsWith('/')) return { ok: false, reason: 'path does not start with /' };
  if (target.includes('\\')) return { ok: false, reason: 'backslash in path' };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(target)) return { ok: false, reason: 'control character in path' };
  // Before the fast path below: `/admin;x` has nothing else to normalize, yet an upstream serves it as `/admin`.
  if (target.includes(';')) return { ok: false, reason: 'semicolon (path parameter) in path' };

  // Most paths need nothing: no escapes, no empty, `.` or `..` segments.
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

/** Whole-segment prefix: `/public` matches `/public` and `/public/x`, never `/publicity`. */
export function matchesPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return path === bare || path.startsWith(`${bare}/`);
}
