#!/usr/bin/env python3
"""Merge the JSON of every benchmark into one table (metric | Skein | reference | ratio |
unit) on stdout and one JSON file: table.py OUT.json IN.json...

A ratio is always "> 1 = Skein better": Skein/reference for rates, reference/Skein for
costs (us per operation), as each benchmark computed it."""
import json
import os
import platform
import sys
import time


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.3g}" if v < 10 else f"{v:.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def main():
    out, ins = sys.argv[1], sys.argv[2:]
    rows, benches = [], {}
    for path in ins:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            rows.append({"metric": f"{os.path.basename(path)}: no result ({e})", "skein": None,
                         "reference": None, "ratio": None, "unit": ""})
            continue
        benches[doc.get("benchmark", path)] = doc
        for r in doc.get("results", []):
            rows.append(dict(r, benchmark=doc.get("benchmark")))
    machine = {"nproc": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release(),
               "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    w = max([len(r["metric"]) for r in rows] + [6])
    print(f"{'metric':{w}} | {'Skein':>10} | {'reference':>10} | {'ratio':>6} | unit")
    print(f"{'-' * w}-|-{'-' * 10}-|-{'-' * 10}-|-{'-' * 6}-|-----")
    for r in rows:
        print(f"{r['metric']:{w}} | {fmt(r['skein']):>10} | {fmt(r['reference']):>10} | "
              f"{fmt(r['ratio']):>6} | {r['unit']}")
    print(f"(machine: {machine['nproc']} x {machine['cpu']}; ratio > 1: Skein better; "
          f"references: bus = bare nanomsg, sip = Kamailio 5.6 -x tlsf, "
          f"cross_edge = the same calls with caller and callee on one edge, "
          f"notify = none: no Kamailio figure for NOTIFY fan-out)")
    with open(out, "w") as f:
        json.dump({"machine": machine, "results": rows, "benchmarks": benches}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
