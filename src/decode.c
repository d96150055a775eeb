/* decode.c - link layer, IPv4/IPv6 and TCP header decoding.
 *
 * All reads go through mx_cur; no struct is laid over packet bytes.  Where
 * the capture was cut short (caplen < wirelen), the payload is marked as
 * partially captured so the stream layer can treat the missing bytes as a gap.
 */
#include "mx/decode.h"
#include "mx/cursor.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define ETH_VLAN 0x8100
#define ETH_QINQ 0x88A8
#define ETH_QINQ_OLD 0x9100

int mx_link_supported(int lt)
{
    switch (lt) {
    case MX_LINK_NULL: case MX_LINK_ETHERNET: case MX_LINK_RAW_DLT:
    case MX_LINK_RAW_DLT14: case MX_LINK_RAW: case MX_LINK_LOOP:
    case MX_LINK_SLL: case MX_LINK_IPV4: case MX_LINK_IPV6: case MX_LINK_SLL2:
        return 1;
    default:
        return 0;
    }
}

/* After the link header: ethertype-style protocol, VLAN tags peeled. */
static int peel_vlans(mx_cur *c, uint16_t *etype, mx_pkt *out)
{
    while (*etype == ETH_VLAN || *etype == ETH_QINQ || *etype == ETH_QINQ_OLD) {
        uint16_t tci;
        if (!mx_cur_u16(c, &tci) || !mx_cur_u16(c, etype)) return 0;
        if (out->nvlan < 2) out->vlan[out->nvlan] = tci & 0x0FFF;
        out->nvlan++;
        if (out->nvlan > 8) return 0;   /* absurd stacking */
    }
    return 1;
}

static enum mx_decode_rc decode_tcp(mx_cur *c, uint32_t l4wire, mx_pkt *out)
{
    uint8_t off, fl;
    mx_cur h = *c;
    if (!mx_cur_u16(&h, &out->sport) || !mx_cur_u16(&h, &out->dport) ||
        !mx_cur_u32(&h, &out->seq) || !mx_cur_u32(&h, &out->ack) ||
        !mx_cur_u8(&h, &off) || !mx_cur_u8(&h, &fl) ||
        !mx_cur_u16(&h, &out->win))
        return MX_DEC_TRUNCATED;
    out->flags = fl & 0x3F;
    uint32_t hlen = (uint32_t)(off >> 4) * 4;
    if (hlen < 20 || hlen > l4wire) return MX_DEC_MALFORMED;
    if (!mx_cur_skip(c, hlen)) return MX_DEC_TRUNCATED;
    out->paylen = l4wire - hlen;
    out->caplen = c->left < out->paylen ? (uint32_t)c->left : out->paylen;
    out->payload = c->p;
    return MX_DEC_OK;
}

/* UDP (RFC 768): only the ports and the payload are needed (DNS). */
static enum mx_decode_rc decode_udp(mx_cur *c, uint32_t l4wire, mx_pkt *out)
{
    uint16_t ulen, csum;
    if (!mx_cur_u16(c, &out->sport) || !mx_cur_u16(c, &out->dport) || !mx_cur_u16(c, &ulen) ||
        !mx_cur_u16(c, &csum))
        return MX_DEC_TRUNCATED;
    if (ulen < 8 || ulen > l4wire) ulen = (uint16_t)(l4wire < 0xFFFF ? l4wire : 0xFFFF);
    out->paylen = ulen >= 8 ? ulen - 8u : 0;
    out->caplen = c->left < out->paylen ? (uint32_t)c->left : out->paylen;
    out->payload = c->p;
    return MX_DEC_UDP;
}

