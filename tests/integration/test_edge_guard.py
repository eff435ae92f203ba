#!/usr/bin/env python3
"""The edge's guard (issue 5) on a running cluster, sources on 127.0.0.2 and up (the
test clusters trust 127.0.0.1 like a trunk):

- repeated failed digest authentications from one source ban it, and the ban holds
  on the other edge within a second (the set lives in Redis); `skeinctl ban del`
  lifts it everywhere;
- `skeinctl ban add` refuses a source on every edge (UDP ignored, TCP closed at
  accept); a trusted network is never refused, whatever the ban set says;
- a scanner User-Agent gets no answer at all, and its source is banned;
- a flood from one source (sipp far above the bucket) gets 503 + Retry-After, then
  silence once banned, while another client keeps registering and calling;
- no user-existence oracle for unauthenticated sources: known and unknown users get
  the same answers to REGISTER, INVITE, MESSAGE and OPTIONS;
- a busy edge (max_transactions) sheds new requests with 503 + Retry-After."""
import os
import re
import signal
import socket
import subprocess
import threading
import time

import sipplib
from sipplib import SippServer, register, sipp
from skeinlib import BIN, http, metric, run, tmpdir, wait_for
from sipcluster import (DOMAIN, Cluster, Msg, RawSip, authorization, digest_register,
                        digest_request, request)

USERS = (("alice", "alice-pw"), ("callee", "callee-pw"), ("carol", "carol-pw"))
PW = dict(USERS)
SIPP_EDGE = {"auth_algorithms": "md5,sha256"}


def probe(ip, port, timeout=0.2, ua=None):
    """Status of an OPTIONS to the edge on port sent from ip, 0 on silence."""
    c = RawSip(ip)
    try:
        extra = f"User-Agent: {ua}\r\n" if ua else ""
        c.send(port, request("OPTIONS", f"sip:127.0.0.1:{port}", c.port, extra=extra))
        r = c.recv_final(timeout)
        return r.status if r else 0
    finally:
        c.close()


def silent_within(ip, port, deadline):
    """Probes the edge on port from ip every 50 ms for deadline + 0.5 s. Returns the
    time (from the start) of the first probe after which no probe was answered, or
    None when the edge still answered the late probes. A slow answer is not taken
    for silence: answers are collected until the end."""
    c = RawSip(ip)
    try:
        sent, answered = {}, set()
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < deadline + 0.5:
            n += 1
            c.send(port, request("OPTIONS", f"sip:127.0.0.1:{port}", c.port,
                                 call_id=f"silence-{n}-{t0}"))
            sent[f"silence-{n}-{t0}"] = time.monotonic() - t0
            end = time.monotonic() + 0.05
            while (left := end - time.monotonic()) > 0:
                m = c.recv(left)
                if m and m.hdr("call-id"):
                    answered.add(m.hdr("call-id")[0])
        end = time.monotonic() + 0.5
        while (left := end - time.monotonic()) > 0:
            m = c.recv(left)
            if m and m.hdr("call-id"):
                answered.add(m.hdr("call-id")[0])
        last = max((sent[k] for k in answered if k in sent), default=-1.0)
        later = [t for t in sent.values() if t > last]
        return later[0] if later and later[0] <= deadline and \
            max(sent.values()) - later[0] >= 0.4 else None
    finally:
        c.close()


def answering_within(ip, port, deadline):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        if probe(ip, port, timeout=0.1) == 200:
            return time.monotonic() - t0
    return None


def edge_metrics(c, i):
    st, body = http(c.nodes[i].http["edge"], "/metrics")
    assert st == 200
    return body.decode() if isinstance(body, bytes) else body


def bans(c):
    return {b["ip"]: b for b in c.ctl("ban", "list")}


def wrong_register(port, ip, user="alice"):
    r, chals = digest_register(port, user, "not-the-password", "<sip:x@127.0.0.1:9>",
                               alg="MD5", ip=ip)
    return r.status if r else 0


