// The gateway's upstream services, shared by the Envoy generator (envoy/*.yaml, docker-compose.yml), the sample
// services (examples/services) and the demo, so a port or a cluster name is written down exactly once.

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RING_HASH' | 'RANDOM';

export interface SampleInstance {
  /** Unique instance name, reported by the sample in its answers (`instance`) and in `x-served-by`. */
  readonly name: string;
  readonly version: string;
  /** Port of the local variant (and inside its compose container). */
  readonly port: number;
  /** Endpoint load_balancing_weight; absent = equal weights. */
  readonly weight?: number;
}

export interface UpstreamService {
  /** Envoy cluster name. */
  readonly cluster: string;
  /** Compose service (container host name) that runs these instances. */
  readonly service: string;
  readonly lbPolicy: LbPolicy;
  readonly instances: readonly SampleInstance[];
}

export const UPSTREAM_SERVICES: readonly UpstreamService[] = [
  // /api/users/ → users at / (prefix stripped): plain round robin over two instances.
  { cluster: 'users', service: 'users', lbPolicy: 'ROUND_ROBIN', instances: [
    { name: 'users-1', version: 'v1', port: 8101 },
    { name: 'users-2', version: 'v1', port: 8102 },
  ] },
  // /api/orders, /api/export: least request (orders calls are uneven in cost).
  { cluster: 'orders', service: 'orders', lbPolicy: 'LEAST_REQUEST', instances: [
    { name: 'orders-1', version: 'v1', port: 8111 },
    { name: 'orders-2', version: 'v1', port: 8112 },
  ] },
  // Versioned API: /v1, /v2, or /api/items with api-version: 2, ?version=2 or Accept: application/vnd.api.v2+json.
  { cluster: 'api_v1', service: 'api-v1', lbPolicy: 'ROUND_ROBIN', instances: [{ name: 'api-v1', version: 'v1', port: 8121 }] },
  { cluster: 'api_v2', service: 'api-v2', lbPolicy: 'ROUND_ROBIN', instances: [{ name: 'api-v2', version: 'v2', port: 8122 }] },
  // /api/catalog: a 90/10 canary between two clusters (weighted_clusters on the route).
  { cluster: 'catalog', service: 'catalog', lbPolicy: 'ROUND_ROBIN', instances: [{ name: 'catalog-stable', version: 'v1', port: 8131 }] },
  { cluster: 'catalog_canary', service: 'catalog', lbPolicy: 'ROUND_ROBIN', instances: [{ name: 'catalog-canary', version: 'v2', port: 8132 }] },
  // /api/sessions: ring hash on the client address, so one client stays on one instance (session affinity).
  { cluster: 'sessions', service: 'sessions', lbPolicy: 'RING_HASH', instances: [
    { name: 'sessions-1', version: 'v1', port: 8141 },
    { name: 'sessions-2', version: 'v1', port: 8142 },
    { name: 'sessions-3', version: 'v1', port: 8143 },
  ] },
  // /api/search: random (stateless, cheap; no per-host bookkeeping).
  { cluster: 'search', service: 'search', lbPolicy: 'RANDOM', instances: [
    { name: 'search-1', version: 'v1', port: 8151 },
    { name: 'search-2', version: 'v1', port: 8152 },
  ] },
  // /api/inventory: weighted endpoints, 3:1 (a bigger and a smaller machine).
  { cluster: 'inventory', service: 'inventory', lbPolicy: 'ROUND_ROBIN', instances: [
    { name: 'inventory-big', version: 'v1', port: 8161, weight: 3 },
    { name: 'inventory-small', version: 'v1', port: 8162, weight: 1 },
  ] },
  // /api/flaky: three instances, any of which can be told to fail (POST /__control?fail=always) to watch outlier
  // detection eject it and traffic come back once it heals.
  { cluster: 'flaky', service: 'flaky', lbPolicy: 'ROUND_ROBIN', instances: [
    { name: 'flaky-1', version: 'v1', port: 8171 },
    { name: 'flaky-2', version: 'v1', port: 8172 },
    { name: 'flaky-3', version: 'v1', port: 8173 },
  ] },
];

/** Fixed ports of the local variant (the demo); the compose variant uses the same ports inside its containers. */
export const GATEWAY_PORTS = {
  http: 8080,
  https: 8443,
  mtls: 8444,
  envoyAdmin: 9901,
  /** GET /stats/prometheus only (the admin interface stays on loopback). */
  envoyMetrics: 9902,
  portcullisGrpc: 8081,
  portcullisAdmin: 9091,
} as const;

export function allInstances(): { service: UpstreamService; instance: SampleInstance }[] {
  return UPSTREAM_SERVICES.flatMap((service) => service.instances.map((instance) => ({ service, instance })));
}
