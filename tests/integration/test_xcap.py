"""XCAP (RFC 4825) on skein-registrar, driven with real curl over HTTP and HTTPS: a
whole resource-lists document, one <entry> by element selector, an attribute; a stale
ETag gets 412; malformed XML and a duplicate entry get 409 with an xcap-error body;
another user's document gets 403, no credentials 401; a document written through one
registrar is read through the other (the documents live in Redis). rls-services
service URIs are unique across every user's documents (RFC 4826 §4.4.3): another
owner's list URI, or a user's address, gets 409 <uniqueness-failure> with an
<alt-value>.

What an operator expects of every listener: metrics on the registrar's /metrics
(requests by method, responses by class, auth failures, a latency histogram); the
digest nonce-count replay check of the SIP edge (a repeated or smaller nc: 401
stale=false); the edge's auth-failure log line, which the shipped fail2ban filter
matches in the registrar's log; the HTTPS certificate and key re-read on SIGHUP (a
broken key keeps the old pair)."""
import hashlib
import http.client as httpclient
import os
import re
import signal
import socket
import ssl
import subprocess
import sys


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xml.etree.ElementTree as ET

from skeinlib import (SRC, Node, Redis, free_port, http as http_get, metric, run,  # noqa: E402
                      skeinctl, tmpdir, wait_for)

DOMAIN = "xcap.test"
USERS = {"alice": "alicepw", "bob": "bobpw"}
RL = "application/resource-lists+xml"
DOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <entry uri="sip:bob@{DOMAIN}"><display-name>Bob</display-name></entry>
    <entry uri="sip:carol@{DOMAIN}"><display-name>Carol</display-name></entry>
  </list>
