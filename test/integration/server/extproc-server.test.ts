// ExternalProcessor/Process against the real gRPC server on port 0: scripted streams (what Envoy would send), the
// memory cache and a real redis-server. Envoy's own behaviour is covered in test/e2e/extproc.test.ts.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRedisClient } from '../../../src/store/redis-counter-store.js';
import { RedisCacheStore } from '../../../src/store/redis-cache-store.js';
import { eventually, startTestApp, type TestApp } from '../../support/app.js';
import { authzMetadata, body, extprocClient, requestHeaders, responseHeaders, setHeaders, type ExtprocClient } from '../../support/extproc-client.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

const DESCRIPTORS = { 'd.yaml': 'domain: d\ndescriptors: []\n' };
const USER_SCHEMA = JSON.stringify({
  type: 'object', required: ['name'], additionalProperties: false,
  properties: { name: { type: 'string', minLength: 1 }, email: { type: 'string', format: 'email' } },
});

const EXTPROC = `
request_id: { header: x-request-id }
tracing: { mirror: { trace_id: x-trace-id, span_id: x-span-id } }
cache: { max_entry_bytes: 4096, timeout_ms: 100 }
routes:
  - name: users
    match: { path_prefix: /api/users, methods: [GET, HEAD, POST] }
    headers:
      request:  { set: { x-gateway: portcullis, x-client-ip: "{client_ip}", x-user: "{user_id}" }, append: { x-via: "{route}" }, remove: [x-debug] }
      response: { set: { x-content-type-options: nosniff }, remove: [server, x-powered-by] }
    validate:
      content_types: [application/json]
      max_body_bytes: 256
      json_schema: ./user.json
      required_headers: [x-client-version]
    cache:
      ttl_seconds: { "200": 300, "404": 60 }
      public: false
  - name: catalog
    match: { path_prefix: /catalog }
    cache: { ttl_seconds: { "200": 300 }, public: true }
  - name: search
    match: { path: /search }
    validate: { required_query_params: [q] }
`;

const GET = (path: string, extra: Record<string, string> = {}): Record<string, string> => ({
  ':method': 'GET', ':path': path, ':authority': 'api.example', ':scheme': 'http', 'x-request-id': 'rid-1', 'x-client-version': '1', ...extra,
});

function answerKind(r: { response?: string }): string | undefined {
  return r.response;
}

