/* fuzz_stream.c - TCP reassembly (mx_stream) with small caps.
 *
 * Input:
 *   [mode u8]  bit0: segment bytes are a function of their sequence number
 *                    (so every delivered byte can be checked) instead of
 *                    being taken from the input
 *              bits1-2: consumer: 0 whole lines, 1 first byte says how many,
 *                    2 everything, 3 half
 *              bit3: no mx_stream_start (the first segment sets the start)
 *              bit4: both directions share a memory budget (mx_memcap) of
 *                    max_hold + max_ooo_bytes / 2 + 64 bytes
 *   [ooo u8]   max_ooo_bytes = ooo * 8      [segs u8] max_ooo_segs = segs % 9
 *   [hold u8]  max_hold = 64 + hold (64 is the command-line minimum)
 *   [isn u32]
 *   then operations: op byte, bit0 = direction, bits1-3 = kind:
 *     0  segment at next_seq + [off s16]       1  segment at start + [off u16]
 *     2  segment at next_seq                   3  segment at start + [off u32]
 *        segments: [len u8] (op bit4: len * 8); op bit5: [cut u8], captured
 *        length len - cut % (len + 1); op bit6: FIN.  Bytes follow in the
 *        input unless mode bit0 is set.
 *     4  mx_stream_skip([len u16])
 *     5  mx_stream_kick (op bit4: the consumer stops waiting first)
 *     6  FIN without data at next_seq + [off s8]
 *     7  mx_stream_flush (the direction is closed)
 *
 * The consumer behaves like the session layer: a '?' it consumes on the
 * client side makes it wait (consume nothing unless forced, like DATA before
 * 354); a '!' consumed on the server side ends the wait and kicks the client
 * stream (like the 354 reply).  It always takes at least one byte when forced
 * (half the time exactly one, otherwise all that is offered).
 *
 * Checks, per direction: bytes offered again are the bytes offered before;
 * nothing offered disappears except at a gap or the final flush, and then at
 * most max_hold bytes; gaps report where the delivered bytes end, are not
 * empty, and (unless asked for by a skip or a snaplen cut) cover no byte
 * that was handed to the stream; at the end the counters agree (offset = bytes + gap_bytes = bytes
 * consumed + dropped + gap bytes, next_seq - start = offset) and nothing is
 * left buffered.  With seq-derived bytes every offered byte is verified.
 * With a budget: it is never exceeded, and it is all given back at the end.
 */
#include "fuzz_common.h"
#include "mx/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct dirmodel {
    uint32_t base;          /* sequence number of stream offset 0          */
    uint64_t pos;           /* offset of the first byte not yet consumed   */
    uint64_t offered_end;   /* offset just past the last byte offered      */
    uint8_t *pend;          /* copy of offered, unconsumed bytes           */
    size_t pend_len, pend_cap;
    uint64_t consumed, dropped, gap_sum;
    uint32_t ngaps, nlimits;
    int lazy;
    /* segments handed to the stream: offset from base and captured length */
    struct { uint32_t off, len; } *rx;
    size_t nrx, rxcap;
} dirmodel;

typedef struct fctx {
    mx_stream st[2];
    dirmodel m[2];
    mx_limits lim;
    mx_memcap mc;           /* a small budget both directions share        */
    int derived, cmode;
    int in_kick;
} fctx;

static const mx_stream_ops ops;
static const uint8_t no_bytes[1];

static uint8_t derived_byte(uint32_t seq)
{
    uint32_t x = seq * 2654435761u;
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    return (uint8_t)(x >> 24);
}

static mx_stream_ctx sctx(fctx *f, int dir)
{
    mx_stream_ctx c = { &ops, f, dir, &f->lim, 0, &f->mc };
    return c;
}

static void set_pending(dirmodel *m, const uint8_t *p, size_t n)
{
    if (n > m->pend_cap) {
        uint8_t *b = realloc(m->pend, n);
        if (!b) abort();
        m->pend = b;
        m->pend_cap = n;
    }
    if (n) memcpy(m->pend, p, n);
    m->pend_len = n;
}

