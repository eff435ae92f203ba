"""A real browser SIP client for integration tests: JsSIP in headless Chromium.

    b = Browser()                    # serves the test page on 127.0.0.1 at once (b.origin)
    b.start()                        # node + playwright-core + /usr/bin/chromium, page loaded
    b.register("ws://127.0.0.1:5066", "sip:alice@skein.test", "pw", display="Alice")
    b.wait_registered()              # the 'registered' event (fails at once on registrationFailed)
    assert b.send_message("sip:bob@skein.test", "hi")["status"] == 200
    frm, text = b.wait_message("hello")          # a MESSAGE the page received
    b.unregister(); b.stop()

Pieces:
- ensure_node_modules(dir): playwright-core, jssip and esbuild (pinned, the versions
  shared/PEERS.md §4a proved) under a project-local directory ($SKEIN_NPM_DIR, else
  $SKEIN_BUILD/npm), installed with `npm install --prefix DIR` when missing; then
  JsSIP bundled for the browser with esbuild (the npm package has no browser build)
  into DIR/www/jssip.js. Nothing is installed at import.
- StaticServer: http.server in a thread on 127.0.0.1 (a free port) serving the page.
- Browser: runs browser/driver.js under node; the driver launches the system
  Chromium headless (executablePath /usr/bin/chromium, --no-sandbox when root),
  opens browser/index.html and speaks JSON lines on stdin/stdout (see driver.js).
  Every event of the page (registered, message, ...) arrives as a JSON line and is
  kept in self.events; JsSIP's own debug log (the full SIP trace) goes to
  self.log_path.

The browser reaches 127.0.0.1 only (route guard, host-resolver rules, proxy on a
closed port: see driver.js); a 'blocked' event records anything it tried beyond.
Every wait is bounded; node, Chromium and the HTTP server are registered in
skeinlib._procs, so skeinlib's cleanup stops them by PID if the test dies first.
Missing Chromium/node/npm, or an npm install that fails, raises AssertionError (a
test FAILS: `make test` installs them)."""
import fcntl
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time

from skeinlib import BUILD, Fatal, _procs, stop_group, tmpdir, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_DIR = os.path.join(HERE, "browser")
CHROMIUM = "/usr/bin/chromium"
# Proven together in shared/PEERS.md §4a (chromium 156.0.8078.79 from Debian).
PINS = {"playwright-core": "1.65.1", "jssip": "3.13.8", "esbuild": "0.28.2"}
INSTALL_HINT = ("apt-get install -y --no-install-recommends chromium fonts-liberation nodejs npm "
                "(scripts/install-deps.sh)")


def npm_dir():
    return os.environ.get("SKEIN_NPM_DIR") or os.path.join(os.path.abspath(BUILD), "npm")


