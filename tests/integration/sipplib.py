"""Run sipp (3.6.1) scenarios from tests/integration/sipp/ against a SIP target
and inspect what went over the wire.

    r = sipp("reg.xml", kam.addr, users=[("alice", "secret")], contact=uas.addr)
    assert r.ok, r.explain()               # exit 0 and every call successful
    r.trace.responses(method="REGISTER")   # [401, 200]

    uas = SippServer("uas.xml").start()    # background UAS on a free port
    register(kam.addr, "bob", "pw", uas.addr)   # reg.xml, asserted
    r = sipp("uac_call.xml", kam.addr, service="bob", user="alice", password="pw")
    uas.wait_received("BYE"); res = uas.stop()
    uas.trace.count(request="INVITE")      # INVITEs the UAS received

Conventions shared by every client scenario (so one XML runs against any proxy):
  -s SERVICE            request-URI / To user of calls and MESSAGEs
  -key domain D         SIP domain of all URIs (default skein.test)
  -inf users.csv        field0 = user (From / AoR), field1 = the sipp keyword
                        "[authentication username=U password=P]" (3.6.1 does not
                        expand [field0] nested inside [authentication ...]),
                        field2 = host:port put in a REGISTER Contact
Every run is bounded twice: sipp -timeout (with -timeout_error) and a
subprocess timeout a few seconds later that kills the process."""
import os
import re
import shutil
import signal
import subprocess

from skeinlib import Fatal, _procs, free_ports, port_busy, tmpdir, wait_for  # noqa: F401 (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN = os.path.join(HERE, "sipp")
DOMAIN = "skein.test"
# -key defaults every scenario may use: [expires] = REGISTER Expires
DEFAULT_KEYS = {"expires": 3600}
# options a scenario needs to work at all (see the comment at the top of the XML)
SCENARIO_OPTS = {"uac_retrans.xml": ["-default_behaviors", "all,-abortunexp"]}


# ---------------------------------------------------------------- traces

# -trace_msg blocks: a line of dashes (with a timestamp for sent/received
# messages), a header line, an empty line, the message. sipp logs an unexpected
# message twice: as received, then again under "Unexpected ... received:".
_SEP_RE = re.compile(r"^-{10,}.*\n", re.M)
_HEAD_RE = re.compile(r"^(?P<dir>UDP|TCP|TLS|SCTP) message (?P<how>sent|received) "
                      r"(?:\[\d+\] bytes ?|\(\d+ bytes\)):\n\n")
_UNEXP_RE = re.compile(r"^Unexpected (?:UDP|TCP|TLS|SCTP) message received:\n\n")


class Msg:
    """One SIP message from a sipp -trace_msg log."""

    def __init__(self, direction, transport, text):
        self.direction = direction      # 'sent' or 'received'
        self.unexpected = False         # sipp did not match it to the scenario
        self.transport = transport      # 'UDP' / 'TCP'
        self.text = text.replace("\r\n", "\n")
        self.first_line = self.text.split("\n", 1)[0].strip()
        self.status = None
        self.method = None
        if self.first_line.startswith("SIP/2.0 "):
            self.status = int(self.first_line.split()[1])
        else:
            self.method = self.first_line.split(" ", 1)[0]
        cseq = self.header("CSeq") or ""
        self.cseq_method = cseq.split()[-1] if cseq else None
        self.cseq = int(cseq.split()[0]) if cseq.split() and cseq.split()[0].isdigit() else None

    def headers(self, name):
        """Values of every header line called name (compact forms not mapped)."""
        head = self.text.split("\n\n", 1)[0]
        want = name.lower()
        return [line.split(":", 1)[1].strip() for line in head.split("\n")[1:]
                if ":" in line and line.split(":", 1)[0].strip().lower() == want]

    def header(self, name):
        v = self.headers(name)
        return v[0] if v else None

    @property
    def body(self):
        parts = self.text.split("\n\n", 1)
        return parts[1] if len(parts) > 1 else ""

    @property
    def branch(self):
        m = re.search(r";branch=([^;,\s]+)", self.header("Via") or "")
        return m.group(1) if m else None

    def __repr__(self):
        return f"<{self.direction} {self.first_line} [{self.header('CSeq')}]>"


