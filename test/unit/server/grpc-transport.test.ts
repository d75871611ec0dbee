import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_GRPC_TRANSPORT_LIMITS, grpcServerOptions } from '../../../src/server/grpc-transport.js';

describe('grpcServerOptions', () => {
  const cases = [
    {
      name: 'the defaults: every bound set, grpc-js keeps its 4 MiB message limit',
      limits: DEFAULT_GRPC_TRANSPORT_LIMITS,
      maxReceive: undefined,
      expected: {
        'grpc.max_concurrent_streams': 1024, 'grpc-node.max_session_memory': 32,
        'grpc.keepalive_time_ms': 60_000, 'grpc.keepalive_timeout_ms': 20_000, 'grpc.keepalive_permit_without_calls': 1,
      },
    },
    {
      name: 'tuned bounds and ext_proc\'s message limit',
      limits: { maxConcurrentStreams: 4096, maxSessionMemoryMb: 128, keepaliveTimeMs: 5000, keepaliveTimeoutMs: 1000 },
      maxReceive: 64 << 20,
      expected: {
        'grpc.max_concurrent_streams': 4096, 'grpc-node.max_session_memory': 128,
        'grpc.keepalive_time_ms': 5000, 'grpc.keepalive_timeout_ms': 1000, 'grpc.keepalive_permit_without_calls': 1,
        'grpc.max_receive_message_length': 64 << 20,
      },
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(grpcServerOptions(c.limits, c.maxReceive), c.expected));
  }
});
