import { status as GrpcStatus } from '@grpc/grpc-js';
import { ErrorCode } from '../shared/errors.js';

/**
 * The one table from error codes to gRPC statuses. Request errors keep envoyproxy/ratelimit's
 * UNKNOWN (it returns plain Go errors) so clients that match on it keep working; a failing store is
 * UNAVAILABLE so that Envoy's failure_mode_deny decides, as documented for failure_mode: error.
 */
const GRPC_STATUS: Readonly<Record<ErrorCode, GrpcStatus>> = {
  [ErrorCode.CONFIG_INVALID]: GrpcStatus.FAILED_PRECONDITION,
  [ErrorCode.RL_EMPTY_DOMAIN]: GrpcStatus.UNKNOWN,
  [ErrorCode.RL_EMPTY_DESCRIPTORS]: GrpcStatus.UNKNOWN,
  [ErrorCode.RL_NO_CONFIG]: GrpcStatus.UNKNOWN,
  [ErrorCode.RL_BAD_REQUEST]: GrpcStatus.INVALID_ARGUMENT,
  [ErrorCode.STORE_UNAVAILABLE]: GrpcStatus.UNAVAILABLE,
  [ErrorCode.STORE_TIMEOUT]: GrpcStatus.UNAVAILABLE,
  [ErrorCode.AUTHZ_UNAVAILABLE]: GrpcStatus.UNAVAILABLE,
  [ErrorCode.BFF_BAD_REQUEST]: GrpcStatus.INVALID_ARGUMENT,
  [ErrorCode.BFF_NOT_FOUND]: GrpcStatus.NOT_FOUND,
  [ErrorCode.BFF_METHOD_NOT_ALLOWED]: GrpcStatus.UNIMPLEMENTED,
  [ErrorCode.BFF_UPSTREAM_FAILED]: GrpcStatus.UNAVAILABLE,
  [ErrorCode.BFF_UPSTREAM_TIMEOUT]: GrpcStatus.DEADLINE_EXCEEDED,
  [ErrorCode.INTERNAL]: GrpcStatus.INTERNAL,
};

export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  return GRPC_STATUS[code];
}

/** HTTP statuses for the codes the composer's HTTP edge answers with; anything else is a 500. */
const HTTP_STATUS: Readonly<Partial<Record<ErrorCode, number>>> = {
  [ErrorCode.BFF_BAD_REQUEST]: 400,
  [ErrorCode.BFF_NOT_FOUND]: 404,
  [ErrorCode.BFF_METHOD_NOT_ALLOWED]: 405,
  [ErrorCode.BFF_UPSTREAM_FAILED]: 502,
  [ErrorCode.BFF_UPSTREAM_TIMEOUT]: 504,
};

export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 500;
}
