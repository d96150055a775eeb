/* workers.c - --workers N: the reader, the workers and the ordered writer.
 *
 * The reader (the thread that calls mx_engine_input) fills batches of
 * packets: each packet's time and frame, and for a followed TCP packet or
 * a DNS answer its bytes and decoding.  A batch is shared by all workers;
 * each walks every entry, moves its engine's clock on (so that flows end
 * on the run's clock, as with one engine) and handles the TCP packets of
 * its own connections (the hash's upper half picks the worker, its lower
 * half the bucket) and every DNS answer.
 *
 * A worker's engine writes into a capturing sink (sink.h): every record it
 * would have written becomes a record in the worker's chunks, tagged with
 * where it stands in the run's order (mx_order: frame, phase, tick, list,
 * stamp).  One engine makes its records in that order, and so does each
 * worker with its share, so the writer merges the workers' streams: it
 * takes the least record at the streams' heads once every other worker
 * has a record or has said (its watermark) that nothing before it is to
 * come.  Keys of different workers never tie: a frame's packet is one
 * worker's, and a list's stamp is the frame at which its one flow joined.
 * Session ids: a worker numbers its own sessions, and writes its numbers
 * as markers (event.h); each session's birth is a record, so the writer
 * numbers them in the run's order and puts the run's ids in place of the
 * markers as it writes.
 *
 * The writer is the reader's thread: it writes whatever can be written each
 * time it hands a batch over, and while it waits for room.  What bounds the
 * scaling: the reader (libpcap, one decode, one copy of each followed
 * packet) and the writer (the merge and the output's write calls) are one
 * thread; everything else (reassembly, parsing, nDPI, X.509, event building
 * and rendering) is the workers'.
 */
#include "mx/workers.h"
#include "mx/capture.h"
#include "mx/event.h"
#include "mx/sink.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Workers drift apart (their shares differ packet by packet, and the
 * reader's thread takes a share of some core): a worker ahead goes on while
 * there are batches it has not walked and room for its records, so both
 * are sized for tens of thousands of packets of drift. */
enum {
    NBATCH = 16,                  /* batches in flight                        */
    BATCH_PKTS = 2048,
    BATCH_BYTES = 256 << 10,      /* packet bytes of a batch (grows for one larger packet) */
    CHUNK_BYTES = 256 << 10,      /* a worker's records are written in chunks of this */
    MAX_CHUNKS = 64,              /* chunks a worker may have unwritten        */
    REC_DUMP = 100,               /* record kind: a packet for -w              */
};

/* An entry of a batch: what every worker reads (small, for the clock) ... */
typedef struct pent {
    uint64_t ts, frame;
    uint32_t sub;
    uint8_t kind, owner;
} pent;

/* ... and, for a followed packet or a DNS answer, what its worker reads. */
typedef struct pdata {
    uint64_t h;
    mx_pkt k;
    const uint8_t *data;          /* in the batch, or where the reader has it */
    uint32_t caplen, origlen, snaplen;
    int linktype;
} pdata;

typedef struct batch {
    pent *ents;
    pdata *pkts;                  /* beside ents, the same index             */
    size_t n;
    uint8_t *data;
    size_t used, cap;
    int pending;                  /* workers still to walk it (under mu)      */
    uint64_t first;               /* frame of its first entry                 */
} batch;

typedef struct chunk {
    struct chunk *next;
    size_t len, cap;
    _Alignas(8) uint8_t data[];
} chunk;

/* A record in a chunk: this header, its tag, its bytes, padded to 8. */
typedef struct rhdr {
    uint64_t frame, stamp, sess;
    uint32_t len, sub;
    uint8_t phase, list, kind, taglen;
    int32_t out;
} rhdr;

/* An order key as the writer compares them. */
typedef struct okey {
    uint64_t frame;
    uint32_t phase, sub, list;
    uint64_t stamp;
} okey;