def test_auth_failures_ban_on_every_edge():
    c = Cluster(2, users=USERS, edge_extra={**SIPP_EDGE, "auth_fail_source": "3"})
    p1, p2 = c.sip
    assert probe("127.0.0.2", p2) == 200
    # two failures: still served
    assert [wrong_register(p1, "127.0.0.2") for _ in range(2)] == [401, 401]
    assert probe("127.0.0.2", p1) == 200 and probe("127.0.0.2", p2) == 200
    # the third: banned here, and on the other edge within a second
    assert wrong_register(p1, "127.0.0.2") == 401
    other = silent_within("127.0.0.2", p2, 1.0)
    assert other is not None, "edge 2 still answers the banned source after 1 s"
    assert probe("127.0.0.2", p1) == 0
    print(f"banned on edge 1 by auth failures; edge 2 silent {other * 1000:.0f} ms later")
    # other sources are not affected
    assert probe("127.0.0.3", p1) == 200 and probe("127.0.0.3", p2) == 200
    r, _ = digest_register(p2, "carol", PW["carol"], "<sip:carol@127.0.0.3:9>", ip="127.0.0.3")
    assert r and r.status == 200, r and r.start
    b = bans(c)
    assert list(b) == ["127.0.0.2"], b
    assert b["127.0.0.2"]["reason"] == "auth-failures" and b["127.0.0.2"]["by"] == "n1/edge"
    assert 3500 <= b["127.0.0.2"]["remaining_s"] <= 3600, b
    assert "ban src=127.0.0.2 reason=auth-failures" in c.log(0)
    assert metric(edge_metrics(c, 0), "skein_edge_bans_placed_total",
                  'reason="auth-failures"') == 1
    assert metric(edge_metrics(c, 1), "skein_edge_bans") == 1
    # lifted by hand: served again everywhere
    c.ctl("ban", "del", "127.0.0.2")
    for port in (p1, p2):
        t = answering_within("127.0.0.2", port, 1.0)
        assert t is not None, f"edge on {port} still refuses after ban del"
    assert bans(c) == {}


def test_password_guessing_from_many_sources():
    """auth_fail_user: once one user has had that many failures (from any sources,
    counted cluster-wide), every further failing source is banned at once; the
    earlier sources, each under auth_fail_source, are not."""
    c = Cluster(2, users=USERS, edge_extra={**SIPP_EDGE, "auth_fail_source": "0",
                                            "auth_fail_user": "3"})
    p1, p2 = c.sip
    # three guessers, one attempt each, through both edges: nobody banned yet
    for ip, port in (("127.0.0.12", p1), ("127.0.0.13", p2), ("127.0.0.14", p1)):
        assert wrong_register(port, ip, user="carol") == 401
    assert bans(c) == {}
    # the fourth failure for carol bans its source, on every edge
    assert wrong_register(p2, "127.0.0.15", user="carol") == 401
    assert silent_within("127.0.0.15", p1, 1.0) is not None
    b = bans(c)
    assert list(b) == ["127.0.0.15"] and b["127.0.0.15"]["reason"] == "auth-failures", b
    assert 'user="carol@skein.test" user-failures=4' in c.log(1), c.log(1)[-2000:]
    # another user's failures from a fresh source are counted apart
    assert wrong_register(p1, "127.0.0.16", user="alice") == 401
    assert probe("127.0.0.16", p1) == 200 and probe("127.0.0.12", p2) == 200
    # and carol herself, from a source that never failed, still registers
    r, _ = digest_register(p1, "carol", PW["carol"], "<sip:carol@127.0.0.17:9>", ip="127.0.0.17",
                           alg="MD5")
    assert r and r.status == 200, r and r.start


