// Runs the gateway's sample services on their fixed ports (src/gateway/topology.ts).
//
//   node dist/examples/services/main.js [--host 127.0.0.1] [--service users ...] [--port-offset N]
//
// Without --service: every instance (the local demo). With --service NAME (repeatable): only the instances of that
// compose service (one container each in docker-compose.yml). --port-offset moves every port by N (the benchmark runs
// beside a demo that way).

import { parseArgs } from 'node:util';
import { allInstances } from '../../src/gateway/topology.js';
import { startSampleService, type SampleService } from './sample-service.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    service: { type: 'string', multiple: true },
    'port-offset': { type: 'string', default: '0' },
  },
  strict: true,
});
const wanted = values.service;
const chosen = allInstances().filter(({ service }) => wanted === undefined || wanted.includes(service.service));
if (chosen.length === 0) {
  process.stderr.write(`no sample service named ${String(wanted)}\n`);
  process.exit(2);
}
const started: SampleService[] = [];
for (const { service, instance } of chosen) {
  const sample = await startSampleService({ service: service.service, version: instance.version, instance: instance.name }, values.host, instance.port + Number(values['port-offset']));
  started.push(sample);
  process.stdout.write(`${instance.name} (${service.cluster}) listening on ${sample.url}\n`);
}
const shutdown = (): void => void Promise.all(started.map((s) => s.stop())).then(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
