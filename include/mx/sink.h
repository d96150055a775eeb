/* sink.h - where sessions and their events are written.
 *
 * The sink takes finished events (event.h) and renders every event and
 * session once per format, for each of its outputs (output.h).  A session is opened with
 * mx_sink_session_begin(), receives its events through mx_ev_end() (see
 * session.h), and is written out (timeline) or closed (ndjson) by
 * mx_sink_session_end().
 */
#ifndef MX_SINK_H
#define MX_SINK_H

#include <stdio.h>

#include "mx/session.h"

typedef enum mx_format {
    MX_FMT_TIMELINE = 0,   /* one JSON document per session   */
    MX_FMT_NDJSON,         /* one JSON event per line          */
    MX_FMT_TEXT,           /* a readable story per session     */
    MX_FMT_SUMMARY,        /* one line per session             */
    MX_FMT_HTML,           /* one self-contained HTML report   */
    MX_FMT_ECS,            /* one ECS 8.x event per line       */
    MX_FMT_TLSRPT,         /* RFC 8460 reports at the end      */
} mx_format;

typedef struct mx_output mx_output;

/* A sink with no output yet; give it one or more with mx_sink_add(). */
mx_sink *mx_sink_create(const mx_opts *opt);
/* Adds an output fed in format fmt (the caller keeps and closes it, after
 * mx_sink_finish()); color: terminal colours in text and summary.  0 when
 * there are too many outputs (16). */
int mx_sink_add(mx_sink *k, mx_format fmt, mx_output *o, int color);
/* A sink with one output: the stream out, in format fmt. */
mx_sink *mx_sink_new(mx_format fmt, FILE *out, const mx_opts *opt, int color);
/* Writes what closes the output (the HTML index); call once at the end. */
void mx_sink_finish(mx_sink *k);
void mx_sink_session_begin(mx_sink *k, mx_sess *s);
void mx_sink_session_end(mx_sink *k, mx_sess *s);
/* Holds the session's events back until mx_sink_session_confirm() (write
 * them, and stream the rest as usual) or mx_sink_session_drop(). */
void mx_sink_session_defer(mx_sink *k, mx_sess *s);
void mx_sink_session_confirm(mx_sink *k, mx_sess *s);
/* Releases a session's sink state without writing it. */
void mx_sink_session_drop(mx_sink *k, mx_sess *s);
/* Non-zero once a write to the output failed. */
int mx_sink_failed(const mx_sink *k);
/* Says (once, on stderr, with the reason) an output whose writes failed;
 * streams: also flush the outputs, so that a pipe's reader sees what is
 * done.  0 when an output failed (the run should stop reading). */
int mx_sink_flush(mx_sink *k, int streams);
/* Non-zero when a failure was already told by mx_sink_flush(). */
int mx_sink_told(const mx_sink *k);
/* Non-zero when standard output's reader went away (EPIPE): a quiet end. */
int mx_sink_epipe(const mx_sink *k);

/* An event of the run, not of a session (capture.stats, ...): begun with
 * its type and the wall-clock time, filled with the mx_ev_* calls, written
 * to every output by mx_sink_run_end(); line is what the text and summary
 * views show of it (NULL: nothing). */
mx_ev *mx_sink_run_begin(mx_sink *k, mx_evtype type);
void mx_sink_run_end(mx_sink *k, mx_ev *ev, const char *line);
void mx_sink_free(mx_sink *k);
/* The budget (--memcap) that the documents sessions hold until they end
 * are charged to, beside the streams' buffers: when it is spent, the
 * session whose event went over writes what it holds as a part of its
 * documents ("part", "continued") and goes on in the next. */
struct mx_memcap;
void mx_sink_set_memcap(mx_sink *k, struct mx_memcap *mc);
/* Marks the sink failed (a worker's sink failed: the run's did). */
void mx_sink_set_failed(mx_sink *k);

/* ---- the run's order (workers.c) -------------------------------------------
 *
 * With --workers, each worker's engine writes into a sink of its own that
 * makes records instead of writing (mx_sink_capture); the run's writer puts
 * them in the order one engine would have made them and writes them through
 * the run's sink (mx_sink_put).  The engine says, before each step, where
 * that step stands in the order: a packet's frame, the phase (MX_PH_*), and
 * for flows ended by the clock which list they were on and since when. */
enum mx_phase {
    MX_PH_EXPIRE = 0,     /* flows the clock ends, before frame's packet  */
    MX_PH_PACKET = 1,     /* what frame's packet did                      */
    MX_PH_TICK = 2,       /* flows the clock ends after frame, no packet   */
    MX_PH_FINISH = 3,     /* end of input: stamp is the session id         */
};
typedef struct mx_order {
    uint64_t frame, stamp;
    uint32_t sub;         /* MX_PH_TICK: which tick since frame (from 1)   */
    uint8_t phase, list;
} mx_order;
void mx_sink_order(mx_sink *k, uint64_t frame, int phase, uint32_t sub, int list, uint64_t stamp);

enum mx_rec_kind {
    MX_REC_OUT = 0,       /* bytes for output number out, a record tagged tag */
    MX_REC_BIRTH,         /* session sess (a worker's id) began           */
    MX_REC_DEATH,         /* session sess is gone                          */
    MX_REC_ROW,           /* an HTML index row (mx_view_row) for output out */
};
typedef struct mx_rec {
    mx_order ord;
    int kind, out;
    const char *tag;
    const void *data;
    size_t len;
    uint64_t sess;
} mx_rec;
typedef void (*mx_rec_fn)(void *ctx, const mx_rec *r);
/* A sink with proto's outputs and formats whose writes become records
 * handed to fn. */
mx_sink *mx_sink_capture(const mx_sink *proto, mx_rec_fn fn, void *ctx);
/* Writes a record made by a capturing sink with the same outputs; gid maps
 * a worker's session id (from a marker, see event.h) to the run's. */
void mx_sink_put(mx_sink *k, const mx_rec *r, uint64_t (*gid)(void *ctx, uint64_t sess), void *ctx);

#endif
