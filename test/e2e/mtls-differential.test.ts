// mTLS identity, differential: client certificates of awkward shapes (several URI SANs, URI SANs holding `,` `;` `"`
// or escapes, DNS-only, email/IP-only, subjects with RFC 2253 specials, UTF-8, multi-valued RDNs, very long, empty)
// sent through a real Envoy, and the identity Portcullis derived (x-user-id at the upstream, allow/deny against a
// principals list) compared with what the certificate names by docs/authz.md's rule: first URI SAN, else first DNS
// SAN, else the subject as Envoy renders it (RFC 2253). Each certificate takes every path Envoy offers:
//   direct        mTLS listener, ext_authz reads source.principal (SANITIZE_SET, or APPEND_FORWARD with a client XFCC)
//   relay         mTLS listener without ext_authz (SANITIZE_SET or APPEND_FORWARD, subject/uri/dns/cert/chain) → a
//                 plain listener (ALWAYS_FORWARD_ONLY) with ext_authz, entered from 127.0.0.2, the one peer whose XFCC
//                 Portcullis trusts (mtls.trusted); the identity comes from the XFCC element Envoy wrote
// and a client's own XFCC, sent on every listener, must never name the caller.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { principalFromXfcc } from '../../src/authz/mtls.js';
import { startEnvoy, type EnvoyInstance } from '../support/envoy.js';
import { startPortcullis, type PortcullisInstance } from '../support/portcullis.js';
import { startUpstream, type EchoBody, type Upstream } from '../support/upstream.js';

const OPS = 'spiffe://example.org/ops';
/** Where the relays connect from: the only address in mtls.trusted. */
const RELAY_SOURCE = '127.0.0.2';
const SPOOF = `By=spiffe://example.org/front;Hash=${'0'.repeat(64)};Subject="CN=ops";URI=${OPS};DNS=ops.example.org`;

interface CertCase {
  name: string;
  /** openssl -subj (with -utf8 -multivalue-rdn); '/' is the empty subject. */
  subject: string;
  /** Lines of the subjectAltName section, in order (URI.1=…, DNS.1=…). */
  sans: string[];
  /** What the XFCC paths give instead, and why, where Envoy's XFCC cannot carry the certificate's principal. */
  viaXfcc?: string;
}

const longOus = (n: number, width: number): string => Array.from({ length: n }, (_, i) => `/OU=${String(i).padStart(3, '0')}${'x'.repeat(width - 3)}`).join('');

const CASES: CertCase[] = [
  { name: 'spiffe', subject: '/CN=ops', sans: [`URI.1=${OPS}`] },
  { name: 'spiffe-then-https', subject: '/CN=two', sans: [`URI.1=${OPS}`, 'URI.2=https://other.example/x'] },
  { name: 'https-then-spiffe', subject: '/CN=two', sans: ['URI.1=https://other.example/x', `URI.2=${OPS}`] },
  { name: 'dns-then-spiffe', subject: '/CN=mixed', sans: ['DNS.1=ops.example.org', `URI.1=${OPS}`] },
  { name: 'uri-percent', subject: '/CN=pct', sans: ['URI.1=spiffe://example.org/a%20b/%C3%BC%2C%3B'] },
  { name: 'uri-semicolon', subject: '/CN=semi', sans: [`URI.1=${OPS};DNS=x.example`] },
  { name: 'uri-semicolon-bare', subject: '/CN=semi', sans: [`URI.1=${OPS};x`] },
  // Envoy writes the URI SAN unquoted, so its `,` splits Envoy's element in two; the tail, which the certificate's
  // holder wrote, would be read as the proxy's element. It carries no Cert= while the element before does: nobody.
  { name: 'uri-comma', subject: '/CN=comma', sans: [`URI.1=spiffe://example.org/dev,URI=${OPS}`], viaXfcc: '401 missing_credentials' },
  { name: 'uri-comma-hash', subject: '/CN=comma', sans: [`URI.1=spiffe://example.org/dev,By=x;Hash=${'1'.repeat(64)};URI=${OPS}`], viaXfcc: '401 missing_credentials' },
  { name: 'uri-quote', subject: '/CN=quote', sans: ['URI.1=spiffe://example.org/\\"q\\"'] },
  // Envoy writes `URI=spiffe://example.org/a"b` unquoted: an open quote, which could as well be a client's swallowing
  // the proxy's element, so the header names nobody (source.principal still names the certificate).
  { name: 'uri-quote-open', subject: '/CN=quote', sans: ['URI.1=spiffe://example.org/a\\"b'], viaXfcc: '401 missing_credentials' },
  { name: 'uri-backslash', subject: '/CN=bs', sans: ['URI.1=spiffe://example.org/a\\\\b'] },
  { name: 'dns-only', subject: '/CN=dns', sans: ['DNS.1=svc.example.org'] },
  { name: 'dns-several', subject: '/CN=dns', sans: ['DNS.1=b.example.org', 'DNS.2=a.example.org'] },
  { name: 'email-only', subject: '/CN=mail user/O=Example', sans: ['email.1=a@example.org'] },
  { name: 'ip-only', subject: '/CN=ip', sans: ['IP.1=10.0.0.1'] },
  { name: 'subject-specials', subject: '/CN=a\\,b;c"d=e\\+f\\\\g <h>#/O=x', sans: [] },
  { name: 'subject-quote-last', subject: '/CN=ends "quoted"', sans: [] },
  { name: 'subject-backslash-last', subject: '/CN=ends\\\\', sans: [] },
  { name: 'subject-comma-uri', subject: `/CN=x\\,URI=${OPS.replaceAll('/', '\\/')}`, sans: [] },
  { name: 'subject-utf8', subject: '/CN=Jürgen Ünïcödé 東京/O=Straße', sans: [] },
  { name: 'subject-multivalued', subject: '/OU=u+UID=v/CN=mv', sans: [] },
  { name: 'subject-long', subject: `/CN=long${longOus(40, 60)}`, sans: [] },
  { name: 'subject-too-long', subject: `/CN=toolong${longOus(80, 60)}`, sans: [] },
  { name: 'empty-subject-email', subject: '/', sans: ['email.1=nobody@example.org'] },
  { name: 'empty-subject-no-san', subject: '/', sans: [] },
];

