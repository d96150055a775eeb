/* capture.c - capture files: libpcap for pcap, a block reader for pcapng
 * (see capture.h for why). */
#define _GNU_SOURCE             /* fopencookie */
#include "mx/capture.h"

#include <errno.h>
#include <poll.h>
#include <sys/mman.h>
#include <pcap/pcap.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* ======================================================================
 * pcapng block reader
 * ====================================================================== */

#define NG_SHB 0x0A0D0D0Au
#define NG_IDB 0x00000001u
#define NG_OPB 0x00000002u     /* obsolete Packet Block */
#define NG_SPB 0x00000003u
#define NG_EPB 0x00000006u
#define NG_BOM 0x1A2B3C4Du     /* byte-order magic */

typedef struct ng_iface {
    int linktype;
    uint32_t snaplen;
    uint8_t res;               /* if_tsresol exponent                     */
    uint8_t res2;              /* 1: negative power of 2, 0: of 10        */
    int64_t tsoffset;          /* if_tsoffset, seconds                    */
} ng_iface;

struct mx_pcapng {
    FILE *f;
    uint8_t pre[8];
    size_t npre, ppos;
    uint64_t off;
    int big;                   /* this section is big-endian              */
    int have_shb;
    ng_iface *ifs;             /* the current section's interfaces        */
    uint32_t nifs, capifs;
    uint32_t if_base;          /* file-wide number of the section's first */
    uint32_t if_total;
    uint8_t *buf;
    size_t cap;
    uint64_t last_us;
    char err[160];
};

mx_pcapng *mx_pcapng_new(FILE *f, const uint8_t *pre, size_t npre)
{
    mx_pcapng *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->f = f;
    if (npre > sizeof r->pre) npre = sizeof r->pre;
    if (npre) memcpy(r->pre, pre, npre);
    r->npre = npre;
    return r;
}

void mx_pcapng_free(mx_pcapng *r)
{
    if (!r) return;
    free(r->ifs);
    free(r->buf);
    free(r);
}

const char *mx_pcapng_error(const mx_pcapng *r) { return r->err; }
uint64_t mx_pcapng_offset(const mx_pcapng *r) { return r->off; }

static size_t ng_read(mx_pcapng *r, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n && r->ppos < r->npre) p[got++] = r->pre[r->ppos++];
    if (got < n) got += fread(p + got, 1, n - got, r->f);
    r->off += got;
    return got;
}

