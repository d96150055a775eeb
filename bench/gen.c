/* gen.c - build a large benchmark capture by replaying mail sessions.
 *
 * usage: gen [-n SESSIONS] [-c CONCURRENCY] [-o OUT] [-p PORTS] [-G MAXGAP_MS]
 *            [-t START_EPOCH] [-s SEED] [-q] template.pcap...
 *
 * Every template (classic pcap, Ethernet link type, microsecond or
 * nanosecond timestamps, either byte order) is split into TCP connections on
 * the mail ports (25, 587, 465 unless -p says otherwise).  Each connection is
 * a "conversation"; the output holds SESSIONS replays of them, taken round
 * robin, so the mix follows the templates connection by connection.
 *
 * Per replayed session:
 *   - the client gets its own address (IPv4 10.A.B.C, with A in 1..199, or
 *     IPv6 fd00::a:HI:LO) and a client port in 49152-65535 derived from the
 *     session number; the server is always 10.200.0.1 (IPv6: fd00::c8:1) on
 *     the template's server port;
 *   - both directions' sequence numbers are shifted by a per-session amount
 *     (acknowledgement numbers and SACK blocks follow);
 *   - the IPv4 header checksum is recomputed; the TCP checksum is recomputed
 *     over the whole segment when the frame was captured in full, and
 *     adjusted incrementally (RFC 1624) when it was cut by the snap length;
 *   - timestamps keep the template's spacing, except that a gap longer than
 *     MAXGAP_MS (default 1000) inside one conversation is shortened to it.
 *
 * CONCURRENCY sessions (default 64) are open at once: each "slot" plays one
 * session, and when it ends the slot starts the next one shortly after.
 * Packets of all slots are merged in time order, so the output's timestamps
 * never go backwards.  Frames that are not TCP on a mail port (ARP, DNS, ...)
 * and IP fragments are left out.  The output is a classic microsecond pcap,
 * Ethernet, in host byte order.
 *
 * Exit status: 0 ok, 1 usage, 2 I/O error, 3 no conversation found.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ETH_LEN 14
#define LINKTYPE_ETHERNET 1
#define OUT_SNAPLEN 262144u
#define MAX_FRAME (1u << 20)

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void die(const char *msg)
{
    fprintf(stderr, "gen: %s\n", msg);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) die("out of memory");
    return q;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);  p[3] = (uint8_t)v;
}
static uint32_t swap32(uint32_t v)
{
    return v >> 24 | (v >> 8 & 0xff00u) | (v << 8 & 0xff0000u) | v << 24;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* One's-complement sum of big-endian 16-bit words, not folded. */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
    while (n >= 2) { sum += (uint32_t)(p[0] << 8 | p[1]); p += 2; n -= 2; }
    if (n) sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* ------------------------------------------------------------------ */
/* templates                                                            */

typedef struct {
    uint64_t off_us;     /* time since the conversation's first frame   */
    uint32_t caplen, len;
    uint8_t *data;       /* frame bytes as captured                     */
    uint16_t l3;         /* offset of the IP header                     */
    uint16_t l4;         /* offset of the TCP header                    */
    uint8_t from_client;
    uint8_t v6;
    uint8_t full;        /* whole segment captured                      */
} tpkt;

typedef struct {
    uint8_t v6;
    uint8_t cli[16], srv[16];  /* addresses in the template              */
    uint16_t cport, sport;
    int saw_end;               /* FIN or RST seen                        */
    uint64_t first_us, last_abs_us;
    tpkt *pk;
    size_t npk, cap;
    uint64_t dur_us;
    uint64_t bytes;
    const char *file;
} conv;

static conv *convs;
static size_t nconvs, capconvs;

static uint16_t mail_ports[48] = { 25, 587, 465 };
static int nmail_ports = 3;

static int is_mail_port(uint16_t p)
{
    for (int i = 0; i < nmail_ports; i++)
        if (mail_ports[i] == p) return 1;
    return 0;
}

/* Finds an open conversation for this frame, or NULL; *dir is 1 when the
 * frame goes client -> server. */
