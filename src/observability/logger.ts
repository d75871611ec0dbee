import { EventEmitter } from 'node:events';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Log fields whose value is replaced by `[redacted]`, at the top level or one level down. */
export const REDACTED_PATHS = ['password', '*.password', 'authorization', '*.authorization', 'headers.authorization', 'headers.cookie', 'headers["x-api-key"]', 'token', '*.token'] as const;

/**
 * The most log text held in memory for stdout (a JavaScript string's length; bytes for ASCII lines). pino's own
 * default holds every line a slow or stalled reader has not taken yet (a container runtime's log pipe, `| tee` to a
 * full disk): at a decision line per Check that grew the heap by ~20 MB per 100,000 Checks, without bound. Past this
 * the newest lines are dropped and counted (portcullis_log_lines_dropped_total).
 */
export const LOG_BUFFER_MAX_CHARS = 16 * 1024 * 1024;

/** stdout (or `fd`) as pino's default writes it, asynchronously, but holding at most `maxBufferedChars` of lines. */
export function stdoutDestination(fd = 1, maxBufferedChars = LOG_BUFFER_MAX_CHARS): DestinationStream & EventEmitter {
  return pino.destination({ dest: fd, sync: false, minLength: 0, maxLength: maxBufferedChars }) as unknown as DestinationStream & EventEmitter;
}

/**
 * JSON logs on stdout. Credentials never reach a log line: anything that looks like a secret is
 * redacted by path, and Redis URLs are logged without their password (see redactedConfig). The per-Check decision
 * line names each of its fields itself and skips the redaction, which could not change it (authz-handler.ts).
 */
export function createLogger(level: string, destination: DestinationStream = stdoutDestination()): Logger {
  return pino(
    {
      level,
      base: { service: 'portcullis' },
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    },
    destination,
  );
}

/**
 * Resolves once the lines `logger` was given have left the process (or their write failed), or after `timeoutMs`.
 * Before process.exit: pino's exit hook writes what is left synchronously, and sonic-boom retries a failed
 * synchronous write forever, so with the log reader gone (EPIPE) the process would never exit. A line still in an
 * asynchronous write meets that error as an event instead, and pino stops writing. (Writing '' starts a write even
 * when none is pending, so 'drain' comes either way.)
 */
export function drainLogger(logger: Logger, timeoutMs: number): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (!(stream instanceof EventEmitter)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stream.off('drain', done);
      stream.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    stream.on('drain', done);
    stream.on('error', done);
    try {
      (stream as unknown as DestinationStream).write('');
    } catch {
      done();
    }
  });
}
