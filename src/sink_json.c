/* sink_json.c - JSON output (timeline and ndjson); the only user of cJSON.
 *
 * An event is a cJSON object from mx_ev_begin() to mx_ev_end(), printed at
 * mx_ev_end() through one reused buffer (cJSON_PrintPreallocated): in ndjson
 * mode straight to the output, in the other modes into the session's text,
 * which is written when the session ends.
 *
 * The event's nodes and texts come from two arenas the sink owns (struct
 * arena below), reset when the last open event ends: once they have grown to
 * the size of the largest event, building and printing an event allocates
 * nothing.  The nodes are cJSON's public struct, linked with cJSON's own
 * calls, and never handed to cJSON_Delete().
 * Wire bytes reach cJSON only through mx_text_clean().
 */
#define _GNU_SOURCE 1              /* memmem */
#include "mx/sink.h"
#include "mx/output.h"
#include "mx/text.h"
#include "mx/view.h"
#include "render_ecs.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the event arena ---------------------------------------------------- */

enum { NODE_BLK = 256, TEXT_BLK = 32 * 1024, TEXT_KEEP = 1 << 20 };

/* Every node knows its arena, so that mx_ev_* calls need only the handle.
 * The cJSON struct comes first: a node is linked as a plain cJSON. */
struct mx_ev {
    cJSON j;
    struct arena *a;
    int evtype;                 /* a top-level event's mx_evtype */
};

typedef struct nblk { struct nblk *next; size_t cap; mx_ev n[]; } nblk;
typedef struct tblk { struct tblk *next; size_t cap; char t[]; } tblk;

typedef struct arena {
    nblk *nfirst, *ncur;        /* node blocks; ncur is being filled     */
    size_t nused;               /* nodes used in ncur                     */
    tblk *tfirst, *tcur;        /* text blocks; tcur is being filled      */
    size_t tused;               /* bytes used in tcur                     */
    size_t tbytes;              /* capacity of all text blocks            */
    int open;                   /* events begun and not yet ended         */
    int failed;                 /* out of memory since the last reset     */
    int small;                  /* a session's: blocks start small, double */
    size_t nbytes;              /* size of all node blocks                */
} arena;

/* One output and the renderer that feeds it. */
typedef struct sink_out {
    mx_format fmt;
    mx_output *o;
    FILE *f;                    /* mx_output_file(o)                 */
    int color, owned;
    uint64_t sessions;
    mx_view_row *rows;          /* HTML index                        */
    size_t nrows, rows_cap, rows_dropped;
} sink_out;

enum { MAX_OUTS = 16, POOL = 64, POOL_KEEP = 64 * 1024 };

struct mx_sink {
    arena ar;
    const mx_opts *opt;
    char *buf;
    size_t cap;
    int failed;
    sink_out outs[MAX_OUTS];
    int nouts;
    int n_native, n_ecs;          /* outputs of ndjson, ecs                    */
    int n_text_doc, n_tree;       /* documents written from text / from trees  */
    arena pool[POOL];             /* ended sessions' tree arenas, for reuse    */
    int npool;
    int64_t ts_sec;             /* second whose text is in ts_prefix */
    char ts_prefix[24];         /* "YYYY-MM-DDTHH:MM:SS"             */
};

static cJSON *node(arena *a, int type)
{
    if (!a->ncur || a->nused == a->ncur->cap) {
        nblk *b = a->ncur ? a->ncur->next : a->nfirst;
        if (!b) {
            size_t cap = !a->small ? NODE_BLK : a->ncur && a->ncur->cap < NODE_BLK ? a->ncur->cap * 2 : a->ncur ? NODE_BLK : 16;
            b = malloc(sizeof *b + cap * sizeof(mx_ev));
            if (!b) { a->failed = 1; return NULL; }
            b->next = NULL;
            b->cap = cap;
            a->nbytes += sizeof *b + cap * sizeof(mx_ev);
            if (a->ncur) a->ncur->next = b; else a->nfirst = b;
        }
        a->ncur = b;
        a->nused = 0;
    }
    mx_ev *n = &a->ncur->n[a->nused++];
    memset(n, 0, sizeof *n);
    n->j.type = type;
    n->a = a;
    return &n->j;
}

