"""skeinctl domain/user/reg against a real redis-server: what is stored (HA1s, never the
password), the JSON and table output, and every error with its exit status and message."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from skeinlib import Redis, run, skeinctl, tmpdir  # noqa: E402

CLUSTER = "prov"


def setup():
    tmp = tmpdir()
    redis = Redis(tmp).start()
    conf = os.path.join(tmp, "node.ini")
    with open(conf, "w") as f:
        f.write(f"[cluster]\nname = {CLUSTER}\nredis = {redis.addr}\nstate_dir = {tmp}\n")
    return redis, conf


def ok(conf, *args):
    rc, out, err = skeinctl(conf, *args)
    assert rc == 0, f"skeinctl {' '.join(args)}: exit {rc}: {err}"
    return out


def fails(conf, code, fragment, *args):
    rc, out, err = skeinctl(conf, *args)
    assert rc == code, f"skeinctl {' '.join(args)}: exit {rc}, wanted {code} ({err!r})"
    assert fragment in err, f"skeinctl {' '.join(args)}: {err!r} does not say {fragment!r}"
    assert out in ("", None), f"skeinctl {' '.join(args)} printed {out!r} on failure"


def all_bytes(redis):
    """Every key and every value in Redis (strings, hashes, sets, zsets)."""
    blobs = []
    for k in redis.cmd("KEYS", "*"):
        blobs.append(k)
        t = redis.cmd("TYPE", k)
        if t == "string":
            blobs.append(redis.cmd("GET", k))
        elif t == "hash":
            blobs += redis.cmd("HGETALL", k)
        elif t == "set":
            blobs += redis.cmd("SMEMBERS", k)
        elif t == "zset":
            blobs += redis.cmd("ZRANGE", k, 0, -1)
    return blobs


def test_domains():
    redis, conf = setup()
    assert ok(conf, "domain", "list") == []
    assert ok(conf, "domain", "add", "Example.COM") == {"domain": "example.com", "added": True}
    ok(conf, "domain", "add", "example.org")
    assert redis.cmd("SMEMBERS", f"{CLUSTER}:{{domains}}:set") in (
        [b"example.com", b"example.org"], [b"example.org", b"example.com"])
    fails(conf, 1, "domain example.com already exists", "domain", "add", "example.com")
    fails(conf, 2, "invalid domain", "domain", "add", "exa_mple.com")
    fails(conf, 2, "invalid domain", "domain", "add", "bad{slot}.com")
    fails(conf, 2, "usage: skeinctl domain add", "domain", "add")
    fails(conf, 2, "domain takes add, list or del", "domain", "frob")
    fails(conf, 2, "unknown or incomplete option", "domain", "list", "--bogus")
    assert ok(conf, "domain", "list") == [{"domain": "example.com", "users": 0},
                                          {"domain": "example.org", "users": 0}]
    rc, out, _ = skeinctl(conf, "-o", "table", "domain", "list")
    assert rc == 0 and "example.org" in out and out.startswith("DOMAIN"), out

    # A domain with users is kept unless --force, which takes its users along.
    ok(conf, "user", "add", "bob@example.org", "--password", "pw")
    fails(conf, 1, "still has 1 user(s)", "domain", "del", "example.org")
    assert ok(conf, "domain", "del", "example.org", "--force") == {
        "domain": "example.org", "deleted": True}
    assert redis.cmd("EXISTS", f"{CLUSTER}:{{bob@example.org}}:cred") == 0
    assert redis.cmd("EXISTS", f"{CLUSTER}:{{example.org}}:users") == 0
    fails(conf, 1, "no such domain example.org", "domain", "del", "example.org")
    assert ok(conf, "domain", "list") == [{"domain": "example.com", "users": 0}]


def test_users():
    redis, conf = setup()
    ok(conf, "domain", "add", "example.com")
    out = ok(conf, "user", "add", "alice@Example.com", "--password", "secret")
    assert out["aor"] == "alice@example.com" and out["created_ms"] > 1600000000000, out

    cred = redis.cmd("HGETALL", f"{CLUSTER}:{{alice@example.com}}:cred")
    cred = dict(zip(cred[::2], cred[1::2]))
    assert set(cred) == {b"ha1_md5", b"ha1_sha256", b"created_ms"}, cred
    assert cred[b"ha1_md5"].decode() == hashlib.md5(b"alice:example.com:secret").hexdigest()
    assert cred[b"ha1_sha256"].decode() == \
        hashlib.sha256(b"alice:example.com:secret").hexdigest()
    assert redis.cmd("SMEMBERS", f"{CLUSTER}:{{example.com}}:users") == [b"alice"]

    fails(conf, 1, "user alice@example.com already exists",
          "user", "add", "alice@example.com", "--password", "other")
    fails(conf, 1, "unknown domain nowhere.org",
          "user", "add", "bob@nowhere.org", "--password", "x")
    fails(conf, 2, "needs --password", "user", "add", "bob@example.com")
    fails(conf, 2, "the password must be", "user", "add", "bob@example.com", "--password=")
    fails(conf, 2, "invalid address of record", "user", "add", "bob", "--password", "x")
    fails(conf, 2, "invalid address of record", "user", "add", "b{o}b@example.com",
          "--password", "x")
    fails(conf, 2, "does not take --password", "user", "del", "alice@example.com",
          "--password", "x")

    ok(conf, "user", "add", "bob@example.com", "--password", "hunter2")
    assert [u["aor"] for u in ok(conf, "user", "list")] == ["alice@example.com",
                                                            "bob@example.com"]
    assert [u["aor"] for u in ok(conf, "user", "list", "example.com")] == [
        "alice@example.com", "bob@example.com"]
    fails(conf, 1, "no such domain", "user", "list", "example.net")

    # Passwords change the HA1s only; created_ms stays.
    ok(conf, "user", "passwd", "alice@example.com", "--password", "n3w")
    assert redis.cmd("HGET", f"{CLUSTER}:{{alice@example.com}}:cred", "ha1_md5").decode() == \
        hashlib.md5(b"alice:example.com:n3w").hexdigest()
    assert redis.cmd("HGET", f"{CLUSTER}:{{alice@example.com}}:cred", "created_ms") == \
        cred[b"created_ms"]
    fails(conf, 1, "no such user", "user", "passwd", "carol@example.com", "--password", "x")

    # No password in clear anywhere in Redis.
    for blob in all_bytes(redis):
        for pw in (b"secret", b"hunter2", b"n3w", b"other"):
            assert pw not in blob, f"{pw!r} stored in clear: {blob!r}"

    # Deleting a user removes its bindings too.
    redis.cmd("HSET", f"{CLUSTER}:{{bob@example.com}}:reg", "sip:bob@192.0.2.1", "x")
    redis.cmd("ZADD", f"{CLUSTER}:{{bob@example.com}}:exp", "99999999999999", "sip:bob@192.0.2.1")
    assert ok(conf, "user", "del", "bob@example.com") == {"aor": "bob@example.com",
                                                         "deleted": True}
    for what in ("cred", "reg", "exp", "meta"):
        assert redis.cmd("EXISTS", f"{CLUSTER}:{{bob@example.com}}:{what}") == 0, what
    assert redis.cmd("SMEMBERS", f"{CLUSTER}:{{example.com}}:users") == [b"alice"]
    fails(conf, 1, "no such user bob@example.com", "user", "del", "bob@example.com")
    fails(conf, 2, "user takes add, list, passwd or del", "user", "show")


def test_reg_show():
    redis, conf = setup()
    assert ok(conf, "reg", "show", "alice@Example.com") == {"aor": "alice@example.com",
                                                           "bindings": []}
    rc, out, _ = skeinctl(conf, "-o", "table", "reg", "show", "alice@example.com")
    assert rc == 0 and "no bindings for alice@example.com" in out, out
    fails(conf, 2, "invalid address of record", "reg", "show", "alice")
    fails(conf, 2, "reg takes show", "reg", "list")
    # A binding that expired long ago (score 1 ms after the epoch) is not shown, and
    # the lookup purges it.
    redis.cmd("HSET", f"{CLUSTER}:{{alice@example.com}}:reg", "sip:a@192.0.2.1", b"\x0a\x0fsip:a@192.0.2.1")
    redis.cmd("ZADD", f"{CLUSTER}:{{alice@example.com}}:exp", "1", "sip:a@192.0.2.1")
    assert ok(conf, "reg", "show", "alice@example.com")["bindings"] == []
    assert redis.cmd("EXISTS", f"{CLUSTER}:{{alice@example.com}}:reg") == 0
    # A live one is shown (a Binding with only its contact set, field 1); this one in
    # the three-key layout of earlier versions, which the lookup moves into :reg.
    redis.cmd("HSET", f"{CLUSTER}:{{alice@example.com}}:reg", "sip:a@192.0.2.1", b"\x0a\x0fsip:a@192.0.2.1")
    redis.cmd("ZADD", f"{CLUSTER}:{{alice@example.com}}:exp", "99999999999999", "sip:a@192.0.2.1")
    b = ok(conf, "reg", "show", "alice@example.com")["bindings"]
    assert len(b) == 1 and b[0]["contact"] == "sip:a@192.0.2.1" and b[0]["expires_in"] > 0, b
    assert redis.cmd("EXISTS", f"{CLUSTER}:{{alice@example.com}}:exp") == 0
    assert redis.cmd("HGET", f"{CLUSTER}:{{alice@example.com}}:reg",
                     "\x01sip:a@192.0.2.1").startswith(b"99999999999999 0 0 ")
    # One in the one-hash layout, beside it: both shown.
    redis.cmd("HSET", f"{CLUSTER}:{{alice@example.com}}:reg", "sip:a@192.0.2.2",
              b"\x0a\x0fsip:a@192.0.2.2", "\x01sip:a@192.0.2.2", "99999999999998 1 1 c")
    b = ok(conf, "reg", "show", "alice@example.com")["bindings"]
    assert sorted(x["contact"] for x in b) == ["sip:a@192.0.2.1", "sip:a@192.0.2.2"], b


def test_redis_down():
    redis, conf = setup()
    redis.stop()
    fails(conf, 1, "cannot connect to redis", "domain", "list")
    fails(conf, 1, "cannot connect to redis", "user", "add", "a@example.com", "--password", "x")


if __name__ == "__main__":
    run([test_domains, test_users, test_reg_show, test_redis_down])
