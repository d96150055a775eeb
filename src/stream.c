/* stream.c - per-direction TCP reassembly (see stream.h). */
#include "mx/stream.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

struct mx_seg {
    mx_seg *next;
    uint32_t seq;
    uint32_t len;      /* wire length                        */
    uint32_t caplen;   /* bytes held (<= len; rest was cut)  */
    uint8_t fin;
    uint8_t data[];
};

/* Serial-number arithmetic (RFC 1982) on 32-bit sequence numbers. */
static int32_t sdiff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

/* Segments further than this from the next expected byte are not part of
 * this connection's stream (a TCP window is at most 2^30 bytes, RFC 7323). */
#define MAX_DISTANCE (1 << 30)

void mx_stream_init(mx_stream *s) { memset(s, 0, sizeof *s); }

/* Takes n bytes of the budget for s; 0 when they do not fit. */
static int charge(mx_stream *s, const mx_stream_ctx *c, size_t n)
{
    mx_memcap *m = c->mc;
    if (!m) return 1;
    if (m->cap && m->used - m->docs + n > m->cap) { m->refused++; return 0; }
    m->used += n;
    if (m->used > m->peak) m->peak = m->used;
    s->mc = m;
    s->charged += (uint32_t)n;
    return 1;
}

static void release(mx_stream *s, size_t n)
{
    if (!s->mc) return;
    s->mc->used -= n;
    s->charged -= (uint32_t)n;
}

void mx_stream_free(mx_stream *s)
{
    if (s->mc) s->mc->used -= s->charged;
    mx_seg *g = s->ooo;
    while (g) { mx_seg *n = g->next; free(g); g = n; }
    free(s->tail);
    memset(s, 0, sizeof *s);
}

void mx_stream_start(mx_stream *s, uint32_t next_seq)
{
    s->next_seq = next_seq;
    s->have_seq = 1;
}

/* Hands bytes to the consumer, keeping the unconsumed tail. */
static void deliver(mx_stream *s, const mx_stream_ctx *c, const uint8_t *p, size_t n)
{
    const size_t cap = c->lim->max_hold;

    s->offset += n;
    s->bytes += n;
    if (s->tail_len == 0) {
        size_t used = c->ops->data(c->ctx, c->dir, p, n, 0);
        p += used; n -= used;
        while (n > cap) {                       /* too much to keep: force */
            used = c->ops->data(c->ctx, c->dir, p, n, 1);
            if (used == 0) used = n;            /* consumer broke its promise */
            p += used; n -= used;
            if (c->ops->limit) c->ops->limit(c->ctx, c->dir, MX_STREAM_LIMIT_HOLD, (uint32_t)cap);
        }
        if (n == 0) return;
        if (!s->tail && !charge(s, c, cap)) {
            /* no room in the budget to keep bytes: the consumer takes them now */
            if (c->ops->limit) c->ops->limit(c->ctx, c->dir, MX_STREAM_LIMIT_MEMCAP, 0);
            while (n > 0) {
                used = c->ops->data(c->ctx, c->dir, p, n, 1);
                if (used == 0) used = n;
                p += used; n -= used;
            }
            return;
        }
        if (!s->tail && !(s->tail = malloc(cap))) { release(s, cap); return; }
        memcpy(s->tail, p, n);
        s->tail_len = (uint32_t)n;
        return;
    }
    while (n > 0) {
        size_t room = cap - s->tail_len, take = n < room ? n : room;
        memcpy(s->tail + s->tail_len, p, take);
        s->tail_len += (uint32_t)take;
        p += take; n -= take;
        int force = s->tail_len == cap;
        size_t used = c->ops->data(c->ctx, c->dir, s->tail, s->tail_len, force);
        if (force && used == 0) used = s->tail_len;
        if (force && c->ops->limit)
            c->ops->limit(c->ctx, c->dir, MX_STREAM_LIMIT_HOLD, (uint32_t)cap);
        memmove(s->tail, s->tail + used, s->tail_len - used);
        s->tail_len -= (uint32_t)used;
    }
}

void mx_stream_kick(mx_stream *s, const mx_stream_ctx *c)
{
    if (s->tail_len == 0) return;
    size_t used = c->ops->data(c->ctx, c->dir, s->tail, s->tail_len, 0);
    memmove(s->tail, s->tail + used, s->tail_len - used);
    s->tail_len -= (uint32_t)used;
}

static void gap(mx_stream *s, const mx_stream_ctx *c, uint32_t len, int why)
{
    if (len == 0) return;
    /* A partial line before a hole can never be completed. */
    if (s->tail_len) {
        c->ops->data(c->ctx, c->dir, s->tail, s->tail_len, 1);
        s->tail_len = 0;
    }
    s->gaps++;
    s->gap_bytes += len;
    c->ops->gap(c->ctx, c->dir, s->offset, len, why);
    s->offset += len;
}