static conv *find_conv(const char *file, int v6, const uint8_t *src, const uint8_t *dst,
                       uint16_t sp, uint16_t dp, int *dir)
{
    size_t alen = v6 ? 16 : 4;
    /* Search backwards: the live conversations are the recent ones. */
    for (size_t i = nconvs; i-- > 0;) {
        conv *c = &convs[i];
        if (c->file != file) break;
        if (c->v6 != v6) continue;
        if (c->cport == sp && c->sport == dp && !memcmp(c->cli, src, alen) && !memcmp(c->srv, dst, alen)) {
            *dir = 1; return c;
        }
        if (c->cport == dp && c->sport == sp && !memcmp(c->cli, dst, alen) && !memcmp(c->srv, src, alen)) {
            *dir = 0; return c;
        }
    }
    return NULL;
}

typedef struct {
    const char *path;
    int big, nsec;
    uint32_t linktype;
} pcap_in;

static unsigned long skipped_frag, skipped_other, skipped_short;

/* Parses one frame; adds it to a conversation when it is TCP on a mail port. */
static void take_frame(const char *file, uint64_t ts_us, const uint8_t *buf, uint32_t caplen, uint32_t len)
{
    size_t off = 12;
    if (caplen < ETH_LEN) { skipped_short++; return; }
    uint16_t et = rd16(buf + off);
    off += 2;
    while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off + 4 <= caplen) {
        et = rd16(buf + off + 2);
        off += 4;
    }
    size_t l3 = off, l4;
    int v6;
    const uint8_t *src, *dst;
    if (et == 0x0800) {
        if (caplen < l3 + 20 || (buf[l3] >> 4) != 4) { skipped_short++; return; }
        size_t ihl = (size_t)(buf[l3] & 15) * 4;
        if (ihl < 20 || caplen < l3 + ihl) { skipped_short++; return; }
        if (buf[l3 + 9] != 6) { skipped_other++; return; }
        if (rd16(buf + l3 + 6) & 0x3fff) { skipped_frag++; return; }  /* MF or offset */
        src = buf + l3 + 12; dst = buf + l3 + 16;
        l4 = l3 + ihl;
        v6 = 0;
    } else if (et == 0x86dd) {
        if (caplen < l3 + 40 || (buf[l3] >> 4) != 6) { skipped_short++; return; }
        if (buf[l3 + 6] != 6) { skipped_other++; return; }  /* extension headers: not replayed */
        src = buf + l3 + 8; dst = buf + l3 + 24;
        l4 = l3 + 40;
        v6 = 1;
    } else {
        skipped_other++;
        return;
    }
    if (caplen < l4 + 20) { skipped_short++; return; }
    const uint8_t *th = buf + l4;
    uint16_t sp = rd16(th), dp = rd16(th + 2);
    uint8_t flags = th[13];
    if (!is_mail_port(sp) && !is_mail_port(dp)) { skipped_other++; return; }

    int dir;
    conv *c = find_conv(file, v6, src, dst, sp, dp, &dir);
    /* A new SYN on a finished 4-tuple starts a new conversation. */
    if (c && c->saw_end && (flags & 0x12) == 0x02 && dir == 1) c = NULL;
    if (!c) {
        if (nconvs == capconvs) {
            capconvs = capconvs ? capconvs * 2 : 16;
            convs = xrealloc(convs, capconvs * sizeof *convs);
        }
        c = &convs[nconvs++];
        memset(c, 0, sizeof *c);
        c->file = file;
        c->v6 = (uint8_t)v6;
        size_t alen = v6 ? 16 : 4;
        /* The server is the side on the mail port; for a SYN, its target. */
        int client_is_src;
        if ((flags & 0x12) == 0x02) client_is_src = 1;
        else if ((flags & 0x12) == 0x12) client_is_src = 0;
        else if (is_mail_port(dp)) client_is_src = 1;
        else client_is_src = 0;
        if (client_is_src) {
            memcpy(c->cli, src, alen); memcpy(c->srv, dst, alen); c->cport = sp; c->sport = dp;
        } else {
            memcpy(c->cli, dst, alen); memcpy(c->srv, src, alen); c->cport = dp; c->sport = sp;
        }
        dir = client_is_src;
        c->first_us = c->last_abs_us = ts_us;
    }
    if (flags & 0x05) c->saw_end = 1;

    if (c->npk == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->pk = xrealloc(c->pk, c->cap * sizeof *c->pk);
    }
    tpkt *p = &c->pk[c->npk++];
    /* Keep spacing; never go backwards inside a conversation. */
    uint64_t prev_off = c->npk > 1 ? c->pk[c->npk - 2].off_us : 0;
    uint64_t gap = ts_us > c->last_abs_us ? ts_us - c->last_abs_us : 0;
    c->last_abs_us = ts_us > c->last_abs_us ? ts_us : c->last_abs_us;
    p->off_us = c->npk > 1 ? prev_off + gap : 0;
    p->caplen = caplen;
    p->len = len;
    p->data = xrealloc(NULL, caplen);
    memcpy(p->data, buf, caplen);
    p->l3 = (uint16_t)l3;
    p->l4 = (uint16_t)l4;
    p->from_client = (uint8_t)dir;
    p->v6 = (uint8_t)v6;
    if (v6) p->full = caplen >= l3 + 40 + (size_t)rd16(buf + l3 + 4);
    else p->full = caplen >= l3 + (size_t)rd16(buf + l3 + 2);
    c->bytes += caplen;
}

