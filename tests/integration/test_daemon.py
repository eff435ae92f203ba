"""What every daemon gives an operator: endpoints, metrics, config checks, drain, reload."""
import json
import os
import re
import signal
import subprocess
import time

from skeinlib import BIN, SRC, Node, Redis, http, metric, run, skeinctl, tmpdir, wait_for


def test_endpoints_and_metrics_format():
    tmp = tmpdir()
    redis = Redis(tmp).start()
    a = Node(tmp, redis, "a", roles=("edge", "registrar"))
    for role in ("edge", "registrar"):
        a.start(role)
        addr = a.http[role]
        assert http(addr, "/healthz") == (200, "ok\n")
        assert http(addr, "/readyz") == (200, "ready\n")
        st, body = http(addr, "/status")
        s = json.loads(body)
        assert st == 200 and s["id"] == f"a/{role}" and s["ready"] and s["redis"] == "up", s
        st, m = http(addr, "/metrics")
        assert st == 200
        assert re.search(r'^skein_build_info\{version="[^"]+",commit="[^"]+",role="%s"\} 1$' % role,
                         m, re.M), m
        assert metric(m, f"skein_{role}_ready") == 1
        # Exposition rules: one TYPE per family, counters end in _total.
        types = re.findall(r"^# TYPE (\S+) (\S+)$", m, re.M)
        assert len(types) == len({t for t, _ in types}), types
        for name, kind in types:
            assert kind != "counter" or name.endswith("_total"), name
        assert metric(m, "process_resident_memory_bytes") > 0
        assert http(addr, "/nope")[0] == 404
    rc, nodes, _ = skeinctl(a.conf, "nodes")
    assert rc == 0 and sorted(n["id"] for n in nodes) == ["a/edge", "a/registrar"], nodes
    rc, table, _ = skeinctl(a.conf, "-o", "table", "nodes")
    assert rc == 0 and "a/registrar" in table and "ROLE" in table, table
    rc, status, _ = skeinctl(a.conf, "status")
    assert rc == 0 and all(s["ready"] for s in status), status


