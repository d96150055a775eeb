/* fuzz_common.h - helpers shared by the fuzz targets (header only).
 *
 *   fz_in        reads numbers and byte runs from the fuzzer's input; reads
 *                past the end yield zeros / short runs, never fail.
 *   fz_dup       copies bytes into a buffer of exactly that size, so that a
 *                one-byte over-read in the code under test hits a redzone.
 *   fz_check_ndjson  aborts unless the text is valid UTF-8 without NUL and
 *                every line is one JSON object with a string "type" (ndjson)
 *                or a "session" member (timeline documents), with no raw
 *                U+0085, U+2028 or U+2029 (fz_json_line_sep).
 *   fz_check_text, fz_check_html  the views: also no raw code point that
 *                acts on a screen (fz_screen_unsafe: C1 controls, bidi
 *                controls, U+2028/U+2029).
 *   fz_run_script    drives one session through tests/harness.c from a
 *                script (see the comment above it); used by fuzz_smtp and
 *                fuzz_tls.
 */
#ifndef MX_FUZZ_COMMON_H
#define MX_FUZZ_COMMON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx/limits.h"

/* The smallest limits the command line accepts, so every cap is reached. */
static inline void fuzz_tiny_limits(mx_limits *l)
{
    l->max_ooo_bytes = 512;
    l->max_ooo_segs = 4;
    l->max_line = 16;
    l->max_hold = 64;
    l->max_field = 16;
    l->max_pending = 2;
    l->max_mime_parts = 1;
    l->max_tls_msg = 64;
}

/* ---- input reader ------------------------------------------------------ */

typedef struct fz_in {
    const uint8_t *p;
    size_t left;
} fz_in;

static inline uint8_t fz_u8(fz_in *in)
{
    if (!in->left) return 0;
    in->left--;
    return *in->p++;
}

static inline uint16_t fz_u16(fz_in *in)
{
    uint16_t hi = fz_u8(in);
    return (uint16_t)((hi << 8) | fz_u8(in));
}

static inline uint32_t fz_u32(fz_in *in)
{
    uint32_t hi = fz_u16(in);
    return (hi << 16) | fz_u16(in);
}

/* Up to n bytes; *got says how many there were. */
static inline const uint8_t *fz_bytes(fz_in *in, size_t n, size_t *got)
{
    const uint8_t *p = in->p;
    if (n > in->left) n = in->left;
    in->p += n;
    in->left -= n;
    *got = n;
    return p;
}

/* ---- exact-size copies ------------------------------------------------- */

/* A heap copy of p[0..n) with nothing after it (NULL when n is 0). */
static inline uint8_t *fz_dup(const void *p, size_t n)
{
    if (!n) return NULL;
    uint8_t *b = malloc(n);
    if (!b) abort();
    memcpy(b, p, n);
    return b;
}

/* ---- output checks ----------------------------------------------------- */

#define FZ_FAIL(...)                                   \
    do {                                               \
        fprintf(stderr, "fuzz invariant: " __VA_ARGS__); \
        fputc('\n', stderr);                           \
        abort();                                       \
    } while (0)

/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or values above
 * U+10FFFF.  Returns the offset of the first bad byte, or n. */
static inline size_t fz_utf8_bad(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return i;
        if (n - i <= k) return i;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += k + 1;
    }
    return n;
}

/* Code points that are valid UTF-8 yet act on a screen when written raw:
 * C1 controls U+0080-U+009F (C2 80..C2 9F; U+009B is a CSI), the bidi
 * embeddings and overrides U+202A-U+202E (E2 80 AA..AE), the bidi isolates
 * U+2066-U+2069 (E2 81 A6..A9), the line and paragraph separators U+2028,
 * U+2029 (E2 80 A8, A9).  On text already checked to be UTF-8, C2 and E2
 * are lead bytes, so the byte patterns are exact.  Returns the offset of
 * the first, or n. */
static inline size_t fz_screen_unsafe(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == 0xC2 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F) return i;
        if (s[i] == 0xE2 && i + 2 < n &&
            ((s[i + 1] == 0x80 && s[i + 2] >= 0xA8 && s[i + 2] <= 0xAE) ||
             (s[i + 1] == 0x81 && s[i + 2] >= 0xA6 && s[i + 2] <= 0xA9)))
            return i;
    }
    return n;
}

/* JSON: U+0085 (C2 85), U+2028 and U+2029 (E2 80 A8, A9) written raw are
 * line ends to JavaScript and some log shippers; the writer escapes them.
 * Returns the offset of the first, or n. */
