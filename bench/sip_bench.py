#!/usr/bin/env python3
"""SIP benchmark: Skein (one node: skein-edge + skein-registrar + redis-server) against
Kamailio 5.6 (registrar + record-routing transaction-stateful proxy, -x tlsf), the same
sipp scenarios, the same users and passwords, the same digest auth (MD5, qop=auth),
measured in the same run.

  REGISTER: sipp UAC, REGISTER -> 401 -> REGISTER with credentials -> 200, users taken
            in turn from a CSV of --users distinct users (tests/integration/sipp/reg.xml).
  calls:    sipp UAC -> proxy -> sipp UAS: INVITE -> 407 -> ACK, INVITE with
            Proxy-Authorization -> 100/180/200 -> ACK -> BYE -> 200 (the callee "uas" is
            registered; the callers are the CSV users; proxy auth on both sides)
            (tests/integration/sipp/uac_call.xml and uas.xml).

Each load is a short bounded ramp of steps (rate r for --step-seconds, i.e. -m r*s
calls); a step that is not clean is run once more (the machine is shared), and the ramp
stops at the first step that is not clean twice. A step is clean when
failed < 1 % of calls and the achieved rate (successful / elapsed) >= 90 % of the
offered one. Server CPU is utime+stime from /proc/<pid>/stat of every server process
(Skein: edge, registrar, redis-server; Kamailio: the main process and all its
children), read before and after each step.

Figures (per side): the highest clean rate; at the highest rate clean on BOTH sides
(same offered load), the server CPU time per successful registration / call and the
registrations / calls per server core-second (successful / server CPU seconds).
Then, at that common rate, --pairs alternated steps of the two sides (both stay up
from their ramps on): the median of the pairs' ratios is the headline
(`*_per_core_second_paired_at_R`), robust to the host's speed drifting between the
ramps.

Usage: sip_bench.py --build BUILD --json OUT [--users 2000] [--step-seconds 5]
                    [--only reg|call] [--pairs 3] [--profile DIR]
--profile DIR: instead of the ramp, run a steady load (--profile-reg-rate,
--profile-call-rate) against Skein with `perf record -g` on the edge, registrar and
redis-server and write perf reports to DIR. Everything on 127.0.0.1; every process is
stopped by PID (tests/integration/skeinlib cleanup)."""
import argparse
import concurrent.futures
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
INTEG = os.path.join(ROOT, "tests", "integration")

DOMAIN = "skein.test"
UAS_USER = "uas"
PASSWORD_FMT = "pw-{}-bench"
REG_RATES = (1000, 2000, 4000, 6000, 7000, 8000, 10000, 12000)
CALL_RATES = (250, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000)
CLK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ CPU accounting

