#!/usr/bin/env python3
"""workers.py MXTRACE MXGEN PCAPDIR SHAREDPCAPS WORKDIR - --workers N changes nothing.

With N worker threads (flows sharded by hash) the output of a capture file
must be byte-identical whatever N is.  For every capture under PCAPDIR and,
when it is there, under SHAREDPCAPS (the public captures, absent in a
user's clone: that half is skipped with a message), mxtrace runs with
--workers 1, 2 and 3 in every output form

    -F timeline, -F timeline --pretty, -F ndjson, -F text, -F summary,
    -F html, -F ecs

and standard output, the exit status and standard error of --workers 2 and
3 must be those of --workers 1, byte for byte.  A capture whose single run
takes more than MX_WORKERS_SLOW seconds (default 5) is checked in ndjson,
text and html only (said in the output).  The shared captures get the
options the conformance test gives them (-p 2525; the TLS-alert ones on web
ports also --tls-port 443,465 --any-port).

Besides:
  * two files read one after the other (-r A -r B) and side by side
    (--merge -r A -r B): a pair from PCAPDIR and, with MXGEN, a pair of
    generated captures of many overlapping connections (IPv4 and IPv6, same
    time span, so that --merge interleaves them);
  * generated captures (MXGEN, bench/gen.c): hundreds of connections open
    at once, the case sharding is for.  Read one after the other, the second
    file's times lie before the first's end, so its ended connections wait
    for late resets until the end of the input, and merged, over a thousand
    end within 5 s: there --max-lingering is raised, since the caps (--max-flows, --max-lingering, --memcap) are
    shared out among the workers and a run that reaches one may differ (the
    README says so);
  * --any-port on two captures of PCAPDIR and on three shared ones where it
    changes the output; --idle-timeout 1 where it does;
  * -w OUT.pcap with --workers 1 and 3: the same pcap file, byte for byte;
    in the same run --stats, whose counters (packets, tcp, mail, sessions,
    non-ip, non-tcp, fragments, truncated, malformed, timed-out, evicted,
    off-port-ignored, and any other) must be equal; peak-flows,
    buffers-peak-kb and peak-memory-kb may differ;
  * -r - (the capture piped in) with --workers 2 equals the file run
    (standard error naming "(stdin)" instead of the file);
  * --workers 0, abc, 1000, -1, 2x: exit 1 with one line on standard error
    naming --workers, nothing on standard output.

MX_WORKERS_QUICK=1 (the ThreadSanitizer build): PCAPDIR only (and the
captures generated from it), in -F ndjson and -F text.  Every difference is
collected and printed (capture, form, worker count, the first differing
line of each and a short unified diff); the exit status is 1 if there was
any.
"""
import concurrent.futures
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

if len(sys.argv) != 6:
    sys.exit(__doc__)
MX, GEN, PCAPS, SHARED, WORK = sys.argv[1:6]
QUICK = os.environ.get("MX_WORKERS_QUICK", "") not in ("", "0")
SLOW_S = float(os.environ.get("MX_WORKERS_SLOW", "5"))
RUN_TIMEOUT = 600 if QUICK else 300
WORKERS = (1, 2, 3)

# (name, options): ndjson first, its workers-1 run is the one timed
ALL_FORMS = [("ndjson", ["-F", "ndjson"]), ("text", ["-F", "text"]), ("html", ["-F", "html"]),
             ("timeline", ["-F", "timeline"]), ("timeline --pretty", ["-F", "timeline", "--pretty"]),
             ("summary", ["-F", "summary"]), ("ecs", ["-F", "ecs"]), ("tlsrpt", ["-F", "tlsrpt"])]
SLOW_FORMS = ("ndjson", "text", "html")
FORMS = [f for f in ALL_FORMS if f[0] in ("ndjson", "text")] if QUICK else ALL_FORMS

