import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DescriptorFile } from '../ratelimit/descriptor-config.js';
import { ConfigError } from './errors.js';

/**
 * Reads every file under the descriptors directory, recursively and through symlinks, as
 * envoyproxy/ratelimit does (any extension). Entries whose name starts with a dot are skipped:
 * that keeps editor swap files out and makes Kubernetes ConfigMap mounts work, whose real files
 * live in `..data`/`..2024_…` directories behind symlinks.
 */
export async function readDescriptorFiles(root: string): Promise<DescriptorFile[]> {
  const files: DescriptorFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
    for (const name of names) {
      const full = path.join(dir, name);
      const info = await stat(full).catch(() => undefined); // a dangling symlink mid-swap is not a file
      if (info?.isDirectory()) await walk(full);
      else if (info?.isFile()) files.push({ name: path.relative(root, full), text: await readFile(full, 'utf8') });
    }
  };
  try {
    await walk(root);
  } catch (error) {
    throw new ConfigError([{ file: root, line: undefined, path: '', message: `cannot read descriptors directory: ${(error as Error).message}` }]);
  }
  return files;
}