</resource-lists>
"""


class XcapCluster:
    """redis-server and two nodes each running skein-registrar with XCAP on HTTP and
    HTTPS (a self-signed certificate made here); users provisioned with skeinctl."""

    def __init__(self, n=2):
        self.tmp = tmpdir()
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True, timeout=30)
        self.redis = Redis(self.tmp).start()
        self.nodes, self.http, self.https = [], [], []
        for i in range(n):
            hp, tp = free_port(), free_port()
            node = Node(self.tmp, self.redis, f"n{i + 1}", roles=("registrar",),
                        role_extra={"registrar": {
                            "xcap_listen": f"127.0.0.1:{hp}",
                            "xcap_listen_tls": f"127.0.0.1:{tp}",
                            "tls_cert": self.cert, "tls_key": self.key}})
            node.start("registrar")
            self.nodes.append(node)
            self.http.append(f"http://127.0.0.1:{hp}")
            self.https.append(f"https://127.0.0.1:{tp}")
        self.ctl("domain", "add", DOMAIN)
        for u, pw in USERS.items():
            self.ctl("user", "add", f"{u}@{DOMAIN}", "--password", pw)

    def ctl(self, *args):
        rc, out, err = skeinctl(self.nodes[0].conf, *args)
        assert rc == 0, f"skeinctl {args}: {rc} {err}"
        return out


def curl(base, path, method="GET", user="alice", data=None, ctype=None, headers=(),
         digest=True):
    """(status, headers dict (lower-case names), body) of one curl request."""
    args = ["curl", "-sS", "-g", "--max-time", "10", "-X", method, "-D", "-",
            "--cacert", CERT[0]] if base.startswith("https") else \
           ["curl", "-sS", "-g", "--max-time", "10", "-X", method, "-D", "-"]
    if user and digest:
        args += ["--digest", "-u", f"{user}:{USERS.get(user, 'wrong')}"]
    if data is not None:
        args += ["--data-binary", "@-"]
    if ctype:
        args += ["-H", f"Content-Type: {ctype}"]
    for h in headers:
        args += ["-H", h]
    args.append(base + path)
    r = subprocess.run(args, input=(data or "").encode(), capture_output=True, timeout=20)
    assert r.returncode == 0, f"curl {method} {path}: {r.stderr.decode()}"
    out = r.stdout.decode("utf-8", "replace")
    # With --digest the 401 round comes first: keep the last response.
    blocks = re.split(r"(?=^HTTP/1\.1 \d{3})", out, flags=re.M)
    blocks = [b for b in blocks if b.startswith("HTTP/1.1 ") and not b.startswith("HTTP/1.1 100")]
    last = blocks[-1]
    head, _, body = last.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


CERT = [""]


def doc_path(user="alice", doc="index", sel=""):
    p = f"/xcap/resource-lists/users/sip:{user}@{DOMAIN}/{doc}"
    return p + ("/~~/" + sel if sel else "")


def check_must_show(base):
    """The issue's list, on one base URL (http:// or https://)."""
    # A whole document: PUT creates (201), GET returns it with its ETag, PUT replaces.
    st, h, _ = curl(base, doc_path(), "PUT", data=DOC, ctype=RL)
    assert st == 201, st
    etag1 = h["etag"]
    st, h, body = curl(base, doc_path())
    assert st == 200 and body == DOC and h["etag"] == etag1, (st, h, body)
    assert h["content-type"] == RL

    # One <entry> by element selector: GET, PUT a new one (201), replace it (200), DELETE.
    sel = 'resource-lists/list[@name="friends"]/entry[@uri="sip:bob@' + DOMAIN + '"]'
    st, h, body = curl(base, doc_path(sel=sel.replace('"', "%22")))
    assert st == 200 and "<display-name>Bob</display-name>" in body, (st, body)
    assert h["content-type"] == "application/xcap-el+xml"
    dave = 'resource-lists/list[@name="friends"]/entry[@uri="sip:dave@' + DOMAIN + '"]'
    el = f'<entry uri="sip:dave@{DOMAIN}"><display-name>Dave</display-name></entry>'
    st, h, _ = curl(base, doc_path(sel=dave.replace('"', "%22")), "PUT", data=el,
                    ctype="application/xcap-el+xml")
    assert st == 201, st
    etag2 = h["etag"]
    assert etag2 != etag1
    st, _, body = curl(base, doc_path())
    assert f'uri="sip:dave@{DOMAIN}"' in body, body
    el2 = f'<entry uri="sip:dave@{DOMAIN}"><display-name>David</display-name></entry>'
    st, h, _ = curl(base, doc_path(sel=dave.replace('"', "%22")), "PUT", data=el2,
                    ctype="application/xcap-el+xml")
    assert st == 200, st
    st, _, body = curl(base, doc_path(sel=dave.replace('"', "%22")))
    assert st == 200 and "David" in body, body

    # An attribute: GET, PUT (replace the list's name), DELETE.
    st, h, body = curl(base, doc_path(sel='resource-lists/list[1]/@name'))
    assert st == 200 and body == "friends", (st, body)
    assert h["content-type"] == "application/xcap-att+xml"
    st, _, _ = curl(base, doc_path(sel='resource-lists/list[1]/@name'), "PUT", data="buddies",
                    ctype="application/xcap-att+xml")
    assert st == 200, st
    st, _, body = curl(base, doc_path(sel='resource-lists/list[1]/@name'))
    assert body == "buddies", body
    st, _, _ = curl(base, doc_path(sel='resource-lists/list[1]/@name'), "DELETE")
    assert st == 200, st
    st, _, _ = curl(base, doc_path(sel='resource-lists/list[1]/@name'))
    assert st == 404, st
    st, h, _ = curl(base, doc_path(sel='resource-lists/list[1]/@name'), "PUT", data="friends",
                    ctype="application/xcap-att+xml")
    assert st == 201 and h["etag"], (st, h)

    # DELETE the element; it is gone.
    st, h, _ = curl(base, doc_path(sel=dave.replace('"', "%22")), "DELETE")
    assert st == 200, st
    st, _, _ = curl(base, doc_path(sel=dave.replace('"', "%22")))
    assert st == 404, st
    etag_now = curl(base, doc_path())[1]["etag"]

    # A conditional PUT with a stale ETag (from when dave was in): 412; with the
    # current one: 200.
    assert etag2 != etag_now
    st, _, _ = curl(base, doc_path(), "PUT", data=DOC, ctype=RL, headers=[f"If-Match: {etag2}"])
    assert st == 412, st
    st, _, _ = curl(base, doc_path(), "PUT", data=DOC, ctype=RL,
                    headers=[f"If-Match: {etag_now}"])
    assert st == 200, st
    st, h, _ = curl(base, doc_path())
    st, _, _ = curl(base, doc_path(), headers=[f"If-None-Match: {h['etag']}"])
    assert st == 304, st

    # Malformed XML: 409 not-well-formed.
    st, h, body = curl(base, doc_path(), "PUT", data="<resource-lists><list>", ctype=RL)
    assert st == 409 and h["content-type"] == "application/xcap-error+xml", (st, h)
    assert "<not-well-formed/>" in body, body

    # A duplicate entry uri: 409 uniqueness-failure, document unchanged.
    dup = DOC.replace("sip:carol@", "sip:bob@")
    st, h, body = curl(base, doc_path(), "PUT", data=dup, ctype=RL)
    assert st == 409 and "<uniqueness-failure" in body and "<exists field=" in body, (st, body)
    bob2 = 'resource-lists/list[@name="friends"]/entry[3]'
    st, _, body = curl(base, doc_path(sel=bob2.replace('"', "%22")), "PUT",
                       data=f'<entry uri="sip:bob@{DOMAIN}"/>', ctype="application/xcap-el+xml")
    assert st == 409 and "<uniqueness-failure" in body, (st, body)
    st, _, body = curl(base, doc_path())
    assert body == DOC, body

    # Another user's document: 403 for bob, 401 without credentials, 401 with a
    # wrong password.
    st, _, _ = curl(base, doc_path(), user="bob")
    assert st == 403, st
    st, h, _ = curl(base, doc_path(), digest=False)
    assert st == 401 and "digest" in h.get("www-authenticate", "").lower(), (st, h)
    st, _, _ = curl(base, doc_path(), user="mallory")
    assert st == 401, st

    # DELETE of the whole document.
    st, _, _ = curl(base, doc_path(), "DELETE")
    assert st == 200, st
    st, _, _ = curl(base, doc_path())
    assert st == 404, st


