/* smtp.c - SMTP conversation parser (see smtp.h).
 *
 * Client bytes are read in one of these modes:
 *
 *   CMD ---DATA--> DATA_WAIT --354--> BODY --"<CRLF>.<CRLF>"--> CMD
 *    |                 \--other reply--------------------------> CMD
 *    |---BDAT n--> CHUNK (n bytes, no framing) -----------------> CMD
 *    |---AUTH----> AUTH (each line answers a 334) --2xx/4xx/5xx-> CMD
 *    '---STARTTLS-> TLS_WAIT --220--> (TLS from the next byte)
 *                        \--other reply-----------------------> CMD
 *
 * DATA_WAIT and TLS_WAIT hold the client's bytes until the server's answer
 * is seen, so the hand-off happens at the exact byte (RFC 3207 §4).  Server
 * replies (RFC 5321 §4.2) are paired in order with a queue of commands that
 * await one, which is what makes pipelining (RFC 2920) come out right.
 * Only mx_smtp_set_cmode() changes the client mode.
 */
#include "mx/smtp.h"
#include "mx/text.h"
#include "mx/verdict.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum verb {
    V_UNKNOWN = 0, V_HELO, V_EHLO, V_MAIL, V_RCPT, V_DATA, V_BDAT, V_RSET,
    V_VRFY, V_EXPN, V_HELP, V_NOOP, V_QUIT, V_STARTTLS, V_AUTH, V_ETRN,
    V_TURN, V_ATRN, V_XCLIENT, V_XFORWARD, V_LHLO,
    V_GREETING, V_DATA_END, V__N
};

static const char *const verb_name[V__N] = {
    "UNKNOWN", "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET",
    "VRFY", "EXPN", "HELP", "NOOP", "QUIT", "STARTTLS", "AUTH", "ETRN",
    "TURN", "ATRN", "XCLIENT", "XFORWARD", "LHLO",
    "<greeting>", ".",
};

enum cmode { CM_CMD, CM_DATA_WAIT, CM_BODY, CM_CHUNK, CM_AUTH, CM_TLS_WAIT,
             CM_DISCARD, CM_OPAQUE };
static const char *const cmode_name[] = { "command", "data_wait", "body", "chunk",
                                          "auth", "tls_wait", "discard", "opaque" };

#define MAX_REPLY_LINES 64
#define REPLY_BUF 8192
_Static_assert(REPLY_BUF <= 65535, "reply line offsets are 16 bits");
#define HDR_VAL 512
#define BODY_LINE 1000
#define MAX_BOUNDARY_DEPTH 8

typedef struct pend {
    uint8_t verb;
    uint8_t bdat_last;
    uint64_t frame, us;
} pend;

enum { H_FROM, H_TO, H_CC, H_SUBJECT, H_MSGID, H_DATE, H_XMAILER, H_UA, H_REPLYTO, H__N };
static const char *const hdr_name[H__N] = { "from", "to", "cc", "subject", "message-id",
                                            "date", "x-mailer", "user-agent", "reply-to" };
static const char *const hdr_key[H__N] = { "from", "to", "cc", "subject", "message_id",
                                           "date", "x_mailer", "user_agent", "reply_to" };

typedef struct part {
    char ctype[96], fname[160], enc[32], disp[24];
    uint64_t bytes;
    uint8_t depth;
} part;

/* One message being transferred (DATA or BDAT); lives from its start to the
 * smtp.data event. */
typedef struct msg {
    uint8_t bdat;
    uint64_t bytes, lines, gap_bytes;
    uint32_t bare_lf, bare_cr;
    uint8_t in_headers;     /* top-level header section   */
    uint8_t in_part_hdrs;   /* MIME part header section   */
    uint8_t prev_crlf;      /* previous line ended in CRLF */
    uint8_t mid_line;       /* inside a line              */
    uint8_t line_cr;        /* current line's last byte is CR */
    uint8_t after_gap;      /* current line began in a hole: no checks */
    uint32_t line_len;
    uint32_t hdr_len;
    uint8_t hdr_trunc;
    uint8_t have[H__N];
    char top_ctype[96];
    uint8_t nbound;
    uint32_t nparts, parts_dropped;
    int32_t cur_part;
    part pending_part;      /* part whose headers are being read */
    uint32_t smuggle;       /* smuggling-form end markers seen */
    int server_abort;       /* 4xx/5xx the server sent mid-message */
    uint64_t first_frame;
    /* Below: text buffers, not zeroed; each is read only up to its length
     * (line_len, hdr_len, have[], nbound). */
    char line[BODY_LINE];   /* first bytes of the current line */
    char hdr[HDR_VAL * 2];  /* header being unfolded      */
    char hv[H__N][HDR_VAL];
    char bound[MAX_BOUNDARY_DEPTH][72];
    /* Kept from one message to the next of the session (see msg_start). */
    part *parts;            /* nparts used, parts_cap allocated */
    uint32_t parts_cap;
} msg;

struct mx_smtp {
    mx_sess *s;
    const mx_limits *lim;
    enum cmode cmode;
    uint8_t s_discard;            /* server: skip to next LF        */
    uint8_t c_after_gap, s_after_gap;
    uint8_t greeted, any_cmd, esmtp;
    uint8_t server_spoke;         /* the server has sent any byte     */
    uint32_t msgs_sent;           /* messages the client sent (smtp.data) */
    mx_reply_fact bad_reply;      /* first server line that is not a reply */
    uint8_t auth_ir;              /* AUTH carried an initial response */
    /* pipelined commands awaiting replies */
    pend *q;                      /* a ring of qcap, grown up to max_pending  */
    uint32_t qcap;
    uint32_t qhead, qlen;
    /* reply being assembled (its text is in rbuf, at the end) */
    uint32_t rlen;
    uint16_t roff[MAX_REPLY_LINES], rlens[MAX_REPLY_LINES];   /* within rbuf (REPLY_BUF fits) */
    uint32_t nlines, lines_dropped;
    int rcode;
    uint64_t rfirst_frame;
    /* BDAT */
    uint64_t chunk_left;
    uint8_t chunk_last;
    uint8_t chunk_unsure;         /* BDAT had extra tokens: its chunk may never come */
    /* AUTH */
    char auth_mech[24];
    uint32_t auth_step;
    uint8_t auth_expect;          /* 1 user name, 2 password, 0 other */
    int auth_need;                /* responses the mechanism takes, -1: unknown */
    uint32_t auth_sent, auth_334; /* responses sent, challenges seen   */
    char auth_user[128];
    int auth_code;
    const char *auth_result;
    /* what we learnt */
    char helo[256], banner_host[256], ehlo_host[256];
    uint8_t starttls_offered, pipelining, chunking, smtputf8;
    uint8_t starttls_masked;      /* a capability masked as XXXXXXXA      */
    uint8_t mail_in_clear;        /* said: MAIL accepted in clear          */
    uint8_t in_tls;               /* reading the conversation inside TLS (a key log) */
    int64_t size_limit;
    char auth_mechs[160];
    const char *starttls_result;
    int starttls_code;
    uint32_t commands, replies, unsolicited;
    uint32_t transactions, msgs_accepted, msgs_rejected, rcpt_ok, rcpt_bad;
    /* the recipients' domains (lower case, distinct, in order; at most
     * RCPT_DOMAINS, made at the first RCPT) */
    char (*rcpt_dom)[256];
    uint8_t nrcpt_dom, rcpt_dom_more;
    uint32_t garbage_lines;
    int last_code;
    char last_queue_id[80];
    uint8_t quit_sent, quit_answered, server_closing;
    uint8_t early;                /* client bytes arrived while it had to wait */
    msg *m;
    msg *spare;                   /* the last message's memory, for the next */
    /* evidence for the verdict */
    int greeting_code, ehlo_code, helo_code;
    uint64_t greeting_frame, starttls_frame, auth_frame, accepted_frame, tls530_frame;
    uint8_t mail_seen, data_seen, tls530;
    mx_reply_fact fail, abort421;
    char *rbuf;                   /* grown as replies need, up to REPLY_BUF */
    uint32_t rcap;
};

/* ---- small helpers ----------------------------------------------------- */

/* A TLS record header (type 20-23, version 3.x) where SMTP text belongs. */
static int looks_tls(const uint8_t *l)
{
    return l[0] >= 0x14 && l[0] <= 0x17 && l[1] == 0x03 && l[2] <= 0x04;
}

#define WIRE(ev, key, p, n) mx_ev_wire(ev, key, (const uint8_t *)(p), n, m->lim->max_field)

static void set_cmode(mx_smtp *m, enum cmode c) { m->cmode = c; }

static const char *reply_class(int code)
{
    switch (code / 100) {
    case 2: return "success";
    case 3: return "intermediate";
    case 4: return "transient";
    case 5: return "permanent";
    default: return "invalid";
    }
}

static int is_sp(uint8_t c) { return c == ' ' || c == '\t'; }

static void trim(const uint8_t **p, size_t *n)
{
    while (*n && is_sp(**p)) { (*p)++; (*n)--; }
    while (*n && (is_sp((*p)[*n - 1]) || (*p)[*n - 1] == '\r')) (*n)--;
}

