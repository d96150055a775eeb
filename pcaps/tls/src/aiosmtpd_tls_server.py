"""Small SMTP sink built on aiosmtpd, offering STARTTLS or implicit TLS.

Accepted messages are counted and thrown away.  Runs until SIGTERM/SIGINT.
"""

import argparse
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        print(f"accepted message {self.count} from {envelope.mail_from} "
              f"to {envelope.rcpt_tos}", flush=True)
        return "250 2.0.0 Ok: message accepted"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hostname", required=True, help="name in the banner and EHLO reply")
    ap.add_argument("--cert", required=True, help="PEM certificate chain, leaf first")
    ap.add_argument("--key", required=True)
    ap.add_argument("--mode", choices=("starttls", "implicit"), required=True)
    ap.add_argument("--ciphers", help="OpenSSL cipher list for TLS 1.2")
    ap.add_argument("--max-tls", choices=("1.2", "1.3"), default="1.3")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = (ssl.TLSVersion.TLSv1_3 if args.max_tls == "1.3"
                           else ssl.TLSVersion.TLSv1_2)
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)

    handler = Sink()
    if args.mode == "starttls":
        controller = Controller(handler, hostname=args.address, port=args.port,
                                server_hostname=args.hostname, tls_context=ctx,
                                require_starttls=False)
    else:
        controller = Controller(handler, hostname=args.address, port=args.port,
                                server_hostname=args.hostname, ssl_context=ctx)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller.start()
    print(f"listening on {args.address}:{args.port} ({args.mode})", flush=True)
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
