"""SMTP client over implicit TLS (port 465) that writes an NSS key log.

Python's smtplib.SMTP_SSL with an ssl.SSLContext (OpenSSL) whose
keylog_filename is set: OpenSSL hands every secret it derives to Python,
which appends it to the file in the NSS key log format (SSLKEYLOGFILE).
The TLS version is pinned, the server certificate is checked against
--cafile with host-name checking on; one short message is sent.

The TCP connection goes to --address (no name lookup); --host is the name
used for SNI and for the certificate name check.

Exit status: 0 mail accepted, 2 TLS handshake failed, 1 any other error.
"""

import argparse
import smtplib
import ssl
import sys

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class Dialled(smtplib.SMTP_SSL):
    """SMTP_SSL that dials a fixed address but keeps the host name for TLS."""

    address = None

    def _get_socket(self, host, port, timeout):
        return super()._get_socket(self.address or host, port, timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True, help="server name (SNI, name checks)")
    ap.add_argument("--address", help="IP address to connect to instead of resolving --host")
    ap.add_argument("--port", type=int, default=465)
    ap.add_argument("--tls", choices=sorted(VERSIONS), default="1.3")
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--keylog", required=True, help="NSS key log file to append to")
    ap.add_argument("--ehlo", default="client.testlab.example")
    ap.add_argument("--mail-from", default="alice@client.testlab.example")
    ap.add_argument("--rcpt", default="bob@testlab.example")
    args = ap.parse_args()

    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.minimum_version = VERSIONS[args.tls]
    ctx.maximum_version = VERSIONS[args.tls]
    ctx.keylog_filename = args.keylog
    message = (
        f"From: <{args.mail_from}>\r\n"
        f"To: <{args.rcpt}>\r\n"
        "Subject: mxtrace key log capture\r\n"
        "\r\n"
        "Test message sent over implicit TLS.\r\n"
    )
    Dialled.address = args.address
    try:
        smtp = Dialled(args.host, args.port, local_hostname=args.ehlo, timeout=15, context=ctx)
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
