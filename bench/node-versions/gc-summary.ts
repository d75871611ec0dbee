// Usage: node dist/bench/node-versions/gc-summary.js LOG FIRST_LINE CALLS
// Prints, as one JSON line, what the collections traced in LOG (--trace-gc-nvp) from line FIRST_LINE (0-based) on
// cost: the measured window of bench/node-versions/run.sh, CALLS being the calls served in it.
import { readFileSync } from 'node:fs';
import { parseGcTraceLine, summarizeGc, type GcEvent } from '../support/gc-trace.js';

const [log, firstLine, calls] = process.argv.slice(2);
if (log === undefined || firstLine === undefined || calls === undefined) {
  console.error('usage: gc-summary.js LOG FIRST_LINE CALLS');
  process.exit(2);
}
const events = readFileSync(log, 'utf8')
  .split('\n')
  .slice(Number(firstLine))
  .map(parseGcTraceLine)
  .filter((e): e is GcEvent => e !== undefined);
console.log(JSON.stringify(summarizeGc(events, Number(calls))));
