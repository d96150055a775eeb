#!/usr/bin/python3
"""SMTP clients for the test captures.

Most scenarios use Python's smtplib; BDAT, which no standard client library
sends, is spoken by a small socket client here.

Usage: labclient.py SCENARIO --server ADDR --port N --bind ADDR --lport N [--msg FILE]
Scenarios:
  deliver    EHLO, MAIL, RCPT, DATA, QUIT with fixed envelope (smtplib)
  starttls   EHLO, STARTTLS; QUIT when the server refuses TLS (smtplib)
  helo       smtplib.sendmail: EHLO, falls back to HELO when EHLO is refused
  multi      two transactions on one connection, with a refused recipient,
             RSET, NOOP, VRFY and an unknown command between them (smtplib)
  big        one large message; tolerates the server dropping the connection
  bdat       BDAT chunks (CHUNKING, RFC 3030) over a plain socket
  early      socket client that sends EHLO (with --early-pipeline also MAIL
             and RCPT) before the server's greeting, then delivers
  starttls-clear
             EHLO, STARTTLS, and after the 220 goes on in clear text
  starttls-inject
             EHLO, then STARTTLS and RSET in one segment (command injection);
             after the 220 the TLS handshake, then EHLO and a delivery in TLS
  bdat-malformed
             malformed BDAT commands, each followed by valid ones
  auth       three connections: AUTH GSSAPI (expects 504), AUTH CRAM-MD5,
             AUTH PLAIN and a delivery (smtplib)
"""
import argparse
import select
import smtplib
import socket
import ssl
import sys


def log(*a):
    print(*a, file=sys.stderr)


class SMTP(smtplib.SMTP):
    """smtplib sends its verbs in lower case; send them in upper case.
    Other lines (AUTH responses in base64) go out unchanged."""

    VERBS = {"helo", "ehlo", "mail", "rcpt", "data", "rset", "noop", "quit", "vrfy", "expn",
             "help", "starttls", "auth", "xfoo"}

    def putcmd(self, cmd, args=""):
        super().putcmd(cmd.upper() if cmd.lower() in self.VERBS else cmd, args)


def connect(a):
    s = SMTP(local_hostname=a.helo, source_address=(a.bind, a.lport), timeout=20)
    code, msg = s.connect(a.server, a.port)
    log("connect", code, msg)
    return s


def sc_deliver(a, msg):
    s = connect(a)
    log("ehlo", s.ehlo())
    log("mail", s.mail(a.mail_from))
    for r in a.rcpt:
        log("rcpt", s.rcpt(r))
    log("data", s.data(msg))
    log("quit", s.quit())


def sc_starttls(a, msg):
    """A client that wants TLS: it gives up (QUIT) when STARTTLS is refused."""
    s = connect(a)
    log("ehlo", s.ehlo())
    try:
        log("starttls", s.starttls())
    except smtplib.SMTPResponseException as e:
        log("starttls refused:", e.smtp_code, e.smtp_error)
        log("quit", s.quit())
        return
    raise SystemExit("STARTTLS unexpectedly accepted")


def sc_helo(a, msg):
    s = connect(a)
    refused = s.sendmail(a.mail_from, a.rcpt, msg)
    log("refused", refused)
    log("quit", s.quit())


def sc_multi(a, msg):
    msg2 = msg.replace(b"Subject: ", b"Subject: Second: ", 1).replace(b"Message-ID: <", b"Message-ID: <2.", 1)
    s = connect(a)
    log("ehlo", s.ehlo())
    log("mail", s.mail(a.mail_from))
    log("rcpt", s.rcpt(a.rcpt[0]))
    log("data", s.data(msg))
    log("noop", s.noop())
    log("vrfy", s.verify(a.rcpt[0]))
    log("xfoo", s.docmd("XFOO", "bar"))
    log("mail", s.mail(a.mail_from))
    log("rcpt", s.rcpt(a.unknown))
    log("rset", s.rset())
    log("mail", s.mail(a.mail_from))
    log("rcpt", s.rcpt(a.rcpt[0]))
    log("data", s.data(msg2))
    log("quit", s.quit())


