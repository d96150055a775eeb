/* harness.h - drives one session without packets, for tests and fuzzers.
 *
 * Bytes fed with mxh_feed() go through the same stream layer (tail keeping,
 * hand-offs, kicks) and dispatcher as in the engine.  mxh_finish() ends both
 * directions, writes session.end, and returns the ndjson output, owned by
 * the harness until mxh_free().
 */
#ifndef MX_HARNESS_H
#define MX_HARNESS_H

#include <stdio.h>

#include "mx/session.h"
#include "mx/sink.h"
#include "mx/stream.h"

typedef struct mx_harness {
    mx_opts opt;
    FILE *out;
    char *buf;
    size_t len;
    mx_sink *sink;
    mx_sess sess;
    mx_stream st[2];
    uint64_t frame;
} mx_harness;

void mxh_init(mx_harness *h, int implicit_tls, int show_user);
void mxh_feed(mx_harness *h, int dir, const void *p, size_t n);
void mxh_gap(mx_harness *h, int dir, uint32_t n);
const char *mxh_finish(mx_harness *h);
void mxh_free(mx_harness *h);

/* A transcript: chunks of one direction each; dir -1 is a gap of n bytes in
 * the client direction, -3 in the server direction, dir -2 ends the list. */
typedef struct mxh_chunk { int dir; const char *p; size_t n; } mxh_chunk;

/* Feeds a transcript into h: mode 0 whole chunks, 1 chunk `which` split at
 * `at`, 2 byte by byte; dir -1 / -3 are holes in the client / server bytes. */
void mxh_play(mx_harness *h, const mxh_chunk *cs, int mode, int which, size_t at);

/* Feeds a transcript and returns the ndjson (caller frees).  mode 0: whole
 * chunks; 1: chunk `which` split at `at`; 2: byte by byte. */
char *mxh_run(const mxh_chunk *cs, int implicit_tls, int show_user, int mode, int which, size_t at);

/* The output without the keys that depend on segmentation (times, frames). */
char *mxh_normalise(const char *ndjson);

/* Feeds every way and reports (on stderr) where the events differ; returns
 * the whole-chunk output (caller frees) and sets *same. */
char *mxh_feed_all(const char *name, const mxh_chunk *cs, int implicit_tls, int show_user, int *same);

#endif