/* Reads one template. Returns the number of conversations it added. */
static size_t load_template(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t before = nconvs;
    if (!f) { fprintf(stderr, "gen: %s: %s (skipped)\n", path, strerror(errno)); return 0; }
    uint8_t gh[24];
    if (fread(gh, 1, 24, f) != 24) {
        fprintf(stderr, "gen: %s: too short for a pcap file (skipped)\n", path);
        fclose(f); return 0;
    }
    uint32_t magic;
    memcpy(&magic, gh, 4);
    int swap, nsec;
    if (magic == 0xa1b2c3d4u) { swap = 0; nsec = 0; }
    else if (magic == 0xa1b23c4du) { swap = 0; nsec = 1; }
    else if (magic == 0xd4c3b2a1u) { swap = 1; nsec = 0; }
    else if (magic == 0x4d3cb2a1u) { swap = 1; nsec = 1; }
    else {
        fprintf(stderr, "gen: %s: not a classic pcap file (skipped)\n", path);
        fclose(f); return 0;
    }
    uint32_t lt;
    memcpy(&lt, gh + 20, 4);
    if (swap) lt = swap32(lt);
    lt &= 0x0fffffffu;   /* upper bits may carry FCS information */
    if (lt != LINKTYPE_ETHERNET) {
        fprintf(stderr, "gen: %s: link type %u is not Ethernet (skipped)\n", path, lt);
        fclose(f); return 0;
    }
    uint8_t *buf = xrealloc(NULL, MAX_FRAME);
    uint8_t rh[16];
    unsigned long frames = 0;
    while (fread(rh, 1, 16, f) == 16) {
        uint32_t v[4];
        memcpy(v, rh, 16);
        if (swap) for (int i = 0; i < 4; i++) v[i] = swap32(v[i]);
        if (v[2] > MAX_FRAME) {
            fprintf(stderr, "gen: %s: record %lu claims %u bytes; rest of file ignored\n", path, frames + 1, v[2]);
            break;
        }
        if (fread(buf, 1, v[2], f) != v[2]) {
            fprintf(stderr, "gen: %s: last record cut short; ignored\n", path);
            break;
        }
        frames++;
        uint64_t ts = (uint64_t)v[0] * 1000000u + (nsec ? v[1] / 1000u : v[1]);
        take_frame(path, ts, buf, v[2], v[3] < v[2] ? v[2] : v[3]);
    }
    free(buf);
    fclose(f);
    return nconvs - before;
}

/* ------------------------------------------------------------------ */
/* rewriting                                                            */

static const uint8_t SRV4[4] = { 10, 200, 0, 1 };
static const uint8_t SRV6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc8, 0, 1 };

static void client_addr(uint64_t s, int v6, uint8_t *out)
{
    if (v6) {
        memset(out, 0, 16);
        out[0] = 0xfd;
        out[11] = 0x0a;
        out[12] = (uint8_t)(s >> 24); out[13] = (uint8_t)(s >> 16);
        out[14] = (uint8_t)(s >> 8);  out[15] = (uint8_t)s;
        return;
    }
    /* 254 hosts per /24 (no .0 or .255), 256 /24s per /16, /16s 10.1 .. 10.199 */
    out[0] = 10;
    out[1] = (uint8_t)(1 + s / (254u * 256u));
    out[2] = (uint8_t)(s / 254u % 256u);
    out[3] = (uint8_t)(1 + s % 254u);
}

