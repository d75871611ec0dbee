// PEM files a config names for TLS (a CA list, a certificate and its private key: redis.tls, server.grpc.tls), checked
// when the config is loaded (and at each rotation of the gRPC listener's) rather than when the first connection needs
// them: an unreadable key found at the first connection is a service that starts, reports ready and never reaches its
// peer, or crashes later. Pure functions of the files' text; the callers read the files and report a problem at the
// setting that names the file. Their messages never quote the text: it may be a private key.

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';

/** A PEM file far larger than any CA bundle (Mozilla's is ~220 KB) is not one (a wrong path, a log file): refused unread. */
export const MAX_PEM_FILE_BYTES = 1 << 20;

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const PRIVATE_KEY_BEGIN = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** The certificates a PEM text holds, in order, or why it is no certificate list. */
export function parsePemCertificates(text: string): { readonly certificates: readonly X509Certificate[] } | { readonly problem: string } {
  const blocks = text.match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) {
    return { problem: PRIVATE_KEY_BEGIN.test(text) ? 'holds a private key, not a PEM certificate' : 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)' };
  }
  const certificates: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block));
    } catch (error) {
      return { problem: `certificate ${i + 1} of ${blocks.length} does not parse (${cryptoReason(error)})` };
    }
  }
  return { certificates };
}

/** The private key a PEM text holds (PKCS#8, or the RSA / EC forms), or why it is none Node can use. */
export function parsePemPrivateKey(text: string): { readonly key: KeyObject } | { readonly problem: string } {
  if (!PRIVATE_KEY_BEGIN.test(text)) {
    return { problem: text.includes('-----BEGIN CERTIFICATE-----') ? 'holds a certificate, not a PEM private key' : 'holds no PEM private key (-----BEGIN PRIVATE KEY-----)' };
  }
  try {
    return { key: createPrivateKey({ key: text, format: 'pem' }) };
  } catch (error) {
    // Asking for a passphrase: the connections have none to give.
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text) || (error as { code?: string }).code === 'ERR_MISSING_PASSPHRASE') {
      return { problem: 'is encrypted with a passphrase, which is not supported: write it unencrypted (openssl pkey -in KEY -out KEY.plain) and restrict who may read the file' };
    }
    return { problem: `does not parse as a private key (${cryptoReason(error)})` };
  }
}

/** Why `key` cannot go with `certificate` (the first of a certificate file: the one the peer is shown), or undefined. */
export function keyPairProblem(certificate: X509Certificate, key: KeyObject): string | undefined {
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(key);
  } catch {
    matches = false;
  }
  return matches ? undefined : `the private key does not belong to the certificate (subject ${certificate.subject.replace(/\n/g, ', ')}): the TLS handshake would fail`;
}

/** OpenSSL's reason without its numeric prefix ("error:1E08010C:DECODER routines::unsupported" → "unsupported"). */
function cryptoReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^(?:[0-9A-F]+:)?error:[0-9A-F]+:[^:]*:[^:]*:/, '').trim() || message;
}
