#!/usr/bin/env python3
"""The registrar's count walk (skein_registrar_bindings / skein_registrar_aors, issue 6):
it visits the whole keyspace with SCAN, so its pages are paced — a walk spreads over
about half of count_interval instead of keeping Redis busy in one burst — and the
figures stay exact with thousands of other keys (nonce-count records, here fillers)
around the bindings."""
from skeinlib import Monitor, http, metric, run, wait_for
from sipcluster import DOMAIN, Cluster, digest_register

USERS = [("alice", "alice-pw"), ("bob", "bob-pw")]
FILL = 4000


def scans(lines, cluster):
    """(time, cursor) of each SCAN of the count walk, in order."""
    out = []
    for ln in lines:
        parts = ln.split('"')
        if len(parts) > 7 and parts[1] == "SCAN" and parts[7] == f"{cluster}:{{*}}:reg":
            out.append((float(ln.split()[0].lstrip("+")), parts[3]))
    return out


def test_walk_paced_and_exact():
    c = Cluster(1, users=USERS, registrar_extra={"count_interval": "2s"})
    # thousands of keys that are not bindings, as nonce-count records would be
    c.redis.cmd("EVAL", "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'filler:' .. i, 'x') "
                "end return 1", "0", str(FILL))
    for i, (user, pw) in enumerate(USERS):
        r, _ = digest_register(c.sip[0], user, pw, f"<sip:{user}@127.0.0.1:{6501 + i}>")
        assert r is not None and r.status == 200, r and r.start
    # an AOR still in the three-key layout of earlier versions (two live bindings, one
    # expired): counted from its expiry ZSET until a REGISTER moves it
    carol = "t:{carol@" + DOMAIN + "}"
    for i, score in enumerate(("99999999999999", "99999999999999", "1")):
        c.redis.cmd("HSET", f"{carol}:reg", f"sip:carol@192.0.2.{i}", "x")
        c.redis.cmd("ZADD", f"{carol}:exp", score, f"sip:carol@192.0.2.{i}")
    reg = c.nodes[0].http["registrar"]
    wait_for(lambda: metric(http(reg, "/metrics")[1], "skein_registrar_aors") == 3, 15,
             "skein_registrar_aors == 3")
    assert metric(http(reg, "/metrics")[1], "skein_registrar_bindings") == 4
    # alice's binding expired (its expiry, which leads the field beside it, in the
    # past): no longer counted, nor is her AOR
    alice = "t:{alice@" + DOMAIN + "}:reg"
    c.redis.cmd("EVAL", "for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do "
                "if string.byte(f) == 1 then redis.call('HSET', KEYS[1], f, "
                "(string.gsub(redis.call('HGET', KEYS[1], f), '^%d+', '1000'))) end end "
                "return 1", "1", alice)
    wait_for(lambda: metric(http(reg, "/metrics")[1], "skein_registrar_aors") == 2, 15,
             "skein_registrar_aors == 2")
    assert metric(http(reg, "/metrics")[1], "skein_registrar_bindings") == 3

    # two walks' worth: the first after a walk of this keyspace is paced
    mon = Monitor(c.redis)
    seen = mon.lines(6.0)
    mon.close()
    walks, cur = [], None
    for t, cursor in scans(seen, "t"):
        if cursor == "0":
            cur = [t]
            walks.append(cur)
        elif cur is not None:
            cur.append(t)
    done = [w for w in walks[:-1] if len(w) > 1] or [w for w in walks if len(w) > 1]
    assert done, f"no walk of several pages seen: {walks}"
    w = done[0]
    pages = len(w)
    assert pages >= 4, f"{FILL} keys in {pages} pages?"
    gaps = [b - a for a, b in zip(w, w[1:])]
    # count_interval 2 s: spread over ~1 s, so ~1 s / pages between pages (a timer
    # never fires early; the bound leaves room for a page count that changed by one)
    assert min(gaps) >= 0.5 * 1.0 / (pages + 1), (pages, gaps)
    assert metric(http(reg, "/metrics")[1], "skein_registrar_aors") == 2


if __name__ == "__main__":
    run([test_walk_paced_and_exact])
