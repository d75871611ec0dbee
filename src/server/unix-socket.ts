import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { ErrorCode, PortcullisError } from '../shared/errors.js';

// The file of a Unix socket gRPC listener (server.grpc.address: unix:/path): what to do with one found before binding,
// and its permissions once bound. The file is the only access control there is (no TLS, no address to filter), and a
// process that died without closing it (SIGKILL, OOM) leaves it behind: the next bind fails with EADDRINUSE.

/**
 * Owner and group read and write: connecting to a socket takes write permission on its file, so Envoy needs a shared
 * group (the pod's fsGroup on a shared emptyDir, which the directory's setgid bit gives the socket). Others get nothing.
 */
export const SOCKET_FILE_MODE = 0o660;

/** What is at the socket path before binding. */
export type FoundAtPath = 'nothing' | 'socket' | 'other';
/** What connecting to a socket found there gave (only asked when there is one). */
export type ProbeResult = 'refused' | 'answered' | 'gone' | { readonly error: string };

export type StaleSocketAction =
  | { readonly action: 'bind' }
  | { readonly action: 'remove' }
  | { readonly action: 'refuse'; readonly reason: string };

/**
 * Whether to bind, remove a stale socket first, or refuse. Only a socket nobody listens on (connect: ECONNREFUSED) is
 * removed: a live one belongs to another process (two Portcullis with one config), and anything that is not a socket
 * (a regular file, a directory, a symbolic link) was put there by someone else, perhaps by mistake, and is never removed.
 */
export function staleSocketAction(found: FoundAtPath, probe: ProbeResult | undefined): StaleSocketAction {
  if (found === 'nothing') return { action: 'bind' };
  if (found === 'other') return { action: 'refuse', reason: 'the path exists and is not a socket (left alone: remove it or choose another path)' };
  if (probe === 'refused') return { action: 'remove' };
  if (probe === 'gone') return { action: 'bind' };
  if (probe === 'answered') return { action: 'refuse', reason: 'address already in use (another process listens on this socket)' };
  return { action: 'refuse', reason: `a socket is there and connecting to it failed (${probe?.error ?? 'not tried'}): left alone` };
}

/** How long connecting to a socket found at the path may take: a live listener answers at once, even under load. */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Before binding `socketPath`: removes a stale socket, or throws LISTEN_FAILED saying why it will not. Two processes
 * starting at the same moment on one path can still race between the probe and the bind; the loser's bind fails.
 */
export async function clearStaleSocket(socketPath: string, probeTimeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const found = await foundAt(socketPath);
  const decision = staleSocketAction(found, found === 'socket' ? await probe(socketPath, probeTimeoutMs) : undefined);
  if (decision.action === 'refuse') throw new PortcullisError(ErrorCode.LISTEN_FAILED, `cannot listen on unix:${socketPath} (gRPC): ${decision.reason}`);
  if (decision.action === 'remove') {
    await unlink(socketPath).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw new PortcullisError(ErrorCode.LISTEN_FAILED, `cannot listen on unix:${socketPath} (gRPC): cannot remove the stale socket: ${error.message}`, { cause: error });
    });
  }
}

/** After binding: SOCKET_FILE_MODE, whatever the umask made it. */
export async function restrictSocketFile(socketPath: string): Promise<void> {
  try {
    await chmod(socketPath, SOCKET_FILE_MODE);
  } catch (error) {
    throw new PortcullisError(ErrorCode.LISTEN_FAILED, `cannot set the permissions of unix:${socketPath} (gRPC): ${(error as Error).message}`, { cause: error });
  }
}

async function foundAt(socketPath: string): Promise<FoundAtPath> {
  try {
    return (await lstat(socketPath)).isSocket() ? 'socket' : 'other';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'nothing';
    throw new PortcullisError(ErrorCode.LISTEN_FAILED, `cannot listen on unix:${socketPath} (gRPC): ${(error as Error).message}`, { cause: error });
  }
}

function probe(socketPath: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ path: socketPath });
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ error: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done('answered'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED' ? 'refused' : error.code === 'ENOENT' ? 'gone' : { error: error.message }));
  });
}
