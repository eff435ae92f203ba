#!/usr/bin/env python3
"""SIP SIMPLE presence on a 2-node cluster (issue 7): each node runs skein-edge and
skein-registrar (with XCAP on its own port); publishers and watchers talk to different
edges, so every NOTIFY crosses the bus and the state lives in Redis only.

  publish_subscribe  PUBLISH with digest -> 200 + SIP-ETag (sipp, pres_publish.xml); a
                     watcher's SUBSCRIBE -> 200 (Expires, Contact) and a NOTIFY active
                     with the PIDF (sipp, pres_subscribe.xml, which answers it 200),
                     over UDP and over TCP (NOTIFYs down the watcher's connection);
                     a second device's PUBLISH -> one merged document; SIP-If-Match:
                     unknown tag 412, refresh 200 with a new tag, old tag 412, modify,
                     remove (RFC 3903 §6); Event: foo 489, bad PIDF 400, someone else's
                     presentity 403; Expires below the minimum 423;
                     unsubscribe -> 200 + NOTIFY terminated; unknown dialog -> 481.
  confirm_winfo_xcap pres_default_policy confirm: pending NOTIFY without body, the
                     presentity's presence.winfo shows the watcher pending; a pres-rules
                     document PUT over XCAP allows it -> NOTIFY active with the PIDF,
                     winfo shows it active (RFC 3857, RFC 5025).
  restart            every registrar stopped (SIGTERM) and started again: an in-dialog
                     refresh still works and its NOTIFY carries the PIDF; a new watcher
                     gets the PIDF.
  mwi_and_reg        message-summary (RFC 3842): "no", then a MESSAGE stored for the
                     offline user (202) -> "yes"; reg (RFC 3680): reginfo, then a
                     REGISTER -> a NOTIFY listing the new contact.
  throttle           notify_interval 1s: five changes within a second give two NOTIFYs
                     (the first at once, the last state at the end of the interval).
Every wait has a deadline; every assertion names the message it looked at."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipplib  # noqa: E402
from preslib import (UA, mwi_waiting, pidf, pidf_tuple_notes, pidf_tuples,  # noqa: E402
                     pres_rules, reginfo_contacts, winfo_watchers, xcap)
from sipcluster import DOMAIN, Cluster, digest_register  # noqa: E402
from skeinlib import run, wait_for  # noqa: E402

USERS = (("alice", "alicepw"), ("bob", "bobpw"), ("carol", "carolpw"), ("dave", "davepw"))
PW = dict(USERS)
ALICE = f"sip:alice@{DOMAIN}"
PIDF_CT = "application/pidf+xml"


def ua(user, c, node):
    """A UA for user on edge `node`, sending from 127.0.0.2: the test clusters trust
    127.0.0.1 (trusted_networks), and a trusted source may act for anyone (publish for
    another presentity, watch another user's watchers), which is not what is tested."""
    return UA(user, PW[user], c.sip[node], ip="127.0.0.2")


def cluster(policy="allow", interval="200ms"):
    # XCAP ports from sipplib's range (15000-19999, probed, never handed out twice), not
    # the kernel's ephemeral range where Node picks its HTTP ports: no collision
    xports = sipplib.free_ports(2)
    # sipp 3.6.1 answers MD5 challenges only
    c = Cluster(2, users=USERS, edge_extra={"auth_algorithms": "md5"}, registrar_extra=lambda i: {
        "notify_interval": interval, "timer_interval": "100ms", "pres_default_policy": policy,
        "xcap_listen": f"127.0.0.1:{xports[i]}"})
    c.xcap = [f"http://127.0.0.1:{p}" for p in xports]
    return c


def winfo_version(body):
    return int(re.search(r'<watcherinfo[^>]*\sversion="(\d+)"', body).group(1))


def is_pidf(m):
    return (m.hdr("content-type") or "").split(";")[0].strip().lower() == PIDF_CT and m.body


def state_of(m):
    return m.sub_state()[0]


def check_notify_active(m, want_tuples):
    """A NOTIFY of an active presence subscription carrying a PIDF with want_tuples
    ({id: basic})."""
    st, params = m.sub_state()
    assert st == "active" and int(params.get("expires", "-1")) > 0, m.hdr("subscription-state")
    assert (m.hdr("event") or "").split(";")[0].strip().lower() == "presence", m.hdr("event")
    assert is_pidf(m), (m.hdr("content-type"), m.body)
    got = pidf_tuples(m.body)
    for tid, basic in want_tuples.items():
        assert got.get(tid) == basic, (tid, basic, m.body)
    return got


# ------------------------------------------------------------------ a b c d f

def test_publish_subscribe():
    c = cluster()
    tmp = c.tmp
    # (a) alice publishes through edge 1 with sipp: 407, then 200 with a SIP-ETag
    # sipp cannot read a body from a file: the scenario carries the PIDF, the tuple
    # id, basic status and note given as keys
    r = sipplib.sipp("pres_publish.xml", c.addr(0), user="alice", password=PW["alice"],
                     keys={"tuple": "t-a1", "basic": "open", "note": "desk"}, workdir=tmp,
                     domain=DOMAIN)
    assert r.ok, r.explain()
    finals = [x for x in r.trace.responses(method="PUBLISH") if x >= 200]
    assert finals in ([407, 200], [401, 200]), r.explain()
    ok = r.trace.find(status=200, method="PUBLISH")[-1]
    assert ok.header("SIP-ETag"), ok.text
    assert int(ok.header("Expires") or 0) > 0, ok.text

    # bob subscribes through edge 2 with sipp, which answers the NOTIFY 200
    r = sipplib.sipp("pres_subscribe.xml", c.addr(1), user="bob", password=PW["bob"],
                     service="alice", workdir=tmp, domain=DOMAIN, keys={"expires": 600},
                     timeout_s=20)
    assert r.ok, r.explain()
    ok = r.trace.find(status=200, method="SUBSCRIBE", direction="received")
    assert ok and ok[0].header("Expires") and ok[0].header("Contact"), r.explain()
    assert 0 < int(ok[0].header("Expires")) <= 600, ok[0].text
    nots = r.trace.find(request="NOTIFY", direction="received")
    assert nots, r.explain()
    first = nots[0]
    assert first.header("Subscription-State").startswith("active"), first.text
    assert "expires=" in first.header("Subscription-State"), first.text
    assert first.header("Content-Type").startswith(PIDF_CT), first.text
    t = pidf_tuples(first.body)
    assert t.get("t-a1") == "open", first.body
    assert "desk" in (pidf_tuple_notes(first.body).get("t-a1") or []), first.body
    # then the unsubscribe (Expires: 0): 200 and the final NOTIFY, both answered 200
    assert len(nots) == 2, r.explain()
    assert nots[1].header("Subscription-State").startswith("terminated"), nots[1].text
    sent200 = r.trace.find(status=200, method="NOTIFY", direction="sent")
    assert len(sent200) == 2, r.explain()

    # the same over TCP through edge 1: the NOTIFYs come down the watcher's own
    # connection (the flow the SUBSCRIBE came on)
    r = sipplib.sipp("pres_subscribe.xml", c.addr(0), user="carol", password=PW["carol"],
                     service="alice", workdir=tmp, domain=DOMAIN, keys={"expires": 600},
                     timeout_s=20, transport="t1")
    assert r.ok, r.explain()
    nots = r.trace.find(request="NOTIFY", direction="received")
    assert len(nots) == 2 and all(m.transport == "TCP" for m in nots), r.explain()
    assert pidf_tuples(nots[0].body).get("t-a1") == "open", nots[0].text
    assert nots[1].header("Subscription-State").startswith("terminated"), nots[1].text

    # the rest with the Python UA: bob watches alice on edge 2
    alice = ua("alice", c, 0)
    alice2 = ua("alice", c, 1)
    bob = ua("bob", c, 1)
    try:
        r, sub = bob.subscribe(ALICE, "presence", expires=600, accept=PIDF_CT)
        assert r is not None and r.status == 200, r
        assert r.challenge is not None and r.challenge.status in (401, 407), r.challenge
        assert r.hdr("expires") and r.hdr("contact"), r
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "t-a1" in m.body)
        check_notify_active(n, {"t-a1": "open"})
        seen = len(bob.notifies(sub))

        # (b) a second device publishes without SIP-If-Match: one merged document
        r2 = alice2.publish(pidf(ALICE, [("t-a2", "open", "mobile")], note="mobile"))
        assert r2 is not None and r2.status == 200 and r2.hdr("sip-etag"), r2
        etag2 = r2.hdr("sip-etag")
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "t-a2" in m.body, after=seen,
                            what="NOTIFY with the second device's tuple")
        got = check_notify_active(n, {"t-a1": "open", "t-a2": "open"})
        assert set(got) >= {"t-a1", "t-a2"}, n.body
        # one dialog: every NOTIFY has the To tag of our 200 as its From tag, CSeqs grow
        ns = bob.notifies(sub)
        assert all(m.tag("from") == sub.to_tag for m in ns), (sub.to_tag, ns)
        cs = [m.cseq[0] for m in ns]
        assert cs == sorted(cs) and len(set(cs)) == len(cs), cs
        assert n.body.count("<presence") == 1 or n.body.count(":presence") == 1, n.body

        # (c) SIP-If-Match: unknown tag 412; refresh with the current one 200 + new tag;
        # the old tag then 412
        r = alice2.publish(if_match="no-such-etag-123", expires=600)
        assert r is not None and r.status == 412, r
        # an ETag-less refresh (no body, no SIP-If-Match): 412 as well
        r = alice2.publish(expires=600)
        assert r is not None and r.status == 412, r
        r = alice2.publish(if_match=etag2, expires=600)
        assert r is not None and r.status == 200, r
        etag3 = r.hdr("sip-etag")
        assert etag3 and etag3 != etag2, (etag2, etag3)
        assert int(r.hdr("expires") or 0) > 0, r
        r = alice2.publish(if_match=etag2, expires=600)
        assert r is not None and r.status == 412, r
        # modify under the new tag: bob hears the new basic status
        seen = len(bob.notifies(sub))
        r = alice2.publish(pidf(ALICE, [("t-a2", "closed", "mobile")]), if_match=etag3)
        assert r is not None and r.status == 200 and r.hdr("sip-etag") not in (None, etag3), r
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and pidf_tuples(m.body).get("t-a2")
                            == "closed", after=seen, what="NOTIFY with t-a2 closed")
        check_notify_active(n, {"t-a1": "open", "t-a2": "closed"})
        # remove (RFC 3903 §4.4: SIP-If-Match, Expires: 0): the second device's tuple goes
        etag4 = r.hdr("sip-etag")
        seen = len(bob.notifies(sub))
        r = alice2.publish(if_match=etag4, expires=0)
        assert r is not None and r.status == 200, r
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "t-a2" not in pidf_tuples(m.body),
                            after=seen, what="NOTIFY without t-a2 after its removal")
        check_notify_active(n, {"t-a1": "open"})
        r = alice2.publish(if_match=etag4, expires=600)
        assert r is not None and r.status == 412, r

        # (d) Event: foo -> 489; malformed PIDF -> 400; someone else's presentity -> 403
        r = alice.publish(pidf(ALICE, [("x", "open", None)]), event="foo")
        assert r is not None and r.status == 489, r
        assert "presence" in (r.hdr("allow-events") or ""), r.headers  # RFC 6665 §8.2.2
        r = alice.publish("<presence xmlns='urn:ietf:params:xml:ns:pidf'><tuple>")
        assert r is not None and r.status == 400, r
        r = alice.publish(pidf(f"sip:bob@{DOMAIN}", [("evil", "open", None)]),
                          ruri=f"sip:bob@{DOMAIN}")
        assert r is not None and r.status == 403, r
        # none of them reached bob's document
        r, sub2 = bob.subscribe(ALICE, "presence", expires=0, accept=PIDF_CT)  # a fetch
        assert r is not None and r.status == 200, r
        n = bob.wait_notify(sub2, what="NOTIFY of a fetch (Expires: 0)")
        assert state_of(n) == "terminated", n
        if n.body:
            assert "evil" not in n.body and "x" not in pidf_tuples(n.body), n.body

        # a subscription shorter than sub_min_expires (60 s): 423 with Min-Expires
        r, _ = bob.subscribe(ALICE, "presence", expires=5, accept=PIDF_CT)
        assert r is not None and r.status == 423 and r.hdr("min-expires"), r

        # (f) unsubscribe -> 200 + NOTIFY terminated; unknown dialog -> 481
        seen = len(bob.notifies(sub))
        r = sub.refresh(0)
        assert r is not None and r.status == 200, r
        n = bob.wait_notify(sub, lambda m: state_of(m) == "terminated", after=seen,
                            what="final NOTIFY (terminated)")
        assert n.sub_state()[0] == "terminated", n
        r = bob.request("SUBSCRIBE", f"sip:alice@{DOMAIN}",
                        ["Event: presence", "Expires: 600"],
                        to=f"<{ALICE}>;tag=no-such-dialog", call_id="no-such-call-id@x",
                        from_tag="nope", cseq=5, auth=False)
        assert r is not None and r.status == 481, r
        # the watcher answered every NOTIFY 200 (nothing retransmitted to it endlessly)
        assert all(m.method == "NOTIFY" for m in bob.requests), bob.requests
    finally:
        for u in (alice, alice2, bob):
            u.close()


