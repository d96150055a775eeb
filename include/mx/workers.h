/* workers.h - --workers N: one reader, N engines on threads of their own,
 * one writer (the engine's side of it; see workers.c).
 *
 * The engine made with cfg.workers > 1 decodes each packet and hands it
 * here; each connection belongs to one worker (by its keyed hash), every
 * worker sees every packet's time (the idle clock is the run's) and every
 * DNS answer.  The workers' records are written in the order one engine
 * would have written them, with the run's session ids, so that the output
 * of a file is the same byte for byte whatever N is.
 */
#ifndef MX_WORKERS_H
#define MX_WORKERS_H

#include "mx/engine.h"

typedef struct mx_pool mx_pool;

enum mx_pool_kind {
    MX_PE_CLOCK = 0,    /* only the packet's time                       */
    MX_PE_TCP,          /* a followed TCP packet: its worker's          */
    MX_PE_DNS,          /* a DNS answer: every worker's                 */
    MX_PE_TICK,         /* the clock moved on without a packet          */
};

#define MX_MAX_WORKERS 64

/* cfg as given to mx_engine_new (cfg->workers engines); sink the run's. */
mx_pool *mx_pool_new(const mx_engine_cfg *cfg, mx_sink *sink, char *err, size_t cap);
/* A packet: k its decoding (MX_PE_TCP, MX_PE_DNS), h the hash of its
 * connection (MX_PE_TCP). */
void mx_pool_add(mx_pool *p, const mx_input *in, const mx_pkt *k, int kind, uint64_t h);
void mx_pool_tick(mx_pool *p, uint64_t now_us);
void mx_pool_set_dump(mx_pool *p, mx_pktdump *d);
void mx_pool_sync(mx_pool *p, int wait);
uint64_t mx_pool_done_frame(mx_pool *p);
/* Ends every worker's open flows (mx_engine_finish), writes everything
 * and adds the workers' counters to *st. */
void mx_pool_finish(mx_pool *p, const char *reason, mx_engine_stats *st);
void mx_pool_free(mx_pool *p);
/* Worker i's counters (after mx_pool_finish); 0 past the last. */
int mx_pool_worker_stats(const mx_pool *p, int i, mx_engine_stats *out);

#endif