/* n bytes of text space that stay put until the next reset. */
static char *text(arena *a, size_t n)
{
    if (a->tcur && a->tcur->cap - a->tused >= n) {
        char *p = a->tcur->t + a->tused;
        a->tused += n;
        return p;
    }
    tblk *b = a->tcur ? a->tcur->next : a->tfirst;
    if (!b || b->cap < n) {
        size_t blk = !a->small ? TEXT_BLK : a->tcur && a->tcur->cap < TEXT_BLK ? a->tcur->cap * 2 : a->tcur ? TEXT_BLK : 1024;
        size_t cap = n > blk ? n : blk;
        tblk *nb = malloc(sizeof *nb + cap);
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

static void arena_reset(arena *a)
{
    a->ncur = a->nfirst;
    a->nused = 0;
    a->failed = 0;
    if (a->tbytes > TEXT_KEEP && a->tfirst) {
        /* one huge event must not pin its memory for the rest of the run */
        tblk *b = a->tfirst->next;
        while (b) { tblk *nx = b->next; free(b); b = nx; }
        a->tfirst->next = NULL;
        a->tbytes = a->tfirst->cap;
    }
    a->tcur = a->tfirst;
    a->tused = 0;
}

static void arena_free(arena *a)
{
    for (nblk *b = a->nfirst; b;) { nblk *nx = b->next; free(b); b = nx; }
    for (tblk *b = a->tfirst; b;) { tblk *nx = b->next; free(b); b = nx; }
    memset(a, 0, sizeof *a);
}

/* A node of the given type (string or raw JSON) whose text is copied into
 * the arena; cJSON escapes a string's text when printing. */
static cJSON *text_node(arena *a, int type, const char *s, size_t n)
{
    char *t = text(a, n + 1);
    cJSON *v = t ? node(a, type | cJSON_IsReference) : NULL;
    if (!v) return NULL;
    memcpy(t, s, n);
    t[n] = 0;
    v->valuestring = t;
    return v;
}

static cJSON *str_node(arena *a, const char *s, size_t n) { return text_node(a, cJSON_String, s, n); }
static cJSON *raw_node(arena *a, const char *s, size_t n) { return text_node(a, cJSON_Raw, s, n); }

/* A string node that refers to static text. */
static cJSON *lit_node(arena *a, const char *s)
{
    cJSON *v = node(a, cJSON_String | cJSON_IsReference);
    if (v) v->valuestring = (char *)(uintptr_t)s;
    return v;
}

/* ---- fast number and time text ---------------------------------------------
 * cJSON prints every number with printf("%1.15g") and reads it back with
 * sscanf to check it; for the integers and microsecond times that make up
 * most of an event, writing the digits ourselves (as a raw JSON value) is
 * several times cheaper. */

static size_t u64_digits(uint64_t v, char *out)
{
    char tmp[24];
    size_t n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = 0;
    return n;
}

static cJSON *raw_i64(arena *a, int64_t v)
{
    char b[24];
    size_t n;
    if (v < 0) { b[0] = '-'; n = 1 + u64_digits((uint64_t)-(v + 1) + 1, b + 1); }
    else n = u64_digits((uint64_t)v, b);
    return raw_node(a, b, n);
}

/* Microseconds as seconds: "0", "0.00142", "12.5". */
static cJSON *raw_seconds(arena *a, uint64_t us)
{
    char b[32];
    size_t n = u64_digits(us / 1000000u, b);
    uint32_t frac = (uint32_t)(us % 1000000u);
    if (frac) {
        b[n++] = '.';
        for (uint32_t d = 100000; d && frac; d /= 10) { b[n++] = (char)('0' + frac / d); frac %= d; }
        b[n] = 0;
    }
    return raw_node(a, b, n);
}

/* ISO-8601 UTC with microseconds; the date and time of day are formatted
 * once per second of capture time. */
static void ts_text(mx_sink *k, uint64_t us, char *out)
{
    int64_t sec = (int64_t)(us / 1000000u);
    if (sec != k->ts_sec || !k->ts_prefix[0]) {
        char full[40];
        mx_iso_time(us, full, sizeof full);
        memcpy(k->ts_prefix, full, 19);
        k->ts_prefix[19] = 0;
        k->ts_sec = sec;
    }
    memcpy(out, k->ts_prefix, 19);
    uint32_t frac = (uint32_t)(us % 1000000u);
    out[19] = '.';
    for (int i = 25; i >= 20; i--) { out[i] = (char)('0' + frac % 10); frac /= 10; }
    out[26] = 'Z';
    out[27] = 0;
}

#define MAX_HTML_ROWS 100000

/* Formats that write a whole session document when it ends. */
static int is_doc(mx_format f) { return f != MX_FMT_NDJSON && f != MX_FMT_ECS; }

/* Printed events joined by a separator. */
typedef struct tbuf {
    char *txt;
    size_t len, cap;
    uint32_t nev;
} tbuf;

/* A session's events are printed as they end and their text kept for the
 * session documents (joined by commas); freeing each event at once keeps the
 * heap tidy, and the text is far smaller than the trees.  The timeline
 * document is written around it at the end; the human views parse it back
 * into a tree.  Held-back sessions (--any-port) keep their ndjson and ECS
 * lines until they are confirmed. */
typedef struct sess_out {
    tbuf doc;               /* native events, for the documents          */
    tbuf pend_native;       /* lines held back (deferred)                 */
    tbuf pend_ecs;
    arena tree;             /* copies of the events, for the views       */
    cJSON *events;          /* their array, in tree                       */
    int deferred;
    uint64_t last_us;
} sess_out;

#define J(e) (&(e)->j)
#define EV(c) ((mx_ev *)(void *)(c))   /* c came from node() */

mx_sink *mx_sink_create(const mx_opts *opt)
{
    mx_sink *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->opt = opt;
    k->cap = 1 << 16;
    k->buf = malloc(k->cap);
    if (!k->buf) { free(k); return NULL; }
    return k;
}

int mx_sink_add(mx_sink *k, mx_format fmt, mx_output *o, int color)
{
    if (!o || k->nouts == MAX_OUTS) return 0;
    sink_out *so = &k->outs[k->nouts++];
    memset(so, 0, sizeof *so);
    so->fmt = fmt;
    so->o = o;
    so->f = mx_output_file(o);
    so->color = color;
    if (fmt == MX_FMT_NDJSON) k->n_native++;
    else if (fmt == MX_FMT_ECS) k->n_ecs++;
    if (fmt == MX_FMT_TIMELINE && !k->opt->pretty) k->n_text_doc++;
    else if (is_doc(fmt)) k->n_tree++;
    return 1;
}

mx_sink *mx_sink_new(mx_format fmt, FILE *out, const mx_opts *opt, int color)
{
    mx_sink *k = mx_sink_create(opt);
    mx_output *o = k ? mx_output_stream(out, "(stream)") : NULL;
    if (!o || !mx_sink_add(k, fmt, o, color)) {
        mx_output_free(o);
        mx_sink_free(k);
        return NULL;
    }
    k->outs[0].owned = 1;
    return k;
}

int mx_sink_failed(const mx_sink *k)
{
    if (k->failed) return 1;
    for (int i = 0; i < k->nouts; i++)
        if (mx_output_failed(k->outs[i].o)) return 1;
    return 0;
}

static void drop_note(mx_sink *k, sink_out *so, int final);

static void put_text(mx_sink *k, sink_out *so, const char *t, size_t n)
{
    if (n && fwrite(t, 1, n, so->f) != n) k->failed = 1;
}

static void end_record(sink_out *so, const char *tag) { mx_output_commit(so->o, tag); }

void mx_sink_finish(mx_sink *k)
{
    for (int i = 0; i < k->nouts; i++) {
        sink_out *so = &k->outs[i];
        drop_note(k, so, 1);
        if (so->fmt == MX_FMT_HTML) {
            if (!so->sessions) mx_view_html_begin(so->f);
            mx_view_html_end(so->f, so->rows, so->nrows, so->rows_dropped);
            end_record(so, "report");
        }
        if (fflush(so->f) != 0) k->failed = 1;
    }
}

void mx_sink_free(mx_sink *k)
{
    if (!k) return;
    arena_free(&k->ar);
    for (int i = 0; i < k->npool; i++) arena_free(&k->pool[i]);
    for (int i = 0; i < k->nouts; i++) {
        free(k->outs[i].rows);
        if (k->outs[i].owned) mx_output_free(k->outs[i].o);
    }
    free(k->buf);
    free(k);
}

static void html_row(sink_out *k, const cJSON *doc)
{
    if (k->nrows >= MAX_HTML_ROWS) { k->rows_dropped++; return; }
    if (k->nrows == k->rows_cap) {
        size_t nc = k->rows_cap ? k->rows_cap * 2 : 64;
        mx_view_row *nr = realloc(k->rows, nc * sizeof *nr);
        if (!nr) { k->rows_dropped++; return; }
        k->rows = nr;
        k->rows_cap = nc;
    }
    mx_view_row *r = &k->rows[k->nrows++];
    memset(r, 0, sizeof *r);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(doc, "client"), *sv = cJSON_GetObjectItemCaseSensitive(doc, "server");
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(doc, "events");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(evs, cJSON_GetArraySize(evs) - 1), "verdict");
    r->id = (uint64_t)mx_view_num(doc, "session", 0);
    const char *cip = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "ip"));
    const char *sip = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sv, "ip"));
    snprintf(r->client, sizeof r->client, "%s:%.0f", cip ? cip : "?", mx_view_num(c, "port", 0));
    snprintf(r->server, sizeof r->server, "%s:%.0f", sip ? sip : "?", mx_view_num(sv, "port", 0));
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "code"));
    const char *ex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "explanation"));
    snprintf(r->code, sizeof r->code, "%s", code ? code : "none");
    snprintf(r->explanation, sizeof r->explanation, "%s", ex ? ex : "");
    r->ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "ok"));
}

