import { Backoff, type BackoffPolicy } from '../shared/backoff.js';
import type { Clock } from '../shared/clock.js';
import { retryAfterMs } from '../shared/retry-after.js';
import { sha256 } from '../shared/sha256.js';
import { bearerToken } from './bearer.js';
import { shown } from './jws.js';
import type { ExpiringLru } from './lru.js';
import { UnreadableBodyError, type AuthzObserver, type HttpClient, type HttpResponse, type RevocationKind } from './ports.js';
import { scopeList } from './scopes.js';
import { isUsableSubject, tierOf } from './subject.js';
import type { CheckInput, Identity, MaybePromise, Outcome } from './types.js';
import { untilAborted } from './wait.js';

export interface IntrospectionDeps {
  readonly url: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly cacheSeconds: number;
  readonly tierClaim: string;
  readonly http: HttpClient;
  /** Active and inactive answers alike (inactive ones stop a flood of bad tokens from reaching the server). */
  readonly cache: ExpiringLru<Identity | 'inactive'>;
  readonly clock: Clock;
  readonly observer: AuthzObserver;
  readonly maxTokenBytes: number;
  /** undefined: revocation state unknown (the caller already applied on_unavailable). */
  readonly isRevoked: (kind: RevocationKind, id: string) => boolean | undefined;
  /** Calls in flight, one per prepared config: a call to the endpoint of an earlier config never answers for this one. */
  readonly calls: IntrospectionCalls;
  /** Changes with the endpoint, credentials and claim mapping: answers cached under other settings are not used. */
  readonly generation: string;
  /** Whether the endpoint is left alone after failures; one per endpoint and credentials, kept across reloads. */
  readonly breaker: IntrospectionBreaker;
  /** Calls to the endpoint not ended yet, whichever config made them; one per URL, kept across reloads. */
  readonly outstanding: OutstandingCalls;
  /** authz.introspection.max_in_flight: a token that would need a call beyond this many gets on_failure at once. */
  readonly maxInFlight: number;
}

/** Calls in flight by token hash: concurrent Checks with one token share one call. */
export type IntrospectionCalls = Map<string, Promise<Answer>>;

/**
 * `endpoint`: the endpoint failed (no answer in time, a refused connection, an error status), as opposed to an answer
 * about this token that cannot be read; only those hold off calls for other tokens (IntrospectionBreaker).
 * `askedMs`: how long a 429 or 503 asked to be left alone (Retry-After). `held`: no call was made, the endpoint being
 * left alone after failures. `shed`: no call was made, max_in_flight calls being under way already.
 */
type Answer = Identity | 'inactive' | {
  readonly failure: string;
  readonly endpoint?: boolean;
  readonly askedMs?: number;
  readonly held?: boolean;
  readonly shed?: boolean;
};

/** A call outlives the Check that started it (up to this bound), so its answer still lands in the cache. */
const CALL_TIMEOUT_MS = 5000;

/**
 * After the endpoint fails, it is not called for 1 s, then 2 s, 4 s … up to 30 s while it keeps failing (each up to a
 * fifth shorter, backoff.ts): an endpoint that is down, overloaded or refusing the gateway's credentials would
 * otherwise get a call per Check with an opaque token, each held open up to CALL_TIMEOUT_MS, just when it can least
 * take them. Checks in the meantime get introspection.on_failure at once. Every Check is refused while it is held
 * off, so the cap is shorter than a JWKS retry's: once the endpoint is back, Checks wait at most 30 s to notice.
 * A 429 or 503 with Retry-After holds it off at least that long, up to the same 30 s (a longer wait asked for would
 * refuse every opaque token for as long as the endpoint, or whatever answers in its name, cares to say).
 */
export const INTROSPECTION_BACKOFF: BackoffPolicy = Object.freeze({ firstMs: 1000, maxMs: 30_000, jitter: 0.2 });

/**
 * Circuit breaker of one introspection endpoint (per URL and credentials). Closed while the endpoint answers; open
 * for a backoff after a failure; then one call goes through as a probe (the first Check's, others still held off
 * until it ends): an answer closes it, a failure opens it for the next, longer, backoff. Calls started before it
 * opened that fail afterwards (a burst of distinct tokens against a dead endpoint fails all at once) do not lengthen
 * the backoff: one outage seen by fifty calls at once is one failure, not fifty doublings.
 */
export class IntrospectionBreaker {
  private readonly backoff: Backoff;
  /** Bumped whenever the state changes: a call's result counts only for the state it was started in. */
  private epoch = 0;
  private probing = false;
  private lastFailure = '';

  constructor(random: () => number, policy: BackoffPolicy = INTROSPECTION_BACKOFF) {
    this.backoff = new Backoff(policy, random);
  }