def cpu_ticks(pid):
    """utime+stime of one process (all its threads), in clock ticks; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid):
    """pid and every process below it (walks /proc by ppid)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def udp_drops():
    """UDP RcvbufErrors of the whole machine (/proc/net/snmp): datagrams dropped because
    a socket's receive buffer was full (server or sipp)."""
    with open("/proc/net/snmp") as f:
        lines = [ln.split() for ln in f if ln.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def socket_drops(port):
    """Drops counted on the UDP socket(s) bound to 127.0.0.1:port (/proc/net/udp, last
    column): datagrams the server's own receive buffer could not take."""
    total = 0
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == f"0100007F:{port:04X}":
                total += int(cols[-1])
    return total


def cpu_seconds(pids):
    return sum(cpu_ticks(p) for p in pids) / CLK


def ctx_switches(pids):
    """Context switches (voluntary + involuntary) of the processes, every thread counted
    (/proc/<pid>/task/*/status): exact counts, unlike the kernel's user/system split of
    CPU time, which it samples by ticks (dropped from the table: it moved by +-50 %
    between runs)."""
    n = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                            n += int(line.split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return n


# ------------------------------------------------------------------ servers

class SkeinSide:
    name = "skein"

    def __init__(self, users):
        from sipcluster import Cluster
        # warn: no per-request logging (the [cluster] log_level key, by environment)
        os.environ["SKEIN_CLUSTER_LOG_LEVEL"] = "warn"
        # sipcluster sets the test value count_interval = 1s (a SCAN walk of Redis every
        # second); the environment wins over the file: back to the default 15s
        os.environ["SKEIN_REGISTRAR_COUNT_INTERVAL"] = "15s"
        # t1 as Kamailio's and sipp's (500 ms); MD5 only: sipp 3.6 cannot do SHA-256
        self.c = Cluster(1, edge_extra={"auth_algorithms": "md5", "t1": "500ms"},
                         users=[(UAS_USER, PASSWORD_FMT.format(UAS_USER))])
        self.addr = self.c.addr(0)
        self._provision(users)
        node = self.c.nodes[0]
        self.procs = {"edge": node.procs["edge"].pid, "registrar": node.procs["registrar"].pid,
                      "redis": self.c.redis.proc.pid}

    def _provision(self, users):
        from skeinlib import skeinctl
        conf = self.c.nodes[0].conf

        def add(up):
            rc, _, err = skeinctl(conf, "user", "add", f"{up[0]}@{DOMAIN}", "--password", up[1])
            if rc != 0:
                raise RuntimeError(f"skeinctl user add {up[0]}: {err}")
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(add, users))

    def pids(self):
        return list(self.procs.values())

    def roles(self):
        return {r: [p] for r, p in self.procs.items()}

    def stop(self):
        for n in self.c.nodes:
            for p in n.procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in n.procs.values():
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.c.redis.stop()


class KamailioSide:
    name = "kamailio"

    def __init__(self, users, tmp, children=2, shm_mb=512):
        import kamlib

        class BenchKamailio(kamlib.Kamailio):
            def write_cfg(self):
                saved = kamlib.CFG
                kamlib.CFG = os.path.join(HERE, "kamailio", "kamailio.cfg")
                try:
                    return super().write_cfg()
                finally:
                    kamlib.CFG = saved

            def argv(self):
                return super().argv() + ["-x", "tlsf"]

        allu = dict(users)
        allu[UAS_USER] = PASSWORD_FMT.format(UAS_USER)
        self.k = BenchKamailio(tmp, allu, children=children, shm_mb=shm_mb, call_auth=True)
        self.k.start(timeout=30)
        self.addr = self.k.addr
        self.procs = {"kamailio": self.k.proc.pid}

    def pids(self):
        return descendants(self.k.proc.pid)

    def roles(self):
        return {"kamailio": self.pids()}

    def stop(self):
        self.k.stop()


# ------------------------------------------------------------------ load

# sipp 3.6.1's cumulative "Elapsed Time" is wrong on the final screen; Start Time and
# Current Time carry epoch seconds
START_RE = re.compile(r"Start Time\s*\|[^|]*?(\d+\.\d+)\s*$", re.M)
NOW_RE = re.compile(r"Current Time\s*\|[^|]*?(\d+\.\d+)\s*$", re.M)


def sipp_elapsed(result):
    """Cumulative elapsed seconds from sipp's last screen (None if absent)."""
    text = result.out
    sp = os.path.join(result.dir, os.path.basename(result.err_path).replace("_errors.log", "_screen.log"))
    if os.path.exists(sp):
        with open(sp, errors="replace") as f:
            text = f.read() + "\n" + text
    a, b = START_RE.findall(text), NOW_RE.findall(text)
    if not a or not b:
        return None
    return max(float(b[-1]) - float(a[-1]), 1e-3)


def run_step(side, kind, rate, seconds, users, workdir, contact):
    """One step of rate calls/s for `seconds`; returns a dict of figures."""
    from sipplib import sipp
    calls = int(rate * seconds)
    common = dict(users=users, calls=calls, rate=rate, timeout_s=int(seconds * 3 + 10),
                  workdir=workdir, trace=False, name=f"{side.name}_{kind}_{rate}")
    roles = side.roles()
    pids = [p for ps in roles.values() for p in ps]
    r0 = {r: cpu_seconds(ps) for r, ps in roles.items()}
    x0 = {r: ctx_switches(ps) for r, ps in roles.items()}
    sport = int(side.addr.rsplit(":", 1)[1])
    c0, t0, d0, s0 = cpu_seconds(pids), time.monotonic(), udp_drops(), socket_drops(sport)
    if kind == "reg":
        r = sipp("reg.xml", side.addr, contact=contact, limit=max(200, rate), **common)
    else:
        r = sipp("uac_call.xml", side.addr, service=UAS_USER, limit=max(200, rate), **common)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pids) - c0
    by_role = {r: round(cpu_seconds(ps) - r0[r], 3) for r, ps in roles.items()}
    switches = {r: ctx_switches(ps) - x0[r] for r, ps in roles.items()}
    drops = udp_drops() - d0
    sdrops = socket_drops(sport) - s0
    el = sipp_elapsed(r) or wall
    ok, failed = r.successful, r.failed
    created = r.stats["created"] or calls
    retrans = sum(m["retrans"] for m in r.stats["messages"])
    # a call failing by retransmission timeout keeps sipp waiting up to 7.5 s (T1 500 ms,
    # -max_retrans 3) after the last call: that tail is not the rate the server sustained
    el_rate = max(float(seconds), el - 8.0) if failed else el
    achieved = ok / el_rate if el_rate > 0 else 0.0
    clean = (not r.timed_out and ok > 0 and failed < 0.01 * created
             and ok + failed >= 0.99 * calls and achieved >= 0.9 * rate)
    step = {"rate": rate, "calls": calls, "successful": ok, "failed": failed, "retrans": retrans, "udp_rcvbuf_drops": drops, "server_socket_drops": sdrops,
            "elapsed_s": round(el, 3), "achieved": round(achieved, 1), "server_cpu_s": round(cpu, 3), "cpu_s_by_process": by_role, "ctx_switches_by_process": switches,
            "cpu_us_per_op": round(cpu / ok * 1e6, 1) if ok else None,
            "ops_per_core_s": round(ok / cpu, 1) if cpu > 0 else None,
            "sipp_rc": r.rc, "server_pids": len(pids), "clean": clean}
    log(f"  {side.name:8} {kind:4} rate {rate:5}/s: ok {ok} failed {failed} retrans {retrans} "
        f"drops {drops} (server socket {sdrops}) achieved {achieved:.0f}/s cpu {cpu:.2f}s ({step['cpu_us_per_op']} us/op, "
        f"{step['ops_per_core_s']} per core-s; {by_role}) {'clean' if clean else 'NOT CLEAN'}")
    return step


