/* render_json.c - event trees as JSON text.
 *
 * The bytes are those cJSON's printer wrote for the same values (the JSON
 * goldens were made with it, and tests/test_json.c compares the two on
 * random trees), written here without its per-byte copying: strings go out
 * in runs between the bytes that need an escape, integers and microsecond
 * times as digits, keys from their own text.
 */
#include "render_json.h"
#include "mx/evtype.h"
#include "mx/session.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { BUF_MAX = 1u << 30 };

void mx_buf_free(mx_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Room for n more bytes and a NUL. */
static int room(mx_buf *b, size_t n)
{
    if (b->failed) return 0;
    if (b->len + n + 1 <= b->cap) return 1;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + n + 1) nc *= 2;
    if (nc > BUF_MAX) { b->failed = 1; return 0; }
    char *np = realloc(b->p, nc);
    if (!np) { b->failed = 1; return 0; }
    b->p = np;
    b->cap = nc;
    return 1;
}

static void put(mx_buf *b, const char *s, size_t n)
{
    if (!room(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

int mx_buf_put(mx_buf *b, const void *s, size_t n)
{
    if (!room(b, n)) return 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 1;
}

static void putc1(mx_buf *b, char c)
{
    if (!room(b, 1)) return;
    b->p[b->len++] = c;
}

/* 1: a byte that is escaped; 2: the first byte of U+0085 or U+2028/9. */
static const unsigned char special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1, [0xC2] = 2, [0xE2] = 2,
};

/* Whether any of the 8 bytes of w is below 0x20, '"', '\\', 0xC2 or 0xE2
 * (exact as to whether one is; which one is found byte by byte). */
static inline int maybe_special(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
#define ZB(v) (((v) - ones) & ~(v))
    uint64_t t = ((w - 0x20 * ones) & ~w) | ZB(w ^ (0x22 * ones)) | ZB(w ^ (0x5C * ones)) |
                 ZB(w ^ (0xC2 * ones)) | ZB(w ^ (0xE2 * ones));
#undef ZB
    return (t & high) != 0;
}

static void string(mx_buf *b, const char *s, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    /* room for the worst case (every byte a \u escape) once, then no checks */
    if (n > BUF_MAX / 6) { b->failed = 1; return; }
    if (!room(b, n * 6 + 2)) return;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    char *o = b->p + b->len;
    *o++ = '"';
    while (p < end) {
#if defined(__SSE2__)
        /* plain text sixteen bytes at a time: below 0x20, '"', '\\', and
         * the lead bytes of U+0085 and U+2028/9 stop it */
        {
            const __m128i c1f = _mm_set1_epi8(0x1F), q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
                          c2 = _mm_set1_epi8((char)0xC2), e2 = _mm_set1_epi8((char)0xE2);
            while (end - p >= 16) {
                __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
                __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, c1f), c1f), _mm_cmpeq_epi8(v, q)),
                                         _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, bs), _mm_cmpeq_epi8(v, c2)),
                                                      _mm_cmpeq_epi8(v, e2)));
                if (_mm_movemask_epi8(m)) break;
                _mm_storeu_si128((__m128i *)(void *)o, v);
                o += 16;
                p += 16;
            }
        }
#endif
        /* plain text eight bytes at a time */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (maybe_special(w)) break;
            memcpy(o, &w, 8);
            o += 8;
            p += 8;
        }
        while (p < end && !special[*p]) *o++ = (char)*p++;
        if (p == end) break;
        unsigned cp = 0;
        size_t skip = 1;
        switch (*p) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case 0xC2:
            if (p + 1 < end && p[1] == 0x85) { cp = 0x85; skip = 2; }
            else *o++ = (char)*p;               /* a lead byte of something else */
            break;
        case 0xE2:
            if (p + 2 < end && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) { cp = 0x2000u + (p[2] - 0x80u); skip = 3; }
            else *o++ = (char)*p;
            break;
        default: cp = *p; break;              /* another control character */
        }
        if (cp || (*p < 0x20 && *p != '\b' && *p != '\f' && *p != '\n' && *p != '\r' && *p != '\t')) {
            *o++ = '\\'; *o++ = 'u';
            *o++ = hx[(cp >> 12) & 15]; *o++ = hx[(cp >> 8) & 15]; *o++ = hx[(cp >> 4) & 15]; *o++ = hx[cp & 15];
        }
        p += skip;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/* A member's name and its colon, after a comma unless first.  Names are the
 * program's own literals (session.h), short plain ASCII: up to 16 bytes
 * they are copied and checked as two overlapping words; a longer one, or
 * one with a byte that needs an escape, goes the long way. */
