"""A small SIP user agent over UDP for the presence / IM integration tests (issue 7):
PUBLISH (RFC 3903), SUBSCRIBE dialogs (RFC 6665) and the NOTIFYs they bring, MESSAGE,
with digest answers to 401/407. The tests need to see every NOTIFY of a dialog, in
any order against the 200 of the SUBSCRIBE, and to answer each with a chosen status:
sipp's linear scenarios do that poorly, so this does it in Python.

    ua = UA("bob", "bobpw", c.sip[0])
    r, sub = ua.subscribe("sip:alice@skein.test", "presence")
    n = ua.wait_notify(sub, lambda m: "t-a1" in m.body)
    pidf_tuples(n.body)  # {"t-a1": "open"}
    ua.close()

Every wait is bounded (wait_for) and names what it waited for; received requests
are answered at once from the reader thread (status answer_code, 200 by default)."""
import os
import re
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

from sipcluster import DOMAIN, authorization
from skeinlib import wait_for

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact",
           "l": "content-length", "c": "content-type", "o": "event", "u": "allow-events",
           "k": "supported", "e": "content-encoding", "s": "subject", "r": "refer-to",
           "x": "session-expires"}

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
WINFO_NS = "urn:ietf:params:xml:ns:watcherinfo"
REGINFO_NS = "urn:ietf:params:xml:ns:reginfo"


