// Header value templates: literal text with `{name}` placeholders, parsed once at config load. `{{` and `}}` stand
// for literal braces. Built-in names are listed in BUILTIN_VARIABLES; any other name is read from the identity that
// ext_authz left in dynamic metadata (see identity.ts), so `{user_id}` works without Portcullis knowing the key.
// Rendered values are header values in headers.ts' form (bytes as latin1 chars): literal text is turned into its UTF-8
// bytes here, and the variables' values arrive in that form.

import { textAsHeaderValue } from './headers.js';

export const BUILTIN_VARIABLES = ['request_id', 'trace_id', 'span_id', 'client_ip', 'route', 'method', 'path', 'host'] as const;

export interface Template {
  readonly source: string;
  /** Names used, in order of first use. */
  readonly variables: readonly string[];
  /** undefined when a placeholder has no value: a header with a half-filled value is worse than none. */
  render(lookup: (name: string) => string | undefined): string | undefined;
}

/**
 * A compiled template, or a message saying what is wrong with `source`. The message never quotes the template: a
 * header rule's literal text may be a credential for the upstream (config errors are printed and logged).
 */
export function compileTemplate(source: string): Template | string {
  const parts: ({ text: string } | { name: string })[] = [];
  let text = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '{' && source[i + 1] === '{') {
      text += '{';
      i++;
    } else if (c === '}' && source[i + 1] === '}') {
      text += '}';
      i++;
    } else if (c === '{') {
      const end = source.indexOf('}', i);
      if (end === -1) return `unclosed '{' at offset ${i} (write {{ for a literal brace)`;
      const name = source.slice(i + 1, end);
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) return `the placeholder at offset ${i} is not a variable name (lower case letters, digits, _)`;
      if (text) parts.push({ text: textAsHeaderValue(text) });
      text = '';
      parts.push({ name });
      i = end;
    } else if (c === '}') {
      return `unmatched '}' at offset ${i} (write }} for a literal brace)`;
    } else if (CONTROL.test(c)) {
      return 'header values cannot contain control characters (CR, LF, NUL and the rest; tab is allowed)';
    } else {
      text += c;
    }
  }
  if (text) parts.push({ text: textAsHeaderValue(text) });
  const variables = [...new Set(parts.flatMap((p) => ('name' in p ? [p.name] : [])))];
  if (variables.length === 0) {
    const literal = textAsHeaderValue(text);
    return { source, variables, render: () => literal };
  }
  return {
    source,
    variables,
    render(lookup) {
      let out = '';
      for (const part of parts) {
        if ('text' in part) {
          out += part.text;
          continue;
        }
        const value = lookup(part.name);
        if (value === undefined || value === '') return undefined;
        out += value;
      }
      return out;
    },
  };
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
// eslint-disable-next-line no-control-regex
const NOT_A_HEADER_BYTE = /[\x00-\x08\x0a-\x1f\x7f\u0100-\uffff]/;

/**
 * Values safe to put in a header: no control character but tab (Envoy answers 500 to a request whose ext_proc
 * mutation holds one), nothing but bytes (text not turned into header bytes would be cut to its low bytes), at most
 * 16 KiB.
 */
export function safeHeaderValue(value: string): string | undefined {
  if (NOT_A_HEADER_BYTE.test(value) || value.length > 16_384) return undefined;
  return value;
}
