"""Helpers for Skein's integration tests: real redis-server, real daemons, real tools.

Everything binds 127.0.0.1 on free ports; every wait is a bounded poll for a
condition (never a bare sleep-and-hope); every process started here is stopped by
PID when the test ends, whatever happens."""
import atexit
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("SKEIN_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
SRC = os.environ.get("SKEIN_SRC", os.path.join(os.path.dirname(__file__), "../.."))
BIN = os.path.join(BUILD, "bin")

_procs = []
_dirs = []


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _cleanup():
    """Stop what the test started. Daemons get SIGTERM first (they drain and exit;
    under ASan that is when leaks are reported); returns the complaints: a daemon
    that did not exit 0 on SIGTERM, or whose log has a sanitizer report."""
    complaints = []
    daemons = [p for p in _procs if getattr(p, "daemon_log", None)]
    stopping = [p for p in daemons if p.poll() is None]
    for p in stopping:
        p.send_signal(signal.SIGTERM)
    for p in stopping:
        try:
            p.wait(timeout=15)
            if p.returncode != 0:
                complaints.append(f"{p.daemon_log}: exit {p.returncode} on SIGTERM")
        except subprocess.TimeoutExpired:
            complaints.append(f"{p.daemon_log}: still running 15 s after SIGTERM")
    for p in daemons:
        try:
            with open(p.daemon_log, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                complaints.append(f"{p.daemon_log}: {text[i:i + 1500]}")
                break
    for p in _procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL) if getattr(p, "own_group", False) else p.kill()
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    return complaints


atexit.register(_cleanup)


def stop_group(proc, timeout):
    """Wait up to timeout for a process (leader of its own process group) that was
    asked to quit, then SIGTERM its group (3 s), then SIGKILL it (5 s)."""
    for sig, wait_s in ((None, timeout), (signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        if sig is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


# Ports for servers under test come from a range below the kernel's ephemeral
# range (net.ipv4.ip_local_port_range, 32768-60999 on Debian): a port found free
# by bind(0) lies inside it, and any client connect() (a redis-cli, a test's own
# socket) can take it before the daemon binds it -- "address in use".
PORT_RANGE = (15000, 19999)
_handed_out = set()


def port_busy(port, proto="udp", host="127.0.0.1"):
    """True when host:port cannot be bound for proto ('udp' or 'tcp')."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
            return False
        except OSError:
            return True


def free_ports(n=1, span=1):
    """n port numbers in PORT_RANGE, each the start of `span` consecutive ports
    that are free on 127.0.0.1 for both UDP and TCP right now and not handed out
    before by this process (other testers share the machine: ports are picked
    at random, then probed)."""
    out = []
    for _ in range(2000):
        if len(out) == n:
            return out
        p = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - span)
        block = range(p, p + span)
        if any(q in _handed_out for q in block):
            continue
        if any(port_busy(q, "udp") or port_busy(q, "tcp") for q in block):
            continue
        _handed_out.update(block)
        out.append(p)
    raise RuntimeError(f"no {n} free port blocks of {span} in {PORT_RANGE}")


def free_port():
    """One port for a server under test (see free_ports)."""
    return free_ports(1)[0]


class Fatal(Exception):
    """Raised from a wait_for condition to stop waiting at once."""


def wait_for(cond, timeout, what, interval=0.05):
    """Poll cond() until it returns a truthy value; fail naming `what` at timeout."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
            if last:
                return last
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - report the last error on timeout
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http(addr, path, method="GET", data=None, headers=None, timeout=2):
    """(status, body) of an HTTP request; status 0 when nothing answers."""
    req = urllib.request.Request(f"http://{addr}{path}", method=method, data=data,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, ""


def start(args, log, env=None, own_group=False):
    f = open(log, "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env,
                         start_new_session=own_group)
    p.own_group = own_group
    _procs.append(p)
    return p


class Redis:
    def __init__(self, tmp, port=None):
        self.tmp, self.port = tmp, port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        d = os.path.join(self.tmp, f"redis-{self.port}")
        os.makedirs(d, exist_ok=True)
        self.proc = start(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                           "--dir", d, "--save", "", "--appendonly", "no",
                           "--daemonize", "no"], os.path.join(self.tmp, "redis.log"))
        wait_for(self.ping, 10, f"redis on {self.addr}")
        return self

    def ping(self):
        return self.cmd("PING") == "PONG"

    def cmd(self, *args):
        """One command, minimal RESP; returns str/int/list or raises."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            out = f"*{len(args)}\r\n".encode()
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _resp(f)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)


class Monitor:
    """Redis MONITOR: every command Redis runs, in the order it runs them."""

    def __init__(self, redis):
        self.s = socket.create_connection(("127.0.0.1", redis.port), timeout=5)
        self.s.sendall(b"MONITOR\r\n")
        self.f = self.s.makefile("rb")
        assert self.f.readline().strip() == b"+OK"

    def until(self, pred, limit=500):
        """Commands up to and including the first for which pred(line) holds."""
        seen = []
        for _ in range(limit):
            line = self.f.readline().decode(errors="replace").strip()
            seen.append(line)
            if pred(line):
                return seen
        raise AssertionError(f"not seen in {limit} commands: {seen[-20:]}")

    def lines(self, seconds):
        """Every command seen for that long (a bounded read)."""
        seen, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            self.s.settimeout(max(0.01, end - time.monotonic()))
            try:
                line = self.f.readline()
            except (socket.timeout, TimeoutError):
                break
            if not line:
                break
            seen.append(line.decode(errors="replace").strip())
        return seen

    def close(self):
        self.s.close()


def _resp(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2].decode()
    if t == b"+":
        return rest
    if t == b"-":
        raise RuntimeError(rest)
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if t == b"*":
        return [_resp(f) for _ in range(int(rest))]
    raise RuntimeError(f"bad RESP {line!r}")


class Node:
    """One node's config file; daemons of that node started from it."""

    def __init__(self, tmp, redis, node_id, roles=("registrar",), cluster="t", extra="",
                 role_extra=None):
        self.tmp, self.redis, self.node_id = tmp, redis, node_id
        self.http = {r: f"127.0.0.1:{free_port()}" for r in roles}
        self.state = os.path.join(tmp, f"state-{node_id}")
        self.conf = os.path.join(tmp, f"{node_id}.ini")
        self.procs = {}
        keys = {"name": cluster, "node_id": node_id, "datacenter": "dc1", "redis": redis.addr,
                "state_dir": self.state, "roles": ",".join(roles), "drain_timeout": "5s"}
        for line in extra.splitlines():  # extra "key = value" lines override
            if "=" in line:
                k, v = line.split("=", 1)
                keys[k.strip()] = v.strip()
        with open(self.conf, "w") as f:
            f.write("[cluster]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
            for r in roles:
                f.write(f"[{r}]\nhttp_listen = {self.http[r]}\n")
                for k, v in (role_extra or {}).get(r, {}).items():
                    f.write(f"{k} = {v}\n")

    def start(self, role, wait_ready=True):
        log = os.path.join(self.tmp, f"{self.node_id}-{role}.log")
        p = start([os.path.join(BIN, f"skein-{role}"), "--config", self.conf], log)
        p.daemon_log = log
        self.procs[role] = p
        if wait_ready:
            def ready():
                if p.poll() is not None:
                    raise Fatal(f"{self.node_id}/{role} exited {p.returncode}: "
                                     f"{self.log(role)[-2000:]}")
                return http(self.http[role], "/readyz")[0] == 200
            wait_for(ready, 10, f"{self.node_id}/{role} ready")
        return p

    def bus(self, role):
        return f"ipc://{os.path.realpath(self.state)}/{self.node_id}-{role}.bus"

    def log(self, role):
        with open(os.path.join(self.tmp, f"{self.node_id}-{role}.log")) as f:
            return f.read()


def skeinctl(conf, *args, timeout=60):
    """(exit code, parsed JSON or text) of skeinctl."""
    r = subprocess.run([os.path.join(BIN, "skeinctl"), "--config", conf, *args],
                       capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = r.stdout
    return r.returncode, out, r.stderr


def metric(text, name, labels=None):
    """Value of one series in Prometheus text, or None."""
    want = name + ("{" + labels + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def tmpdir():
    """A scratch directory for one test: removed when the test passes, kept (and
    named) when it fails, for its logs."""
    d = tempfile.mkdtemp(prefix="skein-it-")
    _dirs.append(d)
    return d


def run(tests):
    """Run test functions; print one line each and a summary; exit non-zero on failure."""
    failed = 0
    for t in tests:
        t0 = time.monotonic()
        ok = False
        try:
            t()
            complaints = _cleanup()
            if complaints:
                raise AssertionError("daemons did not end cleanly:\n" + "\n".join(complaints))
            ok = True
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failed += 1
            import traceback
            traceback.print_exc()
            print(f"FAIL {t.__name__}: {e} (logs in {' '.join(_dirs)})", flush=True)
        finally:
            _cleanup()
            _procs.clear()
            if ok:
                import shutil
                for d in _dirs:
                    shutil.rmtree(d, ignore_errors=True)
            _dirs.clear()
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
