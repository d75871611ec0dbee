// An Envoy route with `match.case_sensitive: false` in front of ext_authz, through a real Envoy and Portcullis: Envoy
// sends `/API/orders/1` down the `/api/orders` route (and its prefix_rewrite hands the upstream the very path that
// route serves), while Portcullis picks its policy case-sensitively unless the policy says `ignore_case`. With
// `orders` (API key) before an anonymous catch-all, the other spelling reaches the orders upstream anonymously;
// `portcullis check-envoy` reports it as CASE_INSENSITIVE_ROUTE. With `ignore_case: true` on the policy the request
// is refused and check-envoy is quiet.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot, runCommand, startEnvoy, type EnvoyInstance, type HostPort } from '../support/envoy.js';
import { portcullisBin, startPortcullis, type PortcullisInstance } from '../support/portcullis.js';
import { startUpstream, type EchoBody, type Upstream } from '../support/upstream.js';

const GOLD_KEY = 'pk_demo_gold_key_do_not_use_in_production';
const POLICY_HEADER = 'x-decided-policy';

function portcullisConfig(ignoreCase: boolean): Record<string, unknown> {
  return {
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    ratelimit: { descriptors: path.join(repoRoot(), 'envoy', 'authz', 'ratelimit') },
    authz: {
      default_policy: 'deny',
      api_keys: { header: 'x-api-key', file: path.join(repoRoot(), 'envoy', 'authz', 'keys.yaml') },
      policies: [
        { name: 'orders', match: { path_prefix: '/api/orders', ...(ignoreCase ? { ignore_case: true } : {}) }, authenticate: ['api_key'] },
        { name: 'public', match: { path_prefix: '/' }, authenticate: ['anonymous'] },
      ],
    },
  };
}

function bootstrap(upstream: HostPort, portcullis: HostPort): Record<string, unknown> {
  // The policy Portcullis decided on, next to what the upstream receives.
  const decided = [{ header: { key: POLICY_HEADER, value: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:policy)%' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }];
  const endpoint = (target: HostPort) => ({ endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: target.host, port_value: target.port } } } }] }] });
  return {
    static_resources: {
      listeners: [{
        name: 'ingress',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'ingress',
              route_config: {
                virtual_hosts: [{
                  name: 'gateway', domains: ['*'],
                  routes: [
                    // The orders service serves /orders/…; Envoy matches its public prefix in any case.
                    { name: 'orders', match: { prefix: '/api/orders/', case_sensitive: false }, route: { cluster: 'upstream', prefix_rewrite: '/orders/' }, request_headers_to_add: decided },
                    { name: 'rest', match: { prefix: '/' }, route: { cluster: 'upstream' }, request_headers_to_add: decided },
                  ],
                }],
              },
              http_filters: [
                {
                  name: 'envoy.filters.http.ext_authz',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
                    transport_api_version: 'V3',
                    grpc_service: { envoy_grpc: { cluster_name: 'portcullis', skip_envoy_headers: true }, timeout: '5s' },
                    failure_mode_allow: false,
                  },
                },
                { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
              ],
            },
          }],
        }],
      }],
      clusters: [
        { name: 'upstream', type: 'STATIC', connect_timeout: '2s', load_assignment: { cluster_name: 'upstream', ...endpoint(upstream) } },
        {
          name: 'portcullis', type: 'STATIC', connect_timeout: '2s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: { cluster_name: 'portcullis', ...endpoint(portcullis) },
        },
      ],
    },
  };
}

interface Reply {
  readonly status: number;
  /** What the upstream received, when the request got there. */
  readonly echo: EchoBody | undefined;
}

describe('an Envoy route with case_sensitive: false in front of ext_authz', () => {
  let upstream: Upstream;
  let dir: string;
  before(async () => {
    upstream = await startUpstream();
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-case-route-'));
  });
  after(async () => {
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const ignoreCase of [false, true]) {
    describe(ignoreCase ? 'the policy says ignore_case: true' : 'the policy is case-sensitive (the default)', () => {
      let portcullis: PortcullisInstance;
      let envoy: EnvoyInstance;
      let bootstrapFile: string;
      before(async () => {
        portcullis = await startPortcullis(portcullisConfig(ignoreCase));
        const config = bootstrap({ host: upstream.host, port: upstream.port }, portcullis.grpc);
        bootstrapFile = path.join(dir, `envoy-${ignoreCase}.json`);
        writeFileSync(bootstrapFile, JSON.stringify(config));
        envoy = await startEnvoy(config);
      });
      after(async () => {
        await envoy?.stop();
        await portcullis?.stop();
      });

      const get = async (target: string, headers: Record<string, string> = {}): Promise<Reply> => {
        const before = upstream.requestCount();
        const response = await fetch(`http://127.0.0.1:${envoy.listenerPort('ingress')}${target}`, { headers, signal: AbortSignal.timeout(10_000) });
        await response.arrayBuffer();
        const reached = upstream.requestCount() > before;
        return { status: response.status, echo: reached ? upstream.requests().at(-1) : undefined };
      };

      it('the path as the policy spells it needs a key (the control)', async () => {
        const anonymous = await get('/api/orders/1');
        assert.equal(anonymous.status, 401);
        assert.equal(anonymous.echo, undefined);
        const keyed = await get('/api/orders/1', { 'x-api-key': GOLD_KEY });
        assert.equal(keyed.status, 200);
        assert.equal(keyed.echo?.path, '/orders/1');
        assert.equal(keyed.echo?.headers[POLICY_HEADER], 'orders');
      });

      for (const target of ['/API/ORDERS/1', '/Api/orders/1']) {
        if (!ignoreCase) {
          it(`${target} reaches the orders upstream anonymously, under the catch-all policy`, async () => {
            const reply = await get(target);
            assert.equal(reply.status, 200);
            // Envoy took the orders route (its prefix_rewrite made the path), Portcullis chose `public`.
            assert.equal(reply.echo?.path, '/orders/1');
            assert.equal(reply.echo?.headers[POLICY_HEADER], 'public');
          });
        } else {
          it(`${target} is refused without a key`, async () => {
            const reply = await get(target);
            assert.equal(reply.status, 401);
            assert.equal(reply.echo, undefined);
          });
        }
      }

      it(ignoreCase ? 'check-envoy is quiet' : 'check-envoy reports CASE_INSENSITIVE_ROUTE', async () => {
        const result = await runCommand(process.execPath, [portcullisBin(), 'check-envoy', bootstrapFile, '--config', portcullis.configFile]);
        if (ignoreCase) {
          assert.equal(result.code, 0, result.output);
          assert.match(result.output, /2 route\(s\) with ext_authz/);
          assert.match(result.output, /0 finding\(s\)/);
        } else {
          assert.equal(result.code, 1, result.output);
          assert.deepEqual(result.output.match(/^[A-Z_]+(?=: )/gm), ['CASE_INSENSITIVE_ROUTE'], result.output);
          assert.match(result.output, /CASE_INSENSITIVE_ROUTE: route 'orders' matches paths ignoring case \(case_sensitive: false\), but Portcullis chooses the authz policy case-sensitively: GET \/API\/ORDERS\/ takes 'public' where GET \/api\/orders\/ takes 'orders'.*give authz policy 'orders' match: \{ignore_case: true\}/);
          assert.match(result.output, /\n {4}at listener ingress \/ vhost gateway \/ route orders\n/);
        }
      });
    });
  }
});
