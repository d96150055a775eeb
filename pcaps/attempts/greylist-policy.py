#!/usr/bin/python3
"""A greylisting policy service for Postfix smtpd (the access policy
delegation protocol of check_policy_service, as postgrey speaks it).

The first request for a (client address, sender, recipient) triplet gets
"DEFER_IF_PERMIT Greylisted, try again later", which smtpd sends as
450 4.7.1 <recipient>: Recipient address rejected: ...; the same triplet is
let through (DUNNO) once --delay seconds have passed since it was first seen
(earlier tries are deferred again).

Usage: greylist-policy.py --listen ADDR --port N --ready FILE [--delay SECONDS]
The service writes FILE once it listens and runs until SIGTERM/SIGINT.
"""
import argparse
import logging
import os
import signal
import socketserver
import sys
import threading
import time

SEEN = {}
LOCK = threading.Lock()
DELAY = 3.0


class Policy(socketserver.StreamRequestHandler):
    def handle(self):
        # smtpd keeps the connection open for several requests
        while True:
            attrs = {}
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                line = line.rstrip(b"\r\n").decode("utf-8", "replace")
                if not line:
                    break
                name, _, value = line.partition("=")
                attrs[name] = value
            self.wfile.write(("action=%s\n\n" % self.decide(attrs)).encode())
            self.wfile.flush()

    @staticmethod
    def decide(attrs):
        if attrs.get("protocol_state", "RCPT") != "RCPT":
            return "DUNNO"
        key = (attrs.get("client_address", ""), attrs.get("sender", "").lower(),
               attrs.get("recipient", "").lower())
        now = time.monotonic()
        with LOCK:
            first = SEEN.setdefault(key, now)
        if now - first < DELAY:
            logging.warning("greylisted %s", key)
            return "DEFER_IF_PERMIT Greylisted, try again later"
        logging.warning("passed %s after %.1f s", key, now - first)
        return "DUNNO"


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    global DELAY
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10023)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--delay", type=float, default=3.0)
    args = ap.parse_args()
    DELAY = args.delay
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(message)s")
    server = Server((args.listen, args.port), Policy)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    with open(args.ready, "w") as f:
        f.write("%d\n" % os.getpid())
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