static inline size_t fz_json_line_sep(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == 0xC2 && s[i + 1] == 0x85) return i;
        if (s[i] == 0xE2 && i + 2 < n && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) return i;
    }
    return n;
}

/* The checks above must find what they look for: run once per process. */
static inline void fz_self_test(void)
{
    static int done;
    if (done) return;
    done = 1;
    static const char *const unsafe[] = {
        "a\xC2\x80", "a\xC2\x85", "a\xC2\x9B[2J", "a\xC2\x9F", "a\xE2\x80\xA8", "a\xE2\x80\xA9",
        "a\xE2\x80\xAA", "a\xE2\x80\xAE", "a\xE2\x81\xA6", "a\xE2\x81\xA9",
    };
    static const char *const safe[] = {
        "a\xC2\xA0\x62", "a\xC2\xBF", "a\xE2\x80\xA7", "a\xE2\x80\xAF", "a\xE2\x81\xA5", "a\xE2\x81\xAA",
        "\\u2028 \\u0085", "a\xE2\x82\xAC",
    };
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++)
        if (fz_screen_unsafe((const uint8_t *)unsafe[i], strlen(unsafe[i])) != 1)
            FZ_FAIL("self-test: screen-acting code point %zu not found", i);
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (fz_screen_unsafe((const uint8_t *)safe[i], strlen(safe[i])) != strlen(safe[i]) ||
            fz_json_line_sep((const uint8_t *)safe[i], strlen(safe[i])) != strlen(safe[i]))
            FZ_FAIL("self-test: harmless text %zu reported", i);
    if (fz_json_line_sep((const uint8_t *)"a\xC2\x85", 3) != 1 || fz_json_line_sep((const uint8_t *)"a\xE2\x80\xA8", 4) != 1 ||
        fz_json_line_sep((const uint8_t *)"a\xE2\x80\xA9", 4) != 1 || fz_json_line_sep((const uint8_t *)"a\xC2\x80", 3) != 3)
        FZ_FAIL("self-test: JSON line separators");
}

/* With MX_FUZZ_DUMP set in the environment, the targets print the JSON they
 * produced on stderr (for looking at what a seed or a crash input does). */
static inline void fz_dump(const char *buf, size_t len)
{
    static int dump = -1;
    if (dump < 0) dump = getenv("MX_FUZZ_DUMP") != NULL;
    if (dump && buf) fwrite(buf, 1, len, stderr);
}

/* Checks writer output: every line a complete JSON object, the whole text
 * valid UTF-8 with no NUL, and (when not empty) ending in a newline.
 * Returns the number of lines. */
static inline size_t fz_check_ndjson(const char *buf, size_t len, int timeline)
{
    fz_dump(buf, len);
    if (!len) return 0;
    if (!buf) FZ_FAIL("output length %zu but no buffer", len);
    if (memchr(buf, 0, len)) FZ_FAIL("NUL byte in output at %zu", (size_t)((const char *)memchr(buf, 0, len) - buf));
    size_t bad = fz_utf8_bad((const uint8_t *)buf, len);
    if (bad != len) FZ_FAIL("invalid UTF-8 in output at byte %zu", bad);
    size_t sep = fz_json_line_sep((const uint8_t *)buf, len);
    if (sep != len) FZ_FAIL("raw U+0085/U+2028/U+2029 in JSON output at byte %zu", sep);
    if (buf[len - 1] != '\n') FZ_FAIL("output does not end with a newline");
    size_t lines = 0, off = 0;
    while (off < len) {
        const char *l = buf + off;
        const char *nl = memchr(l, '\n', len - off);
        size_t n = (size_t)(nl - l);
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(l, n, &end, 0);
        if (!j) FZ_FAIL("line %zu is not JSON: %.*s", lines + 1, (int)(n > 200 ? 200 : n), l);
        if (end != l + n) FZ_FAIL("line %zu has bytes after the JSON value", lines + 1);
        if (!cJSON_IsObject(j)) FZ_FAIL("line %zu is not a JSON object", lines + 1);
        if (timeline == 2) {            /* ECS: the native event under "mxtrace" */
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "mxtrace");
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "@timestamp")) ||
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "type")) ||
                !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "event")))
                FZ_FAIL("ECS line %zu lacks @timestamp, event or mxtrace.type", lines + 1);
        } else if (timeline) {
            if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "session")) ||
                !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "events")))
                FZ_FAIL("timeline document %zu lacks session/events", lines + 1);
        } else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "type"))) {
            FZ_FAIL("event on line %zu has no string \"type\"", lines + 1);
        }
        cJSON_Delete(j);
        lines++;
        off += n + 1;
    }
    return lines;
}

