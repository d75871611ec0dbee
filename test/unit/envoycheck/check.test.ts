import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkEnvoyRateLimits, type FindingCode } from '../../../src/envoycheck/check.js';
import { routeSites } from '../../../src/envoycheck/routes.js';
import { compileDescriptorFiles } from '../../../src/ratelimit/descriptor-config.js';
import { oneVhostBootstrap, type Json } from './bootstrap-fixture.js';

/** A bootstrap with one listener, one vhost and the given routes; the ratelimit filter gets `filter` merged in. */
function bootstrap(options: { routes: Json[]; vhostLimits?: Json[]; filter?: Json; domain?: string }): Json {
  return oneVhostBootstrap({
    routes: options.routes,
    vhost: options.vhostLimits ? { rate_limits: options.vhostLimits } : {},
    httpFilters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { domain: options.domain ?? 'd', ...options.filter } }],
  });
}

const header = (name: string, key: string): Json => ({ request_headers: { header_name: name, descriptor_key: key } });
const generic = (key: string, value: string): Json => ({ generic_key: { descriptor_key: key, descriptor_value: value } });
const route = (name: string, extra: Json = {}, perRoute?: Json): Json => ({
  name, match: { prefix: `/${name}` }, route: { cluster: 'c', ...extra },
  ...(perRoute ? { typed_per_filter_config: { 'envoy.filters.http.ratelimit': perRoute } } : {}),
});

function descriptors(text: string) {
  return compileDescriptorFiles([{ name: 'd.yaml', text }]);
}

const RATELIMIT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';
const SCOPE_USER_RULE = 'domain: d\ndescriptors:\n  - key: scope\n    value: api\n    descriptors:\n      - key: user\n        rate_limit: { unit: minute, requests_per_unit: 5 }\n';
const USER_RULE = 'domain: d\ndescriptors:\n  - key: user_id\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n';

