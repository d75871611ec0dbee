// The identity ext_authz established, as Envoy forwards it to ext_proc: dynamic metadata namespace
// `envoy.filters.http.ext_authz` (the ext_proc filter must list it in metadata_options.forwarding_namespaces.untyped).
// Every top-level string, number or boolean field becomes a template variable of the same name ({user_id},
// {tenant}, ...). The first present of CALLER_KEYS identifies the caller in private cache keys.

export const EXT_AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';
export const CALLER_KEYS = ['user_id', 'sub', 'subject', 'client_id', 'principal', 'api_key_id'] as const;

export type Identity = Readonly<Record<string, string>>;

/**
 * The caller ext_authz named, for a private cache key. An anonymous caller is nobody in particular (every one of them
 * is `user_id=anonymous`): the key then falls back to the credentials the request carries (cache-key.ts).
 */
export function callerIdentity(identity: Identity | undefined): string | undefined {
  if (identity === undefined || identity['auth_method'] === 'anonymous') return undefined;
  for (const key of CALLER_KEYS) if (identity[key]) return `${key}=${identity[key]}`;
  return undefined;
}
