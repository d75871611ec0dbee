import { Counter, type Registry } from 'prom-client';
import type { ExtprocObserver, Phase } from '../extproc/types.js';
import { HotCounter, type HotSeries } from './hot-counter.js';
import { HotHistogram, type HotObserver } from './hot-histogram.js';

export type ExtprocMetrics = ExtprocObserver & {
  observeDuration(phase: string, seconds: number): void;
  streamError(reason: string): void;
};

/** ext_proc metrics. Every label has a fixed, small set of values (phases, cache results, statuses). */
export function extprocMetrics(registers: Registry[]): ExtprocMetrics {
  const streams = new Counter({ name: 'portcullis_extproc_streams_total', help: 'Process streams opened by Envoy.', registers });
  const messages = new HotCounter({ name: 'portcullis_extproc_messages_total', help: 'ProcessingRequests handled, by phase.', labelNames: ['phase'], registers });
  const cache = new HotCounter({ name: 'portcullis_extproc_cache_total', help: 'Response cache outcomes: hit, not_modified, stale (served stale while one request refreshes), miss, bypass, stored, invalidated.', labelNames: ['result'], registers });
  const cacheErrors = new Counter({ name: 'portcullis_extproc_cache_errors_total', help: 'Cache store calls that failed or ran out of time (the request went on without the cache).', labelNames: ['operation'], registers });
  const validation = new Counter({ name: 'portcullis_extproc_validation_failures_total', help: 'Requests rejected by validation, by status.', labelNames: ['status'], registers });
  const ambiguous = new Counter({
    name: 'portcullis_extproc_ambiguous_paths_total',
    help: 'Requests whose path upstreams read in different ways (`;`, encoded slashes, double encoding, …): rejected (400, a reading is a route that validates) or passed.',
    labelNames: ['action'], registers,
  });
  const askedBodies = new Counter({
    name: 'portcullis_extproc_asked_bodies_total',
    help: 'Request bodies validating routes asked for (mode_override BUFFERED), by outcome: received, or never_came (the stream ended first: an Envoy that ignores mode_override sends none, and the request reaches the upstream unvalidated; or the client went away mid-upload).',
    labelNames: ['outcome'], registers,
  });
  // Both outcomes exported from the start: the alert's ratio needs the received side even while it stays at 0.
  const asked = { received: askedBodies.labels({ outcome: 'received' }), never_came: askedBodies.labels({ outcome: 'never_came' }) };
  asked.received.inc(0);
  asked.never_came.inc(0);
  const streamErrors = new Counter({ name: 'portcullis_extproc_stream_errors_total', help: 'Streams ended with a gRPC error, by reason.', labelNames: ['reason'], registers });
  const duration = new HotHistogram({
    name: 'portcullis_extproc_message_duration_seconds', help: 'Time to answer one ProcessingRequest, by phase.', labelNames: ['phase'], registers,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
  });
  const phases = new Map<string, { messages: HotSeries; duration: HotObserver }>();
  const series = (phase: Phase | string) => {
    let s = phases.get(phase);
    if (s === undefined) phases.set(phase, (s = { messages: messages.bind({ phase }), duration: duration.bind({ phase }) }));
    return s;
  };
  const cacheResults = new Map<string, HotSeries>();
  return {
    stream: () => streams.inc(),
    message: (phase) => series(phase).messages.inc(),
    cache: (result) => {
      let s = cacheResults.get(result);
      if (s === undefined) cacheResults.set(result, (s = cache.bind({ result })));
      s.inc();
    },
    cacheError: (operation) => cacheErrors.inc({ operation }),
    validationFailed: (status) => validation.inc({ status: String(status) }),
    ambiguousPath: (action) => ambiguous.inc({ action }),
    askedBody: (outcome) => asked[outcome].inc(),
    streamError: (reason) => streamErrors.inc({ reason }),
    observeDuration: (phase, seconds) => series(phase).duration.observe(seconds),
  };
}
