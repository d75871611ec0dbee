#!/usr/bin/env -S node --initial-old-space-size=128
// Runs the compiled CLI (npm run build first). Run it as a program (`bin/portcullis.js serve …`, as the Dockerfile,
// the demo and the benchmarks do) so the flag above applies: V8's first old-generation limit otherwise sits close
// to what Portcullis holds after startup, and under load it then marks almost continuously; while it marks, every
// scavenge promotes what it copies (≈ 3 MB instead of ≈ 0.4), and a Check costs up to a quarter more CPU
// (docs/benchmarks.md, ext_authz, "GC"). The flag only raises the first limit; it is not allowed in NODE_OPTIONS.
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
