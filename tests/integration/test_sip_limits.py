#!/usr/bin/env python3
"""Call limits against toll fraud (issue 5, docs/edge.md "Call limits"), on a cluster
of 2 edges whose dialogs are not pinned (cluster_host): the concurrent-call limit is
counted cluster-wide (two calls set up through edge 1, the third INVITE through edge 2
gets 403), a BYE entering the other edge frees a place, calls that ended 486 or 487
never count, another account is not affected, a domain without an override gets the
[edge] default, `skeinctl domain set/list` round trip; and the attempts-per-minute
limit (N attempts, the N+1th refused, per account, config default vs override);
failing open when the check cannot run.

The caller and the callee are raw SIP over UDP (the callee a thread answering by
Request-URI user: bob 200, busy 486, ringer 180 then 487 on CANCEL), so that several
calls of one account can be held open and each message is checked."""
import os
import re
import socket
import threading
import time

from skeinlib import http, metric, run, skeinctl, wait_for
from sipcluster import DOMAIN, Cluster, Msg, authorization, digest_register, options

OTHER = "other.test"
CLUSTER_HOST = "sip.limits.test"
USERS = (("alice", "alice-pw"), ("carol", "carol-pw"), ("bob", "bob-pw"),
         ("busy", "busy-pw"), ("ringer", "ringer-pw"))
PW = dict(USERS)
PW["olga"] = "olga-pw"
CONCURRENT = "Forbidden (too many concurrent calls)"
RATE = "Forbidden (call rate limit exceeded)"


def hdr_re(name, text):
    return re.findall(rf"^{name}:\s*(.*)$", text, re.M | re.I)


class Uas(threading.Thread):
    """The callees' phone: one UDP socket registered for bob, busy and ringer."""

    def __init__(self):
        super().__init__(daemon=True)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]
        self.seen = []      # (method, Call-ID) of every request
        self.answers = []   # (status, CSeq method, Call-ID) of responses to our BYEs
        self.dialogs = {}   # Call-ID -> (the INVITE answered 200, our To)
        self.ringing = {}   # Call-ID -> the INVITE (Msg, raw text) waiting for CANCEL
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.start()

    def received(self, method):
        with self.lock:
            return [cid for m, cid in self.seen if m == method]

    def run(self):
        while not self.done.is_set():
            self.s.settimeout(0.1)
            try:
                data, src = self.s.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            m = Msg(data)
            if m.status:
                with self.lock:
                    self.answers.append((m.status, m.hdr("cseq")[0].split()[1],
                                         m.hdr("call-id")[0]))
                continue
            method, ruri = m.start.split()[0], m.start.split()[1]
            cid = m.hdr("call-id")[0]
            with self.lock:
                self.seen.append((method, cid))
            user = re.match(r"sips?:([^@]+)@", ruri)
            user = user.group(1) if user else ""
            if method == "INVITE":
                if user == "bob":
                    self.reply(m, src, 200, "OK", user)
                elif user == "busy":
                    self.reply(m, src, 486, "Busy Here", user)
                else:
                    self.reply(m, src, 180, "Ringing", user)
                    self.ringing[cid] = (m, user)
            elif method == "CANCEL":
                self.reply(m, src, 200, "OK", user)
                inv = self.ringing.pop(cid, None)
                if inv:
                    self.reply(inv[0], src, 487, "Request Terminated", inv[1])
            elif method in ("BYE", "OPTIONS"):
                self.reply(m, src, 200, "OK", user)

    def reply(self, m, src, code, reason, user):
        to = m.hdr("to")[0]
        if ";tag=" not in to:
            to += f";tag=uas-{abs(hash(m.hdr('call-id')[0])) % 10**8}"
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in m.hdr("via")]
        lines += [f"From: {m.hdr('from')[0]}", f"To: {to}", f"Call-ID: {m.hdr('call-id')[0]}",
                  f"CSeq: {m.hdr('cseq')[0]}"]
        if m.start.startswith("INVITE") and code < 300:
            lines += [f"Record-Route: {r}" for r in m.hdr("record-route")]
            lines.append(f"Contact: <sip:{user}@127.0.0.1:{self.port}>")
            if code == 200:
                self.dialogs[m.hdr("call-id")[0]] = (m, to)
        lines.append("Content-Length: 0")
        self.s.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), src)

    def hang_up(self, port, cid):
        """The callee's BYE (From the callee, To the caller) through 127.0.0.1:port,
        along the route set of the dialog (RFC 3261 §12.1.1); its final status."""
        inv, to = self.dialogs[cid]
        route = "".join(f"Route: {r}\r\n" for r in inv.hdr("record-route"))
        target = re.search(r"<([^>]+)>", inv.hdr("contact")[0]).group(1)
        self.s.sendto((f"BYE {target} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-uas-{time.monotonic_ns()};rport\r\n"
                       f"Max-Forwards: 70\r\n{route}From: {to}\r\nTo: {inv.hdr('from')[0]}\r\n"
                       f"Call-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").encode(),
                      ("127.0.0.1", port))

        def answered():
            with self.lock:
                return next((st for st, meth, c in self.answers
                             if meth == "BYE" and c == cid and st >= 200), None)
        return wait_for(answered, 10, f"the answer to the callee's BYE of {cid}")

    def stop(self):
        self.done.set()
        self.join(2)
        self.s.close()


