import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { ConfigError, type ConfigIssue } from './errors.js';

/** portcullis.yaml above this size is refused before it is parsed: the file is small by nature. */
export const MAX_CONFIG_FILE_BYTES = 1 << 20;

/**
 * A file portcullis.yaml names (API keys, JWKS, the client secret, a JSON Schema) above this size is refused before it
 * is read: far above any real one (a keys file of 400,000 keys), far below what would take the process's memory.
 */
export const MAX_REFERENCED_FILE_BYTES = 64 << 20;

/**
 * A YAML text past this many characters is parsed in a worker thread before (or instead of) the serving thread
 * (portcullis.yaml: checkPortcullisConfigOffThread; keys files: parseKeysFileOffThread). Below it a parse costs the
 * serving thread a few tens of milliseconds at most (nesting and alias expansion are bounded in parseYaml); at 1 MiB
 * it can cost seconds.
 */
export const OFF_THREAD_MIN_CHARS = 64 << 10;

/** Which file a read is for: where an issue about it points. */
export interface FileRef {
  readonly file: string;
  /** The setting that names the file (`authz.api_keys.file`), or '' for portcullis.yaml. */
  readonly setting: string;
  /** How the file is called in messages: `config file`, `the file authz.api_keys.file names`. */
  readonly what: string;
  readonly maxBytes: number;
}

/**
 * The text of a config file, or a ConfigError naming it: missing, unreadable, a directory, a dangling symlink, over
 * `maxBytes`, not UTF-8. Only a regular file is read: a FIFO in its place would hold the load (and every reload
 * after it) forever, and a device such as /dev/zero would read until the process ran out of memory.
 */
export async function readConfigFile(ref: FileRef): Promise<string> {
  let bytes: Buffer;
  try {
    checkStats(ref, await stat(ref.file));
    bytes = await readFile(ref.file);
  } catch (error) {
    throw readFailure(ref, error);
  }
  return decoded(ref, bytes);
}

/** readConfigFile for a caller that cannot wait: JSON Schemas are read while portcullis.yaml is compiled. */
export function readConfigFileSync(ref: FileRef): string {
  let bytes: Buffer;
  try {
    checkStats(ref, statSync(ref.file));
    bytes = readFileSync(ref.file);
  } catch (error) {
    throw readFailure(ref, error);
  }
  return decoded(ref, bytes);
}

/**
 * A file a config setting names (a JSON Schema, a PEM file), read as readConfigFile reads one. Throws an Error that
 * only says what is wrong (`cannot read the file: ENOENT…`, `the file is 2097152 bytes, more than…`): the caller
 * reports it at the setting that names the file, with that setting's line.
 */
export async function readNamedFile(file: string, maxBytes: number): Promise<string> {
  try {
    return await readConfigFile({ file, setting: '', what: 'the file', maxBytes });
  } catch (error) {
    throw withoutPlace(error);
  }
}

/** readNamedFile for a caller that cannot wait (the config compile). */
export function readNamedFileSync(file: string, maxBytes: number): string {
  try {
    return readConfigFileSync({ file, setting: '', what: 'the file', maxBytes });
  } catch (error) {
    throw withoutPlace(error);
  }
}

function withoutPlace(error: unknown): unknown {
  return error instanceof ConfigError ? new Error(error.issues[0]?.message ?? error.message) : error;
}

function checkStats(ref: FileRef, info: Stats): void {
  if (!info.isFile()) throw issueFor(ref, undefined, `cannot read ${ref.what}: ${info.isDirectory() ? 'it is a directory' : 'not a regular file'}`);
  if (info.size > ref.maxBytes) throw issueFor(ref, undefined, `${ref.what} is ${info.size} bytes, more than the maximum of ${ref.maxBytes}`);
}

function readFailure(ref: FileRef, error: unknown): ConfigError {
  return error instanceof ConfigError ? error : issueFor(ref, undefined, `cannot read ${ref.what}: ${(error as Error).message}`);
}

function decoded(ref: FileRef, bytes: Buffer): string {
  const result = decodeConfigText(bytes, ref.file);
  if ('issue' in result) throw issueFor(ref, result.issue.line, `${ref.what} is ${result.issue.message}`);
  return result.text;
}

function issueFor(ref: FileRef, line: number | undefined, message: string): ConfigError {
  return new ConfigError([{ file: ref.file, line, path: ref.setting, message }]);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf16le = new TextDecoder('utf-16le', { fatal: true });
const utf16be = new TextDecoder('utf-16be', { fatal: true });

/**
 * A config file's bytes as text, or the issue that stops it loading: invalid UTF-8 is an error naming the line of
 * the first bad byte (replacing it with U+FFFD would silently change a descriptor value or key).
 * As in yaml.v2 (envoyproxy/ratelimit's parser): a UTF-16 byte order mark makes the file UTF-16 (Windows
 * PowerShell 5 writes files so), and a CR alone is a line break; it becomes LF, which is all the yaml library takes.
 */
export function decodeConfigText(bytes: Uint8Array, file: string): { text: string } | { issue: ConfigIssue } {
  const utf16 = bytes[0] === 0xff && bytes[1] === 0xfe ? utf16le : bytes[0] === 0xfe && bytes[1] === 0xff ? utf16be : undefined;
  if (utf16 !== undefined) {
    try {
      return { text: lineBreaks(utf16.decode(bytes)) };
    } catch {
      return { issue: { file, line: undefined, path: '', message: 'not valid UTF-16' } };
    }
  }
  try {
    return { text: lineBreaks(utf8.decode(bytes)) };
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a || (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a)) line++;
    return { issue: { file, line, path: '', message: `not valid UTF-8 (byte ${at} is 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')})` } };
  }
}

function lineBreaks(text: string): string {
  return text.includes('\r') ? text.replace(/\r(?!\n)/g, '\n') : text;
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence (RFC 3629). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const [length, min] = b < 0x80 ? [1, 0] : b >= 0xc2 && b <= 0xdf ? [2, 0x80] : b >= 0xe0 && b <= 0xef ? [3, 0x800] : b >= 0xf0 && b <= 0xf4 ? [4, 0x10000] : [0, 0];
    if (length === 0 || i + length > bytes.length) return i;
    let cp = length === 1 ? b : b & (0xff >> (length + 1));
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += length;
  }
  return bytes.length;
}