# --stats counters: every one must agree but the peaks, which depend on how
# the flows are spread over the workers; these must be there
STATS_MAY_DIFFER = ("peak-flows", "buffers-peak-kb", "peak-memory-kb")
STATS_REQUIRED = ("packets", "tcp", "mail", "sessions", "non-ip", "non-tcp", "fragments", "truncated",
                  "malformed", "timed-out", "evicted", "off-port-ignored")
SANITIZER = re.compile(rb"WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")

lock = threading.Lock()
failures = []          # (what, detail lines)
notes = []
counts = {"runs": 0, "comparisons": 0}


def fail(what, detail=()):
    with lock:
        failures.append((what, list(detail)))


def note(msg):
    with lock:
        notes.append(msg)


def rel(path):
    """A capture's name in messages: its path from the folder above pcaps/."""
    if os.path.dirname(os.path.abspath(path)) == os.path.abspath(WORK):
        return "generated " + os.path.basename(path)
    # from the repository root: pcaps/smtp/..., ../shared/pcaps/ndpi/...
    return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(PCAPS)))


class Run:
    def __init__(self, args, stdin=None):
        self.args = args
        t0 = time.monotonic()
        try:
            r = subprocess.run([MX] + args, stdin=stdin or subprocess.DEVNULL, capture_output=True,
                               timeout=RUN_TIMEOUT)
            self.rc, self.out, self.err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            self.rc, self.out, self.err = "timeout", e.stdout or b"", (e.stderr or b"") + b"\n(timed out)"
        self.secs = time.monotonic() - t0
        with lock:
            counts["runs"] += 1


def mx(args, stdin_path=None):
    if stdin_path is None:
        return Run(args)
    with open(stdin_path, "rb") as fh:
        return Run(args, stdin=fh)


# ---- reporting a difference ------------------------------------------------------

def clip(s, n=160):
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


def text_diff(a, b, name_a, name_b):
    """The first differing line of each (around the first differing column)
    and a unified diff of at most 20 lines."""
    la = a.decode("utf-8", "replace").split("\n")
    lb = b.decode("utf-8", "replace").split("\n")
    out = [f"{name_a}: {len(a)} bytes, {len(la)} lines; {name_b}: {len(b)} bytes, {len(lb)} lines"]
    i = next((k for k in range(min(len(la), len(lb))) if la[k] != lb[k]), min(len(la), len(lb)))
    x = la[i] if i < len(la) else "(no such line)"
    y = lb[i] if i < len(lb) else "(no such line)"
    col = len(os.path.commonprefix([x, y]))
    lo = max(0, col - 60)
    out.append(f"first difference: line {i + 1}, column {col + 1}")
    out.append(f"  {name_a}: {'...' if lo else ''}{clip(x[lo:], 200)!r}")
    out.append(f"  {name_b}: {'...' if lo else ''}{clip(y[lo:], 200)!r}")
    # a window from the first difference on: difflib is quadratic, outputs
    # can be megabytes
    lo_i = max(0, i - 1)
    wa = [clip(l) for l in la[lo_i:i + 30]]
    wb = [clip(l) for l in lb[lo_i:i + 30]]
    ud = list(difflib.unified_diff(wa, wb, name_a, name_b, n=1, lineterm=""))
    ud = [re.sub(r"^@@ -(\d+)(.*) \+(\d+)", lambda m: f"@@ -{int(m.group(1)) + lo_i}{m.group(2)} "
                 f"+{int(m.group(3)) + lo_i}", l) if l.startswith("@@") else l for l in ud]
    out += ["  " + l for l in ud[:20]]
    if len(ud) > 20:
        out.append("  ...")
    return out


def sanitizer_check(what, run):
    if SANITIZER.search(run.err):
        m = SANITIZER.search(run.err)
        fail(f"{what}: sanitizer report on stderr",
             [clip(l, 200) for l in run.err[max(0, m.start() - 200):].decode("utf-8", "replace").split("\n")[:20]])


