#!/usr/bin/env python3
"""outputs.py MXTRACE MXGEN PCAPDIR WORKDIR - the --output transports end to end.

Every output is compared with -F ndjson (or the format it was given) on the
same capture: the same records, in the same order, nothing lost and nothing
added.  Collectors are real: Unix-socket readers, a syslog listener that
checks the RFC 5424 / RFC 6587 framing byte by byte, rsyslog with imudp and
imtcp, and redis-server (list, channel, stream).  Outage tests stop the
collector in the middle of a run that reads its capture from a slow pipe,
then bring it back, and check that drops are counted exactly and that events
flow again.  Parts whose collector is not installed are skipped with a
message.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

MX, GEN, PCAPS, WORK = sys.argv[1:5]
os.makedirs(WORK, exist_ok=True)
fails = []
ran = []
skipped = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL:", what)
    return cond


def run(args, **kw):
    return subprocess.run([MX] + args, capture_output=True, **kw)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def lines_of(b):
    return [l for l in b.decode().split("\n") if l]


def is_drop(line):
    return '"output.drop"' in line[:200] or '"action":"output.drop"' in line


def schema_ok(objs, what):
    """Validates output.drop records against the native JSON Schema, when
    the jsonschema module is there."""
    try:
        import jsonschema
    except ImportError:
        skipped.append(f"schema of {what} (no jsonschema)")
        return
    sch = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schema", "mxtrace.schema.json")))
    v = jsonschema.Draft202012Validator(sch)
    for o in objs:
        errs = list(v.iter_errors(o))
        check(not errs, f"{what}: {o} fails the schema: {errs[:1]}")


# ---- captures ------------------------------------------------------------------

SMALL = [os.path.join(PCAPS, "smtp", f) for f in ("s1.pcapng", "s1-plain-delivery.pcap")]
SMALL += [os.path.join(PCAPS, "tls", f) for f in sorted(os.listdir(os.path.join(PCAPS, "tls")))
          if f.endswith(".pcap")][:4]
SMALL_ARGS = sum((["-r", f] for f in SMALL), [])
BIG = os.path.join(WORK, "big.pcap")
subprocess.run([GEN, "-q", "-n", "400", "-c", "20", "-o", BIG, os.path.join(PCAPS, "smtp", "s1-plain-delivery.pcap")],
               check=True)

ref_small = lines_of(run(SMALL_ARGS + ["-F", "ndjson"]).stdout)
ref_big = lines_of(run(["-r", BIG, "-F", "ndjson"]).stdout)
check(len(ref_small) > 50 and len(ref_big) > 4000, "reference outputs too small to test with")


class SlowFeed:
    """Runs mxtrace on -r - and writes the capture into its standard input in
    parts, calling between(i, process) after part i."""

    def __init__(self, args, capture, parts, between, pause=0.3):
        data = open(capture, "rb").read()
        self.p = subprocess.Popen([MX, "-r", "-"] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        # the global header, then packets cut at record boundaries
        off, cuts = 24, []
        while off < len(data):
            incl = int.from_bytes(data[off + 8:off + 12], "little")
            off += 16 + incl
            cuts.append(off)
        step = max(1, len(cuts) // parts)
        bounds = [0] + [cuts[min(len(cuts) - 1, step * (i + 1) - 1)] for i in range(parts - 1)] + [len(data)]
        self.out = self.err = b""
        t = threading.Thread(target=self._drain)
        t.start()
        for i in range(parts):
            self.p.stdin.write(data[bounds[i]:bounds[i + 1]])
            self.p.stdin.flush()
            time.sleep(pause)
            between(i, self.p)
        self.p.stdin.close()
        self.rc = self.p.wait(timeout=120)
        t.join()

    def _drain(self):
        self.out, self.err = self.p.stdout.read(), self.p.stderr.read()


# ---- files -------------------------------------------------------------------------

def test_files():
    d = os.path.join(WORK, "files")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ran.append("file")
    base = os.path.join(d, "ev.ndjson")
    r = run(["-r", BIG, "--output", f"file:{base},rotate-size=64k", "--output", f"file:{d}/tl.json,format=timeline",
             "--output", f"file:{d}/ecs.ndjson,format=ecs", "--output", f"file:{d}/sum.txt,format=summary", "--stats"])
    check(r.returncode == 0, f"file outputs: exit {r.returncode}: {r.stderr.decode()[-300:]}")
    check(r.stdout == b"", "with --output alone, standard output is quiet")
    rotated = sorted(f for f in os.listdir(d) if f.startswith("ev.ndjson."))
    # NAME.STAMP, NAME.STAMP.1, ... then NAME: sort on the number after the stamp
    rotated.sort(key=lambda f: (f.split(".")[2], int(f.split(".")[3]) if len(f.split(".")) > 3 else 0))
    check(len(rotated) >= 3, f"rotate-size=64k made {len(rotated)} rotations of a {len(ref_big)}-line output")
    got = []
    for f in rotated + ["ev.ndjson"]:
        b = open(os.path.join(d, f), "rb").read()
        check(b.endswith(b"\n"), f"{f}: ends in a half line")
        check(len(b) < 64 * 1024 + 20000, f"{f}: {len(b)} bytes, far past rotate-size")
        got += lines_of(b)
    check(got == ref_big, f"rotated files joined differ from -F ndjson ({len(got)} vs {len(ref_big)} lines)")
    m = re.search(rb"output file:\S+ev.ndjson: records (\d+) delivered (\d+) dropped 0 outages 0 rotations (\d+)", r.stderr)
    check(m and int(m.group(1)) == len(ref_big) and int(m.group(3)) == len(rotated), "--stats line of the rotated file")
    for name, fmt in (("tl.json", "timeline"), ("ecs.ndjson", "ecs"), ("sum.txt", "summary")):
        want = run(["-r", BIG, "-F", fmt, "--color", "never"]).stdout
        check(open(os.path.join(d, name), "rb").read() == want, f"file output format={fmt} differs from -F {fmt}")

    # a strftime pattern names the file
    r = run(SMALL_ARGS + ["--output", f"file:{d}/p-%Y%m%d.ndjson"])
    names = [f for f in os.listdir(d) if re.fullmatch(r"p-\d{8}\.ndjson", f)]
    check(len(names) == 1 and lines_of(open(os.path.join(d, names[0]), "rb").read()) == ref_small, "strftime pattern file")

    # appending: a second run adds to the file
    run(SMALL_ARGS + ["--output", f"file:{d}/app.ndjson"])
    run(SMALL_ARGS + ["--output", f"file:{d}/app.ndjson"])
    check(lines_of(open(f"{d}/app.ndjson", "rb").read()) == ref_small * 2, "file output appends")

    # SIGHUP: logrotate moves the file away, mxtrace reopens the name
    hup = os.path.join(d, "hup.ndjson")
    def between(i, p):
        if i == 1:
            os.rename(hup, hup + ".old")
            p.send_signal(signal.SIGHUP)
            time.sleep(0.2)
    f = SlowFeed(["--output", f"file:{hup}"], BIG, 4, between)
    check(f.rc == 0, f"SIGHUP run: exit {f.rc}: {f.err.decode()[-300:]}")
    old = lines_of(open(hup + ".old", "rb").read()) if os.path.exists(hup + ".old") else []
    new = lines_of(open(hup, "rb").read()) if os.path.exists(hup) else []
    check(old and new, f"SIGHUP: {len(old)} lines before and {len(new)} after the reopen")
    check(old + new == ref_big, "SIGHUP: the file before and the file after, joined, differ from -F ndjson")

    # rotate-time: a run that lasts more than two periods
    tdir = os.path.join(d, "t")
    os.makedirs(tdir)
    f = SlowFeed(["--output", f"file:{tdir}/ev.ndjson,rotate-time=1s"], BIG, 4, lambda i, p: time.sleep(0.8))
    files = os.listdir(tdir)
    check(f.rc == 0 and len(files) >= 3, f"rotate-time=1s over ~4 s made {len(files)} files")
    allt = []
    for fn in sorted(files, key=lambda x: (x == "ev.ndjson", x.split(".")[2] if x.count(".") >= 2 else "",
                                           int(x.split(".")[3]) if x.count(".") >= 3 else 0)):
        allt += lines_of(open(os.path.join(tdir, fn), "rb").read())
    check(allt == ref_big, "rotate-time files joined differ from -F ndjson")

    # exit 4 when the file cannot be opened
    r = run(SMALL_ARGS + ["--output", "file:/nonexistent-dir/x.ndjson"])
    check(r.returncode == 4 and b"/nonexistent-dir/x.ndjson" in r.stderr and r.stderr.count(b"\n") == 1,
          f"unopenable file: exit {r.returncode}, {r.stderr!r}")


# ---- Unix sockets ----------------------------------------------------------------------

class UnixReader:
    def __init__(self, path, dgram):
        self.path, self.dgram, self.recs, self.buf = path, dgram, [], b""
        if os.path.exists(path):
            os.unlink(path)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if dgram else socket.SOCK_STREAM)
        self.s.bind(path)
        if not dgram:
            self.s.listen(4)
        self.s.settimeout(0.2)
        self.stop = False
        self.t = threading.Thread(target=self._run)
        self.t.start()

    def _run(self):
        conns = []
        while not self.stop:
            try:
                if self.dgram:
                    self.recs.append(self.s.recv(1 << 20))
                else:
                    c, _ = self.s.accept()
                    c.settimeout(0.2)
                    conns.append(c)
            except socket.timeout:
                pass
            except OSError:
                break
            for c in conns[:]:
                try:
                    b = c.recv(1 << 20)
                    if not b:
                        conns.remove(c)
                    self.buf += b
                except socket.timeout:
                    pass
        for c in conns:
            c.close()

    def close(self):
        self.stop = True
        self.t.join()
        self.s.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def records(self):
        if self.dgram:
            return [r.decode() for r in self.recs]
        return lines_of(self.buf)


def test_unix():
    ran.append("unix")
    for dgram in (False, True):
        kind = "unix-dgram" if dgram else "unix"
        path = os.path.join(WORK, f"{kind}.sock")
        rd = UnixReader(path, dgram)
        r = run(["-r", BIG, "--output", f"{kind}:{path}"])
        time.sleep(0.3)
        rd.close()
        check(r.returncode == 0, f"{kind}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
        got = rd.records()
        check(got == ref_big, f"{kind}: {len(got)} records arrived of {len(ref_big)}, or not the same")
        # no collector at the start: exit 4 and one line
        r = run(SMALL_ARGS + ["--output", f"{kind}:{path}"])
        check(r.returncode == 4 and r.stderr.count(b"\n") == 1 and path.encode() in r.stderr,
              f"{kind} without a reader: exit {r.returncode}, {r.stderr!r}")
    # ECS and timeline over a socket
    path = os.path.join(WORK, "fmt.sock")
    for fmt in ("ecs", "timeline"):
        rd = UnixReader(path, False)
        r = run(SMALL_ARGS + ["--output", f"unix:{path},format={fmt}"])
        time.sleep(0.3)
        rd.close()
        want = lines_of(run(SMALL_ARGS + ["-F", fmt]).stdout)
        check(rd.records() == want, f"unix format={fmt} differs from -F {fmt}")


def test_outage_dgram():
    """The collector goes away for a while: every record either arrives or is
    counted as dropped, the output.drop record says how many, and mxtrace
    keeps reading."""
    ran.append("outage (unix-dgram)")
    path = os.path.join(WORK, "outage.sock")
    readers = [UnixReader(path, True)]

    def between(i, p):
        if i == 8:
            readers[0].close()          # gone: the socket file too
        if i == 26:
            readers.append(UnixReader(path, True))
    f = SlowFeed(["--output", f"unix-dgram:{path},queue-size=512k,backoff-max=500ms", "--stats"], BIG, 40, between, pause=0.15)
    # what was sent is read before the collector closes (on a loaded
    # machine that takes longer than the run's end)
    last, deadline = -1, time.time() + 10
    while time.time() < deadline:
        n = len(readers[-1].records())
        if n == last:
            break
        last = n
        time.sleep(0.5)
    readers[-1].close()
    err = f.err.decode()
    check(f.rc == 0, f"outage run: exit {f.rc}: {err[-300:]}")
    got = readers[0].records() + readers[1].records()
    drops = [json.loads(r) for r in got if is_drop(r)]
    evs = [r for r in got if not is_drop(r)]
    m = re.search(r"records (\d+) delivered (\d+) dropped (\d+) outages (\d+)", err)
    check(m is not None, f"no --stats line for the output: {err[-300:]}")
    if not m:
        return
    records, delivered, dropped, outages = map(int, m.groups())
    # On a loaded machine the queue may also fill after the collector is
    # back, and the last output.drop (written at the end) be one of the
    # records dropped: then it is missing here, and the drops it would have
    # told are the ones no arrived output.drop counts.
    told = sum(d["dropped"] for d in drops)
    lost_note = records == len(ref_big) + len(drops) + 1 and told < dropped
    check(records == len(ref_big) + len(drops) or lost_note,
          f"records {records} != {len(ref_big)} events + {len(drops)} output.drop")
    check(dropped > 0, "the outage dropped nothing: the test did not test")
    check(len(evs) + dropped - (1 if lost_note else 0) == len(ref_big),
          f"{len(evs)} arrived + {dropped} dropped != {len(ref_big)}")
    check(delivered == len(got), f"delivered {delivered} but {len(got)} arrived")
    # what arrived is the reference in order, with holes
    it = iter(ref_big)
    check(all(any(e == x for x in it) for e in evs), "records arrived out of order or changed")
    if not check(len(readers[1].records()) > 0 and (evs[-1] == ref_big[-1] or lost_note),
                 "events do not flow again after the collector returns"):
        idx = {l: i for i, l in enumerate(ref_big)}
        print("  last arrived:", [idx.get(e) for e in evs[-5:]], "of", len(ref_big), err[-600:])
    schema_ok(drops, "unix-dgram output.drop")
    check(len(drops) >= 1 and (told == dropped or lost_note) and drops[0]["reason"] == "collector unreachable",
          f"output.drop records {drops} do not add up to {dropped}")
    check(err.count("collector unreachable") == outages == 1 and err.count("collector back") == 1,
          f"the outage is not reported once: {err[-500:]}")
    check(f"{dropped} of {records} records dropped" in err, "no drop line at exit")


def test_dead_collector_speed():
    """A collector that dies at the start must not slow the reading down."""
    ran.append("dead collector")
    path = os.path.join(WORK, "dead.sock")
    t0 = time.monotonic()
    r0 = run(["-r", BIG, "-F", "ndjson", "-o", os.devnull])
    base = time.monotonic() - t0
    rd = UnixReader(path, False)

    # the reader leaves once mxtrace has connected
    def kill_soon():
        time.sleep(0.05)
        rd.close()
    threading.Thread(target=kill_soon).start()
    t0 = time.monotonic()
    r = run(["-r", BIG, "-F", "ndjson", "-o", os.devnull, "--output", f"unix:{path},queue-size=64k"])
    dead = time.monotonic() - t0
    check(r0.returncode == 0 and r.returncode == 0, f"dead collector run: exit {r.returncode}: {r.stderr[-300:]!r}")
    check(dead < 3 * base + 1.5, f"a dead collector slowed the run: {dead:.2f} s against {base:.2f} s")
    check(b"records dropped" in r.stderr, "a dead collector dropped nothing")


# ---- syslog ------------------------------------------------------------------------------

SYSLOG_RE = re.compile(rb"<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\d+) (\S+) - (.*)", re.S)


def parse_5424(m, what, app="mxtrace", pri=16 * 8 + 6):
    g = SYSLOG_RE.fullmatch(m)
    if not check(g is not None, f"{what}: not an RFC 5424 message: {m[:120]!r}"):
        return None
    check(int(g.group(1)) == pri and g.group(4) == app.encode(), f"{what}: PRI/APP-NAME {g.group(1)} {g.group(4)}")
    ev = json.loads(g.group(7))
    check(g.group(6).decode() == ev.get("type", "-"), f"{what}: MSGID {g.group(6)} is not the event type")
    return g.group(7).decode()


def test_syslog_framing():
    ran.append("syslog framing")
    # TCP with octet counting
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    buf = []

    def serve():
        c, _ = ls.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            buf.append(b)
    t = threading.Thread(target=serve)
    t.start()
    r = run(["-r", BIG, "--output", f"syslog-tcp:127.0.0.1:{port},facility=mail,severity=notice,app-name=mxt"])
    t.join(timeout=20)
    ls.close()
    check(r.returncode == 0, f"syslog-tcp: exit {r.returncode}")
    data, msgs = b"".join(buf), []
    while data:
        sp = data.find(b" ")
        n = int(data[:sp])
        msgs.append(data[sp + 1:sp + 1 + n])
        data = data[sp + 1 + n:]
    got = [parse_5424(m, "syslog-tcp", "mxt", 2 * 8 + 5) for m in msgs]
    check(got == ref_big, f"syslog-tcp: {len(got)} messages of {len(ref_big)}, or not the same")
    # UDP: one datagram a message
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    us.bind(("127.0.0.1", 0))
    us.settimeout(1)
    port = us.getsockname()[1]
    r = run(SMALL_ARGS + ["--output", f"syslog-udp:127.0.0.1:{port}"])
    got = []
    try:
        while True:
            got.append(parse_5424(us.recv(1 << 16), "syslog-udp"))
    except socket.timeout:
        pass
    us.close()
    check(got == ref_small, f"syslog-udp: {len(got)} datagrams of {len(ref_small)}, or not the same")


def test_rsyslog():
    rs = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
    if not rs:
        skipped.append("rsyslog (not installed)")
        return
    ran.append("rsyslog")
    d = os.path.join(WORK, "rsyslog")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    tport, uport = free_port(), free_port(socket.SOCK_DGRAM)
    conf = f"""
