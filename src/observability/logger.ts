import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Log fields whose value is replaced by `[redacted]`, at the top level or one level down. */
export const REDACTED_PATHS = ['password', '*.password', 'authorization', '*.authorization', 'headers.authorization', 'headers.cookie', 'headers["x-api-key"]', 'token', '*.token'] as const;

/**
 * JSON logs on stdout. Credentials never reach a log line: anything that looks like a secret is
 * redacted by path, and Redis URLs are logged without their password (see redactedConfig). The per-Check decision
 * line names each of its fields itself and skips the redaction, which could not change it (authz-handler.ts).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'portcullis' },
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    },
    destination,
  );
}
