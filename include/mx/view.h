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

/* -F tlsrpt: one session's part of the run's RFC 8460 reports. */
typedef struct mx_tlsrpt_row {
    uint64_t start_us, end_us;
    int outcome;                  /* 1 TLS established, -1 TLS failed, 0 not tried */
    char domain[256];             /* policy domain: the recipients', else the MX's name */
    char mx_host[256];            /* receiving MX: its DNS name, banner host, or address */
    char helo[256];               /* its greeting's host name             */
    char sending_ip[48], receiving_ip[48];
    char result_type[32], reason[160];
} mx_tlsrpt_row;
typedef struct mx_tlsrpt mx_tlsrpt;
/* start: the session's first event (as for the views). */
int mx_tlsrpt_row_from_doc(const struct mx_ev *doc, const struct mx_ev *start, mx_tlsrpt_row *r);
mx_tlsrpt *mx_tlsrpt_new(void);
void mx_tlsrpt_add(mx_tlsrpt *t, const mx_tlsrpt_row *r);
/* One report per policy domain, a line each (indented with pretty). */
void mx_tlsrpt_write(FILE *f, const mx_tlsrpt *t, int pretty);
void mx_tlsrpt_free(mx_tlsrpt *t);

/* The format's quoting of already-clean UTF-8 text. */
/* Length of a screen-acting code point at s (C1 control, bidi control,
 * U+2028/U+2029) with the code point in *cp; 0 if none starts there. */
size_t mx_view_unsafe(const char *s, unsigned *cp);
void mx_view_text(FILE *f, const char *s);
void mx_view_html(FILE *f, const char *s);

/* start: the session's first event (it is also the first of doc's events,
 * except in the later parts of a session written in parts, see "part"). */
void mx_view_text_session(FILE *f, const struct mx_ev *doc, const struct mx_ev *start, int color);
/* One event's line of the text view (with its newline) into out, which has
 * room for MX_VIEW_LINE_MAX bytes: its length, 0 for an event the view
 * leaves out.  A line depends on its event alone, so that a session's lines
 * can be made as its events come and kept as text; the session is then
 * written as its head, the lines, its foot (doc's events: at least its
 * last, for the verdict). */
#define MX_VIEW_LINE_MAX (4096 * 4 + 128)
size_t mx_view_text_line(const struct mx_ev *e, int color, char *out);
void mx_view_text_head(FILE *f, const struct mx_ev *doc, const struct mx_ev *start, int color);
void mx_view_text_foot(FILE *f, const struct mx_ev *doc, int color);
void mx_view_summary_header(FILE *f);
void mx_view_summary_session(FILE *f, const struct mx_ev *doc, const struct mx_ev *start, int color);
void mx_view_html_begin(FILE *f);
void mx_view_html_session(FILE *f, const struct mx_ev *doc);
void mx_view_html_end(FILE *f, const mx_view_row *rows, size_t n, size_t dropped);

#endif