def sc_big(a, msg):
    s = connect(a)
    log("ehlo", s.ehlo())
    log("mail", s.mail(a.mail_from))
    log("rcpt", s.rcpt(a.rcpt[0]))
    try:
        log("data", s.data(msg))
        log("quit", s.quit())
    except (smtplib.SMTPException, OSError) as e:
        log("connection ended by server:", type(e).__name__, e)
        s.close()


class Wire:
    def __init__(self, a):
        fam = socket.AF_INET6 if ":" in a.server else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.bind((a.bind, a.lport))
        self.s.connect((a.server, a.port))
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(4096)
                if not d:
                    raise ConnectionError("server closed")
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                log("<", b" | ".join(lines).decode())
                return int(line[:3]), lines

    def send(self, data):
        self.s.sendall(data)

    def cmd(self, text):
        log(">", text)
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def expect(self, want, got):
        code, lines = got
        if code != want:
            raise SystemExit("expected %d, got %s" % (want, b" | ".join(lines).decode()))
        return lines

    def quiet(self, seconds):
        """True when nothing arrives from the server for SECONDS."""
        if self.buf:
            return False
        if not isinstance(self.s, ssl.SSLSocket):
            return not select.select([self.s], [], [], seconds)[0]
        # In TLS a readable socket may carry only handshake messages (TLS 1.3
        # session tickets): try to read application data instead.
        if self.s.pending():
            return False
        self.s.settimeout(seconds)
        try:
            d = self.s.recv(4096)
        except TimeoutError:
            return True
        finally:
            self.s.settimeout(20)
        if not d:
            raise ConnectionError("server closed")
        self.buf += d
        return False


def dot_body(msg):
    """The DATA body as sent on the wire: dot-stuffed, ended by CRLF.CRLF."""
    lines = msg.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines) + b".\r\n"


def wire_data(w, msg):
    w.expect(354, w.cmd("DATA"))
    log("> (message, %d octets, and .)" % len(msg))
    w.send(dot_body(msg))
    w.expect(250, w.reply())


def sc_bdat(a, msg):
    w = Wire(a)
    w.reply()
    code, lines = w.cmd("EHLO " + a.helo)
    if not any(l[4:].upper().startswith(b"CHUNKING") for l in lines):
        raise SystemExit("server does not offer CHUNKING")
    w.cmd("MAIL FROM:<%s>" % a.mail_from)
    for r in a.rcpt:
        w.cmd("RCPT TO:<%s>" % r)
    # Three chunks: a small one, one larger than a TCP segment, the rest LAST.
    sizes = [700, 4000]
    chunks, pos = [], 0
    for n in sizes:
        chunks.append(msg[pos:pos + n])
        pos += n
    chunks.append(msg[pos:])
    for i, c in enumerate(chunks):
        last = " LAST" if i == len(chunks) - 1 else ""
        log("> BDAT %d%s (+%d octets)" % (len(c), last, len(c)))
        w.send(b"BDAT %d%s\r\n" % (len(c), last.encode()) + c)
        w.reply()
    w.cmd("QUIT")
    w.s.close()


def sc_early(a, msg):
    """A client that does not wait for the greeting: the first command (or
    several, with --early-pipeline) goes out right after the handshake."""
    w = Wire(a)
    first = ["EHLO " + a.helo]
    if a.early_pipeline:
        first += ["MAIL FROM:<%s>" % a.mail_from] + ["RCPT TO:<%s>" % r for r in a.rcpt]
    if not w.quiet(0):
        raise SystemExit("the greeting came before the first command")
    log("> (before the greeting)", " | ".join(first))
    w.send("".join(c + "\r\n" for c in first).encode())
    w.expect(220, w.reply())
    w.expect(250, w.reply())
    if a.early_pipeline:
        for _ in first[1:]:
            w.expect(250, w.reply())
    else:
        w.expect(250, w.cmd("MAIL FROM:<%s>" % a.mail_from))
        for r in a.rcpt:
            w.expect(250, w.cmd("RCPT TO:<%s>" % r))
    wire_data(w, msg)
    w.expect(221, w.cmd("QUIT"))
    w.s.close()