def compare(what, ref, got, name_ref, name_got, err_ref=None, err_got=None):
    """Exit status, stdout and stderr (or the given stand-ins) of two runs."""
    with lock:
        counts["comparisons"] += 1
    sanitizer_check(f"{what} {name_got}", got)
    ok = True
    if ref.rc != got.rc:
        fail(f"{what}: exit status {ref.rc} with {name_ref}, {got.rc} with {name_got}",
             ["stderr " + name_ref + ": " + clip(ref.err.decode("utf-8", "replace").strip(), 300),
              "stderr " + name_got + ": " + clip(got.err.decode("utf-8", "replace").strip(), 300)])
        ok = False
    if ref.out != got.out:
        fail(f"{what}: standard output of {name_got} differs from {name_ref}",
             text_diff(ref.out, got.out, name_ref, name_got))
        ok = False
    ea = ref.err if err_ref is None else err_ref
    eb = got.err if err_got is None else err_got
    if ea != eb:
        fail(f"{what}: standard error of {name_got} differs from {name_ref}", text_diff(ea, eb, name_ref, name_got))
        ok = False
    return ok


# ---- the checks -----------------------------------------------------------------

def refused(run):
    return run.rc == 1 and b"--workers" in run.err


def check_forms(label, args, forms=None, timed=True):
    """args (inputs and options) with --workers 1, 2, 3 in every form.
    Returns the workers-1 runs by form name."""
    todo = list(forms or FORMS)
    refs = {}
    while todo:
        fname, fopts = todo.pop(0)
        ref = mx(args + fopts + ["--workers", "1"])
        sanitizer_check(f"{label} [{fname}] --workers 1", ref)
        refs[fname] = ref
        if refused(ref):
            # the option is not there (or refused): one message, not one per form
            fail(f"{label}: --workers 1 refused (exit 1)", [clip(ref.err.decode("utf-8", "replace").strip(), 300)])
            return refs
        for n in WORKERS[1:]:
            compare(f"{label} [{fname}]", ref, mx(args + fopts + ["--workers", str(n)]),
                    "--workers 1", f"--workers {n}")
        if timed and len(refs) == 1 and ref.secs > SLOW_S and any(f[0] not in SLOW_FORMS for f in todo):
            todo = [f for f in todo if f[0] in SLOW_FORMS]
            note(f"{label}: one run takes {ref.secs:.1f} s (> {SLOW_S:g} s): "
                 f"checked in {', '.join([fname] + [f[0] for f in todo])} only")
    return refs


def parse_stats(err):
    """The counters of the --stats line, and stderr without that line and
    the per-worker lines (which only --workers N > 1 prints: returned in
    counters["workers"], one dict each)."""
    counters, rest, workers = None, [], []
    for line in err.split(b"\n"):
        if line.startswith(b"mxtrace: packets ") and counters is None:
            toks = line[len(b"mxtrace: "):].decode("utf-8", "replace").split()
            counters = {toks[k]: toks[k + 1] for k in range(0, len(toks) - 1, 2)}
        elif re.match(rb"mxtrace: worker \d+: ", line):
            toks = line.decode("utf-8", "replace").split(":", 2)[2].split()
            workers.append({toks[k]: toks[k + 1] for k in range(0, len(toks) - 1, 2)})
        else:
            rest.append(line)
    if counters is not None:
        counters["workers"] = workers
    return counters, b"\n".join(rest)


