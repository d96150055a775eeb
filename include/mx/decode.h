/* decode.h - link, IP and TCP headers of one captured packet.
 *
 * Knows nothing of pcap: it takes the link type number, the captured bytes and
 * the packet's original length, and fills an mx_pkt whose payload is a slice
 * of the captured bytes.  Only TCP over IPv4/IPv6 is decoded; anything else
 * is reported through the return value so the caller can count it.
 */
#ifndef MX_DECODE_H
#define MX_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* Link types (LINKTYPE_* values as stored in pcap files, plus the DLT_*
 * numbers libpcap may hand back for the same encapsulations). */
enum {
    MX_LINK_NULL     = 0,
    MX_LINK_ETHERNET = 1,
    MX_LINK_RAW_DLT  = 12,   /* DLT_RAW on most platforms  */
    MX_LINK_RAW_DLT14 = 14,  /* DLT_RAW on OpenBSD         */
    MX_LINK_RAW      = 101,
    MX_LINK_LOOP     = 108,
    MX_LINK_SLL      = 113,
    MX_LINK_IPV4     = 228,
    MX_LINK_IPV6     = 229,
    MX_LINK_SLL2     = 276,
};

enum mx_decode_rc {
    MX_DEC_OK = 0,
    MX_DEC_NOT_IP,       /* ARP, LLDP, ...                          */
    MX_DEC_NOT_TCP,      /* UDP, ICMP, ...                          */
    MX_DEC_FRAGMENT,     /* IP fragment (not reassembled)           */
    MX_DEC_TRUNCATED,    /* headers cut by the snaplen (caplen < wirelen) */
    MX_DEC_MALFORMED,    /* header fields inconsistent, or a packet
                            shorter than its headers though not cut   */
    MX_DEC_BAD_LINK,     /* link type not supported                 */
    MX_DEC_UDP,          /* UDP: ports and payload filled in         */
};

#define MX_TCP_FIN 0x01
#define MX_TCP_SYN 0x02
#define MX_TCP_RST 0x04
#define MX_TCP_PSH 0x08
#define MX_TCP_ACK 0x10
#define MX_TCP_URG 0x20

typedef struct mx_addr {
    uint8_t b[16];   /* IPv4 in the first 4 bytes, rest zero */
    uint8_t v6;      /* 1 for IPv6                            */
} mx_addr;

typedef struct mx_pkt {
    mx_addr src, dst;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint16_t win;
    uint8_t flags;
    uint16_t vlan[2];      /* outer, inner VLAN ids; 0 = none */
    uint8_t nvlan;
    const uint8_t *payload; /* captured payload bytes          */
    uint32_t paylen;       /* payload length on the wire        */
    uint32_t caplen;       /* of which captured (<= paylen)     */
    const uint8_t *l3;     /* IP header, for the classifier    */
    uint32_t l3len;        /* captured bytes from l3 on        */
} mx_pkt;

/* 1 if the link type is one mx_decode() understands. */
int mx_link_supported(int linktype);

/* Decodes one packet.  wirelen is the original length (pcap's len). */
enum mx_decode_rc mx_decode(int linktype, const uint8_t *data, uint32_t caplen,
                            uint32_t wirelen, mx_pkt *out);

/* Formats an address ("192.0.2.1", "2001:db8::1") into buf (>= 46 bytes). */
void mx_addr_str(const mx_addr *a, char *buf, size_t cap);

#endif