global(workDirectory="{d}" maxMessageSize="256k")
module(load="imtcp")
module(load="imudp")
template(name="raw" type="string" string="%inputname%|%pri%|%app-name%|%msgid%|%msg%\\n")
ruleset(name="mx") {{ action(type="omfile" file="{d}/out.log" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{tport}" ruleset="mx")
input(type="imudp" address="127.0.0.1" port="{uport}" ruleset="mx")
"""
    open(f"{d}/rsyslog.conf", "w").write(conf)
    p = subprocess.Popen([rs, "-n", "-f", f"{d}/rsyslog.conf", "-i", f"{d}/pid"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", tport), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    r1 = run(["-r", BIG, "--output", f"syslog-tcp:127.0.0.1:{tport},facility=mail"])
    r2 = run(SMALL_ARGS + ["--output", f"syslog-udp:127.0.0.1:{uport}"])
    want = len(ref_big) + len(ref_small)
    for _ in range(100):
        n = open(f"{d}/out.log", "rb").read().count(b"\n") if os.path.exists(f"{d}/out.log") else 0
        if n >= want:
            break
        time.sleep(0.1)
    p.terminate()
    p.wait()
    check(r1.returncode == 0 and r2.returncode == 0, "mxtrace to rsyslog: exit status")
    tcp, udp = [], []
    for line in open(f"{d}/out.log", encoding="utf-8").read().split("\n"):
        if not line:
            continue
        inp, pri, app, msgid, msg = line.split("|", 4)
        msg = msg.lstrip(" ")
        check(app == "mxtrace" and msgid == json.loads(msg)["type"], f"rsyslog parsed APP-NAME/MSGID {app} {msgid}")
        (tcp if inp == "imtcp" else udp).append((pri, msg))
    check([m for _, m in tcp] == ref_big, f"rsyslog imtcp: {len(tcp)} messages of {len(ref_big)}, or not the same")
    check(all(p == "22" for p, _ in tcp), "rsyslog imtcp: facility=mail severity=info is PRI 22")
    check([m for _, m in udp] == ref_small, f"rsyslog imudp: {len(udp)} messages of {len(ref_small)}")


# ---- Redis ----------------------------------------------------------------------------------

class Resp:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            b = self.f.read(n + 2)[:-2]
            return b.decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(line)


def start_redis(port, d):
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            Resp(port).cmd("PING")
            return p
        except OSError:
            time.sleep(0.05)
    return p


def test_redis():
    if not shutil.which("redis-server"):
        skipped.append("redis (redis-server not installed)")
        return
    r = run(SMALL_ARGS + ["--output", "redis:127.0.0.1:1,key=x"])
    if b"without hiredis" in r.stderr:
        skipped.append("redis (mxtrace built without hiredis)")
        return
    check(r.returncode == 4 and r.stderr.count(b"\n") == 1, f"redis down at the start: exit {r.returncode} {r.stderr!r}")
    ran.append("redis")
    d = os.path.join(WORK, "redis")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    srv = start_redis(port, d)
    try:
        c = Resp(port)
        # a subscriber for the channel, before the run
        sub = Resp(port)
        sub.cmd("SUBSCRIBE", "mxchan")
        r = run(["-r", BIG, "--output", f"redis:127.0.0.1:{port},mode=list,key=mxlist",
                 "--output", f"redis:127.0.0.1:{port},mode=channel,key=mxchan",
                 "--output", f"redis:127.0.0.1:{port},mode=stream,key=mxstream,maxlen=0,format=ecs",
                 "--output", f"redis:127.0.0.1:{port},mode=list,push=lpush,key=mxl2,format=timeline"])
        check(r.returncode == 0, f"redis: exit {r.returncode}: {r.stderr.decode()[-300:]}")
        check(c.cmd("LRANGE", "mxlist", 0, -1) == ref_big, "redis list (RPUSH) differs from -F ndjson")
        tl = lines_of(run(["-r", BIG, "-F", "timeline"]).stdout)
        check(c.cmd("LRANGE", "mxl2", 0, -1) == tl[::-1], "redis list (LPUSH) of timeline documents")
        ecs = lines_of(run(["-r", BIG, "-F", "ecs"]).stdout)
        xs = c.cmd("XRANGE", "mxstream", "-", "+")
        check([x[1][1] for x in xs] == ecs and all(x[1][0] == "event" for x in xs), "redis stream (XADD) of ECS events")
        got = []
        sub.s.settimeout(2)
        try:
            while len(got) < len(ref_big):
                m = sub.read()
                got.append(m[2])
        except (socket.timeout, OSError):
            pass
        check(got == ref_big, f"redis channel: {len(got)} messages of {len(ref_big)}")
        # a stream capped by MAXLEN ~
        run(["-r", BIG, "--output", f"redis:127.0.0.1:{port},mode=stream,key=capped,maxlen=500"])
        n = c.cmd("XLEN", "capped")
        check(500 <= n < len(ref_big), f"stream MAXLEN ~500 holds {n}")
        # a key of the wrong type: refused records are counted, not retried
        c.cmd("SET", "str", "x")
        r = run(SMALL_ARGS + ["--output", f"redis:127.0.0.1:{port},key=str", "--stats"])
        m = re.search(rb"records (\d+) delivered 0 dropped (\d+) ", r.stderr)
        check(r.returncode == 0 and m and m.group(1) == m.group(2) and int(m.group(1)) >= len(ref_small) and
              r.stderr.count(b"WRONGTYPE") == 1, f"WRONGTYPE records: {r.stderr.decode()[-300:]}")
        # outage: the server stops in the middle of the run and comes back
        c.cmd("DEL", "mxlist")
        state = {}

        def between(i, p):
            if i == 8:
                try:
                    Resp(port).cmd("SHUTDOWN", "NOSAVE")
                except (OSError, ValueError):
                    pass
                srv.wait()
            if i == 26:
                state["srv"] = start_redis(port, d)
        f = SlowFeed(["--output", f"redis:127.0.0.1:{port},key=mxlist,queue-size=512k,backoff-max=500ms", "--stats"], BIG, 40, between, 0.15)
        err = f.err.decode()
        check(f.rc == 0, f"redis outage: exit {f.rc}")
        m = re.search(r"records (\d+) delivered (\d+) dropped (\d+) outages (\d+)", err)
        if check(m is not None, f"redis outage: no --stats line: {err[-300:]}"):
            records, delivered, dropped, outages = map(int, m.groups())
            after = Resp(port).cmd("LRANGE", "mxlist", 0, -1)
            drops = [json.loads(x) for x in after if is_drop(x)]
            check(dropped > 0 and outages == 1, f"redis outage: dropped {dropped}, outages {outages}")
            check(records == delivered + dropped, f"redis outage: {records} records != {delivered} delivered + {dropped} dropped")
            # (on a loaded machine the queue may fill again after the
            # server is back: a last output.drop then follows the events)
            # The flow resumed when what arrived after the restart reaches
            # into the second half of the run (on a loaded machine the last
            # records, and the last output.drop, may be dropped at the end).
            evs_after = [x for x in after if not is_drop(x)]
            pos = {l: i for i, l in enumerate(ref_big)}
            last = pos.get(evs_after[-1], -1) if evs_after else -1
            check(last == len(ref_big) - 1 or last > len(ref_big) // 2,
                  f"redis outage: events do not flow again after the server returns: {len(after)} (last {last}) {err}")
            check(drops and drops[0]["reason"] == "collector unreachable", "redis outage: no output.drop record after it")
            check(err.count("collector unreachable") == 1 and err.count("collector back") == 1,
                  f"redis outage is not reported once: {err[-400:]}")
        srv = state.get("srv", srv)
    finally:
        srv.terminate()
        srv.wait()


def test_usage():
    ran.append("usage")
    for bad in ("nope:/x", "file", "file:", "file:/tmp/x,rotate-size=abc", "redis:h,mode=queue", "unix:/x,rotate-size=1M",
                "syslog-udp:h,facility=nine", "file:/tmp/x,format=xml"):
        r = run(SMALL_ARGS + ["--output", bad])
        check(r.returncode == 1 and r.stderr.count(b"\n") == 1, f"--output {bad}: exit {r.returncode} {r.stderr!r}")


def test_config():
    ran.append("config")
    d = os.path.join(WORK, "config")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cfg = {"outputs": [{"kind": "file", "target": f"{d}/ecs.ndjson", "format": "ecs", "rotate-size": 100000000},
                       {"kind": "file", "target": f"{d}/tl.json", "schema": "native", "format": "timeline"}]}
    json.dump(cfg, open(f"{d}/c.json", "w"))
    r = run(SMALL_ARGS + ["--config", f"{d}/c.json"])
    check(r.returncode == 0 and r.stdout == b"", f"--config: exit {r.returncode} {r.stderr!r}")
    check(open(f"{d}/ecs.ndjson", "rb").read() == run(SMALL_ARGS + ["-F", "ecs"]).stdout, "--config ecs file output")
    check(open(f"{d}/tl.json", "rb").read() == run(SMALL_ARGS + ["-F", "timeline"]).stdout, "--config timeline file output")
    for bad in ('{"outputs": [{"kind": "file"}]}', '{"outputs": {}}', '{"output": []}', "[1,", '{"outputs": [{"kind": "file", "target": "/tmp/x", "rotate-size": "1,2"}]}',
                '{"outputs": [{"kind": "file", "target": "/tmp/x", "mode": "list"}]}'):
        open(f"{d}/bad.json", "w").write(bad)
        r = run(SMALL_ARGS + ["--config", f"{d}/bad.json"])
        check(r.returncode == 1 and r.stderr.count(b"\n") == 1 and b"bad.json" in r.stderr, f"--config {bad}: exit {r.returncode} {r.stderr!r}")
    r = run(SMALL_ARGS + ["--config", f"{d}/missing.json"])
    check(r.returncode == 1 and b"missing.json" in r.stderr, "--config of a missing file")


for t in (test_usage, test_config, test_files, test_unix, test_outage_dgram, test_dead_collector_speed, test_syslog_framing,
          test_rsyslog, test_redis):
    t()
for s in skipped:
    print("skipped:", s)
print(f"outputs: ran {', '.join(ran)}; {len(fails)} failures")
sys.exit(1 if fails else 0)
