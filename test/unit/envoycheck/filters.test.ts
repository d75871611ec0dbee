import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { checkEnvoyFilters, checkExtprocModes, checkExtprocStreamClose, EXT_AUTHZ_FILTER, EXT_AUTHZ_TYPE, EXT_PROC_FILTER, EXT_PROC_TYPE, EXTPROC_ROUTE_METADATA, GRACEFUL_CLOSE_FLAG, type FilterFindingCode } from '../../../src/envoycheck/filters.js';
import { routeSites } from '../../../src/envoycheck/routes.js';
import { ROUTE_METADATA_KEY } from '../../../src/server/extproc-handler.js';
import { oneVhostBootstrap, type Json } from './bootstrap-fixture.js';

/** One listener, one vhost with `routes`; ext_authz and ext_proc in the chain unless left out. */
function bootstrap(routes: Json[], options: { authz?: boolean; extproc?: boolean; authzDisabled?: boolean; vhostPerFilter?: Json } = {}): Json {
  const { authz = true, extproc = true } = options;
  return oneVhostBootstrap({
    routes,
    vhost: options.vhostPerFilter ? { typed_per_filter_config: options.vhostPerFilter } : {},
    httpFilters: [
      ...(authz ? [{ name: EXT_AUTHZ_FILTER, ...(options.authzDisabled ? { disabled: true } : {}), typed_config: {} }] : []),
      ...(extproc ? [{ name: EXT_PROC_FILTER, typed_config: {} }] : []),
    ],
  });
}

const to = (name: string, match: Json, perFilter?: Json): Json => ({
  name, match, route: { cluster: 'c' }, ...(perFilter ? { typed_per_filter_config: perFilter } : {}),
});
const method = (m: string): Json => ({ name: ':method', string_match: { exact: m } });
const authzOff: Json = { [EXT_AUTHZ_FILTER]: { disabled: true } };
const authzPolicy = (policy: string): Json => ({ [EXT_AUTHZ_FILTER]: { check_settings: { context_extensions: { policy } } } });
const extprocNamed = (name: string): Json => ({ [EXT_PROC_FILTER]: { overrides: { grpc_initial_metadata: [{ key: EXTPROC_ROUTE_METADATA, value: name }] } } });

/** A portcullis.yaml with these policies (anonymous only: no files needed) and extproc routes. */
function config(policies: string, extprocRoutes = '', defaultPolicy = 'deny') {
  const text = [
    'ratelimit: { descriptors: ./ratelimit }',
    'authz:',
    `  default_policy: ${defaultPolicy}`,
    '  policies:',
    policies.trim().split('\n').map((l) => `    ${l}`).join('\n'),
    ...(extprocRoutes === '' ? [] : ['extproc:', '  routes:', extprocRoutes.trim().split('\n').map((l) => `    ${l}`).join('\n')]),
    '',
  ].join('\n');
  return parsePortcullisConfig(text, '/etc/portcullis/portcullis.yaml');
}

const ORDERS = '- { name: orders, match: { path_prefix: /api/orders }, authenticate: [anonymous] }';

