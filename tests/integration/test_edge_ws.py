#!/usr/bin/env python3
"""SIP over WebSocket at a running edge (RFC 7118, RFC 6455): bad input gets the
answer the RFCs give — plain HTTP 426, a wrong subprotocol 400, an unmasked client
frame, garbage after the upgrade and an oversize frame the close codes 1002/1002/1009
— while a well-behaved client on the same listener keeps registering."""
import base64
import hashlib
import os
import socket
import struct

from skeinlib import run
from sipcluster import DOMAIN, Cluster, free_udp_tcp_port

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def connect(port, proto="sip", upgrade=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET / HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                  "Sec-WebSocket-Version: 13"]
        if proto:
            lines.append(f"Sec-WebSocket-Protocol: {proto}")
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    if status == 101:
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert f"Sec-WebSocket-Accept: {want}".encode() in head, head
        assert b"Sec-WebSocket-Protocol: sip" in head, head
    return s, status


def frame(payload, opcode=1, mask=True, length=None):
    n = len(payload) if length is None else length
    hdr = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr += bytes([mbit | n])
    elif n < 65536:
        hdr += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        hdr += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    """(opcode, payload) of the next server frame (never masked)."""
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise ConnectionError("closed")
            b += c
        return b
    b0, b1 = exact(2)
    assert not b1 & 0x80, "server frames are not masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    return b0 & 0x0F, exact(n)


def close_code(s):
    op, payload = read_frame(s)
    assert op == 8, (op, payload)
    return struct.unpack("!H", payload[:2])[0]


def register_over(s, port, n):
    msg = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
           f"Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK-ws-{n}\r\nMax-Forwards: 70\r\n"
           f"From: <sip:alice@{DOMAIN}>;tag=w{n}\r\nTo: <sip:alice@{DOMAIN}>\r\n"
           f"Call-ID: ws-{n}@abc.invalid\r\nCSeq: {n} REGISTER\r\n"
           f"Contact: <sip:a@abc.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n")
    s.sendall(frame(msg.encode()))
    op, payload = read_frame(s)
    assert op == 1 and payload.startswith(b"SIP/2.0 401"), payload[:80]


def test_ws_bad_input_answers_and_keeps_serving():
    ws = free_udp_tcp_port()
    c = Cluster(1, users=(("alice", "alice-pw"),), edge_extra={"listen_ws": f"127.0.0.1:{ws}"})
    good, st = connect(ws)
    assert st == 101
    register_over(good, ws, 1)

    s, st = connect(ws, upgrade=False)       # plain HTTP: 426 Upgrade Required
    assert st == 426, st
    s.close()
    s, st = connect(ws, proto="chat")         # no "sip" subprotocol (RFC 7118 §4.1)
    assert st == 400, st
    s.close()
    register_over(good, ws, 2)

    for bad, code in ((frame(b"OPTIONS", mask=False), 1002),         # unmasked
                      (b"\xff\xff\xff\xff garbage", 1002),           # reserved bits
                      (frame(b"x" * 16, length=1 << 20)[:40], 1009)):  # 1 MiB frame
        s, st = connect(ws)
        assert st == 101
        s.sendall(bad)
        assert close_code(s) == code, code
        s.close()
        register_over(good, ws, 3 + code)
    good.close()


if __name__ == "__main__":
    run([test_ws_bad_input_answers_and_keeps_serving])
