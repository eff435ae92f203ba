#!/usr/bin/env python3
"""REGISTER refreshes written by the edge itself (issue 6, docs/edge.md "REGISTER
refreshes"): once the edge has heard the registrar's policy, a REGISTER that only
extends existing bindings runs the registration script from the edge (the registrar
sees nothing of it); an addition, a removal, an out-of-order CSeq and a replay still
go to the registrar, which answers as before (the reg-event and stored-message work
stays there). With the registrar stopped, refreshes go on and new bindings get 500.
A replayed nonce-count is refused on the edge's path too. direct_refresh = no sends
everything to the registrar."""
import signal

from skeinlib import http, metric, run
from sipcluster import DOMAIN, Cluster, digest_register

USERS = [("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")]
PW = dict(USERS)
ALG = "SHA-256"


def counts(c, registrar=True):
    """The counters that say which path wrote; registrar=False while it is stopped."""
    edge = http(c.nodes[0].http["edge"], "/metrics")[1]

    def m(text, name, label):
        return int(metric(text, name, label) or 0)
    out = {k: m(edge, "skein_edge_register_direct_total", f'result="{k}"')
           for k in ("written", "deferred", "error")}
    if registrar:
        reg = http(c.nodes[0].http["registrar"], "/metrics")[1]
        out.update(
            registrar_ok=m(reg, "skein_registrar_register_requests_total", 'result="ok"'),
            registrar_refreshed=m(reg, "skein_registrar_binding_changes_total",
                                  'change="refreshed"'),
            out_of_order=m(reg, "skein_registrar_register_requests_total",
                           'result="out_of_order"'))
    return out


def delta(c, before):
    now = counts(c, registrar="registrar_ok" in before)
    return {k: now[k] - before[k] for k in now if now[k] != before[k]}


def reg(c, user, contact, **kw):
    r, _ = digest_register(c.sip[0], user, PW[user], contact, alg=ALG, **kw)
    assert r is not None, "no answer"
    return r


def expires_of(r, contact):
    for h in r.hdr("contact"):
        if contact.strip("<>") in h:
            return int(h.rsplit("expires=", 1)[1].split(";")[0])
    raise AssertionError(f"{contact} not in {r.hdr('contact')}")


def test_refreshes_at_the_edge():
    c = Cluster(1, users=USERS)
    a1, a2 = "<sip:alice@127.0.0.1:6401>", "<sip:alice@127.0.0.1:6402>"

    # A new binding: the registrar's (the edge has not heard its policy yet).
    b = counts(c)
    r = reg(c, "alice", a1, call_id="alice-1", expires=600)
    assert r.status == 200, r.start
    assert delta(c, b) == {"registrar_ok": 1}, delta(c, b)

    # A refresh: written by the edge, the registrar sees nothing; the 200 carries
    # the new expiry.
    b = counts(c)
    r = reg(c, "alice", a1, call_id="alice-1", cseq=5, expires=900)
    assert r.status == 200 and 890 <= expires_of(r, a1) <= 900, (r.start, r.hdr("contact"))
    assert delta(c, b) == {"written": 1}, delta(c, b)
    rows = c.ctl("reg", "show", f"alice@{DOMAIN}")["bindings"]
    assert len(rows) == 1 and rows[0]["cseq"] == 6, rows

    # A second contact (an addition): tried here, deferred, done by the registrar.
    b = counts(c)
    r = reg(c, "alice", a2, call_id="alice-2", expires=600)
    assert r.status == 200 and len(r.hdr("contact")) == 2, (r.start, r.hdr("contact"))
    assert delta(c, b) == {"deferred": 1, "registrar_ok": 1}, delta(c, b)

    # A removal: the registrar's too, and not even tried here (one contact with
    # expires 0 cannot be a refresh).
    b = counts(c)
    r = reg(c, "alice", a2, call_id="alice-2", cseq=5, expires=0)
    assert r.status == 200 and len(r.hdr("contact")) == 1, (r.start, r.hdr("contact"))
    assert delta(c, b) == {"registrar_ok": 1}, delta(c, b)

    # An older CSeq in the same Call-ID: deferred, and the registrar's 500.
    b = counts(c)
    r = reg(c, "alice", a1, call_id="alice-1", cseq=2)
    assert r.status == 500, r.start
    assert delta(c, b) == {"deferred": 1, "out_of_order": 1}, delta(c, b)

    # The same Authorization again on a later CSeq (a refresh by its shape): the
    # nonce-count was used, the edge's script refuses it with a fresh challenge.
    b = counts(c)
    r = reg(c, "alice", a1, call_id="alice-1", cseq=20, replay=True)
    assert r.status == 401, r.start
    assert not any("stale=true" in h for h in r.hdr("www-authenticate")), r.start
    d = delta(c, b)
    assert d == {"written": 1}, d  # the first copy; the replay wrote nothing

    # The registrar stopped: refreshes still succeed, a new binding cannot be made.
    bob = "<sip:bob@127.0.0.1:6403>"
    assert reg(c, "bob", bob, call_id="bob-1").status == 200
    proc = c.nodes[0].procs["registrar"]
    proc.send_signal(signal.SIGSTOP)
    try:
        b = counts(c, registrar=False)
        r = reg(c, "alice", a1, call_id="alice-1", cseq=30)
        assert r.status == 200, r.start
        r = reg(c, "carol", "<sip:carol@127.0.0.1:6404>", call_id="carol-1")
        assert r.status == 500, r.start
        assert delta(c, b) == {"written": 1, "deferred": 1}, delta(c, b)
    finally:
        proc.send_signal(signal.SIGCONT)
    rows = c.ctl("reg", "show", f"alice@{DOMAIN}")["bindings"]
    assert [x["cseq"] for x in rows] == [31], rows