static size_t on_data(void *ctx, int dir, const uint8_t *p, size_t n, int force)
{
    fctx *f = ctx;
    dirmodel *m = &f->m[dir];

    /* What is offered starts at the first unconsumed byte and covers at
     * least everything offered before. */
    if (m->pos + n < m->offered_end)
        FZ_FAIL("dir %d: offered %zu bytes at %llu, but %llu were offered before", dir, n,
                (unsigned long long)m->pos, (unsigned long long)(m->offered_end - m->pos));
    if (m->pend_len && memcmp(p, m->pend, m->pend_len) != 0)
        FZ_FAIL("dir %d: bytes at offset %llu changed when offered again", dir,
                (unsigned long long)m->pos);
    if (f->derived) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != derived_byte(m->base + (uint32_t)(m->pos + i)))
                FZ_FAIL("dir %d: wrong byte at stream offset %llu", dir,
                        (unsigned long long)(m->pos + i));
    } else {
        volatile uint8_t sink = 0;       /* ASan: the whole slice is readable */
        for (size_t i = 0; i < n; i++) sink ^= p[i];
        (void)sink;
    }

    size_t used = 0;
    if (!(m->lazy && !force)) {
        switch (f->cmode) {
        case 0:
            for (size_t i = n; i > 0; i--)
                if (p[i - 1] == '\n') { used = i; break; }
            break;
        case 1: used = n ? (p[0] < n ? p[0] : n) : 0; break;
        case 2: used = n; break;
        default: used = n / 2; break;
        }
    }
    /* Forced: at least one byte; a byte-at-a-time consumer is legal but
     * makes every call rescan the whole tail, so do it only half the time. */
    if (force && used == 0 && n) used = (p[0] & 1) ? n : 1;

    m->offered_end = m->pos + n;
    m->pos += used;
    m->consumed += used;
    set_pending(m, p + used, n - used);

    /* Session-like reactions to what was consumed. */
    int go = 0;
    for (size_t i = 0; i < used; i++) {
        if (dir == 0 && p[i] == '?') m->lazy = 1;
        if (dir == 1 && p[i] == '!') go = 1;
    }
    if (go && f->m[0].lazy && !f->in_kick) {
        f->m[0].lazy = 0;
        mx_stream_ctx c = sctx(f, 0);
        f->in_kick = 1;
        mx_stream_kick(&f->st[0], &c);
        f->in_kick = 0;
    }
    return used;
}

static void on_gap(void *ctx, int dir, uint64_t at, uint32_t len, int why)
{
    fctx *f = ctx;
    dirmodel *m = &f->m[dir];
    if (len == 0) FZ_FAIL("dir %d: empty gap at %llu (why %d)", dir, (unsigned long long)at, why);
    if (why < MX_GAP_LOST || why > MX_GAP_MEMCAP) FZ_FAIL("dir %d: gap reason %d", dir, why);
    if (why == MX_GAP_MEMCAP && !f->mc.cap) FZ_FAIL("dir %d: a memcap gap without a budget", dir);
    /* A hole the stream gives up on (cap reached, end of stream) must not
     * cover bytes that did arrive: those are held, and must be delivered.
     * (Explicit skips may, and snaplen gaps cover bytes never captured.) */
    if ((why == MX_GAP_OOO_CAP || why == MX_GAP_MEMCAP || why == MX_GAP_CLOSE) && at + len < (1ull << 31)) {
        for (size_t i = 0; i < m->nrx; i++) {
            uint64_t a = m->rx[i].off, b = a + m->rx[i].len;
            if (a < at + len && b > at)
                FZ_FAIL("dir %d: gap [%llu, %llu) (why %d) covers received bytes [%llu, %llu)", dir,
                        (unsigned long long)at, (unsigned long long)(at + len), why,
                        (unsigned long long)a, (unsigned long long)b);
        }
    }
    if (at != m->offered_end)
        FZ_FAIL("dir %d: gap at %llu but delivered bytes end at %llu", dir,
                (unsigned long long)at, (unsigned long long)m->offered_end);
    uint64_t dropped = at - m->pos;
    if (dropped > f->lim.max_hold)
        FZ_FAIL("dir %d: %llu unconsumed bytes dropped at a gap (max_hold %u)", dir,
                (unsigned long long)dropped, f->lim.max_hold);
    m->dropped += dropped;
    m->pos = m->offered_end = at + len;
    m->pend_len = 0;
    m->gap_sum += len;
    m->ngaps++;
}