describe('checkEnvoyFilters', () => {
  const cases: { name: string; bootstrap: Json; policies: string; defaultPolicy?: string; extproc?: string; want: FilterFindingCode[]; matches?: RegExp }[] = [
    {
      name: 'a whole-segment route and a policy for it: clean',
      bootstrap: bootstrap([to('orders', { path_separated_prefix: '/api/orders' })]),
      policies: ORDERS,
      want: [],
    },
    {
      name: 'a route no policy covers is closed',
      bootstrap: bootstrap([to('orders', { path_separated_prefix: '/api/orders' }), to('export', { path_separated_prefix: '/api/export' })]),
      policies: ORDERS,
      want: ['NO_AUTHZ_POLICY'],
      matches: /route 'export': no authz policy matches any request it carries \(e\.g\. GET \/api\/export,/,
    },
    {
      name: "a plain prefix carries /api/ordersX too, which the policy's whole-segment prefix does not cover",
      bootstrap: bootstrap([to('orders', { prefix: '/api/orders' })]),
      policies: ORDERS,
      want: ['PARTIAL_AUTHZ_POLICY'],
      matches: /GET \/api\/orders~probe/,
    },
    {
      name: 'a prefix ending in / is covered by the policy of its segment',
      bootstrap: bootstrap([to('users', { prefix: '/api/users/' })]),
      policies: '- { name: users, match: { path_prefix: /api/users }, authenticate: [anonymous] }',
      want: [],
    },
    {
      name: 'a broad route with a policy only for a deeper path is partly closed',
      bootstrap: bootstrap([to('api', { prefix: '/api/' })]),
      policies: ORDERS,
      want: ['PARTIAL_AUTHZ_POLICY'],
      matches: /e\.g\. GET \/api\/,/,
    },
    {
      name: 'a policy for some methods leaves the route\'s other methods closed',
      bootstrap: bootstrap([to('orders', { path_separated_prefix: '/api/orders' })]),
      policies: '- { name: orders, match: { path_prefix: /api/orders, methods: [GET] }, authenticate: [anonymous] }',
      want: ['PARTIAL_AUTHZ_POLICY'],
      matches: /HEAD \/api\/orders/,
    },
    {
      name: "a route's :method matcher limits the probe to that method",
      bootstrap: bootstrap([to('orders-read', { path_separated_prefix: '/api/orders', headers: [method('GET')] })]),
      policies: '- { name: orders, match: { path_prefix: /api/orders, methods: [GET] }, authenticate: [anonymous] }',
      want: [],
    },
    {
      // Not NO_AUTHZ_POLICY: no request there reaches Portcullis. An upstream no policy opens, though, is bypassed.
      name: 'a route with ext_authz disabled per route is not checked for a policy',
      bootstrap: bootstrap([to('health', { path: '/healthz' }, authzOff)]),
      policies: ORDERS,
      want: ['AUTHZ_BYPASSED'],
    },
    {
      name: 'disabled on the virtual host: not checked for a policy',
      bootstrap: bootstrap([to('health', { path: '/healthz' })], { vhostPerFilter: authzOff }),
      policies: ORDERS,
      want: ['AUTHZ_BYPASSED'],
    },
    {
      name: 'a filter disabled by default runs only where a route enables it',
      bootstrap: bootstrap([to('health', { path: '/healthz' }), to('export', { path: '/api/export' }, authzPolicy('nope'))], { authzDisabled: true }),
      policies: ORDERS,
      want: ['AUTHZ_BYPASSED', 'UNKNOWN_AUTHZ_POLICY'],
    },
    {
      // Envoy picks the extension by @type; the name only keys per-route configs.
      name: 'ext_authz under another name is still ext_authz, and its per-route config is under that name',
      bootstrap: oneVhostBootstrap({
        routes: [to('secret', { path_separated_prefix: '/secret' }), to('health', { path: '/healthz' }, { authz: { disabled: true } }), to('export', { path: '/api/export' }, { authz: { check_settings: { context_extensions: { policy: 'nope' } } } })],
        httpFilters: [{ name: 'authz', typed_config: { '@type': EXT_AUTHZ_TYPE } }],
      }),
      policies: ORDERS,
      want: ['NO_AUTHZ_POLICY', 'AUTHZ_BYPASSED', 'UNKNOWN_AUTHZ_POLICY'],
    },
    {
      name: 'ext_proc under another name is still ext_proc: its routes and route names are checked',
      bootstrap: oneVhostBootstrap({
        routes: [to('catalog', { path_separated_prefix: '/api/catalog' }, { proc: { overrides: { grpc_initial_metadata: [{ key: EXTPROC_ROUTE_METADATA, value: 'nope' }] } } })],
        httpFilters: [{ name: 'proc', typed_config: { '@type': EXT_PROC_TYPE } }],
      }),
      policies: ORDERS,
      extproc: '- { name: other, match: { path: /api/other } }',
      want: ['UNKNOWN_EXTPROC_ROUTE', 'EXTPROC_ROUTE_UNREACHABLE'],
    },
    {
      name: 'a route naming a known policy is covered whatever its path',
      bootstrap: bootstrap([to('export', { path_separated_prefix: '/api/export' }, authzPolicy('orders'))]),
      policies: ORDERS,
      want: [],
    },
    {
      name: 'a route naming an unknown policy is denied for everyone',
      bootstrap: bootstrap([to('export', { path_separated_prefix: '/api/export' }, authzPolicy('exports'))]),
      policies: ORDERS,
      want: ['UNKNOWN_AUTHZ_POLICY'],
      matches: /names authz policy 'exports'/,
    },
    {
      name: 'a probe an earlier route takes is not counted against a later one',
      bootstrap: bootstrap([to('orders', { path_separated_prefix: '/api/orders' }), to('rest', { prefix: '/' }, authzOff), to('never', { prefix: '/api/orders' })]),
      policies: ORDERS,
      // 'rest' skips ext_authz where no policy opens it; 'never' carries nothing the earlier routes leave.
      want: ['AUTHZ_BYPASSED'],
      matches: /route 'rest'/,
    },
    {
      name: 'a direct response route with ext_authz on is checked too',
      bootstrap: bootstrap([{ name: 'admin', match: { path_separated_prefix: '/admin' }, direct_response: { status: 200 } }]),
      policies: ORDERS,
      want: ['NO_AUTHZ_POLICY'],
    },
    {
      name: 'default_policy naming a policy answers everything: nothing is closed',
      bootstrap: bootstrap([to('export', { path_separated_prefix: '/api/export' })]),
      policies: ORDERS,
      defaultPolicy: 'orders',
      want: [],
    },
    {
      name: 'a route whose path match cannot be read is reported',
      bootstrap: bootstrap([to('re', { safe_regex: { regex: '/api/.*' } })]),
      policies: ORDERS,
      want: ['UNSUPPORTED_MATCH'],
    },
    {
      name: 'an extproc route some Envoy route reaches: clean',
      bootstrap: bootstrap([to('catalog', { path_separated_prefix: '/api/catalog' })], { authz: false }),
      policies: ORDERS,
      extproc: '- { name: featured, match: { path: /api/catalog/featured, methods: [GET] } }',
      want: [],
    },
    {
      name: 'an extproc route no Envoy route carries is unreachable',
      bootstrap: bootstrap([to('catalog', { path_separated_prefix: '/api/catalog' })], { authz: false }),
      policies: ORDERS,
      extproc: '- { name: featured, match: { path: /api/catalog/featured } }\n- { name: users, match: { path_prefix: /api/users } }',
      want: ['EXTPROC_ROUTE_UNREACHABLE'],
      matches: /extproc route 'users' \(path_prefix \/api\/users\) is never reached/,
    },
    {
      name: 'an extproc route shadowed by an earlier one is unreachable',
      bootstrap: bootstrap([to('catalog', { path_separated_prefix: '/api/catalog' })], { authz: false }),
      policies: ORDERS,
      extproc: '- { name: all, match: { path_prefix: /api } }\n- { name: featured, match: { path: /api/catalog/featured } }',
      want: ['EXTPROC_ROUTE_UNREACHABLE'],
      matches: /'featured'/,
    },
    {
      name: 'only routes with ext_proc active reach extproc routes',
      bootstrap: bootstrap([to('catalog', { path_separated_prefix: '/api/catalog' }, { [EXT_PROC_FILTER]: { disabled: true } })], { authz: false }),
      policies: ORDERS,
      extproc: '- { name: featured, match: { path: /api/catalog/featured } }',
      want: ['EXTPROC_ROUTE_UNREACHABLE'],
    },
    {
      name: 'an Envoy route naming an extproc route reaches it; an unknown name is reported',
      bootstrap: bootstrap([to('a', { path: '/a' }, extprocNamed('featured')), to('b', { path: '/b' }, extprocNamed('featurd'))], { authz: false }),
      policies: ORDERS,
      extproc: '- { name: featured, match: { path: /api/catalog/featured } }',
      want: ['UNKNOWN_EXTPROC_ROUTE'],
      matches: /route 'b' names extproc route 'featurd'/,
    },
    {
      name: 'a bootstrap without an ext_proc filter does not judge the extproc routes',
      bootstrap: bootstrap([to('catalog', { path_separated_prefix: '/api/catalog' })], { authz: false, extproc: false }),
      policies: ORDERS,
      extproc: '- { name: users, match: { path_prefix: /api/users } }',
      want: [],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const parsed = config(c.policies, c.extproc, c.defaultPolicy);
      const summary = checkEnvoyFilters(routeSites(c.bootstrap), parsed.authz, parsed.extproc);
      assert.deepEqual(summary.findings.map((f) => f.code).sort(), [...c.want].sort(), JSON.stringify(summary.findings, null, 2));
      if (c.matches) assert.ok(summary.findings.some((f) => c.matches!.test(f.message)), JSON.stringify(summary.findings));
    });
  }

  it('without an authz section every checked route is closed', () => {
    const summary = checkEnvoyFilters(routeSites(bootstrap([to('orders', { path_separated_prefix: '/api/orders' })])), undefined, undefined);
    assert.deepEqual(summary.findings.map((f) => f.code), ['NO_AUTHZ_POLICY']);
  });

  it('reports a route once, with every listener it is on, and counts the routes it checked', () => {
    const b = bootstrap([to('export', { path_separated_prefix: '/api/export' })]);
    const listeners = (b['static_resources'] as { listeners: Json[] }).listeners;
    listeners.push({ ...listeners[0], name: 'tls' });
    const summary = checkEnvoyFilters(routeSites(b), config(ORDERS).authz, undefined);
    assert.equal(summary.findings.length, 1);
    assert.deepEqual(summary.findings[0]?.routes, ['listener ingress / vhost vh / route export', 'listener tls / vhost vh / route export']);
    assert.equal(summary.authzRoutes, 2);
    assert.equal(summary.extprocRoutes, 2);
  });

  it('REQUEST_ID_NOT_ECHOED: echo envoy needs always_set_request_id_in_response where ext_proc runs', () => {
    const codes = (echo: string, connectionManager: Json, extproc = true): string[] => {
      const b = oneVhostBootstrap({ routes: [to('all', { prefix: '/' })], httpFilters: extproc ? [{ name: EXT_PROC_FILTER }] : [], connectionManager });
      const parsed = parsePortcullisConfig(`ratelimit: { descriptors: ./ratelimit }\nextproc:\n  request_id: { echo: ${echo} }\n`, '/etc/portcullis/portcullis.yaml');
      return checkEnvoyFilters(routeSites(b), parsed.authz, parsed.extproc).findings.map((f) => f.code);
    };
    assert.deepEqual(codes('envoy', {}), ['REQUEST_ID_NOT_ECHOED']);
    assert.deepEqual(codes('envoy', { always_set_request_id_in_response: false }), ['REQUEST_ID_NOT_ECHOED']);
    assert.deepEqual(codes('envoy', { always_set_request_id_in_response: true }), []);
    assert.deepEqual(codes('portcullis', {}), [], 'Portcullis echoes it itself');
    assert.deepEqual(codes('envoy', {}, false), [], 'no ext_proc on the connection manager');
  });

  it('reads the extproc route name from the same gRPC metadata key the ext_proc server reads', () => {
    assert.equal(EXTPROC_ROUTE_METADATA, ROUTE_METADATA_KEY);
  });
});