static void cstr_lower(char *s)
{
    for (; *s; s++) if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

/* ---- pending queue ----------------------------------------------------- */

static pend *q_head(mx_smtp *m) { return m->qlen ? &m->q[m->qhead] : NULL; }

static void q_pop(mx_smtp *m)
{
    if (!m->qlen) return;
    m->qhead = (m->qhead + 1) % m->qcap;
    m->qlen--;
}

/* Doubles the ring (a pipelining client), its entries put in order. */
static int q_grow(mx_smtp *m)
{
    uint32_t max = m->lim->max_pending ? m->lim->max_pending : 1;
    uint32_t nc = m->qcap * 2 < max ? m->qcap * 2 : max;
    pend *n = nc > m->qcap ? malloc(nc * sizeof *n) : NULL;
    if (!n) return 0;
    for (uint32_t i = 0; i < m->qlen; i++) n[i] = m->q[(m->qhead + i) % m->qcap];
    free(m->q);
    m->q = n;
    m->qcap = nc;
    m->qhead = 0;
    return 1;
}

static int q_push(mx_smtp *m, int verb, int bdat_last)
{
    if (m->qlen >= m->lim->max_pending || (m->qlen == m->qcap && !q_grow(m))) {
        mx_sess_anomaly(m->s, MX_CLIENT, "limit.max_pending", "too many commands awaiting a reply");
        return 0;
    }
    pend *p = &m->q[(m->qhead + m->qlen) % m->qcap];
    p->verb = (uint8_t)verb;
    p->bdat_last = (uint8_t)bdat_last;
    p->frame = m->s->cur_frame;
    p->us = m->s->cur_us;
    m->qlen++;
    return 1;
}

/* ---- lifecycle --------------------------------------------------------- */

mx_smtp *mx_smtp_new(mx_sess *s)
{
    mx_smtp *m = malloc(sizeof *m);
    if (!m) return NULL;
    memset(m, 0, sizeof *m);
    m->s = s;
    m->lim = &s->opt->lim;
    /* a few commands at once, unless the client pipelines more */
    m->qcap = m->lim->max_pending < 4 ? (m->lim->max_pending ? m->lim->max_pending : 1) : 4;
    m->q = calloc(m->qcap, sizeof *m->q);
    if (!m->q) { free(m); return NULL; }
    m->size_limit = -1;
    m->rcode = -1;
    return m;
}

/* Ends the current message; its memory is kept for the session's next. */
static void msg_free(mx_smtp *m)
{
    if (!m->m) return;
    if (m->spare) { free(m->spare->parts); free(m->spare); }
    m->spare = m->m;
    m->m = NULL;
}

void mx_smtp_free(mx_smtp *m)
{
    if (!m) return;
    /* the session's names point into this state */
    if (m->s->banner_host == m->banner_host) m->s->banner_host = NULL;
    if (m->s->ehlo_host == m->ehlo_host) m->s->ehlo_host = NULL;
    msg_free(m);
    if (m->spare) { free(m->spare->parts); free(m->spare); }
    free(m->q);
    free(m->rbuf);
    free(m->rcpt_dom);
    free(m);
}

#define RCPT_DOMAINS 4

/* Keeps the domain of a recipient's address (after its last '@'). */
static void rcpt_domain(mx_smtp *m, const uint8_t *addr, size_t n)
{
    const uint8_t *at = NULL;
    for (size_t i = 0; i < n; i++) if (addr[i] == '@') at = addr + i;
    if (!at || at + 1 >= addr + n) return;
    const uint8_t *d = at + 1;
    size_t dl = (size_t)(addr + n - d);
    if (dl > 255) return;
    char low[256];
    for (size_t i = 0; i < dl; i++) low[i] = (char)(d[i] >= 'A' && d[i] <= 'Z' ? d[i] + 32 : d[i]);
    low[dl] = 0;
    for (unsigned i = 0; i < m->nrcpt_dom; i++) if (strcmp(m->rcpt_dom[i], low) == 0) return;
    if (m->nrcpt_dom == RCPT_DOMAINS) { m->rcpt_dom_more = 1; return; }
    if (!m->rcpt_dom && !(m->rcpt_dom = malloc(RCPT_DOMAINS * sizeof *m->rcpt_dom))) return;
    memcpy(m->rcpt_dom[m->nrcpt_dom++], low, dl + 1);
}

/* ---- message (DATA / BDAT content) --------------------------------------- */

static msg *msg_start(mx_smtp *m, int bdat)
{
    msg_free(m);
    msg *g = m->spare;
    m->spare = NULL;
    if (!g) {
        g = malloc(sizeof *g);
        if (!g) return NULL;
        g->parts = NULL;
        g->parts_cap = 0;
    }
    memset(g, 0, offsetof(msg, line));
    g->bdat = (uint8_t)bdat;
    g->in_headers = 1;
    g->prev_crlf = 1;
    g->cur_part = -1;
    g->first_frame = m->s->cur_frame;
    m->m = g;
    return g;
}

/* Finds parameter `name` in a MIME header value (RFC 2045 §5.1, with the
 * RFC 2231 `name*=charset''value` form); copies it unquoted into out. */
static int mime_param(const char *v, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strchr(v, ';');
    while (p) {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        int ext = 0;
        if (strncasecmp(p, name, nl) == 0 && (p[nl] == '=' || (p[nl] == '*' && (ext = 1)))) {
            const char *q = p + nl + ext;
            if (ext && *q == '0') { q++; if (*q == '*') q++; }   /* name*0*= */
            if (*q != '=') { p = strchr(p, ';'); continue; }
            q++;
            size_t o = 0;
            if (*q == '"') {
                q++;
                while (*q && *q != '"' && o + 1 < cap) {
                    if (*q == '\\' && q[1]) q++;
                    out[o++] = *q++;
                }
            } else {
                if (ext) { const char *t = strstr(q, "''"); if (t) q = t + 2; }
                while (*q && *q != ';' && *q != ' ' && *q != '\t' && o + 1 < cap) {
                    if (ext && *q == '%' && q[1] && q[2]) {
                        char hx[3] = { q[1], q[2], 0 };
                        out[o++] = (char)strtol(hx, NULL, 16);
                        q += 3;
                        continue;
                    }
                    out[o++] = *q++;
                }
            }
            out[o] = 0;
            return 1;
        }
        p = strchr(p, ';');
    }
    return 0;
}

/* Media type without parameters, lower case. */
static void media_type(const char *v, char *out, size_t cap)
{
    size_t o = 0;
    while (*v == ' ' || *v == '\t') v++;
    while (*v && *v != ';' && *v != ' ' && *v != '\t' && o + 1 < cap) out[o++] = *v++;
    out[o] = 0;
    cstr_lower(out);
}

/* name (nl bytes, NUL-terminated) is the literal lit, in any case. */
#define NAME_IS(name, nl, lit) ((nl) == sizeof(lit) - 1 && strncasecmp((name), (lit), sizeof(lit) - 1) == 0)

static void part_header(msg *g, part *pt, const char *name, size_t nl, const char *val)
{
    if (nl < 12 || (name[0] | 0x20) != 'c') return;          /* all begin "content-" */
    if (NAME_IS(name, nl, "content-type")) {
        media_type(val, pt->ctype, sizeof pt->ctype);
        if (!pt->fname[0]) mime_param(val, "name", pt->fname, sizeof pt->fname);
        char b[72];
        if (strncmp(pt->ctype, "multipart/", 10) == 0 && mime_param(val, "boundary", b, sizeof b)) {
            if (g->nbound < MAX_BOUNDARY_DEPTH) strcpy(g->bound[g->nbound++], b);
        }
    } else if (NAME_IS(name, nl, "content-disposition")) {
        media_type(val, pt->disp, sizeof pt->disp);
        mime_param(val, "filename", pt->fname, sizeof pt->fname);
    } else if (NAME_IS(name, nl, "content-transfer-encoding")) {
        media_type(val, pt->enc, sizeof pt->enc);
    }
}

/* A complete (unfolded) header line from the message or a MIME part. */
static void header_done(mx_smtp *m, msg *g)
{
    if (!g->hdr_len) return;
    g->hdr[g->hdr_len] = 0;
    char *colon = memchr(g->hdr, ':', g->hdr_len);
    g->hdr_len = 0;
    if (!colon) return;
    *colon = 0;
    char *name = g->hdr, *val = colon + 1;
    size_t nl = strlen(name);                  /* (a NUL may come before the colon) */
    while (*val == ' ' || *val == '\t') val++;
    if (g->in_headers) {
        for (int i = 0; i < H__N; i++) {
            if ((name[0] | 0x20) == hdr_name[i][0] && strcasecmp(name, hdr_name[i]) == 0 && !g->have[i]) {
                size_t n = strlen(val);
                mx_copy_text(g->hv[i], HDR_VAL, (const uint8_t *)val, n);
                g->have[i] = 1;
            }
        }
        if (NAME_IS(name, nl, "content-type")) media_type(val, g->top_ctype, sizeof g->top_ctype);
        part_header(g, &g->pending_part, name, nl, val);
    } else {
        part_header(g, &g->pending_part, name, nl, val);
    }
    (void)m;
}

static void part_commit(mx_smtp *m, msg *g, uint8_t depth)
{
    part *pt = &g->pending_part;
    if (!pt->ctype[0]) strcpy(pt->ctype, "text/plain");
    if (g->nparts >= m->lim->max_mime_parts) { g->parts_dropped++; g->cur_part = -1; }
    else {
        if (g->nparts == g->parts_cap) {
            uint32_t nc = g->parts_cap ? g->parts_cap * 2 : 4;
            if (nc > m->lim->max_mime_parts) nc = m->lim->max_mime_parts;
            part *np = realloc(g->parts, nc * sizeof *np);
            if (np) { g->parts = np; g->parts_cap = nc; }
        }
        if (g->nparts < g->parts_cap) {
            pt->depth = depth;
            g->parts[g->nparts] = *pt;
            g->cur_part = (int32_t)g->nparts++;
        } else {
            g->parts_dropped++;         /* out of memory: counted as over the cap */
            g->cur_part = -1;
        }
    }
    memset(pt, 0, sizeof *pt);
}

/* A complete body line (content without its line ending; only the first
 * BODY_LINE bytes are in g->line, len is the full length). */
static void body_line(mx_smtp *m, msg *g, uint32_t len)
{
    uint32_t kept = len < BODY_LINE ? len : BODY_LINE;
    const char *l = g->line;
    if (g->in_headers || g->in_part_hdrs) {
        if (len == 0) {
            header_done(m, g);
            if (g->in_headers) {
                g->in_headers = 0;
                /* single-part messages: the message itself is the one part */
                if (strncmp(g->top_ctype, "multipart/", 10) != 0) part_commit(m, g, 0);
                else memset(&g->pending_part, 0, sizeof g->pending_part);
            } else {
                g->in_part_hdrs = 0;
                part_commit(m, g, g->nbound);
            }
            return;
        }
        if (is_sp((uint8_t)l[0])) {                         /* folded */
            uint32_t room = (uint32_t)sizeof g->hdr - 1 - g->hdr_len;
            uint32_t take = kept < room ? kept : room;
            memcpy(g->hdr + g->hdr_len, l, take);
            g->hdr_len += take;
            return;
        }
        header_done(m, g);
        uint32_t take = kept < sizeof g->hdr - 1 ? kept : (uint32_t)sizeof g->hdr - 1;
        memcpy(g->hdr, l, take);
        g->hdr_len = take;
        return;
    }
    /* MIME boundary lines: "--" boundary ["--"] */
    if (g->nbound && kept >= 2 && l[0] == '-' && l[1] == '-') {
        for (int i = g->nbound - 1; i >= 0; i--) {
            size_t bl = strlen(g->bound[i]);
            if (kept >= 2 + bl && memcmp(l + 2, g->bound[i], bl) == 0) {
                if (kept >= 4 + bl && l[2 + bl] == '-' && l[3 + bl] == '-') {
                    g->nbound = (uint8_t)i;              /* closing delimiter */
                    g->cur_part = -1;
                } else {
                    g->nbound = (uint8_t)(i + 1);
                    g->in_part_hdrs = 1;
                    g->hdr_len = 0;
                    memset(&g->pending_part, 0, sizeof g->pending_part);
                }
                return;
            }
        }
    }
    if (g->cur_part >= 0 && g->parts) g->parts[g->cur_part].bytes += len + 2;
}

static void emit_data(mx_smtp *m, const char *end)
{
    msg *g = m->m;
    if (!g) return;
    if (g->hdr_len) header_done(m, g);
    m->msgs_sent++;
    mx_ev *ev = mx_ev_begin(m->s, MX_EV_SMTP_DATA, MX_CLIENT);
    if (m->in_tls) mx_ev_bool(ev, "in_tls", 1);
    mx_ev_str(ev, "transfer", g->bdat ? "BDAT" : "DATA");
    mx_ev_int(ev, "bytes", (int64_t)g->bytes);
    if (!g->bdat) mx_ev_int(ev, "lines", (int64_t)g->lines);
    mx_ev_str(ev, "end", end);
    mx_ev *h = mx_ev_obj(ev, "headers");
    for (int i = 0; i < H__N; i++)
        if (g->have[i]) WIRE(h, hdr_key[i], g->hv[i], strlen(g->hv[i]));
    if (g->top_ctype[0]) WIRE(ev, "content_type", g->top_ctype, strlen(g->top_ctype));
    if (g->nparts) {
        mx_ev *a = mx_ev_arr(ev, "mime");
        uint32_t att = 0;
        for (uint32_t i = 0; i < g->nparts; i++) {
            part *pt = &g->parts[i];
            mx_ev *o = mx_ev_push_obj(a);
            WIRE(o, "content_type", pt->ctype, strlen(pt->ctype));
            if (pt->fname[0]) WIRE(o, "filename", pt->fname, strlen(pt->fname));
            if (pt->disp[0]) WIRE(o, "disposition", pt->disp, strlen(pt->disp));
            if (pt->enc[0]) WIRE(o, "encoding", pt->enc, strlen(pt->enc));
            mx_ev_int(o, "bytes", (int64_t)pt->bytes);
            if (pt->fname[0] || strcmp(pt->disp, "attachment") == 0) att++;
        }
        mx_ev_int(ev, "attachments", att);
        if (g->parts_dropped) mx_ev_int(ev, "mime_parts_dropped", g->parts_dropped);
    }
    if (g->bare_lf) mx_ev_int(ev, "bare_lf", g->bare_lf);
    if (g->bare_cr) mx_ev_int(ev, "bare_cr", g->bare_cr);
    if (g->gap_bytes) mx_ev_int(ev, "gap_bytes", (int64_t)g->gap_bytes);
    if (g->smuggle) mx_ev_int(ev, "smuggling_markers", g->smuggle);
    if (g->server_abort) mx_ev_int(ev, "server_abort", g->server_abort);
    mx_ev_end(m->s, ev);
    msg_free(m);
}

/* Counts body bytes and finds line ends; p is content that does not contain
 * the end of a line. */
static void body_bytes(msg *g, const uint8_t *p, size_t n)
{
    if (!n) return;
    uint32_t room = g->line_len < BODY_LINE ? BODY_LINE - g->line_len : 0;
    if (room) memcpy(g->line + g->line_len, p, n < room ? n : room);
    /* bare CR inside the line (a CR not followed by LF): any CR but a last
     * byte; memchr skips the (usual) CR-free text in bulk */
    for (const uint8_t *q = p, *end = p + n - 1; q < end && (q = memchr(q, '\r', (size_t)(end - q))); q++)
        g->bare_cr++;
    if (g->line_cr) g->bare_cr++;            /* previous chunk ended in CR */
    g->line_cr = p[n - 1] == '\r';
    g->line_len += (uint32_t)n;
    g->mid_line = 1;
}

/* The first CR or LF in [p, end), or NULL: sixteen bytes a step where
 * SSE2 is there. */
static const uint8_t *first_cr_lf(const uint8_t *p, const uint8_t *end)
{
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    for (; end - p >= 16; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
        if (m) return p + __builtin_ctz((unsigned)m);
    }
#endif
    for (; p < end; p++) if (*p == '\r' || *p == '\n') return p;
    return NULL;
}

/* Scans DATA content.  Returns bytes consumed; sets *done when the
 * terminating line "." was consumed (RFC 5321 §4.1.1.4). */
static size_t body_scan(mx_smtp *m, const uint8_t *p, size_t n, int *done)
{
    msg *g = m->m;
    size_t i = 0;
    *done = 0;
    while (i < n) {
        /* Most lines are whole in the buffer, end in CR LF, hold no other
         * CR, and are neither ".", a part's headers nor a boundary: they are
         * only counted (what the general path below does with them).  Such
         * a line's first CR or LF is its CR, an LF right behind it. */
        if (!g->mid_line && !g->after_gap && !g->in_headers && !g->in_part_hdrs) {
            const uint8_t *l = p + i, *c = first_cr_lf(l, p + n);
            if (c && *c == '\r' && c + 1 < p + n && c[1] == '\n') {
                size_t seg = (size_t)(c - l) + 1;          /* up to the LF */
                if (!(seg == 2 && l[0] == '.') && !(g->nbound && seg >= 3 && l[0] == '-' && l[1] == '-')) {
                    g->bytes += seg + 1;
                    g->lines++;
                    if (g->cur_part >= 0 && g->parts) g->parts[g->cur_part].bytes += (seg - 1) + 2;
                    g->prev_crlf = 1;
                    i += seg + 1;
                    continue;
                }
            }
        }
        const uint8_t *nl = memchr(p + i, '\n', n - i);
        size_t seg = nl ? (size_t)(nl - (p + i)) : n - i;
        body_bytes(g, p + i, seg);
        if (!nl) { i = n; break; }
        i += seg + 1;
        /* a line ended */
        int crlf = g->line_cr;
        uint32_t len = g->line_len - (crlf ? 1 : 0);
        if (g->line_cr) g->line_cr = 0;
        if (g->after_gap) {                 /* a line cut by a hole */
            g->after_gap = 0;
            g->bytes += g->line_len + 1;
            g->lines++;
            g->prev_crlf = (uint8_t)crlf;
            g->line_len = 0;
            g->mid_line = 0;
            continue;
        }
        if (!crlf) {
            g->bare_lf++;
            mx_sess_anomaly(m->s, MX_CLIENT, "bare_lf_in_data", "line ended by LF without CR");
        }
        int is_dot = len == 1 && g->line[0] == '.';
        if (is_dot && crlf && g->prev_crlf) {
            g->line_len = 0;
            g->mid_line = 0;
            *done = 1;
            return i;
        }
        if (is_dot) {
            g->smuggle++;
            const char *form = !g->prev_crlf && !crlf ? "<LF>.<LF>"
                             : !g->prev_crlf ? "<LF>.<CR><LF>" : "<CR><LF>.<LF>";
            mx_sess_anomaly(m->s, MX_CLIENT, "smtp_smuggling", form);
        } else if (len >= 3 && memchr(g->line, '\r', len < BODY_LINE ? len : BODY_LINE)) {
            /* "<CR>.<CR>" inside a line */
            for (uint32_t k = 0; k + 2 < len && k + 2 < BODY_LINE; k++)
                if (g->line[k] == '\r' && g->line[k + 1] == '.' && g->line[k + 2] == '\r') {
                    g->smuggle++;
                    mx_sess_anomaly(m->s, MX_CLIENT, "smtp_smuggling", "<CR>.<CR>");
                    break;
                }
        }
        g->bytes += g->line_len + 1;
        g->lines++;
        body_line(m, g, len);
        g->prev_crlf = (uint8_t)crlf;
        g->line_len = 0;
        g->mid_line = 0;
    }
    return i;
}

/* BDAT chunk bytes: no dot-stuffing, no end marker; still scanned for the
 * headers and MIME outline (line by line, across chunks). */
static void chunk_scan(mx_smtp *m, const uint8_t *p, size_t n)
{
    msg *g = m->m;
    size_t i = 0;
    g->bytes += n;
    while (i < n) {
        const uint8_t *nl = memchr(p + i, '\n', n - i);
        size_t seg = nl ? (size_t)(nl - (p + i)) : n - i;
        body_bytes(g, p + i, seg);
        if (!nl) break;
        i += seg + 1;
        int crlf = g->line_cr;
        uint32_t len = g->line_len - (crlf ? 1 : 0);
        g->line_cr = 0;
        if (!crlf) g->bare_lf++;
        g->lines++;
        body_line(m, g, len);
        g->line_len = 0;
        g->mid_line = 0;
    }
}

/* ---- commands ---------------------------------------------------------- */

static int verb_of(const uint8_t *p, size_t n)
{
    if (!n) return V_UNKNOWN;
    uint8_t c = p[0] | 0x20;
    for (int v = V_HELO; v < V_GREETING; v++)
        if ((verb_name[v][0] | 0x20) == c && strlen(verb_name[v]) == n && mx_ci_prefix(p, n, verb_name[v])) return v;
    return V_UNKNOWN;
}

/* "FROM:<addr> params" / "TO:<addr> params" (RFC 5321 §4.1.1.2-3). */
static void path_fields(mx_smtp *m, mx_ev *ev, const uint8_t *a, size_t n, const char *kw)
{
    if (!mx_ci_prefix(a, n, kw)) {
        mx_sess_anomaly(m->s, MX_CLIENT, "bad_path_syntax", kw);
        return;
    }
    a += strlen(kw); n -= strlen(kw);
    trim(&a, &n);
    const uint8_t *addr = a, *end;
    size_t alen;
    if (n && a[0] == '<') {
        end = memchr(a, '>', n);
        if (end) { addr = a + 1; alen = (size_t)(end - addr); end++; }
        else { addr = a + 1; alen = n - 1; end = a + n; }
    } else {
        end = memchr(a, ' ', n);
        if (!end) end = a + n;
        alen = (size_t)(end - a);
    }
    WIRE(ev, "address", addr, alen);
    if (kw[0] == 'T') rcpt_domain(m, addr, alen);
    size_t rest = n - (size_t)(end - a);
    const uint8_t *r = end;
    trim(&r, &rest);
    if (rest) {
        mx_ev *arr = mx_ev_arr(ev, "params");
        while (rest) {
            const uint8_t *sp = memchr(r, ' ', rest);
            size_t w = sp ? (size_t)(sp - r) : rest;
            if (w) mx_ev_push_wire(arr, r, w, m->lim->max_field);
            r += w; rest -= w;
            trim(&r, &rest);
        }
    }
}

/* What the client's credentials are, without ever writing a password. */
static void auth_user_from(mx_smtp *m, const uint8_t *b64, size_t n)
{
    uint8_t dec[512];
    long dl = mx_base64_decode(b64, n, dec, sizeof dec);
    if (dl < 0) return;
    const char *mech = m->auth_mech;
    const uint8_t *u = NULL;
    size_t ul = 0;
    if (strcmp(mech, "PLAIN") == 0) {           /* authzid NUL authcid NUL passwd */
        const uint8_t *z1 = memchr(dec, 0, (size_t)dl);
        if (z1) {
            const uint8_t *z2 = memchr(z1 + 1, 0, (size_t)(dec + dl - (z1 + 1)));
            if (z2) { u = z1 + 1; ul = (size_t)(z2 - u); }
        }
    } else if (strcmp(mech, "LOGIN") == 0) {
        u = dec; ul = (size_t)dl;
    } else if (strcmp(mech, "CRAM-MD5") == 0) { /* user SP digest */
        const uint8_t *sp = memchr(dec, ' ', (size_t)dl);
        if (sp) { u = dec; ul = (size_t)(sp - dec); }
    } else if (strcmp(mech, "XOAUTH2") == 0) {  /* user=...^Aauth=Bearer ...^A^A */
        /* the user ends at ^A; a blob without one (or other bytes that
         * cannot be in an address) ends at the first of them, so the
         * token that follows is never taken into the name */
        if (dl > 5 && memcmp(dec, "user=", 5) == 0) {
            u = dec + 5;
            while (u + ul < dec + dl && u[ul] > 0x20 && u[ul] != 0x7F) ul++;
        }
    }
    if (u) mx_copy_text(m->auth_user, sizeof m->auth_user, u, ul);
}

static void auth_response(mx_smtp *m, const uint8_t *l, size_t n)
{
    mx_ev *ev = mx_ev_begin(m->s, MX_EV_SMTP_AUTH_RESPONSE, MX_CLIENT);
    if (m->in_tls) mx_ev_bool(ev, "in_tls", 1);
    mx_ev_str(ev, "mechanism", m->auth_mech);
    mx_ev_int(ev, "step", ++m->auth_step);
    if (n == 1 && l[0] == '*') {
        mx_ev_str(ev, "kind", "cancel");
    } else {
        const char *kind = "response";
        if (m->auth_expect == 1) {
            kind = "username";
            auth_user_from(m, l, n);
            /* The next line is the password unless a new "Username:" comes:
             * the client may send both before the server's 334 Password:,
             * or that 334 may be lost from the capture. */
            m->auth_expect = 2;
        } else if (m->auth_expect == 2 || (strcmp(m->auth_mech, "LOGIN") == 0 && m->auth_user[0])) {
            kind = "password";
        }
        else if (strcmp(m->auth_mech, "PLAIN") == 0 || strcmp(m->auth_mech, "XOAUTH2") == 0 ||
                 strcmp(m->auth_mech, "CRAM-MD5") == 0) { kind = "credentials"; auth_user_from(m, l, n); }
        mx_ev_str(ev, "kind", kind);
        mx_ev_bool(ev, "redacted", 1);
        if (m->s->opt->show_user && strcmp(kind, "password") != 0 && m->auth_user[0])
            WIRE(ev, "user", m->auth_user, strlen(m->auth_user));
    }
    mx_ev_end(m->s, ev);
}

/* SASL mechanisms (IANA registry) whose names may be written: anything else
 * after AUTH could be a credential typed where the mechanism belongs. */
static int known_mechanism(const char *m)
{
    static const char *const names[] = {
        "PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "XOAUTH2", "OAUTHBEARER", "NTLM", "GSSAPI",
        "GSS-SPNEGO", "EXTERNAL", "ANONYMOUS", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-512-PLUS", "KERBEROS_V4", "KERBEROS_V5",
        "GS2-KRB5", "SRP", "OTP", "SKEY", "MSN", "XOAUTH", "APOP", "SECURID", "EAP-AES128",
        "EAP-AES128-PLUS", "OPENID20", "SAML20", "9798-U-RSA-SHA1-ENC", "DIGEST-SHA-256",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(m, names[i]) == 0) return 1;
    return 0;
}

/* A client line that is not a known command is never written: it may be a
 * credential the parser did not expect (a capture that starts mid-AUTH, a
 * lost AUTH segment, credentials sent after a refusal).  Only its length and
 * the kind of characters it holds are told. */
static void withheld_line(mx_smtp *m, mx_ev *ev, const uint8_t *l, size_t n)
{
    int b64 = n >= 4, alnum = 1, text = 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = l[i];
        int an = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!an) alnum = 0;
        if (!an && c != '+' && c != '/' && c != '=' && c != '-' && c != '_') b64 = 0;
        if (c < 0x20 || c > 0x7E) text = 0;
    }
    mx_ev_bool(ev, "withheld", 1);
    mx_ev_int(ev, "length", (int64_t)n);
    mx_ev_str(ev, "chars", b64 ? "base64" : alnum ? "alphanumeric" : text ? "text" : "binary");
    int cred = b64 || m->last_code == 334 || (m->auth_code >= 400 && m->auth_code < 600) ||
               m->c_after_gap || (m->s->midstream && !m->any_cmd);
    mx_ev_bool(ev, "possible_credential", cred);
}

