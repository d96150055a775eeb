/* session.c - session helpers shared by the engine and the parsers. */
#include "mx/session.h"
#include "mx/smtp.h"
#include "mx/text.h"
#include "mx/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* n decimal digits of v, zero-padded, at o. */
static char *digits(char *o, uint32_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) { o[i] = (char)('0' + v % 10); v /= 10; }
    return o + n;
}

void mx_iso_time(uint64_t us, char *buf, size_t cap)
{
    uint64_t secs = us / 1000000u;
    if (cap >= 28 && secs < 253402300800ull) {
        /* years 1970 to 9999: the civil date of the day number (days from
         * 0000-03-01, in 400-year eras), without gmtime and printf */
        uint64_t z = secs / 86400 + 719468;
        uint32_t sod = (uint32_t)(secs % 86400);
        uint32_t era = (uint32_t)(z / 146097), doe = (uint32_t)(z - (uint64_t)era * 146097);
        uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        uint32_t mp = (5 * doy + 2) / 153;
        uint32_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
        uint32_t y = yoe + era * 400 + (m <= 2);
        char *o = digits(buf, y, 4);
        *o++ = '-'; o = digits(o, m, 2);
        *o++ = '-'; o = digits(o, d, 2);
        *o++ = 'T'; o = digits(o, sod / 3600, 2);
        *o++ = ':'; o = digits(o, sod / 60 % 60, 2);
        *o++ = ':'; o = digits(o, sod % 60, 2);
        *o++ = '.'; o = digits(o, (uint32_t)(us % 1000000u), 6);
        *o++ = 'Z';
        *o = 0;
        return;
    }
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) { snprintf(buf, cap, "1970-01-01T00:00:00.000000Z"); return; }
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(us % 1000000u));
}

void mx_sess_anomaly(mx_sess *s, int from, const char *kind, const char *detail)
{
    for (unsigned i = 0; i < s->nanom; i++) {
        if (strcmp(s->anom[i].kind, kind) == 0) { s->anom[i].count++; return; }
    }
    /* most sessions have none: the table is made at the first */
    if (!s->anom) s->anom = calloc(MX_MAX_ANOM, sizeof *s->anom);
    if (s->anom && s->nanom < MX_MAX_ANOM) {
        s->anom[s->nanom].kind = kind;
        s->anom[s->nanom].count = 1;
        s->nanom++;
    }
    mx_ev *ev = mx_ev_begin(s, MX_EV_ANOMALY, from);
    mx_ev_str(ev, "kind", kind);
    if (detail) mx_ev_str(ev, "detail", detail);
    mx_ev_end(s, ev);
}

void mx_sess_anomaly_summary(const mx_sess *s, mx_ev *obj)
{
    for (unsigned i = 0; i < s->nanom; i++)
        mx_ev_int(obj, s->anom[i].kind, s->anom[i].count);
}

void mx_sess_release(mx_sess *s)
{
    free(s->anom);
    s->anom = NULL;
    s->nanom = 0;
    free(s->dns_name);
    free(s->mx_domain);
    free(s->tlsa);
    s->dns_name = s->mx_domain = NULL;
    s->tlsa = NULL;
    s->ntlsa = 0;
}

void mx_sess_implicit_tls(mx_sess *s)
{
    s->tls_from_start = 1;
    s->app[MX_CLIENT] = s->app[MX_SERVER] = MX_APP_TLS;
    /* the first bytes are still looked at: clear SMTP there is followed */
    s->handoff_open[MX_CLIENT] = s->handoff_open[MX_SERVER] = 1;
}

void mx_sess_start_tls(mx_sess *s)
{
    s->app[MX_CLIENT] = MX_APP_TLS;
    s->app[MX_SERVER] = MX_APP_TLS;
    s->tls_handoff = 1;
    s->handoff_open[MX_CLIENT] = s->handoff_open[MX_SERVER] = 1;
    s->release |= 1u << MX_CLIENT;        /* the client's held bytes are TLS */
}

/* A parser's state is made when its first byte comes: a connection that
 * never carries data (a SYN flood, a refusal) costs no parser memory. */
static mx_smtp *smtp_of(mx_sess *s)
{
    if (!s->smtp) s->smtp = mx_smtp_new(s);
    return s->smtp;
}

static mx_tls *tls_of(mx_sess *s)
{
    if (!s->tls) s->tls = mx_tls_new(s);
    return s->tls;
}

void mx_sess_parsers(mx_sess *s)
{
    smtp_of(s);
    tls_of(s);
}

/* The whole clear-text lines at p (SMTP command or reply lines, each
 * ended by LF) before the first byte that starts a TLS record: 0 when
 * there are none, or when the first line is not complete yet. */
static size_t injected_lines(const uint8_t *p, size_t n)
{
    size_t k = 0;
    while (k < n && p[k] != 0x16) {
        const uint8_t *nl = memchr(p + k, '\n', n - k);
        if (!nl) break;
        size_t line = (size_t)(nl - (p + k)) + 1;
        for (size_t i = 0; i < line; i++) {
            uint8_t c = p[k + i];
            if (c < 0x20 && c != '\r' && c != '\n' && c != '\t') return k;   /* not text */
        }
        k += line;
    }
    return k;
}

/* Reports lines injected at the STARTTLS hand-off (RFC 3207 §4; the
 * CVE-2011-0411 class): the client's with their verbs (only verbs: an
 * injected AUTH line's credentials are never shown), the server's with
 * their reply codes. */
