#!/usr/bin/env python3
"""TLS at a running edge, checked from outside: sslscan (a scanner nobody here wrote)
against the TLS and the WSS listener finds no SSLv2/SSLv3/TLS 1.0/TLS 1.1, and only
forward-secret (ECDHE/DHE, or TLS 1.3) AEAD (GCM, ChaCha20-Poly1305, CCM) suites, no
compression, no renegotiation. Then the certificate files are replaced and the edge
gets SIGHUP: a new handshake sees the new certificate while a TLS connection opened
before still gets its OPTIONS answered; a broken key file on the next SIGHUP keeps
the current certificate and the edge keeps serving."""
import os
import re
import signal
import socket
import ssl
import subprocess
import time

from skeinlib import SRC, free_port, run, tmpdir, wait_for
from sipcluster import DOMAIN, Cluster

AEAD = ("GCM", "CHACHA20", "CCM")


def make_cert(d, name, cn):
    """A self-signed ECDSA P-256 pair d/name.crt, d/name.key (as scripts/local-tls.sh
    makes the local one, with a CN of our choice); returns (crt, key)."""
    crt, key = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    f"/CN={cn}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt, key


def cert_info(crt):
    out = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-serial", "-subject"],
                         check=True, capture_output=True, text=True).stdout
    return " ".join(out.split())


def cert_der(crt):
    with open(crt) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed: the test compares the bytes itself
    return ctx


def served_cert(port):
    """The DER certificate a new handshake with 127.0.0.1:port gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, \
            client_ctx().wrap_socket(s) as t:
        return t.getpeercert(binary_form=True)


def options(t, port, n):
    """An OPTIONS to the edge itself over the TLS socket t; the status line back."""
    ip, lport = t.getsockname()[:2]
    msg = (f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
           f"Via: SIP/2.0/TLS {ip}:{lport};branch=z9hG4bK-tlsp-{n}-{time.monotonic_ns()};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:probe@{DOMAIN}>;tag=p{n}\r\nTo: <sip:{DOMAIN}>\r\n"
           f"Call-ID: tlsp-{n}-{os.getpid()}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n")
    t.sendall(msg.encode())
    t.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = t.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def sslscan(port):
    """sslscan's findings for 127.0.0.1:port: ({protocol: enabled}, [(protocol,
    cipher, extra)], full text)."""
    r = subprocess.run(["sslscan", "--no-colour", "--no-heartbleed", f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=120)
    text = r.stdout
    assert r.returncode == 0, text + r.stderr
    protos = {m.group(1): m.group(2) == "enabled"
              for m in re.finditer(r"^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)", text, re.M)}
    ciphers = [(m.group(2), m.group(3), m.group(4).strip())
               for m in re.finditer(r"^(Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)(.*)$",
                                    text, re.M)]
    return protos, ciphers, text


def check_policy(port, what):
    protos, ciphers, text = sslscan(port)
    for old in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        assert old in protos, f"{what}: sslscan did not report {old}:\n{text}"
        assert not protos[old], f"{what}: {old} enabled:\n{text}"
    assert protos.get("TLSv1.2"), f"{what}: TLS 1.2 not enabled:\n{text}"
    assert ciphers, f"{what}: no cipher accepted?\n{text}"
    for proto, name, extra in ciphers:
        # TLS 1.3 suites are all AEAD with an ephemeral key exchange (RFC 8446 §1.2);
        # before it the name says both.
        fs = proto == "TLSv1.3" or name.startswith(("ECDHE-", "DHE-"))
        aead = any(a in name for a in AEAD)
        assert fs and aead, f"{what}: {proto} {name} is not forward-secret AEAD:\n{text}"
    # Debian's sslscan cannot offer compression ("OpenSSL version does not support
    # compression"): then there is nothing to see; the edge sets SSL_OP_NO_COMPRESSION.
    assert "Compression disabled" in text or "does not support compression" in text, \
        f"{what}:\n{text}"
    assert re.search(r"[Ss]ession renegotiation not supported", text), f"{what}:\n{text}"
    return protos, ciphers


def test_tls_policy_and_reload():
    tport, wport = free_port(), free_port()
    d = tmpdir()
    subprocess.run([os.path.join(SRC, "scripts", "local-tls.sh"), d], check=True)
    crt, key = os.path.join(d, "edge.crt"), os.path.join(d, "edge.key")
    c = Cluster(1, edge_extra={"listen_tls": f"127.0.0.1:{tport}",
                               "listen_wss": f"127.0.0.1:{wport}",
                               "tls_cert": crt, "tls_key": key})
    edge = c.nodes[0].procs["edge"]

    for port, what in ((tport, "tls"), (wport, "wss")):
        protos, ciphers = check_policy(port, what)
        print(f"{what} listener: protocols {sorted(p for p, on in protos.items() if on)}; "
              f"ciphers {sorted(set(n for _, n, _ in ciphers))}", flush=True)

    # A connection opened before the reload, and answered.
    old_der = cert_der(crt)
    assert served_cert(tport) == old_der
    s = socket.create_connection(("127.0.0.1", tport), timeout=5)
    before = client_ctx().wrap_socket(s)
    assert options(before, tport, 1).startswith("SIP/2.0 200 "), "OPTIONS before reload"

    # New files in place (written aside, then renamed over, as a renewal does), SIGHUP.
    new_crt, new_key = make_cert(d, "next", "edge-renewed.skein.test")
    os.replace(new_key, key)
    os.replace(new_crt, crt)
    new_der = cert_der(crt)
    assert new_der != old_der
    t0 = time.monotonic()
    edge.send_signal(signal.SIGHUP)
    wait_for(lambda: served_cert(tport) == new_der, 10, "the TLS listener serving the new cert")
    took = time.monotonic() - t0
    assert served_cert(wport) == new_der, "the WSS listener serves the new certificate"
    assert options(before, tport, 2).startswith("SIP/2.0 200 "), \
        "OPTIONS on the connection opened before the reload"
    print(f"reload: new handshakes see {cert_info(crt)} {took * 1000:.0f} ms after "
          "SIGHUP; the connection opened before still answered", flush=True)

    # A broken key on the next SIGHUP: refused, logged naming the file, the certificate
    # in use stays and the edge keeps serving.
    good_key = open(key).read()
    with open(key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    edge.send_signal(signal.SIGHUP)
    wait_for(lambda: "tls: reload failed" in c.log(0), 10, "the failed reload logged")
    assert f"tls: key {key}" in c.log(0), c.log(0)[-2000:]
    assert served_cert(tport) == new_der
    with socket.create_connection(("127.0.0.1", tport), timeout=5) as s2, \
            client_ctx().wrap_socket(s2) as fresh:
        assert options(fresh, tport, 3).startswith("SIP/2.0 200 "), "OPTIONS after a bad reload"
    assert options(before, tport, 4).startswith("SIP/2.0 200 ")
    assert edge.poll() is None, "the edge exited"
    before.close()
    with open(key, "w") as f:
        f.write(good_key)


if __name__ == "__main__":
    run([test_tls_policy_and_reload])
