/* harness.c - see harness.h. */
#include "harness.h"

#include "mx/smtp.h"
#include "mx/tls.h"

#include <stdlib.h>
#include <string.h>

static mx_stream_ctx sctx(mx_harness *h, int dir);

/* As the engine: a released direction is offered again between the bytes
 * that released it and the ones after. */
static size_t h_data(void *ctx, int dir, const uint8_t *p, size_t n, int force)
{
    mx_harness *h = ctx;
    size_t used = 0;
    for (;;) {
        used += mx_sess_feed(&h->sess, dir, p + used, n - used, force);
        uint8_t rel = h->sess.release;
        h->sess.release = 0;
        if (!rel) break;
        for (int d = 0; d < 2; d++) {
            if (d == dir || !(rel >> d & 1)) continue;
            mx_stream_ctx c = sctx(h, d);
            mx_stream_kick(&h->st[d], &c);
        }
        if (used >= n) break;
    }
    return used;
}

static void h_gap(void *ctx, int dir, uint64_t at, uint32_t len, int why)
{
    (void)at; (void)why;
    mx_sess_gap(&((mx_harness *)ctx)->sess, dir, len);
}

static const mx_stream_ops ops = { h_data, h_gap, NULL };

static mx_stream_ctx sctx(mx_harness *h, int dir)
{
    mx_stream_ctx c = { &ops, h, dir, &h->opt.lim, 0, NULL };
    return c;
}

void mxh_init(mx_harness *h, int implicit_tls, int show_user)
{
    memset(h, 0, sizeof *h);
    mx_limits_default(&h->opt.lim);
    h->opt.show_user = show_user;
    h->out = open_memstream(&h->buf, &h->len);
    h->sink = mx_sink_new(MX_FMT_NDJSON, h->out, &h->opt, 0);
    h->sess.id = 1;
    h->sess.opt = &h->opt;
    h->sess.sink = h->sink;
    h->sess.owner = h;
    h->sess.start_us = h->sess.cur_us = 1700000000000000ull;
    mx_sink_session_begin(h->sink, &h->sess);
    h->sess.smtp = mx_smtp_new(&h->sess);
    h->sess.tls = mx_tls_new(&h->sess);
    h->sess.app[0] = h->sess.app[1] = implicit_tls ? MX_APP_TLS : MX_APP_SMTP;
    if (implicit_tls) mx_sess_implicit_tls(&h->sess);
    for (int d = 0; d < 2; d++) {
        mx_stream_init(&h->st[d]);
        mx_stream_start(&h->st[d], 1000);
    }
}

void mxh_feed(mx_harness *h, int dir, const void *p, size_t n)
{
    mx_stream_ctx c = sctx(h, dir);
    h->sess.cur_frame = ++h->frame;
    h->sess.cur_us += 1000;
    while (n) {                       /* segments of at most 64 KiB */
        uint32_t k = n > 65536 ? 65536 : (uint32_t)n;
        mx_stream_segment(&h->st[dir], &c, h->st[dir].next_seq, p, k, k, 0);
        p = (const uint8_t *)p + k;
        n -= k;
    }
}

void mxh_gap(mx_harness *h, int dir, uint32_t n)
{
    /* Skip n sequence numbers: the next segment arrives after a hole. */
    mx_stream_ctx c = sctx(h, dir);
    mx_stream_skip(&h->st[dir], &c, n);
}

const char *mxh_finish(mx_harness *h)
{
    for (int d = 0; d < 2; d++) {
        mx_stream_ctx c = sctx(h, d);
        mx_stream_flush(&h->st[d], &c);
    }
    mx_sess_eof(&h->sess, MX_CLIENT);
    mx_sess_eof(&h->sess, MX_SERVER);
    mx_ev *ev = mx_ev_begin(&h->sess, MX_EV_SESSION_END, MX_NODIR);
    if (h->sess.smtp) mx_smtp_summary(h->sess.smtp, mx_ev_obj(ev, "smtp"));
    if (mx_tls_seen(h->sess.tls)) mx_tls_summary(h->sess.tls, mx_ev_obj(ev, "tls"));
    if (h->sess.nanom) mx_sess_anomaly_summary(&h->sess, mx_ev_obj(ev, "anomalies"));
    mx_ev_end(&h->sess, ev);
    mx_sink_session_end(h->sink, &h->sess);
    fflush(h->out);
    return h->buf;
}

