// Shared helpers for the rate limit unit tests: descriptor fixtures, compiled configs, request descriptors.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileDescriptorFiles, type DescriptorFile } from '../../../src/ratelimit/descriptor-config.js';
import type { DomainConfig, RateLimitConfig, RequestDescriptor } from '../../../src/ratelimit/types.js';
import type { Unit } from '../../../src/ratelimit/units.js';

/** The repository root, found from this file whether it runs from test/ or from dist/test/. */
export const REPO_ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the test file');
    dir = parent;
  }
  return dir;
})();

export const DESCRIPTOR_FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'descriptors');

/** A fixture file as the loader sees it: named by its path relative to the descriptors directory. */
export function fixture(name: string): DescriptorFile {
  return { name, text: readFileSync(path.join(DESCRIPTOR_FIXTURES, name), 'utf8') };
}

export function compileFixtures(...names: string[]): RateLimitConfig {
  return compileDescriptorFiles(names.map(fixture));
}

export function fixtureDomain(file: string, domain: string): DomainConfig {
  const found = compileFixtures(file).domains.get(domain);
  if (found === undefined) throw new Error(`${file} has no domain ${domain}`);
  return found;
}

export function compileYaml(text: string, name = 'inline.yaml'): RateLimitConfig {
  return compileDescriptorFiles([{ name, text }]);
}

/** `desc('k=v', 'sub=x')`: a request descriptor from `key=value` strings (the first `=` splits). */
export function desc(...entries: string[]): RequestDescriptor {
  return {
    entries: entries.map((e) => {
      const at = e.indexOf('=');
      return at < 0 ? { key: e, value: '' } : { key: e.slice(0, at), value: e.slice(at + 1) };
    }),
    limitOverride: undefined,
    hitsAddend: undefined,
  };
}

export function withOverride(d: RequestDescriptor, requestsPerUnit: number, unit: Unit): RequestDescriptor {
  return { ...d, limitOverride: { requestsPerUnit, unit } };
}

export function withHits(d: RequestDescriptor, hitsAddend: number): RequestDescriptor {
  return { ...d, hitsAddend };
}
