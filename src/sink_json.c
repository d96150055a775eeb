/* sink_json.c - JSON output (timeline and ndjson); the only user of cJSON.
 *
 * An event is a cJSON object from mx_ev_begin() to mx_ev_end().  In ndjson
 * mode it is printed at mx_ev_end() and freed; in timeline mode it is kept
 * in the session's document, which is printed when the session ends.
 * Printing goes through one reused buffer (cJSON_PrintPreallocated).
 * Wire bytes reach cJSON only through mx_text_clean().
 */
#include "mx/sink.h"
#include "mx/text.h"
#include "mx/view.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

struct mx_sink {
    mx_format fmt;
    FILE *out;
    const mx_opts *opt;
    char *buf;
    size_t cap;
    int failed;
    int color;
    uint64_t sessions;
    mx_view_row *rows;          /* HTML index                        */
    size_t nrows, rows_cap, rows_dropped;
    int64_t ts_sec;             /* second whose text is in ts_prefix */
    char ts_prefix[24];         /* "YYYY-MM-DDTHH:MM:SS"             */
};

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

static cJSON *raw_i64(int64_t v)
{
    char b[24];
    if (v < 0) { b[0] = '-'; u64_digits((uint64_t)-(v + 1) + 1, b + 1); }
    else u64_digits((uint64_t)v, b);
    return cJSON_CreateRaw(b);
}

/* Microseconds as seconds: "0", "0.00142", "12.5". */
static cJSON *raw_seconds(uint64_t us)
{
    char b[32];
    size_t n = u64_digits(us / 1000000u, b);
    uint32_t frac = (uint32_t)(us % 1000000u);
    if (frac) {
        b[n++] = '.';
        for (uint32_t d = 100000; d && frac; d /= 10) { b[n++] = (char)('0' + frac / d); frac %= d; }
        b[n] = 0;
    }
    return cJSON_CreateRaw(b);
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

/* Formats that keep the whole session document until it ends. */
static int keeps_doc(const mx_sink *k) { return k->fmt != MX_FMT_NDJSON; }

/* A session's events are printed as they end (as for ndjson) and their text
 * kept: freeing each event at once keeps the heap tidy, and the text is far
 * smaller than the trees.  The timeline document is written around it at
 * the end; the human views parse it back into a tree. */
typedef struct sess_out {
    char *txt;              /* events printed so far, joined by sep    */
    size_t len, cap;
    uint32_t nev;
    int deferred;           /* ndjson held back (--any-port)            */
    uint64_t last_us;
} sess_out;

#define J(e) ((cJSON *)(void *)(e))

mx_sink *mx_sink_new(mx_format fmt, FILE *out, const mx_opts *opt, int color)
{
    mx_sink *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->fmt = fmt;
    k->color = color;
    k->out = out;
    k->opt = opt;
    k->cap = 1 << 16;
    k->buf = malloc(k->cap);
    if (!k->buf) { free(k); return NULL; }
    return k;
}

int mx_sink_failed(const mx_sink *k) { return k->failed; }

void mx_sink_finish(mx_sink *k)
{
    if (k->fmt == MX_FMT_HTML) {
        if (!k->sessions) mx_view_html_begin(k->out);
        mx_view_html_end(k->out, k->rows, k->nrows, k->rows_dropped);
    }
    if (ferror(k->out)) k->failed = 1;
}

void mx_sink_free(mx_sink *k)
{
    if (!k) return;
    free(k->rows);
    free(k->buf);
    free(k);
}

static void html_row(mx_sink *k, const cJSON *doc)
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

/* Prints obj into the sink's reused buffer; NULL if it cannot. */
static const char *print(mx_sink *k, const cJSON *obj, int pretty)
{
    while (!cJSON_PrintPreallocated((cJSON *)obj, k->buf, (int)k->cap, pretty)) {
        if (k->cap >= (1u << 30)) { k->failed = 1; return NULL; }
        char *nb = realloc(k->buf, k->cap * 2);
        if (!nb) { k->failed = 1; return NULL; }
        k->buf = nb;
        k->cap *= 2;
    }
    return k->buf;
}

static void emit(mx_sink *k, cJSON *obj)
{
    const char *t = print(k, obj, k->opt->pretty && k->fmt == MX_FMT_TIMELINE);
    if (!t) return;
    if (fputs(t, k->out) == EOF || fputc('\n', k->out) == EOF) k->failed = 1;
}

/* Appends one printed event to the session's text. */
static void keep_text(sess_out *o, const char *t, char sep)
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
    if (keeps_doc(k)) return;                   /* written at the end anyway */
    if (o->len && (fputs(o->txt, k->out) == EOF || fputc('\n', k->out) == EOF)) k->failed = 1;
    free(o->txt);
    o->txt = NULL;
    o->len = o->cap = 0;
    o->nev = 0;
}

