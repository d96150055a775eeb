/* fuzz_decode.c - mx_decode() on one packet.
 *
 * Input: [link selector u8] [wire-length extra u8] [packet bytes...].
 * The selector picks one of the supported link types (or, for the last slot,
 * an unsupported one); the packet is copied into an exact-size buffer.
 * Checks: the payload and L3 slices lie inside the captured bytes, caplen <=
 * paylen, flags fit in six bits, MX_DEC_TRUNCATED only when the wire length
 * exceeds the captured bytes, the link-type verdict agrees with
 * mx_link_supported(), and mx_addr_str() writes a terminated string.  UDP
 * from port 53 goes on to mx_dns_response() (the engine's DNS table), whose
 * entries must be terminated printable ASCII and found again by address.
 */
#include "fuzz_common.h"
#include "mx/decode.h"
#include "mx/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int links[] = {
    MX_LINK_NULL, MX_LINK_ETHERNET, MX_LINK_RAW_DLT, MX_LINK_RAW_DLT14, MX_LINK_RAW,
    MX_LINK_LOOP, MX_LINK_SLL, MX_LINK_IPV4, MX_LINK_IPV6, MX_LINK_SLL2,
    147 /* LINKTYPE_USER0: not supported */,
};

static void check_addr(const mx_addr *a)
{
    /* An exact 46-byte buffer (INET6_ADDRSTRLEN), as decode.h asks. */
    char *buf = malloc(46);
    if (!buf) abort();
    mx_addr_str(a, buf, 46);
    if (!memchr(buf, 0, 46)) FZ_FAIL("mx_addr_str: no terminating NUL");
    free(buf);
    /* A buffer too small for the text must still come back terminated. */
    char small[4];
    mx_addr_str(a, small, sizeof small);
    if (!memchr(small, 0, sizeof small)) FZ_FAIL("mx_addr_str: small buffer not terminated");
}

/* A DNS answer (UDP from port 53), as the engine reads it: each recorded
 * name is terminated printable ASCII and can be found by its address. */
static void check_dns(const uint8_t *p, uint32_t n)
{
    uint8_t *msg = fz_dup(p, n);          /* exact size, for over-reads */
    /* One table for every run (it is 300 KB); emptied by its counters, as
     * entries are written whole before they are counted. */
    static mx_dns table;
    mx_dns *d = &table;
    d->next = d->used = 0;
    int added = mx_dns_response(d, msg ? msg : (const uint8_t *)"", n, 1, 0);
    if (added < 0 || (uint32_t)added != d->used) FZ_FAIL("dns: %d added, %u slots used", added, d->used);
    for (uint32_t i = 0; i < d->used; i++) {
        const mx_dns_entry *e = &d->slot[i];
        const char *z = memchr(e->name, 0, sizeof e->name);
        if (!z) FZ_FAIL("dns: name not terminated");
        for (const char *c = e->name; c < z; c++)
            if (*c <= 0x20 || *c >= 0x7F) FZ_FAIL("dns: byte 0x%02x in a name", (unsigned char)*c);
        const mx_dns_entry *f = mx_dns_lookup(d, &e->addr);
        if (!f || f->addr.v6 != e->addr.v6 || memcmp(f->addr.b, e->addr.b, 16) != 0)
            FZ_FAIL("dns: recorded address not found");
    }
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int lt = links[data[0] % (sizeof links / sizeof links[0])];
    uint32_t extra = data[1];
    size_t n = size - 2;
    uint8_t *pkt = fz_dup(data + 2, n);
    mx_pkt k;
    enum mx_decode_rc rc = mx_decode(lt, pkt, (uint32_t)n, (uint32_t)n + extra, &k);

    if ((rc == MX_DEC_BAD_LINK) != !mx_link_supported(lt))
        FZ_FAIL("link type %d: verdict %d disagrees with mx_link_supported", lt, rc);
    /* "cut by the snap length" only for a packet longer on the wire */
    if (rc == MX_DEC_TRUNCATED && extra == 0) FZ_FAIL("truncated, but nothing was cut");
    if (rc == MX_DEC_OK) {
        const uint8_t *end = pkt + n;
        if (k.caplen > k.paylen) FZ_FAIL("caplen %u > paylen %u", k.caplen, k.paylen);
        if (k.caplen && (!pkt || k.payload < pkt || k.payload > end ||
                         (size_t)(end - k.payload) < k.caplen))
            FZ_FAIL("payload slice outside the packet");
        if (k.l3len && (!pkt || k.l3 < pkt || k.l3 > end || (size_t)(end - k.l3) < k.l3len))
            FZ_FAIL("l3 slice outside the packet");
        if (k.flags & 0xC0) FZ_FAIL("flags 0x%02x beyond six bits", k.flags);
        if (k.src.v6 != k.dst.v6) FZ_FAIL("address families differ");
        /* Touch every byte of the slices so ASan sees any stray read. */
        volatile uint32_t sum = 0;
        for (uint32_t i = 0; i < k.caplen; i++) sum += k.payload[i];
        for (uint32_t i = 0; i < k.l3len; i++) sum += k.l3[i];
        (void)sum;
        check_addr(&k.src);
        check_addr(&k.dst);
    } else if (rc == MX_DEC_UDP) {
        const uint8_t *end = pkt + n;
        if (k.caplen > k.paylen) FZ_FAIL("udp: caplen %u > paylen %u", k.caplen, k.paylen);
        if (k.caplen && (!pkt || k.payload < pkt || k.payload > end ||
                         (size_t)(end - k.payload) < k.caplen))
            FZ_FAIL("udp: payload slice outside the packet");
        check_addr(&k.src);
        check_addr(&k.dst);
        if (k.sport == 53) check_dns(k.payload, k.caplen);
    } else if (rc != MX_DEC_NOT_IP && rc != MX_DEC_BAD_LINK && rc != MX_DEC_TRUNCATED) {
        /* Once the IP header was read the addresses may be filled in. */
        check_addr(&k.src);
        check_addr(&k.dst);
    }
    free(pkt);
    return 0;
}
