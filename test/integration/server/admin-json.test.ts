// envoyproxy/ratelimit's POST /json on the admin listener, fed bodies of the wrong shape. The expected statuses are
// what the Go service (protojson into a RateLimitRequest) answers to the same bodies, checked against it in
// ratelimit-peer.test.ts: the JSON endpoint must not take what the gRPC API cannot carry, nor read a string as a
// descriptor, nor a misspelt field as an unset one.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../../support/app.js';
import { JSON_BODIES, JSON_LIMIT } from '../../support/json-bodies.js';

describe('admin POST /json: bodies of the wrong shape', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ descriptors: { 'd.yaml': JSON_LIMIT } });
  });
  after(async () => {
    await t.close();
  });

  for (const [name, body, status] of JSON_BODIES) {
    it(`${name}: ${status}`, async () => {
      const response = await fetch(`${t.adminUrl}/json`, { method: 'POST', body, signal: AbortSignal.timeout(5000) });
      assert.equal(response.status, status, await response.text());
    });
  }
});
