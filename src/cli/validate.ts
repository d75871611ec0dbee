import { readDescriptorFiles } from '../config/descriptor-files.js';
import { ConfigError } from '../config/errors.js';
import { loadPortcullisConfig, parsePortcullisConfig } from '../config/portcullis-config.js';
import { compileDescriptorFilesOffThread } from '../ratelimit/descriptor-config.js';
import { validateAuthz } from './authz-commands.js';

/** At least one of the two (main.ts answers with the usage when neither is given). */
export interface ValidateOptions {
  config?: string | undefined;
  descriptors?: string | undefined;
}

/**
 * `portcullis validate`. Every check that can run does, and every error is printed: the config, then its authz files,
 * then the descriptor files (`--descriptors` when given, else the config's directory; when the config itself is
 * broken, only a `--descriptors` directory can still be checked). Returns the exit code: 0, or 1 on any error.
 */
export async function validate(options: ValidateOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const errors: ConfigError[] = [];
  const stage = async <T>(work: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      errors.push(error);
      return undefined;
    }
  };
  const config = options.config === undefined ? undefined : await stage(() => loadPortcullisConfig(options.config!));
  const descriptors = options.descriptors ?? config?.ratelimit.descriptors;
  if (config) {
    const policies = await stage(() => validateAuthz(config));
    if (errors.length === 0) out(policies === undefined ? 'ok: no authz section (every Check is denied)\n' : `ok: authz policies: ${policies.join(', ') || '(none)'}\n`);
  }
  if (descriptors !== undefined) {
    // The budgets `serve` applies: a file validate accepts loads, and a file that would stall a load fails here too.
    const budgets = config?.ratelimit ?? parsePortcullisConfig('', 'portcullis.yaml').ratelimit;
    await stage(async () => {
      const files = await readDescriptorFiles(descriptors, budgets.descriptorsMaxBytes);
      const compiled = await compileDescriptorFilesOffThread(files, budgets.descriptorsLoadTimeoutMs, descriptors);
      out(`ok: ${files.length} descriptor file(s) in ${descriptors}, domains: ${[...compiled.domains.keys()].join(', ') || '(none)'}\n`);
    });
  }
  if (config !== undefined && errors.length === 0) out(`ok: ${config.bff.endpoints.length} bff endpoint(s)\n`);
  // Not an error (the endpoints may wait for a listener added later), but `serve` would leave the composer off.
  if (config !== undefined && config.bff.endpoints.length > 0 && config.server.http === undefined) {
    err('warning: bff endpoints are configured but server.http.address is not set: the composer is off\n');
  }
  if (errors.length === 0) return 0;
  const count = errors.reduce((n, e) => n + e.issues.length, 0);
  err(`${errors.map((e) => e.message).join('\n')}\n${count} error(s)\n`);
  return 1;
}