def sc_starttls_clear(a, msg):
    """STARTTLS answered with 220, then the session goes on in clear text."""
    w = Wire(a)
    w.expect(220, w.reply())
    lines = w.expect(250, w.cmd("EHLO " + a.helo))
    if not any(l[4:].upper() == b"STARTTLS" for l in lines):
        raise SystemExit("server does not offer STARTTLS")
    w.expect(220, w.cmd("STARTTLS"))
    w.expect(250, w.cmd("EHLO " + a.helo))
    w.expect(250, w.cmd("MAIL FROM:<%s>" % a.mail_from))
    for r in a.rcpt:
        w.expect(250, w.cmd("RCPT TO:<%s>" % r))
    wire_data(w, msg)
    w.expect(221, w.cmd("QUIT"))
    w.s.close()


def sc_starttls_inject(a, msg):
    """STARTTLS with a command behind it in the same segment: a server that
    keeps its clear-text input buffer across the TLS handshake would answer
    the RSET as if it had come inside TLS."""
    w = Wire(a)
    w.expect(220, w.reply())
    lines = w.expect(250, w.cmd("EHLO " + a.helo))
    if not any(l[4:].upper() == b"STARTTLS" for l in lines):
        raise SystemExit("server does not offer STARTTLS")
    log("> (one segment) STARTTLS | RSET")
    w.send(b"STARTTLS\r\nRSET\r\n")
    code, lines = w.reply()
    if code != 220:
        # Refused: whatever else comes, read it, then leave.
        while not w.quiet(1):
            w.reply()
        w.expect(221, w.cmd("QUIT"))
        w.s.close()
        return
    # A reply to RSET in clear text, before the handshake?
    while not w.quiet(0.5):
        log("clear-text reply after the 220:")
        w.reply()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    w.s = ctx.wrap_socket(w.s, server_hostname=a.tls_name)
    log("tls", w.s.version(), w.s.cipher()[0])
    # A reply to RSET inside TLS, before any command was sent there?
    while not w.quiet(0.5):
        log("reply inside TLS before any command:")
        w.reply()
    lines = w.expect(250, w.cmd("EHLO " + a.helo))
    w.expect(250, w.cmd("MAIL FROM:<%s>" % a.mail_from))
    for r in a.rcpt:
        w.expect(250, w.cmd("RCPT TO:<%s>" % r))
    wire_data(w, msg)
    w.expect(221, w.cmd("QUIT"))
    # Wait for the server to close (its close_notify and FIN), then close.
    try:
        while w.s.recv(4096):
            pass
    except (ssl.SSLError, OSError) as e:
        log("TLS close:", e)
    w.s.close()


def bdat_session(a, lport):
    a.lport = lport
    w = Wire(a)
    w.expect(220, w.reply())
    lines = w.expect(250, w.cmd("EHLO " + a.helo))
    if not any(l[4:].upper().startswith(b"CHUNKING") for l in lines):
        raise SystemExit("server does not offer CHUNKING")
    return w


def bdat_envelope(w, a, rset=True):
    if rset:
        w.expect(250, w.cmd("RSET"))
    w.expect(250, w.cmd("MAIL FROM:<%s>" % a.mail_from))
    for r in a.rcpt:
        w.expect(250, w.cmd("RCPT TO:<%s>" % r))


