// The committed Envoy and Portcullis example configs are valid: every Envoy bootstrap under envoy/ passes
// `envoy --mode validate`, every Portcullis config there passes `portcullis validate`, and the two agree on the
// rate limit domain.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createServer as createHttp2Server, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import {
  EXAMPLE_BOOTSTRAP,
  findEnvoy,
  loadYamlFile,
  rateLimitBootstrap,
  rateLimitFilterConfig,
  repoRoot,
  startEnvoy,
  validateBootstrap,
  validateConfig,
} from '../support/envoy.js';
import { validatePortcullisConfig, writeConfig } from '../support/portcullis.js';
import { startUpstream } from '../support/upstream.js';

const envoyDir = path.join(repoRoot(), 'envoy');
const yamlFiles = readdirSync(envoyDir)
  .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
  .sort();

/**
 * An Envoy bootstrap has static or dynamic resources or an admin block; a Portcullis config has `server`; an API
 * keys file (envoy/keys.yaml, checked by `portcullis validate` of the config naming it) is a list of hashed keys.
 */
function kind(file: string): 'envoy' | 'portcullis' | 'keys' | 'other' {
  const parsed: unknown = parse(readFileSync(path.join(envoyDir, file), 'utf8'));
  if (Array.isArray(parsed)) return parsed.every((entry) => typeof entry === 'object' && entry !== null && 'sha256' in entry) ? 'keys' : 'other';
  const content = loadYamlFile(path.join(envoyDir, file));
  if ('static_resources' in content || 'dynamic_resources' in content || 'admin' in content) return 'envoy';
  if ('server' in content && 'ratelimit' in content) return 'portcullis';
  return 'other';
}

/** Files written by `npm run gen:envoy`; test/e2e/gateway-config.test.ts validates every variant they come from. */
const generated = (file: string): boolean => readFileSync(path.join(envoyDir, file), 'utf8').startsWith('# GENERATED');
const bootstraps = yamlFiles.filter((file) => kind(file) === 'envoy' && !generated(file));
const portcullisConfigs = yamlFiles.filter((file) => kind(file) === 'portcullis');

