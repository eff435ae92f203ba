#!/usr/bin/env python3
"""The 49 RFC 4475 torture messages sent byte for byte over UDP to a running edge:
each gets the RFC's outcome on the wire (the response code it names, or a normal
answer for the valid ones, or silence for the unusable responses), and the edge
keeps serving throughout. ../shared/rfc4475/README.md lists the expectations;
docs/edge-sip-checks.md the choices where the RFC leaves the code open."""
import os
import re

from skeinlib import SRC, metric, http, run
from sipcluster import Cluster, RawSip, request

RFC4475 = os.path.join(SRC, "..", "shared", "rfc4475")
SANITY = {400, 416, 420, 483, 501, 505, 513}
DROP = "drop"

# file -> expected final status over UDP; 0 = accepted (any answer that is not a
# sanity rejection); DROP = no answer at all: responses that are not ours to forward
# (unreason, noreason, bcast: top Via not this edge, §18.1.2), unusable ones
# (bigcode, scalarlg) and insuf (no Call-ID/From/To: nothing to answer with).
EXPECT = {
    "wsinv.dat": 0, "intmeth.dat": 0, "esc01.dat": 0, "escnull.dat": 0, "esc02.dat": 0,
    "lwsdisp.dat": 0, "longreq.dat": 0, "dblreq.dat": 0, "semiuri.dat": 0,
    "transports.dat": 0, "mpart01.dat": 0, "unreason.dat": DROP, "noreason.dat": DROP,
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400,
    "scalarlg.dat": DROP, "quotbal.dat": 400, "ltgtruri.dat": 400, "lwsruri.dat": 400,
    "lwsstart.dat": 0, "trws.dat": 0, "escruri.dat": 400, "baddate.dat": 0,
    "regbadct.dat": 400, "badaspec.dat": 0, "baddn.dat": 400, "badvers.dat": 505,
    "mismatch01.dat": 400, "mismatch02.dat": 501, "bigcode.dat": DROP, "badbranch.dat": 0,
    "insuf.dat": DROP, "unkscm.dat": 416, "novelsc.dat": 416, "unksm2.dat": 0,
    "bext01.dat": 420, "invut.dat": 0, "regaut01.dat": 0, "multi01.dat": 400,
    "mcl01.dat": 400, "bcast.dat": DROP, "zeromf.dat": 483, "cparam01.dat": 0,
    "cparam02.dat": 0, "regescrt.dat": 0, "sdp01.dat": 0, "inv2543.dat": 0,
}


def test_torture_messages_over_udp():
    c = Cluster(1)
    port = c.sip[0]
    files = sorted(f for f in os.listdir(RFC4475) if f.endswith(".dat"))
    assert len(files) == 49 and set(files) == set(EXPECT), "the table covers all 49"
    cli = RawSip()
    wrong = []
    for f in files:
        with open(os.path.join(RFC4475, f), "rb") as fh:
            data = fh.read()
        m = re.search(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", data, re.M | re.I)
        call_id = m.group(1).decode(errors="replace") if m else None
        m = re.search(rb"branch=([^;,\s]+)", data)
        branch = m.group(1).decode(errors="replace") if m else None
        cli.send(port, data)
        # A probe after each message: its answer proves the edge is alive and, over
        # one UDP socket served in order, that nothing more is coming for the message.
        probe = request("OPTIONS", "sip:skein.test", cli.port)
        cli.send(port, probe)
        got = []
        while True:
            m = cli.recv(3.0)
            assert m is not None, f"{f}: the edge stopped answering"
            cid = (m.hdr("call-id") or m.hdr("i") or [""])[0]
            if cid.startswith("probe-"):
                if m.status >= 200:
                    break
                continue
            # late answers to an earlier message (a request routed to a name) are not
            # this message's; a message reusing an earlier one's branch and sent-by is
            # that transaction again (§17.2.3) and gets its answer
            via = (m.hdr("via") or m.hdr("v") or [""])[0]
            if call_id is None or cid == call_id or (branch and f"branch={branch}" in via):
                got.append(m.status)
        finals = [s for s in got if s >= 200]
        want = EXPECT[f]
        if want == DROP:
            ok = not got
        elif want == 0:
            # accepted: answered, and not by the sanity checks (a request routed to a
            # name may get only its 100 before the probe's answer)
            ok = bool(got) and not (set(got) & SANITY)
        else:
            ok = finals == [want] or (f == "dblreq.dat" and want in finals)
        print(f"  {f:16s} expected {want!s:5s} got {got}")
        if not ok:
            wrong.append((f, want, got))
    cli.close()
    assert not wrong, f"wrong outcomes: {wrong}"
    # Still healthy, and the rejections were counted.
    st, text = http(c.nodes[0].http["edge"], "/metrics")
    assert st == 200
    assert metric(text, "skein_edge_sip_rejected_total") is not None


if __name__ == "__main__":
    run([test_torture_messages_over_udp])
