#!/usr/bin/env python3
"""Conformance run over the public captures in ../shared/pcaps/.

For every capture: mxtrace must not crash, must exit 0 (or 3 for a damaged
file, with a message naming it), every output line must be a JSON event with
the common fields, and every session must end with exactly one session.end.
Where tshark is installed, every SMTP command and reply code tshark sees must
also be in mxtrace's output (tshark misses pipelined commands and BDAT, so
mxtrace may see more; it must not see less).  Exit 77 (skipped) when the
shared folder is absent, as in a user's clone.
"""
import collections, json, os, subprocess, sys

MX = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("MX_SHARED", os.path.join(ROOT, "..", "shared"))
# With a second argument, check that folder of captures instead (the
# project's own); tshark-truth.sh is still taken from the shared tools.
PCAPS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(SHARED, "pcaps")
TRUTH = os.path.join(SHARED, "tools", "tshark-truth.sh")

if not os.path.isdir(PCAPS):
    print(f"SKIP: {PCAPS} not found (the public captures are not part of a clone)")
    sys.exit(77)

# Real SMTP verbs: tshark reports any first word of a client line as a
# command, AUTH responses and message text included.
VERBS = {"HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN",
         "HELP", "NOOP", "QUIT", "STARTTLS", "AUTH", "ETRN", "TURN", "ATRN", "XCLIENT", "XFORWARD"}

# Where tshark is wrong, checked by hand against the bytes of the capture.
TSHARK_WRONG = {
    # the client sends QUIT where the server asked for the AUTH user name; the
    # server answers "334 Password:", so the line was a credential, not QUIT
    ("sv-smtp-long-command.pcap", "command QUIT"),
}

have_tshark = (subprocess.run(["sh", "-c", "command -v tshark"], capture_output=True).returncode == 0
               and os.path.exists(TRUTH))
failures = []
verdicts = collections.Counter()
checked = 0

def fail(name, msg):
    failures.append(f"{name}: {msg}")

def tshark_view(path, extra):
    out = subprocess.run(["sh", TRUTH, path] + extra, capture_output=True, text=True).stdout
    cmds, codes, alerts = collections.Counter(), collections.Counter(), collections.Counter()
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 14:
            continue
        if len(f) >= 17:
            for a in filter(None, f[16].split(",")):
                alerts[int(a)] += 1
        for c in filter(None, f[10].split(",")):
            c = c.upper()
            if c == "STAR":          # tshark splits STARTTLS as STAR + TLS
                c = "STARTTLS"
            cmds[c] += 1
        for r in filter(None, f[12].split(",")):
            codes[int(r)] += 1
    return cmds, codes, alerts

