import * as crypto from 'node:crypto';

type Encoding = 'hex' | 'base64url';

// crypto.hash (Node 20.12+) hashes in one call without a Hash object: about a third of createHash's cost for a
// token-sized input, and every Check with a credential hashes one. createHash where Node is older.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: string) => string | Buffer }).hash;

/** SHA-256 of a string (UTF-8): as raw bytes, or hex / base64url text. */
export function sha256(data: string): Buffer;
export function sha256(data: string, encoding: Encoding): string;
export function sha256(data: string, encoding?: Encoding): Buffer | string {
  if (oneShot !== undefined) return oneShot('sha256', data, encoding ?? 'buffer');
  const hash = crypto.createHash('sha256').update(data);
  return encoding === undefined ? hash.digest() : hash.digest(encoding);
}
