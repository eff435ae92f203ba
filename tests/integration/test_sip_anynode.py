#!/usr/bin/env python3
"""Any edge serves any subscriber (issue #4): a baresip phone registered over TCP on
edge 1 is called through edge 2 (the INVITE is handed over the bus and goes down the
phone's TCP connection), and dialogs are not pinned: with Record-Route naming the
cluster (cluster_host), the BYE of a call set up through edge 1 may enter edge 2.
Then edge 1 is killed (-9): once the cluster has noticed, a call to the phone gets
480 at once instead of a 32 s timeout, and after the phone registers through edge 2
calls reach it again."""
import os
import re
import socket
import time

import baresiplib
from skeinlib import http, metric, run, skeinctl, wait_for
from sipcluster import DOMAIN, Cluster, free_udp_tcp_port

USERS = (("tcpbob", "tcpbob-pw"),)
CLUSTER_HOST = "sip.cluster.test"
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n")


class Uac:
    """A caller from another domain (not challenged) that chooses, request by request,
    which edge to send to: what a carrier with several edges in DNS does."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]
        self.media = free_udp_tcp_port()
        self.n = 0

    def send(self, edge_port, text):
        self.s.sendto(text.encode(), ("127.0.0.1", edge_port))

    def final(self, method, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.s.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = self.s.recv(65535).decode(errors="replace")
            except socket.timeout:
                break
            head = data.split("\r\n\r\n", 1)[0]
            m = re.match(r"SIP/2\.0 (\d{3})", head)
            if not m or int(m.group(1)) < 200 or f"Call-ID: {self.call_id}" not in head or \
                    not re.search(rf"^CSeq:\s*\d+ {method}", head, re.M | re.I):
                continue  # provisional, or a retransmission for an earlier call
            return int(m.group(1)), head
        return None, ""

    def invite(self, edge_port, ruri):
        self.n += 1
        self.call_id = f"anynode-{self.n}-{os.getpid()}"
        self.ftag = f"f{self.n}"
        self.branch = f"z9hG4bK-an-{self.n}-{time.monotonic_ns()}"
        body = SDP.format(port=self.media)
        self.send(edge_port,
                  f"INVITE {ruri} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={self.branch};rport\r\n"
                  f"Max-Forwards: 70\r\nFrom: <sip:carrier@198.51.100.20>;tag={self.ftag}\r\n"
                  f"To: <{ruri}>\r\nCall-ID: {self.call_id}\r\nCSeq: 1 INVITE\r\n"
                  f"Contact: <sip:carrier@127.0.0.1:{self.port}>\r\n"
                  f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        code, head = self.final("INVITE")
        if code and code >= 300:
            # the hop-by-hop ACK (§17.1.1.3), so that the edge stops retransmitting
            to = re.search(r"^To:\s*(.*)$", head, re.M | re.I).group(1).strip()
            self.send(edge_port,
                      f"ACK {ruri} SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={self.branch};rport\r\n"
                      f"Max-Forwards: 70\r\nFrom: <sip:carrier@198.51.100.20>;tag={self.ftag}\r\n"
                      f"To: {to}\r\nCall-ID: {self.call_id}\r\nCSeq: 1 ACK\r\n"
                      f"Content-Length: 0\r\n\r\n")
        if code == 200:
            self.to = re.search(r"^To:\s*(.*)$", head, re.M | re.I).group(1).strip()
            self.target = re.search(r"^(?:Contact|m):\s*<([^>]+)>", head, re.M | re.I).group(1)
            rr = ",".join(re.findall(r"^Record-Route:\s*(.*)$", head, re.M | re.I))
            self.routes = [x.strip() for x in rr.split(",") if x.strip()][::-1]
        return code, head

    def in_dialog(self, edge_port, method, cseq):
        route = "".join(f"Route: {r}\r\n" for r in self.routes)
        self.send(edge_port,
                  f"{method} {self.target} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-{method}-{time.monotonic_ns()};rport\r\n"
                  f"Max-Forwards: 70\r\n{route}From: <sip:carrier@198.51.100.20>;tag={self.ftag}\r\n"
                  f"To: {self.to}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                  f"Content-Length: 0\r\n\r\n")


def relayed(c, i, direction):
    return metric(http(c.nodes[i].http["edge"], "/metrics")[1], "skein_edge_relayed_total",
                  f'direction="{direction}"') or 0


def test_tcp_flow_across_edges_and_unpinned_dialogs():
    c = Cluster(2, users=USERS, edge_extra={"auth_algorithms": "md5",
                                            "cluster_host": CLUSTER_HOST})
    bob = baresiplib.Baresip(c.tmp, "tcpbob", "tcpbob-pw", c.addr(0), transport="tcp",
                             domain=DOMAIN, answer="auto").start()
    bob.wait_registered()
    rows = c.ctl("reg", "show", f"tcpbob@{DOMAIN}")["bindings"]
    assert rows[0]["edge"] == "n1/edge" and rows[0]["transport"] == "tcp", rows
    uac = Uac()

    # 1. INVITE through edge 2: handed to edge 1, down bob's TCP connection
    code, head = uac.invite(c.sip[1], f"sip:tcpbob@{DOMAIN}")
    assert code == 200, head
    assert CLUSTER_HOST in ",".join(uac.routes) and "sk-" in ",".join(uac.routes), uac.routes
    assert relayed(c, 1, "out") >= 1 and relayed(c, 0, "in") >= 1
    uac.in_dialog(c.sip[1], "ACK", 1)
    bob.wait_event("CALL_ESTABLISHED")
    # the BYE enters edge 1 this time
    uac.in_dialog(c.sip[0], "BYE", 2)
    code, head = uac.final("BYE")
    assert code == 200, head
    bob.wait_event("CALL_CLOSED")

    # 2. INVITE through edge 1 (bob's own edge), BYE through edge 2: relayed by token
    code, head = uac.invite(c.sip[0], f"sip:tcpbob@{DOMAIN}")
    assert code == 200, head
    uac.in_dialog(c.sip[0], "ACK", 1)
    before = relayed(c, 1, "out")
    since = time.monotonic()
    uac.in_dialog(c.sip[1], "BYE", 2)
    code, head = uac.final("BYE")
    assert code == 200, head
    assert relayed(c, 1, "out") > before
    bob.wait_event("CALL_CLOSED", since=since)

    # 3. kill -9 edge 1, which holds bob's connection
    c.nodes[0].procs["edge"].kill()
    t_kill = time.monotonic()

    def gone():
        rc, out, _ = skeinctl(c.nodes[1].conf, "nodes")
        return rc == 0 and not any(m["id"] == "n1/edge" for m in out)
    wait_for(gone, 10, "n1/edge out of the cluster")
    noticed = time.monotonic() - t_kill
    t0 = time.monotonic()
    code, head = uac.invite(c.sip[1], f"sip:tcpbob@{DOMAIN}")
    took = time.monotonic() - t0
    print(f"  edge 1 out of the cluster {noticed:.2f} s after kill -9; "
          f"call to its flow answered {code} in {took * 1000:.0f} ms")
    assert code == 480 and took < 2.0, (code, took, head)
    bob.stop()

    # 4. the phone registers again, through edge 2: calls reach it
    bob2 = baresiplib.Baresip(c.tmp, "tcpbob", "tcpbob-pw", c.addr(1), transport="tcp",
                              domain=DOMAIN, answer="auto").start()
    bob2.wait_registered()
    rows = c.ctl("reg", "show", f"tcpbob@{DOMAIN}")["bindings"]
    code, head = uac.invite(c.sip[1], f"sip:tcpbob@{DOMAIN}")
    assert code == 200, (head, rows)
    uac.in_dialog(c.sip[1], "ACK", 1)
    uac.in_dialog(c.sip[1], "BYE", 2)
    code, head = uac.final("BYE")
    assert code == 200, head
    assert bob2.stop() == 0


if __name__ == "__main__":
    run([test_tcp_flow_across_edges_and_unpinned_dialogs])