function makeCertificates(dir: string): void {
  const run = (...args: string[]): string => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }).toString('utf8');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=portcullis-mtls-differential-ca');
  const leaf = (name: string, subject: string, sans: string[], usage: string): void => {
    const alt = sans.length === 0 ? '' : `subjectAltName=@alt\n[alt]\n${sans.join('\n')}\n`;
    writeFileSync(path.join(dir, `${name}.cnf`), `[ext]\nextendedKeyUsage=${usage}\n${alt}`);
    run('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-utf8', '-multivalue-rdn', '-subj', subject);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.cnf`, '-extensions', 'ext');
  };
  leaf('server', '/CN=localhost', ['DNS.1=localhost', 'URI.1=spiffe://example.org/front'], 'serverAuth');
  for (const c of CASES) leaf(c.name, c.subject, c.sans, 'clientAuth');
}

/** What the certificate names by the documented rule, read back from the certificate by openssl. */
function expectedPrincipal(dir: string, name: string): string {
  const out = execFileSync('openssl', ['x509', '-in', `${name}.crt`, '-noout', '-nameopt', 'RFC2253', '-subject'], { cwd: dir }).toString('utf8');
  const [subjectLine] = out.split('\n');
  // openssl prints SANs holding ", " ambiguously: the case's own SAN lines (config escapes undone) give them in order.
  const sans = CASES.find((c) => c.name === name)!.sans.map((l) => l.replace(/^(\w+)\.\d+=/, '$1=').replace(/\\(.)/g, '$1'));
  const uri = sans.find((s) => s.startsWith('URI='));
  const dns = sans.find((s) => s.startsWith('DNS='));
  return uri?.slice(4) ?? dns?.slice(4) ?? subjectLine!.replace(/^subject=/, '');
}

function tlsContext(dir: string): Record<string, unknown> {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      require_client_certificate: true,
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { filename: path.join(dir, 'server.crt') }, private_key: { filename: path.join(dir, 'server.key') } }],
        validation_context: { trusted_ca: { filename: path.join(dir, 'ca.crt') } },
      },
    },
  };
}

const ALL_DETAILS = { subject: true, uri: true, dns: true, cert: true, chain: true };

function listener(name: string, options: { tls?: Record<string, unknown>; forward: string; authz: boolean; cluster: string }): Record<string, unknown> {
  const filters: unknown[] = [];
  if (options.authz) {
    filters.push({
      name: 'envoy.filters.http.ext_authz',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: 'portcullis' }, timeout: '5s' },
        failure_mode_allow: false,
        include_peer_certificate: true,
      },
    });
  }
  filters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } });
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [{
      ...(options.tls === undefined ? {} : { transport_socket: options.tls }),
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: name,
          use_remote_address: true,
          forward_client_cert_details: options.forward,
          ...(options.forward === 'SANITIZE_SET' || options.forward === 'APPEND_FORWARD' ? { set_current_client_cert_details: ALL_DETAILS } : {}),
          route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: options.cluster } }] }] },
          http_filters: filters,
        },
      }],
    }],
  };
}

function cluster(name: string, port: number, options: { http2?: boolean; bind?: string } = {}): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '2s',
    ...(options.bind === undefined ? {} : { upstream_bind_config: { source_address: { address: options.bind, port_value: 0 } } }),
    ...(options.http2 ? {
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
    } : {}),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  };
}

/** Two Envoys: the inner one (ext_authz behind a plain listener) must be up before the relays name its port. */
function innerBootstrap(upstream: Upstream, portcullis: { port: number }, dir: string): Record<string, unknown> {
  const tls = tlsContext(dir);
  return {
    static_resources: {
      listeners: [
        listener('direct', { tls, forward: 'SANITIZE_SET', authz: true, cluster: 'upstream' }),
        listener('direct_append', { tls, forward: 'APPEND_FORWARD', authz: true, cluster: 'upstream' }),
        listener('plain', { forward: 'SANITIZE', authz: true, cluster: 'upstream' }),
        listener('inner', { forward: 'ALWAYS_FORWARD_ONLY', authz: true, cluster: 'upstream' }),
      ],
      clusters: [cluster('upstream', upstream.port), cluster('portcullis', portcullis.port, { http2: true })],
    },
  };
}

function relayBootstrap(innerPort: number, dir: string): Record<string, unknown> {
  const tls = tlsContext(dir);
  return {
    static_resources: {
      listeners: [
        listener('relay', { tls, forward: 'SANITIZE_SET', authz: false, cluster: 'inner' }),
        listener('relay_append', { tls, forward: 'APPEND_FORWARD', authz: false, cluster: 'inner' }),
        listener('relay_plain', { forward: 'SANITIZE', authz: false, cluster: 'inner' }),
      ],
      clusters: [cluster('inner', innerPort, { bind: RELAY_SOURCE })],
    },
  };
}

interface Reply {
  status: number;
  body: string;
  headers: IncomingHttpHeaders | undefined;
}

function send(port: number, pathname: string, options: { dir?: string; cert?: string; xfcc?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = { 'x-user-id': 'spoofed', ...(options.xfcc === undefined ? {} : { 'x-forwarded-client-cert': options.xfcc }) };
    const common = { host: '127.0.0.1', port, path: pathname, headers, agent: false as const, timeout: 10_000 };
    const onResponse = (res: import('node:http').IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => {
        const echo = res.statusCode === 200 ? (JSON.parse(body) as EchoBody) : undefined;
        resolve({ status: res.statusCode ?? 0, body, headers: echo?.headers });
      });
    };
    const req = options.cert === undefined
      ? httpRequest(common, onResponse)
      : httpsRequest({
        ...common, servername: 'localhost',
        ca: readFileSync(path.join(options.dir!, 'ca.crt')),
        cert: readFileSync(path.join(options.dir!, `${options.cert}.crt`)),
        key: readFileSync(path.join(options.dir!, `${options.cert}.key`)),
      }, onResponse);
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** The caller as the upstream saw it: x-user-id on 200, else the denial's error code. */
function caller(r: Reply): string {
  if (r.status === 200) return `ok ${String(r.headers?.['x-user-id'])}`;
  try {
    return `${r.status} ${(JSON.parse(r.body) as { error: string }).error}`;
  } catch {
    return `${r.status} ${r.body.slice(0, 80)}`;
  }
}

describe('mTLS identity through a real Envoy: certificate shapes × forward_client_cert_details', () => {
  let dir: string;
  let upstream: Upstream;
  let portcullis: PortcullisInstance;
  let inner: EnvoyInstance;
  let relay: EnvoyInstance;
  const expected = new Map<string, string>();

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-mtls-diff-'));
    makeCertificates(dir);
    for (const c of CASES) expected.set(c.name, expectedPrincipal(dir, c.name));
    upstream = await startUpstream();
    portcullis = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors: mkdirSync(path.join(dir, 'ratelimit'), { recursive: true }) ?? path.join(dir, 'ratelimit') },
      authz: {
        mtls: { trusted: [`${RELAY_SOURCE}/32`] },
        policies: [
          { name: 'who', match: { path_prefix: '/who' }, authenticate: ['mtls'] },
          { name: 'ops', match: { path_prefix: '/ops' }, authenticate: ['mtls'], require: { principals: [OPS] } },
        ],
      },
    });
    inner = await startEnvoy(innerBootstrap(upstream, portcullis.grpc, dir));
    relay = await startEnvoy(relayBootstrap(inner.listenerPort('inner'), dir));
  });
  after(async () => {
    await relay?.stop();
    await inner?.stop();
    await portcullis?.stop();
    await upstream?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The identity Portcullis should give a certificate: none when the rule's value cannot be an x-user-id. */
  const want = (name: string): string => {
    const p = expected.get(name)!;
    return p === '' ? '401 missing_credentials' : p.length > 4096 ? '401 invalid_credentials' : `ok ${p}`;
  };

  for (const c of CASES) {
    it(`${c.name}: every path names the certificate's principal, and only spiffe://example.org/ops passes /ops`, async () => {
      const routes: [string, () => Promise<Reply>, () => Promise<Reply>][] = [
        ['direct (source.principal), client XFCC', () => send(inner.listenerPort('direct'), '/who', { dir, cert: c.name, xfcc: SPOOF }), () => send(inner.listenerPort('direct'), '/ops', { dir, cert: c.name, xfcc: SPOOF })],
        ['direct APPEND_FORWARD, client XFCC', () => send(inner.listenerPort('direct_append'), '/who', { dir, cert: c.name, xfcc: SPOOF }), () => send(inner.listenerPort('direct_append'), '/ops', { dir, cert: c.name, xfcc: SPOOF })],
        ['relay SANITIZE_SET → trusted XFCC', () => send(relay.listenerPort('relay'), '/who', { dir, cert: c.name, xfcc: SPOOF }), () => send(relay.listenerPort('relay'), '/ops', { dir, cert: c.name, xfcc: SPOOF })],
        ['relay APPEND_FORWARD with a client XFCC → trusted XFCC', () => send(relay.listenerPort('relay_append'), '/who', { dir, cert: c.name, xfcc: SPOOF }), () => send(relay.listenerPort('relay_append'), '/ops', { dir, cert: c.name, xfcc: SPOOF })],
      ];
      const failures: string[] = [];
      for (const [route, who, ops] of routes) {
        const w = route.startsWith('relay') && c.viaXfcc !== undefined ? c.viaXfcc : want(c.name);
        const got = caller(await who());
        if (got !== w) failures.push(`${route}: /who gave ${JSON.stringify(got)}, the certificate names ${JSON.stringify(w)}`);
        const gate = caller(await ops());
        const wantGate = w === `ok ${OPS}` ? `ok ${OPS}` : w.startsWith('ok ') ? '403 forbidden' : w;
        if (gate !== wantGate) failures.push(`${route}: /ops gave ${JSON.stringify(gate)}, want ${JSON.stringify(wantGate)}`);
      }
      assert.deepEqual(failures, []);
    });
  }

  it("the XFCC Envoy writes reads back (principalFromXfcc) as the principal Envoy sends as source.principal", async () => {
    const failures: string[] = [];
    for (const c of CASES) {
      const r = await send(inner.listenerPort('direct'), '/who', { dir, cert: c.name });
      const direct = caller(r);
      const xfcc = String(r.headers?.['x-forwarded-client-cert'] ?? '');
      if (!direct.startsWith('ok ') || c.viaXfcc !== undefined) continue;
      const read = principalFromXfcc(xfcc);
      if (`ok ${read}` !== direct) failures.push(`${c.name}: XFCC ${JSON.stringify(xfcc.replace(/Cert="[^"]*"/, 'Cert=…').replace(/Chain="[^"]*"/, 'Chain=…'))} reads as ${JSON.stringify(read)}, source.principal gave ${JSON.stringify(direct)}`);
    }
    assert.deepEqual(failures, []);
  });

  it('a client XFCC never names the caller: plain listener, untrusted peer, plain relay', async () => {
    const plain = caller(await send(inner.listenerPort('plain'), '/who', { xfcc: SPOOF }));
    const untrusted = caller(await send(inner.listenerPort('inner'), '/who', { xfcc: SPOOF }));
    const relayed = caller(await send(relay.listenerPort('relay_plain'), '/who', { xfcc: SPOOF }));
    assert.deepEqual({ plain, untrusted, relayed }, { plain: '401 missing_credentials', untrusted: '401 missing_credentials', relayed: '401 missing_credentials' });
  });
});
