// Soak load: high-cardinality traffic on every Portcullis service at a steady rate, and, once a second, known
// questions whose answer is certain (the checks). Random traffic may fail (1 ms deadlines, cancelled streams, Redis
// down are part of it); a check may not: a definite wrong answer is a soak failure, whatever the memory does.
//
// Mix of the random traffic (per operation): 25 % ShouldRateLimit (80 % on the configured domain, random values, 5 %
// with a 1 ms deadline), 50 % Check (fresh RS256 JWTs with unique jti, forged JWTs, garbage bearers, unknown and valid
// API keys, opaque tokens for introspection, public paths), 18 % ext_proc streams (random paths and hosts, POST bodies
// valid and not, 10 % cancelled at each step), 5 % composer calls (10 % aborted after 5 ms), 2 % streams opened and
// left silent until the client cancels them.

import { randomBytes } from 'node:crypto';
import { authzClient, type WireCheckResponse } from '../../test/support/authz-client.js';
import { body, extprocClient, requestHeaders, responseHeaders } from '../../test/support/extproc-client.js';
import { rateLimitClient } from '../../test/support/ratelimit-client.js';

export interface LoadTargets {
  readonly grpcAddress: string;
  /** http://host:port of the composer listener. */
  readonly httpUrl: string;
  /** The rate limit domain of the descriptor file the soak writes. */
  readonly domain: string;
  /** An API key the keys file lists (allowed on /api). */
  readonly validApiKey: string;
  /** A JWT the configured provider accepts. */
  token(claims: Record<string, unknown>): Promise<string>;
  /**
   * Changes whenever the counter store may have lost or refused counts (Redis killed or restarted); undefined while
   * the store is not trusted to count (down, or up too briefly). A rate limit check only counts across a constant one.
   */
  storeEpoch(): number | undefined;
}

export interface Tally {
  sent: number;
  answered: number;
  failed: number;
}

export interface CheckTally {
  passed: number;
  /** A definite answer, and the wrong one. */
  wrong: number;
  /** No answer (error, timeout): a failure when more than 1 % of the checks. */
  unanswered: number;
  /** Rate limit checks not run or not counted because the store was not trusted at the time. */
  skipped: number;
  /** The first wrong or unanswered checks, for the report. */
  readonly examples: string[];
}

export interface Load {
  readonly traffic: Readonly<Record<string, Tally>>;
  readonly checks: Readonly<CheckTally>;
  stop(): Promise<void>;
}

const MAX_IN_FLIGHT = 400;
const TICK_MS = 20;

const rs = (n = 12): string => randomBytes(n).toString('base64url');
const rnd = (n: number): number => Math.floor(Math.random() * n);
function pick<T>(items: readonly T[]): T {
  return items[rnd(items.length)] as T;
}
const allowed = (r: WireCheckResponse): boolean => (r.status?.code ?? 0) === 0;