typedef struct worker {
    _Alignas(128) mx_pool *p;     /* (a cache line pair of its own)           */
    int idx;
    pthread_t th;
    int started;
    int ready;                    /* 1: its engine is made; -1: it failed     */
    char err[128];
    mx_engine *e;
    mx_sink *sink;
    mx_engine_stats st;           /* its engine's, once it is done            */
    /* the worker's own */
    chunk *cur;
    okey mid;                     /* watermark while an entry is being walked */
    /* shared, under p->mu */
    chunk *qhead, *qtail;         /* records handed to the writer             */
    chunk *free;                  /* chunks the writer has written            */
    int nchunks;
    okey wm;                      /* every record before this is handed over  */
    int finished;
    /* the writer's own */
    chunk *rhead, *rtail;
    size_t roff;
    okey rwm;
} worker;

typedef struct idslot { uint64_t key, gid; } idslot;

struct mx_pool {
    int n;
    worker w[MX_MAX_WORKERS];
    mx_sink *sink;
    mx_pktdump *dump;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_main;
    batch b[NBATCH];
    uint64_t published;           /* batches handed over (under mu)           */
    batch *cur;                   /* the reader's batch being filled          */
    uint64_t last_frame;
    uint32_t nticks;              /* ticks since the last packet              */
    int finishing, quit;
    const char *reason;
    mx_engine_cfg wcfg;           /* the workers' engines'                    */
    /* the writer's: worker session -> the run's id */
    idslot *ids;
    size_t ids_cap, ids_n;
    uint64_t next_id;
};

static const okey KEY_END = { UINT64_MAX, 4, 0, 0, 0 };

static int key_cmp(const okey *a, const okey *b)
{
    if (a->frame != b->frame) return a->frame < b->frame ? -1 : 1;
    if (a->phase != b->phase) return a->phase < b->phase ? -1 : 1;
    if (a->sub != b->sub) return a->sub < b->sub ? -1 : 1;
    if (a->list != b->list) return a->list < b->list ? -1 : 1;
    if (a->stamp != b->stamp) return a->stamp < b->stamp ? -1 : 1;
    return 0;
}

/* ---- session ids (the writer's) -------------------------------------------- */

static size_t id_home(const mx_pool *p, uint64_t key)
{
    key *= 0x9E3779B97F4A7C15ull;
    return (size_t)(key >> 20) & (p->ids_cap - 1);
}

static int id_grow(mx_pool *p)
{
    size_t nc = p->ids_cap ? p->ids_cap * 2 : 1024;
    idslot *n = calloc(nc, sizeof *n), *old = p->ids;
    if (!n) return 0;
    size_t oc = p->ids_cap;
    p->ids = n;
    p->ids_cap = nc;
    for (size_t i = 0; i < oc; i++) {
        if (!old[i].key) continue;
        size_t j = id_home(p, old[i].key);
        while (n[j].key) j = (j + 1) & (nc - 1);
        n[j] = old[i];
    }
    free(old);
    return 1;
}

static void id_put(mx_pool *p, uint64_t key, uint64_t gid)
{
    if ((p->ids_n + 1) * 2 > p->ids_cap && !id_grow(p)) return;
    size_t j = id_home(p, key);
    while (p->ids[j].key && p->ids[j].key != key) j = (j + 1) & (p->ids_cap - 1);
    if (!p->ids[j].key) p->ids_n++;
    p->ids[j].key = key;
    p->ids[j].gid = gid;
}

static size_t id_find(const mx_pool *p, uint64_t key)
{
    if (!p->ids_cap) return SIZE_MAX;
    for (size_t j = id_home(p, key); p->ids[j].key; j = (j + 1) & (p->ids_cap - 1))
        if (p->ids[j].key == key) return j;
    return SIZE_MAX;
}

static void id_del(mx_pool *p, uint64_t key)
{
    size_t j = id_find(p, key), m = p->ids_cap - 1;
    if (j == SIZE_MAX) return;
    /* backward shift: the slots after it that belong before move up */
    for (size_t k = (j + 1) & m; p->ids[k].key; k = (k + 1) & m) {
        size_t h = id_home(p, p->ids[k].key);
        if (((k - h) & m) >= ((k - j) & m)) { p->ids[j] = p->ids[k]; j = k; }
    }
    p->ids[j].key = 0;
    p->ids_n--;
}

