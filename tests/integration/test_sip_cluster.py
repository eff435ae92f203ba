#!/usr/bin/env python3
"""SIP through a cluster of 2 edges + 2 registrars + Redis, driven by sipp (a client
nobody here wrote): digest REGISTER (MD5 — sipp 3.6.1 has no SHA-256), refresh,
unregister one and all; a call from a UAC on edge 1 to a UAS registered through
edge 2 (INVITE/407/100/180/200/ACK/BYE with Record-Route); CANCEL before answer;
486 Busy; an INVITE retransmitted over UDP answered once; MESSAGE; and what a
client without credentials, an unknown user and a non-local caller get."""
import sipplib
from sipplib import SippServer, register, sipp
from skeinlib import Monitor, http, metric, run, tmpdir, wait_for
from sipcluster import (DOMAIN, Cluster, RawSip, authorization, digest_register, digest_request,
                        request)

USERS = (("alice", "alice-pw"), ("callee", "callee-pw"), ("ringer", "ringer-pw"),
         ("busy", "busy-pw"), ("inbox", "inbox-pw"))
PW = dict(USERS)
# sipp 3.6.1 answers only the first challenge and knows only MD5 (RFC 8760 puts
# SHA-256 first, the edge's default): these edges offer MD5 first.
SIPP_EDGE = {"auth_algorithms": "md5,sha256"}


def contact_port():
    return f"127.0.0.1:{sipplib.free_ports(1)[0]}"


def reg_show(c, aor):
    return c.ctl("reg", "show", aor)


def contacts(c, user):
    out = reg_show(c, f"{user}@{DOMAIN}")
    rows = out.get("bindings", out) if isinstance(out, dict) else out
    # sipp's contacts carry ;transport=UDP|TCP: compare the address part
    return sorted(b["contact"].split(";")[0] for b in rows)


def test_register_refresh_unregister():
    c = Cluster(2, users=USERS, edge_extra=SIPP_EDGE)
    tmp = tmpdir()
    c1, c2 = contact_port(), contact_port()
    e1, e2 = c.addr(0), c.addr(1)

    r = register(e1, "alice", PW["alice"], c1, workdir=tmp, domain=DOMAIN)
    assert r.trace.responses("REGISTER") == [401, 200], r.explain()
    ch = r.trace.find(status=401)[0].headers("WWW-Authenticate")
    assert any("SHA-256" in h for h in ch) and any("MD5" in h for h in ch), ch
    assert "MD5" in ch[0], "the configured order (md5 first for sipp 3.6) is kept"
    assert contacts(c, "alice") == [f"sip:alice@{c1}"], contacts(c, "alice")
    b = reg_show(c, f"alice@{DOMAIN}")
    rows = b.get("bindings", b) if isinstance(b, dict) else b
    assert rows[0]["transport"] == "udp" and rows[0]["edge"].startswith("n1/"), rows

    # refresh in the same Call-ID, through the other edge (the nonce is stateless)
    r = sipp("reg_refresh.xml", e2, user="alice", password=PW["alice"], contact=c1,
             workdir=tmp, domain=DOMAIN)
    assert r.ok, r.explain()
    assert contacts(c, "alice") == [f"sip:alice@{c1}"]

    # a second binding over TCP on edge 2: both are listed in the 200
    r = register(e2, "alice", PW["alice"], c2, transport="t1", workdir=tmp, domain=DOMAIN)
    listed = r.trace.find(status=200, method="REGISTER")[-1].headers("Contact")
    assert len(listed) == 2 and all("expires=" in h for h in listed), listed
    assert len(contacts(c, "alice")) == 2

    # unregister one, then all
    r = sipp("unreg.xml", e1, user="alice", password=PW["alice"], contact=c1, workdir=tmp,
             domain=DOMAIN)
    assert r.ok, r.explain()
    assert contacts(c, "alice") == [f"sip:alice@{c2}"], contacts(c, "alice")
    register(e1, "alice", PW["alice"], c1, workdir=tmp, domain=DOMAIN)
    r = sipp("unreg_all.xml", e1, user="alice", password=PW["alice"], workdir=tmp,
             domain=DOMAIN)
    assert r.ok, r.explain()
    assert contacts(c, "alice") == []

    # a wrong password and an unknown user get the same answer: 401 again
    for user, pw in (("alice", "wrong"), ("nobody", "x")):
        r = sipp("reg.xml", e1, user=user, password=pw, contact=c1, workdir=tmp, timeout_s=5,
                 domain=DOMAIN)
        assert not r.ok and r.trace.responses("REGISTER") == [401, 401], r.explain()
    st, text = http(c.nodes[0].http["edge"], "/metrics")
    assert metric(text, "skein_edge_auth_total", 'result="failed"') >= 2, text


