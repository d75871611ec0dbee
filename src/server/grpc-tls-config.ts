import path from 'node:path';
import type { IssueCollector } from '../config/errors.js';
import { isAbsent, list, object, required, string, type Field } from '../config/schema.js';
import { unixSocketPath } from './grpc-address.js';
import { checkTlsMaterial, type TlsFilePaths, type TlsReadResult } from './grpc-tls-material.js';

// `server.grpc.tls`: the gRPC listener serves TLS, and with client_ca_file asks every client for a certificate that
// CA bundle verifies (mTLS), optionally only from the identities client_sans lists. envoyproxy/ratelimit's
// GRPC_SERVER_USE_TLS, GRPC_SERVER_TLS_CERT / _KEY, GRPC_CLIENT_TLS_CACERT and GRPC_CLIENT_TLS_SAN, as one section.

/** The `server.grpc.tls` section, parsed: absolute paths. */
export interface GrpcTlsSettings {
  /** PEM: the serving certificate first, then its intermediates. */
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM CA certificates; set: a client without a certificate they verify is refused at the handshake (mTLS). */
  readonly clientCaFile: string | undefined;
  /**
   * The client identities allowed (URI SANs such as SPIFFE IDs, or DNS names), as written; undefined: every client
   * certificate client_ca_file verifies.
   */
  readonly clientSans: readonly string[] | undefined;
}

interface Lined<T> {
  readonly value: T;
  readonly line: number | undefined;
  readonly written: boolean;
}

/** `field` and the line its value is on, so a problem found after the walk (a file's content) can name it. */
function lined<T>(field: Field<T>): Field<Lined<T>> {
  return (v, p, issues, parentLine) => ({ value: field(v, p, issues, parentLine), line: isAbsent(v) ? parentLine : v.line, written: !isAbsent(v) });
}

/** The problem with one client_sans entry, or undefined. */
export function clientSanProblem(entry: string): string | undefined {
  if (entry === '') return 'expected a URI (spiffe://trust-domain/path) or a DNS name, got nothing';
  if (/^(uri|dns):/i.test(entry)) return `write the name without its type prefix (a URI has '://', anything else is a DNS name), got '${entry}'`;
  if (/[\s\0]/.test(entry)) return `expected a URI or a DNS name without whitespace, got '${entry}'`;
  if (entry.includes('://')) {
    try {
      new URL(entry);
      return undefined;
    } catch {
      return `expected a URI such as spiffe://example.org/envoy, got '${entry}'`;
    }
  }
  if (entry.includes('*')) return `wildcards are not matched: list each DNS name, got '${entry}'`;
  const label = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
  return new RegExp(`^${label}(\\.${label})*$`, 'i').test(entry) && entry.length <= 253
    ? undefined
    : `expected a URI (with ://) or a DNS name, got '${entry}'`;
}

const shape = object({
  cert_file: lined(required(string(''))),
  key_file: lined(required(string(''))),
  client_ca_file: lined(string('')),
  client_sans: lined(list(string('', clientSanProblem))),
});

export type RawGrpcTls = ReturnType<typeof shape> & { readonly line: number };

/** undefined when the section is absent (plaintext). */
export const grpcTlsField: Field<RawGrpcTls | undefined> = (v, p, issues, parentLine) => {
  if (isAbsent(v)) return undefined;
  if (v.kind !== 'map') {
    // One problem, not also every required key of a section that is not there.
    issues.add(v.line, p, `expected a mapping (cert_file, key_file, client_ca_file, client_sans), got ${v.kind === 'seq' ? 'a list' : typeof v.value === 'string' ? `'${v.value}'` : String(v.value)}`);
    return undefined;
  }
  return { ...shape(v, p, issues, parentLine), line: v.line };
};

/**
 * Reads the files a section names, or undefined: skip them. The config parse reads them at start-up and in
 * `portcullis validate` (their problems are the file's, at the setting's line); a reload does not (the listener's
 * TLS is a start-up setting, and its files rotate on their own: ServerTlsIdentity).
 */
export type TlsFileReader = (paths: TlsFilePaths) => TlsReadResult;

const AT = 'server.grpc.tls';

/**
 * The section, resolved: paths against the config file's directory. Refused: a missing or empty cert_file or key_file,
 * client_sans without client_ca_file (there would be no verified identity to check), an empty client_sans (no
 * client could ever call), and tls on a Unix socket address (its file's permissions decide who may connect, and
 * nothing leaves the host: TLS there costs every call and protects nothing). With `readFiles`, also the files' own
 * problems (missing, unreadable, no PEM, a key that does not match the certificate).
 */
export function compileGrpcTls(raw: RawGrpcTls | undefined, address: string, baseDir: string, issues: IssueCollector, readFiles: TlsFileReader | undefined): GrpcTlsSettings | undefined {
  if (raw === undefined) return undefined;
  const before = issues.issues.length;
  if (unixSocketPath(address) !== undefined) {
    issues.add(raw.line, AT, 'tls is for a host:port address: a Unix socket never leaves the host, and its file mode decides who may connect (drop tls, or listen on host:port)');
  }
  const file = (setting: 'cert_file' | 'key_file', value: Lined<string>): string => {
    if (value.value === '' && value.written) issues.add(value.line, `${AT}.${setting}`, 'expected a file path, got nothing');
    return path.resolve(baseDir, value.value);
  };
  const certFile = file('cert_file', raw.cert_file);
  const keyFile = file('key_file', raw.key_file);
  if (raw.client_ca_file.value === '' && raw.client_ca_file.written) issues.add(raw.client_ca_file.line, `${AT}.client_ca_file`, 'expected a file path, got nothing (leave client_ca_file out for no client certificates)');
  const clientCaFile = raw.client_ca_file.value === '' ? undefined : path.resolve(baseDir, raw.client_ca_file.value);
  const sans = raw.client_sans.value;
  if (sans !== undefined) {
    if (sans.length === 0) issues.add(raw.client_sans.line, `${AT}.client_sans`, 'an empty list lets no client call: list the identities allowed, or remove client_sans to allow every certificate client_ca_file verifies');
    if (clientCaFile === undefined) issues.add(raw.client_sans.line, `${AT}.client_sans`, 'client_sans needs client_ca_file: without verified client certificates there is no identity to check');
  }
  if (readFiles !== undefined && issues.issues.length === before) {
    const read = readFiles({ certFile, keyFile, clientCaFile });
    const checked = 'bytes' in read ? checkTlsMaterial(read.bytes) : read;
    if ('problem' in checked) {
      const shown = { cert_file: certFile, key_file: keyFile, client_ca_file: clientCaFile ?? '' }[checked.setting];
      issues.add(raw[checked.setting].line, `${AT}.${checked.setting}`, `${shown}: ${checked.problem}`);
    }
  }
  return { certFile, keyFile, clientCaFile, clientSans: sans === undefined ? undefined : [...new Set(sans)] };
}

/** The files a section names: what the config watcher watches for a rotation. */
export function grpcTlsFiles(tls: GrpcTlsSettings | undefined): string[] {
  if (tls === undefined) return [];
  return [tls.certFile, tls.keyFile, ...(tls.clientCaFile === undefined ? [] : [tls.clientCaFile])];
}