static void on_limit(void *ctx, int dir, int which, uint32_t value)
{
    fctx *f = ctx;
    (void)value;
    if (which != MX_STREAM_LIMIT_OOO && which != MX_STREAM_LIMIT_HOLD && which != MX_STREAM_LIMIT_MEMCAP)
        FZ_FAIL("dir %d: unknown limit %d", dir, which);
    if (which == MX_STREAM_LIMIT_MEMCAP && !f->mc.cap) FZ_FAIL("dir %d: a memcap limit without a budget", dir);
    f->m[dir].nlimits++;
}

static const mx_stream_ops ops = { on_data, on_gap, on_limit };

static void segment(fctx *f, fz_in *in, int dir, uint8_t op, uint32_t seq, size_t *budget)
{
    mx_stream *s = &f->st[dir];
    uint32_t len = fz_u8(in);
    if (op & 0x10) len *= 8;
    uint32_t caplen = len;
    if (op & 0x20) caplen = len - fz_u8(in) % (len + 1);
    int fin = (op & 0x40) != 0;
    uint8_t *buf = NULL;
    if (f->derived) {
        if (caplen) {
            buf = malloc(caplen);
            if (!buf) abort();
            for (uint32_t i = 0; i < caplen; i++) buf[i] = derived_byte(seq + i);
        }
    } else {
        size_t got;
        const uint8_t *src = fz_bytes(in, caplen, &got);
        caplen = (uint32_t)got;
        buf = fz_dup(src, got);
    }
    if (*budget < len) { free(buf); return; }
    *budget -= len;
    dirmodel *m = &f->m[dir];
    if (!s->have_seq && !s->closed) m->base = seq;
    uint32_t off = seq - m->base;
    if (!s->closed && caplen && off < (1u << 30) && off + caplen < (1u << 30)) {
        if (m->nrx == m->rxcap) {
            m->rxcap = m->rxcap ? 2 * m->rxcap : 16;
            void *r = realloc(m->rx, m->rxcap * sizeof *m->rx);
            if (!r) abort();
            m->rx = r;
        }
        m->rx[m->nrx].off = off;
        m->rx[m->nrx].len = caplen;
        m->nrx++;
    }
    mx_stream_ctx c = sctx(f, dir);
    /* The engine always passes a pointer into the packet, even for an empty
     * payload; so do we. */
    mx_stream_segment(s, &c, seq, buf ? buf : no_bytes, caplen, len, fin);
    free(buf);
}

