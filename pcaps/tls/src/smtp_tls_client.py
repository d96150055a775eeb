"""SMTP client built on Python's smtplib and ssl (OpenSSL) modules.

It sends one short message over STARTTLS or implicit TLS, or stops at the
first TLS failure, and prints what happened.  The TCP connection goes to
--address when given (so that no name lookup happens), otherwise the host
name is resolved through the system resolver.  The host name is always the
one used for SNI and for certificate name checks.

Exit status: 0 mail accepted, 2 TLS handshake failed, 1 any other error.
"""

import argparse
import smtplib
import ssl
import sys

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def build_context(args):
    if args.no_verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        # cafile=None means the system's default trust store.
        ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.minimum_version = VERSIONS[args.tls]
    ctx.maximum_version = VERSIONS[args.tls]
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    return ctx


def with_address(base, address):
    """Subclass of an smtplib class that dials ADDRESS instead of the name."""
    if not address:
        return base

    class Dialled(base):
        def _get_socket(self, host, port, timeout):
            return super()._get_socket(address, port, timeout)

    return Dialled


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True, help="server name (SNI, name checks)")
    ap.add_argument("--address", help="IP address to connect to instead of resolving --host")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("starttls", "implicit"), required=True)
    ap.add_argument("--tls", choices=sorted(VERSIONS), required=True)
    ap.add_argument("--cafile")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--ciphers")
    ap.add_argument("--ehlo", default="client.testlab.example")
    ap.add_argument("--mail-from", default="alice@client.testlab.example")
    ap.add_argument("--rcpt", default="bob@testlab.example")
    args = ap.parse_args()

    ctx = build_context(args)
    message = (
        f"From: <{args.mail_from}>\r\n"
        f"To: <{args.rcpt}>\r\n"
        "Subject: mxtrace TLS capture\r\n"
        "\r\n"
        "Test message sent over TLS.\r\n"
    )
    try:
        if args.mode == "implicit":
            cls = with_address(smtplib.SMTP_SSL, args.address)
            smtp = cls(args.host, args.port, local_hostname=args.ehlo,
                       timeout=15, context=ctx)
        else:
            cls = with_address(smtplib.SMTP, args.address)
            smtp = cls(args.host, args.port, local_hostname=args.ehlo, timeout=15)
            smtp.ehlo()
            smtp.starttls(context=ctx)
        sock = smtp.sock
        print(f"TLS up: {sock.version()} {sock.cipher()[0]}")
        smtp.ehlo()
        refused = smtp.sendmail(args.mail_from, [args.rcpt], message)
        print(f"mail sent, refused={refused}")
        smtp.quit()
    except ssl.SSLError as exc:
        print(f"TLS handshake failed: {exc}")
        return 2
    except (smtplib.SMTPException, OSError) as exc:
        print(f"SMTP error: {exc!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
