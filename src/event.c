/* event.c - the event builder (the mx_ev_* calls of session.h) and the
 * arenas its trees live in.
 *
 * An event is begun in the arena the sink names for the session (its
 * scratch arena, or the session's own when the views keep the events),
 * filled with typed nodes, and handed to the sink when it ends.  The scratch
 * arena is reset when no event in it is open any more.  Nothing here knows
 * about JSON or any output; wire bytes reach a node only through
 * mx_text_clean().
 */
#include "mx/event.h"
#include "mx/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arenas ------------------------------------------------------------------ */

enum { NODE_BLK = 256, TEXT_BLK = 32 * 1024, TEXT_KEEP = 1 << 20 };

struct mx_nblk { mx_nblk *next; size_t cap; mx_node n[]; };
struct mx_tblk { mx_tblk *next; size_t cap; char t[]; };

/* The size of the next block: a session's arena starts small and doubles. */
static size_t next_cap(const mx_arena *a, size_t cur, size_t full, size_t first)
{
    if (!a->small) return full;
    if (!cur) return first;
    return cur < full ? cur * 2 : full;
}

mx_node *mx_node_new(mx_arena *a, mx_vt vt)
{
    if (!a->ncur || a->nused == a->ncur->cap) {
        mx_nblk *b = a->ncur ? a->ncur->next : a->nfirst;
        if (!b) {
            size_t cap = next_cap(a, a->ncur ? a->ncur->cap : 0, NODE_BLK, 16);
            b = malloc(sizeof *b + cap * sizeof(mx_node));
            if (!b) { a->failed = 1; return NULL; }
            b->next = NULL;
            b->cap = cap;
            a->nbytes += sizeof *b + cap * sizeof(mx_node);
            if (a->ncur) a->ncur->next = b; else a->nfirst = b;
        }
        a->ncur = b;
        a->nused = 0;
    }
    mx_node *n = &a->ncur->n[a->nused++];
    memset(n, 0, sizeof *n);
    n->vt = (uint8_t)vt;
    n->a = a;
    return n;
}

char *mx_arena_text(mx_arena *a, size_t n)
{
    if (a->tcur && a->tcur->cap - a->tused >= n) {
        char *p = a->tcur->t + a->tused;
        a->tused += n;
        return p;
    }
    mx_tblk *b = a->tcur ? a->tcur->next : a->tfirst;
    if (!b || b->cap < n) {
        size_t blk = next_cap(a, a->tcur ? a->tcur->cap : 0, TEXT_BLK, 1024);
        size_t cap = n > blk ? n : blk;
        mx_tblk *nb = malloc(sizeof *nb + cap);
        if (!nb) { a->failed = 1; return NULL; }
        nb->cap = cap;
        nb->next = b;           /* a block too small for n stays for later */
        if (a->tcur) a->tcur->next = nb; else a->tfirst = nb;
        a->tbytes += cap;
        b = nb;
    }
    a->tcur = b;
    a->tused = n;
    return b->t;
}

void mx_arena_reset(mx_arena *a)
{
    a->ncur = a->nfirst;
    a->nused = 0;
    a->failed = 0;
    a->open = 0;
    if (a->tbytes > TEXT_KEEP && a->tfirst) {
        /* one huge event must not pin its memory for the rest of the run */
        mx_tblk *b = a->tfirst->next;
        while (b) { mx_tblk *nx = b->next; free(b); b = nx; }
        a->tfirst->next = NULL;
        a->tbytes = a->tfirst->cap;
    }
    a->tcur = a->tfirst;
    a->tused = 0;
}

void mx_arena_free(mx_arena *a)
{
    for (mx_nblk *b = a->nfirst; b;) { mx_nblk *nx = b->next; free(b); b = nx; }
    for (mx_tblk *b = a->tfirst; b;) { mx_tblk *nx = b->next; free(b); b = nx; }
    memset(a, 0, sizeof *a);
}

/* ---- nodes ------------------------------------------------------------------- */