/** `static_layer: &s { envoy: { loop: *s } }`, as the yaml library builds it. */
function cyclic(extra: Json = {}): Json {
  const layer: Json = { ...extra };
  layer['envoy'] = { loop: layer };
  return layer;
}

describe('checkExtprocStreamClose', () => {
  const route = { name: 'all', match: { prefix: '/' }, route: { cluster: 'upstream' } };
  const withExtproc = (extra: Json): Json => ({ ...oneVhostBootstrap({ routes: [route], httpFilters: [{ name: EXT_PROC_FILTER }] }), ...extra });
  const codes = (bootstrap: Json): string[] => checkExtprocStreamClose(bootstrap, routeSites(bootstrap)).map((f) => f.code);
  const cases: { name: string; bootstrap: Json; expected: string[] }[] = [
    { name: 'no ext_proc filter: nothing to say', bootstrap: oneVhostBootstrap({ routes: [route], httpFilters: [] }), expected: [] },
    { name: 'ext_proc without a runtime', bootstrap: withExtproc({}), expected: ['EXTPROC_STREAM_RESETS'] },
    { name: 'ext_proc under another name, without a runtime', bootstrap: oneVhostBootstrap({ routes: [route], httpFilters: [{ name: 'proc', typed_config: { '@type': EXT_PROC_TYPE } }] }), expected: ['EXTPROC_STREAM_RESETS'] },
    { name: 'dotted key, true', bootstrap: withExtproc({ layered_runtime: { layers: [{ name: 's', static_layer: { [GRACEFUL_CLOSE_FLAG]: true } }] } }), expected: [] },
    { name: 'nested keys, true', bootstrap: withExtproc({ layered_runtime: { layers: [{ name: 's', static_layer: { envoy: { reloadable_features: { ext_proc_graceful_grpc_close: true } } } }] } }), expected: [] },
    { name: 'set to false', bootstrap: withExtproc({ layered_runtime: { layers: [{ name: 's', static_layer: { [GRACEFUL_CLOSE_FLAG]: false } }] } }), expected: ['EXTPROC_STREAM_RESETS'] },
    { name: 'another static flag only', bootstrap: withExtproc({ layered_runtime: { layers: [{ name: 's', static_layer: { 'envoy.x': true } }] } }), expected: ['EXTPROC_STREAM_RESETS'] },
    { name: 'an RTDS layer may set it: not reported', bootstrap: withExtproc({ layered_runtime: { layers: [{ name: 'r', rtds_layer: { name: 'rt' } }] } }), expected: [] },
    { name: 'a static layer that contains itself (a YAML alias cycle)', bootstrap: withExtproc({ layered_runtime: { layers: [{ name: 's', static_layer: cyclic() }] } }), expected: ['EXTPROC_STREAM_RESETS'] },
    { name: 'a static layer that contains itself and sets the flag', bootstrap: withExtproc({ layered_runtime: { layers: [{ name: 's', static_layer: cyclic({ [GRACEFUL_CLOSE_FLAG]: true }) }] } }), expected: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(codes(c.bootstrap), c.expected));
});

describe('AUTHZ_METADATA_MISSING: a rate limit on ext_authz metadata needs ext_authz before the ratelimit filter', () => {
  const rateLimitFilter: Json = { name: 'envoy.filters.http.ratelimit', typed_config: { domain: 'gateway' } };
  const authzFilter: Json = { name: EXT_AUTHZ_FILTER, typed_config: {} };
  const perUser = (namespace: string): Json => ({
    name: 'users', match: { prefix: '/' },
    route: { cluster: 'c', rate_limits: [{ actions: [{ dynamic_metadata: { descriptor_key: 'user_id', metadata_key: { key: namespace, path: [{ key: 'user_id' }] } } }] }] },
  });
  const codes = (httpFilters: Json[], route = perUser(EXT_AUTHZ_FILTER)): string[] => {
    const authz = parsePortcullisConfig('authz:\n  default_policy: deny\n  policies:\n    - { name: all, match: { path_prefix: / }, authenticate: [anonymous] }\n', '/tmp/p.yaml').authz;
    return checkEnvoyFilters(routeSites(oneVhostBootstrap({ routes: [route], httpFilters })), authz, undefined).findings.map((f) => f.code);
  };
  const cases: { name: string; filters: Json[]; route?: Json; expected: string[] }[] = [
    { name: 'ext_authz, then ratelimit (the shipped order): nothing to say', filters: [authzFilter, rateLimitFilter], expected: [] },
    { name: 'ratelimit before ext_authz', filters: [rateLimitFilter, authzFilter], expected: ['AUTHZ_METADATA_MISSING'] },
    { name: 'no ext_authz at all', filters: [rateLimitFilter], expected: ['AUTHZ_METADATA_MISSING'] },
    { name: 'ext_authz disabled on the route', filters: [authzFilter, rateLimitFilter], route: { ...perUser(EXT_AUTHZ_FILTER), typed_per_filter_config: { [EXT_AUTHZ_FILTER]: { disabled: true } } }, expected: ['AUTHZ_METADATA_MISSING'] },
    { name: 'metadata of another namespace: not judged', filters: [rateLimitFilter], route: perUser('envoy.lb'), expected: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(codes(c.filters, c.route), c.expected));
});

describe('AUTHZ_BYPASSED: ext_authz disabled where the covering policy would not let an anonymous caller in', () => {
  const authz = parsePortcullisConfig([
    'authz:',
    '  default_policy: deny',
    '  mtls: {}',
    '  policies:',
    '    - { name: open, match: { path_prefix: /open }, authenticate: [mtls, anonymous] }',
    '    - { name: partners, match: { path_prefix: /partners }, authenticate: [mtls] }',
    '    - { name: admins, match: { path_prefix: /admin }, authenticate: [anonymous], require: { roles: [admin] } }',
    '    - { name: office, match: { path_prefix: /office }, authenticate: [anonymous], ip_allow: [10.0.0.0/8] }',
    '    - { name: reads, match: { path_prefix: /mixed, methods: [GET, HEAD] }, authenticate: [anonymous] }',
    '    - { name: writes, match: { path_prefix: /mixed }, authenticate: [mtls] }',
    '',
  ].join('\n'), '/tmp/p.yaml').authz;
  const found = (routes: Json[], vhostPerFilter?: Json) => checkEnvoyFilters(routeSites(bootstrap(routes, { extproc: false, ...(vhostPerFilter ? { vhostPerFilter } : {}) })), authz, undefined).findings;
  const FILTER_CONFIG_OFF: Json = { [EXT_AUTHZ_FILTER]: { '@type': 'type.googleapis.com/envoy.config.route.v3.FilterConfig', disabled: true } };
  const cases: { name: string; routes: Json[]; vhostPerFilter?: Json; want: FilterFindingCode[]; matches?: RegExp; where?: string }[] = [
    { name: 'an anonymous policy: nothing to protect', routes: [to('open', { path_separated_prefix: '/open' }, authzOff)], want: [] },
    {
      name: 'a policy that needs a certificate', routes: [to('partners', { path_separated_prefix: '/partners' }, authzOff)], want: ['AUTHZ_BYPASSED'],
      matches: /^route 'partners': ext_authz is disabled here, but Portcullis would not let an anonymous caller in: 'partners' \(e\.g\. GET \/partners\); these requests reach the upstream without authentication$/,
    },
    { name: 'anonymous, but a role is required', routes: [to('admin', { prefix: '/admin/' }, authzOff)], want: ['AUTHZ_BYPASSED'], matches: /'admins'/ },
    { name: 'anonymous, but only from some addresses', routes: [to('office', { prefix: '/office/' }, authzOff)], want: ['AUTHZ_BYPASSED'], matches: /'office'/ },
    { name: 'no policy: default_policy deny would refuse it', routes: [to('other', { prefix: '/other' }, authzOff)], want: ['AUTHZ_BYPASSED'], matches: /default_policy deny \(e\.g\. GET \/other\)/ },
    { name: 'open for reads, not for writes', routes: [to('mixed', { prefix: '/mixed/' }, authzOff)], want: ['AUTHZ_BYPASSED'], matches: /'writes' \(e\.g\. POST \/mixed\/\)/ },
    { name: 'only GET goes there: clean', routes: [to('mixed-get', { prefix: '/mixed/', headers: [method('GET')] }, authzOff)], want: [] },
    { name: 'disabled by a FilterConfig', routes: [to('partners', { prefix: '/partners/' }, FILTER_CONFIG_OFF)], want: ['AUTHZ_BYPASSED'] },
    { name: 'disabled on the virtual host', routes: [to('partners', { prefix: '/partners/' })], vhostPerFilter: authzOff, want: ['AUTHZ_BYPASSED'] },
    { name: 'disabled on the virtual host, enabled again on the route', routes: [to('partners', { prefix: '/partners/' }, { [EXT_AUTHZ_FILTER]: { disabled: false } })], vhostPerFilter: authzOff, want: [] },
    { name: 'a route Envoy answers itself has no upstream to protect', routes: [{ name: 'partners', match: { prefix: '/partners/' }, direct_response: { status: 405 }, typed_per_filter_config: authzOff }], want: [] },
    {
      name: 'disabled on one weighted cluster: its share of the traffic skips ext_authz',
      routes: [{ name: 'partners', match: { prefix: '/partners/' }, route: { weighted_clusters: { clusters: [{ name: 'c', weight: 90 }, { name: 'canary', weight: 10, typed_per_filter_config: authzOff }] } } }],
      want: ['AUTHZ_BYPASSED'], where: 'listener ingress / vhost vh / route partners / weighted cluster canary',
    },
    { name: 'a policy named by context_extensions is the one that would apply', routes: [to('x', { prefix: '/x/' }, authzOff)], vhostPerFilter: authzPolicy('open'), want: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const findings = found(c.routes, c.vhostPerFilter);
      assert.deepEqual(findings.map((f) => f.code), c.want, JSON.stringify(findings));
      if (c.matches) assert.match(findings[0]?.message ?? '', c.matches);
      if (c.where) assert.deepEqual(findings[0]?.routes, [c.where]);
    });
  }
});

/**
 * A path whose trailing-slash twin takes another policy is refused (400 bad_path, src/authz/policy.ts): not a route
 * closed by default_policy deny, and, skipped by a route without ext_authz, a way for a lenient upstream to serve the
 * path an exact policy protects.
 */
describe('a path refused for its trailing slash', () => {
  const authz = parsePortcullisConfig([
    'authz:',
    '  mtls: {}',
    '  policies:',
    '    - { name: orders, match: { path: /api/orders }, authenticate: [mtls] }',
    '    - { name: public, match: { path_prefix: / }, authenticate: [anonymous] }',
    '',
  ].join('\n'), '/tmp/p.yaml').authz;
  const found = (routes: Json[]) => checkEnvoyFilters(routeSites(bootstrap(routes, { extproc: false })), authz, undefined).findings;
  it('with ext_authz: no finding (the route is not left to default_policy)', () => {
    assert.deepEqual(found([to('orders-slash', { path: '/api/orders/' })]), []);
  });
  it('without ext_authz: bypassed, naming the refusal', () => {
    const findings = found([to('orders-slash', { path: '/api/orders/' }, authzOff)]);
    assert.deepEqual(findings.map((f) => f.code), ['AUTHZ_BYPASSED']);
    assert.match(findings[0]!.message, /400 bad_path \(trailing slash: the path with and without it take different policies\) \(e\.g\. GET \/api\/orders\/\)/);
  });
  it('without ext_authz on the catch-all beside it: only the exact path is reported', () => {
    const findings = found([to('rest', { prefix: '/' }, authzOff)]);
    assert.deepEqual(findings.map((f) => f.code), ['AUTHZ_BYPASSED']);
    assert.match(findings[0]!.message, /'orders' \(e\.g\. GET \/api\/orders\)/);
    assert.ok(!findings[0]!.message.includes('bad_path'), findings[0]!.message);
  });
});

/**
 * An Envoy route with case_sensitive: false carries `/API/orders` as `/api/orders` (Envoy 1.40 folds ASCII case for
 * prefix, path and path_separated_prefix), while Portcullis picks policies and extproc routes case-sensitively unless
 * they say ignore_case (or the Envoy route names them).
 */
describe('CASE_INSENSITIVE_ROUTE: another spelling in case takes another policy or extproc route', () => {
  const POLICIES = (ignoreCase: boolean): string => [
    'authz:',
    '  mtls: {}',
    '  policies:',
    `    - { name: orders, match: { path_prefix: /api/orders${ignoreCase ? ', ignore_case: true' : ''} }, authenticate: [mtls] }`,
    '    - { name: public, match: { path_prefix: / }, authenticate: [anonymous] }',
  ].join('\n');
  const EXTPROC = (ignoreCase: boolean): string => [
    'extproc:',
    '  routes:',
    `    - { name: create-order, match: { path: /api/orders, methods: [POST]${ignoreCase ? ', ignore_case: true' : ''} }, validate: { max_body_bytes: 1024 } }`,
  ].join('\n');
  const ci = (match: Json): Json => ({ ...match, case_sensitive: false });
  const routed = (name: string, match: Json, perFilter?: Json): Json => ({ ...to(name, match, perFilter), route: { cluster: 'c', prefix_rewrite: '/orders' } });
  const cases: { name: string; routes: Json[]; ignoreCase?: boolean; extproc?: 'cs' | 'ci'; authz?: boolean; want: FilterFindingCode[]; matches?: RegExp }[] = [
    {
      name: 'the auth bypass: /API/orders takes the anonymous catch-all',
      routes: [routed('orders', ci({ prefix: '/api/orders' })), to('rest', { prefix: '/' })],
      want: ['CASE_INSENSITIVE_ROUTE'],
      matches: /^route 'orders' matches paths ignoring case \(case_sensitive: false\), but Portcullis chooses the authz policy case-sensitively: GET \/API\/ORDERS takes 'public' where GET \/api\/orders takes 'orders'; give authz policy 'orders' match: \{ignore_case: true\} in portcullis\.yaml, or name the policy on the Envoy route \(ExtAuthzPerRoute check_settings\.context_extensions\.policy\)$/,
    },
    { name: 'the policy says ignore_case: quiet', routes: [routed('orders', ci({ prefix: '/api/orders' })), to('rest', { prefix: '/' })], ignoreCase: true, want: [] },
    { name: 'the Envoy route names the policy: quiet', routes: [routed('orders', ci({ prefix: '/api/orders' }), authzPolicy('orders')), to('rest', { prefix: '/' })], want: [] },
    { name: 'case_sensitive: true (the default, said): quiet', routes: [routed('orders', { prefix: '/api/orders', case_sensitive: true }), to('rest', { prefix: '/' })], want: [] },
    { name: 'path_separated_prefix honours it too', routes: [routed('orders', ci({ path_separated_prefix: '/api/orders' }))], want: ['CASE_INSENSITIVE_ROUTE'], matches: /GET \/API\/ORDERS takes 'public'/ },
    { name: 'an exact path honours it too', routes: [routed('orders', ci({ path: '/api/orders' }))], want: ['CASE_INSENSITIVE_ROUTE'], matches: /GET \/API\/ORDERS takes 'public' where GET \/api\/orders takes 'orders'/ },
    { name: "a route's :method matcher limits the spellings to that method", routes: [routed('orders', ci({ path: '/api/orders', headers: [method('DELETE')] }))], want: ['CASE_INSENSITIVE_ROUTE'], matches: /^(?=.*DELETE \/API\/ORDERS takes 'public')(?!.*GET)/ },
    { name: 'a catch-all route where every spelling takes the same policy: quiet', routes: [to('rest', ci({ prefix: '/public/' }))], want: [] },
    { name: 'ext_authz disabled on the route: no policy is chosen there (but it is bypassed)', routes: [routed('orders', ci({ prefix: '/api/orders/' }), authzOff)], want: ['AUTHZ_BYPASSED'] },
    {
      name: 'an extproc route that validates is skipped by /API/orders',
      routes: [routed('orders', ci({ path: '/api/orders' }))], authz: false, extproc: 'cs',
      want: ['CASE_INSENSITIVE_ROUTE'],
      matches: /^route 'orders' .* chooses the extproc route case-sensitively: POST \/API\/ORDERS takes no extproc route where POST \/api\/orders takes 'create-order'; give extproc route 'create-order' match: \{ignore_case: true\} in portcullis\.yaml, or name the extproc route on the Envoy route \(ExtProcPerRoute overrides\.grpc_initial_metadata x-portcullis-route\)$/,
    },
    { name: 'the extproc route says ignore_case: quiet', routes: [routed('orders', ci({ path: '/api/orders' }))], authz: false, extproc: 'ci', want: [] },
    { name: 'the Envoy route names the extproc route: quiet', routes: [routed('orders', ci({ path: '/api/orders' }), extprocNamed('create-order'))], authz: false, extproc: 'cs', want: [] },
    { name: 'a name the config lacks falls back to the path: reported', routes: [routed('orders', ci({ path: '/api/orders' }), extprocNamed('create-ordr'))], authz: false, extproc: 'cs', want: ['UNKNOWN_EXTPROC_ROUTE', 'CASE_INSENSITIVE_ROUTE'] },
    {
      // Admitted with case folded: the route carries the config's /api/orders, so it reaches the extproc route, and
      // its own spelling /API/ORDERS takes neither that nor the policy.
      name: 'a route spelled in upper case carries the lower-case config paths',
      routes: [routed('orders', ci({ path_separated_prefix: '/API/ORDERS' }))], extproc: 'cs',
      want: ['CASE_INSENSITIVE_ROUTE', 'CASE_INSENSITIVE_ROUTE'],
      matches: /POST \/API\/ORDERS takes no extproc route where POST \/api\/orders takes 'create-order'/,
    },
    { name: 'the same route, case-sensitive, carries neither', routes: [routed('orders', { path_separated_prefix: '/API/ORDERS' })], extproc: 'cs', want: ['EXTPROC_ROUTE_UNREACHABLE'] },
    {
      // /api/orders goes to the earlier route whatever its case, so the later one without ext_authz does not carry it.
      name: 'an earlier case-insensitive route takes its paths in every case',
      routes: [routed('orders', ci({ prefix: '/API/ORDERS' })), to('rest', { prefix: '/' }, authzOff)],
      ignoreCase: true,
      want: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const text = ['ratelimit: { descriptors: ./ratelimit }', POLICIES(c.ignoreCase === true), ...(c.extproc ? [EXTPROC(c.extproc === 'ci')] : []), ''].join('\n');
      const parsed = parsePortcullisConfig(text, '/tmp/p.yaml');
      const b = bootstrap(c.routes, { authz: c.authz ?? true, extproc: c.extproc !== undefined });
      const findings = checkEnvoyFilters(routeSites(b), parsed.authz, parsed.extproc).findings;
      assert.deepEqual(findings.map((f) => f.code).sort(), [...c.want].sort(), JSON.stringify(findings, null, 2));
      if (c.matches) assert.ok(findings.some((f) => f.code === 'CASE_INSENSITIVE_ROUTE' && c.matches!.test(f.message)), JSON.stringify(findings, null, 2));
    });
  }
});

