#!/usr/bin/env python3
"""Connection limits at a running edge (transport.h, Limits): 10,000 idle TCP
connections from 100 loopback sources (127.0.1.1-100, each under
max_conns_per_source) are held while a new client registers and makes a call
through the same edge (sipp, over TCP); then the edge closes every idle one at
idle_timeout (EOF read on each, the skein_edge_connections gauge back down). And the
129th connection from one source gets 503 + Retry-After to its first REGISTER and is
closed, while another source is served. Prints the figures measured."""
import os
import resource
import select
import socket
import time

from sipplib import SippServer, register, sipp
from skeinlib import http, metric, run, tmpdir, wait_for
from sipcluster import DOMAIN, Cluster, request

N_IDLE = 10000
SOURCES = 100  # 127.0.1.1 .. 127.0.1.100: 100 connections each, under the cap
PER_SOURCE = 128
IDLE_S = 10    # short, yet well above the time to open 10,000 connections (~1 s)
USERS = (("alice", "alice-pw"), ("callee", "callee-pw"))
PW = dict(USERS)


def raise_fd_limit(need):
    """The test process and the edge it starts (rlimits are inherited) both hold one
    descriptor per connection: soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    if want != resource.RLIM_INFINITY and want < need:
        raise AssertionError(f"RLIMIT_NOFILE hard limit {hard} < {need}: raise it "
                             "(ulimit -Hn) to run this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def edge_fd_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return 0


def edge_metrics(c):
    return http(c.nodes[0].http["edge"], "/metrics")[1]


def open_idle(port, sources, per_source, c, first_host=1, net=1):
    """per_source TCP connections from each of 127.0.<net>.<first_host..>, connected
    and accepted by the edge; returns the sockets. Batches stay under the edge's
    listen backlog (511) so that no SYN is dropped and retried a second later."""
    socks, batch = [], []
    base = metric(edge_metrics(c), "skein_edge_connections") or 0
    order = [(h, k) for k in range(per_source) for h in range(first_host, first_host + sources)]
    for i, (h, _) in enumerate(order):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((f"127.0.{net}.{h}", 0))
        err = s.connect_ex(("127.0.0.1", port))
        assert err in (0, 115), os.strerror(err)  # EINPROGRESS
        batch.append(s)
        if len(batch) == 400 or i == len(order) - 1:
            wait_connected(batch)
            socks += batch
            batch = []
            n = len(socks)
            wait_for(lambda n=n: (metric(edge_metrics(c), "skein_edge_connections") or 0)
                     >= base + n, 20, f"the edge holding {n} more connections")
    return socks


def wait_connected(batch, timeout=20):
    p = select.poll()
    left = {s.fileno(): s for s in batch}
    for fd in left:
        p.register(fd, select.POLLOUT)
    end = time.monotonic() + timeout
    while left and time.monotonic() < end:
        for fd, ev in p.poll(200):
            s = left.pop(fd, None)
            if s is None:
                continue
            p.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert err == 0, f"connect from {s.getsockname()}: {os.strerror(err)}"
    assert not left, f"{len(left)} connections not up within {timeout}s"


def closed_now(socks):
    """How many of socks the peer has closed (EOF readable now)."""
    p = select.poll()
    for s in socks:
        p.register(s.fileno(), select.POLLIN | select.POLLRDHUP)
    return len(p.poll(0))


def wait_all_eof(socks, timeout):
    """Reads EOF on every socket (the edge closed it); returns when the first and the
    last came."""
    first = None
    p = select.poll()
    left = {s.fileno(): s for s in socks}
    for fd in left:
        p.register(fd, select.POLLIN | select.POLLRDHUP)
    end = time.monotonic() + timeout
    while left and time.monotonic() < end:
        for fd, ev in p.poll(500):
            s = left.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                data = b""
            assert data == b"", f"an idle connection got {data[:80]!r}"
            first = first or time.monotonic()
            del left[fd]
            p.unregister(fd)
    assert not left, f"{len(left)} of {len(socks)} idle connections still open " \
                     f"{timeout}s later"
    return first, time.monotonic()


def test_ten_thousand_idle_then_closed():
    limit = raise_fd_limit(N_IDLE + 2000)
    c = Cluster(1, users=USERS,
                edge_extra={"idle_timeout": f"{IDLE_S}s", "max_conns": "12000",
                            "max_conns_per_source": str(PER_SOURCE),
                            # sipp 3.6.1 knows MD5 only and answers the first challenge
                            "auth_algorithms": "md5,sha256"})
    edge = c.nodes[0].procs["edge"]
    assert edge_fd_limit(edge.pid) >= N_IDLE + 1000, \
        f"the edge may open {edge_fd_limit(edge.pid)} files (test process: {limit})"
    port = c.sip[0]
    t0 = time.monotonic()
    socks = open_idle(port, SOURCES, N_IDLE // SOURCES, c)
    t_open = time.monotonic()
    text = edge_metrics(c)
    held = metric(text, "skein_edge_connections")
    assert held >= N_IDLE, held
    assert not metric(text, "skein_edge_connections_refused_total", 'reason="limit"'), text
    assert not metric(text, "skein_edge_connections_refused_total", 'reason="shed"'), text

    # A new client while they are held: register a UAS and call it, over TCP.
    tmp = tmpdir()
    t1 = time.monotonic()
    uas = SippServer("uas.xml", transport="t1", workdir=tmp, domain=DOMAIN).start()
    register(c.addr(0), "callee", PW["callee"], uas.addr, transport="t1", workdir=tmp,
             domain=DOMAIN)
    t_reg = time.monotonic()
    r = sipp("uac_call.xml", c.addr(0), service="callee", user="alice", password=PW["alice"],
             transport="t1", workdir=tmp, extra=["-d", "100"], domain=DOMAIN)
    assert r.ok, r.explain()
    assert r.trace.responses("INVITE") == [407, 100, 180, 200], r.explain()
    assert r.trace.responses("BYE") == [200], r.explain()
    uas.wait_received("BYE")
    uas.stop()
    t_call = time.monotonic()
    early = closed_now(socks)
    assert early == 0, f"{early} idle connections closed before idle_timeout"
    still = metric(edge_metrics(c), "skein_edge_connections")
    assert still >= N_IDLE, still

    # Then the idle ones go, at idle_timeout after they were opened.
    t_first, t_last = wait_all_eof(socks, IDLE_S + 30)
    for s in socks:
        s.close()
    wait_for(lambda: metric(edge_metrics(c), "skein_edge_connections") < 50, 10,
             "the open-connection gauge back down")
    gauge_after = metric(edge_metrics(c), "skein_edge_connections")
    closed_span = t_last - t_open
    print(f"figures: {len(socks)} idle connections from {SOURCES} sources held "
          f"(gauge {held:.0f}, edge fd limit {edge_fd_limit(edge.pid)}); opened in "
          f"{t_open - t0:.1f}s; new client registered in {t_reg - t1:.2f}s and made a "
          f"call in {t_call - t_reg:.2f}s while they were held; the edge closed the "
          f"first idle one {t_first - t0:.1f}s after the first was opened and the last "
          f"{closed_span:.1f}s after the last was opened (idle_timeout {IDLE_S}s), all "
          f"within {t_last - t_first:.1f}s; gauge after: {gauge_after:.0f}", flush=True)
    # Not before idle_timeout, not long after it: each at idle_timeout from its own
    # opening, so the last EOF is within idle_timeout (+ slack) of the last opening.
    assert t_first - t0 >= IDLE_S - 0.5, t_first - t0
    assert closed_span <= IDLE_S + 10, closed_span


def tcp_register(s, tag):
    """A REGISTER (no credentials) from s's own address, over TCP."""
    ip, port = s.getsockname()
    msg = request("REGISTER", f"sip:{DOMAIN}", port, to=f"<sip:alice@{DOMAIN}>",
                  frm=f"<sip:alice@{DOMAIN}>;tag={tag}",
                  extra=f"Contact: <sip:alice@{ip}:{port};transport=tcp>\r\n")
    s.sendall(msg.replace(b"SIP/2.0/UDP 127.0.0.1:", f"SIP/2.0/TCP {ip}:".encode(), 1))


