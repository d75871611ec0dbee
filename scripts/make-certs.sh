#!/usr/bin/env bash
# Makes the gateway's demo certificates on first use (never committed): a throw-away CA, a server certificate for
# localhost / envoy / 127.0.0.1 (the HTTPS and mTLS listeners) and one client certificate (the mTLS listener).
# Idempotent: existing files are kept.
#
#   scripts/make-certs.sh [DIR]      default: envoy/certs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=${1:-envoy/certs}
mkdir -p "$dir"
cd "$dir"
[[ -s ca.pem && -s server.pem && -s server-key.pem && -s client.pem && -s client-key.pem ]] && exit 0

command -v openssl >/dev/null 2>&1 || { echo "make-certs.sh: openssl is missing (apt-get install openssl)" >&2; exit 1; }
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
quiet() { "$@" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }; }

quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
  -subj "/CN=Portcullis demo CA" -keyout ca-key.pem -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign

issue() { # issue NAME SUBJECT EXTENSIONS
  quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" -keyout "$1-key.pem" -out "$tmp/$1.csr"
  printf '%s\n' "$3" >"$tmp/$1.ext"
  quiet openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
    -extfile "$tmp/$1.ext" -out "$1.pem"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,DNS:envoy,IP:127.0.0.1
extendedKeyUsage=serverAuth"
issue client "/CN=demo-client/O=Portcullis demo" "subjectAltName=URI:spiffe://portcullis.local/demo-client
extendedKeyUsage=clientAuth"
rm -f ca.srl
# Envoy in a container runs as another user: the keys must be readable by it (demo keys only).
chmod 644 ./*.pem
