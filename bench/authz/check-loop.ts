// One whole Check in process, without the transport: the request bytes decoded with the service's deserializer, the
// handler, the answer encoded (a denial fails the loop): what Portcullis itself adds to each call. Prints CPU µs per
// Check and young/old GC counts per 10,000 Checks, the median of 5 rounds of 20,000 Checks held `concurrency` at a time.
//
// Usage: node dist/bench/authz/check-loop.js DIR CONFIG DATA [CONCURRENCY]
//   (DIR written by prepare.js; CONFIG cached|uncached; DATA apikey|jwt-RS256|jwt-ES256|jwt-EdDSA|introspection)

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { AuthzService, readAuthzFiles } from '../../src/authz/service.js';
import type { AuthzObserver } from '../../src/authz/ports.js';
import { parsePortcullisConfig } from '../../src/config/portcullis-config.js';
import { createLogger } from '../../src/observability/logger.js';
import { authzHandlers } from '../../src/server/authz-handler.js';
import { DeadlineSignals } from '../../src/server/deadline-signals.js';
import { authorizationServiceDefinition } from '../../src/server/protos.js';
import { systemClock } from '../../src/shared/clock.js';
import { MemoryRevocationList } from '../../src/store/revocation-list.js';
import { readCheckRequests } from './messages.js';

const [dir = '/tmp/bench-authz', configName = 'cached', data = 'apikey', concurrencyArg = '50'] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const configFile = path.join(dir, `${configName}.yaml`);
const settings = parsePortcullisConfig(readFileSync(configFile, 'utf8'), configFile).authz;
const observer: AuthzObserver = { jwksRefresh: () => undefined, cacheLookup: () => undefined, introspectionError: () => undefined, introspectionAnswered: () => undefined, introspectionShed: () => undefined, revocationUnavailable: () => undefined };
const service = new AuthzService({ clock: systemClock, http: { postForm: () => Promise.reject(new Error('no HTTP in this loop')) } as never, observer, revocation: new MemoryRevocationList(systemClock) });
const snapshot = service.prepare(settings, await readAuthzFiles(settings));
const check = authorizationServiceDefinition()['Check']!;
const handler = authzHandlers({
  service, snapshot: () => snapshot, logger: createLogger('warn'), deadlines: new DeadlineSignals(10), timeoutMs: () => 1000,
  observe: () => undefined, onError: () => undefined, inFlight: { enter: () => undefined, leave: () => undefined },
})['Check'] as (call: ServerUnaryCall<unknown, unknown>, callback: (error: unknown, response?: unknown) => void) => void;

// The ghz data file's requests, as Envoy would send them on the wire.
const messages = readCheckRequests(path.join(dir, `${data}.json`)).map((m) => check.requestSerialize(m));
const deadline = new Date(Date.now() + 3_600_000);

let gcYoung = 0;
let gcOld = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) gcYoung++;
    else gcOld++;
  }
}).observe({ entryTypes: ['gc'] });

// The first Check of each batch has its answer decoded and must be an allow.
const one = (raw: Buffer, inspect: boolean): Promise<void> => new Promise((resolve, reject) => {
  const call = { request: check.requestDeserialize(raw), getDeadline: () => deadline } as unknown as ServerUnaryCall<unknown, unknown>;
  handler(call, (error, response) => {
    if (error) return reject(error as Error);
    const bytes = Buffer.isBuffer(response) ? response : check.responseSerialize(response);
    if (inspect && (check.responseDeserialize(bytes) as { status?: { code?: number } }).status?.code !== 0) return reject(new Error('a Check was denied'));
    resolve();
  });
});

const CHECKS = 20_000;
const rounds: { cpu: number; young: number; old: number }[] = [];
for (let round = 0; round < 6; round++) {
  const cpu0 = process.cpuUsage();
  const [young0, old0] = [gcYoung, gcOld];
  for (let i = 0; i < CHECKS; i += concurrency) {
    await Promise.all(Array.from({ length: concurrency }, (_, j) => one(messages[(i + j) % messages.length]!, j === 0)));
  }
  await new Promise((resolve) => setImmediate(resolve));
  const cpu = process.cpuUsage(cpu0);
  // Round 0 warms up.
  if (round > 0) rounds.push({ cpu: (cpu.user + cpu.system) / CHECKS, young: ((gcYoung - young0) * 10_000) / CHECKS, old: ((gcOld - old0) * 10_000) / CHECKS });
}
const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
process.stdout.write(`${configName} ${data}, ${concurrency} in flight: ${median(rounds.map((r) => r.cpu)).toFixed(1)} µs CPU per Check, ` +
  `GC per 10,000 Checks: ${median(rounds.map((r) => r.young)).toFixed(1)} young, ${median(rounds.map((r) => r.old)).toFixed(1)} old\n`);
