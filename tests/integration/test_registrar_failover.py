#!/usr/bin/env python3
"""Killing one registrar (kill -9) in the middle of a REGISTER stream loses no
registration: sipp registers 300 users (digest, 401 then 200) at 100/s through
edge 1 of a 2-node cluster; after ~80 have succeeded the registrar of node 1 dies.
The edges' bus requests in flight to it are retried on node 2's registrar
(SK_BUS_IDEMPOTENT; the registrar treats a replay as a refresh), so every user sipp
saw succeed has its binding in Redis, and failures are bounded by what was in
flight (the test prints both counts)."""
import threading

import sipplib
from sipplib import sipp
from skeinlib import http, metric, run, tmpdir, wait_for
from sipcluster import DOMAIN, Cluster

N = 300


def test_kill9_registrar_during_register_stream():
    users = [(f"u{i:03d}", f"pw{i:03d}") for i in range(N)]
    c = Cluster(2, users=users, edge_extra={"auth_algorithms": "md5"})
    tmp = tmpdir()
    contact = f"127.0.0.1:{sipplib.free_ports(1)[0]}"
    edge1 = c.nodes[0].http["edge"]
    result = {}

    def load():
        result["r"] = sipp("reg.xml", c.addr(0), users=users, contact=contact, calls=N,
                           rate=100, workdir=tmp, timeout_s=40, domain=DOMAIN)

    t = threading.Thread(target=load)
    t.start()
    wait_for(lambda: (metric(http(edge1, "/metrics")[1], "skein_edge_registrations_total",
                             'result="ok"') or 0) >= 80, 20, "80 registrations done")
    c.nodes[0].procs["registrar"].kill()
    t.join(60)
    assert not t.is_alive(), "sipp did not finish"
    r = result["r"]
    stored = 0
    for u, _ in users:
        out = c.ctl("reg", "show", f"{u}@{DOMAIN}")
        rows = out.get("bindings", out) if isinstance(out, dict) else out
        stored += 1 if rows else 0
    print(f"  sipp: {r.successful} succeeded, {r.failed} failed; bindings stored: {stored}")
    assert r.successful + r.failed == N, r.explain()
    assert stored >= r.successful, (stored, r.successful)
    assert r.failed <= 10, f"more failures than requests in flight: {r.explain()}"
    # the surviving registrar served the rest
    st, m = http(c.nodes[1].http["registrar"], "/metrics")
    assert (metric(m, "skein_registrar_register_requests_total", 'result="ok"') or 0) > 0, m
    # and counts the cluster's live bindings for the dashboards
    wait_for(lambda: metric(http(c.nodes[1].http["registrar"], "/metrics")[1],
                            "skein_registrar_bindings") == stored, 10,
             f"skein_registrar_bindings == {stored}")


if __name__ == "__main__":
    run([test_kill9_registrar_during_register_stream])
