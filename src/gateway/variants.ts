// The two committed variants of the gateway bootstrap. Everything but addresses and file locations comes from
// buildGatewayBootstrap, so they cannot drift.

import type { GatewayTarget } from './envoy-bootstrap.js';
import { GATEWAY_PORTS } from './topology.js';

const ADMIN_ALLOW_CIDRS = ['127.0.0.1/32', '::1/128'];

/** envoy/envoy.yaml: everything on this machine (npm run demo), run from the repository root. */
export const LOCAL_TARGET: GatewayTarget = {
  listeners: {
    http: { host: '0.0.0.0', port: GATEWAY_PORTS.http },
    https: { host: '0.0.0.0', port: GATEWAY_PORTS.https },
    mtls: { host: '0.0.0.0', port: GATEWAY_PORTS.mtls },
  },
  admin: { host: '127.0.0.1', port: GATEWAY_PORTS.envoyAdmin },
  metrics: { host: '127.0.0.1', port: GATEWAY_PORTS.envoyMetrics },
  portcullis: { host: '127.0.0.1', port: GATEWAY_PORTS.portcullisGrpc },
  endpoint: (_service, instance) => ({ host: '127.0.0.1', port: instance.port }),
  certDir: 'envoy/certs',
  adminAllowCidrs: ADMIN_ALLOW_CIDRS,
};

/** envoy/envoy.compose.yaml: one container per service of docker-compose.yml. */
export const COMPOSE_TARGET: GatewayTarget = {
  listeners: LOCAL_TARGET.listeners,
  // The admin interface stays on the container's loopback: every upstream container shares Envoy's network, and the
  // admin answers anyone (config dump, POST /quitquitquit). Prometheus scrapes the metrics listener instead.
  admin: { host: '127.0.0.1', port: GATEWAY_PORTS.envoyAdmin },
  metrics: { host: '0.0.0.0', port: GATEWAY_PORTS.envoyMetrics },
  portcullis: { host: 'portcullis', port: GATEWAY_PORTS.portcullisGrpc },
  endpoint: (service, instance) => ({ host: service.service, port: instance.port }),
  certDir: '/etc/envoy/certs',
  adminAllowCidrs: ADMIN_ALLOW_CIDRS,
};