/* A port in the dynamic range 49152-65535, so no dissector takes the client
 * side for a well-known service. */
static uint16_t client_port(uint64_t s)
{
    return (uint16_t)(49152u + (s * 40503u + 7) % 16384u);
}

typedef struct {
    uint8_t cli[16];
    uint16_t cport;
    uint32_t dseq_c, dseq_s;   /* added to client / server sequence numbers */
} sess_map;

/* Adds delta to each SACK edge in the TCP options of th (hlen bytes, of
 * which avail were captured). */
static void shift_sack(uint8_t *th, size_t hlen, size_t avail, uint32_t delta)
{
    size_t i = 20, end = hlen < avail ? hlen : avail;
    while (i < end) {
        uint8_t kind = th[i];
        if (kind == 0) break;
        if (kind == 1) { i++; continue; }
        if (i + 1 >= end) break;
        uint8_t olen = th[i + 1];
        if (olen < 2 || i + olen > end) break;
        if (kind == 5)
            for (size_t j = i + 2; j + 4 <= (size_t)i + olen; j += 4)
                wr32(th + j, rd32(th + j) + delta);
        i += olen;
    }
}

/* Sum of the addresses and the captured part of the TCP header, the
 * checksum field left out: the words the rewrite may change. */
static uint64_t header_sum(const uint8_t *src, const uint8_t *dst, size_t alen,
                           const uint8_t *th, size_t hlen)
{
    uint64_t sum = csum_add(0, src, alen);
    sum = csum_add(sum, dst, alen);
    sum = csum_add(sum, th, 16);
    if (hlen > 18) sum = csum_add(sum, th + 18, hlen - 18);
    return sum;
}

/* Rewrites frame p (already copied into out) for the given session. */
static void rewrite(uint8_t *out, const tpkt *p, const sess_map *m)
{
    uint8_t *ip = out + p->l3, *th = out + p->l4;
    size_t alen = p->v6 ? 16 : 4;
    uint8_t *src = p->v6 ? ip + 8 : ip + 12, *dst = p->v6 ? ip + 24 : ip + 16;
    const uint8_t *srv = p->v6 ? SRV6 : SRV4;
    size_t thlen = (size_t)(th[12] >> 4) * 4;
    size_t avail = p->caplen - p->l4;
    size_t hlen = thlen < avail ? thlen : avail;
    if (hlen < 20) hlen = 20;   /* take_frame made sure 20 bytes are there */

    uint64_t old_sum = p->full ? 0 : header_sum(src, dst, alen, th, hlen);

    if (p->from_client) {
        memcpy(src, m->cli, alen); memcpy(dst, srv, alen); wr16(th, m->cport);
        wr32(th + 4, rd32(th + 4) + m->dseq_c);
        if (th[13] & 0x10) wr32(th + 8, rd32(th + 8) + m->dseq_s);
    } else {
        memcpy(src, srv, alen); memcpy(dst, m->cli, alen); wr16(th + 2, m->cport);
        wr32(th + 4, rd32(th + 4) + m->dseq_s);
        if (th[13] & 0x10) wr32(th + 8, rd32(th + 8) + m->dseq_c);
    }
    if (thlen > 20) shift_sack(th, thlen, avail, p->from_client ? m->dseq_s : m->dseq_c);

    if (!p->v6) {
        size_t ihl = (size_t)(ip[0] & 15) * 4;
        ip[10] = ip[11] = 0;
        wr16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, ihl)));
    }

    if (p->full) {
        size_t seglen = p->v6 ? rd16(ip + 4) : rd16(ip + 2) - (size_t)(ip[0] & 15) * 4;
        uint64_t sum = csum_add(0, src, alen);
        sum = csum_add(sum, dst, alen);
        sum += 6 + seglen;
        th[16] = th[17] = 0;
        sum = csum_add(sum, th, seglen);
        wr16(th + 16, (uint16_t)~csum_fold(sum));
    } else {
        /* RFC 1624: HC' = ~(~HC + ~m + m') */
        uint64_t new_sum = header_sum(src, dst, alen, th, hlen);
        uint64_t sum = (uint16_t)~rd16(th + 16);
        sum += (uint16_t)~csum_fold(old_sum);
        sum += csum_fold(new_sum);
        wr16(th + 16, (uint16_t)~csum_fold(sum));
    }
}