/* A fast digest of a segment's bytes (not cryptographic: it tells a
 * retransmission with other content from a faithful one; it never leaves
 * the process, so it may differ between machines).  Every byte delivered
 * goes through it: four lanes of 64-bit multiplications, and where the CPU
 * has AVX2 the bulk 64 bytes a step before them (see digest_avx2). */
static uint64_t rotl64(uint64_t v, int r) { return v << r | v >> (64 - r); }

static uint64_t mix64(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 29);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define MX_DIGEST_AVX2 1
/* 64 bytes a step in two 256-bit lanes: each 64-bit word, mixed with a key
 * that moves on every step (so that blocks that trade places change it), is
 * multiplied half by half and added in beside the word itself (so that a
 * product of zero loses nothing); the lanes are then folded into h. */
__attribute__((target("avx2"))) static uint32_t digest_avx2(const uint8_t *p, uint32_t n, uint64_t h[4])
{
    __m256i a0 = _mm256_set_epi64x((long long)h[3], (long long)h[2], (long long)h[1], (long long)h[0]), a1 = a0;
    __m256i k0 = _mm256_set_epi64x(0x85EBCA77C2B2AE63ll, 0x27D4EB2F165667C5ll, 0x94D049BB133111EBll, 0x9E3779B185EBCA87ll),
            k1 = _mm256_set_epi64x(0x165667B19E3779F9ll, 0xC2B2AE3D27D4EB4Fll, 0x61C8864680B583EBll, 0xFF51AFD7ED558CCDll);
    const __m256i step = _mm256_set_epi64x(0x61C8864680B583EBll, 0x9E3779B97F4A7C15ll, 0x94D049BB133111EBll, 0x85EBCA77C2B2AE63ll);
    uint32_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256i d0 = _mm256_loadu_si256((const __m256i *)(const void *)(p + i)),
                d1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 32));
        __m256i x0 = _mm256_xor_si256(d0, k0), x1 = _mm256_xor_si256(d1, k1);
        a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_mul_epu32(x0, _mm256_srli_epi64(x0, 32)),
                                                   _mm256_shuffle_epi32(d0, _MM_SHUFFLE(1, 0, 3, 2))));
        a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_mul_epu32(x1, _mm256_srli_epi64(x1, 32)),
                                                   _mm256_shuffle_epi32(d1, _MM_SHUFFLE(1, 0, 3, 2))));
        k0 = _mm256_add_epi64(k0, step);
        k1 = _mm256_add_epi64(k1, step);
    }
    uint64_t l[8];
    _mm256_storeu_si256((__m256i *)(void *)l, a0);
    _mm256_storeu_si256((__m256i *)(void *)(l + 4), a1);
    for (int j = 0; j < 4; j++) h[j] = mix64(mix64(h[j], l[j]), l[4 + j]);
    return i;
}
#endif

static uint64_t digest(const uint8_t *p, uint32_t n)
{
    uint64_t h0 = 0x9E3779B97F4A7C15ull ^ n, h1 = 0xC2B2AE3D27D4EB4Full, h2 = 0x165667B19E3779F9ull,
             h3 = 0x27D4EB2F165667C5ull;
    uint32_t i = 0;
#if defined(MX_DIGEST_AVX2)
    if (n >= 128 && __builtin_cpu_supports("avx2")) {
        uint64_t h[4] = { h0, h1, h2, h3 };
        i = digest_avx2(p, n, h);
        h0 = h[0]; h1 = h[1]; h2 = h[2]; h3 = h[3];
    }
#endif
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        h0 = mix64(h0, w[0]);
        h1 = mix64(h1, w[1]);
        h2 = mix64(h2, w[2]);
        h3 = mix64(h3, w[3]);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h0 = mix64(h0, w);
    }
    for (; i < n; i++) h0 = (h0 ^ p[i]) * 0x100000001B3ull;
    uint64_t h = h0 ^ rotl64(h1, 17) ^ rotl64(h2, 31) ^ rotl64(h3, 47);
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 31);
}

/* Delivers an in-order piece starting exactly at next_seq. */
static void deliver_seg(mx_stream *s, const mx_stream_ctx *c, const uint8_t *p,
                        uint32_t caplen, uint32_t len, int fin)
{
    if (caplen && caplen == len) {
        unsigned k = s->recent_next++ & 3;
        s->recent[k].seq = s->next_seq;
        s->recent[k].len = len;
        s->recent[k].digest = digest(p, caplen);
    }
    if (caplen) deliver(s, c, p, caplen);
    if (len > caplen) gap(s, c, len - caplen, MX_GAP_SNAPLEN);
    s->next_seq += len;
    if (fin) { s->have_fin = 1; s->fin_seq = s->next_seq; }
}

