#!/usr/bin/env python3
"""live.py MXTRACE WORKDIR - live capture (-i) end to end.  Needs root.

Two network namespaces joined by a veth pair (client 10.77.0.1, server
10.77.0.2); in the server namespace aiosmtpd accepts mail on 25 and offers
STARTTLS with a self-signed certificate and AUTH in clear text (rejecting
every credential) on 587; nothing listens on 465.  mxtrace sniffs the
server's end of the veth while real clients (swaks, openssl s_client, a
small Python client) talk across it.  Five runs:

1. -F ndjson to a pipe: a delivery, a STARTTLS session whose client rejects
   the certificate, an AUTH failure and a refused connection each end with
   their verdict while mxtrace still runs; capture.stats comes every second
   with a rising packet count; SIGTERM ends the run with status 0, the
   session still open ending with reason "shutdown", and a final
   capture.stats.
2. --idle-timeout 2: a silent open session ends with "idle_timeout".
3. --output file: and SIGHUP: after the file is renamed, new events go to a
   new file at the original path, none lost.
4. -Z nobody: mxtrace runs without root and still follows a delivery.
5. -w FILE: the written capture read back with -r gives the same sessions.

Skipped (exit status 77) when not root, when network namespaces cannot be
made, when aiosmtpd, swaks or openssl are missing, or when MXTRACE has no -i.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

if len(sys.argv) != 3:
    sys.exit("usage: live.py MXTRACE WORKDIR")
MX = os.path.abspath(sys.argv[1])
WORK = os.path.abspath(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
HELPERS = os.path.join(HERE, "live")
PID = os.getpid()
CLI, SRV = f"mxl-c{PID}", f"mxl-s{PID}"     # namespaces
CDEV, SDEV = f"mxlc{PID}", f"mxls{PID}"     # veth ends (at most 15 characters)
C4, S4 = "10.77.0.1", "10.77.0.2"
T0 = time.monotonic()

fails = []
PROCS = []          # every child process still to be ended at teardown


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def check(cond, what, detail=""):
    if cond:
        print(f"ok   {what}")
    else:
        fails.append(what)
        print(f"FAIL {what}" + (f": {detail}" if detail else ""))
    return cond


def log(msg):
    print(f"--   [{time.monotonic() - T0:5.1f} s] {msg}", flush=True)


def quiet(*cmd, timeout=20):
    """Runs a set-up command; True when it succeeded."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def must(*cmd, timeout=20):
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}")


def brief(obj, n=400):
    s = json.dumps(obj) if not isinstance(obj, str) else obj
    return s if len(s) <= n else s[:n] + "..."


# ---- what is needed ---------------------------------------------------------

def find_python():
    for py in (sys.executable, "/usr/bin/python3"):
        if py and os.path.exists(py) and quiet(py, "-c", "import aiosmtpd"):
            return py
    return None


def preflight():
    if os.geteuid() != 0:
        skip("live capture needs root")
    try:
        h = subprocess.run([MX, "--help"], capture_output=True, timeout=10)
    except OSError as e:
        sys.exit(f"live.py: {MX}: {e}")
    if not re.search(r"(^|[\s\[])-i[\s,]", (h.stdout + h.stderr).decode(errors="replace"), re.M):
        skip(f"{MX} has no live capture (-i IFACE is not in --help)")
    py = find_python()
    if not py:
        skip("aiosmtpd is not installed (python3-aiosmtpd)")
    for tool in ("swaks", "openssl", "ip"):
        if not shutil.which(tool):
            skip(f"{tool} is not installed")
    if not quiet("ip", "netns", "add", CLI):
        quiet("ip", "netns", "del", CLI)
        skip("cannot create a network namespace (ip netns add failed)")
    return py


# ---- network and servers ------------------------------------------------------