static enum mx_decode_rc decode_ipv4(mx_cur *c, mx_pkt *out)
{
    uint8_t vihl, tos, ttl, proto;
    uint16_t tot, id, frag, csum;
    const uint8_t *l3 = c->p;
    size_t l3cap = c->left;
    mx_cur h = *c;
    if (!mx_cur_u8(&h, &vihl) || !mx_cur_u8(&h, &tos) || !mx_cur_u16(&h, &tot) ||
        !mx_cur_u16(&h, &id) || !mx_cur_u16(&h, &frag) || !mx_cur_u8(&h, &ttl) ||
        !mx_cur_u8(&h, &proto) || !mx_cur_u16(&h, &csum))
        return MX_DEC_TRUNCATED;
    if ((vihl >> 4) != 4) return MX_DEC_MALFORMED;
    uint32_t ihl = (uint32_t)(vihl & 0x0F) * 4;
    /* A total length of 0 is what a sender with TCP segmentation offload
     * writes into the frames it hands to the capture: use what was seen. */
    if (tot == 0 && c->left <= 0xFFFF) tot = (uint16_t)c->left;
    if (ihl < 20 || tot < ihl) return MX_DEC_MALFORMED;
    if (!mx_cur_has(&h, 8)) return MX_DEC_TRUNCATED;
    memset(&out->src, 0, sizeof out->src);
    memset(&out->dst, 0, sizeof out->dst);
    memcpy(out->src.b, h.p, 4);
    memcpy(out->dst.b, h.p + 4, 4);
    if ((frag & 0x1FFF) != 0 || (frag & 0x2000) != 0) return MX_DEC_FRAGMENT;
    if (proto != 6 && proto != 17) return MX_DEC_NOT_TCP;
    if (!mx_cur_skip(c, ihl)) return MX_DEC_TRUNCATED;
    out->l3 = l3;
    out->l3len = (uint32_t)(l3cap < tot ? l3cap : tot);
    /* Ethernet padding can make the captured bytes exceed tot: trust tot. */
    if (c->left > (size_t)(tot - ihl)) c->left = tot - ihl;
    if (proto == 17) return decode_udp(c, tot - ihl, out);
    return decode_tcp(c, tot - ihl, out);
}

static enum mx_decode_rc decode_ipv6(mx_cur *c, mx_pkt *out)
{
    uint32_t vtf;
    uint16_t plen;
    uint8_t nh, hop;
    const uint8_t *l3 = c->p;
    size_t l3cap = c->left;
    if (!mx_cur_u32(c, &vtf) || !mx_cur_u16(c, &plen) || !mx_cur_u8(c, &nh) ||
        !mx_cur_u8(c, &hop))
        return MX_DEC_TRUNCATED;
    if ((vtf >> 28) != 6) return MX_DEC_MALFORMED;
    if (!mx_cur_has(c, 32)) return MX_DEC_TRUNCATED;
    memcpy(out->src.b, c->p, 16);
    memcpy(out->dst.b, c->p + 16, 16);
    out->src.v6 = out->dst.v6 = 1;
    mx_cur_skip(c, 32);
    out->l3 = l3;
    out->l3len = (uint32_t)(l3cap < (size_t)plen + 40 ? l3cap : (size_t)plen + 40);
    if (c->left > plen) c->left = plen;
    uint32_t remaining = plen;

    /* Extension headers (RFC 8200 §4): hop-by-hop, routing, destination
     * options, fragment, AH (RFC 4302), and those in the common format
     * (mobility, HIP, shim6, experimental: RFC 6564); ESP and unknown
     * headers end the walk.  However many there are, they are walked as
     * far as the payload length goes: each takes at least 8 bytes, so a
     * packet has at most 8192 of them and the walk is linear in its size. */
    for (;;) {
        uint8_t next, len8;
        switch (nh) {
        case 6:
            return decode_tcp(c, remaining, out);
        case 17:
            return decode_udp(c, remaining, out);
        case 0: case 43: case 51: case 60: case 135: case 139: case 140: case 253: case 254: {
            mx_cur h = *c;
            if (!mx_cur_u8(&h, &next) || !mx_cur_u8(&h, &len8))
                return MX_DEC_TRUNCATED;
            /* AH counts 4-byte units less two, the others 8-byte units less one */
            uint32_t el = nh == 51 ? ((uint32_t)len8 + 2) * 4 : ((uint32_t)len8 + 1) * 8;
            if (el > remaining) return MX_DEC_MALFORMED;
            if (!mx_cur_skip(c, el)) return MX_DEC_TRUNCATED;
            remaining -= el;
            nh = next;
            break;
        }
        case 44: {
            uint8_t rsv;
            uint16_t offm;
            if (!mx_cur_u8(c, &next) || !mx_cur_u8(c, &rsv) || !mx_cur_u16(c, &offm))
                return MX_DEC_TRUNCATED;
            if ((offm & 0xFFF8) != 0 || (offm & 1) != 0) return MX_DEC_FRAGMENT;
            if (!mx_cur_skip(c, 4)) return MX_DEC_TRUNCATED;
            if (remaining < 8) return MX_DEC_MALFORMED;
            remaining -= 8;
            nh = next;
            break;
        }
        default:
            return MX_DEC_NOT_TCP;
        }
    }
}