static uint64_t idkey(int w, uint64_t sess) { return (uint64_t)(w + 1) << 56 | (sess & ((1ull << 56) - 1)); }

typedef struct gidctx { mx_pool *p; int w; } gidctx;

static uint64_t gid_of(void *ctx, uint64_t sess)
{
    gidctx *g = ctx;
    size_t j = id_find(g->p, idkey(g->w, sess));
    return j == SIZE_MAX ? 0 : g->p->ids[j].gid;
}

/* ---- a worker's records ------------------------------------------------------ */

static chunk *chunk_new(size_t cap)
{
    chunk *c = malloc(sizeof *c + cap);
    if (c) { c->next = NULL; c->len = 0; c->cap = cap; }
    return c;
}

/* Hands the chunk being filled to the writer, with the watermark wm
 * (KEY_END: the worker is done). */
static void hand_over(worker *w, const okey *wm)
{
    mx_pool *p = w->p;
    pthread_mutex_lock(&p->mu);
    if (w->cur && w->cur->len) {
        w->cur->next = NULL;
        if (w->qtail) w->qtail->next = w->cur; else w->qhead = w->cur;
        w->qtail = w->cur;
        w->cur = NULL;
    }
    w->wm = *wm;
    if (!key_cmp(wm, &KEY_END)) w->finished = 1;    /* with its last records */
    pthread_cond_signal(&p->cv_main);
    pthread_mutex_unlock(&p->mu);
}

