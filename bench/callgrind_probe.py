#!/usr/bin/env python3
"""Instructions per REGISTER or per call, daemon by daemon, with callgrind.

perf samples at load are few and dominated by the kernel and the neighbours; callgrind
counts the user-space instructions of one daemon exactly, whatever the machine does. A
1-node cluster (as bench/sip_bench.py) has one daemon restarted under
`valgrind --tool=callgrind`; sipp then sends a slow, bounded load (every REGISTER or
call succeeds at that rate under valgrind) and the daemon is stopped with SIGTERM.
Instructions per operation = the total of the profile / successful operations (start-up
and shutdown included: use enough operations to make them small).

  python3 bench/callgrind_probe.py --build build-me --role edge --kind reg --out /tmp/cg
  callgrind_annotate --inclusive=yes /tmp/cg/reg-edge.out | head -60

Loopback only; every process stopped by PID."""
import argparse
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sip_bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(sip_bench.ROOT, "build"))
    ap.add_argument("--role", choices=("edge", "registrar"), default="edge")
    ap.add_argument("--kind", choices=("reg", "call"), default="reg")
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    os.environ["SKEIN_BUILD"] = os.path.abspath(args.build)
    sys.path.insert(0, sip_bench.INTEG)
    import skeinlib
    from sipplib import SippServer, free_ports, register, sipp
    os.makedirs(args.out, exist_ok=True)
    workdir = skeinlib.tmpdir()
    users = [(f"user{i:05d}", sip_bench.PASSWORD_FMT.format(i))
             for i in range(1, args.users + 1)]
    side = sip_bench.SkeinSide(users)
    uas = None
    try:
        node = side.c.nodes[0]
        old = node.procs[args.role]
        old.send_signal(signal.SIGTERM)
        old.wait(timeout=15)
        out = os.path.join(args.out, f"{args.kind}-{args.role}.out")
        log = os.path.join(side.c.tmp, f"cg-{args.role}.log")
        p = skeinlib.start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            os.path.join(skeinlib.BIN, f"skein-{args.role}"),
                            "--config", node.conf], log)
        node.procs[args.role] = p
        skeinlib.wait_for(lambda: skeinlib.http(node.http[args.role], "/readyz")[0] == 200,
                          60, f"{args.role} under callgrind ready")
        contact = f"127.0.0.1:{free_ports(1)[0]}"
        kw = dict(users=users, calls=args.ops, rate=args.rate,
                  timeout_s=int(args.ops / args.rate * 3 + 30), workdir=workdir, trace=False,
                  limit=max(50, args.rate), name=f"cg_{args.kind}")
        if args.kind == "reg":
            r = sipp("reg.xml", side.addr, contact=contact, **kw)
        else:
            uas = sip_bench.quiet(SippServer("uas.xml", timeout_s=600, workdir=workdir,
                                             name="cg_uas")).start()
            register(side.addr, sip_bench.UAS_USER,
                     sip_bench.PASSWORD_FMT.format(sip_bench.UAS_USER), uas.addr,
                     workdir=workdir)
            r = sipp("uac_call.xml", side.addr, service=sip_bench.UAS_USER, **kw)
        print(f"{args.kind}: ok {r.successful} failed {r.failed}", file=sys.stderr)
        time.sleep(1)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        total = 0
        with open(out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = int(line.split()[1])
        if r.successful:
            print(f"{args.role}: {total} instructions, {total // r.successful} per "
                  f"{args.kind} ({r.successful} ok)")
    finally:
        if uas:
            uas.stop()
        side.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
