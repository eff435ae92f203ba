#!/usr/bin/env python3
"""System calls and context switches per REGISTER or per call, process by process.

The CPU figures of bench/sip_bench.py split user and kernel time by the kernel's
sampling; this counts exactly what each server process asks of the kernel while sipp
sends a steady load: `perf stat --per-thread` on the syscall tracepoints (epoll_wait,
recvmsg/recvmmsg/recvfrom, sendmsg/sendto, read/write, futex, epoll_ctl) and
context switches, divided by the successful operations. Threads are reported by
name (nanomsg's workers run under the daemon's name).

  python3 bench/syscall_probe.py --build build-me --side skein --load reg:6000 call:2000
  python3 bench/syscall_probe.py --side kamailio --load reg:6000 call:2000

Needs perf with tracepoints (root). Loopback only; every process stopped by PID."""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sip_bench  # noqa: E402

EVENTS = ["raw_syscalls:sys_enter", "context-switches"] + [
    f"syscalls:sys_enter_{n}" for n in (
        "epoll_wait", "epoll_ctl", "recvmsg", "recvmmsg", "recvfrom", "sendmsg",
        "sendmmsg", "sendto", "read", "write", "futex")]


def parse(path, ops):
    """{thread name: {event: count per op}} from perf stat -x, --per-thread."""
    agg = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if line.startswith("#") or len(fields) < 4:
                continue
            try:
                v = int(fields[1])
            except ValueError:
                continue
            thread = fields[0].rsplit("-", 1)[0]
            ev = fields[3].split(":")[-1].replace("sys_enter_", "")
            ev = "syscalls" if ev == "sys_enter" else ev
            agg.setdefault(thread, {}).setdefault(ev, 0)
            agg[thread][ev] += v
    return {t: {e: v / ops for e, v in evs.items() if v}
            for t, evs in agg.items() if evs.get("syscalls")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(sip_bench.ROOT, "build"))
    ap.add_argument("--side", choices=("skein", "kamailio"), default="skein")
    ap.add_argument("--load", nargs="+", default=["reg:6000", "call:2000"],
                    help="kind:rate, kind reg or call")
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--users", type=int, default=2000)
    args = ap.parse_args()

    os.environ["SKEIN_BUILD"] = os.path.abspath(args.build)
    sys.path.insert(0, sip_bench.INTEG)
    import skeinlib
    from sipplib import SippServer, free_ports, register, sipp
    workdir = skeinlib.tmpdir()
    users = [(f"user{i:05d}", sip_bench.PASSWORD_FMT.format(i))
             for i in range(1, args.users + 1)]
    side = (sip_bench.SkeinSide(users) if args.side == "skein"
            else sip_bench.KamailioSide(users, tmp=workdir))
    uas = None
    try:
        contact = f"127.0.0.1:{free_ports(1)[0]}"
        for item in args.load:
            kind, rate = item.split(":")
            rate = int(rate)
            if kind == "call" and uas is None:
                uas = sip_bench.quiet(SippServer("uas.xml", timeout_s=300, workdir=workdir,
                                                 name="sys_uas")).start()
                register(side.addr, sip_bench.UAS_USER,
                         sip_bench.PASSWORD_FMT.format(sip_bench.UAS_USER), uas.addr,
                         workdir=workdir)
            out = os.path.join(workdir, f"perf-{kind}-{rate}.txt")
            perf = subprocess.Popen(
                ["perf", "stat", "-x", ",", "--per-thread", "-e", ",".join(EVENTS), "-o", out,
                 "-p", ",".join(map(str, side.pids())), "--", "sleep",
                 str(args.seconds + 0.5)], start_new_session=True)
            time.sleep(0.3)
            kw = dict(users=users, calls=int(rate * args.seconds), rate=rate,
                      timeout_s=int(args.seconds * 3 + 10), workdir=workdir, trace=False,
                      limit=max(200, rate), name=f"sys_{kind}_{rate}")
            if kind == "reg":
                r = sipp("reg.xml", side.addr, contact=contact, **kw)
            else:
                r = sipp("uac_call.xml", side.addr, service=sip_bench.UAS_USER, **kw)
            perf.wait(timeout=args.seconds * 3 + 30)
            print(f"{args.side} {kind} at {rate}/s: ok {r.successful} failed {r.failed} "
                  f"(per operation)")
            if not r.successful:
                continue
            for thread, evs in sorted(parse(out, r.successful).items()):
                print(f"  {thread:18} " + " ".join(f"{k}={v:.2f}" for k, v in evs.items()))
    finally:
        if uas:
            uas.stop()
        side.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
