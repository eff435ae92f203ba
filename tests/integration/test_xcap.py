"""XCAP (RFC 4825) on skein-registrar, driven with real curl over HTTP and HTTPS: a
whole resource-lists document, one <entry> by element selector, an attribute; a stale
ETag gets 412; malformed XML and a duplicate entry get 409 with an xcap-error body;
another user's document gets 403, no credentials 401; a document written through one
registrar is read through the other (the documents live in Redis). rls-services
service URIs are unique across every user's documents (RFC 4826 §4.4.3): another
owner's list URI, or a user's address, gets 409 <uniqueness-failure> with an
<alt-value>."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xml.etree.ElementTree as ET

from skeinlib import Node, Redis, free_port, run, skeinctl, tmpdir, wait_for  # noqa: E402

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


if __name__ == "__main__":
    run([test_xcap_http_and_https, test_xcap_any_node, test_xcap_concurrent_writers,
         test_xcap_rls_unique])
