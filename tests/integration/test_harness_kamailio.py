"""Proves the SIP test drivers (sipplib, baresiplib, the sipp/*.xml scenarios)
against a Kamailio 5.6 stand-in for the Skein edge (kamlib: digest registrar +
record-routing, transaction-stateful proxy that challenges INVITE/MESSAGE).
When the edge is ready, the same drivers are pointed at its address.

Skips (exit 0, message on stdout) when kamailio or sipp is missing; skips only
the baresip test when baresip is missing. Takes ~7 s."""
import sys

import baresiplib
import kamlib
import sipplib
from sipplib import SippServer, register, sipp
from skeinlib import run, tmpdir, wait_for

PW = {"alice": "alice-pw", "bob": "bob-pw", "callee": "callee-pw", "ringer": "ringer-pw",
      "busy": "busy-pw", "inbox": "inbox-pw", "bralice": "bralice-pw", "brbob": "brbob-pw"}
LOAD = {f"load{i:03d}": f"pw{i:03d}" for i in range(200)}
PW.update(LOAD)


def kamailio(tmp):
    return kamlib.Kamailio(tmp, PW).start()


def contact_port():
    """A host:port nobody listens on, used as a REGISTER contact."""
    return f"127.0.0.1:{sipplib.free_ports(1)[0]}"


# ------------------------------------------------------------------ sipp

def test_sipp_register_refresh_unregister():
    tmp = tmpdir()
    kam = kamailio(tmp)
    c1, c2 = contact_port(), contact_port()

    # REGISTER -> 401 -> REGISTER+auth -> 200 listing our contact
    r = register(kam.addr, "alice", PW["alice"], c1, workdir=tmp)
    assert r.trace.responses("REGISTER") == [401, 200], r.explain()
    sent = r.trace.find(request="REGISTER", direction="sent")
    assert sent[0].header("Authorization") is None and sent[1].header("Authorization"), sent
    assert kam.contacts("alice") == [f"sip:alice@{c1};transport=UDP"], kam.contacts("alice")

    # refresh in the same Call-ID; Kamailio accepts the nonce again (no 2nd 401)
    r = sipp("reg_refresh.xml", kam.addr, user="alice", password=PW["alice"], contact=c1,
             workdir=tmp)
    assert r.ok, r.explain()
    assert r.trace.responses("REGISTER") == [401, 200, 200], r.explain()
    regs = r.trace.find(request="REGISTER", direction="sent")
    assert len({m.header("Call-ID") for m in regs}) == 1 and [m.cseq for m in regs] == [1, 2, 3]
    assert len(kam.contacts("alice")) == 1

    # second binding over TCP: both listed
    register(kam.addr, "alice", PW["alice"], c2, transport="t1", workdir=tmp)
    assert sorted(kam.contacts("alice")) == sorted(
        [f"sip:alice@{c1};transport=UDP", f"sip:alice@{c2};transport=TCP"]), kam.contacts("alice")

    # unregister one: the 200 lists the other binding only
    r = sipp("unreg.xml", kam.addr, user="alice", password=PW["alice"], contact=c1, workdir=tmp)
    assert r.ok, r.explain()
    left = r.trace.find(status=200, method="REGISTER")[-1].headers("Contact")
    assert len(left) == 1 and c2 in left[0] and c1 not in left[0], left
    assert kam.contacts("alice") == [f"sip:alice@{c2};transport=TCP"]

    # Contact: * removes the rest (the scenario asserts the 200 lists none)
    register(kam.addr, "alice", PW["alice"], c1, workdir=tmp)
    r = sipp("unreg_all.xml", kam.addr, user="alice", password=PW["alice"], workdir=tmp)
    assert r.ok, r.explain()
    assert wait_for(lambda: kam.contacts("alice") == [], 2, "no alice binding left")

    # many users from one CSV (the load-test shape): 200 digest registrations at 400/s
    r = sipp("reg.xml", kam.addr, users=sorted(LOAD.items()), contact=c1, calls=len(LOAD),
             rate=400, workdir=tmp)
    assert r.ok and r.successful == len(LOAD), r.explain()
    assert all(kam.contacts(u) == [f"sip:{u}@{c1};transport=UDP"] for u in ("load000", "load199"))

    # the scenarios can fail: a wrong password is challenged again -> failed call, rc 1
    r = sipp("reg.xml", kam.addr, user="bob", password="wrong", contact=c1, workdir=tmp,
             timeout_s=5)
    assert not r.ok and r.rc == 1 and r.failed == 1, r.explain()
    assert r.trace.responses("REGISTER") == [401, 401], r.explain()
    assert kam.contacts("bob") == []


