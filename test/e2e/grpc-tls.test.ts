// Envoy → Portcullis over mTLS: a real Envoy whose portcullis cluster is docs/gateway.md's TLS cluster block (its
// names, port and file paths replaced), Portcullis with server.grpc.tls, client_ca_file and client_sans. ext_authz
// and the rate limit filter are answered through it; an Envoy without the client certificate gets its filters'
// failure behaviour.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { at, list, record, repoRoot, startEnvoy, type EnvoyInstance } from '../support/envoy.js';
import { DEMO_CLIENT_SAN, makeTestCertificates, type TestCertificates } from '../support/grpc-tls.js';
import { startPortcullis, type PortcullisInstance } from '../support/portcullis.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { awayFromWindowEdge } from '../support/windows.js';
import { fencedBlocks } from '../unit/docs/fences.js';

const DOMAIN = 'tls-e2e';

/** docs/gateway.md's Envoy cluster for Portcullis over TLS: the first `yaml envoy` block of its TLS section. */
function documentedCluster(): Record<string, unknown> {
  const markdown = readFileSync(path.join(repoRoot(), 'docs', 'gateway.md'), 'utf8');
  const start = markdown.indexOf('## TLS and mTLS between Envoy and Portcullis');
  assert.ok(start >= 0, 'docs/gateway.md has no TLS section');
  const block = fencedBlocks(markdown.slice(start)).find((b) => b.lang === 'yaml' && b.tags[0] === 'envoy');
  assert.ok(block !== undefined, 'no yaml envoy block in the TLS section');
  const clusters = parseYaml(block.text) as unknown[];
  return record(clusters[0]);
}

/**
 * The documented cluster pointed at this Portcullis: its address (STATIC 127.0.0.1: `localhost` may resolve to ::1
 * first), its name (`localhost`, in the test certificate), and the certificate files; without `clientCertificate`
 * Envoy presents none.
 */
function portcullisCluster(port: number, certs: TestCertificates, clientCertificate: boolean): Record<string, unknown> {
  let text = JSON.stringify(documentedCluster())
    .replaceAll('portcullis.internal', 'localhost')
    .replaceAll('/etc/envoy/certs/envoy.pem', certs.client)
    .replaceAll('/etc/envoy/certs/envoy-key.pem', certs.clientKey)
    .replaceAll('/etc/envoy/certs/portcullis-ca.pem', certs.ca);
  text = text.replace('"port_value":8081', `"port_value":${port}`);
  const cluster = record(JSON.parse(text));
  cluster['type'] = 'STATIC';
  const endpoint = record(at(record(list(record(list(at(cluster, 'load_assignment', 'endpoints'))[0])['lb_endpoints'])[0]), 'endpoint'));
  record(at(endpoint, 'address', 'socket_address'))['address'] = '127.0.0.1';
  const common = record(at(cluster, 'transport_socket', 'typed_config', 'common_tls_context'));
  if (!clientCertificate) delete common['tls_certificates'];
  return cluster;
}

/**
 * An Envoy with ext_authz (fails closed with 503 when Portcullis cannot answer) and the rate limit filter (fails
 * closed: failure_mode_deny). /open skips ext_authz and is limited per minute; everything else is checked only.
 */
function bootstrap(upstream: Upstream, portcullis: Record<string, unknown>): Record<string, unknown> {
  const grpcService = { envoy_grpc: { cluster_name: 'portcullis' }, timeout: '2s' };
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [{
        name: 'ingress',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{ filters: [{
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
            stat_prefix: 'ingress',
            route_config: { virtual_hosts: [{
              name: 'all', domains: ['*'],
              routes: [
                {
                  match: { prefix: '/open' },
                  route: { cluster: 'upstream', rate_limits: [{ actions: [{ generic_key: { descriptor_key: 'route', descriptor_value: 'open' } }] }] },
                  typed_per_filter_config: { 'envoy.filters.http.ext_authz': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute', disabled: true } },
                },
                { match: { prefix: '/' }, route: { cluster: 'upstream' } },
              ],
            }] },
            http_filters: [
              { name: 'envoy.filters.http.ext_authz', typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
                transport_api_version: 'V3', grpc_service: grpcService, failure_mode_allow: false,
                status_on_error: { code: 'ServiceUnavailable' },
              } },
              { name: 'envoy.filters.http.ratelimit', typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit',
                domain: DOMAIN, timeout: '2s', failure_mode_deny: true,
                rate_limit_service: { transport_api_version: 'V3', grpc_service: grpcService },
              } },
              { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
            ],
          },
        }] }],
      }],
      clusters: [
        {
          name: 'upstream', type: 'STATIC', connect_timeout: '1s',
          load_assignment: { cluster_name: 'upstream', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: upstream.host, port_value: upstream.port } } } }] }] },
        },
        portcullis,
      ],
    },
  };
}

