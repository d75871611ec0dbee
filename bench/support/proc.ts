import { readFileSync } from 'node:fs';

/** Linux clock ticks are 10 ms (CLK_TCK 100) on every machine these benchmarks run on. */
export const TICK_US = 10_000;

/** utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15; fields counted after the comm). */
export function processTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