static int printable_verb(const uint8_t *p, size_t n)
{
    if (n == 0 || n > 32) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7E) return 0;
    return 1;
}

/* One command line (without its line ending).  Returns 1 if the parser must
 * stop consuming client bytes after it (DATA, STARTTLS: wait for the reply).
 */
static int command(mx_smtp *m, const uint8_t *l, size_t n, int truncated, int incomplete)
{
    if (m->cmode == CM_AUTH) {
        /* A line is a response while the exchange still wants one: one per
         * 334 seen, or as many as the mechanism takes when the client sends
         * them without waiting (LOGIN: user then password). */
        uint32_t want = m->auth_334;
        if (m->auth_need < 0 && m->auth_334 == 0) want = 1;
        if (m->auth_need > 0 && (uint32_t)m->auth_need > want) want = (uint32_t)m->auth_need;
        if (m->auth_sent < want) { m->auth_sent++; auth_response(m, l, n); return 0; }
        set_cmode(m, CM_CMD);
    }
    const uint8_t *sp = memchr(l, ' ', n);
    size_t vl = sp ? (size_t)(sp - l) : n;
    const uint8_t *arg = sp ? sp + 1 : l + n;
    size_t al = sp ? n - vl - 1 : 0;
    int v = verb_of(l, vl);

    if (v == V_UNKNOWN && !printable_verb(l, vl)) {
        m->garbage_lines++;
        mx_sess_anomaly(m->s, MX_CLIENT, "not_smtp_command", "client line is not an SMTP command");
        if (!m->any_cmd && m->garbage_lines >= 3) {
            mx_sess_anomaly(m->s, MX_CLIENT, "not_smtp", "client does not speak SMTP; rest not parsed");
            set_cmode(m, CM_OPAQUE);
        }
        return 0;
    }
    int pipelined = m->qlen > 0;
    if (!m->server_spoke && !m->s->midstream && !m->c_after_gap && !m->s_after_gap)
        mx_sess_anomaly(m->s, MX_CLIENT, "client_spoke_first",
                        "command sent before the server's greeting (pregreet)");
    mx_ev *ev = mx_ev_begin(m->s, MX_EV_SMTP_COMMAND, MX_CLIENT);
    if (m->in_tls) mx_ev_bool(ev, "in_tls", 1);
    if (v == V_UNKNOWN) {
        mx_ev_str(ev, "verb", verb_name[V_UNKNOWN]);
        mx_ev_bool(ev, "known", 0);
        withheld_line(m, ev, l, n);
        al = 0;
    } else {
        mx_ev_str(ev, "verb", verb_name[v]);
    }
    m->any_cmd = 1;
    m->commands++;
    if (v == V_AUTH) {
        const uint8_t *a2 = arg; size_t n2 = al;
        trim(&a2, &n2);
        const uint8_t *sp2 = memchr(a2, ' ', n2);
        size_t ml = sp2 ? (size_t)(sp2 - a2) : n2;
        mx_copy_text(m->auth_mech, sizeof m->auth_mech, a2, ml);
        /* SASL mechanism names are A-Z 0-9 - _ (RFC 4422 §3.1): upper-case
         * them and replace anything else, so the name is safe text. */
        for (char *c = m->auth_mech; *c; c++) {
            if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
            else if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_')) *c = '?';
        }
        if (!known_mechanism(m->auth_mech)) {
            mx_ev_bool(ev, "withheld", 1);
            mx_ev_int(ev, "length", (int64_t)ml);
            mx_ev_bool(ev, "possible_credential", 1);
            snprintf(m->auth_mech, sizeof m->auth_mech, "%s", ml ? "UNKNOWN" : "");
        }
        if (m->auth_mech[0]) WIRE(ev, "arg", m->auth_mech, strlen(m->auth_mech));
        mx_ev_str(ev, "mechanism", m->auth_mech);
        m->auth_step = 0;
        m->auth_expect = 0;
        m->auth_user[0] = 0;
        m->auth_result = NULL;
        m->auth_sent = m->auth_334 = 0;
        m->auth_ir = 0;
        if (strcmp(m->auth_mech, "LOGIN") == 0) m->auth_need = sp2 ? 1 : 2;
        else if (strcmp(m->auth_mech, "PLAIN") == 0) m->auth_need = sp2 ? 0 : 1;
        else if (strcmp(m->auth_mech, "CRAM-MD5") == 0) m->auth_need = 1;
        else if (strcmp(m->auth_mech, "XOAUTH2") == 0 || strcmp(m->auth_mech, "OAUTHBEARER") == 0)
            m->auth_need = sp2 ? 0 : 1;
        else m->auth_need = -1;
        if (sp2) {
            const uint8_t *ir = sp2 + 1; size_t il = n2 - ml - 1;
            trim(&ir, &il);
            mx_ev_bool(ev, "initial_response", 1);
            m->auth_ir = 1;
            if (!(il == 1 && ir[0] == '=')) auth_user_from(m, ir, il);
            if (m->s->opt->show_user && m->auth_user[0])
                WIRE(ev, "user", m->auth_user, strlen(m->auth_user));
            /* LOGIN with the user name given here: what follows is the
             * password, whether or not its 334 is seen. */
            m->auth_expect = strcmp(m->auth_mech, "LOGIN") == 0 ? 2 : 0;
        }
    } else if (al) {
        WIRE(ev, "arg", arg, al);
    }
    if (truncated) mx_ev_bool(ev, "truncated", 1);
    if (incomplete) mx_ev_bool(ev, "incomplete", 1);
    if (pipelined) mx_ev_bool(ev, "pipelined", 1);
    if (m->c_after_gap) { mx_ev_bool(ev, "after_gap", 1); m->c_after_gap = 0; }

    int stop = 0, bdat_chunk = 0;
    switch (v) {
    case V_HELO: case V_EHLO: case V_LHLO:
        mx_copy_text(m->helo, sizeof m->helo, arg, al);
        m->esmtp = v != V_HELO;
        break;
    case V_MAIL:
        if (al || !incomplete) path_fields(m, ev, arg, al, "FROM:");   /* a cut line has no path to judge */
        m->transactions++;
        break;
    case V_RCPT:
        if (al || !incomplete) path_fields(m, ev, arg, al, "TO:");
        break;
    case V_DATA:
        stop = 1;
        break;
    case V_BDAT: {
        /* RFC 3030: "BDAT" SP chunk-size [SP "LAST"], chunk-size 1*DIGIT.
         * Without a size there is no chunk to skip; with a size and other
         * tokens a server answers 501 and may not read one, so the chunk is
         * taken only if what follows is not a command. */
        uint64_t sz = 0;
        size_t i = 0;
        int ok = 1, overflow = 0;
        while (i < al && arg[i] >= '0' && arg[i] <= '9') {
            if (sz > (UINT64_MAX - 9) / 10) overflow = 1;
            else sz = sz * 10 + (uint64_t)(arg[i] - '0');
            i++;
        }
        const uint8_t *r = arg + i; size_t rl = al - i;
        int sep = rl == 0 || is_sp(r[0]);
        trim(&r, &rl);
        int last = rl == 4 && mx_ci_prefix(r, 4, "LAST");
        const char *bad = NULL;
        if (i == 0) bad = al ? "BDAT size is not a decimal number" : "BDAT without a size";
        else if (overflow) bad = "BDAT size does not fit in 64 bits";
        else if (!sep) bad = "BDAT size is not a decimal number";
        if (bad) ok = 0;
        if (ok) {
            mx_ev_int(ev, "size", (int64_t)(sz > INT64_MAX ? INT64_MAX : sz));
            mx_ev_bool(ev, "last", last);
        }
        if (!ok) {
            mx_ev_bool(ev, "malformed", 1);
            mx_sess_anomaly(m->s, MX_CLIENT, "bad_bdat_size", bad);
            break;
        }
        m->chunk_unsure = 0;
        if (rl && !last) {
            mx_ev_bool(ev, "malformed", 1);
            mx_sess_anomaly(m->s, MX_CLIENT, "bad_bdat_args", "BDAT with tokens other than LAST after the size");
            m->chunk_unsure = 1;
        }
        if (!m->m || !m->m->bdat) msg_start(m, 1);
        m->chunk_left = sz;
        m->chunk_last = (uint8_t)last;
        bdat_chunk = 1;
        break;
    }
    case V_QUIT:
        m->quit_sent = 1;
        break;
    case V_STARTTLS:
        stop = 1;
        break;
    default:
        break;
    }
    mx_ev_end(m->s, ev);

    if (v == V_BDAT && !bdat_chunk) {
        q_push(m, V_BDAT, 2);        /* malformed: answered, no chunk follows */
        return 0;
    }
    if (v == V_BDAT && m->m && m->m->bdat) {
        q_push(m, V_BDAT, m->chunk_unsure ? 2 : m->chunk_last);
        if (m->chunk_left) set_cmode(m, CM_CHUNK);
        else if (m->chunk_last) emit_data(m, "bdat_last");
        return 0;
    }
    q_push(m, v == V_UNKNOWN ? V_UNKNOWN : v, 0);
    if (v == V_DATA) set_cmode(m, CM_DATA_WAIT);
    else if (v == V_STARTTLS) set_cmode(m, CM_TLS_WAIT);
    else if (v == V_AUTH) set_cmode(m, CM_AUTH);
    return stop;
}