/* Concatenated JSON documents (pretty timeline): returns how many. */
static inline size_t fz_check_json_seq(const char *buf, size_t len)
{
    fz_dump(buf, len);
    if (!len) return 0;
    if (memchr(buf, 0, len)) FZ_FAIL("NUL byte in output");
    size_t bad = fz_utf8_bad((const uint8_t *)buf, len);
    if (bad != len) FZ_FAIL("invalid UTF-8 in output at byte %zu", bad);
    size_t sep = fz_json_line_sep((const uint8_t *)buf, len);
    if (sep != len) FZ_FAIL("raw U+0085/U+2028/U+2029 in JSON output at byte %zu", sep);
    size_t n = 0, off = 0;
    for (;;) {
        while (off < len && (buf[off] == '\n' || buf[off] == ' ' || buf[off] == '\t' || buf[off] == '\r')) off++;
        if (off == len) break;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(buf + off, len - off, &end, 0);
        if (!j || !end) FZ_FAIL("document %zu is not JSON", n + 1);
        if (!cJSON_IsObject(j) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "events")))
            FZ_FAIL("document %zu is not a session document", n + 1);
        cJSON_Delete(j);
        off = (size_t)(end - buf);
        n++;
    }
    return n;
}

/* Text and summary views: valid UTF-8, no NUL, no control character but
 * the newline -- and, with colour, ESC only as "ESC [ digits/; m" -- and no
 * C1, bidi or line-separator code point.  Wire bytes must never reach a
 * terminal as control characters.  Returns the number of lines. */
static inline size_t fz_check_text(const char *buf, size_t len, int color)
{
    fz_dump(buf, len);
    if (!len) return 0;
    if (memchr(buf, 0, len)) FZ_FAIL("NUL byte in text output");
    size_t bad = fz_utf8_bad((const uint8_t *)buf, len);
    if (bad != len) FZ_FAIL("invalid UTF-8 in text output at byte %zu", bad);
    size_t us = fz_screen_unsafe((const uint8_t *)buf, len);
    if (us != len) FZ_FAIL("raw C1/bidi/line-separator code point in text output at byte %zu", us);
    if (buf[len - 1] != '\n') FZ_FAIL("text output does not end with a newline");
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') { lines++; continue; }
        if (c == 0x1B && color && i + 1 < len && buf[i + 1] == '[') {
            size_t j = i + 2;
            while (j < len && ((buf[j] >= '0' && buf[j] <= '9') || buf[j] == ';')) j++;
            if (j < len && buf[j] == 'm') { i = j; continue; }
        }
        if (c < 0x20 || c == 0x7F)
            FZ_FAIL("control character 0x%02x in text output at byte %zu", c, i);
    }
    return lines;
}

/* HTML report: valid UTF-8, no control character but the newline (nor a
 * C1, bidi or line-separator code point), every
 * '&' starts a character reference, every '<' starts a tag the report
 * itself writes, with well-formed double-quoted attributes.  A wire byte
 * that escaped the quoting shows up as a stray '&', '<', '>' or '"'.
 * (When the report gains a tag, add it to `tags`.) */
