#!/usr/bin/env python3
"""schema_check.py MXTRACE SCHEMA_DIR [CAPTURE_DIR...] - every line mxtrace
writes validates against the JSON Schemas of SCHEMA_DIR (draft 2020-12):
-F ndjson and -F timeline against mxtrace.schema.json, -F ecs against
mxtrace-ecs.schema.json (whose "mxtrace" member refers to the native schema
by its $id, resolved from SCHEMA_DIR, never fetched), -F tlsrpt against
tlsrpt.schema.json (RFC 8460's report), whose counts must also be the
sessions of the -F ndjson run whose TLS was established or failed.  One more -F ndjson run
with --show-user, a small --max-field and --max-events exercises the fields
only those options write (user names, <key>_truncated, the limit event).

Before any capture: the schemas are valid schemas, every event type of
`mxtrace --list-event-types` has a $def of its name in the native schema and
no $def names a type that does not exist, and the validators are shown able
to fail (a known-good event passes; the same with an unknown field, a field of
the wrong type, or an unknown type does not).

A missing capture directory is skipped.  Exit 77 when the jsonschema module
is missing or no capture was checked, 1 on any failure, 0 otherwise."""
import copy, json, os, subprocess, sys

try:
    import jsonschema
except ImportError:
    print("skipped: the python3 jsonschema module is missing (Debian: python3-jsonschema)")
    sys.exit(77)

Validator = jsonschema.Draft202012Validator
CAPTURE_EXT = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")
RUNS = [("ndjson", []), ("timeline", []), ("ecs", []), ("tlsrpt", []),
        ("ndjson", ["--show-user", "--max-field", "16", "--max-events", "12"])]
MAX_SHOWN = 200


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def format_checker():
    fc = getattr(Validator, "FORMAT_CHECKER", None)
    if fc is None:
        fc = getattr(jsonschema, "draft202012_format_checker", None)
    return fc


def validators(native, ecs):
    """Validators for both schemas; the ECS one finds the native schema by
    its $id in a local store (jsonschema 4.10 API: RefResolver; newer
    versions' referencing.Registry when it is there)."""
    fc = format_checker()
    try:
        from referencing import Registry, Resource
        reg = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in (native, ecs)])
        return Validator(native, registry=reg, format_checker=fc), Validator(ecs, registry=reg, format_checker=fc)
    except ImportError:
        store = {native["$id"]: native, ecs["$id"]: ecs}
        res_n = jsonschema.RefResolver.from_schema(native, store=store)
        res_e = jsonschema.RefResolver.from_schema(ecs, store=store)
        return (Validator(native, resolver=res_n, format_checker=fc),
                Validator(ecs, resolver=res_e, format_checker=fc))


def where(err):
    return "/" + "/".join(str(p) for p in err.absolute_path)


def errors_of(v, doc):
    return sorted(v.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))


def type_coverage(mx, native):
    """Problems between the program's event type table and the schema."""
    out = subprocess.run([mx, "--list-event-types"], capture_output=True, text=True)
    if out.returncode != 0:
        return ["mxtrace --list-event-types: exit %d" % out.returncode]
    listed = [l.split("\t")[0] for l in out.stdout.splitlines() if l.strip()]
    defs = native.get("$defs", {})
    probs = []
    typed = {}                      # $defs that describe an event type: key -> its type const
    for k, d in defs.items():
        c = d.get("properties", {}).get("type", {}).get("const") if isinstance(d, dict) else None
        if c is not None:
            typed[k] = c
    for t in listed:
        if t not in defs:
            probs.append("event type %s has no $def in the native schema: add $defs/%s (its fields) and "
                         "its line in $defs/event_type and $defs/event" % (t, t))
        elif typed.get(t) != t:
            probs.append("$defs/%s does not fix \"type\" to \"%s\"" % (t, t))
    for k, c in typed.items():
        if c not in listed:
            probs.append("$defs/%s describes event type %s, which mxtrace does not have" % (k, c))
        if k != c:
            probs.append("$defs/%s describes type %s: a type's $def must be named after it" % (k, c))
    enum = defs.get("event_type", {}).get("enum", [])
    if sorted(enum) != sorted(listed):
        probs.append("$defs/event_type differs from mxtrace --list-event-types: only in the schema %s, only in mxtrace %s"
                     % (sorted(set(enum) - set(listed)), sorted(set(listed) - set(enum))))
    dispatched = set()
    for rule in defs.get("event", {}).get("allOf", []):
        c = rule.get("if", {}).get("properties", {}).get("type", {}).get("const")
        if c is not None and rule.get("then", {}).get("$ref") == "#/$defs/" + c:
            dispatched.add(c)
    for t in listed:
        if t not in dispatched:
            probs.append("$defs/event does not select $defs/%s for type %s" % (t, t))
    return probs


