/* Unit tests: the pcapng block reader (sections in both byte orders,
 * interfaces with their own link type and time resolution, the packet block
 * kinds, skipped blocks, and every kind of damage). */
#define _GNU_SOURCE
#include "check.h"
#include "mx/capture.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- a pcapng file built in memory ------------------------------------- */

typedef struct nb {
    uint8_t b[8192];
    size_t n, start;
    int big;                 /* byte order of the section being written */
} nb;

static void p8(nb *f, uint8_t v) { f->b[f->n++] = v; }
static void p16(nb *f, uint16_t v)
{
    if (f->big) { p8(f, (uint8_t)(v >> 8)); p8(f, (uint8_t)v); }
    else { p8(f, (uint8_t)v); p8(f, (uint8_t)(v >> 8)); }
}
static void p32(nb *f, uint32_t v)
{
    if (f->big) { p16(f, (uint16_t)(v >> 16)); p16(f, (uint16_t)v); }
    else { p16(f, (uint16_t)v); p16(f, (uint16_t)(v >> 16)); }
}
static void set32(nb *f, size_t at, uint32_t v)
{
    size_t n = f->n;
    f->n = at;
    p32(f, v);
    f->n = n;
}
static void bytes(nb *f, const void *p, size_t n)
{
    memcpy(f->b + f->n, p, n);
    f->n += n;
    while (f->n % 4) p8(f, 0);
}
static void begin(nb *f, uint32_t type)
{
    f->start = f->n;
    p32(f, type);
    p32(f, 0);                       /* length, set by end() */
}
static void end(nb *f)
{
    uint32_t len = (uint32_t)(f->n - f->start + 4);
    set32(f, f->start + 4, len);
    p32(f, len);
}
static void shb(nb *f, int big)
{
    f->big = big;
    begin(f, 0x0A0D0D0A);
    p32(f, 0x1A2B3C4D);
    p16(f, 1); p16(f, 0);
    p32(f, 0xFFFFFFFF); p32(f, 0xFFFFFFFF);   /* section length unknown */
    end(f);
}
/* tsresol < 0: no option; tsoffset 0: no option */
static void idb(nb *f, uint16_t lt, uint32_t snaplen, int tsresol, int64_t tsoffset)
{
    begin(f, 1);
    p16(f, lt); p16(f, 0);
    p32(f, snaplen);
    p16(f, 2); p16(f, 3); bytes(f, "eth", 3);             /* if_name: skipped */
    if (tsresol >= 0) { p16(f, 9); p16(f, 1); p8(f, (uint8_t)tsresol); p8(f, 0); p8(f, 0); p8(f, 0); }
    if (tsoffset) {
        p16(f, 14); p16(f, 8);
        uint64_t v = (uint64_t)tsoffset;
        if (f->big) { p32(f, (uint32_t)(v >> 32)); p32(f, (uint32_t)v); }
        else { p32(f, (uint32_t)v); p32(f, (uint32_t)(v >> 32)); }
    }
    p16(f, 0); p16(f, 0);                                   /* opt_endofopt */
    end(f);
}
static void epb(nb *f, uint32_t ifc, uint64_t ts, const char *data, uint32_t caplen, uint32_t len)
{
    begin(f, 6);
    p32(f, ifc);
    p32(f, (uint32_t)(ts >> 32)); p32(f, (uint32_t)ts);
    p32(f, caplen); p32(f, len);
    bytes(f, data, caplen);
    end(f);
}

/* ---- reading it back ---------------------------------------------------- */

typedef struct rd {
    FILE *fp;
    mx_pcapng *r;
} rd;

static rd open_nb(nb *f, size_t npre)
{
    rd x;
    x.fp = fmemopen(f->b + npre, f->n - npre, "rb");
    x.r = mx_pcapng_new(x.fp, f->b, npre);
    return x;
}
static void close_rd(rd *x)
{
    mx_pcapng_free(x->r);
    fclose(x->fp);
}

#define PKT(x, k, lt_, us_, cap_, len_, if_, data_) do { \
    int rc_ = mx_pcapng_next((x)->r, &(k)); \
    CHECK(rc_ == MX_NG_PACKET, "want a packet, got %d (%s)", rc_, mx_pcapng_error((x)->r)); \
    if (rc_ == MX_NG_PACKET) { \
        CHECK((k).linktype == (lt_), "linktype %d, want %d", (k).linktype, (lt_)); \
        CHECK((k).us == (uint64_t)(us_), "us %llu, want %llu", (unsigned long long)(k).us, (unsigned long long)(us_)); \
        CHECK((k).caplen == (cap_) && (k).len == (len_), "caplen %u len %u", (k).caplen, (k).len); \
        CHECK((k).iface == (if_), "iface %u, want %u", (k).iface, (unsigned)(if_)); \
        CHECK(memcmp((k).data, (data_), (cap_)) == 0, "packet bytes differ"); \
    } \
} while (0)

