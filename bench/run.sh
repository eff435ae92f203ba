#!/usr/bin/env bash
# make bench: every benchmark, one table, JSON under bench/results/.
#   bus_bench     bus request/reply vs bare nanomsg (BENCH_SECONDS per phase)
#   sip_bench.py  REGISTER with digest and INVITE/ACK/BYE calls through the proxy:
#                 Skein (edge + registrar + Redis) vs Kamailio 5.6 (-x tlsf), sipp load
#                 (BENCH_USERS users, BENCH_STEP_SECONDS per ramp step)
#   cross_edge_bench.py  INVITE/ACK/BYE calls routed across edges (UAC on edge 1, callee's
#                 TCP flow on edge 2, bench/flowrelay.py) vs both on the same edge, on a
#                 2-node Skein cluster: server CPU per call at fixed rates, max clean rate
#   notify_bench.py  NOTIFY fan-out: one presentity, BENCH_WATCHERS (1000) sipp watchers,
#                 BENCH_CHANGES (10) PUBLISH changes: NOTIFYs/s delivered and server CPU
#                 per NOTIFY (no Kamailio reference)
# Each benchmark is bounded (bus: a few seconds per phase; sip: an outer timeout of
# 12 minutes, every sipp run bounded by count and time; cross-edge: about 2.5 minutes, an
# outer timeout of 4; notify: at most 100 s, an outer timeout of 2.5 minutes); loopback only.
# Progress and per-step figures go to bench/results/*.log; the table to stdout.
set -euo pipefail
BUILD=${BUILD:-build}
here=$(cd "$(dirname "$0")" && pwd)
res="$here/results"
mkdir -p "$res"
rm -f "$res/bus.json" "$res/sip.json" "$res/cross_edge.json" "$res/notify.json"
"$BUILD/bin/bus_bench" --seconds "${BENCH_SECONDS:-3}" --json "$res/bus.json" > "$res/bus.log" 2>&1 \
	|| echo "bus_bench failed: see $res/bus.log" >&2
if command -v sipp >/dev/null && command -v kamailio >/dev/null && command -v redis-server >/dev/null; then
	timeout -k 10 720 python3 "$here/sip_bench.py" --build "$BUILD" --json "$res/sip.json" \
		--users "${BENCH_USERS:-2000}" --step-seconds "${BENCH_STEP_SECONDS:-5}" \
		2> >(tee "$res/sip.log" >&2) || echo "sip_bench failed: see $res/sip.log" >&2
else
	echo "sip_bench skipped: sipp, kamailio and redis-server are needed" >&2
fi
if command -v sipp >/dev/null && command -v redis-server >/dev/null; then
	timeout -k 10 240 python3 "$here/cross_edge_bench.py" --build "$BUILD" --json "$res/cross_edge.json" \
		--rates "${BENCH_XEDGE_RATES:-500,1000}" --max-rates "${BENCH_XEDGE_MAX_RATES-2000,2500,3000,3500}" \
		2> >(tee "$res/cross_edge.log" >&2) || echo "cross_edge_bench failed: see $res/cross_edge.log" >&2
else
	echo "cross_edge_bench skipped: sipp and redis-server are needed" >&2
fi
if command -v sipp >/dev/null && command -v redis-server >/dev/null; then
	timeout -k 10 150 python3 "$here/notify_bench.py" --build "$BUILD" --json "$res/notify.json" \
		--watchers "${BENCH_WATCHERS:-1000}" --changes "${BENCH_CHANGES:-10}" --budget 100 \
		2> >(tee "$res/notify.log" >&2) || echo "notify_bench failed: see $res/notify.log" >&2
else
	echo "notify_bench skipped: sipp and redis-server are needed" >&2
fi
python3 "$here/table.py" "$res/bench.json" "$res/bus.json" "$res/sip.json" "$res/cross_edge.json" \
	"$res/notify.json"
echo "results: $res/"
