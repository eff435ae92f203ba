#!/usr/bin/env python3
"""A browser phone on Skein: JsSIP 3.13.8 in headless Chromium (Debian's chromium driven
by playwright-core) loads a page from 127.0.0.1, registers over SIP-over-WebSocket
(RFC 7118) to an edge, and exchanges SIP MESSAGEs both ways with a baresip registered
over UDP. The edge's Origin allow-list names the page's origin, so the browser's real
upgrade request passes it.

JsSIP 3.13.8 knows only MD5 digest (DigestAuthentication aborts on any other algorithm).
Of several WWW-/Proxy-Authenticate headers it keeps the LAST (its parser replaces the
header), so against the default auth_algorithms "sha256,md5" it happens to answer the MD5
challenge and registers (checked by hand), while "md5,sha256" would fail it. baresip 1.0.0
in the same cluster gives up when any challenge names SHA-256, so these edges offer MD5
only.

test_browser_message_same_edge: both phones on one edge (run by default).
test_browser_message_across_edges: JsSIP on edge 1, baresip on edge 2 - needs the
cross-edge handover of a request to the edge holding the WS flow (issue 4), not built
yet, so it is not run by default: `python3 test_sip_browser.py test_browser_message_across_edges`.

Chromium, node or the npm packages missing is a FAILURE, not a skip (make test
installs them)."""
import re
import sys

import baresiplib
import browserlib
from skeinlib import run
from sipcluster import DOMAIN, Cluster, free_udp_tcp_port

USERS = (("wsalice", "wsalice-pw"), ("udpbob", "udpbob-pw"))
PW = dict(USERS)


def bindings(c, user):
    out = c.ctl("reg", "show", f"{user}@{DOMAIN}")
    return out.get("bindings", out) if isinstance(out, dict) else out


def final_responses(bob):
    """Status lines of the final responses in baresip's SIP trace (its log)."""
    return re.findall(r"^SIP/2\.0 ([2-6]\d\d [^\r\n\x1b]*)", bob.log(), re.M)


def _exchange(browser, bob):
    """The MESSAGE exchange both tests share (browser registered as wsalice, bob as udpbob)."""
    # browser -> baresip: the edge challenges (407, MD5), JsSIP answers, bob gets it
    r = browser.send_message(f"sip:udpbob@{DOMAIN}", "hello-from-the-browser")
    assert r.get("status") == 200, f"MESSAGE browser->baresip: {r}"
    frm, text = bob.wait_message("hello-from-the-browser")
    assert frm == f"sip:wsalice@{DOMAIN}" and text == "hello-from-the-browser", (frm, text)

    # baresip -> browser: down the WebSocket flow to the page
    assert bob.message(f"sip:wsalice@{DOMAIN}", "hello-from-baresip").get("ok")
    try:
        frm, text = browser.wait_message("hello-from-baresip")
    except AssertionError as e:
        raise AssertionError(f"{e}; the final responses baresip saw: {final_responses(bob)}") from None
    assert frm == f"sip:udpbob@{DOMAIN}" and text == "hello-from-baresip", (frm, text)
    ev = [e for e in browser.find_events("message") if e["text"] == "hello-from-baresip"]
    assert len(ev) == 1, f"MESSAGE delivered {len(ev)} times: {ev}"   # no retransmission shown twice
    assert ev[0]["content_type"].startswith("text/plain"), ev


def _setup(n_edges):
    browser = browserlib.Browser()        # the page's origin is known before the edges start
    ws_ports = {f"n{i + 1}": free_udp_tcp_port() for i in range(n_edges)}
    extra = {"auth_algorithms": "md5", "ws_origins": browser.origin}
    c = Cluster(n_edges, users=USERS, edge_extra=extra,
                edge_per_node=lambda i: {"listen_ws": f"127.0.0.1:{ws_ports[f'n{i + 1}']}"})
    browser.start()
    return c, browser, f"ws://127.0.0.1:{ws_ports['n1']}"


def _register_browser(c, browser, ws_url, edge_name):
    browser.register(ws_url, f"sip:wsalice@{DOMAIN}", PW["wsalice"], display="WS Alice")
    ev = browser.wait_registered()
    assert ev["status"] == 200, ev
    rows = bindings(c, "wsalice")
    assert len(rows) == 1, rows
    b = rows[0]
    if "-v" in sys.argv:
        print("WS binding:", b, flush=True)
    assert b["transport"] == "ws", f"binding transport {b['transport']!r}, want 'ws': {b}"
    assert b["flow"] not in ("", "0", None), f"WS binding has no flow: {b}"
    assert b["edge"] == edge_name, b
    return b


def test_browser_message_same_edge():
    c, browser, ws_url = _setup(1)
    _register_browser(c, browser, ws_url, "n1/edge")
    bob = baresiplib.Baresip(c.tmp, "udpbob", PW["udpbob"], c.addr(0), transport="udp",
                             domain=DOMAIN, contacts=[f"sip:wsalice@{DOMAIN}"]).start()
    bob.wait_registered()
    rows = bindings(c, "udpbob")
    assert len(rows) == 1 and rows[0]["transport"] == "udp" and rows[0]["edge"] == "n1/edge", rows

    _exchange(browser, bob)

    # unREGISTER over the WebSocket removes the binding
    ev = browser.unregister()
    assert ev["status"] == 200, ev
    assert bindings(c, "wsalice") == [], bindings(c, "wsalice")
    assert browser.blocked() == [], f"the page tried to leave 127.0.0.1: {browser.blocked()}"
    assert bob.stop() == 0
    assert browser.stop() == 0


def test_browser_message_across_edges():
    """Issue 4's first Must-show: JsSIP over WS on edge 1, baresip over UDP on edge 2."""
    c, browser, ws_url = _setup(2)
    _register_browser(c, browser, ws_url, "n1/edge")
    bob = baresiplib.Baresip(c.tmp, "udpbob", PW["udpbob"], c.addr(1), transport="udp",
                             domain=DOMAIN, contacts=[f"sip:wsalice@{DOMAIN}"]).start()
    bob.wait_registered()
    rows = bindings(c, "udpbob")
    assert len(rows) == 1 and rows[0]["transport"] == "udp" and rows[0]["edge"] == "n2/edge", rows

    _exchange(browser, bob)
    assert browser.blocked() == [], browser.blocked()
    assert bob.stop() == 0
    assert browser.stop() == 0


ALL = [test_browser_message_same_edge, test_browser_message_across_edges]
DEFAULT = ALL

if __name__ == "__main__":
    named = {t.__name__: t for t in ALL}
    names = [a for a in sys.argv[1:] if a != "-v"]
    run([named[a] for a in names] if names else DEFAULT)