def test_check_config_names_the_bad_network():
    tmp = tmpdir()
    path = os.path.join(tmp, "bad.ini")
    with open(path, "w") as f:
        f.write("[cluster]\nname = t\n[edge]\ntrusted_networks = 10.0.0.0/8, 300.1.2.3\n")
    r = subprocess.run([os.path.join(BIN, "skein-edge"), "--check-config", "--config", path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert 'bad.ini:4' in r.stderr and '"300.1.2.3" is not an address' in r.stderr, r.stderr


def answer_200(sock, m):
    """Answers a request received on RawSip sock with 200, copying the headers a
    response must copy (RFC 3261 §8.2.6)."""
    lines = [f"{k}: {v}" for k, v in m.headers if k in ("via", "from", "to", "call-id", "cseq")]
    via = m.hdr("via")[0]
    host, port = re.search(r"SIP/2\.0/UDP ([^;:]+):(\d+)", via).groups()
    sock.s.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(lines) +
                   "\r\nContent-Length: 0\r\n\r\n").encode(), (host, int(port)))


def test_preloaded_route_is_no_open_relay():
    """An out-of-dialog request whose Route names this edge and then another hop (a
    gateway that trusts the edges) is followed only for a caller the edge knows: an
    authenticated subscriber or a trusted network. Anyone else gets 403 and the
    gateway sees nothing."""
    c = Cluster(1, users=USERS)
    port = c.sip[0]
    gw = RawSip()
    route = f"Route: <sip:127.0.0.1:{port};lr>, <sip:127.0.0.1:{gw.port};lr>\r\n"
    ruri = "sip:+15550100@pstn.example.net"
    try:
        stranger = RawSip("127.0.0.20")
        stranger.send(port, request("MESSAGE", ruri, stranger.port, extra=route,
                                    frm="<sip:x@198.51.100.20>;tag=pr1"))
        r = stranger.recv_final(3)
        stranger.close()
        assert r and r.status == 403 and "relaying denied" in r.start, r and r.start
        # a local From that does not authenticate is challenged, not relayed
        stranger = RawSip("127.0.0.20")
        stranger.send(port, request("MESSAGE", ruri, stranger.port, extra=route,
                                    frm=f"<sip:alice@{DOMAIN}>;tag=pr2"))
        r = stranger.recv_final(3)
        stranger.close()
        assert r and r.status == 407, r and r.start
        assert gw.recv(0.5) is None, "the gateway got a request from an unknown caller"
        # an authenticated subscriber's request follows the route
        res = {}
        th = threading.Thread(target=lambda: res.setdefault("r", digest_request(
            port, "MESSAGE", ruri, "alice", PW["alice"], extra=route, body="hi",
            ip="127.0.0.21")))
        th.start()
        m = gw.recv(5)
        assert m and m.start.startswith("MESSAGE sip:+15550100@pstn.example.net"), m and m.raw
        answer_200(gw, m)
        th.join(10)
        assert res["r"] and res["r"].status == 200, res
        # and so does a trusted network's (a trunk)
        trunk = RawSip("127.0.0.1")
        trunk.send(port, request("MESSAGE", ruri, trunk.port, extra=route,
                                 frm="<sip:carrier@198.51.100.1>;tag=pr3"))
        m = gw.recv(5)
        assert m and m.start.startswith("MESSAGE "), m and m.raw
        answer_200(gw, m)
        r = trunk.recv_final(3)
        trunk.close()
        assert r and r.status == 200, r and r.start
    finally:
        gw.close()


