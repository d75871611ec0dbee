// The CounterStore for Redis (a single node, or the master Redis Sentinel names) and Redis Cluster: every request is
// at most one Lua script call (one per hash slot in a cluster), so a request with ten descriptors costs one round
// trip, not ten, and concurrent requests under the default policy share one call per event-loop turn (the Node side
// of each command is the bottleneck: docs/benchmarks.md). A call that would carry only a few fixed windows (what a turn below saturation holds) sends
// one plain INCRBY per window instead, which costs Redis less than any script call.
//
// The script mirrors algorithms.ts; the integration suite runs random requests through both and compares.
//
// Failure behaviour matters as much as the happy path: a rate limit check has a deadline of a few milliseconds, so
// the client it is given (redis-client.ts) fails at once while disconnected instead of queueing, and every call
// races its deadline here.

import { Cluster, Redis, ReplyError } from 'ioredis';
import { whenAborted } from '../shared/abort.js';
import { ErrorCode, StoreError } from '../shared/errors.js';
import { decideConsumption, isOver, validateRequest } from './algorithms.js';
import type { ConsumePolicy, CounterOp, CounterResult, CounterStore } from './counter-store.js';
import type { RedisClient } from './redis-client.js';
import { deadlineError, StallGuard } from './stall-guard.js';

/**
 * KEYS[i]  = key of op i.
 * ARGV[1]  = mode: a ConsumePolicy ('always' | 'only_over' | 'none_if_over') to evaluate, decide and write in one
 *            call; 'evaluate' to only read (reply as if nothing consumes); 'apply' to write with the decisions
 *            given in ARGV[3].
 * ARGV[2]  = now, integer ms since the epoch (the caller's clock, not Redis's).
 * ARGV[3]  = mode 'apply' only: one character per op, '1' = consume, '0' = don't; empty otherwise.
 * ARGV[4]  = every op, packed as `<algorithm letter><hits>,<capacity>,<windowMs>,<refill>,<ttlMs>;` in op order
 *            (f = fixed_window, s = sliding_window, t = token_bucket). One argument instead of six per op: each
 *            argument costs ioredis more CPU to write than the script spends parsing it.
 * Reply: 3 integers per op, in op order: before, after, consumed (1/0).
 *
 * Each key is one string, so no key needs a hash tag in a cluster:
 *   fixed_window   "<count>"                          (what envoyproxy/ratelimit's INCRBY leaves)
 *   sliding_window "<windowStartMs>:<current>:<previous>"
 *   token_bucket   "<tatMs>:<remainder>"               (TAT = tatMs + remainder / refill)
 * A value in another shape (another algorithm, a foreign key) reads as empty and is overwritten by SET.
 */
