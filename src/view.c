/* view.c - human views of a session document: text, summary, HTML.
 *
 * Part of the output layer (with sink.c): it walks the session's event trees
 * (event.h) with the timeline document's fields around them.  Wire text in these documents is already
 * valid UTF-8 without NUL (mx_text_clean); here it gets the quoting of its
 * format: control characters are shown as \xNN, and C1 controls, bidi
 * overrides and isolates and the line separators as \uNNNN, on a terminal and
 * in HTML alike; & < > " ' become entities in HTML, so captured bytes can
 * neither move a terminal's cursor, reorder what is shown, nor add markup.
 */
#include "mx/view.h"
#include "mx/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- quoting ------------------------------------------------------------- */

/* Code points that are valid UTF-8 yet act on a screen: C1 controls
 * (U+0080-U+009F, U+009B is a CSI), the bidi embeddings and overrides
 * (U+202A-U+202E), the bidi isolates (U+2066-U+2069) and the line and
 * paragraph separators (U+2028, U+2029).  Returns the sequence's length and
 * its code point in *cp, or 0 when the bytes at s are harmless. */
size_t mx_view_unsafe(const char *s, unsigned *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F) { *cp = u[1]; return 2; }
    if (u[0] == 0xE2 && u[1] == 0x80 && u[2] >= 0xA8 && u[2] <= 0xAE) { *cp = 0x2000u + (u[2] - 0x80u); return 3; }
    if (u[0] == 0xE2 && u[1] == 0x81 && u[2] >= 0xA6 && u[2] <= 0xA9) { *cp = 0x2040u + (u[2] - 0x80u); return 3; }
    return 0;
}

void mx_view_text(FILE *f, const char *s)
{
    while (s && *s) {
        /* a run of harmless bytes goes out in one write */
        const char *run = s;
        unsigned cp = 0;
        size_t k = 0;
        for (; *s; s++) {
            unsigned char c = (unsigned char)*s;
            if (c < 0x20 || c == 0x7F || (c >= 0xC2 && (k = mx_view_unsafe(s, &cp)) != 0)) break;
        }
        if (s > run) fwrite(run, 1, (size_t)(s - run), f);
        if (!*s) break;
        if (k) { fprintf(f, "\\u%04x", cp); s += k; }
        else { fprintf(f, "\\x%02x", (unsigned char)*s); s++; }
    }
}

void mx_view_html(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned cp;
        size_t k;
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            /* shown as text: a character reference would still act (and
             * &#x80;-&#x9f; mean windows-1252 letters in HTML) */
            if ((unsigned char)*s < 0x20 || *s == 0x7F) fprintf(f, "\\x%02x", (unsigned char)*s);
            else if ((unsigned char)*s >= 0xC2 && (k = mx_view_unsafe(s, &cp)) != 0) { fprintf(f, "\\u%04x", cp); s += k - 1; }
            else fputc(*s, f);
        }
    }
}

/* snprintf into a fixed buffer may cut a UTF-8 character: drop the piece. */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), k = n;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80) k--;   /* continuation bytes */
    if (k == 0) return;
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (k - 1) < need) s[k - 1] = 0;
}

/* ---- reading the document -------------------------------------------------- */

typedef mx_node cJ;

static const char *str(const cJ *o, const char *k) { return mx_node_gets(o, k); }
/* Integer members (counts, codes, ports, frames) */
static long long num(const cJ *o, const char *k, long long dflt) { return (long long)mx_node_getint(o, k, dflt); }
/* The document's session id, left-justified in width columns. */
static void sid(FILE *f, const cJ *doc, int width)
{
    char t[32];
    fwrite(t, 1, mx_sid_text((uint64_t)num(doc, "session", 0), width, t), f);
}
static int boolean(const cJ *o, const char *k) { return mx_node_true(o, k); }
static const cJ *obj(const cJ *o, const char *k) { return mx_node_get(o, k); }

/* One line describing an event, into buf; returns its kind for styling:
 * 0 plain, 1 failure, 2 note. */