  /**
   * Before a call: the failure to answer with instead (the endpoint is left alone), or the epoch to report the call's
   * result with. The caller that gets an epoch makes the call and reports its end (failed or answered) exactly once.
   */
  admit(nowMs: number): { readonly epoch: number } | { readonly held: string } {
    if (this.backoff.failures === 0) return { epoch: this.epoch };
    if (this.probing || this.backoff.waiting(nowMs)) return { held: this.lastFailure };
    this.probing = true;
    return { epoch: this.epoch };
  }

  /** `askedMs`: the endpoint asked to be left alone this long (Retry-After); honoured up to the backoff's cap. */
  failed(epoch: number, nowMs: number, failure: string, askedMs = 0): void {
    if (epoch !== this.epoch) return;
    this.epoch++;
    this.probing = false;
    this.lastFailure = failure;
    this.backoff.failed(nowMs, askedMs);
  }

  answered(): void {
    if (this.backoff.failures === 0 && !this.probing) return;
    this.epoch++;
    this.probing = false;
    this.backoff.succeeded();
  }

  /** Failures in a row that opened it (0: closed); until when it stays open. */
  get state(): { readonly failures: number; readonly openUntilMs: number } {
    return { failures: this.backoff.failures, openUntilMs: this.backoff.closedUntilMs };
  }
}

/**
 * How many calls to one introspection endpoint are under way. Without a bound, an endpoint that is slow (not failing:
 * the breaker never opens) under a burst of distinct opaque tokens gets one call per token, each holding a connection
 * and a pending Check up to CALL_TIMEOUT_MS, and a flood of junk tokens turns the gateway into an amplifier against
 * the identity provider. Cached answers and Checks joining a call under way need no new call and are not bounded.
 */
export class OutstandingCalls {
  private calls = 0;

  /** A call starts; the caller checked `count` against its bound first (one turn: nothing started in between). */
  enter(): void {
    this.calls++;
  }

  /** A call entered ended (answered, failed or timed out). */
  leave(): void {
    this.calls--;
  }

  get count(): number {
    return this.calls;
  }
}

/** The endpoint's answer → an identity, inactive, or why it is unusable; cached here, whoever is still waiting. */
function interpret(response: HttpResponse, key: string, deps: IntrospectionDeps): Answer {
  const nowMs = deps.clock.nowMs();
  const body = response.body as Record<string, unknown> | undefined;
  if (response.status === 401 || response.status === 403) {
    return { failure: `introspection endpoint answered ${response.status}: it refuses the gateway's client credentials (client_id, client_secret_file)`, endpoint: true };
  }
  if (response.status !== 200) {
    return { failure: `introspection endpoint answered ${response.status}`, endpoint: true, askedMs: retryAfterMs(response.retryAfter, nowMs) };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { failure: 'introspection answer is not a JSON object' };
  // RFC 7662 §2.2: a JSON boolean. "true" is not one: an endpoint that sends it is broken, not saying yes.
  if (typeof body['active'] !== 'boolean') return { failure: `introspection answer has no boolean active (active: ${shown(body['active'])})` };
  // RFC 7662 §2.2: exp and nbf are NumericDate. Any other value is an answer we cannot read, not "no expiry".
  for (const claim of ['exp', 'nbf']) {
    const v = body[claim];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) return { failure: `introspection answered ${claim} that is not a number` };
  }
  const cacheUntil = nowMs + deps.cacheSeconds * 1000;
  const exp = body['exp'] === undefined ? undefined : (body['exp'] as number) * 1000;
  const nbf = body['nbf'] === undefined ? undefined : (body['nbf'] as number) * 1000;
  const subject = [body['sub'], body['username'], body['client_id']].find((v): v is string => typeof v === 'string' && v !== '');
  const early = nbf !== undefined && nbf > nowMs;
  if (!body['active'] || (exp !== undefined && exp <= nowMs) || early || !isUsableSubject(subject)) {
    // A token not valid yet must not stay refused once it is.
    deps.cache.set(key, 'inactive', Math.min(cacheUntil, nowMs + 60_000, early ? nbf : Number.POSITIVE_INFINITY));
    return 'inactive';
  }
  const jti = body['jti'];
  const tier = body[deps.tierClaim];
  const identity: Identity = {
    method: 'introspection',
    subject,
    scopes: scopeList(body['scope']),
    roles: Array.isArray(body['roles']) ? body['roles'].filter((r): r is string => typeof r === 'string') : [],
    tier: tierOf(tier),
    claims: body,
    jti: typeof jti === 'string' && jti !== '' ? jti : undefined,
    reused: deps.cache.holdsEntries,
  };
  deps.cache.set(key, identity, Math.min(cacheUntil, exp ?? cacheUntil));
  return identity;
}

/**
 * The call in flight for this token, or a new one; an answer at once (no promise) while the endpoint is held off, or
 * when max_in_flight calls are under way (checked first: the breaker's probe, once admitted, is always made).
 */
