// `npm run gen:envoy`: writes the generated gateway files (see render.ts) into the repository.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderGatewayFiles } from './render.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
for (const file of renderGatewayFiles()) {
  writeFileSync(path.join(root, file.path), file.text);
  process.stdout.write(`wrote ${file.path}\n`);
}
