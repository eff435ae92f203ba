#!/usr/bin/env python3
"""Cross-edge call benchmark: the cost of the bus hop between edges (issue 4).

A 2-node Skein cluster (sipcluster.Cluster(2): 2 x (skein-edge + skein-registrar), one
redis-server; log_level warn, auth_algorithms md5, t1 500ms). The callee "uas" is a sipp
UAS (tests/integration/sipp/uas.xml, -t t1) behind bench/flowrelay.py, which REGISTERs it
over TCP through edge 2 and keeps that connection open: the binding is a flow held by
edge 2. Callers are sipp UACs (uac_call.xml, -t u1, users CSV with MD5 digest, 407 on the
INVITE as in sip_bench.py):

  cross: the UAC sends to edge 1. INVITE, ACK and BYE are handed over the bus to edge 2
         (SipRelay, core_relay.c) and written down the flow; 180/200 come up the flow on
         edge 2 and are handed back to edge 1. Checked: skein_edge_relayed_total
         {direction="out"} of edge 1 grows by >= 2.5 per successful call, else the figure
         is refused (it would measure the wrong path).
  same:  the UAC sends to edge 2, where the flow is: no bus hop (edge 1's and edge 2's
         relayed_total must not grow).

At each fixed rate (--rates, default 500 and 1000 calls/s, --seconds each) both scenarios
run alternately, --repeat times (the median of each is reported); server CPU = utime+stime of all five server processes (/proc/<pid>/stat,
as sip_bench.py). Optionally (--max-rates) a short ramp per scenario for the highest clean
rate. Rows: call_cross_edge_cpu_per_call_at_R (Skein = cross, reference = same; ratio =
same/cross), call_cross_edge_extra_us_at_R (cross - same), call_cross_edge_max_clean_rate
(reference = same-edge). Everything on 127.0.0.1; every process stopped by PID.

Usage: cross_edge_bench.py --build BUILD --json OUT [--rates 500,1000] [--seconds 4]
                           [--repeat 2] [--max-rates 2000,2500,3000,3500] [--ramp-seconds 3]
                           [--users 200] [--budget 150]
--budget: no new step starts after that many seconds (a step that is not clean can take
its length + ~10 s: sipp waits for retransmission timeouts)."""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
INTEG = os.path.join(ROOT, "tests", "integration")
sys.dont_write_bytecode = True  # no __pycache__ in bench/ from importing sip_bench
sys.path.insert(0, HERE)

import sip_bench as sb  # noqa: E402  (cpu accounting, run_step, clean criterion)

UAS_USER = sb.UAS_USER
PASSWORD_FMT = sb.PASSWORD_FMT
log = sb.log


class ClusterSide:
    """Two nodes; `target` selects which edge the UAC talks to (run_step uses .addr)."""

    def __init__(self, users):
        from sipcluster import Cluster
        os.environ["SKEIN_CLUSTER_LOG_LEVEL"] = "warn"
        os.environ["SKEIN_REGISTRAR_COUNT_INTERVAL"] = "15s"
        self.c = Cluster(2, edge_extra={"auth_algorithms": "md5", "t1": "500ms"},
                         users=[(UAS_USER, PASSWORD_FMT.format(UAS_USER))])
        from skeinlib import skeinctl
        conf = self.c.nodes[0].conf
        import concurrent.futures

        def add(up):
            rc, _, err = skeinctl(conf, "user", "add", f"{up[0]}@{sb.DOMAIN}", "--password", up[1])
            if rc != 0:
                raise RuntimeError(f"skeinctl user add {up[0]}: {err}")
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(add, users))
        self.procs = {}
        for i, n in enumerate(self.c.nodes, 1):
            self.procs[f"edge{i}"] = n.procs["edge"].pid
            self.procs[f"registrar{i}"] = n.procs["registrar"].pid
        self.procs["redis"] = self.c.redis.proc.pid
        self.name = "cross"
        self.addr = self.c.addr(0)

    def use(self, scenario):
        self.name = scenario
        self.addr = self.c.addr(0 if scenario == "cross" else 1)

    def pids(self):
        return list(self.procs.values())

    def roles(self):
        return {r: [p] for r, p in self.procs.items()}

    def relayed(self, i, direction):
        from skeinlib import http, metric
        return metric(http(self.c.nodes[i].http["edge"], "/metrics")[1],
                      "skein_edge_relayed_total", f'direction="{direction}"') or 0

    def relay_counts(self):
        return {f"edge{i + 1}_{d}": self.relayed(i, d) for i in (0, 1) for d in ("out", "in")}

    def stop(self):
        sb.SkeinSide.stop(self)


