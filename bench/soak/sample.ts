// Soak sampling and verdict. The probe (probe.ts) in each Portcullis process appends a line every SOAK_SAMPLE_MS;
// the soak adds the admin /metrics series count on the same beat. Each phase is summarised by the median of its
// samples per process (one GC pause or one burst of connections cannot make a phase), and the phases after the
// warm-up are compared:
//
//   FAIL  the value rose from every phase to the next, and by more than the tolerance from the first to the last:
//         something keeps growing at a steady rate (a leak, an unbounded map, sockets never closed)
//   warn  it rose by more than the tolerance, but not phase after phase (a step, a plateau reached late)
//   ok    otherwise
//
// Tolerances, from the first post-warm-up phase to the last: heap after a full GC max(4 MiB, 10 %); RSS max(16 MiB,
// 10 %); open fds 8; metric series max(50, 5 %). The event-loop delay p99 is reported, never judged: on a shared host
// it measures the neighbours as much as Portcullis.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface ProbeSample {
  readonly at: number;
  readonly pid: number;
  readonly role: string;
  readonly gc: boolean;
  readonly heapUsed: number;
  readonly rss: number;
  readonly external: number;
  readonly fds: number;
  readonly eldP99Ms: number;
}

export interface Phase {
  readonly name: string;
  readonly start: number;
  readonly end: number;
  readonly warmup: boolean;
}

/** One watched quantity of one process, one number per phase (NaN: no sample in that phase). */
export interface Series {
  readonly process: string;
  readonly metric: Metric;
  readonly values: readonly number[];
}

export type Metric = 'heap MiB' | 'RSS MiB' | 'fds' | 'metric series' | 'loop p99 ms';

export interface Judgement {
  readonly process: string;
  readonly metric: Metric;
  /** Per post-warm-up phase. */
  readonly values: readonly number[];
  readonly rise: number;
  readonly tolerance: number;
  readonly everyPhase: boolean;
  readonly result: 'ok' | 'warn' | 'FAIL' | 'info';
}

const MiB = 1024 * 1024;

/** The tolerated rise from the first judged phase to the last, given the first; undefined: not judged. */
export function tolerance(metric: Metric, first: number): number | undefined {
  switch (metric) {
    case 'heap MiB': return Math.max(4, 0.1 * first);
    case 'RSS MiB': return Math.max(16, 0.1 * first);
    case 'fds': return 8;
    case 'metric series': return Math.max(50, 0.05 * first);
    case 'loop p99 ms': return undefined;
  }
}

/** The verdict on one series' post-warm-up values (see the top of this file). */
export function judge(metric: Metric, values: readonly number[]): Pick<Judgement, 'rise' | 'tolerance' | 'everyPhase' | 'result'> {
  const known = values.filter((v) => Number.isFinite(v));
  const first = known[0] ?? NaN;
  const rise = (known[known.length - 1] ?? NaN) - first;
  const everyPhase = known.length >= 2 && known.every((v, i) => i === 0 || v > (known[i - 1] ?? Infinity));
  const limit = tolerance(metric, first);
  if (limit === undefined) return { rise, tolerance: NaN, everyPhase, result: 'info' };
  if (known.length < 2 || !(rise > limit)) return { rise, tolerance: limit, everyPhase, result: 'ok' };
  return { rise, tolerance: limit, everyPhase, result: everyPhase ? 'FAIL' : 'warn' };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Every probe line written so far in `dir` (a line cut by a write in progress is skipped). */
export function readProbeSamples(dir: string): ProbeSample[] {
  const samples: ProbeSample[] = [];
  for (const file of readdirSync(dir).filter((f) => /^probe-\d+\.jsonl$/.test(f))) {
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      try {
        if (line !== '') samples.push(JSON.parse(line) as ProbeSample);
      } catch {
        // the probe was writing it
      }
    }
  }
  return samples;
}

/** Counts the series (sample lines) in a Prometheus text exposition. */
export function seriesCount(exposition: string): number {
  return exposition.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
}

/** The per-phase medians of every process and quantity. A process is named by its role and pid. */
export function phaseSeries(samples: readonly ProbeSample[], series: readonly { at: number; count: number }[], phases: readonly Phase[]): Series[] {
  const inPhase = <T extends { at: number }>(xs: readonly T[], p: Phase): T[] => xs.filter((x) => x.at >= p.start && x.at < p.end);
  const out: Series[] = [];
  const byProcess = new Map<string, ProbeSample[]>();
  for (const s of samples) {
    const name = `${s.role} (pid ${s.pid})`;
    byProcess.set(name, [...(byProcess.get(name) ?? []), s]);
  }
  const metrics: [Metric, (s: ProbeSample) => number][] = [
    ['heap MiB', (s) => s.heapUsed / MiB], ['RSS MiB', (s) => s.rss / MiB], ['fds', (s) => (s.fds < 0 ? NaN : s.fds)], ['loop p99 ms', (s) => s.eldP99Ms],
  ];
  for (const [name, own] of [...byProcess].sort(([a], [b]) => a.localeCompare(b))) {
    for (const [metric, read] of metrics) out.push({ process: name, metric, values: phases.map((p) => median(inPhase(own, p).map(read))) });
  }
  out.push({ process: 'admin /metrics', metric: 'metric series', values: phases.map((p) => median(inPhase(series, p).map((s) => s.count))) });
  return out;
}

export function judgeAll(series: readonly Series[], phases: readonly Phase[]): Judgement[] {
  const judged = phases.map((p, i) => (p.warmup ? -1 : i)).filter((i) => i >= 0);
  return series.map((s) => {
    const values = judged.map((i) => s.values[i] ?? NaN);
    return { process: s.process, metric: s.metric, values, ...judge(s.metric, values) };
  });
}

const fmt = (n: number): string => (Number.isFinite(n) ? (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(1)) : '–');

/** The Markdown tables: every phase per process and quantity, then the verdict per series. */
export function renderTables(series: readonly Series[], judgements: readonly Judgement[], phases: readonly Phase[]): string[] {
  const lines = [
    `Per phase (median of the samples in it; heap is after a forced full GC):`,
    '',
    `| process | quantity | ${phases.map((p) => p.name).join(' | ')} |`,
    `|---|---|${phases.map(() => '---:').join('|')}|`,
    ...series.map((s) => `| ${s.process} | ${s.metric} | ${s.values.map(fmt).join(' | ')} |`),
    '',
    'Verdict (phases after the warm-up; FAIL = rose every phase and by more than the tolerance):',
    '',
    '| process | quantity | first → last | rise | tolerance | rose every phase | result |',
    '|---|---|---:|---:|---:|---|---|',
    ...judgements.map((j) => `| ${j.process} | ${j.metric} | ${fmt(j.values[0] ?? NaN)} → ${fmt(j.values[j.values.length - 1] ?? NaN)} | ${fmt(j.rise)} | ${fmt(j.tolerance)} | ${j.everyPhase ? 'yes' : 'no'} | ${j.result === 'FAIL' ? '**FAIL**' : j.result} |`),
    '',
  ];
  return lines;
}
