import { readdirSync, readFileSync } from 'node:fs';
import { PORTCULLIS_NODE_FLAGS } from '../../src/server/node-flags.js';
import { v8FlagsFor } from '../../src/server/node-version.js';

/** Linux clock ticks are 10 ms (CLK_TCK 100) on every machine these benchmarks run on. */
export const TICK_US = 10_000;

/** utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15; fields counted after the comm). */
export function processTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** processTicks of a process and of every live descendant (a supervisor and its workers). */
export function processTreeTicks(pid: number | undefined): number {
  let ticks = 0;
  for (const next of processTree(pid)) {
    try {
      ticks += processTicks(next);
    } catch {
      // Gone since the listing: a worker that exited contributes nothing more.
    }
  }
  return ticks;
}

/** A process and every live descendant, parents before children; [] when it is gone. */
export function processTree(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const found: number[] = [];
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.shift()!;
    try {
      const children: number[] = [];
      for (const task of readdirSync(`/proc/${next}/task`)) {
        children.push(...readFileSync(`/proc/${next}/task/${task}/children`, 'utf8').split(' ').filter((c) => c !== '').map(Number));
      }
      found.push(next);
      pending.push(...children);
    } catch {
      // Gone between the listing and the read.
    }
  }
  return found;
}

/**
 * The Node flags for every Node server a benchmark starts, Portcullis and the no-op baselines alike (so a baseline
 * stays the ceiling of the same runtime): the ones Portcullis ships with, or BENCH_SHIPPED_NODE_FLAGS (empty: none),
 * then the V8 flags Portcullis sets on itself on this Node release (src/server/node-version.ts). Without those a
 * grpc-js no-op on Node 24.15+ or 26 keeps its calls until a mark-compact, and Portcullis looks better than the
 * transport's ceiling (docs/benchmarks.md, "Node 26 against 22"). Portcullis gets them twice, which changes nothing.
 */
export function benchNodeFlags(): readonly string[] {
  const given = process.env['BENCH_SHIPPED_NODE_FLAGS'];
  const shipped = given === undefined ? PORTCULLIS_NODE_FLAGS : given.split(/\s+/).filter((flag) => flag !== '');
  return [...shipped, ...v8FlagsFor(process.version)];
}
