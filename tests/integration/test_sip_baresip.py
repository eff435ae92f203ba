#!/usr/bin/env python3
"""Two baresip phones (a client nobody here wrote) through a cluster of 2 edges +
2 registrars: A registers over UDP on edge 1, B over TCP on edge 2; A calls B
(digest 407 for A, B's binding lives on the other edge), B answers, Opus RTP flows
both ways (packets counted by each phone), A hangs up; then a MESSAGE from A
reaches B. baresip 1.0.0 (libre) knows only MD5 and gives up (ENOSYS) when any
challenge of the 401 names SHA-256, so these edges offer MD5 only."""
import baresiplib
from skeinlib import http, metric, run
from sipcluster import DOMAIN, Cluster

USERS = (("bralice", "bralice-pw"), ("brbob", "brbob-pw"))
PW = dict(USERS)


def contacts(c, user):
    out = c.ctl("reg", "show", f"{user}@{DOMAIN}")
    return out.get("bindings", out) if isinstance(out, dict) else out


def test_baresip_call_rtp_and_message_across_edges():
    c = Cluster(2, users=USERS, edge_extra={"auth_algorithms": "md5"})
    a = baresiplib.Baresip(c.tmp, "bralice", PW["bralice"], c.addr(0), transport="udp",
                           domain=DOMAIN, contacts=[f"sip:brbob@{DOMAIN}"]).start()
    b = baresiplib.Baresip(c.tmp, "brbob", PW["brbob"], c.addr(1), transport="tcp",
                           domain=DOMAIN, answer="manual").start()
    a.wait_registered()
    b.wait_registered()
    ba, bb = contacts(c, "bralice"), contacts(c, "brbob")
    assert len(ba) == 1 and ba[0]["transport"] == "udp" and ba[0]["edge"] == "n1/edge", ba
    assert len(bb) == 1 and bb[0]["transport"] == "tcp" and bb[0]["edge"] == "n2/edge", bb

    a.dial(f"sip:brbob@{DOMAIN}")
    b.wait_event("CALL_INCOMING")
    assert b.accept().get("ok")
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    sa = a.wait_rtp(rx_min=100, tx_min=100)  # 2 s of 20 ms packets each way
    sb = b.wait_rtp(rx_min=100, tx_min=100)
    assert sa["codec_tx"].startswith("opus"), sa
    assert sa["rx_packets"] >= 100 and sb["rx_packets"] >= 100, (sa, sb)
    a.hangup()
    a.wait_event("CALL_CLOSED")
    closed = b.wait_event("CALL_CLOSED")
    assert closed["peeruri"].startswith("sip:bralice@"), closed

    assert a.message(f"sip:brbob@{DOMAIN}", "hello-from-bralice").get("ok")
    frm, text = b.wait_message("hello-from-bralice")
    assert frm == f"sip:bralice@{DOMAIN}" and text == "hello-from-bralice", (frm, text)

    st, m = http(c.nodes[0].http["edge"], "/metrics")
    assert metric(m, "skein_edge_forwarded_total") >= 2, m
    assert a.stop() == 0 and b.stop() == 0


if __name__ == "__main__":
    run([test_baresip_call_rtp_and_message_across_edges])
