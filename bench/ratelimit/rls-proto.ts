// The real rls.proto as vendored by @grpc/grpc-js-xds, loaded with @grpc/proto-loader, for the benchmark's
// no-op server and probe. Deliberately independent of src/ so the baseline builds whatever state src/ is in.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const XDS_DEPS = path.join('node_modules', '@grpc', 'grpc-js-xds', 'deps');

/** Walks up from this file (dist/bench/ratelimit/ or bench/ratelimit/) to the directory holding the deps. */
function findDepsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, XDS_DEPS);
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find ${XDS_DEPS} above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export function loadRateLimitService(): grpc.ServiceClientConstructor {
  const deps = findDepsDir();
  const definition = protoLoader.loadSync(path.join(deps, 'envoy-api', 'envoy', 'service', 'ratelimit', 'v3', 'rls.proto'), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)),
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: { service: { ratelimit: { v3: { RateLimitService: grpc.ServiceClientConstructor } } } };
  };
  return pkg.envoy.service.ratelimit.v3.RateLimitService;
}
