/* sink.c - where finished events go: each output's renderer, fed once per
 * format.
 *
 * An event comes here from mx_ev_end() (event.c) as a tree of typed nodes.
 * ndjson and ECS outputs get it as one line, written through one reused
 * buffer; the timeline keeps the event's text for the session document; the
 * views (text, summary, HTML, the indented timeline) keep the tree itself:
 * while any output wants one, a session's events are built straight into
 * the session's own arena (mx_sink_ev_arena), and the view walks them when
 * the session ends.  Ended sessions' arenas are pooled for the next ones.
 * JSON text is written by render_json.c, ECS trees made by render_ecs.c.
 */
#define _GNU_SOURCE 1              /* memmem */
#include "mx/sink.h"
#include "mx/event.h"
#include "mx/attempts.h"
#include "mx/output.h"
#include "mx/stream.h"
#include "mx/text.h"
#include "mx/view.h"
#include "render_ecs.h"
#include "render_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One output and the renderer that feeds it. */
typedef struct sink_out {
    mx_format fmt;
    mx_output *o;
    FILE *f;                    /* mx_output_file(o)                 */
    int color, owned;
    int werr;                   /* errno of the first failed write, or -1   */
    int said;                   /* its failure was told                     */
    uint64_t sessions;
    mx_view_row *rows;          /* HTML index                        */
    mx_tlsrpt *rpt;             /* -F tlsrpt: the counts so far       */
    char **att;                 /* HTML: the attempts' lines, for the report */
    size_t natt, att_dropped;
    size_t nrows, rows_cap, rows_dropped;
    mx_buf rec;                 /* a capturing sink: the record being made  */
} sink_out;

enum { MAX_OUTS = 16, POOL = 64, POOL_KEEP = 64 * 1024 };

struct mx_sink {
    mx_arena ar;                  /* scratch: events not kept, ECS wrappers  */
    const mx_opts *opt;
    mx_buf buf;                   /* the event being written                 */
    mx_buf sub;                   /* a worker's record with the run's ids     */
    mx_buf note;                  /* an output.drop written before it        */
    int failed;
    int epipe;                    /* standard output's reader went away      */
    sink_out outs[MAX_OUTS];
    int nouts;
    int n_native, n_ecs;          /* outputs of ndjson, ecs                    */
    int n_text_doc, n_tree;       /* documents written from text / from trees  */
    int n_tree_all;               /* tree outputs that show every event (not summary) */
    int text_lines;               /* that one is -F text: its lines are made as the
                                     events come and kept as text, not the trees */
    int text_color;
    struct tblk *spare;                  /* blocks of ended sessions' kept text    */
    int nspare;
    mx_memcap *mc;                /* the budget held documents are charged to  */
    mx_attempts *att;             /* the run's delivery attempts (not a worker's) */
    uint64_t nopen;               /* sessions begun and not yet written        */
    mx_arena pool[POOL];          /* ended sessions' arenas, for reuse         */
    int npool;
    /* a capturing sink (a worker's): records go to cap_fn, in order ord */
    mx_rec_fn cap_fn;
    void *cap_ctx;
    mx_order ord;
    /* what the session.end being written says, for the attempts (taken by
     * mx_sink_session_end, which follows it at once) */
    mx_attempt_row arow;
    uint64_t arow_sess;
    int have_arow;
};

#define MAX_HTML_ROWS 100000

/* Formats that write a whole session document when it ends. */
static int is_doc(mx_format f) { return f != MX_FMT_NDJSON && f != MX_FMT_ECS; }

/* Printed events joined by a separator. */
typedef struct tbuf {
    char *txt;
    size_t len, cap;
    uint32_t nev;
} tbuf;

/* A session's kept text (the timeline's events, the text view's lines) in
 * blocks of a page: it grows without copying what it holds, and the
 * blocks of ended sessions are taken again by the next. */
enum { TBLK = 2048 - 16, TBLK_SPARE = 2048 };
typedef struct tblk {
    struct tblk *next;
    uint32_t len;
    char d[TBLK];
} tblk;
typedef struct tchain {
    tblk *head, *tail;
    uint32_t nev;
    uint64_t held;          /* bytes of its blocks                   */
} tchain;

/* A session's sink state.  The timeline keeps its events as text (joined by
 * commas), which is far smaller than their trees, and writes the document
 * around it at the end; the views keep the trees, in the session's arena.
 * Held-back sessions (--any-port) keep their ndjson and ECS lines until they
 * are confirmed. */
typedef struct sess_out {
    tchain doc;             /* native events, for the documents          */
    tchain lines;           /* -F text's lines, when it keeps them (text_lines) */
    tbuf pend_native;       /* lines held back (deferred)                 */
    tbuf pend_ecs;
    mx_arena head;          /* the first event and the events' array      */
    mx_arena tree;          /* the other events, for the views            */
    mx_node *events;        /* their array, in head                       */
    mx_node *start;         /* the first event, in head                   */
    int deferred;
    int begun;              /* an event was built for the views           */
    int splitting;
    uint32_t part;          /* parts written early (--memcap)             */
    uint64_t charged;       /* bytes of it charged to the budget          */
    uint64_t last_us;
} sess_out;

mx_sink *mx_sink_create(const mx_opts *opt)
{
    mx_sink *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->opt = opt;
    return k;
}

static void attempt_end(void *ctx, const mx_attempt *a);
static void attempt_row(mx_sink *k, mx_sess *s, const mx_node *e);

/* The run's attempts, made with the first session that ends (the window is
 * an option set before). */
