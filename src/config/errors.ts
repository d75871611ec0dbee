import { ErrorCode, PortcullisError } from '../shared/errors.js';

/** One problem in one config file. `path` is a JSONPath-like location such as `descriptors[0].rate_limit.unit`. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number | undefined;
  readonly path: string;
  readonly message: string;
}

/**
 * `<file>: <message> (line N, at <path>)`. The `<file>: <message>` prefix is exactly what
 * envoyproxy/ratelimit prints for descriptor files, so existing alerting on those messages keeps working.
 */
export function formatIssue(issue: ConfigIssue): string {
  const where = [issue.line !== undefined ? `line ${issue.line}` : '', issue.path ? `at ${issue.path}` : '']
    .filter(Boolean)
    .join(', ');
  return where ? `${issue.file}: ${issue.message} (${where})` : `${issue.file}: ${issue.message}`;
}

/** Every issue found in a config load; a load with any issue is rejected as a whole. */
export class ConfigError extends PortcullisError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(ErrorCode.CONFIG_INVALID, issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Collects issues for one file while a loader walks it. */
export class IssueCollector {
  readonly issues: ConfigIssue[] = [];
  constructor(readonly file: string) {}
  add(line: number | undefined, path: string, message: string): void {
    this.issues.push({ file: this.file, line, path, message });
  }
}

export function joinPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent ? `${parent}.${key}` : key;
}
