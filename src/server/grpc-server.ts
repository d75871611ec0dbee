import { Server, ServerCredentials, type ServerInterceptor, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { ErrorCode, PortcullisError } from '../shared/errors.js';
import { unixSocketPath } from './grpc-address.js';
import { clearStaleSocket, restrictSocketFile } from './unix-socket.js';
import { DEFAULT_GRPC_TRANSPORT_LIMITS, grpcServerOptions, type GrpcTransportLimits } from './grpc-transport.js';
import { startStreamTableRefresher } from './stream-tables.js';

/** Health service names: the overall server, the standard service names, and envoyproxy/ratelimit's. */
export const HEALTH_SERVICES = ['', 'envoy.service.ratelimit.v3.RateLimitService', 'ratelimit', 'envoy.service.ext_proc.v3.ExternalProcessor'] as const;

export interface GrpcServer {
  /** host:port with the port bound (port 0 resolved), or the `unix:/path` address as given. */
  readonly address: string;
  setServing(status: ServingStatus): void;
  /** Stops accepting calls, waits up to timeoutMs for in-flight ones, then closes connections. */
  shutdown(timeoutMs: number): Promise<void>;
}

export async function startGrpcServer(
  address: string,
  services: readonly { definition: ServiceDefinition; implementation: UntypedServiceImplementation }[],
  options: {
    readonly limits?: GrpcTransportLimits;
    readonly maxReceiveMessageBytes?: number;
    /**
     * For a Unix socket address: remove a stale socket file first (clearStaleSocket). Off in a node:cluster worker:
     * its supervisor cleared the path before forking, and the socket a worker finds is its supervisor's, live.
     */
    readonly clearStaleSocket?: boolean;
    /** TLS (server.grpc.tls: ServerTlsIdentity.credentials()); default: plaintext. */
    readonly credentials?: ServerCredentials;
    /** Run before every call, the first first (the client_sans check). */
    readonly interceptors?: readonly ServerInterceptor[];
  } = {},
): Promise<GrpcServer> {
  const socketPath = unixSocketPath(address);
  if (socketPath !== undefined && options.clearStaleSocket !== false) await clearStaleSocket(socketPath);
  const server = new Server({
    ...grpcServerOptions(options.limits ?? DEFAULT_GRPC_TRANSPORT_LIMITS, options.maxReceiveMessageBytes),
    ...(options.interceptors === undefined || options.interceptors.length === 0 ? {} : { interceptors: [...options.interceptors] }),
  });
  for (const s of services) server.addService(s.definition, s.implementation);
  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((name) => [name, 'NOT_SERVING'])));
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, options.credentials ?? ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(new PortcullisError(ErrorCode.LISTEN_FAILED, `cannot listen on ${address} (gRPC): ${/EADDRINUSE/.test(error.message) ? 'address already in use' : error.message}`, { cause: error })) : resolve(bound));
  });
  if (socketPath !== undefined) {
    // Node creates the file with the process's umask (0755 by default: only the owner could connect). Closing the
    // listener removes the file (libuv), on SIGTERM as on a failed start.
    await restrictSocketFile(socketPath).catch((error: unknown) => {
      server.forceShutdown();
      throw error;
    });
  }
  const streamTables = startStreamTableRefresher(server);
  return {
    address: socketPath !== undefined ? address : `${address.slice(0, address.lastIndexOf(':'))}:${port}`,
    setServing(status) {
      for (const name of HEALTH_SERVICES) health.setStatus(name, status);
    },
    async shutdown(timeoutMs) {
      streamTables.stop();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
