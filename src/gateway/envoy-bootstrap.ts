// The gateway's Envoy bootstrap, built from one definition for every place it runs: the local demo
// (envoy/envoy.yaml), docker-compose (envoy/envoy.compose.yaml) and the e2e tests (free ports, temp certificates).
// The variants differ only in the GatewayTarget (addresses, certificate directory, access log path), so they cannot
// drift. Pure: no I/O; scripts/… and src/gateway/write-configs.ts write the files.

import type { PortcullisFilters } from './filters.js';
import { UPSTREAM_SERVICES, type SampleInstance, type UpstreamService } from './topology.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A Unix domain socket: Portcullis beside Envoy (server.grpc.address: unix:/path), no TCP stack on either side. */
export interface SocketPath {
  readonly pipe: string;
}

export interface GatewayTarget {
  readonly listeners: { readonly http: HostPort; readonly https: HostPort; readonly mtls: HostPort };
  /** Envoy's admin interface: loopback only. It has no authentication and mutating endpoints (/quitquitquit). */
  readonly admin: HostPort;
  /**
   * A listener that serves only `GET /stats/prometheus` from the admin interface, for a scraper that cannot reach
   * the admin's loopback address (Prometheus in another container). Absent: no such listener.
   */
  readonly metrics?: HostPort;
  /** Portcullis' gRPC listener: host:port, or the path of its Unix socket. */
  readonly portcullis: HostPort | SocketPath;
  /** Where an upstream instance is reachable from Envoy. */
  endpoint(service: UpstreamService, instance: SampleInstance): HostPort;
  /** Directory holding server.pem, server-key.pem and ca.pem (scripts/make-certs.sh). */
  readonly certDir: string;
  /** A file for the JSON access log; absent: Envoy's stdout (works whatever stdout is: pipe, socket, tty). */
  readonly accessLogPath?: string;
  /** CIDRs allowed to reach /admin. */
  readonly adminAllowCidrs: readonly string[];
  /** Deadlines of the Portcullis calls; the defaults are for production (a cold test machine needs more). */
  readonly callTimeouts?: Partial<CallTimeouts>;
}

export interface CallTimeouts {
  readonly extAuthz: string;
  readonly rateLimit: string;
  readonly extProc: string;
}

export const DEFAULT_CALL_TIMEOUTS: CallTimeouts = { extAuthz: '0.5s', rateLimit: '0.25s', extProc: '0.2s' };

/** Rate limit domain of the gateway; envoy/ratelimit/gateway.yaml holds its descriptors. */
export const GATEWAY_DOMAIN = 'gateway';
/** Largest request body the edge accepts; larger ones get 413. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Where ext_authz puts the caller's identity (dynamic metadata namespace of the ext_authz filter). */
export const AUTHZ_METADATA_NAMESPACE = 'envoy.filters.http.ext_authz';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

type Json = Record<string, unknown>;

export function buildGatewayBootstrap(target: GatewayTarget, filters: PortcullisFilters): Json {
  const timeouts = { ...DEFAULT_CALL_TIMEOUTS, ...target.callTimeouts };
  const routeConfig = buildRouteConfig(target, filters);
  return {
    admin: { address: socketAddress(target.admin) },
    // Envoy's own stats (circuit breakers, outlier ejections, ratelimit.ok/over_limit/error) are served on the
    // admin port; Prometheus scrapes /stats/prometheus there.
    static_resources: {
      listeners: [
        listener('http', target.listeners.http, routeConfig, target, filters, timeouts, undefined),
        listener('https', target.listeners.https, routeConfig, target, filters, timeouts, tlsContext(target, false)),
        listener('mtls', target.listeners.mtls, routeConfig, target, filters, timeouts, tlsContext(target, true)),
        ...(target.metrics === undefined ? [] : [metricsListener(target.metrics)]),
      ],
      clusters: [
        ...UPSTREAM_SERVICES.map((service) => upstreamCluster(service, target)),
        portcullisCluster(target.portcullis),
        ...(target.metrics === undefined ? [] : [adminCluster(target.admin)]),
      ],
    },
    ...(filters.extProc ? { layered_runtime: EXT_PROC_RUNTIME } : {}),
  };
}