/* Does a known verb start here (followed by a space or the line end)?
 * 1 yes, 0 no, -1 too few bytes to tell. */
static int command_starts(const uint8_t *p, size_t n)
{
    size_t k = 0;
    while (k < n && k < 9 && p[k] != ' ' && p[k] != '\r' && p[k] != '\n') k++;
    if (k == 9) return 0;
    if (k == n) return -1;
    return verb_of(p, k) != V_UNKNOWN;
}


/* Client bytes. */
static size_t client_feed(mx_smtp *m, const uint8_t *p, size_t n, int force)
{
    size_t i = 0;
    while (i < n) {
        switch (m->cmode) {
        case CM_OPAQUE:
            return n;
        case CM_DATA_WAIT:
        case CM_TLS_WAIT:
            if (!force) { m->early = 1; return i; }
            /* The hold buffer is full and the server has not answered: the
             * client did not wait.  Read on as if the server had agreed. */
            mx_sess_anomaly(m->s, MX_CLIENT, "client_did_not_wait",
                            m->cmode == CM_DATA_WAIT ? "data sent before 354" : "bytes sent before 220 to STARTTLS");
            if (m->cmode == CM_DATA_WAIT) { msg_start(m, 0); set_cmode(m, CM_BODY); }
            else { set_cmode(m, CM_OPAQUE); return n; }
            break;
        case CM_BODY: {
            int done;
            if (!m->m) msg_start(m, 0);
            if (!m->m) return n;
            i += body_scan(m, p + i, n - i, &done);
            if (done) {
                m->c_after_gap = 0;      /* the end marker put us back in step */
                emit_data(m, "dot");
                q_push(m, V_DATA_END, 0);
                set_cmode(m, CM_CMD);
            }
            break;
        }
        case CM_CHUNK: {
            if (m->chunk_unsure) {
                /* After "BDAT 5 X": a command here means no chunk was sent. */
                int c = command_starts(p + i, n - i);
                if (c < 0 && !force) return i;
                m->chunk_unsure = 0;
                if (c > 0) {
                    mx_sess_anomaly(m->s, MX_CLIENT, "bdat_chunk_not_sent",
                                    "commands follow a malformed BDAT: its chunk was not sent");
                    m->chunk_left = 0;
                    set_cmode(m, CM_CMD);
                    break;
                }
            }
            size_t take = n - i < m->chunk_left ? n - i : (size_t)m->chunk_left;
            if (m->m) chunk_scan(m, p + i, take);
            m->chunk_left -= take;
            i += take;
            if (m->chunk_left == 0) {
                if (m->chunk_last) emit_data(m, "bdat_last");
                set_cmode(m, CM_CMD);
            }
            break;
        }
        case CM_DISCARD: {
            if (m->c_after_gap) {
                /* A command may start here; a snaplen-cut packet may hold
                 * only its verb ("MAIL" and then the hole): keep those few
                 * bytes until the hole, then take the verb. */
                int cs = command_starts(p + i, n - i);
                if (cs < 0 && !force) return i;
                if (cs > 0 || (cs < 0 && verb_of(p + i, n - i) != V_UNKNOWN)) {
                    set_cmode(m, CM_CMD);
                    break;
                }
            }
            const uint8_t *nl = memchr(p + i, '\n', n - i);
            if (!nl) return n;
            i = (size_t)(nl - p) + 1;
            set_cmode(m, CM_CMD);
            break;
        }
        case CM_CMD:
        case CM_AUTH: {
            const uint8_t *l = p + i;
            /* TLS where SMTP is expected: a ClientHello without STARTTLS */
            if (!m->any_cmd && n - i >= 3 && looks_tls(l)) {
                if (!m->s->off_port)
                    mx_sess_anomaly(m->s, MX_CLIENT, "tls_without_starttls",
                                    "client started TLS without STARTTLS");
                m->s->app[MX_CLIENT] = MX_APP_TLS;
                return i;
            }
            const uint8_t *nl = memchr(l, '\n', n - i);
            size_t len = nl ? (size_t)(nl - l) : n - i;
            /* Wait for the line end unless the line is already known to be
             * over the cap (more than max_line + 1 bytes, a CR included). */
            if (!nl && len <= (size_t)m->lim->max_line + 1 && !force) return i;
            int bare = nl && (len == 0 || l[len - 1] != '\r');
            size_t cl = nl && !bare ? len - 1 : len;
            int trunc = cl > m->lim->max_line;
            if (trunc) {
                cl = m->lim->max_line;
                mx_sess_anomaly(m->s, MX_CLIENT, "line_too_long", "command line over max_line");
            }
            if (bare) mx_sess_anomaly(m->s, MX_CLIENT, "bare_lf", "command ended by LF without CR");
            int stop = command(m, l, cl, trunc, !nl && !trunc);
            if (!nl) {
                if (trunc) set_cmode(m, CM_DISCARD);
                return n;
            }
            i += len + 1;
            if (stop) {
                if (i < n) m->early = 1;     /* bytes already follow DATA/STARTTLS */
                return i;
            }
            break;
        }
        }
    }
    return i;
}