static int fails(nb *f, int want, const char *why)
{
    rd x = open_nb(f, 4);
    mx_pcapng_pkt k;
    int rc;
    while ((rc = mx_pcapng_next(x.r, &k)) == MX_NG_PACKET) {}
    int ok = rc == want && strstr(mx_pcapng_error(x.r), why) != NULL;
    if (!ok) fprintf(stderr, "  got %d '%s', want %d '%s'\n", rc, mx_pcapng_error(x.r), want, why);
    close_rd(&x);
    return ok;
}

static void test_sections(void)
{
    static nb f;
    memset(&f, 0, sizeof f);
    shb(&f, 0);
    idb(&f, 1, 0, -1, 0);                                   /* Ethernet, µs */
    epb(&f, 0, 1700000000123456ull, "abcde", 5, 60);
    begin(&f, 0x00000BAD); p32(&f, 42); end(&f);            /* unknown: skipped */
    begin(&f, 5); p32(&f, 0); p32(&f, 0); p32(&f, 0); end(&f);  /* statistics: skipped */
    idb(&f, 101, 0, 9, 10);                                 /* raw IP, ns, +10 s: declared after a packet */
    epb(&f, 1, 1500000000ull, "\x45\x00", 2, 2);            /* 1.5 s + 10 s */
    /* simple packet block: interface 0, the previous packet's time */
    begin(&f, 3); p32(&f, 3); bytes(&f, "xyz", 3); end(&f);
    /* obsolete packet block: 16-bit interface and drop count */
    begin(&f, 2); p16(&f, 0); p16(&f, 7); p32(&f, 0); p32(&f, 1000000); p32(&f, 2); p32(&f, 2);
    bytes(&f, "op", 2); end(&f);
    /* a big-endian section: interfaces start over, numbered on in the file */
    shb(&f, 1);
    idb(&f, 113, 96, 0x80 | 20, 0);                         /* SLL, 2^-20 s units */
    epb(&f, 0, 3ull << 20, "BE", 2, 1500);
    idb(&f, 1, 0, 3, -5);                                   /* ms, -5 s */
    epb(&f, 1, 7000, "ms", 2, 2);                           /* 7 s - 5 s */

    for (size_t npre = 0; npre <= 8; npre += 4) {
        rd x = open_nb(&f, npre);
        mx_pcapng_pkt k;
        PKT(&x, k, 1, 1700000000123456ull, 5, 60, 0, "abcde");
        PKT(&x, k, 101, 11500000, 2, 2, 1, "\x45\x00");
        PKT(&x, k, 1, 11500000, 3, 3, 0, "xyz");
        PKT(&x, k, 1, 1000000, 2, 2, 0, "op");
        PKT(&x, k, 113, 3000000, 2, 1500, 2, "BE");
        CHECK(k.snaplen == 96, "snaplen %u", k.snaplen);
        PKT(&x, k, 1, 2000000, 2, 2, 3, "ms");
        CHECK(mx_pcapng_next(x.r, &k) == MX_NG_END, "end of file");
        CHECK(mx_pcapng_next(x.r, &k) == MX_NG_END, "end of file, again");
        CHECK(mx_pcapng_offset(x.r) == f.n, "offset %llu of %zu", (unsigned long long)mx_pcapng_offset(x.r), f.n);
        close_rd(&x);
    }
}

static void test_times(void)
{
    static nb f;
    memset(&f, 0, sizeof f);
    shb(&f, 0);
    idb(&f, 1, 0, 0x80 | 10, 0);            /* 1/1024 s */
    epb(&f, 0, 1024 * 5 + 512, "a", 1, 1);  /* 5.5 s */
    idb(&f, 1, 0, 0, 0);                    /* whole seconds */
    epb(&f, 1, 42, "b", 1, 1);
    idb(&f, 1, 0, 19, 0);                   /* 10^-19 s */
    epb(&f, 2, 10000000000000000000ull, "c", 1, 1);   /* 1 s */
    idb(&f, 1, 0, 100, 0);                  /* 10^-100: nothing is a µs */
    epb(&f, 3, UINT64_MAX, "d", 1, 1);
    idb(&f, 1, 0, 6, -100);                 /* before the epoch: held at 0 */
    epb(&f, 4, 5, "e", 1, 1);
    idb(&f, 1, 0, 0, 0);                    /* far future: saturates */
    epb(&f, 5, UINT64_MAX, "f", 1, 1);
    rd x = open_nb(&f, 4);
    mx_pcapng_pkt k;
    PKT(&x, k, 1, 5500000, 1, 1, 0, "a");
    PKT(&x, k, 1, 42000000, 1, 1, 1, "b");
    PKT(&x, k, 1, 1000000, 1, 1, 2, "c");
    PKT(&x, k, 1, 0, 1, 1, 3, "d");
    PKT(&x, k, 1, 0, 1, 1, 4, "e");
    CHECK(mx_pcapng_next(x.r, &k) == MX_NG_PACKET && k.us == (uint64_t)INT64_MAX, "saturated: %llu",
          (unsigned long long)k.us);
    close_rd(&x);
}

