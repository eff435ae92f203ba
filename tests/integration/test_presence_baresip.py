#!/usr/bin/env python3
"""Presence between two baresip 1.0.0 phones (a client nobody here wrote) through a
2-node cluster (issue 7): bob on edge 2 publishes (account parameter ;pubint=N: the
presence module PUBLISHes application/pidf+xml to the registrar), alice on edge 1
watches him (contact line with ;presence=p2p: her presence module SUBSCRIBEs to
sip:bob@domain through the edge). pres_default_policy allow. (baresip's subscriber
takes a NOTIFY only with Content-Type exactly "application/pidf+xml", and reads the
first <basic> of the document.) alice's baresip must log
"presence: update status of '<bob>' from '...' to 'online'" and then, when bob says
presence_offline, "... to 'offline'"; and again offline when bob quits (his PUBLISH
with Expires: 0 removes the state; the registrar's document is then a closed tuple).
baresip 1.0.0 knows MD5 digest only, so the edges offer MD5."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresiplib  # noqa: E402
from sipcluster import DOMAIN, Cluster  # noqa: E402
from skeinlib import run, wait_for  # noqa: E402

USERS = (("bpalice", "bpalice-pw"), ("bpbob", "bpbob-pw"))
PW = dict(USERS)
BOB = f"sip:bpbob@{DOMAIN}"


class PresBaresip(baresiplib.Baresip):
    """baresiplib.Baresip with the presence module, extra account parameters and raw
    contact lines (parameters such as ;presence=p2p)."""

    def __init__(self, *a, account_extra="", contact_lines=(), **kw):
        super().__init__(*a, **kw)
        self.account_extra, self.contact_lines = account_extra, list(contact_lines)

    def write_config(self):
        super().write_config()
        with open(os.path.join(self.dir, "config"), "a") as f:
            f.write("module_app\t\tpresence.so\n")
        path = os.path.join(self.dir, "accounts")
        with open(path) as f:
            acc = f.read().rstrip("\n")
        with open(path, "w") as f:
            f.write(acc + self.account_extra + "\n")
        with open(os.path.join(self.dir, "contacts"), "w") as f:
            for line in self.contact_lines:
                f.write(line + "\n")

    def contact_status(self, uri):
        """The presence status baresip shows for contact uri in the ctrl_tcp "contacts"
        listing ("Unknown", "Online", "Offline", "Busy"; lines like
        '>     Online Bob <sip:bob@d>'), lower case; None if not listed."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.command("contacts").get("data", ""))
        for line in text.splitlines():
            if f"<{uri}>" in line:
                words = line.lstrip("> ").split()
                return words[0].lower() if words else None
        return None

    def wait_status(self, uri, status, timeout=15):
        """Poll the contacts listing until uri shows status (baresip 1.0.0 logs the
        change only at debug level)."""
        seen = []

        def cond():
            self._check_alive()
            st = self.contact_status(uri)
            if not seen or seen[-1] != st:
                seen.append(st)
            return st == status
        wait_for(cond, timeout, f"{self.user} showing {uri} {status} (statuses seen: {seen})",
                 interval=0.1)


def test_baresip_presence_online_offline():
    c = Cluster(2, users=USERS, edge_extra={"auth_algorithms": "md5"},
                registrar_extra={"pres_default_policy": "allow", "notify_interval": "200ms",
                                 "timer_interval": "100ms"})
    bob = PresBaresip(c.tmp, "bpbob", PW["bpbob"], c.addr(1), transport="udp", domain=DOMAIN,
                      account_extra=";pubint=60").start()
    bob.wait_registered()
    # bob's presence module publishes once registered: wait for the stored publication
    wait_for(lambda: c.redis.cmd("HLEN", f"t:{{bpbob@{DOMAIN}}}:pubs") >= 1, 15,
             f"bob's PUBLISH stored (log: {bob.log()[-1500:]})")
    alice = PresBaresip(c.tmp, "bpalice", PW["bpalice"], c.addr(0), transport="udp",
                        domain=DOMAIN,
                        contact_lines=[f'"Bob" <{BOB}>;presence=p2p']).start()
    alice.wait_registered()
    alice.wait_status(BOB, "online")

    assert bob.command("presence_offline").get("ok") is not False
    alice.wait_status(BOB, "offline")
    assert bob.command("presence_online").get("ok") is not False
    alice.wait_status(BOB, "online")
    # bob quits: his publisher sends PUBLISH Expires: 0 (publisher_close) -> offline at
    # once; if that PUBLISH is lost in the shutdown (it is challenged and baresip may
    # exit before answering the 407), the publication expires (pubint=60 -> Expires: 60)
    # and the registrar's expiry timer makes the NOTIFY: up to ~60 s
    assert bob.stop() == 0
    alice.wait_status(BOB, "offline", timeout=80)
    assert alice.stop() == 0


if __name__ == "__main__":
    if not baresiplib.available():
        print("baresip not installed: skipped")
        sys.exit(0)
    run([test_baresip_presence_online_offline])