static uint16_t ng16(const mx_pcapng *r, const uint8_t *p)
{
    return r->big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t ng32(const mx_pcapng *r, const uint8_t *p)
{
    return r->big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                  : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t ng64(const mx_pcapng *r, const uint8_t *p)
{
    uint64_t a = ng32(r, p), b = ng32(r, p + 4);
    return r->big ? a << 32 | b : b << 32 | a;
}

/* Keeps the reason for a message and gives rc. */
#define ng_fail(r, rc, ...) (snprintf((r)->err, sizeof (r)->err, __VA_ARGS__), (rc))

/* Reads the rest of a block whose 8-byte header (and, for a section header,
 * the byte-order magic: have bytes in all) was read; checks the trailing
 * length.  On success r->buf holds the body after those bytes. */
static int ng_body(mx_pcapng *r, uint32_t len, size_t have, int rc_short)
{
    if (len % 4 || len < have + 4)
        return ng_fail(r, MX_NG_DAMAGED, "block with an impossible length (%llu bytes)", (unsigned long long)len);
    if (len > MX_PCAPNG_MAX_BLOCK)
        return ng_fail(r, MX_NG_DAMAGED, "block of %llu bytes, more than the 16 MiB accepted", (unsigned long long)len);
    size_t want = len - have;
    if (want > r->cap) {
        uint8_t *nb = realloc(r->buf, want);
        if (!nb) return ng_fail(r, MX_NG_DAMAGED, "out of memory for a block of %llu bytes", (unsigned long long)len);
        r->buf = nb;
        r->cap = want;
    }
    if (ng_read(r, r->buf, want) != want)
        return ng_fail(r, rc_short, "truncated block (%llu bytes declared)", (unsigned long long)len);
    if (ng32(r, r->buf + want - 4) != len)
        return ng_fail(r, MX_NG_DAMAGED, "block lengths at its start and end differ (%llu)", (unsigned long long)len);
    return MX_NG_PACKET;
}

static int ng_shb(mx_pcapng *r, const uint8_t *hdr)
{
    uint8_t bom[4];
    int first = !r->have_shb;
    int rc_short = first ? MX_NG_NOT_PCAPNG : MX_NG_DAMAGED;
    if (ng_read(r, bom, 4) != 4)
        return ng_fail(r, rc_short, first ? "file ends inside its header" : "truncated section header");
    if (bom[0] == 0x1A && bom[1] == 0x2B && bom[2] == 0x3C && bom[3] == 0x4D) r->big = 1;
    else if (bom[0] == 0x4D && bom[1] == 0x3C && bom[2] == 0x2B && bom[3] == 0x1A) r->big = 0;
    else return ng_fail(r, rc_short, first ? "not a pcap or pcapng capture" : "section header with a bad byte-order magic");
    uint32_t len = ng32(r, hdr + 4);
    if (len < 28) return ng_fail(r, rc_short, "section header with an impossible length (%llu bytes)", (unsigned long long)len);
    int rc = ng_body(r, len, 12, rc_short);
    if (rc != MX_NG_PACKET) {
        if (first && rc_short == MX_NG_NOT_PCAPNG && strstr(r->err, "truncated"))
            snprintf(r->err, sizeof r->err, "file ends inside its header");
        return rc;
    }
    uint16_t major = ng16(r, r->buf);
    if (major != 1) return ng_fail(r, first ? MX_NG_NOT_PCAPNG : MX_NG_DAMAGED, "pcapng version %u is not known", (unsigned)major);
    r->have_shb = 1;
    r->nifs = 0;              /* a section's interfaces are its own */
    r->if_base = r->if_total;
    return 0;
}

static int ng_idb(mx_pcapng *r, const uint8_t *b, size_t blen)
{
    if (blen < 8) return ng_fail(r, MX_NG_DAMAGED, "interface block too short (%llu bytes)", (unsigned long long)blen);
    if (r->nifs == r->capifs) {
        uint32_t n = r->capifs ? r->capifs * 2 : 4;
        if (n > 65536) return ng_fail(r, MX_NG_DAMAGED, "more than 65536 interfaces in a section");
        ng_iface *ni = realloc(r->ifs, n * sizeof *ni);
        if (!ni) return ng_fail(r, MX_NG_DAMAGED, "out of memory");
        r->ifs = ni;
        r->capifs = n;
    }
    ng_iface *i = &r->ifs[r->nifs];
    memset(i, 0, sizeof *i);
    i->linktype = ng16(r, b);
    i->snaplen = ng32(r, b + 4);
    i->res = 6;
    /* options: code(2) length(2) value, padded to 4; a malformed list ends
     * the walk (the defaults stay) */
    for (size_t o = 8; o + 4 <= blen;) {
        uint16_t code = ng16(r, b + o), olen = ng16(r, b + o + 2);
        o += 4;
        if (code == 0 || olen > blen - o) break;
        if (code == 9 && olen >= 1) {            /* if_tsresol */
            i->res2 = (b[o] & 0x80) != 0;
            i->res = b[o] & 0x7F;
        } else if (code == 14 && olen >= 8) {    /* if_tsoffset */
            i->tsoffset = (int64_t)ng64(r, b + o);
        }
        o += ((size_t)olen + 3) & ~(size_t)3;
    }
    r->nifs++;
    r->if_total++;
    return 0;
}

/* A timestamp in the interface's units to µs since the epoch (saturating). */
static uint64_t ng_us(const ng_iface *i, uint64_t ts)
{
    unsigned __int128 v = ts;
    if (i->res2) {
        v = (v * 1000000u) >> i->res;
    } else if (i->res <= 6) {
        for (int k = i->res; k < 6; k++) v *= 10;
    } else {
        unsigned __int128 d = 1;
        for (int k = 6; k < i->res && v; k++) {
            if (d > ((unsigned __int128)-1) / 10) { v = 0; break; }
            d *= 10;
        }
        v /= d;
    }
    __int128 s = (__int128)(v > (unsigned __int128)INT64_MAX ? (unsigned __int128)INT64_MAX : v);
    s += (__int128)i->tsoffset * 1000000;
    if (s < 0) return 0;
    return s > (__int128)UINT64_MAX ? UINT64_MAX : (uint64_t)s;
}

static int ng_iface_get(mx_pcapng *r, uint32_t id, const ng_iface **out)
{
    if (id >= r->nifs)
        return ng_fail(r, MX_NG_DAMAGED, "packet for interface %llu, which its section does not describe", (unsigned long long)id);
    *out = &r->ifs[id];
    return 0;
}

static int ng_packet(mx_pcapng *r, const ng_iface *i, uint32_t id, uint64_t us,
                     const uint8_t *data, uint32_t caplen, uint32_t len, mx_pcapng_pkt *out)
{
    out->us = us;
    out->data = data;
    out->caplen = caplen;
    out->len = len;
    out->linktype = i->linktype;
    out->iface = r->if_base + id;
    out->snaplen = i->snaplen;
    r->last_us = us;
    return MX_NG_PACKET;
}

int mx_pcapng_next(mx_pcapng *r, mx_pcapng_pkt *out)
{
    for (;;) {
        uint8_t hdr[8];
        size_t got = ng_read(r, hdr, 8);
        if (got == 0 && r->have_shb) return MX_NG_END;
        if (got < 8) {
            if (!r->have_shb) return ng_fail(r, MX_NG_NOT_PCAPNG, "file ends inside its header");
            return ng_fail(r, MX_NG_DAMAGED, "truncated block header");
        }
        uint32_t type = ng32(r, hdr);        /* NG_SHB reads the same either way */
        if (type == NG_SHB) {
            int rc = ng_shb(r, hdr);
            if (rc) return rc;
            continue;
        }
        if (!r->have_shb) return ng_fail(r, MX_NG_NOT_PCAPNG, "not a pcap or pcapng capture");
        uint32_t len = ng32(r, hdr + 4);
        int rc = ng_body(r, len, 8, MX_NG_DAMAGED);
        if (rc != MX_NG_PACKET) return rc;
        const uint8_t *b = r->buf;
        size_t blen = len - 12;
        const ng_iface *i;
        switch (type) {
        case NG_IDB:
            if ((rc = ng_idb(r, b, blen))) return rc;
            break;
        case NG_EPB:
        case NG_OPB: {   /* the obsolete block has a 16-bit interface id and 16 bits of drops */
            if (blen < 20) return ng_fail(r, MX_NG_DAMAGED, "packet block too short (%llu bytes)", (unsigned long long)blen);
            uint32_t id = type == NG_EPB ? ng32(r, b) : ng16(r, b);
            if ((rc = ng_iface_get(r, id, &i))) return rc;
            uint64_t ts = (uint64_t)ng32(r, b + 4) << 32 | ng32(r, b + 8);
            uint32_t caplen = ng32(r, b + 12), olen = ng32(r, b + 16);
            if (caplen > blen - 20)
                return ng_fail(r, MX_NG_DAMAGED, "packet of %llu bytes longer than its block", (unsigned long long)caplen);
            return ng_packet(r, i, id, ng_us(i, ts), b + 20, caplen, olen, out);
        }
        case NG_SPB: {
            /* interface 0, no timestamp: it gets the previous packet's time */
            if (blen < 4) return ng_fail(r, MX_NG_DAMAGED, "packet block too short (%llu bytes)", (unsigned long long)blen);
            if ((rc = ng_iface_get(r, 0, &i))) return rc;
            uint32_t olen = ng32(r, b);
            uint32_t caplen = olen < blen - 4 ? olen : (uint32_t)(blen - 4);
            if (i->snaplen && caplen > i->snaplen) caplen = i->snaplen;
            return ng_packet(r, i, 0, r->last_us, b + 4, caplen, olen, out);
        }
        default:
            break;                  /* statistics, name resolution, secrets ... */
        }
    }
}

/* ======================================================================
 * the files of one run
 * ====================================================================== */

static int worse(int a, int b)
{
    /* UNREADABLE (2) stops a file from being read at all; DAMAGED (3) means
     * part of it was read.  Report the higher number. */
    return a > b ? a : b;
}

/* Progress on stderr for big files: share of the file read so far. */
#define PROGRESS_MIN_BYTES (64ll << 20)

/* Standard input after its first bytes were read to tell the format: a
 * stream that gives those bytes back first, for libpcap. */
typedef struct prefixed {
    int fd;
    uint8_t pre[8];
    size_t n, pos;
    volatile sig_atomic_t *stop;
    const mx_capture_ctl *ctl;
    FILE *orig;                 /* a named pipe's own stream, closed with it */
} prefixed;

/* Reads of a pipe wait in poll, so that SIGINT/SIGTERM end a run whose
 * input has gone quiet: after a stop the stream ends. */
static ssize_t prefixed_read(void *c, char *buf, size_t size)
{
    prefixed *p = c;
    size_t got = 0;
    while (got < size && p->pos < p->n) buf[got++] = (char)p->pre[p->pos++];
    if (got) return (ssize_t)got;
    for (int idle = 0;; idle = 1) {
        if (p->stop && *p->stop) return 0;
        struct pollfd pf = { p->fd, POLLIN, 0 };
        int r = poll(&pf, 1, 0);
        if (r == 0 && !idle && p->ctl && p->ctl->idle) p->ctl->idle(p->ctl->ctx);  /* quiet: catch up */
        if (r == 0) r = poll(&pf, 1, 250);
        if (r < 0 && errno != EINTR) return -1;
        if (r <= 0) continue;
        ssize_t n = read(p->fd, buf, size);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        return n;
    }
}

static int prefixed_close(void *c)
{
    prefixed *p = c;
    if (p->orig) fclose(p->orig);
    free(c);
    return 0;
}

enum { IOBUF = 1 << 20, MAP_DROP = 16 << 20 };

typedef struct ifstate {
    uint8_t seen, usable, have_prog;
    struct bpf_program prog;
} ifstate;

typedef struct source {
    volatile sig_atomic_t *stop;
    const char *path, *name;
    const char *filter;
    FILE *f;                    /* pcapng: the file                     */
    mx_pcapng *ng;
    ifstate *ifs;
    uint32_t nifs;
    pcap_t *p;                  /* pcap: libpcap's handle                */
    int lt;
    struct bpf_program prog;
    int have_prog;
    long long size;
    int show_progress;
    int slow;                   /* a pipe: packets come when they come      */
    char *iobuf;                /* the file's stdio buffer                  */
    /* a pcap file read in place (see map_pcap): libpcap told the format */
    const uint8_t *map;
    size_t map_len, moff;
    size_t pf;                  /* the mapping is prefetched up to here     */
    size_t dropped;             /* bytes of the mapping given back so far   */
    struct { uint64_t frame; size_t off; } ck[64];   /* to give back once done */
    unsigned ck_head, ck_n;
    int swapped, nsec;
    uint32_t msnap;
    const mx_capture_ctl *ctl;
    time_t last;
    uint64_t packets;           /* records read from this file          */
    uint64_t cut;               /* headers cut short by the snap length */
    uint32_t cut_kept;          /* the most bytes kept of such a packet */
    int rc;
    int open;                   /* records may be read                  */
    /* the packet read last */
    int pkt_lt;
    uint64_t us;
    const uint8_t *data;
    uint32_t caplen, len, iface, snaplen;
} source;

/* A pcap file (not a pipe) of the usual format is read in place: mapped,
 * its records walked here, the packets handed on where they lie (no read
 * into a buffer, no copy for the workers).  libpcap has read and checked
 * its header; the other variants (modified pcap, lengths swapped before
 * version 2.3) stay with libpcap. */
static void map_pcap(source *s, const uint8_t m[4])
{
    uint32_t magic;
    memcpy(&magic, m, 4);
    int swapped = magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u;
    int nsec = magic == 0xa1b23c4du || magic == 0x4d3cb2a1u;
    if (!swapped && !nsec && magic != 0xa1b2c3d4u) return;
    FILE *f = pcap_file(s->p);
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 24) return;
    if (pcap_major_version(s->p) != 2 || pcap_minor_version(s->p) < 3) return;
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    if (map == MAP_FAILED) return;
    madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    s->map = map;
    s->map_len = (size_t)st.st_size;
    s->moff = 24;
    s->swapped = swapped;
    s->nsec = nsec;
    int snap = pcap_snapshot(s->p);
    s->msnap = snap > 0 ? (uint32_t)snap : 262144u;
}

static int open_source(source *s)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    int is_stdin = strcmp(s->path, "-") == 0;
    s->name = is_stdin ? "(stdin)" : s->path;
    struct stat st;
    FILE *f = stdin;
    if (!is_stdin && (stat(s->path, &st) != 0 || !(f = fopen(s->path, "rb")))) {
        fprintf(stderr, "mxtrace: %s: cannot open: %s\n", s->name, strerror(errno));
        return s->rc = MX_CAP_UNREADABLE;
    }
    s->size = is_stdin ? 0 : (long long)st.st_size;
    struct stat fst;
    s->slow = fstat(fileno(f), &fst) != 0 || !S_ISREG(fst.st_mode);
    s->last = time(NULL);
    uint8_t m[4];
    size_t nm = 0;
    prefixed *pc = NULL;
    int piped = is_stdin || s->slow;
    if (piped) {
        /* standard input and named pipes are read without stdio, through
         * poll (see above) */
        static const cookie_io_functions_t io = { prefixed_read, NULL, NULL, prefixed_close };
        pc = calloc(1, sizeof *pc);
        if (pc) {
            pc->fd = fileno(f);
            pc->stop = s->stop;
            pc->ctl = s->ctl;
            pc->orig = is_stdin ? NULL : f;
        }
        while (pc && nm < 4) {
            ssize_t r = prefixed_read(pc, (char *)m + nm, 4 - nm);
            if (r <= 0) break;
            nm += (size_t)r;
        }
        int ng = nm == 4 && m[0] == 0x0A && m[1] == 0x0D && m[2] == 0x0D && m[3] == 0x0A;
        if (pc && !ng) { memcpy(pc->pre, m, nm); pc->n = nm; }   /* libpcap reads them again */
        FILE *cf = pc ? fopencookie(pc, "r", io) : NULL;
        if (!cf) {
            if (!is_stdin) fclose(f);
            free(pc);
            fprintf(stderr, "mxtrace: %s: cannot read: out of memory\n", s->name);
            return s->rc = MX_CAP_UNREADABLE;
        }
        f = cf;
    } else {
        /* reads of 1 MiB, not stdio's 4 KiB: a quarter of a million
         * fewer system calls per GB (glibc takes the size only with a
         * buffer given) */
        if ((s->iobuf = malloc(IOBUF))) setvbuf(f, s->iobuf, _IOFBF, IOBUF);
        nm = fread(m, 1, 4, f);
    }
    if (nm == 4 && m[0] == 0x0A && m[1] == 0x0D && m[2] == 0x0D && m[3] == 0x0A) {
        s->f = f;
        s->ng = mx_pcapng_new(f, m, 4);
        if (!s->ng) {
            fprintf(stderr, "mxtrace: %s: cannot read: out of memory\n", s->name);
            return s->rc = MX_CAP_UNREADABLE;
        }
        if (s->filter) {
            /* the filter is compiled for each interface's link type as it
             * comes; find a wrong one now, even in a file with no packets */
            pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
            struct bpf_program prog;
            if (dead && pcap_compile(dead, &prog, s->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
                fprintf(stderr, "mxtrace: %s: bad filter: %s\n", s->name, pcap_geterr(dead));
                pcap_close(dead);
                return s->rc = MX_CAP_UNREADABLE;
            }
            if (dead) { pcap_freecode(&prog); pcap_close(dead); }
        }
        s->open = 1;
        return MX_CAP_OK;
    }
    if (piped) {
        s->p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, err);
        if (!s->p) fclose(f);
    } else {
        rewind(f);
        s->p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, err);
        if (!s->p) fclose(f);
    }
    if (!s->p) {
        const char *why = err;
        if (strstr(err, "unknown file format") || strstr(err, "bad dump file format"))
            why = "not a pcap or pcapng capture";
        else if (strstr(err, "truncated dump file"))
            why = "file ends inside its header";
        fprintf(stderr, "mxtrace: %s: cannot read: %s\n", s->name, why);
        return s->rc = MX_CAP_UNREADABLE;
    }
    s->lt = pcap_datalink(s->p);
    if (!mx_link_supported(s->lt)) {
        const char *ln = pcap_datalink_val_to_name(s->lt);
        fprintf(stderr, "mxtrace: %s: unsupported link type %d (%s)\n", s->name, s->lt, ln ? ln : "unknown");
        return s->rc = MX_CAP_UNREADABLE;
    }
    /* The filter is applied packet by packet (not with pcap_setfilter) so
     * that frame numbers count every record, as Wireshark numbers them. */
    if (s->filter) {
        if (pcap_compile(s->p, &s->prog, s->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
            fprintf(stderr, "mxtrace: %s: bad filter: %s\n", s->name, pcap_geterr(s->p));
            return s->rc = MX_CAP_UNREADABLE;
        }
        s->have_prog = 1;
    }
    if (!piped) map_pcap(s, m);
    s->open = 1;
    return MX_CAP_OK;
}

