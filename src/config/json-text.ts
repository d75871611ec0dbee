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
  return scan(text, false).offset;
}

/**
 * The first name an object in `text` holds twice, or undefined. JSON.parse keeps the last silently; protobuf's JSON
 * parsers refuse the document, and so must what stands in for them.
 */
export function duplicateKey(text: string): string | undefined {
  return scan(text, true).duplicate;
}

function scan(text: string, findDuplicates: boolean): { offset: number; duplicate?: string } {
  const closers: string[] = [];
  /** The names met so far in each open object, when looking for duplicates. */
  const names: Set<string>[] = [];
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
      const start = i;
      if (!string()) return { offset: i };
      if (findDuplicates) {
        const name = JSON.parse(text.slice(start, i)) as string;
        if (names.at(-1)!.has(name)) return { offset: start, duplicate: name };
        names.at(-1)!.add(name);
      }
      skipSpace();
      if (text[i] !== ':') return { offset: i };
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
          if (findDuplicates && closer === '}') names.push(new Set());
          state = c === '{' ? 'key' : 'value';
        }
      } else if (c === '"' ? string() : token(c === '-' || (c !== undefined && c >= '0' && c <= '9') ? NUMBER : LITERAL)) {
        state = 'after';
      } else return { offset: i };
    } else {
      const closer = closers.at(-1);
      if (closer === undefined) return { offset: i }; // a complete document, then more text (or the end: text.length)
      if (c === ',') state = closer === '}' ? 'key' : 'value';
      else if (c === closer) {
        closers.pop();
        if (findDuplicates && closer === '}') names.pop();
      } else return { offset: i };
      i++;
    }
  }
}