class Caller:
    """A subscriber's phone placing calls through the edge of its choice, answering
    the 407 (RFC 7616 digest), holding the dialogs it set up."""

    n = 0

    def __init__(self, user, domain=DOMAIN):
        self.user, self.domain = user, domain
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]

    def close(self):
        self.s.close()

    def send(self, port, text):
        self.s.sendto(text.encode(), ("127.0.0.1", port))

    def wait(self, call, method, want, timeout=10):
        """The first response to `method` of this call whose status `want` accepts."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.s.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = self.s.recv(65535).decode(errors="replace")
            except socket.timeout:
                break
            head = data.split("\r\n\r\n", 1)[0]
            st = re.match(r"SIP/2\.0 (\d{3}) ([^\r\n]*)", head)
            if not st or f"Call-ID: {call['cid']}" not in head or \
                    not re.search(rf"^CSeq:\s*\d+ {method}\s*$", head, re.M | re.I):
                continue
            if want(int(st.group(1))):
                return int(st.group(1)), st.group(2), head
        raise AssertionError(f"{self.user}: no {method} response for {call['cid']}")

    def request(self, call, method, cseq, branch, ruri, extra=""):
        return (f"{method} {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\n{extra}"
                f"From: <sip:{self.user}@{self.domain}>;tag={call['ftag']}\r\n"
                f"To: {call.get('to', '<' + call['ruri'] + '>')}\r\n"
                f"Call-ID: {call['cid']}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\n"
                f"Content-Length: 0\r\n\r\n")

    def invite(self, port, callee, cancel=False):
        """(status, reason, call) of an INVITE to callee@DOMAIN through 127.0.0.1:port;
        cancel: CANCEL once it rings. A 2xx is ACKed, so the call is established."""
        Caller.n += 1
        ruri = f"sip:{callee}@{DOMAIN}"
        call = {"cid": f"lim-{self.user}-{Caller.n}-{os.getpid()}-{time.monotonic_ns()}",
                "ftag": f"f{Caller.n}", "ruri": ruri}
        b1 = f"z9hG4bK-lim-{Caller.n}-a"
        self.send(port, self.request(call, "INVITE", 1, b1, ruri))
        code, reason, head = self.wait(call, "INVITE", lambda s: s >= 200)
        assert code == 407, (code, reason)
        self.ack(port, call, 1, b1, head)
        auth = authorization(hdr_re("Proxy-Authenticate", head), "INVITE", ruri, self.user,
                             PW[self.user], "SHA-256", proxy=True)
        b2 = f"z9hG4bK-lim-{Caller.n}-b"
        self.send(port, self.request(call, "INVITE", 2, b2, ruri, auth))
        if cancel:
            self.wait(call, "INVITE", lambda s: s == 180)
            self.send(port, self.request(call, "CANCEL", 2, b2, ruri))
            assert self.wait(call, "CANCEL", lambda s: s >= 200)[0] == 200
        code, reason, head = self.wait(call, "INVITE", lambda s: s >= 200)
        if code >= 300:
            self.ack(port, call, 2, b2, head)
        elif code < 300:
            call["to"] = hdr_re("To", head)[0].strip()
            call["target"] = re.search(r"^Contact:\s*<([^>]+)>", head, re.M | re.I).group(1)
            rr = ",".join(hdr_re("Record-Route", head))
            call["routes"] = [x.strip() for x in rr.split(",") if x.strip()][::-1]
            assert call["routes"] and all(CLUSTER_HOST in r for r in call["routes"]), rr
            self.in_dialog(port, call, "ACK", 2)
        return code, reason, call

    def ack(self, port, call, cseq, branch, head):
        """The hop-by-hop ACK of a non-2xx final (§17.1.1.3)."""
        c = dict(call, to=hdr_re("To", head)[0].strip())
        self.send(port, self.request(c, "ACK", cseq, branch, call["ruri"]))

    def in_dialog(self, port, call, method, cseq):
        route = "".join(f"Route: {r}\r\n" for r in call["routes"])
        self.send(port, self.request(call, method, cseq,
                                     f"z9hG4bK-lim-{method}-{time.monotonic_ns()}",
                                     call["target"], route))

    def bye(self, port, call):
        self.in_dialog(port, call, "BYE", 3)
        return self.wait(call, "BYE", lambda s: s >= 200)[0]

    def answer_bye(self, call, timeout=10):
        """Answers 200 to the BYE of the callee for this call."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.s.settimeout(max(0.05, end - time.monotonic()))
            try:
                data, src = self.s.recvfrom(65535)
            except socket.timeout:
                break
            m = Msg(data)
            if m.start.startswith("BYE ") and m.hdr("call-id") == [call["cid"]]:
                lines = ["SIP/2.0 200 OK"] + [f"Via: {v}" for v in m.hdr("via")]
                lines += [f"{h}: {m.hdr(h)[0]}" for h in ("From", "To", "Call-ID", "CSeq")]
                self.s.sendto(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                              src)
                return
        raise AssertionError(f"{self.user}: no BYE from the callee for {call['cid']}")