def sc_bdat_malformed(a, msg):
    """BDAT commands a server cannot take as they are, each followed by the
    commands a client would send next; a new connection when the server
    hangs up. Last a valid BDAT LAST, so one message is accepted."""
    lport = a.lport
    w = bdat_session(a, lport)
    bdat_envelope(w, a, rset=False)
    for bad in ["BDAT 5 X", "BDAT 99999999999999999999 LAST", "BDAT abc"]:
        try:
            w.cmd(bad)
            bdat_envelope(w, a)
            continue
        except ConnectionError as e:
            log("connection ended:", e)
        w.s.close()
        lport += 1
        w = bdat_session(a, lport)
        bdat_envelope(w, a, rset=False)
    # A confused client: announces 221 octets, sends fewer, then goes on with
    # commands, which the server reads as the rest of the chunk.
    part = msg[:a.short_part]
    log("> BDAT 221 LAST (+%d octets)" % len(part))
    w.send(b"BDAT 221 LAST\r\n" + part)
    for c in ["RSET", "MAIL FROM:<%s>" % a.mail_from] + ["RCPT TO:<%s>" % r for r in a.rcpt]:
        if not w.quiet(1.5):
            break
        log(">", c)
        w.send(c.encode() + b"\r\n")
    # Whatever the server answers now, read it all.
    while not w.quiet(1.5):
        try:
            w.reply()
        except ConnectionError as e:
            log("connection ended:", e)
            w.s.close()
            lport += 1
            w = bdat_session(a, lport)
            break
    bdat_envelope(w, a)
    log("> BDAT %d LAST (+%d octets)" % (len(msg), len(msg)))
    w.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
    w.expect(250, w.reply())
    w.expect(221, w.cmd("QUIT"))
    w.s.close()
    a.lport = lport


def sc_auth(a, msg):
    """Three connections from one port range: a mechanism the server does not
    offer, CRAM-MD5, and PLAIN followed by a delivery."""
    lport = a.lport
    s = connect(a)
    log("ehlo", s.ehlo())
    code, text = s.docmd("AUTH", "GSSAPI")
    log("auth gssapi", code, text)
    if code != 504:
        raise SystemExit("AUTH GSSAPI: expected 504, got %d" % code)
    log("quit", s.quit())

    a.lport = lport + 1
    s = connect(a)
    log("ehlo", s.ehlo())
    s.user, s.password = a.user, a.password
    log("auth cram-md5", s.auth("CRAM-MD5", s.auth_cram_md5))
    log("quit", s.quit())

    a.lport = lport + 2
    s = connect(a)
    log("ehlo", s.ehlo())
    s.user, s.password = a.user, a.password
    log("auth plain", s.auth("PLAIN", s.auth_plain))
    log("mail", s.mail(a.mail_from))
    for r in a.rcpt:
        log("rcpt", s.rcpt(r))
    log("data", s.data(msg))
    log("quit", s.quit())
    a.lport = lport


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["deliver", "starttls", "helo", "multi", "big", "bdat", "early",
                                         "starttls-clear", "starttls-inject", "bdat-malformed", "auth"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--lport", type=int, default=0)
    ap.add_argument("--helo", default="client.testlab.example")
    ap.add_argument("--from", dest="mail_from", default="sender@testlab.example")
    ap.add_argument("--to", dest="rcpt", action="append", default=[])
    ap.add_argument("--unknown", default="nobody@testlab.example")
    ap.add_argument("--msg", required=True)
    ap.add_argument("--early-pipeline", action="store_true")
    ap.add_argument("--short-part", type=int, default=150)
    ap.add_argument("--user", default="sponsor@testlab.com")
    ap.add_argument("--password", default="S3cr3t-Pa55")
    ap.add_argument("--tls-name", default="mx.testlab.example")
    a = ap.parse_args()
    if not a.rcpt:
        a.rcpt = ["guest@testlab.example"]
    with open(a.msg, "rb") as f:
        msg = f.read()
    globals()["sc_" + a.scenario.replace("-", "_")](a, msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