/* ------------------------------------------------------------------ */
/* scheduling                                                           */

typedef struct {
    uint64_t start_us;      /* absolute time of the session's first frame */
    size_t conv, idx;       /* conversation and next frame                */
    uint64_t session;
    sess_map map;
} slot;

static slot *slots;
static uint32_t *heap;
static size_t heapn;

static uint64_t slot_key(uint32_t s)
{
    const slot *sl = &slots[s];
    return sl->start_us + convs[sl->conv].pk[sl->idx].off_us;
}

static int heap_less(uint32_t a, uint32_t b)
{
    uint64_t ka = slot_key(a), kb = slot_key(b);
    return ka < kb || (ka == kb && a < b);
}

static void sift_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heapn && heap_less(heap[l], heap[m])) m = l;
        if (r < heapn && heap_less(heap[r], heap[m])) m = r;
        if (m == i) return;
        uint32_t t = heap[i]; heap[i] = heap[m]; heap[m] = t;
        i = m;
    }
}

static uint64_t seed;

static void start_session(slot *sl, uint64_t session, uint64_t start_us)
{
    sl->session = session;
    sl->conv = (size_t)(session % nconvs);
    sl->idx = 0;
    sl->start_us = start_us;
    client_addr(session, convs[sl->conv].v6, sl->map.cli);
    sl->map.cport = client_port(session);
    uint64_t h = mix64(seed ^ (session * 0x100000001b3ull));
    sl->map.dseq_c = (uint32_t)h;
    sl->map.dseq_s = (uint32_t)(h >> 32);
}

static void usage(void)
{
    fputs("usage: gen [-n SESSIONS] [-c CONCURRENCY] [-o OUT] [-p PORT,...] [-G MAXGAP_MS]\n"
          "           [-t START_EPOCH] [-s SEED] [-q] template.pcap...\n", stderr);
    exit(1);
}

