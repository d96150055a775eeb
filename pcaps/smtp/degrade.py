#!/usr/bin/python3
"""Derive degraded and broken captures from the real ones.

Usage: degrade.py OPERATION IN [OUT]
  reorder    swap two adjacent full-size client body segments (middle of DATA)
  duplicate  re-send copies of three client body segments and one server reply
             a little later, as TCP retransmissions would appear
  drop       remove one client body segment in the middle of DATA
  qinq       add stacked 802.1ad (outer, VID 100) and 802.1Q (inner, VID 25) tags
  midstream  drop everything before the server's EHLO reply
  rawip      strip the Ethernet header, LINKTYPE_RAW (101); non-IP frames dropped
  null       replace the Ethernet header by a 4-byte host-order address family,
             LINKTYPE_NULL (0); non-IP frames dropped
  cutpoint   print a byte offset that lies inside a record in the middle of IN
  badrecord  set caplen of a record in the middle of IN to 0x7fffffff
  linktype   set the file header's link type to 147 (LINKTYPE_USER0)
  ackrace    move three of the server's pure ACKs during DATA ahead of the
             client segment each acknowledges last (span-port race)
  ackrace-multi
             move two of them ahead of the last 2 and 3 client segments each
             acknowledges
  clockback  stamp every frame from the client's MAIL command on 10 s
             earlier, as a capture host's clock stepped back writes them
  ext6       put 20 IPv6 extension headers (hop-by-hop, then 19 destination
             options, each 8 bytes of padding) before the TCP header of
             every IPv6 TCP frame

Classic pcap files are read and written directly, so records that are not
touched keep their exact bytes and timestamps; scapy dissects the frames.
"""
import struct
import sys

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_USER0 = 147