def check_side(label, args, tag):
    """-w and --stats, --workers 1 against 3."""
    runs = {}
    for n in (1, 3):
        w = os.path.join(WORK, f"{tag}.w{n}.pcap")
        if os.path.exists(w):
            os.unlink(w)
        r = mx(args + ["-F", "ndjson", "--stats", "-w", w, "--workers", str(n)])
        r.pcap = open(w, "rb").read() if os.path.exists(w) else None
        runs[n] = r
    a, b = runs[1], runs[3]
    sanitizer_check(f"{label} -w --stats --workers 1", a)
    if refused(a):
        return  # reported by check_forms
    # messages about the -w file name it: the same name in both
    ca, ra = parse_stats(a.err.replace(os.path.join(WORK, f"{tag}.w1.pcap").encode(), b"OUT.pcap"))
    cb, rb_ = parse_stats(b.err.replace(os.path.join(WORK, f"{tag}.w3.pcap").encode(), b"OUT.pcap"))
    compare(f"{label} [-w --stats]", a, b, "--workers 1", "--workers 3", err_ref=ra, err_got=rb_)
    if a.pcap != b.pcap:
        if a.pcap is None or b.pcap is None:
            fail(f"{label}: -w wrote a file with --workers {1 if b.pcap is None else 3} only")
        else:
            k = next((i for i in range(min(len(a.pcap), len(b.pcap))) if a.pcap[i] != b.pcap[i]),
                     min(len(a.pcap), len(b.pcap)))
            fail(f"{label}: -w files differ (--workers 1: {len(a.pcap)} bytes, --workers 3: {len(b.pcap)} bytes)",
                 [f"first differing byte at offset {k}" + (" (the global header)" if k < 24 else "")])
    for w in (1, 3):
        p = os.path.join(WORK, f"{tag}.w{w}.pcap")
        if os.path.exists(p):
            os.unlink(p)
    if ca is None and cb is None:
        if a.rc in (0, 3):
            fail(f"{label}: --stats printed no counters line (exit {a.rc})")
        return
    if ca is None or cb is None:
        fail(f"{label}: --stats counters line with --workers {1 if cb is None else 3} only")
        return
    wa, wb = ca.pop("workers"), cb.pop("workers")
    if wa or len(wb) != 3 or sum(int(w.get("sessions", -1)) for w in wb) != int(cb.get("sessions", -2)) \
            or sum(int(w.get("mail", -1)) for w in wb) != int(cb.get("mail", -2)):
        fail(f"{label}: --stats per-worker lines: none with --workers 1, three with --workers 3 "
             "whose sessions and mail packets add up to the run's", [clip(str(wa), 200), clip(str(wb), 300)])
    missing = [k for k in STATS_REQUIRED if k not in ca]
    if missing:
        fail(f"{label}: --stats line lacks {', '.join(missing)}", [clip(str(ca), 300)])
    bad = [f"{k}: {ca.get(k)} with --workers 1, {cb.get(k)} with --workers 3"
           for k in sorted(set(ca) | set(cb)) if k not in STATS_MAY_DIFFER and ca.get(k) != cb.get(k)]
    if bad:
        fail(f"{label}: --stats counters differ", bad)


def check_stdin(label, cap, opts, refs, forms):
    """-r - --workers 2 against the file run (--workers 1)."""
    for fname, fopts in forms:
        ref = refs.get(fname)
        if ref is None or refused(ref):
            return
        got = mx(["-r", "-"] + opts + fopts + ["--workers", "2"], stdin_path=cap)
        compare(f"{label} [{fname}, -r - piped in]", ref, got, "-r FILE --workers 1", "-r - --workers 2",
                err_ref=ref.err.replace(cap.encode(), b"(stdin)"))


def check_invalid():
    cap = os.path.join(PCAPS, "smtp", "s1-plain-delivery.pcap")
    for v in ("0", "abc", "1000", "-1", "2x"):
        r = mx(["-r", cap, "-F", "ndjson", "--workers", v])
        lines = r.err.decode("utf-8", "replace").rstrip("\n").split("\n")
        what = f"--workers {v}"
        if r.rc != 1:
            fail(f"{what}: exit status {r.rc}, want 1 (bad usage)", [clip(r.err.decode("utf-8", "replace"), 300)])
        if r.out:
            fail(f"{what}: wrote {len(r.out)} bytes to standard output")
        if len(lines) != 1 or "--workers" not in lines[0]:
            fail(f"{what}: want one line on standard error naming --workers", [clip(repr(r.err), 300)])


def captures(folder):
    out = []
    for d, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".pcap", ".pcapng")):
                out.append(os.path.join(d, f))
    return out


def shared_opts(path):
    """The options conformance.py runs the shared captures with."""
    opts = ["-p", "2525"]
    if os.path.basename(os.path.dirname(path)) == "tls-alerts":
        opts += ["--tls-port", "443,465", "--any-port"]
    return opts