def _installed(d, pkg):
    try:
        with open(os.path.join(d, "node_modules", pkg, "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_node_modules(d=None, timeout=300):
    """Make sure the pinned npm packages are under d (default npm_dir()) and the
    JsSIP browser bundle d/www/jssip.js exists; returns d. Runs npm only when a
    package is missing or at another version; serialised by a lock file."""
    d = os.path.abspath(d or npm_dir())
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise AssertionError(f"{tool} not found: {INSTALL_HINT}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".skein-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [p for p, v in PINS.items() if _installed(d, p) != v]
        if missing:
            cmd = ["npm", "install", "--no-audit", "--no-fund", "--prefix", d,
                   *[f"{p}@{v}" for p, v in PINS.items()]]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{' '.join(cmd)}: no end after {timeout}s") from None
            still = [p for p, v in PINS.items() if _installed(d, p) != v]
            if r.returncode != 0 or still:
                raise AssertionError(f"{' '.join(cmd)}: exit {r.returncode}, missing {still}:\n"
                                     f"{(r.stdout + r.stderr)[-3000:]}")
        bundle = os.path.join(d, "www", "jssip.js")
        stamp = bundle + ".version"
        want = f"jssip {PINS['jssip']} esbuild {PINS['esbuild']}"
        have = open(stamp).read() if os.path.exists(stamp) and os.path.exists(bundle) else ""
        if have != want:
            os.makedirs(os.path.dirname(bundle), exist_ok=True)
            tmp = bundle + ".tmp"
            # esbuild's JS API (not bin/esbuild: that is a JS shim or, once its postinstall
            # ran, the ELF binary) finds the binary in @esbuild/linux-x64 either way.
            script = ("require(process.argv[1]).buildSync({entryPoints: [process.argv[2]], bundle: true,"
                      " format: 'iife', globalName: 'JsSIP', outfile: process.argv[3], logLevel: 'warning'})")
            cmd = ["node", "-e", script, os.path.join(d, "node_modules", "esbuild"),
                   os.path.join(d, "node_modules", "jssip", "lib", "JsSIP.js"), tmp]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            if r.returncode != 0 or not os.path.exists(tmp):
                raise AssertionError(f"bundling JsSIP: exit {r.returncode}: {r.stderr[-2000:]}")
            os.replace(tmp, bundle)
            with open(stamp, "w") as f:
                f.write(want)
    return d


def ensure_chromium():
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"{CHROMIUM} not installed: {INSTALL_HINT}")
    return CHROMIUM


class _Handle:
    """Looks enough like a Popen for skeinlib._cleanup: poll(), kill(), wait(), pid."""

    def __init__(self, pid, alive, kill, own_group=False):
        self.pid, self._alive, self._kill, self.own_group = pid, alive, kill, own_group
        self.returncode = None

    def poll(self):
        if self.returncode is None and not self._alive():
            self.returncode = 0
        return self.returncode

    def kill(self):
        self._kill()

    def wait(self, timeout=None):
        end = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.poll() is None:
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode


def _pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"   # a zombie is dead here
    except OSError:
        return False


def _children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        self.server.requests.append(fmt % args)

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class StaticServer:
    """Serves directory root on http://127.0.0.1:port/ from a thread."""

    def __init__(self, root, port=0):
        self.root = root
        handler = functools.partial(_QuietHandler, directory=root)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        _procs.append(_Handle(None, lambda: not self._stopped.is_set(), self.stop))

    def url(self, path=""):
        return f"{self.origin}/{path}"

    def stop(self):
        if not self._stopped.is_set():
            self._stopped.set()
            self.httpd.shutdown()
            self.httpd.server_close()


class Browser:
    """One headless Chromium with one page running JsSIP, driven by driver.js.

    tmp: directory for the page copy and logs (default: a fresh skeinlib.tmpdir()).
    debug: JsSIP's debug log (every SIP message sent/received) into log_path.
    lifetime_s: the driver closes the browser and exits after this long, whatever."""

    def __init__(self, tmp=None, npm=None, debug=True, lifetime_s=180):
        self.tmp = tmp or tmpdir()
        self.npm, self.debug, self.lifetime_s = npm, debug, lifetime_s
        self.www = os.path.join(self.tmp, "browser-www")
        os.makedirs(self.www, exist_ok=True)
        self.server = StaticServer(self.www)
        self.origin = self.server.origin      # what the page's WebSocket sends as Origin
        self.log_path = os.path.join(self.tmp, "browser.log")
        self.proc = None
        self.events = []        # every page event, in arrival order (each with "_t")
        self.info = None        # the driver's ready line
        self._fatal = None
        self._responses = {}
        self._id = 0
        self._lock = threading.Lock()
        self._chromium = []

    # ------------------------------------------------------------ start
    def start(self, timeout=45):
        ensure_chromium()
        npm = ensure_node_modules(self.npm)
        for name in ("index.html", "page.js"):
            shutil.copy(os.path.join(PAGE_DIR, name), self.www)
        shutil.copy(os.path.join(npm, "www", "jssip.js"), self.www)
        cfg = {"url": self.server.url("index.html"), "executable_path": CHROMIUM,
               "no_sandbox": os.geteuid() == 0, "lifetime_s": self.lifetime_s, "debug": self.debug}
        env = dict(os.environ, NODE_PATH=os.path.join(npm, "node_modules"),
                   SKEIN_BROWSER_CONFIG=json.dumps(cfg))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["node", os.path.join(PAGE_DIR, "driver.js")], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     cwd=self.tmp, start_new_session=True)
        log.close()
        self.proc.own_group = True
        _procs.append(self.proc)
        threading.Thread(target=self._read_loop, daemon=True).start()

        def ready():
            self._check_alive()
            return self.info
        wait_for(ready, timeout, "headless Chromium with the JsSIP page loaded")
        # Playwright starts Chromium detached (its own process group): register it
        # too, so a test that dies still gets it killed by PID.
        for pid in _children(self.proc.pid):
            grp = os.getpgid(pid) == pid if _pid_alive(pid) else False
            h = _Handle(pid, functools.partial(_pid_alive, pid),
                        functools.partial(os.kill, pid, signal.SIGKILL), own_group=grp)
            self._chromium.append(h)
            _procs.append(h)
        return self

    def _read_loop(self):
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            with self._lock:
                if "event" in msg:
                    ev = dict(msg["event"], _t=time.monotonic())
                    self.events.append(ev)
                elif "ready" in msg:
                    self.info = msg   # its "events" came already, one by one
                elif "fatal" in msg:
                    self._fatal = msg["fatal"]
                elif "id" in msg:
                    self._responses[msg["id"]] = msg

    def _check_alive(self):
        if self._fatal:
            raise Fatal(f"browser driver failed: {self._fatal}\n{self.log()[-3000:]}")
        if self.proc.poll() is not None:
            raise Fatal(f"browser driver exited {self.proc.returncode}: {self.log()[-3000:]}")

    # ------------------------------------------------------------ commands
    def command(self, cmd, timeout=10, **args):
        """Run a driver command; returns its result, raises AssertionError on error."""
        self._check_alive()
        with self._lock:
            self._id += 1
            rid = self._id
        try:
            self.proc.stdin.write((json.dumps({"id": rid, "cmd": cmd, "args": args}) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:   # the driver died between the check and the write
            raise Fatal(f"browser driver gone ({e}): {self.log()[-3000:]}") from None

        def answer():
            with self._lock:
                r = self._responses.pop(rid, None)
            if r is None:
                self._check_alive()
            return r
        r = wait_for(answer, timeout, f"browser answer to {cmd} {args}")
        if not r.get("ok"):
            raise AssertionError(f"browser {cmd} {args}: {r.get('error')}")
        return r.get("result")

    def register(self, ws_url, uri, password, display=None, authorization_user=None, expires=600):
        """Start the JsSIP UA (register: true) on ws_url; wait_registered() for the outcome."""
        self.aor = uri
        return self.command("register", ws_url=ws_url, uri=uri, password=password, display=display,
                            authorization_user=authorization_user, register_expires=expires)

    def send_message(self, target, text, timeout=40):
        """Send a MESSAGE; returns {'status': final code} or {'failed': cause, 'status', ...}.
        JsSIP itself gives up after Timer F (32 s), hence the default timeout."""
        return self.command("send_message", timeout=timeout, target=target, text=text)

    def evaluate(self, expression, timeout=10):
        """Evaluate a JS expression in the page (awaited when it is a promise)."""
        return self.command("evaluate", timeout=timeout, expression=expression)

    def unregister(self, timeout=10):
        """REGISTER with Expires 0; returns the 'unregistered' event."""
        since = time.monotonic()
        self.command("unregister")
        return self.wait_event("unregistered", timeout, since=since)

    # ------------------------------------------------------------ waiting
    def find_events(self, etype, since=0.0):
        with self._lock:
            return [e for e in self.events if e.get("type") == etype and e["_t"] >= since]

    def wait_event(self, etype, timeout=10, since=0.0, fail_on=()):
        def cond():
            for bad in fail_on:
                if self.find_events(bad, since):
                    raise Fatal(f"browser: {bad} {self.find_events(bad, since)} while waiting "
                                f"for {etype}")
            ev = self.find_events(etype, since)
            if ev:
                return ev[0]
            self._check_alive()
            return None
        return wait_for(cond, timeout, f"browser event {etype}; got "
                        f"{[e.get('type') for e in self.events][-10:]}")

    def wait_registered(self, timeout=10):
        """The 'registered' event; fails at once on 'registrationFailed'."""
        return self.wait_event("registered", timeout, fail_on=("registrationFailed",))

    def wait_message(self, text, timeout=10):
        """(from URI, body) of the first MESSAGE the page received whose body contains text."""
        def cond():
            for e in self.find_events("message"):
                if text in e.get("text", ""):
                    return e["from"], e["text"]
            self._check_alive()
            return None
        return wait_for(cond, timeout, f"browser receiving MESSAGE {text!r}; got "
                        f"{[e.get('text') for e in self.find_events('message')]}")

    def blocked(self):
        """URLs the page tried outside 127.0.0.1 (aborted)."""
        return [e["url"] for e in self.find_events("blocked")]

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------ stop
    def stop(self, timeout=10):
        """'stop' (JsSIP stops, the browser closes), then SIGTERM/SIGKILL by PID; the
        HTTP server stops too. Returns the driver's exit code (0: clean)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.command("stop", timeout=timeout)
            except (AssertionError, Fatal, OSError):
                pass
            stop_group(self.proc, timeout)
        for h in self._chromium:
            if h.poll() is None:
                try:
                    os.killpg(h.pid, signal.SIGKILL) if h.own_group else h.kill()
                except ProcessLookupError:
                    pass
        self.server.stop()
        for f in (self.proc and self.proc.stdin,):
            try:
                f and f.close()
            except OSError:
                pass
        return self.proc.returncode if self.proc else None
