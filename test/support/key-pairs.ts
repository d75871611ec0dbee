import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export type KeyPairKind = { type: 'rsa'; modulusLength: number } | { type: 'ec'; namedCurve: string } | { type: 'ed25519' };

const PEM = { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const;

/**
 * A key pair whose KeyObjects share nothing with the job that generated them. On Node 20, exporting a freshly
 * generated RSA key (as a JWK, say; WebCrypto's generateKey, which jose uses, is the same job) can deadlock the
 * process: the export holds the key's lock and allocates, the GC collects the generation job, and the job's
 * destructor takes the same lock. bench/authz/prepare.js hung so in 2 of 12 runs (gdb: ~KeyGenJob under
 * ExportJWKRsaKey, the main thread waiting on its own mutex). Keys imported from the job's PEM have their own.
 */
export function keyPair(kind: KeyPairKind): { publicKey: KeyObject; privateKey: KeyObject } {
  const { publicKeyEncoding, privateKeyEncoding } = PEM;
  const pem = kind.type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: kind.modulusLength, publicKeyEncoding, privateKeyEncoding })
    : kind.type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: kind.namedCurve, publicKeyEncoding, privateKeyEncoding })
      : generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding });
  return { publicKey: createPublicKey(pem.publicKey), privateKey: createPrivateKey(pem.privateKey) };
}

/** The key pair a JWS alg signs with (RSA 2048 for RS256). */
export function keyPairFor(alg: 'RS256' | 'ES256' | 'EdDSA'): { publicKey: KeyObject; privateKey: KeyObject } {
  return keyPair(alg === 'RS256' ? { type: 'rsa', modulusLength: 2048 } : alg === 'ES256' ? { type: 'ec', namedCurve: 'P-256' } : { type: 'ed25519' });
}