def must(v, doc, ok, what):
    errs = errors_of(v, doc)
    if ok and errs:
        return ["self-test: %s should validate: at %s: %s" % (what, where(errs[0]), errs[0].message)]
    if not ok and not errs:
        return ["self-test: %s validated: the schema cannot fail" % what]
    return []


def self_test_native(vn, event):
    """The native schema passes a good event and fails broken copies of
    it, alone and inside a timeline document."""
    ev = copy.deepcopy(event)
    t = ev.get("type")
    probs = must(vn, ev, True, "the %s event" % t)
    bad = copy.deepcopy(ev); bad["undocumented_field"] = 1
    probs += must(vn, bad, False, "a %s event with an unknown field" % t)
    bad = copy.deepcopy(ev); bad["session"] = str(bad["session"])
    probs += must(vn, bad, False, "a %s event whose session is a string" % t)
    bad = copy.deepcopy(ev); bad["type"] = "no.such_type"
    probs += must(vn, bad, False, "an event of an unknown type")
    bad = copy.deepcopy(ev); del bad["ts"]
    probs += must(vn, bad, False, "a %s event without ts" % t)
    doc = {"session": ev["session"], "client": {"ip": "192.0.2.1", "port": 40000},
           "server": {"ip": "2001:db8::2", "port": 25}, "start": ev["ts"], "end": ev["ts"],
           "duration": 0, "events": [ev]}
    probs += must(vn, doc, True, "a timeline document holding a %s event" % t)
    bad = copy.deepcopy(doc); bad["events"][0]["undocumented_field"] = True
    probs += must(vn, bad, False, "a timeline document holding a %s event with an unknown field" % t)
    bad = copy.deepcopy(doc); bad["client"]["port"] = 70000
    probs += must(vn, bad, False, "a timeline document with port 70000")
    return probs


def closed_objects(vn, ev, seen):
    """Every object inside a real event is closed: an unknown key added to
    it fails.  Tried once per event type and place (array indexes aside)."""
    probs = []
    for path in object_paths(ev):
        key = (ev.get("type"), tuple(k if isinstance(k, str) else "[]" for k in path))
        if not path or key in seen:
            continue
        seen.add(key)
        bad = copy.deepcopy(ev); o = bad
        for k in path:
            o = o[k]
        o["undocumented_field"] = 1
        probs += must(vn, bad, False, "a %s event with an unknown field in /%s" % (ev.get("type"), "/".join(map(str, path))))
    return probs


