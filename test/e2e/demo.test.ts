// `npm run demo` keeps working: DEMO_ONESHOT=1 runs the whole guided tour against the real stack and exits 0, and
// each feature's command shows what the tour says it shows. Uses the demo's fixed ports (8080, 8081, 8101-8173, …).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../support/envoy.js';

describe('npm run demo (DEMO_ONESHOT=1)', () => {
  it('starts everything, runs the tour, shows each feature and stops cleanly', async () => {
    const child = spawn('bash', [path.join(repoRoot(), 'scripts', 'demo.sh')], {
      env: { ...process.env, DEMO_ONESHOT: '1', DEMO_SKIP_SETUP: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGTERM'), 240_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    assert.equal(code, 0, output);
    const expectations: [string, RegExp][] = [
      ['prefix rewrite', /instance=users-\d path=\/42/],
      ['method matching', /GET 200 {2}POST 200 {2}DELETE 405/],
      ['versioning', /api-version: 2'[^\n]*\nversion=v2/],
      ['canary', /\d+ instance=catalog-canary/],
      ['401 without a credential', /HTTP\/1\.1 401[^\n]*\n(?:[^\n]*\n)*?www-authenticate: Bearer realm="portcullis"/i],
      ['identity headers upstream', /header\.x-user-id=bob header\.x-auth-method=api_key header\.x-api-key-id=bob header\.x-client-tier=gold header\.x-api-key=-/],
      ['spoofed identity replaced', /header\.x-user-id=anonymous header\.x-auth-method=anonymous/],
      ['403 without the role', /"error":"forbidden"[^\n]* 403\n/],
      ['mtls caller', /header\.x-user-id=spiffe:\/\/portcullis\.local\/demo-client header\.x-auth-method=mtls/],
      ['per-user limit', /\n(200 ){30}429 429 \n/],
      ['per-key limit', /\n(200 ){20}429 429 \n/],
      ['per endpoint', /\n(200 ){10}429 429 \n/],
      ['retry', /x-envoy-attempt-count=3/],
      ['outlier ejection', /ejections_enforced_total: [1-9]/],
      ['timeout', /504 after/],
      ['size limit', /\n413\n/],
      ['cors', /access-control-allow-origin: https:\/\/app\.example\.com/],
      ['admin allow-list', /RBAC: access denied 403/],
      ['mtls identity', /URI=spiffe:\/\/portcullis\.local\/demo-client/],
      ['mtls refusal', /refused: no client certificate/],
    ];
    for (const [feature, pattern] of expectations) assert.match(output, pattern, `${feature} not shown:\n${output}`);

    // The cache step says the HIT replays the stored answer: the instance that served the MISS, and an age.
    const cache = section(output, 'Response cache');
    const servedBy = [...cache.matchAll(/^x-served-by: (\S+)\s*$/gim)].map((m) => m[1]);
    assert.match(cache, /x-cache-status: MISS[\s\S]*x-cache-status: HIT/i, cache);
    assert.match(cache, /^age: \d+\s*$/im, cache);
    assert.equal(servedBy.length, 2, cache);
    assert.equal(servedBy[0], servedBy[1], cache);

    // The access log step shows the line of its own request, its path without the query it was sent with.
    const line = section(output, 'The JSON access log').split('\n').find((l) => l.includes('"path":"/api/users/access-log-demo"'));
    assert.ok(line, `no access log line shown:\n${section(output, 'The JSON access log')}`);
    assert.match(line, /"request_id":"[0-9a-f-]{36}"/);
    assert.match(line, /"user_id":"bob"/);
    assert.ok(!line.includes('not-logged'), line);
  });
});

/** The output of one tour step: from its `== TITLE` heading to the next heading. */
function section(output: string, title: string): string {
  const start = output.indexOf(`== ${title}`);
  assert.notEqual(start, -1, `no step '${title}':\n${output}`);
  const next = output.indexOf('\n== ', start + 1);
  return output.slice(start, next === -1 ? undefined : next);
}
