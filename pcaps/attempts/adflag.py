#!/usr/bin/python3
"""A DNS forwarder that marks answers as DNSSEC-validated (AD bit).

It stands where a validating resolver would be: each UDP query is passed
unchanged to the upstream server (dnsmasq, which serves the zone but never
sets AD on its own MX and --dns-rr data), and the answer goes back unchanged
except that AD is set when the query asked for it (AD set in the query, as
glibc sends it with "options trust-ad"). Nothing is validated.

Usage: adflag.py --listen ADDR --upstream ADDR --ready FILE
The forwarder writes FILE once it listens and runs until SIGTERM/SIGINT.
"""
import argparse
import os
import select
import signal
import socket
import sys

AD = 0x20  # fourth header octet: RA Z AD CD RCODE


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.listen, args.port))
    with open(args.ready, "w") as f:
        f.write("%d\n" % os.getpid())
    while not stop:
        try:
            ready, _, _ = select.select([sock], [], [], 0.5)
        except InterruptedError:
            continue
        if not ready:
            continue
        query, client = sock.recvfrom(65535)
        if len(query) < 12:
            continue
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.settimeout(2)
        try:
            up.sendto(query, (args.upstream, args.port))
            answer = up.recv(65535)
        except OSError as e:
            print("adflag: upstream: %s" % e, file=sys.stderr)
            continue
        finally:
            up.close()
        if len(answer) >= 12 and answer[:2] == query[:2]:
            if query[3] & AD:
                answer = answer[:3] + bytes([answer[3] | AD]) + answer[4:]
            sock.sendto(answer, client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