export const COUNTER_SCRIPT = `
local mode = ARGV[1]
local now = tonumber(ARGV[2])
local mask = ARGV[3]

local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
    r = r + b
  elseif r >= b then
    q = q + 1
    r = r - b
  end
  return q, r
end

local function read(key, algorithm)
  local raw = redis.pcall('GET', key)
  if type(raw) ~= 'string' then return nil end
  if algorithm == 'fixed_window' then
    local count = string.match(raw, '^(%d+)$')
    if count then return { count = tonumber(count) } end
  elseif algorithm == 'sliding_window' then
    local s, c, p = string.match(raw, '^(%d+):(%d+):(%d+)$')
    if s then return { start = tonumber(s), current = tonumber(c), previous = tonumber(p) } end
  elseif algorithm == 'token_bucket' then
    local t, r = string.match(raw, '^(%d+):(%d+)$')
    if t then return { tatMs = tonumber(t), remainder = tonumber(r) } end
  end
  return nil
end

-- Each returns before, after, consumed, and when the key changes: the new value and its TTL in ms.
local function fixedWindow(state, op, consume)
  local before = 0
  if state then before = state.count end
  local after = before + op.hits
  if not consume or op.hits == 0 then return before, after, consume end
  return before, after, true, string.format('%d', after), op.ttlMs
end

local function slidingWindow(state, op, consume)
  local windowMs = op.windowMs
  local _, offset = divmod(now, windowMs)
  local start = now - offset
  local current, previous = 0, 0
  if state then
    if state.start >= start then
      start = state.start
      current = state.current
      previous = state.previous
    elseif state.start == start - windowMs then
      previous = state.current
    end
  end
  local elapsed = math.max(0, now - start)
  local before = divmod(previous * (windowMs - elapsed), windowMs) + current
  local after = before + op.hits
  local consumed = consume and after <= op.capacity
  if not consumed or op.hits == 0 then return before, after, consumed end
  return before, after, true, string.format('%d:%d:%d', start, current + op.hits, previous),
    start + 2 * windowMs - now
end

local function tokenBucket(state, op, consume)
  local baseMs, baseRemainder, before = now, 0, 0
  if state and state.tatMs >= now then
    baseMs = state.tatMs
    baseRemainder = state.remainder
    local q, r = divmod((state.tatMs - now) * op.refill + state.remainder, op.windowMs)
    if r > 0 then q = q + 1 end
    before = math.min(op.capacity, q)
  end
  local after = before + op.hits
  local consumed = consume and after <= op.capacity
  if not consumed or op.hits == 0 then return before, after, consumed end
  local addMs, addRemainder = divmod(op.hits * op.windowMs, op.refill)
  local carryMs, remainder = divmod(baseRemainder + addRemainder, op.refill)
  local tatMs = baseMs + addMs + carryMs
  local ttlMs = tatMs - now
  if remainder > 0 then ttlMs = ttlMs + 1 end
  return before, after, true, string.format('%d:%d', tatMs, remainder), math.max(1, ttlMs)
end

local function step(op, state, consume)
  if op.algorithm == 'fixed_window' then return fixedWindow(state, op, consume) end
  if op.algorithm == 'sliding_window' then return slidingWindow(state, op, consume) end
  if op.algorithm == 'token_bucket' then return tokenBucket(state, op, consume) end
  error('unknown algorithm ' .. tostring(op.algorithm))
end

local ALGORITHMS = { f = 'fixed_window', s = 'sliding_window', t = 'token_bucket' }
local PACKED_OP = '(%a)(%d+),(%d+),(%d+),(%d+),(%d+);'
local function parse(i, a, h, c, w, r, t)
  return {
    key = KEYS[i], algorithm = ALGORITHMS[a], hits = tonumber(h), capacity = tonumber(c),
    windowMs = tonumber(w), refill = tonumber(r), ttlMs = tonumber(t),
  }
end
local function expectOps(count)
  if count ~= #KEYS then error('expected ' .. #KEYS .. ' packed ops, got ' .. count) end
end

local ops, states = {}, {}
local i = 0
for a, h, c, w, r, t in string.gmatch(ARGV[4], PACKED_OP) do
  i = i + 1
  ops[i] = parse(i, a, h, c, w, r, t)
  states[i] = read(ops[i].key, ops[i].algorithm)
end
expectOps(i)

local reply, consume = {}, {}
if mode == 'apply' then
  for i = 1, #KEYS do consume[i] = string.sub(mask, i, i) == '1' end
elseif mode == 'always' then
  for i = 1, #KEYS do consume[i] = true end
else
  local over, anyOver = {}, false
  for i = 1, #KEYS do
    local before, after = step(ops[i], states[i], false)
    over[i] = after > ops[i].capacity
    anyOver = anyOver or over[i]
    if mode == 'evaluate' then
      reply[#reply + 1] = before
      reply[#reply + 1] = after
      reply[#reply + 1] = 0
    end
  end
  if mode == 'evaluate' then return reply end
  for i = 1, #KEYS do
    if mode == 'only_over' then consume[i] = over[i] or not anyOver
    elseif mode == 'none_if_over' then consume[i] = not anyOver
    else error('unknown mode ' .. tostring(mode)) end
  end
end

-- Second pass in op order; a key written earlier in this call is read again, so repeated keys see each other.
local written = {}
for i = 1, #KEYS do
  local op = ops[i]
  local state = states[i]
  if written[op.key] then state = read(op.key, op.algorithm) end
  local before, after, consumed, value, ttlMs = step(op, state, consume[i])
  if value then
    redis.call('SET', op.key, value, 'PX', string.format('%d', ttlMs))
    written[op.key] = true
  end
  reply[#reply + 1] = before
  reply[#reply + 1] = after
  reply[#reply + 1] = consumed and 1 or 0
end
return reply
`;

