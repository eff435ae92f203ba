"""Redis goes away and comes back: readiness follows, no daemon restarts."""
import signal

from skeinlib import Node, Redis, http, run, skeinctl, tmpdir, wait_for
import time


def test_readyz_follows_redis():
    tmp = tmpdir()
    redis = Redis(tmp).start()
    a = Node(tmp, redis, "a", roles=("registrar", "edge"))
    pr = a.start("registrar")
    pe = a.start("edge")
    redis.stop(signal.SIGTERM)
    stopped = time.monotonic()
    for role in ("registrar", "edge"):
        wait_for(lambda: http(a.http[role], "/readyz")[0] == 503, 4, f"{role} /readyz 503")
    took = time.monotonic() - stopped
    assert took <= 2.0, f"/readyz still 200 {took:.2f}s after redis stopped"
    print(f"    /readyz 503 on both daemons {took:.3f}s after redis stopped")
    st, body = http(a.http["registrar"], "/readyz")
    assert "redis" in body, body
    # Alive all the same: /healthz is about the process, not its dependencies.
    assert http(a.http["registrar"], "/healthz")[0] == 200

    restarted = time.monotonic()
    redis.start()  # same port, empty data: the heartbeat re-registers the members
    for role in ("registrar", "edge"):
        wait_for(lambda: http(a.http[role], "/readyz")[0] == 200, 10, f"{role} ready again")
    print(f"    /readyz 200 again {time.monotonic() - restarted:.3f}s after redis restarted")
    assert pr.poll() is None and pe.poll() is None, "a daemon restarted"
    wait_for(lambda: len(skeinctl(a.conf, "nodes")[1]) == 2, 5, "members back in redis")
    rc, out, _ = skeinctl(a.conf, "ping", "--role=registrar", "--count=10")
    assert rc == 0 and out["ok"] == 10, out
    _, m = http(a.http["registrar"], "/metrics")
    assert "skein_registrar_redis_up 1" in m, m


def test_redis_hung_is_a_timeout_not_a_hang():
    """SIGSTOP: the TCP connection stays up but nothing answers."""
    tmp = tmpdir()
    redis = Redis(tmp).start()
    a = Node(tmp, redis, "a", extra="redis_timeout = 500ms")
    a.start("registrar")
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: http(a.http["registrar"], "/readyz")[0] == 503, 5,
                 "/readyz 503 while redis is stopped")
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: http(a.http["registrar"], "/readyz")[0] == 200, 10, "ready again")
    _, m = http(a.http["registrar"], "/metrics")
    assert "skein_registrar_redis_timeouts_total 0" not in m, m


if __name__ == "__main__":
    run([test_readyz_follows_redis, test_redis_hung_is_a_timeout_not_a_hang])
