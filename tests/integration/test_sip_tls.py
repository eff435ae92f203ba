#!/usr/bin/env python3
"""SIP over TLS at the edge (a self-signed pair made the way `make run` makes it):
baresip registers over TLS, the binding records its flow; a call from a UDP phone
reaches it down that TLS connection (no new connection: the phone's contact is
not even listening for TLS from us), audio flows, and the edge refuses TLS 1.1."""
import os
import socket
import ssl
import subprocess

import baresiplib
from skeinlib import SRC, free_port, run, tmpdir
from sipcluster import DOMAIN, Cluster

USERS = (("tlsa", "tlsa-pw"), ("udpb", "udpb-pw"))
PW = dict(USERS)


def test_tls_register_and_call_down_the_flow():
    tport = free_port()
    c0 = {"auth_algorithms": "md5", "listen_tls": f"127.0.0.1:{tport}"}
    tls_dir = tmpdir()
    subprocess.run([os.path.join(SRC, "scripts", "local-tls.sh"), tls_dir], check=True)
    c0.update(tls_cert=f"{tls_dir}/edge.crt", tls_key=f"{tls_dir}/edge.key")
    c = Cluster(1, users=USERS, edge_extra=c0)
    a = baresiplib.Baresip(c.tmp, "tlsa", PW["tlsa"], f"127.0.0.1:{tport}", transport="tls",
                           domain=DOMAIN, answer="auto").start()
    b = baresiplib.Baresip(c.tmp, "udpb", PW["udpb"], c.addr(0), transport="udp",
                           domain=DOMAIN).start()
    a.wait_registered()
    b.wait_registered()
    rows = c.ctl("reg", "show", f"tlsa@{DOMAIN}")["bindings"]
    assert len(rows) == 1 and rows[0]["transport"] == "tls" and rows[0]["flow"] not in ("", "0"), rows

    # B (UDP) calls A: the INVITE goes down A's TLS flow; A answers automatically
    b.dial(f"sip:tlsa@{DOMAIN}")
    b.wait_event("CALL_ESTABLISHED")
    a.wait_event("CALL_ESTABLISHED")
    st = b.wait_rtp(rx_min=50, tx_min=50)
    assert st["rx_packets"] >= 50, st
    b.hangup()
    a.wait_event("CALL_CLOSED")
    assert a.stop() == 0 and b.stop() == 0

    # TLS policy: 1.1 is refused, 1.2 with an AEAD forward-secret suite is accepted
    for version, ok in ((ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True)):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = version
        ctx.maximum_version = version
        if version == ssl.TLSVersion.TLSv1_1:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        try:
            with socket.create_connection(("127.0.0.1", tport), timeout=3) as s, \
                    ctx.wrap_socket(s) as t:
                got = (True, t.version(), t.cipher()[0])
        except (ssl.SSLError, ConnectionError, OSError) as e:
            got = (False, str(e), "")
        assert got[0] == ok, (version, got)
        if ok:
            assert "GCM" in got[2] or "CHACHA20" in got[2], got
            assert got[2].startswith("ECDHE"), got


if __name__ == "__main__":
    run([test_tls_register_and_call_down_the_flow])
