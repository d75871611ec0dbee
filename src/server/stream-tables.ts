import type { Server } from '@grpc/grpc-js';
import type { Http2Session } from 'node:http2';
import { types } from 'node:util';

/**
 * Keeps the table in which Node tracks each HTTP/2 session's open streams in V8's young generation, so that a
 * finished call's objects die in the next scavenge instead of being promoted.
 *
 * Why: Node keeps a session's open streams in a Map (the session's private state, `streams`). V8 grows and compacts
 * a Map by allocating a new hash table in the generation the old one is in, and leaves the old table holding the
 * entries it had. Once a long-lived session's table has reached the old generation (any mark-compact promotes it),
 * every replaced table is a dead old object that still points at the streams it held, and a scavenge treats those
 * pointers as roots. So nearly every stream, with the grpc-js call and the request and response hanging off it,
 * was promoted: 1.1–1.4 MB per scavenge and 7–9 mark-compacts (pauses up to 71 ms) in 12 s at 9,000 calls/s, where
 * a session given a fresh Map every 50 ms promoted 0.12 MB (docs/benchmarks.md, "The stream table").
 * A Map built with `new` starts with a young table, and a young table's replacements stay young.
 *
 * This reaches into two libraries' private state: grpc-js' `Server.http2Servers` (each server's live sessions) and
 * the symbol-keyed state of Node's Http2Session. Both are looked up defensively: when either has another shape the
 * refresher does nothing, and says so (`active`).
 */

/** Replaces `session`'s stream Map with a copy of itself. Returns false when the session has no such Map. */
export function refreshStreamTable(session: object): boolean {
  const state = sessionState(session);
  const streams = state?.['streams'];
  // Node's is a primordials SafeMap: a Map, but not an instance of this realm's Map class.
  if (state === undefined || !types.isMap(streams)) return false;
  // The same class, the same entries in the same order.
  state['streams'] = new ((streams as object).constructor as MapConstructor)(streams as Map<unknown, unknown>);
  return true;
}

export interface StreamTableRefresher {
  /** False when grpc-js or Node keeps its sessions or streams where this module does not look. */
  readonly active: boolean;
  stop(): void;
}

/** Refreshes the stream table of every session `server` holds, every `intervalMs`. */
export function startStreamTableRefresher(server: Server, intervalMs = 50): StreamTableRefresher {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return { active: false, stop() {} };
  let active = true;
  const timer = setInterval(() => {
    for (const info of servers.values()) {
      const sessions = (info as { sessions?: unknown } | undefined)?.sessions;
      if (!(sessions instanceof Set)) {
        active = false;
        continue;
      }
      for (const session of sessions as Set<Http2Session>) if (!refreshStreamTable(session)) active = false;
    }
    if (!active) clearInterval(timer);
  }, intervalMs);
  timer.unref();
  return {
    get active() {
      return active;
    },
    stop() {
      clearInterval(timer);
    },
  };
}

function sessionState(session: object): Record<string, unknown> | undefined {
  const symbol = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state');
  const state: unknown = symbol === undefined ? undefined : (session as Record<symbol, unknown>)[symbol];
  return typeof state === 'object' && state !== null ? (state as Record<string, unknown>) : undefined;
}