void mxh_free(mx_harness *h)
{
    mx_smtp_free(h->sess.smtp);
    mx_tls_free(h->sess.tls);
    mx_sess_release(&h->sess);
    for (int d = 0; d < 2; d++) mx_stream_free(&h->st[d]);
    mx_sink_free(h->sink);
    fclose(h->out);
    free(h->buf);
}

char *mxh_normalise(const char *in)
{
    static const char *keys[] = { "\"ts\":", "\"t\":", "\"frame\":", "\"command_frame\":", "\"latency\":" };
    char *out = malloc(strlen(in) + 1), *o = out;
    const char *p = in;
    while (*p) {
        int hit = 0;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            size_t kl = strlen(keys[k]);
            if (strncmp(p, keys[k], kl) == 0 && (p == in || p[-1] == ',' || p[-1] == '{')) {
                p += kl;
                if (*p == '"') { p++; while (*p && *p != '"') p++; if (*p) p++; }
                else while (*p && *p != ',' && *p != '}') p++;
                if (*p == ',') p++;
                else if (o > out && o[-1] == ',') o--;
                hit = 1;
                break;
            }
        }
        if (!hit) *o++ = *p++;
    }
    *o = 0;
    return out;
}

void mxh_play(mx_harness *h, const mxh_chunk *cs, int mode, int which, size_t at)
{
    for (int i = 0; cs[i].dir != -2; i++) {
        const mxh_chunk *c = &cs[i];
        if (c->dir == -1 || c->dir == -3) { mxh_gap(h, c->dir == -1 ? MX_CLIENT : MX_SERVER, (uint32_t)c->n); continue; }
        if (mode == 2) {
            for (size_t k = 0; k < c->n; k++) mxh_feed(h, c->dir, c->p + k, 1);
        } else if (mode == 1 && i == which) {
            mxh_feed(h, c->dir, c->p, at);
            mxh_feed(h, c->dir, c->p + at, c->n - at);
        } else {
            mxh_feed(h, c->dir, c->p, c->n);
        }
    }
}

char *mxh_run(const mxh_chunk *cs, int implicit_tls, int show_user, int mode, int which, size_t at)
{
    mx_harness h;
    mxh_init(&h, implicit_tls, show_user);
    mxh_play(&h, cs, mode, which, at);
    char *r = strdup(mxh_finish(&h));
    mxh_free(&h);
    return r;
}

char *mxh_feed_all(const char *name, const mxh_chunk *cs, int implicit_tls, int show_user, int *same)
{
    char *base = mxh_run(cs, implicit_tls, show_user, 0, 0, 0), *nb = mxh_normalise(base);
    *same = 1;
    for (int i = 0; cs[i].dir != -2 && *same; i++) {
        if (cs[i].dir < 0) continue;
        for (size_t at = 1; at < cs[i].n && *same; at++) {
            char *o = mxh_run(cs, implicit_tls, show_user, 1, i, at), *no = mxh_normalise(o);
            if (strcmp(nb, no) != 0) {
                *same = 0;
                fprintf(stderr, "%s: chunk %d split at %zu differs:\n--- whole\n%s--- split\n%s", name, i, at, nb, no);
            }
            free(o);
            free(no);
        }
    }
    char *o = mxh_run(cs, implicit_tls, show_user, 2, 0, 0), *no = mxh_normalise(o);
    if (strcmp(nb, no) != 0) {
        *same = 0;
        fprintf(stderr, "%s: byte-by-byte differs:\n--- whole\n%s--- bytes\n%s", name, nb, no);
    }
    free(o);
    free(no);
    free(nb);
    return base;
}
