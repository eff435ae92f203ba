"""Kamailio 5.6 stand-in for the Skein edge: registrar (digest, in-memory usrloc)
plus a transaction-stateful record-routing proxy, on 127.0.0.1 UDP+TCP.

    kam = Kamailio(tmp, users={"alice": "secret"}).start()
    kam.addr            # "127.0.0.1:PORT" - the target for sipp/baresip
    kam.contacts("alice")  # registered contact URIs (kamcmd ul.lookup)

The config is tests/integration/kamailio/kamailio.cfg with @@PLACEHOLDERS@@
substituted; the process runs in the foreground (-DD) so its PID is ours and
skeinlib's cleanup kills it when the test ends."""
import os
import shutil
import signal
import subprocess

from skeinlib import Fatal, start, wait_for
from sipplib import free_ports, port_busy

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = os.path.join(HERE, "kamailio", "kamailio.cfg")
DOMAIN = "skein.test"


def available():
    """True when the kamailio and kamcmd binaries are installed."""
    return bool(shutil.which("kamailio") and shutil.which("kamcmd"))


def _kstr(s):
    """A Kamailio cfg string literal."""
    if any(c in s for c in '"\\\n\r'):
        raise ValueError(f"unsupported character in {s!r}")
    return f'"{s}"'


class Kamailio:
    """One kamailio process; users is {user: password}; call_auth=False turns
    off the 407 challenge of initial INVITE/MESSAGE (REGISTER is always
    challenged); children: UDP and TCP workers each; shm_mb: shared memory
    (PEERS.md: 256 MB ran out under sipp overload at 4000 calls/s, use 1024
    for load tests)."""

    def __init__(self, tmp, users, port=None, domain=DOMAIN, call_auth=True, children=2,
                 shm_mb=64):
        self.tmp = os.path.join(tmp, "kamailio")
        os.makedirs(self.tmp, exist_ok=True)
        self.port = port or free_ports(1)[0]
        self.addr = f"127.0.0.1:{self.port}"
        self.domain, self.users = domain, dict(users)
        self.call_auth, self.children, self.shm_mb = call_auth, children, shm_mb
        self.cfg = os.path.join(self.tmp, "kamailio.cfg")
        self.ctl = os.path.join(self.tmp, "ctl.sock")
        self.log_path = os.path.join(self.tmp, "kamailio.log")
        self.proc = None

    def write_cfg(self):
        users = "\n".join(f"    $sht(users=>{_kstr(u)[1:-1]}) = {_kstr(p)};"
                          for u, p in self.users.items())
        with open(CFG) as f:
            text = f.read()
        for k, v in {"PORT": str(self.port), "DOMAIN": self.domain, "CTL": self.ctl,
                     "CHILDREN": str(self.children), "USERS": users}.items():
            text = text.replace(f"@@{k}@@", v)
        assert "@@" not in text, "unsubstituted placeholder in kamailio.cfg"
        with open(self.cfg, "w") as f:
            f.write(text)
        return self.cfg

    def argv(self):
        # -DD: no daemon, main process stays ours (its workers are its children, in
        # its own process group); -E: log to stderr (our log file); -w/-Y: work and
        # runtime dirs in tmp (nothing under /var/run)
        a = ["kamailio", "-f", self.cfg, "-DD", "-E", "-m", str(self.shm_mb), "-M", "8",
             "-w", self.tmp, "-Y", self.tmp]
        if self.call_auth:
            a += ["-A", "WITH_CALL_AUTH"]
        return a

    def start(self, timeout=15):
        self.write_cfg()
        r = subprocess.run(self.argv() + ["-c"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"kamailio -c rejected {self.cfg}:\n{r.stdout}{r.stderr}")
        self.proc = start(self.argv(), self.log_path, own_group=True)  # killpg reaps the children

        def up():
            if self.proc.poll() is not None:
                raise Fatal(f"kamailio exited {self.proc.returncode}: {self.log()[-3000:]}")
            # listening on TCP and answering the control socket = all children forked
            return port_busy(self.port, "tcp") and self.kamcmd("core.uptime", check=False)[0] == 0
        wait_for(up, timeout, f"kamailio on {self.addr}", interval=0.1)
        return self

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode if self.proc else None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kamcmd(self, *args, check=True, timeout=5):
        """(exit code, stdout) of kamcmd on this instance's control socket."""
        r = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", *args],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kamcmd {args} -> {r.returncode}: {r.stdout}{r.stderr}")
        return r.returncode, r.stdout

    def contacts(self, user):
        """Contact URIs currently registered for user (empty list if none)."""
        rc, out = self.kamcmd("ul.lookup", "location", user, check=False)
        if rc != 0:
            return []  # "404 AOR not found"
        return [line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.strip().startswith("Address:")]


def start_kamailio(tmp, users, **kw):
    """Kamailio(tmp, users, **kw).start(): a running instance (see Kamailio)."""
    return Kamailio(tmp, users, **kw).start()
