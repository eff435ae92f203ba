"""A Skein cluster for SIP tests: one redis-server, N nodes each running skein-edge and
skein-registrar on free loopback ports, a provisioned domain and users, and a raw SIP
client over UDP/TCP for byte-level checks. Built on skeinlib (bounded waits, cleanup
by PID)."""
import hashlib
import os
import re
import socket
import time

import sipplib
from skeinlib import Node, Redis, skeinctl, tmpdir, wait_for

DOMAIN = "skein.test"
SECRET = "integration-nonce-secret-0123456789"


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1, outside the kernel's ephemeral
    range (sipplib.free_ports: 15000-19999, probed, never handed out twice): a port
    from the ephemeral range can be taken by some process's outgoing connection
    between the probe and the edge's bind ("address already in use")."""
    return sipplib.free_ports(1)[0]


class Cluster:
    """n nodes "n1".."nN", each with an edge (UDP+TCP on one port) and a registrar."""

    def __init__(self, n=1, edge_extra=None, users=(("alice", "alicepw"), ("bob", "bobpw")),
                 edge_per_node=None, registrar_extra=None):
        """edge_extra: [edge] keys for every edge; edge_per_node: a function of the
        node index giving keys for that edge only (e.g. its own WebSocket port).
        registrar_extra: [registrar] keys merged over the defaults, a dict for every
        registrar or a function of the node index giving that registrar's dict (e.g.
        its own xcap_listen port); None keeps the defaults."""
        self.users = dict(users)
        self.tmp = tmpdir()
        self.redis = Redis(self.tmp)
        self.redis.start()
        self.nodes = []
        self.sip = []
        for i in range(n):
            port = free_udp_tcp_port()
            extra = {"listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                     "auth_secret": SECRET, "t1": "100ms", "registrar_deadline": "2s",
                     # never the machine's resolver: a closed loopback port fails fast
                     "dns_nameserver": "127.0.0.1:9", "dns_deadline": "2s",
                     # the test clients and sipp loads come from 127.0.0.1, like a
                     # trunk: never rate-limited nor banned. Tests of the guard
                     # send from 127.0.0.2 and up.
                     "trusted_networks": "127.0.0.1/32"}
            extra.update(edge_extra or {})
            extra.update(edge_per_node(i) if edge_per_node else {})
            reg = {"count_interval": "1s"}
            if registrar_extra is not None:
                reg.update(registrar_extra(i) if callable(registrar_extra) else registrar_extra)
            node = Node(self.tmp, self.redis, f"n{i + 1}", roles=("edge", "registrar"),
                        extra="drain_timeout = 2s\nnode_timeout = 3s",
                        role_extra={"edge": extra, "registrar": reg})
            self.nodes.append(node)
            self.sip.append(port)
        for node in self.nodes:
            node.start("registrar")
            node.start("edge")
        self.ctl("domain", "add", DOMAIN)
        for user, pw in users:
            self.ctl("user", "add", f"{user}@{DOMAIN}", "--password", pw)
        # The edges refresh the domain list every second: wait until each serves it.
        for port in self.sip:
            wait_for(lambda p=port: options(p, f"sip:{DOMAIN}") == 200, 10,
                     f"edge on {port} serving {DOMAIN}")

    def addr(self, i):
        return f"127.0.0.1:{self.sip[i]}"

    def ctl(self, *args):
        rc, out, err = skeinctl(self.nodes[0].conf, *args)
        if rc != 0:
            raise AssertionError(f"skeinctl {' '.join(args)}: exit {rc}: {err}")
        return out

    def log(self, i, role="edge"):
        return self.nodes[i].log(role)


def options(port, ruri, timeout=1.0):
    """Status of an OPTIONS to ruri sent to 127.0.0.1:port over UDP, 0 on no answer."""
    c = RawSip()
    try:
        c.send(port, request("OPTIONS", ruri, c.port))
        r = c.recv_final(timeout)
        return r.status if r else 0
    finally:
        c.close()


class Msg:
    def __init__(self, data):
        self.raw = data
        text = data.decode("utf-8", "replace")
        head = text.split("\r\n\r\n", 1)[0]
        lines = head.split("\r\n")
        self.start = lines[0]
        self.status = int(lines[0].split()[1]) if lines[0].startswith("SIP/2.0 ") else 0
        self.headers = []
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                self.headers.append((k.strip().lower(), v.strip()))

    def hdr(self, name):
        return [v for k, v in self.headers if k == name.lower()]


