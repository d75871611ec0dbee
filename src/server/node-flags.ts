// The Node flags every Portcullis this repository starts runs with: the Dockerfile's ENTRYPOINT, bin/portcullis.js'
// shebang (`npx portcullis`), scripts/demo.sh, the benchmarks and the tests' real processes
// (test/unit/server/node-flags.test.ts keeps the files that cannot import this in step).
//
// --single-threaded-gc: V8 marks and sweeps on the main thread, in steps between callbacks, instead of on helper
// threads. A Portcullis process is given one core (the benchmarks pin it; a sidecar's CPU limit; one worker per
// core), and there the helpers only take turns with the main thread on that core, with a thread switch each time.
// Measured on 2 vCPUs (docs/benchmarks.md, "Single-threaded GC"): about half the mark-compacts under a steady load,
// a lower fixed-rate p99.9 of ShouldRateLimit in every same-window comparison (18–24 ms against 35–44), 7 % less
// CPU per gateway request, saturation throughput level. On a host with idle cores the helpers would run beside the
// main thread instead; that was not measured (docs/tuning.md).
//
// V8 refuses this flag in NODE_OPTIONS, and setting it once running (v8.setFlagsFromString) crashes the next
// mark-compact: it has to be on node's command line.
export const PORTCULLIS_NODE_FLAGS: readonly string[] = Object.freeze(['--single-threaded-gc']);
