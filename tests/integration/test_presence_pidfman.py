#!/usr/bin/env python3
"""pidf-manipulation (RFC 4827) as a presentity's state when nothing is published
(docs/presence.md, pidf.h pidf_compose), on a 2-node cluster: alice and bob use
different edges, alice's XCAP goes through the other node's server, so every change
crosses Redis and the bus.

  1. alice PUTs a pidf-manipulation document over XCAP (curl, digest): tuple "hand"
     open with a note; bob SUBSCRIBEs to alice's presence (pres_default_policy allow)
     and the NOTIFY carries the "hand" tuple and its note;
  2. alice changes the document (another note): a NOTIFY with the new note (the XCAP
     change hook tells the presence agent);
  3. alice PUBLISHes (tuple "t1" open): the NOTIFY carries the published state only,
     not the hand-set one (RFC 4827 §1: the document is the default);
  4. alice removes her publication (SIP-If-Match, Expires: 0, RFC 3903 §4.5): the
     NOTIFY carries the pidf-manipulation document again;
  5. alice DELETEs the document: the NOTIFY carries the offline document (one closed
     tuple, pidf_offline);
  6. bob unsubscribes: 200 and a terminated NOTIFY.
Every wait has a deadline (preslib wait_notify) and names what it waited for."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipplib  # noqa: E402
from preslib import UA, pidf, pidf_tuple_notes, pidf_tuples, xcap  # noqa: E402
from sipcluster import DOMAIN, Cluster  # noqa: E402
from skeinlib import run  # noqa: E402

USERS = (("alice", "alicepw"), ("bob", "bobpw"))
PW = dict(USERS)
ALICE = f"sip:alice@{DOMAIN}"
PIDF_CT = "application/pidf+xml"
MANIP = f"/xcap/pidf-manipulation/users/{ALICE}/index"


def cluster():
    # XCAP ports from sipplib's probed range (as test_presence.py), not the kernel's
    # ephemeral range where Node picks its HTTP ports.
    xports = sipplib.free_ports(2)
    c = Cluster(2, users=USERS, registrar_extra=lambda i: {
        "notify_interval": "200ms", "timer_interval": "100ms", "pres_default_policy": "allow",
        "xcap_listen": f"127.0.0.1:{xports[i]}"})
    c.xcap = [f"http://127.0.0.1:{p}" for p in xports]
    return c


def ua(user, c, node):
    """From 127.0.0.2: 127.0.0.1 is a trusted network in the test clusters, and a
    trusted source may act for anyone (test_presence.py)."""
    return UA(user, PW[user], c.sip[node], ip="127.0.0.2")


def is_pidf(m):
    return (m.hdr("content-type") or "").split(";")[0].strip().lower() == PIDF_CT and \
        bool(m.body.strip())


def active_pidf(m):
    """{tuple id: basic} of an active presence NOTIFY with a PIDF body."""
    st, params = m.sub_state()
    assert st == "active" and int(params.get("expires", "-1")) > 0, m.hdr("subscription-state")
    assert (m.hdr("event") or "").split(";")[0].strip().lower() == "presence", m.hdr("event")
    assert is_pidf(m), (m.hdr("content-type"), m.body)
    return pidf_tuples(m.body)


def hand(note):
    return pidf(ALICE, [("hand", "open", note)])


def test_pidf_manipulation_default():
    c = cluster()
    alice = ua("alice", c, 0)
    bob = ua("bob", c, 1)
    try:
        # 1. the hand-set document, then bob watches
        st, h, body = xcap(c.xcap[1], MANIP, "alice", PW["alice"], "PUT", hand("in a meeting"),
                           PIDF_CT)
        assert st == 201 and h.get("etag"), (st, h, body)
        r, sub = bob.subscribe(ALICE, "presence", expires=600, accept=PIDF_CT)
        assert r is not None and r.status == 200, r
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "hand" in pidf_tuples(m.body),
                            what="NOTIFY with the pidf-manipulation document")
        assert active_pidf(n) == {"hand": "open"}, n.body
        assert pidf_tuple_notes(n.body)["hand"] == ["in a meeting"], n.body
        assert f'entity="{ALICE}"' in n.body, n.body
        seen = len(bob.notifies(sub))

        # 2. the document changes: the watcher is told
        st, _, body = xcap(c.xcap[1], MANIP, "alice", PW["alice"], "PUT", hand("at lunch"),
                           PIDF_CT)
        assert st == 200, (st, body)
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "at lunch" in m.body, after=seen,
                            what="NOTIFY with the changed pidf-manipulation document")
        assert active_pidf(n) == {"hand": "open"}, n.body
        seen = len(bob.notifies(sub))

        # 3. a publication: its state, not the hand-set one
        r = alice.publish(pidf(ALICE, [("t1", "open", None)]), expires=600)
        assert r is not None and r.status == 200 and r.hdr("sip-etag"), r
        etag = r.hdr("sip-etag")
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "t1" in pidf_tuples(m.body),
                            after=seen, what="NOTIFY with the published state")
        assert active_pidf(n) == {"t1": "open"}, n.body
        assert "at lunch" not in n.body, n.body
        seen = len(bob.notifies(sub))

        # 4. the publication removed: the hand-set document again
        r = alice.publish(if_match=etag, expires=0)
        assert r is not None and r.status == 200, r
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "hand" in pidf_tuples(m.body),
                            after=seen, what="NOTIFY with the pidf-manipulation document "
                            "after the publication was removed")
        assert active_pidf(n) == {"hand": "open"}, n.body
        assert pidf_tuple_notes(n.body)["hand"] == ["at lunch"], n.body
        seen = len(bob.notifies(sub))

        # 5. the document deleted: offline
        st, _, body = xcap(c.xcap[0], MANIP, "alice", PW["alice"], "DELETE")
        assert st == 200, (st, body)
        n = bob.wait_notify(sub, lambda m: is_pidf(m) and "hand" not in pidf_tuples(m.body),
                            after=seen, what="NOTIFY with the offline document")
        t = active_pidf(n)
        assert t and all(b == "closed" for b in t.values()), n.body
        assert xcap(c.xcap[0], MANIP, "alice", PW["alice"])[0] == 404
        seen = len(bob.notifies(sub))

        # 6. the end of the subscription
        r = sub.refresh(0)
        assert r is not None and r.status == 200, r
        n = bob.wait_notify(sub, lambda m: m.sub_state()[0] == "terminated", after=seen,
                            what="the terminated NOTIFY")
    finally:
        alice.close()
        bob.close()


if __name__ == "__main__":
    run([test_pidf_manipulation_default])
