// The JWT evaluator alone, with its cache off: what one uncached token costs, in process, without the transport.
// Prints CPU µs per token (every thread of the process, so a thread-pool crypto path shows), wall µs, and µs of
// event-loop time per token, the median of 5 rounds of 10,000 tokens held `concurrency` at a time.
//
// Usage: node dist/bench/authz/verify-loop.js DIR ALG [CONCURRENCY]   (DIR written by prepare.js; ALG RS256|ES256|EdDSA)

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { staticKeySource } from '../../src/authz/jwks.js';
import { evaluateJwt } from '../../src/authz/jwt.js';
import { ExpiringLru } from '../../src/authz/lru.js';
import type { AuthzObserver } from '../../src/authz/ports.js';
import type { CheckInput } from '../../src/authz/types.js';
import { parsePortcullisConfig } from '../../src/config/portcullis-config.js';
import { systemClock } from '../../src/shared/clock.js';

const [dir = '/tmp/bench-authz', alg = 'RS256', concurrencyArg = '50'] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const configFile = path.join(dir, 'uncached.yaml');
const provider = parsePortcullisConfig(readFileSync(configFile, 'utf8'), configFile).authz?.jwt?.providers[0];
if (provider === undefined) throw new Error(`${configFile}: no JWT provider`);
const messages = JSON.parse(readFileSync(path.join(dir, `jwt-${alg}.json`), 'utf8')) as { attributes: { request: { http: { headers: Record<string, string> } } } }[];
const inputs = messages.map((m) => ({ headers: new Map([['authorization', m.attributes.request.http.headers['authorization']!]]) }) as unknown as CheckInput);
const observer: AuthzObserver = { jwksRefresh: () => undefined, cacheLookup: () => undefined, introspectionError: () => undefined, introspectionAnswered: () => undefined, introspectionShed: () => undefined, revocationUnavailable: () => undefined };
const deps = {
  providers: [{ settings: provider, keys: staticKeySource(JSON.parse(readFileSync(path.join(dir, 'jwks.json'), 'utf8'))) }],
  cache: new ExpiringLru<never>(0),
  generation: 'bench',
  maxTokenBytes: 8192,
  clock: systemClock,
  observer,
  isRevoked: () => false,
};
const signal = new AbortController().signal;
const cpuUs = (): number => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

const TOKENS = 10_000;
const rounds: { cpu: number; wall: number; loop: number }[] = [];
// Event-loop utilization is read from the loop's own timestamps: a round of synchronous verifies (RS256) runs within
// one turn, and Node 22 counts a turn only once it has ended. Each reading is taken on a fresh turn.
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
for (let round = 0; round < 6; round++) {
  await nextTurn();
  const cpu0 = cpuUs();
  const wall0 = performance.now();
  const loop0 = performance.eventLoopUtilization();
  for (let i = 0; i < TOKENS; i += concurrency) {
    const outcomes = await Promise.all(Array.from({ length: concurrency }, (_, j) => evaluateJwt(inputs[(i + j) % inputs.length]!, undefined, deps, signal)));
    if (outcomes[0]!.kind !== 'success') throw new Error(`token refused: ${JSON.stringify(outcomes[0])}`);
  }
  await nextTurn();
  // Round 0 warms up.
  if (round > 0) rounds.push({ cpu: (cpuUs() - cpu0) / TOKENS, wall: ((performance.now() - wall0) * 1000) / TOKENS, loop: (performance.eventLoopUtilization(loop0).active * 1000) / TOKENS });
}
const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
process.stdout.write(`${alg}, ${concurrency} in flight: ${median(rounds.map((r) => r.cpu)).toFixed(1)} µs CPU, ${median(rounds.map((r) => r.wall)).toFixed(1)} µs wall, ${median(rounds.map((r) => r.loop)).toFixed(1)} µs of event loop per token\n`);