static mx_attempts *attempts_of(mx_sink *k)
{
    if (!k->att && !k->cap_fn && k->opt->attempt_window_us) k->att = mx_attempts_new(k->opt->attempt_window_us);
    return k->att;
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
    if (fmt == MX_FMT_TLSRPT && !(so->rpt = mx_tlsrpt_new())) { k->nouts--; return 0; }
    if (fmt == MX_FMT_NDJSON) k->n_native++;
    else if (fmt == MX_FMT_ECS) k->n_ecs++;
    if (fmt == MX_FMT_TIMELINE && !k->opt->pretty) k->n_text_doc++;
    else if (is_doc(fmt)) { k->n_tree++; if (fmt != MX_FMT_SUMMARY && fmt != MX_FMT_TLSRPT) k->n_tree_all++; }
    /* -F text alone among the outputs that show every event: its lines */
    int ntext = 0;
    for (int i = 0; i < k->nouts; i++) if (k->outs[i].fmt == MX_FMT_TEXT) { ntext++; k->text_color = k->outs[i].color; }
    k->text_lines = k->n_tree_all == 1 && ntext == 1;
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
        if (k->outs[i].o && mx_output_failed(k->outs[i].o)) return 1;
    return 0;
}

static void drop_note(mx_sink *k, sink_out *so, int final);

/* A write to so failed: kept (with its reason) for mx_sink_flush. */
static void wfail(mx_sink *k, sink_out *so)
{
    k->failed = 1;
    if (!so->werr) so->werr = errno ? errno : -1;
}

/* An output's FILE is written by the thread that owns the sink alone (a
 * network output's sender reads its ring, not the FILE): no locking. */
static void put_text(mx_sink *k, sink_out *so, const char *t, size_t n)
{
    if (k->cap_fn) {
        if (n && !mx_buf_put(&so->rec, t, n)) k->failed = 1;
    } else if (n && fwrite_unlocked(t, 1, n, so->f) != n) {
        wfail(k, so);
    }
}

static void put_nl(mx_sink *k, sink_out *so)
{
    if (k->cap_fn) put_text(k, so, "\n", 1);
    else if (putc_unlocked('\n', so->f) == EOF) wfail(k, so);
}

/* A capturing sink hands a record over. */
static void emit(mx_sink *k, int kind, int out, const char *tag, const void *data, size_t len, uint64_t sess)
{
    mx_rec r = { k->ord, kind, out, tag, data, len, sess };
    k->cap_fn(k->cap_ctx, &r);
}

int mx_sink_flush(mx_sink *k, int streams)
{
    int ok = 1;
    for (int i = 0; i < k->nouts; i++) {
        sink_out *so = &k->outs[i];
        if (so->said) { ok = 0; continue; }
        errno = 0;
        if (streams && fflush(so->f) != 0 && !so->werr) so->werr = errno ? errno : -1;
        if (!so->werr && mx_output_failed(so->o)) so->werr = mx_output_errno(so->o) ? mx_output_errno(so->o) : -1;
        if (!so->werr) continue;
        so->said = 1;
        k->failed = 1;
        ok = 0;
        if (so->werr == EPIPE && so->o && !strcmp(mx_output_name(so->o), "(stdout)")) {
            k->epipe = 1;             /* the reader of a pipe is done: a quiet end */
            continue;
        }
        fprintf(stderr, "mxtrace: %s: write failed: %s\n", mx_output_name(so->o),
                so->werr > 0 ? strerror(so->werr) : "input/output error");
    }
    return ok;
}

int mx_sink_told(const mx_sink *k)
{
    for (int i = 0; i < k->nouts; i++)
        if (k->outs[i].said) return 1;
    return 0;
}

int mx_sink_epipe(const mx_sink *k) { return k->epipe; }

static void end_record(mx_sink *k, sink_out *so, const char *tag)
{
    if (!k->cap_fn) { mx_output_commit(so->o, tag); return; }
    /* the views write through so->f, which appends to so->rec */
    if (fflush(so->f) != 0) k->failed = 1;
    emit(k, MX_REC_OUT, (int)(so - k->outs), tag, so->rec.p, so->rec.len, 0);
    so->rec.len = 0;
}

void mx_sink_finish(mx_sink *k)
{
    if (k->cap_fn) return;
    mx_attempts_flush(k->att, attempt_end, k);
    for (int i = 0; i < k->nouts; i++) {
        sink_out *so = &k->outs[i];
        drop_note(k, so, 1);
        if (so->fmt == MX_FMT_HTML) {
            if (!so->sessions) mx_view_html_begin(so->f);
            if (so->natt || so->att_dropped) {
                fputs("<div class=\"attempts\"><h2>Delivery attempts</h2>\n<ul>\n", so->f);
                for (size_t j = 0; j < so->natt; j++) {
                    fputs("<li>", so->f);
                    mx_view_html(so->f, so->att[j]);
                    fputs("</li>\n", so->f);
                }
                fputs("</ul>\n", so->f);
                if (so->att_dropped) fprintf(so->f, "<p>%zu more attempt(s) not listed.</p>\n", so->att_dropped);
                fputs("</div>\n", so->f);
            }
            mx_view_html_end(so->f, so->rows, so->nrows, so->rows_dropped);
            end_record(k, so, "report");
        }
        if (so->fmt == MX_FMT_TLSRPT) {
            mx_tlsrpt_write(so->f, so->rpt, k->opt->pretty);
            end_record(k, so, "report");
        }
        if (fflush(so->f) != 0) k->failed = 1;
    }
}

void mx_sink_set_failed(mx_sink *k) { k->failed = 1; }

void mx_sink_set_memcap(mx_sink *k, mx_memcap *mc) { if (k) k->mc = mc; }