def step(side, scenario, rate, seconds, users, workdir, contact):
    side.use(scenario)
    r0 = side.relay_counts()
    s = sb.run_step(side, "call", rate, seconds, users, workdir, contact)
    r1 = side.relay_counts()
    s["scenario"] = scenario
    s["relayed"] = {k: r1[k] - r0[k] for k in r0}
    ok = s["successful"] or 1
    s["relayed_out_edge1_per_call"] = round(s["relayed"]["edge1_out"] / ok, 2)
    log(f"    {scenario}: relayed per call {s['relayed_out_edge1_per_call']} "
        f"(edge1 out/in, edge2 out/in: {s['relayed']})")
    # per call: INVITE, ACK, BYE handed edge 1 -> edge 2 (edge 1 "out", edge 2 "in");
    # 180, 200 and the BYE's 200 handed back (edge 2 "out", edge 1 "in")
    n = s["successful"]
    if scenario == "cross" and n and (s["relayed"]["edge1_out"] < 2.5 * n
                                      or s["relayed"]["edge2_in"] < 2.5 * n
                                      or s["relayed"]["edge1_in"] < 2.5 * n):
        raise AssertionError(f"cross-edge step did not cross: {s['relayed']} for {n} calls")
    if scenario == "same" and any(s["relayed"].values()):
        raise AssertionError(f"same-edge step used the bus: {s['relayed']}")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json", default=os.path.join(HERE, "results", "cross_edge.json"))
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rates", default="500,1000")
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--max-rates", default="", help="ramp for the max clean rate, e.g. 2000,2500")
    ap.add_argument("--ramp-seconds", type=float, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="alternations per fixed rate")
    ap.add_argument("--budget", type=float, default=150)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    # run.sh's outer timeout sends SIGTERM: unwind (finally + skeinlib's atexit stop every
    # process this started, by PID)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))

    os.environ["SKEIN_BUILD"] = os.path.abspath(args.build)
    sys.path.insert(0, INTEG)
    import skeinlib
    from sipplib import SippServer, free_ports
    workdir = skeinlib.tmpdir()
    users = [(f"user{i:05d}", PASSWORD_FMT.format(i)) for i in range(1, args.users + 1)]
    rates = [int(x) for x in args.rates.split(",") if x]
    max_rates = [int(x) for x in args.max_rates.split(",") if x]
    t0 = time.monotonic()
    deadline = t0 + args.budget
    log(f"cross-edge bench: rates {rates}, {args.seconds:g} s each; work dir {workdir}")

    side = ClusterSide(users)
    uas = relay = None
    idle_cpu = None
    steps = {"cross": [], "same": []}
    ramps = {"cross": [], "same": []}
    try:
        uas = sb.quiet(SippServer("uas.xml", transport="t1", timeout_s=int(args.budget + 120),
                                  workdir=workdir, name="xedge_uas")).start()
        relay = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "flowrelay.py"), "--edge", side.c.addr(1),
             "--uas", uas.addr, "--user", UAS_USER, "--password", PASSWORD_FMT.format(UAS_USER),
             "--domain", sb.DOMAIN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        skeinlib._procs.append(relay)
        line = relay.stdout.readline().decode(errors="replace")  # bounded by its 10 s socket timeout
        if not line.startswith("registered"):
            raise RuntimeError(f"flowrelay: {line}{relay.stdout.read(2000).decode(errors='replace')}")
        rows = side.c.ctl("reg", "show", f"{UAS_USER}@{sb.DOMAIN}")["bindings"]
        if not (len(rows) == 1 and rows[0]["edge"] == "n2/edge" and rows[0]["transport"] == "tcp"):
            raise AssertionError(f"callee binding is not a TCP flow on edge 2: {rows}")
        log(f"  callee: TCP flow on n2/edge ({line.strip()}); UAS {uas.addr}")
        contact = f"127.0.0.1:{free_ports(1)[0]}"
        idle_cpu = sb.idle(side)
        log(f"  idle: {idle_cpu} CPU-s per s (5 server processes)")
        # warm-up (connections, Redis scripts loaded, allocator)
        for sc in ("cross", "same"):
            step(side, sc, 200, 1, users, workdir, contact)
        for rate in rates:
            for _ in range(args.repeat):
                for sc in ("cross", "same"):
                    if time.monotonic() > deadline:
                        break
                    steps[sc].append(step(side, sc, rate, args.seconds, users, workdir, contact))
                    time.sleep(0.5)
        for sc in ("cross", "same"):
            for rate in max_rates:
                if time.monotonic() > deadline:
                    log(f"  {sc}: time budget reached, ramp stops at {rate}/s")
                    break
                s = step(side, sc, rate, args.ramp_seconds, users, workdir, contact)
                if not s["clean"] and time.monotonic() < deadline:
                    time.sleep(2)  # shared machine: one retry before the ramp ends
                    s = dict(step(side, sc, rate, args.ramp_seconds, users, workdir, contact),
                             retry_of_unclean=True, first_try=s)
                ramps[sc].append(s)
                time.sleep(0.5)
                if not s["clean"]:
                    break
    finally:
        if relay and relay.poll() is None:
            relay.send_signal(signal.SIGTERM)
            try:
                relay.wait(timeout=5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(timeout=5)
        if uas:
            uas.stop()
        side.stop()

    rows = []

    def row(metric, s, r, unit, ratio):
        rows.append({"metric": metric, "skein": s, "reference": r, "ratio": ratio, "unit": unit})

    for rate in rates:
        cs = [s for s in steps["cross"] if s["rate"] == rate and s["clean"]]
        ss = [s for s in steps["same"] if s["rate"] == rate and s["clean"]]
        if not cs or not ss:
            row(f"call_cross_edge_cpu_per_call_at_{rate}", None, None, "us", None)
            continue
        # several alternations: the median of each side
        c = round(statistics.median(x["cpu_us_per_op"] for x in cs), 1)
        s = round(statistics.median(x["cpu_us_per_op"] for x in ss), 1)
        row(f"call_cross_edge_cpu_per_call_at_{rate}", c, s, "us", round(s / c, 3))
        row(f"call_cross_edge_extra_us_at_{rate}", round(c - s, 1), None, "us", None)
    if max_rates:
        bc, bs = sb.best(ramps["cross"]), sb.best(ramps["same"])
        clean_fixed = {sc: [s for s in steps[sc] if s["clean"]] for sc in steps}
        bc = bc or sb.best(clean_fixed["cross"])
        bs = bs or sb.best(clean_fixed["same"])
        vc, vs = bc and bc["achieved"], bs and bs["achieved"]
        row("call_cross_edge_max_clean_rate", vc, vs, "calls/s",
            round(vc / vs, 3) if vc and vs else None)
    doc = {"benchmark": "cross_edge", "results": rows,
           "setup": {"nodes": 2, "users": args.users, "seconds": args.seconds, "rates": rates,
                     "uac": "sipp uac_call.xml -t u1 (UDP), 407 + MD5 digest",
                     "uas": "sipp uas.xml -t t1 behind bench/flowrelay.py, registered over TCP on edge 2",
                     "cross": "UAC -> edge 1 -> bus -> edge 2 -> TCP flow",
                     "same": "UAC -> edge 2 -> TCP flow",
                     "cpu": "utime+stime of 2 edges, 2 registrars, redis-server",
                     "idle_cpu_per_s": idle_cpu,
                     "bus_messages_per_call": "3 requests edge1->edge2 (INVITE, ACK, BYE), 3 responses edge2->edge1 (180, 200, 200)"},
           "steps": steps, "ramps": ramps, "seconds": round(time.monotonic() - t0, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f)
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    for r in rows:
        log(f"  {r['metric']:40} {r['skein']!s:>10} {r['reference']!s:>10} {r['ratio']!s:>7} {r['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
