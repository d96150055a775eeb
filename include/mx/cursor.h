/* cursor.h - bounds-checked reads from wire bytes.
 *
 * Every read from a packet or a reassembled stream goes through a cursor.
 * A read past the end fails (returns 0) and leaves the cursor marked bad, so
 * a parser can chain reads and test once.  Lengths taken from the wire are
 * compared with what is left before use; no arithmetic can wrap.
 */
#ifndef MX_CURSOR_H
#define MX_CURSOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct mx_cur {
    const uint8_t *p;  /* next unread byte */
    size_t left;       /* bytes left       */
    int bad;           /* a read failed    */
} mx_cur;

static inline mx_cur mx_cur_make(const uint8_t *p, size_t len)
{
    mx_cur c = { p, len, 0 };
    return c;
}

static inline int mx_cur_has(const mx_cur *c, size_t n)
{
    return !c->bad && c->left >= n;
}

static inline int mx_cur_skip(mx_cur *c, size_t n)
{
    if (!mx_cur_has(c, n)) { c->bad = 1; return 0; }
    c->p += n; c->left -= n;
    return 1;
}

static inline int mx_cur_u8(mx_cur *c, uint8_t *v)
{
    if (!mx_cur_has(c, 1)) { c->bad = 1; *v = 0; return 0; }
    *v = c->p[0]; c->p++; c->left--;
    return 1;
}

static inline int mx_cur_u16(mx_cur *c, uint16_t *v)
{
    if (!mx_cur_has(c, 2)) { c->bad = 1; *v = 0; return 0; }
    *v = (uint16_t)((c->p[0] << 8) | c->p[1]);
    c->p += 2; c->left -= 2;
    return 1;
}

static inline int mx_cur_u24(mx_cur *c, uint32_t *v)
{
    if (!mx_cur_has(c, 3)) { c->bad = 1; *v = 0; return 0; }
    *v = ((uint32_t)c->p[0] << 16) | ((uint32_t)c->p[1] << 8) | c->p[2];
    c->p += 3; c->left -= 3;
    return 1;
}

static inline int mx_cur_u32(mx_cur *c, uint32_t *v)
{
    if (!mx_cur_has(c, 4)) { c->bad = 1; *v = 0; return 0; }
    *v = ((uint32_t)c->p[0] << 24) | ((uint32_t)c->p[1] << 16) |
         ((uint32_t)c->p[2] << 8) | c->p[3];
    c->p += 4; c->left -= 4;
    return 1;
}

/* Takes n bytes as a sub-cursor (a slice; nothing is copied). */
static inline int mx_cur_sub(mx_cur *c, size_t n, mx_cur *out)
{
    if (!mx_cur_has(c, n)) { c->bad = 1; *out = mx_cur_make(NULL, 0); out->bad = 1; return 0; }
    *out = mx_cur_make(c->p, n);
    c->p += n; c->left -= n;
    return 1;
}

#endif