static int grow(mx_sink *k)
{
    if (k->cap >= (1u << 30)) { k->failed = 1; return 0; }
    char *nb = realloc(k->buf, k->cap * 2);
    if (!nb) { k->failed = 1; return 0; }
    k->buf = nb;
    k->cap *= 2;
    return 1;
}

/* cJSON leaves U+0085, U+2028 and U+2029 as raw UTF-8, which readers that
 * split lines on them (JavaScript, some log shippers) take for line ends.
 * They can only stand inside strings here, so \uNNNN is an exact rewrite. */
static int escape_line_separators(mx_sink *k)
{
    /* \u2028 takes 6 bytes for 3 (3 more), \u0085 6 for 2 (4 more) */
    size_t n = strlen(k->buf), extra = 0;
    for (const char *p = k->buf; (p = memchr(p, 0xE2, n - (size_t)(p - k->buf))) != NULL; p++)
        if (p[1] == (char)0x80 && (p[2] == (char)0xA8 || p[2] == (char)0xA9)) extra += 3;
    for (const char *p = k->buf; (p = memchr(p, 0xC2, n - (size_t)(p - k->buf))) != NULL; p++)
        if (p[1] == (char)0x85) extra += 4;
    if (!extra) return 1;
    while (n + extra + 1 > k->cap)
        if (!grow(k)) return 0;
    /* rewrite from the end so every byte moves once */
    char *src = k->buf + n, *dst = k->buf + n + extra;
    *dst = 0;
    while (src > k->buf) {
        src--;
        unsigned cp = 0;
        if (src >= k->buf + 2 && (unsigned char)src[-2] == 0xE2 && (unsigned char)src[-1] == 0x80 &&
            ((unsigned char)src[0] == 0xA8 || (unsigned char)src[0] == 0xA9)) { cp = 0x2000u + ((unsigned char)src[0] - 0x80u); src -= 2; }
        else if (src >= k->buf + 1 && (unsigned char)src[-1] == 0xC2 && (unsigned char)src[0] == 0x85) { cp = 0x85; src -= 1; }
        if (cp) {
            static const char hx[] = "0123456789abcdef";
            dst -= 6;
            dst[0] = '\\'; dst[1] = 'u';
            dst[2] = hx[(cp >> 12) & 15]; dst[3] = hx[(cp >> 8) & 15]; dst[4] = hx[(cp >> 4) & 15]; dst[5] = hx[cp & 15];
        } else {
            *--dst = *src;
        }
    }
    return 1;
}