describe('Envoy → Portcullis over mTLS (server.grpc.tls, docs/gateway.md\'s cluster)', () => {
  let scratch: string;
  let certs: TestCertificates;
  let upstream: Upstream;
  let portcullis: PortcullisInstance;
  const envoys: EnvoyInstance[] = [];

  before(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), 'pc-grpctls-e2e-'));
    certs = makeTestCertificates(path.join(scratch, 'certs'));
    const limits = path.join(scratch, 'limits');
    mkdirSync(limits);
    writeFileSync(path.join(limits, 'tls.yaml'), `domain: ${DOMAIN}\ndescriptors:\n  - key: route\n    value: open\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n`);
    upstream = await startUpstream();
    portcullis = await startPortcullis({
      server: {
        grpc: { address: '127.0.0.1:0', tls: { cert_file: certs.server, key_file: certs.serverKey, client_ca_file: certs.ca, client_sans: [DEMO_CLIENT_SAN] } },
        admin: { address: '127.0.0.1:0' }, shutdown_timeout_ms: 2000,
      },
      log: { level: 'info' },
      ratelimit: { descriptors: limits, reload: { enabled: false } },
      authz: { policies: [{ name: 'public', match: { path_prefix: '/api/public' }, authenticate: ['anonymous'] }] },
    });
  });
  after(async () => {
    for (const envoy of envoys) await envoy.stop();
    await portcullis?.stop();
    await upstream?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const get = async (envoy: EnvoyInstance, pathname: string): Promise<number> =>
    (await fetch(`http://127.0.0.1:${envoy.listenerPort('ingress')}${pathname}`, { signal: AbortSignal.timeout(10_000) })).status;
  const metrics = async (): Promise<string> => (await fetch(`${portcullis.adminUrl}/metrics`)).text();
  const sum = (text: string, prefix: string): number => text.split('\n').filter((l) => l.startsWith(prefix)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

  it('with its client certificate: ext_authz Check and the rate limit are answered through TLS', async () => {
    const envoy = await startEnvoy(bootstrap(upstream, portcullisCluster(portcullis.grpc.port, certs, true)));
    envoys.push(envoy);
    assert.equal(await get(envoy, '/api/public/x'), 200, envoy.logs());
    assert.equal(await get(envoy, '/api/private'), 403, 'no policy: denied by Portcullis');
    await awayFromWindowEdge(60, 10);
    const statuses = [await get(envoy, '/open'), await get(envoy, '/open'), await get(envoy, '/open')];
    assert.deepEqual(statuses, [200, 200, 429]);
    const text = await metrics();
    assert.equal(sum(text, 'portcullis_authz_checks_total{'), 2);
    assert.equal(sum(text, `portcullis_ratelimit_decisions_total{domain="${DOMAIN}"`), 3);
    assert.equal(sum(text, 'portcullis_grpc_tls_client_refused_total'), 0);
  });

  it('without a client certificate: the handshake fails and each filter fails as configured (503, 500)', async () => {
    const before = await metrics();
    const envoy = await startEnvoy(bootstrap(upstream, portcullisCluster(portcullis.grpc.port, certs, false)));
    envoys.push(envoy);
    assert.equal(await get(envoy, '/api/public/x'), 503, 'ext_authz: status_on_error');
    assert.equal(await get(envoy, '/open'), 500, 'ratelimit: failure_mode_deny');
    const after = await metrics();
    for (const series of ['portcullis_authz_checks_total{', 'portcullis_ratelimit_decisions_total{']) {
      assert.equal(sum(after, series), sum(before, series), `${series}: no call reached Portcullis`);
    }
    const stats = await (await fetch(`${envoy.adminUrl}/stats?filter=^cluster\\.portcullis\\.(ssl\\.connection_error|upstream_cx_connect_fail)`)).text();
    assert.match(stats, /[1-9]/, `Envoy counted the failed connections:\n${stats}`);
  });
});
