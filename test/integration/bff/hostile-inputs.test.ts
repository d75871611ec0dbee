// The composer's listener (a real Portcullis app in this process) fed client values that no upstream request can
// carry, against a real Node HTTP upstream through the real undici client.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../../support/app.js';
import { startUpstream, type Upstream } from '../../support/upstream.js';

describe('composer: client values a call cannot send', () => {
  let upstream: Upstream;
  let t: TestApp;
  let base: string;

  before(async () => {
    upstream = await startUpstream();
    t = await startTestApp({
      descriptors: {},
      bff: `services:
  echo: "${upstream.url}"
endpoints:
  - path: /bff/tagged
    timeout_ms: 3000
    params: { tag: { required: true } }
    calls:
      soft: { service: echo, path: "/soft", headers: { x-tag: "{tag}" }, on_error: null }`,
    });
    assert.ok(t.httpUrl);
    base = t.httpUrl;
  });
  after(async () => {
    await t.close();
    await upstream.stop();
  });

  it('a header value with CR, LF, NUL or a character beyond U+00FF is an input failure, not the service\'s', async () => {
    for (const tag of ['a%0d%0ax-user-id:%20root', '%00', '%F0%9F%99%82']) {
      const response = await fetch(`${base}/bff/tagged?tag=${tag}`, { signal: AbortSignal.timeout(5000) });
      assert.equal(response.status, 200, tag);
      assert.deepEqual(await response.json(), { soft: null, _degraded: ['soft'] }, tag);
    }
    assert.equal(upstream.requestCount(), 0, 'nothing was sent');
    // A client's bytes are not a network failure of the service: that reason is for its alerts.
    assert.equal(await t.metric('portcullis_bff_call_failures_total', { endpoint: '/bff/tagged', call: 'soft', reason: 'input' }), 3);
    assert.equal(await t.metric('portcullis_bff_call_failures_total', { endpoint: '/bff/tagged', call: 'soft', reason: 'network' }), 0);
    const line = t.logs().find((l) => l['msg'] === 'bff answer degraded');
    assert.match(JSON.stringify(line?.['failed']), /input: header 'x-tag'/);
  });

  it('a header value in Latin-1 is sent as it is', async () => {
    const response = await fetch(`${base}/bff/tagged?tag=caf%C3%A9%09x`, { signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { soft: { headers: Record<string, string> } };
    assert.equal(body.soft.headers['x-tag'], 'café\tx');
  });
});