static void add_endpoint(cJSON *obj, const char *key, const mx_addr *a, uint16_t port)
{
    char ip[64];
    mx_addr_str(a, ip, sizeof ip);
    cJSON *e = cJSON_AddObjectToObject(obj, key);
    cJSON_AddStringToObject(e, "ip", ip);
    cJSON_AddItemToObject(e, "port", raw_i64(port));
}

void mx_sink_session_end(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    if (!o) return;
    if (keeps_doc(k)) {
        char t[40];
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToObject(d, "session", raw_i64((int64_t)s->id));
        if (s->community_id[0]) cJSON_AddStringToObject(d, "community_id", s->community_id);
        add_endpoint(d, "client", &s->cli, s->cli_port);
        add_endpoint(d, "server", &s->srv, s->srv_port);
        mx_iso_time(s->start_us, t, sizeof t);
        cJSON_AddStringToObject(d, "start", t);
        mx_iso_time(o->last_us, t, sizeof t);
        cJSON_AddStringToObject(d, "end", t);
        cJSON_AddItemToObject(d, "duration", raw_seconds(o->last_us - s->start_us));
        const char *head = print(k, d, 0);
        cJSON_Delete(d);
        if (head) {
            /* the document is the header's fields, then the events */
            size_t hl = strlen(head) - 1;       /* without its closing brace */
            if (k->fmt == MX_FMT_TIMELINE && !k->opt->pretty) {
                if (fwrite(head, 1, hl, k->out) != hl || fputs(",\"events\":[", k->out) == EOF ||
                    (o->len && fwrite(o->txt, 1, o->len, k->out) != o->len) || fputs("]}\n", k->out) == EOF)
                    k->failed = 1;
                k->sessions++;
            } else {
                size_t n = hl + 12 + o->len + 3;
                char *full = malloc(n);
                cJSON *doc = NULL;
                if (full) {
                    memcpy(full, head, hl);
                    memcpy(full + hl, ",\"events\":[", 11);
                    if (o->len) memcpy(full + hl + 11, o->txt, o->len);
                    memcpy(full + hl + 11 + o->len, "]}", 3);
                    doc = cJSON_Parse(full);
                    free(full);
                }
                if (doc) {
                    switch (k->fmt) {
                    case MX_FMT_TEXT: mx_view_text_session(k->out, doc, k->color); break;
                    case MX_FMT_SUMMARY:
                        if (!k->sessions) mx_view_summary_header(k->out);
                        mx_view_summary_session(k->out, doc, k->color);
                        break;
                    case MX_FMT_HTML:
                        if (!k->sessions) mx_view_html_begin(k->out);
                        mx_view_html_session(k->out, doc);
                        html_row(k, doc);
                        break;
                    default: emit(k, doc); break;
                    }
                    k->sessions++;
                    cJSON_Delete(doc);
                } else {
                    k->failed = 1;
                }
            }
        }
    }
    free(o->txt);
    free(o);
    s->out = NULL;
}

void mx_sink_session_drop(mx_sink *k, mx_sess *s)
{
    sess_out *o = s->out;
    (void)k;
    if (!o) return;
    free(o->txt);
    free(o);
    s->out = NULL;
}

/* ---- events -------------------------------------------------------------- */

mx_ev *mx_ev_begin(mx_sess *s, const char *type, int from)
{
    char t[40];
    if (s->nevents >= s->opt->lim.max_events && strcmp(type, "session.end") != 0) {
        if (s->events_dropped++ == 0) {
            /* Say once that the cap was reached, then count. */
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "type", "limit");
            cJSON_AddItemToObject(l, "session", raw_i64((int64_t)s->id));
            ts_text(s->sink, s->cur_us, t);
            cJSON_AddStringToObject(l, "ts", t);
            cJSON_AddItemToObject(l, "t", raw_seconds(s->cur_us - s->start_us));
            cJSON_AddItemToObject(l, "frame", raw_i64((int64_t)s->cur_frame));
            cJSON_AddStringToObject(l, "limit", "max_events");
            cJSON_AddItemToObject(l, "value", raw_i64(s->opt->lim.max_events));
            mx_ev_end(s, (mx_ev *)(void *)l);
        }
        return NULL;
    }
    s->nevents++;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddItemToObjectCS(o, "type", cJSON_CreateStringReference(type));
    cJSON_AddItemToObjectCS(o, "session", raw_i64((int64_t)s->id));
    ts_text(s->sink, s->cur_us, t);
    cJSON_AddItemToObjectCS(o, "ts", cJSON_CreateString(t));
    cJSON_AddItemToObjectCS(o, "t", raw_seconds(s->cur_us - s->start_us));
    cJSON_AddItemToObjectCS(o, "frame", raw_i64((int64_t)s->cur_frame));
    if (from == MX_CLIENT) cJSON_AddItemToObjectCS(o, "from", cJSON_CreateStringReference("client"));
    else if (from == MX_SERVER) cJSON_AddItemToObjectCS(o, "from", cJSON_CreateStringReference("server"));
    return (mx_ev *)(void *)o;
}