/**
 * A batch of two or more ops, every one a fixed window that counts (hits > 0): what nearly every request of an
 * envoyproxy/ratelimit configuration is. INCRBY as envoyproxy/ratelimit does, with no parsing, formatting or
 * per-op tables, and PEXPIRE only for the hit that creates the count: the key names its window and is never used
 * after it, so the expiry set when its window's first hit arrives is late enough for every later hit.
 * (Making COUNTER_SCRIPT's functions alone costs Redis about 3 µs per call, a tenth of a one-request call: see
 * docs/benchmarks.md.)
 *
 * KEYS[i] = key of op i; ARGV[1] = `<hits>,<ttlMs>;` per op, in op order. Reply: the count after each op (before
 * is after - hits; a counting fixed window always consumes).
 * A value INCRBY cannot take or that is not a count (a negative number, another algorithm's state, another type)
 * is read as COUNTER_SCRIPT reads it, as empty or as the count a zero-padded value spells, and replaced by SET.
 * A count that something else left without a TTL keeps none (envoyproxy/ratelimit sets one at every hit).
 */
export const FIXED_WINDOW_SCRIPT = `
local reply, i = {}, 0
for h, t in string.gmatch(ARGV[1], '(%d+),(%d+);') do
  i = i + 1
  local key, hits = KEYS[i], tonumber(h)
  local after = redis.pcall('INCRBY', key, hits)
  if type(after) == 'number' and after >= hits then
    if after == hits then redis.call('PEXPIRE', key, t) end
  else
    -- INCRBY counted a negative number (which reads as empty), or refused a value that is not an integer.
    local count = 0
    if type(after) ~= 'number' then
      local raw = redis.pcall('GET', key)
      count = type(raw) == 'string' and tonumber(string.match(raw, '^(%d+)$')) or 0
    end
    after = count + hits
    redis.call('SET', key, string.format('%d', after), 'PX', t)
  end
  reply[i] = after
end
if i ~= #KEYS then error('expected ' .. #KEYS .. ' packed ops, got ' .. i) end
return reply
`;

const SCRIPT_NAME = 'portcullisCounters';
/**
 * The same script under a second name, for the calls a batch makes (mode `always`), so that a single-node client can
 * leave them out of ioredis' auto-pipelining while per-request calls (other policies) keep it.
 */
const BATCH_SCRIPT_NAME = 'portcullisCountersBatch';
const FIXED_WINDOW_SCRIPT_NAME = 'portcullisFixedWindows';
/**
 * The calls only a batch makes, written at once rather than auto-pipelined on a single node: the two scripts, and
 * the INCRBY and PEXPIRE of a small batch of fixed windows (countFixedWindowsPlain; this client sends no others).
 */
export const BATCH_COMMANDS = [BATCH_SCRIPT_NAME, FIXED_WINDOW_SCRIPT_NAME, 'incrby', 'pexpire'];
const MAX_BATCH_OPS = 256;
/**
 * Up to this many fixed windows (with distinct keys) a batch is plain INCRBYs rather than one call of
 * FIXED_WINDOW_SCRIPT. Redis runs an INCRBY for a fraction of what the same INCRBY costs inside a script, and the
 * script call has a cost of its own; on the client, ioredis spends about as much on 16 small commands as on one
 * script call with 16 keys, and more beyond (docs/benchmarks.md, "Small batches as plain INCRBYs").
 */
const MAX_PLAIN_OPS = 16;
/** Counts owed a PEXPIRE (countFixedWindowsPlain) are remembered up to this many; past it (Redis down long) they keep none. */
const MAX_OWED_TTLS = 10_000;
const ALGORITHM_LETTER: Readonly<Record<CounterOp['algorithm'], string>> = { fixed_window: 'f', sliding_window: 's', token_bucket: 't' };

interface PendingBatch {
  readonly ops: CounterOp[];
  readonly waiters: { readonly count: number; readonly signal: AbortSignal; resolve(results: CounterResult[]): void; reject(error: unknown): void }[];
}

type ScriptMode = ConsumePolicy | 'evaluate' | 'apply';
/** The command defineCommand() adds: numkeys, then keys, then argv. */
type ScriptRunner = Record<
  typeof SCRIPT_NAME | typeof BATCH_SCRIPT_NAME | typeof FIXED_WINDOW_SCRIPT_NAME,
  (numKeys: number, ...args: (string | number)[]) => Promise<unknown>
>;