class Pcap:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        magic = data[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            self.e = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            self.e = ">"
        else:
            raise SystemExit("%s: not a classic pcap file" % path)
        self.header = bytearray(data[:24])
        (_, self.vmaj, self.vmin, _, _, self.snaplen,
         self.linktype) = struct.unpack(self.e + "IHHiIII", data[:24])
        self.records = []   # [ts_sec, ts_frac, orig_len, bytes, file_offset]
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, orig = struct.unpack(self.e + "IIII", data[off:off + 16])
            self.records.append([sec, frac, orig, data[off + 16:off + 16 + incl], off])
            off += 16 + incl
        self.raw = data

    def write(self, path, records=None, linktype=None):
        hdr = bytearray(self.header)
        if linktype is not None:
            struct.pack_into(self.e + "I", hdr, 20, linktype)
        out = [bytes(hdr)]
        for sec, frac, orig, pkt, _ in (self.records if records is None else records):
            out.append(struct.pack(self.e + "IIII", sec, frac, len(pkt), orig) + pkt)
        with open(path, "wb") as f:
            f.write(b"".join(out))


def note(text):
    print("degrade: " + text, file=sys.stderr)


def tcp_of(pkt):
    p = Ether(pkt)
    if p.haslayer(TCP):
        return p[TCP]
    return None


def payload(tcp):
    return bytes(tcp[Raw].load) if tcp.haslayer(Raw) else b""


def body_segments(cap):
    """Indexes of full-size client->server segments sent after the 354 reply."""
    got354 = False
    idx = []
    for i, rec in enumerate(cap.records):
        t = tcp_of(rec[3])
        if t is None:
            continue
        data = payload(t)
        if t.sport == 25 and data.startswith(b"354"):
            got354 = True
        elif t.dport == 25 and got354 and len(data) >= 1400:
            idx.append(i)
        elif t.sport == 25 and got354 and data.startswith(b"250"):
            break
    if len(idx) < 6:
        raise SystemExit("too few body segments (%d)" % len(idx))
    return idx


def ts_between(records, j):
    """Timestamp half-way between record j and record j+1 (or 200 us after j)."""
    t0 = records[j][0] * 1000000 + records[j][1]
    if j + 1 < len(records):
        t1 = records[j + 1][0] * 1000000 + records[j + 1][1]
        t = (t0 + t1) // 2
    else:
        t = t0 + 200
    return [t // 1000000, t % 1000000]


def op_reorder(cap, out):
    idx = body_segments(cap)
    a, b = idx[len(idx) // 2], idx[len(idx) // 2 + 1]
    recs = [list(r) for r in cap.records]
    # Swap the frames, keep the time slots: the later segment arrives first.
    recs[a][2:4], recs[b][2:4] = cap.records[b][2:4], cap.records[a][2:4]
    note("frames %d and %d swapped" % (a + 1, b + 1))
    cap.write(out, recs)


def op_duplicate(cap, out):
    idx = body_segments(cap)
    picks = {idx[2], idx[len(idx) // 2], idx[-2]}
    # and the server's final 250 after the body
    for i in range(idx[-1], len(cap.records)):
        t = tcp_of(cap.records[i][3])
        if t is not None and t.sport == 25 and payload(t).startswith(b"250"):
            picks.add(i)
            break
    recs = []
    pending = []   # (insert after index, record)
    for i, rec in enumerate(cap.records):
        recs.append(rec)
        if i in picks:
            # the copy goes out two frames later, between that frame and the next
            j = min(i + 2, len(cap.records) - 1)
            pending.append((j, ts_between(cap.records, j)[:2] + rec[2:]))
        for p in [p for p in pending if p[0] == i]:
            recs.append(p[1])
            pending.remove(p)
    for p in pending:
        recs.append(p[1])
    note("copies of input frames %s added" % ", ".join(str(i + 1) for i in sorted(picks)))
    cap.write(out, recs)


def op_drop(cap, out):
    idx = body_segments(cap)
    gone = idx[len(idx) // 2]
    note("frame %d removed" % (gone + 1))
    cap.write(out, [r for i, r in enumerate(cap.records) if i != gone])


def op_qinq(cap, out):
    recs = []
    for rec in cap.records:
        e = Ether(rec[3])
        inner = e.payload
        tagged = (Ether(dst=e.dst, src=e.src, type=0x88A8)
                  / Dot1AD(prio=0, id=0, vlan=100, type=0x8100)
                  / Dot1Q(prio=0, id=0, vlan=25, type=e.type) / inner)
        pkt = bytes(tagged)
        recs.append([rec[0], rec[1], rec[2] + 8, pkt, rec[4]])
    cap.write(out, recs)


def op_midstream(cap, out):
    for i, rec in enumerate(cap.records):
        t = tcp_of(rec[3])
        if t is not None and t.sport == 25 and payload(t).startswith(b"250-"):
            note("frames 1-%d removed" % i)
            cap.write(out, cap.records[i:])
            return
    raise SystemExit("no EHLO reply found")


def strip_link(cap, out, linktype, prefix):
    recs = []
    for rec in cap.records:
        e = Ether(rec[3])
        if not (e.haslayer(IP) or e.haslayer(IPv6)):
            continue
        fam = 2 if e.type == 0x0800 else 10
        body = rec[3][14:]
        pkt = prefix(fam) + body
        recs.append([rec[0], rec[1], rec[2] - 14 + len(prefix(fam)), pkt, rec[4]])
    cap.write(out, recs, linktype=linktype)


def op_rawip(cap, out):
    strip_link(cap, out, LINKTYPE_RAW, lambda fam: b"")


def op_null(cap, out):
    # DLT_NULL: address family as a 32-bit integer in the capturing host's
    # byte order (AF_INET is 2 everywhere; only IPv4 is expected here).
    strip_link(cap, out, LINKTYPE_NULL, lambda fam: struct.pack(cap.e + "I", fam))


def ts_us(rec):
    return rec[0] * 1000000 + rec[1]


def body_acks(cap):
    """The server's pure ACKs between the 354 and the final 250, each with the
    indexes of the client segments it acknowledges first (those sent after
    the previous ACK's number), oldest first."""
    got354 = False
    segs = []      # (index, end sequence number) of client body segments
    acks = []      # (index, [indexes of the segments newly acknowledged])
    last_ack = None
    for i, rec in enumerate(cap.records):
        t = tcp_of(rec[3])
        if t is None:
            continue
        data = payload(t)
        if t.sport == 25 and data.startswith(b"354"):
            got354 = True
        elif not got354:
            continue
        elif t.dport == 25 and data:
            segs.append((i, (t.seq + len(data)) & 0xFFFFFFFF))
        elif t.sport == 25 and not data and t.flags == "A":
            covered = [j for j, end in segs
                       if end <= t.ack and (last_ack is None or end > last_ack)]
            acks.append((i, covered))
            last_ack = t.ack
        elif t.sport == 25 and data:
            break
    return acks


def move_acks(cap, out, moves):
    """moves: (position among the body ACKs, number of segments to jump)."""
    acks = body_acks(cap)
    recs = [list(r) for r in cap.records]
    order = list(range(len(recs)))
    for pos, jump in moves:
        i, covered = acks[pos]
        if len(covered) < jump:
            raise SystemExit("ACK at frame %d covers %d segments, need %d" % (i + 1, len(covered), jump))
        target = covered[-jump]
        # Only client segments may lie between the target and the ACK.
        if any(k not in covered for k in range(target, i)):
            raise SystemExit("frames %d-%d are not all covered by the ACK at frame %d"
                             % (target + 1, i, i + 1))
        order.remove(i)
        order.insert(order.index(target), i)
        # Written a microsecond before the first segment it now precedes, but
        # not before the record ahead of it.
        before = recs[order[order.index(i) - 1]]
        t = max(ts_us(recs[target]) - 1, ts_us(before))
        recs[i][0], recs[i][1] = t // 1000000, t % 1000000
    new = [recs[k] for k in order]
    for pos, jump in moves:
        i = acks[pos][0]
        at = order.index(i)
        note("input frame %d (ACK %s) is now frame %d, ahead of input frames %s"
             % (i + 1, "of %d segments" % len(acks[pos][1]), at + 1,
                ", ".join(str(k + 1) for k in acks[pos][1][-jump:])))
    cap.write(out, new)


def op_ackrace(cap, out):
    n = len(body_acks(cap))
    if n < 4:
        raise SystemExit("too few server ACKs during DATA (%d)" % n)
    move_acks(cap, out, [(0, 1), (2, 1), (n - 1, 1)])


def op_ackrace_multi(cap, out):
    n = len(body_acks(cap))
    if n < 4:
        raise SystemExit("too few server ACKs during DATA (%d)" % n)
    move_acks(cap, out, [(1, 2), (3, 3)])


def op_cutpoint(cap, out):
    rec = cap.records[len(cap.records) // 2]
    note("cut inside frame %d" % (len(cap.records) // 2 + 1))
    print(rec[4] + 16 + len(rec[3]) // 2)


def op_badrecord(cap, out):
    data = bytearray(cap.raw)
    rec = cap.records[len(cap.records) // 2]
    note("caplen of frame %d (file offset %d) set to 0x7fffffff" % (len(cap.records) // 2 + 1, rec[4]))
    struct.pack_into(cap.e + "I", data, rec[4] + 8, 0x7FFFFFFF)
    with open(out, "wb") as f:
        f.write(bytes(data))


def op_linktype(cap, out):
    data = bytearray(cap.raw)
    struct.pack_into(cap.e + "I", data, 20, LINKTYPE_USER0)
    with open(out, "wb") as f:
        f.write(bytes(data))


def op_clockback(cap, out):
    # From the client's MAIL command on, every frame is stamped 10 s
    # earlier, as a capture host whose clock is stepped back writes them.
    step = 10 * 1000000
    recs = [list(r) for r in cap.records]
    for i, rec in enumerate(cap.records):
        t = tcp_of(rec[3])
        if i > 0 and t is not None and payload(t).startswith(b"MAIL"):
            for r in recs[i:]:
                us = r[0] * 1000000 + r[1] - step
                r[0:2] = [us // 1000000, us % 1000000]
            note("frames %d-%d stamped 10 s earlier" % (i + 1, len(recs)))
            cap.write(out, recs)
            return
    raise SystemExit("no MAIL command found")


def op_ext6(cap, out):
    # Bytes are edited in place: the TCP checksum covers the addresses and
    # the TCP length only, so it stays valid.
    n = 20
    recs = []
    for rec in cap.records:
        pkt = rec[3]
        if len(pkt) >= 54 and pkt[12:14] == b"\x86\xdd" and pkt[20] == 6:
            chain = b""
            for k in range(n):
                nxt = 6 if k == n - 1 else 60
                chain += bytes([nxt, 0, 1, 4, 0, 0, 0, 0])     # PadN, 4 bytes
            plen = struct.unpack(">H", pkt[18:20])[0] + 8 * n
            pkt = pkt[:18] + struct.pack(">H", plen) + bytes([0]) + pkt[21:54] + chain + pkt[54:]
            recs.append([rec[0], rec[1], rec[2] + 8 * n, pkt, rec[4]])
        else:
            recs.append(rec)
    cap.write(out, recs)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    op, src = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) > 3 else None
    cap = Pcap(src)
    if op not in ("cutpoint", "badrecord", "linktype") and cap.linktype != LINKTYPE_ETHERNET:
        raise SystemExit("%s: expected an Ethernet capture" % src)
    fn = globals().get("op_" + op.replace("-", "_"))
    if fn is None:
        print(__doc__, file=sys.stderr)
        return 2
    fn(cap, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
