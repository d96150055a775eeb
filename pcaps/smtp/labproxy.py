#!/usr/bin/python3
"""SMTP inspection middlebox for the test captures.

A TCP relay in front of an SMTP server that, as the ESMTP inspection of some
firewalls does, overwrites the STARTTLS keyword in the server's EHLO reply
with XXXXXXXA (same length), so the client never sees TLS offered. Everything
else goes through unchanged, in both directions; a close on one side is
passed on as a close (FIN) to the other.

Usage: labproxy.py --listen ADDR --port N --upstream ADDR --upstream-port N --ready FILE
The relay writes FILE once it listens and runs until SIGTERM/SIGINT.
"""
import argparse
import os
import re
import signal
import socket
import sys
import threading

MASK = re.compile(rb"^(25[0-9][- ])STARTTLS(\r?)$", re.I)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def mask(line):
    m = MASK.match(line)
    return m.group(1) + b"XXXXXXXA" + m.group(2) if m else line


def client_to_server(src, dst):
    while True:
        d = src.recv(65536)
        if not d:
            break
        dst.sendall(d)
    dst.shutdown(socket.SHUT_WR)


def server_to_client(src, dst):
    """Whole reply lines only, so each line can be inspected; what one read
    brings is sent on in one write, as the server wrote it."""
    held = b""
    while True:
        d = src.recv(65536)
        if not d:
            break
        held += d
        lines = held.split(b"\n")
        held = lines.pop()
        if lines:
            out = [mask(l) for l in lines]
            for old, new in zip(lines, out):
                if old != new:
                    log("masked:", old.decode("ascii", "replace").rstrip(), "->",
                        new.decode("ascii", "replace").rstrip())
            dst.sendall(b"\n".join(out) + b"\n")
    if held:
        dst.sendall(held)
    dst.shutdown(socket.SHUT_WR)


def relay(conn, peer, up_addr):
    log("connection from", peer)
    up = socket.create_connection(up_addr)
    threads = [threading.Thread(target=client_to_server, args=(conn, up)),
               threading.Thread(target=server_to_client, args=(up, conn))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    up.close()
    conn.close()
    log("connection from", peer, "closed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--upstream-port", type=int, default=25)
    ap.add_argument("--ready", required=True)
    a = ap.parse_args()
    fam = socket.AF_INET6 if ":" in a.listen else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.listen, a.port))
    ls.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    with open(a.ready, "w") as f:
        f.write("%d\n" % os.getpid())
    while True:
        conn, peer = ls.accept()
        threading.Thread(target=relay, args=(conn, peer, (a.upstream, a.upstream_port)),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