def test_sipp_call_through_proxy():
    tmp = tmpdir()
    kam = kamailio(tmp)
    # UAC and UAS both over UDP, then both over TCP (the contact's transport= is the
    # REGISTER's, so the UAS registers over its own transport)
    for transport in ("u1", "t1"):
        uas = SippServer("uas.xml", transport=transport, workdir=tmp).start()
        register(kam.addr, "callee", PW["callee"], uas.addr, transport=transport, workdir=tmp)
        r = sipp("uac_call.xml", kam.addr, service="callee", user="alice", password=PW["alice"],
                 transport=transport, workdir=tmp, extra=["-d", "300"])
        assert r.ok, r.explain()
        # INVITE -> 407 -> ACK -> INVITE with Proxy-Authorization -> 100 -> 180 -> 200
        assert r.trace.responses("INVITE") == [407, 100, 180, 200], r.explain()
        invites = r.trace.find(request="INVITE", direction="sent")
        assert [bool(m.header("Proxy-Authorization")) for m in invites] == [False, True]
        # the route set: the 200 carries Kamailio's Record-Route, ACK and BYE are routed by it
        ok200 = r.trace.find(status=200, method="INVITE")[0]
        rr = ok200.headers("Record-Route")
        assert rr and all(kam.addr in h for h in rr), ok200.text
        for req in ("ACK", "BYE"):
            m = r.trace.find(request=req, method=req, direction="sent")[-1]
            assert m.header("Route") and kam.addr in m.header("Route"), m.text
        assert r.trace.responses("BYE") == [200], r.explain()

        uas.wait_received("BYE")
        res = uas.stop()
        assert uas.trace.requests() == ["INVITE", "ACK", "BYE"], uas.trace.requests()
        assert {m.transport for m in uas.trace.messages} == {"UDP" if transport == "u1" else "TCP"}
        assert uas.trace.find(request="INVITE")[0].header("Record-Route"), "proxy did not RR"
        assert res.successful == 1 and res.failed == 0, res.explain()


def test_sipp_cancel_and_busy():
    tmp = tmpdir()
    kam = kamailio(tmp)
    ringer = SippServer("uas_ring.xml", workdir=tmp).start()
    busy = SippServer("uas_486.xml", workdir=tmp).start()
    register(kam.addr, "ringer", PW["ringer"], ringer.addr, workdir=tmp)
    register(kam.addr, "busy", PW["busy"], busy.addr, workdir=tmp)

    # CANCEL after 180: 200 for the CANCEL, 487 for the INVITE, ACK to the 487
    r = sipp("uac_cancel.xml", kam.addr, service="ringer", user="alice", password=PW["alice"],
             workdir=tmp)
    assert r.ok, r.explain()
    assert r.trace.responses("INVITE") == [407, 100, 180, 487], r.explain()
    assert r.trace.responses("CANCEL") == [200], r.explain()
    inv = r.trace.find(request="INVITE", direction="sent")[-1]
    cancel = r.trace.find(request="CANCEL", direction="sent")[0]
    assert cancel.branch == inv.branch and cancel.cseq == inv.cseq, (inv, cancel)
    ringer.wait_received("ACK")
    assert ringer.trace.requests() == ["INVITE", "CANCEL", "ACK"], ringer.trace.requests()

    # 486 Busy Here relayed back, ACKed on both hops
    r = sipp("uac_486.xml", kam.addr, service="busy", user="alice", password=PW["alice"],
             workdir=tmp)
    assert r.ok, r.explain()
    assert r.trace.responses("INVITE") == [407, 100, 486], r.explain()
    busy.wait_received("ACK")
    assert busy.trace.requests() == ["INVITE", "ACK"], busy.trace.requests()

    # a scenario that expects 180 fails at once when the callee answers 486 instead
    r = sipp("uac_cancel.xml", kam.addr, service="busy", user="alice", password=PW["alice"],
             workdir=tmp, timeout_s=5)
    assert not r.ok and r.rc == 1 and r.failed == 1, r.explain()
    assert r.trace.find(status=486, unexpected=True), r.explain()