static int describe_raw(const cJ *e, char *buf, size_t cap);

static int describe(const cJ *e, char *buf, size_t cap)
{
    int kind = describe_raw(e, buf, cap);
    utf8_trim(buf);
    return kind;
}

static int describe_raw(const cJ *e, char *buf, size_t cap)
{
    mx_evtype type = (mx_evtype)e->evtype;
    buf[0] = 0;
    if (type == MX_EV_TCP_SYN) { snprintf(buf, cap, "SYN%s", boolean(e, "retransmission") ? " (again)" : ""); return 0; }
    if (type == MX_EV_TCP_SYNACK) { snprintf(buf, cap, "SYN-ACK"); return 0; }
    if (type == MX_EV_TCP_FIN) { snprintf(buf, cap, "FIN"); return 0; }
    if (type == MX_EV_TCP_RST) {
        snprintf(buf, cap, "RST%s%s", boolean(e, "after_close") ? " (after the connection ended)" : "",
                 boolean(e, "in_window") ? "" : " (outside the window: ignored)");
        return 1;
    }
    if (type == MX_EV_TCP_REFUSED) { snprintf(buf, cap, "RST: connection refused"); return 1; }
    if (type == MX_EV_TCP_GAP) {
        snprintf(buf, cap, "[%lld bytes missing from the capture: %s]", num(e, "bytes", 0), str(e, "reason") ? str(e, "reason") : "");
        return 2;
    }
    if (type == MX_EV_SMTP_COMMAND) {
        const char *v = str(e, "verb"), *a = str(e, "arg");
        if (boolean(e, "withheld") && !a) {
            const char *ch = str(e, "chars");
            snprintf(buf, cap, "[%s line of %lld bytes withheld%s%s%s]", boolean(e, "known") || !str(e, "chars") ? v : "unknown",
                     num(e, "length", 0), ch ? ", " : "", ch ? ch : "",
                     boolean(e, "possible_credential") ? ", possible credential" : "");
            return 0;
        }
        snprintf(buf, cap, "%s%s%s%s", v ? v : "", a ? " " : "", a ? a : "", boolean(e, "truncated") ? " [truncated]" : "");
        return 0;
    }
    if (type == MX_EV_SMTP_AUTH_RESPONSE) {
        const char *k = str(e, "kind"), *u = str(e, "user");
        snprintf(buf, cap, "<%s%s%s>", k ? k : "response", u ? ": " : ", redacted", u ? u : "");
        return 0;
    }
    if (type == MX_EV_SMTP_REPLY) {
        const cJ *lines = obj(e, "lines");
        int n = lines && lines->vt == MX_VT_ARR ? (int)lines->len : 0;
        const cJ *l0 = mx_node_at(lines, 0);
        const char *d = str(e, "decoded");
        size_t o = (size_t)snprintf(buf, cap, "%lld%s%s", num(e, "code", 0), n > 1 ? "-" : " ",
                                    mx_node_text(l0) ? l0->v.s : "");
        if (d && o < cap) o += (size_t)snprintf(buf + o, cap - o, " (\"%s\")", d);
        if (n > 1 && o < cap) {
            o += (size_t)snprintf(buf + o, cap - o, " [+%d lines:", n - 1);
            for (const cJ *li = l0->next; li && o < cap; li = li->next)
                o += (size_t)snprintf(buf + o, cap - o, " %s", mx_node_text(li) ? li->v.s : "");
            if (o < cap) snprintf(buf + o, cap - o, "]");
        }
        return num(e, "code", 0) >= 400 ? 1 : 0;
    }
    if (type == MX_EV_SMTP_AUTH) {
        snprintf(buf, cap, "AUTH %s %s (%lld)%s", str(e, "mechanism") ? str(e, "mechanism") : "",
                 str(e, "result") ? str(e, "result") : "", num(e, "code", 0),
                 boolean(e, "password_exposed") ? " - credentials in clear text" : "");
        return str(e, "result") && !strcmp(str(e, "result"), "success") ? 2 : 1;
    }
    if (type == MX_EV_SMTP_STARTTLS) {
        const char *r = str(e, "result");
        if (r && !strcmp(r, "accepted")) { snprintf(buf, cap, "STARTTLS accepted: TLS from the next byte"); return 2; }
        snprintf(buf, cap, "STARTTLS refused (%lld)", num(e, "code", 0));
        return 1;
    }
    if (type == MX_EV_SMTP_DATA) {
        const cJ *h = obj(e, "headers");
        const char *subj = str(h, "subject");
        snprintf(buf, cap, "[message: %lld bytes%s%s%s, end %s, %lld attachment(s)]", num(e, "bytes", 0),
                 subj ? ", Subject: \"" : "", subj ? subj : "", subj ? "\"" : "", str(e, "end") ? str(e, "end") : "",
                 num(e, "attachments", 0));
        return 0;
    }
    if (type == MX_EV_TLS_CLIENT_HELLO) {
        snprintf(buf, cap, "TLS ClientHello%s%s, %lld cipher suites", str(e, "sni") ? " SNI " : "",
                 str(e, "sni") ? str(e, "sni") : "", num(e, "cipher_suites", 0));
        return 0;
    }
    if (type == MX_EV_TLS_SERVER_HELLO || type == MX_EV_TLS_HELLO_RETRY_REQUEST) {
        snprintf(buf, cap, "TLS %s %s %s", type == MX_EV_TLS_SERVER_HELLO ? "ServerHello" : "HelloRetryRequest",
                 str(e, "version") ? str(e, "version") : "", str(e, "cipher") ? str(e, "cipher") : "");
        return 0;
    }
    if (type == MX_EV_TLS_CERTIFICATE) {
        const cJ *leaf = mx_node_at(obj(e, "chain"), 0), *ck = obj(e, "checks");
        if (!leaf) {
            int client = mx_node_head(e) && mx_node_head(e)->from == MX_CLIENT;
            snprintf(buf, cap, "TLS Certificate: %s", client ? "none (the client has no certificate to send)" : "empty chain");
            return 0;
        }
        size_t o = (size_t)snprintf(buf, cap, "TLS Certificate %s, issued by %s", str(leaf, "subject") ? str(leaf, "subject") : "?",
                                    str(leaf, "issuer") ? str(leaf, "issuer") : "?");
        int bad = 0;
        if (boolean(ck, "expired") && o < cap) { o += (size_t)snprintf(buf + o, cap - o, "; EXPIRED (%s)", str(leaf, "not_after") ? str(leaf, "not_after") : ""); bad = 1; }
        if (boolean(ck, "self_signed") && o < cap) { o += (size_t)snprintf(buf + o, cap - o, "; self-signed"); bad = 1; }
        MX_NODE_EACH(nm, obj(ck, "names")) {
            if (!boolean(nm, "covered") && o < cap) { o += (size_t)snprintf(buf + o, cap - o, "; does not cover %s", str(nm, "name")); bad = 1; }
        }
        return bad;
    }
    if (type == MX_EV_TLS_SERVER_KEY_EXCHANGE) { snprintf(buf, cap, "TLS ServerKeyExchange%s%s", str(e, "group") ? " " : "", str(e, "group") ? str(e, "group") : ""); return 0; }
    if (type == MX_EV_TLS_HANDSHAKE) { snprintf(buf, cap, "TLS %s", str(e, "message") ? str(e, "message") : ""); return 0; }
    if (type == MX_EV_TLS_CHANGE_CIPHER_SPEC) { snprintf(buf, cap, "TLS ChangeCipherSpec"); return 0; }
    if (type == MX_EV_TLS_ENCRYPTED) { snprintf(buf, cap, "TLS encrypted records from here"); return 0; }
    if (type == MX_EV_TLS_HANDSHAKE_COMPLETE) {
        snprintf(buf, cap, "TLS handshake complete: %s %s", str(e, "version") ? str(e, "version") : "", str(e, "cipher") ? str(e, "cipher") : "");
        return 2;
    }
    if (type == MX_EV_TLS_ALERT) {
        if (boolean(e, "encrypted") && !boolean(e, "decrypted")) {
            const char *p = str(e, "probably");
            snprintf(buf, cap, "TLS Alert (encrypted)%s%s%s", p ? ", probably " : "", p ? p : "",
                     boolean(e, "probable_rejection") ? ": probable rejection" : "");
            return p ? 0 : 1;
        }
        snprintf(buf, cap, "TLS Alert %s %s (%lld) after %s %s%s", str(e, "level") ? str(e, "level") : "",
                 str(e, "description") ? str(e, "description") : "", num(e, "code", 0),
                 str(e, "after_from") ? str(e, "after_from") : "", str(e, "after") ? str(e, "after") : "",
                 boolean(e, "decrypted") ? " (decrypted)" : "");
        return num(e, "code", 0) == 0 ? 0 : 1;
    }
    if (type == MX_EV_ANOMALY) { snprintf(buf, cap, "! %s: %s", str(e, "kind") ? str(e, "kind") : "", str(e, "detail") ? str(e, "detail") : ""); return 2; }
    if (type == MX_EV_LIMIT) { snprintf(buf, cap, "! limit %s (%lld) reached", str(e, "limit") ? str(e, "limit") : "", num(e, "value", 0)); return 2; }
    return -1;   /* not shown as a step (session.start, session.end) */
}

