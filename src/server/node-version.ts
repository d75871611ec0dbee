// From Node 24.15.0 on (and on 26) a Portcullis process kept every finished HTTP/2 call until a mark-compact, and the
// fixed-rate p99 of ShouldRateLimit measured 3-5 times Node 22's. Two steps, each undone by one V8 flag
// (docs/benchmarks.md, "Node versions", 2026-12-07 16:25): Node's Writable gives each stream a closure
// (nodejs/node#62087), which with feedback vectors allocated lazily keeps the stream past scavenges (1.3 KB a call);
// that survival makes V8 pretenure allocation sites of the call path, whose old-generation objects then keep the
// whole call (4.4 KB). With both flags Portcullis promoted 51-93 B a call on 24.15-26 (35 on Node 22), and on 24.22.3
// its fixed-rate p99 went from 16.8 to 5.6 ms. What was left on 24 and 26, `--no-maglev` on the command line takes
// away (node-flags.ts): 14-24 B a call as shipped.
//
// bin/portcullis.js sets them (v8.setFlagsFromString) before the CLI and its dependencies load, and only on the
// releases that need them: on Node 22 they were level at one descriptor and cost 13-15 % of saturation throughput at
// three. Set that way they measured as on the command line (64-72 B a call against 64-66); set once the modules had
// loaded, one round in three kept 637-1,031 B. 25 lies between two measured releases with the problem; later majors
// are not named: not measured (`npm run bench:node-versions` measures one).

/** The V8 flags that bring Node 24.15+ back to Node 22's figures. */
export const NODE_24_V8_FLAGS: readonly string[] = Object.freeze(['--no-lazy-feedback-allocation', '--no-allocation-site-pretenuring']);

/** The V8 flags Portcullis sets on itself on `version` (process.version). */
export function v8FlagsFor(version: string): readonly string[] {
  const match = /^v?(\d+)\.(\d+)\.\d+/.exec(version);
  if (match === null) return [];
  const major = Number(match[1]);
  const minor = Number(match[2]);
  return (major === 24 && minor >= 15) || major === 25 || major === 26 ? NODE_24_V8_FLAGS : [];
}
