import type { Aggregator, LabelValues, Metric, MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client';

/** One bound series of a HotHistogram. */
export interface HotObserver {
  observe(value: number): void;
}

export interface HotHistogramConfiguration<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly T[];
  /** Upper bounds, ascending; +Inf is implied. */
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

interface Series<T extends string> {
  readonly labels: LabelValues<T>;
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/**
 * A histogram for calls on the hot path (one observation per request), exported exactly as a prom-client Histogram
 * with the same name, help, buckets and observations would be (the unit test compares the two). prom-client's
 * `observe` validates and hashes the label set into a key string on every call, bound child or not, which CPU
 * profiles showed as a share of every request (docs/benchmarks.md: ext_authz and ext_proc sections). Here a bound
 * series adds to plain numbers; prom-client only formats what get() returns, on a scrape or when the cluster
 * aggregation reads a worker.
 *
 * Bind a bounded set of series (at most a few per label value the callers admit) and keep what bind returns.
 */
export class HotHistogram<T extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator: Aggregator = 'sum';
  private readonly bounds: readonly number[];
  private readonly series: Series<T>[] = [];
  private readonly labelled: boolean;

  constructor(config: HotHistogramConfiguration<T>) {
    this.name = config.name;
    this.help = config.help;
    this.bounds = [...config.buckets];
    this.labelled = (config.labelNames ?? []).length > 0;
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric);
  }

  bind(labels: LabelValues<T> = {}): HotObserver {
    const s: Series<T> = { labels, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
    this.series.push(s);
    const bounds = this.bounds;
    return {
      observe(value: number): void {
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i++;
        s.counts[i]!++;
        s.sum += value;
        s.count++;
      },
    };
  }

  /** prom-client's Metric interface: what a scrape formats. */
  async get(): Promise<MetricObjectWithValues<MetricValueWithName<T | 'le'>>> {
    const values: (MetricValueWithName<T | 'le'> & { exemplar: null | undefined })[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series) {
      // As in prom-client: a labelled series appears once observed, the one series of an unlabelled histogram always.
      if (s.count === 0 && this.labelled) continue;
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le, ...s.labels } as LabelValues<T | 'le'>, value: cumulative, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf', ...s.labels } as LabelValues<T | 'le'>, value: s.count, metricName: bucket, exemplar: null });
      values.push({ labels: { ...s.labels } as LabelValues<T | 'le'>, value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: { ...s.labels } as LabelValues<T | 'le'>, value: s.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    // Field for field what prom-client's Histogram returns (its typings call `type` an enum; at run time it is this string).
    const metric = { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
    return metric as unknown as MetricObjectWithValues<MetricValueWithName<T | 'le'>>;
  }

  reset(): void {
    for (const s of this.series) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