/* ---- text ---------------------------------------------------------------- */

/* Formatting without printf, for what every line of a story has. */

static size_t copy(char *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return n;
}

/* v right-aligned in w columns, as printf's %*lld. */
static size_t digits(char *o, long long v, int w)
{
    char t[24];
    size_t n = 0, k = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do { t[n++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) t[n++] = '-';
    for (size_t i = n; i < (size_t)w; i++) o[k++] = ' ';
    while (n) o[k++] = t[--n];
    return k;
}

/* Microseconds as seconds with six decimals, right-aligned in w columns, as
 * printf's %*.6f gives them. */
static size_t seconds6(char *o, int64_t i, int w)
{
    if (i <= -(1LL << 52) || i >= (1LL << 52)) return (size_t)snprintf(o, 40, "%*.6f", w, (double)i / 1e6);
    unsigned long long u = i < 0 ? (unsigned long long)-i : (unsigned long long)i;
    char t[40];
    size_t n = 0, k = 0;
    unsigned frac = (unsigned)(u % 1000000u);
    for (int d = 0; d < 6; d++) { t[n++] = (char)('0' + frac % 10); frac /= 10; }
    t[n++] = '.';
    u /= 1000000u;
    do { t[n++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (i < 0) t[n++] = '-';
    for (size_t j = n; j < (size_t)w; j++) o[k++] = ' ';
    while (n) o[k++] = t[--n];
    return k;
}

/* s quoted as mx_view_text() writes it; o has room for 4 bytes per byte. */
static size_t text_quoted(char *o, const char *s)
{
    static const char hx[] = "0123456789abcdef";
    size_t n = 0;
    while (s && *s) {
        unsigned char c = (unsigned char)*s;
        unsigned cp = 0;
        size_t k = 0;
        if (c < 0x20 || c == 0x7F) {
            o[n++] = '\\'; o[n++] = 'x'; o[n++] = hx[c >> 4]; o[n++] = hx[c & 15];
            s++;
        } else if (c >= 0xC2 && (k = mx_view_unsafe(s, &cp)) != 0) {
            o[n++] = '\\'; o[n++] = 'u';
            o[n++] = hx[(cp >> 12) & 15]; o[n++] = hx[(cp >> 8) & 15]; o[n++] = hx[(cp >> 4) & 15]; o[n++] = hx[cp & 15];
            s += k;
        } else {
            o[n++] = (char)c;
            s++;
        }
    }
    return n;
}

#define C_RESET "\033[0m"
#define C_CLI "\033[36m"
#define C_SRV "\033[33m"
#define C_BAD "\033[1;31m"
#define C_OK "\033[1;32m"
#define C_DIM "\033[2m"

static const cJ *last_event(const cJ *doc)
{
    const cJ *evs = obj(doc, "events");
    return evs && evs->vt == MX_VT_ARR ? evs->v.kids.last : NULL;
}

/* "ip:port", "[ip6]:port" into o (cap bytes, at least 48), NUL-ended; its length. */
static size_t endpoint(char *o, size_t cap, const cJ *ep)
{
    const char *ip = str(ep, "ip");
    if (!ip) ip = "?";
    size_t il = strlen(ip), n = 0;
    if (il > cap - 24) il = cap - 24;
    int v6 = memchr(ip, ':', il) != NULL;
    if (v6) o[n++] = '[';
    memcpy(o + n, ip, il);
    n += il;
    if (v6) o[n++] = ']';
    o[n++] = ':';
    n += digits(o + n, num(ep, "port", 0), 0);
    o[n] = 0;
    return n;
}

/* The session's first line: who, when, how long (known at its end). */
void mx_view_text_head(FILE *f, const cJ *doc, const cJ *start, int color)
{
    char t[512];
    size_t n = 0;
    long long part = num(doc, "part", 0);
    int continued = boolean(doc, "continued");
    if (!start) start = mx_node_at(obj(doc, "events"), 0);
    const char *dns = str(obj(start, "dns"), "name");
    if (color) n += copy(t + n, "\033[1m");
    n += copy(t + n, "session ");
    n += mx_sid_text((uint64_t)num(doc, "session", 0), 0, t + n);
    if (color) n += copy(t + n, C_RESET);
    t[n++] = ' ';
    t[n++] = ' ';
    n += endpoint(t + n, 100, obj(doc, "client"));
    n += copy(t + n, " -> ");
    n += endpoint(t + n, 100, obj(doc, "server"));
    if (dns) {
        n += copy(t + n, " (");
        fwrite(t, 1, n, f);
        mx_view_text(f, dns);
        n = 0;
        t[n++] = ')';
    }
    const char *st = str(doc, "start");
    t[n++] = ' ';
    t[n++] = ' ';
    size_t sl = st ? strlen(st) : 0;
    if (sl > 100) sl = 100;
    memcpy(t + n, st ? st : "", sl);
    n += sl;
    t[n++] = ' ';
    t[n++] = ' ';
    const cJ *d = obj(doc, "duration");
    if (d && d->vt == MX_VT_USEC) n += seconds6(t + n, d->v.i, 0);
    else n += (size_t)snprintf(t + n, 48, "%.6f", mx_node_getnum(doc, "duration", 0));
    n += copy(t + n, " s");
    if (part) {
        n += copy(t + n, "  (part ");
        n += digits(t + n, part, 0);
        n += copy(t + n, continued ? ", continued below)" : ")");
    }
    t[n++] = '\n';
    fwrite(t, 1, n, f);
}

/* The verdict, or that the session goes on in a next part. */
void mx_view_text_foot(FILE *f, const cJ *doc, int color)
{
    const cJ *end = last_event(doc), *v = obj(end, "verdict");
    long long part = num(doc, "part", 0);
    int continued = boolean(doc, "continued");
    if (v) {
        int ok = boolean(v, "ok");
        const char *code = str(v, "code"), *cause = str(v, "cause"), *remedy = str(v, "remedy");
        fputs("  ", f);
        if (color) fputs(ok ? C_OK : C_BAD, f);
        fputs("=> ", f);
        fputs(code ? code : "?", f);
        if (color) fputs(C_RESET, f);
        if (cause) { fputs(" (", f); fputs(cause, f); fputc(')', f); }
        fputs(": ", f);
        mx_view_text(f, str(v, "explanation"));
        fputc('\n', f);
        if (remedy) { fputs("     remedy: ", f); mx_view_text(f, remedy); fputc('\n', f); }
        fputs("     log: ", f);
        mx_view_text(f, str(v, "log_line"));
        fputs("\n\n", f);
    } else if (continued) {
        fprintf(f, "  ... the memory budget (--memcap) was reached: this much was written early, the session goes on in part %lld\n\n",
                part + 1);
    }
}

size_t mx_view_text_line(const cJ *e, int color, char *out)
{
    char line[4096];
    int kind = describe(e, line, sizeof line);
    if (kind < 0) return 0;
    const mx_evhead *h = mx_node_head(e);
    int from = h ? h->from : MX_NODIR;
    const char *who = from == MX_CLIENT ? "C" : from == MX_SERVER ? "S" : " ";
    const char *col = !color ? "" : kind == 1 ? C_BAD : kind == 2 ? C_DIM : from == MX_NODIR ? "" : *who == 'C' ? C_CLI : C_SRV;
    size_t n = 2;
    out[0] = out[1] = ' ';
    n += seconds6(out + n, h ? h->t_us : 0, 10);
    out[n++] = ' ';
    n += digits(out + n, h ? (long long)h->frame : 0, 5);
    out[n++] = ' ';
    out[n++] = *who;
    out[n++] = ':';
    out[n++] = ' ';
    n += copy(out + n, col);
    n += text_quoted(out + n, line);
    if (color && *col) n += copy(out + n, C_RESET);
    out[n++] = '\n';
    return n;
}

void mx_view_text_session(FILE *f, const cJ *doc, const cJ *start, int color)
{
    char out[MX_VIEW_LINE_MAX];
    mx_view_text_head(f, doc, start, color);
    MX_NODE_EACH(e, obj(doc, "events")) {
        size_t n = mx_view_text_line(e, color, out);
        if (n) fwrite(out, 1, n, f);
    }
    mx_view_text_foot(f, doc, color);
}


/* ---- summary --------------------------------------------------------------- */

void mx_view_summary_header(FILE *f)
{
    fprintf(f, "%-7s %-27s %-23s %-23s %-12s %-8s %-14s %-5s %s\n", "SESSION", "START", "CLIENT", "SERVER",
            "MODE", "TLS", "AUTH", "MSGS", "VERDICT");
}

void mx_view_summary_session(FILE *f, const cJ *doc, const cJ *start, int color)
{
    char cli[80], srv[80], auth[48] = "-", msgs[16], tlsv[24] = "-";
    const cJ *end = last_event(doc), *v = obj(end, "verdict"), *smtp = obj(end, "smtp"), *tls = obj(end, "tls");
    if (!start) start = mx_node_at(obj(doc, "events"), 0);
    endpoint(cli, sizeof cli, obj(doc, "client"));
    endpoint(srv, sizeof srv, obj(doc, "server"));
    const char *mode = str(start, "mode") ? str(start, "mode") : "-";
    if (obj(smtp, "starttls")) mode = "starttls";
    if (tls && str(tls, "version")) snprintf(tlsv, sizeof tlsv, "%s", str(tls, "version"));
    else if (v && str(v, "tls")) snprintf(tlsv, sizeof tlsv, "%s", !strcmp(str(v, "tls"), "starttls_not_offered") ? "none" :
                                          !strcmp(str(v, "tls"), "starttls_not_used") ? "unused" : "failed");
    const cJ *a = obj(smtp, "auth");
    if (a) snprintf(auth, sizeof auth, "%s:%s", str(a, "mechanism") ? str(a, "mechanism") : "?", str(a, "result") ? str(a, "result") : "?");
    snprintf(msgs, sizeof msgs, "%lld/%lld", num(smtp, "messages_accepted", 0),
             num(smtp, "messages_accepted", 0) + num(smtp, "messages_rejected", 0));
    int ok = v && boolean(v, "ok");
    sid(f, doc, 7);
    fprintf(f, " %-27s %-23s %-23s %-12s %-8s ", str(doc, "start") ? str(doc, "start") : "", cli, srv, mode, tlsv);
    mx_view_text(f, auth);
    fprintf(f, "%*s %-5s %s%s%s", (int)(14 - (strlen(auth) < 14 ? strlen(auth) : 14)), "", msgs,
            color ? (ok ? C_OK : C_BAD) : "", v && str(v, "code") ? str(v, "code") : "?", color ? C_RESET : "");
    if (v && str(v, "log_line")) { fputs("  ", f); mx_view_text(f, str(v, "log_line")); }
    fputc('\n', f);
}

/* ---- HTML ------------------------------------------------------------------ */

void mx_view_html_begin(FILE *f)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>mxtrace report</title>\n<style>\n"
          "body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:1em 2em;color:#222;display:flex;flex-direction:column}\n"
          "#index{order:-1}\nh1{font-size:20px;order:-2}\n"
          "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;font-size:13px}\n"
          ".ok{color:#176f2c;font-weight:600}.bad{color:#b3261e;font-weight:600}\n"
          "section{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.5em 1em}\n"
          ".verdict{padding:.4em .8em;border-radius:4px;margin:.5em 0;color:#222;font-weight:400}.verdict .code{font-weight:700}.verdict.ok{background:#e6f4ea}.verdict.bad{background:#fce8e6}\n"
          ".ladder{position:relative;margin:1em 0}\n"
          ".lanes{display:grid;grid-template-columns:7em 1fr 1fr;font-weight:600}\n"
          ".ev{display:grid;grid-template-columns:7em 1fr;align-items:end;min-height:2.2em}\n"
          ".ev .t{font:12px monospace;color:#666}\n"
          ".arrow{position:relative;margin:0 6%;border-bottom:2px solid #555;padding:0 1em 2px;font:12px monospace;white-space:pre-wrap;word-break:break-all}\n"
          ".c2s .arrow{text-align:left}.s2c .arrow{text-align:right}\n"
          ".c2s .arrow::after,.s2c .arrow::after{content:'';position:absolute;bottom:-6px;border:5px solid transparent}\n"
          ".c2s .arrow::after{right:-2px;border-left:9px solid #555}\n"
          ".s2c .arrow::after{left:-2px;border-right:9px solid #555}\n"
          ".note .arrow{border-bottom:1px dashed #aaa;color:#666;text-align:center}\n"
          ".fail .arrow{border-color:#b3261e;color:#b3261e;font-weight:700}.fail .arrow::after{border-left-color:#b3261e;border-right-color:#b3261e}\n"
          ".fail.c2s .arrow::after{border-right-color:transparent}.fail.s2c .arrow::after{border-left-color:transparent}\n"
          ".hidden{display:none}\n"
          "</style></head><body>\n<h1>mxtrace report</h1>\n", f);
}

void mx_view_html_session(FILE *f, const cJ *doc)
{
    char cli[80], srv[80], line[4096];
    const cJ *end = last_event(doc), *v = obj(end, "verdict");
    endpoint(cli, sizeof cli, obj(doc, "client"));
    endpoint(srv, sizeof srv, obj(doc, "server"));
    const char *code = v && str(v, "code") ? str(v, "code") : "none";
    int ok = v && boolean(v, "ok");
    long long part = num(doc, "part", 0);
    int continued = boolean(doc, "continued");
    /* the index links to a session's last part: its verdict */
    fputs("<section class=\"session\" id=\"s", f);
    sid(f, doc, 0);
    if (continued) fprintf(f, "-part%lld", part);
    fputs("\" data-verdict=\"", f);
    if (!continued) mx_view_html(f, code);
    fputs("\">\n<h2>Session ", f);
    sid(f, doc, 0);
    fputs(": ", f);
    mx_view_html(f, cli);
    fputs(" &rarr; ", f);
    mx_view_html(f, srv);
    if (part) fprintf(f, " (part %lld)", part);
    fputs("</h2>\n", f);
    if (continued) {
        fprintf(f, "<div class=\"verdict\">The memory budget (--memcap) was reached: this part was written early; "
                "the session goes on in part %lld.</div>\n", part + 1);
    } else {
    fputs("<div class=\"verdict ", f);
    fputs(ok ? "ok" : "bad", f);
    fputs("\"><b class=\"code\">", f);
    mx_view_html(f, code);
    fputs("</b>: <span class=\"explanation\">", f);
    mx_view_html(f, v ? str(v, "explanation") : "");
    fputs("</span>", f);
    if (v && str(v, "remedy")) { fputs("<br><i>Remedy:</i> <span class=\"remedy\">", f); mx_view_html(f, str(v, "remedy")); fputs("</span>", f); }
    if (v && str(v, "log_line")) { fputs("<br><i>Log:</i> <code>", f); mx_view_html(f, str(v, "log_line")); fputs("</code>", f); }
    fputs("</div>\n", f);
    }
    fputs("<div class=\"ladder\"><div class=\"lanes\"><span>time (s)</span><span>client ", f);
    mx_view_html(f, cli);
    fputs("</span><span style=\"text-align:right\">server ", f);
    mx_view_html(f, srv);
    fputs("</span></div>\n", f);
    MX_NODE_EACH(e, obj(doc, "events")) {
        int kind = describe(e, line, sizeof line);
        if (kind < 0) continue;
        const mx_evhead *h = mx_node_head(e);
        int from = h ? h->from : MX_NODIR;
        const char *dir = from == MX_CLIENT ? "c2s" : from == MX_SERVER ? "s2c" : "note";
        char t[48];
        t[seconds6(t, h ? h->t_us : 0, 0)] = 0;
        fprintf(f, "<div class=\"ev %s%s\" data-frame=\"%lld\"><span class=\"t\">%s</span><div class=\"arrow\">", dir,
                kind == 1 ? " fail" : "", h ? (long long)h->frame : 0, t);
        mx_view_html(f, line);
        fputs("</div></div>\n", f);
    }
    fputs("</div></section>\n", f);
}

void mx_view_html_end(FILE *f, const mx_view_row *rows, size_t n, size_t dropped)
{
    fputs("<div id=\"index\"><p>Filter by verdict: <select id=\"filter\"><option value=\"\">all</option>", f);
    /* distinct verdict codes, in order of first appearance */
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i; j++) if (!strcmp(rows[i].code, rows[j].code)) { seen = 1; break; }
        if (seen) continue;
        fputs("<option>", f);
        mx_view_html(f, rows[i].code);
        fputs("</option>", f);
    }
    fprintf(f, "</select> <span id=\"count\">%zu</span> session(s)</p>\n<table id=\"sessions\"><tr><th>#</th><th>client</th><th>server</th><th>verdict</th><th>explanation</th></tr>\n", n);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<tr data-verdict=\"");
        mx_view_html(f, rows[i].code);
        fprintf(f, "\"><td><a href=\"#s%llu\">%llu</a></td><td>", (unsigned long long)rows[i].id, (unsigned long long)rows[i].id);
        mx_view_html(f, rows[i].client);
        fputs("</td><td>", f);
        mx_view_html(f, rows[i].server);
        fprintf(f, "</td><td class=\"%s\">", rows[i].ok ? "ok" : "bad");
        mx_view_html(f, rows[i].code);
        fputs("</td><td>", f);
        mx_view_html(f, rows[i].explanation);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (dropped) fprintf(f, "<p>%zu more session(s) are in the report but not in this table.</p>\n", dropped);
    fputs("</div>\n<script>\n"
          "(function(){var sel=document.getElementById('filter');\n"
          "function apply(v){var n=0;document.querySelectorAll('[data-verdict]').forEach(function(el){\n"
          "var show=!v||el.getAttribute('data-verdict')===v;el.classList.toggle('hidden',!show);\n"
          "if(show&&el.tagName==='SECTION')n++;});document.getElementById('count').textContent=n;}\n"
          "sel.addEventListener('change',function(){apply(sel.value);});\n"
          "var m=location.hash.match(/^#verdict=([a-z_]+)$/);if(m){sel.value=m[1];apply(m[1]);}})();\n"
          "</script>\n</body></html>\n", f);
}
