import type { RateLimitClient } from './ratelimit-client.js';
import { bulkStrings, sendCommand, type RedisServer } from './redis-server.js';

/**
 * A `user` limit of `limit` an hour in `domain`, read both ways: `count` is the count the service answered for a
 * user (undefined when it answered by failure_mode: allow), `storedCount` what one Redis server holds for it (the key
 * envoyproxy/ratelimit's layout gives an hourly window).
 */
export function hourlyUserCounts(domain: string, limit: number): {
  count(client: RateLimitClient, user: string): Promise<number | undefined>;
  storedCount(server: RedisServer, user: string, atMs: number): Promise<number>;
} {
  const counterKey = (user: string, atMs: number): string => `${domain}_user_${user}_${Math.floor(atMs / 3_600_000) * 3600}`;
  return {
    async count(client, user) {
      const status = (await client.shouldRateLimit({ domain, descriptors: [{ entries: [{ key: 'user', value: user }] }] }, 500)).statuses?.[0];
      return status?.current_limit === undefined || status.current_limit === null ? undefined : limit - (status.limit_remaining ?? 0);
    },
    async storedCount(server, user, atMs) {
      return Number(bulkStrings(await sendCommand(server.port, ['GET', counterKey(user, atMs)]))[0] ?? 0);
    },
  };
}
