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
//
// --no-maglev: V8's mid-tier compiler off; hot code still reaches TurboFan. On Node 26 (docs/benchmarks.md, "Node
// versions", 2026-12-07 18:30) Portcullis with Maglev promoted 85-103 B a call and ran a 38-78 ms mark-compact in
// most 10 s windows at 5,000 calls/s; without it 15-16 B, no mark-compact, p99 6-7 ms against 11-13. On 24.22.3,
// 25-27 B against 37-55 and half the scavenge pause. On Node 22 level in everything measured (promotion, p99,
// saturation, CPU per gateway request). It too has to be on the command line: set by v8.setFlagsFromString at
// start-up, Node 26 still promoted 50 B a call and its p99 got worse.
export const PORTCULLIS_NODE_FLAGS: readonly string[] = Object.freeze(['--single-threaded-gc', '--no-maglev']);
