// Loaded into every Portcullis process of a soak (`node --expose-gc --import probe.js`; node:cluster workers inherit
// both flags and the environment). Every SOAK_SAMPLE_MS it forces a full GC, so that heapUsed is what survives rather
// than where the collector happens to be, and appends one JSON line to SOAK_PROBE_DIR/probe-<pid>.jsonl. The soak
// reads the files; the probe never talks to it, so a stuck soak cannot stall Portcullis.
//
// The event-loop delay p99 is read before the forced GC and the histogram reset after it: the pause the probe itself
// causes lands in the next window as one sample of ~1000 and cannot move that window's p99.

import { appendFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

const dir = process.env['SOAK_PROBE_DIR'];
if (dir !== undefined && dir !== '' && isMainThread) {
  const file = path.join(dir, `probe-${process.pid}.jsonl`);
  const worker = process.env['PORTCULLIS_WORKER'];
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const gc = (globalThis as { gc?: () => void }).gc;
  setInterval(() => {
    const eldP99Ms = delay.percentile(99) / 1e6;
    gc?.();
    delay.reset();
    const m = process.memoryUsage();
    let fds = -1;
    try {
      fds = readdirSync('/proc/self/fd').length;
    } catch {
      // not Linux: the soak reports the fd column as unknown
    }
    appendFileSync(file, `${JSON.stringify({
      at: Date.now(), pid: process.pid, role: worker === undefined ? 'main' : `worker ${worker}`, gc: gc !== undefined,
      heapUsed: m.heapUsed, rss: m.rss, external: m.external, fds, eldP99Ms,
    })}\n`);
  }, Number(process.env['SOAK_SAMPLE_MS'] ?? 5000)).unref();
}
