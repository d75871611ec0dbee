import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout. Credentials never reach a log line: anything that looks like a secret is
 * redacted by path, and Redis URLs are logged without their password (see redactedConfig).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'portcullis' },
      redact: {
        paths: ['password', '*.password', 'authorization', '*.authorization', 'headers.authorization', 'headers.cookie', 'headers["x-api-key"]', 'token', '*.token'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
