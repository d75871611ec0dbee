// String.prototype.isWellFormed (Node >= 20, package.json engines) is typed in ES2024's lib; the target stays ES2022.
/// <reference lib="es2024.string" />
/** How long a header value Portcullis forwards may be; longer claims are not forwarded. */
const MAX_HEADER_VALUE = 4096;

/** A value that would break or smuggle a header (CR, LF, NUL and the other controls but tab; oversized). */
export function isHeaderSafe(value: string): boolean {
  // eslint-disable-next-line no-control-regex
  return value.length <= MAX_HEADER_VALUE && !/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value);
}

/** Why a name is not one isUsableSubject takes, in words (config errors, the CLI). */
export const UNUSABLE_SUBJECT = 'must not be blank, start or end with a space or tab, or hold control characters';

/**
 * A name the upstream can be handed as x-user-id: a header-safe, well-formed string that is not blank. A credential that names
 * anything else names nobody: upstream services would see the request without a caller, or with a blank one.
 * Leading or trailing space or tab is refused too: a header value cannot carry it (HTTP/1 parsers strip it, HTTP/2
 * forbids it), so " admin" would reach the upstream as admin while rate limits and logs keyed on " admin".
 */
export function isUsableSubject(value: unknown): value is string {
  // A lone surrogate is encoded as U+FFFD on the way out, so 'user\uD800' and 'user\uDFFF' would reach the upstream,
  // rate limits and logs as one caller: a subject that is not well-formed UTF-16 names nobody.
  return typeof value === 'string' && value.trim() !== '' && !/^[ \t]|[ \t]$/.test(value) && isHeaderSafe(value) && value.isWellFormed();
}

/**
 * A claim naming the caller's tier: text, or a number written as text (`tier: 2` is tier "2", as require clauses
 * compare claim values as text). Anything else names none.
 */
export function tierOf(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return typeof value === 'string' && value !== '' ? value : undefined;
}
