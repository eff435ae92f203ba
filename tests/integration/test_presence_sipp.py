#!/usr/bin/env python3
"""The issue-7 presence scenarios driven by sipp alone (test_presence.py goes further
with its own UA): a 2-node cluster, watchers on edge 2, publishers on edge 1.

  merged       bob watches alice with sipp (pres_watch.xml, answers every NOTIFY 200);
               alice's first device publishes with sipp (pres_publish.xml, tuple
               "desk") -> bob's NOTIFY carries it; her second device publishes (tuple
               "phone") -> bob's next NOTIFY is ONE document with both tuples.
  etags        sipp pres_etag.xml: initial PUBLISH -> 200 + SIP-ETag e1; a refresh with
               SIP-If-Match e1 -> 200 with a new tag e2; the old e1 again -> 412; an
               ETag-less refresh (no body, no SIP-If-Match) -> 412.
  confirm      pres_default_policy confirm: carol watches alice with sipp -> a NOTIFY
               "pending" without a body; alice PUTs a pres-rules document over XCAP
               (curl, digest) allowing carol -> carol's next NOTIFY is "active" with the
               PIDF; a rule that blocks her then ends it (terminated;reason=rejected).
Every client authenticates (407, MD5); none acts for another user, so the trusted
loopback source of the test clusters changes nothing here."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipplib  # noqa: E402
from preslib import pidf_tuples, pres_rules, xcap  # noqa: E402
from sipcluster import DOMAIN, Cluster  # noqa: E402
from skeinlib import run, wait_for  # noqa: E402

USERS = (("alice", "alicepw"), ("bob", "bobpw"), ("carol", "carolpw"))
PW = dict(USERS)
IP = "127.0.0.1"
PIDF_CT = "application/pidf+xml"


def cluster(policy):
    xports = sipplib.free_ports(2)
    # sipp 3.6.1 answers MD5 challenges only
    c = Cluster(2, users=USERS, edge_extra={"auth_algorithms": "md5"}, registrar_extra=lambda i: {
        "notify_interval": "200ms", "timer_interval": "100ms", "pres_default_policy": policy,
        "xcap_listen": f"127.0.0.1:{xports[i]}"})
    c.xcap = [f"http://127.0.0.1:{p}" for p in xports]
    return c


def watcher(c, user, node, tmp):
    """A background sipp that SUBSCRIBEs user to alice's presence through edge `node`
    and answers every NOTIFY with 200 (pres_watch.xml)."""
    s = sipplib.SippServer("pres_watch.xml", timeout_s=90, workdir=tmp)
    csv = sipplib.write_users_csv(os.path.join(tmp, f"{s.name}_users.csv"), [(user, PW[user])])
    s.argv = sipplib.build_argv("pres_watch.xml", c.addr(node), local_port=s.port,
                                service="alice", users_csv=csv, timeout_s=90, name=s.name,
                                domain=DOMAIN, keys={"expires": 600}, local_ip=IP)
    return s.start()


def notifies(s):
    return s.trace.find(request="NOTIFY", direction="received")


def publish(c, tuple_id, tmp):
    r = sipplib.sipp("pres_publish.xml", c.addr(0), user="alice", password=PW["alice"],
                     keys={"tuple": tuple_id, "basic": "open", "note": tuple_id,
                           "expires": 600}, workdir=tmp, domain=DOMAIN, local_ip=IP)
    assert r.ok, r.explain()
    ok = r.trace.find(status=200, method="PUBLISH")
    assert ok and ok[-1].header("SIP-ETag"), r.explain()


def test_merged():
    c = cluster("allow")
    bob = watcher(c, "bob", 1, c.tmp)
    try:
        # the initial NOTIFY (nothing published yet: the offline document)
        wait_for(lambda: notifies(bob), 10, "bob's first NOTIFY")
        publish(c, "desk", c.tmp)

        def with_tuples(want):
            for n in notifies(bob):
                if (n.header("Content-Type") or "").startswith(PIDF_CT) and n.body and \
                        set(want) <= set(pidf_tuples(n.body)):
                    return n
            return None
        n = wait_for(lambda: with_tuples(["desk"]), 10, "a NOTIFY with alice's desk tuple")
        assert n.header("Subscription-State").startswith("active"), n.text
        assert pidf_tuples(n.body)["desk"] == "open", n.body
        # the second device: its own publication (no SIP-If-Match), one merged document
        publish(c, "phone", c.tmp)
        n = wait_for(lambda: with_tuples(["desk", "phone"]), 10,
                     "one NOTIFY whose document has both devices' tuples")
        assert n.body.count("<presence") == 1, n.body
        assert pidf_tuples(n.body) == {"desk": "open", "phone": "open"}, n.body
        # every NOTIFY was answered 200 by the watcher
        sent = bob.trace.find(status=200, method="NOTIFY", direction="sent")
        assert len(sent) >= len(notifies(bob)) - 1, bob.trace.text()
    finally:
        bob.stop()


def test_etags():
    c = cluster("allow")
    r = sipplib.sipp("pres_etag.xml", c.addr(0), user="alice", password=PW["alice"],
                     keys={"tuple": "t1"}, workdir=c.tmp, domain=DOMAIN, local_ip=IP)
    assert r.ok, r.explain()
    finals = [x for x in r.trace.responses(method="PUBLISH") if x >= 200]
    assert finals == [407, 200, 407, 200, 407, 412, 407, 412], r.explain()
    oks = r.trace.find(status=200, method="PUBLISH")
    e1, e2 = oks[0].header("SIP-ETag"), oks[1].header("SIP-ETag")
    assert e1 and e2 and e1 != e2, (e1, e2)
    # what sipp sent: the refresh and the stale one carried e1, the last one no tag
    sent = [m for m in r.trace.find(request="PUBLISH", direction="sent")
            if m.header("Proxy-Authorization")]
    assert [m.header("SIP-If-Match") for m in sent] == [None, e1, e1, None], \
        [m.header("SIP-If-Match") for m in sent]
    assert not sent[3].body and not sent[1].body, r.explain()


def test_confirm():
    c = cluster("confirm")
    carol = watcher(c, "carol", 1, c.tmp)
    try:
        publish(c, "desk", c.tmp)
        n = wait_for(lambda: notifies(carol), 10, "carol's first NOTIFY")[0]
        assert n.header("Subscription-State").startswith("pending"), n.text
        assert not n.body.strip(), n.text
        # nothing but pending NOTIFYs so far: carol learns nothing
        assert all(m.header("Subscription-State").startswith("pending") and not m.body.strip()
                   for m in notifies(carol)), carol.trace.text()
        doc = pres_rules([("carol-ok", [f"sip:carol@{DOMAIN}"], "allow", True)])
        st, _, body = xcap(c.xcap[0], f"/xcap/pres-rules/users/sip:alice@{DOMAIN}/index",
                           "alice", PW["alice"], "PUT", doc, "application/auth-policy+xml")
        assert st in (200, 201), (st, body)

        def active():
            for m in notifies(carol):
                if m.header("Subscription-State").startswith("active") and m.body:
                    return m
            return None
        n = wait_for(active, 10, "carol's NOTIFY active after the rules changed")
        assert n.header("Content-Type").startswith(PIDF_CT), n.text
        assert pidf_tuples(n.body).get("desk") == "open", n.body
        # and back: a rule that blocks carol ends her live subscription (RFC 5025
        # §3.2.1 block; RFC 6665 §4.1.3 reason "rejected")
        doc = pres_rules([("carol-no", [f"sip:carol@{DOMAIN}"], "block", False)])
        st, _, body = xcap(c.xcap[1], f"/xcap/pres-rules/users/sip:alice@{DOMAIN}/index",
                           "alice", PW["alice"], "PUT", doc, "application/auth-policy+xml")
        assert st == 200, (st, body)

        def ended():
            for m in notifies(carol):
                if m.header("Subscription-State").startswith("terminated"):
                    return m
            return None
        n = wait_for(ended, 10, "carol's final NOTIFY after the block rule")
        assert "reason=rejected" in n.header("Subscription-State"), n.text
        assert not n.body.strip(), n.text
    finally:
        carol.stop()


if __name__ == "__main__":
    run([test_merged, test_etags, test_confirm])
