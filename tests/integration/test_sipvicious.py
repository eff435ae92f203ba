#!/usr/bin/env python3
"""SIPVicious (Debian package sipvicious: svmap, svwar, svcrack — the scanners that
probe every SIP server on the Internet) against a running 2-edge cluster:

- svmap with its default User-Agent ("friendly-scanner") finds nothing: no answer;
- svwar (scanner filter off, so that it is answered at all) cannot tell existing
  extensions from missing ones, with REGISTER, INVITE and OPTIONS, forced or not —
  while against a server with the classic 401/404 oracle (the control) it lists
  exactly the existing ones;
- svcrack is banned after auth_fail_source failures and never reaches the password
  (20th in its list), and the ban holds on the other edge; with the ban disabled the
  same run finds the password (the control: the test can fail).

sipvicious 0.3.3's (Debian 12) svwar and svcrack ignore -b (they bind every address) and so send
from 127.0.0.1: these clusters do not trust 127.0.0.1, unlike the other tests'."""
import re
import socket
import subprocess
import threading
import time

from skeinlib import run
from sipcluster import DOMAIN, Cluster, Msg, RawSip, request

EXISTING = ("101", "103", "105")
USERS = tuple((u, f"secret-{u}") for u in EXISTING) + (("crackme", "20"),)
UNTRUSTED = {"trusted_networks": "", "auth_algorithms": "md5"}


def sv(*argv, timeout=120):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def probe(ip, port, timeout=0.5):
    c = RawSip(ip)
    try:
        c.send(port, request("OPTIONS", f"sip:127.0.0.1:{port}", c.port))
        r = c.recv_final(timeout)
        return r.status if r else 0
    finally:
        c.close()


def test_svmap_default_user_agent_gets_no_answer():
    c = Cluster(1, users=USERS, edge_extra=UNTRUSTED)
    port = c.sip[0]
    rc, out = sv("svmap", "-b", "127.0.0.2", "-p", str(port), "127.0.0.1")
    assert rc == 0, out
    assert f"127.0.0.1:{port}" not in out and "found nothing" in out, out
    # the edge did see it: dropped as a scanner, its source banned
    assert "reason=scanner" in c.log(0), c.log(0)[-2000:]
    assert probe("127.0.0.2", port) == 0
    assert probe("127.0.0.3", port) == 200


def reported(out):
    """Extensions svwar lists in its result table."""
    return set(re.findall(r"^\|\s*(\d+)\s*\|", out, re.M))


class OracleServer:
    """The control for svwar: a registrar that gives itself away — 401 for the
    existing users, 404 for the others — on 127.0.0.1 (a thread, bounded)."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.stop = False
        self.t = threading.Thread(target=self.serve)
        self.t.start()

    def serve(self):
        end = time.monotonic() + 60
        while not self.stop and time.monotonic() < end:
            try:
                data, peer = self.s.recvfrom(65535)
            except socket.timeout:
                continue
            m = Msg(data)
            if not m.start.startswith("REGISTER "):
                continue
            user = re.search(r"sip:([^@>;]+)@", m.hdr("to")[0]).group(1)
            # the header lines as sent (svwar reads its own From back, by name)
            keep = [ln + (";tag=or1" if ln.lower().startswith("to:") and "tag=" not in ln
                          else "")
                    for ln in data.decode(errors="replace").split("\r\n\r\n")[0]
                    .split("\r\n")[1:]
                    if ln.split(":", 1)[0].strip().lower() in ("via", "from", "to",
                                                               "call-id", "cseq")]
            if user in EXISTING:
                head = "SIP/2.0 401 Unauthorized\r\n"
                keep.append('WWW-Authenticate: Digest realm="x", nonce="n", algorithm=MD5')
            else:
                head = "SIP/2.0 404 Not Found\r\n"
            self.s.sendto((head + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n")
                          .encode(), peer)

    def close(self):
        self.stop = True
        self.t.join(5)
        self.s.close()


def test_svwar_finds_users_when_a_server_tells():
    """The control: against a registrar with the 401/404 oracle, the same svwar run and
    the same parsing find exactly the existing extensions."""
    o = OracleServer()
    try:
        rc, out = sv("svwar", "-p", str(o.port), "-e", "100-110", "-m", "REGISTER",
                     "--domain", DOMAIN, "127.0.0.1")
    finally:
        o.close()
    assert reported(out) == set(EXISTING), out[-3000:]


def test_svwar_cannot_tell_users_apart():
    c = Cluster(1, users=USERS, edge_extra={**UNTRUSTED, "scanner_user_agents": "",
                                            "auth_fail_source": "0"})
    port = c.sip[0]
    everything = {str(x) for x in range(100, 111)}
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        for force in ((), ("--force",)):
            rc, out = sv("svwar", "-p", str(port), "-e", "100-110", "-m", method,
                         "--domain", DOMAIN, *force, "127.0.0.1")
            found = reported(out)
            # either nothing stands out, or everything does: never the real ones
            assert found in (set(), everything), (method, force, found, out[-3000:])
            print(f"svwar -m {method} {' '.join(force) or '(no --force)'}: "
                  f"{len(found)} of {len(everything)} reported, existing {sorted(EXISTING)}")


def crack(port):
    return sv("svcrack", "-p", str(port), "-u", "crackme", "-r", "1-30", "--domain", DOMAIN,
              "--maximumtime", "5", "127.0.0.1")


def test_svcrack_banned_on_every_edge():
    c = Cluster(2, users=USERS, edge_extra={**UNTRUSTED, "scanner_user_agents": "",
                                            "auth_fail_source": "5"})
    p1, p2 = c.sip
    assert probe("127.0.0.1", p2) == 200
    rc, out = crack(p1)
    fails = len(re.findall(r"auth-failure src=127\.0\.0\.1 user=\"crackme\"", c.log(0)))
    assert "| crackme" not in out and "20" not in re.findall(r"\|\s*(\d+)\s*\|", out), out
    # the ban comes at the 5th failure; a few more may be in flight meanwhile
    assert 5 <= fails <= 12, fails
    bans = {b["ip"]: b for b in c.ctl("ban", "list")}
    assert bans["127.0.0.1"]["reason"] == "auth-failures", bans
    assert probe("127.0.0.1", p1) == 0 and probe("127.0.0.1", p2) == 0
    print(f"svcrack: {fails} failed attempts, then banned on both edges; password not found")


def test_svcrack_finds_the_password_without_the_ban():
    """The control: the same attack with auth_fail_source = 0 succeeds."""
    c = Cluster(1, users=USERS, edge_extra={**UNTRUSTED, "scanner_user_agents": "",
                                            "auth_fail_source": "0", "auth_fail_user": "0"})
    rc, out = crack(c.sip[0])
    assert re.search(r"\|\s*crackme\s*\|\s*20\s*\|", out), out


if __name__ == "__main__":
    run([test_svmap_default_user_agent_gets_no_answer, test_svwar_finds_users_when_a_server_tells,
         test_svwar_cannot_tell_users_apart,
         test_svcrack_banned_on_every_edge, test_svcrack_finds_the_password_without_the_ban])
