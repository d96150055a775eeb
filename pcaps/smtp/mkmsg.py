#!/usr/bin/python3
"""Build the fixed message bodies sent in the SMTP test captures.

Everything here is deterministic: fixed dates, fixed Message-IDs, fixed MIME
boundaries and PNG images computed from a fixed seed, so that a re-run of
make.sh sends byte-identical messages.

Usage:
  mkmsg.py guest   OUT     guest-account notice (multipart, HTML + 2 PNGs)
  mkmsg.py text    OUT --from A --to B [--to C] --subject S --msgid ID [--lines N]
  mkmsg.py png     OUT WIDTH HEIGHT SEED
"""
import argparse
import base64
import struct
import sys
import zlib

DATE = "Tue, 14 Jan 2025 09:30:00 +0000"


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def make_png(width, height, seed):
    """An RGB PNG: a colour gradient with a banner stripe and deterministic
    pseudo-random grain, so it does not compress to nothing."""
    state = seed & 0xFFFFFFFF
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type 0 (None)
        for x in range(width):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            grain = (state >> 16) & 0x1F
            if height // 3 <= y < height // 3 + 14:
                r, g, b = 0x00, 0x49, 0x8F  # stripe
            else:
                r = (x * 255) // max(1, width - 1)
                g = (y * 255) // max(1, height - 1)
                b = ((x + y) * 3) & 0xFF
            row += bytes(((r ^ grain) & 0xFF, (g ^ (grain >> 1)) & 0xFF, (b ^ (grain >> 2)) & 0xFF))
        rows.append(bytes(row))
    raw = b"".join(rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def b64_lines(data):
    enc = base64.b64encode(data).decode("ascii")
    return [enc[i:i + 76] for i in range(0, len(enc), 76)]


def guest_message():
    logo = make_png(150, 80, 0x5EED0001)      # inline image, ~20-30 KB
    qr = make_png(48, 48, 0x5EED0002)         # attachment
    outer = "----=_Part_25_1736847000.mixed"
    inner = "----=_Part_25_1736847000.related"
    html = [
        "<!DOCTYPE html>",
        "<html><head><meta charset=\"us-ascii\"><title>Guest access</title></head>",
        "<body style=\"font-family: Arial, sans-serif\">",
        "<p><img src=\"cid:logo.png@testlab.com\" alt=\"Testlab\" width=\"150\" height=\"80\"></p>",
        "<p>Hello Guest,</p>",
        "<p>Your guest account has been created by your sponsor.</p>",
        "<table>",
        "<tr><td>Username:</td><td><b>guest4711</b></td></tr>",
        "<tr><td>Password:</td><td><b>Kq7-vDm2</b></td></tr>",
        "<tr><td>Valid from:</td><td>2025-01-14 09:30</td></tr>",
        "<tr><td>Valid to:</td><td>2025-01-15 09:30</td></tr>",
        "</table>",
        "<p>Connect to the network <b>TESTLAB-GUEST</b> and sign in with the",
        "credentials above. The attached image holds the same details.</p>",
        "<p>Regards,<br>Testlab Guest Services</p>",
        "</body></html>",
    ]
    lines = [
        "From: Guest Services <ise@testlab.com>",
        "To: guest@testlab.com",
        "Cc: sponsor@testlab.com",
        "Subject: Your Guest Account Credentials",
        "Date: " + DATE,
        "Message-ID: <guest4711.1736847000@ISE3-1.testlab.com>",
        "X-Mailer: ISE3-1 Guest Notification",
        "MIME-Version: 1.0",
        "Content-Type: multipart/mixed;",
        "\tboundary=\"" + outer + "\"",
        "",
        "This is a multi-part message in MIME format.",
        "",
        "--" + outer,
        "Content-Type: multipart/related;",
        "\tboundary=\"" + inner + "\"",
        "",
        "--" + inner,
        "Content-Type: text/html; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
    ] + html + [
        "",
        "--" + inner,
        "Content-Type: image/png; name=\"logo.png\"",
        "Content-Transfer-Encoding: base64",
        "Content-ID: <logo.png@testlab.com>",
        "Content-Disposition: inline; filename=\"logo.png\"",
        "",
    ] + b64_lines(logo) + [
        "",
        "--" + inner + "--",
        "",
        "--" + outer,
        "Content-Type: image/png; name=\"guest-access.png\"",
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment; filename=\"guest-access.png\"",
        "",
    ] + b64_lines(qr) + [
        "",
        "--" + outer + "--",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def text_message(sender, rcpts, subject, msgid, nlines):
    lines = [
        "From: <%s>" % sender,
        "To: " + ", ".join("<%s>" % r for r in rcpts),
        "Subject: " + subject,
        "Date: " + DATE,
        "Message-ID: <%s>" % msgid,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
        "Hello,",
        "",
        "this is a test message for the mxtrace SMTP captures.",
    ]
    for i in range(nlines):
        lines.append("Line %05d: the quick brown fox jumps over the lazy dog 0123456789" % (i + 1))
    lines += ["", "-- ", "testlab", ""]
    return "\r\n".join(lines).encode("ascii")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["guest", "text", "png"])
    ap.add_argument("out")
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--from", dest="sender", default="sender@testlab.example")
    ap.add_argument("--to", action="append", default=[])
    ap.add_argument("--subject", default="mxtrace test message")
    ap.add_argument("--msgid", default="test.0001@client.testlab.example")
    ap.add_argument("--lines", type=int, default=3)
    a = ap.parse_args()
    if a.kind == "guest":
        data = guest_message()
    elif a.kind == "text":
        data = text_message(a.sender, a.to or ["guest@testlab.example"], a.subject, a.msgid, a.lines)
    else:
        w, h, seed = (int(v, 0) for v in a.rest)
        data = make_png(w, h, seed)
    with open(a.out, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
