#!/usr/bin/python3
"""Derive degraded TLS captures from the real ones.

Usage: degrade.py OPERATION IN OUT
  cutrecord  the first bytes of one client segment are lost: of the first
             client segment that carries one whole application-data record
             and is followed by at least two more client records, the first
             20 bytes (the record header and the start of its body) are
             removed and the rest is sent as a segment of its own, so what
             arrives after the hole starts inside a record
  nosni      the client's ClientHello names no server: its server_name
             extension's type is changed to a GREASE value (0x0a0a,
             RFC 8701: to be ignored), lengths unchanged, so the capture is
             that of a client that sent no SNI (the server's answer is the
             one it gave, which does not depend on it here)

Classic pcap files are read and written by ../smtp/degrade.py's reader, so
records that are not touched keep their exact bytes and timestamps; scapy
rebuilds the one segment that changes (lengths and checksums).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "smtp"))

from degrade import Pcap, note, payload, tcp_of  # noqa: E402
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

LOST = 20


def client_records(cap, port):
    """(record index, payload) of the client's segments with data, in order."""
    out = []
    for i, rec in enumerate(cap.records):
        t = tcp_of(rec[3])
        if t is not None and t.dport == port and payload(t):
            out.append((i, payload(t)))
    return out


def op_cutrecord(cap, out, port=465):
    segs = client_records(cap, port)
    for k, (i, data) in enumerate(segs):
        # one whole application-data record, and two more client segments after
        if len(data) > LOST + 5 and data[0] == 23 and int.from_bytes(data[3:5], "big") + 5 == len(data) \
                and len(segs) - k - 1 >= 2:
            e = Ether(cap.records[i][3])
            e[TCP].seq = (e[TCP].seq + LOST) & 0xFFFFFFFF
            e[TCP].remove_payload()
            e[TCP].add_payload(Raw(data[LOST:]))
            del e[IP].len
            del e[IP].chksum
            del e[TCP].chksum
            pkt = bytes(e)
            recs = [list(r) for r in cap.records]
            recs[i] = [recs[i][0], recs[i][1], len(pkt), pkt, recs[i][4]]
            note("frame %d: first %d of its %d bytes removed" % (i + 1, LOST, len(data)))
            cap.write(out, recs)
            return
    raise SystemExit("no client segment with one whole application-data record")


def op_nosni(cap, out, port=465):
    for i, data in client_records(cap, port):
        if len(data) < 44 or data[0] != 22 or data[5] != 1:
            continue
        # record header 5, handshake header 4, version 2, random 32
        o = 5 + 4 + 2 + 32
        o += 1 + data[o]                                    # session id
        o += 2 + int.from_bytes(data[o:o + 2], "big")       # cipher suites
        o += 1 + data[o]                                    # compression
        end = o + 2 + int.from_bytes(data[o:o + 2], "big")
        o += 2
        while o + 4 <= end:
            typ, n = int.from_bytes(data[o:o + 2], "big"), int.from_bytes(data[o + 2:o + 4], "big")
            if typ == 0:
                new = data[:o] + b"\x0a\x0a" + data[o + 2:]
                e = Ether(cap.records[i][3])
                e[TCP].remove_payload()
                e[TCP].add_payload(Raw(new))
                del e[TCP].chksum
                pkt = bytes(e)
                recs = [list(r) for r in cap.records]
                recs[i] = [recs[i][0], recs[i][1], len(pkt), pkt, recs[i][4]]
                note("frame %d: server_name extension at byte %d renamed 0x0a0a" % (i + 1, o))
                cap.write(out, recs)
                return
            o += 4 + n
        raise SystemExit("the ClientHello has no server_name extension")
    raise SystemExit("no ClientHello from the client")


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    op, src, dst = sys.argv[1:]
    cap = Pcap(src)
    if op == "cutrecord":
        op_cutrecord(cap, dst)
    elif op == "nosni":
        op_nosni(cap, dst)
    else:
        raise SystemExit("unknown operation %r" % op)


if __name__ == "__main__":
    main()