class SipMsg:
    """One SIP message: start line, headers (compact names mapped, lower case), body."""

    def __init__(self, data, source=None):
        self.raw = data
        self.source = source
        self.t = time.monotonic()
        text = data.decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.start = lines[0]
        self.status = 0
        self.method = None
        self.ruri = None
        if self.start.startswith("SIP/2.0 "):
            self.status = int(self.start.split()[1])
        else:
            parts = self.start.split()
            self.method, self.ruri = parts[0], parts[1] if len(parts) > 1 else ""
        self.headers = []
        for ln in lines[1:]:
            if ln[:1] in (" ", "\t") and self.headers:  # folded line
                k, v = self.headers[-1]
                self.headers[-1] = (k, v + " " + ln.strip())
                continue
            if ":" in ln:
                k, v = ln.split(":", 1)
                k = k.strip().lower()
                self.headers.append((COMPACT.get(k, k), v.strip()))
        n = self.hdr("content-length")
        self.body = body[:int(n)] if n and n.isdigit() else body

    def hdrs(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def hdr(self, name):
        v = self.hdrs(name)
        return v[0] if v else None

    @property
    def call_id(self):
        return self.hdr("call-id")

    @property
    def cseq(self):
        c = (self.hdr("cseq") or "0 X").split()
        return int(c[0]), c[-1]

    def tag(self, which):
        """The tag parameter of the From or To header ('from' / 'to'), or None."""
        m = re.search(r";\s*tag=([^;>\s,]+)", self.hdr(which) or "")
        return m.group(1) if m else None

    def sub_state(self):
        """Subscription-State as (state, {param: value})."""
        v = self.hdr("subscription-state") or ""
        parts = [p.strip() for p in v.split(";")]
        params = {}
        for p in parts[1:]:
            k, _, val = p.partition("=")
            params[k.strip().lower()] = val.strip()
        return parts[0].lower(), params

    def __repr__(self):
        ss = self.hdr("subscription-state")
        return (f"<{self.start} cseq={self.hdr('cseq')}" + (f" ss={ss}" if ss else "") +
                f" body={len(self.body)}B>")


def uri_of(value):
    """The URI of a name-addr / addr-spec header value."""
    m = re.search(r"<([^>]*)>", value or "")
    return m.group(1) if m else (value or "").split(";")[0].strip()


class Sub:
    """Our side (subscriber) of one subscription dialog."""

    def __init__(self, ua, target, event, call_id, from_tag, accept):
        self.ua, self.target, self.event = ua, target, event
        self.call_id, self.from_tag, self.accept = call_id, from_tag, accept
        self.to_tag = None
        self.remote_target = target
        self.route = []
        self.cseq = 1

    def establish(self, resp):
        """Dialog state from the 2xx (RFC 3261 §12.1.2)."""
        self.to_tag = resp.tag("to")
        if resp.hdr("contact"):
            self.remote_target = uri_of(resp.hdr("contact"))
        rr = []
        for v in resp.hdrs("record-route"):
            rr += [x.strip() for x in v.split(",")]
        self.route = list(reversed(rr))

    def refresh(self, expires, extra=()):
        """An in-dialog SUBSCRIBE (refresh; expires 0 = unsubscribe). Returns the final
        response."""
        self.cseq += 1
        hdrs = [f"Event: {self.event}", f"Expires: {expires}"] + list(extra)
        hdrs += [f"Route: {r}" for r in self.route]
        if self.accept:
            hdrs.append(f"Accept: {self.accept}")
        return self.ua.request("SUBSCRIBE", self.remote_target, hdrs,
                               to=f"<{self.target}>;tag={self.to_tag}",
                               call_id=self.call_id, from_tag=self.from_tag, cseq=self.cseq,
                               auth=False)


class UA:
    """user@domain on a UDP socket of 127.0.0.1, sending everything to the edge on
    127.0.0.1:edge_port (an outbound proxy)."""

    def __init__(self, user, password, edge_port, domain=DOMAIN, ip="127.0.0.1"):
        self.user, self.password, self.edge_port, self.domain = user, password, edge_port, domain
        self.aor = f"sip:{user}@{domain}"
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((ip, 0))
        self.ip, self.port = ip, self.s.getsockname()[1]
        self.contact = f"<sip:{user}@{ip}:{self.port}>"
        self.requests = []      # received requests (SipMsg), arrival order
        self.responses = []     # received responses
        self.answer_code = 200  # status our reader answers requests with
        self.lock = threading.Lock()
        self.closed = False
        self.n = 0
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    # ------------------------------------------------------------ transport
    def _loop(self):
        self.s.settimeout(0.2)
        while not self.closed:
            try:
                data, src = self.s.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                m = SipMsg(data, src)
            except Exception:  # noqa: BLE001 - junk on the socket: ignore
                continue
            with self.lock:
                (self.responses if m.status else self.requests).append(m)
            if not m.status and m.method != "ACK":
                self._answer(m, src)

    def _answer(self, req, src):
        code = self.answer_code
        reason = {200: "OK", 481: "Call/Transaction Does Not Exist", 486: "Busy Here"}.get(
            code, "Whatever")
        to = req.hdr("to") or ""
        if code >= 200 and ";tag=" not in to.replace(" ", ""):
            to += f";tag=ua{self.port}"
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in req.hdrs("via")]
        lines += [f"From: {req.hdr('from')}", f"To: {to}", f"Call-ID: {req.call_id}",
                  f"CSeq: {req.hdr('cseq')}", "Content-Length: 0", "", ""]
        dest = src
        m = re.match(r"SIP/2\.0/UDP\s+([\d.]+):(\d+)", (req.hdrs("via") or [""])[0], re.I)
        if m:
            rp = re.search(r";rport=(\d+)", req.hdrs("via")[0])
            rc = re.search(r";received=([\d.]+)", req.hdrs("via")[0])
            dest = (rc.group(1) if rc else m.group(1), int(rp.group(1) if rp else m.group(2)))
        try:
            self.s.sendto("\r\n".join(lines).encode(), dest)
        except OSError:
            pass

    def send_raw(self, data):
        self.s.sendto(data if isinstance(data, bytes) else data.encode(),
                      ("127.0.0.1", self.edge_port))

    def close(self):
        self.closed = True
        self.s.close()

    # ------------------------------------------------------------ requests
    def build(self, method, ruri, headers=(), body="", ctype=None, to=None, call_id=None,
              from_tag=None, cseq=1, branch=None):
        self.n += 1
        branch = branch or f"z9hG4bK-ua-{self.port}-{self.n}-{time.monotonic_ns()}"
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport",
                 "Max-Forwards: 70",
                 f"From: <{self.aor}>;tag={from_tag}",
                 f"To: {to or f'<{ruri}>'}",
                 f"Call-ID: {call_id}",
                 f"CSeq: {cseq} {method}",
                 f"Contact: {self.contact}",
                 "User-Agent: skein-it-preslib"]
        lines += list(headers)
        b = body.encode() if isinstance(body, str) else body
        if b and ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(b)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + b

    def _final(self, call_id, cseq, method, timeout, resend):
        """The final response to (call_id, cseq, method); resend() every second until
        anything answers (UDP, RFC 3261 §17.1.2.2 in spirit)."""
        end = time.monotonic() + timeout
        next_tx = time.monotonic() + 1.0
        provisional = False
        while time.monotonic() < end:
            with self.lock:
                rs = [r for r in self.responses if r.call_id == call_id and r.cseq == (cseq, method)]
            fin = [r for r in rs if r.status >= 200]
            if fin:
                return fin[0]
            provisional = provisional or bool(rs)
            if not provisional and time.monotonic() >= next_tx:
                resend()
                next_tx = time.monotonic() + 1.0
            time.sleep(0.01)
        return None

    def request(self, method, ruri, headers=(), body="", ctype=None, to=None, call_id=None,
                from_tag=None, cseq=1, auth=True, timeout=8):
        """Send a request; answer one 401/407 with digest when auth. Returns the final
        response (None on timeout); .challenge is the 401/407 answered, if any."""
        call_id = call_id or f"{method.lower()}-{self.user}-{self.port}-{time.monotonic_ns()}"
        from_tag = from_tag or f"ft{self.port}x{self.n}"
        kw = dict(body=body, ctype=ctype, to=to, call_id=call_id, from_tag=from_tag)
        data = self.build(method, ruri, headers, cseq=cseq, **kw)
        self.send_raw(data)
        r = self._final(call_id, cseq, method, timeout, lambda: self.send_raw(data))
        if r is None or r.status not in (401, 407) or not auth:
            if r is not None:
                r.challenge = None
            return r
        proxy = r.status == 407
        chals = r.hdrs("proxy-authenticate" if proxy else "www-authenticate")
        algs = [re.search(r"algorithm=\"?([\w-]+)", c, re.I) for c in chals]
        algs = [a.group(1).upper() for a in algs if a]
        alg = "SHA-256" if "SHA-256" in algs else "MD5"
        a = authorization(chals, method, ruri, self.user, self.password, alg, proxy=proxy)
        data = self.build(method, ruri, list(headers) + [a.rstrip("\r\n")], cseq=cseq + 1, **kw)
        self.send_raw(data)
        r2 = self._final(call_id, cseq + 1, method, timeout, lambda: self.send_raw(data))
        if r2 is not None:
            r2.challenge = r
        return r2

    # ------------------------------------------------------------ PUBLISH
    def publish(self, body=None, event="presence", expires=3600, if_match=None,
                ctype="application/pidf+xml", ruri=None, extra=()):
        """PUBLISH (RFC 3903 §4): initial (body, no if_match), refresh (if_match, no
        body), modify (both), remove (if_match, expires 0)."""
        hdrs = [f"Event: {event}", f"Expires: {expires}"] + list(extra)
        if if_match:
            hdrs.append(f"SIP-If-Match: {if_match}")
        return self.request("PUBLISH", ruri or self.aor, hdrs, body=body or "",
                            ctype=ctype if body else None)

    # ------------------------------------------------------------ SUBSCRIBE / NOTIFY
    def subscribe(self, target, event="presence", expires=600, accept=None, extra=(),
                  auth=True):
        """An initial SUBSCRIBE; returns (final response, Sub) — the Sub's dialog is
        set from a 2xx."""
        call_id = f"sub-{self.user}-{self.port}-{time.monotonic_ns()}"
        self.n += 1
        from_tag = f"st{self.port}x{self.n}"
        sub = Sub(self, target, event, call_id, from_tag, accept)
        hdrs = [f"Event: {event}", f"Expires: {expires}"] + list(extra)
        if accept:
            hdrs.append(f"Accept: {accept}")
        r = self.request("SUBSCRIBE", target, hdrs, call_id=call_id, from_tag=from_tag,
                         auth=auth)
        if r is not None and 200 <= r.status < 300:
            sub.establish(r)
            sub.cseq = r.cseq[0]
        return r, sub

    def notifies(self, sub):
        with self.lock:
            return [m for m in self.requests
                    if m.method == "NOTIFY" and m.call_id == sub.call_id
                    and m.tag("to") == sub.from_tag]

    def wait_notify(self, sub, pred=None, after=0, timeout=10, what="NOTIFY"):
        """The first NOTIFY of sub, from the after-th on (0 = the first ever), for
        which pred(msg) holds."""
        def cond():
            for m in self.notifies(sub)[after:]:
                if pred is None or pred(m):
                    return m
            return None
        return wait_for(cond, timeout, f"{what} to {self.user} (dialog {sub.call_id}); got "
                        f"{self.notifies(sub)[after:]!r}"[:3000], interval=0.02)

    def messages(self):
        with self.lock:
            return [m for m in self.requests if m.method == "MESSAGE"]