def ramp(side, kind, rates, seconds, users, workdir, contact, deadline):
    steps = []
    for rate in rates:
        if time.monotonic() > deadline:
            log(f"  {side.name} {kind}: time budget reached, ramp stops at {rate}/s")
            break
        s = run_step(side, kind, rate, seconds, users, workdir, contact)
        if not s["clean"] and time.monotonic() < deadline:
            # the machine is shared: one retry of a failed step before the ramp ends
            time.sleep(2)
            s["retry_of_unclean"] = True
            s = dict(run_step(side, kind, rate, seconds, users, workdir, contact),
                     first_try=s)
        steps.append(s)
        if not s["clean"]:
            break
        time.sleep(0.5)  # let the retransmission timers of the step run out
    return steps


def best(steps):
    clean = [s for s in steps if s["clean"]]
    return clean[-1] if clean else None


def at_rate(steps, rate):
    return next((s for s in steps if s["rate"] == rate and s["clean"]), None)


# ------------------------------------------------------------------ one side

def quiet(uas):
    """A SippServer without -trace_msg (its message log grows ~1 kB per message and costs
    the UAS CPU under load)."""
    a = uas.argv
    i = a.index("-trace_msg")
    del a[i:i + 3]  # -trace_msg -message_file NAME
    return uas