def test_xcap_http_and_https():
    c = XcapCluster()
    CERT[0] = c.cert
    check_must_show(c.http[0])
    check_must_show(c.https[1])


def test_xcap_any_node():
    """Written through node 1 (HTTP), read and changed through node 2 (HTTPS), and
    node 1 sees the change: one store in Redis, one ETag."""
    c = XcapCluster()
    CERT[0] = c.cert
    st, h, _ = curl(c.http[0], doc_path(), "PUT", data=DOC, ctype=RL)
    assert st == 201, st
    st, h2, body = curl(c.https[1], doc_path())
    assert st == 200 and body == DOC and h2["etag"] == h["etag"], (st, h2)
    st, h3, _ = curl(c.https[1], doc_path(sel="resource-lists/list/entry[1]/@uri"), "PUT",
                     data=f"sip:zoe@{DOMAIN}", ctype="application/xcap-att+xml",
                     headers=[f"If-Match: {h['etag']}"])
    assert st == 200, st
    st, h4, body = curl(c.http[0], doc_path(sel="resource-lists/list/entry[1]/@uri"))
    assert st == 200 and body == f"sip:zoe@{DOMAIN}", (st, body)
    assert h4["etag"] == h3["etag"]
    # xcap-caps is global and public.
    st, _, body = curl(c.http[1], "/xcap/xcap-caps/global/index", digest=False)
    assert st == 200 and "<auid>resource-lists</auid>" in body, (st, body)


def test_xcap_concurrent_writers():
    """16 element PUTs at once, half through each node, each adding its own entry to
    one list: the compare-and-set in Redis loses none of them."""
    c = XcapCluster()
    CERT[0] = c.cert
    st, _, _ = curl(c.http[0], doc_path(), "PUT", data=DOC, ctype=RL)
    assert st == 201, st
    procs = []
    for i in range(16):
        sel = f'resource-lists/list/entry[@uri=%22sip:u{i}@{DOMAIN}%22]'
        args = ["curl", "-sS", "-g", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}",
                "--digest", "-u", "alice:alicepw", "-X", "PUT", "-H",
                "Content-Type: application/xcap-el+xml", "--data-binary",
                f'<entry uri="sip:u{i}@{DOMAIN}"/>', c.http[i % 2] + doc_path(sel=sel)]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE))
    codes = [p.communicate(timeout=30)[0].decode() for p in procs]
    assert codes == ["201"] * 16, codes
    st, _, body = curl(c.http[1], doc_path())
    for i in range(16):
        assert f'uri="sip:u{i}@{DOMAIN}"' in body, (i, body)


RLS = "application/rls-services+xml"
XE = "{urn:ietf:params:xml:ns:xcap-error}"


