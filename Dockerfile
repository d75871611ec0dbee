# Portcullis image: a build stage with the dev toolchain (TypeScript, buf), then a slim runtime with production
# dependencies only, running as the unprivileged `node` user. A third stage, `samples`, adds the gateway's sample
# services (docker-compose.yml runs them from it).
#
#   docker build -t portcullis .                      (the runtime stage is the default target)
#   docker build --target samples -t portcullis-samples .
#
# Node 26, the Active LTS: beside Node 22 in the same hour (docs/benchmarks.md, "Node 26 against 22", 2026-12-07) every
# service spent less CPU per call on 26 (ext_authz Checks 15-25 % less, ext_proc streams about a third less, the rate
# limit service 1.18x and 1.26x the Go peer's RPS against 1.06x and 1.16x, Portcullis' share of a gateway request
# level or lower). It needs --no-maglev (the ENTRYPOINT passes it) and two V8 flags Portcullis sets on itself
# (src/server/node-version.ts, docs/tuning.md).

FROM node:26-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/protos.sh scripts/protos.sh
COPY proto proto
COPY src src
COPY test test
COPY bench bench
COPY examples examples
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:26-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/proto ./dist/proto
COPY bin ./bin
USER node
# gRPC (Envoy's three services) and admin HTTP (/healthz /readyz /metrics /config).
EXPOSE 8081 9091
# Ready = a config is loaded and the counter store answers (the image has no curl: Node's fetch does it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9091/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# --single-threaded-gc --no-maglev: src/server/node-flags.ts says why (V8 refuses them in NODE_OPTIONS).
ENTRYPOINT ["node", "--single-threaded-gc", "--no-maglev", "bin/portcullis.js"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.yaml"]

FROM runtime AS samples
COPY --from=build /src/dist/examples ./dist/examples
EXPOSE 8101-8173
HEALTHCHECK NONE
ENTRYPOINT ["node", "dist/examples/services/main.js", "--host", "0.0.0.0"]
CMD []

# The default target when none is given: the Portcullis runtime.
FROM runtime