/**
 * Without graceful close Envoy ends every ext_proc stream with RST_STREAM(CANCEL), and Node's HTTP/2 stack (nghttp2's
 * rapid-reset defence: a burst of 1000 client resets per connection, then 33/s) starts refusing streams at ~35
 * requests/s. With it Envoy half-closes and Portcullis ends the stream (docs/extproc.md, "Stream close").
 */
const EXT_PROC_RUNTIME = {
  layers: [{ name: 'ext_proc', static_layer: { 'envoy.reloadable_features.ext_proc_graceful_grpc_close': true } }],
};

// ---------------------------------------------------------------------------------------------------------------
// Listeners and the HTTP filter chain

type ListenerKind = 'http' | 'https' | 'mtls';

function listener(
  kind: ListenerKind,
  address: HostPort,
  routeConfig: Json,
  target: GatewayTarget,
  filters: PortcullisFilters,
  timeouts: CallTimeouts,
  tls: Json | undefined,
): Json {
  const hcm: Json = {
    '@type': HCM,
    stat_prefix: kind,
    codec_type: 'AUTO',
    // Edge proxy: the client address is the TCP peer (and is appended to x-forwarded-for); client-supplied
    // x-forwarded-for, x-request-id and x-envoy-* headers are not trusted.
    use_remote_address: true,
    generate_request_id: true,
    preserve_external_request_id: false,
    always_set_request_id_in_response: true,
    // One path for every party (Envoy's edge best practice): routes, the /admin allow-list, the filters and the
    // upstream all see `/public/../admin` as `/admin` (RFC 3986 dot segments removed, `//` merged). An escaped slash
    // (%2F) is refused with 400 rather than guessed at: API clients send normal paths. UNESCAPE_AND_REDIRECT suits
    // browsers, KEEP_UNCHANGED upstreams that need %2F kept.
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'REJECT_REQUEST',
    // Client-supplied x-forwarded-client-cert is always dropped; on the mTLS listener Envoy sets it from the verified
    // client certificate, so upstreams see the identity too (ext_authz gets the certificate itself).
    forward_client_cert_details: kind === 'mtls' ? 'SANITIZE_SET' : 'SANITIZE',
    ...(kind === 'mtls' ? { set_current_client_cert_details: { subject: true, uri: true, dns: true } } : {}),
    // Slow-loris and idle protection; the per-route timeouts bound each request.
    request_headers_timeout: '10s',
    stream_idle_timeout: '30s',
    common_http_protocol_options: { idle_timeout: '300s', headers_with_underscores_action: 'REJECT_REQUEST' },
    route_config: routeConfig,
    access_log: [accessLog(target.accessLogPath, filters)],
    http_filters: httpFilters(filters, timeouts),
  };
  return {
    name: kind,
    address: socketAddress(address),
    per_connection_buffer_limit_bytes: 32768,
    filter_chains: [
      {
        ...(tls === undefined ? {} : {
          transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: tls },
        }),
        filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }],
      },
    ],
  };
}

/**
 * Prometheus in another container needs Envoy's stats, but the admin interface must not leave loopback: anyone who
 * reaches it can read the whole config (/config_dump), stop Envoy (POST /quitquitquit), fail its health checks or
 * change its log level and runtime, and in docker-compose every upstream container shares Envoy's network. This
 * listener forwards exactly `GET /stats/prometheus` (query parameters included) to the admin; anything else is 404.
 */
function metricsListener(address: HostPort): Json {
  const hcm: Json = {
    '@type': HCM,
    stat_prefix: 'metrics',
    codec_type: 'AUTO',
    route_config: {
      name: 'metrics',
      virtual_hosts: [
        {
          name: 'metrics',
          domains: ['*'],
          routes: [
            { name: 'prometheus', match: { path: '/stats/prometheus', headers: [method('GET')] }, route: { cluster: ADMIN_CLUSTER, timeout: '5s' } },
            { name: 'not-found', match: { prefix: '/' }, direct_response: { status: 404, body: { inline_string: 'no route\n' } } },
          ],
        },
      ],
    },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
  };
  return {
    name: 'metrics',
    address: socketAddress(address),
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
  };
}

const ADMIN_CLUSTER = 'envoy_admin';

/** Envoy's own admin interface, for the metrics listener. */
function adminCluster(admin: HostPort): Json {
  return {
    name: ADMIN_CLUSTER,
    type: 'STATIC',
    connect_timeout: '0.25s',
    load_assignment: { cluster_name: ADMIN_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(admin) } }] }] },
  };
}