static enum mx_decode_rc decode_l3(mx_cur *c, uint16_t etype, mx_pkt *out)
{
    if (etype == ETH_IPV4) return decode_ipv4(c, out);
    if (etype == ETH_IPV6) return decode_ipv6(c, out);
    return MX_DEC_NOT_IP;
}

/* Raw IP: the version nibble says which. */
static enum mx_decode_rc decode_raw(mx_cur *c, mx_pkt *out)
{
    if (!mx_cur_has(c, 1)) return MX_DEC_TRUNCATED;
    uint8_t v = c->p[0] >> 4;
    if (v == 4) return decode_ipv4(c, out);
    if (v == 6) return decode_ipv6(c, out);
    return MX_DEC_NOT_IP;
}

static enum mx_decode_rc decode_link(int lt, const uint8_t *data, uint32_t caplen, mx_pkt *out);

enum mx_decode_rc mx_decode(int lt, const uint8_t *data, uint32_t caplen,
                            uint32_t wirelen, mx_pkt *out)
{
    enum mx_decode_rc rc = decode_link(lt, data, caplen, out);
    /* Headers that run past the captured bytes: cut by the snap length if
     * the packet was longer on the wire, else the packet itself is short. */
    if (rc == MX_DEC_TRUNCATED && caplen >= wirelen) rc = MX_DEC_MALFORMED;
    return rc;
}

static enum mx_decode_rc decode_link(int lt, const uint8_t *data, uint32_t caplen, mx_pkt *out)
{
    mx_cur c = mx_cur_make(data, caplen);
    uint16_t etype = 0;
    memset(out, 0, sizeof *out);

    switch (lt) {
    case MX_LINK_ETHERNET:
        if (!mx_cur_skip(&c, 12) || !mx_cur_u16(&c, &etype)) return MX_DEC_TRUNCATED;
        if (!peel_vlans(&c, &etype, out)) return MX_DEC_TRUNCATED;
        return decode_l3(&c, etype, out);
    case MX_LINK_SLL:
        /* packet type(2) arphrd(2) addr len(2) addr(8) protocol(2) */
        if (!mx_cur_skip(&c, 14) || !mx_cur_u16(&c, &etype)) return MX_DEC_TRUNCATED;
        if (!peel_vlans(&c, &etype, out)) return MX_DEC_TRUNCATED;
        return decode_l3(&c, etype, out);
    case MX_LINK_SLL2:
        /* protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1) alen(1) addr(8) */
        if (!mx_cur_u16(&c, &etype) || !mx_cur_skip(&c, 18)) return MX_DEC_TRUNCATED;
        if (!peel_vlans(&c, &etype, out)) return MX_DEC_TRUNCATED;
        return decode_l3(&c, etype, out);
    case MX_LINK_NULL:
    case MX_LINK_LOOP: {
        /* 4-byte address family: host order for NULL, network order for
         * LOOP.  Families differ by OS (AF_INET6 is 10, 24, 28 or 30), so
         * look at the IP version nibble instead of the value. */
        if (!mx_cur_skip(&c, 4)) return MX_DEC_TRUNCATED;
        return decode_raw(&c, out);
    }
    case MX_LINK_RAW: case MX_LINK_RAW_DLT: case MX_LINK_RAW_DLT14:
        return decode_raw(&c, out);
    case MX_LINK_IPV4:
        return decode_ipv4(&c, out);
    case MX_LINK_IPV6:
        return decode_ipv6(&c, out);
    default:
        return MX_DEC_BAD_LINK;
    }
}

void mx_addr_str(const mx_addr *a, char *buf, size_t cap)
{
    if (!a->v6 && cap >= 16) {
        /* dotted quad, as inet_ntop writes it, without its sprintf */
        char *o = buf;
        for (int i = 0; i < 4; i++) {
            unsigned v = a->b[i];
            if (v >= 100) { *o++ = (char)('0' + v / 100); v %= 100; *o++ = (char)('0' + v / 10); v %= 10; }
            else if (v >= 10) { *o++ = (char)('0' + v / 10); v %= 10; }
            *o++ = (char)('0' + v);
            *o++ = i < 3 ? '.' : 0;
        }
        return;
    }
    if (!inet_ntop(a->v6 ? AF_INET6 : AF_INET, a->b, buf, (socklen_t)cap))
        snprintf(buf, cap, "?");
}