describe('envoy/ example configs', () => {
  it('finds an Envoy binary', () => {
    assert.match(findEnvoy(), /envoy/);
  });

  it('has the example bootstrap and Portcullis config, and nothing unclassified', () => {
    assert.ok(bootstraps.includes(path.basename(EXAMPLE_BOOTSTRAP)), `bootstraps: ${bootstraps.join(', ')}`);
    assert.ok(portcullisConfigs.includes('portcullis.yaml'), `portcullis configs: ${portcullisConfigs.join(', ')}`);
    assert.deepEqual(
      yamlFiles.filter((file) => kind(file) === 'other'),
      [],
      'every YAML file in envoy/ is either an Envoy bootstrap or a Portcullis config',
    );
  });

  for (const file of bootstraps) {
    it(`envoy --mode validate accepts envoy/${file}`, async () => {
      const result = await validateConfig(path.join(envoyDir, file));
      assert.equal(result.code, 0, result.output);
      assert.match(result.output, /OK/);
    });
  }

  it('envoy --mode validate accepts the bootstrap the e2e tests render from the example', async () => {
    const bootstrap = rateLimitBootstrap({
      upstream: { host: '127.0.0.1', port: 1 },
      portcullis: { host: '127.0.0.1', port: 2 },
      timeout: '2s',
    });
    const result = await validateBootstrap(bootstrap);
    assert.equal(result.code, 0, result.output);
  });

  it('envoy --mode validate rejects a broken bootstrap (the check is real)', async () => {
    const bootstrap = rateLimitBootstrap({
      upstream: { host: '127.0.0.1', port: 1 },
      portcullis: { host: '127.0.0.1', port: 2 },
    });
    // Not a value of the HeaderFormat enum.
    rateLimitFilterConfig(bootstrap)['enable_x_ratelimit_headers'] = 'DRAFT_VERSION_99';
    const result = await validateBootstrap(bootstrap);
    assert.notEqual(result.code, 0, result.output);
  });

  for (const file of portcullisConfigs) {
    it(`portcullis validate accepts envoy/${file} and its descriptor files`, async () => {
      const result = await validatePortcullisConfig(path.join(envoyDir, file));
      assert.equal(result.code, 0, result.output);
    });
  }

  it('portcullis validate rejects the example with a broken descriptor file (the check is real)', async () => {
    const config = loadYamlFile('envoy/portcullis.yaml');
    const ratelimit = config['ratelimit'] as Record<string, unknown>;
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-descriptors-'));
    try {
      cpSync(path.resolve(envoyDir, String(ratelimit['descriptors'])), dir, { recursive: true });
      writeFileSync(
        path.join(dir, 'broken.yaml'),
        'domain: broken\ndescriptors:\n  - key: k\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n',
      );
      const written = writeConfig({ ...config, ratelimit: { ...ratelimit, descriptors: dir } });
      try {
        const result = await validatePortcullisConfig(written.file);
        assert.notEqual(result.code, 0, result.output);
      } finally {
        rmSync(written.dir, { recursive: true, force: true });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Every `envoy_grpc` object under `value`. */
  const envoyGrpcServices = (value: unknown): Record<string, unknown>[] => {
    if (Array.isArray(value)) return value.flatMap(envoyGrpcServices);
    if (typeof value !== 'object' || value === null) return [];
    const own = 'envoy_grpc' in value ? [(value as Record<string, unknown>)['envoy_grpc'] as Record<string, unknown>] : [];
    return [...own, ...Object.values(value).flatMap(envoyGrpcServices)];
  };

  it('every side call to Portcullis in every committed bootstrap sets skip_envoy_headers', () => {
    const files = [...yamlFiles.filter((file) => kind(file) === 'envoy'), 'authz/envoy.yaml'];
    let services = 0;
    for (const file of files) {
      for (const service of envoyGrpcServices(loadYamlFile(path.join(envoyDir, file)))) {
        if (service['cluster_name'] !== 'portcullis') continue;
        services++;
        assert.equal(service['skip_envoy_headers'], true, `envoy/${file}: a grpc_service to portcullis without skip_envoy_headers: true`);
      }
    }
    assert.ok(services >= 12, `only ${services} grpc_services to portcullis found`);
  });

  it('with skip_envoy_headers, the side call reaches Portcullis without x-envoy-internal or x-forwarded-for', async () => {
    // A stand-in for Portcullis that records the headers of each call and answers UNAVAILABLE (the example fails open).
    const calls: IncomingHttpHeaders[] = [];
    const sink = createHttp2Server();
    sink.on('stream', (stream, headers) => {
      calls.push(headers);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14' }, { endStream: true });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const upstream = await startUpstream();
    const envoy = await startEnvoy(rateLimitBootstrap({ upstream: { host: upstream.host, port: upstream.port }, portcullis: { host: '127.0.0.1', port: (sink.address() as AddressInfo).port }, timeout: '2s' }));
    try {
      const response = await fetch(`http://127.0.0.1:${envoy.listenerPort('ingress')}/`, { headers: { 'x-user-id': 'alice' } });
      assert.equal(response.status, 200);
      assert.equal(calls.length, 1, 'the rate limit filter called the stand-in once');
      assert.equal(calls[0]![':path'], '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit');
      assert.equal(calls[0]!['x-envoy-internal'], undefined);
      assert.equal(calls[0]!['x-forwarded-for'], undefined);
    } finally {
      await envoy.stop();
      await upstream.stop();
      await new Promise((resolve) => sink.close(resolve));
    }
  });

  it('the example bootstrap and the descriptor files name the same domain', () => {
    const domain = rateLimitFilterConfig(loadYamlFile(EXAMPLE_BOOTSTRAP))['domain'];
    const config = loadYamlFile('envoy/portcullis.yaml');
    const descriptorsDir = path.resolve(envoyDir, String((config['ratelimit'] as Record<string, unknown>)['descriptors']));
    const domains = readdirSync(descriptorsDir)
      .filter((name) => name.endsWith('.yaml'))
      .map((name) => loadYamlFile(path.join(descriptorsDir, name))['domain']);
    assert.ok(domains.includes(domain), `filter domain ${String(domain)} not among ${domains.join(', ')}`);
  });
});
