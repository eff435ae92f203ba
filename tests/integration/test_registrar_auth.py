#!/usr/bin/env python3
"""REGISTER's digest with the edge's HA1 cache (issue 6): the edge verifies with the
HA1 it keeps, the nonce-count with the edge that issued the nonce, and the
registrar's script checks, with the binding write, that the HA1 is still the stored
one. So, without restarting any
edge: after `skeinctl user passwd` the old password is refused and the new one
accepted; a replayed Authorization (same nonce and nonce-count) is refused; after
`skeinctl user del` the user cannot register. Node 1's edge caches, node 2's has
auth_cache_size = 0 (every REGISTER reads the HA1): both behave the same. A cached
REGISTER costs one Redis script and no HGET of its own."""
from skeinlib import run
from sipcluster import DOMAIN, Cluster, digest_register

ALG = "SHA-256"


def ok(port, user, pw, contact, **kw):
    r, _ = digest_register(port, user, pw, contact, alg=ALG, **kw)
    assert r is not None and r.status == 200, r.start if r else "no answer"
    assert any(contact.strip("<>") in h for h in r.hdr("contact")), r.hdr("contact")
    return r


def refused(port, user, pw, contact, **kw):
    r, _ = digest_register(port, user, pw, contact, alg=ALG, **kw)
    assert r is not None and r.status == 401, r.start if r else "no answer"
    # a fresh challenge, not a stale one: the client must ask its user
    assert not any("stale=true" in h for h in r.hdr("www-authenticate")), r.start
    return r


def commandstats(c):
    out = c.redis.cmd("INFO", "commandstats")
    out = out.decode() if isinstance(out, bytes) else out
    stats = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            stats[name] = int(dict(kv.split("=") for kv in rest.split(","))["calls"])
    return stats


def count(log, needle):
    return log.count(needle)


def test_password_change_replay_and_delete():
    users = [("alice", "old-pw"), ("bob", "bob-pw")]
    c = Cluster(2, users=users, edge_per_node=lambda i: {"auth_cache_size": "0"} if i else {})
    for i, port in enumerate(c.sip):
        user = ("alice", "bob")[i]
        pw = dict(users)[user]
        aor = f"{user}@{DOMAIN}"
        contact = f"<sip:{user}@127.0.0.1:{6300 + i}>"
        ok(port, user, pw, contact)
        ok(port, user, pw, contact)  # node 1: a cache hit now

        # The password changes: the old one is refused at once, the new one accepted.
        c.ctl("user", "passwd", aor, "--password", "new-pw")
        before = count(c.log(i), "reason=bad-response")
        refused(port, user, pw, contact)
        assert count(c.log(i), "reason=bad-response") == before + 1, c.log(i)[-2000:]
        ok(port, user, "new-pw", contact)
        # and again the other way round: the cache holds the old HA1 this time
        c.ctl("user", "passwd", aor, "--password", "newer-pw")
        ok(port, user, "newer-pw", contact)
        refused(port, user, "new-pw", contact)

        # The same Authorization twice (same nonce, same nonce-count): refused.
        before = count(c.log(i), "reason=replay")
        refused(port, user, "newer-pw", contact, replay=True)
        assert count(c.log(i), "reason=replay") == before + 1, c.log(i)[-2000:]
        ok(port, user, "newer-pw", contact)

        # A cached REGISTER is one script: no HGET of its own (the one counted is the
        # script's check of the HA1), no second EVALSHA, and no nonce-count in Redis
        # (the edge that issued the nonce keeps it). A refresh of the only binding
        # reads and writes the AOR's one hash once each (HGETALL, HSET, PEXPIRE), at
        # Redis' time as the edge samples it: no TIME of its own. The edge's
        # once-a-second tick (TIME, HGETALL of the call limits, SMEMBERS of the
        # domains) may fall in the window: its commands are counted by SMEMBERS.
        if i == 0:
            c.redis.cmd("CONFIG", "RESETSTAT")
            ok(port, user, "newer-pw", contact)
            st = commandstats(c)
            tick = st.get("smembers", 0)
            assert st.get("evalsha", 0) == 1 and st.get("hget") == 1, st
            assert {k: st.get(k, 0) for k in ("time", "hgetall", "hset", "pexpire")} == \
                {"time": tick, "hgetall": 1 + tick, "hset": 1, "pexpire": 1}, st
            assert not {"zadd", "zrange", "hmget"} & set(st), st
            assert "set" not in st and "get" not in st, st

        # The user is deleted: its REGISTER is refused (as an unknown user).
        before = count(c.log(i), "reason=unknown-user")
        c.ctl("user", "del", aor)
        refused(port, user, "newer-pw", contact)
        assert count(c.log(i), "reason=unknown-user") == before + 1, c.log(i)[-2000:]


if __name__ == "__main__":
    run([test_password_change_replay_and_delete])
