#!/usr/bin/env python3
"""The HTML report in a real browser.

Writes a report of every capture in pcaps/, loads it in headless Chromium,
and checks the DOM after the page's script has run: one section per
session with its verdict, a ladder of arrows, failing steps highlighted,
the index table, and the verdict filter (driven through the URL hash).
Keeps a screenshot in the build folder as a test artifact.  Exit 77
(skipped) when Chromium is not installed.
"""
import glob, os, re, shutil, subprocess, sys, tempfile
from html.parser import HTMLParser

MX = sys.argv[1]
ARTIFACTS = sys.argv[2] if len(sys.argv) > 2 else "."
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if not browser:
    print("SKIP: no chromium installed")
    sys.exit(77)

caps = sorted(glob.glob(os.path.join(ROOT, "pcaps", "*", "*.pcap")))
caps = [c for c in caps if not os.path.basename(c).startswith("broken-")]
tmp = tempfile.mkdtemp(prefix="mx-html.")
report = os.path.join(tmp, "report.html")
args = [MX, "-F", "html", "-o", report]
for c in caps:
    args += ["-r", c]
subprocess.run(args, check=False)
ndjson = subprocess.run([MX, "-F", "ndjson"] + sum((["-r", c] for c in caps), []), capture_output=True, text=True).stdout
expected = {}
for line in ndjson.splitlines():
    if '"type":"session.end"' in line:
        import json
        e = json.loads(line)
        expected[e["session"]] = e["verdict"]["code"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--user-data-dir=" + os.path.join(tmp, "profile")]

def dom(url):
    r = subprocess.run([browser] + FLAGS + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    return r.stdout

class Scan(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.rows, self.arrows, self.fails, self.scripts = [], [], 0, 0, 0
        self.cur = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "") or ""
        if tag == "section":
            self.cur = {"id": a.get("id"), "verdict": a.get("data-verdict"), "hidden": "hidden" in cls.split(), "arrows": 0, "fails": 0}
            self.sections.append(self.cur)
        elif tag == "tr" and "data-verdict" in a:
            self.rows.append((a["data-verdict"], "hidden" in cls.split()))
        elif tag == "div" and "arrow" in cls.split() and self.cur:
            self.cur["arrows"] += 1
            self.arrows += 1
        elif tag == "div" and "fail" in cls.split() and self.cur:
            self.cur["fails"] += 1
        elif tag == "script":
            self.scripts += 1

passed = failed = 0
def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + msg)

html = open(report, encoding="utf-8").read()
check("http://" not in html and "https://" not in html and "src=" not in html, "report loads nothing from the network")

s = Scan(); s.feed(dom("file://" + report))
check(len(s.sections) == len(expected) and len(expected) > 30, f"{len(s.sections)} sections for {len(expected)} sessions")
for sec in s.sections:
    sid = int(sec["id"][1:])
    check(sec["verdict"] == expected.get(sid), f"session {sid}: verdict {sec['verdict']} != {expected.get(sid)}")
    check(sec["arrows"] >= 2, f"session {sid}: only {sec['arrows']} arrows")
    if expected.get(sid, "").startswith(("tls_rejected", "refused", "auth_failed", "starttls_refused")):
        check(sec["fails"] >= 1, f"session {sid} ({expected.get(sid)}): failing step not highlighted")
check(len(s.rows) == len(expected), "index has a row per session")
check(not any(sec["hidden"] for sec in s.sections), "nothing hidden without a filter")

refused = sum(1 for v in expected.values() if v == "refused")
s2 = Scan(); s2.feed(dom("file://" + report + "#verdict=refused"))
visible = [sec for sec in s2.sections if not sec["hidden"]]
check(len(visible) == refused and refused >= 1, f"filter: {len(visible)} visible, {refused} refused sessions")
check(all(sec["verdict"] == "refused" for sec in visible), "filter shows only refused sessions")

os.makedirs(ARTIFACTS, exist_ok=True)
shot = os.path.join(ARTIFACTS, "report.png")
subprocess.run([browser] + FLAGS + ["--window-size=1280,2000", "--screenshot=" + shot, "file://" + report],
               capture_output=True, timeout=120)
check(os.path.exists(shot) and os.path.getsize(shot) > 10000, "screenshot written to " + shot)
shutil.copy(report, os.path.join(ARTIFACTS, "report.html"))
shutil.rmtree(tmp, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
