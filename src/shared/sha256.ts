import * as crypto from 'node:crypto';

type Encoding = 'hex' | 'base64url';

// crypto.hash (Node 20.12+) hashes in one call without a Hash object: about a third of createHash's cost for a
// token-sized input, and every Check with a credential hashes one. Text output: a Buffer result takes crypto.hash's
// slower encoding path (about twice the cost). createHash where Node is older.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: string) => string }).hash;

/** SHA-256 of a string (UTF-8), as hex or base64url text. */
export function sha256(data: string, encoding: Encoding): string {
  if (oneShot !== undefined) return oneShot('sha256', data, encoding);
  return crypto.createHash('sha256').update(data).digest(encoding);
}