def object_paths(o, path=()):
    """Paths of every object inside o (o's own too)."""
    if isinstance(o, dict):
        yield path
        for k, v in o.items():
            yield from object_paths(v, path + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from object_paths(v, path + (i,))


def self_test_ecs(ve, doc):
    """The ECS schema passes a good document and fails broken copies of it,
    the native event under mxtrace included (its $ref is followed)."""
    t = doc.get("mxtrace", {}).get("type")
    probs = must(ve, doc, True, "the ECS document of a %s event" % t)
    bad = copy.deepcopy(doc); bad["mxtrace"]["undocumented_field"] = 1
    probs += must(ve, bad, False, "an ECS document whose native %s event has an unknown field" % t)
    bad = copy.deepcopy(doc); bad["event"]["undocumented"] = 1
    probs += must(ve, bad, False, "an ECS document with an unknown event.* field")
    bad = copy.deepcopy(doc); bad["event"]["category"] = ["not_an_ecs_category"]
    probs += must(ve, bad, False, "an ECS document with a category ECS does not allow")
    return probs


# A known-good event for the self-test before any capture is read.
SAMPLE = {"type": "tcp.fin", "session": 1, "ts": "2024-01-02T03:04:05.000006Z", "t": 0.5, "frame": 7,
          "from": "client", "seq": 12345}
SAMPLE_ECS = {"@timestamp": SAMPLE["ts"], "ecs": {"version": "8.11.0"},
              "event": {"kind": "event", "category": ["network"], "type": ["connection"], "action": "tcp.fin",
                        "module": "mxtrace", "dataset": "mxtrace.events"},
              "source": {"ip": "192.0.2.1", "port": 40000}, "destination": {"ip": "192.0.2.2", "port": 25},
              "network": {"transport": "tcp", "type": "ipv4", "protocol": "smtp"}, "mxtrace": SAMPLE}


def captures(dirs):
    for d in dirs:
        if not os.path.isdir(d):
            print("skipped: %s absent" % d)
            continue
        for root, subdirs, files in os.walk(d):
            subdirs.sort()
            for fn in sorted(files):
                if fn.endswith(CAPTURE_EXT):
                    yield os.path.join(root, fn)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    mx, sdir, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    native = load(os.path.join(sdir, "mxtrace.schema.json"))
    ecs = load(os.path.join(sdir, "mxtrace-ecs.schema.json"))
    rpt = load(os.path.join(sdir, "tlsrpt.schema.json"))
    fails = []
    for name, s in (("mxtrace.schema.json", native), ("mxtrace-ecs.schema.json", ecs), ("tlsrpt.schema.json", rpt)):
        try:
            Validator.check_schema(s)
        except jsonschema.exceptions.SchemaError as e:
            fails.append("%s is not a valid draft 2020-12 schema: %s" % (name, e.message))
    if fails:
        for f in fails:
            print("FAIL", f)
        return 1
    vn, ve = validators(native, ecs)
    vt = Validator(rpt, format_checker=format_checker())
    good = {"organization-name": "o", "date-range": {"start-datetime": "2026-01-01T00:00:00Z",
            "end-datetime": "2026-01-02T00:00:00Z"}, "contact-info": "c", "report-id": "r",
            "policies": [{"policy": {"policy-type": "no-policy-found", "policy-domain": "example.org"},
                          "summary": {"total-successful-session-count": 1, "total-failure-session-count": 1},
                          "failure-details": [{"result-type": "certificate-expired", "failed-session-count": 1}]}]}
    bad = copy.deepcopy(good)
    bad["policies"][0]["failure-details"][0]["result-type"] = "certificate-too-old"
    if errors_of(vt, good) or not errors_of(vt, bad):
        fails.append("tlsrpt.schema.json: a good report fails or a bad result type passes")
    fails += type_coverage(mx, native)
    fails += self_test_native(vn, SAMPLE) + self_test_ecs(ve, SAMPLE_ECS)
    if fails:
        for f in fails:
            print("FAIL", f)
        return 1
    if format_checker() is None:
        print("note: no format checker in this jsonschema: formats not checked")

    ncap, lines, tested_real, closed_seen = 0, {}, set(), set()
    for cap in captures(dirs):
        checked = False
        runs = list(RUNS)
        keys = os.path.splitext(cap)[0] + ".keys"
        if os.path.exists(keys):          # a key log beside it: the decrypted story too
            runs += [("ndjson", ["--keylog", keys]), ("ecs", ["--keylog", keys])]
        for fmt, extra in runs:
            label = "-F %s%s" % (fmt, " " + " ".join(extra) if extra else "")
            p = subprocess.run([mx, "-r", cap, "-F", fmt, "--any-port"] + extra, capture_output=True)
            if p.returncode == 2 and not p.stdout:
                break                    # not a readable capture (broken-*): nothing to validate
            if p.returncode not in (0, 3):
                fails.append("%s %s: exit %d: %s" % (cap, label, p.returncode, p.stderr.decode(errors="replace").strip()))
                continue
            checked = True
            try:
                text = p.stdout.decode("utf-8")
            except UnicodeDecodeError as e:
                fails.append("%s %s: output is not UTF-8 (byte %d)" % (cap, label, e.start))
                continue
            v = ve if fmt == "ecs" else vt if fmt == "tlsrpt" else vn
            if fmt == "ndjson" and not extra:
                ends = [json.loads(l) for l in text.splitlines() if '"type":"session.end"' in l]
                want_ok = sum(1 for e in ends if e.get("verdict", {}).get("tls") == "tls_ok")
                want_bad = sum(1 for e in ends if "tlsrpt" in e.get("verdict", {}))
            if fmt == "tlsrpt":
                got_ok = got_bad = 0
                for line in text.splitlines():
                    try:
                        for pol in json.loads(line).get("policies", []):
                            got_ok += pol["summary"]["total-successful-session-count"]
                            got_bad += pol["summary"]["total-failure-session-count"]
                            n = sum(d["failed-session-count"] for d in pol.get("failure-details", []))
                            if n != pol["summary"]["total-failure-session-count"] and "additional-information" not in pol:
                                fails.append("%s -F tlsrpt: failure details count %d, summary %d" %
                                             (os.path.relpath(cap), n, pol["summary"]["total-failure-session-count"]))
                    except (ValueError, KeyError, TypeError):
                        pass                  # (reported below as not JSON or by the schema)
                if (got_ok, got_bad) != (want_ok, want_bad):
                    fails.append("%s -F tlsrpt: %d successful and %d failed sessions, -F ndjson says %d and %d" %
                                 (os.path.relpath(cap), got_ok, got_bad, want_ok, want_bad))
            for i, line in enumerate(text.splitlines(), 1):
                try:
                    doc = json.loads(line)
                except ValueError as e:
                    fails.append("%s %s line %d: not JSON: %s" % (cap, label, i, e))
                    continue
                lines[label] = lines.get(label, 0) + 1
                ev = doc.get("mxtrace", doc) if fmt == "ecs" else doc
                what = "session %s" % doc.get("session", ev.get("session") if isinstance(ev, dict) else "?")
                if isinstance(ev, dict) and "type" in ev:
                    what += " %s" % ev["type"]
                for err in errors_of(v, doc)[:5]:
                    fails.append("%s %s line %d (%s): at %s: %s" % (os.path.relpath(cap), label, i, what,
                                                                    where(err), err.message[:300]))
                # the first real event of each type, and its ECS document, once
                key = (fmt, ev.get("type") if isinstance(ev, dict) else None)
                if not extra and fmt in ("ndjson", "ecs") and key not in tested_real and isinstance(ev, dict) and "session" in ev:
                    tested_real.add(key)
                    probs = self_test_native(vn, ev) if fmt == "ndjson" else self_test_ecs(ve, doc)
                    fails += ["%s: %s" % (os.path.relpath(cap), f) for f in probs]
                if fmt == "ndjson" and isinstance(ev, dict):
                    fails += ["%s: %s" % (os.path.relpath(cap), f) for f in closed_objects(vn, ev, closed_seen)]
        if checked:
            ncap += 1
    for f in fails[:MAX_SHOWN]:
        print("FAIL", f)
    if len(fails) > MAX_SHOWN:
        print("... %d more failures" % (len(fails) - MAX_SHOWN))
    total = sum(lines.values())
    print("schema: %d captures, %d lines validated (%s); self-test on %d event types, %d object places; %d failures" %
          (ncap, total, ", ".join("%s: %d" % kv for kv in lines.items()), len({t for _, t in tested_real}), len(closed_seen), len(fails)))
    if fails:
        return 1
    if ncap == 0:
        print("no capture checked")
        return 77
    return 0


sys.exit(main())