function introspect(token: string, key: string, deps: IntrospectionDeps): Promise<Answer> | Answer {
  const inflight = deps.calls;
  let call = inflight.get(key);
  if (call === undefined) {
    if (deps.outstanding.count >= deps.maxInFlight) {
      return { failure: `introspection endpoint not called: ${deps.maxInFlight} calls to it under way already (authz.introspection.max_in_flight)`, shed: true };
    }
    const admitted = deps.breaker.admit(deps.clock.nowMs());
    if ('held' in admitted) return { failure: admitted.held, held: true };
    const authorization = `Basic ${Buffer.from(`${encodeURIComponent(deps.clientId)}:${encodeURIComponent(deps.clientSecret)}`).toString('base64')}`;
    deps.outstanding.enter();
    // async: a client that throws instead of rejecting still ends in the .finally that gives the place back.
    const post = async (): Promise<HttpResponse> => deps.http.postForm(deps.url, { token, token_type_hint: 'access_token' }, { authorization }, AbortSignal.timeout(CALL_TIMEOUT_MS));
    call = post()
      .then((response) => interpret(response, key, deps), (error: unknown): Answer => ({
        failure: `introspection failed: ${(error as Error).message}`,
        endpoint: !(error instanceof UnreadableBodyError),
      }))
      .then((answer) => {
        // Recorded here, not by the Checks: a call outlives a Check whose deadline passed, and its end still counts.
        if (typeof answer === 'object' && 'failure' in answer && answer.endpoint === true) deps.breaker.failed(admitted.epoch, deps.clock.nowMs(), answer.failure, answer.askedMs);
        else deps.breaker.answered();
        return answer;
      })
      .finally(() => {
        deps.outstanding.leave();
        inflight.delete(key);
      });
    inflight.set(key, call);
  }
  return call;
}

/**
 * RFC 7662 token introspection with client credentials (HTTP Basic). Answers are cached by token hash until the
 * token's exp or cache_seconds, whichever comes first; `active: false` denies. A Check waits for the call only until
 * its deadline (the call itself may finish later and fill the cache); a failure is `unavailable` (the policy's
 * on_failure then decides) and counted. Concurrent Checks with one token share one call; after the endpoint fails,
 * Checks get that failure at once, without a call, for a backoff (IntrospectionBreaker); while max_in_flight calls are
 * under way, a token that needs another gets on_failure at once too (OutstandingCalls). A cached answer, and a Check
 * held off or shed, are given synchronously.
 */
export function evaluateIntrospection(input: CheckInput, deps: IntrospectionDeps, signal: AbortSignal): MaybePromise<Outcome> {
  const bearer = bearerToken(input.headers, deps.maxTokenBytes);
  if (bearer.kind === 'absent') return { kind: 'absent', detail: 'no bearer token' };
  if (bearer.kind === 'invalid') return bearer;
  const key = `${deps.generation}:${sha256(bearer.token, 'base64url')}`;
  const cached = deps.cache.get(key, deps.clock.nowMs());
  deps.observer.cacheLookup('introspection', cached ? 'hit' : 'miss');
  if (cached !== undefined) return outcomeOf(cached, ' (cached)', deps);
  const call = introspect(bearer.token, key, deps);
  if (!(call instanceof Promise)) return outcomeOf(call, '', deps);
  return untilAborted(call, signal).then(
    (answer) => {
      if (!(typeof answer === 'object' && 'failure' in answer)) deps.observer.introspectionAnswered();
      return outcomeOf(answer, '', deps);
    },
    (error: unknown) => outcomeOf({ failure: `introspection: ${(error as Error).message}` }, '', deps),
  );
}

function outcomeOf(answer: Answer, suffix: string, deps: IntrospectionDeps): Outcome {
  if (answer === 'inactive') return { kind: 'invalid', reason: 'token_inactive', detail: `introspection: token not active${suffix}` };
  if ('failure' in answer) {
    // A Check held off is counted with the failure that holds it off, as the call it replaces would have been. One
    // shed is counted apart: the endpoint has not failed (it is slow, or the tokens many), and its runs of failures
    // and answers are what the introspection log lines report.
    if (answer.shed === true) deps.observer.introspectionShed(answer.failure);
    else deps.observer.introspectionError(answer.failure);
    const detail = answer.held === true ? `${answer.failure} (endpoint not called while it backs off)` : answer.failure;
    return { kind: 'unavailable', reason: 'introspection_unavailable', detail };
  }
  // Checked on every call, cached or not, as for JWTs: `portcullis revoke --jti` must stop an opaque token too.
  if (answer.jti !== undefined) {
    const revoked = deps.isRevoked('jti', answer.jti);
    if (revoked === undefined) return { kind: 'unavailable', reason: 'revocation_unavailable', detail: 'revocation list unavailable' };
    if (revoked) return { kind: 'invalid', reason: 'token_revoked', detail: `introspection: token ${answer.jti} is revoked${suffix}` };
  }
  return { kind: 'success', identity: answer, detail: `introspected token of ${answer.subject}${suffix}` };
}
