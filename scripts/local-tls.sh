#!/usr/bin/env bash
# A self-signed certificate and key for the local cluster's SIP-over-TLS listener
# (`make run`): ECDSA P-256, CN and subjectAltName localhost / 127.0.0.1. Made once;
# kept while both files exist. Usage: scripts/local-tls.sh DIR
set -euo pipefail
dir=${1:?usage: $0 DIR}
[ -s "$dir/edge.crt" ] && [ -s "$dir/edge.key" ] && exit 0
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
	-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$dir/edge.key" -out "$dir/edge.crt" 2>/dev/null
echo "local-tls: made a self-signed pair in $dir (edge.crt, edge.key)" >&2