for sub in sorted(os.listdir(PCAPS)) + ["."]:
    d = os.path.join(PCAPS, sub)
    if not os.path.isdir(d) or sub.startswith(("certs", "src")):
        continue
    for fn in sorted(os.listdir(d)):
        if fn.startswith("broken-"):
            continue            # made broken on purpose: see tests/cli.sh
        if not fn.endswith((".pcap", ".pcapng")):
            continue
        path = os.path.join(d, fn)
        # the TLS alert captures are on web ports: follow them as implicit TLS
        opts = ["-p", "2525"]
        extra = []
        if sub == "tls-alerts":
            opts += ["--tls-port", "443,465", "--any-port"]
        r = subprocess.run([MX, "-r", path, "-F", "ndjson"] + opts, capture_output=True)
        checked += 1
        if r.returncode not in (0, 3):
            fail(fn, f"exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
            continue
        if r.returncode == 3 and path not in r.stderr.decode(errors="replace"):
            fail(fn, "damaged-file message does not name the file")
        sessions = collections.defaultdict(list)
        mx_cmds, mx_codes, mx_alerts = collections.Counter(), collections.Counter(), collections.Counter()
        mx_ja3 = set()
        try:
            text = r.stdout.decode("utf-8")
        except UnicodeDecodeError as e:
            fail(fn, f"output is not UTF-8: {e}")
            continue
        for ln, line in enumerate(text.splitlines(), 1):
            try:
                ev = json.loads(line)
            except ValueError as e:
                fail(fn, f"line {ln} is not JSON: {e}")
                continue
            for k in ("type", "session", "ts", "frame"):
                if k not in ev:
                    fail(fn, f"line {ln} lacks {k}")
            sessions[ev.get("session")].append(ev)
            if ev.get("type") == "smtp.command":
                mx_cmds[ev["verb"].upper()] += 1
            elif ev.get("type") == "smtp.reply":
                # tshark reports a code per segment: a multi-line reply
                # split over segments counts once per segment, never more
                # than once per line
                mx_codes[ev["code"]] += max(1, len(ev.get("lines", [])))
            elif ev.get("type") == "tls.alert" and "code" in ev:
                mx_alerts[ev["code"]] += 1
            elif ev.get("type") == "tls.client_hello":
                mx_ja3.add(ev["ja3"])
            elif ev.get("type") == "tls.server_hello":
                mx_ja3.add(ev["ja3s"])
        for sid, evs in sessions.items():
            ends = [e for e in evs if e["type"] == "session.end"]
            if len(ends) != 1 or evs[-1]["type"] != "session.end":
                fail(fn, f"session {sid} does not end with one session.end")
                continue
            v = ends[0].get("verdict", {}).get("code") if isinstance(ends[0].get("verdict"), dict) else None
            verdicts[v or "(none)"] += 1
            if not v:
                fail(fn, f"session {sid} ends with no verdict")
            # On the mail ports nDPI runs only its mail dissectors: its label
            # is SMTP, SMTPS or TLS (with a sub-protocol), or Unknown.
            nd = ends[0].get("ndpi")
            if "--any-port" not in opts and isinstance(nd, dict):
                label = str(nd.get("protocol", ""))
                if label.split(".")[0] not in ("SMTP", "SMTPS", "TLS", "Unknown"):
                    fail(fn, f"session {sid}: nDPI label {label!r} on a mail port")
        if have_tshark:
            t_cmds, t_codes, t_alerts = tshark_view(path, extra)
            # JA3 / JA3S as tshark computes them (where mxtrace saw TLS hellos)
            ja = "" if not mx_ja3 else subprocess.run(["tshark", "-r", path, "-n", "-d", "tcp.port==587,smtp", "-d", "tcp.port==465,tls",
                                 "-Y", "tls.handshake.type==1 || tls.handshake.type==2", "-T", "fields",
                                 "-e", "tls.handshake.ja3", "-e", "tls.handshake.ja3s"],
                                capture_output=True, text=True).stdout
            for h in ja.split():
                if h not in mx_ja3 and mx_ja3:
                    fail(fn, f"tshark's JA3/JA3S {h} not in mxtrace's output")
            for c, n in t_alerts.items():
                if mx_alerts[c] < n and (fn, f"alert {c}") not in TSHARK_WRONG:
                    fail(fn, f"tshark sees alert {c} x{n}, mxtrace x{mx_alerts[c]}")
            for c, n in t_codes.items():
                if mx_codes[c] < n and (fn, f"reply {c}") not in TSHARK_WRONG:
                    fail(fn, f"tshark sees reply {c} x{n}, mxtrace x{mx_codes[c]}")
            for c, n in t_cmds.items():
                if c in VERBS and mx_cmds[c] < n and (fn, f"command {c}") not in TSHARK_WRONG:
                    fail(fn, f"tshark sees command {c} x{n}, mxtrace x{mx_cmds[c]}")

print(f"checked {checked} captures" + ("" if have_tshark else " (tshark absent: no comparison)"))
print("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items(), key=lambda x: (-x[1], str(x[0])))))
for f in failures:
    print("FAIL " + f)
print(f"{checked - len({f.split(':')[0] for f in failures})} passed, {len({f.split(':')[0] for f in failures})} failed")
sys.exit(1 if failures else 0)