void mx_sink_order(mx_sink *k, uint64_t frame, int phase, uint32_t sub, int list, uint64_t stamp)
{
    k->ord.frame = frame;
    k->ord.sub = sub;
    k->ord.phase = (uint8_t)phase;
    k->ord.list = (uint8_t)list;
    k->ord.stamp = stamp;
}

/* A capturing sink's outputs are memory: so->f appends to so->rec. */
static ssize_t rec_write(void *c, const char *buf, size_t n)
{
    sink_out *so = c;
    return mx_buf_put(&so->rec, buf, n) ? (ssize_t)n : -1;
}

mx_sink *mx_sink_capture(const mx_sink *proto, mx_rec_fn fn, void *ctx)
{
    static const cookie_io_functions_t io = { NULL, rec_write, NULL, NULL };
    mx_sink *k = mx_sink_create(proto->opt);
    if (!k) return NULL;
    k->cap_fn = fn;
    k->cap_ctx = ctx;
    k->nouts = proto->nouts;
    k->n_native = proto->n_native;
    k->n_ecs = proto->n_ecs;
    k->n_text_doc = proto->n_text_doc;
    k->n_tree = proto->n_tree;
    k->n_tree_all = proto->n_tree_all;
    k->text_lines = proto->text_lines;
    k->text_color = proto->text_color;
    for (int i = 0; i < k->nouts; i++) {
        sink_out *so = &k->outs[i];
        so->fmt = proto->outs[i].fmt;
        so->color = proto->outs[i].color;
        so->f = fopencookie(so, "w", io);
        if (!so->f) { mx_sink_free(k); return NULL; }
        setvbuf(so->f, NULL, _IOFBF, 1 << 16);
    }
    return k;
}

void mx_sink_free(mx_sink *k)
{
    if (!k) return;
    mx_attempts_free(k->att);
    mx_arena_free(&k->ar);
    for (int i = 0; i < k->npool; i++) mx_arena_free(&k->pool[i]);
    for (int i = 0; i < k->nouts; i++) {
        free(k->outs[i].rows);
        for (size_t j = 0; j < k->outs[i].natt; j++) free(k->outs[i].att[j]);
        free(k->outs[i].att);
        mx_tlsrpt_free(k->outs[i].rpt);
        if (k->outs[i].owned) mx_output_free(k->outs[i].o);
        if (k->cap_fn && k->outs[i].f) fclose(k->outs[i].f);
        mx_buf_free(&k->outs[i].rec);
    }
    mx_buf_free(&k->buf);
    mx_buf_free(&k->sub);
    mx_buf_free(&k->note);
    for (tblk *b = k->spare, *nx; b; b = nx) { nx = b->next; free(b); }
    free(k);
}

/* The last element of an array (O(1): arrays know their last). */
static const mx_node *last_of(const mx_node *arr) { return arr && arr->vt >= MX_VT_OBJ ? arr->v.kids.last : NULL; }

/* Room for one more row of the index; NULL when it is full. */
static mx_view_row *row_add(sink_out *k)
{
    if (k->nrows >= MAX_HTML_ROWS) { k->rows_dropped++; return NULL; }
    if (k->nrows == k->rows_cap) {
        size_t nc = k->rows_cap ? k->rows_cap * 2 : 64;
        mx_view_row *nr = realloc(k->rows, nc * sizeof *nr);
        if (!nr) { k->rows_dropped++; return NULL; }
        k->rows = nr;
        k->rows_cap = nc;
    }
    mx_view_row *r = &k->rows[k->nrows++];
    memset(r, 0, sizeof *r);
    return r;
}

static void html_row(mx_sink *sk, sink_out *k, const mx_node *doc)
{
    mx_view_row one, *r = &one;
    if (!sk->cap_fn && !(r = row_add(k))) return;
    memset(r, 0, sizeof *r);
    const mx_node *c = mx_node_get(doc, "client"), *sv = mx_node_get(doc, "server");
    const mx_node *v = mx_node_get(last_of(mx_node_get(doc, "events")), "verdict");
    r->id = (uint64_t)mx_node_getint(doc, "session", 0);
    const char *cip = mx_node_gets(c, "ip"), *sip = mx_node_gets(sv, "ip");
    snprintf(r->client, sizeof r->client, "%s:%lld", cip ? cip : "?", (long long)mx_node_getint(c, "port", 0));
    snprintf(r->server, sizeof r->server, "%s:%lld", sip ? sip : "?", (long long)mx_node_getint(sv, "port", 0));
    const char *code = mx_node_gets(v, "code"), *ex = mx_node_gets(v, "explanation");
    snprintf(r->code, sizeof r->code, "%s", code ? code : "none");
    snprintf(r->explanation, sizeof r->explanation, "%s", ex ? ex : "");
    r->ok = mx_node_true(v, "ok");
    if (sk->cap_fn) emit(sk, MX_REC_ROW, (int)(k - sk->outs), "row", r, sizeof *r, 0);
}

/* Writes ev as JSON into b (emptied first); NULL if it cannot. */
static const char *print(mx_sink *k, mx_buf *b, const mx_node *ev, int pretty)
{
    b->len = 0;
    b->failed = 0;
    if (!mx_json_write(b, ev, pretty)) { k->failed = 1; return NULL; }
    return b->p;
}

/* Writes one line (an event) to an output as one record. */
static void put_line(mx_sink *k, sink_out *so, const char *t, size_t n, const char *tag)
{
    if (k->cap_fn && !so->rec.len && t == k->buf.p && n == k->buf.len && n < k->buf.cap) {
        /* a worker's event line, as printed: it is the record (the line's
         * NUL stands in for its newline while it is handed over) */
        k->buf.p[n] = '\n';
        emit(k, MX_REC_OUT, (int)(so - k->outs), tag, t, n + 1, 0);
        k->buf.p[n] = 0;
        return;
    }
    drop_note(k, so, 0);
    put_text(k, so, t, n);
    put_nl(k, so);
    end_record(k, so, tag);
}