mx_node *mx_node_str(mx_arena *a, const char *s, size_t n)
{
    char *t = mx_arena_text(a, n + 1);
    mx_node *v = t ? mx_node_new(a, MX_VT_STR) : NULL;
    if (!v) return NULL;
    memcpy(t, s, n);
    t[n] = 0;
    v->v.s = t;
    v->len = (uint32_t)n;
    return v;
}

mx_node *mx_node_lit(mx_arena *a, const char *s)
{
    mx_node *v = mx_node_new(a, MX_VT_STR);
    if (!v) return NULL;
    v->v.s = s;
    v->len = (uint32_t)strlen(s);
    return v;
}

mx_node *mx_node_int(mx_arena *a, int64_t i)
{
    mx_node *v = mx_node_new(a, MX_VT_INT);
    if (v) v->v.i = i;
    return v;
}

mx_node *mx_node_ref(mx_arena *a, const mx_node *src)
{
    if (!src) return NULL;
    mx_node *v = mx_node_new(a, (mx_vt)src->vt);
    if (!v) return NULL;
    v->v = src->v;
    v->len = src->len;
    v->evtype = src->evtype;
    if (src->vt == MX_VT_EVENT) v->head = src->head;
    return v;
}

void mx_node_add(mx_node *p, const char *key, mx_node *v) { mx_node_add_k(p, key, 0, v); }

void mx_node_add_k(mx_node *p, const char *key, size_t klen, mx_node *v)
{
    if (!p || !v || p->vt < MX_VT_OBJ || (v->vt == MX_VT_EVENT && p->vt != MX_VT_ARR)) return;
    if (p->vt != MX_VT_ARR) { v->key = key; v->klen = key && klen < 64 ? (uint16_t)klen : 0; }
    else if (v->vt != MX_VT_EVENT) v->key = NULL;
    v->next = NULL;
    if (p->v.kids.last) p->v.kids.last->next = v;
    else p->v.kids.first = v;
    p->v.kids.last = v;
    p->len++;
}

/* Keys are literals, so the same key is usually the same pointer; a first
 * byte that differs settles most of the rest without strcmp. */
const mx_node *mx_node_get(const mx_node *o, const char *key)
{
    if (!o || (o->vt != MX_VT_OBJ && o->vt != MX_VT_EVENT)) return NULL;
    for (const mx_node *c = o->v.kids.first; c; c = c->next)
        if (c->key == key || (c->key && c->key[0] == key[0] && !strcmp(c->key, key))) return c;
    return NULL;
}

const mx_node *mx_node_at(const mx_node *arr, size_t i)
{
    if (!arr || arr->vt < MX_VT_OBJ) return NULL;
    const mx_node *c = arr->v.kids.first;
    while (c && i--) c = c->next;
    return c;
}

double mx_node_getnum(const mx_node *o, const char *k, double dflt)
{
    const mx_node *v = mx_node_get(o, k);
    if (!v) return dflt;
    switch (v->vt) {
    case MX_VT_INT: case MX_VT_SID: return (double)v->v.i;
    case MX_VT_USEC: return (double)v->v.i / 1e6;
    case MX_VT_NUM: return v->v.d;
    default: return dflt;
    }
}

int64_t mx_node_getint(const mx_node *o, const char *k, int64_t dflt)
{
    const mx_node *v = mx_node_get(o, k);
    return v && (v->vt == MX_VT_INT || v->vt == MX_VT_SID) ? v->v.i : dflt;
}

size_t mx_sid_text(uint64_t id, int width, char out[32])
{
    size_t n = 0;
    if (id & MX_SID_HANDLE) {
        static const char hx[] = "0123456789abcdef";
        out[n++] = MX_SID_MARK;
        out[n++] = (char)('a' + (width & 0x1F));
        for (int i = 15; i >= 0; i--) out[n++] = hx[(id >> (4 * i)) & 15];
        return n;
    }
    char t[24];
    size_t k = 0;
    do t[k++] = (char)('0' + id % 10); while ((id /= 10) && k < sizeof t);
    while (k) out[n++] = t[--k];
    while ((int)n < width && n < 31) out[n++] = ' ';
    return n;
}