def test_register_policy_over_the_wire():
    """RFC 3261 §10.3 answers as a phone sees them (SHA-256 digest, RFC 8760): 423 with
    Min-Expires, the per-AOR limit (403), an out-of-order CSeq (500), and the 200
    listing every binding with its own expires; a user registering another user's AOR
    is refused (403)."""
    c = Cluster(1, users=USERS + (("mallory", "m-pw"),), edge_extra=SIPP_EDGE)
    port = c.sip[0]
    r, _ = digest_register(port, "alice", PW["alice"], "<sip:alice@127.0.0.1:5999>",
                           expires=10)
    assert r.status == 423 and r.hdr("min-expires") == ["60"], (r.start, r.headers)
    r, _ = digest_register(port, "alice", PW["alice"],
                           "<sip:alice@127.0.0.1:6001>;expires=120, <sip:alice@127.0.0.1:6002>;q=0.4",
                           expires=300, call_id="pol-1", cseq=10)
    assert r.status == 200, r.start
    got = sorted(r.hdr("contact"))
    assert len(got) == 2 and "expires=120" in got[0] and "expires=300" in got[1], got
    assert "q=0.400" in got[1], got
    # the same Call-ID with a lower CSeq is out of order
    r, _ = digest_register(port, "alice", PW["alice"], "<sip:alice@127.0.0.1:6001>",
                           call_id="pol-1", cseq=2)
    assert r.status == 500 and "CSeq" in r.start, r.start
    # max_contacts (10 by default): 9 more bindings are one too many
    many = ", ".join(f"<sip:alice@127.0.0.1:{7000 + i}>" for i in range(9))
    r, _ = digest_register(port, "alice", PW["alice"], many, call_id="pol-2", cseq=1)
    assert r.status == 403, r.start
    assert len(contacts(c, "alice")) == 2
    # mallory authenticates as herself but tries alice's AOR
    r, _ = digest_register_as(port, "mallory", "m-pw", "alice")
    assert r.status == 403, r.start


def test_nonce_stale_replay_and_path():
    """Nonces age into stale=true (RFC 7616 §3.3), a replayed nonce-count is refused
    (a fresh 401), and a REGISTER's Path (RFC 3327) is echoed in the 200 and becomes
    the route of requests to that binding."""
    c = Cluster(1, users=USERS, edge_extra=dict(SIPP_EDGE, nonce_ttl="1s"))
    tmp = tmpdir()
    port = c.sip[0]
    r, _ = digest_register(port, "alice", PW["alice"], "<sip:alice@127.0.0.1:6201>", wait_s=2.2)
    assert r.status == 401 and any("stale=true" in h for h in r.hdr("www-authenticate")), \
        (r.start, r.hdr("www-authenticate"))
    r, _ = digest_register(port, "alice", PW["alice"], "<sip:alice@127.0.0.1:6201>",
                           replay=True)
    assert r.status == 401 and not any("stale=true" in h for h in r.hdr("www-authenticate")), \
        r.start
    st, text = http(c.nodes[0].http["edge"], "/metrics")
    assert metric(text, "skein_edge_auth_total", 'result="failed"') >= 1, text

    # Path: the callee registers through a "proxy" (a sipp UAS standing in for it)
    edge_proxy = SippServer("msg_uas.xml", workdir=tmp, domain=DOMAIN).start()
    path = f"<sip:outbound@{edge_proxy.addr};lr>"
    r, _ = digest_register(port, "inbox", PW["inbox"], "<sip:inbox@127.0.0.1:6202>",
                           extra_headers=f"Path: {path}\r\nSupported: path\r\n")
    assert r.status == 200 and r.hdr("path") == [path], (r.start, r.hdr("path"))
    rows = c.ctl("reg", "show", f"inbox@{DOMAIN}")["bindings"]
    assert rows[0]["path"] == [path.strip("<>")] or rows[0]["path"] == [path], rows
    r = sipp("msg.xml", c.addr(0), service="inbox", user="alice", password=PW["alice"],
             workdir=tmp, domain=DOMAIN)
    assert r.ok, r.explain()
    edge_proxy.wait_received("MESSAGE")
    m = edge_proxy.trace.find(request="MESSAGE")[0]
    assert m.text.startswith("MESSAGE sip:inbox@127.0.0.1:6202"), m.text
    assert m.header("Route") == path, m.text
    edge_proxy.stop()