/* A chunk with room for need bytes, once the writer has written enough. */
static chunk *chunk_get(worker *w, size_t need)
{
    mx_pool *p = w->p;
    chunk *c = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (need <= CHUNK_BYTES && w->free) {
            c = w->free;
            w->free = c->next;
            c->next = NULL;
            c->len = 0;
            break;
        }
        if (w->nchunks < MAX_CHUNKS || need > CHUNK_BYTES || p->quit) {
            c = chunk_new(need > CHUNK_BYTES ? need : CHUNK_BYTES);
            if (c) w->nchunks++;
            break;
        }
        pthread_cond_wait(&p->cv_work, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return c;
}

static void rec_add(worker *w, const mx_rec *r)
{
    size_t tl = r->tag ? strlen(r->tag) : 0;
    if (tl > 255) tl = 255;
    size_t need = (sizeof(rhdr) + tl + r->len + 7) & ~(size_t)7;
    if (!w->cur || w->cur->cap - w->cur->len < need) {
        if (w->cur) hand_over(w, &w->mid);
        if (!(w->cur = chunk_get(w, need))) { mx_sink_set_failed(w->sink); return; }
    }
    uint8_t *d = w->cur->data + w->cur->len;
    rhdr h = { r->ord.frame, r->ord.stamp, r->sess, (uint32_t)r->len, r->ord.sub,
               r->ord.phase, r->ord.list, (uint8_t)r->kind, (uint8_t)tl, r->out };
    memcpy(d, &h, sizeof h);
    if (tl) memcpy(d + sizeof h, r->tag, tl);
    if (r->len) memcpy(d + sizeof h + tl, r->data, r->len);
    w->cur->len += need;
}

static void on_rec(void *ctx, const mx_rec *r) { rec_add(ctx, r); }

/* -w: a kept packet, in the order of the input. */
typedef struct dumphdr { uint64_t ts; int32_t linktype; uint32_t caplen, origlen, snaplen; } dumphdr;

static void dump_rec(worker *w, const pent *en, const pdata *pd)
{
    size_t n = sizeof(dumphdr) + pd->caplen;
    uint8_t stack[2048], *buf = n <= sizeof stack ? stack : malloc(n);
    if (!buf) { mx_sink_set_failed(w->sink); return; }
    dumphdr dh = { en->ts, pd->linktype, pd->caplen, pd->origlen, pd->snaplen };
    memcpy(buf, &dh, sizeof dh);
    memcpy(buf + sizeof dh, pd->data, pd->caplen);
    mx_rec r = { { en->frame, 0, 0, MX_PH_PACKET, 0 }, REC_DUMP, -1, "", buf, n, 0 };
    rec_add(w, &r);
    if (buf != stack) free(buf);
}

/* ---- the workers ------------------------------------------------------------- */

static void walk(worker *w, const batch *b)
{
    mx_pool *p = w->p;
    for (size_t i = 0; i < b->n; i++) {
        const pent *en = &b->ents[i];
        if (en->kind == MX_PE_TICK) {
            w->mid = (okey){ en->frame, MX_PH_TICK, en->sub, 0, 0 };
            mx_engine_tick(w->e, en->ts);
            continue;
        }
        w->mid = (okey){ en->frame, MX_PH_EXPIRE, 0, 0, 0 };
        mx_engine_clock(w->e, en->ts, en->frame);
        int mine = en->owner == w->idx, kept = 0;
        const pdata *pd = &b->pkts[i];
        if (en->kind == MX_PE_DNS) {
            mx_engine_dns(w->e, &pd->k);
            kept = mine;
        } else if (en->kind == MX_PE_TCP && mine) {
            kept = mx_engine_tcp(w->e, &pd->k, pd->h);
        }
        if (kept && p->dump) dump_rec(w, en, pd);
    }
}

/* The watermark once an entry is walked: a packet's ticks may follow it. */
static okey after(const pent *en)
{
    return en->kind == MX_PE_TICK ? (okey){ en->frame, MX_PH_TICK, en->sub + 1, 0, 0 }
                                  : (okey){ en->frame, MX_PH_TICK, 1, 0, 0 };
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    mx_pool *p = w->p;
    uint64_t next = 0;
    /* each worker makes (and frees) its engine, nDPI's module with it:
     * side by side, not one after the other on the reader's thread */
    w->e = mx_engine_new(&p->wcfg, w->sink, w->err, sizeof w->err);
    pthread_mutex_lock(&p->mu);
    w->ready = w->e ? 1 : -1;
    pthread_cond_broadcast(&p->cv_main);
    pthread_mutex_unlock(&p->mu);
    if (!w->e) return NULL;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->published <= next && !p->finishing && !p->quit) pthread_cond_wait(&p->cv_work, &p->mu);
        int have = p->published > next && !p->quit;
        pthread_mutex_unlock(&p->mu);
        if (!have) break;
        batch *b = &p->b[next % NBATCH];
        walk(w, b);
        okey wm = b->n ? after(&b->ents[b->n - 1]) : w->mid;
        w->mid = wm;
        hand_over(w, &wm);
        pthread_mutex_lock(&p->mu);
        b->pending--;
        pthread_cond_signal(&p->cv_main);
        pthread_mutex_unlock(&p->mu);
        next++;
    }
    pthread_mutex_lock(&p->mu);
    int fin = p->finishing && !p->quit;
    pthread_mutex_unlock(&p->mu);
    if (fin) {
        w->mid = (okey){ UINT64_MAX, MX_PH_FINISH, 0, 0, 0 };
        mx_engine_finish(w->e, p->reason);
        w->st = *mx_engine_stats_get(w->e);
        mx_engine_free(w->e);
        w->e = NULL;
    }
    hand_over(w, &KEY_END);
    return NULL;
}

/* ---- the writer ---------------------------------------------------------------- */

static const rhdr *head_of(worker *w)
{
    while (w->rhead && w->roff >= w->rhead->len) {
        /* written: back to the worker (a large one is freed) */
        chunk *c = w->rhead;
        w->rhead = c->next;
        if (!w->rhead) w->rtail = NULL;
        w->roff = 0;
        pthread_mutex_lock(&w->p->mu);
        if (c->cap > CHUNK_BYTES) {
            free(c);
            w->nchunks--;
        } else {
            c->next = w->free;
            w->free = c;
        }
        pthread_cond_broadcast(&w->p->cv_work);
        pthread_mutex_unlock(&w->p->mu);
    }
    return w->rhead ? (const rhdr *)(const void *)(w->rhead->data + w->roff) : NULL;
}

