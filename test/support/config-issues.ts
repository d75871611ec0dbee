import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/errors.js';

export interface IssueSeen {
  readonly line: number | undefined;
  readonly path: string;
  readonly message: string;
}

/** The issues of the ConfigError `parse` throws; fails the test when it throws none, or throws something else. */
export function configIssues(parse: () => unknown, what = 'the config'): IssueSeen[] {
  try {
    parse();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues.map(({ line, path, message }) => ({ line, path, message }));
  }
  assert.fail(`expected a ConfigError for ${what}`);
}