def test_sipp_invite_retransmission_absorbed():
    tmp = tmpdir()
    kam = kamailio(tmp)
    uas = SippServer("uas.xml", workdir=tmp).start()
    register(kam.addr, "callee", PW["callee"], uas.addr, workdir=tmp)
    r = sipp("uac_retrans.xml", kam.addr, service="callee", user="alice", password=PW["alice"],
             workdir=tmp)
    assert r.ok, r.explain()
    # sipp runs this one with -abortunexp off: only the racing 100 may have been unexpected
    assert all(m.status == 100 for m in r.trace.find(unexpected=True)), r.explain()
    sent = r.trace.find(request="INVITE", direction="sent")
    assert [m.cseq for m in sent] == [1, 2, 2], sent
    assert sent[1].text == sent[2].text, "the copy is not byte-identical"
    # the proxy absorbed the copy: the callee saw one INVITE, the caller one 200
    uas.wait_received("BYE")
    assert uas.received("INVITE") == 1, uas.trace.requests()
    assert r.trace.count(status=200, method="INVITE") == 1, r.explain()
    # provisional responses may be resent for the copy, but only as identical copies
    for code in (100, 180):
        texts = {m.text for m in r.trace.find(status=code, method="INVITE")}
        assert len(texts) == 1, (code, texts)
    assert uas.trace.count(status=180, direction="sent") == 1
    res = uas.stop()
    assert res.successful == 1, res.explain()


def test_sipp_message():
    tmp = tmpdir()
    kam = kamailio(tmp)
    inbox = SippServer("msg_uas.xml", workdir=tmp).start()
    register(kam.addr, "inbox", PW["inbox"], inbox.addr, workdir=tmp)
    r = sipp("msg.xml", kam.addr, service="inbox", user="alice", password=PW["alice"],
             workdir=tmp, calls=3)
    assert r.ok and r.successful == 3, r.explain()
    assert r.trace.count(status=407) == 3 and r.trace.count(status=200) == 3, r.explain()
    inbox.wait_received("MESSAGE", 3)
    bodies = sorted(m.body.strip() for m in inbox.trace.find(request="MESSAGE"))
    assert bodies == [f"hello {i} from alice" for i in (1, 2, 3)], bodies
    # nobody registered as "nobody": 404 and a failed scenario
    r = sipp("msg.xml", kam.addr, service="nobody", user="alice", password=PW["alice"],
             workdir=tmp, timeout_s=5)
    assert not r.ok and 404 in r.trace.responses("MESSAGE"), r.explain()


