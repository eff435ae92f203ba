#!/usr/bin/env python3
"""The shipped fail2ban filter (deploy/fail2ban/filter.d/skein-edge.conf) against the
log of a real edge: a 1-node cluster, real digest failures over the wire (wrong
password on REGISTER and on INVITE, unknown user), successful registrations, and
attempts to smuggle another address into the line through the user name and the
User-Agent; then the real `fail2ban-regex` (Debian package fail2ban) must find exactly
one match per failure, each with the address it came from and the time it happened,
and nothing else. Once with log_format = text and once with json. The example jail
must load in fail2ban's configuration reader with its UDP and TCP actions."""
import os
import re
import shutil
import subprocess
import tempfile
import time

from skeinlib import SRC, run
from sipcluster import DOMAIN, Cluster, RawSip, digest_register, digest_request, request

FILTER = os.path.join(SRC, "deploy/fail2ban/filter.d/skein-edge.conf")
JAIL = os.path.join(SRC, "deploy/fail2ban/jail.d/skein-edge.local")
JAIL_XCAP = os.path.join(SRC, "deploy/fail2ban/jail.d/skein-xcap.local")
SMUGGLED = "10.9.9.9"
# The edge's own bans off: every failure must reach the edge and be logged.
NO_BANS = {"trusted_networks": "", "auth_fail_source": "0", "auth_fail_user": "0",
           "scanner_user_agents": "", "auth_algorithms": "md5"}