export class RedisCounterStore implements CounterStore {
  private readonly client: RedisClient;
  private readonly keyPrefix: string;
  private closed = false;
  private batch: Map<number, PendingBatch> | undefined;
  /** Key -> TTL (ms) of counts that may have been created without their TTL: see countFixedWindowsPlain. */
  private readonly owedTtls = new Map<string, number>();
  /**
   * Holds calls back while Redis leaves one unanswered past its deadline (stall-guard.ts). Single node only: in a
   * cluster one paused master would hold back the calls for every other master too.
   */
  private readonly stall: StallGuard | undefined;

  /** Takes ownership of `client`: close() closes it. */
  constructor(client: RedisClient) {
    this.client = client;
    // ioredis prefixes keys itself; the prefix changes the hash slot, so grouping must include it.
    this.keyPrefix = client.options.keyPrefix ?? '';
    this.stall = client.isCluster ? undefined : new StallGuard();
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (after a restart or SCRIPT FLUSH).
    for (const [name, lua] of [
      [SCRIPT_NAME, COUNTER_SCRIPT],
      [BATCH_SCRIPT_NAME, COUNTER_SCRIPT],
      [FIXED_WINDOW_SCRIPT_NAME, FIXED_WINDOW_SCRIPT],
    ] as const) {
      if (!(name in client)) client.defineCommand(name, { lua });
    }
  }

  apply(ops: readonly CounterOp[], policy: ConsumePolicy, nowMs: number, signal: AbortSignal): Promise<CounterResult[]> {
    try {
      this.checkUsable(signal);
      validateRequest(ops, nowMs);
    } catch (error) {
      return Promise.reject(error);
    }
    if (ops.length === 0) return Promise.resolve([]);
    if (this.stall?.stalled) return this.stall.clear(signal).then(() => this.apply(ops, policy, nowMs, signal));
    if (policy === 'always') return raceAbort(this.enqueue(ops, nowMs, signal), signal, this.stall);
    return raceAbort(this.run(ops, policy, nowMs, signal), signal, this.stall);
  }

  /**
   * Under `always` each op stands alone, so the ops of concurrent requests can share one script call: requests
   * arriving in the same event-loop turn (with the same nowMs) are flushed together. Each request still costs at
   * most one round trip; under load, the per-command cost in ioredis and Redis is paid once per turn instead.
   */
  private enqueue(ops: readonly CounterOp[], nowMs: number, signal: AbortSignal): Promise<CounterResult[]> {
    return new Promise<CounterResult[]>((resolve, reject) => {
      const batch = this.flushSoon();
      let pending = batch.get(nowMs);
      if (pending === undefined) {
        pending = { ops: [], waiters: [] };
        batch.set(nowMs, pending);
      }
      pending.waiters.push({ count: ops.length, signal, resolve, reject });
      pending.ops.push(...ops);
      // Keep one script call short: Redis runs it without serving anyone else.
      if (pending.ops.length >= MAX_BATCH_OPS) {
        batch.delete(nowMs);
        this.send(pending, nowMs);
      }
    });
  }

  /** The batches of this turn, with a flush scheduled for the end of it. */
  private flushSoon(): Map<number, PendingBatch> {
    if (this.batch === undefined) {
      this.batch = new Map();
      setImmediate(() => this.flush());
    }
    return this.batch;
  }

  /**
   * Sends every batch of the turn, and the TTLs owed (countFixedWindowsPlain), in one socket write on a single node:
   * each call below writes synchronously (autoPipeliningIgnoredCommands), and Redis reads it all in one wake-up.
   */
  private flush(): void {
    const batch = this.batch;
    this.batch = undefined;
    const socket = this.client instanceof Redis ? (this.client.stream as Redis['stream'] | undefined) : undefined;
    socket?.cork();
    this.payOwedTtls();
    for (const [nowMs, pending] of batch ?? []) this.send(pending, nowMs);
    socket?.uncork();
  }

  private send(batch: PendingBatch, nowMs: number): void {
    const pending = withoutExpired(batch);
    if (pending.waiters.length === 0) return;
    void this.runBatch(pending.ops, nowMs).then((settled) => {
      let at = 0;
      for (const waiter of pending.waiters) {
        const mine = settled.slice(at, at + waiter.count);
        const ops = pending.ops.slice(at, at + waiter.count);
        at += waiter.count;
        const failed = mine.find((result) => result instanceof BatchFailure);
        if (!(failed instanceof BatchFailure)) waiter.resolve(mine as CounterResult[]);
        else if (mine.every((result) => !(result instanceof BatchFailure) || refusedMidMigration(result.error)) && !waiter.signal.aborted) {
          this.callEachAlone(ops, mine, nowMs).then(waiter.resolve, waiter.reject);
        } else waiter.reject(failed.error);
      }
    });
  }

