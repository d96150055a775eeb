/* attempts.c - delivery attempts across connections (attempts.h). */
#include "mx/attempts.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_OPEN 4096
#define BUCKETS 8192                  /* by the client's address */

/* An open attempt holds only the rows it has (most have one or two): the
 * whole mx_attempt is put together when it ends. */
typedef struct open_att {
    uint64_t no;
    int n, more, cap;
    mx_attempt_row *s;                /* n rows, room for cap               */
    uint64_t last_us;
    uint32_t client_hash;
    struct open_att *prev, *next;     /* by last activity, oldest first */
    struct open_att *chain;           /* the next of its bucket          */
} open_att;

/* The last EHLO replies seen, for STARTTLS that disappears. */
#define OFFERS 256
typedef struct offer { char client[48], server[48]; uint64_t end_us, session; uint32_t h; } offer;

struct mx_attempts {
    uint64_t window_us, next_no;
    open_att *head, *tail;            /* open attempts, least recently active first */
    open_att *bucket[BUCKETS];
    size_t n;
    offer off[OFFERS];                /* STARTTLS offered: client, server, when */
    size_t noff, next_off;
    mx_attempt out;                   /* the one ending, as fn is shown it  */
};

mx_attempts *mx_attempts_new(uint64_t window_us)
{
    mx_attempts *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->window_us = window_us;
    return t;
}

