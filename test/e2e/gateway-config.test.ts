// The generated gateway definition (src/gateway/) is valid in every variant and with every combination of the
// Portcullis filter switches, and the committed files are exactly what the generator renders today.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { buildGatewayBootstrap, GATEWAY_DOMAIN, type GatewayTarget } from '../../src/gateway/envoy-bootstrap.js';
import { ALL_FILTER_COMBINATIONS, ENABLED_FILTERS } from '../../src/gateway/filters.js';
import { renderGatewayFiles } from '../../src/gateway/render.js';
import { COMPOSE_TARGET, LOCAL_TARGET } from '../../src/gateway/variants.js';
import { repoRoot, validateBootstrap } from '../support/envoy.js';
import { makeCertificates } from '../support/gateway.js';

describe('generated gateway bootstrap', () => {
  let certDir = '';
  before(() => {
    certDir = mkdtempSync(path.join(tmpdir(), 'portcullis-gateway-certs-'));
    makeCertificates(certDir);
  });
  after(() => rmSync(certDir, { recursive: true, force: true }));

  it('the committed envoy/envoy.yaml and envoy/envoy.compose.yaml are what `npm run gen:envoy` renders', () => {
    for (const file of renderGatewayFiles()) {
      const committed = readFileSync(path.join(repoRoot(), file.path), 'utf8');
      assert.equal(committed, file.text, `${file.path} is stale: run \`npm run build && npm run gen:envoy\``);
    }
  });

  const variants: [string, GatewayTarget][] = [['local', LOCAL_TARGET], ['compose', COMPOSE_TARGET]];
  for (const [name, target] of variants) {
    for (const filters of ALL_FILTER_COMBINATIONS) {
      it(`envoy --mode validate accepts the ${name} variant with ext_authz ${filters.extAuthz ? 'on' : 'off'}, ext_proc ${filters.extProc ? 'on' : 'off'}`, async () => {
        // Certificates are made at first run, never committed: point the variant at a fresh set.
        const bootstrap = buildGatewayBootstrap({ ...target, certDir }, filters);
        const result = await validateBootstrap(bootstrap);
        assert.equal(result.code, 0, result.output);
        assert.match(result.output, /OK/);
      });
    }
  }

  it('envoy --mode validate rejects a bootstrap whose certificate is missing (the check is real)', async () => {
    const result = await validateBootstrap(buildGatewayBootstrap({ ...LOCAL_TARGET, certDir: path.join(certDir, 'missing') }, ENABLED_FILTERS));
    assert.notEqual(result.code, 0, result.output);
  });

  it('the switch turns exactly the ext_authz and ext_proc filters on and off, in the documented order', () => {
    const names = (extAuthz: boolean, extProc: boolean): string[] => {
      const bootstrap = buildGatewayBootstrap(LOCAL_TARGET, { extAuthz, extProc }) as { static_resources: { listeners: { filter_chains: { filters: { typed_config: { http_filters: { name: string }[] } }[] }[] }[] } };
      return bootstrap.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.http_filters.map((f) => f.name.replace('envoy.filters.http.', ''));
    };
    assert.deepEqual(names(false, false), ['cors', 'rbac', 'ratelimit', 'buffer', 'router']);
    assert.deepEqual(names(true, true), ['cors', 'rbac', 'ext_authz', 'ratelimit', 'buffer', 'ext_proc', 'router']);
    assert.deepEqual(names(true, false), ['cors', 'rbac', 'ext_authz', 'ratelimit', 'buffer', 'router']);
    assert.deepEqual(names(false, true), ['cors', 'rbac', 'ratelimit', 'buffer', 'ext_proc', 'router']);
  });

  it('with ext_authz on, the user and API key descriptors come from ext_authz dynamic metadata', () => {
    const text = JSON.stringify(buildGatewayBootstrap(LOCAL_TARGET, { extAuthz: true, extProc: false }));
    assert.doesNotMatch(text, /"header_name":"x-user-id"/);
    assert.match(text, /"metadata":\{"descriptor_key":"user_id","source":"DYNAMIC"/);
    assert.match(text, /DYNAMIC_METADATA\(envoy\.filters\.http\.ext_authz:user_id\)/);
    assert.match(JSON.stringify(buildGatewayBootstrap(LOCAL_TARGET, { extAuthz: false, extProc: false })), /"header_name":"x-user-id"/);
  });

  it('Envoy\'s admin interface stays on loopback in both variants; only the metrics listener leaves it', () => {
    for (const [name, target] of variants) {
      const bootstrap = buildGatewayBootstrap(target, ENABLED_FILTERS) as { admin: { address: { socket_address: { address: string } } } };
      assert.equal(bootstrap.admin.address.socket_address.address, '127.0.0.1', `${name}: the admin answers anyone who reaches it`);
      assert.ok(target.metrics !== undefined, `${name}: no metrics listener for Prometheus`);
    }
    assert.equal(COMPOSE_TARGET.metrics?.host, '0.0.0.0', 'Prometheus scrapes the compose Envoy from its own container');
  });

  it('the local and compose variants differ only in addresses and file locations', () => {
    const strip = (value: unknown): unknown => JSON.parse(JSON.stringify(value, (key, v: unknown) =>
      ['socket_address', 'filename', 'type', 'dns_lookup_family', 'path'].includes(key) ? undefined : v));
    assert.deepEqual(strip(buildGatewayBootstrap(COMPOSE_TARGET, ENABLED_FILTERS)), strip(buildGatewayBootstrap(LOCAL_TARGET, ENABLED_FILTERS)));
    const committed = parse(readFileSync(path.join(repoRoot(), 'envoy/envoy.yaml'), 'utf8')) as Record<string, unknown>;
    assert.match(JSON.stringify(committed), new RegExp(`"domain":"${GATEWAY_DOMAIN}"`));
  });

  it('the local and compose Portcullis configs share the descriptors, authz policies, keys file and extproc routes', () => {
    const load = (file: string) => parse(readFileSync(path.join(repoRoot(), 'envoy', file), 'utf8')) as Record<string, unknown>;
    const local = load('portcullis.yaml');
    const compose = load('portcullis.compose.yaml');
    for (const section of ['ratelimit', 'authz', 'extproc']) {
      assert.ok(local[section] !== undefined, `envoy/portcullis.yaml has no ${section}:`);
      assert.deepEqual(compose[section], local[section], `${section}: differs between envoy/portcullis.yaml and envoy/portcullis.compose.yaml`);
    }
    // docker-compose.yml mounts the keys file where the compose config looks for it.
    assert.match(readFileSync(path.join(repoRoot(), 'docker-compose.yml'), 'utf8'), /\.\/envoy\/keys\.yaml:\/etc\/portcullis\/keys\.yaml:ro/);
  });
});