class RawSip:
    """A UDP socket on 127.0.0.1 (or another loopback address: ip) sending raw bytes
    and reading responses."""

    def __init__(self, ip="127.0.0.1"):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((ip, 0))
        self.port = self.s.getsockname()[1]

    def send(self, port, data):
        self.s.sendto(data if isinstance(data, bytes) else data.encode(), ("127.0.0.1", port))

    def recv(self, timeout):
        self.s.settimeout(timeout)
        try:
            return Msg(self.s.recv(65535))
        except socket.timeout:
            return None

    def recv_final(self, timeout):
        """The first final response within timeout (provisionals skipped)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            m = self.recv(left)
            if m is None:
                return None
            if m.status >= 200:
                return m

    def close(self):
        self.s.close()


_seq = [0]


def request(method, ruri, port, extra="", body="", to=None, frm=None, call_id=None,
            branch=None, cseq=1):
    _seq[0] += 1
    n = _seq[0]
    to = to or f"<{ruri}>"
    frm = frm or f"<sip:probe@127.0.0.1:{port}>;tag=t{n}"
    return (f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch or f'z9hG4bK-probe-{n}-{time.monotonic_ns()}'};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {frm}\r\nTo: {to}\r\n"
            f"Call-ID: {call_id or f'probe-{n}-{os.getpid()}'}\r\nCSeq: {cseq} {method}\r\n"
            f"{extra}Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()


def status_codes(text):
    return [int(m) for m in re.findall(r"^SIP/2\.0 (\d{3})", text, re.M)]


def _challenge(hdr):
    """Parameters of a Digest challenge header value."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', hdr.split(" ", 1)[1]))
    return params


def authorization(challenges, method, uri, user, password, alg="MD5", proxy=False,
                  cnonce="0a4f113b", nc="00000001"):
    """The Authorization (or Proxy-Authorization) line answering the challenge of
    algorithm alg among `challenges` (RFC 7616 §3.4, qop=auth)."""
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg]
    ch = next(_challenge(x) for x in challenges if _challenge(x).get("algorithm") == alg)
    ha1 = h(f"{user}:{ch['realm']}:{password}".encode()).hexdigest()
    ha2 = h(f"{method}:{uri}".encode()).hexdigest()
    resp = h(f"{ha1}:{ch['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'{"Proxy-Authorization" if proxy else "Authorization"}: Digest username="{user}", '
            f'realm="{ch["realm"]}", nonce="{ch["nonce"]}", uri="{uri}", response="{resp}", '
            f'algorithm={alg}, qop=auth, nc={nc}, cnonce="{cnonce}"\r\n')


def digest_register(port, user, password, contact, *, domain=None, expires=3600, alg="SHA-256",
                    call_id=None, cseq=1, extra_headers="", wait_s=0.0, replay=False,
                    ip="127.0.0.1"):
    """REGISTER user@domain with `contact` (a full Contact value, e.g.
    '<sip:u@127.0.0.1:5070>;q=0.5') through 127.0.0.1:port, answering the 401 with the
    challenge of algorithm `alg` (RFC 7616 digest, qop=auth). Returns (final Msg, the
    challenge headers seen). extra_headers go into both REGISTERs; wait_s passes
    between the challenge and the answer (to let a nonce age); replay=True sends the
    authenticated REGISTER a second time, same nonce and nonce-count, and returns
    the answer to that copy. ip: the loopback source address."""
    domain = domain or DOMAIN
    c = RawSip(ip)
    try:
        call_id = call_id or f"reg-{user}-{time.monotonic_ns()}"
        base = dict(to=f"<sip:{user}@{domain}>", frm=f"<sip:{user}@{domain}>;tag=r{cseq}",
                    call_id=call_id)
        extra = f"Contact: {contact}\r\nExpires: {expires}\r\n" + extra_headers
        c.send(port, request("REGISTER", f"sip:{domain}", c.port, extra=extra, cseq=cseq, **base))
        r = c.recv_final(3)
        if r is None or r.status != 401:
            return r, []
        chals = r.hdr("www-authenticate")
        auth = authorization(chals, "REGISTER", f"sip:{domain}", user, password, alg)
        if wait_s:
            time.sleep(wait_s)  # a nonce ages by the clock: nothing to poll for
        c.send(port, request("REGISTER", f"sip:{domain}", c.port, extra=extra + auth,
                             cseq=cseq + 1, **base))
        r = c.recv_final(3)
        if replay:
            c.send(port, request("REGISTER", f"sip:{domain}", c.port, extra=extra + auth,
                                 cseq=cseq + 2, **base))
            r = c.recv_final(3)
        return r, chals
    finally:
        c.close()


def digest_request(port, method, ruri, user, password, *, domain=None, extra="", body="",
                   alg="MD5", ctype="text/plain", ip="127.0.0.1"):
    """An out-of-dialog request from user@domain through 127.0.0.1:port, answering a
    407 (or 401) challenge of algorithm `alg` once. Returns the final Msg (or None).
    ip: the loopback source address."""
    domain = domain or DOMAIN
    c = RawSip(ip)
    try:
        call_id = f"{method.lower()}-{user}-{time.monotonic_ns()}"
        base = dict(frm=f"<sip:{user}@{domain}>;tag=d1", call_id=call_id)
        hdrs = extra + (f"Content-Type: {ctype}\r\n" if body else "")
        c.send(port, request(method, ruri, c.port, extra=hdrs, body=body, cseq=1, **base))
        r = c.recv_final(5)
        if r is None or r.status not in (401, 407):
            return r
        proxy = r.status == 407
        auth = authorization(r.hdr("proxy-authenticate" if proxy else "www-authenticate"),
                             method, ruri, user, password, alg, proxy=proxy)
        c.send(port, request(method, ruri, c.port, extra=hdrs + auth, body=body, cseq=2, **base))
        return c.recv_final(15)
    finally:
        c.close()