def test_nonce_count_other_methods():
    """Requests other than REGISTER (407, RFC 3261 §22.3): the edge that issued the
    nonce records each count of it once the response is right (RFC 7616 §3.4: the
    same nc twice, or a lower one, is a replay). Every replay gets a fresh 407, every
    new count goes through (404: nobody is registered as "nobody"); a wrong password
    burns no count; and nothing of it is in Redis (no key per request)."""
    c = Cluster(1, users=USERS, edge_extra=SIPP_EDGE)
    port = c.sip[0]
    cli = RawSip()
    ruri = f"sip:nobody@{DOMAIN}"
    base = dict(frm=f"<sip:alice@{DOMAIN}>;tag=nc1", call_id="nc-other-1")
    hdrs = "Content-Type: text/plain\r\n"
    cseq = [1]

    def send(auth=""):
        cseq[0] += 1
        cli.send(port, request("MESSAGE", ruri, cli.port, extra=hdrs + auth, body="hi",
                               cseq=cseq[0], **base))
        r = cli.recv_final(5)
        assert r is not None, "no answer"
        return r

    ch = send()
    assert ch.status == 407, ch.start
    chal = ch.hdr("proxy-authenticate")

    def auth(nc):
        return authorization(chal, "MESSAGE", ruri, "alice", PW["alice"], "MD5", proxy=True,
                             nc=f"{nc:08x}")
    before = metric(http(c.nodes[0].http["edge"], "/metrics")[1], "skein_edge_auth_total",
                    'result="failed"')
    seen = [(nc, send(auth(nc)).status) for nc in (1, 1, 2, 2, 1, 3)]
    assert seen == [(1, 404), (1, 407), (2, 404), (2, 407), (1, 407), (3, 404)], seen
    after = metric(http(c.nodes[0].http["edge"], "/metrics")[1], "skein_edge_auth_total",
                   'result="failed"')
    assert after - before == 3, (before, after)
    # a wrong password with a fresh count is refused, and burns nothing: the same
    # count with the right password still goes through
    bad = authorization(chal, "MESSAGE", ruri, "alice", "wrong", "MD5", proxy=True,
                        nc="00000004")
    assert send(bad).status == 407
    assert send(auth(4)).status == 404
    assert send(auth(5)).status == 404
    text = http(c.nodes[0].http["edge"], "/metrics")[1]
    assert metric(text, "skein_edge_nonce_checks_total", 'where="local"') == 8, text
    assert metric(text, "skein_edge_nonce_refused_total", 'why="replay"') == 3, text
    assert c.redis.cmd("KEYS", "*:nc*") == [], "a nonce-count key in Redis"
    cli.close()