def setup(users=USERS, **edge):
    c = Cluster(2, users=users, edge_extra=dict(edge, cluster_host=CLUSTER_HOST))
    uas = Uas()
    for u in ("bob", "busy", "ringer"):
        if u in PW and u in dict(users):
            r, _ = digest_register(c.sip[1], u, PW[u], f"<sip:{u}@127.0.0.1:{uas.port}>")
            assert r is not None and r.status == 200, r and r.start
    return c, uas


_sync = [0]


def sync_edges(c):
    """Wait until every edge has read the limits hash as it is now. An edge reads it
    just before the domain set, in the same refresh, one refresh at a time; a domain
    added now and seen by every edge was seen by a refresh that began after this
    call, so the second one is read by one that began after the first was seen,
    i.e. certainly after the limits changed."""
    for _ in range(2):
        _sync[0] += 1
        d = f"sync{_sync[0]}.limits.test"
        c.ctl("domain", "add", d)
        for port in c.sip:
            wait_for(lambda p=port: options(p, f"sip:{d}") == 200, 10, f"edge {port} serving {d}")


def edge_metric(c, i, name, labels=None):
    return metric(http(c.nodes[i].http["edge"], "/metrics")[1], name, labels) or 0


def limit_lines(c, i):
    return re.findall(r"call-limit src=\S+ user=\"[^\"]*\" reason=\w+ limit=\d+", c.log(i))