void mx_ev_end(mx_sess *s, mx_ev *e)
{
    if (!e) return;
    sess_out *o = s->out;
    mx_sink *k = s->sink;
    if (o) o->last_us = s->cur_us;
    if (k && o && (keeps_doc(k) || o->deferred)) {
        const char *t = print(k, J(e), 0);
        if (t) keep_text(o, t, keeps_doc(k) ? ',' : '\n');
        cJSON_Delete(J(e));
        return;
    }
    if (k) emit(k, J(e));
    cJSON_Delete(J(e));
}

/* Keys given to the mx_ev_* calls are string literals, so the document
 * refers to them instead of copying each one (cJSON's "CS" variant). */
static void add(mx_ev *e, const char *key, cJSON *v)
{
    if (!v) return;
    if (cJSON_IsArray(J(e))) cJSON_AddItemToArray(J(e), v);
    else cJSON_AddItemToObjectCS(J(e), key, v);
}

/* The single path from wire bytes to JSON text. */
static cJSON *wire_string(const uint8_t *p, size_t n, size_t maxin, int *truncated)
{
    char stackbuf[4 * 1024];
    size_t cap = maxin * 3 + 4, outlen;
    char *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!buf) return NULL;
    int fl = mx_text_clean(p, n, maxin, buf, cap, &outlen);
    cJSON *v = cJSON_CreateString(buf);
    if (buf != stackbuf) free(buf);
    *truncated = (fl & MX_TEXT_TRUNCATED) != 0;
    return v;
}

void mx_ev_wire(mx_ev *e, const char *key, const uint8_t *p, size_t n, size_t cap)
{
    if (!e) return;
    int tr = 0;
    add(e, key, wire_string(p, n, cap, &tr));
    if (tr && key && !cJSON_IsArray(J(e))) {
        char k2[96];
        snprintf(k2, sizeof k2, "%s_truncated", key);
        cJSON_AddTrueToObject(J(e), k2);
    }
}

void mx_ev_str(mx_ev *e, const char *key, const char *s)
{
    if (e && s) add(e, key, cJSON_CreateString(s));
}

void mx_ev_lit(mx_ev *e, const char *key, const char *s)
{
    if (e && s) add(e, key, cJSON_CreateStringReference(s));
}

void mx_ev_int(mx_ev *e, const char *key, int64_t v)
{
    if (!e) return;
    /* Above 2^53 a double loses digits: write such values as strings. */
    if (v > (1LL << 53) || v < -(1LL << 53)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)v);
        add(e, key, cJSON_CreateString(b));
    } else {
        add(e, key, raw_i64(v));
    }
}

void mx_ev_num(mx_ev *e, const char *key, double v) { if (e) add(e, key, cJSON_CreateNumber(v)); }
void mx_ev_seconds(mx_ev *e, const char *key, uint64_t us) { if (e) add(e, key, raw_seconds(us)); }
void mx_ev_bool(mx_ev *e, const char *key, int v) { if (e) add(e, key, cJSON_CreateBool(v)); }
void mx_ev_null(mx_ev *e, const char *key) { if (e) add(e, key, cJSON_CreateNull()); }

mx_ev *mx_ev_obj(mx_ev *e, const char *key)
{
    if (!e) return NULL;
    cJSON *o = cJSON_CreateObject();
    add(e, key, o);
    return (mx_ev *)(void *)o;
}

mx_ev *mx_ev_arr(mx_ev *e, const char *key)
{
    if (!e) return NULL;
    cJSON *o = cJSON_CreateArray();
    add(e, key, o);
    return (mx_ev *)(void *)o;
}

void mx_ev_push_wire(mx_ev *a, const uint8_t *p, size_t n, size_t cap) { mx_ev_wire(a, NULL, p, n, cap); }
void mx_ev_push_str(mx_ev *a, const char *s) { mx_ev_str(a, NULL, s); }
void mx_ev_push_lit(mx_ev *a, const char *s) { mx_ev_lit(a, NULL, s); }
void mx_ev_push_int(mx_ev *a, int64_t v) { mx_ev_int(a, NULL, v); }
mx_ev *mx_ev_push_obj(mx_ev *a) { return mx_ev_obj(a, NULL); }

void mx_ev_endpoint(mx_ev *e, const char *key, const mx_addr *a, uint16_t port)
{
    if (e) add_endpoint(J(e), key, a, port);
}