def net_up():
    must("ip", "netns", "add", SRV)
    for ns in (CLI, SRV):
        must("ip", "-n", ns, "link", "set", "lo", "up")
    must("ip", "link", "add", "name", CDEV, "type", "veth", "peer", "name", SDEV)
    must("ip", "link", "set", CDEV, "netns", CLI)
    must("ip", "link", "set", SDEV, "netns", SRV)
    for ns, dev, addr in ((CLI, CDEV, C4), (SRV, SDEV, S4)):
        # IPv4 only, so that no IPv6 start-up chatter crosses the link.
        quiet("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        must("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        # Real MTU-sized segments on the wire, as a NIC would show them.
        if shutil.which("ethtool"):
            quiet("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off")
        must("ip", "-n", ns, "link", "set", dev, "up")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = subprocess.run(["ip", "-n", CLI, "link", "show", CDEV], capture_output=True)
        if b"LOWER_UP" in r.stdout and b"state UP" in r.stdout:
            return
        time.sleep(0.1)
    raise RuntimeError("the veth link did not come up")


def make_cert():
    key, cert = os.path.join(WORK, "live-key.pem"), os.path.join(WORK, "live-cert.pem")
    must("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=mx.live.test", "-addext", "subjectAltName=DNS:mx.live.test",
         "-keyout", key, "-out", cert)
    return cert, key


def start_servers(py, cert, key):
    ready = os.path.join(WORK, "live-smtpd.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    err = open(os.path.join(WORK, "live-smtpd.log"), "wb")
    p = subprocess.Popen(["ip", "netns", "exec", SRV, py, os.path.join(HELPERS, "smtpd.py"), "--addr", S4,
                          "--cert", cert, "--key", key, "--ready", ready],
                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    PROCS.append(p)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and p.poll() is None:
        if os.path.exists(ready):
            break
        time.sleep(0.1)
    if not os.path.exists(ready):
        raise RuntimeError("aiosmtpd did not start (see live-smtpd.log)")
    # The servers answer across the link (no capture runs yet).
    r = subprocess.run(["ip", "netns", "exec", CLI, py, "-c",
                        "import socket,sys; s=socket.create_connection((sys.argv[1],25),5); "
                        "print(s.recv(200).decode()); s.sendall(b'QUIT\\r\\n'); s.recv(200)", S4],
                       capture_output=True, timeout=15)
    if r.returncode != 0 or not r.stdout.startswith(b"220"):
        raise RuntimeError(f"no SMTP banner across the link: {r.stdout!r} {r.stderr!r}")


def teardown():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    end = time.monotonic() + 3
    for p in PROCS:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                pass
    # Anything else left in the two namespaces was started by this test.
    for ns in (CLI, SRV):
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        quiet("ip", "netns", "del", ns)
    quiet("ip", "link", "del", CDEV)


# ---- clients ------------------------------------------------------------------

_lport = [41000]


def next_port():
    _lport[0] += 1
    return _lport[0]


def in_cli(args, timeout=30):
    with open(os.path.join(WORK, "live-clients.log"), "ab") as f:
        f.write(("--- " + " ".join(args) + "\n").encode())
        f.flush()
        try:
            return subprocess.run(["ip", "netns", "exec", CLI] + args, stdin=subprocess.DEVNULL,
                                  stdout=f, stderr=f, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            f.write(b"(timed out)\n")
            return None


def swaks(lport, port, *extra):
    return in_cli(["swaks", "--timeout", "15", "--server", S4, "--port", str(port), "--local-interface", C4,
                   "--local-port", str(lport), "--helo", "client.live.test", "--from", "sender@live.test",
                   "--to", "rcpt@live.test", "--header", f"Subject: live test {lport}",
                   "--body", "Live capture test message."] + list(extra))


def deliver():
    lport = next_port()
    rc = swaks(lport, 25)
    check(rc == 0, f"client: delivery from port {lport} (swaks exit {rc})")
    return lport


def refused():
    lport = next_port()
    rc = swaks(lport, 465)
    check(rc == 2, f"client: connection to 465 from port {lport} refused (swaks exit {rc}, want 2)")
    return lport


def auth_fail():
    lport = next_port()
    rc = swaks(lport, 587, "--auth", "LOGIN", "--auth-user", "user@live.test", "--auth-password", "Wr0ng-Pa55")
    check(rc == 28, f"client: AUTH LOGIN rejected from port {lport} (swaks exit {rc}, want 28)")
    return lport


def starttls_reject():
    lport = next_port()
    rc = in_cli(["openssl", "s_client", "-connect", f"{S4}:587", "-bind", f"{C4}:{lport}", "-starttls", "smtp",
                 "-name", "client.live.test", "-servername", "mx.live.test", "-tls1_2", "-verify_return_error"])
    check(rc == 1, f"client: openssl s_client rejects the self-signed certificate from port {lport} "
                   f"(exit {rc}, want 1)")
    return lport


class Hold:
    """An SMTP session that stays open: banner, EHLO, then NOOPs on request."""

    def __init__(self, py):
        self.lport = next_port()
        self.p = subprocess.Popen(["ip", "netns", "exec", CLI, py, os.path.join(HELPERS, "hold.py"), S4, "25",
                                   C4, str(self.lport)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(WORK, "live-clients.log"), "ab"))
        PROCS.append(self.p)
        self.ok = self._line(10) == b"ready"
        check(self.ok, f"client: session from port {self.lport} open after banner and EHLO")

    def _line(self, timeout):
        got = []
        t = threading.Thread(target=lambda: got.append(self.p.stdout.readline().strip()), daemon=True)
        t.start()
        t.join(timeout)
        return got[0] if got else None

    def noop(self):
        try:
            self.p.stdin.write(b"noop\n")
            self.p.stdin.flush()
        except OSError:
            return False
        return self._line(10) == b"ok"

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


# ---- mxtrace ------------------------------------------------------------------

def parse(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None


EXTRA = []      # options every run gets (the runs with --workers)


class Mx:
    """mxtrace -i in the server namespace; its standard output is read line
    by line as it comes, each line with its arrival time."""

    def __init__(self, name, args, pipe=True):
        args = args + EXTRA
        self.name = name
        self.errpath = os.path.join(WORK, f"live-{name}.stderr")
        cmd = ["ip", "netns", "exec", SRV, MX, "-i", SDEV] + args
        log(f"run {name}: mxtrace -i {SDEV} {' '.join(args)}")
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if pipe else subprocess.DEVNULL,
                                  stderr=open(self.errpath, "wb"))
        PROCS.append(self.p)
        self.lines = []          # (arrival, raw bytes, object or None)
        self.cv = threading.Condition()
        self.eof = not pipe
        self.stopped_at = None
        self.reader = None
        if pipe:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self):
        for raw in iter(self.p.stdout.readline, b""):
            with self.cv:
                self.lines.append((time.monotonic(), raw, parse(raw)))
                self.cv.notify_all()
        with self.cv:
            self.eof = True
            self.cv.notify_all()

    def events(self):
        with self.cv:
            return [o for _, _, o in self.lines if isinstance(o, dict)]

    def wait(self, pred, timeout, after=0):
        """The first (arrival, event) from line index `after` on that
        satisfies pred, or None once the deadline passes or the output ends."""
        deadline = time.monotonic() + timeout
        with self.cv:
            i = after
            while True:
                while i < len(self.lines):
                    t, _, o = self.lines[i]
                    i += 1
                    if isinstance(o, dict) and pred(o):
                        return t, o, i
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    return None
                self.cv.wait(left)

    def running(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals mxtrace; its exit status (None if it had to be killed)
        and how long it took."""
        self.stopped_at = time.monotonic()
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
            rc = None
        if self.reader:
            self.reader.join(5)
            with self.cv, open(os.path.join(WORK, f"live-{self.name}.ndjson"), "wb") as f:
                f.write(b"".join(r for _, r, _ in self.lines))
        return rc, time.monotonic() - self.stopped_at

    def stderr(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode(errors="replace").strip()[-600:]
        except OSError:
            return ""


def is_stats(o):
    return o.get("type") == "capture.stats"


def wait_ready(mx, what):
    """A first capture.stats (every second here) says the capture is live."""
    got = mx.wait(is_stats, 8)
    check(got is not None, f"{what}: a capture.stats event within 8 s of the start",
          "none; stderr: " + mx.stderr())
    if got is None:
        time.sleep(1)
    return got


def session_end(mx, lport, timeout):
    """The session.end of the session whose client port is lport."""
    deadline = time.monotonic() + timeout
    got = mx.wait(lambda o: o.get("type") == "session.start" and (o.get("client") or {}).get("port") == lport,
                  timeout)
    if got is None:
        return None
    sid = got[1].get("session")
    return mx.wait(lambda o: o.get("type") == "session.end" and o.get("session") == sid,
                   max(0.0, deadline - time.monotonic()))


def expect_end(mx, lport, what, code, timeout=10, reason=None):
    """Waits for the session's end and checks its verdict code (and reason);
    also that it came while mxtrace was still running.  Returns the event."""
    got = session_end(mx, lport, timeout)
    if not check(got is not None, f"{what}: session.end within {timeout} s",
                 f"no session.end for client port {lport}; sessions seen: "
                 + brief([e for e in mx.events() if e.get("type") == "session.start"], 600)):
        return None
    t, end, _ = got
    v = end.get("verdict") or {}
    check(v.get("code") == code, f"{what}: verdict {code}", f"got {v.get('code')}: {brief(end)}")
    if reason is not None:
        check(end.get("reason") == reason, f"{what}: reason {reason}", f"got {end.get('reason')}: {brief(end)}")
    check(mx.running() and (mx.stopped_at is None or t < mx.stopped_at),
          f"{what}: session.end written while mxtrace runs")
    return end


def session_events(objs, sid):
    return [o for o in objs if o.get("session") == sid]


# ---- the runs -----------------------------------------------------------------

def run_pipe(py):
    mx = Mx("pipe", ["-F", "ndjson", "--stats-interval", "1", "--idle-timeout", "3"])
    try:
        wait_ready(mx, "pipe")
        cases = [("delivery on 25", deliver, "delivered"),
                 ("STARTTLS, certificate rejected by the client", starttls_reject, "tls_rejected_by_client"),
                 ("AUTH LOGIN rejected", auth_fail, "auth_failed"),
                 ("connection to 465", refused, "refused")]
        for what, client, code in cases:
            lport = client()
            end = expect_end(mx, lport, what, code)
            if end and code == "tls_rejected_by_client":
                alerts = [e for e in session_events(mx.events(), end["session"]) if e.get("type") == "tls.alert"]
                check(any(a.get("from") == "client" and a.get("level") == "fatal" for a in alerts),
                      f"{what}: a fatal tls.alert from the client", brief(alerts))

        # A session left open, and the statistics while it is.
        hold = Hold(py)
        try:
            n0 = len(mx.lines)
            s1 = mx.wait(is_stats, 5, after=n0)
            noop = hold.noop()
            check(noop, "client: NOOP on the open session answered")
            s2 = mx.wait(is_stats, 5, after=s1[2]) if s1 else None
            if check(s1 is not None and s2 is not None, "pipe: two capture.stats events in a row, 1 s apart",
                     f"got {brief(s1 and s1[1])} / {brief(s2 and s2[1])}"):
                a, b = s1[1], s2[1]
                check(all(k in a for k in ("ts", "interface", "received", "dropped", "if_dropped", "final"))
                      and "session" not in a, "pipe: capture.stats has ts, interface, received, dropped, "
                      "if_dropped, final and no session", brief(a))
                check(a.get("interface") == SDEV and a.get("final") is False and b.get("final") is False,
                      f"pipe: capture.stats interface {SDEV}, final false", brief(a))
                check(isinstance(a.get("received"), int) and isinstance(b.get("received"), int)
                      and b["received"] > a["received"],
                      "pipe: capture.stats received rises across a NOOP exchange",
                      f"{a.get('received')} then {b.get('received')}")
                gap = s2[0] - s1[0]
                check(0.3 < gap < 3, "pipe: capture.stats every --stats-interval (1 s)", f"{gap:.2f} s apart")
            n_before = len(mx.lines)
            rc, took = mx.stop()
            check(rc == 0, "pipe: SIGTERM: exit status 0", f"exit {rc}; stderr: {mx.stderr()}")
            check(took < 5, "pipe: SIGTERM: stops within 5 s", f"{took:.1f} s")
        finally:
            hold.close()
        objs = mx.events()
        starts = [o for o in objs if o.get("type") == "session.start"
                  and (o.get("client") or {}).get("port") == hold.lport]
        ends = [o for o in objs if o.get("type") == "session.end" and starts
                and o.get("session") == starts[0].get("session")]
        if check(len(ends) == 1, "pipe: SIGTERM: the open session gets its session.end",
                 f"{len(starts)} session.start, {len(ends)} session.end for port {hold.lport}"):
            e = ends[0]
            check(e.get("reason") == "shutdown" and e.get("incomplete") is True,
                  'pipe: SIGTERM: the open session ends with reason "shutdown", incomplete true', brief(e))
        raws = [r for _, r, _ in mx.lines]
        check(raws and raws[-1].endswith(b"\n") and parse(raws[-1]) is not None,
              "pipe: SIGTERM: the last line is complete JSON", repr(raws[-1][-200:]) if raws else "no output")
        bad = [r for r in raws if parse(r) is None]
        check(not bad, "pipe: every line is JSON", repr(bad[:2]))
        finals = [o for o in objs if is_stats(o) and o.get("final") is True]
        check(len(finals) == 1 and finals[0].get("interface") == SDEV,
              "pipe: SIGTERM: one final capture.stats (final true)", brief(finals))
        late = [o for _, _, o in mx.lines[n_before:] if isinstance(o, dict) and o.get("type") == "session.end"]
        check(all(o.get("reason") == "shutdown" for o in late),
              "pipe: SIGTERM: only still-open sessions are written at shutdown", brief(late))
    finally:
        if mx.running():
            mx.stop(signal.SIGKILL, 5)


def run_idle(py):
    mx = Mx("idle", ["-F", "ndjson", "--stats-interval", "1", "--idle-timeout", "2"])
    hold = None
    try:
        wait_ready(mx, "idle")
        hold = Hold(py)
        t_open = time.monotonic()
        got = session_end(mx, hold.lport, 8)
        if check(got is not None, "idle: the silent session gets its session.end within 8 s",
                 "none; output: " + brief([o for o in mx.events() if not is_stats(o)], 800)):
            t, e, _ = got
            check(e.get("reason") == "idle_timeout", 'idle: reason "idle_timeout"', brief(e))
            check(1.5 <= t - t_open <= 6, "idle: written 2 s (at most 6 s) after the last packet",
                  f"{t - t_open:.1f} s")
            check(mx.running(), "idle: written while mxtrace runs")
        rc, _ = mx.stop()
        check(rc == 0, "idle: SIGTERM: exit status 0", f"exit {rc}; stderr: {mx.stderr()}")
    finally:
        if hold:
            hold.close()
        if mx.running():
            mx.stop(signal.SIGKILL, 5)


def read_objs(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return [], b""
    return [o for o in (parse(l) for l in data.split(b"\n") if l) if isinstance(o, dict)], data


def wait_file(path, pred, timeout):
    deadline = time.monotonic() + timeout
    while True:
        objs, _ = read_objs(path)
        for o in objs:
            if pred(o):
                return o
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def file_session_end(path, lport, timeout):
    deadline = time.monotonic() + timeout
    st = wait_file(path, lambda o: o.get("type") == "session.start"
                   and (o.get("client") or {}).get("port") == lport, timeout)
    if st is None:
        return None, None
    sid = st.get("session")
    return sid, wait_file(path, lambda o: o.get("type") == "session.end" and o.get("session") == sid,
                          max(0.0, deadline - time.monotonic()))


def run_hup():
    path = os.path.join(WORK, "live.ndjson")
    old = path + ".1"
    for f in (path, old):
        if os.path.exists(f):
            os.unlink(f)
    mx = Mx("hup", ["--stats-interval", "1", "--output", f"file:{path}"], pipe=False)
    try:
        check(wait_file(path, is_stats, 8) is not None, "hup: a capture.stats event in the file within 8 s",
              "none; stderr: " + mx.stderr())
        p1 = deliver()
        sid1, e1 = file_session_end(path, p1, 10)
        check(e1 is not None and (e1.get("verdict") or {}).get("code") == "delivered",
              "hup: first delivery's session.end (delivered) in the file", brief(e1))
        os.rename(path, old)
        mx.p.send_signal(signal.SIGHUP)
        reopened = wait_file(path, lambda o: True, 5) is not None or os.path.exists(path)
        check(reopened, "hup: SIGHUP: a new file at the original path", "no file after 5 s")
        p2 = deliver()
        sid2, e2 = file_session_end(path, p2, 10)
        check(e2 is not None and (e2.get("verdict") or {}).get("code") == "delivered",
              "hup: second delivery's session.end (delivered) in the new file", brief(e2))
        check(mx.running(), "hup: mxtrace still runs after SIGHUP")
        rc, _ = mx.stop()
        check(rc == 0, "hup: SIGTERM: exit status 0", f"exit {rc}; stderr: {mx.stderr()}")
        a, araw = read_objs(old)
        b, braw = read_objs(path)
        for name, raw in (("renamed", araw), ("new", braw)):
            lines = [l for l in raw.split(b"\n") if l]
            check(raw.endswith(b"\n") and all(parse(l) is not None for l in lines),
                  f"hup: the {name} file holds only complete JSON lines", repr(raw[-200:]))

        def story(objs, sid):
            ev = session_events(objs, sid)
            return ev and ev[0].get("type") == "session.start" and ev[-1].get("type") == "session.end"

        if sid1 is not None and sid2 is not None:
            check(story(a, sid1) and not session_events(b, sid1),
                  "hup: the renamed file has all of the first session, the new file none of it",
                  f"renamed {len(session_events(a, sid1))} events, new {len(session_events(b, sid1))}")
            check(story(b, sid2) and not session_events(a, sid2),
                  "hup: the new file has all of the second session, the renamed file none of it",
                  f"new {len(session_events(b, sid2))} events, renamed {len(session_events(a, sid2))}")
        check(any(is_stats(o) and o.get("final") is True for o in b),
              "hup: the final capture.stats is in the new file")
    finally:
        if mx.running():
            mx.stop(signal.SIGKILL, 5)


def proc_ids(pid):
    ids = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Uid", "Gid"):
                    ids[k] = [int(x) for x in v.split()]
    except OSError:
        pass
    return ids


def run_user():
    mx = Mx("user", ["-F", "ndjson", "--stats-interval", "1", "-Z", "nobody"])
    try:
        wait_ready(mx, "-Z nobody")
        try:
            comm = open(f"/proc/{mx.p.pid}/comm").read().strip()
        except OSError:
            comm = None
        check(comm == "mxtrace", "-Z nobody: the process is mxtrace itself", f"/proc/{mx.p.pid}/comm is {comm}")
        ids = proc_ids(mx.p.pid)
        check(ids.get("Uid") and ids.get("Gid") and all(ids["Uid"]) and all(ids["Gid"]),
              "-Z nobody: no uid or gid 0 once started (real, effective, saved, fs)",
              f"Uid {ids.get('Uid')} Gid {ids.get('Gid')}")
        expect_end(mx, deliver(), "-Z nobody: delivery", "delivered")
        rc, _ = mx.stop()
        check(rc == 0, "-Z nobody: SIGTERM: exit status 0", f"exit {rc}; stderr: {mx.stderr()}")
    finally:
        if mx.running():
            mx.stop(signal.SIGKILL, 5)


def sessions(objs):
    """(client port, server port, verdict code) of each session, in the
    order of their session.end."""
    ports = {o.get("session"): ((o.get("client") or {}).get("port"), (o.get("server") or {}).get("port"))
             for o in objs if o.get("type") == "session.start"}
    return [ports.get(o.get("session"), (None, None)) + ((o.get("verdict") or {}).get("code"),)
            for o in objs if o.get("type") == "session.end"]


def types(objs):
    out = {}
    for o in objs:
        if "session" in o:
            out.setdefault(o["session"], []).append(o.get("type"))
    return [out[k] for k in sorted(out)]


def run_write():
    pcap = os.path.join(WORK, "live.pcap")
    if os.path.exists(pcap):
        os.unlink(pcap)
    mx = Mx("write", ["-F", "ndjson", "--stats-interval", "1", "-w", pcap])
    try:
        wait_ready(mx, "-w")
        expect_end(mx, deliver(), "-w: delivery", "delivered")
        expect_end(mx, refused(), "-w: connection to 465", "refused")
        rc, _ = mx.stop()
        check(rc == 0, "-w: SIGTERM: exit status 0", f"exit {rc}; stderr: {mx.stderr()}")
    finally:
        if mx.running():
            mx.stop(signal.SIGKILL, 5)
    live = [o for o in mx.events() if "session" in o]
    r = subprocess.run([MX, "-r", pcap, "-F", "ndjson"], capture_output=True, timeout=60)
    check(r.returncode == 0, f"-w: mxtrace -r {os.path.basename(pcap)} exits 0",
          f"exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[:300]}")
    back = [o for o in (parse(l) for l in r.stdout.split(b"\n") if l) if isinstance(o, dict)]
    check(sessions(live) and sessions(back) == sessions(live),
          "-w: the written capture read back gives the same sessions, verdicts and order",
          f"live {sessions(live)}, read back {sessions(back)}")
    check(types(back) == types(live), "-w: and the same events per session",
          f"live {types(live)}, read back {types(back)}")


def main():
    os.makedirs(WORK, exist_ok=True)
    py = preflight()      # made the client namespace
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        net_up()
        cert, key = make_cert()
        start_servers(py, cert, key)
        log("namespaces, veth and servers are up")
        for run in (lambda: run_pipe(py), lambda: run_idle(py), run_hup, run_user, run_write):
            run()
        # the same stories with the connections shared out among threads
        EXTRA.extend(["--workers", "2"])
        log("again with --workers 2")
        for run in (lambda: run_pipe(py), lambda: run_idle(py), run_write):
            run()
    except Exception as e:     # a broken set-up or an unexpected error: a failure, after teardown
        check(False, "the test ran to its end", f"{type(e).__name__}: {e}")
    finally:
        teardown()
    log(f"done, {len(fails)} failed")
    if fails:
        print(f"{len(fails)} check(s) failed:")
        for f in fails:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