def test_nonce_count_with_the_issuer():
    """The authenticated retry that reaches another edge (DNS SRV, a failover) is
    checked with the edge that issued the nonce, over the bus: accepted once, and a
    replay is refused on either edge. A nonce whose issuer is gone is answered with a
    fresh challenge, stale=true (RFC 7616 §3.3: the client retries without asking its
    user), not with a failure."""
    c = Cluster(2, users=USERS, edge_extra=SIPP_EDGE)
    cli = RawSip()
    contact = f"<sip:alice@127.0.0.1:{sipplib.free_ports(1)[0]}>"
    base = dict(to=f"<sip:alice@{DOMAIN}>", frm=f"<sip:alice@{DOMAIN}>;tag=iss",
                call_id="nc-issuer-1")
    extra = f"Contact: {contact}\r\nExpires: 600\r\n"
    cseq = [0]

    def reg(i, auth=""):
        cseq[0] += 1
        cli.send(c.sip[i], request("REGISTER", f"sip:{DOMAIN}", cli.port, extra=extra + auth,
                                   cseq=cseq[0], **base))
        r = cli.recv_final(5)
        assert r is not None, "no answer"
        return r

    def checks(i):
        text = http(c.nodes[i].http["edge"], "/metrics")[1]
        return {k: metric(text, "skein_edge_nonce_checks_total", f'where="{k}"') or 0
                for k in ("local", "peer")}

    ch = reg(0)
    assert ch.status == 401, ch.start
    chal = ch.hdr("www-authenticate")

    def auth(nc):
        return authorization(chal, "REGISTER", f"sip:{DOMAIN}", "alice", PW["alice"], "MD5",
                             nc=f"{nc:08x}")
    # edge 2 asks edge 1, which issued the nonce
    assert reg(1, auth(1)).status == 200
    assert checks(1) == {"local": 0, "peer": 1}, checks(1)
    # the same count again, at the issuer and at the other edge: replays
    for i in (0, 1):
        r = reg(i, auth(1))
        assert r.status == 401 and not any("stale=true" in h for h in r.hdr("www-authenticate")), \
            (i, r.start, r.hdr("www-authenticate"))
    # the next count at the issuer, then that one again at the other edge
    assert reg(0, auth(2)).status == 200
    r = reg(1, auth(2))
    assert r.status == 401 and not any("stale=true" in h for h in r.hdr("www-authenticate"))
    assert checks(0) == {"local": 2, "peer": 0}, checks(0)
    assert checks(1) == {"local": 0, "peer": 3}, checks(1)
    assert contacts(c, "alice") == [contact.strip("<>")], contacts(c, "alice")
    # the issuer goes away (SIGTERM: it leaves the member table): its nonces are
    # stale on the edge that remains, which challenges with one of its own
    p = c.nodes[0].procs["edge"]
    p.terminate()
    p.wait(timeout=15)
    r = reg(1, auth(3))
    assert r.status == 401 and any("stale=true" in h for h in r.hdr("www-authenticate")), \
        (r.start, r.hdr("www-authenticate"))
    text = http(c.nodes[1].http["edge"], "/metrics")[1]
    assert metric(text, "skein_edge_nonce_refused_total", 'why="forgotten"') == 1, text
    chal = r.hdr("www-authenticate")
    assert reg(1, auth(1)).status == 200
    assert checks(1) == {"local": 1, "peer": 4}, checks(1)
    cli.close()


