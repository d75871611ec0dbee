// One ext_proc stream (one HTTP request) as a state machine: each ProcessingMessage in, exactly one answer of the
// matching type out (or an immediate response). The rules it applies are the pure functions next to it; the cache
// store, clock, randomness, log and metrics are passed in.
//
// Phases, with the shipped header-only Envoy config (bodies NONE, allow_mode_override):
//   request_headers   ids and trace context, route, header validation, cache lookup (a hit answers at once, and so
//                     does a stale entry within its window while another request holds its refresh lock),
//                     request header rules; asks for the request body (mode_override BUFFERED) only when a
//                     validation rule needs its bytes, and then the request trailers too.
//   request_body      body validation (400/413) or continue.
//   response_headers  response header rules, x-request-id, cache marks; asks for the response body only when the
//                     response will be stored; invalidates the path after a successful unsafe request. Skipped
//                     (mode_override) when none of that applies and Envoy echoes the request id (needsResponsePhase).
//   response_body     stores the response, continues unchanged.
//   trailers          answered unchanged (a response with trailers is not stored).

import { randomUUID } from 'node:crypto';
import { splitPath, callerKey, pathKey, variantKey, varyValue } from './cache-key.js';
import { chooseExtprocRoute, pathMatchesFolding } from './route-choice.js';
import {
  answersNotModified, currentAgeSeconds, lookupOutcome, needsRefreshLock, NOT_MODIFIED_HEADERS, requestCacheDecision, storeDecision,
  UNSTORED_HEADERS, type FoundEntry, type RefreshLock, type RequestCacheDecision,
} from './cacheability.js';
import type { ExtprocRoute, ExtprocSettings, HeaderRules } from './config.js';
import { applyMutation, headerLines, headerValue, headerValues, MutationBuilder, NO_MUTATION, textAsHeaderValue, type HeaderList } from './headers.js';
import { acceptRequestId, continueTrace, formatTraceparent, type RandomHex, type TraceContext } from './ids.js';
import { callerIdentity, type Identity } from './identity.js';
import type { ExtprocObserver, ModeOverride, ProcessingAnswer, ProcessingInput, StreamLog } from './types.js';
import { safeHeaderValue } from './templates.js';
import { ambiguousPath, bodyTooLarge, hasRequestBody, needsBody, problemDocument, validateBody, validateHeaders, type Problem } from './validation.js';
import type { CachedResponse, CacheStore } from '../store/cache-store.js';
import type { FailureStreak } from '../shared/failure-streak.js';
import { httpDateMs } from '../shared/http-date.js';
import { foldPathCase, upstreamReadings } from '../shared/normalize-path.js';
import type { Clock } from '../shared/clock.js';

export interface StreamDeps {
  /** The config snapshot this stream uses from start to end. */
  readonly settings: ExtprocSettings;
  readonly cache: CacheStore;
  /** Shared by every stream: a cache outage is logged when it starts and when it ends, not per request. */
  readonly cacheHealth: FailureStreak;
  readonly clock: Clock;
  readonly randomHex: RandomHex;
  readonly observer: ExtprocObserver;
  readonly log: StreamLog;
  /** A route named by Envoy (gRPC initial metadata x-portcullis-route, set per route in ExtProcPerRoute). */
  readonly routeHint: string | undefined;
  readonly newRequestId?: () => string;
}

interface RequestState {
  readonly method: string;
  readonly rawPath: string;
  readonly path: string;
  readonly host: string;
  readonly headers: HeaderList;
  readonly route: ExtprocRoute | undefined;
  readonly requestId: string;
  readonly trace: TraceContext;
  readonly vars: (name: string) => string | undefined;
}

interface CacheState {
  readonly pathKey: string;
  readonly variant: string;
  readonly decision: RequestCacheDecision;
  /** 'miss': looked up, nothing usable; 'skipped': not looked up (request directives); 'failed': the store failed. */
  lookup: 'miss' | 'skipped' | 'failed';
  /** This request holds the refresh lock of the stale entry it found: its response is to replace the entry. */
  refreshing: boolean;
}