  /**
   * The ops of `results` that a slot being migrated refused, each in a call of its own: a call on one key follows the
   * migration (ASK), where one on several keys of the slot is refused until it ends. Refused, nothing ran, so this
   * counts each op once; a request whose deadline has passed is not retried (it was answered by failure_mode).
   */
  private async callEachAlone(ops: readonly CounterOp[], results: readonly (CounterResult | BatchFailure)[], nowMs: number): Promise<CounterResult[]> {
    return Promise.all(results.map((result, i) => (result instanceof BatchFailure ? this.call(ops, [i], 'always', nowMs).then(([one]) => one!) : result)));
  }

  /**
   * `always` for a batch, one call per slot group, each group settled on its own: a request whose ops all sit in
   * slots that answered gets its counts even when another master fails. With one outcome for the whole batch, a dead
   * or failing-over master would fail every request of the turn, while the healthy masters had counted theirs:
   * answered by failure_mode, yet counted. Never rejects.
   */
  private async runBatch(ops: readonly CounterOp[], nowMs: number): Promise<(CounterResult | BatchFailure)[]> {
    const groups = this.groupBySlot(ops);
    const replies = await Promise.allSettled(groups.map((group) => this.call(ops, group, 'always', nowMs)));
    const results = new Array<CounterResult | BatchFailure>(ops.length);
    groups.forEach((group, g) => {
      const reply = replies[g]!;
      const failure = reply.status === 'rejected' ? new BatchFailure(reply.reason) : undefined;
      group.forEach((opIndex, j) => (results[opIndex] = failure ?? (reply as PromiseFulfilledResult<CounterResult[]>).value[j]!));
    });
    return results;
  }