def test_lookup_pipelined_with_auth():
    """A caller with credentials calling a local user: the callee's bindings are read
    in the same round trip as the credentials (the routing lookup leaves before the
    nonce-count's answer is known), and used only once the caller has authenticated.
    Without credentials, or from a caller who is not ours, the lookup runs on its own;
    a refused caller's lookup is counted unused and changes nothing of the answer."""
    c = Cluster(1, users=USERS, edge_extra=SIPP_EDGE)
    tmp = tmpdir()
    inbox = SippServer("msg_uas.xml", workdir=tmp, domain=DOMAIN).start()
    register(c.addr(0), "inbox", PW["inbox"], inbox.addr, workdir=tmp, domain=DOMAIN)
    port = c.sip[0]

    def counts():
        text = http(c.nodes[0].http["edge"], "/metrics")[1]
        return {k: int(metric(text, "skein_edge_location_lookups_total", f'how="{k}"') or 0)
                for k in ("pipelined", "separate", "unused")}

    def delta(before):
        now = counts()
        return {k: now[k] - before[k] for k in now if now[k] != before[k]}

    # on the wire: HGETALL of inbox's bindings next to the HGET of alice's HA1 — the
    # edge did not wait for the credentials' answer to send it
    mon = Monitor(c.redis)
    b = counts()
    r = digest_request(port, "MESSAGE", f"sip:inbox@{DOMAIN}", "alice", PW["alice"],
                       body="early")
    assert r is not None and r.status == 200, r and r.start
    seen = mon.until(lambda ln: '"HGET"' in ln and "alice@" in ln and ":cred" in ln)
    mon.close()
    assert any('"HGETALL"' in ln and "inbox@" in ln for ln in seen[-4:]), seen
    assert delta(b) == {"pipelined": 1}, delta(b)
    inbox.wait_received("MESSAGE", 1)
    assert inbox.trace.find(request="MESSAGE")[0].body.strip() == "early"

    # a wrong password: 407 again, the lookup read with it unused
    b = counts()
    r = digest_request(port, "MESSAGE", f"sip:inbox@{DOMAIN}", "alice", "wrong", body="x")
    assert r is not None and r.status == 407, r and r.start
    assert delta(b) == {"pipelined": 1, "unused": 1}, delta(b)

    # an authenticated caller still learns 404 for an unknown user, and a known
    # user without a binding still gets the message stored (202)
    b = counts()
    r = digest_request(port, "MESSAGE", f"sip:nobody@{DOMAIN}", "alice", PW["alice"], body="x")
    assert r is not None and r.status == 404, r and r.start
    r = digest_request(port, "MESSAGE", f"sip:busy@{DOMAIN}", "alice", PW["alice"], body="x")
    assert r is not None and r.status == 202, r and r.start
    assert delta(b) == {"pipelined": 2}, delta(b)

    # a caller of another domain (no credentials asked: the trusted network) routes
    # with a lookup of its own
    b = counts()
    cli = RawSip()
    cli.send(port, request("MESSAGE", f"sip:inbox@{DOMAIN}", cli.port,
                           frm="<sip:someone@198.51.100.9>;tag=pl1", call_id="pl-other-1",
                           extra="Content-Type: text/plain\r\n", body="from afar"))
    r = cli.recv_final(5)
    cli.close()
    assert r is not None and r.status == 200, r and r.start
    assert delta(b) == {"separate": 1}, delta(b)
    inbox.stop()


def digest_register_as(port, user, pw, aor_user):
    """user's credentials on a REGISTER whose To is aor_user@DOMAIN."""
    cli = RawSip()
    try:
        base = dict(to=f"<sip:{aor_user}@{DOMAIN}>", frm=f"<sip:{user}@{DOMAIN}>;tag=x",
                    call_id="as-1")
        extra = "Contact: <sip:x@127.0.0.1:6100>\r\n"
        cli.send(port, request("REGISTER", f"sip:{DOMAIN}", cli.port, extra=extra, **base))
        ch = cli.recv_final(3)
        auth = authorization(ch.hdr("www-authenticate"), "REGISTER", f"sip:{DOMAIN}", user, pw)
        cli.send(port, request("REGISTER", f"sip:{DOMAIN}", cli.port, extra=extra + auth,
                               cseq=2, **base))
        return cli.recv_final(3), None
    finally:
        cli.close()


