import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client';

/** One bound series of a HotCounter. */
export interface HotSeries {
  inc(by?: number): void;
}

/**
 * A prom-client Counter for calls on the hot path. prom-client's `labels(...)` only binds the label values: every
 * `inc` of the child still hashes them into a key string, validates them and returns an object, which showed as a
 * visible share of a Check's CPU and allocation (docs/benchmarks.md). A series bound here adds to a plain number, and
 * the sums reach prom-client when it collects the counter (a scrape, or the cluster aggregation reading a worker):
 * one label hash per series per scrape instead of one per call. A scrape shows what it showed before.
 *
 * Bind a bounded set of series (the callers cap label values with a LabelBudget) and keep what bind returns.
 */
export class HotCounter<T extends string> {
  readonly counter: Counter<T>;
  private readonly series: { readonly labels: LabelValues<T>; pending: number }[] = [];

  constructor(config: Omit<CounterConfiguration<T>, 'collect'>) {
    const series = this.series;
    this.counter = new Counter<T>({
      ...config,
      collect(this: Counter<T>) {
        for (const s of series) {
          if (s.pending === 0) continue;
          this.inc(s.labels, s.pending);
          s.pending = 0;
        }
      },
    });
  }

  bind(labels: LabelValues<T> = {}): HotSeries {
    const s = { labels, pending: 0 };
    this.series.push(s);
    return {
      inc(by = 1) {
        s.pending += by;
      },
    };
  }
}