class Trace:
    """Parsed sipp -trace_msg file(s): list of Msg in file order."""

    def __init__(self, path):
        self.path = path

    @property
    def messages(self):
        try:
            with open(self.path, errors="replace") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for block in _SEP_RE.split(data):
            m = _HEAD_RE.match(block)
            if m:
                out.append(Msg(m.group("how"), m.group("dir"), block[m.end():].strip("\n") + "\n"))
                continue
            m = _UNEXP_RE.match(block)
            if m:  # mark the received copy logged just before
                text = block[m.end():].strip("\n").replace("\r\n", "\n") + "\n"
                for prev in reversed(out):
                    if prev.direction == "received" and prev.text == text:
                        prev.unexpected = True
                        break
        return out

    def find(self, request=None, status=None, method=None, direction=None, unexpected=None):
        """Messages matching: request method (a request), status code (a
        response), method = CSeq method (either), direction 'sent'/'received',
        unexpected True/False (sipp matched it to no recv)."""
        out = []
        for m in self.messages:
            if unexpected is not None and m.unexpected != unexpected:
                continue
            if request is not None and m.method != request:
                continue
            if status is not None and m.status != status:
                continue
            if method is not None and m.cseq_method != method:
                continue
            if direction is not None and m.direction != direction:
                continue
            out.append(m)
        return out

    def count(self, **kw):
        return len(self.find(**kw))

    def responses(self, method=None, direction="received"):
        """Status codes in order (default: received, for CSeq method)."""
        return [m.status for m in self.find(method=method, direction=direction)
                if m.status is not None]

    def requests(self, direction="received"):
        return [m.method for m in self.find(direction=direction) if m.method]

    def text(self):
        try:
            with open(self.path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


# ---------------------------------------------------------------- stats

def parse_stats(screen):
    """Counters from sipp's final screens (stdout or -trace_screen): dict with
    'successful', 'failed', 'created' (cumulative call counts) and 'messages':
    the scenario table of the last screen as dicts {name, dir ('out'/'in'),
    count, retrans, timeout, unexpected} in scenario order."""
    out = {"successful": None, "failed": None, "created": None, "messages": []}
    for key, label in (("successful", "Successful call"), ("failed", "Failed call"),
                       ("created", "Total Calls created")):
        ms = re.findall(rf"{label}\s*\|\s*(?:\d+\s*)?\|\s*(\d+)", screen)
        if ms:
            out[key] = int(ms[-1])
    blocks = screen.split("Messages  Retrans   Timeout   Unexpected-Msg")
    if len(blocks) > 1:
        for line in blocks[-1].split("\n")[1:]:
            if line.startswith("---"):
                break
            m = re.match(r"\s*(\S+)\s+(-+>|<-+)\s+(.*)$", line)
            if not m:
                continue
            nums = [int(x) for x in re.findall(r"(?<![\w-])\d+(?![\w-])", m.group(3))] + [0] * 4
            out["messages"].append({"name": m.group(1), "dir": "out" if m.group(2).endswith(">") else "in",
                                    "count": nums[0], "retrans": nums[1], "timeout": nums[2],
                                    "unexpected": nums[3]})
    return out


class Result:
    """Outcome of one sipp run: rc (0 all calls ok, 1 some failed, 255 global
    -timeout reached or fatal error, 97 exit on internal command, 99 normal exit
    without calls, -9 killed),
    stats (parse_stats), trace (Trace of -trace_msg), errors (-trace_err text),
    out (stdout+stderr), argv, timed_out (killed by the outer timeout)."""

    def __init__(self, argv, rc, out, workdir, name, timed_out):
        self.argv, self.rc, self.out, self.dir, self.timed_out = argv, rc, out, workdir, timed_out
        self.trace = Trace(os.path.join(workdir, f"{name}_messages.log"))
        self.err_path = os.path.join(workdir, f"{name}_errors.log")
        screen = out
        sp = os.path.join(workdir, f"{name}_screen.log")
        if os.path.exists(sp):
            with open(sp, errors="replace") as f:
                screen = f.read() + "\n" + out
        self.stats = parse_stats(screen)

    @property
    def successful(self):
        return self.stats["successful"] or 0

    @property
    def failed(self):
        return self.stats["failed"] or 0

    @property
    def errors(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @property
    def ok(self):
        return self.rc == 0 and not self.timed_out and self.failed == 0 and self.successful > 0

    def explain(self):
        """Everything needed to understand a failure, for assertion messages."""
        tail = "\n".join(f"  {m!r}" for m in self.trace.messages[-12:])
        return (f"sipp rc={self.rc} timed_out={self.timed_out} successful={self.successful} "
                f"failed={self.failed}\nargv: {' '.join(self.argv)}\nlast messages:\n{tail}\n"
                f"errors:\n{self.errors[-2500:]}\noutput:\n{self.out[-1500:]}")


# ---------------------------------------------------------------- running

def scenario_path(scenario):
    return scenario if os.path.isabs(scenario) else os.path.join(SCEN, scenario)


def write_users_csv(path, users, contact=None):
    """CSV for -inf: one line per (user, password); field2 is the contact
    host:port (REGISTER) - the same for every line when given."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for user, pw in users:
            for s in (user, pw):
                if any(c in s for c in ";[] \n"):
                    raise ValueError(f"unsupported character in {s!r}")
            f.write(f"{user};[authentication username={user} password={pw}];{contact or ''}\n")
    return path


def build_argv(scenario, target, *, local_port, transport="u1", service=None,
               users_csv=None, calls=1, rate=None, limit=None, timeout_s=20,
               domain=DOMAIN, user=None, password=None, keys=None, extra=(), name="sipp",
               trace=True, local_ip="127.0.0.1"):
    """The sipp command line (without running it). target None = a UAS.
    trace=False drops -trace_msg (large runs: the message log grows ~1 kB/message)."""
    argv = ["sipp"] + ([target] if target else []) + [
        "-sf", scenario_path(scenario), "-i", local_ip, "-p", str(local_port),
        "-t", transport, "-nostdin", "-key", "domain", domain]
    if trace:
        argv += ["-trace_msg", "-message_file", f"{name}_messages.log"]
    argv += [
        "-trace_err", "-error_file", f"{name}_errors.log",
        "-trace_screen", "-screen_file", f"{name}_screen.log",
        "-timeout", f"{timeout_s}s", "-timeout_error", "-max_retrans", "3"]
    if target:
        # -r 1 would make sipp linger for the rest of the 1 s rate period
        argv += ["-m", str(calls), "-r", str(rate or 100)]
        if limit:
            argv += ["-l", str(limit)]
    if service:
        argv += ["-s", service]
    if users_csv:
        argv += ["-inf", users_csv]
    if user:
        argv += ["-au", user]
    if password:
        argv += ["-ap", password]
    for k, v in {**DEFAULT_KEYS, **(keys or {})}.items():
        argv += ["-key", k, str(v)]
    return argv + SCENARIO_OPTS.get(os.path.basename(scenario), []) + list(extra)


def sipp(scenario, target, *, local_port=None, transport="u1", service=None, user=None,
         password=None, users=None, contact=None, calls=1, rate=None, limit=None,
         timeout_s=20, domain=DOMAIN, keys=None, extra=(), workdir=None, name=None,
         trace=True, local_ip="127.0.0.1"):
    """Run one sipp client scenario to completion and return a Result.

    users: list of (user, password) written to the -inf CSV (user/password is
    shorthand for one); contact: host:port for field2; calls/rate/limit: -m/-r/-l
    (rate defaults to 100 calls/s); keys: extra -key name value;
    timeout_s: sipp -timeout; the process is killed timeout_s+10 s after start;
    extra: more sipp options (e.g. ["-d", "500"] call length for <pause/>);
    workdir: where traces/CSV go (default a new tmpdir); name: file prefix
    (default scenario_N); local_ip: the loopback address sipp sends from (another
    source than 127.0.0.1, which the test clusters trust). Never raises on SIP
    failures: assert on the Result."""
    if users is None and user is not None:
        users = [(user, password or "")]
    workdir = workdir or tmpdir()
    name = name or _unique(os.path.splitext(os.path.basename(scenario))[0])
    local_port = local_port or free_ports(1)[0]
    csv = write_users_csv(os.path.join(workdir, f"{name}_users.csv"), users, contact) if users else None
    argv = build_argv(scenario, target, local_port=local_port, transport=transport,
                      service=service, users_csv=csv, calls=calls, rate=rate, limit=limit,
                      timeout_s=timeout_s, domain=domain, keys=keys, extra=extra, name=name,
                      trace=trace, local_ip=local_ip)
    p = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    p.own_group = True
    _procs.append(p)
    timed_out = False
    try:
        out, _ = p.communicate(timeout=timeout_s + 10)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(p)
        out, _ = p.communicate(timeout=5)
    return Result(argv, p.returncode, out.decode(errors="replace"), workdir, name, timed_out)


_runs = [0]


def _unique(base):
    """base_N: trace/screen/CSV file names never collide within a workdir."""
    _runs[0] += 1
    return f"{base}_{_runs[0]}"


def register(target, user, password, contact, *, scenario="reg.xml", transport="u1", **kw):
    """Register contact (host:port) for user with digest via scenario; asserts
    success and that the final 200 lists that contact; returns the Result.
    The binding's transport= is the REGISTER's (transport 'u1'/'t1')."""
    name = kw.pop("name", None) or _unique(f"{os.path.splitext(scenario)[0]}_{user}")
    r = sipp(scenario, target, user=user, password=password, contact=contact,
             transport=transport, name=name, **kw)
    assert r.ok, r.explain()
    final = r.trace.find(status=200, method="REGISTER")[-1]
    assert any(f"@{contact}" in c for c in final.headers("Contact")), (contact, final.text)
    return r


def _kill(p, sig=signal.SIGKILL):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass


class SippServer:
    """A sipp UAS scenario in the background on 127.0.0.1:port.

    start() returns once the port is bound; received()/wait_received() and
    wait_sent() read its live -trace_msg; stop() ends it and returns a Result
    (its stats count calls the UAS completed). timeout_s bounds its life."""

    def __init__(self, scenario, *, port=None, transport="u1", timeout_s=60, domain=DOMAIN,
                 keys=None, extra=(), workdir=None, name=None):
        self.scenario, self.transport = scenario, transport
        self.port = port or free_ports(1)[0]
        self.addr = f"127.0.0.1:{self.port}"
        self.workdir = workdir or tmpdir()
        self.name = name or os.path.splitext(os.path.basename(scenario))[0] + f"_{self.port}"
        self.timeout_s = timeout_s
        self.argv = build_argv(scenario, None, local_port=self.port, transport=transport,
                               timeout_s=timeout_s, domain=domain, keys=keys, extra=extra,
                               name=self.name)
        self.trace = Trace(os.path.join(self.workdir, f"{self.name}_messages.log"))
        self.proc = None
        self.result = None
        self._out = os.path.join(self.workdir, f"{self.name}.out")

    def start(self):
        f = open(self._out, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=f, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        f.close()
        self.proc.own_group = True
        _procs.append(self.proc)
        proto = "udp" if self.transport.startswith("u") else "tcp"

        def bound():
            if self.proc.poll() is not None:
                raise Fatal(f"sipp UAS exited {self.proc.returncode}: {self.output()[-2000:]}")
            return port_busy(self.port, proto)
        wait_for(bound, 10, f"sipp UAS {self.scenario} on {self.addr}")
        return self

    def output(self):
        try:
            with open(self._out, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def received(self, request):
        """Number of `request` messages received so far (from the live trace)."""
        return self.trace.count(request=request, direction="received")

    def wait_received(self, request, n=1, timeout=10):
        def cond():
            if self.proc.poll() is not None:
                raise Fatal(f"sipp UAS exited {self.proc.returncode}: {self.output()[-2000:]}")
            return self.received(request) >= n
        return wait_for(cond, timeout, f"{n} {request} at UAS {self.addr}")

    def wait_sent(self, status, method=None, n=1, timeout=10):
        def cond():
            if self.proc.poll() is not None:
                raise Fatal(f"sipp UAS exited {self.proc.returncode}: {self.output()[-2000:]}")
            return self.trace.count(status=status, method=method, direction="sent") >= n
        return wait_for(cond, timeout, f"UAS {self.addr} sending {n}x {status} {method or ''}")

    def stop(self, timeout=3):
        """Stop the UAS and return its Result (rc, stats, trace): SIGUSR1 (sipp's
        quit: dump the screens, end after running calls), a second SIGUSR1
        (force quit) after 1 s, SIGKILL after timeout."""
        if self.proc.poll() is None:
            for sig, wait_s in ((signal.SIGUSR1, 1), (signal.SIGUSR1, timeout)):
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                _kill(self.proc)
                self.proc.wait(timeout=5)
        self.result = Result(self.argv, self.proc.returncode, self.output(), self.workdir,
                             self.name, False)
        return self.result

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def available():
    return shutil.which("sipp") is not None
