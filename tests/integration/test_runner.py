"""skein, the node runner: `skein up` (what `make run` starts), Ctrl-C, restarts,
and no orphan process whatever happens to the runner."""
import os
import signal
import subprocess
import time

from skeinlib import BIN, free_port, http, run, skeinctl, start, tmpdir, wait_for


def local_conf(tmp):
    redis_port = free_port()
    http_e, http_r = free_port(), free_port()
    conf = os.path.join(tmp, "local.ini")
    with open(conf, "w") as f:
        f.write(f"""[cluster]
name = up
node_id = local
redis = 127.0.0.1:{redis_port}
redis_embedded = yes
state_dir = {tmp}/state
roles = edge,registrar
drain_timeout = 3s
[edge]
http_listen = 127.0.0.1:{http_e}
[registrar]
http_listen = 127.0.0.1:{http_r}
""")
    return conf, redis_port, {"edge": f"127.0.0.1:{http_e}", "registrar": f"127.0.0.1:{http_r}"}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def redis_pid(port):
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            # redis-server rewrites its title to "redis-server 127.0.0.1:PORT".
            if cmd and b"redis-server" in cmd[0] and f":{port}".encode() in b" ".join(cmd):
                return int(p)
    return None


def up(tmp):
    conf, rport, https = local_conf(tmp)
    log = os.path.join(tmp, "up.log")
    p = start([os.path.join(BIN, "skein"), "up", "--config", conf], log, own_group=True)
    for role, addr in https.items():
        wait_for(lambda: http(addr, "/readyz")[0] == 200, 15, f"{role} ready under skein up")
    wait_for(lambda: "Ctrl-C stops everything" in open(log).read(), 10, "the listener summary")
    return p, conf, rport, https, log


def test_up_serves_and_ctrl_c_leaves_no_process():
    tmp = tmpdir()
    p, conf, rport, https, log = up(tmp)
    out = open(log).read()
    for role, addr in https.items():
        assert f"http://{addr}" in out, out  # it says what listens where
        # curl, as the README tells an operator to.
        r = subprocess.run(["curl", "-sf", f"http://{addr}/healthz"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout == "ok\n", r
        r = subprocess.run(["curl", "-sf", f"http://{addr}/metrics"], capture_output=True, text=True)
        assert r.returncode == 0 and "skein_build_info" in r.stdout, r
    assert f"127.0.0.1:{rport}" in out
    rc, nodes, _ = skeinctl(conf, "nodes")
    pids = [n["pid"] for n in nodes] + [redis_pid(rport)]
    assert len(nodes) == 2 and all(pids), (nodes, pids)
    # Ctrl-C: SIGINT to the foreground process group, as a terminal sends it.
    os.killpg(p.pid, signal.SIGINT)
    assert p.wait(timeout=20) == 0
    wait_for(lambda: not any(alive(x) for x in pids), 5, "every child gone")
    out = open(log).read()
    assert "all stopped" in out, out


def test_role_that_dies_is_restarted():
    tmp = tmpdir()
    p, conf, rport, https, log = up(tmp)
    rc, nodes, _ = skeinctl(conf, "nodes")
    reg = [n for n in nodes if n["role"] == "registrar"][0]
    os.kill(reg["pid"], signal.SIGKILL)
    wait_for(lambda: "registrar died" in open(log).read(), 5, "the death logged")

    def new_pid():
        rc, nodes, _ = skeinctl(conf, "nodes")
        return [n["pid"] for n in nodes if n["role"] == "registrar" and n["pid"] != reg["pid"]]
    wait_for(new_pid, 15, "a new registrar in the table")
    wait_for(lambda: http(https["registrar"], "/readyz")[0] == 200, 10, "restarted registrar ready")
    os.killpg(p.pid, signal.SIGINT)
    assert p.wait(timeout=20) == 0


def test_runner_killed_outright_leaves_no_orphan():
    tmp = tmpdir()
    p, conf, rport, https, log = up(tmp)
    rc, nodes, _ = skeinctl(conf, "nodes")
    pids = [n["pid"] for n in nodes] + [redis_pid(rport)]
    p.send_signal(signal.SIGKILL)  # only the runner: its children must follow
    p.wait()
    wait_for(lambda: not any(alive(x) for x in pids), 10, "children gone after the runner")


if __name__ == "__main__":
    run([test_up_serves_and_ctrl_c_leaves_no_process, test_role_that_dies_is_restarted,
         test_runner_killed_outright_leaves_no_orphan])