uint64_t mx_sid_mark_read(const char *p, int *width)
{
    *width = (p[1] - 'a') & 0x1F;
    /* sixteen lower-case hex digits, eight at a time: '0'-'9' is 0x30-0x39,
     * 'a'-'f' 0x61-0x66 (bit 6 set: add 9 to the low nibble) */
    uint64_t id = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (int h = 0; h < 2; h++) {
        uint64_t w;
        memcpy(&w, p + 2 + 8 * h, 8);
        w = __builtin_bswap64(w);                       /* first digit highest */
        w = (w & 0x0F0F0F0F0F0F0F0Full) + ((w >> 6) & 0x0101010101010101ull) * 9;
        w = (w | w >> 4) & 0x00FF00FF00FF00FFull;       /* pairs of nibbles */
        w = (w | w >> 8) & 0x0000FFFF0000FFFFull;
        w = (w | w >> 16) & 0x00000000FFFFFFFFull;
        id = id << 32 | w;
    }
#else
    for (int i = 2; i < MX_SID_MARK_LEN; i++) {
        char c = p[i];
        id = id << 4 | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
    }
#endif
    return id;
}

/* ---- the builder ----------------------------------------------------------------- */

/* The date and time of day are formatted once per second of capture time
 * (per thread). */
void mx_ev_ts_text(uint64_t us, char out[28])
{
    static _Thread_local int64_t ts_sec = -1;
    static _Thread_local char ts_prefix[24];
    int64_t sec = (int64_t)(us / 1000000u);
    if (sec != ts_sec) {
        char full[40];
        mx_iso_time(us, full, sizeof full);
        memcpy(ts_prefix, full, 19);
        ts_sec = sec;
    }
    memcpy(out, ts_prefix, 19);
    uint32_t frac = (uint32_t)(us % 1000000u);
    out[19] = '.';
    for (int i = 25; i >= 20; i--) { out[i] = (char)('0' + frac % 10); frac /= 10; }
    out[26] = 'Z';
    out[27] = 0;
}

static void set(mx_node *n, mx_vt vt, const char *key)
{
    memset(n, 0, sizeof *n);
    n->vt = (uint8_t)vt;
    n->key = key;
}

const mx_node *mx_ev_head_nodes(const mx_node *e, mx_node out[6], char ts[28])
{
    const mx_evhead *h = mx_node_head(e);
    if (!h) return e && e->vt >= MX_VT_OBJ ? e->v.kids.first : NULL;
    size_t n = 0;
    set(&out[n], MX_VT_STR, "type");
    out[n].v.s = mx_evtype_name((mx_evtype)e->evtype);
    out[n++].len = (uint32_t)strlen(out[0].v.s);
    set(&out[n], MX_VT_SID, "session");
    out[n++].v.i = (int64_t)h->session;
    mx_ev_ts_text(h->ts_us, ts);
    set(&out[n], MX_VT_STR, "ts");
    out[n].v.s = ts;
    out[n++].len = 27;
    set(&out[n], MX_VT_USEC, "t");
    out[n++].v.i = h->t_us;
    set(&out[n], MX_VT_INT, "frame");
    out[n++].v.i = (int64_t)h->frame;
    if (h->from == MX_CLIENT || h->from == MX_SERVER) {
        set(&out[n], MX_VT_STR, "from");
        out[n].v.s = h->from == MX_CLIENT ? "client" : "server";
        out[n++].len = 6;
    }
    for (size_t i = 0; i + 1 < n; i++) out[i].next = &out[i + 1];
    out[n - 1].next = e->v.kids.first;
    return &out[0];
}

