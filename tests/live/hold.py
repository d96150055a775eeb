#!/usr/bin/python3
"""A client for tests/live.py that opens an SMTP session and keeps it open.

Usage: hold.py SERVER PORT LOCAL_ADDR LOCAL_PORT

Connects from LOCAL_ADDR:LOCAL_PORT, reads the banner, sends EHLO and reads
its reply, then prints "ready".  Each line "noop" on standard input sends
NOOP and prints "ok" once the reply is read.  The connection stays open
until the process is killed (end of input does not close it).
"""
import socket
import sys
import time


def reply(f):
    while True:
        line = f.readline()
        if not line:
            sys.exit("hold.py: connection closed")
        if line[3:4] != b"-":
            return line


server, port, laddr, lport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((laddr, lport))
s.settimeout(10)
s.connect((server, port))
f = s.makefile("rb")
reply(f)
s.sendall(b"EHLO client.live.test\r\n")
reply(f)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "noop":
        s.sendall(b"NOOP\r\n")
        reply(f)
        print("ok", flush=True)
while True:
    time.sleep(3600)