/* Prints obj into the sink's reused buffer; NULL if it cannot. */
static const char *print(mx_sink *k, const cJSON *obj, int pretty)
{
    while (!cJSON_PrintPreallocated((cJSON *)obj, k->buf, (int)k->cap, pretty))
        if (!grow(k)) return NULL;
    if (!escape_line_separators(k)) return NULL;
    return k->buf;
}

/* Writes one line (an event) to an output as one record. */
static void put_line(mx_sink *k, sink_out *so, const char *t, size_t n, const char *tag)
{
    drop_note(k, so, 0);
    put_text(k, so, t, n);
    if (fputc('\n', so->f) == EOF) k->failed = 1;
    end_record(so, tag);
}

/* Appends one printed event to a kept text. */
static void keep_text(tbuf *o, const char *t, char sep)
{
    size_t n = strlen(t), need = o->len + n + 2;
    if (need > o->cap) {
        size_t nc = o->cap ? o->cap : 1024;
        while (nc < need) nc *= 2;
        char *nb = realloc(o->txt, nc);
        if (!nb) return;
        o->txt = nb;
        o->cap = nc;
    }
    if (o->nev++) o->txt[o->len++] = sep;
    memcpy(o->txt + o->len, t, n);
    o->len += n;
    o->txt[o->len] = 0;
}

static void tbuf_free(tbuf *b)
{
    free(b->txt);
    memset(b, 0, sizeof *b);
}

/* The event type a printed line names, for the record's tag: native lines
 * begin with their "type", ECS lines carry it as event.action. */
static const char *line_tag(const char *line, size_t n, const char *key, char *out, size_t cap)
{
    const char *p = memmem(line, n, key, strlen(key));
    out[0] = 0;
    if (p) {
        p += strlen(key);
        size_t i = 0;
        while (p + i < line + n && p[i] != '"' && i + 1 < cap) { out[i] = p[i]; i++; }
        out[i] = 0;
    }
    return out;
}

/* Writes held-back lines to every output of the format, one record each. */
static void release_lines(mx_sink *k, tbuf *b, mx_format fmt)
{
    const char *key = fmt == MX_FMT_ECS ? "\"action\":\"" : "\"type\":\"";
    if (!b->txt) return;
    for (const char *p = b->txt, *end = b->txt + b->len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char tag[64];
        line_tag(p, n, key, tag, sizeof tag);
        for (int i = 0; i < k->nouts; i++)
            if (k->outs[i].fmt == fmt) put_line(k, &k->outs[i], p, n, tag);
        p += n + 1;
    }
}