mx_node *mx_ev_expand(mx_arena *a, const mx_node *e)
{
    if (!mx_node_head(e)) return mx_node_ref(a, e);
    mx_node tmp[6];
    char ts[28];
    mx_ev_head_nodes(e, tmp, ts);
    mx_node *o = mx_node_new(a, MX_VT_OBJ);
    if (!o) return NULL;
    o->evtype = e->evtype;
    mx_node *prev = NULL;
    for (const mx_node *c = &tmp[0]; c && c != e->v.kids.first; c = c->next) {
        int is_ts = c->vt == MX_VT_STR && c->v.s == ts;     /* the one text not static */
        mx_node *k = is_ts ? mx_node_str(a, ts, 27) : mx_node_new(a, (mx_vt)c->vt);
        if (!k) return NULL;
        if (!is_ts) { k->v = c->v; k->len = c->len; }
        k->key = c->key;
        if (prev) prev->next = k; else o->v.kids.first = k;
        prev = k;
        o->len++;
    }
    /* the event's own members follow, shared */
    prev->next = e->v.kids.first;
    o->v.kids.last = e->v.kids.last ? e->v.kids.last : prev;
    o->len += e->len;
    return o;
}

/* A session's event: its head, members to follow. */
static mx_node *head(mx_arena *a, mx_sess *s, mx_evtype type, int from)
{
    /* the head goes in the text store, on an 8-byte boundary */
    char *p = mx_arena_text(a, 7 + sizeof(mx_evhead));
    mx_node *o = p ? mx_node_new(a, MX_VT_EVENT) : NULL;
    if (!o) return NULL;
    mx_evhead *h = (mx_evhead *)(void *)(((uintptr_t)p + 7) & ~(uintptr_t)7);
    h->session = s->id;
    h->frame = s->cur_frame;
    h->ts_us = s->cur_us;
    h->t_us = (int64_t)(s->cur_us - s->start_us);
    h->from = from;
    o->head = h;
    o->evtype = (uint8_t)type;
    return o;
}

mx_ev *mx_ev_begin(mx_sess *s, mx_evtype type, int from)
{
    mx_arena *a;
    if (s->nevents >= s->opt->lim.max_events && type != MX_EV_SESSION_END) {
        if (s->events_dropped++ == 0) {
            /* Say once that the cap was reached, then count. */
            a = mx_sink_ev_arena(s->sink, s, MX_EV_LIMIT);
            a->open++;
            mx_node *l = head(a, s, MX_EV_LIMIT, MX_NODIR);
            mx_ev_lit(l, "limit", "max_events");
            mx_ev_int(l, "value", s->opt->lim.max_events);
            if (l) mx_ev_end(s, l);
            else if (--a->open == 0 && !a->keep) mx_arena_reset(a);
        }
        return NULL;
    }
    s->nevents++;
    a = mx_sink_ev_arena(s->sink, s, type);
    a->open++;
    mx_node *o = head(a, s, type, from);
    if (!o) {
        if (--a->open == 0 && !a->keep) mx_arena_reset(a);
        return NULL;
    }
    return o;
}

void mx_ev_end(mx_sess *s, mx_ev *e)
{
    if (!e) return;
    mx_arena *a = e->a;
    mx_sink_ev_done(s->sink, s, e);
    if (--a->open <= 0) {
        a->open = 0;
        if (!a->keep) mx_arena_reset(a);
    }
}

/* The single path from wire bytes to an event's text. */
void mx_ev_wire_k(mx_ev *e, const char *key, size_t kl, const uint8_t *p, size_t n, size_t maxin)
{
    if (!e) return;
    mx_arena *a = e->a;
    size_t in = n < maxin ? n : maxin, cap = in * 3 + 4, outlen;
    char *buf = mx_arena_text(a, cap);
    if (!buf) return;
    int fl = mx_text_clean(p, n, maxin, buf, cap, &outlen);
    a->tused -= cap - (outlen + 1);     /* buf is the arena's last allocation */
    mx_node *v = mx_node_new(a, MX_VT_STR);
    if (!v) return;
    v->v.s = buf;
    v->len = (uint32_t)outlen;
    mx_node_add_k(e, key, kl, v);
    if ((fl & MX_TEXT_TRUNCATED) && key && e->vt != MX_VT_ARR) {
        char *k2 = mx_arena_text(a, kl + sizeof "_truncated");
        if (!k2) return;
        memcpy(k2, key, kl);
        memcpy(k2 + kl, "_truncated", sizeof "_truncated");
        mx_node_add_k(e, k2, kl + sizeof "_truncated" - 1, mx_node_new(a, MX_VT_TRUE));
    }
}

