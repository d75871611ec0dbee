// Node releases measured to serve Portcullis worse than Node 22, the recommended one (docs/tuning.md, "Node version";
// `npm run bench:node-versions` measures a release). A process on one of them says so once, at start-up.
//
// 24.15.0 to 24.22.3 and 26.12.1 were measured: from 24.15.0 on, Node's HTTP/2 keeps every finished call until a
// mark-compact, and the fixed-rate p99 of ShouldRateLimit was 3–5 times Node 22's (17–24 ms against 4.9–5.2 in two
// runs). 25 lies between two measured releases with the problem. Later majors are not named: not measured. The step
// comes with nodejs/node#62087 (a closure per stream in Node's Writable); no flag was found that brings Portcullis back.

/** Why `version` (process.version) is a release to move off, or undefined. */
export function nodeVersionProblem(version: string): string | undefined {
  const match = /^v?(\d+)\.(\d+)\.\d+/.exec(version);
  if (match === null) return undefined;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  if ((major === 24 && minor >= 15) || major === 25 || major === 26) {
    return `on Node ${version}, Node's HTTP/2 keeps every finished call until a full GC (from 24.15.0 on): the fixed-rate p99 measured 3-5 times Node 22's; run Portcullis on Node 22 (docs/tuning.md, "Node version")`;
  }
  return undefined;
}
