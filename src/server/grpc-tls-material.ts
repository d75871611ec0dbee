import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

// The files of `server.grpc.tls`, read and checked the same way at start-up, by `portcullis validate` and on every
// rotation: what passes here is what OpenSSL takes, so a rotation never hands grpc-js material it would refuse (it
// would then drop every new connection until the next good file: see ServerTlsIdentity).

/** A certificate chain, a key or a CA bundle is a few KiB; a file far larger is not one (a wrong path, a log file). */
export const MAX_TLS_FILE_BYTES = 1 << 20;

/** The setting each file comes from, as its problems name it. */
export type TlsFileSetting = 'cert_file' | 'key_file' | 'client_ca_file';

export interface TlsFilePaths {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
}

/** The bytes of the files, as read. */
export interface TlsFileBytes {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

/** A problem with one of the files. It never quotes the key file (nor any file): only what is wrong with it. */
export interface TlsFileProblem {
  readonly setting: TlsFileSetting;
  readonly problem: string;
}

/** Checked material: what to serve, and when the serving certificate expires. */
export interface TlsMaterial extends TlsFileBytes {
  readonly notAfter: Date;
  /** The serving certificate's SHA-256 fingerprint (public: for logs). */
  readonly fingerprint: string;
}

export type TlsReadResult = { readonly bytes: TlsFileBytes } | TlsFileProblem;

/** Reads the files (each a regular file of at most MAX_TLS_FILE_BYTES). */
export async function readTlsFiles(paths: TlsFilePaths): Promise<TlsReadResult> {
  const read = async (file: string, setting: TlsFileSetting): Promise<Buffer | TlsFileProblem> => {
    try {
      const handle = await open(file, 'r');
      try {
        const info = await handle.stat();
        const problem = statProblem(info.isFile(), info.isDirectory(), info.size);
        if (problem !== undefined) return { setting, problem };
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (error) {
      return { setting, problem: readProblem(error) };
    }
  };
  return collect(await read(paths.certFile, 'cert_file'), await read(paths.keyFile, 'key_file'),
    paths.clientCaFile === undefined ? undefined : await read(paths.clientCaFile, 'client_ca_file'));
}

/** readTlsFiles, synchronously: for the config parse (parsePortcullisConfig is synchronous). */
export function readTlsFilesSync(paths: TlsFilePaths): TlsReadResult {
  const read = (file: string, setting: TlsFileSetting): Buffer | TlsFileProblem => {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const info = fstatSync(fd);
      const problem = statProblem(info.isFile(), info.isDirectory(), info.size);
      if (problem !== undefined) return { setting, problem };
      const bytes = Buffer.alloc(info.size);
      let at = 0;
      while (at < bytes.length) {
        const n = readSync(fd, bytes, at, bytes.length - at, at);
        if (n === 0) break;
        at += n;
      }
      return bytes.subarray(0, at);
    } catch (error) {
      return { setting, problem: readProblem(error) };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  };
  return collect(read(paths.certFile, 'cert_file'), read(paths.keyFile, 'key_file'),
    paths.clientCaFile === undefined ? undefined : read(paths.clientCaFile, 'client_ca_file'));
}

function collect(cert: Buffer | TlsFileProblem, key: Buffer | TlsFileProblem, ca: Buffer | TlsFileProblem | undefined): TlsReadResult {
  for (const part of [cert, key, ca]) if (part !== undefined && !Buffer.isBuffer(part)) return part;
  return { bytes: { cert: cert as Buffer, key: key as Buffer, ca: ca as Buffer | undefined } };
}

function statProblem(isFile: boolean, isDirectory: boolean, size: number): string | undefined {
  if (!isFile) return `cannot read the file: ${isDirectory ? 'it is a directory' : 'not a regular file'}`;
  if (size > MAX_TLS_FILE_BYTES) return `the file is ${size} bytes, more than the maximum of ${MAX_TLS_FILE_BYTES}`;
  return undefined;
}

function readProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'cannot read the file: it does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot read the file: permission denied';
  return `cannot read the file: ${code ?? (error as Error).message}`;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The PEM certificates in `bytes`, parsed; a problem when there is none or one does not parse. */
function certificates(bytes: Buffer, what: string): X509Certificate[] | string {
  const blocks = bytes.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return `no PEM certificate in the file (expected ${what} between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----)`;
  const parsed: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      parsed.push(new X509Certificate(block));
    } catch {
      return `certificate ${i + 1} of ${blocks.length} in the file is not a valid X.509 certificate`;
    }
  }
  return parsed;
}

/**
 * Whether the files make a TLS server identity OpenSSL accepts: cert_file a PEM chain (the serving certificate first),
 * key_file its unencrypted private key, client_ca_file PEM CA certificates. The key's bytes stay out of every message.
 */
export function checkTlsMaterial(bytes: TlsFileBytes): TlsMaterial | TlsFileProblem {
  const chain = certificates(bytes.cert, 'the serving certificate and its chain');
  if (typeof chain === 'string') return { setting: 'cert_file', problem: chain };
  const leaf = chain[0]!;
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: bytes.key, format: 'pem' });
  } catch {
    const text = bytes.key.toString('latin1');
    const problem = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)
      ? 'the private key is encrypted (there is no passphrase setting: store it unencrypted, readable by Portcullis only)'
      : 'no PEM private key in the file (expected an unencrypted PKCS#8, PKCS#1 or SEC1 key)';
    return { setting: 'key_file', problem };
  }
  if (!leaf.checkPrivateKey(key)) {
    return { setting: 'key_file', problem: `the private key does not match the certificate in cert_file (subject ${leaf.subject.replace(/\n/g, ', ')})` };
  }
  let ca: X509Certificate[] | undefined;
  if (bytes.ca !== undefined) {
    const parsed = certificates(bytes.ca, 'the CA certificates that sign client certificates');
    if (typeof parsed === 'string') return { setting: 'client_ca_file', problem: parsed };
    ca = parsed;
  }
  try {
    createSecureContext({ cert: bytes.cert, key: bytes.key, ...(bytes.ca === undefined ? {} : { ca: bytes.ca }) });
  } catch (error) {
    // OpenSSL's reason (a key too weak for its security level, say); its messages carry codes, never key bytes.
    return { setting: 'cert_file', problem: `OpenSSL refused the files${ca === undefined ? '' : ' (with client_ca_file)'}: ${(error as Error).message}` };
  }
  return { ...bytes, notAfter: new Date(leaf.validTo), fingerprint: leaf.fingerprint256 };
}
