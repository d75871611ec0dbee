import type { DescriptorFile } from '../ratelimit/descriptor-config.js';

/**
 * Everything one config load read from disk, as plain data (it crosses the supervisor's IPC channel as JSON):
 * portcullis.yaml's text and the files it names. A supervisor keeps what its workers last loaded and hands it to a
 * replacement worker, which then starts from the config its siblings run, not from files that a refused edit may have
 * broken since (src/server/supervisor.ts, docs/workers.md).
 */
export interface ConfigInputs {
  readonly text: string;
  /** extproc JSON Schema files: absolute path → text. */
  readonly schemas: Readonly<Record<string, string>>;
  /** The descriptor files under ratelimit.descriptors, as readDescriptorFiles returns them. */
  readonly descriptors: readonly DescriptorFile[];
  /** The files the authz section names (API keys, JWKS): absolute path → text. */
  readonly authz: Readonly<Record<string, string>>;
}

/** Reads the JSON Schema files `inputs` holds; any other file fails as a missing file does. */
export function schemaReader(inputs: ConfigInputs): (file: string) => string {
  return (file) => {
    const text = Object.hasOwn(inputs.schemas, file) ? inputs.schemas[file] : undefined;
    if (text === undefined) throw new Error(`${file} is not among the files the config was loaded from`);
    return text;
  };
}