describe('EXTPROC_RESPONSE_PHASE_ALWAYS: ext_proc must skip the response phase unless Portcullis asks for it', () => {
  const route = (perFilter?: Json): Json => to('all', { prefix: '/' }, perFilter);
  const extprocFilter = (typedConfig: Json, extra: Json = {}): Json => ({ name: EXT_PROC_FILTER, typed_config: { '@type': EXT_PROC_TYPE, ...typedConfig }, ...extra });
  const SKIP: Json = { processing_mode: { request_header_mode: 'SEND', response_header_mode: 'SKIP' } };
  const override = (processingMode: Json): Json => ({ [EXT_PROC_FILTER]: { overrides: { processing_mode: processingMode } } });
  const found = (routes: Json[], filters: Json[], vhost?: Json) =>
    checkExtprocModes(routeSites(oneVhostBootstrap({ routes, httpFilters: filters, ...(vhost ? { vhost: { typed_per_filter_config: vhost } } : {}) })))
      .filter((f) => f.code === 'EXTPROC_RESPONSE_PHASE_ALWAYS');
  const FILTER = 'listener ingress';
  const ROUTE = 'listener ingress / vhost vh / route all';
  const cases: { name: string; routes?: Json[]; filters: Json[]; vhost?: Json; want: string[] }[] = [
    { name: 'no ext_proc filter', filters: [], want: [] },
    { name: 'no processing_mode: SEND', filters: [extprocFilter({})], want: [FILTER] },
    { name: 'processing_mode without response_header_mode: SEND', filters: [extprocFilter({ processing_mode: { request_header_mode: 'SEND' } })], want: [FILTER] },
    { name: 'SEND', filters: [extprocFilter({ processing_mode: { response_header_mode: 'SEND' } })], want: [FILTER] },
    { name: 'DEFAULT', filters: [extprocFilter({ processing_mode: { response_header_mode: 'DEFAULT' } })], want: [FILTER] },
    { name: 'SEND by number', filters: [extprocFilter({ processing_mode: { response_header_mode: 1 } })], want: [FILTER] },
    { name: 'SKIP (the shipped configs)', filters: [extprocFilter(SKIP)], want: [] },
    { name: 'SKIP by number', filters: [extprocFilter({ processing_mode: { response_header_mode: 2 } })], want: [] },
    { name: 'SEND in observability_mode: Envoy holds nothing for an answer', filters: [extprocFilter({ observability_mode: true })], want: [] },
    { name: 'SKIP, and a route override that leaves it out: SEND there', routes: [route(override({ request_body_mode: 'BUFFERED' }))], filters: [extprocFilter(SKIP)], want: [ROUTE] },
    { name: 'SKIP, and a route override that says SKIP', routes: [route(override({ response_header_mode: 'SKIP', request_body_mode: 'BUFFERED' }))], filters: [extprocFilter(SKIP)], want: [] },
    { name: 'an override in a FilterConfig', routes: [route({ [EXT_PROC_FILTER]: { '@type': 'type.googleapis.com/envoy.config.route.v3.FilterConfig', config: { overrides: { processing_mode: {} } } } })], filters: [extprocFilter(SKIP)], want: [ROUTE] },
    { name: "the virtual host's override without SKIP applies to the route", filters: [extprocFilter(SKIP)], vhost: override({}), want: [ROUTE] },
    { name: "the route's override replaces the virtual host's", routes: [route(override({ response_header_mode: 'SKIP' }))], filters: [extprocFilter(SKIP)], vhost: override({}), want: [] },
    { name: 'a route override that does not touch processing_mode', routes: [route(extprocNamed('x'))], filters: [extprocFilter(SKIP)], want: [] },
    { name: 'ext_proc disabled on the route: its override is never used', routes: [route({ [EXT_PROC_FILTER]: { disabled: true, overrides: { processing_mode: {} } } })], filters: [extprocFilter(SKIP)], want: [] },
    { name: 'SEND, but the filter is disabled and no route enables it', routes: [route()], filters: [extprocFilter({}, { disabled: true })], want: [] },
    { name: 'SEND, the filter disabled and a route enabling it', routes: [route({ [EXT_PROC_FILTER]: { overrides: { request_attributes: ['source.address'] } } })], filters: [extprocFilter({}, { disabled: true })], want: [FILTER] },
    // The codec's 400 has no route, so the routes' overrides do not help it.
    { name: 'SEND, though every route overrides it with SKIP', routes: [route(override({ response_header_mode: 'SKIP' }))], filters: [extprocFilter({})], want: [FILTER] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const findings = found(c.routes ?? [route()], c.filters, c.vhost);
      assert.ok(findings.every((f) => f.code === 'EXTPROC_RESPONSE_PHASE_ALWAYS'), JSON.stringify(findings));
      assert.deepEqual(findings.flatMap((f) => f.routes), c.want, JSON.stringify(findings));
    });
  }

  it('names the filter (by its own name) and the fix, once for every route of the listener', () => {
    const findings = found([route(), to('other', { prefix: '/other' })], [{ name: 'proc', typed_config: { '@type': EXT_PROC_TYPE } }]);
    assert.equal(findings.length, 1);
    assert.match(findings[0]!.message, /^the ext_proc filter 'proc' does not set processing_mode\.response_header_mode: SKIP \(unset is SEND\): .*a 400 for a request Envoy's codec refuses gets no answer at all; set response_header_mode: SKIP, with allow_mode_override: true/);
    assert.deepEqual(findings[0]!.routes, ['listener ingress']);
  });

  it('names the route whose override is SEND', () => {
    const findings = found([route(override({ request_body_mode: 'BUFFERED' }))], [extprocFilter(SKIP)]);
    assert.match(findings[0]!.message, /^route 'all' overrides processing_mode of the ext_proc filter 'envoy\.filters\.http\.ext_proc' \(ExtProcPerRoute overrides\.processing_mode, which replaces the filter's whole\) without response_header_mode: SKIP, so it is SEND on this route: .*; add response_header_mode: SKIP to the override$/);
  });
});

describe('EXTPROC_MODE_OVERRIDE_IGNORED: ext_proc must take the mode_override Portcullis sends', () => {
  const SHIPPED: Json = { allow_mode_override: true, processing_mode: { request_header_mode: 'SEND', response_header_mode: 'SKIP', request_body_mode: 'NONE', response_body_mode: 'NONE' } };
  const extprocFilter = (typedConfig: Json, extra: Json = {}): Json => ({ name: EXT_PROC_FILTER, typed_config: { '@type': EXT_PROC_TYPE, ...typedConfig }, ...extra });
  const route = (perFilter?: Json): Json => to('all', { prefix: '/' }, perFilter);
  const found = (filter: Json, routes: Json[] = [route()]) =>
    checkExtprocModes(routeSites(oneVhostBootstrap({ routes, httpFilters: [filter] }))).filter((f) => f.code === 'EXTPROC_MODE_OVERRIDE_IGNORED');
  const cases: { name: string; filter: Json; routes?: Json[]; why?: RegExp }[] = [
    { name: 'the shipped settings', filter: extprocFilter(SHIPPED) },
    { name: 'allow_mode_override unset', filter: extprocFilter({ ...SHIPPED, allow_mode_override: undefined }), why: /\(allow_mode_override is not true\)/ },
    { name: 'allow_mode_override: false', filter: extprocFilter({ ...SHIPPED, allow_mode_override: false }), why: /\(allow_mode_override is not true\)/ },
    { name: 'send_body_without_waiting_for_header_response', filter: extprocFilter({ ...SHIPPED, send_body_without_waiting_for_header_response: true }), why: /\(send_body_without_waiting_for_header_response is true\)/ },
    { name: 'a FULL_DUPLEX_STREAMED request body', filter: extprocFilter({ ...SHIPPED, processing_mode: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_header_mode: 'SKIP' } }), why: /\(processing_mode\.request_body_mode is FULL_DUPLEX_STREAMED\)/ },
    { name: 'a FULL_DUPLEX_STREAMED response body, by number', filter: extprocFilter({ ...SHIPPED, processing_mode: { response_body_mode: 4, response_header_mode: 'SKIP' } }), why: /\(processing_mode\.response_body_mode is FULL_DUPLEX_STREAMED\)/ },
    { name: 'allowed_override_modes', filter: extprocFilter({ ...SHIPPED, allowed_override_modes: [{ request_body_mode: 'BUFFERED' }] }), why: /\(allowed_override_modes is set/ },
    { name: 'an empty allowed_override_modes is no list', filter: extprocFilter({ ...SHIPPED, allowed_override_modes: [] }) },
    { name: 'no override, but the filter is disabled and no route enables it', filter: extprocFilter({}, { disabled: true }) },
    { name: 'observability_mode: Envoy waits for and applies nothing', filter: extprocFilter({ observability_mode: true }) },
    { name: 'no override, the filter disabled and a route enabling it', filter: extprocFilter({}, { disabled: true }), routes: [route({ [EXT_PROC_FILTER]: { overrides: { request_attributes: ['source.address'] } } })], why: /\(allow_mode_override is not true\)/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const findings = found(c.filter, c.routes);
      if (c.why === undefined) {
        assert.deepEqual(findings, []);
        return;
      }
      assert.equal(findings.length, 1, JSON.stringify(findings));
      assert.match(findings[0]!.message, c.why);
      assert.match(findings[0]!.message, /validation never receives a request body, so an invalid one reaches the upstream unvalidated/);
      assert.deepEqual(findings[0]!.routes, ['listener ingress']);
    });
  }
});
