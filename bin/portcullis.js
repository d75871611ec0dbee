#!/usr/bin/env -S node --single-threaded-gc --no-maglev
// (The flags: src/server/node-flags.ts. `node bin/portcullis.js` skips this line: pass them there yourself.)
// Runs the compiled CLI (npm run build first).
import v8 from 'node:v8';
import { v8FlagsFor } from '../dist/src/server/node-version.js';

// Set before the CLI and its dependencies load: set once they had loaded, the flags left a seventh of each call
// kept on Node 24.15 (src/server/node-version.ts says what they are for).
const v8Flags = v8FlagsFor(process.version);
for (const flag of v8Flags) v8.setFlagsFromString(flag);
const { main } = await import('../dist/src/cli/main.js');

main(process.argv.slice(2), { v8Flags }).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