def read_until_eof(s, timeout):
    s.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def test_per_source_cap_answers_503():
    raise_fd_limit(1000)
    c = Cluster(1, users=USERS, edge_extra={"max_conns_per_source": str(PER_SOURCE),
                                            "slow_timeout": "5s", "retry_after": "30s"})
    port = c.sip[0]
    held = open_idle(port, 1, PER_SOURCE, c, first_host=1, net=3)  # 127.0.3.1
    extra = socket.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=("127.0.3.1", 0))
    tcp_register(extra, "cap")
    t0 = time.monotonic()
    data, eof = read_until_eof(extra, 5)
    took = time.monotonic() - t0
    text = data.decode(errors="replace")
    assert text.startswith("SIP/2.0 503 "), text
    assert "\r\nRetry-After: 30\r\n" in text, text
    assert eof, "the shed connection was not closed"
    extra.close()
    # Another source is served on a new connection meanwhile.
    other = socket.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=("127.0.3.2", 0))
    tcp_register(other, "ok")
    other.settimeout(5)
    answer = other.recv(4096).decode(errors="replace")
    assert answer.startswith("SIP/2.0 401 "), answer
    other.close()
    text = edge_metrics(c)
    assert metric(text, "skein_edge_connections_refused_total", 'reason="shed"') == 1, text
    assert metric(text, "skein_edge_connections_refused_total", 'reason="limit"') == 0, text
    print(f"figures: {len(held)} connections held from 127.0.3.1; the next one got "
          f"\"{text_first_line(data)}\" and was closed {took * 1000:.0f} ms after its "
          f"REGISTER", flush=True)
    for s in held:
        s.close()


def text_first_line(data):
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


if __name__ == "__main__":
    run([test_per_source_cap_answers_503, test_ten_thousand_idle_then_closed])
