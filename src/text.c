/* text.c - sanitising wire bytes, base64, ASCII helpers. */
#include "mx/text.h"

#include <string.h>

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

int mx_text_clean(const uint8_t *in, size_t len, size_t max_in,
                  char *out, size_t cap, size_t *out_len)
{
    static const char repl[3] = { (char)0xEF, (char)0xBF, (char)0xBD };
    int flags = 0;
    size_t o = 0, i = 0;

    if (len > max_in) { len = max_in; flags |= MX_TEXT_TRUNCATED; }
    while (i < len) {
        /* a run of printable ASCII (the usual case) is copied in one go */
        size_t r = i;
        while (r < len && in[r] > 0 && in[r] < 0x80) r++;
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

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

void mx_copy_text(char *dst, size_t cap, const void *p, size_t n)
{
    if (!cap) return;
    if (n >= cap) n = cap - 1;
    memcpy(dst, p, n);
    dst[n] = 0;
}

void mx_copy_str(char *dst, size_t cap, const char *s) { mx_copy_text(dst, cap, s, strlen(s)); }

int mx_ci_prefix(const uint8_t *p, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    if (len < n) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(p[i]) != lower((uint8_t)prefix[i])) return 0;
    return 1;
}

long mx_ci_find(const uint8_t *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0) return 0;
    for (size_t i = 0; i + n <= len; i++)
        if (mx_ci_prefix(p + i, len - i, needle)) return (long)i;
    return -1;
}
