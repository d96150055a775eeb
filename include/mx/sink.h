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

#endif