/**
 * The HTTP filters, in request order:
 *
 *   cors → rbac → ext_authz → ratelimit → buffer → ext_proc → router
 *
 * - cors first: a preflight (OPTIONS + Origin + Access-Control-Request-Method) is answered by Envoy itself and must
 *   not need credentials, count against a limit or reach a service.
 * - rbac (the /admin IP allow-list) next: a local, free check on the peer address that needs nobody.
 * - ext_authz before ratelimit: limits are per caller (API key, user), so the caller must be known first; an
 *   unauthenticated flood is rejected by authn without touching the counters.
 * - ratelimit before anything expensive: a rejected request costs one Redis round trip, not a body read, an
 *   ext_proc stream or an upstream call.
 * - buffer (max_request_bytes → 413) after the checks that need only headers, so anonymous or over-limit callers
 *   never make Envoy buffer a body; it caps what ext_proc and the upstreams ever see.
 * - ext_proc last before the router: validation, request ids, header injection and the response cache act only on
 *   requests that are allowed, authenticated and within their limits (a cached answer still needs a caller who may
 *   have it).
 */
function httpFilters(filters: PortcullisFilters, timeouts: CallTimeouts): Json[] {
  return [
    { name: 'envoy.filters.http.cors', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' } },
    // No rules here: enforcement only where a route sets RBACPerRoute (/admin).
    { name: 'envoy.filters.http.rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC' } },
    ...(filters.extAuthz ? [extAuthzFilter(timeouts.extAuthz)] : []),
    rateLimitFilter(timeouts.rateLimit),
    {
      name: 'envoy.filters.http.buffer',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer', max_request_bytes: MAX_REQUEST_BYTES },
    },
    ...(filters.extProc ? [extProcFilter(timeouts.extProc, filters)] : []),
    { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
  ];
}

/**
 * Every side call to Portcullis. `skip_envoy_headers` drops x-envoy-internal and x-forwarded-for from the call, which
 * Portcullis never reads: Node's HTTP/2 layer turns each request header value into a string in V8's old generation
 * that only a mark-compact frees, and two fewer headers cut that garbage by 31 % per call (docs/benchmarks.md,
 * "What fills the old generation").
 */
function portcullisService(timeout?: string): Json {
  return { envoy_grpc: { cluster_name: 'portcullis', skip_envoy_headers: true }, ...(timeout !== undefined ? { timeout } : {}) };
}

/**
 * Fail closed: when Portcullis cannot answer (down, too slow, gRPC error), the request is refused with 503. An
 * authorization outage must never let every caller in. Only a gRPC error means "failed" — a denial is an answer.
 */
function extAuthzFilter(timeout: string): Json {
  return {
    name: 'envoy.filters.http.ext_authz',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
      transport_api_version: 'V3',
      grpc_service: portcullisService(timeout),
      failure_mode_allow: false,
      status_on_error: { code: 'ServiceUnavailable' },
      // The mTLS listener's verified client certificate goes to Portcullis (source.certificate, URL-encoded PEM);
      // source.principal carries its URI SAN or subject either way.
      include_peer_certificate: true,
      // Headers only; routes that need the body for a policy ask for it in their own per-route config.
      clear_route_cache: false,
    },
  };
}

/**
 * Fail open: rate limiting protects capacity, and losing it for the seconds Portcullis or Redis is away is better
 * than refusing all traffic. Envoy counts these as ratelimit.failure_mode_allowed, which is alerted on.
 */
function rateLimitFilter(timeout: string): Json {
  return {
    name: 'envoy.filters.http.ratelimit',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit',
      domain: GATEWAY_DOMAIN,
      timeout,
      failure_mode_deny: false,
      enable_x_ratelimit_headers: 'DRAFT_VERSION_03',
      rate_limit_service: { transport_api_version: 'V3', grpc_service: portcullisService() },
    },
  };
}

/**
 * Fail open with a short per-message deadline: ext_proc adds request ids, headers and a response cache — a request
 * served without them is degraded, not unsafe. (A route whose correctness depends on ext_proc validation can set
 * failure_mode_allow: false in its own ExtProcPerRoute overrides.) Headers only by default; bodies per route.
 */