def test_call_across_edges():
    c = Cluster(2, users=USERS, edge_extra=SIPP_EDGE)
    tmp = tmpdir()
    e1, e2 = c.addr(0), c.addr(1)
    for transport in ("u1", "t1"):
        uas = SippServer("uas.xml", transport=transport, workdir=tmp, domain=DOMAIN).start()
        register(e2, "callee", PW["callee"], uas.addr, transport=transport, workdir=tmp,
                 domain=DOMAIN)
        r = sipp("uac_call.xml", e1, service="callee", user="alice", password=PW["alice"],
                 transport=transport, workdir=tmp, extra=["-d", "300"], domain=DOMAIN)
        assert r.ok, r.explain()
        assert r.trace.responses("INVITE") == [407, 100, 180, 200], r.explain()
        ok200 = r.trace.find(status=200, method="INVITE")[0]
        rr = ok200.headers("Record-Route")
        assert rr and any(e1 in h for h in rr), ok200.text
        assert r.trace.responses("BYE") == [200], r.explain()
        uas.wait_received("BYE")
        res = uas.stop()
        assert uas.trace.requests() == ["INVITE", "ACK", "BYE"], uas.trace.requests()
        inv = uas.trace.find(request="INVITE")[0]
        assert inv.header("Proxy-Authorization") is None, "credentials consumed at the edge"
        assert res.successful == 1, res.explain()
    # UDP caller, TCP callee: the edge records itself twice, once per transport
    # (RFC 5658 §4), the callee-facing entry on top
    uas = SippServer("uas.xml", transport="t1", workdir=tmp, domain=DOMAIN).start()
    register(e2, "callee", PW["callee"], uas.addr, transport="t1", workdir=tmp, domain=DOMAIN)
    r = sipp("uac_call.xml", e1, service="callee", user="alice", password=PW["alice"],
             transport="u1", workdir=tmp, extra=["-d", "200"], domain=DOMAIN)
    assert r.ok, r.explain()
    rr = ",".join(r.trace.find(status=200, method="INVITE")[0].headers("Record-Route"))
    entries = [x.strip() for x in rr.split(",")]
    assert len(entries) == 2 and "transport=tcp" in entries[0] and \
        "transport=udp" in entries[1] and all(e1 in x for x in entries), entries
    uas.wait_received("BYE")
    uas.stop()
    st, text = http(c.nodes[0].http["edge"], "/metrics")
    assert metric(text, "skein_edge_forwarded_cross_edge_total") >= 1, text
    # The 407s were stateless: each ACK absorbed by its To-tag, the two over UDP
    # before any parsing, the one over TCP once parsed.
    assert metric(text, "skein_edge_acks_absorbed_total", 'how="unparsed"') == 2, text
    assert metric(text, "skein_edge_acks_absorbed_total", 'how="parsed"') == 1, text
    # nothing left behind: every forking context ended
    for n in c.nodes:
        wait_for(lambda n=n: metric(http(n.http["edge"], "/metrics")[1], "skein_edge_forks") == 0,
                 10, f"{n.node_id}: no fork left")


def test_cancel_and_busy():
    c = Cluster(2, users=USERS, edge_extra=SIPP_EDGE)
    tmp = tmpdir()
    e1, e2 = c.addr(0), c.addr(1)
    ringer = SippServer("uas_ring.xml", workdir=tmp, domain=DOMAIN).start()
    busy = SippServer("uas_486.xml", workdir=tmp, domain=DOMAIN).start()
    register(e2, "ringer", PW["ringer"], ringer.addr, workdir=tmp, domain=DOMAIN)
    register(e2, "busy", PW["busy"], busy.addr, workdir=tmp, domain=DOMAIN)

    r = sipp("uac_cancel.xml", e1, service="ringer", user="alice", password=PW["alice"],
             workdir=tmp, domain=DOMAIN)
    assert r.ok, r.explain()
    assert r.trace.responses("INVITE") == [407, 100, 180, 487], r.explain()
    assert r.trace.responses("CANCEL") == [200], r.explain()
    ringer.wait_received("ACK")
    assert ringer.trace.requests() == ["INVITE", "CANCEL", "ACK"], ringer.trace.requests()

    r = sipp("uac_486.xml", e1, service="busy", user="alice", password=PW["alice"],
             workdir=tmp, domain=DOMAIN)
    assert r.ok, r.explain()
    assert r.trace.responses("INVITE") == [407, 100, 486], r.explain()
    busy.wait_received("ACK")
    assert busy.trace.requests() == ["INVITE", "ACK"], busy.trace.requests()


def test_invite_retransmission_answered_once():
    c = Cluster(2, users=USERS, edge_extra=SIPP_EDGE)
    tmp = tmpdir()
    uas = SippServer("uas.xml", workdir=tmp, domain=DOMAIN).start()
    register(c.addr(1), "callee", PW["callee"], uas.addr, workdir=tmp, domain=DOMAIN)
    r = sipp("uac_retrans.xml", c.addr(0), service="callee", user="alice",
             password=PW["alice"], workdir=tmp, domain=DOMAIN)
    assert r.ok, r.explain()
    assert all(m.status == 100 for m in r.trace.find(unexpected=True)), r.explain()
    uas.wait_received("BYE")
    assert uas.received("INVITE") == 1, uas.trace.requests()
    assert r.trace.count(status=200, method="INVITE") == 1, r.explain()
    uas.stop()