  ping(signal: AbortSignal): Promise<void> {
    try {
      this.checkUsable(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.stall?.stalled) return this.stall.clear(signal).then(() => this.ping(signal));
    const answered = this.client instanceof Cluster ? this.clusterServes(this.client) : this.client.ping().then(() => undefined);
    return raceAbort(answered, signal, this.stall);
  }

  /**
   * A cluster that refuses every call (CLUSTERDOWN: a master gone with no replica to promote) still answers PING,
   * so readiness asks a node for the cluster's state instead: down is not ready, as a single Redis that is down.
   */
  private async clusterServes(cluster: Cluster): Promise<void> {
    const down = clusterDownReason(String(await cluster.cluster('INFO')));
    if (down !== undefined) throw new StoreError(ErrorCode.STORE_UNAVAILABLE, `redis: ${down}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      this.payOwedTtls(); // new counts must not outlive this process without their TTL
      // QUIT lets in-flight replies arrive; a paused or unreachable server must not hold shutdown, though.
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 1000);
        timer.unref();
      });
      const quit = this.client.quit().then(
        () => true,
        () => false,
      );
      const quitCleanly = await Promise.race([quit, gaveUp]);
      clearTimeout(timer);
      if (quitCleanly) return;
    }
    // Not connected (or QUIT failed): stop reconnecting and drop the sockets.
    this.client.disconnect();
  }

  private checkUsable(signal: AbortSignal): void {
    if (signal.aborted) throw deadlineError();
    if (this.closed) throw new StoreError(ErrorCode.STORE_UNAVAILABLE, 'redis counter store is closed');
  }

  /**
   * `split`: one group per op, as for ops in different slots. A slot being migrated refuses a call on several of its
   * keys (ASK to a node that lacks some of them, or TRYAGAIN) until the migration ends, while a call on one key follows
   * it: such a refusal, before anything was written, runs the request again split (its policy best effort across the
   * ops, as across slots).
   */
  private async run(
    ops: readonly CounterOp[],
    policy: ConsumePolicy,
    nowMs: number,
    signal: AbortSignal,
    split = false,
  ): Promise<CounterResult[]> {
    const groups = split ? ops.map((_, i) => [i]) : this.groupBySlot(ops);
    const again = (error: unknown): Promise<CounterResult[]> => {
      if (split || groups.every((group) => group.length === 1) || !refusedMidMigration(error)) throw error;
      if (signal.aborted) throw deadlineError();
      return this.run(ops, policy, nowMs, signal, true);
    };
    if (groups.length === 1 || policy === 'always') {
      // `always` needs no cross-op decision, so each slot group decides for itself.
      try {
        return merge(ops.length, groups, await Promise.all(groups.map((group) => this.call(ops, group, policy, nowMs))));
      } catch (error) {
        // With several groups, another group's call may have written: only a single one is run again.
        if (groups.length === 1) return await again(error);
        throw error;
      }
    }
    // Ops in several slots under a policy that looks at all ops: read every group, decide here, then write.
    // Each call is atomic within its slot only: a concurrent request may change a counter between the two phases,
    // so across slots this policy is best effort (as envoyproxy/ratelimit's GET-then-INCRBY is), while every
    // counter stays exact.
    let readings: CounterResult[][];
    try {
      readings = await Promise.all(groups.map((group) => this.call(ops, group, 'evaluate', nowMs)));
    } catch (error) {
      return await again(error); // evaluating writes nothing
    }
    const evaluated = merge(ops.length, groups, readings);
    if (signal.aborted) throw deadlineError(); // do not write for a request that has been answered
    const consume = decideConsumption(
      policy,
      evaluated.map((result, i) => isOver(result, ops[i]!.capacity)),
    );
    const replies = await Promise.all(groups.map((group) => this.call(ops, group, 'apply', nowMs, consume)));
    return merge(ops.length, groups, replies);
  }

  /** Op indexes per hash slot; a single group when not talking to a cluster. */
  private groupBySlot(ops: readonly CounterOp[]): number[][] {
    if (!this.client.isCluster) return [ops.map((_, i) => i)];
    const bySlot = new Map<number, number[]>();
    ops.forEach((op, i) => {
      const slot = keySlot(this.keyPrefix + op.key);
      const group = bySlot.get(slot);
      if (group === undefined) bySlot.set(slot, [i]);
      else group.push(i);
    });
    return [...bySlot.values()];
  }

  private async call(
    ops: readonly CounterOp[],
    indexes: readonly number[],
    mode: ScriptMode,
    nowMs: number,
    consume?: readonly boolean[],
  ): Promise<CounterResult[]> {
    if (mode === 'always' && indexes.every((i) => ops[i]!.algorithm === 'fixed_window' && ops[i]!.hits > 0)) {
      return indexes.length <= MAX_PLAIN_OPS && distinctKeys(ops, indexes)
        ? this.countFixedWindowsPlain(ops, indexes, nowMs)
        : this.countFixedWindows(ops, indexes);
    }
    const keys: string[] = [];
    let packed = '';
    for (const i of indexes) {
      const op = ops[i]!;
      keys.push(op.key);
      packed += `${ALGORITHM_LETTER[op.algorithm]}${op.hits},${op.capacity},${op.windowMs},${op.refill},${op.ttlMs};`;
    }
    const mask = consume ? indexes.map((i) => (consume[i] ? '1' : '0')).join('') : '';
    // Only a batch calls with `always` (apply() sends every `always` request through enqueue); a value a plain INCRBY
    // could not count comes back as `apply`.
    const name = mode === 'always' ? BATCH_SCRIPT_NAME : SCRIPT_NAME;
    const reply = await (this.client as unknown as ScriptRunner)[name](keys.length, ...keys, mode, nowMs, mask, packed);
    return parseReply(reply, indexes.length);
  }

  /**
   * A small batch of counting fixed windows, each on its own key: what a service below saturation sends (a request or
   * two per event-loop turn). One INCRBY per window, written with the rest of the turn's batches (flush()).
   *
   * A window's TTL is set by the hit that created its count (INCRBY answered `hits`), as FIXED_WINDOW_SCRIPT does
   * inside Redis: here the count is owed a PEXPIRE, which leaves with the next turn's write (under load, in the next
   * batch's write rather than in one of its own: docs/benchmarks.md), and close() sends what is owed. A count whose
   * INCRBY answer or PEXPIRE was lost to a dropped connection is owed one too, and gets it with the first batch that
   * reaches Redis again. (A key that already had its TTL only has it moved a little later: harmless, the key names
   * its window.)
   *
   * A value INCRBY cannot count is replaced by COUNTER_SCRIPT, which reads it without adding to it again; a negative
   * one (INCRBY answered less than `hits`) reads as empty and is SET to the hits. Either is one more round trip, on
   * a path for values this store never writes. Keys are distinct, so each op's INCRBY is the only one on its key in
   * the batch. Any other refusal (OOM, a read-only replica) goes to the script too and comes back as its error.
   */
  private async countFixedWindowsPlain(ops: readonly CounterOp[], indexes: readonly number[], nowMs: number): Promise<CounterResult[]> {
    const counted = indexes.map((i) => this.client.incrby(ops[i]!.key, ops[i]!.hits).catch((error: unknown) => {
      if (error instanceof ReplyError) return undefined;
      throw error;
    }));
    const afters = await Promise.all(counted).catch((error: unknown) => {
      // Which counts this batch created is unknown: all of them are owed a TTL (one they have is only renewed).
      for (const i of indexes) this.oweTtl(ops[i]!.key, ops[i]!.ttlMs);
      throw error;
    });
    const results = new Array<CounterResult>(indexes.length);
    const replaced: number[] = [];
    const negatives: Promise<unknown>[] = [];
    afters.forEach((after, j) => {
      const op = ops[indexes[j]!]!;
      if (after === undefined) {
        replaced.push(j);
        return;
      }
      if (after < op.hits) {
        // INCRBY counted a negative number, which reads as empty: the count starts over at these hits.
        negatives.push(this.client.set(op.key, String(op.hits), 'PX', op.ttlMs));
        results[j] = { before: 0, after: op.hits, consumed: true };
        return;
      }
      if (after === op.hits) {
        this.oweTtl(op.key, op.ttlMs);
        this.flushSoon();
      }
      results[j] = { before: after - op.hits, after, consumed: true };
    });
    if (negatives.length > 0) await Promise.all(negatives);
    if (replaced.length > 0) {
      // `apply` with every op consuming is what `always` does, through the general script.
      const replies = await this.call(ops, replaced.map((j) => indexes[j]!), 'apply', nowMs, ops.map(() => true));
      replaced.forEach((j, r) => (results[j] = replies[r]!));
    }
    return results;
  }

  private oweTtl(key: string, ttlMs: number): void {
    if (this.owedTtls.size < MAX_OWED_TTLS) this.owedTtls.set(key, ttlMs);
  }

  /**
   * Writes the PEXPIREs owed, once connected (while Redis is down each would fail at once, at every flush). One that
   * fails stays owed, for a later flush: only traffic schedules one after a failure, so an outage does not spin.
   */
  private payOwedTtls(): void {
    if (this.owedTtls.size === 0 || this.client.status !== 'ready') return;
    for (const [key, ttlMs] of this.owedTtls) this.client.pexpire(key, ttlMs).catch(() => this.oweTtl(key, ttlMs));
    this.owedTtls.clear();
  }

  private async countFixedWindows(ops: readonly CounterOp[], indexes: readonly number[]): Promise<CounterResult[]> {
    const keys: string[] = [];
    let packed = '';
    for (const i of indexes) {
      const op = ops[i]!;
      keys.push(op.key);
      packed += `${op.hits},${op.ttlMs};`;
    }
    const reply = await (this.client as unknown as ScriptRunner)[FIXED_WINDOW_SCRIPT_NAME](keys.length, ...keys, packed);
    if (!Array.isArray(reply) || reply.length !== indexes.length || !reply.every((v) => typeof v === 'number')) {
      throw unexpectedReply(reply);
    }
    return indexes.map((opIndex, j) => {
      const after = reply[j] as number;
      return { before: after - ops[opIndex]!.hits, after, consumed: true };
    });
  }
}

/**
 * The batch without the requests whose deadline passed while they waited for the flush (the event loop was busy):
 * they were answered already (failure_mode), so their hits must not be counted. They are settled here, so that no
 * StallGuard takes them for calls Redis has not answered.
 */
function withoutExpired(batch: PendingBatch): PendingBatch {
  if (!batch.waiters.some((w) => w.signal.aborted)) return batch;
  const live: PendingBatch = { ops: [], waiters: [] };
  let at = 0;
  for (const waiter of batch.waiters) {
    if (!waiter.signal.aborted) {
      live.waiters.push(waiter);
      for (let i = at; i < at + waiter.count; i++) live.ops.push(batch.ops[i]!);
    } else {
      waiter.reject(deadlineError());
    }
    at += waiter.count;
  }
  return live;
}

/** The error of a slot group's call, in place of each of its ops' results (runBatch). */
class BatchFailure {
  constructor(readonly error: unknown) {}
}

function distinctKeys(ops: readonly CounterOp[], indexes: readonly number[]): boolean {
  if (indexes.length < 2) return true;
  const keys = new Set<string>();
  for (const i of indexes) keys.add(ops[i]!.key);
  return keys.size === indexes.length;
}

function parseReply(reply: unknown, count: number): CounterResult[] {
  if (!Array.isArray(reply) || reply.length !== count * 3 || !reply.every((v) => typeof v === 'number')) {
    throw unexpectedReply(reply);
  }
  const values = reply as number[];
  const results: CounterResult[] = [];
  for (let i = 0; i < count; i++) {
    results.push({ before: values[3 * i]!, after: values[3 * i + 1]!, consumed: values[3 * i + 2] === 1 });
  }
  return results;
}

/** Puts per-group results back in op order. */
function merge(count: number, groups: readonly number[][], replies: readonly CounterResult[][]): CounterResult[] {
  const results = new Array<CounterResult>(count);
  groups.forEach((group, g) => group.forEach((opIndex, j) => (results[opIndex] = replies[g]![j]!)));
  return results;
}

/**
 * Why a cluster serves no call, from a node's CLUSTER INFO: undefined while cluster_state is ok (some slots may be
 * unserved then, with cluster-require-full-coverage no: their calls fail, the others count).
 */
export function clusterDownReason(info: string): string | undefined {
  const field = (name: string): string | undefined => new RegExp(`^${name}:(\\S*)`, 'm').exec(info)?.[1];
  const state = field('cluster_state');
  if (state === 'ok') return undefined;
  const slots = ['cluster_slots_ok', 'cluster_slots_pfail', 'cluster_slots_fail'].filter((name) => field(name) !== undefined).map((name) => `${name}:${field(name)}`);
  return `CLUSTERDOWN: cluster_state:${state ?? 'unknown'}${slots.length > 0 ? ` (${slots.join(', ')})` : ''}`;
}

/**
 * A call refused because its slot is being migrated and not all of its keys are on one side yet: the source answers
 * ASK or TRYAGAIN, the importing node TRYAGAIN (and MOVED to ioredis's retry of that, sent without ASKING), until
 * ioredis gives up after its redirections on whichever came last. Each is a refusal before anything ran.
 */
export function refusedMidMigration(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /^(?:redis: )?(?:Too many Cluster redirections\. Last error: (?:\w*Error: )?)?(?:ASK|TRYAGAIN|MOVED) /.test(message);
}

function unexpectedReply(reply: unknown): StoreError {
  return new StoreError(ErrorCode.STORE_UNAVAILABLE, `redis: unexpected script reply ${JSON.stringify(reply)}`);
}

function toStoreError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StoreError(ErrorCode.STORE_UNAVAILABLE, `redis: ${message}`, { cause: error });
}

/**
 * Settles with `work`, or with STORE_TIMEOUT as soon as `signal` aborts, whichever comes first. `work` keeps its
 * handlers, so a reply (or error) arriving after the deadline is dropped rather than reported as unhandled; with a
 * `stall` guard, it counts as overdue until then.
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal, stall?: StallGuard): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const unsubscribe = whenAborted(signal, () => {
      late = true;
      stall?.overdue();
      reject(deadlineError());
    });
    const settled = (): void => {
      unsubscribe();
      if (late) stall?.answered();
    };
    work.then(
      (value) => {
        settled();
        resolve(value);
      },
      (error: unknown) => {
        settled();
        reject(toStoreError(error));
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Hash slots. ioredis computes them with cluster-key-slot, an untyped transitive dependency; the algorithm is
// small and fixed by the Redis Cluster spec (CRC16/XMODEM of the key, or of its {hash tag}, mod 16384), and the
// integration test checks it against CLUSTER KEYSLOT.

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** The Redis Cluster hash slot of `key`. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    // Braces are ASCII, so string indexes and UTF-8 byte offsets find the same tag.
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(key, 'utf8')) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc & 16383;
}