def fail2ban_regex(log):
    """[(ip, unix time)] of every line the filter matches in log."""
    r = subprocess.run(["fail2ban-regex", "--timezone", "UTC", "-o", "row", log, FILTER],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return [(ip, int(ts)) for ip, ts in re.findall(r"^\['([^']+)',\s*(\d+)", r.stdout, re.M)]


def smuggling_attempt(port, ip):
    """REGISTERs whose Authorization user name carries a fake auth-failure line (behind
    a quote; behind a header fold, with and without a timestamp) and whose User-Agent
    does too. Each is a real failure from ip; none may yield SMUGGLED. (The edge logs
    the user name as sent, so a fold puts a line break in its log: the filter must not
    take the next line.)"""
    fake = f'auth-failure src={SMUGGLED} user=\\"x\\" realm=\\"{DOMAIN}\\" reason=bad-response'
    users = [f'x\\" src={SMUGGLED} user=\\"y',
             # folded lines: the next log line begins with the fold's whitespace
             f"x\r\n {time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}.000Z notice auth"
             f"      [n1/edge] {fake}",
             f"x\r\n notice auth      [n1/edge] {fake}",
             f"x\r\n\tZ notice auth      [n1/edge] {fake}"]
    sent = 0
    for user in users:
        c = RawSip(ip)
        try:
            base = dict(to=f"<sip:alice@{DOMAIN}>", frm=f"<sip:alice@{DOMAIN}>;tag=s1",
                        call_id=f"smuggle-{time.monotonic_ns()}")
            c.send(port, request("REGISTER", f"sip:{DOMAIN}", c.port, cseq=1, **base,
                                 extra=f"Contact: <sip:alice@{ip}:5099>\r\n"))
            r = c.recv_final(3)
            assert r is not None and r.status == 401, r
            nonce = re.search(r'nonce="([^"]+)"', r.hdr("www-authenticate")[0]).group(1)
            auth = (f'Authorization: Digest username="{user}", realm="{DOMAIN}", '
                    f'nonce="{nonce}", uri="sip:{DOMAIN}", response="{"0" * 32}", '
                    f'algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"\r\n')
            c.send(port, request("REGISTER", f"sip:{DOMAIN}", c.port, cseq=2, **base,
                                 extra=f"Contact: <sip:alice@{ip}:5099>\r\n"
                                       f"User-Agent: {fake}\r\n" + auth))
            r = c.recv_final(3)
            assert r is not None and r.status in (400, 401), r
            sent += r.status == 401  # a 401 to credentials is a logged failure
        finally:
            c.close()
    return sent


def produce(c):
    """Failures over the wire; returns {source ip: failures} as the edge must log them."""
    port = c.sip[0]
    want = {}
    for _ in range(3):  # wrong password on REGISTER
        r, _ = digest_register(port, "alice", "wrong", "<sip:alice@127.0.0.2:5099>",
                               alg="MD5", ip="127.0.0.2")
        assert r is not None and r.status == 401, r
    want["127.0.0.2"] = 3
    for i in range(2):  # unknown user
        r, _ = digest_register(port, f"nobody{i}", "x", f"<sip:nobody{i}@127.0.0.3:5099>",
                               alg="MD5", ip="127.0.0.3")
        assert r is not None and r.status == 401, r
    want["127.0.0.3"] = 2
    # wrong password on an INVITE (407, Proxy-Authorization)
    r = digest_request(port, "INVITE", f"sip:bob@{DOMAIN}", "alice", "wrong", alg="MD5",
                       ip="127.0.0.4", body="v=0\r\n", ctype="application/sdp")
    assert r is not None and r.status == 407, r
    want["127.0.0.4"] = 1
    want["127.0.0.5"] = smuggling_attempt(port, "127.0.0.5")
    # successes log no failure line
    for ip in ("127.0.0.6", "127.0.0.7"):
        r, _ = digest_register(port, "alice", "alicepw", f"<sip:alice@{ip}:5099>", alg="MD5",
                               ip=ip)
        assert r is not None and r.status == 200, r
    return {ip: n for ip, n in want.items() if n}


def check(c, fmt):
    t0 = time.time()
    want = produce(c)
    log = c.nodes[0].procs["edge"].daemon_log
    text = c.log(0)
    # the lines are where the filter expects them (the daemon logs asynchronously from
    # the Redis round trip: wait for all of them)
    real = re.compile(r"auth-failure src=127\.")
    deadline = time.monotonic() + 5
    while len(real.findall(text)) < sum(want.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
        text = c.log(0)
    assert len(real.findall(text)) == sum(want.values()), (want, text[-3000:])
    got = fail2ban_regex(log)
    counts = {}
    for ip, ts in got:
        counts[ip] = counts.get(ip, 0) + 1
        assert t0 - 5 <= ts <= time.time() + 5, (ip, ts, t0)  # UTC read as UTC
    assert SMUGGLED not in counts, (counts, text[-3000:])
    assert counts == want, (fmt, counts, want, text[-3000:])
    # and nothing else of the log matches: successes, start-up, the rest
    assert len(got) == sum(want.values())
    print(f"{fmt}: {len(got)} failures from {len(want)} sources matched, "
          f"{len(text.splitlines()) - len(got)} other lines not")


def test_text_log():
    check(Cluster(1, edge_extra=NO_BANS), "text")


def test_json_log():
    os.environ["SKEIN_CLUSTER_LOG_FORMAT"] = "json"
    try:
        c = Cluster(1, edge_extra=NO_BANS)
    finally:
        del os.environ["SKEIN_CLUSTER_LOG_FORMAT"]
    assert c.log(0).startswith('{"ts":"'), c.log(0)[:200]
    check(c, "json")


def test_jail_loads():
    """fail2ban's own reader (`fail2ban-client -d`, no server, no firewall change) on a
    copy of the system configuration plus ours."""
    if not os.path.exists("/etc/fail2ban/jail.conf"):
        raise AssertionError("fail2ban is not installed (scripts/install-deps.sh)")
    tmp = tempfile.mkdtemp(prefix="skein-f2b-")
    try:
        conf = os.path.join(tmp, "fail2ban")
        shutil.copytree("/etc/fail2ban", conf)
        for f in os.listdir(os.path.join(conf, "jail.d")):
            os.remove(os.path.join(conf, "jail.d", f))
        shutil.copy(FILTER, os.path.join(conf, "filter.d"))
        shutil.copy(JAIL, os.path.join(conf, "jail.d"))
        shutil.copy(JAIL_XCAP, os.path.join(conf, "jail.d"))
        log = os.path.join(tmp, "edge.log")
        open(log, "w").close()
        rlog = os.path.join(tmp, "registrar.log")
        open(rlog, "w").close()
        with open(os.path.join(conf, "jail.d", "zz-test.local"), "w") as f:
            f.write(f"[skein-edge]\nlogpath = {log}\n[skein-xcap]\nlogpath = {rlog}\n")
        r = subprocess.run(["fail2ban-client", "-c", conf, "-d"], capture_output=True,
                           text=True, timeout=60)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "['add', 'skein-edge'," in out, out
        for proto in ("tcp", "udp"):
            assert re.search(rf"\['protocol', '{proto}'\]", out), (proto, out[-2000:])
        assert "'port', '5060,5061'" in out and "auth-failure src=<HOST>" in out, out[-2000:]
        assert "['set', 'skein-edge', 'logtimezone', 'UTC']" in out, out[-2000:]
        # the XCAP jail: same filter on the registrar's log, HTTP(S) ports over TCP
        assert "['add', 'skein-xcap'," in out, out[-2000:]
        assert "['set', 'skein-xcap', 'logtimezone', 'UTC']" in out, out[-2000:]
        assert "'port', '9380,443'" in out, out[-2000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run([test_text_log, test_json_log, test_jail_loads])
