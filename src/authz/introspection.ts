import { createHash } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import { bearerToken } from './bearer.js';
import type { ExpiringLru } from './lru.js';
import type { AuthzObserver, HttpClient } from './ports.js';
import type { CheckInput, Identity, Outcome } from './types.js';
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
}

/**
 * RFC 7662 token introspection with client credentials (HTTP Basic). Answers are cached by token hash until the
 * token's exp or cache_seconds, whichever comes first; `active: false` denies. The call is bounded by the Check's
 * deadline; a failure is `unavailable` (the policy's on_failure then decides) and counted.
 */
export async function evaluateIntrospection(input: CheckInput, deps: IntrospectionDeps, signal: AbortSignal): Promise<Outcome> {
  const bearer = bearerToken(input.headers, deps.maxTokenBytes);
  if (bearer.kind === 'absent') return { kind: 'absent', detail: 'no bearer token' };
  if (bearer.kind === 'invalid') return bearer;
  const nowMs = deps.clock.nowMs();
  const key = createHash('sha256').update(bearer.token).digest('base64url');
  const cached = deps.cache.get(key, nowMs);
  deps.observer.cacheLookup('introspection', cached ? 'hit' : 'miss');
  if (cached === 'inactive') return { kind: 'invalid', reason: 'token_inactive', detail: 'introspection: active false (cached)' };
  if (cached !== undefined) return { kind: 'success', identity: cached, detail: `introspected token of ${cached.subject} (cached)` };

  let answer: { status: number; body: unknown };
  try {
    const authorization = `Basic ${Buffer.from(`${encodeURIComponent(deps.clientId)}:${encodeURIComponent(deps.clientSecret)}`).toString('base64')}`;
    answer = await untilAborted(deps.http.postForm(deps.url, { token: bearer.token, token_type_hint: 'access_token' }, { authorization }, signal), signal);
  } catch (error) {
    deps.observer.introspectionError();
    return { kind: 'unavailable', reason: 'introspection_unavailable', detail: `introspection failed: ${(error as Error).message}` };
  }
  const body = answer.body as Record<string, unknown> | undefined;
  if (answer.status !== 200 || typeof body !== 'object' || body === null || typeof body['active'] !== 'boolean') {
    deps.observer.introspectionError();
    return { kind: 'unavailable', reason: 'introspection_unavailable', detail: `introspection answered ${answer.status} without a boolean active` };
  }
  const cacheUntil = nowMs + deps.cacheSeconds * 1000;
  if (!body['active']) {
    deps.cache.set(key, 'inactive', cacheUntil);
    return { kind: 'invalid', reason: 'token_inactive', detail: 'introspection: active false' };
  }
  const exp = typeof body['exp'] === 'number' ? body['exp'] * 1000 : undefined;
  if (exp !== undefined && exp <= nowMs) return { kind: 'invalid', reason: 'token_expired', detail: 'introspection: token expired' };
  const subject = [body['sub'], body['username'], body['client_id']].find((v): v is string => typeof v === 'string' && v !== '');
  if (subject === undefined) return { kind: 'invalid', reason: 'token_no_subject', detail: 'introspection: no sub, username or client_id' };
  const tier = body[deps.tierClaim];
  const identity: Identity = {
    method: 'introspection',
    subject,
    scopes: typeof body['scope'] === 'string' ? body['scope'].split(' ').filter((s) => s !== '') : [],
    roles: Array.isArray(body['roles']) ? body['roles'].filter((r): r is string => typeof r === 'string') : [],
    tier: typeof tier === 'string' && tier !== '' ? tier : undefined,
    claims: body,
  };
  deps.cache.set(key, identity, Math.min(cacheUntil, exp ?? cacheUntil));
  return { kind: 'success', identity, detail: `introspected token of ${subject}` };
}
