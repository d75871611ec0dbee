// `portcullis check-envoy` as operators run it: the shipped bootstraps pass against the shipped descriptor files,
// authz policies and extproc routes, and a deliberately broken descriptor file or portcullis.yaml is caught with a
// non-zero exit.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { checkEnvoyCommand } from '../../../src/cli/check-envoy.js';
import { buildGatewayBootstrap } from '../../../src/gateway/envoy-bootstrap.js';
import { ENABLED_FILTERS } from '../../../src/gateway/filters.js';
import { LOCAL_TARGET } from '../../../src/gateway/variants.js';
import { repoRoot, runCommand } from '../../support/envoy.js';
import { portcullisBin } from '../../support/portcullis.js';

const checkEnvoy = (...args: string[]) => runCommand(process.execPath, [portcullisBin(), 'check-envoy', ...args]);

describe('portcullis check-envoy', () => {
  let broken = '';
  before(() => {
    broken = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-'));
    cpSync(path.join(repoRoot(), 'envoy', 'ratelimit'), broken, { recursive: true });
    const file = path.join(broken, 'gateway.yaml');
    const text = readFileSync(file, 'utf8')
      // The per-endpoint rule renamed: /api/export's [route=export] now meets no rule…
      .replace('value: export', 'value: exports')
      // …and per-user limits only for one user: every other user is unlimited.
      .replace('  - key: user_id\n', '  - key: user_id\n    value: alice\n');
    assert.notEqual(text, readFileSync(file, 'utf8'));
    writeFileSync(file, text);
  });
  after(() => rmSync(broken, { recursive: true, force: true }));

  for (const bootstrap of ['envoy/envoy.yaml', 'envoy/envoy.compose.yaml', 'envoy/ratelimit.yaml']) {
    it(`passes the shipped ${bootstrap} against envoy/portcullis.yaml's descriptor files, policies and extproc routes`, async () => {
      const result = await checkEnvoy(path.join(repoRoot(), bootstrap));
      assert.equal(result.code, 0, result.output);
      assert.match(result.output, /0 finding\(s\)/);
      if (bootstrap !== 'envoy/ratelimit.yaml') assert.match(result.output, /[1-9]\d* route\(s\) with ext_authz, [1-9]\d* with ext_proc against/);
    });
  }

  it('reads a bootstrap whose portcullis cluster is a Unix socket (address: pipe) as it reads the TCP one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-pipe-'));
    try {
      const bootstrap = buildGatewayBootstrap({ ...LOCAL_TARGET, portcullis: { pipe: '/run/portcullis/grpc.sock' } }, ENABLED_FILTERS);
      assert.match(JSON.stringify(bootstrap), /"address":\{"pipe":\{"path":"\/run\/portcullis\/grpc.sock"\}\}/);
      const file = path.join(dir, 'envoy.yaml');
      writeFileSync(file, stringifyYaml(bootstrap));
      const result = await checkEnvoy(file, '--config', path.join(repoRoot(), 'envoy', 'portcullis.yaml'));
      const shipped = await checkEnvoy(path.join(repoRoot(), 'envoy', 'envoy.yaml'));
      assert.equal(result.code, 0, result.output);
      // The same findings (none) and counts as the shipped TCP bootstrap: the file name aside, the same report.
      assert.equal(result.output.replace(file, 'F'), shipped.output.replace(path.join(repoRoot(), 'envoy', 'envoy.yaml'), 'F'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes the example bootstraps beside their own configs, but for envoy/authz\'s deliberate default deny', async () => {
    const extproc = await checkEnvoy(path.join(repoRoot(), 'envoy/extproc.yaml'), '--config', path.join(repoRoot(), 'envoy/portcullis-extproc.yaml'));
    assert.equal(extproc.code, 0, extproc.output);
    // Its route `/` carries paths no policy names, which default_policy: deny refuses: what the example shows.
    const authz = await checkEnvoy(path.join(repoRoot(), 'envoy/authz/envoy.yaml'));
    assert.deepEqual(authz.output.match(/^[A-Z_]+(?=: )/gm), ['PARTIAL_AUTHZ_POLICY'], authz.output);
  });

  it('catches a broken descriptor file and exits 1', async () => {
    const result = await checkEnvoy(path.join(repoRoot(), 'envoy/envoy.yaml'), '--descriptors', broken);
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /UNMATCHED_DESCRIPTOR: domain 'gateway': descriptor \[route=export\] matches no rule/);
    assert.match(result.output, /at listener http \/ vhost gateway \/ route export/);
    assert.match(result.output, /UNMATCHED_DESCRIPTOR: domain 'gateway': descriptor \[user_id=<metadata envoy.filters.http.ext_authz:user_id>\]/);
    assert.match(result.output, /UNREACHABLE_RULE: domain 'gateway': rule \[route=exports\] is never reached/);
  });

  it('reports a domain no descriptor file declares', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-domain-'));
    try {
      writeFileSync(path.join(dir, 'other.yaml'), 'domain: other\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n');
      const result = await checkEnvoy(path.join(repoRoot(), 'envoy/envoy.yaml'), '--descriptors', dir);
      assert.equal(result.code, 1, result.output);
      assert.match(result.output, /UNKNOWN_DOMAIN: the ratelimit filter uses domain 'gateway', which no descriptor file declares \(known: other\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('catches a route no authz policy covers and an extproc route nothing reaches, and exits 1', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-authz-'));
    try {
      cpSync(path.join(repoRoot(), 'envoy', 'ratelimit'), path.join(dir, 'ratelimit'), { recursive: true });
      cpSync(path.join(repoRoot(), 'envoy', 'keys.yaml'), path.join(dir, 'keys.yaml'));
      const shipped = readFileSync(path.join(repoRoot(), 'envoy', 'portcullis.yaml'), 'utf8');
      const text = shipped
        // The export policy gone: /api/export is answered by default_policy deny alone…
        .replace(/    - name: export\n      match: \{ path_prefix: \/api\/export \}\n      authenticate: \[api_key, mtls\]\n/, '')
        // …and the cached route moved where no Envoy route with ext_proc goes.
        .replace('path: /api/catalog/featured', 'path: /nowhere/featured');
      assert.notEqual(text, shipped);
      assert.doesNotMatch(text, /name: export/);
      writeFileSync(path.join(dir, 'portcullis.yaml'), text);
      const result = await checkEnvoy(path.join(repoRoot(), 'envoy/envoy.yaml'), '--config', path.join(dir, 'portcullis.yaml'));
      assert.equal(result.code, 1, result.output);
      assert.match(result.output, /NO_AUTHZ_POLICY: route 'export': no authz policy matches any request it carries/);
      assert.match(result.output, /at listener http \/ vhost gateway \/ route export\n {4}at listener https \/ vhost gateway \/ route export/);
      assert.match(result.output, /EXTPROC_ROUTE_UNREACHABLE: extproc route 'featured' \(path \/nowhere\/featured, GET\/HEAD\) is never reached/);
      assert.match(result.output, /2 finding\(s\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('catches a misspelt metadata namespace and ext_authz disabled on a route that needs a key, and exits 1', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-bypass-'));
    try {
      const shipped = readFileSync(path.join(repoRoot(), 'envoy', 'envoy.yaml'), 'utf8');
      const text = shipped
        // The per-user limit reads a namespace nothing writes: Envoy never sends [user_id=…]…
        .replace(/key: envoy\.filters\.http\.ext_authz\n(\s+)path:\n\s+- key: user_id/g, 'key: envoy.filters.http.extauthz\n$1path:\n$1  - key: user_id')
        // …and /api/export (policy export: api_key or mtls) skips ext_authz.
        .replace(/(- name: export\n[\s\S]*?typed_per_filter_config:\n)/, '$1                            envoy.filters.http.ext_authz:\n                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute\n                              disabled: true\n');
      assert.match(text, /envoy\.filters\.http\.extauthz/);
      const file = path.join(dir, 'envoy.yaml');
      writeFileSync(file, text);
      const result = await checkEnvoy(file, '--config', path.join(repoRoot(), 'envoy', 'portcullis.yaml'));
      assert.equal(result.code, 1, result.output);
      assert.match(result.output, /UNKNOWN_METADATA_NAMESPACE: the ratelimit filter 'envoy\.filters\.http\.ratelimit' reads metadata envoy\.filters\.http\.extauthz:user_id, a namespace no filter running before it writes .*Envoy never sends that descriptor/);
      assert.match(result.output, /AUTHZ_BYPASSED: route 'export': ext_authz is disabled here, but Portcullis would not let an anonymous caller in: 'export' \(e\.g\. GET \/api\/export\)/);
      assert.match(result.output, /at listener http \/ vhost gateway \/ route export\n {4}at listener https \/ vhost gateway \/ route export/);
      // The per-key limit there reads ext_authz's metadata too.
      assert.match(result.output, /AUTHZ_METADATA_MISSING: .*api_key_id\), but ext_authz does not run on this route/);
      assert.match(result.output, /3 finding\(s\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('catches an ext_proc filter that asks for every response phase, and exits 1', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-phase-'));
    try {
      const shipped = readFileSync(path.join(repoRoot(), 'envoy', 'envoy.yaml'), 'utf8');
      // Envoy's default, said: every listener's ext_proc filter now holds Envoy's own replies for a response phase.
      const text = shipped.replaceAll('response_header_mode: SKIP', 'response_header_mode: SEND');
      assert.notEqual(text, shipped);
      const file = path.join(dir, 'envoy.yaml');
      writeFileSync(file, text);
      const result = await checkEnvoy(file, '--config', path.join(repoRoot(), 'envoy', 'portcullis.yaml'));
      assert.equal(result.code, 1, result.output);
      assert.deepEqual(result.output.match(/^[A-Z_]+(?=: )/gm), ['EXTPROC_RESPONSE_PHASE_ALWAYS'], result.output);
      assert.match(result.output, /EXTPROC_RESPONSE_PHASE_ALWAYS: the ext_proc filter 'envoy\.filters\.http\.ext_proc' does not set processing_mode\.response_header_mode: SKIP \(unset is SEND\).*set response_header_mode: SKIP, with allow_mode_override: true/);
      assert.match(result.output, /\n {4}at listener http\n {4}at listener https\n {4}at listener mtls\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Bootstraps Envoy itself would refuse, found by a prober: each once crashed the command with a stack trace.
  const odd: { file: string; code: number; output: RegExp }[] = [
    // A mapping with a `toString` key where a name is expected: String() of it threw a TypeError.
    { file: 'ce-tostring.yaml', code: 0, output: /: 0 descriptor shape\(s\), 0 rule\(s\); .*; 0 finding\(s\)\n$/ },
    // A YAML alias cycle in layered_runtime.static_layer: flattening it overflowed the stack.
    { file: 'ce-cycle.yaml', code: 1, output: /EXTPROC_STREAM_RESETS: .*\n {4}at listener l\n/ },
  ];
  for (const c of odd) {
    it(`reads the odd bootstrap ${c.file} without crashing`, async () => {
      const empty = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-odd-'));
      try {
        const result = await checkEnvoy(path.join(repoRoot(), 'test', 'fixtures', 'envoycheck', c.file), '--descriptors', empty);
        assert.equal(result.code, c.code, result.output);
        assert.match(result.output, c.output);
        assert.doesNotMatch(result.output, /Error|\n\s+at .*\.js:\d+/);
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    });
  }

  it('turns an unexpected error into one line naming the file, exit 2', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-bug-'));
    try {
      const file = path.join(repoRoot(), 'test', 'fixtures', 'envoycheck', 'ce-cycle.yaml');
      let written = '';
      // A stand-in for a bug in the checks: the report itself throws.
      const out = new Writable();
      out.write = () => {
        throw new TypeError('boom\nsecond line');
      };
      const err = new Writable({ write: (chunk: Buffer, _encoding, done) => ((written += chunk.toString()), done()) });
      const code = await checkEnvoyCommand(file, { descriptors: empty }, out, err);
      assert.equal(code, 2);
      assert.equal(written, `${file}: check-envoy failed on this bootstrap: TypeError: boom\n`);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('says what is wrong with unreadable input', async () => {
    const missing = await checkEnvoy(path.join(tmpdir(), 'no-such-envoy.yaml'), '--descriptors', broken);
    assert.equal(missing.code, 1);
    assert.match(missing.output, /cannot read the Envoy bootstrap/);
    const usage = await checkEnvoy();
    assert.equal(usage.code, 2);
  });

  it('refuses an empty file, YAML that is not a bootstrap or does not parse: one line, exit 1', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-check-envoy-notbootstrap-'));
    try {
      const cases = [
        { name: 'empty.yaml', text: '', says: 'the file is empty' },
        { name: 'junk.yaml', text: 'foo: bar\n', says: 'it has neither static_resources.listeners nor dynamic_resources, so it is not an Envoy bootstrap' },
        { name: 'bad.yaml', text: 'foo: bar\na: [\n', says: 'Flow sequence in block collection must be sufficiently indented and end with a ] at line 3, column 1:' },
      ];
      for (const c of cases) {
        const file = path.join(dir, c.name);
        writeFileSync(file, c.text);
        const result = await checkEnvoy(file, '--descriptors', broken);
        assert.equal(result.code, 1, result.output);
        assert.equal(result.output, `${file}: cannot read the Envoy bootstrap: ${c.says}\n`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
