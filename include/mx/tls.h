/* tls.h - TLS record layer after STARTTLS or on an implicit-TLS port.
 *
 * Same contract as the SMTP parser: ordered bytes per direction in, events
 * out.  Encrypted records are skipped by their length.
 */
#ifndef MX_TLS_H
#define MX_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "mx/session.h"

mx_tls *mx_tls_new(mx_sess *s);
void mx_tls_free(mx_tls *t);
size_t mx_tls_feed(mx_tls *t, int dir, const uint8_t *p, size_t n, int force);
void mx_tls_gap(mx_tls *t, int dir, uint32_t len);
void mx_tls_eof(mx_tls *t, int dir);
struct mx_facts;
void mx_tls_facts(const mx_tls *t, struct mx_facts *f);

/* 1 once any byte was handed to the TLS parser. */
int mx_tls_seen(const mx_tls *t);
void mx_tls_summary(const mx_tls *t, mx_ev *obj);

#endif