static void injection(mx_sess *s, int dir, const uint8_t *p, size_t n)
{
    static const char *const verbs[] = { "EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT",
                                         "AUTH", "VRFY", "EXPN", "HELP", "STARTTLS", "ETRN" };
    if (dir == MX_CLIENT) s->starttls_injected = 1;
    else s->response_injected = 1;
    mx_ev *ev = mx_ev_begin(s, MX_EV_ANOMALY, dir);
    mx_ev_lit(ev, "kind", dir == MX_CLIENT ? "starttls_command_injection" : "starttls_response_injection");
    mx_ev_lit(ev, "detail", dir == MX_CLIENT
              ? "SMTP lines sent with STARTTLS, before its 220: a server that keeps them runs them inside TLS as if the client had sent them there (command injection)"
              : "SMTP reply lines after the 220 to STARTTLS, before the client's ClientHello: a client that keeps them reads them inside TLS as the server's (response injection)");
    mx_ev_int(ev, "bytes", (int64_t)n);
    mx_ev *a = mx_ev_arr(ev, dir == MX_CLIENT ? "verbs" : "codes");
    for (size_t k = 0; k < n;) {
        const uint8_t *nl = memchr(p + k, '\n', n - k);
        size_t line = nl ? (size_t)(nl - (p + k)) + 1 : n - k;
        if (dir == MX_CLIENT) {
            const char *v = "other";
            for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
                size_t vl = strlen(verbs[i]);
                if (line >= vl && mx_ci_prefix(p + k, line, verbs[i]) &&
                    (line == vl || p[k + vl] == ' ' || p[k + vl] == '\r' || p[k + vl] == '\n')) { v = verbs[i]; break; }
            }
            mx_ev_push_lit(a, v);
        } else if (line >= 3 && p[k] >= '1' && p[k] <= '5' && p[k + 1] >= '0' && p[k + 1] <= '9' && p[k + 2] >= '0' &&
                   p[k + 2] <= '9') {
            mx_ev_push_int(a, (p[k] - '0') * 100 + (p[k + 1] - '0') * 10 + (p[k + 2] - '0'));
        }
        k += line;
    }
    mx_ev_end(s, ev);
}

size_t mx_sess_feed(mx_sess *s, int dir, const uint8_t *p, size_t n, int force)
{
    size_t used = 0;
    while (used < n) {
        enum mx_app a = s->app[dir];
        size_t c;
        switch (a) {
        case MX_APP_SMTP: c = mx_smtp_feed(smtp_of(s), dir, p + used, n - used, force); break;
        case MX_APP_TLS:
            if (s->handoff_open[dir] && smtp_of(s) && !s->tls_from_start) {
                /* Clear-text lines at the hand-off that are not the
                 * conversation going on: the client's sent with STARTTLS,
                 * before its answer, or the server's after its 220 and
                 * before the client's ClientHello.  TLS follows them. */
                int early = dir == MX_CLIENT ? s->handoff_early : s->handoff_open[MX_CLIENT];
                if (early) {
                    const uint8_t *q = p + used;
                    size_t k = n - used, inj = injected_lines(q, k);
                    /* (the client's held bytes are all here; the server's
                     * line may still be coming) */
                    if (!inj && dir == MX_SERVER && k && q[0] != 0x16 && !memchr(q, '\n', k) && !force) return used;
                    if (dir == MX_CLIENT) {
                        s->handoff_early = 0;
                        if (!inj && k && q[0] == 0x16)
                            mx_sess_anomaly(s, dir, "client_did_not_wait", "TLS bytes sent before the 220 to STARTTLS");
                    }
                    if (inj) {
                        injection(s, dir, q, inj);
                        used += inj;
                        continue;
                    }
                }
            }
            if (s->handoff_open[dir] && smtp_of(s)) {
                /* The 220 to STARTTLS was given, but is TLS what follows?
                 * A middlebox that answers STARTTLS itself, or a broken
                 * server, lets the conversation go on in clear text. */
                int plain = mx_smtp_looks_plain(dir, p + used, n - used);
                if (plain < 0 && !force) return used;
                s->handoff_open[dir] = 0;
                if (plain > 0 || ((s->starttls_plain || s->plain_on_tls_port) && plain < 0)) {
                    if (s->tls_from_start && !s->plain_on_tls_port) {
                        s->plain_on_tls_port = 1;
                        mx_sess_anomaly(s, dir, "plaintext_on_tls_port",
                                        "clear-text SMTP on an implicit-TLS port: followed as SMTP");
                    } else if (!s->tls_from_start && !s->starttls_plain) {
                        s->starttls_plain = 1;
                        s->starttls_plain_frame = s->cur_frame;
                        mx_sess_anomaly(s, dir, "starttls_not_followed_by_tls",
                                        "the 220 to STARTTLS was followed by clear-text SMTP, not TLS");
                    }
                    mx_smtp_resume(s->smtp, dir);
                    continue;
                }
            }
            c = mx_tls_feed(tls_of(s), dir, p + used, n - used, force);
            break;
        default:          c = n - used; break;
        }
        used += c;
        if (s->release) break;            /* the owner acts, then feeds the rest */
        if (s->app[dir] == a) break;      /* no hand-off: the rest waits */
    }
    return used;
}

void mx_sess_gap(mx_sess *s, int dir, uint32_t len)
{
    if (s->app[dir] == MX_APP_SMTP) mx_smtp_gap(smtp_of(s), dir, len);
    else if (s->app[dir] == MX_APP_TLS) mx_tls_gap(tls_of(s), dir, len);
}

void mx_sess_eof(mx_sess *s, int dir)
{
    if (s->smtp) mx_smtp_eof(s->smtp, dir);
    if (s->tls) mx_tls_eof(s->tls, dir);
}