static inline void fz_check_html(const char *buf, size_t len)
{
    static const char *const tags[] = {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "section", "div", "span",
        "b", "i", "br", "code", "select", "option", "table", "tr", "th", "td", "a", "p", "script",
    };
    fz_dump(buf, len);
    if (memchr(buf, 0, len)) FZ_FAIL("NUL byte in HTML output");
    size_t bad = fz_utf8_bad((const uint8_t *)buf, len);
    if (bad != len) FZ_FAIL("invalid UTF-8 in HTML output at byte %zu", bad);
    size_t us = fz_screen_unsafe((const uint8_t *)buf, len);
    if (us != len) FZ_FAIL("raw C1/bidi/line-separator code point in HTML output at byte %zu", us);
    static const char head[] = "<!DOCTYPE html>\n", tail[] = "</html>\n";
    if (len < sizeof head - 1 + sizeof tail - 1 || memcmp(buf, head, sizeof head - 1) != 0 ||
        memcmp(buf + len - (sizeof tail - 1), tail, sizeof tail - 1) != 0)
        FZ_FAIL("HTML output does not start with a doctype and end with </html>");
    size_t i = sizeof head - 1;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        if ((c < 0x20 && c != '\n') || c == 0x7F) FZ_FAIL("control character 0x%02x in HTML at byte %zu", c, i);
        if (c == '>' || c == '"') FZ_FAIL("stray '%c' in HTML text at byte %zu", c, i);
        if (c == '&') {
            size_t j = i + 1;
            if (j < len && buf[j] == '#') {
                j++;
                if (j < len && buf[j] == 'x') j++;
                while (j < len && ((buf[j] >= '0' && buf[j] <= '9') || (buf[j] >= 'a' && buf[j] <= 'f'))) j++;
            } else {
                while (j < len && buf[j] >= 'a' && buf[j] <= 'z') j++;
            }
            if (j == i + 1 || j >= len || buf[j] != ';') FZ_FAIL("'&' that is not a character reference at byte %zu", i);
            i = j + 1;
            continue;
        }
        if (c != '<') { i++; continue; }
        /* a tag: < [/] name { space attr [="value"] } > */
        size_t j = i + 1;
        if (j < len && buf[j] == '/') j++;
        size_t n0 = j;
        while (j < len && ((buf[j] >= 'a' && buf[j] <= 'z') || (buf[j] >= '0' && buf[j] <= '9'))) j++;
        int known = 0;
        for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++)
            if (strlen(tags[t]) == j - n0 && memcmp(tags[t], buf + n0, j - n0) == 0) known = 1;
        if (!known) FZ_FAIL("unexpected tag <%.*s> at byte %zu", (int)(j - n0 < 20 ? j - n0 : 20), buf + n0, i);
        while (j < len && buf[j] == ' ') {
            j++;
            size_t a0 = j;
            while (j < len && ((buf[j] >= 'a' && buf[j] <= 'z') || buf[j] == '-')) j++;
            if (j == a0) FZ_FAIL("bad attribute in tag at byte %zu", i);
            if (j < len && buf[j] == '=') {
                if (++j >= len || buf[j] != '"') FZ_FAIL("unquoted attribute value at byte %zu", i);
                j++;
                while (j < len && buf[j] != '"' && buf[j] != '<' && buf[j] != '>' && buf[j] != '\n') j++;
                if (j >= len || buf[j] != '"') FZ_FAIL("attribute value not closed at byte %zu", i);
                j++;
            }
        }
        if (j >= len || buf[j] != '>') FZ_FAIL("malformed tag at byte %zu", i);
        i = j + 1;
        /* raw text elements: skip to their end tag */
        int is_style = j - n0 >= 5 && memcmp(buf + n0, "style", 5) == 0 && buf[n0 - 1] != '/';
        int is_script = j - n0 >= 6 && memcmp(buf + n0, "script", 6) == 0 && buf[n0 - 1] != '/';
        if (is_style || is_script) {
            const char *endtag = is_style ? "</style>" : "</script>";
            size_t el = strlen(endtag);
            while (i + el <= len && memcmp(buf + i, endtag, el) != 0) i++;
            if (i + el > len) FZ_FAIL("%s missing", endtag);
        }
    }
}

/* ---- harness scripts (fuzz_smtp, fuzz_tls) ----------------------------- */

#ifdef MX_FUZZ_WITH_HARNESS
#include "harness.h"


/* Script:
 *
 *   byte 0: options   bit0 show_user      bit1 implicit TLS
 *                     bit2 small line/hold/field/TLS message caps (the
 *                          command-line minimums)
 *                     bit3 max_events 12
 *                     bits4-6 output: 0 ndjson, 1 text, 2 HTML, 3 summary,
 *                          4 timeline, 5 pretty timeline, 6-7 ndjson
 *                     bit7 colours (text and summary)
 *   then operations, until the input ends:
 *     op byte: bit0 = direction (0 client, 1 server), bits1-3 = kind:
 *       0-3  chunk:  [len u8] [len bytes]
 *       4    long chunk: [len u16] [len bytes]
 *       5    run: [len u16] [byte]: len copies of byte; with op bit4 the run
 *            ends in CRLF (a long line)
 *       6    gap: [len u16] (op bit4: [len u32]) sequence numbers never seen
 *       7    chunk made of one line: [len u8] [len bytes] + CRLF
 *
 * Every chunk is copied into an exact-size heap buffer before it is fed.
 */