static uint32_t rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

/* A mapped pcap record, checked as libpcap checks it (the same words). */
#define MAP_AHEAD 4096

static int read_mapped(source *s)
{
    size_t left = s->map_len - s->moff;
    const uint8_t *h = s->map + s->moff;
    if (left == 0) { s->open = 0; return 0; }
    char why[160];
    if (left < 16) {
        snprintf(why, sizeof why, "truncated dump file; tried to read 16 header bytes, only got %zu", left);
        goto damaged;
    }
    uint32_t sec = rd32(h, s->swapped), frac = rd32(h + 4, s->swapped);
    uint32_t caplen = rd32(h + 8, s->swapped), len = rd32(h + 12, s->swapped);
    if (caplen > 262144) {
        if (caplen > s->msnap) snprintf(why, sizeof why, "invalid packet capture length %u, bigger than snaplen of %u", caplen, s->msnap);
        else snprintf(why, sizeof why, "invalid packet capture length %u, bigger than maximum of %u", caplen, 262144u);
        goto damaged;
    }
    size_t rec = caplen;
    if (left - 16 < rec) {
        snprintf(why, sizeof why, "truncated dump file; tried to read %u captured bytes, only got %zu", caplen, left - 16);
        goto damaged;
    }
    s->moff += 16 + rec;
    /* The packets a few kilobytes ahead are asked into the cache now: the
     * payload is first read well after its header (by the stream's digest),
     * and a fetch from memory then stalls at each packet. */
    size_t want = s->moff + MAP_AHEAD < s->map_len ? s->moff + MAP_AHEAD : s->map_len;
    if (s->pf < s->moff) s->pf = s->moff & ~(size_t)63;
    for (; s->pf < want; s->pf += 64) __builtin_prefetch(s->map + s->pf);
    if (caplen > s->msnap) caplen = s->msnap;     /* libpcap keeps the snap length */
    s->packets++;
    s->pkt_lt = s->lt;
    s->us = (uint64_t)sec * 1000000u + (s->nsec ? frac / 1000u : frac);
    s->data = h + 16;
    s->caplen = caplen;
    s->len = len;
    s->iface = 0;
    s->snaplen = s->msnap;
    return 1;
damaged:
    s->open = 0;
    fprintf(stderr, "mxtrace: %s: damaged capture after packet %llu: %s\n", s->name, (unsigned long long)s->packets, why);
    s->rc = worse(s->rc, MX_CAP_DAMAGED);
    return 0;
}

