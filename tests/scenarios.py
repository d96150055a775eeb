#!/usr/bin/env python3
"""The troubleshooting scenarios S1-S12: for each capture, the verdict code,
the evidence its explanation names, the remedy and the gateway-style log
line must be what an expert would say."""
import json, os, subprocess, sys

MX = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P = os.path.join(ROOT, "pcaps")

# capture, expected verdict fields, strings the explanation / remedy / log
# must contain
CASES = [
    ("S1", "smtp/s1-plain-delivery.pcap", {"code": "delivered", "tls": "starttls_not_offered"},
     ["frame 60", "queue id <A6B24B947901@mail.testlab.com>", "clear text"], ["STARTTLS"], "Message accepted"),
    ("S2", "tls/s2-starttls-tls12.pcap", {"code": "tls_ok", "tls": "tls_ok"},
     ["frame 20", "TLSv1.2"], None, "TLS success protocol TLSv1.2 cipher ECDHE-RSA-AES256-GCM-SHA384"),
    ("S3", "tls/s3-java-certificate-unknown.pcap", {"code": "tls_rejected_by_client", "cause": "untrusted_certificate"},
     ["certificate_unknown (46)", "frame 17", "server_hello_done"], ["root CA", "mxtrace Test Root CA", "trusted store"],
     "TLS failed: alert certificate_unknown (46) from client"),
    ("S3", "tls/s3-openssl-unknown-ca.pcap", {"code": "tls_rejected_by_client", "cause": "untrusted_certificate"},
     ["unknown_ca (48)"], ["root CA"], "TLS failed: alert unknown_ca (48) from client"),
    ("S3", "tls/s3-gnutls-bad-certificate.pcap", {"code": "tls_rejected_by_client"},
     ["bad_certificate (42)", "frame 15"], ["root CA"], "TLS failed: alert bad_certificate (42) from client"),
    ("S4", "smtp/s4-auth-login-ok.pcap", {"code": "delivered", "cause": "cleartext_credentials"},
     ["AUTH LOGIN succeeded", "clear text"], ["STARTTLS or port 465"], "Message accepted"),
    ("S5", "smtp/s5-auth-login-fail.pcap", {"code": "auth_failed"},
     ["535 5.7.3", "frame 14", "clear text"], ["user name and password"], "Authentication failed (535)"),
    ("S6", "smtp/s6-refused-587.pcap", {"code": "refused"},
     ["port 587", "frame 5", "frame 6"], ["587", "relay.testlab.example resolves"], "Connection refused by 10.25.0.2 port 587"),
    ("S7", "tls/s7-smtps-465-tls12.pcap", {"code": "tls_ok"},
     ["TLSv1.2"], None, "TLS success protocol TLSv1.2 cipher ECDHE-RSA-AES256-GCM-SHA384"),
    ("S7", "tls/smtps-465-tls13.pcap", {"code": "tls_ok"}, ["TLSv1.3"], None, "TLS success protocol TLSv1.3"),
    ("S8", "smtp/s8-starttls-454.pcap", {"code": "starttls_refused", "tls": "starttls_refused"},
     ["454", "TLS not available due to temporary reason", "frame 10"], ["certificate and key"],
     "TLS failed: STARTTLS unexpected response 454"),
    ("S9", "tls/s9-no-shared-cipher.pcap", {"code": "tls_rejected_by_server", "cause": "no_shared_cipher"},
     ["handshake_failure (40)", "frame 12", "client_hello"], ["cipher suite"], "TLS failed: no shared cipher"),
    ("S10", "smtp/s10-tls-required-530.pcap", {"code": "tls_required"},
     ["530", "Must issue a STARTTLS command first", "frame 10"], ["STARTTLS"],
     "TLS required but not initiated by the remote host"),
    ("S11", "smtp/s11-starttls-not-offered.pcap", {"code": "delivered", "tls": "starttls_not_offered"},
     ["did not offer STARTTLS"], ["enable STARTTLS"], "TLS not used"),
    ("S11", "smtp/s11-ehlo-rejected-helo.pcap", {"code": "delivered", "tls": "no_esmtp"},
     ["EHLO rejected"], None, "TLS not used"),
    ("S12", "tls/s12-name-mismatch.pcap", {"code": "tls_rejected_by_client", "cause": "name_mismatch"},
     ["bad_certificate (42)", "mailC.example.com"], ["gvsvipa006.example.com", "mailC.example.com"],
     "TLS failed: alert bad_certificate (42) from client"),
    ("-", "tls/expired-cert.pcap", {"code": "tls_rejected_by_client", "cause": "certificate_expired"},
     ["certificate_expired (45)"], ["Renew", "2021-01-01"], "TLS failed"),
    ("-", "tls/tls13-rejected.pcap", {"code": "tls_rejected_by_client", "cause": "encrypted_alert"},
     ["TLS 1.3", "encrypted"], ["root CA"], "TLS failed"),
    ("-", "smtp/server-421-mid-data.pcap", {"code": "server_abort"}, ["421", "frame 44"], ["retry later"], "421"),
    ("-", "smtp/multi-transaction.pcap", {"code": "delivered", "cause": "some_recipients_rejected"},
     ["2 messages accepted"], None, "Message accepted"),
]

passed = failed = 0
def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + msg)

for sid, cap, want, expl, rem, log in CASES:
    out = subprocess.run([MX, "-r", os.path.join(P, cap), "-F", "ndjson"], capture_output=True, text=True).stdout
    ends = [json.loads(l) for l in out.splitlines() if '"type":"session.end"' in l]
    check(len(ends) == 1, f"{sid} {cap}: one session")
    if not ends:
        continue
    v = ends[0]["verdict"]
    for k, val in want.items():
        check(v.get(k) == val, f"{sid} {cap}: {k} = {v.get(k)!r}, want {val!r}")
    for s in expl:
        check(s in v["explanation"], f"{sid} {cap}: explanation lacks {s!r}: {v['explanation']}")
    for s in rem or []:
        check(s in v.get("remedy", ""), f"{sid} {cap}: remedy lacks {s!r}: {v.get('remedy')}")
    check(log in v["log_line"], f"{sid} {cap}: log line {v['log_line']!r} lacks {log!r}")
    if sid == "S2":
        cert = [json.loads(l) for l in out.splitlines() if '"type":"tls.certificate"' in l][0]["chain"][0]
        check(cert["subject"].startswith("CN=mail.testlab.example") and "relay.testlab.example" in cert["san"]
              and cert["not_after"].startswith("2035") and "Intermediate" in cert["issuer"],
              f"S2: certificate details {cert}")
    if sid in ("S4", "S5"):
        for secret in ("S3cr3t-Pa55", "UzNjcjN0LVBhNTU", "Wr0ng-Pa55", "V3Iwbmct"):
            check(secret not in out, f"{sid}: password material {secret} in the output")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
