#!/usr/bin/env python3
"""Resource lists (RFC 4662) from rls-services documents (RFC 4826) on the real
daemons (docs/presence.md "Resource lists (RLS)"): alice PUTs an rls-services
document over XCAP (curl, digest) that defines sip:alice-buddies@skein.test with bob
and carol inline, and sip:alice-work@skein.test by reference to a list of her
resource-lists document; the list URIs land in the cluster-wide index. bob PUBLISHes
(sipp), alice SUBSCRIBEs to the list with Supported: eventlist and gets a NOTIFY with
Require: eventlist and a multipart/related body (RFC 2387: type and start
parameters): the RLMI document (version, fullState, one resource per member with one
active instance and its cid) first, then one PIDF part per member (bob open with his
note, carol's offline document); carol's later PUBLISH gives another full-state NOTIFY
with the next version and her note. Without Supported: eventlist the SUBSCRIBE gets
421 with Require: eventlist. Removing the service from the document takes the list
out of the index."""
import email
import email.policy
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from skeinlib import free_port, run, wait_for  # noqa: E402
from sipcluster import DOMAIN, Cluster, RawSip, authorization, request  # noqa: E402
from sipplib import SippServer, available, build_argv, sipp, write_users_csv  # noqa: E402

USERS = (("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw"))
PW = dict(USERS)
LIST = "alice-buddies"
WORK = "alice-work"
# sipp 3.6.1 answers only the first challenge and knows only MD5 (test_sip_cluster.py)
SIPP_EDGE = {"auth_algorithms": "md5,sha256"}
NS = {"rl": "urn:ietf:params:xml:ns:rlmi", "p": "urn:ietf:params:xml:ns:pidf"}

RLS_DOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"
    xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
  <service uri="sip:{LIST}@{DOMAIN}">
    <list name="buddies">
      <rl:display-name>Alice's buddies</rl:display-name>
      <rl:entry uri="sip:bob@{DOMAIN}"><rl:display-name>Bob</rl:display-name></rl:entry>
      <rl:entry uri="sip:carol@{DOMAIN}"><rl:display-name>Carol</rl:display-name></rl:entry>
    </list>
    <packages><package>presence</package></packages>
  </service>
  <service uri="sip:{WORK}@{DOMAIN}">
    <resource-list>http://xcap.{DOMAIN}/xcap/resource-lists/users/sip:alice@{DOMAIN}/index/~~/resource-lists/list%5b@name=%22work%22%5d</resource-list>
    <packages><package>presence</package></packages>
  </service>
</rls-services>
"""
# carol's pres-rules (RFC 5025): alice is blocked.
BLOCK_ALICE = f"""<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
    xmlns:cr="urn:ietf:params:xml:ns:common-policy">
  <cr:rule id="no-alice">
    <cr:conditions><cr:identity><cr:one id="sip:alice@{DOMAIN}"/></cr:identity></cr:conditions>
    <cr:actions><sub-handling>block</sub-handling></cr:actions>
    <cr:transformations/>
  </cr:rule>
</cr:ruleset>
"""
RL_DOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="work"><entry uri="sip:carol@{DOMAIN}"/></list>
</resource-lists>
"""


