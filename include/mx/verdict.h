/* verdict.h - why the mail went through or not.
 *
 * The parsers and the engine fill an mx_facts (what happened, with the frame
 * of each piece of evidence); mx_verdict() turns it into a stable code, the
 * last step that succeeded, who ended the session and how, a one-sentence
 * explanation naming the evidence, the usual remedy and a line in the style
 * of a mail gateway's log.  It is a pure function: no I/O, no globals.
 *
 * mx_reply_cause() classifies one SMTP reply by its code, enhanced code and
 * text (greylisting, blocklist, mailbox unknown, ...).
 */
#ifndef MX_VERDICT_H
#define MX_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#include "mx/session.h"

typedef struct mx_reply_fact {
    int code;                 /* 0: none                                */
    char enhanced[16];
    char text[160];           /* first line, cleaned                    */
    uint64_t frame;
    const char *verb;         /* command it answered                    */
} mx_reply_fact;

typedef struct mx_facts {
    /* TCP */
    int syn_seen, synack_seen, refused, midstream;
    uint32_t syn_count;
    uint64_t refused_frame, syn_frame;
    int rst_from;             /* -1 none, else MX_CLIENT / MX_SERVER    */
    uint64_t rst_frame;
    int fin_first;            /* who closed first, -1 none              */
    uint64_t fin_frame;
    const char *end_reason;   /* session.end reason                     */
    char server[64];          /* server address, for sentences          */
    uint16_t server_port;
    int incomplete;
    int implicit_tls;
    char dns_name[256];
    int one_sided;            /* -1; MX_CLIENT / MX_SERVER: only that side's packets were captured */
    uint64_t peer_acked;      /* bytes of the unseen side the seen side acknowledged */
    /* SMTP */
    int greeting_code;
    uint64_t greeting_frame;
    int ehlo_code, helo_code;
    int esmtp, starttls_offered;
    int starttls_code;        /* 0: not asked                           */
    uint64_t starttls_frame;
    int starttls_plain;       /* clear-text SMTP went on after the 220 */
    int plain_on_tls_port;    /* clear-text SMTP on an implicit-TLS port */
    int starttls_masked;      /* the EHLO reply shows STARTTLS masked (XXXXXXXA) */
    int starttls_injected;    /* client lines sent with STARTTLS, before its 220 */
    int response_injected;    /* server lines after its 220, before the ClientHello */
    int mail_in_clear;        /* MAIL FROM accepted in clear though STARTTLS was offered or refused */
    uint64_t starttls_plain_frame;
    char auth_mech[24];
    int auth_code;
    uint64_t auth_frame;
    int mail_seen, rcpt_ok, rcpt_bad, data_seen;
    uint32_t commands, replies, msgs_sent;
    uint32_t auth_sent;       /* AUTH responses the client sent (0: refused before any) */
    int last_reply;
    uint32_t msgs_ok, msgs_bad;
    char queue_id[80];
    uint64_t accepted_frame;
    mx_reply_fact first_failure;  /* first 4xx/5xx that ended something */
    mx_reply_fact abort421;       /* a 421 from the server              */
    mx_reply_fact bad_reply;      /* a server line with no reply code (code 0) */
    int quit_sent, quit_answered;
    int not_smtp;
    int tls_required_530;
    uint64_t tls_required_frame;
    /* TLS */
    int tls_seen, tls_complete;
    uint64_t tls_complete_frame;
    int tls_decrypted;        /* records were opened with a key log      */
    int dane_checked, dane_match;   /* TLSA answers in the capture, and whether one matched */
    int tls_keys_failed;      /* a record did not open with the logged keys */
    char tls_version[16], tls_cipher[64], tls_cipher_openssl[64];
    int alert_from, alert_code, alert_encrypted, alert_probable;
    const char *alert_name, *alert_after;
    uint64_t alert_frame;
    int client_hello_seen, server_hello_seen, cert_seen;
    uint64_t cert_frame;
    int cert_expired, cert_self_signed, cert_name_mismatch, cert_not_yet_valid;
    char cert_issuer_cn[128];  /* the root: issuer of the top of the chain sent */
    char cert_subject_cn[256], cert_not_after[32];
    char cert_names[160];     /* names the certificate was checked for  */
    char sni[256];
    /* the server asked for a client certificate (CertificateRequest); the
     * client sent none: an empty Certificate, or its key exchange without one */
    int client_cert_requested, client_cert_empty;
    uint64_t cert_request_frame, client_cert_frame;
} mx_facts;

typedef struct mx_verdict {
    const char *code;         /* stable machine code                    */
    const char *tls;          /* TLS part: tls_ok, starttls_not_offered ... or NULL */
    const char *cause;        /* finer cause (mailbox_unknown, unknown_ca ...) or NULL */
    const char *last_step;    /* last step that succeeded               */
    const char *ended_by;     /* client, server, capture                */
    const char *how;          /* quit, fin, rst, alert, timeout ...     */
    char explanation[1024];
    char remedy[768];
    char log_line[256];
    int ok;                   /* 1 if the session did what it set out to */
    const char *tlsrpt;       /* RFC 8460 result type of a TLS failure, or NULL */
    char tlsrpt_reason[160];  /* and its failure reason                  */
} mx_verdict;

/* Does this SASL mechanism send the password (or a bearer token) itself,
 * so that it is exposed without TLS?  PLAIN, LOGIN, XOAUTH2 ... yes;
 * CRAM-MD5, NTLM, GSSAPI, SCRAM-* ... no. */
int mx_mech_exposes_secret(const char *mech);
void mx_facts_init(mx_facts *f);
void mx_verdict_decide(const mx_facts *f, mx_verdict *v);
/* Writes the verdict object into ev. */
void mx_verdict_write(const mx_verdict *v, mx_ev *ev);

/* NULL, or one of: greylisting, dns_blocklist, spf_dmarc_dkim,
 * mailbox_unknown, mailbox_full, message_too_big, relaying_denied, virus,
 * sender_rejected, bad_sequence, helo_rejected,
 * tls_required, auth_required, auth_failed, rate_limited, policy,
 * syntax_error, service_unavailable, temporary_failure. */
const char *mx_reply_cause(int code, const char *enhanced, const char *text, size_t len);

#endif