/* Delivers buffered segments that have become in order. */
static void drain(mx_stream *s, const mx_stream_ctx *c)
{
    while (s->ooo) {
        mx_seg *g = s->ooo;
        int32_t d = sdiff(g->seq, s->next_seq);
        if (d > 0) break;
        s->ooo = g->next;
        s->ooo_bytes -= g->caplen;
        s->ooo_segs--;
        uint32_t skip = (uint32_t)-d;
        if (skip < g->len) {
            uint32_t cskip = skip < g->caplen ? skip : g->caplen;
            deliver_seg(s, c, g->data + cskip, g->caplen - cskip, g->len - skip, g->fin);
        } else if (g->fin && skip == g->len) {
            s->have_fin = 1; s->fin_seq = s->next_seq;
        }
        release(s, sizeof *g + g->caplen);
        free(g);
    }
}

/* A segment cannot be held (a cap, the budget): the stream stops waiting
 * for its first hole, which ends where the earliest data it has begins
 * (this segment or a held one), delivers what it held, then takes the
 * segment again. */
static void give_up_hole(mx_stream *s, const mx_stream_ctx *c, uint32_t seq, const uint8_t *p,
                         uint32_t caplen, uint32_t len, int fin, int limit, uint32_t value, int why)
{
    if (c->ops->limit) c->ops->limit(c->ctx, c->dir, limit, value);
    uint32_t first = seq;
    if (s->ooo && sdiff(s->ooo->seq, seq) < 0) first = s->ooo->seq;
    gap(s, c, first - s->next_seq, why);
    s->next_seq = first;
    drain(s, c);
    mx_stream_segment(s, c, seq, p, caplen, len, fin);
}

/* Keeps an out-of-order segment; compares overlapping bytes with what is
 * already held. */
static void hold(mx_stream *s, const mx_stream_ctx *c, uint32_t seq,
                 const uint8_t *p, uint32_t caplen, uint32_t len, int fin)
{
    mx_seg **pp;
    /* The sender's bytes after the acknowledged point came: what is still
     * missing before them will not (a capture keeps one direction's order). */
    if (s->ack_wait && sdiff(seq, s->ack_wait_seq) >= 0) s->ack_wait_moved = 1;
    /* Held segments and this one all lie ahead of next_seq (within
     * MAX_DISTANCE), so offsets from it compare without wrapping. */
    uint64_t a0 = seq - s->next_seq, a1 = a0 + caplen;
    for (mx_seg *g = s->ooo; g; g = g->next) {
        uint64_t b0 = g->seq - s->next_seq, b1 = b0 + g->caplen;
        uint64_t lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
        if (hi > lo) {
            if (memcmp(p + (lo - a0), g->data + (lo - b0), (size_t)(hi - lo)) != 0) s->conflicts++;
            if (a0 >= b0 && a1 <= b1 && len == caplen) { s->retrans_segs++; s->retrans_bytes += len; return; }
        }
    }
    if (s->ooo_bytes + caplen > c->lim->max_ooo_bytes || s->ooo_segs + 1 > c->lim->max_ooo_segs) {
        /* the stream's own cap */
        give_up_hole(s, c, seq, p, caplen, len, fin, MX_STREAM_LIMIT_OOO, c->lim->max_ooo_bytes, MX_GAP_OOO_CAP);
        return;
    }
    if (!charge(s, c, sizeof(mx_seg) + caplen)) {
        /* the budget of all streams is spent: this one gives up (others keep theirs) */
        give_up_hole(s, c, seq, p, caplen, len, fin, MX_STREAM_LIMIT_MEMCAP, 0, MX_GAP_MEMCAP);
        return;
    }
    mx_seg *g = malloc(sizeof *g + caplen);
    if (!g) { release(s, sizeof(mx_seg) + caplen); return; }
    g->seq = seq; g->len = len; g->caplen = caplen; g->fin = (uint8_t)fin;
    if (caplen) memcpy(g->data, p, caplen);
    pp = &s->ooo;
    while (*pp && sdiff((*pp)->seq, seq) <= 0) pp = &(*pp)->next;
    g->next = *pp;
    *pp = g;
    s->ooo_bytes += caplen;
    s->ooo_segs++;
    s->ooo_seen++;
}

