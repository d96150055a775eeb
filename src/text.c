/* text.c - sanitising wire bytes, base64, ASCII helpers. */
#include "mx/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Length of the valid UTF-8 sequence at p (RFC 3629 §4), 0 if invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80) return c ? 1 : 0;
    if (c >= 0xC2 && c <= 0xDF) {
        return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;   /* overlong */
        if (c == 0xED && p[1] > 0x9F) return 0;   /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;   /* overlong */
        if (c == 0xF4 && p[1] > 0x8F) return 0;   /* > U+10FFFF */
        return 4;
    }
    return 0;
}

/* The end of the run of ASCII without NUL that starts at in[i]. */
static size_t ascii_run(const uint8_t *in, size_t i, size_t len)
{
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; len - i >= 16; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, zero)));
        if (m) return i + (size_t)__builtin_ctz(m);
    }
#endif
    while (i < len && in[i] > 0 && in[i] < 0x80) i++;
    return i;
}

int mx_text_clean(const uint8_t *in, size_t len, size_t max_in,
                  char *out, size_t cap, size_t *out_len)
{
    static const char repl[3] = { (char)0xEF, (char)0xBF, (char)0xBD };
    int flags = 0;
    size_t o = 0, i = 0;

    if (len > max_in) { len = max_in; flags |= MX_TEXT_TRUNCATED; }
    while (i < len) {
        /* a run of printable ASCII (the usual case) is copied in one go */
        size_t r = ascii_run(in, i, len);
        if (r > i) {
            size_t w = r - i;
            if (o + w + 1 > cap) w = cap - o - 1, flags |= MX_TEXT_TRUNCATED;
            memcpy(out + o, in + i, w);
            o += w;
            i += w;
            if (i < r) break;
            continue;
        }
        size_t k = utf8_seq(in + i, len - i);
        const char *src = (const char *)in + i;
        size_t w = k;
        if (k == 0) { src = repl; w = 3; k = 1; flags |= MX_TEXT_REPLACED; }
        if (o + w + 1 > cap) { flags |= MX_TEXT_TRUNCATED; break; }
        memcpy(out + o, src, w);
        o += w;
        i += k;
    }
    out[o] = '\0';
    if (out_len) *out_len = o;
    return flags;
}

static int b64val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

long mx_base64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') { pad++; continue; }
        if (pad) return -1;               /* data after padding */
        int v = b64val(c);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (pad > 2) return -1;
    return (long)o;
}

void mx_copy_text(char *dst, size_t cap, const void *p, size_t n)
{
    if (!cap) return;
    if (n >= cap) n = cap - 1;
    memcpy(dst, p, n);
    dst[n] = 0;
}

void mx_copy_str(char *dst, size_t cap, const char *s) { mx_copy_text(dst, cap, s, strlen(s)); }

long mx_ci_find(const uint8_t *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0) return 0;
    for (size_t i = 0; i + n <= len; i++)
        if (mx_ci_prefix(p + i, len - i, needle)) return (long)i;
    return -1;
}

size_t mx_fmt(char *out, size_t cap, const char *fmt, ...)
{
    if (!cap) return 0;
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    size_t o = 0, room = cap - 1;
    const char *f = fmt;
    char num[24];
    while (*f) {
        const char *pc = strchr(f, '%');
        size_t lit = pc ? (size_t)(pc - f) : strlen(f);
        size_t w = lit < room - o ? lit : room - o;
        memcpy(out + o, f, w);
        o += w;
        if (!pc) break;
        f = pc + 1;
        const char *s = num;
        size_t n = 0;
        unsigned long long u = 0;
        int neg = 0, digits = 1;
        if (f[0] == 's') { s = va_arg(ap, const char *); if (!s) s = "(null)"; n = strlen(s); digits = 0; f++; }
        else if (f[0] == 'd') { int v = va_arg(ap, int); neg = v < 0; u = neg ? 0ull - (unsigned long long)(long long)v : (unsigned long long)v; f++; }
        else if (f[0] == 'u') { u = va_arg(ap, unsigned); f++; }
        else if (f[0] == 'l' && f[1] == 'l' && f[2] == 'u') { u = va_arg(ap, unsigned long long); f += 3; }
        else if (f[0] == '%') { s = "%"; n = 1; digits = 0; f++; }
        else { o = (size_t)vsnprintf(out, cap, fmt, again); va_end(again); va_end(ap); return o < cap ? o : cap - 1; }
        if (digits) {
            char t[24];
            size_t k = 0;
            do t[k++] = (char)('0' + u % 10); while ((u /= 10));
            if (neg) t[k++] = '-';
            while (k) num[n++] = t[--k];
        }
        w = n < room - o ? n : room - o;
        memcpy(out + o, s, w);
        o += w;
    }
    out[o] = 0;
    va_end(again);
    va_end(ap);
    return o;
}

uint64_t mx_quick_hash(const void *v, size_t n)
{
    const unsigned char *p = v;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h ^ (h >> 31);
}