/* Each kind of damage, after one good packet. */
static void good_start(nb *f)
{
    memset(f, 0, sizeof *f);
    shb(f, 0);
    idb(f, 1, 0, -1, 0);
    epb(f, 0, 1, "ok", 2, 2);
}

static void test_damage(void)
{
    static nb f;

    good_start(&f);
    epb(&f, 0, 2, "abcdefgh", 8, 8);
    f.n -= 6;                                            /* file cut inside a block */
    CHECK(fails(&f, MX_NG_DAMAGED, "truncated block"), "cut inside a block");

    good_start(&f);
    p32(&f, 6);                                          /* cut inside a block header */
    CHECK(fails(&f, MX_NG_DAMAGED, "truncated block header"), "cut inside a header");

    good_start(&f);
    epb(&f, 0, 2, "abcd", 4, 4);
    set32(&f, f.n - 4, 99);                              /* trailing length differs */
    CHECK(fails(&f, MX_NG_DAMAGED, "differ"), "lengths differ");

    good_start(&f);
    begin(&f, 6); p32(&f, 0); p32(&f, 0); p32(&f, 0); p32(&f, 400); p32(&f, 400); bytes(&f, "abcd", 4); end(&f);
    CHECK(fails(&f, MX_NG_DAMAGED, "longer than its block"), "caplen beyond the block");

    good_start(&f);
    epb(&f, 5, 2, "abcd", 4, 4);
    CHECK(fails(&f, MX_NG_DAMAGED, "interface 5"), "undeclared interface");

    good_start(&f);
    begin(&f, 6); p32(&f, 0); end(&f);                   /* EPB body of 4 bytes */
    CHECK(fails(&f, MX_NG_DAMAGED, "too short"), "short packet block");

    good_start(&f);
    p32(&f, 6); p32(&f, 30); p32(&f, 0); p32(&f, 0);     /* length not a multiple of 4 */
    CHECK(fails(&f, MX_NG_DAMAGED, "impossible length"), "odd length");

    good_start(&f);
    p32(&f, 6); p32(&f, 8);                              /* shorter than a block can be */
    CHECK(fails(&f, MX_NG_DAMAGED, "impossible length"), "length 8");

    good_start(&f);
    p32(&f, 6); p32(&f, 0xFFFFFFF0u); p32(&f, 0);        /* 4 GiB: refused, not allocated */
    CHECK(fails(&f, MX_NG_DAMAGED, "16 MiB"), "huge block");

    good_start(&f);
    shb(&f, 1);                                          /* new section: no interface yet */
    f.big = 1;
    epb(&f, 0, 2, "abcd", 4, 4);
    CHECK(fails(&f, MX_NG_DAMAGED, "interface 0"), "interfaces of an earlier section");

    good_start(&f);
    begin(&f, 0x0A0D0D0A); p32(&f, 0x11223344); end(&f); /* later SHB, bad magic */
    CHECK(fails(&f, MX_NG_DAMAGED, "byte-order magic"), "bad byte-order magic");

    memset(&f, 0, sizeof f);
    shb(&f, 0);
    f.n = 10;                                            /* file ends inside the SHB */
    CHECK(fails(&f, MX_NG_NOT_PCAPNG, "ends inside its header"), "short SHB");

    memset(&f, 0, sizeof f);
    shb(&f, 0);
    f.b[12] = 2;                                         /* major version 2 */
    CHECK(fails(&f, MX_NG_NOT_PCAPNG, "version 2"), "version 2");

    memset(&f, 0, sizeof f);
    shb(&f, 0);
    f.b[8] = 0x99;                                       /* not a byte-order magic */
    CHECK(fails(&f, MX_NG_NOT_PCAPNG, "not a pcap or pcapng"), "first SHB bad magic");

    /* an IDB whose option list runs past its block keeps its defaults */
    memset(&f, 0, sizeof f);
    shb(&f, 0);
    begin(&f, 1); p16(&f, 1); p16(&f, 0); p32(&f, 0); p16(&f, 9); p16(&f, 200); end(&f);
    epb(&f, 0, 77, "z", 1, 1);
    rd x = open_nb(&f, 4);
    mx_pcapng_pkt k;
    PKT(&x, k, 1, 77, 1, 1, 0, "z");
    CHECK(mx_pcapng_next(x.r, &k) == MX_NG_END, "end after the packet");
    close_rd(&x);
}

int main(void)
{
    test_sections();
    test_times();
    test_damage();
    return CHECK_DONE();
}
