import { median } from '../soak/sample.js';

/**
 * V8's `--trace-gc-nvp` output: one line per collection. Up to Node 24 it is `key=value` pairs
 * (`… ms: pause=0.8 mutator=33.5 gc=s … promoted=8752 …`); Node 26's V8 writes `… ms: GC: {"pause":1.678,"gc":"s",…}`.
 * A benchmark needs three facts from each line: the kind (`s` scavenge, `mc` mark-compact, `mmc` young-generation
 * mark-sweep, …), the pause, and what a scavenge promoted to the old generation: the bytes that only a mark-compact
 * frees again, which is what the fixed-rate tails are made of (docs/tuning.md, "Garbage collection and the p99").
 */
export interface GcEvent {
  readonly kind: string;
  readonly pauseMs: number;
  readonly promotedBytes: number;
}

/** The collection a trace line reports, or undefined for any other line (the process' own output). */
export function parseGcTraceLine(line: string): GcEvent | undefined {
  const json = line.indexOf('GC: {');
  if (json >= 0) {
    let fields: Record<string, unknown>;
    try {
      fields = JSON.parse(line.slice(json + 4)) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    return event(fields['gc'], fields['pause'], fields['promoted']);
  }
  if (!/ gc=\S/.test(line)) return undefined;
  const fields = new Map<string, string>();
  for (const pair of line.split(/\s+/)) {
    const at = pair.indexOf('=');
    if (at > 0) fields.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return event(fields.get('gc'), Number(fields.get('pause')), Number(fields.get('promoted') ?? 0));
}

function event(kind: unknown, pauseMs: unknown, promotedBytes: unknown): GcEvent | undefined {
  if (typeof kind !== 'string' || typeof pauseMs !== 'number' || !Number.isFinite(pauseMs)) return undefined;
  return { kind, pauseMs, promotedBytes: typeof promotedBytes === 'number' && Number.isFinite(promotedBytes) ? promotedBytes : 0 };
}

export interface GcSummary {
  readonly scavenges: number;
  readonly scavengeMedianPauseMs: number;
  /** Bytes scavenges promoted, per call served in the window. */
  readonly promotedBytesPerCall: number;
  readonly markCompacts: number;
  /** The longest pause of any kind. */
  readonly maxPauseMs: number;
}

/** What the collections of a measured window cost, `calls` being the calls served in it. */
export function summarizeGc(events: readonly GcEvent[], calls: number): GcSummary {
  const scavenges = events.filter((e) => e.kind === 's');
  return {
    scavenges: scavenges.length,
    scavengeMedianPauseMs: scavenges.length === 0 ? 0 : median(scavenges.map((e) => e.pauseMs)),
    promotedBytesPerCall: calls > 0 ? scavenges.reduce((sum, e) => sum + e.promotedBytes, 0) / calls : 0,
    markCompacts: events.filter((e) => e.kind === 'mc').length,
    maxPauseMs: events.reduce((max, e) => Math.max(max, e.pauseMs), 0),
  };
}
