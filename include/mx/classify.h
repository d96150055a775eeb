/* classify.h - protocol classification with nDPI (the only module that
 * includes nDPI's headers).
 *
 * One classifier per engine (nDPI's module is not reentrant).  Each session
 * gets an mx_cflow; it is shown only the first packets of its flow (up to the
 * ndpi_packets cap, fewer once nDPI has nothing left to learn), and its nDPI
 * state is freed as soon as that is over, keeping only the result.  nDPI does
 * not follow STARTTLS, so mx_cflow_restart() gives it a fresh flow at the
 * hand-off and the TLS result is kept apart.  On the mail ports mxtrace's own
 * parsers decide what a flow is; nDPI only adds its label and risks.
 */
#ifndef MX_CLASSIFY_H
#define MX_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "mx/session.h"

typedef struct mx_classifier mx_classifier;
typedef struct mx_cflow mx_cflow;

/* every_protocol: run all of nDPI's dissectors (needed to tell what a flow
 * off the mail ports is); otherwise only SMTP, SMTPS and TLS.
 * NULL on failure, with a reason in err (e.g. an nDPI API mismatch). */
/* tls_pass (--ndpi-tls): nDPI also dissects the TLS of a flow it has named
 * (on an implicit-TLS port, and after STARTTLS); otherwise it stops there. */
mx_classifier *mx_classify_new(uint32_t max_packets, int every_protocol, int tls_pass, char *err, size_t cap);
void mx_classify_free(mx_classifier *c);

mx_cflow *mx_cflow_new(void);
/* A packet of the flow (pay: its TCP payload's captured bytes).  Once nDPI
 * has named a clear-text SMTP flow it is shown nothing until a packet starts
 * with the client's AUTH, then everything until nDPI is done.  Without
 * tls_pass it is shown no TLS: a ClientHello on port 465 ends its part,
 * the flow named by its port. */
void mx_cflow_packet(mx_classifier *c, mx_cflow *f, const uint8_t *l3, uint32_t l3len,
                     const uint8_t *pay, uint32_t paylen, uint64_t ts_us);
void mx_cflow_restart(mx_classifier *c, mx_cflow *f);
/* At STARTTLS without --ndpi-tls: nDPI's result so far is kept, and it is
 * shown nothing more of the flow. */
void mx_cflow_stop(mx_classifier *c, mx_cflow *f);
/* For flows off the mail ports: 1 if nDPI says SMTP, SMTPS or TLS, 0 if it
 * says something else (or, when final, gives up), -1 while undecided. */
int mx_cflow_decision(mx_classifier *c, mx_cflow *f, int final);
/* Writes {protocol, category, risks[], starttls:{...}} into obj. */
void mx_cflow_summary(mx_classifier *c, mx_cflow *f, mx_ev *obj);
void mx_cflow_free(mx_cflow *f);

#endif