/* Reads the next record into s: 1, or 0 at the end (or after a problem,
 * reported). */
static int read_next(source *s)
{
    if (!s->open) return 0;
    if (s->map) return read_mapped(s);
    if (s->p) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int r = pcap_next_ex(s->p, &h, &data);
        if (r == 1) {
            s->packets++;
            s->pkt_lt = s->lt;
            s->us = (uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec;
            s->data = data;
            s->caplen = h->caplen;
            s->len = h->len;
            s->iface = 0;
            s->snaplen = (uint32_t)pcap_snapshot(s->p);
            return 1;
        }
        s->open = 0;
        if (r == PCAP_ERROR_BREAK) return 0;        /* end of file */
        if (s->stop && *s->stop) return 0;          /* cut short by SIGINT/SIGTERM */
        fprintf(stderr, "mxtrace: %s: damaged capture after packet %llu: %s\n", s->name,
                (unsigned long long)s->packets, pcap_geterr(s->p));
        s->rc = worse(s->rc, MX_CAP_DAMAGED);
        return 0;
    }
    mx_pcapng_pkt k;
    int r = mx_pcapng_next(s->ng, &k);
    if (r == MX_NG_PACKET) {
        s->packets++;
        s->pkt_lt = k.linktype;
        s->us = k.us;
        s->data = k.data;
        s->caplen = k.caplen;
        s->len = k.len;
        s->iface = k.iface;
        s->snaplen = k.snaplen;
        return 1;
    }
    s->open = 0;
    if (r == MX_NG_END) return 0;
    if (s->stop && *s->stop) return 0;
    if (r == MX_NG_NOT_PCAPNG) {
        fprintf(stderr, "mxtrace: %s: cannot read: %s\n", s->name, mx_pcapng_error(s->ng));
        s->rc = worse(s->rc, MX_CAP_UNREADABLE);
    } else {
        fprintf(stderr, "mxtrace: %s: damaged capture after packet %llu: %s\n", s->name,
                (unsigned long long)s->packets, mx_pcapng_error(s->ng));
        s->rc = worse(s->rc, MX_CAP_DAMAGED);
    }
    return 0;
}

