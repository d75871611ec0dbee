#!/usr/bin/env -S node --single-threaded-gc
// (The flag: src/server/node-flags.ts. `node bin/portcullis.js` skips this line: pass it there yourself.)
// Runs the compiled CLI (npm run build first).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
