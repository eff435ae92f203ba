#!/usr/bin/env python3
"""Forking to several bindings of one AOR (RFC 3261 §16.6-16.7) by q-value, through
a 2-edge cluster, with sipp UACs/UASes: bindings of equal q ring in parallel and the
losers are CANCELled when one answers; a lower q is tried only when every higher
one failed. The bindings are registered with SHA-256 digest (RFC 8760) by a small
RFC 7616 client here, since sipp 3.6 has only MD5."""
from sipplib import SippServer, sipp
from skeinlib import run, tmpdir
from sipcluster import DOMAIN, Cluster, digest_register

USERS = (("alice", "alice-pw"), ("multi", "multi-pw"))
PW = dict(USERS)
# the UAC is sipp: MD5 first for its INVITE challenge; SHA-256 is offered too
EDGE = {"auth_algorithms": "md5,sha256"}


def bind(c, uas, q, edge=1):
    r, chals = digest_register(c.sip[edge], "multi", PW["multi"],
                               f"<sip:multi@{uas.addr}>;q={q}", alg="SHA-256")
    assert r is not None and r.status == 200, (r and r.start, chals)
    return r


def call(c, tmp):
    return sipp("uac_call.xml", c.addr(0), service="multi", user="alice", password=PW["alice"],
                workdir=tmp, extra=["-d", "200"], domain=DOMAIN)


def test_parallel_fork_cancels_the_losers():
    c = Cluster(2, users=USERS, edge_extra=EDGE)
    tmp = tmpdir()
    answers = SippServer("uas.xml", workdir=tmp, domain=DOMAIN).start()
    rings = SippServer("uas_ring.xml", workdir=tmp, domain=DOMAIN).start()
    bind(c, answers, "1.0")
    r = bind(c, rings, "1.0")
    assert len(r.hdr("contact")) == 2, r.hdr("contact")
    res = call(c, tmp)
    assert res.ok, res.explain()
    assert res.trace.responses("INVITE")[-1] == 200, res.explain()
    rings.wait_received("ACK")
    assert rings.trace.requests() == ["INVITE", "CANCEL", "ACK"], rings.trace.requests()
    answers.wait_received("BYE")
    assert answers.trace.requests() == ["INVITE", "ACK", "BYE"], answers.trace.requests()


def test_lower_q_only_after_higher_fails():
    c = Cluster(2, users=USERS, edge_extra=EDGE)
    tmp = tmpdir()
    high = SippServer("uas.xml", workdir=tmp, domain=DOMAIN).start()
    low = SippServer("uas_ring.xml", workdir=tmp, domain=DOMAIN).start()
    bind(c, high, "1.0")
    bind(c, low, "0.5")
    res = call(c, tmp)
    assert res.ok, res.explain()
    high.wait_received("BYE")
    assert low.received("INVITE") == 0, "q=0.5 must not ring while q=1.0 answers"
    high.stop()
    low.stop()

    # the higher one is busy: the lower one gets the call after the 486
    tmp2 = tmpdir()
    busy = SippServer("uas_486.xml", workdir=tmp2, domain=DOMAIN).start()
    ok = SippServer("uas.xml", workdir=tmp2, domain=DOMAIN).start()
    r, _ = digest_register(c.sip[1], "multi", PW["multi"], "*", expires=0)
    assert r is not None and r.status == 200 and not r.hdr("contact"), r and r.start
    bind(c, busy, "0.9")
    bind(c, ok, "0.1")
    res = call(c, tmp2)
    assert res.ok, res.explain()
    assert res.trace.responses("INVITE")[-1] == 200, res.explain()
    busy.wait_received("ACK")
    ok.wait_received("BYE")
    assert busy.trace.requests() == ["INVITE", "ACK"], busy.trace.requests()
    assert ok.trace.find(request="INVITE"), ok.trace.requests()


if __name__ == "__main__":
    run([test_parallel_fork_cancels_the_losers, test_lower_q_only_after_higher_fails])
