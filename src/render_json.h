/* render_json.h - event trees as JSON text (output layer, private). */
#ifndef MX_RENDER_JSON_H
#define MX_RENDER_JSON_H

#include <stddef.h>

#include "mx/event.h"

/* A growing text buffer; p is NUL-terminated whenever len > 0. */
typedef struct mx_buf {
    char *p;
    size_t len, cap;
    int failed;                   /* out of memory, or over 1 GiB            */
} mx_buf;

void mx_buf_free(mx_buf *b);
/* Appends n bytes (0 and b->failed set when out of memory). */
int mx_buf_put(mx_buf *b, const void *s, size_t n);

/* Appends v as JSON: compact, or with cJSON's indentation (a tab per level)
 * when pretty.  Strings are escaped as JSON requires, and U+0085, U+2028 and
 * U+2029 are written as \u escapes, since some readers end lines at them.
 * Returns 0 (and sets b->failed) when out of memory. */
int mx_json_write(mx_buf *b, const mx_node *v, int pretty);

#endif
