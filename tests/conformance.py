#!/usr/bin/env python3
"""Conformance run of mxtrace against tshark over a folder of captures.

    conformance.py MXTRACE [FOLDER] [--print-unlisted]

FOLDER defaults to the public captures in ../shared/pcaps/ (exit 77,
skipped, when it is absent, as in a user's clone); the project's own
pcaps/ are checked the same way by a second test.

For every capture mxtrace must not crash, must exit 0 (or 3 for a damaged
file, with a message naming it), every output line must be a JSON event with
the common fields, every session must end with exactly one session.end with a
verdict, and nDPI's label on the mail ports must be a mail protocol.

Where tshark is installed, mxtrace is then compared with tshark's dissectors
(../shared/tools/tshark-truth.sh), frame by frame and in both directions:

  command  every SMTP command (verb, frame)
  reply    every reply code (code, frame)
  alert    every TLS alert with a readable code (code, sender, frame)
  rst      every TCP reset on a followed connection (frame, sender); a
           tcp.rst / tcp.refused event matches the frame it names in `frame`
           or lists in `frames`
  ja3      every JA3/JA3S tshark computes is in mxtrace's output

Known quirks of tshark are normalised below, each with its reason.  Every
other difference must be listed in tests/conformance-exceptions.txt, one per
line: capture, kind, key, reason, separated by tabs.  The run fails on a
difference that is not listed and on a listed one that no longer happens
(stale); --print-unlisted prints the unlisted ones in the file's format, with
an empty reason to fill in after reading the packets.

tshark's output is cached under the build folder (conformance-cache/), keyed
by the capture's path, size and mtime and by the tshark command line, since
tshark is most of the run's time.  MX_CONF_CACHE=off disables the cache,
MX_CONF_CACHE=DIR moves it.
"""
import collections, concurrent.futures, hashlib, json, os, subprocess, sys

# the run's own events: they belong to no session
RUN_EVENTS = {"output.drop", "capture.stats", "capture.loss", "attempt.end"}

args = [a for a in sys.argv[1:] if not a.startswith("--")]
flags = {a for a in sys.argv[1:] if a.startswith("--")}
if not args or flags - {"--print-unlisted"}:
    sys.exit(__doc__)
MX = args[0]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("MX_SHARED", os.path.join(ROOT, "..", "shared"))
# With a second argument, check that folder of captures instead (the
# project's own); tshark-truth.sh is still taken from the shared tools.
PCAPS = args[1] if len(args) > 1 else os.path.join(SHARED, "pcaps")
TRUTH = os.path.join(SHARED, "tools", "tshark-truth.sh")
EXCEPTIONS = os.path.join(ROOT, "tests", "conformance-exceptions.txt")
PRINT_UNLISTED = "--print-unlisted" in flags

if not os.path.isdir(PCAPS):
    print(f"SKIP: {PCAPS} not found (the public captures are not part of a clone)")
    sys.exit(77)

# Real SMTP verbs.  tshark reports the first word of any client line as a
# command: message text (after a DATA it did not see accepted), AUTH
# responses, BDAT chunk contents.  Only these verbs are compared; any other
# word tshark calls a command is not (mxtrace writes such lines as UNKNOWN,
# withheld, and message text not at all).
VERBS = {"HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN",
         "HELP", "NOOP", "QUIT", "STARTTLS", "AUTH", "ETRN", "TURN", "ATRN", "XCLIENT", "XFORWARD"}
MAIL_PORTS = {25, 587, 465}
KINDS = {f"{d}-{k}" for d in ("missing", "extra") for k in ("command", "reply", "alert", "rst", "ja3")}

# Columns of tshark-truth.sh, then the fields this script appends to it.
(C_FRAME, C_TIME, C_STREAM, C_SRC4, C_SRC6, C_SPORT, C_DST4, C_DST6, C_DPORT, C_FLAGS,
 C_CMD, C_CMDARG, C_CODE, C_RSPARG, C_HS, C_ALEVEL, C_ADESC, C_JA3, C_JA3S, C_CTYPE) = range(20)
