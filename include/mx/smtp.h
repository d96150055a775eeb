/* smtp.h - SMTP (RFC 5321) conversation parser.
 *
 * Input: the ordered bytes of each direction of one connection, via
 * mx_smtp_feed(), plus mx_smtp_gap() for bytes that were never seen and
 * mx_smtp_eof() at the end of a direction.  It knows nothing of packets.
 * Output: events on the session (smtp.command, smtp.reply, smtp.auth,
 * smtp.data, smtp.anomaly, ...) and a summary object at the end.
 *
 * mx_smtp_feed() returns the bytes consumed; it leaves an incomplete line
 * unconsumed unless force is set or the line is over the cap, and it stops
 * where the conversation hands over to TLS (see mx_sess_start_tls()) or where
 * the client must wait for the server (after DATA or STARTTLS); the session
 * offers the held bytes again once the server has answered.
 */
#ifndef MX_SMTP_H
#define MX_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "mx/session.h"

mx_smtp *mx_smtp_new(mx_sess *s);
void mx_smtp_free(mx_smtp *m);
size_t mx_smtp_feed(mx_smtp *m, int dir, const uint8_t *p, size_t n, int force);
void mx_smtp_gap(mx_smtp *m, int dir, uint32_t len);
void mx_smtp_eof(mx_smtp *m, int dir);
/* After a STARTTLS hand-off: do these first bytes of dir look like SMTP
 * (a command line from the client, a reply line from the server) rather
 * than TLS?  1 yes, 0 no, -1 too few bytes to tell. */
int mx_smtp_looks_plain(int dir, const uint8_t *p, size_t n);
/* The conversation goes on inside TLS, read from the records a key log
 * opened: dir's bytes come through mx_smtp_feed() again, marked in_tls. */
void mx_smtp_in_tls(mx_smtp *m, int dir);
/* Takes dir back from TLS: the conversation goes on in clear text. */
void mx_smtp_resume(mx_smtp *m, int dir);
struct mx_facts;
/* Adds what the conversation showed to the verdict's facts. */
void mx_smtp_facts(const mx_smtp *m, struct mx_facts *f);

/* Writes the session's SMTP summary into obj. */
void mx_smtp_summary(const mx_smtp *m, mx_ev *obj);

#endif