function extProcFilter(timeout: string, filters: PortcullisFilters): Json {
  return {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      grpc_service: portcullisService(timeout),
      failure_mode_allow: true,
      message_timeout: timeout,
      // Portcullis asks for a body only where it uses one (validation, a response it will cache): mode_override.
      allow_mode_override: true,
      // The caller ext_authz authenticated keys the private cache entries and fills {user_id} & co. in templates.
      ...(filters.extAuthz ? { metadata_options: { forwarding_namespaces: { untyped: [AUTHZ_METADATA_NAMESPACE] } } } : {}),
      // No response phase unless Portcullis asks for one in its request_headers answer (mode_override). A response
      // Envoy makes itself for a request it could not parse (a header name with `_`, a bad character) never had a
      // request phase: with SEND here, ext_proc held that 400 for a call while Envoy closed the connection, and the
      // client got no answer at all.
      processing_mode: {
        request_header_mode: 'SEND',
        response_header_mode: 'SKIP',
        request_body_mode: 'NONE',
        response_body_mode: 'NONE',
        request_trailer_mode: 'SKIP',
        response_trailer_mode: 'SKIP',
      },
    },
  };
}

function tlsContext(target: GatewayTarget, requireClientCertificate: boolean): Json {
  const file = (name: string): Json => ({ filename: `${target.certDir}/${name}` });
  return {
    '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
    common_tls_context: {
      tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
      alpn_protocols: ['h2', 'http/1.1'],
      tls_certificates: [{ certificate_chain: file('server.pem'), private_key: file('server-key.pem') }],
      ...(requireClientCertificate ? { validation_context: { trusted_ca: file('ca.pem') } } : {}),
    },
    ...(requireClientCertificate ? { require_client_certificate: true } : {}),
  };
}