static void final_checks(fctx *f, int dir)
{
    mx_stream *s = &f->st[dir];
    dirmodel *m = &f->m[dir];
    if (!s->closed) FZ_FAIL("dir %d: not closed after flush", dir);
    if (s->ooo || s->ooo_bytes || s->ooo_segs || s->tail_len)
        FZ_FAIL("dir %d: bytes still buffered after flush (ooo %u/%u, tail %u)", dir,
                s->ooo_bytes, s->ooo_segs, s->tail_len);
    if (s->offset != s->bytes + s->gap_bytes)
        FZ_FAIL("dir %d: offset %llu != bytes %llu + gap_bytes %llu", dir,
                (unsigned long long)s->offset, (unsigned long long)s->bytes,
                (unsigned long long)s->gap_bytes);
    if (m->gap_sum != s->gap_bytes || m->ngaps != s->gaps)
        FZ_FAIL("dir %d: gaps reported %u/%llu bytes, counted %u/%llu", dir, m->ngaps,
                (unsigned long long)m->gap_sum, s->gaps, (unsigned long long)s->gap_bytes);
    if (m->offered_end != s->offset)
        FZ_FAIL("dir %d: offered up to %llu, stream offset %llu", dir,
                (unsigned long long)m->offered_end, (unsigned long long)s->offset);
    uint64_t dropped = m->offered_end - m->pos;   /* the tail flush discarded */
    if (dropped > f->lim.max_hold)
        FZ_FAIL("dir %d: %llu bytes dropped at flush", dir, (unsigned long long)dropped);
    if (m->consumed + m->dropped + dropped != s->bytes)
        FZ_FAIL("dir %d: consumed %llu + dropped %llu != delivered %llu", dir,
                (unsigned long long)m->consumed, (unsigned long long)(m->dropped + dropped),
                (unsigned long long)s->bytes);
    if (s->have_seq && (uint32_t)(s->next_seq - m->base) != (uint32_t)s->offset)
        FZ_FAIL("dir %d: next_seq - start = %u, offset %llu", dir,
                (uint32_t)(s->next_seq - m->base), (unsigned long long)s->offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    fctx *f = calloc(1, sizeof *f);
    if (!f) abort();
    uint8_t mode = fz_u8(&in);
    f->derived = mode & 1;
    f->cmode = (mode >> 1) & 3;
    mx_limits_default(&f->lim);
    f->lim.max_ooo_bytes = (uint32_t)fz_u8(&in) * 8;
    f->lim.max_ooo_segs = fz_u8(&in) % 9;
    f->lim.max_hold = 64 + fz_u8(&in);
    /* mode bit 4: a shared memory budget (--memcap) small enough to be hit */
    if (mode & 0x10) f->mc.cap = f->lim.max_hold + f->lim.max_ooo_bytes / 2 + 64;
    uint32_t isn = fz_u32(&in);
    for (int d = 0; d < 2; d++) {
        mx_stream_init(&f->st[d]);
        f->m[d].base = isn + (uint32_t)d * 0x7FFF0000u;
        if (!(mode & 8)) mx_stream_start(&f->st[d], f->m[d].base);
    }

    size_t budget = 1u << 16;    /* wire bytes per input */
    while (in.left) {
        uint8_t op = fz_u8(&in);
        int dir = op & 1;
        mx_stream *s = &f->st[dir];
        mx_stream_ctx c = sctx(f, dir);
        switch ((op >> 1) & 7) {
        case 0: segment(f, &in, dir, op, s->next_seq + (uint32_t)(int16_t)fz_u16(&in), &budget); break;
        case 1: segment(f, &in, dir, op, f->m[dir].base + fz_u16(&in), &budget); break;
        case 2: segment(f, &in, dir, op, s->next_seq, &budget); break;
        case 3: segment(f, &in, dir, op, f->m[dir].base + fz_u32(&in), &budget); break;
        case 4: {
            uint32_t len = fz_u16(&in);
            /* skip on a stream without a start has no position to skip from */
            if (s->have_seq) mx_stream_skip(s, &c, len);
            break;
        }
        case 5:
            if (op & 0x10) f->m[dir].lazy = 0;
            mx_stream_kick(s, &c);
            break;
        case 6: {
            uint32_t seq = s->next_seq + (uint32_t)(int8_t)fz_u8(&in);
            if (!s->have_seq && !s->closed) f->m[dir].base = seq;
            mx_stream_segment(s, &c, seq, no_bytes, 0, 0, 1);
            break;
        }
        case 7:
            mx_stream_flush(s, &c);
            break;
        }
    }
    for (int d = 0; d < 2; d++) {
        mx_stream_ctx c = sctx(f, d);
        mx_stream_flush(&f->st[d], &c);
    }
    for (int d = 0; d < 2; d++) final_checks(f, d);
    for (int d = 0; d < 2; d++) {
        mx_stream_free(&f->st[d]);
        free(f->m[d].pend);
        free(f->m[d].rx);
    }
    if (f->mc.used != 0) FZ_FAIL("the budget keeps %llu bytes after every stream was freed", (unsigned long long)f->mc.used);
    if (f->mc.cap && f->mc.peak > f->mc.cap) FZ_FAIL("the budget was exceeded");
    free(f);
    return 0;
}