/* ---- replies ----------------------------------------------------------- */

/* RFC 3463 enhanced code at the start of a reply's text. */
static size_t enhanced(const char *t, size_t n, char *out, size_t cap)
{
    size_t i = 0;
    if (n < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.') return 0;
    i = 2;
    size_t d = 0;
    while (i < n && t[i] >= '0' && t[i] <= '9' && d < 3) { i++; d++; }
    if (!d || i >= n || t[i] != '.') return 0;
    i++; d = 0;
    while (i < n && t[i] >= '0' && t[i] <= '9' && d < 3) { i++; d++; }
    if (!d || (i < n && t[i] != ' ')) return 0;
    if (i >= cap) return 0;
    memcpy(out, t, i);
    out[i] = 0;
    return i;
}

/* Queue identifiers as the common MTAs print them after accepting a message:
 * Postfix "queued as X", Exchange "<X> Queued mail", Exim "OK id=X". */
static void queue_id(const char *t, size_t n, char *out, size_t cap)
{
    long k = mx_ci_find((const uint8_t *)t, n, "queued as ");
    size_t s = 0, e;
    out[0] = 0;
    const char *lt = memchr(t, '<', n);
    if (k >= 0) s = (size_t)k + 10;
    else if (lt) s = (size_t)(lt - t);
    else if ((k = mx_ci_find((const uint8_t *)t, n, " id=")) >= 0) s = (size_t)k + 4;
    else return;
    e = s;
    while (e < n && t[e] != ' ' && t[e] != '\t') e++;
    if (e > s) mx_copy_text(out, cap, (const uint8_t *)t + s, e - s);
}

static const char *rtext(mx_smtp *m, uint32_t i, size_t *len)
{
    /* line text after "ddd" and the separator */
    const char *l = m->rbuf + m->roff[i];
    size_t n = m->rlens[i];
    if (n >= 4) { *len = n - 4; return l + 4; }
    *len = 0;
    return l + n;
}

/* A capability keyword masked by an SMTP inspection (Cisco's ESMTP
 * inspection writes XXXXXXXA for STARTTLS): "XXXXXXXA", or 4 or more X's
 * (1); or a keyword of STARTTLS's length that is no known one (2: maybe a
 * mask of another kind). */
static int masked_keyword(const char *t, size_t n)
{
    static const char *const known8[] = { "CHUNKING", "8BITMIME", "SMTPUTF8", "XFORWARD", "DELIVERY", "XEXCH50",
                                          "MTRK", "REQUIRET" };
    size_t k = 0;
    while (k < n && t[k] != ' ') k++;
    /* the inspection writes X's and a letter per keyword it hides (A, B, C
     * in turn): eight characters of them, where STARTTLS would be */
    int xs = k == 8;
    for (size_t i = 0; i < 7 && xs; i++) xs = t[i] == 'X' || t[i] == 'x';
    if (xs && ((t[7] >= 'A' && t[7] <= 'Z') || (t[7] >= 'a' && t[7] <= 'z'))) return 1;
    xs = k >= 4;
    for (size_t i = 0; i < k && xs; i++) xs = t[i] == 'X' || t[i] == 'x';
    if (xs) return 1;
    if (k != 8) return 0;
    for (size_t i = 0; i < sizeof known8 / sizeof known8[0]; i++)
        if (mx_ci_prefix((const uint8_t *)t, n, known8[i])) return 0;
    return 2;
}

static void capabilities(mx_smtp *m, mx_ev *ev)
{
    int mk;
    mx_ev *arr = mx_ev_arr(ev, "capabilities");
    for (uint32_t i = 1; i < m->nlines; i++) {
        size_t n;
        const char *t = rtext(m, i, &n);
        mx_ev_push_wire(arr, (const uint8_t *)t, n, m->lim->max_field);
        if (mx_ci_prefix((const uint8_t *)t, n, "STARTTLS")) m->starttls_offered = 1;
        else if ((mk = masked_keyword(t, n)) == 1) {
            if (!m->starttls_masked)
                mx_sess_anomaly(m->s, MX_SERVER, "starttls_masked",
                                "the EHLO reply has a capability of X's of STARTTLS's length (XXXXXXXA) and no STARTTLS: an "
                                "SMTP inspection in the path (a firewall) masks it");
            m->starttls_masked = 1;
        } else if (mk == 2) {
            /* only said: a keyword of this length may be a vendor's own */
            mx_sess_anomaly(m->s, MX_SERVER, "starttls_masked_maybe",
                            "the EHLO reply has an unknown capability of STARTTLS's length: perhaps STARTTLS masked on the way");
        }
        else if (mx_ci_prefix((const uint8_t *)t, n, "PIPELINING")) m->pipelining = 1;
        else if (mx_ci_prefix((const uint8_t *)t, n, "CHUNKING")) m->chunking = 1;
        else if (mx_ci_prefix((const uint8_t *)t, n, "SMTPUTF8")) m->smtputf8 = 1;
        else if (mx_ci_prefix((const uint8_t *)t, n, "SIZE")) {
            int64_t v = 0; size_t k = 4;
            while (k < n && t[k] == ' ') k++;
            while (k < n && t[k] >= '0' && t[k] <= '9' && v < ((int64_t)1 << 50)) v = v * 10 + (t[k++] - '0');
            m->size_limit = v;
        } else if (mx_ci_prefix((const uint8_t *)t, n, "AUTH ") || mx_ci_prefix((const uint8_t *)t, n, "AUTH=")) {
            mx_copy_text(m->auth_mechs, sizeof m->auth_mechs, (const uint8_t *)t + 5, n - 5);
        }
    }
}

/* Keeps a reply as evidence: its code, enhanced code, first line and frame. */
static void keep_reply(mx_smtp *m, mx_reply_fact *r, const char *verb, int code, const char *t, size_t tn)
{
    size_t ol;
    r->code = code;
    r->frame = m->s->cur_frame;
    r->verb = verb;
    size_t el = enhanced(t, tn, r->enhanced, sizeof r->enhanced);
    if (!el) r->enhanced[0] = 0;
    /* the text without its enhanced code (kept apart), cut at a word */
    t += el; tn -= el;
    while (tn && (*t == ' ' || *t == '\t')) { t++; tn--; }
    const size_t cap = 100;
    int cut = tn > cap;
    if (cut) {
        size_t k = cap;
        while (k > cap / 2 && t[k] != ' ') k--;
        tn = k > cap / 2 ? k : cap;
        while (tn && t[tn - 1] == ' ') tn--;
    }
    mx_text_clean((const uint8_t *)t, tn, cap, r->text, sizeof r->text - 4, &ol);
    if (cut) { size_t l = strlen(r->text); snprintf(r->text + l, sizeof r->text - l, "\u2026"); }
}

static void reply_done(mx_smtp *m, int incomplete)
{
    int code = m->rcode;
    size_t tn;
    const char *t0 = rtext(m, 0, &tn);
    pend none = { V_UNKNOWN, 0, 0, 0 }, *h = q_head(m), cur;
    int unsolicited = 0, not_seen = 0;

    if (!m->greeted && m->replies == 0 && !m->s->midstream && !m->s_after_gap &&
        (code == 220 || code == 554 || code == 421)) {
        /* The first reply on a connection seen from its start, when it is a
         * greeting's code, is the greeting, whatever the client sent before
         * it: commands sent early (an early talker, PIPE_CONNECT) stay
         * queued for the replies that follow it. */
        none.verb = V_GREETING;
        cur = none;
    } else if (!h) {
        /* A greeting is a 220, or a refusal at connect (554, 421) (RFC 5321
         * §4.3.1).  Anything else with no command waiting answers one we
         * did not see (capture started late, or bytes lost), or none. */
        if (!m->greeted && !m->any_cmd && (code == 220 || code == 554 || code == 421) && !m->s_after_gap)
            none.verb = V_GREETING;
        else if ((m->s->midstream && !m->any_cmd) || m->s_after_gap || m->c_after_gap) not_seen = 1;
        else unsolicited = 1;
        if (none.verb == V_GREETING || !not_seen) m->greeted = 1;
        cur = none;
    } else {
        cur = *h;
        /* AUTH stays at the head while the server asks for more (334). */
        if (!(cur.verb == V_AUTH && code == 334)) q_pop(m);
    }
    m->replies++;
    m->last_code = code;

    mx_ev *ev = mx_ev_begin(m->s, MX_EV_SMTP_REPLY, MX_SERVER);
    if (m->in_tls) mx_ev_bool(ev, "in_tls", 1);
    mx_ev_int(ev, "code", code);
    char enh[16];
    if (enhanced(t0, tn, enh, sizeof enh)) mx_ev_str(ev, "enhanced", enh);
    mx_ev_str(ev, "class", reply_class(code));
    mx_ev *arr = mx_ev_arr(ev, "lines");
    for (uint32_t i = 0; i < m->nlines; i++) {
        size_t n;
        const char *t = rtext(m, i, &n);
        mx_ev_push_wire(arr, (const uint8_t *)t, n, m->lim->max_field);
    }
    if (m->lines_dropped) mx_ev_int(ev, "lines_dropped", m->lines_dropped);
    if (unsolicited) { mx_ev_null(ev, "answers"); mx_ev_bool(ev, "unsolicited", 1); m->unsolicited++; }
    else if (not_seen) { mx_ev_null(ev, "answers"); mx_ev_bool(ev, "command_not_seen", 1); }
    else mx_ev_str(ev, "answers", verb_name[cur.verb]);
    if (!unsolicited && !not_seen && cur.verb != V_GREETING) {
        mx_ev_int(ev, "command_frame", (int64_t)cur.frame);
        mx_ev_seconds(ev, "latency", m->s->cur_us > cur.us ? m->s->cur_us - cur.us : 0);   /* clocks may step back */
    }
    if (m->s_after_gap) { mx_ev_bool(ev, "after_gap", 1); m->s_after_gap = 0; }
    if (incomplete) mx_ev_bool(ev, "incomplete", 1);

    switch (cur.verb) {
    case V_GREETING: {
        m->greeted = 1;
        const char *sp = memchr(t0, ' ', tn);
        mx_copy_text(m->banner_host, sizeof m->banner_host, (const uint8_t *)t0, sp ? (size_t)(sp - t0) : tn);
        m->s->banner_host = m->banner_host;
        break;
    }
    case V_EHLO: case V_LHLO:
        if (code / 100 == 2) {
            const char *sp = memchr(t0, ' ', tn);
            mx_copy_text(m->ehlo_host, sizeof m->ehlo_host, (const uint8_t *)t0, sp ? (size_t)(sp - t0) : tn);
            m->s->ehlo_host = m->ehlo_host;
            capabilities(m, ev);
        }
        break;
    case V_AUTH:
        if (code == 334) {
            uint8_t dec[256];
            m->auth_334++;
            long dl = mx_base64_decode((const uint8_t *)t0, tn, dec, sizeof dec);
            if (dl >= 0) {
                WIRE(ev, "decoded", dec, (size_t)dl);
                if (mx_ci_prefix(dec, (size_t)dl, "username")) m->auth_expect = 1;
                else if (mx_ci_prefix(dec, (size_t)dl, "password")) m->auth_expect = 2;
                else m->auth_expect = 0;
            }
        }
        break;
    case V_DATA_END:
    case V_BDAT:
        if (cur.verb == V_DATA_END || cur.bdat_last == 1) {
            if (code / 100 == 2) {
                m->msgs_accepted++;
                queue_id(t0, tn, m->last_queue_id, sizeof m->last_queue_id);
                if (m->last_queue_id[0]) WIRE(ev, "queue_id", m->last_queue_id, strlen(m->last_queue_id));
            } else {
                m->msgs_rejected++;
            }
        }
        break;
    case V_MAIL:
        /* the sender accepted in clear text: TLS is not enforced */
        if (code / 100 == 2 && !m->in_tls && !m->mail_in_clear && !m->s->starttls_plain && !m->s->plain_on_tls_port &&
            (m->starttls_offered || (m->starttls_code && m->starttls_code != 220))) {
            m->mail_in_clear = 1;
            if (m->starttls_code && m->starttls_code != 220)
                mx_sess_anomaly(m->s, MX_SERVER, "mail_in_clear_after_starttls_failure",
                                "the server accepted MAIL FROM in clear text after refusing STARTTLS");
            else
                mx_sess_anomaly(m->s, MX_SERVER, "tls_not_enforced",
                                "the server accepted MAIL FROM in clear text although it offers STARTTLS");
        }
        break;
    case V_RCPT:
        /* a 503 is a sequence error (RCPT before MAIL), not a refused recipient */
        if (code / 100 == 2) m->rcpt_ok++; else if (code != 503) m->rcpt_bad++;
        break;
    case V_QUIT:
        m->quit_answered = 1;
        break;
    default:
        break;
    }
    if (code == 421) m->server_closing = 1;
    if (code >= 400) {
        char e2[16];
        const char *cause = mx_reply_cause(code, enhanced(t0, tn, e2, sizeof e2) ? e2 : "", t0, tn);
        if (cause) mx_ev_str(ev, "cause", cause);
    }
    mx_ev_end(m->s, ev);

    /* evidence for the verdict */
    switch (cur.verb) {
    case V_GREETING:
        m->greeting_code = code; m->greeting_frame = m->s->cur_frame;
        if (code != 220 && !m->fail.code) keep_reply(m, &m->fail, "<greeting>", code, t0, tn);
        break;
    case V_EHLO: case V_LHLO: m->ehlo_code = code; break;
    case V_HELO:
        m->helo_code = code;
        if (code >= 400 && !m->fail.code) keep_reply(m, &m->fail, "HELO", code, t0, tn);
        break;
    case V_STARTTLS:
        m->starttls_frame = m->s->cur_frame;
        if (code != 220 && !m->fail.code) keep_reply(m, &m->fail, "STARTTLS", code, t0, tn);
        break;
    case V_AUTH:
        if (code != 334) m->auth_frame = m->s->cur_frame;
        if (code >= 400 && !m->fail.code) keep_reply(m, &m->fail, "AUTH", code, t0, tn);
        break;
    case V_MAIL: case V_RCPT: case V_DATA: case V_DATA_END: case V_BDAT:
        if (cur.verb == V_MAIL) m->mail_seen = 1;
        if (cur.verb == V_DATA && code == 354) m->data_seen = 1;
        /* The decisive failure is the one that ended the attempt: a message
         * refused at its end outweighs an earlier refused sender. */
        int msg_end = cur.verb == V_DATA_END || (cur.verb == V_BDAT && cur.bdat_last == 1);
        if (code >= 400 && (!m->fail.code || (msg_end && !m->msgs_accepted))) {
            if (code == 530 && mx_reply_cause(code, "", t0, tn) && !strcmp(mx_reply_cause(code, "", t0, tn), "tls_required")) {
                m->tls530 = 1;
                m->tls530_frame = m->s->cur_frame;
            }
            keep_reply(m, &m->fail, cur.verb == V_BDAT && cur.bdat_last == 2 ? "BDAT (malformed)" : verb_name[cur.verb],
                       code, t0, tn);
        }
        if ((cur.verb == V_DATA_END || (cur.verb == V_BDAT && cur.bdat_last == 1)) && code / 100 == 2)
            m->accepted_frame = m->s->cur_frame;
        if (cur.verb == V_BDAT) m->data_seen = 1;
        break;
    default:
        break;
    }
    if (code == 421 && !m->abort421.code) keep_reply(m, &m->abort421, unsolicited ? NULL : verb_name[cur.verb], code, t0, tn);

    /* Replies that change what the client's bytes mean. */
    if (cur.verb == V_AUTH && code != 334) {
        m->auth_code = code;
        m->auth_result = code / 100 == 2 ? "success" : "failure";
        mx_ev *a = mx_ev_begin(m->s, MX_EV_SMTP_AUTH, MX_SERVER);
        if (m->in_tls) mx_ev_bool(a, "in_tls", 1);
        mx_ev_str(a, "mechanism", m->auth_mech);
        mx_ev_str(a, "result", m->auth_result);
        mx_ev_int(a, "code", code);
        if (enhanced(t0, tn, enh, sizeof enh)) mx_ev_str(a, "enhanced", enh);
        mx_ev_bool(a, "cleartext", !m->in_tls);
        mx_ev_bool(a, "password_exposed", !m->in_tls && mx_mech_exposes_secret(m->auth_mech) && m->auth_sent + m->auth_ir > 0);
        if (m->s->opt->show_user && m->auth_user[0]) WIRE(a, "user", m->auth_user, strlen(m->auth_user));
        mx_ev_end(m->s, a);
        if (m->cmode == CM_AUTH) set_cmode(m, CM_CMD);
    }
    if ((cur.verb == V_DATA && m->cmode == CM_DATA_WAIT) || (cur.verb == V_STARTTLS && m->cmode == CM_TLS_WAIT)) {
        /* RFC 3207 §4 and RFC 5321 §3.3: the client must wait for this
         * answer; bytes it sent before are reported (and read in order).
         * Before a 220 to STARTTLS the session looks at them first: TLS
         * sent too early, or SMTP lines injected with the STARTTLS. */
        if (m->early && cur.verb == V_STARTTLS && code == 220) m->s->handoff_early = 1;
        else if (m->early)
            mx_sess_anomaly(m->s, MX_CLIENT, "client_did_not_wait",
                            cur.verb == V_DATA ? "message text sent before the 354" : "bytes sent before the answer to STARTTLS");
        m->early = 0;
    }
    if (cur.verb == V_DATA && m->cmode == CM_DATA_WAIT) {
        if (code == 354) { msg_start(m, 0); set_cmode(m, CM_BODY); }
        else set_cmode(m, CM_CMD);
        m->s->release |= 1u << MX_CLIENT;
    } else if (m->cmode == CM_BODY && cur.verb != V_DATA && code != 354 && m->m) {
        if (code / 100 == 2) {
            /* The server took the message as ended where we did not see
             * the end.  With bytes missing, the marker was in the hole;
             * otherwise it reads the end marker differently (smuggling). */
            if (!m->m->gap_bytes)
                mx_sess_anomaly(m->s, MX_SERVER, "data_end_mismatch",
                                "server accepted the message before the client's <CRLF>.<CRLF>");
            emit_data(m, m->m->gap_bytes ? "server_reply_after_gap" : "server_reply");
            set_cmode(m, CM_CMD);
            /* the server took it as a whole message, and accepted it */
            m->msgs_accepted++;
            m->accepted_frame = m->s->cur_frame;
            queue_id(t0, tn, m->last_queue_id, sizeof m->last_queue_id);
        } else {
            /* The server gave up on the message (421, 452, 552 ...); the
             * client does not read replies while it sends, so its bytes are
             * still message text up to the end marker. */
            if (!m->m->server_abort) m->m->server_abort = code;
            m->msgs_rejected++;
        }
    }
    if (cur.verb == V_STARTTLS) {
        m->starttls_code = code;
        mx_ev *st = mx_ev_begin(m->s, MX_EV_SMTP_STARTTLS, MX_SERVER);
        mx_ev_int(st, "code", code);
        if (code == 220) {
            m->starttls_result = "accepted";
            mx_ev_str(st, "result", "accepted");
            mx_ev_end(m->s, st);
            m->s->app[MX_SERVER] = MX_APP_TLS;     /* from the next byte */
            set_cmode(m, CM_OPAQUE);
            mx_sess_start_tls(m->s);
        } else {
            m->starttls_result = "refused";
            mx_ev_str(st, "result", "refused");
            mx_ev_end(m->s, st);
            if (m->cmode == CM_TLS_WAIT) set_cmode(m, CM_CMD);
            m->s->release |= 1u << MX_CLIENT;
        }
    }
    m->nlines = 0;
    m->rlen = 0;
    m->lines_dropped = 0;
    m->rcode = -1;
}

static int reply_code(const uint8_t *l, size_t n)
{
    if (n < 3) return -1;
    if (l[0] < '1' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9') return -1;
    if (n > 3 && l[3] != ' ' && l[3] != '-') return -1;
    return (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
}

static void reply_line(mx_smtp *m, const uint8_t *l, size_t n)
{
    int code = reply_code(l, n);
    if (code < 0) {
        mx_sess_anomaly(m->s, MX_SERVER, "bad_reply_line", "server line is not an SMTP reply");
        if (m->nlines == 0 && !m->bad_reply.frame) {
            /* kept for the verdict: a server that answers with text but no
             * code (a deferral without one) and hangs up */
            pend *h = q_head(m);
            keep_reply(m, &m->bad_reply, h ? verb_name[h->verb] : NULL, 0, (const char *)l, n);
        }
        if (m->nlines == 0) return;
        code = m->rcode;                    /* keep it with the reply */
    }
    if (m->nlines == 0) { m->rcode = code; m->rfirst_frame = m->s->cur_frame; }
    else if (code != m->rcode)
        mx_sess_anomaly(m->s, MX_SERVER, "reply_code_changed", "multi-line reply with different codes");
    if (m->nlines < MAX_REPLY_LINES && m->rlen + n <= REPLY_BUF && (m->rlen + n > m->rcap || !m->rbuf)) {
        /* most replies are a line or two: the buffer starts small */
        uint32_t nc = m->rcap ? m->rcap : 512;
        while (nc < m->rlen + n) nc *= 2;
        if (nc > REPLY_BUF) nc = REPLY_BUF;
        char *nb = realloc(m->rbuf, nc);
        if (nb) { m->rbuf = nb; m->rcap = nc; }
    }
    if (m->nlines < MAX_REPLY_LINES && m->rbuf && m->rlen + n <= m->rcap) {
        memcpy(m->rbuf + m->rlen, l, n);
        m->roff[m->nlines] = (uint16_t)m->rlen;
        m->rlens[m->nlines] = (uint16_t)n;
        m->rlen += (uint32_t)n;
        m->nlines++;
    } else {
        m->lines_dropped++;
    }
    int last = n <= 3 || l[3] != '-';
    if (last) reply_done(m, 0);
}

static int reply_code(const uint8_t *l, size_t n);

static size_t server_feed(mx_smtp *m, const uint8_t *p, size_t n, int force)
{
    size_t i = 0;
    if (n) m->server_spoke = 1;
    while (i < n) {
        if ((!m->in_tls && m->s->app[MX_SERVER] != MX_APP_SMTP) || m->s->release) return i;   /* handed off */
        const uint8_t *l = p + i;
        const uint8_t *nl = memchr(l, '\n', n - i);
        size_t len = nl ? (size_t)(nl - l) : n - i;
        if (m->s_discard) {
            /* After a gap the next byte may well start a reply: resume there
             * rather than lose it (over-long lines are always skipped). */
            if (m->s_discard == 2 && len >= 4 && reply_code(l, 4) >= 0) {
                m->s_discard = 0;
            } else {
                if (!nl) return n;
                m->s_discard = 0;
                i += len + 1;
                continue;
            }
        }
        if (m->nlines == 0 && !m->replies && n - i >= 3 && looks_tls(l)) {
            if (!m->s->off_port)
                mx_sess_anomaly(m->s, MX_SERVER, "tls_without_starttls", "server sent TLS without STARTTLS");
            m->s->app[MX_SERVER] = MX_APP_TLS;
            return i;
        }
        if (!nl && len <= (size_t)m->lim->max_line + 1 && !force) return i;
        size_t cl = nl && len && l[len - 1] == '\r' ? len - 1 : len;
        if (nl && (len == 0 || l[len - 1] != '\r'))
            mx_sess_anomaly(m->s, MX_SERVER, "bare_lf", "reply ended by LF without CR");
        int trunc = cl > m->lim->max_line;
        if (trunc) {
            cl = m->lim->max_line;
            mx_sess_anomaly(m->s, MX_SERVER, "line_too_long", "reply line over max_line");
        }
        reply_line(m, l, cl);
        if (!nl) {
            if (trunc) m->s_discard = 1;
            return n;
        }
        i += len + 1;
    }
    return i;
}

/* ---- entry points ------------------------------------------------------ */

size_t mx_smtp_feed(mx_smtp *m, int dir, const uint8_t *p, size_t n, int force)
{
    if (!m) return n;
    return dir == MX_CLIENT ? client_feed(m, p, n, force) : server_feed(m, p, n, force);
}

void mx_smtp_gap(mx_smtp *m, int dir, uint32_t len)
{
    if (!m) return;
    if (dir == MX_SERVER) {
        if (m->nlines) reply_done(m, 1);       /* what we have of it */
        m->s_discard = 2;
        m->s_after_gap = 1;
        return;
    }
    m->c_after_gap = 1;
    switch (m->cmode) {
    case CM_BODY:
        if (m->m) {
            m->m->gap_bytes += len;
            m->m->bytes += len;
            m->m->line_len = 0;
            m->m->line_cr = 0;
            m->m->after_gap = 1;       /* cannot trust the line the hole cut */
        }
        break;
    case CM_CHUNK:
        if (m->m) m->m->gap_bytes += len < m->chunk_left ? len : m->chunk_left;
        if (len < m->chunk_left) { m->chunk_left -= len; break; }
        if (m->chunk_last) emit_data(m, "gap");
        m->chunk_left = 0;
        set_cmode(m, CM_DISCARD);
        break;
    case CM_CMD:
    case CM_AUTH:
        set_cmode(m, CM_DISCARD);
        break;
    default:
        break;
    }
}

void mx_smtp_eof(mx_smtp *m, int dir)
{
    if (!m) return;
    if (dir == MX_SERVER) {
        if (m->nlines) reply_done(m, 1);
        return;
    }
    if (m->m && (m->cmode == CM_BODY || m->cmode == CM_CHUNK)) emit_data(m, "eof");
}

void mx_smtp_summary(const mx_smtp *m, mx_ev *o)
{
    if (!m || !o) return;
    size_t cap = m->lim->max_field;
    if (m->banner_host[0]) mx_ev_wire(o, "banner_host", (const uint8_t *)m->banner_host, strlen(m->banner_host), cap);
    if (m->helo[0]) mx_ev_wire(o, "helo", (const uint8_t *)m->helo, strlen(m->helo), cap);
    if (m->ehlo_host[0]) mx_ev_wire(o, "ehlo_host", (const uint8_t *)m->ehlo_host, strlen(m->ehlo_host), cap);
    mx_ev_bool(o, "esmtp", m->esmtp);
    mx_ev_bool(o, "starttls_offered", m->starttls_offered);
    if (m->pipelining) mx_ev_bool(o, "pipelining", 1);
    if (m->chunking) mx_ev_bool(o, "chunking", 1);
    if (m->size_limit >= 0) mx_ev_int(o, "size_limit", m->size_limit);
    if (m->auth_mechs[0]) mx_ev_wire(o, "auth_offered", (const uint8_t *)m->auth_mechs, strlen(m->auth_mechs), cap);
    if (m->starttls_result) {
        mx_ev *t = mx_ev_obj(o, "starttls");
        mx_ev_str(t, "result", m->starttls_result);
        mx_ev_int(t, "code", m->starttls_code);
    }
    if (m->auth_mech[0]) {
        mx_ev *a = mx_ev_obj(o, "auth");
        mx_ev_str(a, "mechanism", m->auth_mech);
        mx_ev_str(a, "result", m->auth_result ? m->auth_result : "unanswered");
        if (m->auth_result) mx_ev_int(a, "code", m->auth_code);
        mx_ev_bool(a, "cleartext", !m->in_tls);
        mx_ev_bool(a, "password_exposed", !m->in_tls && mx_mech_exposes_secret(m->auth_mech) && m->auth_sent + m->auth_ir > 0);
        if (m->s->opt->show_user && m->auth_user[0])
            mx_ev_wire(a, "user", (const uint8_t *)m->auth_user, strlen(m->auth_user), cap);
    }
    mx_ev_int(o, "commands", m->commands);
    mx_ev_int(o, "replies", m->replies);
    mx_ev_int(o, "transactions", m->transactions);
    mx_ev_int(o, "messages_accepted", m->msgs_accepted);
    mx_ev_int(o, "messages_rejected", m->msgs_rejected);
    mx_ev_int(o, "recipients_accepted", m->rcpt_ok);
    mx_ev_int(o, "recipients_rejected", m->rcpt_bad);
    if (m->nrcpt_dom) {
        mx_ev *a = mx_ev_arr(o, "recipient_domains");
        for (unsigned i = 0; i < m->nrcpt_dom; i++)
            mx_ev_push_wire(a, (const uint8_t *)m->rcpt_dom[i], strlen(m->rcpt_dom[i]), cap);
        if (m->rcpt_dom_more) mx_ev_bool(o, "recipient_domains_more", 1);
    }
    if (m->last_queue_id[0]) mx_ev_wire(o, "queue_id", (const uint8_t *)m->last_queue_id, strlen(m->last_queue_id), cap);
    if (m->last_code >= 0 && m->replies) mx_ev_int(o, "last_reply", m->last_code);
    if (m->qlen) mx_ev_int(o, "unanswered", m->qlen);
    if (m->unsolicited) mx_ev_int(o, "unsolicited_replies", m->unsolicited);
    mx_ev_bool(o, "quit", m->quit_sent);
    mx_ev_str(o, "client_state", cmode_name[m->cmode]);
}

int mx_smtp_looks_plain(int dir, const uint8_t *p, size_t n)
{
    if (n == 0) return -1;
    if (p[0] >= 20 && p[0] <= 24) return 0;          /* a TLS record type */
    if (dir == MX_CLIENT) return command_starts(p, n);
    for (size_t i = 0; i < 3; i++) {
        if (i == n) return -1;
        if (p[i] < '0' || p[i] > '9') return 0;
    }
    if (n == 3) return -1;
    return p[3] == ' ' || p[3] == '-' || p[3] == '\r' || p[3] == '\n';
}

void mx_smtp_in_tls(mx_smtp *m, int dir)
{
    m->in_tls = 1;
    if (dir == MX_CLIENT) {
        set_cmode(m, CM_CMD);
        m->early = 0;
    }
}

void mx_smtp_resume(mx_smtp *m, int dir)
{
    m->s->app[dir] = MX_APP_SMTP;
    if (dir == MX_CLIENT) {
        set_cmode(m, CM_CMD);
        m->early = 0;
    }
}

void mx_smtp_facts(const mx_smtp *m, mx_facts *f)
{
    if (!m) return;
    f->starttls_plain = m->s->starttls_plain;
    f->starttls_masked = m->starttls_masked && !m->starttls_offered;
    f->starttls_injected = m->s->starttls_injected;
    f->response_injected = m->s->response_injected;
    f->mail_in_clear = m->mail_in_clear;
    f->plain_on_tls_port = m->s->plain_on_tls_port;
    f->starttls_plain_frame = m->s->starttls_plain_frame;
    f->greeting_code = m->greeting_code;
    f->greeting_frame = m->greeting_frame;
    f->ehlo_code = m->ehlo_code;
    f->helo_code = m->helo_code;
    f->esmtp = m->esmtp;
    f->starttls_offered = m->starttls_offered;
    f->starttls_code = m->starttls_result ? m->starttls_code : 0;
    f->starttls_frame = m->starttls_frame;
    mx_copy_str(f->auth_mech, sizeof f->auth_mech, m->auth_mech);
    f->auth_code = m->auth_result ? m->auth_code : 0;
    f->auth_frame = m->auth_frame;
    f->mail_seen = m->mail_seen;
    f->rcpt_ok = (int)m->rcpt_ok;
    f->rcpt_bad = (int)m->rcpt_bad;
    f->data_seen = m->data_seen;
    f->commands = m->commands;
    f->bad_reply = m->bad_reply;
    f->auth_sent = m->auth_sent + m->auth_ir;
    f->replies = m->replies;
    f->msgs_sent = m->msgs_sent;
    f->last_reply = m->replies ? m->last_code : 0;
    f->msgs_ok = m->msgs_accepted;
    f->msgs_bad = m->msgs_rejected;
    mx_copy_str(f->queue_id, sizeof f->queue_id, m->last_queue_id);
    f->accepted_frame = m->accepted_frame;
    f->first_failure = m->fail;
    f->abort421 = m->abort421;
    f->quit_sent = m->quit_sent;
    f->quit_answered = m->quit_answered;
    f->not_smtp = m->cmode == CM_OPAQUE && !m->starttls_result && m->garbage_lines >= 3;
    f->tls_required_530 = m->tls530;
    f->tls_required_frame = m->tls530_frame;
}