void mx_ev_str_k(mx_ev *e, const char *key, size_t kl, const char *s)
{
    if (e && s) mx_node_add_k(e, key, kl, mx_node_str(e->a, s, strlen(s)));
}

void mx_ev_lit_k(mx_ev *e, const char *key, size_t kl, const char *s)
{
    if (e && s) mx_node_add_k(e, key, kl, mx_node_lit(e->a, s));
}

void mx_ev_int_k(mx_ev *e, const char *key, size_t kl, int64_t v)
{
    if (!e) return;
    /* Above 2^53 a double loses digits: write such values as strings. */
    if (v > (1LL << 53) || v < -(1LL << 53)) {
        char b[32];
        int n = snprintf(b, sizeof b, "%lld", (long long)v);
        mx_node_add_k(e, key, kl, mx_node_str(e->a, b, (size_t)n));
    } else {
        mx_node_add_k(e, key, kl, mx_node_int(e->a, v));
    }
}

void mx_ev_num_k(mx_ev *e, const char *key, size_t kl, double v)
{
    if (!e) return;
    mx_node *n = mx_node_new(e->a, MX_VT_NUM);
    if (n) n->v.d = v;
    mx_node_add_k(e, key, kl, n);
}

void mx_ev_seconds_k(mx_ev *e, const char *key, size_t kl, uint64_t us)
{
    if (!e) return;
    mx_node *n = mx_node_new(e->a, MX_VT_USEC);
    if (n) n->v.i = (int64_t)us;
    mx_node_add_k(e, key, kl, n);
}

void mx_ev_bool_k(mx_ev *e, const char *key, size_t kl, int v)
{
    if (e) mx_node_add_k(e, key, kl, mx_node_new(e->a, v ? MX_VT_TRUE : MX_VT_FALSE));
}

void mx_ev_null_k(mx_ev *e, const char *key, size_t kl) { if (e) mx_node_add_k(e, key, kl, mx_node_new(e->a, MX_VT_NULL)); }

mx_ev *mx_ev_obj_k(mx_ev *e, const char *key, size_t kl)
{
    if (!e) return NULL;
    mx_node *o = mx_node_new(e->a, MX_VT_OBJ);
    mx_node_add_k(e, key, kl, o);
    return o;
}

mx_ev *mx_ev_arr_k(mx_ev *e, const char *key, size_t kl)
{
    if (!e) return NULL;
    mx_node *o = mx_node_new(e->a, MX_VT_ARR);
    mx_node_add_k(e, key, kl, o);
    return o;
}

void mx_ev_push_wire(mx_ev *a, const uint8_t *p, size_t n, size_t cap) { mx_ev_wire_k(a, NULL, 0, p, n, cap); }
void mx_ev_push_str(mx_ev *a, const char *s) { mx_ev_str_k(a, NULL, 0, s); }
void mx_ev_push_lit(mx_ev *a, const char *s) { mx_ev_lit_k(a, NULL, 0, s); }
void mx_ev_push_int(mx_ev *a, int64_t v) { mx_ev_int_k(a, NULL, 0, v); }
mx_ev *mx_ev_push_obj(mx_ev *a) { return mx_ev_obj_k(a, NULL, 0); }

void mx_ev_endpoint_k(mx_ev *e, const char *key, size_t kl, const mx_addr *a, uint16_t port)
{
    if (!e) return;
    char ip[64];
    mx_addr_str(a, ip, sizeof ip);
    mx_ev *o = mx_ev_obj_k(e, key, kl);
    mx_ev_str(o, "ip", ip);
    if (o) mx_node_add_k(o, "port", 4, mx_node_int(o->a, port));
}