interface PendingStore {
  readonly entry: Omit<CachedResponse, 'body'>;
  readonly ttlMs: number;
  readonly chunks: Buffer[];
  size: number;
}

type Answer = ProcessingAnswer;

export class ExtprocStream {
  private request: RequestState | undefined;
  private cacheState: CacheState | undefined;
  private pendingStore: PendingStore | undefined;
  private validation: { readonly chunks: Buffer[]; size: number } | undefined;
  /** Path keys to invalidate when the unsafe request succeeds. */
  private invalidateOnSuccess: readonly string[] | undefined;
  private log: StreamLog;

  constructor(private readonly deps: StreamDeps) {
    this.log = deps.log;
  }

  /** The ids of this stream once request headers were seen (for the handler's own log lines). */
  get ids(): { requestId: string; traceId: string } | undefined {
    return this.request && { requestId: this.request.requestId, traceId: this.request.trace.traceId };
  }

  async handle(input: ProcessingInput): Promise<Answer> {
    const m = input.message;
    this.deps.observer.message(m.kind);
    switch (m.kind) {
      case 'request_headers':
        return this.requestHeaders(m.headers, m.endOfStream, input);
      case 'request_body':
        return this.requestBody(m.body, m.endOfStream);
      case 'response_headers':
        return this.responseHeaders(m.headers, m.endOfStream);
      case 'response_body':
        return this.responseBody(m.body, m.endOfStream);
      case 'request_trailers':
        return this.requestTrailers();
      case 'response_trailers':
        this.pendingStore = undefined;
        return { kind: 'response_trailers' };
    }
  }

  /**
   * The stream ended (gracefully) while the body a validating route asked for had not come: true then. Envoy sends
   * it unless it ignored the mode_override (allow_mode_override off, send_body_without_waiting_for_header_response, a
   * FULL_DUPLEX_STREAMED body mode, an allowed_override_modes list: docs/extproc.md), and then the request went to
   * the upstream unvalidated. (An upstream that answers before the body is sent ends the exchange the same way.)
   */
  endedWithoutAskedBody(): boolean {
    if (this.validation === undefined) return false;
    this.validation = undefined;
    this.deps.observer.askedBody('never_came');
    return true;
  }

  /** The stream ended before the response completed (client reset, Envoy timeout): nothing half-seen is stored. */
  abort(reason: string): void {
    if (this.pendingStore) this.log.debug({ reason }, 'stream ended before the response body completed; not stored');
    this.pendingStore = undefined;
    this.validation = undefined;
  }