AGG = "\x01"       # aggregator: reply texts and message lines hold commas
# tshark options for one capture, where its defaults hide what is there.
TSHARK_OPTS = {
    # The capture point recorded two of the server's replies (frames 9 and 13,
    # 250 to HELO and to MAIL) just after the client's ACK of them; tshark's
    # sequence analysis then calls them spurious retransmissions and does not
    # dissect them.  Without that analysis it shows both replies and nothing
    # else changes in this capture (no real retransmissions in it).
    "sv-issue-4220-01-ids--1flowB.pcap": ["-o", "tcp.analyze_sequence_numbers:FALSE"],
}
TSHARK_EXTRA = ["-E", "aggregator=" + AGG, "-e", "tls.handshake.ja3", "-e", "tls.handshake.ja3s",
                "-e", "tls.record.content_type"]


def die(msg):
    print("ERROR " + msg)
    sys.exit(1)


def read_exceptions():
    """{(capture, kind, key): reason}; a malformed line stops the run."""
    out = {}
    if not os.path.exists(EXCEPTIONS):
        return out
    with open(EXCEPTIONS, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            f = line.split("\t")
            if len(f) != 4 or not all(x.strip() for x in f):
                die(f"{EXCEPTIONS}:{n}: want capture<TAB>kind<TAB>key<TAB>reason: {line!r}")
            if f[1] not in KINDS:
                die(f"{EXCEPTIONS}:{n}: unknown kind {f[1]!r} (one of {', '.join(sorted(KINDS))})")
            k = (f[0], f[1], f[2])
            if k in out:
                die(f"{EXCEPTIONS}:{n}: listed twice: {' '.join(k)}")
            out[k] = f[3]
    return out


def captures(folder):
    """(subfolder, file name, path) of every capture to check under folder."""
    for sub in sorted(os.listdir(folder)) + ["."]:
        d = os.path.join(folder, sub)
        if not os.path.isdir(d) or sub.startswith(("certs", "src")):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.startswith("broken-"):
                continue            # made broken on purpose: see tests/cli.sh
            if fn.endswith((".pcap", ".pcapng")):
                yield sub, fn, os.path.join(d, fn)


def cache_dir():
    c = os.environ.get("MX_CONF_CACHE")
    if c == "off":
        return None
    c = c or os.path.join(os.path.dirname(os.path.abspath(MX)), "conformance-cache")
    try:
        os.makedirs(c, exist_ok=True)
    except OSError:
        return None
    return c


CACHE = cache_dir()


def tshark_rows(path):
    """tshark-truth.sh's rows for a capture, from the cache when it is fresh."""
    cmd = ["sh", TRUTH, path] + TSHARK_EXTRA + TSHARK_OPTS.get(os.path.basename(path), [])
    key = None
    if CACHE:
        st, ts = os.stat(path), os.stat(TRUTH)
        key = hashlib.sha1(repr((os.path.abspath(path), st.st_size, st.st_mtime_ns,
                                 ts.st_size, ts.st_mtime_ns, cmd[3:])).encode()).hexdigest()
        cpath = os.path.join(CACHE, key + ".tsv")
        if os.path.exists(cpath):
            with open(cpath, encoding="utf-8", errors="replace", newline="") as fh:
                return split_rows(fh.read()), None
    r = subprocess.run(cmd, capture_output=True)
    out = r.stdout.decode("utf-8", errors="replace")
    # a damaged capture: tshark, like mxtrace, reports what comes before
    # the damage, and that is compared
    if r.returncode != 0 and b"appears to be damaged or corrupt" not in r.stderr:
        return [], f"tshark exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[-300:]}"
    if key:
        tmp = os.path.join(CACHE, f"{key}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(out)
        os.replace(tmp, os.path.join(CACHE, key + ".tsv"))
    return split_rows(out), None


def split_rows(out):
    # tshark ends a row with \n only; str.splitlines() would also cut at the
    # control characters (\x1c, \x85 ...) that garbage reply texts carry
    return [r for r in out.split("\n") if r]


def conn_key(a, b):
    return tuple(sorted([a, b]))


class Capture:
    """mxtrace's and tshark's view of one capture, and their differences."""

    def __init__(self, sub, fn, path):
        self.sub, self.fn, self.path = sub, fn, path
        self.problems = []          # plain failures (crash, shape, verdict)
        self.diffs = []             # (kind, key, detail) before exceptions
        self.verdicts = collections.Counter()
        # the TLS alert captures are on web ports: follow them as implicit TLS
        self.opts = ["-p", "2525"]
        self.ports = MAIL_PORTS | {2525}
        if sub == "tls-alerts":
            self.opts += ["--tls-port", "443,465", "--any-port"]
            self.ports |= {443}

    def fail(self, msg):
        self.problems.append(msg)

    # ---- mxtrace --------------------------------------------------------
    def run_mxtrace(self):
        r = subprocess.run([MX, "-r", self.path, "-F", "ndjson"] + self.opts, capture_output=True)
        if r.returncode not in (0, 3):
            self.fail(f"exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
            return None
        if r.returncode == 3 and self.path not in r.stderr.decode(errors="replace"):
            self.fail("damaged-file message does not name the file")
        try:
            text = r.stdout.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"output is not UTF-8: {e}")
            return None
        events = []
        for ln, line in enumerate(text.splitlines(), 1):
            try:
                ev = json.loads(line)
            except ValueError as e:
                self.fail(f"line {ln} is not JSON: {e}")
                continue
            if not isinstance(ev, dict):
                self.fail(f"line {ln} is not a JSON object")
                continue
            if ev.get("type") in RUN_EVENTS:        # events of the run, no session
                continue
            for k in ("type", "session", "ts", "frame"):
                if k not in ev:
                    self.fail(f"line {ln} lacks {k}")
            events.append(ev)
        return events

    def check_sessions(self, events):
        sessions = collections.defaultdict(list)
        for ev in events:
            sessions[ev.get("session")].append(ev)
        for sid, evs in sessions.items():
            ends = [e for e in evs if e.get("type") == "session.end"]
            if len(ends) != 1 or evs[-1].get("type") != "session.end":
                self.fail(f"session {sid} does not end with one session.end")
                continue
            v = ends[0].get("verdict", {}).get("code") if isinstance(ends[0].get("verdict"), dict) else None
            self.verdicts[v or "(none)"] += 1
            if not v:
                self.fail(f"session {sid} ends with no verdict")
            # On the mail ports nDPI runs only its mail dissectors: its label
            # is SMTP, SMTPS or TLS (with a sub-protocol), or Unknown.
            nd = ends[0].get("ndpi")
            if "--any-port" not in self.opts and isinstance(nd, dict):
                label = str(nd.get("protocol", ""))
                if label.split(".")[0] not in ("SMTP", "SMTPS", "TLS", "Unknown"):
                    self.fail(f"session {sid}: nDPI label {label!r} on a mail port")

    # ---- comparison -----------------------------------------------------
    def compare(self, events, rows):
        # mxtrace's connections: endpoints -> server endpoint
        servers, sess_conn = {}, {}
        for ev in events:
            if ev.get("type") == "session.start":
                try:
                    c = (str(ev["client"]["ip"]), int(ev["client"]["port"]))
                    s = (str(ev["server"]["ip"]), int(ev["server"]["port"]))
                except (KeyError, TypeError, ValueError):
                    self.fail(f"session {ev.get('session')}: session.start without client/server")
                    continue
                servers[conn_key(c, s)] = s
                sess_conn[ev.get("session")] = conn_key(c, s)

        # tshark's facts, keyed so that the same fact has the same key on
        # both sides: "FRAME:VERB", "FRAME:CODE", "FRAME:CODE:SENDER",
        # "FRAME:SENDER"
        t = {k: collections.Counter() for k in ("command", "reply", "alert", "rst")}
        t_ja3 = set()
        t_replies = []              # (frame, code, connection)
        for line in rows:
            f = line.split("\t")
            if len(f) != C_CTYPE + 1:
                self.fail(f"tshark line with {len(f)} columns: {line[:120]!r}")
                continue
            try:
                frame = int(f[C_FRAME])
                sport, dport = int(f[C_SPORT] or 0), int(f[C_DPORT] or 0)
            except ValueError:
                continue
            src, dst = (f[C_SRC4] or f[C_SRC6], sport), (f[C_DST4] or f[C_DST6], dport)
            ck = conn_key(src, dst)
            server = servers.get(ck) or (src if sport in self.ports else dst)
            sender = "server" if src == server else "client"
            # only connections mxtrace follows: the mail ports, and those it
            # picked up itself (--any-port)
            if not (ck in servers or sport in self.ports or dport in self.ports):
                continue
            # tshark splits STARTTLS as command STAR (the first four letters),
            # parameter TLS.  Its parameter list skips commands that have none,
            # so it does not line up with the commands: a STAR in a frame with
            # a TLS parameter is STARTTLS.
            star_tls = "TLS" in {a.strip().upper() for a in f[C_CMDARG].split(AGG)}
            for c in filter(None, f[C_CMD].split(AGG)):
                c = c.upper()
                if c == "STAR" and star_tls:
                    c = "STARTTLS"
                if c in VERBS:
                    t["command"][f"{frame}:{c}"] += 1
            for c in filter(None, f[C_CODE].split(AGG)):
                t["reply"][f"{frame}:{c}"] += 1
                t_replies.append((frame, c, ck))
            # a TLS alert tshark can read, and an encrypted one: an alert
            # record (content type 21) whose code tshark cannot read
            descs = [d for d in f[C_ADESC].split(AGG) if d]
            for d in descs:
                t["alert"][f"{frame}:{d}:{sender}"] += 1
            n_enc = f[C_CTYPE].split(AGG).count("21") - len(descs)
            for _ in range(max(0, n_enc)):
                t["alert"][f"{frame}:encrypted:{sender}"] += 1
            if "R" in f[C_FLAGS]:
                t["rst"][f"{frame}:{sender}"] += 1
            t_ja3 |= {h for h in f[C_JA3].split(AGG) + f[C_JA3S].split(AGG) if h}

        m = {k: collections.Counter() for k in ("command", "reply", "alert", "rst")}
        m_ja3 = set()
        m_replies = collections.defaultdict(list)   # connection -> [(frame, code, lines)]
        for ev in events:
            ty, fr = ev.get("type"), ev.get("frame")
            if ty == "smtp.command" and str(ev.get("verb", "")).upper() in VERBS:
                m["command"][f"{fr}:{ev['verb'].upper()}"] += 1
            elif ty == "smtp.reply":
                m["reply"][f"{fr}:{ev.get('code')}"] += 1
                m_replies[sess_conn.get(ev.get("session"))].append(
                    (fr, str(ev.get("code")), len(ev.get("lines") or [])))
            elif ty == "tls.alert":
                code = ev["code"] if "code" in ev else "encrypted"
                m["alert"][f"{fr}:{code}:{ev.get('from')}"] += 1
            elif ty in ("tcp.rst", "tcp.refused"):
                frames = ev.get("frames")
                frames = frames if isinstance(frames, list) and frames else [fr]
                for x in dict.fromkeys(frames + ([fr] if fr not in frames else [])):
                    m["rst"][f"{x}:{ev.get('from')}"] += 1
            elif ty == "tls.client_hello":
                m_ja3.add(ev.get("ja3"))
            elif ty == "tls.server_hello":
                m_ja3.add(ev.get("ja3s"))

        miss = {k: t[k] - m[k] for k in t}
        extra = {k: m[k] - t[k] for k in t}

        # tshark 4.0 does not know BDAT: it shows the segment as SMTP with no
        # command (the chunk's first line becomes a DATA fragment or nothing).
        # An mxtrace BDAT where tshark sees no command at all is not a
        # difference; the commands tshark then misses after it are listed.
        t_frames_with_cmd = {k.split(":")[0] for k in t["command"]}
        for key in list(extra["command"]):
            if key.endswith(":BDAT") and key.split(":")[0] not in t_frames_with_cmd:
                del extra["command"][key]

        # tshark writes the code of a multi-line reply in every segment that
        # carries some of its lines (aiosmtpd sends its EHLO reply one line
        # per segment); mxtrace writes the reply once, at the segment that
        # completes it.  Such a code is matched by the next multi-line reply
        # of the same connection if it has that code.
        for conn in m_replies:
            m_replies[conn].sort(key=lambda x: x[0] if isinstance(x[0], int) else 0)
        for frame, code, ck in t_replies:
            key = f"{frame}:{code}"
            if not miss["reply"][key]:
                continue
            nxt = next((r for r in m_replies.get(ck, []) if isinstance(r[0], int) and r[0] >= frame), None)
            if nxt and nxt[1] == code and nxt[2] > 1 and nxt[0] != frame:
                miss["reply"][key] -= 1
                extra["reply"][f"{nxt[0]}:{code}"] -= 1      # matched now, if it was not

        for k in t:
            for d, kind in ((miss[k], "missing-" + k), (extra[k], "extra-" + k)):
                for key, n in sorted(d.items(), key=lambda x: natural(x[0])):
                    for i in range(n):
                        self.diffs.append((kind, key if i == 0 else f"{key}#{i + 1}"))
        # JA3/JA3S: tshark's must be mxtrace's (where mxtrace saw TLS hellos;
        # one not seen at all shows as a missing alert or command elsewhere)
        if m_ja3:
            for h in sorted(t_ja3 - m_ja3):
                self.diffs.append(("missing-ja3", h))

    def run(self, have_tshark):
        events = self.run_mxtrace()
        if events is None:
            return self
        self.check_sessions(events)
        if have_tshark:
            rows, err = tshark_rows(self.path)
            if err:
                self.fail(err)
            else:
                self.compare(events, rows)
        return self


def natural(key):
    return [int(p) if p.isdigit() else p for p in key.replace("#", ":").split(":")]


def main():
    exceptions = read_exceptions()
    have_tshark = (subprocess.run(["sh", "-c", "command -v tshark"], capture_output=True).returncode == 0
                   and os.path.exists(TRUTH))
    caps = list(captures(PCAPS))
    names = collections.Counter(fn for _, fn, _ in caps)
    for fn, n in names.items():
        if n > 1:
            die(f"capture name {fn} appears {n} times under {PCAPS}: exceptions name captures by file name")
    # An exception names a capture of this folder or of the other one (the
    # project's pcaps/ and the shared ones share the file); any other name is
    # a typo.
    known = set(names)
    for other in (os.path.join(ROOT, "pcaps"), os.path.join(SHARED, "pcaps")):
        if os.path.isdir(other):
            known |= {fn for _, fn, _ in captures(other)}
    # Without the shared folder (a user's clone) its names cannot be told
    # from typos: the check needs both folders.
    both = all(os.path.isdir(d) for d in (os.path.join(ROOT, "pcaps"), os.path.join(SHARED, "pcaps")))
    for cap, kind, key in exceptions:
        if cap not in known and both:
            die(f"{EXCEPTIONS}: no capture named {cap} ({kind} {key})")

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: Capture(*c).run(have_tshark), caps))

    verdicts = collections.Counter()
    failures, unlisted, used = [], [], set()
    for c in results:
        verdicts.update(c.verdicts)
        failures += [f"{c.fn}: {p}" for p in c.problems]
        for kind, key in c.diffs:
            if (c.fn, kind, key) in exceptions:
                used.add((c.fn, kind, key))
            else:
                unlisted.append((c.fn, kind, key))
    stale = []
    if have_tshark:
        stale = sorted(k for k in exceptions if k[0] in names and k not in used)

    print(f"checked {len(caps)} captures" + ("" if have_tshark else " (tshark absent: no comparison)"))
    print("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items(), key=lambda x: (-x[1], str(x[0])))))
    if have_tshark:
        bug = sum(1 for k in used if exceptions[k].startswith("KNOWN-BUG"))
        print(f"differences from tshark: {len(used)} listed ({bug} KNOWN-BUG), "
              f"{len(unlisted)} not listed, {len(stale)} stale")
    for f in failures:
        print("FAIL " + f)
    for cap, kind, key in unlisted:
        print(f"FAIL {cap}: {kind} {key} differs from tshark and is not in {os.path.basename(EXCEPTIONS)}")
    for cap, kind, key in stale:
        print(f"FAIL {cap}: {kind} {key} is listed in {os.path.basename(EXCEPTIONS)} but no longer happens"
              f" (remove it): {exceptions[(cap, kind, key)]}")
    if PRINT_UNLISTED and unlisted:
        print("# unlisted, in the exceptions file's format:")
        for cap, kind, key in unlisted:
            print(f"{cap}\t{kind}\t{key}\t")
    bad = {f.split(":")[0] for f in failures} | {u[0] for u in unlisted} | {s[0] for s in stale}
    print(f"{len(caps) - len(bad & set(names))} passed, {len(bad & set(names))} failed")
    sys.exit(1 if failures or unlisted or stale else 0)


main()