void mx_sink_session_begin(mx_sink *k, mx_sess *s)
{
    (void)k;
    s->out = calloc(1, sizeof(sess_out));
}

void mx_sink_session_defer(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    (void)k;
    if (!o) return;
    o->deferred = 1;
}

void mx_sink_session_confirm(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    if (!o || !o->deferred) return;
    o->deferred = 0;
    release_lines(k, &o->pend_native, MX_FMT_NDJSON);
    release_lines(k, &o->pend_ecs, MX_FMT_ECS);
    tbuf_free(&o->pend_native);
    tbuf_free(&o->pend_ecs);
}

/* Links v under obj: by key (a literal, referred to) or, in an array, last. */
static void link(cJSON *obj, const char *key, cJSON *v)
{
    if (!obj || !v) return;
    if (cJSON_IsArray(obj)) cJSON_AddItemToArray(obj, v);
    else cJSON_AddItemToObjectCS(obj, key, v);
}

static void add_endpoint(arena *ar, cJSON *obj, const char *key, const mx_addr *a, uint16_t port)
{
    char ip[64];
    mx_addr_str(a, ip, sizeof ip);
    cJSON *e = node(ar, cJSON_Object);
    link(obj, key, e);
    link(e, "ip", str_node(ar, ip, strlen(ip)));
    link(e, "port", raw_i64(ar, port));
}

/* Renders a parsed session document to one output. */
static void render_doc(mx_sink *k, sink_out *so, const cJSON *doc)
{
    drop_note(k, so, 0);
    switch (so->fmt) {
    case MX_FMT_TEXT: mx_view_text_session(so->f, doc, so->color); break;
    case MX_FMT_SUMMARY:
        if (!so->sessions) { mx_view_summary_header(so->f); end_record(so, "header"); }
        mx_view_summary_session(so->f, doc, so->color);
        break;
    case MX_FMT_HTML:
        if (!so->sessions) mx_view_html_begin(so->f);
        mx_view_html_session(so->f, doc);
        html_row(so, doc);
        break;
    default: {
        const char *t = print(k, doc, 1);
        if (t) put_text(k, so, t, strlen(t));
        if (fputc('\n', so->f) == EOF) k->failed = 1;
        break;
    }
    }
    so->sessions++;
    end_record(so, "session");
}

/* Whether an output takes the document as a parsed tree (not as text). */
static int wants_tree(const mx_sink *k, const sink_out *so)
{
    return is_doc(so->fmt) && !(so->fmt == MX_FMT_TIMELINE && !k->opt->pretty);
}

/* The document's own fields, built in arena ar (the events follow). */
static cJSON *doc_head(arena *ar, const mx_sess *s, const sess_out *o)
{
    char t[40];
    cJSON *d = node(ar, cJSON_Object);
    link(d, "session", raw_i64(ar, (int64_t)s->id));
    if (s->community_id[0]) link(d, "community_id", str_node(ar, s->community_id, strlen(s->community_id)));
    add_endpoint(ar, d, "client", &s->cli, s->cli_port);
    add_endpoint(ar, d, "server", &s->srv, s->srv_port);
    mx_iso_time(s->start_us, t, sizeof t);
    link(d, "start", str_node(ar, t, strlen(t)));
    mx_iso_time(o->last_us, t, sizeof t);
    link(d, "end", str_node(ar, t, strlen(t)));
    link(d, "duration", raw_seconds(ar, o->last_us - s->start_us));
    return d;
}

void mx_sink_session_end(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    if (!o) return;
    if (k->n_text_doc) {
        /* the timeline: the header's fields, then the events' kept text */
        arena *ar = &k->ar;
        ar->open++;
        cJSON *d = doc_head(ar, s, o);
        const char *head = ar->failed || !d ? NULL : print(k, d, 0);
        if (!head) k->failed = 1;
        if (--ar->open == 0) arena_reset(ar);
        if (head) {
            size_t hl = strlen(head) - 1;       /* without its closing brace */
            for (int i = 0; i < k->nouts; i++) {
                sink_out *so = &k->outs[i];
                if (so->fmt != MX_FMT_TIMELINE || wants_tree(k, so)) continue;
                drop_note(k, so, 0);
                put_text(k, so, head, hl);
                put_text(k, so, ",\"events\":[", 11);
                put_text(k, so, o->doc.txt, o->doc.len);
                put_text(k, so, "]}\n", 3);
                so->sessions++;
                end_record(so, "session");
            }
        }
    }
    if (k->n_tree) {
        /* the views walk the session's events where they are */
        arena *ar = &o->tree;
        ar->small = 1;
        cJSON *d = doc_head(ar, s, o);
        cJSON *evs = o->events ? o->events : node(ar, cJSON_Array);
        link(d, "events", evs);
        if (!d || !evs || ar->failed) {
            k->failed = 1;
        } else {
            for (int i = 0; i < k->nouts; i++)
                if (wants_tree(k, &k->outs[i])) render_doc(k, &k->outs[i], d);
        }
    }
    mx_sink_session_drop(k, s);
}

