#!/usr/bin/env bash
# Builds the Envoy API protos Portcullis serves into one descriptor set, offline, with buf.
# The .proto files come unchanged from the pinned @grpc/grpc-js-xds package; vendor/ only links to them.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=node_modules/@grpc/grpc-js-xds/deps
[ -d "$deps" ] || { echo "protos: $deps missing; run npm ci first" >&2; exit 1; }
mkdir -p proto/vendor dist/proto
for d in envoy-api xds googleapis protoc-gen-validate; do ln -sfn "../../$deps/$d" "proto/vendor/$d"; done
npx --no-install buf build proto \
  --path proto/vendor/envoy-api/envoy/service/ratelimit/v3/rls.proto \
  --path proto/vendor/envoy-api/envoy/service/auth/v3/external_auth.proto \
  --path proto/vendor/envoy-api/envoy/service/ext_proc/v3/external_processor.proto \
  -o dist/proto/envoy.binpb