def test_message_and_routing_answers():
    c = Cluster(2, users=USERS, edge_extra=SIPP_EDGE)
    tmp = tmpdir()
    inbox = SippServer("msg_uas.xml", workdir=tmp, domain=DOMAIN).start()
    register(c.addr(1), "inbox", PW["inbox"], inbox.addr, workdir=tmp, domain=DOMAIN)
    r = sipp("msg.xml", c.addr(0), service="inbox", user="alice", password=PW["alice"],
             workdir=tmp, calls=3, domain=DOMAIN)
    assert r.ok and r.successful == 3, r.explain()
    inbox.wait_received("MESSAGE", 3)
    bodies = sorted(m.body.strip() for m in inbox.trace.find(request="MESSAGE"))
    assert bodies == [f"hello {i} from alice" for i in (1, 2, 3)], bodies
    # unknown user: 404; a known user without binding: kept for later (offline IM,
    # issue 7: 202, test_im_offline.py)
    r = sipp("msg.xml", c.addr(0), service="nobody", user="alice", password=PW["alice"],
             workdir=tmp, timeout_s=5, domain=DOMAIN)
    assert not r.ok and 404 in r.trace.responses("MESSAGE"), r.explain()
    r = sipp("msg.xml", c.addr(0), service="busy", user="alice", password=PW["alice"],
             workdir=tmp, timeout_s=5, domain=DOMAIN)
    assert 202 in r.trace.responses("MESSAGE"), r.explain()


def test_loop_detected_spiral_allowed():
    """RFC 3261 §16.3 item 4 / §16.6 item 8: the edge puts a hash of what routes the
    request in its branch; the same request coming back with that Via is a loop (482),
    with another hash a spiral (forwarded)."""
    c = Cluster(1, users=USERS, edge_extra=SIPP_EDGE)
    tmp = tmpdir()
    inbox = SippServer("msg_uas.xml", workdir=tmp, domain=DOMAIN).start()
    register(c.addr(0), "inbox", PW["inbox"], inbox.addr, workdir=tmp, domain=DOMAIN)
    port = c.sip[0]
    cli = RawSip()
    frm = "<sip:someone@198.51.100.9>;tag=lp1"

    def message(extra="", call_id="loop-call-1"):
        cli.send(port, request("MESSAGE", f"sip:inbox@{DOMAIN}", cli.port, frm=frm,
                               call_id=call_id, extra=extra + "Content-Type: text/plain\r\n",
                               body="loop?"))
        return cli.recv_final(3)

    r = message()
    assert r is not None and r.status == 200, r and r.start
    inbox.wait_received("MESSAGE")
    via = inbox.trace.find(request="MESSAGE")[0].headers("Via")[0]
    branch = [p.split("=", 1)[1] for p in via.split(";") if p.startswith("branch=")][0]
    assert "." in branch, via
    tag = branch.rsplit(".", 1)[1]
    ours = f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKearlier.{{}};rport\r\n"
    r = message(ours.format(tag))
    assert r is not None and r.status == 482, r and r.start
    # our Via with another hash: a spiral, forwarded (a new call for the sipp UAS)
    r = message(ours.format("0123456789abcdef" if tag != "0123456789abcdef" else "1" * 16),
                call_id="loop-call-2")
    assert r is not None and r.status == 200, r and r.start
    cli.close()
    inbox.stop()


if __name__ == "__main__":
    run([test_register_refresh_unregister, test_register_policy_over_the_wire,
         test_call_across_edges, test_cancel_and_busy,
         test_invite_retransmission_answered_once, test_message_and_routing_answers,
         test_loop_detected_spiral_allowed, test_nonce_stale_replay_and_path,
         test_nonce_count_other_methods, test_nonce_count_with_the_issuer,
         test_lookup_pipelined_with_auth])
