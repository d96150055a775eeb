/* Unit tests: TCP reassembly (order, holes, duplicates, caps, tail keeping). */
#include "check.h"
#include "mx/stream.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct sink {
    char got[4096];
    size_t n;
    uint32_t gap_bytes, gaps, limits;
    size_t chunk;            /* consume at most this much per call (0: all) */
} sink;

static size_t d(void *ctx, int dir, const uint8_t *p, size_t n, int force)
{
    sink *k = ctx;
    (void)dir;
    size_t take = k->chunk && n > k->chunk && !force ? k->chunk : n;
    /* consume only whole "lines" unless forced */
    if (!force) {
        const uint8_t *nl = NULL;
        for (size_t i = take; i > 0; i--) if (p[i - 1] == '\n') { nl = p + i; break; }
        take = nl ? (size_t)(nl - p) : 0;
    }
    memcpy(k->got + k->n, p, take);
    k->n += take;
    return take;
}

static void g(void *ctx, int dir, uint64_t at, uint32_t len, int why)
{
    sink *k = ctx;
    (void)dir; (void)at; (void)why;
    k->gaps++;
    k->gap_bytes += len;
    memset(k->got + k->n, '#', len);
    k->n += len;
}

static void l(void *ctx, int dir, int which, uint32_t v) { (void)dir; (void)which; (void)v; ((sink *)ctx)->limits++; }

static const mx_stream_ops ops = { d, g, l };

static void seg(mx_stream *s, mx_stream_ctx *c, uint32_t seq, const char *t)
{
    mx_stream_segment(s, c, seq, (const uint8_t *)t, (uint32_t)strlen(t), (uint32_t)strlen(t), 0);
}

