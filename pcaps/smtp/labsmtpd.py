#!/usr/bin/python3
"""SMTP server for the test captures, built on aiosmtpd.

Each profile fixes the banner, the EHLO capability list and the reply texts,
so that the captures carry exactly the replies the tests look for.

Usage: labsmtpd.py PROFILE --listen ADDR --port N --ready FILE [--spool DIR]
                   [--cert PEM --key PEM]
The server writes FILE once it listens and runs until SIGTERM/SIGINT.
Profiles that do TLS after STARTTLS need --cert and --key.
"""
import argparse
import asyncio
import hashlib
import hmac
import logging
import os
import signal
import socket
import ssl
import sys
import warnings

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

DEFAULT_354 = "354 End data with <CR><LF>.<CR><LF>"

# Reply texts shared by the "mail service" style profiles.
MAILSVC = {
    "hostname": "mail.testlab.com",
    "ident": "ESMTP MAIL Service ready",
    "ehlo": ["{host} Hello [{peer}]", "SIZE 37748736", "PIPELINING", "DSN",
             "ENHANCEDSTATUSCODES", "8BITMIME", "HELP"],
    "mail": "250 2.1.0 Sender OK",
    "rcpt": "250 2.1.5 Recipient OK",
    "354": "354 Start mail input; end with <CRLF>.<CRLF>",
    "queued": "250 2.6.0 <{qid}@{host}> Queued mail for delivery",
    "quit": "221 2.0.0 Service closing transmission channel",
    "rset": "250 2.0.0 Resetting",
    "noop": "250 2.0.0 OK",
}

