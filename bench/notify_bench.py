#!/usr/bin/env python3
"""NOTIFY fan-out benchmark (issue 7): one presentity, many watchers, N changes.

A 1-node Skein cluster (sipcluster.Cluster(1): skein-edge + skein-registrar + one
redis-server; log_level warn, auth_algorithms md5, notify_interval 0 = no throttling,
pres_default_policy allow). One sipp process (tests/integration/sipp/pres_watch.xml, UDP)
SUBSCRIBEs --watchers times to sip:alice@skein.test (407 + MD5 digest, each call its own
Call-ID, so its own subscription) and answers every NOTIFY with 200. alice (a Python UA,
tests/integration/preslib.py) publishes once before the watchers come, then makes
--changes modifications (PUBLISH with SIP-If-Match, back to back, each waiting for its
200): every change is a NOTIFY to every watcher.

Measured over the changes only (the initial NOTIFYs of the subscriptions are excluded):
  - delivered: NOTIFYs the watchers answered 200 (sipp -trace_counts, one row a second);
  - elapsed: from the first PUBLISH of the changes to the moment the registrar's
    skein_registrar_notifies_total{result="ok"} (NOTIFYs whose final response was 200,
    as the edges report them) has grown by watchers x changes, polled every 20 ms; if
    that metric is missing, to the first sipp counts row at which every expected NOTIFY
    was answered (resolution 1 s), or to the last row at which the count still grew;
  - CPU: utime+stime of the edge, the registrar and redis-server (/proc/<pid>/stat, as
    sip_bench.py) over the same window, per NOTIFY delivered.
Rows: notify_fanout_rate (NOTIFY/s), notify_fanout_cpu_per_notify (us). There is no
Kamailio reference (its presence module needs a database and another setup): the
reference column is empty. Bounded: --budget seconds (default 100) for the whole run;
loopback only; every process stopped by PID.

Usage: notify_bench.py --build BUILD --json OUT [--watchers 1000] [--changes 10]
                       [--budget 100] [--keep]"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
INTEG = os.path.join(ROOT, "tests", "integration")
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)

import sip_bench as sb  # noqa: E402  (cpu accounting, log)

log = sb.log
PRESENTITY = "alice"
WATCHER = "watcher"


def read_counts(path):
    """[(epoch seconds, NOTIFY received, 200 sent)] of sipp's -trace_counts CSV for
    pres_watch.xml (columns N_NOTIFY_Recv and the 200_Sent right after it)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    if not lines:
        return []
    head = lines[0].split(";")
    try:
        i_not = next(i for i, h in enumerate(head) if h.endswith("_NOTIFY_Recv"))
        i_ok = next(i for i, h in enumerate(head) if i > i_not and h.endswith("_200_Sent"))
    except StopIteration:
        return []
    out = []
    for ln in lines[1:]:
        cols = ln.split(";")
        if len(cols) <= i_ok:
            continue
        try:
            t = float(cols[0].split("\t")[-1])
            out.append((t, int(cols[i_not]), int(cols[i_ok])))
        except ValueError:
            continue
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json", default=os.path.join(HERE, "results", "notify.json"))
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--rate", type=int, default=250, help="SUBSCRIBEs per second")
    ap.add_argument("--budget", type=float, default=100)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    t_start = time.monotonic()
    deadline = t_start + args.budget

    os.environ["SKEIN_BUILD"] = os.path.abspath(args.build)
    os.environ["SKEIN_CLUSTER_LOG_LEVEL"] = "warn"
    os.environ["SKEIN_REGISTRAR_COUNT_INTERVAL"] = "15s"
    sys.path.insert(0, INTEG)
    import sipcluster
    import skeinlib
    from preslib import UA, pidf
    from sipplib import build_argv, free_ports, write_users_csv
    DOMAIN = sipcluster.DOMAIN

    W, N = args.watchers, args.changes
    workdir = skeinlib.tmpdir()
    c = sipcluster.Cluster(1, users=((PRESENTITY, "alice-pw"), (WATCHER, "watcher-pw")),
                           edge_extra={"auth_algorithms": "md5", "t1": "500ms"},
                           registrar_extra={"notify_interval": "0", "timer_interval": "100ms",
                                            "pres_default_policy": "allow",
                                            "max_watchers": str(max(10000, 2 * W)),
                                            "count_interval": "15s"})
    pids = {"edge": c.nodes[0].procs["edge"].pid,
            "registrar": c.nodes[0].procs["registrar"].pid, "redis": c.redis.proc.pid}
    aor = f"sip:{PRESENTITY}@{DOMAIN}"
    subs_key = f"t:{{{PRESENTITY}@{DOMAIN}}}:subs"
    alice = UA(PRESENTITY, "alice-pw", c.sip[0], domain=DOMAIN)
    sipp = None
    result = {}
    try:
        r = alice.publish(pidf(aor, [("t1", "open", "start")]), expires=3600)
        if r is None or r.status != 200:
            raise RuntimeError(f"initial PUBLISH: {r}")
        etag = r.hdr("sip-etag")

        name = "watchers"
        csv = write_users_csv(os.path.join(workdir, "watchers.csv"), [(WATCHER, "watcher-pw")])
        argv = build_argv("pres_watch.xml", c.addr(0), local_port=free_ports(1)[0],
                          service=PRESENTITY, users_csv=csv, calls=W, rate=args.rate,
                          limit=W, timeout_s=int(args.budget) + 30, domain=DOMAIN,
                          keys={"expires": 3600}, name=name, trace=False,
                          extra=["-trace_counts", "-fd", "1", "-buff_size", "4194304"])
        # -buff_size: the registrar sends a change's 1,000 NOTIFYs in one burst; with
        # sipp's default socket buffer (64 KiB) the kernel drops most of them and the
        # run measures UDP retransmission timers (2.6k NOTIFY/s) instead of Skein.
        # the calls never end (the watchers stay): reaching the global timeout is no error
        argv = [a for a in argv if a != "-timeout_error"]
        sipp = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        sipp.own_group = True
        skeinlib._procs.append(sipp)
        counts_path = [None]

        def counts():
            if counts_path[0] is None:
                for f in os.listdir(workdir):
                    if f.startswith("pres_watch_") and f.endswith("_counts.csv"):
                        counts_path[0] = os.path.join(workdir, f)
            return read_counts(counts_path[0]) if counts_path[0] else []

        def subscribed():
            if sipp.poll() is not None:
                raise skeinlib.Fatal(f"sipp exited {sipp.returncode}")
            rows = counts()
            return c.redis.cmd("HLEN", subs_key) >= W and rows and rows[-1][2] >= W
        skeinlib.wait_for(subscribed, max(10, deadline - time.monotonic() - 30),
                          f"{W} subscriptions stored and their first NOTIFY answered "
                          f"(stored {c.redis.cmd('HLEN', subs_key)}, counts {counts()[-1:]})",
                          interval=0.2)
        base = counts()[-1][2]
        log(f"notify bench: {W} watchers subscribed, {base} NOTIFYs answered so far")
        time.sleep(1.2)  # let any straggler of the initial NOTIFYs land in the counts
        base = counts()[-1][2]

        def notifies_ok():
            return skeinlib.metric(skeinlib.http(c.nodes[0].http["registrar"], "/metrics")[1],
                                   "skein_registrar_notifies_total", 'result="ok"')
        m_base = notifies_ok()
        cpu0, t0, wall0 = sb.cpu_seconds(pids.values()), time.monotonic(), time.time()
        for k in range(N):
            r = alice.publish(pidf(aor, [("t1", "open" if k % 2 else "closed", f"change {k}")]),
                              if_match=etag, expires=3600)
            if r is None or r.status != 200:
                raise RuntimeError(f"PUBLISH change {k}: {r}")
            etag = r.hdr("sip-etag")
        t_pub = time.monotonic() - t0
        want = base + W * N
        want_metric = None if m_base is None else m_base + W * N
        last_growth = (wall0, base)
        done = None          # the sipp counts row at which every NOTIFY was answered
        m_done = None        # (monotonic time, cpu) when the registrar counted them all
        cpu_done = None
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            if want_metric is not None and m_done is None:
                v = notifies_ok()
                if v is not None and v >= want_metric:
                    m_done = time.monotonic()
                    cpu_done = sb.cpu_seconds(pids.values())
            rows = [x for x in counts() if x[0] >= wall0 - 1]
            if rows:
                t, _, ok = rows[-1]
                if ok > last_growth[1]:
                    last_growth = (t, ok)
                    stable_since = time.monotonic()
                if ok >= want and (m_done is not None or want_metric is None):
                    done = next(x for x in rows if x[2] >= want)
                    break
            if time.monotonic() - stable_since > 5:
                break  # nothing more for 5 s: some NOTIFYs never came
            time.sleep(0.02)
        cpu1 = cpu_done if cpu_done is not None else sb.cpu_seconds(pids.values())
        t_end, ok_end = (done[0], done[2]) if done else last_growth
        delivered = ok_end - base
        if m_done is not None:
            # precise: the registrar's count of NOTIFYs answered 200 (the edge reports
            # each final status), polled every 20 ms
            elapsed, timing = m_done - t0, "registrar skein_registrar_notifies_total{result=ok}"
        else:
            elapsed, timing = max(t_end - wall0, 1e-3), "sipp -trace_counts (1 s resolution)"
        result = {"watchers": W, "changes": N, "expected": W * N, "delivered": delivered,
                  "timing": timing,
                  "complete": bool(done), "elapsed_s": round(elapsed, 3),
                  "publish_s": round(t_pub, 3), "cpu_s": round(cpu1 - cpu0, 3),
                  "rate": round(delivered / elapsed, 1) if delivered else None,
                  "cpu_us_per_notify": round((cpu1 - cpu0) * 1e6 / delivered, 1)
                  if delivered else None,
                  "registrar_notify_metrics": [
                      ln for ln in skeinlib.http(c.nodes[0].http["registrar"], "/metrics")[1]
                      .splitlines() if "notif" in ln and not ln.startswith("#")][:20]}
        log(f"notify bench: {result}")
    finally:
        alice.close()
        if sipp is not None and sipp.poll() is None:
            try:
                os.killpg(sipp.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            sipp.wait(timeout=5)
        skeinlib._cleanup()

    rows = [{"metric": "NOTIFY fan-out", "skein": result.get("rate"), "reference": None,
             "ratio": None, "unit": "NOTIFY/s"},
            {"metric": "NOTIFY fan-out CPU per NOTIFY", "skein": result.get("cpu_us_per_notify"),
             "reference": None, "ratio": None, "unit": "us"}]
    doc = {"benchmark": "notify", "results": rows, "run": result,
           "setup": {"nodes": 1, "watchers": W, "changes": N, "transport": "udp",
                     "watchers_tool": "one sipp process, pres_watch.xml, 407 + MD5 digest",
                     "notify_interval": "0", "reference": "none (no Kamailio figure)",
                     "cpu": "utime+stime of skein-edge, skein-registrar, redis-server",
                     "timing": "registrar notifies_total{result=ok} polled every 20 ms; "
                               "delivered = the 200s sipp sent (-trace_counts)"},
           "seconds": round(time.monotonic() - t_start, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f)
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    for r in rows:
        log(f"  {r['metric']:32} {r['skein']!s:>10} {r['unit']}")
    return 0 if result.get("complete") else 1


if __name__ == "__main__":
    sys.exit(main())