static void key_slow(mx_buf *b, const char *k, size_t n, int comma)
{
    if (comma) putc1(b, ',');
    string(b, k, n);
    putc1(b, ':');
}

static void key(mx_buf *b, const char *k, int comma)
{
    size_t n = strlen(k);
    if (n > 16 || !room(b, n + 4)) { key_slow(b, k, n, comma); return; }
    char *o = b->p + b->len;
    o[0] = ',';
    o += comma;
    *o++ = '"';
    if (n >= 8) {
        uint64_t w0, w1;
        memcpy(&w0, k, 8);
        memcpy(&w1, k + n - 8, 8);
        if (maybe_special(w0) || maybe_special(w1)) { key_slow(b, k, n, comma); return; }
        memcpy(o, &w0, 8);
        memcpy(o + n - 8, &w1, 8);
    } else if (n >= 4) {
        uint32_t a, z;
        memcpy(&a, k, 4);
        memcpy(&z, k + n - 4, 4);
        if (maybe_special((uint64_t)a | (uint64_t)z << 32)) { key_slow(b, k, n, comma); return; }
        memcpy(o, &a, 4);
        memcpy(o + n - 4, &z, 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (special[(unsigned char)k[i]]) { key_slow(b, k, n, comma); return; }
            o[i] = k[i];
        }
    }
    o[n] = '"';
    o[n + 1] = ':';
    b->len += (size_t)comma + n + 3;
}

/* A member's name whose length its maker passed along (the program's own
 * names, session.h): written as it is, in words. */
static void key_of(mx_buf *b, const mx_node *c, int comma)
{
    size_t n = c->klen;
    const char *k = c->key;
    if (!n || !k) { key(b, k ? k : "", comma); return; }
#ifndef NDEBUG
    for (size_t i = 0; i < n; i++) assert(!special[(unsigned char)k[i]] && k[i]);
#endif
    if (!room(b, n + 4)) return;
    char *o = b->p + b->len;
    o[0] = ',';
    o += comma;
    *o++ = '"';
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) memcpy(o + i, k + i, 8);
        memcpy(o + n - 8, k + n - 8, 8);
    } else if (n >= 4) {
        memcpy(o, k, 4);
        memcpy(o + n - 4, k + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++) o[i] = k[i];
    }
    o[n] = '"';
    o[n + 1] = ':';
    b->len += (size_t)comma + n + 3;
}

/* Decimal digits two at a time. */
static size_t u64_digits(uint64_t v, char *out)
{
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char tmp[24];
    size_t n = sizeof tmp;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        tmp[--n] = pairs[d + 1];
        tmp[--n] = pairs[d];
    }
    if (v >= 10) {
        unsigned d = (unsigned)v * 2;
        tmp[--n] = pairs[d + 1];
        tmp[--n] = pairs[d];
    } else {
        tmp[--n] = (char)('0' + v);
    }
    memcpy(out, tmp + n, sizeof tmp - n);
    return sizeof tmp - n;
}

static void integer(mx_buf *b, int64_t v)
{
    if (!room(b, 24)) return;
    char *t = b->p + b->len;
    if (v < 0) { t[0] = '-'; b->len += 1 + u64_digits((uint64_t)-(v + 1) + 1, t + 1); }
    else b->len += u64_digits((uint64_t)v, t);
}

/* Microseconds as seconds: "0", "0.00142", "12.5". */
static void seconds(mx_buf *b, uint64_t us)
{
    if (!room(b, 32)) return;
    char *t = b->p + b->len;
    size_t n = u64_digits(us / 1000000u, t);
    uint32_t frac = (uint32_t)(us % 1000000u);
    if (frac) {
        /* six digits, then without the trailing zeros */
        t[n] = '.';
        for (int i = 6; i >= 1; i--) { t[n + (size_t)i] = (char)('0' + frac % 10); frac /= 10; }
        n += 7;
        while (t[n - 1] == '0') n--;
    }
    b->len += n;
}

/* A double as cJSON 1.7.15 writes one: 15 significant digits, or 17 when
 * 15 do not read back as the same value; not a number as null. */