/* pcapng link types are LINKTYPE_* values; libpcap's compiler and names
 * take DLT_* values, which differ for raw IP only. */
static int dlt_of(int linktype)
{
    return linktype == MX_LINK_RAW ? DLT_RAW : linktype;
}

/* pcapng: the state of the interface of the packet read last, set up the
 * first time the interface is seen.  NULL when out of memory. */
static ifstate *iface_state(source *s)
{
    if (s->iface >= s->nifs) {
        uint32_t n = s->nifs ? s->nifs : 4;
        while (n <= s->iface) n *= 2;
        ifstate *ni = realloc(s->ifs, n * sizeof *ni);
        if (!ni) return NULL;
        memset(ni + s->nifs, 0, (n - s->nifs) * sizeof *ni);
        s->ifs = ni;
        s->nifs = n;
    }
    ifstate *is = &s->ifs[s->iface];
    if (is->seen) return is;
    is->seen = 1;
    const char *ln = pcap_datalink_val_to_name(dlt_of(s->pkt_lt));
    if (!mx_link_supported(s->pkt_lt)) {
        fprintf(stderr, "mxtrace: %s: interface %u: unsupported link type %d (%s): its packets are skipped\n",
                s->name, s->iface, s->pkt_lt, ln ? ln : "unknown");
        s->rc = worse(s->rc, MX_CAP_UNREADABLE);
        return is;
    }
    if (s->filter) {
        pcap_t *dead = pcap_open_dead(dlt_of(s->pkt_lt), s->snaplen ? (int)(s->snaplen & 0x7FFFFFFF) : 262144);
        if (!dead || pcap_compile(dead, &is->prog, s->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
            fprintf(stderr, "mxtrace: %s: interface %u: bad filter for link type %s: %s\n", s->name, s->iface,
                    ln ? ln : "unknown", dead ? pcap_geterr(dead) : "out of memory");
            if (dead) pcap_close(dead);
            s->rc = worse(s->rc, MX_CAP_UNREADABLE);
            return is;
        }
        pcap_close(dead);
        is->have_prog = 1;
    }
    is->usable = 1;
    return is;
}

static void progress(source *s, uint64_t frame)
{
    time_t now = time(NULL);
    if (now == s->last) return;
    s->last = now;
    FILE *f = s->p ? pcap_file(s->p) : NULL;
    long long pos = s->map ? (long long)s->moff : s->ng ? (long long)mx_pcapng_offset(s->ng) : f ? (long long)ftell(f) : -1;
    if (pos < 0) return;
    fprintf(stderr, "\rmxtrace: %s: %3lld%% (%llu packets)", s->name, pos * 100 / s->size,
            (unsigned long long)frame);
}

/* What was read of a mapped file is given back every MAP_DROP bytes, so
 * that the mapping does not count as the process's memory; with workers,
 * once they are done with those packets (checkpoints of frame and offset
 * wait until mx_engine_done_frame() passes them). */
static void map_drop_to(source *s, size_t upto)
{
    if (upto <= s->dropped) return;
    madvise((void *)(uintptr_t)(s->map + s->dropped), upto - s->dropped, MADV_DONTNEED);
    s->dropped = upto;
}

static void map_give_back(mx_engine *e, source *s, uint64_t frame)
{
    if (s->ck_n && !(frame & 255)) {
        uint64_t done = mx_engine_done_frame(e);
        while (s->ck_n && s->ck[s->ck_head].frame <= done) {
            map_drop_to(s, s->ck[s->ck_head].off);
            s->ck_head = (s->ck_head + 1) % 64;
            s->ck_n--;
        }
    }
    size_t last = s->ck_n ? s->ck[(s->ck_head + s->ck_n - 1) % 64].off : s->dropped;
    if (s->moff - last < MAP_DROP) return;
    if (s->ck_n == 64) {
        mx_engine_sync(e, 1);                       /* (workers far behind) */
        map_drop_to(s, last);
        s->ck_n = 0;
    }
    unsigned t = (s->ck_head + s->ck_n++) % 64;
    s->ck[t].frame = frame;
    s->ck[t].off = s->moff & ~(size_t)4095;
}

/* Hands the packet read last to the engine as frame number frame. */
static void dispatch(mx_engine *e, source *s, uint64_t frame)
{
    const struct bpf_program *prog = s->have_prog ? &s->prog : NULL;
    if (s->ng) {
        ifstate *is = iface_state(s);
        if (!is || !is->usable) return;
        prog = is->have_prog ? &is->prog : NULL;
    }
    if (prog) {
        struct pcap_pkthdr h;
        memset(&h, 0, sizeof h);
        h.caplen = s->caplen;
        h.len = s->len;
        if (!pcap_offline_filter(prog, &h, s->data)) return;
    }
    uint32_t len = s->len < s->caplen ? s->caplen : s->len;
    /* the engine counts the packets whose headers it could not decode
     * because the capture cut them short: reported per file at its end */
    const mx_engine_stats *st = mx_engine_stats_get(e);
    uint64_t cut = st->truncated;
    mx_input in = { s->pkt_lt, s->us, frame, s->data, s->caplen, len, s->len, s->snaplen, s->map != NULL };
    mx_engine_input(e, &in);
    if (st->truncated != cut) {
        s->cut++;
        if (s->caplen > s->cut_kept) s->cut_kept = s->caplen;
    }
    if (s->show_progress && (frame & 0xFFFF) == 0) progress(s, frame);
    if (s->map) map_give_back(e, s, frame);
}

static void close_source(mx_engine *e, source *s)
{
    /* the workers may still be reading a mapped file's packets */
    if (s->map) mx_engine_sync(e, 1);
    if (s->show_progress) fprintf(stderr, "\r%*s\r", 70, "");
    if (s->cut)
        fprintf(stderr, "mxtrace: %s: %llu packet%s cut by the capture's snap length inside the link, IP or "
                "TCP header (%u bytes kept at most): not decoded; capture with a larger snap length\n", s->name,
                (unsigned long long)s->cut, s->cut == 1 ? "" : "s", s->cut_kept);
    if (s->have_prog) pcap_freecode(&s->prog);
    for (uint32_t i = 0; i < s->nifs; i++)
        if (s->ifs[i].have_prog) pcap_freecode(&s->ifs[i].prog);
    free(s->ifs);
    s->ifs = NULL;
    s->nifs = 0;
    s->have_prog = 0;
    if (s->map) munmap((void *)(uintptr_t)s->map, s->map_len);
    s->map = NULL;
    if (s->p) pcap_close(s->p);
    s->p = NULL;
    mx_pcapng_free(s->ng);
    s->ng = NULL;
    if (s->f && s->f != stdin) fclose(s->f);
    s->f = NULL;
    free(s->iobuf);
    s->iobuf = NULL;
    s->open = 0;
}

/* Every so many packets the run looks up: a signal, an output that failed. */
#define BATCH 4096

/* 1 when the run must stop reading. */
static int must_stop(const mx_capture_ctl *ctl, uint64_t frame, int force)
{
    if (!ctl) return 0;
    if (ctl->stop && *ctl->stop) return 1;
    if ((force || frame % BATCH == 0) && ctl->batch && !ctl->batch(ctl->ctx)) return 1;
    return 0;
}

int mx_capture_run(mx_engine *e, const char *const *files, int nfiles,
                   const char *filter, int show_progress, int merge,
                   const mx_capture_ctl *ctl)
{
    int rc = MX_CAP_OK, stopped = 0;
    uint64_t frame = 0;
    source *S = calloc(nfiles > 0 ? (size_t)nfiles : 1, sizeof *S);
    if (!S) {
        fprintf(stderr, "mxtrace: out of memory\n");
        return MX_CAP_UNREADABLE;
    }
    for (int i = 0; i < nfiles; i++) {
        S[i].stop = ctl ? ctl->stop : NULL;
        S[i].ctl = ctl;
        S[i].path = files[i];
        S[i].filter = filter && *filter ? filter : NULL;
    }
    if (!merge) {
        /* one after the other, in the order given */
        for (int i = 0; i < nfiles && !stopped; i++) {
            source *s = &S[i];
            if (open_source(s) == MX_CAP_OK) {
                s->show_progress = show_progress && s->size >= PROGRESS_MIN_BYTES;
                while (read_next(s)) {
                    dispatch(e, s, ++frame);
                    /* from a pipe, what a packet ended is passed on at once */
                    if (must_stop(ctl, frame, s->slow)) { stopped = 1; break; }
                }
            }
            close_source(e, s);
            rc = worse(rc, s->rc);
        }
    } else {
        /* side by side: always the earliest packet next (the first file's
         * on a tie), numbered in that order, as mergecap writes them */
        int *have = calloc((size_t)nfiles + 1, sizeof *have);
        if (!have) { free(S); fprintf(stderr, "mxtrace: out of memory\n"); return MX_CAP_UNREADABLE; }
        for (int i = 0; i < nfiles; i++) {
            if (open_source(&S[i]) == MX_CAP_OK) {
                S[i].show_progress = show_progress && S[i].size >= PROGRESS_MIN_BYTES;
                have[i] = read_next(&S[i]);
            }
            if (!have[i]) close_source(e, &S[i]);
        }
        for (;;) {
            int b = -1;
            for (int i = 0; i < nfiles; i++)
                if (have[i] && (b < 0 || S[i].us < S[b].us)) b = i;
            if (b < 0) break;
            dispatch(e, &S[b], ++frame);
            int slow = S[b].slow;
            if (!(have[b] = read_next(&S[b]))) close_source(e, &S[b]);
            if (must_stop(ctl, frame, slow)) { stopped = 1; break; }
        }
        for (int i = 0; i < nfiles; i++) {
            if (have[i]) close_source(e, &S[i]);
            rc = worse(rc, S[i].rc);
        }
        free(have);
    }
    if (!stopped) must_stop(ctl, frame, 1);
    free(S);
    return rc;
}
