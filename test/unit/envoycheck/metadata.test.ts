import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXT_AUTHZ_FILTER, EXT_AUTHZ_TYPE, type FilterFindingCode } from '../../../src/envoycheck/filters.js';
import { checkMetadataReads, extensionOf } from '../../../src/envoycheck/metadata.js';
import { routeSites } from '../../../src/envoycheck/routes.js';
import { oneVhostBootstrap, type Json } from './bootstrap-fixture.js';

const RATELIMIT: Json = { name: 'envoy.filters.http.ratelimit', typed_config: { domain: 'd' } };
const AUTHZ: Json = { name: EXT_AUTHZ_FILTER, typed_config: {} };
const read = (namespace: string, path: string[], extra: Json = {}, kind = 'metadata'): Json => ({
  [kind]: { descriptor_key: 'k', metadata_key: { key: namespace, path: path.map((key) => ({ key })) }, ...extra },
});

function findings(httpFilters: Json[], action: Json, perFilter?: Json) {
  const route = { name: 'r', match: { prefix: '/' }, route: { cluster: 'c', rate_limits: [{ actions: [action] }] }, ...(perFilter ? { typed_per_filter_config: perFilter } : {}) };
  return checkMetadataReads(routeSites(oneVhostBootstrap({ routes: [route], httpFilters })));
}