# ---------------------------------------------------------------- documents

def pidf(entity, tuples, note=None):
    """A PIDF document (RFC 3863): tuples = [(id, basic, note or None)]."""
    ts = "".join(
        f'  <tuple id="{tid}"><status><basic>{basic}</basic></status>'
        f'<contact>{entity}</contact>' + (f"<note>{tn}</note>" if tn else "") + "</tuple>\n"
        for tid, basic, tn in tuples)
    n = f"  <note>{note}</note>\n" if note else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<presence xmlns="{PIDF_NS}" entity="{entity}">\n{ts}{n}</presence>\n')


def pidf_tuples(body):
    """{tuple id: basic} of a PIDF document; raises if it is not one <presence>."""
    root = ET.fromstring(body.encode())
    assert root.tag == f"{{{PIDF_NS}}}presence", root.tag
    out = {}
    for t in root.findall(f"{{{PIDF_NS}}}tuple"):
        b = t.find(f"{{{PIDF_NS}}}status/{{{PIDF_NS}}}basic")
        out[t.get("id")] = b.text.strip() if b is not None and b.text else None
    return out


def pidf_tuple_notes(body):
    """{tuple id: [note texts]}."""
    root = ET.fromstring(body.encode())
    return {t.get("id"): [n.text for n in t.findall(f"{{{PIDF_NS}}}note")]
            for t in root.findall(f"{{{PIDF_NS}}}tuple")}


