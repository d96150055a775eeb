#!/usr/bin/python3
"""SMTP servers for tests/live.py, built on aiosmtpd.

Usage: smtpd.py --addr ADDR --cert PEM --key PEM --ready FILE

Port 25 accepts every message.  Port 587 offers STARTTLS (with the given
certificate) and AUTH LOGIN/PLAIN in clear text, and rejects every
credential.  FILE is written once both listen; the servers run until
SIGTERM/SIGINT.
"""
import argparse
import asyncio
import itertools
import logging
import signal
import ssl
import warnings

from aiosmtpd.smtp import SMTP, AuthResult

HOST = "mx.live.test"
_qid = itertools.count(1)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok: queued as LIVE%06d" % next(_qid)


def reject_all(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=False, handled=False)


async def main(a):
    loop = asyncio.get_running_loop()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    plain = await loop.create_server(
        lambda: SMTP(Sink(), hostname=HOST, ident="ESMTP live test"), a.addr, 25)
    sub = await loop.create_server(
        lambda: SMTP(Sink(), hostname=HOST, ident="ESMTP live test submission", tls_context=ctx,
                     auth_require_tls=False, authenticator=reject_all), a.addr, 587)
    with open(a.ready, "w") as f:
        f.write("ready\n")
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    await stop
    plain.close()
    sub.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ready", required=True)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    asyncio.run(main(p.parse_args()))
