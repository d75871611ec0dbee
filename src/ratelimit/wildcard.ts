/**
 * Compiles a descriptor `key_value` with `*` wildcards into a matcher. Each `*` matches zero or more
 * characters anywhere in the value; the literal segments must appear in order (prefix, middles,
 * suffix), as in envoyproxy/ratelimit's any-position wildcards (2026; builds before them, such as the one the
 * differential test pins, match a trailing `*` only: docs/ratelimit.md). Compiled once at load, never per request.
 */
export function compileWildcard(pattern: string): (text: string) => boolean {
  const segments = pattern.split('*');
  if (segments.length === 1) return (text: string): boolean => text === pattern;
  const prefix = segments[0] ?? '';
  const suffix = segments[segments.length - 1] ?? '';
  const middles = segments.slice(1, -1).filter((s) => s !== '');
  const minLength = prefix.length + suffix.length + middles.reduce((n, s) => n + s.length, 0);
  return (text: string): boolean => {
    if (text.length < minLength || !text.startsWith(prefix) || !text.endsWith(suffix)) return false;
    let at = prefix.length;
    const end = text.length - suffix.length;
    for (const middle of middles) {
      const found = text.indexOf(middle, at);
      if (found < 0 || found + middle.length > end) return false;
      at = found + middle.length;
    }
    return true;
  };
}
