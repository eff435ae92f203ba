#!/usr/bin/env python3
"""SIGTERM drains the edge as a carrier expects: while a call is still ringing the
edge stays up but answers OPTIONS probes and new calls with 503 + Retry-After and
/readyz with 503; the ringing call can still be CANCELled (487), and then the edge
exits 0 by itself."""
import signal

from sipplib import SippServer, register
from skeinlib import http, run, tmpdir, wait_for
from sipcluster import DOMAIN, Cluster, RawSip, request

USERS = (("ringer", "ringer-pw"),)


def test_drain_answers_503_and_lets_calls_finish():
    c = Cluster(1, users=USERS, edge_extra={"auth_algorithms": "md5"})
    tmp = tmpdir()
    port = c.sip[0]
    ringer = SippServer("uas_ring.xml", workdir=tmp, domain=DOMAIN).start()
    register(c.addr(0), "ringer", "ringer-pw", ringer.addr, workdir=tmp, domain=DOMAIN)

    # a caller from another domain (not challenged) rings the UAS and waits
    cli = RawSip()
    branch = "z9hG4bK-drain-1"
    frm = "<sip:carrier@198.51.100.7>;tag=dr1"
    inv = request("INVITE", f"sip:ringer@{DOMAIN}", cli.port, branch=branch, frm=frm,
                  call_id="drain-call-1")
    cli.send(port, inv)
    got = []
    wait_for(lambda: got.append(cli.recv(0.5)) or any(m and m.status == 180 for m in got),
             10, "180 Ringing")

    edge = c.nodes[0].procs["edge"]
    edge.send_signal(signal.SIGTERM)
    wait_for(lambda: http(c.nodes[0].http["edge"], "/readyz")[0] == 503, 5, "/readyz 503")
    probe = RawSip()
    probe.send(port, request("OPTIONS", f"sip:{DOMAIN}", probe.port))
    r = probe.recv_final(3)
    assert r is not None and r.status == 503 and r.hdr("retry-after"), r and r.start
    probe.send(port, request("INVITE", f"sip:ringer@{DOMAIN}", probe.port,
                             frm="<sip:other@198.51.100.8>;tag=x"))
    r = probe.recv_final(3)
    assert r is not None and r.status == 503, r and r.start
    probe.close()
    assert edge.poll() is None, "the edge left while a call was ringing"

    # the ringing call ends normally: CANCEL -> 200, INVITE -> 487
    cancel = (inv.decode().split("\r\n\r\n")[0].replace("INVITE sip:", "CANCEL sip:", 1)
              .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL"))
    cli.send(port, cancel.encode() + b"\r\n\r\n")
    finals = {}
    def both():
        m = cli.recv(0.5)
        if m and m.status >= 200:
            finals[m.hdr("cseq")[0].split()[1]] = m.status
        return finals.get("CANCEL") == 200 and finals.get("INVITE") == 487
    wait_for(both, 10, "200 for CANCEL and 487 for INVITE")
    ack = (inv.decode().split("\r\n\r\n")[0].replace("INVITE sip:", "ACK sip:", 1)
           .replace("CSeq: 1 INVITE", "CSeq: 1 ACK"))
    cli.send(port, ack.encode() + b"\r\n\r\n")
    cli.close()
    wait_for(lambda: edge.poll() is not None, 15, "the drained edge exiting")
    assert edge.returncode == 0, edge.returncode
    ringer.stop()


if __name__ == "__main__":
    run([test_drain_answers_503_and_lets_calls_finish])