  private async requestHeaders(headers: HeaderList, endOfStream: boolean, input: ProcessingInput): Promise<Answer> {
    const { settings } = this.deps;
    // Envoy sends one request_headers per stream; a client that sends another starts over, and nothing decided for
    // the first request (its cache key above all) carries over to the second.
    this.cacheState = undefined;
    this.pendingStore = undefined;
    this.validation = undefined;
    this.invalidateOnSuccess = undefined;
    const method = headerValue(headers, ':method') ?? '';
    const rawPath = headerValue(headers, ':path') ?? '/';
    const host = headerValue(headers, ':authority') ?? headerValue(headers, 'host') ?? '';
    const scheme = headerValue(headers, ':scheme');
    const split = splitPath(rawPath);
    const choice = chooseExtprocRoute(settings.routes, split, method, this.deps.routeHint);
    const route = choice.route;
    const mutation = new MutationBuilder();

    const idHeader = settings.requestId.header;
    const sentId = headerValue(headers, idHeader);
    const kept = acceptRequestId(sentId);
    const requestId = kept ?? (this.deps.newRequestId ?? randomUUID)();
    // Two lines of the header (joined, they differ from the first): the kept id is set alone, so the upstream sees
    // the one id the logs and the response carry.
    if (kept === undefined || headerValues(headers, idHeader) !== sentId) mutation.set(idHeader, requestId);

    // Every traceparent line: two of them are invalid (ids.ts), where reading the first would continue a trace the
    // second contradicts. Envoy hands ext_proc each line the client sent as its own entry.
    const trace = continueTrace(headerLines(headers, 'traceparent'), headerValues(headers, 'tracestate'), this.deps.randomHex);
    mutation.set('traceparent', formatTraceparent(trace));
    if (trace.started && headerValue(headers, 'tracestate') !== undefined) mutation.remove('tracestate');
    if (settings.tracing.mirror.traceId) mutation.set(settings.tracing.mirror.traceId, trace.traceId);
    if (settings.tracing.mirror.spanId) mutation.set(settings.tracing.mirror.spanId, trace.spanId);

    const identity: Identity = input.identity ?? {};
    const clientIp = clientAddress(input.attributes, headers);
    const builtins: Record<string, string | undefined> = {
      request_id: requestId, trace_id: trace.traceId, span_id: trace.spanId, client_ip: clientIp,
      route: route && textAsHeaderValue(route.name), method, path: split.path, host,
    };
    // Own fields only: `constructor` and `__proto__` are valid variable names, and an object answers them from
    // Object.prototype ("function Object() { [native code] }") where a missing variable must set no header.
    const vars = (name: string): string | undefined =>
      (Object.hasOwn(builtins, name) ? builtins[name] : Object.hasOwn(identity, name) ? identity[name] : undefined);
    this.request = { method, rawPath, path: split.path, host, headers, route, requestId, trace, vars };
    this.log = new LazyBoundLog(this.deps.log, { request_id: requestId, trace_id: trace.traceId, span_id: trace.spanId, route: route?.name });
    this.log.debug({ method, path: split.path, traceStarted: trace.started }, 'request headers');

    if (choice.kind !== 'route') {
      this.deps.observer.ambiguousPath(choice.kind === 'ambiguous' ? 'rejected' : 'passed');
      if (choice.kind === 'ambiguous') {
        this.log.info({ reason: choice.reason, reading: choice.reading }, 'path refused: upstreams read it in different ways, and one reading is a route that validates');
        return this.reject(ambiguousPath(choice.reason));
      }
      this.log.debug({ reason: choice.reason }, 'path read in different ways by upstreams; no reading is a route that validates');
    }

    if (route?.validate) {
      const facts = { headers, query: split.query, hasBody: hasRequestBody(headers, endOfStream) };
      const problem = validateHeaders(route.validate, facts);
      if (problem) return this.reject(problem);
      if (needsBody(route.validate, facts)) {
        this.validation = { chunks: [], size: 0 };
      }
    }

    if (route?.cache && !split.normal) {
      // The path as sent, without its query: a query may carry credentials (api_key=, access_token=).
      this.log.debug({ path: rawPath.split(/[?#]/, 1)[0] }, 'path not in normal form (dot segments, escapes); the cache is not used');
    } else if (route?.cache) {
      const decision = requestCacheDecision(method, headers);
      if (decision.lookup || decision.store || decision.onlyIfCached) {
        const caller = route.cache.public ? '' : callerKey(callerIdentity(input.identity), [headerValues(headers, 'authorization'), headerValues(headers, 'x-api-key'), headerValues(headers, 'cookie')]);
        const state: CacheState = {
          pathKey: pathKey(host, cachedPath(route, split.path), scheme), variant: variantKey(split.sortedQuery, caller), decision, lookup: 'skipped',
          refreshing: false,
        };
        this.cacheState = state;
        if (decision.lookup) {
          const hit = await this.lookup(state, headers);
          if (hit) return hit;
        }
        // The refresh must bring back a full response to store: the client's validators, matching the stale copy it
        // holds, would get a 304, which is not stored. The client gets the 200 instead, a correct answer to them.
        if (state.refreshing) mutation.remove('if-none-match').remove('if-modified-since');
        if (decision.onlyIfCached) {
          this.deps.observer.cache('miss');
          return this.immediate(504, new MutationBuilder().set('x-cache-status', 'MISS'), Buffer.alloc(0), 'portcullis_cache_only_if_cached_miss');
        }
      }
    }
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
      // A refused path changes whatever an upstream reads it as: `POST /catalog;x` is a POST to `/catalog` to Tomcat.
      const paths = split.refused === undefined ? [split.path] : upstreamReadings(split.path);
      const keys = paths.flatMap((p) => {
        const cached = this.cacheRouteFor(p, route);
        return cached ? [pathKey(host, cachedPath(cached, p), scheme)] : [];
      });
      if (keys.length > 0) this.invalidateOnSuccess = keys;
    }

    if (route) applyRules(mutation, route.requestHeaders, vars, this.log);
    const responsePhase = needsResponsePhase(settings, route, this.invalidateOnSuccess !== undefined);
    return {
      kind: 'request_headers',
      mutation: mutation.build(),
      modeOverride: this.validation
        // The trailers too: a body followed by trailers arrives without end_of_stream, and with Envoy's default
        // (request_trailer_mode SKIP) nothing would ever say it is complete, so it would pass unvalidated.
        ? { requestBody: 'BUFFERED', responseBody: 'NONE', responseHeaders: responsePhase ? 'SEND' : 'SKIP', requestTrailers: 'SEND' }
        // Said either way: the shipped configs skip the response phase unless asked (a 400 Envoy makes for a request it
        // cannot parse must not wait on ext_proc), a user's Envoy may send it unless told not to.
        : { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: responsePhase ? 'SEND' : 'SKIP' },
    };
  }

  private async requestBody(body: Buffer, endOfStream: boolean): Promise<Answer> {
    const validation = this.validation;
    const rules = this.request?.route?.validate;
    if (validation === undefined || rules === undefined) return { kind: 'request_body', mutation: NO_MUTATION, modeOverride: undefined };
    validation.chunks.push(body);
    validation.size += body.length;
    // Without max_body_bytes, max_message_bytes still bounds what is held: a BUFFERED body is one message, so a body
    // over it can only come in chunks (Envoy without allow_mode_override, streaming), which would be kept whole.
    const large = bodyTooLarge(rules.maxBodyBytes === undefined ? { ...rules, maxBodyBytes: this.deps.settings.maxMessageBytes } : rules, validation.size);
    if (large) {
      this.validation = undefined;
      this.deps.observer.askedBody('received');
      return this.reject(large);
    }
    if (!endOfStream) return { kind: 'request_body', mutation: NO_MUTATION, modeOverride: undefined };
    return this.finishValidation();
  }

  private requestTrailers(): Answer | Promise<Answer> {
    // A BUFFERED body followed by trailers arrives without end_of_stream: the trailers end it.
    if (this.validation) {
      const problem = this.completeBodyProblem();
      if (problem) return this.reject(problem);
    }
    return { kind: 'request_trailers' };
  }

  private finishValidation(): Answer {
    const problem = this.completeBodyProblem();
    if (problem) return this.reject(problem);
    return { kind: 'request_body', mutation: NO_MUTATION, modeOverride: undefined };
  }

  private completeBodyProblem(): Problem | undefined {
    const validation = this.validation;
    const rules = this.request?.route?.validate;
    this.validation = undefined;
    if (validation === undefined || rules === undefined || this.request === undefined) return undefined;
    this.deps.observer.askedBody('received');
    return validateBody(rules, Buffer.concat(validation.chunks));
  }

  private async responseHeaders(headers: HeaderList, endOfStream: boolean): Promise<Answer> {
    const request = this.request;
    if (request === undefined) {
      // The request phase never reached us (an earlier filter answered locally): nothing to correlate with.
      this.log.debug({ status: headerValue(headers, ':status') }, 'response headers without request headers; passed through');
      return { kind: 'response_headers', mutation: NO_MUTATION, modeOverride: undefined };
    }
    const { settings } = this.deps;
    const status = Number(headerValue(headers, ':status') ?? '0');
    const mutation = new MutationBuilder();
    if (request.route) applyRules(mutation, request.route.responseHeaders, request.vars, this.log);
    mutation.set(settings.requestId.header, request.requestId);
    if (settings.tracing.mirror.traceId) mutation.set(settings.tracing.mirror.traceId, request.trace.traceId);

    if (this.invalidateOnSuccess !== undefined && status >= 200 && status < 400) {
      for (const key of new Set(this.invalidateOnSuccess)) await this.invalidate(key);
    }

    let modeOverride: ModeOverride | undefined;
    const state = this.cacheState;
    const route = request.route;
    if (state && route?.cache) {
      const mark = this.storeOrMark(state, route, status, headers, endOfStream);
      mutation.set('x-cache-status', mark.status);
      modeOverride = mark.askForBody ? { requestBody: 'NONE', responseBody: mark.askForBody, responseHeaders: 'SEND' } : undefined;
      // No body will follow (a 204, or headers that end the stream): store now.
      if (endOfStream) await this.finishWithoutBody();
    } else if (route?.cache) {
      mutation.set('x-cache-status', 'BYPASS');
      this.deps.observer.cache('bypass');
    }
    return { kind: 'response_headers', mutation: mutation.build(), modeOverride };
  }

  private storeOrMark(
    state: CacheState, route: ExtprocRoute, status: number, headers: HeaderList, endOfStream: boolean,
  ): { status: 'MISS' | 'BYPASS'; askForBody: 'BUFFERED' | 'BUFFERED_PARTIAL' | undefined } {
    const request = this.request!;
    const lookedUp = state.lookup === 'miss';
    const mark = lookedUp ? 'MISS' : 'BYPASS';
    this.deps.observer.cache(lookedUp ? 'miss' : 'bypass');
    if (!state.decision.store || state.lookup === 'failed' || request.method !== 'GET') return { status: mark, askForBody: undefined };
    const sharedWithCredentials = route.cache!.public && (headerValue(request.headers, 'authorization') !== undefined || headerValue(request.headers, 'cookie') !== undefined);
    const nowMs = this.deps.clock.nowMs();
    const decision = storeDecision({
      status, headers, ttlSecondsByStatus: route.cache!.ttlSecondsByStatus, sharedWithCredentials, nowMs,
      staleWhileRevalidateSeconds: route.cache!.staleWhileRevalidateSeconds,
    });
    if (!decision.store) {
      this.log.debug({ reason: decision.reason, status }, 'response not stored');
      return { status: mark, askForBody: undefined };
    }
    const length = headerValue(headers, 'content-length');
    const knownLength = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    if (knownLength !== undefined && knownLength > this.deps.settings.cache.maxEntryBytes) {
      this.log.debug({ contentLength: knownLength }, 'response larger than cache.max_entry_bytes; not stored');
      return { status: mark, askForBody: undefined };
    }
    const varyNames = (headerValues(headers, 'vary') ?? '').split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);
    this.pendingStore = {
      entry: {
        status,
        headers: headers.filter(([n]) => !n.startsWith(':') && !UNSTORED_HEADERS.has(n)),
        storedAtMs: nowMs,
        initialAgeSeconds: decision.initialAgeSeconds,
        lifetimeSeconds: decision.lifetimeSeconds,
        staleWhileRevalidateSeconds: decision.staleWhileRevalidateSeconds,
        vary: varyNames.map((n) => [n, varyValue(headerValues(request.headers, n))] as const),
      },
      // Kept through its stale window too; the stream tells fresh from stale (lookupOutcome).
      ttlMs: (decision.ttlSeconds + decision.staleWhileRevalidateSeconds) * 1000,
      chunks: [],
      size: 0,
    };
    if (endOfStream) return { status: mark, askForBody: undefined };
    // Without a length, BUFFERED_PARTIAL stops at Envoy's buffer limit instead of failing the response.
    return { status: mark, askForBody: knownLength === undefined ? 'BUFFERED_PARTIAL' : 'BUFFERED' };
  }

  private async responseBody(body: Buffer, endOfStream: boolean): Promise<Answer> {
    const pending = this.pendingStore;
    if (pending) {
      pending.chunks.push(body);
      pending.size += body.length;
      if (pending.size > this.deps.settings.cache.maxEntryBytes) {
        this.log.debug({ size: pending.size }, 'response body larger than cache.max_entry_bytes; not stored');
        this.pendingStore = undefined;
      } else if (endOfStream) {
        this.pendingStore = undefined;
        await this.store(pending);
      }
    }
    return { kind: 'response_body', mutation: NO_MUTATION, modeOverride: undefined };
  }

  private async finishWithoutBody(): Promise<void> {
    const pending = this.pendingStore;
    this.pendingStore = undefined;
    if (pending) await this.store(pending);
  }

  private async store(pending: PendingStore): Promise<void> {
    const state = this.cacheState;
    if (!state) return;
    const entry: CachedResponse = { ...pending.entry, body: Buffer.concat(pending.chunks) };
    try {
      await this.deps.cache.set(state.pathKey, state.variant, entry, pending.ttlMs, this.budget());
      this.cacheAnswered();
      this.deps.observer.cache('stored');
      this.log.debug({ status: entry.status, ttlMs: pending.ttlMs, bytes: entry.body.length }, 'response stored');
    } catch (error) {
      this.deps.observer.cacheError('set');
      this.cacheFailed(error, 'cache store failed; response not stored');
    }
  }

  private async invalidate(key: string): Promise<void> {
    try {
      await this.deps.cache.invalidate(key, this.budget());
      this.cacheAnswered();
      this.deps.observer.cache('invalidated');
      this.log.debug({ method: this.request?.method }, 'cached entries of the path invalidated');
    } catch (error) {
      this.deps.observer.cacheError('invalidate');
      this.cacheFailed(error, 'cache invalidation failed');
    }
  }

  /** Warns at the first failure of an outage only; the rest are counted in metrics and logged at debug. */
  private cacheFailed(error: unknown, message: string): void {
    const err = (error as Error).message;
    if (this.deps.cacheHealth.failed(err)) this.log.warn({ err }, message);
    else this.log.debug({ err }, message);
  }

  private cacheAnswered(): void {
    const failures = this.deps.cacheHealth.answered();
    if (failures !== undefined) this.log.info({ failures }, 'cache store answering again');
  }

  private async lookup(state: CacheState, headers: HeaderList): Promise<Answer | undefined> {
    const nowMs = this.deps.clock.nowMs();
    let entry: CachedResponse | undefined;
    try {
      entry = await this.deps.cache.get(state.pathKey, state.variant, nowMs, this.budget());
    } catch (error) {
      state.lookup = 'failed';
      this.deps.observer.cacheError('get');
      this.cacheFailed(error, 'cache lookup failed; continuing without the cache');
      return undefined;
    }
    this.cacheAnswered();
    state.lookup = 'miss';
    if (entry === undefined) return undefined;
    if (!entry.vary.every(([name, value]) => varyValue(headerValues(headers, name)) === value)) return undefined;
    const age = currentAgeSeconds(entry.storedAtMs, entry.initialAgeSeconds, nowMs);
    const found: FoundEntry = { ageSeconds: age, lifetimeSeconds: entry.lifetimeSeconds, staleWhileRevalidateSeconds: entry.staleWhileRevalidateSeconds, request: state.decision };
    const lock = needsRefreshLock(found) ? await this.takeRefreshLock(state, nowMs) : 'unasked';
    switch (lookupOutcome(found, lock)) {
      case 'fresh':
        return this.hit(entry, age, headers, 'HIT');
      case 'stale-servable':
        return this.hit(entry, age, headers, 'STALE');
      case 'stale-refresh':
        state.refreshing = true;
        this.log.debug({ age, lifetime: entry.lifetimeSeconds }, 'stale entry: this request refreshes it from the origin');
        return undefined;
      case 'miss':
        return undefined;
    }
  }

  private async takeRefreshLock(state: CacheState, nowMs: number): Promise<RefreshLock> {
    try {
      const taken = await this.deps.cache.tryLock(state.pathKey, state.variant, this.deps.settings.cache.refreshLockMs, nowMs, this.budget());
      this.cacheAnswered();
      return taken ? 'taken' : 'held';
    } catch (error) {
      this.deps.observer.cacheError('lock');
      this.cacheFailed(error, 'cache refresh lock failed; serving the stale entry');
      return 'failed';
    }
  }

  private hit(entry: CachedResponse, age: number, requestHeaders: HeaderList, mark: 'HIT' | 'STALE'): Answer {
    const request = this.request!;
    const { settings } = this.deps;
    const notModified = answersNotModified(
      entry.status,
      { ifNoneMatch: headerValues(requestHeaders, 'if-none-match'), ifModifiedSince: headerValues(requestHeaders, 'if-modified-since') },
      { etag: headerValue(entry.headers, 'etag'), lastModifiedMs: lastModifiedMs(entry) },
    );
    const stored = notModified ? entry.headers.filter(([n]) => (NOT_MODIFIED_HEADERS as readonly string[]).includes(n)) : entry.headers;
    const rules = new MutationBuilder();
    if (request.route) applyRules(rules, request.route.responseHeaders, request.vars, this.log);
    rules.set(settings.requestId.header, request.requestId);
    if (settings.tracing.mirror.traceId) rules.set(settings.tracing.mirror.traceId, request.trace.traceId);
    rules.set('x-cache-status', mark).set('age', String(age));
    const headers = applyMutation(stored, rules.build());
    const mutation = new MutationBuilder();
    const seen = new Set<string>();
    for (const [name, value] of headers) {
      if (seen.has(name)) mutation.append(name, value);
      else mutation.set(name, value);
      seen.add(name);
    }
    this.deps.observer.cache(mark === 'STALE' ? 'stale' : notModified ? 'not_modified' : 'hit');
    this.log.debug({ status: notModified ? 304 : entry.status, age, stale: mark === 'STALE' }, 'answered from the cache');
    const details = mark === 'STALE' ? 'portcullis_cache_stale' : 'portcullis_cache_hit';
    return this.immediate(notModified ? 304 : entry.status, mutation, notModified ? Buffer.alloc(0) : entry.body, details);
  }

  private reject(problem: Problem): Answer {
    const request = this.request!;
    this.deps.observer.validationFailed(problem.status);
    this.log.info({ status: problem.status, problem: problem.type, detail: problem.detail }, 'request rejected by validation');
    const headers = new MutationBuilder().set('content-type', 'application/problem+json').set(this.deps.settings.requestId.header, request.requestId);
    return this.immediate(problem.status, headers, problemDocument(problem, request.path, request.requestId), `portcullis_validation_${problem.status}`);
  }

  private immediate(status: number, headers: MutationBuilder, body: Buffer, details: string): Answer {
    // The exchange ends here: a body asked for to validate (a GET with a body answered from the cache, say) is not
    // coming, and the request never reaches the upstream, so it is not one that passed unvalidated.
    this.validation = undefined;
    return { kind: 'immediate', status, headers: headers.build(), body, details };
  }

  private budget(): AbortSignal {
    return AbortSignal.timeout(this.deps.settings.cache.timeoutMs);
  }

  /**
   * The cached route an unsafe request's path belongs to, whatever methods the route matches. A cached route Envoy
   * named (the hint) counts first: lookups and stores on that Envoy route used it, whatever its own match says.
   */
  private cacheRouteFor(path: string, picked: ExtprocRoute | undefined): ExtprocRoute | undefined {
    if (picked?.cache !== undefined && this.deps.routeHint === picked.name) return picked;
    return this.deps.settings.routes.find((r) => r.cache !== undefined && pathMatchesFolding(r, path));
  }
}

/**
 * Whether a request's stream needs its response phase: something to write on the response, or a cache entry to mark,
 * store or invalidate. Without one, the request_headers answer tells Envoy to skip it (mode_override, honoured when
 * the filter has allow_mode_override), which saves a message each way and a wait on every response.
 */
export function needsResponsePhase(settings: ExtprocSettings, route: ExtprocRoute | undefined, invalidates: boolean): boolean {
  if (settings.requestId.echo === 'portcullis' || settings.tracing.mirror.traceId !== undefined || invalidates) return true;
  if (route === undefined) return false;
  const rules = route.responseHeaders;
  return route.cache !== undefined || rules.set.length > 0 || rules.append.length > 0 || rules.remove.length > 0;
}

/** The path a cache entry is keyed by: folded on an ignore_case route, whose upstream serves `/A` and `/a` alike. */
function cachedPath(route: ExtprocRoute, path: string): string {
  return route.match.ignoreCase ? foldPathCase(path) : path;
}

function applyRules(mutation: MutationBuilder, rules: HeaderRules, vars: (name: string) => string | undefined, log: StreamLog): void {
  for (const name of rules.remove) mutation.remove(name);
  for (const rule of rules.set) {
    const value = render(rule[1].render(vars), rule[0], log);
    if (value !== undefined) mutation.set(rule[0], value);
  }
  for (const rule of rules.append) {
    const value = render(rule[1].render(vars), rule[0], log);
    if (value !== undefined) mutation.append(rule[0], value);
  }
}

function render(value: string | undefined, name: string, log: StreamLog): string | undefined {
  if (value === undefined) return undefined;
  const safe = safeHeaderValue(value);
  if (safe === undefined) log.warn({ header: name }, 'header rule produced a value Envoy would refuse (a control character, or over 16 KiB); not set');
  return safe;
}

/** When a stored response was last modified, for If-Modified-Since (RFC 9111 §4.3.2): Last-Modified, else Date, else when stored. */
function lastModifiedMs(entry: CachedResponse): number {
  // When it was stored places an RFC 850 date's two-digit year, as it would have when the response arrived.
  const header = (name: string): number | undefined => httpDateMs(headerValue(entry.headers, name), entry.storedAtMs);
  return header('last-modified') ?? header('date') ?? entry.storedAtMs;
}

/** source.address when the filter sends it (request_attributes), else the last x-forwarded-for hop Envoy added. */
export function clientAddress(attributes: Readonly<Record<string, string>>, headers: HeaderList): string | undefined {
  const source = attributes['source.address'];
  if (source) {
    const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(source);
    if (bracket) return bracket[1];
    const colon = source.lastIndexOf(':');
    return colon > 0 && source.indexOf(':') === colon ? source.slice(0, colon) : source;
  }
  const xff = headerValues(headers, 'x-forwarded-for');
  const last = xff?.split(',').pop()?.trim();
  return last || headerValue(headers, 'x-envoy-external-address') || undefined;
}

/**
 * The stream's log with its ids bound, the child made only when a line is written at an enabled level: a pino child
 * per stream (with redaction) was a visible share of a header-only stream, and most streams write nothing at `info`.
 * A class, not closures: one object per stream.
 */
class LazyBoundLog implements StreamLog {
  private bound: StreamLog | undefined;
  constructor(private readonly parent: StreamLog, private readonly bindings: Record<string, unknown>) {}
  private line(level: 'debug' | 'info' | 'warn', object: object, message: string): void {
    if (this.parent.isLevelEnabled?.(level) === false) return;
    this.boundLog()[level](object, message);
  }
  private boundLog(): StreamLog {
    return (this.bound ??= this.parent.child(this.bindings));
  }
  child(more: Record<string, unknown>): StreamLog {
    return this.boundLog().child(more);
  }
  isLevelEnabled(level: 'debug' | 'info' | 'warn'): boolean {
    return this.parent.isLevelEnabled?.(level) ?? true;
  }
  debug(object: object, message: string): void {
    this.line('debug', object, message);
  }
  info(object: object, message: string): void {
    this.line('info', object, message);
  }
  warn(object: object, message: string): void {
    this.line('warn', object, message);
  }
}
