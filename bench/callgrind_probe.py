#!/usr/bin/env python3
"""Instructions per REGISTER or per call, process by process, with callgrind.

perf samples at load are few and dominated by the kernel and the neighbours; callgrind
counts the user-space instructions of a process exactly, whatever the machine does.

  --role edge|registrar  a 1-node Skein cluster (as bench/sip_bench.py) has that daemon
                         restarted under `valgrind --tool=callgrind`; start-up and
                         shutdown are counted (use enough operations to make them small)
  --role redis           Skein's redis-server runs under callgrind from the start with
                         instrumentation off; it is switched on (`callgrind_control -i`)
                         for the measured operations only, after a warm-up that makes
                         every binding (so REGISTERs measured are refreshes)
  --role kamailio        the reference: every Kamailio process (bench/kamailio/, the
                         same users and scenarios) under callgrind, instrumented for the
                         measured operations only, dumped before the stop. Its timer and
                         idle processes are counted too, over the measured seconds

sipp sends a slow, bounded load (every REGISTER or call succeeds at that rate under
valgrind). Instructions per operation = the total / successful operations.

  python3 bench/callgrind_probe.py --build build-me --role edge --kind reg --out /tmp/cg
  callgrind_annotate --inclusive=yes /tmp/cg/reg-edge.out | head -60

Loopback only; every process stopped by PID."""
import argparse
import glob
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sip_bench  # noqa: E402


def totals(paths):
    total = 0
    for p in paths:
        with open(p) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def control(pids, *what):
    for pid in pids:
        subprocess.run(["callgrind_control", *what, str(pid)], capture_output=True, timeout=60)


def load(side, kind, users, ops, rate, workdir, contact, name):
    from sipplib import sipp
    kw = dict(users=users, calls=ops, rate=rate, timeout_s=int(ops / rate * 3 + 30),
              workdir=workdir, trace=False, limit=max(50, rate), name=name)
    if kind == "reg":
        return sipp("reg.xml", side.addr, contact=contact, **kw)
    return sipp("uac_call.xml", side.addr, service=sip_bench.UAS_USER, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(sip_bench.ROOT, "build"))
    ap.add_argument("--role", choices=("edge", "registrar", "redis", "kamailio"), default="edge")
    ap.add_argument("--kind", choices=("reg", "call"), default="reg")
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    os.environ["SKEIN_BUILD"] = os.path.abspath(args.build)
    sys.path.insert(0, sip_bench.INTEG)
    import skeinlib
    from sipplib import SippServer, free_ports, register
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, f"{args.kind}-{args.role}.out")
    for old in glob.glob(out + "*"):
        os.unlink(old)
    workdir = skeinlib.tmpdir()
    users = [(f"user{i:05d}", sip_bench.PASSWORD_FMT.format(i))
             for i in range(1, args.users + 1)]
    lazy = args.role in ("redis", "kamailio")  # instrumented for the measured load only
    if lazy:
        import kamlib
        mod = kamlib if args.role == "kamailio" else skeinlib
        orig = mod.start

        def start(argv, log, env=None, own_group=False):
            if args.role == "kamailio" or argv[0] == "redis-server":
                argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                        "--trace-children=yes", f"--callgrind-out-file={out}.%p"] + argv
            return orig(argv, log, env, own_group)
        mod.start = start
    if args.role == "kamailio":
        side = sip_bench.KamailioSide(users, tmp=workdir)
    else:
        side = sip_bench.SkeinSide(users)
    uas = None
    try:
        contact = f"127.0.0.1:{free_ports(1)[0]}"
        p = None
        if args.role in ("edge", "registrar"):
            node = side.c.nodes[0]
            old = node.procs[args.role]
            old.send_signal(signal.SIGTERM)
            old.wait(timeout=15)
            log = os.path.join(side.c.tmp, f"cg-{args.role}.log")
            p = skeinlib.start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                os.path.join(skeinlib.BIN, f"skein-{args.role}"),
                                "--config", node.conf], log)
            node.procs[args.role] = p
            skeinlib.wait_for(lambda: skeinlib.http(node.http[args.role], "/readyz")[0] == 200,
                              60, f"{args.role} under callgrind ready")
        if args.kind == "call":
            uas = sip_bench.quiet(SippServer("uas.xml", timeout_s=900, workdir=workdir,
                                             name="cg_uas")).start()
            register(side.addr, sip_bench.UAS_USER,
                     sip_bench.PASSWORD_FMT.format(sip_bench.UAS_USER), uas.addr,
                     workdir=workdir)
        if lazy:
            # every user registered (or called) once: what is measured is steady state
            w = load(side, args.kind, users, len(users) if args.kind == "reg" else 100,
                     args.rate, workdir, contact, f"cg_warm_{args.kind}")
            print(f"warm-up: ok {w.successful} failed {w.failed}", file=sys.stderr)
            pids = side.pids() if args.role == "kamailio" else [side.procs["redis"]]
            control(pids, "-i", "on")
        r = load(side, args.kind, users, args.ops, args.rate, workdir, contact,
                 f"cg_{args.kind}")
        print(f"{args.kind}: ok {r.successful} failed {r.failed}", file=sys.stderr)
        if lazy:
            control(pids, "-d")
            time.sleep(2)
        else:
            time.sleep(1)
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
    finally:
        if uas:
            uas.stop()
        side.stop()
    time.sleep(1)
    # edge/registrar: one file; redis/kamailio: the dumps taken after the load
    # (<out>.<pid>.<n>), not the final ones written at exit
    files = [out] if not lazy else [f for f in glob.glob(out + ".*.*")]
    total = totals(files)
    if r.successful:
        print(f"{args.role}: {total} instructions, {total // r.successful} per "
              f"{args.kind} ({r.successful} ok)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
