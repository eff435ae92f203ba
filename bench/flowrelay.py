#!/usr/bin/env python3
"""A TCP flow for a sipp UAS: registers a user over one TCP connection to an edge and keeps
that connection open, then splices bytes both ways between it and one TCP connection to a
local sipp UAS (sipp cannot REGISTER and then serve INVITEs on the same connection).

The edge records the binding's flow (this connection, held by that edge): requests for the
user entering any other edge are handed over the bus to this edge and sent down the
connection (docs/edge.md, Routing). sipp over TCP answers on the connection a request came
on, so the UAS's responses go back up the same flow.

  flowrelay.py --edge 127.0.0.1:5060 --uas 127.0.0.1:15070 --user uas --password PW
               [--domain skein.test] [--expires 3600]

Prints "registered <local port>" on stdout once the REGISTER got its 200 (after a 401 and an
MD5 qop=auth Authorization), then relays until either side closes or SIGTERM/SIGINT.
Double-CRLF keep-alive pings from the edge are answered with a single CRLF (not
forwarded). Python 3 stdlib only; one thread, selectors."""
import argparse
import hashlib
import os
import re
import selectors
import signal
import socket
import sys
import time


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def read_msg(sock, buf):
    """One SIP message (headers + Content-Length body) from a blocking socket; returns
    (message bytes, rest of the buffer)."""
    while True:
        while buf.startswith(b"\r\n"):  # keep-alive CRLFs between messages
            buf = buf[2:]
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            m = re.search(rb"^(?:Content-Length|l)\s*:\s*(\d+)", buf[:i], re.M | re.I)
            end = i + 4 + (int(m.group(1)) if m else 0)
            if len(buf) >= end:
                return buf[:end], buf[end:]
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("edge closed the connection during REGISTER")
        buf += data


def register(sock, user, password, domain, contact, expires, timeout=10.0):
    """REGISTER over sock, answering one 401 with MD5 digest. Returns the final status
    and whatever bytes were read past the final response."""
    lhost, lport = sock.getsockname()
    sock.settimeout(timeout)
    call_id = f"flowrelay-{os.getpid()}-{time.monotonic_ns()}"
    buf = b""
    auth = ""
    for cseq in (1, 2):
        msg = (f"REGISTER sip:{domain} SIP/2.0\r\n"
               f"Via: SIP/2.0/TCP {lhost}:{lport};branch=z9hG4bK-fr-{cseq}-{time.monotonic_ns()};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag=fr{os.getpid()}\r\n"
               f"To: <sip:{user}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
               f"Contact: {contact}\r\nExpires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n")
        sock.sendall(msg.encode())
        while True:
            resp, buf = read_msg(sock, buf)
            status = int(resp.split(b" ", 2)[1]) if resp.startswith(b"SIP/2.0 ") else 0
            if status >= 200:
                break
        if status != 401 or cseq == 2:
            return status, buf
        head = resp.decode("utf-8", "replace")
        chals = re.findall(r"^WWW-Authenticate:\s*Digest\s+(.*)$", head, re.M | re.I)
        ch = None
        for c in chals:
            p = dict(re.findall(r'(\w+)="?([^",\r\n]*)"?', c))
            if p.get("algorithm", "MD5").upper() == "MD5":
                ch = p
                break
        if ch is None:
            raise RuntimeError(f"no MD5 challenge in the 401: {chals}")
        uri = f"sip:{domain}"
        ha1 = hashlib.md5(f"{user}:{ch['realm']}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
        cnonce, nc = "f10a7e1a", "00000001"
        resp_h = hashlib.md5(f"{ha1}:{ch['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        auth = (f'Authorization: Digest username="{user}", realm="{ch["realm"]}", '
                f'nonce="{ch["nonce"]}", uri="{uri}", response="{resp_h}", algorithm=MD5, '
                f'qop=auth, nc={nc}, cnonce="{cnonce}"\r\n')
    return status, buf


def splice(edge, uas, pending_to_uas=b""):
    """Copy bytes both ways until one side closes. Data from the edge that is only a
    double-CRLF ping (between messages) gets a CRLF pong instead of being forwarded."""
    for s in (edge, uas):
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = {edge: bytearray(), uas: bytearray(pending_to_uas)}
    peer = {edge: uas, uas: edge}
    sel = selectors.DefaultSelector()
    sel.register(edge, selectors.EVENT_READ)
    sel.register(uas, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending_to_uas else 0))
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    while not stop:
        try:
            events = sel.select(1.0)
        except InterruptedError:
            continue
        for key, mask in events:
            s = key.fileobj
            if mask & selectors.EVENT_READ:
                try:
                    data = s.recv(262144)
                except (BlockingIOError, InterruptedError):
                    data = None
                except ConnectionError:
                    data = b""
                if data == b"":
                    return "edge closed" if s is edge else "uas closed"
                if data:
                    if s is edge and data == b"\r\n\r\n":
                        out[edge] += b"\r\n"  # RFC 5626 keep-alive pong
                        sel.modify(edge, selectors.EVENT_READ | selectors.EVENT_WRITE)
                    else:
                        d = peer[s]
                        out[d] += data
                        sel.modify(d, selectors.EVENT_READ | selectors.EVENT_WRITE)
            if mask & selectors.EVENT_WRITE and out[s]:
                try:
                    n = s.send(out[s])
                    del out[s][:n]
                except (BlockingIOError, InterruptedError):
                    pass
                except ConnectionError:
                    return "send failed"
                if not out[s]:
                    sel.modify(s, selectors.EVENT_READ)
    return "stopped"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", required=True, help="host:port of the edge's TCP listener")
    ap.add_argument("--uas", required=True, help="host:port of the sipp UAS (-t t1)")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--domain", default="skein.test")
    ap.add_argument("--expires", type=int, default=3600)
    a = ap.parse_args()
    uas = socket.create_connection(hostport(a.uas), timeout=5)
    edge = socket.create_connection(hostport(a.edge), timeout=5)
    uhost, uport = hostport(a.uas)
    contact = f"<sip:{a.user}@{uhost}:{uport};transport=tcp>"
    status, rest = register(edge, a.user, a.password, a.domain, contact, a.expires)
    if status != 200:
        print(f"REGISTER failed: {status}", file=sys.stderr, flush=True)
        return 1
    print(f"registered {edge.getsockname()[1]}", flush=True)
    why = splice(edge, uas, rest)
    print(f"flowrelay: {why}", file=sys.stderr, flush=True)
    edge.close()
    uas.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
