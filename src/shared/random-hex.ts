import { randomFillSync } from 'node:crypto';

/**
 * Random hex strings (trace and span ids) from a pooled buffer refilled from the CSPRNG 4 KiB at a time. One
 * randomBytes() call per id was a visible share of a header-only ext_proc stream in the profile; every byte is still
 * used once.
 */
export function pooledRandomHex(poolBytes = 4096): (bytes: number) => string {
  const pool = Buffer.allocUnsafe(poolBytes);
  let offset = poolBytes;
  return (bytes) => {
    if (bytes > poolBytes) return randomFillSync(Buffer.allocUnsafe(bytes)).toString('hex');
    if (offset + bytes > poolBytes) {
      randomFillSync(pool);
      offset = 0;
    }
    const hex = pool.toString('hex', offset, offset + bytes);
    offset += bytes;
    return hex;
  };
}