def test_check_config_names_file_line_and_reason():
    tmp = tmpdir()
    bad = os.path.join(tmp, "bad.ini")
    cases = [
        ("[cluster]\nname = x\nbogus = 1\n", r"bad\.ini:3: .*bogus"),
        ("[cluster]\nheartbeat_interval = 3 parsecs\n", r"bad\.ini:2: .*heartbeat_interval"),
        ("[cluster]\n[nosuchsection]\n", r"bad\.ini:2: .*nosuchsection"),
        ("[registrar]\nhttp_listen = nowhere\n", r"bad\.ini:2: .*http_listen"),
        ("[cluster]\nlog_level = loud\n", r"bad\.ini:2: .*log_level"),
        ("[cluster]\nname = a\nname = b\n", r"bad\.ini:3: .*name"),
        ("[registrar]\npres_default_policy = maybe\n", r"bad\.ini:2: .*pres_default_policy"),
        ("[registrar]\nnotify_interval = soon\n", r"bad\.ini:2: .*notify_interval"),
    ]
    for text, want in cases:
        with open(bad, "w") as f:
            f.write(text)
        r = subprocess.run([os.path.join(BIN, "skein-registrar"), "--check-config", "--config", bad],
                           capture_output=True, text=True)
        assert r.returncode == 1, (text, r)
        assert re.search(want, r.stderr), (text, r.stderr)
    good = os.path.join(tmp, "good.ini")
    with open(good, "w") as f:
        f.write("[cluster]\nname = x\n[registrar]\nhttp_listen = 127.0.0.1:1\n[edge]\nanything = 1\n")
    r = subprocess.run([os.path.join(BIN, "skein-registrar"), "--check-config", "--config", good],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r
    # The edge validates its own section: there the unknown key is an error.
    r = subprocess.run([os.path.join(BIN, "skein-edge"), "--check-config", "--config", good],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "good.ini:6" in r.stderr and "anything" in r.stderr, r
    # skein check-config runs every role's check.
    r = subprocess.run([os.path.join(BIN, "skein"), "check-config", "--config", good],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "anything" in r.stderr, r
    # Environment and flags override the file, and are checked as strictly.
    env = dict(os.environ, SKEIN_CLUSTER_NODE_TIMEOUT="soon")
    r = subprocess.run([os.path.join(BIN, "skein-registrar"), "--check-config", "--config", good],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "SKEIN_CLUSTER_NODE_TIMEOUT" in r.stderr, r
    env = dict(os.environ, SKEIN_REGISTRAR_NO_SUCH_KEY="1")
    r = subprocess.run([os.path.join(BIN, "skein-registrar"), "--check-config", "--config", good],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "SKEIN_REGISTRAR_NO_SUCH_KEY" in r.stderr, r
    r = subprocess.run([os.path.join(BIN, "skein-registrar"), "--check-config", "--config", good,
                        "--cluster.drain_timeout=forever"], capture_output=True, text=True)
    assert r.returncode == 1 and "drain_timeout" in r.stderr, r
    r = subprocess.run([os.path.join(BIN, "skein-registrar"), "--check-config", "--config",
                        os.path.join(tmp, "missing.ini")], capture_output=True, text=True)
    assert r.returncode == 1 and "missing.ini" in r.stderr, r


def test_help_lists_every_key_and_docs_match():
    r = subprocess.run([os.path.join(BIN, "skein-registrar"), "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0
    for key in ("node_id", "redis", "node_timeout", "drain_timeout", "log_level", "http_listen",
                "bus_listen", "SKEIN_CLUSTER_REDIS", "SKEIN_REGISTRAR_HTTP_LISTEN"):
        assert key in r.stdout, key
    # docs/configuration.md is generated from the same tables: it may not drift.
    gen = subprocess.run([os.path.join(SRC, "scripts/gen-config-doc.sh"), os.environ["SKEIN_BUILD"]],
                         capture_output=True, text=True, check=True).stdout
    with open(os.path.join(SRC, "docs/configuration.md")) as f:
        assert f.read() == gen, "docs/configuration.md is stale: run `make docs`"


def test_sigterm_drains_then_exits():
    tmp = tmpdir()
    redis = Redis(tmp).start()
    a = Node(tmp, redis, "a")
    p = a.start("registrar")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
    log = a.log("registrar")
    assert "draining" in log and "exited cleanly" in log, log
    # It left the member table itself, without waiting for its heartbeat to expire.
    rc, nodes, _ = skeinctl(a.conf, "nodes")
    assert rc == 0 and nodes == [], nodes


def test_sigterm_readiness_goes_false_while_draining():
    tmp = tmpdir()
    redis = Redis(tmp).start()
    a = Node(tmp, redis, "a", extra="drain_timeout = 2s")
    p = a.start("registrar")
    # A request in progress keeps the daemon draining: hold one with a SIGSTOPped
    # skeinctl? Simpler and deterministic: readiness is 503 from the first instant.
    p.send_signal(signal.SIGTERM)
    st = http(a.http["registrar"], "/readyz")
    assert st[0] in (503, 0), st
    assert p.wait(timeout=10) == 0


def test_sighup_reloads_log_level():
    tmp = tmpdir()
    redis = Redis(tmp).start()
    a = Node(tmp, redis, "a")
    p = a.start("registrar")
    with open(a.conf) as f:
        text = f.read()
    with open(a.conf, "w") as f:
        f.write(text.replace("[cluster]\n", "[cluster]\nlog_level = debug\nheartbeat_interval = 500ms\n"))
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in a.log("registrar"), 5, "reload logged")
    log = a.log("registrar")
    assert "cluster.log_level changed" in log, log
    assert "heartbeat_interval changed but takes effect only after a restart" in log, log
    # keys left at their defaults did not change (bus_listen's default is a path made
    # at start)
    assert "bus_listen changed" not in log, log
    # At debug level every bus request is logged.
    rc, out, _ = skeinctl(a.conf, "ping", "--role=registrar", "--count=3")
    assert rc == 0, out
    wait_for(lambda: "request" in a.log("registrar").split("reloaded")[-1], 5,
             "debug lines after reload")
    # A broken file on SIGHUP is refused and the daemon keeps running.
    with open(a.conf, "a") as f:
        f.write("oops\n")
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in a.log("registrar"), 5, "refused reload logged")
    assert p.poll() is None and http(a.http["registrar"], "/readyz")[0] == 200


def test_admin_log_level():
    tmp = tmpdir()
    redis = Redis(tmp).start()
    a = Node(tmp, redis, "a", extra="admin_token = s3cret")
    a.start("registrar")
    addr = a.http["registrar"]
    assert http(addr, "/admin/log", "PUT", b"debug")[0] == 401
    hdr = {"Authorization": "Bearer s3cret"}
    assert http(addr, "/admin/log", "PUT", b"info,bus=debug", hdr) == (200, "info,bus=debug\n")
    assert http(addr, "/admin/log", "PUT", b"info,bus=chatty", hdr)[0] == 400
    assert http(addr, "/admin/log", headers=hdr) == (200, "info,bus=debug\n")


if __name__ == "__main__":
    run([test_endpoints_and_metrics_format, test_check_config_names_file_line_and_reason,
         test_help_lists_every_key_and_docs_match, test_sigterm_drains_then_exits,
         test_sigterm_readiness_goes_false_while_draining, test_sighup_reloads_log_level,
         test_admin_log_level])
