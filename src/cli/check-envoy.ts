// `portcullis check-envoy ENVOY_BOOTSTRAP [--config portcullis.yaml] [--descriptors DIR]`: reads the files, runs the
// pure checks (src/envoycheck/check.ts: rate limits; src/envoycheck/metadata.ts: the dynamic metadata they read;
// src/envoycheck/filters.ts: ext_authz policies and ext_proc routes, when a portcullis.yaml is given or beside the bootstrap, and
// the ext_proc filter's own settings) and prints the findings. Exit 0: none; 1: findings
// or unreadable input (a file that is not a bootstrap, empty included); 2: usage, or a bootstrap the checks could not get through (one line, no stack trace).

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { readDescriptorFiles } from '../config/descriptor-files.js';
import { ConfigError } from '../config/errors.js';
import { loadPortcullisConfig } from '../config/portcullis-config.js';
import { checkEnvoyRateLimits } from '../envoycheck/check.js';
import { checkEnvoyFilters, checkExtprocModes, checkExtprocStreamClose } from '../envoycheck/filters.js';
import { checkMetadataReads } from '../envoycheck/metadata.js';
import { notABootstrap, routeSites } from '../envoycheck/routes.js';
import { compileDescriptorFiles } from '../ratelimit/descriptor-config.js';

export interface CheckEnvoyOptions {
  readonly config?: string;
  readonly descriptors?: string;
}

export async function checkEnvoyCommand(bootstrapFile: string, options: CheckEnvoyOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  try {
    return await check(bootstrapFile, options, out, err);
  } catch (error) {
    // The checks read any parsed YAML and are meant not to throw; a bug they still hit must not read as a finding
    // (exit 1) nor bury the file name under a stack trace.
    const message = error instanceof Error ? `${error.name}: ${error.message}` : 'unknown error';
    err.write(`${bootstrapFile}: check-envoy failed on this bootstrap: ${message.split('\n')[0]}\n`);
    return 2;
  }
}

async function check(bootstrapFile: string, options: CheckEnvoyOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let bootstrap: unknown;
  try {
    bootstrap = parse(await readFile(bootstrapFile, 'utf8'));
  } catch (error) {
    // The YAML parser's message goes on with a source excerpt over several lines: its first line says it.
    err.write(`${bootstrapFile}: cannot read the Envoy bootstrap: ${(error as Error).message.split('\n')[0]}\n`);
    return 1;
  }
  const problem = notABootstrap(bootstrap);
  if (problem !== undefined) {
    err.write(`${bootstrapFile}: cannot read the Envoy bootstrap: ${problem}\n`);
    return 1;
  }
  // Default: the portcullis.yaml beside the bootstrap, as in envoy/.
  const sibling = path.join(path.dirname(bootstrapFile), 'portcullis.yaml');
  const configFile = options.config ?? (existsSync(sibling) ? sibling : undefined);
  let descriptors: string;
  try {
    const portcullis = configFile === undefined ? undefined : await loadPortcullisConfig(configFile);
    if (options.descriptors !== undefined) descriptors = options.descriptors;
    else if (portcullis !== undefined) descriptors = portcullis.ratelimit.descriptors;
    else {
      err.write('check-envoy: say where the descriptor files are: --config portcullis.yaml or --descriptors DIR\n');
      return 2;
    }
    const config = compileDescriptorFiles(await readDescriptorFiles(descriptors));
    const summary = checkEnvoyRateLimits(bootstrap, config);
    // Without a portcullis.yaml there are no policies or extproc routes to compare with.
    const sites = routeSites(bootstrap);
    const filters = portcullis === undefined ? undefined : checkEnvoyFilters(sites, portcullis.authz, portcullis.extproc);
    const findings = [...summary.findings, ...(filters?.findings ?? []), ...checkMetadataReads(sites), ...checkExtprocStreamClose(bootstrap, sites), ...checkExtprocModes(sites)];
    for (const finding of findings) {
      out.write(`${finding.code}: ${finding.message}\n`);
      for (const route of finding.routes.slice(0, 5)) out.write(`    at ${route}\n`);
      if (finding.routes.length > 5) out.write(`    and ${finding.routes.length - 5} more route(s)\n`);
    }
    const filterLine = filters === undefined
      ? 'ext_authz and ext_proc not checked (no portcullis.yaml)'
      : `${filters.authzRoutes} route(s) with ext_authz, ${filters.extprocRoutes} with ext_proc against ${configFile}`;
    out.write(`${bootstrapFile} against ${descriptors}: ${summary.descriptors} descriptor shape(s), ${summary.rules} rule(s); ${filterLine}; ${findings.length} finding(s)\n`);
    return findings.length === 0 ? 0 : 1;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    err.write(`${error.message}\n`);
    return 1;
  }
}