void mx_sink_session_drop(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    if (!o) return;
    tbuf_free(&o->doc);
    tbuf_free(&o->pend_native);
    tbuf_free(&o->pend_ecs);
    if (o->tree.nfirst && k->npool < POOL && o->tree.nbytes + o->tree.tbytes <= POOL_KEEP) {
        /* the next session takes its blocks, instead of malloc and free */
        arena_reset(&o->tree);
        k->pool[k->npool++] = o->tree;
    } else {
        arena_free(&o->tree);
    }
    free(o);
    s->out = NULL;
}

/* ---- events -------------------------------------------------------------- */

mx_ev *mx_ev_begin(mx_sess *s, mx_evtype type, int from)
{
    char t[40];
    mx_sink *k = s->sink;
    arena *a = &k->ar;
    if (s->nevents >= s->opt->lim.max_events && type != MX_EV_SESSION_END) {
        if (s->events_dropped++ == 0) {
            /* Say once that the cap was reached, then count. */
            a->open++;
            mx_ev *l = EV(node(a, cJSON_Object));
            if (l) {
                l->evtype = MX_EV_LIMIT;
                link(J(l), "type", lit_node(a, mx_evtype_name(MX_EV_LIMIT)));
                link(J(l), "session", raw_i64(a, (int64_t)s->id));
                ts_text(k, s->cur_us, t);
                link(J(l), "ts", str_node(a, t, 27));
                link(J(l), "t", raw_seconds(a, s->cur_us - s->start_us));
                link(J(l), "frame", raw_i64(a, (int64_t)s->cur_frame));
                link(J(l), "limit", lit_node(a, "max_events"));
                link(J(l), "value", raw_i64(a, s->opt->lim.max_events));
            }
            mx_ev_end(s, l);
            if (!l && --a->open == 0) arena_reset(a);
        }
        return NULL;
    }
    s->nevents++;
    a->open++;
    cJSON *o = node(a, cJSON_Object);
    if (!o) {
        if (--a->open == 0) arena_reset(a);
        return NULL;
    }
    EV(o)->evtype = (int)type;
    link(o, "type", lit_node(a, mx_evtype_name(type)));
    link(o, "session", raw_i64(a, (int64_t)s->id));
    ts_text(k, s->cur_us, t);
    link(o, "ts", str_node(a, t, 27));
    link(o, "t", raw_seconds(a, s->cur_us - s->start_us));
    link(o, "frame", raw_i64(a, (int64_t)s->cur_frame));
    if (from == MX_CLIENT) link(o, "from", lit_node(a, "client"));
    else if (from == MX_SERVER) link(o, "from", lit_node(a, "server"));
    return EV(o);
}

static cJSON *ecs_node(void *ctx, int type) { return node(ctx, type); }
static cJSON *ecs_text(void *ctx, const char *s, size_t n) { return str_node(ctx, s, n); }
static cJSON *ecs_num(void *ctx, double v) { return raw_i64(ctx, (int64_t)v); }

/* The event in ECS, its nodes from the same arena (gone at its reset). */
static cJSON *ecs(mx_sess *s, mx_ev *e)
{
    mx_ecs_alloc al = { e->a, ecs_node, ecs_text, ecs_num };
    cJSON *r = mx_ecs_wrap(&al, s, (mx_evtype)e->evtype, J(e));
    return r && !e->a->failed ? r : NULL;
}

/* A copy of an event's tree in arena d, for a session's views: the event
 * arena is reset when the event ends. */
static int in_arena(const arena *a, const char *p)
{
    for (const tblk *b = a->tfirst; b; b = b->next)
        if (p >= b->t && p < b->t + b->cap) return 1;
    return 0;
}

/* Text at p copied into d, unless it is not in the event arena (a literal:
 * keys, fixed values), which outlives every session. */
static char *keep_str(arena *d, const arena *from, char *p)
{
    if (!in_arena(from, p)) return p;
    size_t n = strlen(p);
    char *t = text(d, n + 1);
    if (t) memcpy(t, p, n + 1);
    return t;
}