# ------------------------------------------------------------------ e

def test_confirm_winfo_xcap():
    c = cluster(policy="confirm")
    alice = ua("alice", c, 0)
    carol = ua("carol", c, 1)
    try:
        r = alice.publish(pidf(ALICE, [("t-a1", "open", "desk")], note="desk"))
        assert r is not None and r.status == 200, r
        r, winfo = alice.subscribe(ALICE, "presence.winfo", expires=600,
                                   accept="application/watcherinfo+xml")
        assert r is not None and r.status == 200, r
        n = n0 = alice.wait_notify(winfo, what="first winfo NOTIFY")
        assert state_of(n) == "active", n
        assert (n.hdr("content-type") or "").startswith("application/watcherinfo+xml"), n
        assert winfo_watchers(n.body) == [], n.body  # nobody yet

        r, sub = carol.subscribe(ALICE, "presence", expires=600, accept=PIDF_CT)
        assert r is not None and r.status == 200, r
        n = carol.wait_notify(sub, what="NOTIFY pending")
        assert state_of(n) == "pending", n
        assert not n.body.strip() and (n.hdr("content-length") or "0") == "0", n.body
        w = alice.wait_notify(winfo, lambda m: any(
            u == f"sip:carol@{DOMAIN}" and s == "pending" for u, s, _ in winfo_watchers(m.body)),
            what="winfo NOTIFY with carol pending")
        assert f'resource="{ALICE}"' in w.body and 'package="presence"' in w.body, w.body
        assert winfo_version(w.body) > winfo_version(n0.body), (n0.body, w.body)  # RFC 3858 §4.3

        # alice allows carol over XCAP (digest, through node 2's XCAP server)
        doc = pres_rules([("allow-carol", [f"sip:carol@{DOMAIN}"], "allow", True)])
        st, h, body = xcap(c.xcap[1], f"/xcap/pres-rules/users/{ALICE}/index", "alice",
                           PW["alice"], "PUT", doc, "application/auth-policy+xml")
        assert st in (200, 201), (st, body)
        n = carol.wait_notify(sub, lambda m: state_of(m) == "active" and is_pidf(m),
                              what="NOTIFY active after the pres-rules PUT")
        check_notify_active(n, {"t-a1": "open"})
        w2 = alice.wait_notify(winfo, lambda m: any(
            u == f"sip:carol@{DOMAIN}" and s == "active" for u, s, _ in winfo_watchers(m.body)),
            what="winfo NOTIFY with carol active")
        assert winfo_version(w2.body) > winfo_version(w.body), (w.body, w2.body)
        # winfo is the owner's: carol may not watch alice's watchers
        r, _ = carol.subscribe(ALICE, "presence.winfo", expires=600,
                               accept="application/watcherinfo+xml")
        assert r is not None and r.status == 403, r
    finally:
        alice.close()
        carol.close()


