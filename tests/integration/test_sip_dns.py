#!/usr/bin/env python3
"""RFC 3263 at the edge: an authenticated local caller's request for another domain
is located through a real DNS server (dnsmasq on loopback, the edge pointed at it
with dns_nameserver): NAPTR says TCP first, then UDP; the TCP SRV target refuses
the connection, so the edge moves to the next target (§4.3) and the MESSAGE reaches
the UDP one. A domain without records gets 404, and nobody else may relay (403)."""
import os
import socket
import subprocess

from sipplib import SippServer, free_ports
from skeinlib import _procs, http, metric, run, tmpdir, wait_for
from sipcluster import Cluster, digest_request

USERS = (("alice", "alice-pw"),)
DNSMASQ = "/usr/sbin/dnsmasq"


def dns_probe(port):
    q = bytes.fromhex("abcd01000001000000000000") + b"\x03far\x04test\x00\x00\x23\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(q, ("127.0.0.1", port))
        try:
            return s.recv(512)[:2] == q[:2]
        except socket.timeout:
            return False


def start_dnsmasq(tmp, zone):
    conf = os.path.join(tmp, "zone.conf")
    with open(conf, "w") as f:
        f.write(zone)
    port = free_ports(1)[0]
    p = subprocess.Popen([DNSMASQ, "--keep-in-foreground", f"--conf-file={conf}",
                          f"--port={port}", "--listen-address=127.0.0.1", "--pid-file=",
                          "--log-queries", f"--log-facility={tmp}/dnsmasq.log", "--user=root"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _procs.append(p)
    wait_for(lambda: dns_probe(port), 5, "dnsmasq answering")
    return port


def test_message_to_other_domain_via_naptr_srv_failover():
    tmp = tmpdir()
    uas = SippServer("msg_uas.xml", workdir=tmp, domain="far.test").start()
    uas_port = int(uas.addr.split(":")[1])
    dead_port = free_ports(1)[0]  # nobody listens on TCP there: connection refused
    zone = ("no-resolv\nno-hosts\nno-poll\nbind-interfaces\nlocal=/far.test/\n"
            "host-record=uas.far.test,127.0.0.1\nhost-record=dead.far.test,127.0.0.1\n"
            'naptr-record=far.test,10,50,"s","SIP+D2T","","_sip._tcp.far.test"\n'
            'naptr-record=far.test,20,50,"s","SIP+D2U","","_sip._udp.far.test"\n'
            f"srv-host=_sip._tcp.far.test,dead.far.test,{dead_port},10,0\n"
            f"srv-host=_sip._udp.far.test,uas.far.test,{uas_port},10,0\n")
    dns = start_dnsmasq(tmp, zone)
    c = Cluster(1, users=USERS, edge_extra={"dns_nameserver": f"127.0.0.1:{dns}"})
    port = c.sip[0]

    r = digest_request(port, "MESSAGE", "sip:inbox@far.test", "alice", "alice-pw",
                       body="hello far away", alg="SHA-256")
    assert r is not None and r.status == 200, r and r.start
    uas.wait_received("MESSAGE")
    # two branches: the refused TCP target, then the UDP one
    fwd = metric(http(c.nodes[0].http["edge"], "/metrics")[1], "skein_edge_forwarded_total")
    assert fwd == 2, fwd
    with open(f"{tmp}/dnsmasq.log") as f:
        log = f.read()
    assert "NAPTR" in log and "_sip._tcp.far.test" in log, log[-2000:]

    r = digest_request(port, "MESSAGE", "sip:inbox@nowhere.far.test", "alice", "alice-pw",
                       body="x")
    assert r is not None and r.status == 404, r and r.start
    # an unauthenticated caller from elsewhere may not relay through the edge
    from sipcluster import RawSip, request
    cli = RawSip()
    cli.send(port, request("MESSAGE", "sip:inbox@far.test", cli.port,
                           frm="<sip:x@198.51.100.1>;tag=z"))
    r = cli.recv_final(3)
    cli.close()
    assert r is not None and r.status == 403, r and r.start
    uas.stop()


if __name__ == "__main__":
    run([test_message_to_other_domain_via_naptr_srv_failover])