static cJSON *copy_tree(arena *d, const arena *from, const cJSON *src)
{
    cJSON *c = node(d, 0);
    if (!c) return NULL;
    *c = *src;
    c->next = c->prev = c->child = NULL;
    if (src->string) {
        if (!(c->string = keep_str(d, from, src->string))) return NULL;
        c->type |= cJSON_StringIsConst;
    }
    if (src->valuestring) {
        if (!(c->valuestring = keep_str(d, from, src->valuestring))) return NULL;
        c->type |= cJSON_IsReference;
    }
    for (const cJSON *ch = src->child; ch; ch = ch->next) {
        cJSON *cc = copy_tree(d, from, ch);
        if (!cc) return NULL;
        /* cJSON's list: the first child's prev is the last */
        if (!c->child) { c->child = cc; cc->prev = cc; }
        else { cJSON *last = c->child->prev; last->next = cc; cc->prev = last; c->child->prev = cc; }
    }
    return c;
}

/* An output.drop event, written into an output whose collector lost
 * records once it takes them again.  It is built and printed apart from
 * the event being written (which is in the sink's buffer). */
static void drop_note(mx_sink *k, sink_out *so, int final)
{
    uint64_t dropped, first_us;
    int outage;
    if (!mx_output_drop_report(so->o, &dropped, &first_us, &outage, final)) return;
    arena *a = &k->ar;
    char t[40];
    a->open++;
    mx_ev *ev = EV(node(a, cJSON_Object));
    if (ev) {
        ev->evtype = MX_EV_OUTPUT_DROP;
        link(J(ev), "type", lit_node(a, mx_evtype_name(MX_EV_OUTPUT_DROP)));
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        mx_iso_time((uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u, t, sizeof t);
        link(J(ev), "ts", str_node(a, t, strlen(t)));
        const char *name = mx_output_name(so->o);
        link(J(ev), "output", str_node(a, name, strlen(name)));
        link(J(ev), "dropped", raw_i64(a, (int64_t)dropped));
        link(J(ev), "record", lit_node(a, is_doc(so->fmt) ? "session" : "event"));
        mx_iso_time(first_us, t, sizeof t);
        link(J(ev), "first_drop", str_node(a, t, strlen(t)));
        link(J(ev), "reason", lit_node(a, outage ? "collector unreachable" : "queue full"));
        cJSON *top = J(ev);
        if (so->fmt == MX_FMT_ECS) {
            mx_ecs_alloc al = { a, ecs_node, ecs_text, ecs_num };
            top = mx_ecs_wrap(&al, NULL, MX_EV_OUTPUT_DROP, J(ev));
        }
        char *txt = top && !a->failed ? cJSON_PrintUnformatted(top) : NULL;
        if (txt) {
            size_t n = strlen(txt);
            if (is_doc(so->fmt) && so->fmt != MX_FMT_TIMELINE) {
                /* the human views get a line of text */
                fprintf(so->f, "output.drop: %s lost %llu %s%s since %s (%s)\n", name, (unsigned long long)dropped,
                        "session", dropped == 1 ? "" : "s", t,
                        outage ? "collector unreachable" : "queue full");
            } else {
                put_text(k, so, txt, n);
                if (fputc('\n', so->f) == EOF) k->failed = 1;
            }
            end_record(so, "output.drop");
            free(txt);
        }
    }
    if (--a->open <= 0) { a->open = 0; arena_reset(a); }
}

void mx_ev_end(mx_sess *s, mx_ev *e)
{
    if (!e) return;
    sess_out *o = s->out;
    mx_sink *k = s->sink;
    arena *a = e->a;
    if (a->failed) {
        k->failed = 1;                  /* out of memory: the event is lost */
    } else {
        if (o) o->last_us = s->cur_us;
        const char *tag = mx_evtype_name((mx_evtype)e->evtype);
        int held = o && o->deferred;
        if (o && k->n_tree) {
            arena *ta = &o->tree;
            if (!ta->nfirst && k->npool) *ta = k->pool[--k->npool];
            ta->small = 1;
            if (!o->events) o->events = node(ta, cJSON_Array);
            cJSON *cp = o->events ? copy_tree(ta, a, J(e)) : NULL;
            if (cp) cJSON_AddItemToArray(o->events, cp);
            else k->failed = 1;
        }
        if (k->n_native || (k->n_text_doc && o)) {
            const char *t = print(k, J(e), 0);
            if (!t) {
                k->failed = 1;
            } else {
                if (o && k->n_text_doc) keep_text(&o->doc, t, ',');
                if (k->n_native && held) keep_text(&o->pend_native, t, '\n');
                else if (k->n_native) {
                    size_t n = strlen(t);
                    for (int i = 0; i < k->nouts; i++)
                        if (k->outs[i].fmt == MX_FMT_NDJSON) put_line(k, &k->outs[i], t, n, tag);
                }
            }
        }
        if (k->n_ecs) {
            /* after the native text: the wrapper takes the event in */
            cJSON *top = ecs(s, e);
            const char *t = top ? print(k, top, 0) : NULL;
            if (!t) {
                k->failed = 1;
            } else if (held) {
                keep_text(&o->pend_ecs, t, '\n');
            } else {
                size_t n = strlen(t);
                for (int i = 0; i < k->nouts; i++)
                    if (k->outs[i].fmt == MX_FMT_ECS) put_line(k, &k->outs[i], t, n, tag);
            }
        }
    }
    if (--a->open <= 0) {
        a->open = 0;
        arena_reset(a);
    }
}

static void add(mx_ev *e, const char *key, cJSON *v) { link(J(e), key, v); }

/* The single path from wire bytes to JSON text. */
static cJSON *wire_string(arena *a, const uint8_t *p, size_t n, size_t maxin, int *truncated)
{
    size_t in = n < maxin ? n : maxin, cap = in * 3 + 4, outlen;
    char *buf = text(a, cap);
    if (!buf) return NULL;
    int fl = mx_text_clean(p, n, maxin, buf, cap, &outlen);
    a->tused -= cap - (outlen + 1);     /* buf is the arena's last allocation */
    *truncated = (fl & MX_TEXT_TRUNCATED) != 0;
    cJSON *v = node(a, cJSON_String | cJSON_IsReference);
    if (v) v->valuestring = buf;
    return v;
}

void mx_ev_wire(mx_ev *e, const char *key, const uint8_t *p, size_t n, size_t cap)
{
    if (!e) return;
    int tr = 0;
    add(e, key, wire_string(e->a, p, n, cap, &tr));
    if (tr && key && !cJSON_IsArray(J(e))) {
        size_t kl = strlen(key);
        char *k2 = text(e->a, kl + sizeof "_truncated");
        if (!k2) return;
        memcpy(k2, key, kl);
        memcpy(k2 + kl, "_truncated", sizeof "_truncated");
        add(e, k2, node(e->a, cJSON_True));
    }
}

void mx_ev_str(mx_ev *e, const char *key, const char *s)
{
    if (e && s) add(e, key, str_node(e->a, s, strlen(s)));
}

void mx_ev_lit(mx_ev *e, const char *key, const char *s)
{
    if (e && s) add(e, key, lit_node(e->a, s));
}

void mx_ev_int(mx_ev *e, const char *key, int64_t v)
{
    if (!e) return;
    /* Above 2^53 a double loses digits: write such values as strings. */
    if (v > (1LL << 53) || v < -(1LL << 53)) {
        char b[32];
        int n = snprintf(b, sizeof b, "%lld", (long long)v);
        add(e, key, str_node(e->a, b, (size_t)n));
    } else {
        add(e, key, raw_i64(e->a, v));
    }
}

void mx_ev_num(mx_ev *e, const char *key, double v)
{
    if (!e) return;
    cJSON *n = node(e->a, cJSON_Number);
    if (!n) return;
    n->valuedouble = v;
    n->valueint = v >= 2147483647.0 ? 2147483647 : v <= -2147483648.0 ? (-2147483647 - 1) : (int)v;
    add(e, key, n);
}

void mx_ev_seconds(mx_ev *e, const char *key, uint64_t us) { if (e) add(e, key, raw_seconds(e->a, us)); }
void mx_ev_bool(mx_ev *e, const char *key, int v) { if (e) add(e, key, node(e->a, v ? cJSON_True : cJSON_False)); }
void mx_ev_null(mx_ev *e, const char *key) { if (e) add(e, key, node(e->a, cJSON_NULL)); }

mx_ev *mx_ev_obj(mx_ev *e, const char *key)
{
    if (!e) return NULL;
    cJSON *o = node(e->a, cJSON_Object);
    add(e, key, o);
    return o ? EV(o) : NULL;
}

mx_ev *mx_ev_arr(mx_ev *e, const char *key)
{
    if (!e) return NULL;
    cJSON *o = node(e->a, cJSON_Array);
    add(e, key, o);
    return o ? EV(o) : NULL;
}

void mx_ev_push_wire(mx_ev *a, const uint8_t *p, size_t n, size_t cap) { mx_ev_wire(a, NULL, p, n, cap); }
void mx_ev_push_str(mx_ev *a, const char *s) { mx_ev_str(a, NULL, s); }
void mx_ev_push_lit(mx_ev *a, const char *s) { mx_ev_lit(a, NULL, s); }
void mx_ev_push_int(mx_ev *a, int64_t v) { mx_ev_int(a, NULL, v); }
mx_ev *mx_ev_push_obj(mx_ev *a) { return mx_ev_obj(a, NULL); }

void mx_ev_endpoint(mx_ev *e, const char *key, const mx_addr *a, uint16_t port)
{
    if (e) add_endpoint(e->a, J(e), key, a, port);
}
