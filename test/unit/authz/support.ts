import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import type { AuthzSettings } from '../../../src/authz/config.js';
import { underscoredNames } from '../../../src/authz/header-fold.js';
import type { AuthzObserver, HttpClient, HttpResponse } from '../../../src/authz/ports.js';
import type { CheckInput } from '../../../src/authz/types.js';

export const CONFIG_FILE = '/etc/portcullis/portcullis.yaml';

/** The authz settings of a portcullis.yaml whose `authz:` section is `yaml` (indented by the helper). */
export function authzSettings(yaml: string): AuthzSettings {
  const text = `authz:\n${yaml.split('\n').map((l) => `  ${l}`).join('\n')}\n`;
  const settings = parsePortcullisConfig(text, CONFIG_FILE).authz;
  if (settings === undefined) throw new Error('no authz section');
  return settings;
}

export function input(overrides: Partial<Omit<CheckInput, 'headers' | 'contextExtensions'>> & { headers?: Record<string, string>; context?: Record<string, string> } = {}): CheckInput {
  const { headers, context, ...rest } = overrides;
  return {
    method: 'GET',
    rawPath: '/',
    host: 'api.example',
    sourceAddress: '192.0.2.10',
    sourcePrincipal: '',
    requestId: 'req-1',
    ...rest,
    headers: new Map(Object.entries(headers ?? {})),
    underscoredNames: underscoredNames(Object.keys(headers ?? {})),
    contextExtensions: new Map(Object.entries(context ?? {})),
  };
}

export interface CountingObserver extends AuthzObserver {
  readonly counts: Map<string, number>;
}

export function countingObserver(): CountingObserver {
  const counts = new Map<string, number>();
  const bump = (k: string): void => void counts.set(k, (counts.get(k) ?? 0) + 1);
  return {
    counts,
    jwksRefresh: (provider, result) => bump(`jwks:${provider}:${result}`),
    cacheLookup: (cache, result) => bump(`cache:${cache}:${result}`),
    introspectionError: () => bump('introspection_error'),
    introspectionAnswered: () => bump('introspection_answered'),
    introspectionShed: () => bump('introspection_shed'),
    revocationUnavailable: () => bump('revocation_unavailable'),
  };
}

/** An in-process HttpClient: each URL answers what `routes` says (a function may delay or throw). */
export function fakeHttp(routes: Record<string, (form?: Record<string, string>, headers?: Record<string, string>) => unknown>): HttpClient & { calls: string[] } {
  const calls: string[] = [];
  const answer = async (url: string, form?: Record<string, string>, headers?: Record<string, string>): Promise<unknown> => {
    calls.push(url);
    const route = routes[url];
    if (route === undefined) throw new Error(`connect ECONNREFUSED ${url}`);
    return route(form, headers);
  };
  return {
    calls,
    getJson: (url) => answer(url),
    postForm: async (url, form, headers) => (await answer(url, { ...form }, { ...headers })) as HttpResponse,
  };
}