def test_concurrent_limit():
    # the [edge] default (1) applies to other.test; skein.test overrides it with 2
    c, uas = setup(call_limit="1")
    c.ctl("domain", "add", OTHER)
    c.ctl("user", "add", f"olga@{OTHER}", "--password", PW["olga"])
    out = c.ctl("domain", "set", DOMAIN, "call-limit=2")
    assert out == {"domain": DOMAIN, "call_limit": 2}, out
    sync_edges(c)
    rows = {r["domain"]: r for r in c.ctl("domain", "list")}
    assert rows[DOMAIN].get("call_limit") == 2 and "call_rate" not in rows[DOMAIN], rows
    assert "call_limit" not in rows[OTHER], rows
    e1, e2 = c.sip
    alice, carol, olga = Caller("alice"), Caller("carol"), Caller("olga", OTHER)

    # calls that end 486 or 487 (CANCEL) never count: were they kept, the second
    # call to bob below would be refused
    assert alice.invite(e1, "busy")[0] == 486
    code, _, _ = alice.invite(e1, "ringer", cancel=True)
    assert code == 487, code
    wait_for(lambda: uas.received("CANCEL"), 5, "the CANCEL at the callee")

    # two calls established through edge 1...
    code, _, a1 = alice.invite(e1, "bob")
    assert code == 200, code
    code, _, a2 = alice.invite(e1, "bob")
    assert code == 200, code
    # ...the third, through edge 2, is over the cluster-wide limit
    code, reason, _ = alice.invite(e2, "bob")
    assert (code, reason) == (403, CONCURRENT), (code, reason)
    assert len(uas.received("INVITE")) == 4, uas.seen  # busy, ringer, bob x2: not the 403
    assert edge_metric(c, 1, "skein_edge_call_limit_total", 'reason="concurrent"') == 1
    assert edge_metric(c, 0, "skein_edge_call_limit_total", 'reason="concurrent"') == 0
    assert limit_lines(c, 1) == [
        f'call-limit src=127.0.0.1 user="alice@{DOMAIN}" reason=concurrent limit=2'], \
        limit_lines(c, 1)

    # another account of the domain is not affected
    code, _, c1 = carol.invite(e2, "bob")
    assert code == 200, code

    # the BYE of a call set up through edge 1 enters edge 2: a place is free again
    assert alice.bye(e2, a1) == 200
    wait_for(lambda: a1["cid"] in uas.received("BYE"), 5, "the BYE at the callee")
    code, _, a3 = alice.invite(e2, "bob")
    assert code == 200, code
    code, reason, _ = alice.invite(e1, "bob")
    assert (code, reason) == (403, CONCURRENT), (code, reason)
    # the callee hangs up (From bob, To alice), through edge 1: freed again
    t = threading.Thread(target=alice.answer_bye, args=(a2,))
    t.start()
    assert uas.hang_up(e1, a2["cid"]) == 200
    t.join()
    code, _, a4 = alice.invite(e2, "bob")
    assert code == 200, code

    # other.test has no override: the [edge] default of 1
    code, _, o1 = olga.invite(e1, "bob")
    assert code == 200, code
    code, reason, _ = olga.invite(e2, "bob")
    assert (code, reason) == (403, CONCURRENT), (code, reason)
    assert f'user="olga@{OTHER}" reason=concurrent limit=1' in "\n".join(limit_lines(c, 1))

    # the override removed: skein.test falls back to the default (1), alice still
    # has 2 calls, carol 1
    out = c.ctl("domain", "set", DOMAIN, "call-limit=default")
    assert out == {"domain": DOMAIN}, out
    sync_edges(c)
    assert "call_limit" not in {r["domain"]: r for r in c.ctl("domain", "list")}[DOMAIN]
    code, reason, _ = carol.invite(e1, "bob")
    assert (code, reason) == (403, CONCURRENT), (code, reason)
    # 0 means no limit for the domain, whatever the default
    c.ctl("domain", "set", DOMAIN, "call-limit=0")
    sync_edges(c)
    code, _, c2 = carol.invite(e1, "bob")
    assert code == 200, code

    for caller, call in ((alice, a3), (alice, a4), (carol, c1), (carol, c2), (olga, o1)):
        assert caller.bye(e1, call) == 200
    for x in (alice, carol, olga):
        x.close()
    uas.stop()
    assert edge_metric(c, 0, "skein_edge_call_limit_unchecked_total") == 0
    assert edge_metric(c, 1, "skein_edge_call_limit_unchecked_total") == 0