/** One JSON line per request; missing values are null. */
function accessLog(path: string | undefined, filters: PortcullisFilters): Json {
  return {
    name: path === undefined ? 'envoy.access_loggers.stdout' : 'envoy.access_loggers.file',
    typed_config: {
      '@type': path === undefined
        ? 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog'
        : 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
      ...(path === undefined ? {} : { path }),
      log_format: {
        json_format: {
          timestamp: '%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%',
          method: '%REQ(:METHOD)%',
          // The path the client asked for, without its query: a query may carry a credential (`?api_key=`, an
          // `access_token`, a signed URL), and a refused request keeps it, since ext_authz strips the key only on allow.
          path: '%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%',
          status: '%RESPONSE_CODE%',
          latency_ms: '%DURATION%',
          client_ip: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%',
          user_id: filters.extAuthz ? `%DYNAMIC_METADATA(${AUTHZ_METADATA_NAMESPACE}:user_id)%` : '%REQ(X-USER-ID)%',
          upstream: '%UPSTREAM_CLUSTER%',
          upstream_host: '%UPSTREAM_HOST%',
          request_id: '%REQ(X-REQUEST-ID)%',
          rate_limit_remaining: '%RESP(X-RATELIMIT-REMAINING)%',
          // Set by Portcullis' ext_proc response cache (HIT, MISS, BYPASS) once that filter is on.
          cache_status: '%RESP(X-CACHE-STATUS)%',
          response_flags: '%RESPONSE_FLAGS%',
          listener: '%DOWNSTREAM_LOCAL_ADDRESS%',
        },
        formatters: [
          {
            name: 'envoy.formatter.req_without_query',
            typed_config: { '@type': 'type.googleapis.com/envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery' },
          },
        ],
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Routes

function buildRouteConfig(target: GatewayTarget, filters: PortcullisFilters): Json {
  return {
    name: 'gateway',
    // Client-facing names of Envoy's own headers are not useful at the edge; x-envoy-upstream-service-time stays.
    response_headers_to_remove: ['x-envoy-decorator-operation'],
    virtual_hosts: [
      {
        name: 'gateway',
        domains: ['*'],
        include_request_attempt_count: true,
        rate_limits: vhostRateLimits(filters),
        retry_policy: retryPolicy('5xx,reset,connect-failure'),
        typed_per_filter_config: {
          'envoy.filters.http.cors': {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
            allow_origin_string_match: [{ exact: 'https://app.example.com' }, { suffix: '.localhost' }],
            allow_methods: 'GET, POST, PUT, PATCH, DELETE',
            allow_headers: 'authorization, content-type, x-api-key, x-request-id, api-version',
            expose_headers: 'x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset',
            max_age: '600',
            allow_credentials: true,
          },
        },
        routes: routes(target, filters),
      },
    ],
  };
}

/**
 * Descriptors of every routed request (the vhost's rate_limits; envoy/ratelimit/gateway.yaml has one rule each):
 *   [scope=global]              everyone together
 *   [remote_address=<client>]   per client address
 *   [api_key=<key>]             per API key (x-api-key; with ext_authz on: the id of the key ext_authz verified)
 *   [user_id=<user>]            per user (x-user-id; with ext_authz on: the user ext_authz authenticated)
 * An action whose source is absent (no key, no user) produces no descriptor at all.
 */
function vhostRateLimits(filters: PortcullisFilters): Json[] {
  // metadataKey: the key ext_authz writes (src/authz/decide.ts METADATA_KEYS, docs/authz.md).
  const identity = (key: string, metadataKey: string, header: string): Json =>
    filters.extAuthz
      ? { metadata: { descriptor_key: key, source: 'DYNAMIC', metadata_key: { key: AUTHZ_METADATA_NAMESPACE, path: [{ key: metadataKey }] } } }
      : { request_headers: { header_name: header, descriptor_key: key } };
  return [
    { actions: [{ generic_key: { descriptor_key: 'scope', descriptor_value: 'global' } }] },
    { actions: [{ remote_address: {} }] },
    { actions: [identity('api_key', 'api_key_id', 'x-api-key')] },
    { actions: [identity('user_id', 'user_id', 'x-user-id')] },
  ];
}

/**
 * Exponential backoff (25 ms base, 250 ms cap, jittered), another host for each attempt, and a retry budget in the
 * clusters' circuit_breakers so retries can never more than add 20 % to the load of a struggling service.
 */
function retryPolicy(retryOn: string): Json {
  return {
    retry_on: retryOn,
    num_retries: 2,
    per_try_timeout: '1s',
    retry_back_off: { base_interval: '0.025s', max_interval: '0.25s' },
    retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
    host_selection_retry_max_attempts: 3,
  };
}

const ratelimitPerRoute = (mode: 'INCLUDE' | 'IGNORE'): Json => ({
  '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute',
  vh_rate_limits: mode,
});

/** Turns the Portcullis filters off on a route that Envoy answers itself. */
function envoyOnly(filters: PortcullisFilters): Json {
  return {
    'envoy.filters.http.ratelimit': ratelimitPerRoute('IGNORE'),
    ...(filters.extAuthz ? { 'envoy.filters.http.ext_authz': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute', disabled: true } } : {}),
    ...(filters.extProc ? { 'envoy.filters.http.ext_proc': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute', disabled: true } } : {}),
  };
}

function forward(cluster: string, extra: Json = {}): Json {
  return { cluster, timeout: '3s', ...extra };
}

/**
 * Paths match whole segments (`path_separated_prefix`: /api/orders and /api/orders/…, not /api/ordersX), the way
 * the authz policies and `portcullis check-envoy` read them; a prefix ending in / is a plain prefix.
 */
function routes(target: GatewayTarget, filters: PortcullisFilters): Json[] {
  const v2 = { cluster: 'api_v2', timeout: '3s', prefix_rewrite: '/items' };
  return [
    { name: 'healthz', match: { path: '/healthz' }, direct_response: { status: 200, body: { inline_string: 'ok\n' } }, typed_per_filter_config: envoyOnly(filters) },

    // Edge IP allow-list: the TCP peer (direct_remote_ip ignores x-forwarded-for), then the normal chain.
    {
      name: 'admin',
      match: { path_separated_prefix: '/admin' },
      direct_response: { status: 200, body: { inline_string: 'admin area\n' } },
      typed_per_filter_config: {
        'envoy.filters.http.rbac': {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute',
          rbac: {
            rules: {
              action: 'ALLOW',
              policies: {
                'admin-allow-list': {
                  permissions: [{ any: true }],
                  principals: target.adminAllowCidrs.map((cidr) => ({ direct_remote_ip: cidrRange(cidr) })),
                },
              },
            },
          },
        },
        'envoy.filters.http.ratelimit': ratelimitPerRoute('IGNORE'),
      },
    },

    // Prefix stripped: /api/users/42 reaches the users service as /42.
    { name: 'users', match: { prefix: '/api/users/' }, route: forward('users', { prefix_rewrite: '/' }) },

    // Method matching: reads retry on 5xx; creating an order is not idempotent, so it is retried only when the
    // request never reached an upstream; other methods are refused by Envoy.
    { name: 'orders-read', match: { path_separated_prefix: '/api/orders', headers: [method('GET')] }, route: forward('orders') },
    { name: 'orders-create', match: { path_separated_prefix: '/api/orders', headers: [method('POST')] }, route: forward('orders', { retry_policy: retryPolicy('connect-failure,reset-before-request') }) },
    // A CORS preflight needs a forwarding route: Envoy's CORS filter does not answer on a direct_response route.
    // A valid one is answered by the filter and never forwarded.
    { name: 'orders-preflight', match: { path_separated_prefix: '/api/orders', headers: [method('OPTIONS')] }, route: forward('orders') },
    { name: 'orders-other', match: { path_separated_prefix: '/api/orders' }, direct_response: { status: 405, body: { inline_string: 'method not allowed\n' } }, typed_per_filter_config: envoyOnly(filters) },

    // Per endpoint: /api/export adds [route=export] (10 per minute in total) to the vhost's descriptors.
    {
      name: 'export',
      match: { path_separated_prefix: '/api/export' },
      route: forward('orders', { rate_limits: [{ actions: [{ generic_key: { descriptor_key: 'route', descriptor_value: 'export' } }] }] }),
      typed_per_filter_config: { 'envoy.filters.http.ratelimit': ratelimitPerRoute('INCLUDE') },
    },

    // Versioning by URL.
    { name: 'v1', match: { prefix: '/v1/' }, route: forward('api_v1', { prefix_rewrite: '/' }) },
    { name: 'v2', match: { prefix: '/v2/' }, route: forward('api_v2', { prefix_rewrite: '/' }) },
    // Versioning of /api/items by header, query parameter and content negotiation; v1 otherwise.
    { name: 'items-v2-header', match: { path_separated_prefix: '/api/items', headers: [{ name: 'api-version', string_match: { exact: '2' } }] }, route: v2 },
    { name: 'items-v2-query', match: { path_separated_prefix: '/api/items', query_parameters: [{ name: 'version', string_match: { exact: '2' } }] }, route: v2 },
    { name: 'items-v2-accept', match: { path_separated_prefix: '/api/items', headers: [{ name: 'accept', string_match: { contains: 'application/vnd.api.v2+json' } }] }, route: v2 },
    { name: 'items-v1', match: { path_separated_prefix: '/api/items' }, route: { cluster: 'api_v1', timeout: '3s', prefix_rewrite: '/items' } },

    // Canary: 90 % stable, 10 % canary.
    {
      name: 'catalog',
      match: { path_separated_prefix: '/api/catalog' },
      route: { weighted_clusters: { clusters: [{ name: 'catalog', weight: 90 }, { name: 'catalog_canary', weight: 10 }] }, timeout: '3s' },
    },

    // Session affinity: the ring hash of the sessions cluster hashes the client address.
    { name: 'sessions', match: { path_separated_prefix: '/api/sessions' }, route: forward('sessions', { hash_policy: [{ connection_properties: { source_ip: true } }] }) },

    // Interactive: answer within 1 s or 504.
    { name: 'search', match: { path_separated_prefix: '/api/search' }, route: forward('search', { timeout: '1s' }) },
    { name: 'inventory', match: { path_separated_prefix: '/api/inventory' }, route: forward('inventory') },
    { name: 'flaky', match: { path_separated_prefix: '/api/flaky' }, route: forward('flaky') },
    // Nothing is served here, so nobody needs to be asked who the caller is.
    { name: 'not-found', match: { prefix: '/' }, direct_response: { status: 404, body: { inline_string: 'no route\n' } }, typed_per_filter_config: envoyOnly(filters) },
  ];
}

function method(name: string): Json {
  return { name: ':method', string_match: { exact: name } };
}

function cidrRange(cidr: string): Json {
  const [address, length] = cidr.split('/');
  if (address === undefined || length === undefined) throw new Error(`not a CIDR: ${cidr}`);
  return { address_prefix: address, prefix_len: Number(length) };
}

// ---------------------------------------------------------------------------------------------------------------
// Clusters

function upstreamCluster(service: UpstreamService, target: GatewayTarget): Json {
  const endpoints = service.instances.map((instance) => ({
    endpoint: { address: socketAddress(target.endpoint(service, instance)) },
    ...(instance.weight === undefined ? {} : { load_balancing_weight: instance.weight }),
  }));
  const anyHostName = service.instances.some((instance) => !isIpAddress(target.endpoint(service, instance).host));
  return {
    name: service.cluster,
    type: anyHostName ? 'STRICT_DNS' : 'STATIC',
    ...(anyHostName ? { dns_lookup_family: 'V4_ONLY' } : {}),
    connect_timeout: '0.5s',
    lb_policy: service.lbPolicy,
    ...(service.lbPolicy === 'LEAST_REQUEST' ? { least_request_lb_config: { choice_count: 2 } } : {}),
    ...(service.lbPolicy === 'RING_HASH' ? { ring_hash_lb_config: { minimum_ring_size: 1024 } } : {}),
    load_assignment: { cluster_name: service.cluster, endpoints: [{ lb_endpoints: endpoints }] },
    health_checks: [
      {
        timeout: '1s',
        interval: '2s',
        no_traffic_interval: '5s',
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        http_health_check: { path: '/healthz' },
      },
    ],
    // The circuit breaker proper: 3 consecutive 5xx eject a host for 5 s (longer each time it recurs), at most half
    // of a cluster at once so a bad deploy cannot eject everything.
    outlier_detection: {
      consecutive_5xx: 3,
      consecutive_gateway_failure: 3,
      interval: '1s',
      base_ejection_time: '5s',
      max_ejection_time: '60s',
      max_ejection_percent: 50,
    },
    circuit_breakers: {
      thresholds: [
        {
          priority: 'DEFAULT',
          max_connections: 1024,
          max_pending_requests: 256,
          max_requests: 1024,
          retry_budget: { budget_percent: { value: 20 }, min_retry_concurrency: 3 },
        },
      ],
    },
    upstream_connection_options: { tcp_keepalive: { keepalive_time: 60, keepalive_interval: 10, keepalive_probes: 3 } },
  };
}

/**
 * One cluster for all three Portcullis services: gRPC needs HTTP/2, and one multiplexed connection per worker
 * carries every call. max_requests bounds concurrent calls (streams) — sized for ~5000 requests/s at ~50 ms worst
 * latency with room to spare; when it is reached a call fails fast and each filter's failure mode decides. Keepalive
 * pings find a dead connection within ~35 s even when no call is in flight; the gRPC health check takes a draining
 * Portcullis (NOT_SERVING on SIGTERM) out before it closes.
 */
function portcullisCluster(address: HostPort | SocketPath): Json {
  const pipe = 'pipe' in address;
  const hostName = !pipe && !isIpAddress(address.host);
  return {
    name: 'portcullis',
    type: hostName ? 'STRICT_DNS' : 'STATIC',
    ...(hostName ? { dns_lookup_family: 'V4_ONLY' } : {}),
    connect_timeout: '0.25s',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: {
          http2_protocol_options: {
            max_concurrent_streams: 1024,
            connection_keepalive: { interval: '30s', timeout: '5s' },
          },
        },
      },
    },
    circuit_breakers: {
      thresholds: [{ priority: 'DEFAULT', max_connections: 16, max_pending_requests: 1024, max_requests: 1024, max_retries: 3 }],
    },
    health_checks: [
      { timeout: '1s', interval: '5s', unhealthy_threshold: 2, healthy_threshold: 1, grpc_health_check: {} },
    ],
    // TCP keepalive finds a peer that vanished from the network; a Unix socket's peer is on this host, and its end
    // closes the connection when it goes (HTTP/2 PINGs above still find one that stopped answering).
    ...(pipe ? {} : { upstream_connection_options: { tcp_keepalive: { keepalive_time: 30, keepalive_interval: 5, keepalive_probes: 3 } } }),
    load_assignment: { cluster_name: 'portcullis', endpoints: [{ lb_endpoints: [{ endpoint: { address: pipe ? { pipe: { path: address.pipe } } : socketAddress(address) } }] }] },
  };
}

function socketAddress(address: HostPort): Json {
  return { socket_address: { address: address.host, port_value: address.port } };
}

function isIpAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}
