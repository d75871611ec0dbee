import path from 'node:path';
import type { IssueCollector } from '../config/errors.js';
import type { Field } from '../config/schema.js';

// `server.grpc.address`: host:port, or a Unix domain socket in grpc-js' own syntax (`unix:/run/portcullis/grpc.sock`)
// for Portcullis beside Envoy (a sidecar), where a socket skips the TCP stack on both ends of every call.

const UNIX_PREFIX = 'unix:';

/**
 * The longest socket path the kernel takes: sun_path is 108 bytes on Linux, the last one the NUL. Node does not
 * refuse a longer path; the bind fails (or, on older libuv, binds a truncated name nobody configured).
 */
export const MAX_SOCKET_PATH_BYTES = 107;

const HOST_PORT = /^[^\s]+:\d{1,5}$/;

/** The problem with `text` as a host:port address, or undefined. */
export function hostPortProblem(text: string): string | undefined {
  return HOST_PORT.test(text) && Number(text.slice(text.lastIndexOf(':') + 1)) <= 65535 ? undefined : `expected host:port, got '${text}'`;
}

/** The raw value and its line: the Unix socket path resolves against the config file's directory after the walk. */
export const grpcAddressField: Field<{ readonly value: string; readonly line: number | undefined }> = (v, where, issues, parentLine) => {
  const fallback = '127.0.0.1:9191';
  if (v === undefined || v === null || (v.kind === 'scalar' && v.value === null)) return { value: fallback, line: undefined };
  const line = v.line ?? parentLine;
  if (v.kind !== 'scalar' || typeof v.value !== 'string') {
    issues.add(line, where, `expected a string, got ${v.kind === 'map' ? 'a mapping' : v.kind === 'seq' ? 'a list' : String(v.value)}`);
    return { value: fallback, line };
  }
  return { value: v.value, line };
};

export type GrpcAddressResult = { readonly address: string } | { readonly problem: string };

/**
 * host:port as written, or `unix:` and the socket's absolute path: a relative one (`unix:run/grpc.sock`) resolves
 * against `baseDir` (the config file's directory, as every other path in it does), `unix:///abs` (the gRPC URI form) is
 * `unix:/abs`. Refused: an authority (`unix://host/…`), the abstract namespace (no file, so no permissions: any
 * process in the network namespace could call), an empty or directory path, and one longer than sun_path holds.
 */
export function resolveGrpcAddress(text: string, baseDir: string): GrpcAddressResult {
  if (text.startsWith('unix-abstract:')) return { problem: `abstract Unix sockets are not supported (no file, so no permissions: any process in the network namespace could call); use unix:/absolute/path.sock, got '${text}'` };
  if (!text.startsWith(UNIX_PREFIX)) {
    const problem = hostPortProblem(text);
    return problem === undefined ? { address: text } : { problem: `expected host:port or unix:/path/to/socket, got '${text}'` };
  }
  let socketPath = text.slice(UNIX_PREFIX.length);
  if (socketPath.startsWith('///')) socketPath = socketPath.slice(2);
  else if (socketPath.startsWith('//')) return { problem: `a Unix socket address has no host: write unix:/absolute/path.sock (or unix:///absolute/path.sock), got '${text}'` };
  if (socketPath === '') return { problem: 'expected a socket path after unix:, got nothing' };
  if (/[\s\0]/.test(socketPath)) return { problem: `a socket path without whitespace or NUL, got '${text}'` };
  if (socketPath.endsWith('/')) return { problem: `expected a socket file, got a directory path '${socketPath}'` };
  const absolute = path.resolve(baseDir, socketPath);
  const bytes = Buffer.byteLength(absolute);
  if (bytes > MAX_SOCKET_PATH_BYTES) return { problem: `the socket path '${absolute}' is ${bytes} bytes; the kernel takes at most ${MAX_SOCKET_PATH_BYTES} (put it in a shorter directory)` };
  return { address: `${UNIX_PREFIX}${absolute}` };
}

/** The address, resolved (resolveGrpcAddress); a problem is reported at the setting's line. */
export function compileGrpcAddress(raw: { readonly value: string; readonly line: number | undefined }, baseDir: string, issues: IssueCollector): string {
  const result = resolveGrpcAddress(raw.value, baseDir);
  if ('address' in result) return result.address;
  issues.add(raw.line, 'server.grpc.address', result.problem);
  return '127.0.0.1:9191';
}

/** The socket's path when `address` is a (resolved) Unix socket address; undefined for host:port. */
export function unixSocketPath(address: string): string | undefined {
  return address.startsWith(UNIX_PREFIX) ? address.slice(UNIX_PREFIX.length) : undefined;
}