describe('checkMetadataReads: dynamic metadata a rate limit action reads must be written before it', () => {
  const cases: { name: string; filters: Json[]; action: Json; perFilter?: Json; want: FilterFindingCode[]; matches?: RegExp }[] = [
    { name: 'ext_authz user_id, ext_authz first (the shipped shape)', filters: [AUTHZ, RATELIMIT], action: read(EXT_AUTHZ_FILTER, ['user_id']), want: [] },
    ...['auth_method', 'api_key_id', 'tier', 'policy', 'scopes', 'provider'].map((key) => ({ name: `ext_authz ${key}`, filters: [AUTHZ, RATELIMIT], action: read(EXT_AUTHZ_FILTER, [key]), want: [] as FilterFindingCode[] })),
    {
      name: 'a misspelt ext_authz namespace', filters: [AUTHZ, RATELIMIT], action: read('envoy.filters.http.extauthz', ['user_id']),
      want: ['UNKNOWN_METADATA_NAMESPACE'], matches: /reads metadata envoy\.filters\.http\.extauthz:user_id, a namespace no filter running before it writes .*Envoy never sends that descriptor/,
    },
    {
      // Envoy 1.40 writes under envoy.filters.http.ext_authz whatever the filter's name.
      name: 'the ext_authz filter\'s own name as namespace', filters: [{ name: 'authz', typed_config: { '@type': EXT_AUTHZ_TYPE } }, RATELIMIT], action: read('authz', ['user_id']),
      want: ['UNKNOWN_METADATA_NAMESPACE'], matches: /ext_authz writes envoy\.filters\.http\.ext_authz, whatever the filter's name/,
    },
    { name: 'a renamed ext_authz filter still writes its namespace', filters: [{ name: 'authz', typed_config: { '@type': EXT_AUTHZ_TYPE } }, RATELIMIT], action: read(EXT_AUTHZ_FILTER, ['user_id']), want: [] },
    {
      name: 'with a default_value every request shares one bucket', filters: [AUTHZ, RATELIMIT], action: read('acme', ['user'], { default_value: 'anon' }),
      want: ['UNKNOWN_METADATA_NAMESPACE'], matches: /always sends its default_value 'anon'/,
    },
    {
      name: 'with skip_if_absent the entry is always left out', filters: [AUTHZ, RATELIMIT], action: read('acme', ['user'], { skip_if_absent: true }),
      want: ['UNKNOWN_METADATA_NAMESPACE'], matches: /always leaves that entry out/,
    },
    { name: 'the deprecated dynamic_metadata action', filters: [AUTHZ, RATELIMIT], action: read('acme', ['user'], {}, 'dynamic_metadata'), want: ['UNKNOWN_METADATA_NAMESPACE'] },
    { name: 'ROUTE_ENTRY metadata is the route\'s, not a filter\'s: not judged here', filters: [RATELIMIT], action: read('acme', ['user'], { source: 'ROUTE_ENTRY' }), want: [] },
    {
      name: 'a key Portcullis never sets', filters: [AUTHZ, RATELIMIT], action: read(EXT_AUTHZ_FILTER, ['userid']),
      want: ['UNKNOWN_AUTHZ_METADATA_KEY'], matches: /a key Portcullis' ext_authz never sets \(it sets user_id, /,
    },
    { name: 'a path below a string', filters: [AUTHZ, RATELIMIT], action: read(EXT_AUTHZ_FILTER, ['user_id', 'id']), want: ['UNKNOWN_AUTHZ_METADATA_KEY'], matches: /a path below user_id/ },
    { name: 'ext_authz_duration is a number', filters: [AUTHZ, RATELIMIT], action: read(EXT_AUTHZ_FILTER, ['ext_authz_duration']), want: ['UNKNOWN_AUTHZ_METADATA_KEY'], matches: /as a number/ },
    { name: 'an unknown key is reported even where ext_authz is missing (that is AUTHZ_METADATA_MISSING\'s too)', filters: [RATELIMIT], action: read(EXT_AUTHZ_FILTER, ['userid']), want: ['UNKNOWN_AUTHZ_METADATA_KEY'] },
    { name: 'ext_authz\'s namespace where ext_authz does not run is AUTHZ_METADATA_MISSING\'s, not this check\'s', filters: [RATELIMIT], action: read(EXT_AUTHZ_FILTER, ['user_id']), want: [] },
    { name: 'jwt_authn writes its namespace', filters: [{ name: 'jwt', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication' } }, RATELIMIT], action: read('envoy.filters.http.jwt_authn', ['jwt_payload', 'sub']), want: [] },
    {
      name: 'header_to_metadata writes the namespace its rules name',
      filters: [{ name: 'h2m', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config', request_rules: [{ header: 'x-tenant', on_header_present: { metadata_namespace: 'acme', key: 'tenant' } }] } }, RATELIMIT],
      action: read('acme', ['tenant']), want: [],
    },
    {
      name: 'header_to_metadata after the ratelimit filter writes too late',
      filters: [RATELIMIT, { name: 'h2m', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config', request_rules: [{ header: 'x-tenant', on_header_present: { metadata_namespace: 'acme', key: 'tenant' } }] } }],
      action: read('acme', ['tenant']), want: ['UNKNOWN_METADATA_NAMESPACE'],
    },
    {
      name: 'set_metadata disabled on the route writes nothing there',
      filters: [{ name: 'sm', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config', metadata: [{ metadata_namespace: 'acme', value: { tenant: 't' } }] } }, RATELIMIT],
      perFilter: { sm: { '@type': 'type.googleapis.com/envoy.config.route.v3.FilterConfig', disabled: true } },
      action: read('acme', ['tenant']), want: ['UNKNOWN_METADATA_NAMESPACE'],
    },
    {
      name: 'ext_proc writes only its receiving_namespaces',
      filters: [{ name: 'xp', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor', metadata_options: { receiving_namespaces: { untyped: ['acme'] } } } }, RATELIMIT],
      action: read('acme', ['tenant']), want: [],
    },
    { name: 'after a filter this check does not know (lua), any namespace may be written: not judged', filters: [{ name: 'envoy.filters.http.lua', typed_config: {} }, RATELIMIT], action: read('acme', ['tenant']), want: [] },
    { name: 'cors and rbac write no such namespace', filters: [{ name: 'envoy.filters.http.cors', typed_config: {} }, { name: 'envoy.filters.http.rbac', typed_config: {} }, RATELIMIT], action: read('acme', ['tenant']), want: ['UNKNOWN_METADATA_NAMESPACE'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const found = findings(c.filters, c.action, c.perFilter);
      assert.deepEqual(found.map((f) => f.code), c.want, JSON.stringify(found));
      if (c.matches) assert.match(found[0]?.message ?? '', c.matches);
      for (const f of found) assert.deepEqual(f.routes, ['listener ingress / vhost vh / route r']);
    });
  }
});

describe('extensionOf: which extension a filter is', () => {
  const cases: { filter: Json; extension: string }[] = [
    { filter: { name: 'authz', typed_config: { '@type': EXT_AUTHZ_TYPE } }, extension: EXT_AUTHZ_FILTER },
    { filter: { name: 'envoy.filters.http.lua' }, extension: 'envoy.filters.http.lua' },
    { filter: { name: 'x', typed_config: { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct' } }, extension: 'x' },
  ];
  for (const c of cases) it(c.extension, () => assert.equal(extensionOf(c.filter), c.extension));
});