def idle(side, seconds=2.0):
    """Server CPU share while nothing is offered (timers, keep-alives, Redis cron)."""
    pids = side.pids()
    c0 = cpu_seconds(pids)
    time.sleep(seconds)
    return round((cpu_seconds(pids) - c0) / seconds, 4)


def bench_side(side, users, args, workdir, deadline, uas_timeout):
    """The ramps of one side (left running, with its call UAS: `paired` needs both)."""
    from sipplib import SippServer, free_ports, register
    out = {"reg": [], "call": []}
    out["idle_cpu_per_s"] = idle(side)
    log(f"  {side.name:8} idle: {out['idle_cpu_per_s']} CPU-s per s")
    side.contact = f"127.0.0.1:{free_ports(1)[0]}"  # REGISTER Contact (nothing listens)
    if args.only in (None, "reg"):
        out["reg"] = ramp(side, "reg", REG_RATES, args.step_seconds, users, workdir,
                          side.contact, deadline)
    if args.only in (None, "call"):
        side.uas = quiet(SippServer("uas.xml", timeout_s=uas_timeout, workdir=workdir,
                                    name=f"{side.name}_uas")).start()
        register(side.addr, UAS_USER, PASSWORD_FMT.format(UAS_USER), side.uas.addr,
                 workdir=workdir)
        out["call"] = ramp(side, "call", CALL_RATES, args.step_seconds, users, workdir,
                           side.contact, deadline)
    return out


def few_failures(step):
    n = step["successful"] + step["failed"]
    return bool(step["successful"] and step["ops_per_core_s"] and step["failed"] < 0.01 * n)


def common_rate(sk_steps, ka_steps):
    """The highest rate clean on both sides (None if there is none)."""
    common = [s["rate"] for s in sk_steps if s["clean"] and at_rate(ka_steps, s["rate"])]
    return max(common) if common else None


def paired(sides, sk, ka, args, users, workdir, deadline):
    """The headline again, robust to a shared machine: at each kind's common rate, steps of
    both sides alternated (Skein, Kamailio, Kamailio, Skein, ...: a drift of the host's
    speed during the run hits both alike), --pairs times; per pair the ratio of the two
    ops per core-second, and their median. A ramp runs one side's steps minutes after
    the other's, and the host's speed moved the ratio by up to 30 % between runs."""
    out = {}
    for kind in ("reg", "call"):
        rate = common_rate(sk[kind], ka[kind])
        if rate is None or args.pairs <= 0:
            continue
        pairs = []
        for i in range(args.pairs):
            if time.monotonic() > deadline:
                log(f"  paired {kind}: time budget reached after {i} pairs")
                break
            order = sides if i % 2 == 0 else sides[::-1]
            got = {}
            for side in order:
                got[side.name] = run_step(side, kind, rate, args.step_seconds, users, workdir,
                                          side.contact)
                time.sleep(0.5)
            a, b = got["skein"], got["kamailio"]
            # a pair counts when both steps had < 1 % failures (the targets' criterion):
            # at the top of the ramps a loaded host can leave a step short of the
            # offered rate, which makes it unclean for the ramp but not mismeasured
            ratio = (round(a["ops_per_core_s"] / b["ops_per_core_s"], 3)
                     if few_failures(a) and few_failures(b) else None)
            pairs.append({"skein": a, "kamailio": b, "ratio": ratio})
            log(f"  paired {kind} at {rate}/s, pair {i + 1}: ratio {ratio}")
        out[kind] = {"rate": rate, "pairs": pairs}
    return out


