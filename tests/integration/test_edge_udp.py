#!/usr/bin/env python3
"""The UDP listener reads with recvmmsg (tp_udp.c): what queued up while the edge was
not reading comes in batches of up to 16 datagrams per system call. A burst queued
while the edge is stopped (SIGSTOP) — 40 OPTIONS of sizes from 300 bytes to 62 KB,
a STUN Binding request and a CRLF keep-alive among them — is answered completely
once it runs again: every OPTIONS once, with its own Call-ID, and the STUN request
with its transaction id."""
import os
import signal
import socket
import struct

from skeinlib import http, metric, run
from sipcluster import Cluster, Msg, request


def stun_request(tid):
    return struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid


def test_burst_read_in_batches():
    c = Cluster(1)
    port = c.sip[0]
    edge = c.nodes[0].procs["edge"]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", 0))
    me = s.getsockname()[1]
    sizes = [300, 62000, 1200, 8000, 300, 30000] * 6 + [300] * 4
    want = {}
    tid = os.urandom(12)
    edge.send_signal(signal.SIGSTOP)
    try:
        for i, size in enumerate(sizes):
            call_id = f"burst-{i}-{os.getpid()}"
            pad = "X-Pad: " + "p" * max(0, size - 300) + "\r\n"
            data = request("OPTIONS", "sip:skein.test", me, call_id=call_id, extra=pad)
            want[call_id] = len(data)
            s.sendto(data, ("127.0.0.1", port))
            if i == 10:
                s.sendto(stun_request(tid), ("127.0.0.1", port))
            if i == 20:
                s.sendto(b"\r\n\r\n", ("127.0.0.1", port))
    finally:
        edge.send_signal(signal.SIGCONT)
    assert max(want.values()) > 60000, "one datagram near the 64 KiB slice"
    got, stun = {}, 0
    s.settimeout(5)
    while len(got) < len(want) or not stun:
        try:
            data = s.recv(65535)
        except socket.timeout:
            break
        if data[:2] == b"\x01\x01":  # STUN Binding success
            assert data[8:20] == tid, data
            stun += 1
            continue
        m = Msg(data)
        cid = (m.hdr("call-id") or [""])[0]
        if m.status >= 200:
            got[cid] = got.get(cid, 0) + 1
    s.close()
    missing = sorted(set(want) - set(got))
    assert not missing, f"{len(missing)} of {len(want)} unanswered: {missing[:5]}"
    assert all(n == 1 for n in got.values()), got
    assert stun == 1, stun
    text = http(c.nodes[0].http["edge"], "/metrics")[1]
    assert (metric(text, "skein_edge_rx_dropped_total") or 0) == 0, "nothing dropped"


if __name__ == "__main__":
    run([test_burst_read_in_batches])
