/* view.c - human views of a session document: text, summary, HTML.
 *
 * Part of the output layer (with sink_json.c): it reads the same per-session
 * document the timeline writes.  Wire text in these documents is already
 * valid UTF-8 without NUL (mx_text_clean); here it gets the quoting of its
 * format: control characters are shown as \xNN, and C1 controls, bidi
 * overrides and isolates and the line separators as \uNNNN, on a terminal and
 * in HTML alike; & < > " ' become entities in HTML, so captured bytes can
 * neither move a terminal's cursor, reorder what is shown, nor add markup.
 */
#include "mx/view.h"

#include <cjson/cJSON.h>
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

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Numbers are written as raw JSON text by the sink (see sink_json.c). */
double mx_view_num(const struct cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsRaw(v) && v->valuestring) return strtod(v->valuestring, NULL);
    return dflt;
}

#define num mx_view_num

static int boolean(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const cJSON *obj(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* One line describing an event, into buf; returns its kind for styling:
 * 0 plain, 1 failure, 2 note. */
static int describe_raw(const cJSON *e, char *buf, size_t cap);

static int describe(const cJSON *e, char *buf, size_t cap)
{
    int kind = describe_raw(e, buf, cap);
    utf8_trim(buf);
    return kind;
}

static int describe_raw(const cJSON *e, char *buf, size_t cap)
{
    const char *type = str(e, "type");
    buf[0] = 0;
    if (!type) return 0;
    if (!strcmp(type, "tcp.syn")) { snprintf(buf, cap, "SYN%s", boolean(e, "retransmission") ? " (again)" : ""); return 0; }
    if (!strcmp(type, "tcp.synack")) { snprintf(buf, cap, "SYN-ACK"); return 0; }
    if (!strcmp(type, "tcp.fin")) { snprintf(buf, cap, "FIN"); return 0; }
    if (!strcmp(type, "tcp.rst")) {
        snprintf(buf, cap, "RST%s%s", boolean(e, "after_close") ? " (after the connection ended)" : "",
                 boolean(e, "in_window") ? "" : " (outside the window: ignored)");
        return 1;
    }
    if (!strcmp(type, "tcp.refused")) { snprintf(buf, cap, "RST: connection refused"); return 1; }
    if (!strcmp(type, "tcp.gap")) {
        snprintf(buf, cap, "[%.0f bytes missing from the capture: %s]", num(e, "bytes", 0), str(e, "reason") ? str(e, "reason") : "");
        return 2;
    }
    if (!strcmp(type, "smtp.command")) {
        const char *v = str(e, "verb"), *a = str(e, "arg");
        if (boolean(e, "withheld") && !a) {
            const char *ch = str(e, "chars");
            snprintf(buf, cap, "[%s line of %.0f bytes withheld%s%s%s]", boolean(e, "known") || !str(e, "chars") ? v : "unknown",
                     num(e, "length", 0), ch ? ", " : "", ch ? ch : "",
                     boolean(e, "possible_credential") ? ", possible credential" : "");
            return 0;
        }
        snprintf(buf, cap, "%s%s%s%s", v ? v : "", a ? " " : "", a ? a : "", boolean(e, "truncated") ? " [truncated]" : "");
        return 0;
    }
    if (!strcmp(type, "smtp.auth_response")) {
        const char *k = str(e, "kind"), *u = str(e, "user");
        snprintf(buf, cap, "<%s%s%s>", k ? k : "response", u ? ": " : ", redacted", u ? u : "");
        return 0;
    }
    if (!strcmp(type, "smtp.reply")) {
        const cJSON *lines = obj(e, "lines");
        int n = cJSON_GetArraySize(lines);
        const cJSON *l0 = cJSON_GetArrayItem(lines, 0);
        const char *d = str(e, "decoded");
        size_t o = (size_t)snprintf(buf, cap, "%.0f%s%s", num(e, "code", 0), n > 1 ? "-" : " ",
                                    cJSON_IsString(l0) ? l0->valuestring : "");
        if (d && o < cap) o += (size_t)snprintf(buf + o, cap - o, " (\"%s\")", d);
        if (n > 1 && o < cap) {
            o += (size_t)snprintf(buf + o, cap - o, " [+%d lines:", n - 1);
            for (int i = 1; i < n && o < cap; i++) {
                const cJSON *li = cJSON_GetArrayItem(lines, i);
                o += (size_t)snprintf(buf + o, cap - o, " %s", cJSON_IsString(li) ? li->valuestring : "");
            }
            if (o < cap) snprintf(buf + o, cap - o, "]");
        }
        return num(e, "code", 0) >= 400 ? 1 : 0;
    }
    if (!strcmp(type, "smtp.auth")) {
        snprintf(buf, cap, "AUTH %s %s (%.0f)%s", str(e, "mechanism") ? str(e, "mechanism") : "",
                 str(e, "result") ? str(e, "result") : "", num(e, "code", 0),
                 boolean(e, "password_exposed") ? " - credentials in clear text" : "");
        return str(e, "result") && !strcmp(str(e, "result"), "success") ? 2 : 1;
    }
    if (!strcmp(type, "smtp.starttls")) {
        const char *r = str(e, "result");
        if (r && !strcmp(r, "accepted")) { snprintf(buf, cap, "STARTTLS accepted: TLS from the next byte"); return 2; }
        snprintf(buf, cap, "STARTTLS refused (%.0f)", num(e, "code", 0));
        return 1;
    }
    if (!strcmp(type, "smtp.data")) {
        const cJSON *h = obj(e, "headers");
        const char *subj = str(h, "subject");
        snprintf(buf, cap, "[message: %.0f bytes%s%s%s, end %s, %.0f attachment(s)]", num(e, "bytes", 0),
                 subj ? ", Subject: \"" : "", subj ? subj : "", subj ? "\"" : "", str(e, "end") ? str(e, "end") : "",
                 num(e, "attachments", 0));
        return 0;
    }
    if (!strcmp(type, "tls.client_hello")) {
        snprintf(buf, cap, "TLS ClientHello%s%s, %.0f cipher suites", str(e, "sni") ? " SNI " : "",
                 str(e, "sni") ? str(e, "sni") : "", num(e, "cipher_suites", 0));
        return 0;
    }
    if (!strcmp(type, "tls.server_hello") || !strcmp(type, "tls.hello_retry_request")) {
        snprintf(buf, cap, "TLS %s %s %s", !strcmp(type, "tls.server_hello") ? "ServerHello" : "HelloRetryRequest",
                 str(e, "version") ? str(e, "version") : "", str(e, "cipher") ? str(e, "cipher") : "");
        return 0;
    }
    if (!strcmp(type, "tls.certificate")) {
        const cJSON *leaf = cJSON_GetArrayItem(obj(e, "chain"), 0), *ck = obj(e, "checks");
        if (!leaf) {
            int client = str(e, "from") && !strcmp(str(e, "from"), "client");
            snprintf(buf, cap, "TLS Certificate: %s", client ? "none (the client has no certificate to send)" : "empty chain");
            return 0;
        }
        size_t o = (size_t)snprintf(buf, cap, "TLS Certificate %s, issued by %s", str(leaf, "subject") ? str(leaf, "subject") : "?",
                                    str(leaf, "issuer") ? str(leaf, "issuer") : "?");
        int bad = 0;
        if (boolean(ck, "expired") && o < cap) { o += (size_t)snprintf(buf + o, cap - o, "; EXPIRED (%s)", str(leaf, "not_after") ? str(leaf, "not_after") : ""); bad = 1; }
        if (boolean(ck, "self_signed") && o < cap) { o += (size_t)snprintf(buf + o, cap - o, "; self-signed"); bad = 1; }
        const cJSON *nm;
        cJSON_ArrayForEach(nm, obj(ck, "names")) {
            if (!boolean(nm, "covered") && o < cap) { o += (size_t)snprintf(buf + o, cap - o, "; does not cover %s", str(nm, "name")); bad = 1; }
        }
        return bad;
    }
    if (!strcmp(type, "tls.server_key_exchange")) { snprintf(buf, cap, "TLS ServerKeyExchange%s%s", str(e, "group") ? " " : "", str(e, "group") ? str(e, "group") : ""); return 0; }
    if (!strcmp(type, "tls.handshake")) { snprintf(buf, cap, "TLS %s", str(e, "message") ? str(e, "message") : ""); return 0; }
    if (!strcmp(type, "tls.change_cipher_spec")) { snprintf(buf, cap, "TLS ChangeCipherSpec"); return 0; }
    if (!strcmp(type, "tls.encrypted")) { snprintf(buf, cap, "TLS encrypted records from here"); return 0; }
    if (!strcmp(type, "tls.handshake_complete")) {
        snprintf(buf, cap, "TLS handshake complete: %s %s", str(e, "version") ? str(e, "version") : "", str(e, "cipher") ? str(e, "cipher") : "");
        return 2;
    }
    if (!strcmp(type, "tls.alert")) {
        if (boolean(e, "encrypted")) {
            const char *p = str(e, "probably");
            snprintf(buf, cap, "TLS Alert (encrypted)%s%s%s", p ? ", probably " : "", p ? p : "",
                     boolean(e, "probable_rejection") ? ": probable rejection" : "");
            return p ? 0 : 1;
        }
        snprintf(buf, cap, "TLS Alert %s %s (%.0f) after %s %s", str(e, "level") ? str(e, "level") : "",
                 str(e, "description") ? str(e, "description") : "", num(e, "code", 0),
                 str(e, "after_from") ? str(e, "after_from") : "", str(e, "after") ? str(e, "after") : "");
        return num(e, "code", 0) == 0 ? 0 : 1;
    }
    if (!strcmp(type, "anomaly")) { snprintf(buf, cap, "! %s: %s", str(e, "kind") ? str(e, "kind") : "", str(e, "detail") ? str(e, "detail") : ""); return 2; }
    if (!strcmp(type, "limit")) { snprintf(buf, cap, "! limit %s (%.0f) reached", str(e, "limit") ? str(e, "limit") : "", num(e, "value", 0)); return 2; }
    return -1;   /* not shown as a step (session.start, session.end) */
}

/* ---- text ---------------------------------------------------------------- */

#define C_RESET "\033[0m"
#define C_CLI "\033[36m"
#define C_SRV "\033[33m"
#define C_BAD "\033[1;31m"
#define C_OK "\033[1;32m"
#define C_DIM "\033[2m"

static const cJSON *last_event(const cJSON *doc)
{
    const cJSON *evs = obj(doc, "events");
    /* in cJSON's lists the first element's prev is the last */
    return evs && evs->child ? evs->child->prev : NULL;
}

static void endpoint(char *buf, size_t cap, const cJSON *ep)
{
    const char *ip = str(ep, "ip");
    int v6 = ip && strchr(ip, ':');
    snprintf(buf, cap, "%s%s%s:%.0f", v6 ? "[" : "", ip ? ip : "?", v6 ? "]" : "", num(ep, "port", 0));
}

void mx_view_text_session(FILE *f, const cJSON *doc, int color)
{
    char cli[80], srv[80], line[4096];
    const cJSON *end = last_event(doc), *v = obj(end, "verdict");
    const cJSON *start = cJSON_GetArrayItem(obj(doc, "events"), 0);
    const char *dns = str(obj(start, "dns"), "name");
    endpoint(cli, sizeof cli, obj(doc, "client"));
    endpoint(srv, sizeof srv, obj(doc, "server"));
    fprintf(f, "%ssession %.0f%s  %s -> %s", color ? "\033[1m" : "", num(doc, "session", 0), color ? C_RESET : "", cli, srv);
    if (dns) { fputs(" (", f); mx_view_text(f, dns); fputc(')', f); }
    fprintf(f, "  %s  %.6f s\n", str(doc, "start") ? str(doc, "start") : "", num(doc, "duration", 0));
    const cJSON *e;
    cJSON_ArrayForEach(e, obj(doc, "events")) {
        int kind = describe(e, line, sizeof line);
        if (kind < 0) continue;
        const char *from = str(e, "from");
        const char *who = !from ? " " : !strcmp(from, "client") ? "C" : "S";
        const char *col = !color ? "" : kind == 1 ? C_BAD : kind == 2 ? C_DIM : !from ? "" : *who == 'C' ? C_CLI : C_SRV;
        fprintf(f, "  %10.6f %5.0f %s: %s", num(e, "t", 0), num(e, "frame", 0), who, col);
        mx_view_text(f, line);
        fprintf(f, "%s\n", color && *col ? C_RESET : "");
    }
    if (v) {
        int ok = boolean(v, "ok");
        fprintf(f, "  %s=> %s%s", color ? (ok ? C_OK : C_BAD) : "", str(v, "code") ? str(v, "code") : "?", color ? C_RESET : "");
        if (str(v, "cause")) fprintf(f, " (%s)", str(v, "cause"));
        fputs(": ", f);
        mx_view_text(f, str(v, "explanation"));
        fputc('\n', f);
        if (str(v, "remedy")) { fputs("     remedy: ", f); mx_view_text(f, str(v, "remedy")); fputc('\n', f); }
        fputs("     log: ", f);
        mx_view_text(f, str(v, "log_line"));
        fputs("\n\n", f);
    }
}

/* ---- summary --------------------------------------------------------------- */

void mx_view_summary_header(FILE *f)
{
    fprintf(f, "%-7s %-27s %-23s %-23s %-12s %-8s %-14s %-5s %s\n", "SESSION", "START", "CLIENT", "SERVER",
            "MODE", "TLS", "AUTH", "MSGS", "VERDICT");
}

void mx_view_summary_session(FILE *f, const cJSON *doc, int color)
{
    char cli[80], srv[80], auth[48] = "-", msgs[16], tlsv[24] = "-";
    const cJSON *end = last_event(doc), *v = obj(end, "verdict"), *smtp = obj(end, "smtp"), *tls = obj(end, "tls");
    const cJSON *start = cJSON_GetArrayItem(obj(doc, "events"), 0);
    endpoint(cli, sizeof cli, obj(doc, "client"));
    endpoint(srv, sizeof srv, obj(doc, "server"));
    const char *mode = str(start, "mode") ? str(start, "mode") : "-";
    if (obj(smtp, "starttls")) mode = "starttls";
    if (tls && str(tls, "version")) snprintf(tlsv, sizeof tlsv, "%s", str(tls, "version"));
    else if (v && str(v, "tls")) snprintf(tlsv, sizeof tlsv, "%s", !strcmp(str(v, "tls"), "starttls_not_offered") ? "none" :
                                          !strcmp(str(v, "tls"), "starttls_not_used") ? "unused" : "failed");
    const cJSON *a = obj(smtp, "auth");
    if (a) snprintf(auth, sizeof auth, "%s:%s", str(a, "mechanism") ? str(a, "mechanism") : "?", str(a, "result") ? str(a, "result") : "?");
    snprintf(msgs, sizeof msgs, "%.0f/%.0f", num(smtp, "messages_accepted", 0),
             num(smtp, "messages_accepted", 0) + num(smtp, "messages_rejected", 0));
    int ok = v && boolean(v, "ok");
    fprintf(f, "%-7.0f %-27s %-23s %-23s %-12s %-8s ", num(doc, "session", 0), str(doc, "start") ? str(doc, "start") : "", cli, srv, mode, tlsv);
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

void mx_view_html_session(FILE *f, const cJSON *doc)
{
    char cli[80], srv[80], line[4096];
    const cJSON *end = last_event(doc), *v = obj(end, "verdict");
    endpoint(cli, sizeof cli, obj(doc, "client"));
    endpoint(srv, sizeof srv, obj(doc, "server"));
    const char *code = v && str(v, "code") ? str(v, "code") : "none";
    int ok = v && boolean(v, "ok");
    fprintf(f, "<section class=\"session\" id=\"s%.0f\" data-verdict=\"", num(doc, "session", 0));
    mx_view_html(f, code);
    fprintf(f, "\">\n<h2>Session %.0f: ", num(doc, "session", 0));
    mx_view_html(f, cli);
    fputs(" &rarr; ", f);
    mx_view_html(f, srv);
    fputs("</h2>\n<div class=\"verdict ", f);
    fputs(ok ? "ok" : "bad", f);
    fputs("\"><b class=\"code\">", f);
    mx_view_html(f, code);
    fputs("</b>: <span class=\"explanation\">", f);
    mx_view_html(f, v ? str(v, "explanation") : "");
    fputs("</span>", f);
    if (v && str(v, "remedy")) { fputs("<br><i>Remedy:</i> <span class=\"remedy\">", f); mx_view_html(f, str(v, "remedy")); fputs("</span>", f); }
    if (v && str(v, "log_line")) { fputs("<br><i>Log:</i> <code>", f); mx_view_html(f, str(v, "log_line")); fputs("</code>", f); }
    fputs("</div>\n<div class=\"ladder\"><div class=\"lanes\"><span>time (s)</span><span>client ", f);
    mx_view_html(f, cli);
    fputs("</span><span style=\"text-align:right\">server ", f);
    mx_view_html(f, srv);
    fputs("</span></div>\n", f);
    const cJSON *e;
    cJSON_ArrayForEach(e, obj(doc, "events")) {
        int kind = describe(e, line, sizeof line);
        if (kind < 0) continue;
        const char *from = str(e, "from");
        const char *dir = !from ? "note" : !strcmp(from, "client") ? "c2s" : "s2c";
        fprintf(f, "<div class=\"ev %s%s\" data-frame=\"%.0f\"><span class=\"t\">%.6f</span><div class=\"arrow\">", dir,
                kind == 1 ? " fail" : "", num(e, "frame", 0), num(e, "t", 0));
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
