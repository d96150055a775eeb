#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/.

Each seed is a small, meaningful input in the format its target reads (see
the comment at the top of each fuzz_*.c).  Run from anywhere:

    python3 fuzz/mkseeds.py

The pipeline seeds also take the packet records (without the 24-byte file
header) of a few captures under pcaps/tls/, when they are there.
"""
import base64
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- harness scripts (fuzz_smtp, fuzz_tls) ------------------------------

C, S = 0, 1


class Script:
    def __init__(self, opt=0):
        self.b = bytearray([opt])

    def chunk(self, d, data):
        data = bytes(data)
        while data:
            part, data = data[:65535], data[65535:]
            if len(part) <= 255:
                self.b += bytes([d | (0 << 1), len(part)]) + part
            else:
                self.b += bytes([d | (4 << 1)]) + struct.pack(">H", len(part)) + part
        return self

    def line(self, d, text):
        """One line; the target appends CRLF."""
        t = text.encode() if isinstance(text, str) else text
        assert len(t) <= 255
        self.b += bytes([d | (7 << 1), len(t)]) + t
        return self

    def lines(self, d, *texts):
        return self.chunk(d, b"".join((t.encode() if isinstance(t, str) else t) + b"\r\n" for t in texts))

    def run(self, d, n, byte, crlf=True):
        self.b += bytes([d | (5 << 1) | (0x10 if crlf else 0)]) + struct.pack(">H", n) + bytes([byte])
        return self

    def gap(self, d, n):
        if n <= 0xFFFF:
            self.b += bytes([d | (6 << 1)]) + struct.pack(">H", n)
        else:
            self.b += bytes([d | (6 << 1) | 0x10]) + struct.pack(">I", n)
        return self

    def bytes(self):
        return bytes(self.b)


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


# C1 controls (U+0085, U+009B a CSI, U+0080), bidi controls (U+202E,
# U+2066, U+2069, U+202A), and a harmless U+00E9
SCREEN_ODD = ["\u0085", "\u009b31m", "\u202e", "\u2066", "\u2069", "\u0080", "\u00e9", "\u202a"]


def screen_controls(opt, odd):
    """A conversation with the code points of odd in every kind of wire text."""
    s = Script(opt)
    s.lines(S, "220 mx%s.example.net ESMTP %s" % (odd[1], odd[2]))
    s.lines(C, "EHLO c%sd" % odd[0])
    s.lines(S, "250-mx %s" % odd[5], "250-AUTH PLAIN LOGIN", "250 X%sY" % odd[3])
    s.lines(C, "AUTH LOGIN")
    s.lines(S, "334 " + b64("Username:"))
    s.lines(C, b64("al%sice" % odd[6]))
    s.lines(S, "334 " + b64("Password:"))
    s.lines(C, b64("pw"))
    s.lines(S, "235 2.7.0 ok %s" % odd[7])
    s.lines(C, "MAIL FROM:<a%sb@example.org>" % odd[4], "RCPT TO:<b@example.net>", "DATA")
    s.lines(S, "250 Ok", "250 Ok", "354 go")
    s.chunk(C, ("Subject: s%st%su\r\nFrom: x%s\r\n\r\nbody\r\n.\r\n" % (odd[2], odd[5], odd[0])).encode())
    s.lines(S, "250 2.0.0 Ok: queued as Q%s1" % odd[6])
    s.lines(C, "QUIT")
    s.lines(S, "221 Bye")
    return s.bytes()


def tls_record(ctype, body, version=b"\x03\x03"):
    return bytes([ctype]) + version + struct.pack(">H", len(body)) + body


def client_hello(sni=b"mail.example.org"):
    ext_sni = struct.pack(">HH", 0, len(sni) + 5) + struct.pack(">HBH", len(sni) + 3, 0, len(sni)) + sni
    ext_ver = struct.pack(">HHB", 43, 5, 4) + b"\x03\x04\x03\x03"
    exts = ext_sni + ext_ver
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" +
            struct.pack(">H", 6) + b"\x13\x01\x13\x02\xc0\x2f" + b"\x01\x00" +
            struct.pack(">H", len(exts)) + exts)
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return tls_record(22, hs, b"\x03\x01")


def server_hello():
    body = b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + b"\x13\x01" + b"\x00" + b"\x00\x00"
    hs = b"\x02" + struct.pack(">I", len(body))[1:] + body
    return tls_record(22, hs)


def pem_certs(*names):
    """DER bytes of the PEM certificates under pcaps/tls/certs (those found)."""
    out = []
    for n in names:
        path = os.path.join(ROOT, "pcaps", "tls", "certs", n)
        if not os.path.exists(path):
            print("mkseeds: %s not found, skipped" % path, file=sys.stderr)
            continue
        lines = open(path).read().split("\n")
        try:
            i = lines.index("-----BEGIN CERTIFICATE-----")
            j = lines.index("-----END CERTIFICATE-----")
        except ValueError:
            continue
        out.append(base64.b64decode("".join(lines[i + 1:j])))
    return out


def hs_msg(t, body):
    return bytes([t]) + struct.pack(">I", len(body))[1:] + body


def server_flight_tls12(certs):
    """ServerHello (TLS 1.2, ECDHE-RSA-AES128-GCM) + Certificate + key exchange + done."""
    sh = hs_msg(2, b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + b"\xc0\x2f" + b"\x00" +
                struct.pack(">H", 5) + b"\xff\x01\x00\x01\x00")
    chain = b"".join(struct.pack(">I", len(c))[1:] + c for c in certs)
    cert = hs_msg(11, struct.pack(">I", len(chain))[1:] + chain)
    ske = hs_msg(12, b"\x03\x00\x17\x41" + bytes(65) + b"\x04\x01" + struct.pack(">H", 16) + bytes(16))
    done = hs_msg(14, b"")
    flight = sh + cert + ske + done
    recs = b""
    while flight:                          # records of at most 1000 bytes
        recs += tls_record(22, flight[:1000])
        flight = flight[1000:]
    return recs


def smtp_seeds():
    ehlo_reply = ["250-mx.example.net Hello client.example.org", "250-PIPELINING",
                  "250-SIZE 10485760", "250-STARTTLS", "250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2",
                  "250-CHUNKING", "250-8BITMIME", "250 SMTPUTF8"]
    body = ("From: Alice <alice@example.org>\r\n"
            "To: bob@example.net\r\n"
            "Subject: quarterly\r\n report\r\n"
            "Message-ID: <1@example.org>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
            "\r\n"
            "preamble\r\n"
            "--b1\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            "Hello Bob,\r\n"
            "..leading dot\r\n"
            "--b1\r\n"
            "Content-Type: application/pdf; name=\"r.pdf\"\r\n"
            "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "\r\n"
            "JVBERi0xLjQK\r\n"
            "--b1--\r\n"
            "epilogue\r\n"
            ".\r\n")
    s = Script(0)
    s.lines(S, "220 mx.example.net ESMTP ready")
    s.lines(C, "EHLO client.example.org")
    s.lines(S, *ehlo_reply)
    s.lines(C, "MAIL FROM:<alice@example.org> SIZE=1200 BODY=8BITMIME")
    s.lines(S, "250 2.1.0 Ok")
    s.lines(C, "RCPT TO:<bob@example.net>")
    s.lines(S, "250 2.1.5 Ok")
    s.lines(C, "RCPT TO:<nobody@example.net>")
    s.lines(S, "550 5.1.1 <nobody@example.net>: Recipient address rejected")
    s.lines(C, "DATA")
    s.lines(S, "354 End data with <CR><LF>.<CR><LF>")
    s.chunk(C, body[:100].encode()).chunk(C, body[100:].encode())
    s.lines(S, "250 2.0.0 Ok: queued as 4XyZ12AbC")
    s.lines(C, "QUIT")
    s.lines(S, "221 2.0.0 Bye")
    write("fuzz_smtp", "conversation", s.bytes())

    s = Script(1)   # show_user
    s.lines(S, "220 mx.example.net ESMTP")
    s.lines(C, "EHLO c")
    s.lines(S, *ehlo_reply)
    s.lines(C, "AUTH PLAIN " + b64(b"\0alice\0secret"))
    s.lines(S, "535 5.7.8 Authentication credentials invalid")
    s.lines(C, "AUTH LOGIN")
    s.lines(S, "334 " + b64("Username:"))
    s.lines(C, b64("alice"))
    s.lines(S, "334 " + b64("Password:"))
    s.lines(C, b64("secret"))
    s.lines(S, "235 2.7.0 Authentication successful")
    s.lines(C, "AUTH CRAM-MD5")
    s.lines(S, "334 " + b64("<1896.697170952@postoffice.example.net>"))
    s.lines(C, b64("alice 0123456789abcdef0123456789abcdef"))
    s.lines(S, "503 5.5.1 Already authenticated")
    s.lines(C, "AUTH XOAUTH2 " + b64("user=alice@example.org\x01auth=Bearer tok\x01\x01"))
    s.lines(S, "503 5.5.1 Already authenticated")
    s.lines(C, "AUTH LOGIN " + b64("alice"))
    s.lines(S, "334 " + b64("Password:"))
    s.lines(C, "*")
    s.lines(S, "501 5.7.0 Authentication cancelled")
    write("fuzz_smtp", "auth", s.bytes())

    s = Script(0)
    s.lines(S, "220 mx.example.net ESMTP")
    s.lines(C, "EHLO c")
    s.lines(S, *ehlo_reply)
    s.lines(C, "STARTTLS")
    s.lines(S, "220 2.0.0 Ready to start TLS")
    s.chunk(C, client_hello())
    s.chunk(S, server_hello() + tls_record(20, b"\x01") + tls_record(23, bytes(40)))
    s.chunk(C, tls_record(23, bytes(64)))
    write("fuzz_smtp", "starttls", s.bytes())

    s = Script(0)
    s.lines(S, "220 mx ESMTP")
    s.lines(C, "EHLO c")
    s.lines(S, *ehlo_reply)
    s.lines(C, "STARTTLS")
    s.lines(S, "454 4.7.0 TLS not available due to local problem")
    s.lines(C, "MAIL FROM:<>", "RCPT TO:<postmaster@example.net>", "DATA")
    s.lines(S, "250 2.1.0 Ok", "250 2.1.5 Ok", "354 go ahead")
    s.chunk(C, b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<evil@example.org>\r\nmore\r\n.\r\n")
    s.lines(S, "250 2.0.0 Ok: queued as 7F3A")
    s.lines(C, "RSET", "NOOP", "VRFY bob", "HELP", "QUIT")
    s.lines(S, "250 2.0.0 Ok", "250 2.0.0 Ok", "252 2.0.0 bob", "214 see RFC 5321", "221 2.0.0 Bye")
    write("fuzz_smtp", "pipelined-refused-starttls", s.bytes())

    s = Script(0)
    s.lines(S, "220 mx ESMTP")
    s.lines(C, "EHLO c")
    s.lines(S, *ehlo_reply)
    s.lines(C, "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>")
    s.lines(S, "250 Ok", "250 Ok")
    msg = b"Subject: chunks\r\nContent-Type: text/plain\r\n\r\nfirst chunk\r\n"
    s.lines(C, "BDAT %d" % len(msg))
    s.chunk(C, msg)
    s.lines(S, "250 2.0.0 %d bytes received" % len(msg))
    s.lines(C, "BDAT 12 LAST")
    s.chunk(C, b"last chunk\r\n")
    s.lines(S, "250 2.0.0 Ok: queued as C0FFEE")
    s.lines(C, "BDAT 0 LAST")
    s.lines(S, "503 5.5.1 No transaction")
    write("fuzz_smtp", "bdat", s.bytes())

    s = Script(0)
    s.lines(S, "220 mx ESMTP")
    s.lines(C, "HELO c")
    s.lines(S, "250 mx")
    s.lines(C, "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA")
    s.lines(S, "250 Ok", "250 Ok", "354 go")
    s.chunk(C, b"Subject: gap\r\n\r\nbefore the hole\r\npartial li")
    s.gap(C, 1400)
    s.chunk(C, b"ne after\r\n.\r\n")
    s.gap(S, 20)
    s.lines(S, "250 Ok: queued as 1")
    s.lines(C, "QUIT")
    s.chunk(S, b"221 Bye\n")
    write("fuzz_smtp", "gaps", s.bytes())

    s = Script(4)   # small caps
    s.lines(S, "220 mx ESMTP")
    s.lines(C, "EHLO c")
    s.run(C, 300, ord("A"))
    s.run(S, 200, ord("5"))
    s.lines(S, "250-" + "x" * 40, "250 y")
    s.lines(C, "DATA")
    s.chunk(C, b"too early\r\n" * 8)
    s.lines(S, "354 go")
    s.lines(C, ".")
    s.lines(S, "250 ok")
    write("fuzz_smtp", "small-caps-long-lines", s.bytes())

    s = Script(0)
    s.chunk(C, client_hello())      # TLS where SMTP was expected
    s.chunk(S, server_hello())
    write("fuzz_smtp", "tls-without-starttls", s.bytes())

    # Code points that act on a screen (C1 controls, bidi controls, U+0085)
    # in wire text, written in every output (options bits 4-6; bit 7
    # colours): the views must quote them, JSON must escape U+0085.  (With
    # U+2028/U+2029 the same script is fuzz/crashes/fuzz_smtp-json-line-
    # separator-shift: see fuzz/README.md.)
    for view, name in ((0, "ndjson"), (1, "text"), (2, "html"), (3, "summary"), (4, "timeline"),
                       (5, "pretty"), (0x81, "text-colour")):
        opt = (view & 7) << 4 | (0x80 if view & 0x80 else 0) | 1
        write("fuzz_smtp", "screen-controls-" + name, screen_controls(opt, SCREEN_ODD))

    # fuzz_tls: both directions TLS from the first byte
    s = Script(0)
    s.chunk(C, client_hello())
    s.chunk(S, server_hello() + tls_record(20, b"\x01") + tls_record(22, bytes(60)))
    s.chunk(C, tls_record(20, b"\x01") + tls_record(22, bytes(60)))
    s.chunk(C, tls_record(23, bytes(100)))
    s.chunk(S, tls_record(23, bytes(300)))
    s.chunk(C, tls_record(21, b"\x01\x00"))
    write("fuzz_tls", "handshake", s.bytes())

    certs = pem_certs("mail.testlab.example.pem", "intermediate-ca.pem")
    if certs:
        s = Script(0)
        s.chunk(C, client_hello(b"mail.testlab.example"))
        s.chunk(S, server_flight_tls12(certs))
        s.chunk(C, tls_record(22, hs_msg(16, b"\x41" + bytes(65))) + tls_record(20, b"\x01") +
                tls_record(22, bytes(40)))
        s.chunk(S, tls_record(20, b"\x01") + tls_record(22, bytes(40)))
        s.chunk(C, tls_record(23, bytes(30)))
        write("fuzz_tls", "tls12-certificate-chain", s.bytes())
    certs = pem_certs("mail.testlab.example-expired.pem")
    if certs:
        s = Script(0)
        s.lines(S, "220 mx.other.example ESMTP")
        s.lines(C, "EHLO c")
        s.lines(S, "250-mx.other.example", "250 STARTTLS")
        s.lines(C, "STARTTLS")
        s.lines(S, "220 2.0.0 go ahead")
        s.chunk(C, client_hello(b"mail.testlab.example"))
        s.chunk(S, server_flight_tls12(certs))
        s.chunk(C, tls_record(21, b"\x02\x2d"))     # certificate_expired
        write("fuzz_smtp", "starttls-expired-certificate", s.bytes())

    s = Script(0)
    ch = client_hello()
    s.chunk(C, ch[:3]).chunk(C, ch[3:7]).chunk(C, ch[7:])
    s.chunk(S, tls_record(21, b"\x02\x28"))    # handshake_failure alert
    write("fuzz_tls", "split-header-alert", s.bytes())

    s = Script(0)
    s.chunk(C, client_hello())
    rec = tls_record(23, bytes(1000))
    s.chunk(S, rec[:200]).gap(S, 300).chunk(S, rec[500:])
    s.chunk(S, tls_record(23, bytes(20)))
    s.gap(C, 5000)
    s.chunk(C, b"EHLO not tls\r\n")
    write("fuzz_tls", "gaps", s.bytes())


# ---- packets ------------------------------------------------------------

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp(sport, dport, seq, ack, flags, payload=b"", win=64240, opts=b""):
    off = (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0) + opts + payload


def ipv4(src, dst, l4, proto=6, frag=0x4000, options=b""):
    ihl = 5 + len(options) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(l4), 0x1234, frag, 64, proto, 0,
                    bytes(src), bytes(dst)) + options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + l4


def ipv6(src, dst, l4, nh=6, ext=b""):
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(l4), nh, 64, bytes(src), bytes(dst)) + ext + l4


def eth(l3, etype=0x0800, vlans=()):
    h = bytes.fromhex("020000000002020000000001")
    for tpid, vid in vlans:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", etype) + l3


V4C, V4S = [192, 0, 2, 10], [198, 51, 100, 25]
V6C = bytes.fromhex("20010db8000000000000000000000010")
V6S = bytes.fromhex("20010db8000000000000000000000025")
SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04


def decode_seeds():
    # selector index into fuzz_decode.c's links[]: 0 NULL, 1 Ethernet,
    # 2 RAW(12), 3 RAW(14), 4 RAW(101), 5 LOOP, 6 SLL, 7 IPv4, 8 IPv6, 9 SLL2
    seg = tcp(40000, 25, 1000, 2000, PSH | ACK, b"EHLO client.example.org\r\n")
    v4 = ipv4(V4C, V4S, seg)
    v6 = ipv6(V6C, V6S, seg)
    write("fuzz_decode", "eth-ipv4-tcp", bytes([1, 0]) + eth(v4))
    write("fuzz_decode", "eth-ipv6-tcp", bytes([1, 0]) + eth(v6, 0x86DD))
    hop = bytes([43, 0]) + bytes(6)                       # hop-by-hop -> routing
    rt = bytes([44, 0, 0, 0]) + bytes(4)                  # routing -> fragment
    fr = bytes([6, 0, 0, 0]) + bytes(4)                   # atomic fragment -> TCP
    write("fuzz_decode", "qinq-ipv6-ext", bytes([1, 0]) +
          eth(ipv6(V6C, V6S, seg, nh=0, ext=hop + rt + fr), 0x86DD, [(0x88A8, 100), (0x8100, 200)]))
    write("fuzz_decode", "vlan-ipv4-options", bytes([1, 0]) +
          eth(ipv4(V4C, V4S, seg, options=b"\x01\x01\x01\x00"), 0x0800, [(0x8100, 7)]))
    sll = struct.pack("!HHH", 0, 1, 6) + bytes(8) + struct.pack("!H", 0x0800)
    write("fuzz_decode", "sll-ipv4", bytes([6, 0]) + sll + v4)
    sll2 = struct.pack("!HHIHBB", 0x86DD, 0, 2, 1, 0, 6) + bytes(8)
    write("fuzz_decode", "sll2-ipv6", bytes([9, 0]) + sll2 + v6)
    write("fuzz_decode", "null-ipv4", bytes([0, 0]) + struct.pack("<I", 2) + v4)
    write("fuzz_decode", "loop-ipv6", bytes([5, 0]) + struct.pack(">I", 30) + v6)
    write("fuzz_decode", "raw-ipv4-truncated", bytes([4, 200]) + v4[:50])
    write("fuzz_decode", "ipv4-fragment", bytes([7, 0]) + ipv4(V4C, V4S, seg, frag=0x2000))
    write("fuzz_decode", "ipv6-udp", bytes([8, 0]) + ipv6(V6C, V6S, bytes(8) + b"x", nh=17))
    write("fuzz_decode", "eth-ipv4-dns-a", bytes([1, 0]) +
          eth(ipv4([192, 0, 2, 53], V4C, udp(53, 33000, dns_answer("mx.example.net", [V4S, V4C])), proto=17)))
    write("fuzz_decode", "ipv6-dns-aaaa", bytes([8, 0]) +
          ipv6(V6S, V6C, udp(53, 33001, dns_answer("mail.example.org", [V6S])), nh=17))
    write("fuzz_decode", "ipv4-tso-zero-length", bytes([2, 0]) +
          v4[:2] + b"\x00\x00" + v4[4:])


# ---- fuzz_stream --------------------------------------------------------

class StreamScript:
    def __init__(self, mode, ooo, segs, hold, isn):
        self.b = bytearray([mode, ooo, segs, hold]) + struct.pack(">I", isn)
        self.derived = mode & 1

    def seg(self, d, kind, off, data_or_len, fin=False, cut=None, big=False):
        op = d | (kind << 1) | (0x40 if fin else 0) | (0x20 if cut is not None else 0) | (0x10 if big else 0)
        self.b.append(op)
        if kind == 0:
            self.b += struct.pack(">h", off)
        elif kind == 1:
            self.b += struct.pack(">H", off)
        elif kind == 3:
            self.b += struct.pack(">I", off)
        if self.derived:
            n = data_or_len
            self.b.append(n)
            if cut is not None:
                self.b.append(cut)
        else:
            data = data_or_len
            n = len(data)
            self.b.append(n)
            if cut is not None:
                self.b.append(cut)
                data = data[:n - cut % (n + 1)]
            self.b += data
        return self

    def skip(self, d, n):
        self.b += bytes([d | (4 << 1)]) + struct.pack(">H", n)
        return self

    def kick(self, d, wake=True):
        self.b.append(d | (5 << 1) | (0x10 if wake else 0))
        return self

    def fin(self, d, off=0):
        self.b += bytes([d | (6 << 1)]) + struct.pack(">b", off)
        return self

    def flush(self, d):
        self.b.append(d | (7 << 1))
        return self


def stream_seeds():
    # derived bytes, line consumer, in order / out of order / retransmission
    s = StreamScript(1, 32, 4, 0, 0xFFFFFF00)      # isn near the wrap
    s.seg(C, 2, 0, 200).seg(C, 0, 300, 100).seg(C, 0, 100, 100).seg(C, 0, -50, 100)
    s.seg(S, 2, 0, 150, cut=40).seg(S, 0, 10, 60).skip(S, 30).seg(S, 2, 0, 80, fin=True)
    s.fin(C, 0)
    write("fuzz_stream", "derived-reorder", bytes(s.b))

    # derived bytes, greedy-ish consumer, tiny caps so the ooo cap trips
    s = StreamScript(1 | (1 << 1), 1, 1, 0, 1000)
    for off in (500, 300, 900, 100):
        s.seg(C, 1, off, 90)
    s.seg(C, 1, 0, 255, big=True)
    s.kick(C).flush(C).seg(C, 2, 0, 10)
    write("fuzz_stream", "derived-ooo-cap", bytes(s.b))

    # wire bytes, line consumer: SMTP-like lines out of order and overlapping
    s = StreamScript(0, 255, 8, 0, 7)
    s.seg(C, 1, 15, b"RCPT TO:<b@x>\r\n")
    s.seg(C, 1, 0, b"MAIL FROM:<a@x>\r\n")
    s.seg(C, 1, 10, b"XXXXXXXX\r\nDATA?\r\n")       # conflicting overlap
    s.seg(S, 1, 0, b"250 ok\r\n354 go!\r\n")
    s.seg(C, 2, 0, b"body without end" * 8)
    s.kick(C, wake=True)
    s.seg(S, 2, 0, b"250 done\r\n", fin=True)
    write("fuzz_stream", "wire-lines", bytes(s.b))

    # wire bytes, half consumer, no start: first segment sets the start
    s = StreamScript(8 | (3 << 1), 4, 2, 64, 0)
    s.seg(C, 3, 0x80000000, b"0123456789" * 10)
    s.seg(C, 0, 200, b"later")
    s.seg(C, 0, -20, b"retransmitted bytes here")
    s.fin(C, 5)
    write("fuzz_stream", "wire-nostart", bytes(s.b))


# ---- fuzz_pipeline ------------------------------------------------------

def rec(ts_us, frame, wirelen=None):
    n = len(frame)
    return struct.pack("<IIII", ts_us // 1000000, ts_us % 1000000, n, wirelen or n) + frame


class Conv:
    """A TCP conversation as pcap records."""

    def __init__(self, wrap, cport, sport, t0=1700000000000000):
        self.wrap = wrap
        self.cport, self.sport = cport, sport
        self.cseq, self.sseq = 1000, 5000
        self.t = t0
        self.out = bytearray()

    def pkt(self, d, flags, payload=b"", seq=None, wirelen_extra=0):
        self.t += 1500
        if d == C:
            s = self.cseq if seq is None else seq
            seg = tcp(self.cport, self.sport, s, self.sseq, flags, payload)
        else:
            s = self.sseq if seq is None else seq
            seg = tcp(self.sport, self.cport, s, self.cseq, flags, payload)
        frame = self.wrap(seg, d)
        self.out += rec(self.t, frame, len(frame) + wirelen_extra if wirelen_extra else None)
        if seq is None:
            adv = len(payload) + (1 if flags & (SYN | FIN) else 0)
            if d == C:
                self.cseq += adv
            else:
                self.sseq += adv

    def handshake(self):
        self.pkt(C, SYN)
        self.pkt(S, SYN | ACK)
        self.pkt(C, ACK)

    def say(self, d, *lines):
        self.pkt(d, PSH | ACK, b"".join(l.encode() + b"\r\n" for l in lines))

    def close(self):
        self.pkt(C, FIN | ACK)
        self.pkt(S, FIN | ACK)
        self.pkt(C, ACK)


def eth4(seg, d):
    return eth(ipv4(V4C, V4S, seg) if d == C else ipv4(V4S, V4C, seg))


def raw6(seg, d):
    return ipv6(V6C, V6S, seg) if d == C else ipv6(V6S, V6C, seg)


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_answer(name, addrs, qid=0x1234):
    """A DNS response: one question, A/AAAA answers pointing back at it."""
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    qtype = 28 if len(addrs[0]) == 16 else 1
    msg = struct.pack("!HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0) + qname + struct.pack("!HH", qtype, 1)
    for a in addrs:
        msg += b"\xc0\x0c" + struct.pack("!HHIH", 28 if len(a) == 16 else 1, 1, 300, len(a)) + bytes(a)
    return msg


def pipeline_seeds():
    # [options][format] records.  options: bits0-3 link slot (0-3 Ethernet,
    # 6 RAW, 10 IPv6 ...), bit4 show_user, bit5 small caps, bit6 idle
    # timeout 1 s, bit7 colour.  format: 0 ndjson, 1 timeline, 2 text,
    # 3 summary, 4 HTML, 5 pretty timeline.
    c = Conv(eth4, 40001, 25)
    c.handshake()
    c.say(S, "220 mx.example.net ESMTP")
    c.say(C, "EHLO client.example.org")
    c.say(S, "250-mx.example.net", "250-PIPELINING", "250-AUTH PLAIN", "250 STARTTLS")
    c.say(C, "AUTH PLAIN " + b64(b"\0alice\0secret"))
    c.say(S, "235 2.7.0 ok")
    c.say(C, "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>", "DATA")
    c.say(S, "250 ok", "250 ok", "354 go")
    body = b"Subject: hi\r\n\r\nhello\r\n.\r\n"
    c.pkt(C, PSH | ACK, body[10:], seq=c.cseq + 10)      # out of order first
    c.pkt(C, PSH | ACK, body[:10])
    c.cseq += len(body) - 10
    c.say(S, "250 2.0.0 Ok: queued as ABC")
    c.say(C, "QUIT")
    c.say(S, "221 bye")
    c.close()
    write("fuzz_pipeline", "eth-smtp-auth-ooo", bytes([0x10, 0]) + bytes(c.out))

    c = Conv(raw6, 40002, 587)
    c.handshake()
    c.say(S, "220 mx ESMTP")
    c.say(C, "EHLO c")
    c.say(S, "250-mx", "250 STARTTLS")
    c.say(C, "STARTTLS")
    c.say(S, "220 go ahead")
    c.pkt(C, PSH | ACK, client_hello())
    c.pkt(S, PSH | ACK, server_hello() + tls_record(20, b"\x01"))
    c.pkt(C, PSH | ACK, tls_record(23, bytes(50)), wirelen_extra=0)
    c.pkt(S, RST | ACK)
    write("fuzz_pipeline", "raw6-starttls-rst", bytes([6, 1]) + bytes(c.out))

    # refused connection, a midstream flow, and a snaplen-cut segment
    c = Conv(eth4, 40003, 2525)
    c.pkt(C, SYN)
    c.pkt(S, RST | ACK)
    c2 = Conv(eth4, 40004, 465, t0=c.t + 10)
    c2.pkt(S, PSH | ACK, server_hello())
    c2.pkt(C, PSH | ACK, tls_record(23, bytes(200))[:60], wirelen_extra=140)
    c2.t += 3 * 1000000
    c2.pkt(C, PSH | ACK, tls_record(23, bytes(10)))
    write("fuzz_pipeline", "eth-refused-midstream", bytes([0x40, 3]) + bytes(c.out) + bytes(c2.out))

    # a DNS answer naming the server, then a session to it (HTML report)
    dns = eth(ipv4([192, 0, 2, 53], V4C, udp(53, 33000, dns_answer("mx.example.net", [V4S])), proto=17))
    c = Conv(eth4, 40005, 25)
    pre = rec(c.t, dns)
    c.handshake()
    c.say(S, "220 mx.example.net ESMTP <b>&\"'")
    c.say(C, "EHLO client")
    c.say(S, "250 mx.example.net")
    c.say(C, "MAIL FROM:<a@example.org>")
    c.say(S, "550 5.7.1 <script>alert(1)</script> rejected")
    c.say(C, "QUIT")
    c.say(S, "221 bye")
    c.close()
    write("fuzz_pipeline", "eth-dns-then-smtp-html", bytes([0, 4]) + pre + bytes(c.out))

    # captures from pcaps/tls (records only; the target writes the header)
    for name in ("s2-starttls-tls12.pcap", "s7-smtps-465-tls12.pcap", "s9-no-shared-cipher.pcap"):
        path = os.path.join(ROOT, "pcaps", "tls", name)
        if not os.path.exists(path):
            print("mkseeds: %s not found, skipped" % path, file=sys.stderr)
            continue
        data = open(path, "rb").read()
        magic, lt = struct.unpack("<I", data[:4])[0], struct.unpack("<I", data[20:24])[0]
        if magic != 0xa1b2c3d4 or lt != 1:
            print("mkseeds: %s: not a little-endian Ethernet pcap, skipped" % name, file=sys.stderr)
            continue
        fmt = {"s2-starttls-tls12.pcap": 2 | 0, "s7-smtps-465-tls12.pcap": 5}.get(name, 0)
        opt = 0x80 if fmt == 2 else 0                     # text view with colours
        write("fuzz_pipeline", "tls-" + name[:-5], bytes([opt, fmt]) + data[24:])

# ---- fuzz_pcapng --------------------------------------------------------

def ng_block(e, btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def ng_shb(e):
    return ng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def ng_opt(e, code, val):
    return struct.pack(e + "HH", code, len(val)) + val + b"\0" * (-len(val) % 4)


def ng_idb(e, lt, snap=0, opts=b""):
    return ng_block(e, 1, struct.pack(e + "HHI", lt, 0, snap) + opts + (ng_opt(e, 0, b"") if opts else b""))


def ng_epb(e, ifc, ts, pkt, wire=None):
    return ng_block(e, 6, struct.pack(e + "IIIII", ifc, ts >> 32, ts & 0xFFFFFFFF, len(pkt),
                                      len(pkt) if wire is None else wire) + pkt)


def pcapng_seeds():
    seg = tcp(40001, 25, 1000, 2000, 0x18, b"EHLO client.example\r\n")
    v4 = ipv4(V4C, V4S, seg)
    le = "<"
    ns = ng_opt(le, 9, b"\x09") + ng_opt(le, 14, struct.pack("<q", 3))
    write("fuzz_pcapng", "eth-then-raw-ns",
          ng_shb(le) + ng_idb(le, 1) + ng_epb(le, 0, 1700000000 * 1000000, eth(v4)) +
          ng_block(le, 5, bytes(16)) +                          # statistics: skipped
          ng_idb(le, 101, 65535, ns) + ng_epb(le, 1, 1700000000 * 10**9, v4))
    be = ">"
    sll = struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0800)
    write("fuzz_pcapng", "two-sections-be-sll-spb-opb",
          ng_shb(le) + ng_idb(le, 1) + ng_epb(le, 0, 5, eth(v4), 1500) +
          ng_shb(be) + ng_idb(be, 113, 128, ng_opt(be, 9, b"\x94")) +
          ng_epb(be, 0, 3 << 20, sll + v4) +
          ng_block(be, 3, struct.pack(">I", len(sll + v4)) + sll + v4) +
          ng_block(be, 2, struct.pack(">HHIIII", 0, 0, 0, 9, len(sll + v4), len(sll + v4)) + sll + v4))
    write("fuzz_pcapng", "cut-block", (ng_shb(le) + ng_idb(le, 1) + ng_epb(le, 0, 1, eth(v4)))[:-9])
    write("fuzz_pcapng", "ipv6-ext-chain",
          ng_shb(le) + ng_idb(le, 229) +
          ng_epb(le, 0, 1, ipv6(V6C, V6S, seg, nh=60, ext=b"".join(
              bytes([60 if i < 19 else 6, 0, 1, 4, 0, 0, 0, 0]) for i in range(20)))))


def main():
    smtp_seeds()
    decode_seeds()
    stream_seeds()
    pipeline_seeds()
    pcapng_seeds()


if __name__ == "__main__":
    main()