def table_rows(sk, ka, reg_users, pairs=None):
    rows = []

    def row(metric, s, r, unit, higher_better=True):
        ratio = None
        if s is not None and r:
            ratio = round(s / r, 3) if higher_better else round(r / s, 3) if s else None
        rows.append({"metric": metric, "skein": s, "reference": r, "ratio": ratio, "unit": unit})

    for kind, label, unit in (("reg", "register", "reg"), ("call", "call", "calls")):
        if not sk[kind] and not ka[kind]:
            continue
        bs, bk = best(sk[kind]), best(ka[kind])
        row(f"{label}_max_clean_rate", bs and bs["achieved"], bk and bk["achieved"], f"{unit}/s")
        # same offered load on both sides: the highest rate clean on both
        rate = common_rate(sk[kind], ka[kind])
        if rate is not None:
            s, k = at_rate(sk[kind], rate), at_rate(ka[kind], rate)
            row(f"{label}_cpu_per_{'reg' if kind == 'reg' else 'call'}_at_{rate}",
                s["cpu_us_per_op"], k["cpu_us_per_op"], "us", higher_better=False)
            row(f"{label}_per_core_second_at_{rate}", s["ops_per_core_s"], k["ops_per_core_s"],
                f"{unit}/core-s")
            # context switches of every server process (exact; each is a wake-up or a
            # preemption, the cost a cluster of processes adds to one Kamailio)
            def per_op(step):
                x = step.get("ctx_switches_by_process") or {}
                if not x or not step["successful"]:
                    return None
                return round(sum(x.values()) / step["successful"], 2)
            row(f"{label}_context_switches_per_{'reg' if kind == 'reg' else 'call'}_at_{rate}",
                per_op(s), per_op(k), "switches", higher_better=False)
        # the paired steps at the common rate: the median ratio (the ratio column),
        # the median ops per core-second of each side (the figure columns)
        pk = (pairs or {}).get(kind) or {}
        ok = [p for p in pk.get("pairs", []) if p["ratio"]]
        if ok:
            ratios = sorted(p["ratio"] for p in ok)
            rows.append({"metric": f"{label}_per_core_second_paired_at_{pk['rate']}",
                         "skein": round(statistics.median(p["skein"]["ops_per_core_s"] for p in ok), 1),
                         "reference": round(statistics.median(p["kamailio"]["ops_per_core_s"]
                                                              for p in ok), 1),
                         "ratio": round(statistics.median(ratios), 3),
                         "unit": f"{unit}/core-s (median of {len(ok)} alternated pairs: "
                                 f"{', '.join(str(r) for r in ratios)})"})
        # each side at its own highest clean rate
        if bs and bk:
            row(f"{label}_per_core_second_at_max", bs["ops_per_core_s"], bk["ops_per_core_s"],
                f"{unit}/core-s")
    return rows


# ------------------------------------------------------------------ profile