# ------------------------------------------------------------------ g

def test_restart():
    c = cluster()
    alice = ua("alice", c, 0)
    bob = ua("bob", c, 1)
    dave = ua("dave", c, 0)
    try:
        r = alice.publish(pidf(ALICE, [("t-a1", "open", "desk")], note="desk"), expires=3600)
        assert r is not None and r.status == 200, r
        r, sub = bob.subscribe(ALICE, "presence", expires=600, accept=PIDF_CT)
        assert r is not None and r.status == 200, r
        bob.wait_notify(sub, lambda m: is_pidf(m) and "t-a1" in m.body)

        # stop every registrar (SIGTERM: they drain and exit 0), then start them again
        for node in c.nodes:
            node.procs["registrar"].send_signal(signal.SIGTERM)
        for node in c.nodes:
            rc = node.procs["registrar"].wait(timeout=15)
            assert rc == 0, f"{node.node_id} registrar exit {rc}: {node.log('registrar')[-1500:]}"
        for node in c.nodes:
            node.start("registrar")

        seen = len(bob.notifies(sub))
        # the edges may need a moment to see the new registrars: retry the refresh
        # (it is idempotent) until it is answered 200
        def refreshed():
            r = sub.refresh(600)
            assert r is not None and r.status in (200, 408, 500, 503), r
            return r if r.status == 200 else None
        wait_for(refreshed, 15, "an in-dialog refresh answered 200 after the restart")
        n = bob.wait_notify(sub, lambda m: is_pidf(m), after=seen,
                            what="NOTIFY after the refresh")
        check_notify_active(n, {"t-a1": "open"})
        r, sub2 = dave.subscribe(ALICE, "presence", expires=600, accept=PIDF_CT)
        assert r is not None and r.status == 200, r
        n = dave.wait_notify(sub2, lambda m: is_pidf(m))
        check_notify_active(n, {"t-a1": "open"})
    finally:
        for u in (alice, bob, dave):
            u.close()


