#!/usr/bin/env python3
"""Offline IM (issue 7) on a 2-node cluster: MESSAGEs for a user with no binding are
stored by the registrar and answered 202 Accepted; `skeinctl im list` shows them (JSON,
oldest first); when the user's baresip registers (edge 2), the registrar has an edge
deliver them, in order, and the store empties; `skeinctl im purge` drops what another
offline user has. The first MESSAGE is sipp's (im_message.xml: 407, then 202), the
second a raw one (preslib.UA). baresip prints an incoming MESSAGE only with its stdio UI
and an open stdin (baresiplib does both). MD5 digest only, for baresip 1.0.0."""
import base64
import binascii
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresiplib  # noqa: E402
import sipplib  # noqa: E402
from preslib import UA  # noqa: E402
from sipcluster import DOMAIN, Cluster, digest_register  # noqa: E402
from skeinlib import free_port, run, wait_for  # noqa: E402

USERS = (("imalice", "imalice-pw"), ("imbob", "imbob-pw"), ("imcarol", "imcarol-pw"))
PW = dict(USERS)


def im_list(c, aor):
    """The stored messages of aor from `skeinctl im list` (a JSON list, or an object
    with "messages")."""
    out = c.ctl("im", "list", aor)
    if isinstance(out, dict):
        out = out.get("messages", out.get("ims", []))
    assert isinstance(out, list), f"skeinctl im list {aor}: not JSON: {out!r}"
    return out


def row_text(row):
    """A stored message as searchable text: its JSON, plus every string field that is
    base64 (a bytes body may be written so) decoded."""
    out = [json.dumps(row)]
    for v in (row.values() if isinstance(row, dict) else []):
        if isinstance(v, str) and len(v) >= 4:
            try:
                out.append(base64.b64decode(v, validate=True).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass
    return "\n".join(out)


def printed(b):
    """[(from, text)] of the MESSAGEs baresip's stdio UI printed ('sip:x@d: "text"'),
    in order. sipp ends a body with CRLF, which the UI prints inside the quotes: the
    text may span two lines; it is stripped."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", b.log())
    return [(m.group(1), m.group(2).strip())
            for m in re.finditer(r'^(sip:\S+): "([^"]*)"\s*$', log, re.M)]


def test_offline_message_stored_then_delivered_in_order():
    c = Cluster(2, users=USERS, edge_extra={"auth_algorithms": "md5"})
    bob_aor = f"imbob@{DOMAIN}"
    assert im_list(c, bob_aor) == [], im_list(c, bob_aor)

    # 1: sipp, authenticated as imalice through edge 1 -> 407, 202
    r = sipplib.sipp("im_message.xml", c.addr(0), user="imalice", password=PW["imalice"],
                     service="imbob", keys={"text": "first-offline-note"}, workdir=c.tmp,
                     domain=DOMAIN)
    assert r.ok, r.explain()
    assert [x for x in r.trace.responses(method="MESSAGE") if x >= 200] == [407, 202], \
        r.explain()
    # 2: a raw MESSAGE through edge 2
    alice = UA("imalice", PW["imalice"], c.sip[1])
    try:
        r2 = alice.request("MESSAGE", f"sip:{bob_aor}", body="second-offline-note",
                           ctype="text/plain")
        assert r2 is not None and r2.status == 202, r2
        assert r2.challenge is not None and r2.challenge.status == 407, r2.challenge
        # an unauthenticated MESSAGE from "our" domain is challenged, not stored
        r3 = alice.request("MESSAGE", f"sip:{bob_aor}", body="unauthenticated",
                           ctype="text/plain", auth=False)
        assert r3 is not None and r3.status in (401, 407), r3
    finally:
        alice.close()

    rows = im_list(c, bob_aor)
    text = [row_text(x) for x in rows]
    assert len(rows) == 2, rows
    assert "first-offline-note" in text[0] and "second-offline-note" in text[1], rows
    assert "imalice" in text[0] and "imalice" in text[1], rows
    assert not any("unauthenticated" in t for t in text), rows

    # bob comes online on edge 2: both are delivered, in order, from imalice
    bob = baresiplib.Baresip(c.tmp, "imbob", PW["imbob"], c.addr(1), transport="udp",
                             domain=DOMAIN).start()
    bob.wait_registered()
    want = ["first-offline-note", "second-offline-note"]
    wait_for(lambda: all(w in [t for _, t in printed(bob)] for w in want), 15,
             f"baresip imbob printing both stored MESSAGEs (printed: {printed(bob)})")
    rows = printed(bob)
    got = [t for _, t in rows]
    assert all(f == f"sip:imalice@{DOMAIN}" for f, _ in rows), rows
    assert got.index("first-offline-note") < got.index("second-offline-note"), got
    assert got.count("first-offline-note") == 1 and got.count("second-offline-note") == 1, got
    # delivered (answered 200) messages leave the store
    wait_for(lambda: im_list(c, bob_aor) == [], 10, "imbob's store empty after delivery")
    assert bob.stop() == 0

    # purge: imcarol (no binding) has one stored message, purge drops it
    r = sipplib.sipp("im_message.xml", c.addr(0), user="imalice", password=PW["imalice"],
                     service="imcarol", keys={"text": "for-carol"}, workdir=c.tmp,
                     domain=DOMAIN)
    assert r.ok, r.explain()
    carol = f"imcarol@{DOMAIN}"
    rows = im_list(c, carol)
    assert len(rows) == 1 and "for-carol" in row_text(rows[0]), rows
    c.ctl("im", "purge", carol)
    assert im_list(c, carol) == [], im_list(c, carol)


def test_stale_binding_message_stored():
    """A binding whose device is gone (a UDP port nobody listens on: the branch times
    out or fails to send) keeps the MESSAGE as if there were no binding: 202, in the
    store, delivered at the next registration (the other test shows delivery)."""
    c = Cluster(1, users=USERS, edge_extra={"auth_algorithms": "md5"})
    dead = free_port()
    r, _ = digest_register(c.sip[0], "imcarol", PW["imcarol"],
                           f"<sip:imcarol@127.0.0.1:{dead}>", alg="MD5")
    assert r is not None and r.status == 200, r
    alice = UA("imalice", PW["imalice"], c.sip[0])
    try:
        r = alice.request("MESSAGE", f"sip:imcarol@{DOMAIN}", body="while-you-were-away",
                          ctype="text/plain", timeout=15)
        # Timer F with t1 = 100ms: 6.4 s at most before the store answers
        assert r is not None and r.status == 202, r
    finally:
        alice.close()
    rows = im_list(c, f"imcarol@{DOMAIN}")
    assert len(rows) == 1 and "while-you-were-away" in row_text(rows[0]), rows


if __name__ == "__main__":
    if not baresiplib.available():
        print("baresip not installed: skipped")
        sys.exit(0)
    run([test_offline_message_stored_then_delivered_in_order, test_stale_binding_message_stored])