def profile(users, args, workdir):
    """Steady REGISTER then call load against Skein with perf record on every process."""
    from sipplib import SippServer, free_ports, register, sipp
    os.makedirs(args.profile, exist_ok=True)
    side = SkeinSide(users)
    uas = None
    try:
        contact = f"127.0.0.1:{free_ports(1)[0]}"
        for kind, rate in (("reg", args.profile_reg_rate), ("call", args.profile_call_rate)):
            if kind == "call":
                uas = quiet(SippServer("uas.xml", timeout_s=120, workdir=workdir,
                                       name="prof_uas")).start()
                register(side.addr, UAS_USER, PASSWORD_FMT.format(UAS_USER), uas.addr,
                         workdir=workdir)
            secs = args.profile_seconds
            perfs = {}
            for role, pid in side.procs.items():
                data = os.path.join(args.profile, f"{kind}-{role}.data")
                perfs[role] = (subprocess.Popen(
                    ["perf", "record", "-F", "299", "--call-graph", "dwarf,8192", "-o", data, "-p", str(pid), "--",
                     "sleep", str(secs + 1)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True), data)
            time.sleep(0.5)
            c0 = {r: cpu_ticks(p) for r, p in side.procs.items()}
            kw = dict(users=users, calls=int(rate * secs), rate=rate, timeout_s=secs * 3 + 10,
                      workdir=workdir, trace=False, limit=max(200, rate), name=f"prof_{kind}")
            if kind == "reg":
                r = sipp("reg.xml", side.addr, contact=contact, **kw)
            else:
                r = sipp("uac_call.xml", side.addr, service=UAS_USER, **kw)
            cpu = {role: (cpu_ticks(p) - c0[role]) / CLK for role, p in side.procs.items()}
            log(f"profile {kind} at {rate}/s: ok {r.successful} failed {r.failed}; cpu s {cpu}")
            with open(os.path.join(args.profile, f"{kind}-cpu.json"), "w") as f:
                json.dump({"rate": rate, "successful": r.successful, "failed": r.failed,
                           "cpu_s": cpu}, f)
            for role, (p, data) in perfs.items():
                try:
                    p.wait(timeout=secs + 30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGINT)
                    p.wait(timeout=10)
                for mode, extra in (("self", ["--no-children"]), ("children", ["--children"])):
                    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", *extra,
                                          "--percent-limit", "0.7", "-g", "none"],
                                         capture_output=True, text=True, timeout=300)
                    with open(os.path.join(args.profile, f"{kind}-{role}-{mode}.txt"), "w") as f:
                        f.write(rep.stdout)
    finally:
        if uas:
            uas.stop()
        side.stop()


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json", default=os.path.join(HERE, "results", "sip.json"))
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--step-seconds", type=float, default=5)
    ap.add_argument("--budget", type=float, default=600, help="seconds for the whole ramp set")
    ap.add_argument("--pairs", type=int, default=3,
                    help="alternated Skein/Kamailio steps at each common rate (0: none)")
    ap.add_argument("--only", choices=("reg", "call"))
    ap.add_argument("--kam-children", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (sipp screens, logs)")
    ap.add_argument("--profile")
    ap.add_argument("--profile-seconds", type=int, default=10)
    ap.add_argument("--profile-reg-rate", type=int, default=2000)
    ap.add_argument("--profile-call-rate", type=int, default=500)
    args = ap.parse_args()

    os.environ["SKEIN_BUILD"] = os.path.abspath(args.build)
    sys.path.insert(0, INTEG)
    import skeinlib  # noqa: F401  (reads SKEIN_BUILD at import)
    workdir = skeinlib.tmpdir()
    users = [(f"user{i:05d}", PASSWORD_FMT.format(i)) for i in range(1, args.users + 1)]

    if args.profile:
        profile(users, args, workdir)
        return 0

    deadline = time.monotonic() + args.budget
    t0 = time.monotonic()
    log(f"sip bench: {args.users} users, steps of {args.step_seconds:g} s; work dir {workdir}")
    # Both sides stay up to the end (each idles while the other is measured: ~1 % of a
    # core) so that the paired steps can alternate them.
    sides, pairs = [], {}
    # ~12 s per pair and kind past the ramps' budget: bounded under run.sh's outer
    # timeout (720 s) when the ramps used their whole budget (600 s)
    pair_budget = args.pairs * 2 * (args.step_seconds + 7)
    uas_timeout = int(args.budget + pair_budget + 300)
    try:
        sides.append(SkeinSide(users))
        sk = bench_side(sides[0], users, args, workdir, deadline, uas_timeout)
        sides.append(KamailioSide(users, tmp=workdir, children=args.kam_children))
        ka = bench_side(sides[1], users, args, workdir, deadline, uas_timeout)
        pairs = paired(sides, sk, ka, args, users, workdir, deadline + pair_budget)
    finally:
        for side in sides:
            if getattr(side, "uas", None):
                side.uas.stop()
            side.stop()
    rows = table_rows(sk, ka, args.users, pairs)
    doc = {"benchmark": "sip", "results": rows,
           "setup": {"users": args.users, "step_seconds": args.step_seconds,
                     "kamailio_children": args.kam_children,
                     "clean": "failed < 1% and achieved >= 90% of offered",
                     "auth": "digest MD5 qop=auth: 401 on REGISTER, 407 on initial INVITE, both sides"},
           "steps": {"skein": sk, "kamailio": ka}, "paired": pairs, "seconds": round(time.monotonic() - t0, 1)}
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