int main(void)
{
    mx_limits lim;
    mx_limits_default(&lim);
    {   /* in order, split lines held as tail */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 100);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        seg(&s, &c, 100, "EHLO a\r\nMA");
        CHECK(k.n == 8, "only the whole line consumed (%zu)", k.n);
        seg(&s, &c, 110, "IL FROM:<>\r\n");
        CHECK(k.n == 22 && memcmp(k.got, "EHLO a\r\nMAIL FROM:<>\r\n", 22) == 0, "tail prefixed");
        mx_stream_free(&s);
    }
    {   /* reordered and duplicated */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        seg(&s, &c, 4, "cd\n");
        seg(&s, &c, 4, "cd\n");          /* duplicate out of order */
        seg(&s, &c, 0, "ab\nx");         /* fills the hole */
        seg(&s, &c, 0, "ab\nx");         /* old retransmission */
        seg(&s, &c, 2, "\nxcd\nef\n");  /* overlaps both sides */
        CHECK(k.n == 10 && memcmp(k.got, "ab\nxcd\nef\n", 10) == 0, "reassembled: %.*s", (int)k.n, k.got);
        CHECK(s.retrans_segs >= 2, "retransmissions counted (%u)", s.retrans_segs);
        CHECK(k.gaps == 0, "no gap");
        mx_stream_free(&s);
    }
    {   /* conflicting overlap among held segments */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        seg(&s, &c, 5, "AAAA\n");
        seg(&s, &c, 5, "BBBB\n");
        CHECK(s.conflicts == 1, "conflict counted");
        seg(&s, &c, 0, "0123\n");
        CHECK(k.n == 10 && memcmp(k.got + 5, "AAAA\n", 5) == 0, "first copy wins");
        mx_stream_free(&s);
    }
    {   /* a hole that never fills: reported at flush */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        seg(&s, &c, 0, "ab\n");
        seg(&s, &c, 8, "zz\n");
        mx_stream_flush(&s, &c);
        CHECK(k.gaps == 1 && k.gap_bytes == 5, "gap of 5 (%u/%u)", k.gaps, k.gap_bytes);
        CHECK(k.n == 11 && memcmp(k.got, "ab\n#####zz\n", 11) == 0, "bytes around the gap");
        mx_stream_free(&s);
    }
    {   /* out-of-order cap: give up on the hole, report it, go on */
        sink k = { .n = 0 };
        mx_limits small = lim;
        small.max_ooo_bytes = 8;
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &small, 0, NULL };
        seg(&s, &c, 10, "abcd\n");
        seg(&s, &c, 15, "efgh\n");       /* over the cap */
        CHECK(k.limits >= 1, "limit reported");
        CHECK(k.gaps == 1 && k.gap_bytes == 10, "hole declared lost (%u)", k.gap_bytes);
        CHECK(k.n == 20 && memcmp(k.got + 10, "abcd\nefgh\n", 10) == 0, "held data delivered");
        mx_stream_free(&s);
    }
    {   /* snaplen: captured part delivered, rest a gap */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        mx_stream_segment(&s, &c, 0, (const uint8_t *)"ab\ncd", 5, 9, 0);
        CHECK(k.gaps == 1 && k.gap_bytes == 4, "snaplen gap");
        CHECK(s.next_seq == 9, "sequence advanced by the wire length");
        mx_stream_free(&s);
    }
    {   /* hold cap: a consumer that wants more than max_hold is forced */
        sink k = { .n = 0 };
        mx_limits small = lim;
        small.max_hold = 16;
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &small, 0, NULL };
        seg(&s, &c, 0, "0123456789");
        seg(&s, &c, 10, "0123456789");
        seg(&s, &c, 20, "0123456789\n");
        CHECK(k.n == 31, "everything consumed in the end (%zu)", k.n);
        CHECK(k.limits >= 1, "hold limit reported");
        mx_stream_free(&s);
    }
    {   /* sequence wrap-around */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0xFFFFFFFEu);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        seg(&s, &c, 0x00000001u, "cd\n");
        seg(&s, &c, 0xFFFFFFFEu, "ab\n");
        CHECK(k.n == 6 && memcmp(k.got, "ab\ncd\n", 6) == 0, "wrap handled");
        mx_stream_free(&s);
    }
    {   /* capture race: the ACK is written before the data it acknowledges */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 1000000, NULL };
        seg(&s, &c, 0, "220 mx\n");
        mx_stream_acked(&s, &c, 14);                 /* acks 7 bytes not seen yet */
        mx_stream_tick(&s, &c);
        c.now_us += 30;
        CHECK(k.gaps == 0, "an ACK ahead of its data is not a loss at once");
        seg(&s, &c, 7, "250 ok\n");
        mx_stream_tick(&s, &c);
        CHECK(k.gaps == 0 && k.n == 14, "the data came within the wait: delivered (%zu)", k.n);
        CHECK(!s.ack_wait, "wait over");
        mx_stream_free(&s);
    }
    {   /* loss, and the sender's later bytes already seen: a gap at once */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 1000000, NULL };
        seg(&s, &c, 0, "a\n");
        seg(&s, &c, 6, "d\n");                       /* bytes 2..5 missing */
        mx_stream_acked(&s, &c, 8);
        CHECK(k.gaps == 1 && k.gap_bytes == 4, "lost: reported when acked (%u)", k.gap_bytes);
        mx_stream_free(&s);
    }
    {   /* loss, the sender's next segment comes after the ACK: a gap then */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 1000000, NULL };
        seg(&s, &c, 0, "a\n");
        mx_stream_acked(&s, &c, 6);                  /* 4 bytes acked, unseen */
        mx_stream_tick(&s, &c);
        CHECK(k.gaps == 0, "waiting");
        seg(&s, &c, 6, "d\n");
        mx_stream_tick(&s, &c);
        CHECK(k.gaps == 1 && k.gap_bytes == 4 && k.n == 8, "sender moved on: lost (%u)", k.gap_bytes);
        mx_stream_free(&s);
    }
    {   /* loss with nothing after it: the wait ends in packets, or in time */
        for (int by_time = 0; by_time < 2; by_time++) {
            sink k = { .n = 0 };
            mx_limits w = lim;
            w.ack_wait_packets = 4;
            w.ack_wait_ms = 50;
            mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
            mx_stream_ctx c = { &ops, &k, 0, &w, 1000000, NULL };
            seg(&s, &c, 0, "a\n");
            mx_stream_acked(&s, &c, 6);
            int ticks = 0;
            while (k.gaps == 0 && ticks < 100) {
                mx_stream_tick(&s, &c);
                ticks++;
                c.now_us += by_time ? 20000 : 1;
            }
            CHECK(k.gaps == 1 && k.gap_bytes == 4, "declared after the wait (%d)", by_time);
            CHECK(by_time ? ticks == 4 : ticks == 5, "after %s (%d ticks)", by_time ? "50 ms" : "4 packets", ticks);
            mx_stream_free(&s);
        }
    }
    {   /* a retransmission that differs from bytes already delivered */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        seg(&s, &c, 0, "MAIL FROM:<a@b>\n");
        seg(&s, &c, 16, "RCPT TO:<c@d>\n");
        seg(&s, &c, 0, "MAIL FROM:<a@b>\n");       /* faithful copy */
        CHECK(s.conflicts == 0 && s.retrans_segs == 1, "same bytes again: a retransmission, no conflict");
        seg(&s, &c, 0, "MAIL FROM:<x@y>\n");       /* other content, same place */
        CHECK(s.conflicts == 1, "different bytes at a delivered place: a conflict (%u)", s.conflicts);
        CHECK(k.n == 30 && memcmp(k.got, "MAIL FROM:<a@b>", 15) == 0, "the first copy stays delivered");
        mx_stream_free(&s);
    }
    {   /* a long segment's retransmission with one byte changed, anywhere:
         * in each of the digest's 8-byte lanes and in its tail */
        static const unsigned at[] = { 0, 5, 13, 21, 29, 31, 32, 63, 64, 95, 99, 100 };
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            char line[102], other[102];
            for (int j = 0; j < 101; j++) line[j] = (char)('a' + j % 26);
            line[100] = '\n';
            line[101] = 0;
            memcpy(other, line, sizeof other);
            other[at[i]] ^= 0x20;
            sink k = { .n = 0 };
            mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
            mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
            seg(&s, &c, 0, line);
            seg(&s, &c, 0, line);
            CHECK(s.conflicts == 0, "101 bytes again: no conflict");
            seg(&s, &c, 0, other);
            CHECK(s.conflicts == 1, "101 bytes, byte %u changed: a conflict (%u)", at[i], s.conflicts);
            mx_stream_free(&s);
        }
    }
    /* a full-sized segment (1448 bytes: the digest's 64-byte steps where
     * the CPU has AVX2) and a short one (96: its 8-byte lanes alone): each
     * byte changed in turn, and two 32-byte blocks that trade places */
    for (int big = 0; big < 2; big++) {
        static char line[1449], other[1449];
        const int len = big ? 1448 : 96, b1 = big ? 3 : 0, b2 = big ? 17 : 2;
        for (int j = 0; j < len; j++) line[j] = (char)(' ' + (j * 7 + j / 97) % 90);
        line[len] = 0;
        int missed = -1;
        for (int at = 0; at < len + 1 && missed < 0; at++) {
            memcpy(other, line, sizeof other);
            if (at < len) other[at] ^= 0x01;
            else {
                memcpy(other + b1 * 32, line + b2 * 32, 32);
                memcpy(other + b2 * 32, line + b1 * 32, 32);
            }
            sink k = { .n = 0 };
            mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
            mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
            seg(&s, &c, 0, line);
            seg(&s, &c, 0, line);
            seg(&s, &c, 0, other);
            if (s.conflicts != 1) missed = at;
            mx_stream_free(&s);
        }
        CHECK(missed < 0, "%d bytes: every one-bit change and two blocks traded are conflicts (missed at %d)", len, missed);
    }
    {   /* at the end of the direction a pending wait is a loss */
        sink k = { .n = 0 };
        mx_stream s; mx_stream_init(&s); mx_stream_start(&s, 0);
        mx_stream_ctx c = { &ops, &k, 0, &lim, 0, NULL };
        seg(&s, &c, 0, "a\n");
        mx_stream_acked(&s, &c, 6);
        mx_stream_flush(&s, &c);
        CHECK(k.gaps == 1 && k.gap_bytes == 4, "flushed as lost");
        mx_stream_free(&s);
    }
    {   /* a budget over two streams: the one whose buffer does not fit gives
         * up waiting for its hole; the other keeps what it holds */
        sink ka = { .n = 0 }, kb = { .n = 0 };
        mx_memcap mc = { .cap = 16384 + 200 };
        mx_stream a, b; mx_stream_init(&a); mx_stream_init(&b);
        mx_stream_start(&a, 0); mx_stream_start(&b, 0);
        mx_stream_ctx ca = { &ops, &ka, 0, &lim, 0, &mc }, cb = { &ops, &kb, 1, &lim, 0, &mc };
        seg(&a, &ca, 0, "partial");               /* a keeps a tail: 16384 */
        seg(&a, &ca, 100, "held by a\n");         /* and one segment */
        CHECK(mc.used > 16384 && mc.used <= mc.cap && ka.limits == 0, "a's buffers fit the budget (%llu)", (unsigned long long)mc.used);
        char big[400];
        memset(big, 'x', sizeof big - 2);
        big[sizeof big - 2] = '\n';
        big[sizeof big - 1] = 0;
        seg(&b, &cb, 50, big);                    /* out of order: does not fit */
        CHECK(kb.limits == 1 && kb.gaps == 1 && kb.gap_bytes == 50, "b gives up its hole (%u limits, %u gaps)", kb.limits, kb.gaps);
        CHECK(kb.n == 50 + sizeof big - 1, "b's bytes are delivered after the gap");
        CHECK(mc.refused == 1 && mc.peak <= mc.cap, "one buffer refused, the budget never exceeded");
        seg(&a, &ca, 7, " line\n");
        seg(&a, &ca, 13, "\n");
        CHECK(ka.gaps == 0 && strncmp(ka.got, "partial line\n", 13) == 0, "a's held bytes are intact");
        mx_stream_free(&a);
        mx_stream_free(&b);
        CHECK(mc.used == 0, "freed streams give their bytes back (%llu left)", (unsigned long long)mc.used);
    }
    return CHECK_DONE();
}
