import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RateLimitClient, WireResponse } from './ratelimit-client.js';
import { bulkStrings, sendCommand, type RedisServer } from './redis-server.js';

/** What the Redis store tests share: one `user` limit of `limit` an hour in `domain`. */
export interface HourlyUserLimit {
  /** Writes the descriptor file (d.yaml) into `dir`. */
  writeDescriptors(dir: string): void;
  /** The key envoyproxy/ratelimit's layout gives `user`'s hourly window at `atMs`. */
  counterKey(user: string, atMs: number): string;
  /** One ShouldRateLimit for `user`. */
  ask(client: RateLimitClient, user: string, deadlineMs?: number): Promise<WireResponse>;
  /** The count the service answered for `user`, or undefined when it answered by failure_mode: allow. */
  count(client: RateLimitClient, user: string): Promise<number | undefined>;
  /** What one Redis server holds for `user` at `atMs`. */
  storedCount(server: RedisServer, user: string, atMs: number): Promise<number>;
}

export function hourlyUserLimit(domain: string, limit: number): HourlyUserLimit {
  const counterKey = (user: string, atMs: number): string => `${domain}_user_${user}_${Math.floor(atMs / 3_600_000) * 3600}`;
  const ask = (client: RateLimitClient, user: string, deadlineMs = 500): Promise<WireResponse> =>
    client.shouldRateLimit({ domain, descriptors: [{ entries: [{ key: 'user', value: user }] }] }, deadlineMs);
  return {
    writeDescriptors(dir) {
      writeFileSync(path.join(dir, 'd.yaml'), `domain: ${domain}\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: ${limit} }\n`);
    },
    counterKey,
    ask,
    async count(client, user) {
      const status = (await ask(client, user)).statuses?.[0];
      return status?.current_limit === undefined || status.current_limit === null ? undefined : limit - (status.limit_remaining ?? 0);
    },
    async storedCount(server, user, atMs) {
      return Number(bulkStrings(await sendCommand(server.port, ['GET', counterKey(user, atMs)]))[0] ?? 0);
    },
  };
}
