/* text.h - the one path by which wire bytes become text.
 *
 * Bytes from the network are not strings: they may hold NUL, control
 * characters or invalid UTF-8.  mx_text_clean() turns (ptr, len) into valid,
 * NUL-free, capped UTF-8; every output format (JSON, text, HTML) takes wire
 * text only from it, then applies its own quoting.
 */
#ifndef MX_TEXT_H
#define MX_TEXT_H

#include <stddef.h>
#include <stdint.h>

enum {
    MX_TEXT_TRUNCATED = 1, /* input longer than the cap             */
    MX_TEXT_REPLACED  = 2, /* invalid UTF-8 or NUL replaced (U+FFFD) */
};

/* Writes at most cap-1 bytes of valid UTF-8 plus a NUL into out (cap >= 4),
 * taking at most max_in input bytes.  Invalid sequences and NUL bytes become
 * U+FFFD.  Returns MX_TEXT_* flags; *out_len gets the length written. */
int mx_text_clean(const uint8_t *in, size_t len, size_t max_in,
                  char *out, size_t cap, size_t *out_len);

/* Decodes base64 (RFC 4648, padding optional, whitespace ignored) into out.
 * Returns bytes written, or -1 if the input is not base64 or out is small. */
long mx_base64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* n bytes of trusted text (not the wire's: see mx_text_clean) into dst,
 * cap bytes with its NUL, cut if need be. */
void mx_copy_text(char *dst, size_t cap, const void *p, size_t n);
void mx_copy_str(char *dst, size_t cap, const char *s);   /* a NUL-ended one */

/* ASCII case-insensitive prefix test on a slice (inline: a literal
 * prefix's length is known where it is written). */
static inline int mx_ci_prefix(const uint8_t *p, size_t len, const char *prefix)
{
    size_t n = __builtin_strlen(prefix);
    if (len < n) return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t a = p[i], b = (uint8_t)prefix[i];
        if (a >= 'A' && a <= 'Z') a = (uint8_t)(a + 32);
        if (b >= 'A' && b <= 'Z') b = (uint8_t)(b + 32);
        if (a != b) return 0;
    }
    return 1;
}

/* snprintf for the program's own prose (verdicts): %s, %d, %u, %llu and %%
 * written without stdio's machinery; any other conversion is handed to
 * vsnprintf.  Cut to cap bytes with the NUL, as snprintf; returns the
 * length written. */
size_t mx_fmt(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A quick 64-bit hash of bytes for in-process tables (not cryptographic:
 * whatever it picks is confirmed byte for byte). */
uint64_t mx_quick_hash(const void *p, size_t n);

/* ASCII case-insensitive search of needle in a slice; returns offset or -1. */
long mx_ci_find(const uint8_t *p, size_t len, const char *needle);

#endif