def test_rate_limit():
    # default: 2 attempts a minute; skein.test: 3
    c, uas = setup(call_rate="2")
    c.ctl("domain", "add", OTHER)
    c.ctl("user", "add", f"olga@{OTHER}", "--password", PW["olga"])
    assert c.ctl("domain", "set", DOMAIN, "call-rate=3") == {"domain": DOMAIN, "call_rate": 3}
    sync_edges(c)
    e1, e2 = c.sip
    alice, carol, olga = Caller("alice"), Caller("carol"), Caller("olga", OTHER)

    # attempts count whatever their outcome (486 here), on whichever edge
    for port in (e1, e2, e1):
        code, reason, _ = alice.invite(port, "busy")
        assert code == 486, (code, reason)
    code, reason, _ = alice.invite(e2, "busy")
    assert (code, reason) == (403, RATE), (code, reason)
    assert len(uas.received("INVITE")) == 3, uas.seen
    assert edge_metric(c, 1, "skein_edge_call_limit_total", 'reason="rate"') == 1
    assert limit_lines(c, 1) == [
        f'call-limit src=127.0.0.1 user="alice@{DOMAIN}" reason=rate limit=3'], limit_lines(c, 1)
    # another account is not affected
    assert carol.invite(e2, "busy")[0] == 486
    # other.test: the default, 2
    assert olga.invite(e1, "busy")[0] == 486
    assert olga.invite(e2, "busy")[0] == 486
    code, reason, _ = olga.invite(e1, "busy")
    assert (code, reason) == (403, RATE), (code, reason)
    assert f'user="olga@{OTHER}" reason=rate limit=2' in "\n".join(limit_lines(c, 0))

    # the check cannot run (here a key of the wrong type makes the script fail, as
    # a Redis lost between auth and check would): fail open, counted and logged
    assert edge_metric(c, 0, "skein_edge_call_limit_unchecked_total") == 0
    c.redis.cmd("SET", f"t:{{carol@{DOMAIN}}}:calls", "not-a-zset")
    assert carol.invite(e1, "busy")[0] == 486
    assert edge_metric(c, 0, "skein_edge_call_limit_unchecked_total") == 1
    assert f"call limits not checked for carol@{DOMAIN}" in c.log(0), c.log(0)[-2000:]
    for x in (alice, carol, olga):
        x.close()
    uas.stop()


def test_skeinctl_domain_set():
    """Usage errors before Redis is asked; an unknown domain; deleting a domain takes
    its overrides along; -o table."""
    c = Cluster(1, users=(("alice", "alice-pw"),))
    conf = c.nodes[0].conf
    for args, code, text in (
            (("domain", "set", DOMAIN), 2, "usage: skeinctl domain set"),
            (("domain", "set", DOMAIN, "call-limit=x"), 2, "must be 0 to 1000000"),
            (("domain", "set", DOMAIN, "call-limit=-1"), 2, "must be 0 to 1000000"),
            (("domain", "set", DOMAIN, "frob=1"), 2, "takes call-limit=N and call-rate=N"),
            (("domain", "set", DOMAIN, "call-rate=1", "call_rate=2"), 2, "given twice"),
            (("domain", "set", "nowhere.test", "call-limit=1"), 1, "no such domain")):
        rc, _, err = skeinctl(conf, *args)
        assert rc == code and text in err, (args, rc, err)
    assert c.ctl("domain", "set", DOMAIN, "call_limit=5", "call-rate=7") == \
        {"domain": DOMAIN, "call_limit": 5, "call_rate": 7}
    h = [x.decode() for x in c.redis.cmd("HGETALL", "t:{domains}:limits")]
    assert dict(zip(h[::2], h[1::2])) == {f"{DOMAIN}:call_limit": "5",
                                          f"{DOMAIN}:call_rate": "7"}, h
    rc, out, _ = skeinctl(conf, "-o", "table", "domain", "list")
    assert rc == 0 and re.search(rf"^{re.escape(DOMAIN)}\s+1\s+5\s+7$", out, re.M), out
    assert c.ctl("domain", "set", DOMAIN, "call-rate=") == {"domain": DOMAIN, "call_limit": 5}
    c.ctl("domain", "del", DOMAIN, "--force")
    assert c.redis.cmd("EXISTS", "t:{domains}:limits") == 0


if __name__ == "__main__":
    run([test_skeinctl_domain_set, test_concurrent_limit, test_rate_limit])
