/**
 * Whether `body`'s arrays and objects nest deeper than `limit` (brackets inside strings do not count), in one pass over
 * the bytes. JSON.parse takes any depth, but what walks the value afterwards recurses: Ajv through a recursive schema,
 * JSON.stringify (about 5,000 levels overflow Node's stack).
 */
export function nestsDeeperThan(body: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