static void number(mx_buf *b, double d)
{
    char t[64];
    int n;
    if (isnan(d) || isinf(d)) { put(b, "null", 4); return; }
    n = snprintf(t, sizeof t, "%1.15g", d);
    double back = strtod(t, NULL);
    double m = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
    if (!(fabs(back - d) <= m * DBL_EPSILON)) n = snprintf(t, sizeof t, "%1.17g", d);
    put(b, t, (size_t)n);
}

static void tabs(mx_buf *b, size_t n)
{
    static const char t[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
    while (n > 16) { put(b, t, 16); n -= 16; }
    put(b, t, n);
}

static void value(mx_buf *b, const mx_node *v, int pretty, size_t depth);

/* A session's event on one line: its head's members written straight from
 * the head (the names are the program's, never the wire's), then its own. */
static void event_line(mx_buf *b, const mx_node *e, const mx_evhead *h)
{
    const char *name = mx_evtype_name((mx_evtype)e->evtype);
    size_t nl = strlen(name);
    /* {"type":"","session":,"ts":"","t":,"frame":,"from":"client"} and digits */
    if (!room(b, nl + 27 + 160)) return;
    char *o = b->p + b->len, *start = o;
    memcpy(o, "{\"type\":\"", 9); o += 9;
    memcpy(o, name, nl); o += nl;
    memcpy(o, "\",\"session\":", 12); o += 12;
    o += mx_sid_text(h->session, 0, o);
    memcpy(o, ",\"ts\":\"", 7); o += 7;
    mx_ev_ts_text(h->ts_us, o); o += 27;
    memcpy(o, "\",\"t\":", 6); o += 6;
    b->len += (size_t)(o - start);
    seconds(b, (uint64_t)h->t_us);
    put(b, ",\"frame\":", 9);
    integer(b, (int64_t)h->frame);
    if (h->from == MX_CLIENT) put(b, ",\"from\":\"client\"", 16);
    else if (h->from == MX_SERVER) put(b, ",\"from\":\"server\"", 16);
    for (const mx_node *c = e->v.kids.first; c; c = c->next) {
        key_of(b, c, 1);
        value(b, c, 0, 1);
    }
    putc1(b, '}');
}

static void value(mx_buf *b, const mx_node *v, int pretty, size_t depth)
{
    switch (v->vt) {
    case MX_VT_NULL: put(b, "null", 4); break;
    case MX_VT_FALSE: put(b, "false", 5); break;
    case MX_VT_TRUE: put(b, "true", 4); break;
    case MX_VT_INT: integer(b, v->v.i); break;
    case MX_VT_SID: { char t[32]; put(b, t, mx_sid_text((uint64_t)v->v.i, 0, t)); break; }
    case MX_VT_USEC: seconds(b, (uint64_t)v->v.i); break;
    case MX_VT_NUM: number(b, v->v.d); break;
    case MX_VT_STR: string(b, v->v.s ? v->v.s : "", v->v.s ? v->len : 0); break;
    case MX_VT_ARR:
        putc1(b, '[');
        for (const mx_node *c = v->v.kids.first; c; c = c->next) {
            value(b, c, pretty, depth + 1);
            if (c->next) { if (pretty) put(b, ", ", 2); else putc1(b, ','); }
        }
        putc1(b, ']');
        break;
    case MX_VT_EVENT:
        if (!pretty && v->head) { event_line(b, v, v->head); break; }
        /* fall through */
    case MX_VT_OBJ: {
        /* an event's head is written as its first members */
        mx_node head[6];
        char ts[28];
        putc1(b, '{');
        if (pretty) putc1(b, '\n');
        for (const mx_node *c = mx_ev_head_nodes(v, head, ts); c; c = c->next) {
            if (pretty) tabs(b, depth + 1);
            key_of(b, c, 0);
            if (pretty) putc1(b, '\t');
            value(b, c, pretty, depth + 1);
            if (c->next) putc1(b, ',');
            if (pretty) putc1(b, '\n');
        }
        if (pretty) tabs(b, depth);
        putc1(b, '}');
        break;
    }
    default: put(b, "null", 4); break;
    }
}

int mx_json_write(mx_buf *b, const mx_node *v, int pretty)
{
    if (!v) { b->failed = 1; return 0; }
    value(b, v, pretty, 0);
    if (!b->failed && b->p) b->p[b->len] = 0;
    return !b->failed;
}