static okey key_of(mx_pool *p, int wi, const rhdr *h)
{
    okey k = { h->frame, h->phase, h->sub, h->list, h->stamp };
    if (h->phase == MX_PH_FINISH) {
        /* at the end, sessions end in the order of the run's ids */
        gidctx g = { p, wi };
        k.stamp = gid_of(&g, h->stamp);
    }
    return k;
}

static void write_rec(mx_pool *p, int wi, const rhdr *h)
{
    const char *tag = (const char *)(h + 1);
    const uint8_t *data = (const uint8_t *)tag + h->taglen;
    switch (h->kind) {
    case MX_REC_BIRTH:
        id_put(p, idkey(wi, h->sess), ++p->next_id);
        return;
    case MX_REC_DEATH:
        id_del(p, idkey(wi, h->sess));
        return;
    case REC_DUMP: {
        dumphdr dh;
        memcpy(&dh, data, sizeof dh);
        if (p->dump) mx_pktdump_write(p->dump, dh.linktype, dh.ts, data + sizeof dh, dh.caplen, dh.origlen, dh.snaplen);
        return;
    }
    default: {
        char t[256];
        memcpy(t, tag, h->taglen);
        t[h->taglen] = 0;
        mx_rec r = { { h->frame, h->stamp, h->sub, h->phase, h->list }, h->kind, h->out, t, data, h->len, h->sess };
        gidctx g = { p, wi };
        mx_sink_put(p->sink, &r, gid_of, &g);
    }
    }
}

/* Writes every record that can be written now. */
static void drain(mx_pool *p)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        if (w->qhead) {
            if (w->rtail) w->rtail->next = w->qhead; else w->rhead = w->qhead;
            w->rtail = w->qtail;
            w->qhead = w->qtail = NULL;
        }
        w->rwm = w->wm;
    }
    pthread_mutex_unlock(&p->mu);
    okey keys[MX_MAX_WORKERS];
    const rhdr *heads[MX_MAX_WORKERS];
    for (int i = 0; i < p->n; i++)
        if ((heads[i] = head_of(&p->w[i]))) keys[i] = key_of(p, i, heads[i]);
    for (;;) {
        int best = -1;
        for (int i = 0; i < p->n; i++)
            if (heads[i] && (best < 0 || key_cmp(&keys[i], &keys[best]) < 0)) best = i;
        if (best < 0) return;
        for (int i = 0; i < p->n; i++)
            if (!heads[i] && key_cmp(&p->w[i].rwm, &keys[best]) <= 0) return;   /* may come before */
        worker *w = &p->w[best];
        const rhdr *h = heads[best];
        write_rec(p, best, h);
        w->roff += (sizeof *h + h->taglen + h->len + 7) & ~(size_t)7;
        if ((heads[best] = head_of(w))) keys[best] = key_of(p, best, heads[best]);
    }
}

/* ---- the reader ------------------------------------------------------------------ */

static void publish(mx_pool *p)
{
    batch *b = p->cur;
    if (!b) return;
    p->cur = NULL;
    pthread_mutex_lock(&p->mu);
    b->pending = p->n;
    p->published++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    drain(p);
}