def tcp_request(ip, port, timeout=1.0):
    """An OPTIONS over a new TCP connection from ip: the response (Msg), or None when
    the edge closes the connection or stays silent."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((ip, 0))
        s.connect(("127.0.0.1", port))
        me = s.getsockname()[1]
        s.sendall(request("OPTIONS", f"sip:127.0.0.1:{port}", me).replace(
            b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        data = s.recv(4096)
        return Msg(data) if data.startswith(b"SIP/2.0 ") else None
    except (socket.timeout, ConnectionError):
        return None
    finally:
        s.close()


def tcp_options(ip, port, timeout=1.0):
    """Status of tcp_request, 0 for none."""
    m = tcp_request(ip, port, timeout)
    return m.status if m else 0


def test_manual_ban_and_trusted_networks():
    c = Cluster(2, users=USERS)
    p1, p2 = c.sip
    assert tcp_options("127.0.0.4", p1) == 200
    out = c.ctl("ban", "add", "127.0.0.4", "--time=10m", "--reason=abuse-desk")
    assert out["ip"] == "127.0.0.4", out
    for port in (p1, p2):
        assert silent_within("127.0.0.4", port, 1.0) is not None, port
        assert tcp_options("127.0.0.4", port) == 0, "a banned source's connection is served"
    b = bans(c)["127.0.0.4"]
    assert b["reason"] == "abuse-desk" and b["by"] == "skeinctl" and \
        590 <= b["remaining_s"] <= 600, b
    # a trusted network is never refused, even when someone bans it
    c.ctl("ban", "add", "127.0.0.1")
    c.ctl("ban", "add", "127.0.0.11")  # a canary: once it is refused, the set is loaded
    for port in (p1, p2):
        assert silent_within("127.0.0.11", port, 1.0) is not None, port
    assert probe("127.0.0.1", p1) == 200 and probe("127.0.0.1", p2) == 200
    assert tcp_options("127.0.0.1", p2) == 200
    # an IPv4-mapped IPv6 spelling is the same source
    c.ctl("ban", "del", "::ffff:127.0.0.4")
    assert answering_within("127.0.0.4", p2, 1.0) is not None
    # bad input: a clear message and the usage exit code; unknown ban: 1
    from skeinlib import skeinctl
    rc, _, err = skeinctl(c.nodes[0].conf, "ban", "add", "not-an-ip")
    assert rc == 2 and "not an IP address" in err, (rc, err)
    rc, _, err = skeinctl(c.nodes[0].conf, "ban", "add", "192.0.2.1", "--time=soon")
    assert rc == 2 and "--time" in err, (rc, err)
    rc, _, err = skeinctl(c.nodes[0].conf, "ban", "del", "192.0.2.99")
    assert rc == 1 and "not banned" in err, (rc, err)
    rc, _, err = skeinctl(c.nodes[0].conf, "ban")
    assert rc == 2, (rc, err)


def test_scanner_user_agent_gets_nothing():
    c = Cluster(1, users=USERS)
    port = c.sip[0]
    assert probe("127.0.0.6", port, ua="baresip v3.0") == 200
    assert probe("127.0.0.5", port, ua="friendly-scanner", timeout=0.5) == 0
    # and the source is banned for whatever it sends next
    assert probe("127.0.0.5", port, ua="Linphone/5.0", timeout=0.5) == 0
    assert bans(c)["127.0.0.5"]["reason"] == "scanner"
    m = edge_metrics(c, 0)
    assert metric(m, "skein_edge_guard_refused_total", 'reason="scanner"') == 1, m
    assert 'user-agent="friendly-scanner"' in c.log(0)
    # scanner_ban = no: dropped, not banned (reload on SIGHUP applies it)
    c2 = Cluster(1, users=USERS, edge_extra={"scanner_ban": "no"})
    assert probe("127.0.0.5", c2.sip[0], ua="sipcli/v1.8", timeout=0.5) == 0
    assert probe("127.0.0.5", c2.sip[0]) == 200
    assert bans(c2) == {}


def test_flood_is_shed_while_another_client_is_served():
    c = Cluster(1, users=USERS, edge_extra={**SIPP_EDGE, "rate_limit": "50",
                                            "rate_burst": "100"})
    port = c.sip[0]
    edge = c.addr(0)
    tmp = tmpdir()
    uas = SippServer("uas.xml", workdir=tmp, domain=DOMAIN).start()
    register(edge, "callee", PW["callee"], uas.addr, workdir=tmp, domain=DOMAIN)
    flood = {}

    def run_flood():
        t0 = time.monotonic()
        flood["r"] = sipp("options_flood.xml", edge, local_ip="127.0.0.2", calls=6000,
                          rate=2000, limit=6000, timeout_s=30, workdir=tmp, trace=False)
        flood["s"] = time.monotonic() - t0

    th = threading.Thread(target=run_flood)
    th.start()
    ok = 0
    t0 = time.monotonic()
    try:
        # the legitimate client on 127.0.0.3: registrations and a call, meanwhile
        while th.is_alive() and ok < 200 and time.monotonic() - t0 < 30:
            # a phone's pace, well under its own bucket: 10 registrations/s
            while time.monotonic() - t0 < ok / 10:
                time.sleep(0.01)
            r, _ = digest_register(port, "carol", PW["carol"], "<sip:carol@127.0.0.3:5999>",
                                   ip="127.0.0.3", alg="MD5")
            assert r and r.status == 200, f"legitimate REGISTER {ok + 1}: {r and r.start}"
            ok += 1
            if ok == 5:
                call = sipp("uac_call.xml", edge, service="callee", user="alice",
                            password=PW["alice"], local_ip="127.0.0.3", workdir=tmp,
                            extra=["-d", "200"], domain=DOMAIN)
                assert call.ok, call.explain()
    finally:
        th.join(60)
    fr = flood["r"]
    m = edge_metrics(c, 0)
    refused = metric(m, "skein_edge_guard_refused_total", 'reason="rate"')
    answered = fr.successful
    print(f"flood: {fr.successful + fr.failed} OPTIONS in {flood['s']:.1f} s, "
          f"{answered} answered 200, {refused:.0f} refused by the bucket; "
          f"legitimate: {ok} registrations and a call, all served")
    assert ok >= 5
    # at most the burst plus what the rate refilled, and then silence (banned)
    assert answered <= 100 + 50 * flood["s"] + 5, answered
    assert refused >= 500, m
    b = bans(c)
    assert b["127.0.0.2"]["reason"] == "flood", b
    assert "127.0.0.3" not in b
    assert metric(m, "skein_edge_bans_placed_total", 'reason="flood"') == 1
    uas.stop()


def test_flood_gets_503_retry_after():
    """Over the bucket (ban off): 503 with Retry-After, not silence, for the first
    ones; the source is served again once the bucket refills."""
    c = Cluster(1, users=USERS, edge_extra={"rate_limit": "5", "rate_burst": "5",
                                            "flood_ban_after": "0", "retry_after": "7s"})
    port = c.sip[0]
    cli = RawSip("127.0.0.8")
    try:
        got = []
        for _ in range(8):
            cli.send(port, request("OPTIONS", f"sip:127.0.0.1:{port}", cli.port))
            r = cli.recv_final(1)
            got.append((r.status, r.hdr("retry-after")) if r else (0, []))
        assert [s for s, _ in got[:5]] == [200] * 5, got
        assert got[5] == (503, ["7"]), got
        wait_for(lambda: probe("127.0.0.8", port) == 200, 2, "bucket refilled")
    finally:
        cli.close()


def same_shape(a, b):
    """The same status line and the same header names (values aside)."""
    return a.start == b.start and sorted(k for k, _ in a.headers) == \
        sorted(k for k, _ in b.headers)


def test_no_user_oracle():
    c = Cluster(1, users=USERS)
    port = c.sip[0]
    frm = "<sip:stranger@198.51.100.7>;tag=s1"

    def ask(method, user, frm=frm):
        # a socket per request: retransmitted final responses to an INVITE we do not
        # ACK stay on their own socket
        cli = RawSip("127.0.0.7")
        try:
            cli.send(port, request(method, f"sip:{user}@{DOMAIN}", cli.port, frm=frm))
            return cli.recv_final(3)
        finally:
            cli.close()

    if True:
        times = {}
        for method in ("INVITE", "MESSAGE", "OPTIONS"):
            known, unknown = ask(method, "carol"), ask(method, "nosuchuser")
            assert known.status == unknown.status == 480, (method, known.start, unknown.start)
            assert same_shape(known, unknown), (known.raw, unknown.raw)
        # REGISTER without and with wrong credentials, and an INVITE from a local
        # From that does not authenticate: the same challenge for both users
        for user in ("carol", "nosuchuser"):
            r, _ = digest_register(port, user, "wrong", "<sip:x@127.0.0.7:9>", ip="127.0.0.7")
            times.setdefault("register", []).append(r)
        assert [r.status for r in times["register"]] == [401, 401]
        assert same_shape(*times["register"])
        local = [ask("INVITE", "callee", frm=f"<sip:{u}@{DOMAIN}>;tag=l1")
                 for u in ("carol", "nosuchuser")]
        assert [r.status for r in local] == [407, 407] and same_shape(*local)
        # an authenticated subscriber still learns 404 for a typo
        r = digest_request(port, "MESSAGE", f"sip:nosuchuser@{DOMAIN}", "alice",
                           PW["alice"], body="hi")
        assert r and r.status == 404, r and r.start


def test_overload_sheds_with_503():
    """max_transactions (reloadable): above it new requests, OPTIONS probes included,
    get 503 + Retry-After. A ringing INVITE is a request in hand; the cap lowered to 1
    by SIGHUP makes the next request refused; once the call is cancelled (487) the
    edge serves again."""
    c = Cluster(1, users=USERS, edge_extra={**SIPP_EDGE, "retry_after": "9s"})
    port = c.sip[0]
    tmp = tmpdir()
    ringer = SippServer("uas_ring.xml", transport="t1", workdir=tmp, domain=DOMAIN).start()
    register(c.addr(0), "callee", PW["callee"], ringer.addr, transport="t1", workdir=tmp,
             domain=DOMAIN)
    cli = RawSip("127.0.0.9")
    try:
        # a stranger's INVITE to callee rings (no auth for non-local callers)
        inv = dict(frm="<sip:x@198.51.100.9>;tag=o1", call_id="ov-1", branch="z9hG4bK-ov-1")
        cli.send(port, request("INVITE", f"sip:callee@{DOMAIN}", cli.port, **inv))
        wait_for(lambda: ringer.received("INVITE") >= 1, 5, "INVITE at the UAS")
        conf = c.nodes[0].conf
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("[edge]\n", "[edge]\nmax_transactions = 1\n", 1))
        os.kill(c.nodes[0].procs["edge"].pid, signal.SIGHUP)
        wait_for(lambda: "edge.max_transactions changed" in c.log(0), 5, "reload applied")
        # the ringing INVITE is the one request in hand: a second is refused. (The
        # probes go over TCP, so that the test's own refused ones leave nothing
        # behind either.)
        r = tcp_request("127.0.0.10", port)
        assert r and r.status == 503 and r.hdr("retry-after") == ["9"], r and r.raw
        m = edge_metrics(c, 0)
        assert metric(m, "skein_edge_guard_refused_total", 'reason="overload"') >= 1, m
        # CANCEL is never shed: the call ends, the transactions go, the edge serves
        cli.send(port, request("CANCEL", f"sip:callee@{DOMAIN}", cli.port, **inv))
        wait_for(lambda: tcp_options("127.0.0.10", port, timeout=0.5) == 200, 20,
                 "served again after the call ended")
    finally:
        cli.close()
        ringer.stop()


if __name__ == "__main__":
    run([test_auth_failures_ban_on_every_edge, test_password_guessing_from_many_sources,
         test_manual_ban_and_trusted_networks, test_check_config_names_the_bad_network,
         test_preloaded_route_is_no_open_relay,
         test_scanner_user_agent_gets_nothing, test_flood_is_shed_while_another_client_is_served,
         test_flood_gets_503_retry_after, test_no_user_oracle, test_overload_sheds_with_503])
