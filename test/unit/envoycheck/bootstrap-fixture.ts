// The smallest bootstrap the envoycheck tests need: one listener `ingress`, one connection manager with the given
// HTTP filters (a router is appended) and extra fields, one virtual host `vh` with the given routes and extra fields.

export type Json = Record<string, unknown>;

export function oneVhostBootstrap(options: { routes: Json[]; httpFilters: Json[]; vhost?: Json; connectionManager?: Json }): Json {
  return {
    static_resources: {
      listeners: [{
        name: 'ingress',
        filter_chains: [{ filters: [{
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            ...options.connectionManager,
            route_config: { virtual_hosts: [{ name: 'vh', domains: ['*'], ...options.vhost, routes: options.routes }] },
            http_filters: [...options.httpFilters, { name: 'envoy.filters.http.router' }],
          },
        }] }],
      }],
    },
  };
}
