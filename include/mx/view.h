/* view.h - text, summary and HTML views of session documents (output layer;
 * a document is an event tree (event.h) with the timeline's fields: session,
 * client, server, start, duration and the session's events). */
#ifndef MX_VIEW_H
#define MX_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mx_ev;

typedef struct mx_view_row {       /* one line of the HTML index */
    uint64_t id;
    int ok;
    char client[64], server[64], code[32], explanation[256];
} mx_view_row;

/* The format's quoting of already-clean UTF-8 text. */
/* Length of a screen-acting code point at s (C1 control, bidi control,
 * U+2028/U+2029) with the code point in *cp; 0 if none starts there. */
size_t mx_view_unsafe(const char *s, unsigned *cp);
void mx_view_text(FILE *f, const char *s);
void mx_view_html(FILE *f, const char *s);

/* start: the session's first event (it is also the first of doc's events,
 * except in the later parts of a session written in parts, see "part"). */
void mx_view_text_session(FILE *f, const struct mx_ev *doc, const struct mx_ev *start, int color);
void mx_view_summary_header(FILE *f);
void mx_view_summary_session(FILE *f, const struct mx_ev *doc, const struct mx_ev *start, int color);
void mx_view_html_begin(FILE *f);
void mx_view_html_session(FILE *f, const struct mx_ev *doc);
void mx_view_html_end(FILE *f, const mx_view_row *rows, size_t n, size_t dropped);

#endif
