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

/** A message past this many characters is cut: a file's author decides how long a quoted value is. */
export const MAX_MESSAGE_CHARS = 512;
/** Issues past this many are counted, not listed: one log line per rejected load stays readable. */
export const MAX_LISTED_ISSUES = 100;

/**
 * Every issue found in a config load; a load with any issue is rejected as a whole. What a message may quote from the
 * file follows one rule, applied here and in IssueCollector:
 * - a secret-bearing part of a file (schema.ts secret(): Redis settings, ext_proc and composer header values, API key
 *   and introspection settings, all of keys.yaml) quotes nothing it says but a lone URL: its collector conceals values;
 * - every URL's credentials are hidden, in every file and field (`redis://:pa/ss@h`, `url: https://user:secret@idp:99999`);
 * - a message is at most MAX_MESSAGE_CHARS long, and at most MAX_LISTED_ISSUES are listed (all are in `issues`).
 * That holds on the way to validate, serve's exit message and the reload log line.
 */
export class ConfigError extends PortcullisError {
  readonly issues: readonly ConfigIssue[];
  /**
   * The message, one entry per issue listed (and the count of the rest): for a log line. An issue's message may span
   * lines (upstream's `yaml: unmarshal errors:` does), so the message split at line breaks is not this.
   */
  readonly listed: readonly string[];
  constructor(issues: readonly ConfigIssue[]) {
    const shown = issues.map((issue) => ({ ...issue, message: shorten(redactUrlCredentials(issue.message)) }));
    const listed = shown.slice(0, MAX_LISTED_ISSUES).map(formatIssue);
    if (shown.length > listed.length) listed.push(`… and ${shown.length - listed.length} more issues`);
    super(ErrorCode.CONFIG_INVALID, listed.join('\n'));
    this.name = 'ConfigError';
    this.issues = shown;
    this.listed = listed;
  }
}

function shorten(message: string): string {
  return message.length <= MAX_MESSAGE_CHARS ? message : `${message.slice(0, MAX_MESSAGE_CHARS)}… (${message.length} characters)`;
}

/**
 * Collects issues for one file while a loader walks it. A concealing collector (concealing(), for a secret-bearing
 * part of the file) shows no value the file holds: a message's quoted span, from its first `'` to its last (a value
 * may hold a `'` itself), is `(not shown)`, and the schema's fields describe a value by its type alone (`conceals`).
 */
export class IssueCollector {
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[] = [],
    readonly conceals = false,
  ) {}
  add(line: number | undefined, path: string, message: string): void {
    this.issues.push({ file: this.file, line, path, message: this.conceals ? concealValues(message) : message });
  }
  /** A collector into the same list that conceals every value. */
  concealing(): IssueCollector {
    return this.conceals ? this : new IssueCollector(this.file, this.issues, true);
  }
}

export const NOT_SHOWN = '(not shown)';

/** One URL and nothing else: shown, as ConfigError shows every URL, with its credentials hidden. */
const LONE_URL = /^[a-z][a-z0-9+.-]*:\/\/\S*$/i;

/**
 * `message` with its quoted span (first `'` to last) hidden, unless the span is one URL: ConfigError hides its
 * credentials, and `got 'http://cache:6379'` is what an operator needs to see.
 */
export function concealValues(message: string): string {
  const first = message.indexOf("'");
  const last = message.lastIndexOf("'");
  if (first < 0) return message;
  if (first < last && LONE_URL.test(message.slice(first + 1, last))) return message;
  return `${message.slice(0, first)}${NOT_SHOWN}${first === last ? '' : message.slice(last + 1)}`;
}

export function joinPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent ? `${parent}.${key}` : key;
}