def curl(xcap, path, method="GET", data=None, ctype=None, user="alice"):
    """Status of one XCAP request with digest credentials (as test_xcap.py)."""
    args = ["curl", "-sS", "-g", "--max-time", "10", "-X", method, "-o", "/dev/null",
            "-w", "%{http_code}", "--digest", "-u", f"{user}:{PW[user]}"]
    if data is not None:
        args += ["--data-binary", "@-", "-H", f"Content-Type: {ctype}"]
    r = subprocess.run(args + [xcap + path], input=(data or "").encode(), capture_output=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr.decode()
    return int(r.stdout.decode())


def doc_path(auid, user="alice"):
    return f"/xcap/{auid}/users/sip:{user}@{DOMAIN}/index"


def publish(c, user, note):
    r = sipp("rls_publish.xml", c.addr(0), user=user, password=PW[user], keys={"note": note})
    assert r.ok, r.explain()
    assert r.trace.responses(method="PUBLISH")[-1] == 200, r.trace.responses(method="PUBLISH")


def subscriber(c, lst, user="alice"):
    """A background sipp that SUBSCRIBEs to list `lst` and answers every NOTIFY."""
    s = SippServer("rls_subscribe.xml", timeout_s=60)
    csv = write_users_csv(os.path.join(s.workdir, f"{s.name}_users.csv"), [(user, PW[user])])
    s.argv = build_argv("rls_subscribe.xml", c.addr(0), local_port=s.port, service=lst,
                        users_csv=csv, timeout_s=60, name=s.name)
    return s.start()


def notifies(s):
    return s.trace.find(request="NOTIFY", direction="received")


def parts(notify):
    """(Content-Type parameters, [(headers, body)]) of a multipart/related NOTIFY."""
    ct = notify.header("Content-Type")
    assert ct and ct.lower().startswith("multipart/related"), notify.text
    msg = email.message_from_string(f"Content-Type: {ct}\n\n{notify.body}",
                                    policy=email.policy.compat32)
    assert msg.is_multipart(), notify.text
    params = dict((k.lower(), v) for k, v in msg.get_params()[1:])
    out = [(p, p.get_payload()) for p in msg.get_payload()]
    return params, out


def check_list_notify(n, members, version=None, foreign=(), pending=()):
    """The RFC 4662 §5 shape of a list NOTIFY; returns ({member uri: PIDF root}, RLMI
    version). Members in `foreign` (another domain: no back-end subscription) are
    resources without an instance; those in `pending` (their rules do not let the
    subscriber see them) have a pending instance without a part."""
    assert n.header("Event").split(";")[0].strip() == "presence", n.text
    assert "eventlist" in (n.header("Require") or ""), n.text
    assert (n.header("Subscription-State") or "").startswith("active"), n.text
    params, ps = parts(n)
    # RFC 2387 §3.1/3.2: type is the root's type, start its Content-ID.
    assert params.get("type") == "application/rlmi+xml", params
    assert params.get("start") and params.get("boundary"), params
    head, rlmi = ps[0]
    assert head.get_content_type() == "application/rlmi+xml", head
    assert head["Content-ID"] == params["start"], (head["Content-ID"], params)
    root = ET.fromstring(rlmi.strip().encode())
    assert root.tag == "{%s}list" % NS["rl"], rlmi
    assert root.get("uri") == f"sip:{LIST}@{DOMAIN}", rlmi
    assert root.get("fullState") == "true", rlmi
    if version is not None:
        assert int(root.get("version")) == version, (version, rlmi)
    res = root.findall("rl:resource", NS)
    assert sorted(r.get("uri") for r in res) == sorted(list(members) + list(foreign)), rlmi
    cids = {}
    for r in res:
        inst = r.findall("rl:instance", NS)
        if r.get("uri") in foreign:
            assert not inst, rlmi
            continue
        if r.get("uri") in pending:
            assert len(inst) == 1 and inst[0].get("state") == "pending", rlmi
            assert not inst[0].get("cid"), rlmi
            continue
        assert len(inst) == 1 and inst[0].get("state") == "active", rlmi
        assert inst[0].get("id") and inst[0].get("cid"), rlmi
        cids["<" + inst[0].get("cid") + ">"] = r.get("uri")
    docs = {}
    for h, body in ps[1:]:
        assert h.get_content_type() == "application/pidf+xml", h
        uri = cids.pop(h["Content-ID"])
        p = ET.fromstring(body.strip().encode())
        assert p.tag == "{%s}presence" % NS["p"], body
        assert p.get("entity") == uri, (uri, body)
        docs[uri] = p
    assert not cids, f"instances without a part: {cids}"
    return docs, int(root.get("version"))


def basic(p):
    return [b.text for b in p.iter("{%s}basic" % NS["p"])]


def notes(p):
    return [x.text for x in p.iter("{%s}note" % NS["p"])]


def test_resource_list():
    xport = free_port()
    c = Cluster(1, users=USERS, edge_extra=SIPP_EDGE, registrar_extra={
        "xcap_listen": f"127.0.0.1:{xport}", "pres_default_policy": "allow",
        "notify_interval": "100ms"})
    xcap = f"http://127.0.0.1:{xport}"
    bob, carol = f"sip:bob@{DOMAIN}", f"sip:carol@{DOMAIN}"

    assert curl(xcap, doc_path("resource-lists"), "PUT", RL_DOC,
                "application/resource-lists+xml") == 201
    assert curl(xcap, doc_path("rls-services"), "PUT", RLS_DOC,
                "application/rls-services+xml") == 201
    # The index (pres.h: <c>:{pres}:rls list AOR -> owner), written after the PUT.
    wait_for(lambda: c.redis.cmd("HGET", "t:{pres}:rls", f"{LIST}@{DOMAIN}") == b"alice@" +
             DOMAIN.encode(), 5, "the list in the rls index")
    assert c.redis.cmd("HGET", "t:{pres}:rls", f"{WORK}@{DOMAIN}") == f"alice@{DOMAIN}".encode()

    publish(c, "bob", "bob-here")

    # Without eventlist support a list cannot be subscribed to (RFC 4662 §4.1).
    r = sipp("rls_subscribe_421.xml", c.addr(0), service=LIST, user="alice",
             password=PW["alice"])
    assert r.ok, r.explain()
    final = r.trace.find(status=421)[-1]
    assert "eventlist" in (final.header("Require") or ""), final.text

    s = subscriber(c, LIST)
    try:
        wait_for(lambda: notifies(s), 10, "the first list NOTIFY")
        docs, v1 = check_list_notify(notifies(s)[0], [bob, carol])
        assert basic(docs[bob]) == ["open"] and "bob-here" in notes(docs[bob]), \
            ET.tostring(docs[bob])
        assert "open" not in basic(docs[carol]), ET.tostring(docs[carol])  # nothing published

        # A member's PUBLISH: the list's subscribers hear of it, whole list again.
        publish(c, "carol", "carol-here")

        def carol_open():
            for n in notifies(s)[1:]:
                d, v = check_list_notify(n, [bob, carol])
                if "carol-here" in notes(d[carol]):
                    return d, v
            return None
        docs, v2 = wait_for(carol_open, 10, "a list NOTIFY with carol's PUBLISH")
        assert v2 > v1, (v1, v2)
        assert basic(docs[carol]) == ["open"], ET.tostring(docs[carol])
        assert basic(docs[bob]) == ["open"], ET.tostring(docs[bob])

        # The document changes under a live subscription: a NOTIFY of the new list.
        dave = "sip:dave@elsewhere.test"
        doc = RLS_DOC.replace("</list>", f'<rl:entry uri="{dave}"/></list>', 1)
        assert curl(xcap, doc_path("rls-services"), "PUT", doc,
                    "application/rls-services+xml") == 200

        def with_dave():
            for n in notifies(s):
                if dave in n.body:
                    return check_list_notify(n, [bob, carol], foreign=[dave])
            return None
        wait_for(with_dave, 10, "a list NOTIFY after the document changed")

        # carol's rules block alice: the list shows her pending, without her state
        # (her pres-rules decide for the list's subscriber as for a direct one).
        assert curl(xcap, doc_path("pres-rules", "carol"), "PUT", BLOCK_ALICE,
                    "application/auth-policy+xml", user="carol") == 201
        publish(c, "carol", "carol-again")

        def carol_pending():
            for n in notifies(s):
                if 'state="pending"' in n.body:
                    return check_list_notify(n, [bob, carol], foreign=[dave], pending=[carol])
            return None
        docs, _ = wait_for(carol_pending, 10, "a list NOTIFY with carol pending")
        assert list(docs) == [bob] and "carol-again" not in notifies(s)[-1].body
        # RFC 4662 §5: the version goes up by one with every NOTIFY of the
        # subscription (a UDP retransmission is the same NOTIFY: same CSeq).
        by_cseq = {n.cseq: int(ET.fromstring(parts(n)[1][0][1].strip().encode()).get("version"))
                   for n in notifies(s)}
        versions = [by_cseq[k] for k in sorted(by_cseq)]
        assert versions == list(range(versions[0], versions[0] + len(versions))), by_cseq
    finally:
        s.stop()
    assert not s.trace.find(direction="received", unexpected=True), s.trace.text()

    # A list by reference into alice's resource-lists document.
    s = subscriber(c, WORK)
    try:
        wait_for(lambda: notifies(s), 10, "the first NOTIFY of the referenced list")
        n = notifies(s)[0]
        _, ps = parts(n)
        root = ET.fromstring(ps[0][1].strip().encode())
        assert [r.get("uri") for r in root.findall("rl:resource", NS)] == [carol], ps[0][1]

        # The service removed under the live subscription: the list leaves the
        # index (and its owner's set), and the subscription ends with a final
        # NOTIFY "terminated;reason=noresource" (RFC 6665 §4.1.3, RFC 4662 §4.4).
        assert curl(xcap, doc_path("rls-services"), "PUT", re.sub(
            r"\s*<service uri=\"sip:alice-work@.*?</service>", "", RLS_DOC, flags=re.S),
            "application/rls-services+xml") == 200
        wait_for(lambda: c.redis.cmd("HGET", "t:{pres}:rls", f"{WORK}@{DOMAIN}") is None, 5,
                 "the removed list out of the index")

        def ended():
            return [n for n in notifies(s)
                    if (n.header("Subscription-State") or "").startswith("terminated")]
        fin = wait_for(ended, 10, "the final NOTIFY of the removed list")[0]
        assert "reason=noresource" in fin.header("Subscription-State"), fin.text
        assert c.redis.cmd("HLEN", f"t:{{{WORK}@{DOMAIN}}}:subs") == 0
    finally:
        s.stop()
    assert c.redis.cmd("HGET", "t:{pres}:rls", f"{LIST}@{DOMAIN}") == f"alice@{DOMAIN}".encode()
    assert c.redis.cmd("SMEMBERS", "t:{alice@%s}:rlsidx" % DOMAIN) == \
        [f"{LIST}@{DOMAIN}".encode()]


def test_list_uri_rules():
    """A service URI that is a user's own address, or another owner's list, is not
    taken (RFC 4826 §4: unique across the server)."""
    xport = free_port()
    c = Cluster(1, users=USERS, registrar_extra={"xcap_listen": f"127.0.0.1:{xport}"})
    xcap = f"http://127.0.0.1:{xport}"
    assert curl(xcap, doc_path("rls-services"), "PUT", RLS_DOC,
                "application/rls-services+xml") == 201
    wait_for(lambda: c.redis.cmd("HGET", "t:{pres}:rls", f"{LIST}@{DOMAIN}"), 5, "indexed")
    bob_doc = RLS_DOC.replace(WORK, "carol")  # bob claims alice's list and carol
    # The XCAP server refuses it (409 uniqueness-failure, docs/xcap.md "Service URIs";
    # test_xcap.py checks the body): nothing stored, nothing indexed.
    assert curl(xcap, doc_path("rls-services", "bob"), "PUT", bob_doc,
                "application/rls-services+xml", user="bob") == 409
    only_carol = re.sub(r"\s*<service uri=\"sip:%s@.*?</service>" % LIST, "", bob_doc,
                        flags=re.S)
    assert "carol@" in only_carol and LIST not in only_carol
    assert curl(xcap, doc_path("rls-services", "bob"), "PUT", only_carol,
                "application/rls-services+xml", user="bob") == 409
    assert c.redis.cmd("EXISTS", "t:{bob@%s}:rlsidx" % DOMAIN) == 0
    assert c.redis.cmd("HGET", "t:{pres}:rls", f"{LIST}@{DOMAIN}") == f"alice@{DOMAIN}".encode()
    assert c.redis.cmd("HGET", "t:{pres}:rls", f"carol@{DOMAIN}") is None


class RawSubscriber:
    """A list subscription over raw UDP (for what the sipp scenario cannot do:
    end the dialog): SUBSCRIBE with digest, 200 to every NOTIFY."""

    HDRS = ("Event: presence\r\nSupported: eventlist\r\n"
            "Accept: application/rlmi+xml, multipart/related, application/pidf+xml\r\n")

    def __init__(self, c, lst, user):
        self.c, self.user, self.port = c, user, c.sip[0]
        self.sock = RawSip()
        self.ruri = f"sip:{lst}@{DOMAIN}"
        self.call_id = f"rls-raw-{time.monotonic_ns()}"
        self.frm = f"<sip:{user}@{DOMAIN}>;tag=raw{os.getpid()}"
        self.to_tag = None
        self.target = None
        self.cseq = 0
        self.notifies = []

    def _send(self, extra, to, ruri):
        self.cseq += 1
        self.sock.send(self.port, request(
            "SUBSCRIBE", ruri, self.sock.port, to=to, frm=self.frm, call_id=self.call_id,
            cseq=self.cseq, extra=f"Contact: <sip:{self.user}@127.0.0.1:{self.sock.port}>\r\n" +
            self.HDRS + extra))

    def _answer(self, m):
        """200 to a NOTIFY (RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq copied)."""
        keep = "".join(f"{k.title()}: {v}\r\n" for k, v in m.headers
                       if k in ("via", "from", "to", "call-id", "cseq"))
        self.sock.send(self.port, f"SIP/2.0 200 OK\r\n{keep}Content-Length: 0\r\n\r\n")
        self.notifies.append(m)

    def final(self, timeout=5):
        """The final response to the last SUBSCRIBE, answering NOTIFYs meanwhile."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.sock.recv(end - time.monotonic())
            if m is None:
                break
            if not m.status:
                self._answer(m)
            elif m.status >= 200 and m.hdr("cseq")[0].startswith(f"{self.cseq} "):
                return m
        raise AssertionError(f"no final response to SUBSCRIBE {self.cseq}")

    def wait_notify(self, n, timeout=5):
        end = time.monotonic() + timeout
        while len(self.notifies) < n and time.monotonic() < end:
            m = self.sock.recv(end - time.monotonic())
            if m is not None and not m.status:
                self._answer(m)
        assert len(self.notifies) >= n, (n, [x.start for x in self.notifies])
        return self.notifies[n - 1]

    def subscribe(self, expires=600):
        self._send(f"Expires: {expires}\r\n", f"<{self.ruri}>", self.ruri)
        r = self.final()
        if r.status == 407:
            auth = authorization(r.hdr("proxy-authenticate"), "SUBSCRIBE", self.ruri, self.user,
                                 PW[self.user], "SHA-256", proxy=True)
            self._send(f"Expires: {expires}\r\n" + auth, f"<{self.ruri}>", self.ruri)
            r = self.final()
        if r.status == 200:
            self.to_tag = re.search(r";tag=([^;>\s]+)", r.hdr("to")[0]).group(1)
            self.target = r.hdr("contact")[0].strip("<>")
        return r

    def unsubscribe(self):
        """In-dialog SUBSCRIBE with Expires: 0 (RFC 6665 §4.1.2.3)."""
        self._send("Expires: 0\r\n", f"<{self.ruri}>;tag={self.to_tag}", self.target)
        return self.final()

    def close(self):
        self.sock.close()


def test_subscribers_and_members():
    """Who may subscribe to a list (its owner), and the member -> lists index
    (<c>:{member}:rlsin) following the list's subscriptions: in while one is live,
    out when the last one ends."""
    xport = free_port()
    c = Cluster(1, users=USERS, registrar_extra={
        "xcap_listen": f"127.0.0.1:{xport}", "pres_default_policy": "allow"})
    xcap = f"http://127.0.0.1:{xport}"
    assert curl(xcap, doc_path("rls-services"), "PUT", RLS_DOC,
                "application/rls-services+xml") == 201
    wait_for(lambda: c.redis.cmd("HGET", "t:{pres}:rls", f"{LIST}@{DOMAIN}"), 5, "indexed")
    lst = f"{LIST}@{DOMAIN}".encode()

    def rlsin(member):
        return c.redis.cmd("SMEMBERS", "t:{%s@%s}:rlsin" % (member, DOMAIN))

    # Another user may not subscribe to alice's list: it would show whom she watches.
    bob = RawSubscriber(c, LIST, "bob")
    try:
        assert bob.subscribe().status == 403
    finally:
        bob.close()
    assert rlsin("bob") == []

    subs = [RawSubscriber(c, LIST, "alice"), RawSubscriber(c, LIST, "alice")]
    try:
        for sub in subs:
            r = sub.subscribe()
            assert r.status == 200, r.start
            assert "multipart/related" in sub.wait_notify(1).raw.decode(errors="replace")
        wait_for(lambda: rlsin("bob") == [lst] and rlsin("carol") == [lst], 5,
                 "the list in its members' rlsin")
        assert sorted(c.redis.cmd("SMEMBERS", "t:{%s}:rlsmem" % lst.decode())) == \
            [f"bob@{DOMAIN}".encode(), f"carol@{DOMAIN}".encode()]
        # One of two subscriptions ends: the members keep the list.
        assert subs[0].unsubscribe().status == 200
        last = subs[0].wait_notify(2)
        assert last.hdr("subscription-state")[0].startswith("terminated"), last.headers
        time.sleep(0.5)  # nothing to wait for: the index must NOT change
        assert rlsin("bob") == [lst] and rlsin("carol") == [lst]
        # The last one ends: the list leaves them.
        assert subs[1].unsubscribe().status == 200
        last = subs[1].wait_notify(2)
        assert last.hdr("subscription-state")[0].startswith("terminated"), last.headers
        wait_for(lambda: rlsin("bob") == [] and rlsin("carol") == [], 5,
                 "the list out of its members' rlsin")
        assert c.redis.cmd("EXISTS", "t:{%s}:rlsmem" % lst.decode()) == 0
    finally:
        for sub in subs:
            sub.close()


if __name__ == "__main__":
    if not available():
        print("sipp not installed: skipped")
        sys.exit(0)
    run([test_resource_list, test_list_uri_rules, test_subscribers_and_members])