def rls_doc(*uris):
    svcs = "".join(f"""  <service uri="{u}">
    <list><rl:entry uri="sip:carol@{DOMAIN}"/></list>
    <packages><package>presence</package></packages>
  </service>
""" for u in uris)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"
    xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
{svcs}</rls-services>
"""


def rls_path(user, sel=""):
    p = f"/xcap/rls-services/users/sip:{user}@{DOMAIN}/index"
    return p + ("/~~/" + sel.replace('"', "%22") if sel else "")


def uniqueness(st, h, body, alt=None):
    """A 409 whose xcap-error is <uniqueness-failure><exists field=service uri>, with
    <alt-value> alt (None: whatever, "": none)."""
    assert st == 409, (st, body)
    assert h["content-type"] == "application/xcap-error+xml", h
    root = ET.fromstring(body)
    assert root.tag == XE + "xcap-error", body
    uf = root.find(XE + "uniqueness-failure")
    assert uf is not None, body
    ex = uf.findall(XE + "exists")
    assert len(ex) == 1 and ex[0].get("field") == "rls-services/service/@uri", body
    alts = [a.text for a in ex[0].findall(XE + "alt-value")]
    if alt is not None:
        assert alts == ([alt] if alt else []), (alts, body)
    return alts


def test_xcap_rls_unique():
    """RFC 4826 §4.4.3: a <service uri> is unique across the server. alice's
    sip:friends is hers (the registrar's index, <c>:{pres}:rls); bob cannot define it
    (document, element or attribute PUT: 409 with an <alt-value> that is free), nor
    can anyone use a provisioned user's address; alice may write hers again."""
    c = XcapCluster(n=1)
    base = c.http[0]
    friends = f"sip:friends@{DOMAIN}"
    st, _, body = curl(base, rls_path("alice"), "PUT", data=rls_doc(friends), ctype=RLS)
    assert st == 201, (st, body)
    wait_for(lambda: c.redis.cmd("HGET", "t:{pres}:rls", f"friends@{DOMAIN}") ==
             f"alice@{DOMAIN}".encode(), 5, "alice's list in the index")

    # bob's whole document claiming it: 409, nothing stored, the alternative offered.
    st, h, body = curl(base, rls_path("bob"), "PUT", user="bob", ctype=RLS,
                       data=rls_doc(f"sip:bobs@{DOMAIN}", friends))
    uniqueness(st, h, body, alt=f"sip:friends-bob@{DOMAIN}")
    assert curl(base, rls_path("bob"), user="bob")[0] == 404
    # The same URI spelt with another domain case, and a sips: URI: the same list.
    for u in (f"sip:friends@{DOMAIN.upper()}", f"sips:friends@{DOMAIN};transport=tls"):
        st, h, body = curl(base, rls_path("bob"), "PUT", user="bob", ctype=RLS,
                           data=rls_doc(u))
        uniqueness(st, h, body)
    # Another URI: his.
    st, h, _ = curl(base, rls_path("bob"), "PUT", user="bob", ctype=RLS,
                    data=rls_doc(f"sip:bobs@{DOMAIN}"))
    assert st == 201, st
    bob_etag = h["etag"]
    wait_for(lambda: c.redis.cmd("HGET", "t:{pres}:rls", f"bobs@{DOMAIN}") ==
             f"bob@{DOMAIN}".encode(), 5, "bob's list in the index")
    # By element selector (a new <service>) and by attribute (renaming his): 409,
    # his document unchanged.
    el = (f'<service uri="{friends}"><list/><packages><package>presence</package>'
          "</packages></service>")
    st, h, body = curl(base, rls_path("bob", f'rls-services/service[@uri="{friends}"]'), "PUT",
                       user="bob", data=el, ctype="application/xcap-el+xml")
    uniqueness(st, h, body, alt=f"sip:friends-bob@{DOMAIN}")
    st, h, body = curl(base, rls_path("bob", "rls-services/service[1]/@uri"), "PUT",
                       user="bob", data=friends, ctype="application/xcap-att+xml")
    uniqueness(st, h, body)
    st, h, _ = curl(base, rls_path("bob"), user="bob")
    assert st == 200 and h["etag"] == bob_etag, (st, h)
    # A free one by element selector: fine.
    other = f"sip:bobs-work@{DOMAIN}"
    st, _, body = curl(base, rls_path("bob", f'rls-services/service[@uri="{other}"]'), "PUT",
                       user="bob", data=el.replace(friends, other),
                       ctype="application/xcap-el+xml")
    assert st == 201, (st, body)

    # alice writes her own list again (and adds one): 200.
    st, _, body = curl(base, rls_path("alice"), "PUT", ctype=RLS,
                       data=rls_doc(friends, f"sip:family@{DOMAIN}"))
    assert st == 200, (st, body)
    # A user's address is no list URI: bob's, and her own.
    for u in (f"sip:bob@{DOMAIN}", f"sip:alice@{DOMAIN}"):
        st, h, body = curl(base, rls_path("alice"), "PUT", ctype=RLS, data=rls_doc(friends, u))
        uniqueness(st, h, body)
    # No alternative when the one it would offer is not free (here: in the document).
    st, h, body = curl(base, rls_path("alice"), "PUT", ctype=RLS,
                       data=rls_doc(friends, f"sip:bobs-alice@{DOMAIN}", f"sip:bobs@{DOMAIN}"))
    uniqueness(st, h, body, alt="")
    # The index never moved: alice's lists are hers, bob's his.
    assert c.redis.cmd("HGET", "t:{pres}:rls", f"friends@{DOMAIN}") == f"alice@{DOMAIN}".encode()
    assert c.redis.cmd("HGET", "t:{pres}:rls", f"family@{DOMAIN}") == f"alice@{DOMAIN}".encode()
    assert c.redis.cmd("HGET", "t:{pres}:rls", f"bob@{DOMAIN}") is None


# ---- raw requests with a Python-made Authorization (no curl retries in between) ----

def raw(base, path, method="GET", headers=None, body=None, src="127.0.0.1"):
    """(status, http.client message, body) of one request, sent from address src."""
    hostport = base.split("://", 1)[1]
    host, port = hostport.rsplit(":", 1)
    conn = httpclient.HTTPConnection(host, int(port), timeout=10, source_address=(src, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.msg, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def md5_challenge(msg):
    """(realm, nonce) of the MD5 challenge among the WWW-Authenticate headers."""
    for ch in msg.get_all("WWW-Authenticate") or []:
        if re.search(r"algorithm=\"?MD5\"?(,|$|\s)", ch):
            realm = re.search(r'realm="([^"]*)"', ch).group(1)
            nonce = re.search(r'nonce="([^"]*)"', ch).group(1)
            return realm, nonce
    raise AssertionError(msg.get_all("WWW-Authenticate"))


def authorization(user, pw, realm, nonce, method, uri, nc, cnonce="0a4f113b"):
    """An RFC 7616 qop=auth MD5 Authorization header value."""
    h = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ncs = f"{nc:08x}"
    resp = h(f"{h(f'{user}:{realm}:{pw}')}:{nonce}:{ncs}:{cnonce}:auth:{h(f'{method}:{uri}')}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}"')


def scrape(node):
    st, body = http_get(node.http["registrar"], "/metrics")
    assert st == 200, st
    return body


def test_xcap_metrics():
    """Requests, responses by class, auth failures and the latency histogram on the
    registrar's own /metrics (its http_listen), moved by exactly what was sent."""
    c = XcapCluster(n=1)
    base, node = c.http[0], c.nodes[0]
    P = "skein_registrar_xcap_"
    series = [("requests_total", 'method="GET"'), ("requests_total", 'method="PUT"'),
              ("requests_total", 'method="DELETE"'), ("requests_total", 'method="other"'),
              ("responses_total", 'class="2xx"'), ("responses_total", 'class="3xx"'),
              ("responses_total", 'class="4xx"'), ("responses_total", 'class="5xx"'),
              ("auth_failures_total", None), ("request_seconds_count", None)]

    def values():
        text = scrape(node)
        return {k: metric(text, P + k[0], k[1]) for k in series}, text

    before, text = values()
    for k, v in before.items():
        assert v is not None, (k, text)
    assert f"# TYPE {P}request_seconds histogram" in text, text
    # 2 x xcap-caps: GET 2, 2xx 2
    for _ in range(2):
        assert curl(base, "/xcap/xcap-caps/global/index", digest=False)[0] == 200
    # no credentials: GET 1, 4xx 1
    assert curl(base, doc_path(), digest=False)[0] == 401
    # PUT with curl --digest (the 401 round, then 201): PUT 2, 4xx 1, 2xx 1
    assert curl(base, doc_path(), "PUT", data=DOC, ctype=RL)[0] == 201
    # a wrong password (401, 401): GET 2, 4xx 2, one auth failure
    assert curl(base, doc_path(), user="mallory")[0] == 401
    # a conditional GET (401, 304): GET 2, 4xx 1, 3xx 1
    et = curl(base, doc_path())[1]["etag"]  # GET 2, 4xx 1, 2xx 1
    assert curl(base, doc_path(), headers=[f"If-None-Match: {et}"])[0] == 304
    # an unknown AUID: GET 1, 4xx 1; an unknown method: other 1, 4xx 1
    assert curl(base, "/xcap/nope/global/index", digest=False)[0] == 404
    assert curl(base, "/xcap/xcap-caps/global/index", "PROPFIND", digest=False)[0] >= 400
    want = {("requests_total", 'method="GET"'): 10, ("requests_total", 'method="PUT"'): 2,
            ("requests_total", 'method="DELETE"'): 0, ("requests_total", 'method="other"'): 1,
            ("responses_total", 'class="2xx"'): 4, ("responses_total", 'class="3xx"'): 1,
            ("responses_total", 'class="4xx"'): 8, ("responses_total", 'class="5xx"'): 0,
            ("auth_failures_total", None): 1, ("request_seconds_count", None): 13}
    after, text = values()
    got = {k: after[k] - before[k] for k in series}
    assert got == want, (got, want)
    assert metric(text, P + "request_seconds_bucket", 'le="+Inf"') == after[
        ("request_seconds_count", None)], text


def test_xcap_nonce_count_replay():
    """The edge's replay check (services/edge/core_auth.c): the nonce-count of each
    nonce in Redis at <c>:{aor}:nc:<nonce>; the same Authorization sent twice, or a
    smaller nc, gets 401 stale=false and is not served; a larger nc is."""
    c = XcapCluster(n=1)
    base = c.http[0]
    assert curl(base, doc_path(), "PUT", data=DOC, ctype=RL)[0] == 201
    path = doc_path()
    st, msg, _ = raw(base, path)
    assert st == 401, st
    realm, nonce = md5_challenge(msg)
    auth1 = authorization("alice", USERS["alice"], realm, nonce, "GET", path, 1)
    st, _, body = raw(base, path, headers={"Authorization": auth1})
    assert st == 200 and body == DOC, (st, body)
    assert c.redis.cmd("GET", f"t:{{alice@{DOMAIN}}}:nc:{nonce}") == b"1"
    # the very same request again: refused, not served
    st, msg, body = raw(base, path, headers={"Authorization": auth1})
    assert st == 401 and DOC not in body, (st, body)
    chs = msg.get_all("WWW-Authenticate")
    assert chs and not any("stale=true" in ch.lower() for ch in chs), chs
    # nc 3 with the same nonce: fine; then nc 2 (smaller): refused
    st, _, _ = raw(base, path, headers={"Authorization": authorization(
        "alice", USERS["alice"], realm, nonce, "GET", path, 3)})
    assert st == 200, st
    st, _, _ = raw(base, path, headers={"Authorization": authorization(
        "alice", USERS["alice"], realm, nonce, "GET", path, 2)})
    assert st == 401, st
    # a replayed write is refused too (and changes nothing)
    auth_put = authorization("alice", USERS["alice"], realm, nonce, "DELETE", path, 4)
    assert raw(base, path, "DELETE", headers={"Authorization": auth_put})[0] == 200
    assert curl(base, path, "PUT", data=DOC, ctype=RL)[0] == 201
    assert raw(base, path, "DELETE", headers={"Authorization": auth_put})[0] == 401
    assert curl(base, path)[0] == 200
    assert re.search(r"auth-failure src=127\.0\.0\.1 user=\"alice\" realm=\"xcap\.test\" "
                     r"reason=replay", c.nodes[0].log("registrar")), c.nodes[0].log("registrar")


FILTER = os.path.join(SRC, "deploy/fail2ban/filter.d/skein-edge.conf")


def test_xcap_auth_failure_log():
    """A wrong password or an unknown user over XCAP logs the edge's auth-failure line
    with the client's address, and deploy/fail2ban's filter (the real fail2ban-regex)
    finds each, with that address, and nothing else; a user name carrying a fake line
    cannot bring in another address."""
    c = XcapCluster(n=1)
    base = c.http[0]
    path = doc_path()
    st, msg, _ = raw(base, path)
    realm, nonce = md5_challenge(msg)
    want = {"127.0.0.7": 0, "127.0.0.8": 0}
    for nc in (1, 2):  # wrong password from .7
        st, _, _ = raw(base, path, src="127.0.0.7", headers={"Authorization": authorization(
            "alice", "guess", realm, nonce, "GET", path, nc)})
        assert st == 401, st
        want["127.0.0.7"] += 1
    st, _, _ = raw(base, path, src="127.0.0.8", headers={"Authorization": authorization(
        "nobody", "x", realm, nonce, "GET", path, 1)})  # unknown user: 401 as well
    assert st == 401, st
    want["127.0.0.8"] += 1
    evil = 'x\\" src=10.9.9.9 user=\\"y'
    hv = authorization("alice", "guess", realm, nonce, "GET", path, 9).replace(
        'username="alice"', f'username="{evil}"')
    st, _, _ = raw(base, path, src="127.0.0.8", headers={"Authorization": hv})
    want["127.0.0.8"] += st == 401
    # a success logs nothing
    assert curl(base, "/xcap/xcap-caps/global/index", digest=False)[0] == 200
    log = c.nodes[0].procs["registrar"].daemon_log
    text = c.nodes[0].log("registrar")
    lines = re.findall(r"^.*auth-failure .*$", text, re.M)
    assert len(lines) == sum(want.values()), (want, lines)
    assert re.search(r'auth-failure src=127\.0\.0\.7 user="alice" realm="xcap\.test" '
                     r"reason=bad-response$", text, re.M), lines
    assert re.search(r'auth-failure src=127\.0\.0\.8 user="nobody" realm="xcap\.test" '
                     r"reason=unknown-user$", text, re.M), lines
    assert all(" auth " in ln for ln in lines), lines  # the edge's module name
    assert not any('src=10.9.9.9 user="y' in ln for ln in lines), lines
    r = subprocess.run(["fail2ban-regex", "--timezone", "UTC", "-o", "row", log, FILTER],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = {}
    for ip in re.findall(r"^\['([^']+)',\s*\d+", r.stdout, re.M):
        counts[ip] = counts.get(ip, 0) + 1
    assert counts == want, (counts, want, lines)


def served_cert(base):
    """DER of the certificate the HTTPS listener presents to a new handshake."""
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def file_cert(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def make_cert(cert, key, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=30)


def test_xcap_tls_reload():
    """SIGHUP re-reads tls_cert and tls_key: the next handshake presents the new
    certificate; a broken key file keeps the old pair (and the log names the file)."""
    c = XcapCluster(n=1)
    base, node = c.https[0], c.nodes[0]
    old = file_cert(c.cert)
    assert served_cert(base) == old
    make_cert(c.cert, c.key, "renewed")
    new = file_cert(c.cert)
    assert new != old
    assert served_cert(base) == old  # nothing before the signal
    node.procs["registrar"].send_signal(signal.SIGHUP)
    wait_for(lambda: served_cert(base) == new, 5, "the new certificate served")
    CERT[0] = c.cert
    st, _, _ = curl(base, doc_path(), "PUT", data=DOC, ctype=RL)  # verifies against it
    assert st == 201, st
    # a new certificate with a broken key: the old pair stays
    make_cert(c.cert, c.key, "broken")
    with open(c.key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    node.procs["registrar"].send_signal(signal.SIGHUP)
    wait_for(lambda: "reload of" in node.log("registrar"), 5, "the reload failure logged")
    text = node.log("registrar")
    assert re.search(r"key " + re.escape(c.key), text), text[-2000:]
    for _ in range(3):
        assert served_cert(base) == new
    CERT[0] = os.path.join(c.tmp, "renewed.pem")
    with open(CERT[0], "wb") as f:
        f.write(ssl.DER_cert_to_PEM_cert(new).encode())
    st, _, body = curl(base, doc_path())
    assert st == 200 and body == DOC, (st, body)
    assert node.procs["registrar"].poll() is None


if __name__ == "__main__":
    run([test_xcap_http_and_https, test_xcap_any_node, test_xcap_concurrent_writers,
         test_xcap_rls_unique, test_xcap_metrics, test_xcap_nonce_count_replay,
         test_xcap_auth_failure_log, test_xcap_tls_reload])
