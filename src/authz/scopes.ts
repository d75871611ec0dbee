/**
 * Scopes from a token claim or an introspection answer: a space-delimited string (RFC 6749 §3.3, RFC 7662 §2.2) or
 * an array of strings (`scp` and some issuers). Both are split on every whitespace run, array items included, so the
 * list the policy checks is exactly the one x-user-scopes carries (joined by single spaces, read back by splitting):
 * a tab or an item holding a space would otherwise be one scope to the policy and two to the upstream.
 */
export function scopeList(value: unknown): string[] {
  const items = typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  return items.flatMap((item) => item.split(/\s+/)).filter((s) => s !== '');
}