static unsigned long long num_arg(const char *opt, const char *s, unsigned long long min, unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max) {
        fprintf(stderr, "gen: %s: bad value '%s'\n", opt, s);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv)
{
    uint64_t nsess = 100000, conc = 64, maxgap_ms = 1000, start_epoch = 1700000000;
    const char *outpath = NULL;
    int quiet = 0, ports_given = 0;
    int opt;
    seed = 1;
    while ((opt = getopt(argc, argv, "n:c:o:p:G:t:s:qh")) != -1) {
        switch (opt) {
        case 'n': nsess = num_arg("-n", optarg, 1, 254ull * 256 * 199); break;
        case 'c': conc = num_arg("-c", optarg, 1, 1000000); break;
        case 'o': outpath = optarg; break;
        case 'G': maxgap_ms = num_arg("-G", optarg, 0, 86400000); break;
        case 't': start_epoch = num_arg("-t", optarg, 0, 4000000000ull); break;
        case 's': seed = num_arg("-s", optarg, 0, UINT64_MAX); break;
        case 'q': quiet = 1; break;
        case 'p': {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            if (!ports_given) { nmail_ports = 0; ports_given = 1; }
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (nmail_ports >= 48) { fprintf(stderr, "gen: too many ports\n"); exit(1); }
                mail_ports[nmail_ports++] = (uint16_t)num_arg("-p", t, 1, 65535);
            }
            break;
        }
        default: usage();
        }
    }
    if (optind >= argc) usage();
    if (!outpath) { fprintf(stderr, "gen: -o OUT is required\n"); exit(1); }

    int used_files = 0;
    for (int i = optind; i < argc; i++) {
        size_t n = load_template(argv[i]);
        if (n) used_files++;
        if (!quiet) fprintf(stderr, "gen: %s: %zu conversation(s)\n", argv[i], n);
    }
    /* Drop conversations that have no frames worth replaying, cap gaps. */
    size_t k = 0;
    uint64_t dur_sum = 0, bytes_sum = 0, pk_sum = 0;
    for (size_t i = 0; i < nconvs; i++) {
        conv *c = &convs[i];
        if (c->npk == 0) continue;
        /* Offsets with every gap capped at maxgap_ms. */
        uint64_t prev_orig = 0, acc = 0;
        for (size_t j = 0; j < c->npk; j++) {
            uint64_t orig = c->pk[j].off_us;
            uint64_t gap = j ? orig - prev_orig : 0;
            if (gap > maxgap_ms * 1000u) gap = maxgap_ms * 1000u;
            acc += gap;
            prev_orig = orig;
            c->pk[j].off_us = acc;
        }
        c->dur_us = acc;
        dur_sum += acc;
        bytes_sum += c->bytes;
        pk_sum += c->npk;
        convs[k++] = *c;
    }
    nconvs = k;
    if (nconvs == 0) {
        fprintf(stderr, "gen: no TCP connection on a mail port in the templates\n");
        return 3;
    }
    if (!quiet) {
        fprintf(stderr, "gen: %zu conversation(s) from %d file(s); mean %.1f frames, %.0f bytes, %.3f s each\n",
                nconvs, used_files, (double)pk_sum / (double)nconvs, (double)bytes_sum / (double)nconvs,
                (double)dur_sum / (double)nconvs / 1e6);
        if (skipped_other || skipped_frag || skipped_short)
            fprintf(stderr, "gen: frames left out: %lu not TCP on a mail port, %lu IP fragments, %lu too short\n",
                    skipped_other, skipped_frag, skipped_short);
    }

    FILE *out = strcmp(outpath, "-") == 0 ? stdout : fopen(outpath, "wb");
    if (!out) { fprintf(stderr, "gen: %s: %s\n", outpath, strerror(errno)); return 2; }
    static char obuf[1 << 22];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);
    {
        uint32_t gh[6];
        gh[0] = 0xa1b2c3d4u;
        uint16_t ver[2] = { 2, 4 };   /* fields in host byte order */
        memcpy(&gh[1], ver, 4);
        gh[2] = 0; gh[3] = 0; gh[4] = OUT_SNAPLEN; gh[5] = LINKTYPE_ETHERNET;
        if (fwrite(gh, 1, 24, out) != 24) die("write failed");
    }

    if (conc > nsess) conc = nsess;
    slots = xrealloc(NULL, conc * sizeof *slots);
    heap = xrealloc(NULL, conc * sizeof *heap);
    uint64_t base = start_epoch * 1000000ull;
    uint64_t mean_dur = dur_sum / nconvs;
    uint64_t stagger = mean_dur / conc;
    if (stagger == 0) stagger = 1;
    const uint64_t inter_gap = 1000;   /* µs between sessions in one slot */
    uint64_t next_session = 0;
    for (uint64_t s = 0; s < conc; s++) {
        start_session(&slots[s], next_session++, base + s * stagger);
        heap[heapn++] = (uint32_t)s;
    }
    for (size_t i = heapn / 2; i-- > 0;) sift_down(i);

    uint8_t *frame = xrealloc(NULL, MAX_FRAME);
    uint64_t npk = 0, nbytes = 0, last_ts = 0;
    while (heapn) {
        uint32_t s = heap[0];
        slot *sl = &slots[s];
        const conv *c = &convs[sl->conv];
        const tpkt *p = &c->pk[sl->idx];
        uint64_t ts = sl->start_us + p->off_us;
        if (ts < last_ts) die("internal error: time went backwards");
        last_ts = ts;
        memcpy(frame, p->data, p->caplen);
        rewrite(frame, p, &sl->map);
        uint32_t rh[4] = { (uint32_t)(ts / 1000000u), (uint32_t)(ts % 1000000u), p->caplen, p->len };
        if (fwrite(rh, 1, 16, out) != 16 || fwrite(frame, 1, p->caplen, out) != p->caplen)
            die("write failed");
        npk++;
        nbytes += 16 + p->caplen;
        if (++sl->idx < c->npk) {
            sift_down(0);
            continue;
        }
        if (next_session < nsess) {
            start_session(sl, next_session++, ts + inter_gap);
            sift_down(0);
        } else {
            heap[0] = heap[--heapn];
            if (heapn) sift_down(0);
        }
    }
    if (fflush(out) != 0 || (out != stdout && fclose(out) != 0)) die("write failed");
    if (!quiet)
        fprintf(stderr, "gen: wrote %s: %llu sessions, %llu packets, %llu bytes, %.1f s of traffic, %llu at once\n",
                outpath, (unsigned long long)nsess, (unsigned long long)npk,
                (unsigned long long)(nbytes + 24), (double)(last_ts - base) / 1e6,
                (unsigned long long)conc);
    free(frame);
    return 0;
}