/* The batch to fill: the oldest once every worker has walked it. */
static batch *batch_get(mx_pool *p)
{
    if (p->cur) return p->cur;
    pthread_mutex_lock(&p->mu);
    batch *b = &p->b[p->published % NBATCH];
    while (b->pending) {
        pthread_mutex_unlock(&p->mu);
        drain(p);
        pthread_mutex_lock(&p->mu);
        if (b->pending) pthread_cond_wait(&p->cv_main, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    b->n = 0;
    b->used = 0;
    b->first = 0;
    return p->cur = b;
}

void mx_pool_add(mx_pool *p, const mx_input *in, const mx_pkt *k, int kind, uint64_t h)
{
    batch *b = batch_get(p);
    uint32_t need = kind == MX_PE_TCP || kind == MX_PE_DNS ? in->caplen : 0;
    int copy = need && !in->stable;         /* a mapped file's bytes stay put */
    if (b->n == BATCH_PKTS || (copy && b->used + need > b->cap)) {
        if (b->n) { publish(p); b = batch_get(p); }
        if (copy && need > b->cap) {
            uint8_t *nd = realloc(b->data, need);
            if (!nd) { kind = MX_PE_CLOCK; need = 0; copy = 0; } else { b->data = nd; b->cap = need; }
        }
    }
    pdata *pd = &b->pkts[b->n];
    if (!b->n) b->first = in->frame;
    pent *en = &b->ents[b->n++];
    en->ts = in->ts_us;
    en->frame = in->frame;
    en->kind = (uint8_t)kind;
    en->sub = 0;
    en->owner = 0;
    if (need) {
        pd->k = *k;
        pd->data = in->data;
        if (copy) {
            uint8_t *d = b->data + b->used;
            memcpy(d, in->data, need);
            b->used += (need + 7) & ~7u;
            if (b->used > b->cap) b->used = b->cap;
            pd->data = d;
            if (k->payload) pd->k.payload = d + (k->payload - in->data);
            if (k->l3) pd->k.l3 = d + (k->l3 - in->data);
        }
        pd->caplen = in->caplen;
        pd->origlen = in->origlen;
        pd->snaplen = in->snaplen;
        pd->linktype = in->linktype;
        pd->h = h;
        /* the upper half picks the worker (the lower is the flow table's) */
        if (kind == MX_PE_TCP) en->owner = (uint8_t)(((h >> 32) * (uint64_t)p->n) >> 32);
    }
    p->last_frame = in->frame;
    p->nticks = 0;
}

void mx_pool_tick(mx_pool *p, uint64_t now_us)
{
    batch *b = batch_get(p);
    if (b->n == BATCH_PKTS) { publish(p); b = batch_get(p); }
    pent *en = &b->ents[b->n++];
    memset(en, 0, sizeof *en);
    en->kind = MX_PE_TICK;
    en->ts = now_us;
    en->frame = p->last_frame;
    en->sub = ++p->nticks;
}

void mx_pool_set_dump(mx_pool *p, mx_pktdump *d) { p->dump = d; }

uint64_t mx_pool_done_frame(mx_pool *p)
{
    uint64_t first = p->cur && p->cur->n && p->cur->first ? p->cur->first : p->last_frame + 1;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < NBATCH; i++)
        if (p->b[i].pending && p->b[i].first && p->b[i].first < first) first = p->b[i].first;
    pthread_mutex_unlock(&p->mu);
    return first - 1;
}

void mx_pool_sync(mx_pool *p, int wait)
{
    if (p->cur && p->cur->n) publish(p);
    if (!wait) { drain(p); return; }
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int busy = 0;
        for (int i = 0; i < NBATCH; i++) busy |= p->b[i].pending;
        pthread_mutex_unlock(&p->mu);
        drain(p);
        if (!busy) return;
        pthread_mutex_lock(&p->mu);
        busy = 0;
        for (int i = 0; i < NBATCH; i++) busy |= p->b[i].pending;
        if (busy) pthread_cond_wait(&p->cv_main, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_workers(mx_pool *p, int quit, const char *reason)
{
    pthread_mutex_lock(&p->mu);
    p->finishing = 1;
    p->quit = quit;
    p->reason = reason;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
}

void mx_pool_finish(mx_pool *p, const char *reason, mx_engine_stats *st)
{
    if (p->cur && p->cur->n) publish(p);
    stop_workers(p, 0, reason);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int all = 1;
        for (int i = 0; i < p->n; i++) all &= p->w[i].finished;
        pthread_mutex_unlock(&p->mu);
        drain(p);
        if (all) break;
        pthread_mutex_lock(&p->mu);
        all = 1;
        for (int i = 0; i < p->n; i++) all &= p->w[i].finished;
        if (!all) pthread_cond_wait(&p->cv_main, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    drain(p);
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        if (w->started) pthread_join(w->th, NULL);
        w->started = 0;
        mx_engine_stats_add(st, &w->st);
        if (mx_sink_failed(w->sink)) mx_sink_set_failed(p->sink);
    }
}

int mx_pool_worker_stats(const mx_pool *p, int i, mx_engine_stats *out)
{
    if (i < 0 || i >= p->n) return 0;
    *out = p->w[i].st;
    return 1;
}

static void chunks_free(chunk *c)
{
    while (c) { chunk *n = c->next; free(c); c = n; }
}

void mx_pool_free(mx_pool *p)
{
    if (!p) return;
    stop_workers(p, 1, "shutdown");
    for (int i = 0; i < p->n; i++)
        if (p->w[i].started) pthread_join(p->w[i].th, NULL);
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        mx_engine_free(w->e);
        mx_sink_free(w->sink);
        free(w->cur);
        chunks_free(w->qhead);
        chunks_free(w->free);
        chunks_free(w->rhead);
    }
    for (int i = 0; i < NBATCH; i++) { free(p->b[i].ents); free(p->b[i].pkts); free(p->b[i].data); }
    free(p->ids);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_main);
    free(p);
}

mx_pool *mx_pool_new(const mx_engine_cfg *cfg, mx_sink *sink, char *err, size_t cap)
{
    size_t sz = (sizeof(mx_pool) + 127) & ~(size_t)127;
    mx_pool *p = aligned_alloc(128, sz);          /* the workers' lines apart */
    if (!p) { snprintf(err, cap, "out of memory"); return NULL; }
    memset(p, 0, sz);
    p->n = cfg->workers > MX_MAX_WORKERS ? MX_MAX_WORKERS : cfg->workers;
    p->sink = sink;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_main, NULL);
    for (int i = 0; i < NBATCH; i++) {
        p->b[i].ents = malloc(BATCH_PKTS * sizeof *p->b[i].ents);
        p->b[i].pkts = malloc(BATCH_PKTS * sizeof *p->b[i].pkts);
        p->b[i].data = malloc(BATCH_BYTES);
        p->b[i].cap = BATCH_BYTES;
        if (!p->b[i].ents || !p->b[i].pkts || !p->b[i].data) { snprintf(err, cap, "out of memory"); mx_pool_free(p); return NULL; }
    }
    /* each worker's engine: the caps shared out among them */
    mx_engine_cfg *wc = &p->wcfg;
    *wc = *cfg;
    wc->workers = 1;
    wc->in_worker = 1;
    uint32_t n = (uint32_t)p->n;
    wc->opt.lim.max_flows = (cfg->opt.lim.max_flows + n - 1) / n;
    wc->opt.lim.max_lingering = (cfg->opt.lim.max_lingering + n - 1) / n;
    wc->opt.lim.memcap = (cfg->opt.lim.memcap + n - 1) / n;
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        w->p = p;
        w->idx = i;
        if (!(w->sink = mx_sink_capture(sink, on_rec, w))) {
            snprintf(err, cap, "out of memory");
            mx_pool_free(p);
            return NULL;
        }
    }
    /* the workers take no signals: the reader's thread handles them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < p->n; i++) {
        if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            snprintf(err, cap, "cannot start worker threads");
            mx_pool_free(p);
            return NULL;
        }
        p->w[i].started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* every engine made, or the first reason one could not be */
    pthread_mutex_lock(&p->mu);
    int bad = -1;
    for (int i = 0; i < p->n; i++) {
        while (!p->w[i].ready) pthread_cond_wait(&p->cv_main, &p->mu);
        if (p->w[i].ready < 0 && bad < 0) bad = i;
    }
    pthread_mutex_unlock(&p->mu);
    if (bad >= 0) {
        snprintf(err, cap, "%s", p->w[bad].err);
        mx_pool_free(p);
        return NULL;
    }
    return p;
}
