// Worker entry for runOffThread(): imports the module, runs the export on the input, posts the reply, exits.
import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from './errors.js';
import type { OffThreadReply } from './off-thread.js';

const { moduleUrl, exportName, input } = workerData as { moduleUrl: string; exportName: string; input: unknown };
let reply: OffThreadReply;
try {
  const module = (await import(moduleUrl)) as Record<string, (input: unknown) => unknown>;
  reply = { ok: true, value: await module[exportName]!(input) };
} catch (error) {
  reply = error instanceof ConfigError
    ? { ok: false, issues: error.issues }
    : { ok: false, message: error instanceof Error ? error.stack ?? error.message : String(error) };
}
parentPort!.postMessage(reply);
