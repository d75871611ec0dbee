import { ErrorCode, PortcullisError } from '../shared/errors.js';
import { redactUrlCredentials } from '../shared/redact.js';

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

/**
 * Every issue found in a config load; a load with any issue is rejected as a whole. A message may quote what the
 * file says, and what it says may be a credential in the wrong place or in a URL that does not parse
 * (`redis://:pa/ss@h`, `url: https://user:secret@idp:99999`): every URL's credentials are hidden here, once for every
 * file and field, on the way to validate, serve's exit message and the reload log line.
 */
export class ConfigError extends PortcullisError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    const shown = issues.map((issue) => ({ ...issue, message: redactUrlCredentials(issue.message) }));
    super(ErrorCode.CONFIG_INVALID, shown.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = shown;
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
