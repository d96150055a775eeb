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
"""
import argparse
import smtplib
import socket
import sys


def log(*a):
    print(*a, file=sys.stderr)


class SMTP(smtplib.SMTP):
    """smtplib sends its verbs in lower case; send them in upper case."""

    def putcmd(self, cmd, args=""):
        super().putcmd(cmd.upper(), args)


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["deliver", "starttls", "helo", "multi", "big", "bdat"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--lport", type=int, default=0)
    ap.add_argument("--helo", default="client.testlab.example")
    ap.add_argument("--from", dest="mail_from", default="sender@testlab.example")
    ap.add_argument("--to", dest="rcpt", action="append", default=[])
    ap.add_argument("--unknown", default="nobody@testlab.example")
    ap.add_argument("--msg", required=True)
    a = ap.parse_args()
    if not a.rcpt:
        a.rcpt = ["guest@testlab.example"]
    with open(a.msg, "rb") as f:
        msg = f.read()
    globals()["sc_" + a.scenario](a, msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