def generate():
    """Two captures of many overlapping connections, on the same time span:
    IPv4 (several SMTP and TLS stories) and IPv6; None without MXGEN."""
    if GEN in ("", "-") or not os.access(GEN, os.X_OK):
        note(f"no capture generator ({GEN!r}): generated captures not checked")
        return None
    s, t = os.path.join(PCAPS, "smtp"), os.path.join(PCAPS, "tls")
    v4 = [os.path.join(s, f) for f in ("s1-plain-delivery.pcap", "pipelining.pcap", "bdat.pcap",
                                       "w-one-sided-client.pcap", "w-ack-race-multi.pcap", "s5-auth-login-fail.pcap",
                                       "s1-reordered.pcap", "s1-lost-segment.pcap", "multi-transaction.pcap")]
    v4 += [os.path.join(t, f) for f in ("s2-starttls-tls12.pcap", "smtps-465-tls13.pcap",
                                        "s3-openssl-unknown-ca.pcap", "tls13-rejected.pcap")]
    v6 = [os.path.join(s, f) for f in ("ipv6.pcap", "ipv6-20-ext-headers.pcap")]
    n4, n6 = (300, 100) if QUICK else (800, 300)
    a, b = os.path.join(WORK, "gen-v4.pcap"), os.path.join(WORK, "gen-v6.pcap")
    for out, n, c, seed, tmpl in ((a, n4, 64, 1, v4), (b, n6, 32, 7, v6)):
        tmpl = [p for p in tmpl if os.path.exists(p)]
        r = subprocess.run([GEN, "-q", "-n", str(n), "-c", str(c), "-s", str(seed), "-o", out] + tmpl,
                           capture_output=True)
        if r.returncode != 0:
            fail(f"capture generator failed (exit {r.returncode})", [r.stderr.decode("utf-8", "replace")[-300:]])
            return None
    return a, b