# ------------------------------------------------------------------ h i

def test_mwi_and_reg():
    c = cluster()
    alice = ua("alice", c, 0)
    bob = ua("bob", c, 1)
    dave = ua("dave", c, 1)
    try:
        # (h) message-summary of one's own mailbox
        r, mwi = alice.subscribe(ALICE, "message-summary", expires=600,
                                 accept="application/simple-message-summary")
        assert r is not None and r.status == 200, r
        n = alice.wait_notify(mwi, what="message-summary NOTIFY")
        assert (n.hdr("content-type") or "").startswith("application/simple-message-summary"), n
        assert mwi_waiting(n.body) == "no", n.body
        r, dmwi = dave.subscribe(f"sip:dave@{DOMAIN}", "message-summary", expires=600,
                                 accept="application/simple-message-summary")
        assert r is not None and r.status == 200, r
        n = dave.wait_notify(dmwi, what="dave's message-summary NOTIFY")
        assert mwi_waiting(n.body) == "no", n.body
        seen = len(dave.notifies(dmwi))
        # dave has no binding: bob's MESSAGE is stored -> 202, and dave's MWI says yes
        r = bob.request("MESSAGE", f"sip:dave@{DOMAIN}", body="are you there?",
                        ctype="text/plain")
        assert r is not None and r.status == 202, r
        n = dave.wait_notify(dmwi, lambda m: mwi_waiting(m.body) == "yes", after=seen,
                             what="message-summary NOTIFY with Messages-Waiting: yes")
        # someone else's mailbox: 403
        r, _ = bob.subscribe(f"sip:dave@{DOMAIN}", "message-summary", expires=600)
        assert r is not None and r.status == 403, r

        # (i) reg: alice's own registration state
        r, reg = alice.subscribe(ALICE, "reg", expires=600, accept="application/reginfo+xml")
        assert r is not None and r.status == 200, r
        n = alice.wait_notify(reg, what="reg NOTIFY")
        assert (n.hdr("content-type") or "").startswith("application/reginfo+xml"), n
        assert reginfo_contacts(n.body) == [], n.body  # no binding yet
        assert f'aor="{ALICE}"' in n.body, n.body
        seen = len(alice.notifies(reg))
        port = sipplib.free_ports(1)[0]
        contact = f"sip:alice@127.0.0.1:{port}"
        rr, _ = digest_register(c.sip[1], "alice", PW["alice"], f"<{contact}>", expires=300,
                                alg="MD5")
        assert rr is not None and rr.status == 200, rr and rr.start
        # <uri> is the contact URI as registered (parameters, if any, after it)
        n = alice.wait_notify(reg, lambda m: any((cu or "").startswith(contact) for _, _, cu, _
                                                 in reginfo_contacts(m.body)),
                              after=seen, what="reg NOTIFY with the new contact")
        rows = reginfo_contacts(n.body)
        assert any(a == ALICE and cu.startswith(contact) and cs == "active"
                   for a, _, cu, cs in rows), rows
    finally:
        for u in (alice, bob, dave):
            u.close()


