/* harness.c - see harness.h. */
#include "harness.h"

#include "mx/smtp.h"
#include "mx/tls.h"

#include <stdlib.h>
#include <string.h>

static size_t h_data(void *ctx, int dir, const uint8_t *p, size_t n, int force)
{
    return mx_sess_feed(&((mx_harness *)ctx)->sess, dir, p, n, force);
}

static void h_gap(void *ctx, int dir, uint64_t at, uint32_t len, int why)
{
    (void)at; (void)why;
    mx_sess_gap(&((mx_harness *)ctx)->sess, dir, len);
}

static const mx_stream_ops ops = { h_data, h_gap, NULL };

static mx_stream_ctx sctx(mx_harness *h, int dir)
{
    mx_stream_ctx c = { &ops, h, dir, &h->opt.lim };
    return c;
}

static void h_kick(mx_sess *s, int dir)
{
    mx_harness *h = s->kick_ctx;
    mx_stream_ctx c = sctx(h, dir);
    mx_stream_kick(&h->st[dir], &c);
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
    h->sess.kick = h_kick;
    h->sess.kick_ctx = h;
    h->sess.start_us = h->sess.cur_us = 1700000000000000ull;
    mx_sink_session_begin(h->sink, &h->sess);
    h->sess.smtp = mx_smtp_new(&h->sess);
    h->sess.tls = mx_tls_new(&h->sess);
    h->sess.app[0] = h->sess.app[1] = implicit_tls ? MX_APP_TLS : MX_APP_SMTP;
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
    mx_ev *ev = mx_ev_begin(&h->sess, "session.end", MX_NODIR);
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
    for (int d = 0; d < 2; d++) mx_stream_free(&h->st[d]);
    mx_sink_free(h->sink);
    fclose(h->out);
    free(h->buf);
}