describe('checkEnvoyRateLimits', () => {
  const cases: { name: string; bootstrap: Json; file: string; want: FindingCode[]; matches?: RegExp }[] = [
    {
      name: 'a vhost action with its rule: clean',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }], routes: [route('a')] }),
      file: USER_RULE,
      want: [],
    },
    {
      name: 'a rule for some values only leaves every other value unlimited',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }], routes: [route('a')] }),
      file: 'domain: d\ndescriptors:\n  - key: user_id\n    value: alice\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /\[user_id=<request_headers x-user-id>\] matches no rule/,
    },
    {
      name: 'a nested descriptor whose parent has no limit of its own but the leaf does: clean',
      bootstrap: bootstrap({ routes: [route('export', { rate_limits: [{ actions: [generic('route', 'export'), header('x-user-id', 'user_id')] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: route\n    value: export\n    descriptors:\n      - key: user_id\n        rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'a two-entry descriptor stops at a one-entry rule: the limit only counts at the last entry',
      bootstrap: bootstrap({ routes: [route('a', { rate_limits: [{ actions: [header('x-user-id', 'user_id'), { remote_address: {} }] }] })] }),
      file: USER_RULE,
      want: ['UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE'],
    },
    {
      name: 'the filter domain has no descriptor file',
      bootstrap: bootstrap({ domain: 'other', vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }], routes: [route('a')] }),
      file: USER_RULE,
      want: ['UNKNOWN_DOMAIN'],
    },
    {
      name: 'route limits override the vhost by default: the vhost rule is unreachable',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }], routes: [route('a', { rate_limits: [{ actions: [generic('route', 'a')] }] })] }),
      file: `${USER_RULE}  - key: route\n    value: a\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n`,
      want: ['UNREACHABLE_RULE'],
      matches: /rule \[user_id\] is never reached/,
    },
    {
      name: 'vh_rate_limits INCLUDE sends both',
      bootstrap: bootstrap({
        vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }],
        routes: [route('a', { rate_limits: [{ actions: [generic('route', 'a')] }] }, { vh_rate_limits: 'INCLUDE' })],
      }),
      file: `${USER_RULE}  - key: route\n    value: a\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n`,
      want: [],
    },
    {
      name: 'vh_rate_limits IGNORE on the only route makes the vhost rule unreachable',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }], routes: [route('a', {}, { vh_rate_limits: 'IGNORE' })] }),
      file: USER_RULE,
      want: ['UNREACHABLE_RULE'],
    },
    {
      name: 'the filter\'s own rate_limits replace route and vhost lists',
      bootstrap: bootstrap({
        filter: { rate_limits: [{ actions: [generic('scope', 'global')] }] },
        vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }],
        routes: [route('a')],
      }),
      file: `${USER_RULE}  - key: scope\n    value: global\n    rate_limit: { unit: second, requests_per_unit: 5 }\n`,
      want: ['UNREACHABLE_RULE'],
    },
    {
      name: 'RateLimitPerRoute rate_limits replace the filter\'s own',
      bootstrap: bootstrap({
        filter: { rate_limits: [{ actions: [generic('scope', 'global')] }] },
        routes: [route('a', {}, { rate_limits: [{ actions: [generic('route', 'search')] }] })],
      }),
      file: 'domain: d\ndescriptors:\n  - key: scope\n    value: global\n    rate_limit: { unit: second, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE'],
      matches: /\[route=search\] matches no rule/,
    },
    {
      name: 'routes Envoy answers itself send nothing',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [header('x-user-id', 'user_id')] }], routes: [{ name: 'h', match: { path: '/h' }, direct_response: { status: 200 } }] }),
      file: USER_RULE,
      want: ['UNREACHABLE_RULE'],
    },
    {
      name: 'a constant value falls back to the key-only rule, as the matcher does',
      bootstrap: bootstrap({ routes: [route('a', { rate_limits: [{ actions: [generic('tier', 'gold')] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: tier\n    rate_limit: { unit: second, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'wildcard rules are reached by request values',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [header('x-path', 'path')] }], routes: [route('a')] }),
      file: 'domain: d\ndescriptors:\n  - key: path\n    value: /api/*\n    rate_limit: { unit: second, requests_per_unit: 5 }\n  - key: path\n    rate_limit: { unit: second, requests_per_unit: 50 }\n',
      want: [],
    },
    {
      name: 'header_value_match and metadata actions',
      bootstrap: bootstrap({
        vhostLimits: [
          { actions: [{ header_value_match: { descriptor_key: 'auth', descriptor_value: 'anonymous', headers: [] } }, { remote_address: {} }] },
          { actions: [{ metadata: { descriptor_key: 'user_id', source: 'DYNAMIC', metadata_key: { key: 'envoy.filters.http.ext_authz', path: [{ key: 'user_id' }] } } }] },
        ],
        routes: [route('a')],
      }),
      file: `${USER_RULE}  - key: auth\n    value: anonymous\n    descriptors:\n      - key: remote_address\n        rate_limit: { unit: minute, requests_per_unit: 5 }\n`,
      want: [],
    },
    {
      name: 'an action it cannot read is reported',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [{ extension: { name: 'x' } }] }], routes: [route('a')] }),
      file: USER_RULE,
      want: ['UNREACHABLE_RULE', 'UNSUPPORTED_ACTION'],
    },
    // The cases below are what a real Envoy 1.40 sent to a fake rate limit service (the expected findings follow it).
    {
      name: 'skip_if_absent on request_headers: without the header Envoy sends the descriptor without that entry',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('scope', 'api'), { request_headers: { header_name: 'x-user', descriptor_key: 'user', skip_if_absent: true } }] }] })] }),
      file: SCOPE_USER_RULE,
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /descriptor \[scope=api\] matches no rule/,
    },
    {
      name: 'skip_if_absent: a rule for the shorter descriptor is reached',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('scope', 'api'), { request_headers: { header_name: 'x-user', descriptor_key: 'user', skip_if_absent: true } }] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: scope\n    value: api\n    rate_limit: { unit: minute, requests_per_unit: 50 }\n    descriptors:\n      - key: user\n        rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'skip_if_absent on metadata',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('scope', 'api'), { metadata: { descriptor_key: 'user', source: 'DYNAMIC', metadata_key: { key: 'x.y', path: [{ key: 'u' }] }, skip_if_absent: true } }] }] })] }),
      file: SCOPE_USER_RULE,
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /descriptor \[scope=api\] matches no rule/,
    },
    {
      name: 'skip_if_absent on query_parameters',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('scope', 'api'), { query_parameters: { query_parameter_name: 'tenant', descriptor_key: 'user', skip_if_absent: true } }] }] })] }),
      file: SCOPE_USER_RULE,
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /descriptor \[scope=api\] matches no rule/,
    },
    {
      name: 'a metadata default_value stands in for an absent value: skip_if_absent skips nothing',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('scope', 'api'), { metadata: { descriptor_key: 'user', default_value: 'anon', metadata_key: { key: 'x.y', path: [{ key: 'u' }] }, skip_if_absent: true } }] }] })] }),
      file: SCOPE_USER_RULE,
      want: [],
    },
    {
      name: 'RateLimitPerRoute.domain replaces the filter\'s domain for the route',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] }, { domain: 'other' })] }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNKNOWN_DOMAIN'],
      matches: /domain 'other'/,
    },
    {
      name: 'RateLimitPerRoute.domain on the virtual host',
      bootstrap: oneVhostBootstrap({
        routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] })],
        vhost: { typed_per_filter_config: { 'envoy.filters.http.ratelimit': { domain: 'o' } } },
        httpFilters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { domain: 'd' } }],
      }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNKNOWN_DOMAIN'],
      matches: /domain 'o'/,
    },
    {
      name: 'a route policy of another stage than the filter\'s is never sent',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ stage: 1, actions: [generic('a', '1')] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: b\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNREACHABLE_RULE'],
    },
    {
      name: 'a filter of stage 1 takes the stage 1 policies, route and virtual host',
      bootstrap: bootstrap({
        filter: { stage: 1 },
        vhostLimits: [{ stage: '1', actions: [generic('v', '1')] }, { actions: [generic('v', '0')] }],
        routes: [route('r', { rate_limits: [{ stage: 1, actions: [generic('a', '1')] }, { actions: [generic('a', '0')] }] }, { vh_rate_limits: 'INCLUDE' })],
      }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /\[v=1\] matches no rule/,
    },
    {
      name: 'a ratelimit filter under another name is known by its @type, and its per-route config by that name',
      bootstrap: oneVhostBootstrap({
        routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] }), { ...route('p'), typed_per_filter_config: { 'my-ratelimit': { rate_limits: [{ actions: [generic('p', '1')] }] } } }],
        httpFilters: [{ name: 'my-ratelimit', typed_config: { '@type': RATELIMIT_TYPE, domain: 'd' } }],
      }),
      file: 'domain: d\ndescriptors:\n  - key: b\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR', 'UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE'],
      matches: /\[p=1\] matches no rule/,
    },
    {
      name: 'a filter named envoy.filters.http.ratelimit whose @type is another extension is not a ratelimit filter',
      bootstrap: bootstrap({ filter: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit' }, routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] })] }),
      file: USER_RULE,
      want: [],
    },
    {
      name: 'two ratelimit filters: the stage 1 filter (domain e) gets the stage 1 policy',
      bootstrap: oneVhostBootstrap({
        routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }, { stage: 1, actions: [generic('z', '1')] }] })],
        httpFilters: [
          { name: 'envoy.filters.http.ratelimit', typed_config: { '@type': RATELIMIT_TYPE, domain: 'd' } },
          { name: 'rl2', typed_config: { '@type': RATELIMIT_TYPE, domain: 'e', stage: 1 } },
        ],
      }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNKNOWN_DOMAIN'],
      matches: /domain 'e'/,
    },
    {
      name: 'RateLimitPerRoute on the virtual host: vh_rate_limits IGNORE',
      bootstrap: oneVhostBootstrap({
        routes: [route('r')],
        vhost: { rate_limits: [{ actions: [generic('v', '1')] }], typed_per_filter_config: { 'envoy.filters.http.ratelimit': { vh_rate_limits: 'IGNORE' } } },
        httpFilters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { domain: 'd' } }],
      }),
      file: 'domain: d\ndescriptors:\n  - key: b\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNREACHABLE_RULE'],
    },
    {
      name: 'RateLimitPerRoute on the virtual host: its rate_limits replace the route\'s',
      bootstrap: oneVhostBootstrap({
        routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] })],
        vhost: { typed_per_filter_config: { 'envoy.filters.http.ratelimit': { rate_limits: [{ actions: [generic('q', '1')] }] } } },
        httpFilters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { domain: 'd' } }],
      }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE'],
      matches: /\[q=1\] matches no rule/,
    },
    {
      name: 'the route\'s RateLimitPerRoute is taken whole: no field comes from the virtual host\'s',
      bootstrap: oneVhostBootstrap({
        routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] }, { vh_rate_limits: 'OVERRIDE' })],
        vhost: { typed_per_filter_config: { 'envoy.filters.http.ratelimit': { domain: 'o', rate_limits: [{ actions: [generic('q', '1')] }] } } },
        httpFilters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { domain: 'd' } }],
      }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'an empty RateLimitPerRoute rate_limits is unset: the route\'s own apply',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] }, { rate_limits: [] })] }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'an empty filter rate_limits is unset: the route\'s own apply',
      bootstrap: bootstrap({ filter: { rate_limits: [] }, routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'include_vh_rate_limits on the route wins over vh_rate_limits IGNORE',
      bootstrap: bootstrap({
        vhostLimits: [{ actions: [generic('v', '1')] }],
        routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }], include_vh_rate_limits: true }, { vh_rate_limits: 'IGNORE' })],
      }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /\[v=1\] matches no rule/,
    },
    {
      name: 'vh_rate_limits as a number: 1 is INCLUDE',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [generic('v', '1')] }], routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] }, { vh_rate_limits: 1 })] }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /\[v=1\] matches no rule/,
    },
    {
      name: 'vh_rate_limits as a number: 2 is IGNORE',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [generic('v', '1')] }], routes: [route('r', {}, { vh_rate_limits: 2 })] }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNREACHABLE_RULE'],
    },
    {
      name: 'a ratelimit filter disabled on the route (FilterConfig) sends nothing',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] }, { '@type': 'type.googleapis.com/envoy.config.route.v3.FilterConfig', disabled: true })] }),
      file: 'domain: d\ndescriptors:\n  - key: b\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'a ratelimit filter disabled in the chain sends nothing, not even to an unknown domain',
      bootstrap: oneVhostBootstrap({
        routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] })],
        httpFilters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { domain: 'nowhere' }, disabled: true }],
      }),
      file: USER_RULE,
      want: [],
    },
    {
      name: 'FilterConfig not disabled: the RateLimitPerRoute inside it applies',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [generic('a', '1')] }] }, { '@type': 'type.googleapis.com/envoy.config.route.v3.FilterConfig', config: { domain: 'o' } })] }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNKNOWN_DOMAIN'],
      matches: /domain 'o'/,
    },
    {
      name: 'greedy matching: a named value takes its branch and misses where another value would have matched',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [header('x-user', 'user'), header('x-path', 'path')] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: user\n    descriptors:\n      - key: path\n        rate_limit: { unit: minute, requests_per_unit: 5 }\n  - key: user\n    value: alice\n    descriptors:\n      - key: path\n        value: /x\n        rate_limit: { unit: minute, requests_per_unit: 50 }\n',
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /matches no rule when it is \[user=alice, path=<request_headers x-path>\]/,
    },
    {
      name: 'greedy matching: a named value whose branch goes on like the others: clean',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [header('x-user', 'user'), header('x-path', 'path')] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: user\n    descriptors:\n      - key: path\n        rate_limit: { unit: minute, requests_per_unit: 5 }\n  - key: user\n    value: alice\n    descriptors:\n      - key: path\n        value: /x\n        rate_limit: { unit: minute, requests_per_unit: 50 }\n      - key: path\n        rate_limit: { unit: minute, requests_per_unit: 10 }\n',
      want: [],
    },
    // What a real Envoy 1.40 sent to a fake rate limit service: destination_cluster is the route's cluster, a
    // ROUTE_ENTRY metadata action the route's own string metadata (a number there sends no descriptor), and a weighted
    // cluster's RateLimitPerRoute replaces the route's.
    {
      name: 'destination_cluster sends the route\'s cluster: rules naming each cluster cover it',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [{ destination_cluster: {} }] }], routes: [route('a'), { name: 'w', match: { prefix: '/w' }, route: { weighted_clusters: { clusters: [{ name: 'c', weight: 50 }, { name: 'c2', weight: 50 }] } } }] }),
      file: 'domain: d\ndescriptors:\n  - key: destination_cluster\n    value: c\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n  - key: destination_cluster\n    value: c2\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'destination_cluster: a cluster no rule names is unmatched',
      bootstrap: bootstrap({ vhostLimits: [{ actions: [{ destination_cluster: {} }] }], routes: [{ name: 'w', match: { prefix: '/w' }, route: { weighted_clusters: { clusters: [{ name: 'c', weight: 50 }, { name: 'c3', weight: 50 }] } } }] }),
      file: 'domain: d\ndescriptors:\n  - key: destination_cluster\n    value: c\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR'],
      matches: /descriptor \[destination_cluster=c3\] matches no rule/,
    },
    {
      name: 'a ROUTE_ENTRY metadata action sends the route\'s own metadata value',
      bootstrap: bootstrap({ routes: [{ ...route('r', { rate_limits: [{ actions: [{ metadata: { descriptor_key: 'team', source: 'ROUTE_ENTRY', metadata_key: { key: 'acme', path: [{ key: 'team' }] } } }] }] }), metadata: { filter_metadata: { acme: { team: 'payments' } } } }] }),
      file: 'domain: d\ndescriptors:\n  - key: team\n    value: payments\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: [],
    },
    {
      name: 'a ROUTE_ENTRY metadata action on a route without that (string) value sends nothing',
      bootstrap: bootstrap({ routes: [{ ...route('r', { rate_limits: [{ actions: [{ metadata: { descriptor_key: 'team', source: 'ROUTE_ENTRY', metadata_key: { key: 'acme', path: [{ key: 'team' }] } } }] }] }), metadata: { filter_metadata: { acme: { team: 3 } } } }] }),
      file: 'domain: d\ndescriptors:\n  - key: team\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNREACHABLE_RULE'],
    },
    {
      name: 'a ROUTE_ENTRY metadata action falls back to its default_value',
      bootstrap: bootstrap({ routes: [route('r', { rate_limits: [{ actions: [{ metadata: { descriptor_key: 'team', source: 'ROUTE_ENTRY', default_value: 'none', metadata_key: { key: 'acme', path: [{ key: 'team' }] } } }] }] })] }),
      file: 'domain: d\ndescriptors:\n  - key: team\n    value: payments\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE'],
      matches: /descriptor \[team=none\] matches no rule/,
    },
    {
      name: 'a weighted cluster\'s RateLimitPerRoute.domain replaces the route\'s for that cluster',
      bootstrap: bootstrap({ routes: [{ name: 'w', match: { prefix: '/w' }, route: { rate_limits: [{ actions: [generic('a', '1')] }], weighted_clusters: { clusters: [
        { name: 'c', weight: 90 },
        { name: 'canary', weight: 10, typed_per_filter_config: { 'envoy.filters.http.ratelimit': { domain: 'canary' } } },
      ] } } }] }),
      file: 'domain: d\ndescriptors:\n  - key: a\n    value: "1"\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n',
      want: ['UNKNOWN_DOMAIN'],
      matches: /domain 'canary'/,
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const summary = checkEnvoyRateLimits(c.bootstrap, descriptors(c.file));
      assert.deepEqual(summary.findings.map((f) => f.code).sort(), [...c.want].sort(), JSON.stringify(summary.findings, null, 2));
      if (c.matches) assert.ok(summary.findings.some((f) => c.matches!.test(f.message)), JSON.stringify(summary.findings));
    });
  }

  // Where the connection manager sits or where its routes come from must not turn an unmatched descriptor into a pass.
  const moved = (change: (listener: Json, hcm: Json, root: Json) => void): Json => {
    const b = bootstrap({ vhostLimits: [{ actions: [header('x-api-key', 'api_key')] }], routes: [route('a')] });
    const listener = ((b['static_resources'] as Json)['listeners'] as Json[])[0]!;
    const hcm = ((listener['filter_chains'] as Json[])[0]!['filters'] as Json[])[0]!['typed_config'] as Json;
    change(listener, hcm, b);
    return b;
  };
  const sources: { name: string; bootstrap: Json; want: FindingCode[]; matches?: RegExp }[] = [
    { name: 'in filter_chains', bootstrap: moved(() => undefined), want: ['UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE'] },
    {
      name: 'in default_filter_chain',
      bootstrap: moved((listener) => {
        listener['default_filter_chain'] = (listener['filter_chains'] as Json[])[0];
        delete listener['filter_chains'];
      }),
      want: ['UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE'],
    },
    {
      name: 'routes from RDS',
      bootstrap: moved((_, hcm) => {
        delete hcm['route_config'];
        hcm['rds'] = { route_config_name: 'local', config_source: { path_config_source: { path: '/etc/envoy/rds.yaml' } } };
      }),
      want: ['UNREAD_ROUTES'],
      matches: /listener ingress: the connection manager takes its routes from RDS \(route_config_name local\)/,
    },
    {
      name: 'scoped routes',
      bootstrap: moved((_, hcm) => {
        delete hcm['route_config'];
        hcm['scoped_routes'] = { name: 's' };
      }),
      want: ['UNREAD_ROUTES'],
    },
    {
      name: 'and listeners from LDS besides',
      bootstrap: moved((_, __, root) => {
        root['dynamic_resources'] = { lds_config: { ads: {} } };
      }),
      want: ['UNMATCHED_DESCRIPTOR', 'UNREACHABLE_RULE', 'UNREAD_ROUTES'],
    },
    { name: 'listeners from LDS only', bootstrap: { dynamic_resources: { lds_config: { path_config_source: { path: '/etc/envoy/lds.yaml' } } } }, want: ['UNREAD_ROUTES'], matches: /listeners come from LDS/ },
  ];
  for (const c of sources) {
    it(`a connection manager ${c.name}: read, or said not to be`, () => {
      const { findings } = checkEnvoyRateLimits(c.bootstrap, descriptors(USER_RULE));
      assert.deepEqual(findings.map((f) => f.code).sort(), [...c.want].sort(), JSON.stringify(findings, null, 2));
      if (c.matches) assert.ok(findings.some((f) => c.matches!.test(f.message)), JSON.stringify(findings));
    });
  }

  // The greedy matcher takes a named value's branch: each value the rules name at a position is probed too. With n
  // values named at each of three positions, everything is covered except a=vz, which only has b=w5 below it; vz comes
  // last at the first position, so its probes are the last ones.
  const threeDeep = (n: number) => {
    const limit = 'rate_limit: { unit: minute, requests_per_unit: 5 }';
    const covered = Array.from({ length: n }, (_, i) => `  - key: a\n    value: v${i}\n    descriptors:\n      - key: b\n        descriptors:\n          - { key: c, ${limit} }\n`
      + `      - key: b\n        value: v${i}\n        descriptors:\n          - { key: c, value: v${i}, ${limit} }\n          - { key: c, ${limit} }\n`).join('');
    return 'domain: d\ndescriptors:\n'
      + `  - key: a\n    descriptors:\n      - key: b\n        descriptors:\n          - { key: c, ${limit} }\n`
      + covered
      + `  - key: a\n    value: vz\n    descriptors:\n      - key: b\n        value: w5\n        descriptors:\n          - { key: c, ${limit} }\n`;
  };
  const sendsThree = bootstrap({ routes: [route('a', { rate_limits: [{ actions: [header('a', 'a'), header('b', 'b'), header('c', 'c')] }] })] });

  it('every combination of named values is probed: a miss past the first 4,096 of 8,820 is found', () => {
    const { findings } = checkEnvoyRateLimits(sendsThree, descriptors(threeDeep(19)));
    assert.deepEqual(findings.map((f) => f.code), ['UNMATCHED_DESCRIPTOR'], JSON.stringify(findings, null, 2));
    assert.match(findings[0]!.message, /when it is \[a=vz, /);
  });

  it('past 65,536 combinations the probing is cut, and says so', () => {
    const { findings } = checkEnvoyRateLimits(sendsThree, descriptors(threeDeep(40)));
    assert.deepEqual(findings.map((f) => f.code), ['PROBES_CUT'], JSON.stringify(findings.map((f) => f.code)));
    assert.match(findings[0]!.message, /can carry 72324 combinations of the values the rules name; the first 65536 were tried/);
  });

  it('names the routes that send an unmatched descriptor, once per shape', () => {
    const b = bootstrap({ vhostLimits: [{ actions: [header('x-api-key', 'api_key')] }], routes: [route('a'), route('b')] });
    const { findings } = checkEnvoyRateLimits(b, descriptors(USER_RULE));
    const unmatched = findings.filter((f) => f.code === 'UNMATCHED_DESCRIPTOR');
    assert.equal(unmatched.length, 1);
    assert.deepEqual(unmatched[0]?.routes, ['listener ingress / vhost vh / route a', 'listener ingress / vhost vh / route b']);
  });

  it('a weighted cluster with filter configs of its own is a route site of its own', () => {
    const sites = routeSites(bootstrap({ routes: [{ name: 'w', match: { prefix: '/w' }, route: { weighted_clusters: { clusters: [
      { name: 'c', weight: 80 }, { name: 'c2', weight: 10 }, { name: 'canary', weight: 10, typed_per_filter_config: { 'envoy.filters.http.ratelimit': { domain: 'canary' } } },
    ] } } }] }));
    assert.deepEqual(sites.map((s) => [s.where, s.rateLimits.map((call) => call.domain)]), [
      ['listener ingress / vhost vh / route w', ['d']],
      ['listener ingress / vhost vh / route w / weighted cluster canary', ['canary']],
    ]);
  });

  it('a connection manager under another name is known by its @type', () => {
    const b = bootstrap({ routes: [route('r')] });
    const filter = (b['static_resources'] as { listeners: { filter_chains: { filters: Json[] }[] }[] }).listeners[0]!.filter_chains[0]!.filters[0]!;
    filter['name'] = 'hcm';
    (filter['typed_config'] as Json)['@type'] = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
    assert.deepEqual(routeSites(b).map((s) => s.routeName), ['r']);
  });

  it('routeSites lists every route with its domain and per-filter config (for later checks)', () => {
    const sites = routeSites(bootstrap({ routes: [route('a', {}, { vh_rate_limits: 'IGNORE' }), { name: 'h', direct_response: { status: 200 } }] }));
    assert.deepEqual(sites.map((s) => [s.routeName, s.rateLimits.map((call) => call.domain), s.direct]), [['a', ['d'], false], ['h', ['d'], true]]);
    assert.ok('envoy.filters.http.ratelimit' in sites[0]!.perFilterConfig);
  });
});
