import { createSecureContext } from 'node:tls';
import { readNamedFile, readNamedFileSync } from '../config/config-text.js';
import { keyPairProblem, MAX_PEM_FILE_BYTES, parsePemCertificates, parsePemPrivateKey } from '../shared/pem.js';

// The files of `server.grpc.tls`, read and checked the same way at start-up, by `portcullis validate` and on every
// rotation: what passes here is what OpenSSL takes, so a rotation never hands grpc-js material it would refuse (it
// would then drop every new connection until the next good file: see ServerTlsIdentity).

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

/** Reads the files (each a regular file of at most MAX_PEM_FILE_BYTES), as every file a config names is read. */
export async function readTlsFiles(paths: TlsFilePaths): Promise<TlsReadResult> {
  const read = async (file: string, setting: TlsFileSetting): Promise<Buffer | TlsFileProblem> => {
    try {
      return Buffer.from(await readNamedFile(file, MAX_PEM_FILE_BYTES), 'utf8');
    } catch (error) {
      return { setting, problem: (error as Error).message };
    }
  };
  return collect(await read(paths.certFile, 'cert_file'), await read(paths.keyFile, 'key_file'),
    paths.clientCaFile === undefined ? undefined : await read(paths.clientCaFile, 'client_ca_file'));
}

/** readTlsFiles, synchronously: for the config parse (parsePortcullisConfig is synchronous). */
export function readTlsFilesSync(paths: TlsFilePaths): TlsReadResult {
  const read = (file: string, setting: TlsFileSetting): Buffer | TlsFileProblem => {
    try {
      return Buffer.from(readNamedFileSync(file, MAX_PEM_FILE_BYTES), 'utf8');
    } catch (error) {
      return { setting, problem: (error as Error).message };
    }
  };
  return collect(read(paths.certFile, 'cert_file'), read(paths.keyFile, 'key_file'),
    paths.clientCaFile === undefined ? undefined : read(paths.clientCaFile, 'client_ca_file'));
}

/**
 * `readTlsFilesSync`, except that when the files do not make an identity and `serving` does, it answers `serving`: a
 * replacement worker parses its config and starts with the material its siblings serve while a rotation they refused
 * has broken the files (src/server/supervisor.ts, Handover).
 */
export function readTlsFilesSyncOr(serving: TlsFileBytes | undefined): (paths: TlsFilePaths) => TlsReadResult {
  return (paths) => {
    const read = readTlsFilesSync(paths);
    if (serving === undefined || ('bytes' in read && !('problem' in checkTlsMaterial(read.bytes)))) return read;
    return 'problem' in checkTlsMaterial(serving) ? read : { bytes: serving };
  };
}

/** TLS material as text (PEM files are text, read as UTF-8), to cross the supervisor's IPC channel, which carries JSON. */
export interface TlsFileTexts {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
}

export function tlsFileTexts(bytes: TlsFileBytes): TlsFileTexts {
  return { cert: bytes.cert.toString('utf8'), key: bytes.key.toString('utf8'), ...(bytes.ca === undefined ? {} : { ca: bytes.ca.toString('utf8') }) };
}

export function tlsFileBytes(texts: TlsFileTexts): TlsFileBytes {
  return { cert: Buffer.from(texts.cert, 'utf8'), key: Buffer.from(texts.key, 'utf8'), ca: texts.ca === undefined ? undefined : Buffer.from(texts.ca, 'utf8') };
}

function collect(cert: Buffer | TlsFileProblem, key: Buffer | TlsFileProblem, ca: Buffer | TlsFileProblem | undefined): TlsReadResult {
  for (const part of [cert, key, ca]) if (part !== undefined && !Buffer.isBuffer(part)) return part;
  return { bytes: { cert: cert as Buffer, key: key as Buffer, ca: ca as Buffer | undefined } };
}

/**
 * Whether the files make a TLS server identity OpenSSL accepts: cert_file a PEM chain (the serving certificate first),
 * key_file its unencrypted private key, client_ca_file PEM CA certificates. The key's bytes stay out of every message.
 */
export function checkTlsMaterial(bytes: TlsFileBytes): TlsMaterial | TlsFileProblem {
  const chain = parsePemCertificates(bytes.cert.toString('latin1'));
  if ('problem' in chain) return { setting: 'cert_file', problem: `the file ${chain.problem}` };
  const leaf = chain.certificates[0]!;
  const key = parsePemPrivateKey(bytes.key.toString('latin1'));
  if ('problem' in key) return { setting: 'key_file', problem: `the file ${key.problem}` };
  const mismatch = keyPairProblem(leaf, key.key);
  if (mismatch !== undefined) return { setting: 'key_file', problem: mismatch };
  if (bytes.ca !== undefined) {
    const ca = parsePemCertificates(bytes.ca.toString('latin1'));
    if ('problem' in ca) return { setting: 'client_ca_file', problem: `the file ${ca.problem}` };
  }
  try {
    createSecureContext({ cert: bytes.cert, key: bytes.key, ...(bytes.ca === undefined ? {} : { ca: bytes.ca }) });
  } catch (error) {
    // OpenSSL's reason (a key too weak for its security level, say); its messages carry codes, never key bytes.
    return { setting: 'cert_file', problem: `OpenSSL refused the files${bytes.ca === undefined ? '' : ' (with client_ca_file)'}: ${(error as Error).message}` };
  }
  return { ...bytes, notAfter: new Date(leaf.validTo), fingerprint: leaf.fingerprint256 };
}