# ------------------------------------------------------------------ throttling

def test_throttle():
    """notify_interval 1s: at most one NOTIFY per second per watcher; five changes made
    within a second give the first at once and one more at the end of the interval,
    with the last state (RFC 6665 §6.1: rate limits, intermediate states may be
    skipped)."""
    c = cluster(interval="1s")
    alice = ua("alice", c, 0)
    bob = ua("bob", c, 1)
    try:
        r = alice.publish(pidf(ALICE, [("t-a1", "open", "v0")]))
        assert r is not None and r.status == 200, r
        etag = r.hdr("sip-etag")
        r, sub = bob.subscribe(ALICE, "presence", expires=600, accept=PIDF_CT)
        assert r is not None and r.status == 200, r
        bob.wait_notify(sub, lambda m: is_pidf(m) and "v0" in m.body)
        # let the interval opened by the first NOTIFY pass (a change now is sent at once)
        wait_for(lambda: time.monotonic() - bob.notifies(sub)[0].t > 1.2, 3, "1.2 s")
        seen = len(bob.notifies(sub))
        t0 = time.monotonic()
        for k in range(1, 6):
            r = alice.publish(pidf(ALICE, [("t-a1", "open", f"v{k}")]), if_match=etag)
            assert r is not None and r.status == 200, r
            etag = r.hdr("sip-etag")
        took = time.monotonic() - t0
        last = bob.wait_notify(sub, lambda m: is_pidf(m) and "v5" in m.body, after=seen,
                               timeout=5, what="NOTIFY with the last change (v5)")
        time.sleep(1.5)  # nothing else may come: an absence can only be waited out
        ns = bob.notifies(sub)[seen:]
        assert ns[-1] is last, ns
        if took < 0.8:  # all five changes fell into one interval
            assert len(ns) <= 2, (took, [m.body for m in ns])
        else:
            print(f"  (5 PUBLISHes took {took:.2f}s: the machine is slow, "
                  f"{len(ns)} NOTIFYs for them, count not checked)")
        gaps = [b.t - a.t for a, b in zip(ns, ns[1:])]
        assert all(g > 0.8 for g in gaps), gaps
    finally:
        alice.close()
        bob.close()


if __name__ == "__main__":
    run([test_publish_subscribe, test_confirm_winfo_xcap, test_restart, test_mwi_and_reg,
         test_throttle])
