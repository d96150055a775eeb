#!/usr/bin/env python3
"""ecs_check.py MXTRACE DIR... - the ECS rendering (-F ecs) of
every capture carries exactly the native events (-F ndjson) under "mxtrace",
in the same order, and its ECS fields agree with them: @timestamp, event.*
from the event type table, allowed ECS categories and types, source and
destination from the session's endpoints, tls.* and email.* from the
native fields.  A missing directory is skipped with a message."""
import json, os, subprocess, sys

ALLOWED_CAT = {"authentication", "configuration", "database", "driver", "email", "file", "host", "iam",
               "intrusion_detection", "library", "malware", "network", "package", "process", "registry",
               "session", "threat", "vulnerability", "web"}
ALLOWED_TYPE = {"access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "end",
                "error", "group", "indicator", "info", "installation", "protocol", "start", "user"}

def run(mx, cap, fmt):
    p = subprocess.run([mx, "-r", cap, "-F", fmt, "--any-port"], capture_output=True)
    if p.returncode == 2 and not p.stdout:
        return []                       # not a readable capture (broken-*): nothing to compare
    if p.returncode not in (0, 3):
        raise SystemExit("FAIL %s -F %s: exit %d: %s" % (cap, fmt, p.returncode, p.stderr.decode(errors="replace")))
    return [json.loads(l) for l in p.stdout.decode().splitlines()]

def main():
    mx = sys.argv[1]
    types = {}
    table = subprocess.run([mx, "--list-event-types"], capture_output=True, text=True, check=True).stdout
    for line in table.splitlines():
        name, cat, typ, _ = line.rstrip("\n").split("\t")
        types[name] = (cat, typ)
    errors, ncap, nev = [], 0, 0
    def err(cap, i, msg):
        errors.append("%s: event %d: %s" % (cap, i + 1, msg))
    for d in sys.argv[2:]:
        if not os.path.isdir(d):
            print("skipped: %s absent" % d)
            continue
        for root, _, files in sorted(os.walk(d)):
            for fn in sorted(files):
                if not fn.endswith((".pcap", ".pcapng", ".cap")):
                    continue
                cap = os.path.join(root, fn)
                native, ecs = run(mx, cap, "ndjson"), run(mx, cap, "ecs")
                ncap += 1
                if len(native) != len(ecs):
                    err(cap, 0, "%d ECS events for %d native" % (len(ecs), len(native)))
                    continue
                ends = {}
                for n in native:
                    if n["type"] == "session.start":
                        ends[n["session"]] = (n["client"], n["server"])
                for i, (n, e) in enumerate(zip(native, ecs)):
                    nev += 1
                    if e.get("mxtrace") != n:
                        err(cap, i, "mxtrace member differs from the native event"); continue
                    t = n["type"]
                    ev = e.get("event", {})
                    if e.get("@timestamp") != n["ts"]: err(cap, i, "@timestamp")
                    if e.get("ecs", {}).get("version", "").split(".")[0] != "8": err(cap, i, "ecs.version")
                    if ev.get("action") != t or ev.get("category") != [types[t][0]] or ev.get("type") != [types[t][1]]:
                        err(cap, i, "event.action/category/type against the table")
                    if not set(ev.get("category", [])) <= ALLOWED_CAT or not set(ev.get("type", [])) <= ALLOWED_TYPE:
                        err(cap, i, "event.category/type outside ECS's allowed values")
                    if ev.get("kind") not in ("event", "alert"): err(cap, i, "event.kind")
                    if t in ("output.drop", "capture.stats", "capture.loss", "attempt.end"):
                        continue                 # the run's own: no session, no network
                    if n["session"] in ends:
                        c, s = ends[n["session"]]
                        if e.get("source") != c or e.get("destination") != s: err(cap, i, "source/destination")
                    net = e.get("network", {})
                    if net.get("transport") != "tcp" or net.get("type") not in ("ipv4", "ipv6"): err(cap, i, "network")
                    if t == "session.end":
                        ok = n["verdict"]["ok"]
                        if ev.get("outcome") != ("success" if ok else "failure"): err(cap, i, "event.outcome")
                        if ev.get("reason") != n["verdict"].get("explanation"): err(cap, i, "event.reason")
                        if not isinstance(ev.get("duration"), int): err(cap, i, "event.duration")
                    if t == "tls.client_hello":
                        cl = e.get("tls", {}).get("client", {})
                        if cl.get("server_name") != n.get("sni") or cl.get("ja3") != n.get("ja3"): err(cap, i, "tls.client")
                    if t == "tls.server_hello":
                        tl = e.get("tls", {})
                        if tl.get("cipher") != n.get("cipher") or tl.get("server", {}).get("ja3s") != n.get("ja3s"): err(cap, i, "tls.server")
                        v = n.get("version", "")
                        want = v[4:] if "." in v[4:] else v[4:] + ".0"      # TLSv1 is "1.0" in ECS
                        if v[:4] in ("TLSv", "SSLv") and tl.get("version") != want: err(cap, i, "tls.version")
                    if t == "tls.certificate" and n.get("chain"):
                        side = e.get("tls", {}).get(n["from"], {})
                        if side.get("hash", {}).get("sha256") != n["chain"][0]["sha256"].upper(): err(cap, i, "tls hash")
                        if side.get("x509", {}).get("subject", {}).get("distinguished_name") != n["chain"][0].get("subject"): err(cap, i, "x509 subject")
                    if t == "smtp.data":
                        h = n.get("headers", {})
                        em = e.get("email", {})
                        if em.get("subject") != h.get("subject") or em.get("message_id") != h.get("message_id"): err(cap, i, "email")
                        if "from" in h and not all(a in h["from"] for a in em.get("from", {}).get("address", ["\0"])):
                            err(cap, i, "email.from.address not taken from the From header")
    for x in errors[:50]:
        print("FAIL", x)
    print("ecs: %d captures, %d events, %d errors" % (ncap, nev, len(errors)))
    if ncap == 0 and not errors:
        print("no capture checked"); return 77
    return 1 if errors else 0

sys.exit(main())