static inline void fz_run_script(const uint8_t *data, size_t size, int force_tls)
{
    fz_in in = { data, size };
    uint8_t opt = fz_u8(&in);
    static const mx_format formats[8] = { MX_FMT_NDJSON, MX_FMT_TEXT, MX_FMT_HTML, MX_FMT_SUMMARY,
                                          MX_FMT_TIMELINE, MX_FMT_TIMELINE, MX_FMT_NDJSON, MX_FMT_NDJSON };
    int fsel = (opt >> 4) & 7, color = (opt & 0x80) != 0;
    mx_format fmt = formats[fsel];
    mx_harness h;
    fz_self_test();
    mxh_init(&h, force_tls || (opt & 2), opt & 1);
    if (fmt != MX_FMT_NDJSON) {
        /* The views, as mxtrace writes them: the harness's sink has not
         * written anything yet (the session's output state is the
         * session's own), so another format's sink can take its place. */
        mx_sink_free(h.sink);
        h.opt.pretty = fsel == 5;
        h.sink = mx_sink_new(fmt, h.out, &h.opt, color);
        if (!h.sink) abort();
        h.sess.sink = h.sink;
    }
    /* set before any byte is fed (the parsers read the limits through the
     * session's options) */
    if (opt & 4) fuzz_tiny_limits(&h.opt.lim);
    if (opt & 8) h.opt.lim.max_events = 12;

    size_t total = 0;
    while (in.left && total < (1u << 20)) {
        uint8_t op = fz_u8(&in);
        int dir = op & 1;
        int kind = (op >> 1) & 7;
        size_t n = 0;
        const uint8_t *src;
        uint8_t *buf = NULL;
        switch (kind) {
        case 0: case 1: case 2: case 3:
            src = fz_bytes(&in, fz_u8(&in), &n);
            buf = fz_dup(src, n);
            break;
        case 4:
            src = fz_bytes(&in, fz_u16(&in), &n);
            buf = fz_dup(src, n);
            break;
        case 5: {
            n = fz_u16(&in);
            uint8_t b = fz_u8(&in);
            if (!n) break;
            buf = malloc(n);
            if (!buf) abort();
            memset(buf, b, n);
            if ((op & 0x10) && n >= 2) { buf[n - 2] = '\r'; buf[n - 1] = '\n'; }
            break;
        }
        case 6: {
            uint32_t g = (op & 0x10) ? fz_u32(&in) : fz_u16(&in);
            mxh_gap(&h, dir, g);
            continue;
        }
        case 7: {
            size_t k;
            src = fz_bytes(&in, fz_u8(&in), &k);
            n = k + 2;
            buf = malloc(n);
            if (!buf) abort();
            if (k) memcpy(buf, src, k);
            buf[k] = '\r'; buf[k + 1] = '\n';
            break;
        }
        }
        if (n) mxh_feed(&h, dir, buf, n);
        free(buf);
        total += n;
    }
    const char *out = mxh_finish(&h);
    if (fmt != MX_FMT_NDJSON) {
        mx_sink_finish(h.sink);
        if (fflush(h.out) != 0) abort();
        out = h.buf;
        size_t n;
        switch (fmt) {
        case MX_FMT_TEXT:
            fz_check_text(out, h.len, color);
            break;
        case MX_FMT_SUMMARY:
            n = fz_check_text(out, h.len, color);
            if (n != 2) FZ_FAIL("%zu summary lines for one session (plus a header)", n);
            break;
        case MX_FMT_HTML:
            fz_check_html(out, h.len);
            break;
        default:
            n = h.opt.pretty ? fz_check_json_seq(out, h.len) : fz_check_ndjson(out, h.len, 1);
            if (n != 1) FZ_FAIL("%zu timeline documents for one session", n);
            break;
        }
        if (mx_sink_failed(h.sink)) FZ_FAIL("the writer reports a failed write to a memory stream");
        mxh_free(&h);
        return;
    }
    size_t lines = fz_check_ndjson(out, h.len, 0);
    if (lines == 0) FZ_FAIL("no output at all (session.end is always written)");
    /* The last line is the session.end event (it is exempt from max_events). */
    size_t ls = h.len - 1;                 /* the final newline */
    while (ls > 0 && out[ls - 1] != '\n') ls--;
    const char *last = out + ls;
    if (strncmp(last, "{\"type\":\"session.end\",", 22) != 0)
        FZ_FAIL("last line is not session.end: %.80s", last);
    mxh_free(&h);
}
#endif

#endif