def winfo_watchers(body):
    """[(watcher uri, status, event)] of a watcherinfo document (RFC 3858), all lists."""
    root = ET.fromstring(body.encode())
    assert root.tag == f"{{{WINFO_NS}}}watcherinfo", root.tag
    out = []
    for wl in root.findall(f"{{{WINFO_NS}}}watcher-list"):
        for w in wl.findall(f"{{{WINFO_NS}}}watcher"):
            out.append(((w.text or "").strip(), w.get("status"), w.get("event")))
    return out


def reginfo_contacts(body):
    """[(aor, registration state, contact uri, contact state)] of a reginfo document
    (RFC 3680)."""
    root = ET.fromstring(body.encode())
    assert root.tag == f"{{{REGINFO_NS}}}reginfo", root.tag
    out = []
    for reg in root.findall(f"{{{REGINFO_NS}}}registration"):
        for c in reg.findall(f"{{{REGINFO_NS}}}contact"):
            u = c.find(f"{{{REGINFO_NS}}}uri")
            out.append((reg.get("aor"), reg.get("state"), (u.text or "").strip() if u is not None
                        else None, c.get("state")))
    return out


def mwi_waiting(body):
    """The Messages-Waiting value of a message-summary body (RFC 3842), lower case."""
    m = re.search(r"^Messages-Waiting:\s*(\w+)", body, re.M | re.I)
    return m.group(1).lower() if m else None


# ---------------------------------------------------------------- XCAP

def xcap(base, path, user, password, method="GET", data=None, ctype=None, headers=()):
    """(status, headers, body) of one XCAP request made by curl with digest auth."""
    args = ["curl", "-sS", "-g", "--max-time", "10", "-X", method, "-D", "-",
            "--digest", "-u", f"{user}:{password}"]
    if data is not None:
        args += ["--data-binary", "@-"]
    if ctype:
        args += ["-H", f"Content-Type: {ctype}"]
    for h in headers:
        args += ["-H", h]
    args.append(base + path)
    r = subprocess.run(args, input=(data or "").encode(), capture_output=True, timeout=20)
    assert r.returncode == 0, f"curl {method} {path}: {r.stderr.decode()}"
    out = r.stdout.decode("utf-8", "replace")
    blocks = [b for b in re.split(r"(?=^HTTP/1\.1 \d{3})", out, flags=re.M)
              if b.startswith("HTTP/1.1 ") and not b.startswith("HTTP/1.1 100")]
    head, _, body = blocks[-1].partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs, body


def pres_rules(rules):
    """A pres-rules document (RFC 5025): rules = [(id, identity ids or None for
    everyone, sub-handling, provide all?)]."""
    out = []
    for rid, ids, handling, provide in rules:
        cond = ("<cr:conditions><cr:identity>" + "".join(f'<cr:one id="{i}"/>' for i in ids)
                + "</cr:identity></cr:conditions>") if ids else "<cr:conditions/>"
        tr = ("<cr:transformations><pr:provide-services><pr:all-services/></pr:provide-services>"
              "<pr:provide-persons><pr:all-persons/></pr:provide-persons>"
              "<pr:provide-devices><pr:all-devices/></pr:provide-devices>"
              "<pr:provide-all-attributes/></cr:transformations>") if provide else ""
        out.append(f'  <cr:rule id="{rid}">{cond}<cr:actions><pr:sub-handling>{handling}'
                   f'</pr:sub-handling></cr:actions>{tr}</cr:rule>\n')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" '
            'xmlns:pr="urn:ietf:params:xml:ns:pres-rules">\n' + "".join(out) + "</cr:ruleset>\n")


def pres_env_ok():
    return os.path.exists("/usr/bin/curl")