export function startLoad(targets: LoadTargets, rate: number): Load {
  const rls = [0, 1, 2, 3].map(() => rateLimitClient(targets.grpcAddress, true));
  // Several connections, so that node:cluster hands them to different workers.
  const azs = [0, 1].map(() => authzClient(targets.grpcAddress));
  const eps = [0, 1].map(() => extprocClient(targets.grpcAddress, { 'grpc.use_local_subchannel_pool': 1 }));
  const traffic: Record<string, Tally> = {};
  const checks: CheckTally = { passed: 0, wrong: 0, unanswered: 0, skipped: 0, examples: [] };
  let inFlight = 0;
  let jti = 0;

  const track = (kind: string, work: Promise<unknown>): Promise<void> => {
    const t = (traffic[kind] ??= { sent: 0, answered: 0, failed: 0 });
    t.sent++;
    inFlight++;
    return work.then(() => void t.answered++, () => void t.failed++).finally(() => inFlight--);
  };

  const ratelimit = (): Promise<unknown> => {
    const domain = Math.random() < 0.8 ? targets.domain : `dom-${rs(6)}`;
    const entries = pick([
      () => [{ key: 'user', value: rs(10) }],
      () => [{ key: 'path', value: `/api/${rs(8)}` }],
      () => [{ key: 'any', value: rs(10) }],
      () => [{ key: 'tb', value: rs(6) }],
      () => [{ key: rs(5), value: rs(5) }],
    ])();
    return pick(rls).shouldRateLimit({ domain, descriptors: [{ entries }], hits_addend: 1 }, Math.random() < 0.05 ? 1 : 2000);
  };

  const authz = async (): Promise<unknown> => {
    const r = Math.random();
    const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
    let args;
    if (r < 0.3) args = { path: `/api/o/${rs(4)}`, headers: bearer(await targets.token({ sub: `u${jti}`, jti: `soak-${jti++}` })) };
    else if (r < 0.45) args = { path: `/api/x?q=${rs(4)}`, headers: bearer(forgedJwt()) };
    else if (r < 0.55) args = { path: '/api/x', headers: bearer(rs(40)) };
    else if (r < 0.7) args = { path: '/api/k', headers: { 'x-api-key': Math.random() < 0.2 ? targets.validApiKey : `pk_${rs(24)}` } };
    else if (r < 0.75) args = { path: `/api/k?api_key=${rs(20)}` };
    else if (r < 0.9) args = { path: `/opaque/${rs(3)}`, headers: bearer(`${Math.random() < 0.5 ? 'ok-' : 'no-'}${rs(20)}`) };
    else args = { path: `/public/${rs(6)}`, headers: { 'x-request-id': rs(8) } };
    return pick(azs).check(args, Math.random() < 0.05 ? 1 : 3000);
  };

  const extproc = async (): Promise<void> => {
    const s = pick(eps).open();
    try {
      const users = Math.random() < 0.5;
      const method = Math.random() < 0.85 ? 'GET' : 'POST';
      const headers = {
        ':method': method, ':path': `${users ? '/api/users/' : '/x/'}${rs(5)}?a=${rs(4)}&b=${rnd(100)}`, ':authority': `h${rnd(50)}.test`,
        ':scheme': 'http', authorization: `Bearer ${rs(10)}`, 'content-type': 'application/json',
      };
      const first = await s.exchange(requestHeaders(headers, method === 'GET'), 3000);
      if (Math.random() < 0.1) return s.cancel();
      if (first.immediate_response) return s.end();
      if (method === 'POST') await s.exchange(body('request_body', Math.random() < 0.5 ? '{"name":"a"}' : '{bad'), 3000);
      if (Math.random() < 0.1) return s.cancel();
      await s.exchange(responseHeaders({ ':status': '200', 'cache-control': 'max-age=60', 'content-type': 'application/json' }, false), 3000);
      if (Math.random() < 0.1) return s.cancel();
      await s.exchange(body('response_body', JSON.stringify({ v: rs(100) })), 3000);
      s.end();
    } catch (error) {
      s.cancel();
      throw error;
    }
  };

  const composer = async (): Promise<void> => {
    const response = await fetch(`${targets.httpUrl}/bff/dash/${rs(8)}`, { signal: AbortSignal.timeout(Math.random() < 0.1 ? 5 : 2000) });
    await response.arrayBuffer();
  };

  const silentStream = (): Promise<unknown> => {
    const s = pick(eps).open();
    setTimeout(() => s.cancel(), 200 + rnd(2000));
    return s.status;
  };

  let owed = 0;
  const loop = setInterval(() => {
    owed += (rate * TICK_MS) / 1000;
    for (; owed >= 1; owed--) {
      if (inFlight >= MAX_IN_FLIGHT) {
        owed = 0; // behind: drop the backlog rather than burst when Portcullis recovers
        break;
      }
      const r = Math.random();
      if (r < 0.25) void track('ratelimit', ratelimit());
      else if (r < 0.75) void track('authz', authz());
      else if (r < 0.93) void track('extproc', extproc());
      else if (r < 0.98) void track('composer', composer());
      else void track('silent stream', silentStream());
    }
  }, TICK_MS);

  // The checks, one round a second, one after the other so that they never pile up.
  const record = (name: string, ok: boolean, detail: string): void => {
    if (ok) checks.passed++;
    else {
      checks.wrong++;
      if (checks.examples.length < 20) checks.examples.push(`${new Date().toISOString()} ${name}: ${detail}`);
    }
  };
  const check = async (name: string, run: () => Promise<void>): Promise<void> => {
    try {
      await run();
    } catch (error) {
      checks.unanswered++;
      if (checks.examples.length < 20) checks.examples.push(`${new Date().toISOString()} ${name}: no answer (${error instanceof Error ? error.message : String(error)})`);
    }
  };
  const authzCheck = (name: string, path: string, headers: Record<string, string>, expectAllowed: boolean): Promise<void> =>
    check(name, async () => {
      const r = await azs[0]!.check({ path, headers }, 5000);
      record(name, allowed(r) === expectAllowed, `expected ${expectAllowed ? 'allowed' : 'denied'}, got status ${r.status?.code} ${r.status?.message ?? ''}`);
    });

  const round = async (): Promise<void> => {
    await authzCheck('valid API key', '/api/k', { 'x-api-key': targets.validApiKey }, true);
    await authzCheck('unknown API key', '/api/k', { 'x-api-key': `pk_${rs(24)}` }, false);
    await authzCheck('valid JWT', '/api/o/1', { authorization: `Bearer ${await targets.token({ sub: 'checker', jti: `check-${rs(8)}` })}` }, true);
    await authzCheck('forged JWT', '/api/o/1', { authorization: `Bearer ${forgedJwt()}` }, false);
    await authzCheck('active opaque token', '/opaque/1', { authorization: `Bearer ok-${rs(20)}` }, true);
    await authzCheck('inactive opaque token', '/opaque/1', { authorization: `Bearer no-${rs(20)}` }, false);
    await check('over-limit descriptor', async () => {
      // 'any' allows 3 an hour: a fresh value must answer OK three times, then OVER_LIMIT.
      const epoch = targets.storeEpoch();
      if (epoch === undefined) return void checks.skipped++;
      const value = `check-${rs(10)}`;
      const codes: string[] = [];
      for (let hit = 0; hit < 5; hit++) {
        const r = await rls[0]!.shouldRateLimit({ domain: targets.domain, descriptors: [{ entries: [{ key: 'any', value }] }], hits_addend: 1 }, 5000);
        codes.push(r.overall_code ?? '?');
      }
      if (targets.storeEpoch() !== epoch) return void checks.skipped++;
      const got = codes.join(' ');
      record('over-limit descriptor', got === 'OK OK OK OVER_LIMIT OVER_LIMIT', `got ${got}`);
    });
    await check('schema validation', async () => {
      const validity = async (json: string): Promise<boolean> => {
        const s = eps[0]!.open();
        try {
          const headers = { ':method': 'POST', ':path': `/api/users/${rs(4)}`, ':authority': 'check.test', ':scheme': 'http', 'content-type': 'application/json' };
          const first = await s.exchange(requestHeaders(headers, false), 5000);
          if (first.immediate_response) throw new Error(`headers answered ${JSON.stringify(first.immediate_response.status)}`);
          const second = await s.exchange(body('request_body', json), 5000);
          return second.immediate_response === undefined;
        } finally {
          s.cancel();
        }
      };
      record('valid JSON body', await validity('{"name":"a"}'), 'refused');
      record('invalid JSON body', !(await validity('{"name":1}')), 'let through');
    });
    await check('composer', async () => {
      const response = await fetch(`${targets.httpUrl}/bff/dash/check-${rs(4)}`, { signal: AbortSignal.timeout(5000) });
      const answer = (await response.json()) as Record<string, unknown>;
      record('composer', response.status === 200 && typeof answer['user'] === 'object' && Array.isArray(answer['orders']),
        `got ${response.status} ${JSON.stringify(answer).slice(0, 200)}`);
    });
  };
  let running = true;
  const rounds = (async () => {
    while (running) {
      const started = Date.now();
      await round();
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    }
  })();

  return {
    traffic,
    checks,
    async stop() {
      running = false;
      clearInterval(loop);
      await rounds;
      for (let waited = 0; inFlight > 0 && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      for (const c of [...rls, ...azs, ...eps]) c.close();
    },
  };
}

/** A JWT-shaped token under an unknown key id with a random signature: must be denied (and not cached forever). */
function forgedJwt(): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64url');
  return `${b64(`{"alg":"RS256","kid":"${rs(4)}"}`)}.${b64(`{"sub":"${rs(4)}"}`)}.${rs(64)}`;
}