void mx_attempts_free(mx_attempts *t)
{
    if (!t) return;
    for (open_att *o = t->head, *nx; o; o = nx) { nx = o->next; free(o->s); free(o); }
    free(t);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static void unlink_att(mx_attempts *t, open_att *o)
{
    if (o->prev) o->prev->next = o->next; else t->head = o->next;
    if (o->next) o->next->prev = o->prev; else t->tail = o->prev;
    o->prev = o->next = NULL;
}

static void append_att(mx_attempts *t, open_att *o)
{
    o->prev = t->tail;
    o->next = NULL;
    if (t->tail) t->tail->next = o; else t->head = o;
    t->tail = o;
}

/* Ends open attempt o: written if it has more than one connection (or a
 * STARTTLS that disappeared). */
static void end_one(mx_attempts *t, open_att *o, mx_attempt_fn fn, void *ctx)
{
    int stripped = 0;
    for (int k = 0; k < o->n; k++) stripped |= o->s[k].stripped;
    if (o->n + o->more > 1 || stripped) {
        mx_attempt *a = &t->out;
        a->no = ++t->next_no;
        a->n = o->n;
        a->more = o->more;
        memcpy(a->s, o->s, (size_t)o->n * sizeof *o->s);
        fn(ctx, a);
    }
    unlink_att(t, o);
    open_att **pp = &t->bucket[o->client_hash % BUCKETS];
    while (*pp && *pp != o) pp = &(*pp)->chain;
    if (*pp) *pp = o->chain;
    free(o->s);
    free(o);
    t->n--;
}

/* Does r belong with attempt a: the same client, and the same destination,
 * or (when one of them has no domain) the same server. */
static int belongs(const open_att *o, const mx_attempt_row *r, uint32_t h)
{
    const mx_attempt_row *f = &o->s[0];
    if (o->client_hash != h || strcmp(f->client, r->client)) return 0;
    for (int i = 0; i < o->n; i++) {
        const mx_attempt_row *x = &o->s[i];
        if (x->dest[0] && r->dest[0]) {
            if (!strcasecmp(x->dest, r->dest)) return 1;
        } else if (!strcmp(x->server, r->server)) {
            return 1;
        }
    }
    return 0;
}

void mx_attempts_add(mx_attempts *t, const mx_attempt_row *in, mx_attempt_fn fn, void *ctx)
{
    if (!t) return;
    mx_attempt_row row = *in, *r = &row;
    /* STARTTLS: offered by this server to this client within the window,
     * missing now (a middlebox stripping it), or offered now (kept) */
    if (r->ehlo_ok) {
        uint32_t oh = hash(r->client) ^ hash(r->server) * 31u;   /* (compared first) */
        for (size_t k = 0; k < t->noff && !r->starttls_offered; k++) {
            const offer *f = &t->off[k];
            if (f->h == oh && !strcmp(f->client, r->client) && !strcmp(f->server, r->server) && r->start_us <= f->end_us + t->window_us &&
                f->end_us <= r->start_us)
                r->stripped = 1;
        }
        if (r->starttls_offered) {
            offer *f = &t->off[t->next_off];
            memcpy(f->client, r->client, sizeof f->client);
            memcpy(f->server, r->server, sizeof f->server);
            f->client[sizeof f->client - 1] = f->server[sizeof f->server - 1] = 0;
            f->end_us = r->end_us;
            f->session = r->id;
            f->h = oh;
            t->next_off = (t->next_off + 1) % OFFERS;
            if (t->noff < OFFERS) t->noff++;
        }
    }
    /* attempts whose last connection ended a window before this one began
     * (the least recently active come first) */
    while (t->head && r->start_us > t->head->last_us + t->window_us) end_one(t, t->head, fn, ctx);
    uint32_t h = hash(r->client);
    open_att *o = t->bucket[h % BUCKETS];
    while (o && !belongs(o, r, h)) o = o->chain;
    if (!o) {
        if (t->n == MAX_OPEN) end_one(t, t->head, fn, ctx);  /* the least recently active gives way */
        if (!(o = calloc(1, sizeof *o))) return;
        if (!(o->s = malloc(sizeof *o->s))) { free(o); return; }
        o->cap = 1;
        o->client_hash = h;
        o->chain = t->bucket[h % BUCKETS];
        t->bucket[h % BUCKETS] = o;
        append_att(t, o);
        t->n++;
    } else {
        unlink_att(t, o);
        append_att(t, o);
    }
    if (o->n == o->cap && o->cap < MX_ATTEMPT_SESSIONS) {
        mx_attempt_row *ns = realloc(o->s, (size_t)o->cap * 2 * sizeof *ns);
        if (ns) { o->s = ns; o->cap *= 2; }
    }
    if (o->n < o->cap) o->s[o->n++] = *r;
    else o->more++;
    if (r->end_us > o->last_us) o->last_us = r->end_us;
    /* the mail went through, or TLS was established (what followed is not
     * seen: the attempt ends there too) */
    if (r->delivered || r->tls_ok) end_one(t, o, fn, ctx);
}

void mx_attempts_flush(mx_attempts *t, mx_attempt_fn fn, void *ctx)
{
    while (t && t->head) end_one(t, t->head, fn, ctx);
}

/* One connection as the sentence tells it. */
static void step(const mx_attempt_row *s, char *out, size_t cap)
{
    if (s->delivered)
        snprintf(out, cap, "delivered %s on %s", s->tls_ok ? "over TLS" : "in clear text", s->server_name);
    else if (s->tls_ok)
        snprintf(out, cap, "TLS established with %s (what followed is encrypted)", s->server_name);
    else if (s->tls_failed)
        snprintf(out, cap, "TLS failed on %s (%s)", s->server_name, s->cause[0] ? s->cause : s->code);
    else if (s->greylisted)
        snprintf(out, cap, "greylisted by %s (%s)", s->server_name, s->code);
    else
        snprintf(out, cap, "%s on %s%s%s%s", s->code, s->server_name, s->cause[0] ? " (" : "", s->cause,
                 s->cause[0] ? ")" : "");
}

void mx_attempt_judge(const mx_attempt *a, mx_attempt_verdict *v)
{
    memset(v, 0, sizeof *v);
    int tls_failed_before = 0;
    for (int i = 0; i < a->n; i++) {
        const mx_attempt_row *s = &a->s[i];
        if (s->greylisted) v->greylisted = 1;
        if (s->delivered) {
            v->delivered = 1;
            if (tls_failed_before && !s->tls_ok) v->downgrade = 1;
        }
        if (s->tls_ok && !s->delivered) v->tls_only = 1;
        if (s->stripped) v->stripped = 1;
        if (s->tls_failed) tls_failed_before = 1;
        int seen = 0;
        for (int k = 0; k < i; k++) seen |= !strcmp(a->s[k].server, s->server);
        if (!seen) v->servers++;
    }
    size_t o = 0;
    for (int i = 0; i < a->n && o + 1 < sizeof v->explanation; i++) {
        char one[600];
        step(&a->s[i], one, sizeof one);
        o += (size_t)snprintf(v->explanation + o, sizeof v->explanation - o, "%s%s", i ? ", then " : "", one);
    }
    if (o + 1 < sizeof v->explanation && a->more)
        o += (size_t)snprintf(v->explanation + o, sizeof v->explanation - o, ", and %d connections more", a->more);
    if (o + 1 < sizeof v->explanation)
        o += (size_t)snprintf(v->explanation + o, sizeof v->explanation - o, "%s",
                              v->downgrade ? ": a downgrade (TLS failed, then the mail went in clear text)."
                              : v->delivered || v->tls_only ? "." : ": not delivered.");
    if (v->stripped && o + 1 < sizeof v->explanation)
        snprintf(v->explanation + o, sizeof v->explanation - o, "%s",
                 " STARTTLS, offered by the server on an earlier connection, is missing from its EHLO reply here: "
                 "stripped on the way?");
}
