import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { notABootstrap, routeSites, text } from '../../../src/envoycheck/routes.js';

describe('text: a bootstrap value where Envoy expects a string', () => {
  const hostile = { toString: 1 };
  const cases: { name: string; value: unknown; read: string }[] = [
    { name: 'a string', value: 'http', read: 'http' },
    { name: 'an empty string', value: '', read: '' },
    { name: 'a number', value: 8080, read: '8080' },
    { name: 'a boolean', value: true, read: 'true' },
    { name: 'absent', value: undefined, read: 'fallback' },
    { name: 'null', value: null, read: 'fallback' },
    { name: 'a list', value: ['a'], read: 'fallback' },
    { name: "a mapping with a 'toString' key (String() of it throws)", value: hostile, read: 'fallback' },
    { name: 'a mapping without a prototype', value: Object.create(null) as unknown, read: 'fallback' },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(text(c.value, 'fallback'), c.read));
  }
});

describe('routeSites: names that are not strings', () => {
  const route = (name: unknown) => ({
    static_resources: {
      listeners: [{
        name,
        filter_chains: [{ filters: [{
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            http_filters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { domain: { toString: 1 } } }],
            route_config: { virtual_hosts: [{ name: { toString: 1 }, routes: [{ name: ['r'], match: { prefix: '/' }, route: { cluster: 'c', rate_limits: [{ actions: [{ generic_key: { descriptor_key: { toString: 1 }, descriptor_value: { toString: 1 } } }] }] } }] }] },
          },
        }] }],
      }],
    },
  });
  it('reads them as absent instead of throwing', () => {
    const [site] = routeSites(route({ toString: 1 }));
    assert.equal(site?.where, 'listener ? / vhost ? / route #0');
    assert.deepEqual(site?.rateLimits, [{ filter: 'envoy.filters.http.ratelimit', domain: '', shapes: [{ entries: [{ key: 'generic_key', value: '', source: 'generic_key' }] }], metadataReads: [] }]);
  });
});

describe('notABootstrap: input check-envoy cannot read as a bootstrap', () => {
  const cases: { name: string; parsed: unknown; problem: RegExp | undefined }[] = [
    { name: 'an empty file', parsed: null, problem: /empty/ },
    { name: 'a file of comments only', parsed: undefined, problem: /empty/ },
    { name: 'a scalar', parsed: 'hello', problem: /not a YAML or JSON mapping/ },
    { name: 'a list', parsed: [1], problem: /not a YAML or JSON mapping/ },
    { name: 'a mapping of something else', parsed: { foo: 'bar' }, problem: /neither static_resources.listeners nor dynamic_resources/ },
    { name: 'a descriptor file', parsed: { domain: 'd', descriptors: [] }, problem: /not an Envoy bootstrap/ },
    { name: 'static clusters only', parsed: { static_resources: { clusters: [] } }, problem: /not an Envoy bootstrap/ },
    { name: 'static listeners', parsed: { static_resources: { listeners: [] } }, problem: undefined },
    { name: 'dynamic resources', parsed: { dynamic_resources: { lds_config: {} } }, problem: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const problem = notABootstrap(c.parsed);
      if (c.problem === undefined) assert.equal(problem, undefined);
      else assert.match(problem ?? '', c.problem);
    });
  }
});