for (const store of ['memory', 'redis'] as const) {
  describe(`ext_proc server (${store} cache)`, () => {
    let app: TestApp;
    let client: ExtprocClient;
    let redis: RedisServer | undefined;

    before(async () => {
      if (store === 'redis') redis = await startRedis();
      app = await startTestApp({
        descriptors: DESCRIPTORS, extproc: EXTPROC, files: { 'user.json': USER_SCHEMA },
        cache: redis ? new RedisCacheStore(createRedisClient({ url: redis.url }), `it:${Date.now()}:`) : undefined,
      });
      client = extprocClient(app.grpcAddress);
    });
    after(async () => {
      client.close();
      await app.close();
      await redis?.stop();
    });

    it('keeps the request id, continues the trace, mirrors ids, applies header rules, and answers each message once', async () => {
      const s = client.open();
      const r1 = await s.exchange({
        ...requestHeaders(GET('/api/users/1', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'a=1', 'x-debug': '1', 'x-forwarded-for': '203.0.113.9' })),
        ...authzMetadata({ user_id: 'alice' }),
      });
      assert.equal(answerKind(r1), 'request_headers');
      const set = setHeaders(r1.request_headers?.response?.header_mutation);
      assert.equal(set['x-request-id'], undefined, 'an existing request id is kept, not rewritten');
      assert.match(set['traceparent'] ?? '', /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
      assert.notEqual(set['traceparent'], '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
      assert.equal(set['x-trace-id'], '0af7651916cd43dd8448eb211c80319c');
      assert.equal(set['x-span-id'], set['traceparent']?.slice(36, 52));
      assert.equal(set['x-gateway'], 'portcullis');
      assert.equal(set['x-client-ip'], '203.0.113.9');
      assert.equal(set['x-user'], 'alice');
      assert.equal(set['x-via'], 'users');
      assert.deepEqual(r1.request_headers?.response?.header_mutation?.remove_headers, ['x-debug']);
      assert.equal(r1.mode_override ?? undefined, undefined, 'no body asked for a GET');
      const r2 = await s.exchange(responseHeaders({ ':status': '404', server: 'nginx', 'content-type': 'text/plain' }, true));
      assert.equal(answerKind(r2), 'response_headers');
      const rs = setHeaders(r2.response_headers?.response?.header_mutation);
      assert.equal(rs['x-request-id'], 'rid-1');
      assert.equal(rs['x-content-type-options'], 'nosniff');
      assert.deepEqual(r2.response_headers?.response?.header_mutation?.remove_headers, ['server', 'x-powered-by']);
      s.end();
      assert.equal((await s.status).code, 0);
      const lines = app.logs().filter((l) => l['request_id'] === 'rid-1' && l['msg'] === 'request headers');
      assert.ok(lines.length >= 1 && lines.every((l) => l['trace_id'] === '0af7651916cd43dd8448eb211c80319c'));
    });

    it('creates a request id and a new trace when absent or invalid, dropping tracestate', async () => {
      const s = client.open();
      const headers = GET('/other', { traceparent: '00-ZZZ', tracestate: 'a=1' });
      delete headers['x-request-id'];
      const r = await s.exchange(requestHeaders(headers));
      const set = setHeaders(r.request_headers?.response?.header_mutation);
      assert.match(set['x-request-id'] ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.match(set['traceparent'] ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.deepEqual(r.request_headers?.response?.header_mutation?.remove_headers, ['tracestate']);
      const r2 = await s.exchange(responseHeaders({ ':status': '200' }, true));
      assert.equal(setHeaders(r2.response_headers?.response?.header_mutation)['x-request-id'], set['x-request-id']);
      s.end();
      await s.status;
    });

    it('rejects a body that fails the JSON Schema with 400 problem+json, after asking for the body only then', async () => {
      const s = client.open();
      const post = { ...GET('/api/users'), ':method': 'POST', 'content-type': 'application/json', 'content-length': '12' };
      const r1 = await s.exchange(requestHeaders(post, false));
      assert.equal(r1.mode_override?.request_body_mode, 'BUFFERED');
      assert.equal(r1.mode_override?.response_body_mode, 'NONE');
      const r2 = await s.exchange(body('request_body', '{"nam":"x"}'));
      assert.equal(answerKind(r2), 'immediate_response');
      assert.equal(r2.immediate_response?.status?.code, 'BadRequest');
      const h = setHeaders(r2.immediate_response?.headers);
      assert.equal(h['content-type'], 'application/problem+json');
      const problem = JSON.parse(r2.immediate_response?.body?.toString() ?? '') as { status: number; errors: { name: string }[]; request_id: string };
      assert.equal(problem.status, 400);
      assert.equal(problem.request_id, 'rid-1');
      assert.deepEqual(problem.errors.map((e) => e.name).sort(), ['/nam', '/name']);
      s.end();
      await s.status;
    });

    it('answers 415, 413 and 400 for content type, size and missing headers or query parameters', async () => {
      const cases: [Record<string, string>, boolean, string][] = [
        [{ ...GET('/api/users'), ':method': 'POST', 'content-type': 'text/plain', 'content-length': '5' }, false, 'UnsupportedMediaType'],
        [{ ...GET('/api/users'), ':method': 'POST', 'content-type': 'application/json', 'content-length': '9999' }, false, 'PayloadTooLarge'],
        [(() => { const h = GET('/api/users/1'); delete h['x-client-version']; return h; })(), true, 'BadRequest'],
        [GET('/search?x=1'), true, 'BadRequest'],
      ];
      for (const [headers, eos, code] of cases) {
        const s = client.open();
        const r = await s.exchange(requestHeaders(headers, eos));
        assert.equal(r.immediate_response?.status?.code, code, JSON.stringify(headers));
        s.end();
        await s.status;
      }
      const ok = client.open();
      const r = await ok.exchange(requestHeaders(GET('/search?q=a')));
      assert.equal(answerKind(r), 'request_headers');
      assert.equal(r.mode_override ?? undefined, undefined, 'a route without body rules never asks for a body');
      ok.end();
      await ok.status;
    });

    it('caches a GET: miss asks for the body, the second GET is a HIT with age, HEAD and If-None-Match use it, POST invalidates', async () => {
      const path = `/catalog/${store}/items?b=2&a=1`;
      const first = client.open();
      const m1 = await first.exchange(requestHeaders(GET(path)));
      assert.equal(answerKind(m1), 'request_headers');
      const m2 = await first.exchange(responseHeaders({ ':status': '200', 'content-type': 'application/json', 'content-length': '11', etag: '"v1"', 'cache-control': 'max-age=60' }));
      assert.equal(setHeaders(m2.response_headers?.response?.header_mutation)['x-cache-status'], 'MISS');
      assert.equal(m2.mode_override?.response_body_mode, 'BUFFERED');
      const m3 = await first.exchange(body('response_body', '{"items":1}'));
      assert.equal(answerKind(m3), 'response_body');
      first.end();
      await first.status;

      const second = client.open();
      const h = await second.exchange(requestHeaders(GET(`/catalog/${store}/items?a=1&b=2`, { 'x-request-id': 'rid-2' })));
      assert.equal(answerKind(h), 'immediate_response');
      assert.equal(h.immediate_response?.status?.code, 'OK');
      assert.equal(h.immediate_response?.body?.toString(), '{"items":1}');
      const hh = setHeaders(h.immediate_response?.headers);
      assert.equal(hh['x-cache-status'], 'HIT');
      assert.equal(hh['x-request-id'], 'rid-2');
      assert.match(hh['age'] ?? '', /^\d+$/);
      assert.equal(hh['content-type'], 'application/json');
      second.end();
      await second.status;

      const head = client.open();
      const hr = await head.exchange(requestHeaders({ ...GET(path), ':method': 'HEAD' }));
      assert.equal(hr.immediate_response?.status?.code, 'OK');
      head.end();
      await head.status;

      const cond = client.open();
      const cr = await cond.exchange(requestHeaders(GET(path, { 'if-none-match': 'W/"v1"' })));
      assert.equal(cr.immediate_response?.status?.code, 'NotModified');
      assert.equal(cr.immediate_response?.body?.length ?? 0, 0);
      assert.equal(setHeaders(cr.immediate_response?.headers)['etag'], '"v1"');
      cond.end();
      await cond.status;

      const post = client.open();
      await post.exchange(requestHeaders({ ...GET(`/catalog/${store}/items`), ':method': 'POST' }, true));
      await post.exchange(responseHeaders({ ':status': '201' }, true));
      post.end();
      await post.status;

      const after = client.open();
      const ar = await after.exchange(requestHeaders(GET(path)));
      assert.equal(answerKind(ar), 'request_headers', 'the POST invalidated the cached GET');
      after.end();
      await after.status;
    });

    it('keys a private route by caller: one user never gets another user\'s entry', async () => {
      const path = `/api/users/${store}/me`;
      const a = client.open();
      await a.exchange({ ...requestHeaders(GET(path)), ...authzMetadata({ user_id: 'alice' }) });
      const ar = await a.exchange(responseHeaders({ ':status': '200', 'content-length': '5' }));
      assert.equal(ar.mode_override?.response_body_mode, 'BUFFERED');
      await a.exchange(body('response_body', 'alice'));
      a.end();
      await a.status;
      const b = client.open();
      const br = await b.exchange({ ...requestHeaders(GET(path)), ...authzMetadata({ user_id: 'bob' }) });
      assert.equal(answerKind(br), 'request_headers');
      b.end();
      await b.status;
      const a2 = client.open();
      const a2r = await a2.exchange({ ...requestHeaders(GET(path)), ...authzMetadata({ user_id: 'alice' }) });
      assert.equal(a2r.immediate_response?.body?.toString(), 'alice');
      a2.end();
      await a2.status;
    });

    it('does not store no-store, private, Set-Cookie or unlisted statuses, and marks BYPASS for no-store requests', async () => {
      for (const [i, headers] of ([
        { ':status': '200', 'cache-control': 'no-store' },
        { ':status': '200', 'cache-control': 'private, max-age=60' },
        { ':status': '200', 'set-cookie': 'a=b' },
        { ':status': '500' },
        { ':status': '200', vary: '*' },
      ] as Record<string, string>[]).entries()) {
        const s = client.open();
        await s.exchange(requestHeaders(GET(`/catalog/${store}/n${i}`)));
        const r = await s.exchange(responseHeaders({ ...headers, 'content-length': '2' }));
        assert.equal(r.mode_override ?? undefined, undefined, JSON.stringify(headers));
        assert.equal(setHeaders(r.response_headers?.response?.header_mutation)['x-cache-status'], 'MISS');
        s.end();
        await s.status;
      }
      const s = client.open();
      await s.exchange(requestHeaders(GET(`/catalog/${store}/x`, { 'cache-control': 'no-store' })));
      const r = await s.exchange(responseHeaders({ ':status': '200', 'content-length': '2' }));
      assert.equal(setHeaders(r.response_headers?.response?.header_mutation)['x-cache-status'], 'BYPASS');
      s.end();
      await s.status;
    });

    it('answers trailers, handles a stream that starts with response headers, and refuses an empty message', async () => {
      const s = client.open();
      const r = await s.exchange(responseHeaders({ ':status': '200' }));
      assert.equal(answerKind(r), 'response_headers');
      const t = await s.exchange({ response_trailers: { trailers: { headers: [] } } });
      assert.equal(answerKind(t), 'response_trailers');
      s.end();
      assert.equal((await s.status).code, 0);
      const bad = client.open();
      bad.send({});
      const status = await bad.status;
      assert.equal(status.code, 3);
      assert.match(status.details, /no message/);
    });

    it('in observability mode answers nothing', async () => {
      const s = client.open();
      s.send({ ...requestHeaders(GET('/x')), observability_mode: true });
      await assert.rejects(s.next(300), /no ProcessingResponse/);
      s.end();
      assert.equal((await s.status).code, 0);
    });
  });
}

describe('ext_proc server: Redis failures', () => {
  it('keeps answering without the cache when Redis is killed, counted', async () => {
    const redis = await startRedis();
    const app = await startTestApp({
      descriptors: DESCRIPTORS, extproc: EXTPROC, files: { 'user.json': USER_SCHEMA },
      cache: new RedisCacheStore(createRedisClient({ url: redis.url }), 'it:fail:'),
    });
    const client = extprocClient(app.grpcAddress);
    try {
      await redis.kill();
      const started = Date.now();
      const s = client.open();
      const r = await s.exchange(requestHeaders(GET('/catalog/down')));
      assert.equal(answerKind(r), 'request_headers');
      const r2 = await s.exchange(responseHeaders({ ':status': '200', 'content-length': '2' }));
      assert.equal(setHeaders(r2.response_headers?.response?.header_mutation)['x-cache-status'], 'BYPASS');
      assert.ok(Date.now() - started < 1000, 'answered well within a message timeout');
      s.end();
      await s.status;
      await eventually(async () => (await app.metric('portcullis_extproc_cache_errors_total', { operation: 'get' })) >= 1);
      assert.ok(app.logs().some((l) => l['msg'] === 'cache lookup failed; continuing without the cache'));
    } finally {
      client.close();
      await app.close();
    }
  });
});
