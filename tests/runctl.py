#!/usr/bin/env python3
"""runctl.py MXTRACE MXGEN PCAPDIR WORKDIR - how a run starts, streams and ends.

Without root or a network: signals on a run reading a pipe that has gone
quiet (events streamed as they happen, open sessions written with reason
shutdown, exit 0, no cut line), a reader that leaves standard output (a
quiet end), a full disk (told at once, with the reason, exit 4), -w (the
packets written read back as the same sessions; -C rotation), closing tens
of thousands of open flows at the end in linear time, and the command-line
errors of live capture.  As root, also a short live run on the loopback
interface: its session written while it runs, capture.stats events, valid
against the JSON Schemas in ndjson and ECS.
"""
import json
import os
import signal
import struct
import subprocess
import sys
import time

MX, GEN, PCAPS, WORK = sys.argv[1:5]
os.makedirs(WORK, exist_ok=True)
fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def run(args, **kw):
    return subprocess.run([MX] + args, capture_output=True, timeout=300, **kw)


def events(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def records(path):
    """The global header and the records of a pcap file."""
    data = open(path, "rb").read()
    head, off, recs = data[:24], 24, []
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        recs.append(data[off:off + 16 + incl])
        off += 16 + incl
    return head, recs


def read_until(p, marker, seconds):
    """What a running process wrote until marker shows (or seconds pass)."""
    os.set_blocking(p.stdout.fileno(), False)
    got, deadline = b"", time.time() + seconds
    while time.time() < deadline and marker not in got:
        time.sleep(0.05)
        try:
            got += p.stdout.read() or b""
        except (BlockingIOError, TypeError):
            pass
    os.set_blocking(p.stdout.fileno(), True)
    return got


S1 = os.path.join(PCAPS, "smtp", "s1-plain-delivery.pcap")

# 1. A pipe that goes quiet mid-session: what was seen is out at once; SIGTERM
# ends the run promptly with the open session written as shutdown.
head, recs = records(S1)
p = subprocess.Popen([MX, "-r", "-", "-F", "ndjson"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
p.stdin.write(head + b"".join(recs[:8]))
p.stdin.flush()
seen = read_until(p, b"smtp.command", 10)
check(b"session.start" in seen and b"smtp.command" in seen,
      "events of a pipe's packets are written while the pipe stays open")
t0 = time.time()
p.send_signal(signal.SIGTERM)
try:
    rc = p.wait(timeout=10)
except subprocess.TimeoutExpired:
    p.kill()
    rc = None
took = time.time() - t0
rest = p.stdout.read()
err = p.stderr.read().decode()
p.stdin.close()
out = (seen + rest).decode()
check(rc == 0, f"SIGTERM: exit status 0 (got {rc}; stderr {err.strip()!r})")
check(took < 3, f"SIGTERM on a quiet pipe ends the run promptly ({took:.2f} s)")
check(out.endswith("\n"), "the output ends with a whole line")
evs = events(out)
ends = [e for e in evs if e["type"] == "session.end"]
check(len(ends) == 1 and ends[0]["reason"] == "shutdown" and ends[0]["incomplete"] is True,
      "the open session is written with reason shutdown, incomplete")
check(ends and ends[0]["verdict"]["code"] == "incomplete", "its verdict is incomplete")
check(err == "", f"nothing on stderr ({err.strip()!r})")

# SIGINT on a whole file read from a pipe: the same, as a timeline document
p = subprocess.Popen([MX, "-r", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
p.stdin.write(head + b"".join(recs[:10]))
p.stdin.flush()
time.sleep(0.5)
p.send_signal(signal.SIGINT)
o, e = p.communicate(timeout=10)
docs = events(o.decode())
check(p.returncode == 0 and len(docs) == 1 and docs[0]["events"][-1]["reason"] == "shutdown",
      "SIGINT: the timeline document of the open session is written whole")

# 2. The reader of standard output goes away: a quiet end, status 0.
big = os.path.join(WORK, "big.pcap")
if not os.path.exists(big):
    subprocess.run([GEN, "-q", "-n", "3000", "-c", "20", "-o", big, S1], check=True)
r = subprocess.run(f"'{MX}' -r '{big}' -F ndjson | head -n 1 > /dev/null; echo \"${{PIPESTATUS[0]}}\"",
                   shell=True, executable="/bin/bash", capture_output=True, timeout=120)
check(r.stdout.decode().strip() == "0" and r.stderr.decode() == "",
      f"EPIPE on standard output: exit 0, nothing said (status {r.stdout.decode().strip()}, stderr {r.stderr.decode().strip()!r})")

# 3. A full disk: told once, with the reason, when it happens; exit 4.
if os.path.exists("/dev/full"):
    t0 = time.time()
    r = run(["-r", big, "-F", "ndjson", "-o", "/dev/full"])
    msg = r.stderr.decode().strip().splitlines()
    check(r.returncode == 4, f"a full device: exit 4 (got {r.returncode})")
    check(len(msg) == 1 and "/dev/full: write failed: No space left on device" in msg[0],
          f"one line with the reason ({msg})")
    r2 = run(["-r", big, "-F", "ndjson", "-o", "/dev/null"])
    check(r2.returncode == 0, "the same run to /dev/null succeeds")
    r = run(["-r", big, "-F", "summary", "-o", "/dev/null", "--output", "file:/dev/full,format=ndjson"])
    msg = r.stderr.decode().strip().splitlines()
    check(r.returncode == 4 and len(msg) == 1 and "file:/dev/full: write failed: No space left on device" in msg[0],
          f"a full --output file: exit 4, one line with the reason ({msg})")

# 4. -w: the followed packets read back give the same sessions.
def story(evs):
    return [(e["type"], e.get("verdict", {}).get("code")) for e in evs if "session" in e]

w = os.path.join(WORK, "w.pcap")
mixed = os.path.join(PCAPS, "smtp", "merged-eth-sll-raw.pcapng")
for src in (S1, os.path.join(PCAPS, "smtp", "s6-refused-587.pcap"), big):
    r = run(["-r", src, "-F", "ndjson", "-w", w])
    again = run(["-r", w, "-F", "ndjson"])
    check(r.returncode == 0 and again.returncode == 0 and story(events(r.stdout.decode())) == story(events(again.stdout.decode())),
          f"-w {os.path.basename(src)}: read back, the same sessions and events")
# packets that no followed session has are left out
s1n = len(records(S1)[1])
r = run(["-r", S1, "-F", "ndjson", "-w", w, "port 25 and tcp[tcpflags] & tcp-syn != 0"])
check(r.returncode == 0 and len(records(w)[1]) == 2, "-w writes only the packets mxtrace took (the filter's SYN, SYN-ACK)")
r = run(["-r", mixed, "-F", "ndjson", "-w", w])
check(r.returncode == 0 and "of another link type" in r.stderr.decode(),
      "-w: packets of a second link type are counted and said")
# -C: rotation by size, every file a capture of its own
for f in os.listdir(WORK):
    if f.startswith("rot.pcap"):
        os.unlink(os.path.join(WORK, f))
rot = os.path.join(WORK, "rot.pcap")
r = run(["-r", big, "-F", "ndjson", "-w", rot, "-C", "1"])
parts = sorted(f for f in os.listdir(WORK) if f.startswith("rot.pcap"))
sizes = [os.path.getsize(os.path.join(WORK, f)) for f in parts]
check(len(parts) > 3 and max(sizes) <= 1000000, f"-C 1: {len(parts)} files of at most 1 MB ({max(sizes) if sizes else 0})")
total = sum(len(records(os.path.join(WORK, f))[1]) for f in parts)
check(total == len(records(big)[1]), f"-C: every packet in one of the files ({total} of {len(records(big)[1])})")

# 5. Open flows at the end are closed in O(n log n): 50,000 against 5,000.
cut = os.path.join(WORK, "open.pcap")
with open(cut, "wb") as f:
    f.write(head + b"".join(recs[:8]))      # up to EHLO: never closed
times = {}
# (a tenth of it under the sanitizers, whose memory per flow is far larger)
sizes_n = (2000, 20000) if os.environ.get("MXTRACE_SANITIZED") else (5000, 50000)
for n in sizes_n:
    g = os.path.join(WORK, f"open{n}.pcap")
    if not os.path.exists(g):
        subprocess.run([GEN, "-q", "-n", str(n), "-c", str(n), "-o", g, cut], check=True)
    t0 = time.time()
    r = run(["-r", g, "-F", "ndjson", "-o", "/dev/null", "--max-flows", str(n + 10000), "--stats"])
    times[n] = time.time() - t0
    check(r.returncode == 0 and f"sessions {n} " in r.stderr.decode(), f"{n} flows open at the end, all written")
ratio = times[sizes_n[1]] / max(times[sizes_n[0]], 0.01)
check(ratio < 30, f"closing 10x the open flows takes {ratio:.1f}x the time (linear ~10, quadratic ~100)")

# 5b. Memory per flow that carries no data (a SYN flood): no parser state is
# made for it.  Measured as peak memory (--stats, peak-memory-kb) beside a
# one-connection run with the same flow table (not a time).
if not os.environ.get("MXTRACE_SANITIZED"):
    hs = os.path.join(WORK, "handshake.pcap")
    with open(hs, "wb") as f:
        f.write(head + b"".join(recs[:3]))    # a handshake, no data
    flood = os.path.join(WORK, "flood.pcap")
    if not os.path.exists(flood):
        subprocess.run([GEN, "-q", "-n", "40000", "-c", "40000", "-o", flood, hs], check=True)
    def peak_kb(src):
        r = run(["-r", src, "-F", "ndjson", "-o", "/dev/null", "--no-ndpi", "--max-flows", "50000", "--stats"])
        m = [w for w in r.stderr.decode().split("peak-memory-kb ")[1:]]
        return r.returncode, int(m[0].split()[0]) if m else 0
    _, k0 = peak_kb(hs)
    st, k1 = peak_kb(flood)
    per_flow = (k1 - k0) * 1024 / 40000
    print(f"     peak memory {k0} KB for one connection, {k1} KB for 40 000")
    check(st == 0 and 0 < per_flow < 4096, f"40 000 connections without data: {per_flow:.0f} bytes each (under 4 KiB)")

# 5c. The memory budget (--memcap): 300 connections each holding 20 KB out of
# order behind a hole, interleaved with 20 plain deliveries.  The budget is
# hit, said, and never exceeded; the deliveries keep their whole story.
def tcp_pkt(src, dst, sport, dport, seq, ack, flags, payload=b""):
    ip_len = 20 + 20 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0, 64, 6, 0, bytes(src), bytes(dst))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + tcp + payload


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i // 100000, i % 100000 * 10, len(fr), len(fr)) + fr)


flood_ooo = os.path.join(WORK, "ooo-flood.pcap")
frames = []
SYN, ACK, PSH = 0x02, 0x10, 0x08
for i in range(300):
    c, sv, cp = [10, 9, i // 250, i % 250 + 1], [10, 8, 0, 1], 20000 + i
    frames += [tcp_pkt(c, sv, cp, 25, 1000, 0, SYN), tcp_pkt(sv, c, 25, cp, 5000, 1001, SYN | ACK),
               tcp_pkt(c, sv, cp, 25, 1001, 5001, ACK), tcp_pkt(sv, c, 25, cp, 5001, 1001, PSH | ACK, b"220 mx ESMTP\r\n")]
for k in range(20):                       # 20 segments of 1000 bytes each, after a 100-byte hole
    for i in range(300):
        c, sv, cp = [10, 9, i // 250, i % 250 + 1], [10, 8, 0, 1], 20000 + i
        frames.append(tcp_pkt(c, sv, cp, 25, 1101 + k * 1000, 5015, PSH | ACK, b"x" * 998 + b"\r\n"))
clean = records(S1)[1]
# the deliveries: s1's packets, 20 copies on their own ports, after the flood began
mixed_frames = frames[:1200]
for j in range(20):
    for r_ in clean:
        fr = bytearray(r_[16:])
        # a copy of s1 with its own client port (offset 34: TCP source or destination)
        sp, dp = struct.unpack("!HH", fr[34:38])
        if dp == 25: fr[34:36] = struct.pack("!H", 40000 + j)
        else: fr[36:38] = struct.pack("!H", 40000 + j)
        mixed_frames.append(bytes(fr))
mixed_frames += frames[1200:]
write_pcap(flood_ooo, mixed_frames)
free_run = run(["-r", flood_ooo, "-F", "ndjson", "--no-ndpi", "--stats"])
capped = run(["-r", flood_ooo, "-F", "ndjson", "--no-ndpi", "--stats", "--memcap", "2M"])
def stat(r, name):
    t = r.stderr.decode().split(name + " ")
    return int(t[1].split()[0]) if len(t) > 1 else -1
check(free_run.returncode == 0 and stat(free_run, "buffers-peak-kb") > 4096 and stat(free_run, "memcap-refused") == 0,
      f"without a small budget the flood holds {stat(free_run, 'buffers-peak-kb')} KB")
check(capped.returncode == 0 and 0 < stat(capped, "buffers-peak-kb") <= 2048 and stat(capped, "memcap-refused") > 0,
      f"--memcap 2M: buffers peak at {stat(capped, 'buffers-peak-kb')} KB, {stat(capped, 'memcap-refused')} refused")
cev = events(capped.stdout.decode())
check(any(e.get("type") == "anomaly" and e.get("kind") == "limit.memcap" for e in cev)
      and any(e.get("type") == "tcp.gap" and e.get("reason") == "memcap" for e in cev),
      "the budget's refusals are limit.memcap anomalies and tcp.gap events of reason memcap")
def by_port(evs, port):
    sid = {e["session"] for e in evs if e.get("type") == "session.start" and e["client"]["port"] == port}
    return [{k: v for k, v in e.items() if k not in ("session", "frame")} for e in evs if e.get("session") in sid]
fev = events(free_run.stdout.decode())
same = all(by_port(cev, 40000 + j) == by_port(fev, 40000 + j) and by_port(cev, 40000 + j) for j in range(20))
check(same and sum(1 for e in cev if e.get("type") == "session.end" and e["verdict"]["code"] == "delivered") == 20,
      "the 20 deliveries keep their whole stories under the budget")

# 5c'. The documents the timeline and the views hold until a session ends
# count against the same budget: 200 deliveries open at once, each written
# in parts once the budget is spent, every event still there, in order.
def docs(text):
    d, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        o, i = d.raw_decode(text, i)
        out.append(o)
many = os.path.join(WORK, "docs-200.pcap")
subprocess.run([GEN, "-q", "-n", "200", "-c", "200", "-o", many, S1], check=True)
whole = docs(run(["-r", many, "-F", "timeline"]).stdout.decode())
check(len(whole) == 200 and not any("part" in d for d in whole), "200 deliveries, one document each without a budget")
for pretty in ([], ["--pretty"]):
    what = "--memcap 256K -F timeline" + (" --pretty" if pretty else "")
    r = run(["-r", many, "-F", "timeline", "--memcap", "256K", "--stats"] + pretty)
    parts = docs(r.stdout.decode())
    check(r.returncode == 0 and stat(r, "sessions-split") > 100 and stat(r, "buffers-peak-kb") <= 2 * 256,
          f"{what}: {stat(r, 'sessions-split')} sessions written in parts, documents peak at "
          f"{stat(r, 'buffers-peak-kb')} KB")
    by = {}
    for d in parts:
        by.setdefault(d["session"], []).append(d)
    bad = []
    for w in whole:
        ps = by.get(w["session"], [])
        evs = [e for p in ps for e in p["events"]]
        lim = [e for e in evs if e["type"] == "limit" and e.get("limit") == "memcap"]
        if len(ps) == 1:
            ok = ps[0] == w
        else:
            ok = ([p["part"] for p in ps] == list(range(1, len(ps) + 1))
                  and all(p.get("continued") is True for p in ps[:-1]) and "continued" not in ps[-1]
                  and len(lim) == 1 and ps[0]["events"][-1] == lim[0] and lim[0]["value"] == 256 * 1024
                  and [e for e in evs if e not in lim] == w["events"]
                  and ps[0]["start"] == w["start"] and ps[-1]["end"] == w["end"]
                  and ps[-1]["events"][-1]["verdict"]["code"] == "delivered")
        if not ok:
            bad.append(w["session"])
    check(not bad and len(by) == 200, f"{what}: the parts of each session, in order, hold all its events "
          f"and one limit memcap event (wrong: {bad[:5]})")
# (-F text keeps its lines as text, about a kilobyte a session here: 200
# fit in 256K, so its budget is a quarter of that)
r = run(["-r", many, "-F", "text", "--memcap", "64K", "--stats"])
t = r.stdout.decode()
check(t.count("=> delivered") == 200 and "(part 1, continued below)" in t and "! limit memcap (65536) reached" in t
      and stat(r, "sessions-split") > 100 and stat(r, "buffers-peak-kb") <= 2 * 64,
      f"--memcap 64K -F text: parts marked, one verdict per session ({stat(r, 'sessions-split')} split, "
      f"peak {stat(r, 'buffers-peak-kb')} KB)")
whole_text = run(["-r", many, "-F", "text"]).stdout.decode()
def unsplit(text):
    # the lines of each session, in order, parts joined: what the budget must not lose
    out, cur = {}, None
    for l in text.splitlines():
        if l.startswith("session "):
            cur = l.split()[1]
            out.setdefault(cur, [])
        elif cur and l.startswith("    ") and "limit memcap" not in l:
            out[cur].append(l)
    return out
check(unsplit(t) == unsplit(whole_text), "--memcap 64K -F text: every session's lines are all there, in order")
check(run(["-r", many, "-F", "summary", "--memcap", "64K"]).stdout == run(["-r", many, "-F", "summary"]).stdout,
      "-F summary holds two events a session: the same lines under a small budget")
check(run(["-r", many, "-F", "ndjson", "--memcap", "64K"]).stdout == run(["-r", many, "-F", "ndjson"]).stdout,
      "-F ndjson holds no documents: the same events under a small budget")

# 5d. nDPI stops at its label unless --ndpi-tls: then it also dissects the TLS
# after STARTTLS (ndpi.after_starttls) and nothing else changes.
def without_ndpi_tls(evs):
    for e in evs:
        if e.get("type") == "session.end" and "ndpi" in e:
            e["ndpi"].pop("after_starttls", None)
    return evs
tls_dir = os.path.join(PCAPS, "tls")
for name in ("s2-starttls-tls12.pcap", "s3-openssl-unknown-ca.pcap", "smtps-465-tls13.pcap"):
    a = events(run(["-r", os.path.join(tls_dir, name), "-F", "ndjson", "--ndpi-tls"]).stdout.decode())
    b = events(run(["-r", os.path.join(tls_dir, name), "-F", "ndjson"]).stdout.decode())
    c = events(run(["-r", os.path.join(tls_dir, name), "-F", "ndjson", "--no-ndpi-tls"]).stdout.decode())
    had = any("after_starttls" in e.get("ndpi", {}) for e in a)
    check(without_ndpi_tls(a) == b and b == c and not any("after_starttls" in e.get("ndpi", {}) for e in b) and
          (had or "465" in name),
          f"--ndpi-tls {name}: the same events and nDPI's after_starttls; without it (or with --no-ndpi-tls) no after_starttls")
# A named SMTP flow is shown to nDPI again from the client's AUTH: its
# clear-text-credentials risk is still found.
a = events(run(["-r", os.path.join(PCAPS, "smtp", "s4-auth-login-ok.pcap"), "-F", "ndjson"]).stdout.decode())
risks = [r for e in a if e.get("type") == "session.end" for r in e.get("ndpi", {}).get("risks", [])]
check("Clear-Text Credentials" in risks, f"nDPI woken at AUTH: clear-text credentials among its risks ({risks})")

# 6. Live capture's command line.
r = run(["-i", "mx-no-such-if0", "-F", "ndjson"])
lines = r.stderr.decode().strip().splitlines()
check(r.returncode == 2 and len(lines) == 1 and "mx-no-such-if0" in lines[0],
      f"-i on a missing interface: exit 2, one line ({lines})")
r = run(["-i", "lo", "-r", S1])
check(r.returncode == 1 and "cannot be used together" in r.stderr.decode(), "-r and -i together: a usage error")
r = run(["-r", S1, "--chroot", "/"])
check(r.returncode == 1, "--chroot without -Z: a usage error")
r = run(["-r", S1, "-C", "5"])
check(r.returncode == 1, "-C without -w: a usage error")
r = run(["-r", S1, "-Z", "mx-no-such-user"])
check(r.returncode == 5 and "no such user" in r.stderr.decode(), "-Z with an unknown user: exit 5")
r = run(["-D"])
check(r.returncode in (0, 2) and (r.returncode == 2 or r.stdout.decode().startswith("1.")),
      "-D lists interfaces numbered from 1 (or says it cannot)")
if os.geteuid() == 0:
    r = run(["-r", S1, "-F", "ndjson", "-Z", "nobody"])
    check(r.returncode == 0 and '"code":"delivered"' in r.stdout.decode(), "-Z nobody: the run goes on without root")

# 7. As root: a live run on the loopback interface, its session written while
# it runs, capture.stats in ndjson and ECS valid against the JSON Schemas.
def live_lo(fmt):
    import socket
    import threading
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve():
        c, _ = srv.accept()
        c.sendall(b"220 lo.example ESMTP\r\n")
        f = c.makefile("rb")
        for line in f:
            if line.upper().startswith(b"QUIT"):
                c.sendall(b"221 bye\r\n")
                break
            c.sendall(b"250 ok\r\n")
        c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    p = subprocess.Popen([MX, "-i", "lo", "-p", str(port), "-F", fmt, "--stats-interval", "1", "--immediate",
                          "tcp", "port", str(port)],      # only this test's traffic
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    if p.poll() is not None:               # the interface could not be opened here
        _, err = p.communicate()
        srv.close()
        return None, p.returncode, [], err.decode()
    c = socket.create_connection(("127.0.0.1", port))
    c.recv(100)
    for cmd in (b"EHLO me\r\n", b"QUIT\r\n"):
        c.sendall(cmd)
        c.recv(100)
    c.close()
    out = read_until(p, b"session.end", 12)
    running = p.poll() is None
    time.sleep(1.2)
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=10)
    srv.close()
    return running, p.returncode, [json.loads(l) for l in (out + rest).decode().splitlines() if l.strip()], err.decode()


running, rc, evs, err = live_lo("ndjson") if os.geteuid() == 0 else (None, None, [], "not root")
if running is None:
    print(f"skip live capture on lo: {err.strip() if rc is None else f'mxtrace cannot open it here (exit {rc}: {err.strip()})'}")
else:
    ends = [e for e in evs if e.get("type") == "session.end"]
    stats = [e for e in evs if e.get("type") == "capture.stats"]
    check(running and len(ends) == 1 and ends[0]["verdict"]["code"] == "no_mail",
          "live on lo: the session is written when it ends, while mxtrace runs")
    check(rc == 0 and len(stats) >= 2 and stats[-1]["final"] is True and stats[-1]["received"] > 0,
          f"live on lo: capture.stats every second and a final one ({len(stats)}; {err.strip()!r})")
    check(all(b["received"] >= a["received"] for a, b in zip(stats, stats[1:])), "capture.stats counters never go back")
    _, rc2, ecs, _ = live_lo("ecs")
    try:
        import jsonschema
        V = jsonschema.Draft202012Validator
        sch = {n: json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schema", n)))
               for n in ("mxtrace.schema.json", "mxtrace-ecs.schema.json")}
        sn, se = sch["mxtrace.schema.json"], sch["mxtrace-ecs.schema.json"]
        try:
            from referencing import Registry, Resource
            reg = Registry().with_resources([(x["$id"], Resource.from_contents(x)) for x in (sn, se)])
            vn, ve = V(sn, registry=reg), V(se, registry=reg)
        except ImportError:           # jsonschema 4.10 (Debian 12): a resolver
            store = {sn["$id"]: sn, se["$id"]: se}
            vn = V(sn, resolver=jsonschema.RefResolver.from_schema(sn, store=store))
            ve = V(se, resolver=jsonschema.RefResolver.from_schema(se, store=store))
        bad = [str(x.message) for e in evs for x in vn.iter_errors(e)] + [str(x.message) for e in ecs for x in ve.iter_errors(e)]
        check(not bad and any(e.get("mxtrace", {}).get("type") == "capture.stats" for e in ecs),
              f"live events and their ECS form (capture.stats a metric) valid against the schemas {bad[:3]}")
    except ImportError:
        print("skip schema validation of live events: python3-jsonschema missing")

print(f"{'FAILED: ' + str(len(fails)) if fails else 'all passed'}")
sys.exit(1 if fails else 0)