def test_sipp_scenarios_without_call_challenge():
    """The 407 in the UAC scenarios is optional: against a proxy that does not
    challenge calls/MESSAGEs the same XML takes the short path."""
    tmp = tmpdir()
    kam = kamlib.Kamailio(tmp, PW, call_auth=False).start()
    uas = SippServer("uas.xml", workdir=tmp).start()
    ringer = SippServer("uas_ring.xml", workdir=tmp).start()
    busy = SippServer("uas_486.xml", workdir=tmp).start()
    inbox = SippServer("msg_uas.xml", workdir=tmp).start()
    for user, srv in (("callee", uas), ("ringer", ringer), ("busy", busy), ("inbox", inbox)):
        register(kam.addr, user, PW[user], srv.addr, workdir=tmp)
    expect = {("uac_call.xml", "callee"): ("INVITE", [100, 180, 200]),
              ("uac_cancel.xml", "ringer"): ("INVITE", [100, 180, 487]),
              ("uac_486.xml", "busy"): ("INVITE", [100, 486]),
              ("msg.xml", "inbox"): ("MESSAGE", [200])}
    for (scenario, callee), (method, codes) in expect.items():
        r = sipp(scenario, kam.addr, service=callee, user="alice", password=PW["alice"],
                 workdir=tmp)
        assert r.ok, r.explain()
        assert r.trace.responses(method) == codes, (scenario, r.explain())
        assert r.trace.count(request=method, direction="sent") == 1, r.explain()
    uas.wait_received("BYE")
    inbox.wait_received("MESSAGE")


# ------------------------------------------------------------------ baresip

def test_baresip_udp_tcp_call_rtp_and_message():
    tmp = tmpdir()
    kam = kamailio(tmp)
    a = baresiplib.Baresip(tmp, "bralice", PW["bralice"], kam.addr, transport="udp",
                           contacts=["sip:brbob@skein.test"]).start()
    b = baresiplib.Baresip(tmp, "brbob", PW["brbob"], kam.addr, transport="tcp",
                           answer="manual").start()
    a.wait_registered()
    b.wait_registered()
    assert kam.contacts("bralice")[0].endswith(f":{a.sip_port}"), kam.contacts("bralice")
    assert kam.contacts("brbob")[0].endswith(f":{b.sip_port};transport=tcp"), kam.contacts("brbob")

    # A (UDP) calls B (TCP) through the proxy; B accepts; audio both ways
    a.dial("sip:brbob@skein.test")
    b.wait_event("CALL_INCOMING")
    assert b.accept().get("ok")
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    sa = a.wait_rtp(rx_min=100, tx_min=100)     # 2 s of 20 ms packets each way
    sb = b.wait_rtp(rx_min=100, tx_min=100)
    assert sa["codec_tx"].startswith("opus") and sa["rx_lost"] == 0, sa
    assert sa["remote"].split("/")[0] == sb["local"].replace("0.0.0.0", "127.0.0.1"), (sa, sb)
    a.hangup()
    assert a.final_rtp["tx_packets"] >= sa["tx_packets"], (a.final_rtp, sa)
    a.wait_event("CALL_CLOSED")
    closed = b.wait_event("CALL_CLOSED")
    assert closed["peeruri"].startswith("sip:bralice@"), closed

    # MESSAGE A -> B (proxy-authenticated by A, delivered over B's TCP binding)
    assert a.message("sip:brbob@skein.test", "hello-from-bralice").get("ok")
    frm, text = b.wait_message("hello-from-bralice")
    assert frm == "sip:bralice@skein.test" and text == "hello-from-bralice", (frm, text)

    assert a.stop() == 0 and b.stop() == 0


if __name__ == "__main__":
    missing = [name for name, ok in (("kamailio/kamcmd", kamlib.available()),
                                     ("sipp", sipplib.available())) if not ok]
    if missing:
        print(f"skip: {', '.join(missing)} not installed (apt: kamailio sip-tester)")
        sys.exit(0)
    tests = [test_sipp_register_refresh_unregister, test_sipp_call_through_proxy,
             test_sipp_cancel_and_busy, test_sipp_invite_retransmission_absorbed,
             test_sipp_message, test_sipp_scenarios_without_call_challenge]
    if baresiplib.available():
        tests.append(test_baresip_udp_tcp_call_rtp_and_message)
    else:
        print("skip: test_baresip_udp_tcp_call_rtp_and_message (apt: baresip-core baresip)")
    run(tests)