def main():
    t0 = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    if not os.path.isdir(PCAPS):
        sys.exit(f"{PCAPS}: not a folder")
    own = captures(PCAPS)
    shared = []
    if QUICK:
        note("MX_WORKERS_QUICK: pcaps/ (and captures generated from it) only, in ndjson and text")
    elif os.path.isdir(SHARED):
        shared = captures(SHARED)
    else:
        note(f"SKIP the shared captures: {SHARED} not found (they are not part of a clone)")
    gen = generate()

    # (label, args, stdin capture or None); the biggest first
    jobs = [(rel(c), ["-r", c], c, []) for c in own]
    jobs += [(rel(c), ["-r", c] + shared_opts(c), c, shared_opts(c)) for c in shared]
    jobs.sort(key=lambda j: -os.path.getsize(j[2]))
    s1 = os.path.join(PCAPS, "smtp", "s1-plain-delivery.pcap")
    s2 = os.path.join(PCAPS, "tls", "s2-starttls-tls12.pcap")
    extra = [(f"-r {rel(s1)} -r {rel(s2)}", ["-r", s1, "-r", s2]),
             (f"--merge -r {rel(s1)} -r {rel(s2)}", ["--merge", "-r", s1, "-r", s2]),
             (f"--any-port {rel(s1)}", ["-r", s1, "--any-port"]),
             (f"--any-port {rel(s2)}", ["-r", s2, "--any-port"])]
    bdat = os.path.join(PCAPS, "smtp", "w-bdat-malformed.pcap")
    if os.path.exists(bdat):
        extra.append((f"--idle-timeout 1 {rel(bdat)}", ["-r", bdat, "--idle-timeout", "1"]))
    for name in ("ndpi/ndpi-emotet.pcap", "ndpi/ndpi-synscan.pcap", "suricata-verify/sv-smtp-attachment-md5.pcap"):
        p = os.path.join(SHARED, name)
        if shared and os.path.exists(p):
            extra.append((f"--any-port {rel(p)}", ["-r", p, "--any-port"]))
    emotet = os.path.join(SHARED, "ndpi", "ndpi-emotet.pcap")
    if shared and os.path.exists(emotet):
        extra.append((f"--idle-timeout 1 {rel(emotet)}", ["-r", emotet, "--idle-timeout", "1"]))
    if gen:
        a, b = gen
        jobs = [(rel(a), ["-r", a], a, []), (rel(b), ["-r", b], b, [])] + jobs
        extra = [(f"-r {rel(a)} -r {rel(b)}", ["-r", a, "-r", b, "--max-lingering", "100000"]),
                 (f"--merge -r {rel(a)} -r {rel(b)}", ["--merge", "-r", a, "-r", b, "--max-lingering", "100000"])] + extra

    def one(k, job):
        label, args, cap, opts = job
        refs = check_forms(label, args)
        if refused(refs[FORMS[0][0]]):
            return                      # --workers refused: reported once
        check_side(label, args, f"c{k}")
        # piped in: every form for the generated captures, ndjson for the rest
        check_stdin(label, cap, opts, refs, FORMS if gen and cap in gen else FORMS[:1])

    def caps_shared(cap):
        """Caps are shared out among workers: at --max-flows 16 with 2
        workers, evictions happen (with their limit events) and nothing is
        lost: every session that starts ends, every connection is there."""
        base = mx(["-r", cap, "-F", "ndjson"])
        r = mx(["-r", cap, "-F", "ndjson", "--max-flows", "16", "--workers", "2"])
        sanitizer_check("--max-flows 16 --workers 2", r)
        lines = [json.loads(l) for l in r.out.splitlines() if l.strip()]
        starts = [o for o in lines if o.get("type") == "session.start"]
        ends = [o for o in lines if o.get("type") == "session.end"]
        limits = [o for o in lines if o.get("type") == "limit" and o.get("limit") == "max_flows"]
        conns = lambda objs: {(o["client"]["ip"], o["client"]["port"]) for o in objs if o.get("type") == "session.start"}
        allconns = conns(json.loads(l) for l in base.out.splitlines() if l.strip())
        if r.rc != 0 or not limits or len(starts) != len(ends) or conns(lines) != allconns \
                or any(o.get("value") != 8 for o in limits):
            fail(f"--max-flows 16 --workers 2 {rel(cap)}: caps shared out",
                 [f"exit {r.rc}, {len(starts)} session.start, {len(ends)} session.end, "
                  f"{len(limits)} max_flows limit events (values {sorted({o.get('value') for o in limits})}, want 8), "
                  f"{len(conns(lines))} of {len(allconns)} connections"])

    pool_n = max(2, os.cpu_count() or 2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=pool_n) as pool:
        futs = [pool.submit(one, k, j) for k, j in enumerate(jobs)]
        futs += [pool.submit(check_forms, label, args, None, False) for label, args in extra]
        futs.append(pool.submit(check_invalid))
        if gen:
            futs.append(pool.submit(caps_shared, gen[0]))
        for f in futs:
            f.result()

    for n in notes:
        print("note:", n)
    print(f"{len(own)} captures of {os.path.normpath(PCAPS)}, {len(shared)} of {os.path.normpath(SHARED)}"
          f"{', 2 generated' if gen else ''}, {len(extra)} option/pair variants; "
          f"{counts['runs']} runs, {counts['comparisons']} comparisons in {time.monotonic() - t0:.1f} s "
          f"({pool_n} at a time)")
    # every failure on one line; the details of the first few of each kind
    kinds = ("refused", "sanitizer", "piped in", "-w ", "--stats", "want", "exit status", "standard output",
             "standard error")
    shown, detailed = {}, 0
    for what, detail in sorted(failures):
        kind = next((k for k in kinds if k in what), "other")
        print("FAIL:", what)
        if detail and shown.get(kind, 0) < 3 and detailed < 40:
            shown[kind] = shown.get(kind, 0) + 1
            detailed += 1
            for d in detail:
                print("    " + d)
    print(f"{len(failures)} failures")
    if not failures:
        shutil.rmtree(WORK, ignore_errors=True)     # kept to look into otherwise
    sys.exit(1 if failures else 0)


main()
