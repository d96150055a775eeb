/* stream.h - one direction of a TCP connection, reassembled.
 *
 * The stream turns segments, in whatever order they arrive, into ordered
 * bytes for a consumer:
 *
 *   segment --> [in order?] --yes--> consumer.data(bytes)
 *                    | no                 ^
 *                    v                    | (drained when the hole fills)
 *              out-of-order list ---------+   capped: max_ooo_bytes/segs
 *
 * The consumer reports how many bytes it consumed; the stream keeps only the
 * unconsumed tail (at most max_hold bytes) and offers it again, prefixed to
 * the next bytes, or when the consumer asks through mx_stream_kick().  When
 * the tail is full the consumer is called with force=1 and must consume at
 * least one byte.  Bytes that never arrived are reported once as a gap.
 *
 * Retransmissions and overlaps are trimmed; an overlap whose bytes differ from
 * bytes still buffered out of order, or a retransmission of one of the last
 * four delivered segments with other bytes, is counted as a conflict (the
 * first copy wins, as most receivers keep it).
 */
#ifndef MX_STREAM_H
#define MX_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "mx/limits.h"

typedef struct mx_stream_ops {
    /* Ordered bytes; returns how many were consumed (<= n). */
    size_t (*data)(void *ctx, int dir, const uint8_t *p, size_t n, int force);
    /* len bytes will never be seen, at stream offset `at`. */
    void (*gap)(void *ctx, int dir, uint64_t at, uint32_t len, int why);
    /* A cap was reached (MX_STREAM_LIMIT_*). */
    void (*limit)(void *ctx, int dir, int which, uint32_t value);
} mx_stream_ops;

enum { MX_GAP_LOST = 0, MX_GAP_SNAPLEN = 1, MX_GAP_OOO_CAP = 2, MX_GAP_CLOSE = 3, MX_GAP_MEMCAP = 4 };
enum { MX_STREAM_LIMIT_OOO = 1, MX_STREAM_LIMIT_HOLD = 2, MX_STREAM_LIMIT_MEMCAP = 3 };

/* One budget over every stream's buffers (held out-of-order segments and
 * kept tails) of an engine and the session documents its sink holds:
 * --memcap.  A stream buffer that does not fit beside the other streams'
 * is not taken: the stream that asked stops waiting for its hole (a gap,
 * reason memcap) or makes its consumer take the bytes now, and says so
 * once (MX_STREAM_LIMIT_MEMCAP); other streams keep theirs.  Documents
 * give way first: while the whole is over the budget, sessions write
 * theirs in parts (sink.h). */
typedef struct mx_memcap {
    uint64_t cap;          /* bytes; 0 = none                        */
    uint64_t used, peak;   /* streams' and documents' bytes           */
    uint64_t docs;         /* of used, the documents'                 */
    uint64_t refused;      /* buffers not taken                      */
    uint64_t split;        /* sessions written in parts               */
} mx_memcap;

typedef struct mx_seg mx_seg;

typedef struct mx_stream {
    uint32_t next_seq;     /* next sequence number to deliver        */
    uint8_t have_seq;      /* next_seq is known                      */
    uint8_t closed;        /* FIN delivered or stream flushed        */
    uint8_t have_fin;
    uint32_t fin_seq;      /* sequence number of the FIN             */
    mx_seg *ooo;           /* out-of-order segments, sorted by seq   */
    uint32_t ooo_bytes, ooo_segs;
    uint8_t *tail;         /* unconsumed bytes (allocated on first use) */
    uint32_t tail_len;
    uint64_t offset;       /* stream bytes delivered so far          */
    /* The peer acknowledged bytes not seen yet: a capture race (the ACK
     * written before the data) or a loss.  Declared lost once the capture
     * has moved on: after ack_wait_packets packets or ack_wait_ms. */
    uint8_t ack_wait, ack_wait_moved;
    /* the last segments delivered (seq, length, digest), to tell a
     * retransmission that differs from what was already delivered */
    struct { uint32_t seq, len; uint64_t digest; } recent[4];
    uint8_t recent_next;
    uint32_t ack_wait_seq, ack_wait_pkts;
    uint64_t ack_wait_us;
    mx_memcap *mc;         /* the budget its buffers are charged to  */
    uint32_t charged;      /* bytes charged to it                    */
    /* counters */
    uint64_t bytes, retrans_bytes, gap_bytes;
    uint32_t retrans_segs, ooo_seen, gaps, conflicts, out_of_window;
} mx_stream;

typedef struct mx_stream_ctx {
    const mx_stream_ops *ops;
    void *ctx;
    int dir;
    const mx_limits *lim;
    uint64_t now_us;       /* capture time of the current packet     */
    mx_memcap *mc;         /* NULL: no budget                        */
} mx_stream_ctx;

void mx_stream_init(mx_stream *s);
void mx_stream_free(mx_stream *s);

/* Sets the first data sequence number (ISN + 1 after a SYN). */
void mx_stream_start(mx_stream *s, uint32_t next_seq);

/* One segment: seq, captured bytes p[0..caplen), wire length len (>= caplen),
 * and whether it carries FIN. */
void mx_stream_segment(mx_stream *s, const mx_stream_ctx *c, uint32_t seq,
                       const uint8_t *p, uint32_t caplen, uint32_t len, int fin);

/* Offers the kept tail to the consumer again (after its state changed). */
void mx_stream_kick(mx_stream *s, const mx_stream_ctx *c);

/* The peer acknowledged everything before ack: bytes up to there that were
 * never seen are lost from the capture (not from the connection).  They are
 * waited for a little (a capture may write the ACK before the data it
 * acknowledges) and reported as a gap by mx_stream_tick() when they do not
 * come, so that the parsers go on instead of waiting for the close. */
void mx_stream_acked(mx_stream *s, const mx_stream_ctx *c, uint32_t ack);
/* Once per packet of the connection: ends the wait above when the bytes
 * came, or when the capture moved on without them. */
void mx_stream_tick(mx_stream *s, const mx_stream_ctx *c);

/* Declares the next len bytes lost (a gap at the current position). */
void mx_stream_skip(mx_stream *s, const mx_stream_ctx *c, uint32_t len);

/* End of the direction: deliver what is buffered, reporting holes as gaps,
 * and force the consumer to take the tail. */
void mx_stream_flush(mx_stream *s, const mx_stream_ctx *c);

#endif
