#!/usr/bin/env bash
# make bench: every benchmark, one table, JSON under bench/results/.
set -euo pipefail
BUILD=${BUILD:-build}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/results"
"$BUILD/bin/bus_bench" --seconds "${BENCH_SECONDS:-3}" --json "$here/results/bus.json"
echo "results: $here/results/"
