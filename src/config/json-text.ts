export type JsonParse =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly line: number; readonly column: number; readonly message: string };

/**
 * JSON.parse with the line and column of a syntax error, for config errors that name the line. V8 on Node 20 gives
 * a character position for some errors and none for others ("Unexpected token …"), so the offset is found here.
 */
export function parseJson(text: string): JsonParse {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    const at = syntaxErrorOffset(text);
    const before = text.slice(0, at);
    return {
      ok: false,
      line: before.split('\n').length,
      column: at - (before.lastIndexOf('\n') + 1) + 1,
      message: (error as Error).message.replace(/ (?:in JSON )?at position \d+.*$/, ''),
    };
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERAL = /true|false|null/y;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

/**
 * Where `text` stops being JSON (RFC 8259): the offset of the first character no valid document could have there,
 * or text.length when it ends too soon. Iterative, so depth costs no stack. Only asked after JSON.parse failed.
 */
export function syntaxErrorOffset(text: string): number {
  const closers: string[] = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  /** Moves past `pattern` at i; false (i unchanged) when it does not match there. */
  const token = (pattern: RegExp): boolean => {
    pattern.lastIndex = i;
    if (!pattern.test(text)) return false;
    i = pattern.lastIndex;
    return true;
  };
  /** Moves past a string starting at i; false with i at the character that breaks it. */
  const string = (): boolean => {
    if (text[i] !== '"') return false;
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        if (!token(ESCAPE)) return false;
      } else i++;
    }
    return false;
  };
  let state: 'value' | 'key' | 'after' = 'value';
  for (;;) {
    skipSpace();
    const c = text[i];
    if (state === 'key') {
      if (!string()) return i;
      skipSpace();
      if (text[i] !== ':') return i;
      i++;
      state = 'value';
    } else if (state === 'value') {
      if (c === '{' || c === '[') {
        const closer = c === '{' ? '}' : ']';
        i++;
        skipSpace();
        if (text[i] === closer) {
          i++;
          state = 'after';
        } else {
          closers.push(closer);
          state = c === '{' ? 'key' : 'value';
        }
      } else if (c === '"' ? string() : token(c === '-' || (c !== undefined && c >= '0' && c <= '9') ? NUMBER : LITERAL)) {
        state = 'after';
      } else return i;
    } else {
      const closer = closers.at(-1);
      if (closer === undefined) return i; // a complete document, then more text (or the end: text.length)
      if (c === ',') state = closer === '}' ? 'key' : 'value';
      else if (c === closer) closers.pop();
      else return i;
      i++;
    }
  }
}

/** A string for a message: quoted, cut at 100 characters (the text came from outside and may be long). */
export function excerpt(value: string): string {
  return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Whether the character at `at` is escaped: an odd run of backslashes before it. */
function escapedAt(text: string, at: number): boolean {
  let before = at - 1;
  while (text.charCodeAt(before) === BACKSLASH) before -= 1;
  return (at - 1 - before) % 2 === 1;
}
const isNumberStart = (c: number): boolean => c === 0x2d || (c >= 0x30 && c <= 0x39);
const isNumberChar = (c: number): boolean => isNumberStart(c) || c === 0x2b || c === 0x2e || c === 0x45 || c === 0x65;

/**
 * What keeps JSON text that JSON.parse accepted from being I-JSON (RFC 7493 §2), or undefined: a member name twice in
 * one object, a string escaping a lone surrogate, a number beyond double range. JSON.parse keeps the last of two
 * members, reads `\ud800` as a string no UTF-8 can carry and `1e400` as Infinity; a parser behind the gateway may keep
 * the first, replace or refuse the surrogate, refuse the number or clamp it. A signed `{"sub":"alice","sub":"admin"}`
 * would name one caller here and another to a service that reads the forwarded token, and an issuer that copies a
 * caller's JSON into its claims could be made to sign one. Envoy's jwt_authn refuses all three, and protobuf's JSON
 * parsers (envoyproxy/ratelimit's POST /json) refuse a member twice.
 */
export function iJsonFault(text: string): string | undefined {
  /** Per open object the names seen; undefined for an open array. */
  const open: (Set<string> | undefined)[] = [];
  let nameNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // indexOf rather than a loop per character: this runs on every token not in the cache.
      let end = text.indexOf('"', i + 1);
      while (escapedAt(text, end)) end = text.indexOf('"', end + 1);
      let value = text.slice(i + 1, end);
      if (value.includes('\\')) {
        value = JSON.parse(text.slice(i, end + 1)) as string;
        if (!value.isWellFormed()) return `a string with a lone surrogate (${excerpt(value)})`;
      }
      if (nameNext) {
        const names = open.at(-1)!;
        if (names.has(value)) return `member ${excerpt(value)} appears twice`;
        names.add(value);
        nameNext = false;
      }
      i = end;
    } else if (c === 0x7b) {
      open.push(new Set());
      nameNext = true;
    } else if (c === 0x5b) open.push(undefined);
    else if (c === 0x7d || c === 0x5d) open.pop();
    else if (c === 0x2c) nameNext = open.at(-1) !== undefined;
    else if (isNumberStart(c)) {
      let end = i + 1;
      let exponent = false;
      for (let d = text.charCodeAt(end); isNumberChar(d); d = text.charCodeAt(++end)) exponent ||= d === 0x45 || d === 0x65;
      // Without an exponent only 309 digits or more reach Infinity.
      if ((exponent || end - i > 308) && !Number.isFinite(Number(text.slice(i, end)))) return `a number beyond double range (${excerpt(text.slice(i, end))})`;
      i = end - 1;
    }
  }
  return undefined;
}