PROFILES = {
    # S1: plain delivery on port 25.
    "mailsvc": dict(MAILSVC),
    # S4/S5: submission on 587 with AUTH LOGIN in clear text.
    "submission": dict(MAILSVC, hostname="smtp.testlab.com",
                       ehlo=["{host} Hello [{peer}]", "SIZE 37748736", "PIPELINING", "DSN",
                             "ENHANCEDSTATUSCODES", "AUTH LOGIN PLAIN", "8BITMIME", "HELP"],
                       auth=True),
    # S8: STARTTLS advertised, but refused with 454.
    "starttls-454": dict(MAILSVC, ehlo=["{host} Hello [{peer}]", "SIZE 37748736", "PIPELINING",
                                        "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "HELP"],
                         starttls="454 4.7.0 TLS not available due to temporary reason"),
    # S10: STARTTLS advertised and required before MAIL.
    "tls-required": dict(MAILSVC, ehlo=["{host} Hello [{peer}]", "SIZE 37748736", "PIPELINING",
                                        "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "HELP"],
                         mail="530 5.7.0 Must issue a STARTTLS command first",
                         starttls="454 4.7.0 TLS not available due to temporary reason"),
    # S11: a server that does not know EHLO.
    "helo-only": dict(MAILSVC, ehlo_reject="502 5.5.2 Error: command not recognized",
                      helo="250 {host} Hello [{peer}]"),
    # A server that gives up in the middle of DATA.
    "abort-data": dict(MAILSVC, abort_after=12000, abort="421 4.3.0 Service shutting down"),
    # A greeting pause (as anti-spam servers use): the 220 goes out half a
    # second after the connection is accepted, so a client that does not wait
    # for it is seen talking first.
    "greet-pause": dict(MAILSVC, greet_delay=0.5),
    # A middlebox that decrypts in place: STARTTLS is answered with 220, but
    # no TLS follows and the session goes on in clear text. After STARTTLS the
    # EHLO reply no longer offers it, as after a real TLS handshake.
    "starttls-clear": dict(MAILSVC, ehlo=["{host} Hello [{peer}]", "SIZE 37748736", "PIPELINING",
                                          "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "HELP"],
                           starttls_clear="220 2.0.0 Ready to start TLS"),
    # STARTTLS response injection: the 220 to STARTTLS and a second reply
    # that nobody asked for go out in one write, in clear text, and then the
    # server starts TLS. After the handshake the EHLO reply no longer offers
    # STARTTLS.
    "starttls-inject": dict(MAILSVC, ehlo=["{host} Hello [{peer}]", "SIZE 37748736", "PIPELINING",
                                           "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "HELP"],
                            tls=True,
                            starttls_reply="220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected"),
    # A server that answers MAIL with a line that has no reply code and hangs up.
    "defer-no-code": dict(MAILSVC, mail="Service temporarily unavailable", close_after_mail=True),
    # Submission with several AUTH mechanisms offered; GSSAPI is not one of them.
    "auth-mechs": dict(MAILSVC, hostname="smtp.testlab.com",
                       ehlo=["{host} Hello [{peer}]", "SIZE 37748736", "PIPELINING",
                             "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN CRAM-MD5", "8BITMIME", "HELP"],
                       auth=True, auth_optional=True),
}

# Fixed CRAM-MD5 challenge, so that every run sends the same bytes.
CRAM_CHALLENGE = "<4711.1736847000@smtp.testlab.com>"

# Accounts known to the submission profile.
ACCOUNTS = {b"sponsor@testlab.com": b"S3cr3t-Pa55"}


class Handler:
    def __init__(self, prof, spool):
        self.p = prof
        self.spool = spool
        self.count = 0

    def _fmt(self, text, session):
        peer = session.peer[0] if session.peer else "unknown"
        return text.format(host=self.p["hostname"], peer=peer)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # The server's own profile: STARTTLS can change it for one session.
        caps = [self._fmt(c, session) for c in server.prof["ehlo"]]
        if server._tls_protocol is not None:
            # Inside TLS STARTTLS is no longer offered.
            caps = [c for c in caps if c != "STARTTLS"]
        return ["250-" + c for c in caps[:-1]] + ["250 " + caps[-1]]

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        return self._fmt(self.p.get("helo", "250 {host}"), session)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.p["mail"]
        if reply.startswith("250"):
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return self.p["rcpt"]

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        digest = hashlib.sha1(envelope.original_content).hexdigest().upper()
        qid = "%s%02d" % (digest[:10], self.count)
        if self.spool:
            with open(os.path.join(self.spool, qid + ".eml"), "wb") as f:
                f.write(envelope.original_content)
        return self.p["queued"].format(qid=qid, host=self.p["hostname"])

    async def handle_RSET(self, server, session, envelope):
        return self.p["rset"]

    async def handle_NOOP(self, server, session, envelope, arg):
        return self.p["noop"]

    async def handle_QUIT(self, server, session, envelope):
        return self.p["quit"]

    async def auth_CRAM__MD5(self, server, args):
        """CRAM-MD5 (RFC 2195): the client answers the challenge with its user
        name and the HMAC-MD5 of the challenge keyed with its password."""
        if len(args) > 1:
            await server.push("501 5.5.2 No initial response allowed")
            return AuthResult(success=False, handled=True)
        answer = await server.challenge_auth(CRAM_CHALLENGE)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = answer.rpartition(b" ")
        secret = ACCOUNTS.get(user)
        if secret is not None:
            want = hmac.new(secret, CRAM_CHALLENGE.encode(), "md5").hexdigest().encode()
            if hmac.compare_digest(want, digest.lower()):
                return AuthResult(success=True, auth_data=LoginPassword(user, b""))
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Authentication credentials invalid")


class LabSMTP(SMTP):
    # AUTH LOGIN prompts as most servers send them ("Username:", "Password:").
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, handler, prof, **kw):
        self.prof = prof
        super().__init__(handler, **kw)

    async def push(self, status):
        if isinstance(status, str):
            if status == DEFAULT_354:
                status = self.prof["354"]
            elif status == "220 Ready to start TLS" and "starttls_reply" in self.prof:
                status = self.prof["starttls_reply"]
            status = status.encode("ascii")
        # Hold the lines of a multi-line reply and send the reply in one write,
        # as most servers do.
        if len(status) > 3 and status[3:4] == b"-":
            self._held = getattr(self, "_held", b"") + status + b"\r\n"
            return
        held, self._held = getattr(self, "_held", b""), b""
        await super().push(held + status)

    async def _handle_client(self):
        delay = self.prof.get("greet_delay")
        if delay:
            await asyncio.sleep(delay)
        await super()._handle_client()

    async def smtp_EHLO(self, hostname):
        if "ehlo_reject" in self.prof:
            await self.push(self.prof["ehlo_reject"])
            return
        await super().smtp_EHLO(hostname)

    async def smtp_STARTTLS(self, arg):
        if "starttls_clear" in self.prof:
            # Answer as if TLS were starting, then go on in clear text: reset
            # the session state as RFC 3207 asks, and stop offering STARTTLS.
            await self.push(self.prof["starttls_clear"])
            self.session.host_name = None
            self.session.extended_smtp = False
            self.envelope = self._create_envelope()
            self.prof = dict(self.prof, ehlo=[c for c in self.prof["ehlo"] if c != "STARTTLS"])
            return
        if "starttls" in self.prof:
            await self.push(self.prof["starttls"])
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_MAIL(self, arg):
        if not self.prof.get("close_after_mail"):
            await super().smtp_MAIL(arg)
            return
        if await self.check_helo_needed():
            return
        await self.push(self.prof["mail"])
        await asyncio.sleep(0.05)
        self._handler_coroutine.cancel()
        self.transport.close()

    async def smtp_DATA(self, arg):
        limit = self.prof.get("abort_after")
        if not limit:
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed():
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        await self.push(self.prof["354"])
        got = 0
        while got < limit:
            chunk = await self._reader.read(limit - got)
            if not chunk:
                break
            got += len(chunk)
        await self.push(self.prof["abort"])
        await asyncio.sleep(0.05)
        self._handler_coroutine.cancel()
        self.transport.close()


def authenticator(server, session, envelope, mechanism, auth_data):
    if ACCOUNTS.get(bytes(auth_data.login)) == bytes(auth_data.password):
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False,
                      message="535 5.7.3 Authentication unsuccessful")


async def serve(args):
    prof = PROFILES[args.profile]
    handler = Handler(prof, args.spool)
    kw = dict(hostname=prof["hostname"], ident=prof["ident"], data_size_limit=37748736)
    if prof.get("auth"):
        kw.update(auth_require_tls=False, auth_required=not prof.get("auth_optional"),
                  authenticator=authenticator)
    if prof.get("tls"):
        if not (args.cert and args.key):
            raise SystemExit("profile %s needs --cert and --key" % args.profile)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        kw.update(tls_context=ctx, require_starttls=False)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.rcvbuf:
        # A small receive buffer keeps the advertised window small, so a
        # large DATA body is still in flight when the server gives up.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    sock.bind((args.listen, args.port))
    sock.listen(16)
    server = await loop.create_server(lambda: LabSMTP(handler, prof, loop=loop, **kw), sock=sock)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    with open(args.ready, "w") as f:
        f.write("%d\n" % os.getpid())
    await stop
    server.close()
    await server.wait_closed()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profile", choices=sorted(PROFILES))
    ap.add_argument("--listen", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--spool")
    ap.add_argument("--rcvbuf", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