void mx_stream_segment(mx_stream *s, const mx_stream_ctx *c, uint32_t seq,
                       const uint8_t *p, uint32_t caplen, uint32_t len, int fin)
{
    if (s->closed) return;
    if (!s->have_seq) mx_stream_start(s, seq);
    if (len == 0) {
        int32_t d0 = sdiff(seq, s->next_seq);
        if (fin) {
            if (d0 == 0) { s->have_fin = 1; s->fin_seq = seq; }
            else if (d0 > 0 && d0 <= MAX_DISTANCE) hold(s, c, seq, p, 0, 0, 1);
        }
        return;
    }
    int32_t d = sdiff(seq, s->next_seq);
    if (d > MAX_DISTANCE || d < -MAX_DISTANCE) {   /* not this stream's bytes */
        s->out_of_window++;
        return;
    }
    if (d < 0) {
        uint32_t old = (uint32_t)-d;
        if (old >= len) {                   /* entirely seen already */
            s->retrans_segs++;
            s->retrans_bytes += len;
            if (caplen == len)
                for (int k = 0; k < 4; k++)
                    if (s->recent[k].len == len && s->recent[k].seq == seq) {
                        if (s->recent[k].digest != digest(p, caplen)) s->conflicts++;
                        break;
                    }
            return;
        }
        s->retrans_bytes += old;
        uint32_t cskip = old < caplen ? old : caplen;
        p += cskip; caplen -= cskip; len -= old; seq += old;
        d = 0;
    }
    if (d == 0) {
        deliver_seg(s, c, p, caplen, len, fin);
        drain(s, c);
    } else {
        hold(s, c, seq, p, caplen, len, fin);
    }
}

static void declare_acked(mx_stream *s, const mx_stream_ctx *c, uint32_t ack);

void mx_stream_flush(mx_stream *s, const mx_stream_ctx *c)
{
    if (s->closed) return;
    if (s->ack_wait) {                 /* never came: lost, as acknowledged */
        s->ack_wait = 0;
        declare_acked(s, c, s->ack_wait_seq);
    }
    while (s->ooo) {
        if (sdiff(s->ooo->seq, s->next_seq) > 0) {
            gap(s, c, s->ooo->seq - s->next_seq, MX_GAP_CLOSE);
            s->next_seq = s->ooo->seq;
        }
        drain(s, c);
    }
    if (s->tail_len) {
        size_t used = c->ops->data(c->ctx, c->dir, s->tail, s->tail_len, 1);
        (void)used;
        s->tail_len = 0;
    }
    s->closed = 1;
}

void mx_stream_skip(mx_stream *s, const mx_stream_ctx *c, uint32_t len)
{
    if (s->closed || !len) return;
    gap(s, c, len, MX_GAP_LOST);
    s->next_seq += len;
    drain(s, c);
}

static void declare_acked(mx_stream *s, const mx_stream_ctx *c, uint32_t ack)
{
    if (s->closed || !s->have_seq) return;
    int32_t d = sdiff(ack, s->next_seq);
    if (d <= 0) return;
    /* The FIN takes one sequence number but carries no byte; and a lone
     * 1-byte step with nothing held is more likely a FIN we did not see. */
    if (s->have_fin && ack == s->fin_seq + 1 && sdiff(s->fin_seq, s->next_seq) <= 0) return;
    if (d == 1 && !s->ooo) return;
    if (d > (int32_t)(1u << 30)) return;          /* not plausible */
    uint32_t upto = ack;
    if (s->ooo && sdiff(s->ooo->seq, ack) < 0) upto = s->ooo->seq;
    if (sdiff(upto, s->next_seq) > 0) {
        gap(s, c, upto - s->next_seq, MX_GAP_LOST);
        s->next_seq = upto;
    }
    drain(s, c);
}

void mx_stream_acked(mx_stream *s, const mx_stream_ctx *c, uint32_t ack)
{
    if (s->closed || !s->have_seq) return;
    int32_t d = sdiff(ack, s->next_seq);
    if (d <= 0 || d > (int32_t)(1u << 30)) return;
    /* Bytes after the hole were seen already and are acknowledged too: the
     * hole is a loss, not a race. */
    if (s->ooo && sdiff(s->ooo->seq, ack) < 0) {
        s->ack_wait = 0;
        declare_acked(s, c, ack);
        return;
    }
    if (!s->ack_wait) {
        s->ack_wait_moved = 0;
        s->ack_wait = 1;
        s->ack_wait_seq = ack;
        s->ack_wait_pkts = 0;
        s->ack_wait_us = c->now_us;
    } else if (sdiff(ack, s->ack_wait_seq) > 0) {
        s->ack_wait_seq = ack;         /* waits from the first such ACK */
    }
}

void mx_stream_tick(mx_stream *s, const mx_stream_ctx *c)
{
    if (!s->ack_wait) return;
    if (s->closed || sdiff(s->next_seq, s->ack_wait_seq) >= 0) { s->ack_wait = 0; return; }
    s->ack_wait_pkts++;
    uint64_t waited = c->now_us > s->ack_wait_us ? c->now_us - s->ack_wait_us : 0;
    if (!s->ack_wait_moved && s->ack_wait_pkts <= c->lim->ack_wait_packets &&
        waited < (uint64_t)c->lim->ack_wait_ms * 1000u)
        return;
    s->ack_wait = 0;
    declare_acked(s, c, s->ack_wait_seq);
}