def test_200_contact_and_date():
    """The 200 lists the binding with its expires, q, +sip.instance and reg-id
    (RFC 3261 §10.3 item 8, RFC 5626 §6) and a Date (RFC 1123 form), the same whether
    the registrar answered (the first REGISTER) or the edge (the refresh)."""
    import re
    c = Cluster(1, users=USERS)
    inst = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"
    contact = f'<sip:bob@127.0.0.1:6421;transport=udp>;q=0.5;+sip.instance="{inst}";reg-id=1'
    date_re = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|"
                         r"Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
    b = counts(c, registrar=False)
    for cseq in (1, 5):
        r = reg(c, "bob", contact, call_id="bob-params", cseq=cseq, expires=600,
                extra_headers="Supported: outbound\r\n")
        assert r.status == 200, r.start
        got = r.hdr("contact")
        assert len(got) == 1, got
        m = re.fullmatch(r'<sip:bob@127\.0\.0\.1:6421;transport=udp>;expires=(\d+);q=0\.500;'
                         r'\+sip\.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";'
                         r'reg-id=1', got[0])
        assert m and 590 <= int(m.group(1)) <= 600, got
        assert len(r.hdr("date")) == 1 and date_re.match(r.hdr("date")[0]), r.hdr("date")
    assert delta(c, b) == {"written": 1}, delta(c, b)


def test_register_seconds_from_first_attempt():
    """skein_edge_register_seconds times a REGISTER from its first attempt: an addition
    tried here first (and deferred to the registrar) counts the edge's attempt too.
    Redis holds every write for 0.5 s (CLIENT PAUSE WRITE) just before: the edge's
    attempt waits for it, the registrar's then does not."""
    c = Cluster(1, users=USERS)
    a1, a2 = "<sip:alice@127.0.0.1:6431>", "<sip:alice@127.0.0.1:6432>"
    assert reg(c, "alice", a1, call_id="t-1").status == 200  # the policy, the HA1 cached

    def hist():
        text = http(c.nodes[0].http["edge"], "/metrics")[1]
        return (metric(text, "skein_edge_register_seconds_count") or 0,
                metric(text, "skein_edge_register_seconds_sum") or 0)
    b, (n0, s0) = counts(c), hist()
    assert c.redis.cmd("CLIENT", "PAUSE", "500", "WRITE") == "OK"
    r = reg(c, "alice", a2, call_id="t-2", expires=600)
    assert r.status == 200 and len(r.hdr("contact")) == 2, (r.start, r.hdr("contact"))
    assert delta(c, b) == {"deferred": 1, "registrar_ok": 1}, delta(c, b)
    n1, s1 = hist()
    assert n1 - n0 == 1, (n0, n1)
    assert s1 - s0 >= 0.3, (s0, s1)  # the paused first attempt is in it


def test_direct_refresh_off():
    c = Cluster(1, users=USERS, edge_extra={"direct_refresh": "no"})
    a1 = "<sip:alice@127.0.0.1:6411>"
    assert reg(c, "alice", a1, call_id="off-1").status == 200
    b = counts(c)
    for cseq in (5, 9):
        r = reg(c, "alice", a1, call_id="off-1", cseq=cseq)
        assert r.status == 200, r.start
    assert delta(c, b) == {"registrar_ok": 2, "registrar_refreshed": 2}, delta(c, b)


if __name__ == "__main__":
    run([test_refreshes_at_the_edge, test_200_contact_and_date, test_direct_refresh_off,
         test_register_seconds_from_first_attempt])
