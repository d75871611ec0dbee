import type { Cluster, Redis } from 'ioredis';

export interface RedisConnectionEvents {
  /** The connection failed, with a reason other than the last one reported (credentials already hidden). */
  down(reason: string): void;
  /** Connected again after a failure. */
  up(): void;
}

/**
 * Reports Redis connection trouble once per change of state: the first error, a different error, recovery. ioredis
 * emits an error on every reconnect attempt (several a second); logging each would bury the one line an operator
 * needs, such as WRONGPASS for a wrong password, which otherwise only shows as "not reachable" on /readyz.
 */
export function watchRedisConnection(client: Redis | Cluster, events: RedisConnectionEvents, redact: (text: string) => string): void {
  let last: string | undefined;
  client.on('error', (error: Error) => {
    const reason = redact(error.message);
    if (reason === last) return;
    last = reason;
    events.down(reason);
  });
  client.on('ready', () => {
    if (last === undefined) return;
    last = undefined;
    events.up();
  });
}