/* Appends one printed event to a kept text. */
static void keep_text(tbuf *o, const char *t, size_t n, char sep)
{
    size_t need = o->len + n + 2;
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

static void chain_put(mx_sink *k, tchain *c, const char *t, size_t n)
{
    while (n) {
        tblk *b = c->tail;
        if (!b || b->len == TBLK) {
            if ((b = k->spare)) { k->spare = b->next; k->nspare--; }
            else if (!(b = malloc(sizeof *b))) { k->failed = 1; return; }
            b->next = NULL;
            b->len = 0;
            if (c->tail) c->tail->next = b; else c->head = b;
            c->tail = b;
            c->held += sizeof *b;
        }
        size_t m = TBLK - b->len < n ? TBLK - b->len : n;
        memcpy(b->d + b->len, t, m);
        b->len += (uint32_t)m;
        t += m;
        n -= m;
    }
}

/* Appends one printed event (after sep, unless first or sep is 0). */
static void chain_add(mx_sink *k, tchain *c, const char *t, size_t n, char sep)
{
    if (c->nev++ && sep) chain_put(k, c, &sep, 1);
    chain_put(k, c, t, n);
}

/* Gives the blocks back (kept for the next sessions, up to TBLK_SPARE). */
static void chain_free(mx_sink *k, tchain *c)
{
    for (tblk *b = c->head, *nx; b; b = nx) {
        nx = b->next;
        if (k->nspare < TBLK_SPARE) { b->next = k->spare; k->spare = b; k->nspare++; }
        else free(b);
    }
    memset(c, 0, sizeof *c);
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
    s->out = calloc(1, sizeof(sess_out));
    if (!s->out) k->failed = 1;
    else k->nopen++;
    if (k->cap_fn) emit(k, MX_REC_BIRTH, -1, "", NULL, 0, s->id & ~MX_SID_HANDLE);
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

/* Renders a session document to one output. */
static void render_doc(mx_sink *k, sink_out *so, const mx_node *doc, const mx_node *start, int final,
                       const tchain *lines)
{
    if (!final && (so->fmt == MX_FMT_SUMMARY || so->fmt == MX_FMT_TLSRPT)) return;   /* they need the verdict */
    if (so->fmt == MX_FMT_TLSRPT) {
        /* counted; the reports are written at the end */
        mx_tlsrpt_row row;
        mx_tlsrpt_row_from_doc(doc, start, &row);
        if (k->cap_fn) emit(k, MX_REC_ROW, (int)(so - k->outs), "row", &row, sizeof row, 0);
        else mx_tlsrpt_add(so->rpt, &row);
        so->sessions++;
        return;
    }
    drop_note(k, so, 0);
    switch (so->fmt) {
    case MX_FMT_TEXT:
        if (lines) {
            mx_view_text_head(so->f, doc, start, so->color);
            for (const tblk *b = lines->head; b; b = b->next)
                if (fwrite(b->d, 1, b->len, so->f) != b->len) wfail(k, so);
            mx_view_text_foot(so->f, doc, so->color);
        } else {
            mx_view_text_session(so->f, doc, start, so->color);
        }
        break;
    case MX_FMT_SUMMARY:
        /* (a capturing sink's writer writes the header before the first) */
        if (!so->sessions && !k->cap_fn) { mx_view_summary_header(so->f); end_record(k, so, "header"); }
        mx_view_summary_session(so->f, doc, start, so->color);
        break;
    case MX_FMT_HTML:
        if (!so->sessions && !k->cap_fn) mx_view_html_begin(so->f);
        mx_view_html_session(so->f, doc);
        if (final) html_row(k, so, doc);
        break;
    default: {
        const char *t = print(k, &k->buf, doc, 1);
        if (t) put_text(k, so, t, k->buf.len);
        put_nl(k, so);
        break;
    }
    }
    so->sessions++;
    end_record(k, so, "session");
}

/* Whether an output takes the document as a tree (not as text). */
static int wants_tree(const mx_sink *k, const sink_out *so)
{
    return is_doc(so->fmt) && !(so->fmt == MX_FMT_TIMELINE && !k->opt->pretty);
}

/* The document's own fields, built in arena ar (the events follow); a
 * session written in parts says which part, and whether more follows. */
static mx_node *doc_head(mx_arena *ar, const mx_sess *s, const sess_out *o, int final)
{
    char t[40];
    mx_node *d = mx_node_new(ar, MX_VT_OBJ);
    mx_node *id = mx_node_int(ar, (int64_t)s->id);
    if (id) id->vt = MX_VT_SID;
    mx_node_add(d, "session", id);
    if (s->community_id[0]) mx_node_add(d, "community_id", mx_node_str(ar, s->community_id, strlen(s->community_id)));
    mx_ev_endpoint(d, "client", &s->cli, s->cli_port);
    mx_ev_endpoint(d, "server", &s->srv, s->srv_port);
    mx_iso_time(s->start_us, t, sizeof t);
    mx_node_add(d, "start", mx_node_str(ar, t, strlen(t)));
    mx_iso_time(o->last_us, t, sizeof t);
    mx_node_add(d, "end", mx_node_str(ar, t, strlen(t)));
    mx_ev_seconds(d, "duration", o->last_us - s->start_us);
    if (o->part || !final) {
        mx_node_add(d, "part", mx_node_int(ar, (int64_t)o->part + 1));
        if (!final) mx_node_add(d, "continued", mx_node_new(ar, MX_VT_TRUE));
    }
    return d;
}

/* Writes the session's documents: at its end (final), or a part of it
 * written early. */
static void write_docs(mx_sink *k, mx_sess *s, int final)
{
    sess_out *o = s->out;
    if (k->n_text_doc) {
        /* the timeline: the header's fields, then the events' kept text */
        mx_arena *ar = &k->ar;
        ar->open++;
        mx_node *d = doc_head(ar, s, o, final);
        const char *head = ar->failed || !d ? NULL : print(k, &k->buf, d, 0);
        if (!head) k->failed = 1;
        if (--ar->open == 0) mx_arena_reset(ar);
        if (head) {
            size_t hl = k->buf.len - 1;       /* without its closing brace */
            for (int i = 0; i < k->nouts; i++) {
                sink_out *so = &k->outs[i];
                if (so->fmt != MX_FMT_TIMELINE || wants_tree(k, so)) continue;
                drop_note(k, so, 0);
                put_text(k, so, head, hl);
                put_text(k, so, ",\"events\":[", 11);
                for (const tblk *b = o->doc.head; b; b = b->next) put_text(k, so, b->d, b->len);
                put_text(k, so, "]}\n", 3);
                so->sessions++;
                end_record(k, so, "session");
            }
        }
    }
    if (k->n_tree) {
        /* the views walk the session's events where they are */
        mx_arena *ar = &o->tree;
        ar->small = ar->keep = 1;
        mx_node *d = doc_head(ar, s, o, final);
        mx_node *evs = o->events ? o->events : mx_node_new(ar, MX_VT_ARR);
        mx_node_add(d, "events", evs);
        if (!d || !evs || ar->failed) {
            k->failed = 1;
        } else {
            for (int i = 0; i < k->nouts; i++)
                if (wants_tree(k, &k->outs[i])) render_doc(k, &k->outs[i], d, o->start, final, k->text_lines ? &o->lines : NULL);
        }
    }
}

void mx_sink_session_end(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    if (!o) return;
    write_docs(k, s, 1);
    if (k->have_arow && k->arow_sess == s->id) {
        /* the attempts are the run's writer's: a worker hands the row over */
        k->have_arow = 0;
        if (k->cap_fn) emit(k, MX_REC_ROW, -2, "attempt", &k->arow, sizeof k->arow, 0);
        else if (attempts_of(k)) mx_attempts_add(k->att, &k->arow, attempt_end, k);
    }
    mx_sink_session_drop(k, s);
}

/* Bytes a session's documents hold until it ends, beside its first event
 * (a few hundred bytes a session, bounded as the flows are by --max-flows),
 * and of them what a part written early gives back. */
static uint64_t splittable(const sess_out *o) { return o->doc.held + o->lines.held + o->tree.nbytes + o->tree.tbytes; }
static uint64_t held(const sess_out *o) { return splittable(o) + o->pend_native.cap + o->pend_ecs.cap; }

static void charge(mx_sink *k, sess_out *o)
{
    uint64_t h = held(o);
    if (k->mc) {
        k->mc->used += h - o->charged;
        k->mc->docs += h - o->charged;
        if (k->mc->used > k->mc->peak) k->mc->peak = k->mc->used;
    }
    o->charged = h;
}

/* The budget is spent: the session writes what it holds now as a part of
 * its documents, marked, and goes on in the next part.  A limit event, the
 * first part's last, says so. */
static void split(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    uint64_t h = o->charged;
    o->splitting = 1;
    if (!o->part) {
        mx_ev *l = mx_ev_begin(s, MX_EV_LIMIT, MX_NODIR);
        mx_ev_lit(l, "limit", "memcap");
        mx_ev_int(l, "value", (int64_t)k->mc->cap);
        mx_ev_int(l, "held", (int64_t)h);
        mx_ev_end(s, l);
    }
    write_docs(k, s, 0);
    o->splitting = 0;
    chain_free(k, &o->doc);
    chain_free(k, &o->lines);
    mx_arena_free(&o->tree);
    o->tree.small = o->tree.keep = 1;
    if (o->events) { o->events->v.kids.first = o->events->v.kids.last = NULL; o->events->len = 0; }
    if (o->start) o->start->next = NULL;
    if (!o->part++) k->mc->split++;
    charge(k, o);
}

void mx_sink_session_drop(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    if (!o) return;
    if (k->cap_fn) emit(k, MX_REC_DEATH, -1, "", NULL, 0, s->id & ~MX_SID_HANDLE);
    if (k->mc) { k->mc->used -= o->charged; k->mc->docs -= o->charged; }
    k->nopen--;
    mx_arena_free(&o->head);
    chain_free(k, &o->doc);
    chain_free(k, &o->lines);
    tbuf_free(&o->pend_native);
    tbuf_free(&o->pend_ecs);
    if (o->tree.nfirst && k->npool < POOL && o->tree.nbytes + o->tree.tbytes <= POOL_KEEP) {
        /* the next session takes its blocks, instead of malloc and free */
        mx_arena_reset(&o->tree);
        k->pool[k->npool++] = o->tree;
    } else {
        mx_arena_free(&o->tree);
    }
    free(o);
    s->out = NULL;
}

/* ---- events -------------------------------------------------------------- */

mx_arena *mx_sink_ev_arena(mx_sink *k, mx_sess *s, int type)
{
    sess_out *o = s->out;
    if (!k->n_tree || !o) return &k->ar;
    if (!o->begun) {
        /* the first event: the views show it, even in a later part */
        o->begun = 1;
        o->head.small = o->head.keep = 1;
        return &o->head;
    }
    /* the summary shows the first and the last event only */
    if ((!k->n_tree_all || k->text_lines) && type != MX_EV_SESSION_END) return &k->ar;
    mx_arena *ta = &o->tree;
    /* (an ended session's blocks, unless the budget is nearly spent) */
    if (!ta->nfirst && k->npool && (!k->mc || !k->mc->cap || k->mc->used + POOL_KEEP <= k->mc->cap))
        *ta = k->pool[--k->npool];
    ta->small = ta->keep = 1;
    return ta;
}

/* An output.drop event, written into an output whose collector lost
 * records once it takes them again.  It is built and printed apart from
 * the event being written (which is in k->buf). */
static void drop_note(mx_sink *k, sink_out *so, int final)
{
    uint64_t dropped, first_us;
    int outage;
    if (k->cap_fn) return;              /* the writer's sink says it */
    if (!mx_output_drop_report(so->o, &dropped, &first_us, &outage, final)) return;
    mx_arena *a = &k->ar;
    char t[40];
    a->open++;
    mx_node *ev = mx_node_new(a, MX_VT_OBJ);
    if (ev) {
        ev->evtype = MX_EV_OUTPUT_DROP;
        mx_node_add(ev, "type", mx_node_lit(a, mx_evtype_name(MX_EV_OUTPUT_DROP)));
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        mx_iso_time((uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u, t, sizeof t);
        mx_node_add(ev, "ts", mx_node_str(a, t, strlen(t)));
        const char *name = mx_output_name(so->o);
        mx_node_add(ev, "output", mx_node_str(a, name, strlen(name)));
        mx_node_add(ev, "dropped", mx_node_int(a, (int64_t)dropped));
        mx_node_add(ev, "record", mx_node_lit(a, is_doc(so->fmt) ? "session" : "event"));
        mx_iso_time(first_us, t, sizeof t);
        mx_node_add(ev, "first_drop", mx_node_str(a, t, strlen(t)));
        mx_node_add(ev, "reason", mx_node_lit(a, outage ? "collector unreachable" : "queue full"));
        const mx_node *top = ev;
        if (so->fmt == MX_FMT_ECS) top = mx_ecs_wrap(a, NULL, MX_EV_OUTPUT_DROP, ev);
        const char *txt = top && !a->failed ? print(k, &k->note, top, 0) : NULL;
        if (txt) {
            if (is_doc(so->fmt) && so->fmt != MX_FMT_TIMELINE) {
                /* the human views get a line of text */
                fprintf(so->f, "output.drop: %s lost %llu %s%s since %s (%s)\n", name, (unsigned long long)dropped,
                        "session", dropped == 1 ? "" : "s", t,
                        outage ? "collector unreachable" : "queue full");
            } else {
                put_text(k, so, txt, k->note.len);
                put_nl(k, so);
            }
            end_record(k, so, "output.drop");
        }
    }
    if (--a->open <= 0) { a->open = 0; mx_arena_reset(a); }
}

void mx_sink_ev_done(mx_sink *k, mx_sess *s, mx_node *e)
{
    sess_out *o = s->out;
    mx_arena *a = e->a;
    if (a->failed) {
        k->failed = 1;                  /* out of memory: the event is lost */
        return;
    }
    if (o) o->last_us = s->cur_us;
    const char *tag = mx_evtype_name((mx_evtype)e->evtype);
    int held = o && o->deferred;
    if (o && k->n_tree && (a == &o->tree || a == &o->head)) {
        /* built in the session's arenas: kept there for the views */
        if (!o->events) o->events = mx_node_new(&o->head, MX_VT_ARR);
        if (a == &o->head && !o->start) o->start = e;
        if (o->events) mx_node_add(o->events, NULL, e);
        else k->failed = 1;
    }
    if (o && k->text_lines) {
        char line[MX_VIEW_LINE_MAX];
        size_t n = mx_view_text_line(e, k->text_color, line);
        if (n) chain_add(k, &o->lines, line, n, 0);
    }
    if (k->n_native || (k->n_text_doc && o)) {
        const char *t = print(k, &k->buf, e, 0);
        if (t) {
            size_t n = k->buf.len;
            if (o && k->n_text_doc) chain_add(k, &o->doc, t, n, ',');
            if (k->n_native && held) keep_text(&o->pend_native, t, n, '\n');
            else if (k->n_native)
                for (int i = 0; i < k->nouts; i++)
                    if (k->outs[i].fmt == MX_FMT_NDJSON) put_line(k, &k->outs[i], t, n, tag);
        }
    }
    if (k->n_ecs) {
        mx_arena *sa = &k->ar;
        sa->open++;
        mx_node *top = mx_ecs_wrap(sa, s, (mx_evtype)e->evtype, e);
        const char *t = top ? print(k, &k->buf, top, 0) : NULL;
        if (!t) {
            k->failed = 1;
        } else if (held) {
            keep_text(&o->pend_ecs, t, k->buf.len, '\n');
        } else {
            for (int i = 0; i < k->nouts; i++)
                if (k->outs[i].fmt == MX_FMT_ECS) put_line(k, &k->outs[i], t, k->buf.len, tag);
        }
        if (--sa->open <= 0) { sa->open = 0; mx_arena_reset(sa); }
    }
    if (o && e->evtype == MX_EV_SESSION_END && k->opt->attempt_window_us) attempt_row(k, s, e);
    if (o && !o->splitting) {
        charge(k, o);
        /* Over the budget: a session that holds at least its share of it
         * (one of them always does) writes its events now, when it is not
         * building another.  The budget is then exceeded by at most the
         * sessions that are below their share, or no longer active. */
        if (k->mc && k->mc->cap && k->mc->used > k->mc->cap && !o->deferred &&
            e->evtype != MX_EV_SESSION_END && o->tree.open <= 1 &&
            (o->doc.nev || o->lines.nev || (k->n_tree_all && o->events && o->events->len)) &&
            splittable(o) * (k->nopen ? k->nopen : 1) >= k->mc->cap)
            split(k, s);
    }
}

/* ---- events of the run (no session) ---------------------------------------- */

static mx_ev *run_begin(mx_sink *k, mx_evtype type, uint64_t us)
{
    mx_arena *a = &k->ar;
    char t[40];
    a->open++;
    mx_node *ev = mx_node_new(a, MX_VT_OBJ);
    if (!ev) { if (--a->open <= 0) mx_arena_reset(a); return NULL; }
    ev->evtype = (uint8_t)type;
    mx_node_add(ev, "type", mx_node_lit(a, mx_evtype_name(type)));
    if (!us) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
    }
    mx_iso_time(us, t, sizeof t);
    mx_node_add(ev, "ts", mx_node_str(a, t, strlen(t)));
    return ev;
}

mx_ev *mx_sink_run_begin(mx_sink *k, mx_evtype type) { return run_begin(k, type, 0); }

void mx_sink_run_end(mx_sink *k, mx_ev *ev, const char *line)
{
    if (!ev) return;
    mx_arena *a = &k->ar;
    const char *tag = mx_evtype_name((mx_evtype)ev->evtype);
    for (int i = 0; i < k->nouts && !a->failed; i++) {
        sink_out *so = &k->outs[i];
        if (so->fmt == MX_FMT_HTML && ev->evtype == MX_EV_ATTEMPT_END && line) {
            /* the report lists the attempts beside its index */
            char *c = so->natt < MAX_HTML_ROWS ? strdup(line) : NULL;
            char **na = c ? realloc(so->att, (so->natt + 1) * sizeof *na) : NULL;
            if (na) { so->att = na; so->att[so->natt++] = c; }
            else { free(c); so->att_dropped++; }
            continue;
        }
        if (so->fmt == MX_FMT_HTML || so->fmt == MX_FMT_TLSRPT) continue;   /* inside a document */
        if (is_doc(so->fmt) && so->fmt != MX_FMT_TIMELINE) {
            /* the human views get a line of text */
            if (line) {
                drop_note(k, so, 0);
                fprintf(so->f, "%s\n", line);
                end_record(k, so, tag);
            }
            continue;
        }
        const mx_node *top = so->fmt == MX_FMT_ECS ? mx_ecs_wrap(a, NULL, (mx_evtype)ev->evtype, ev) : ev;
        const char *t = top && !a->failed ? print(k, &k->note, top, 0) : NULL;
        if (t) put_line(k, so, t, k->note.len, tag);
    }
    if (a->failed) k->failed = 1;
    if (--a->open <= 0) { a->open = 0; mx_arena_reset(a); }
}

/* ---- delivery attempts -------------------------------------------------------- */

/* An attempt that ended: an attempt.end event of the run, at the capture
 * time its last connection ended. */
static void attempt_end(void *ctx, const mx_attempt *a)
{
    mx_sink *k = ctx;
    mx_attempt_verdict v;
    mx_attempt_judge(a, &v);
    uint64_t last = 0;
    for (int i = 0; i < a->n; i++) if (a->s[i].end_us > last) last = a->s[i].end_us;
    mx_ev *ev = run_begin(k, MX_EV_ATTEMPT_END, last ? last : 1);
    if (!ev) return;
    mx_arena *ar = &k->ar;
    mx_node_add(ev, "attempt", mx_node_int(ar, (int64_t)a->no));
    mx_node_add(ev, "client", mx_node_str(ar, a->s[0].client, strlen(a->s[0].client)));
    const char *dest = a->s[0].dest;
    for (int i = 0; i < a->n && !dest[0]; i++) dest = a->s[i].dest;
    if (dest[0]) mx_node_add(ev, "destination", mx_node_str(ar, dest, strlen(dest)));
    mx_node *ss = mx_node_new(ar, MX_VT_ARR), *sv = mx_node_new(ar, MX_VT_ARR);
    mx_node_add(ev, "sessions", ss);
    mx_node_add(ev, "servers", sv);
    for (int i = 0; i < a->n; i++) {
        mx_node *id = mx_node_int(ar, (int64_t)a->s[i].id);
        if (id) id->vt = MX_VT_SID;
        mx_node_add(ss, NULL, id);
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= !strcmp(a->s[j].server_name, a->s[i].server_name);
        if (!seen) mx_node_add(sv, NULL, mx_node_str(ar, a->s[i].server_name, strlen(a->s[i].server_name)));
    }
    if (a->more) mx_node_add(ev, "sessions_more", mx_node_int(ar, a->more));
    char t[40];
    mx_iso_time(a->s[0].start_us, t, sizeof t);
    mx_node_add(ev, "first_ts", mx_node_str(ar, t, strlen(t)));
    mx_node *vd = mx_node_new(ar, MX_VT_OBJ);
    mx_node_add(ev, "verdict", vd);
    mx_node_add(vd, "code", mx_node_lit(ar, v.delivered ? "delivered" : v.tls_only ? "tls_ok" : "not_delivered"));
    mx_node_add(vd, "ok", mx_node_new(ar, v.delivered || v.tls_only ? MX_VT_TRUE : MX_VT_FALSE));
    mx_node_add(vd, "connections", mx_node_int(ar, a->n + a->more));
    mx_node_add(vd, "servers", mx_node_int(ar, v.servers));
    mx_node_add(vd, "downgrade", mx_node_new(ar, v.downgrade ? MX_VT_TRUE : MX_VT_FALSE));
    mx_node_add(vd, "greylisted", mx_node_new(ar, v.greylisted ? MX_VT_TRUE : MX_VT_FALSE));
    if (v.stripped) mx_node_add(vd, "starttls_stripped", mx_node_new(ar, MX_VT_TRUE));
    mx_node_add(vd, "explanation", mx_node_str(ar, v.explanation, strlen(v.explanation)));
    char line[1024];
    snprintf(line, sizeof line, "attempt %llu: %s -> %s: %s", (unsigned long long)a->no, a->s[0].client,
             dest[0] ? dest : a->s[0].server_name, v.explanation);
    mx_sink_run_end(k, ev, line);
}

/* What the attempts need of a session, from its session.end event. */
static void attempt_row(mx_sink *k, mx_sess *s, const mx_node *e)
{
    mx_attempt_row *r = &k->arow;
    memset(r, 0, sizeof *r);
    const mx_node *v = mx_node_get(e, "verdict"), *smtp = mx_node_get(e, "smtp"), *tls = mx_node_get(e, "tls");
    r->id = s->id;
    r->start_us = s->start_us;
    r->end_us = s->cur_us;
    mx_addr_str(&s->cli, r->client, sizeof r->client);
    mx_addr_str(&s->srv, r->server, sizeof r->server);
    const char *rd = mx_node_text(mx_node_at(mx_node_get(smtp, "recipient_domains"), 0));
    mx_copy_str(r->dest, sizeof r->dest, rd ? rd : s->mx_domain ? s->mx_domain : "");
    const char *sni = mx_node_gets(tls, "sni"), *banner = mx_node_gets(smtp, "banner_host");
    mx_copy_str(r->server_name, sizeof r->server_name,
              s->dns_name ? s->dns_name : sni ? sni : banner ? banner : r->server);
    const char *code = mx_node_gets(v, "code"), *cause = mx_node_gets(v, "cause"), *t = mx_node_gets(v, "tls");
    mx_copy_str(r->code, sizeof r->code, code ? code : "");
    mx_copy_str(r->cause, sizeof r->cause, cause ? cause : "");
    mx_copy_str(r->tls, sizeof r->tls, t ? t : "");
    r->delivered = code && !strcmp(code, "delivered");
    r->tls_ok = t && !strcmp(t, "tls_ok");
    r->tls_failed = t && (!strcmp(t, "tls_rejected_by_client") || !strcmp(t, "tls_rejected_by_server") ||
                          !strcmp(t, "tls_failed") || !strcmp(t, "starttls_refused") || !strcmp(t, "plaintext_on_tls_port"));
    r->greylisted = cause && !strcmp(cause, "greylisting");
    r->ehlo_ok = mx_node_true(smtp, "esmtp") && mx_node_get(smtp, "ehlo_host") != NULL;
    r->starttls_offered = mx_node_true(smtp, "starttls_offered");
    k->arow_sess = s->id;
    k->have_arow = 1;
}

/* ---- records of capturing sinks ---------------------------------------------- */

void mx_sink_put(mx_sink *k, const mx_rec *r, uint64_t (*gid)(void *ctx, uint64_t sess), void *ctx)
{
    if (r->kind == MX_REC_ROW && r->out == -2) {
        mx_attempt_row row;               /* (a record's bytes are not aligned) */
        if (r->len != sizeof row || !attempts_of(k)) return;
        memcpy(&row, r->data, sizeof row);
        if (row.id & MX_SID_HANDLE) row.id = gid(ctx, row.id & ~MX_SID_HANDLE);
        mx_attempts_add(k->att, &row, attempt_end, k);
        return;
    }
    if (r->out < 0 || r->out >= k->nouts) return;
    sink_out *so = &k->outs[r->out];
    if (r->kind == MX_REC_ROW && so->fmt == MX_FMT_TLSRPT) {
        mx_tlsrpt_row row;               /* (a record's bytes are not aligned) */
        if (r->len == sizeof row) { memcpy(&row, r->data, sizeof row); mx_tlsrpt_add(so->rpt, &row); }
        so->sessions++;
        return;
    }
    if (r->kind == MX_REC_ROW) {
        mx_view_row *row = r->len == sizeof *row ? row_add(so) : NULL;
        if (!row) return;
        memcpy(row, r->data, sizeof *row);
        if (row->id & MX_SID_HANDLE) row->id = gid(ctx, row->id & ~MX_SID_HANDLE);
        return;
    }
    if (r->kind != MX_REC_OUT) return;
    int doc = strcmp(r->tag, "session") == 0;
    drop_note(k, so, 0);
    if (doc && !so->sessions && so->fmt == MX_FMT_SUMMARY) { mx_view_summary_header(so->f); end_record(k, so, "header"); }
    if (doc && !so->sessions && so->fmt == MX_FMT_HTML) mx_view_html_begin(so->f);
    /* the workers' session ids become the run's, the record put together
     * first and written in one go */
    const char *p = r->data;
    size_t n = r->len;
    const char *m = memchr(p, MX_SID_MARK, n);
    if (!m) {
        put_text(k, so, p, n);
    } else {
        mx_buf *b = &k->sub;
        b->len = 0;
        while (n) {
            size_t run = m ? (size_t)(m - p) : n;
            mx_buf_put(b, p, run);
            p += run;
            n -= run;
            if (!m || n < MX_SID_MARK_LEN) break;
            int width;
            uint64_t id = mx_sid_mark_read(p, &width);
            char t[32];
            mx_buf_put(b, t, mx_sid_text(gid(ctx, id & ~MX_SID_HANDLE), width, t));
            p += MX_SID_MARK_LEN;
            n -= MX_SID_MARK_LEN;
            m = memchr(p, MX_SID_MARK, n);
        }
        if (b->failed) { k->failed = 1; b->failed = 0; }
        put_text(k, so, b->p, b->len);
    }
    if (doc) so->sessions++;
    end_record(k, so, r->tag);
}
