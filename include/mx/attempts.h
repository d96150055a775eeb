/* attempts.h - a run's connections grouped into delivery attempts.
 *
 * A mail server that cannot deliver on one connection tries again: the next
 * MX, the same server after a greylisting 4xx, in clear text after a failed
 * TLS handshake.  Each session, when it ends, gives a row; rows of the same
 * client towards the same destination (the recipients' domain, else the
 * domain whose MX the server is, else the server) within a time window
 * make one attempt.  An attempt ends when a message is delivered (or TLS is
 * established: what follows is not seen), when no
 * session of it came within the window, or at the end of the run; one of
 * more than one connection is written as an attempt.end event, with its own
 * verdict (and whether the sequence was a downgrade), and so is one whose
 * server's EHLO reply lacks the STARTTLS an earlier reply of the same server
 * to the same client offered within the window (stripped on the way).
 */
#ifndef MX_ATTEMPTS_H
#define MX_ATTEMPTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mx_attempt_row {
    uint64_t id;                  /* the session's id                        */
    uint64_t start_us, end_us;
    char client[48], server[48];  /* addresses                               */
    char dest[256];               /* recipients' domain, else the MX's domain, else "" */
    char server_name[256];        /* DNS name, else SNI, else banner, else address */
    char code[32], cause[48], tls[40];
    uint8_t delivered, tls_ok, tls_failed, greylisted;
    uint8_t ehlo_ok, starttls_offered;   /* the EHLO reply, and whether it offered STARTTLS */
    uint8_t stripped;             /* (set here) an earlier EHLO reply of this server offered it */
} mx_attempt_row;

#define MX_ATTEMPT_SESSIONS 16

typedef struct mx_attempt {
    uint64_t no;                  /* 1-based, in the order attempts end      */
    int n, more;                  /* sessions kept (the first 16), and more  */
    mx_attempt_row s[MX_ATTEMPT_SESSIONS];
} mx_attempt;

typedef struct mx_attempts mx_attempts;
typedef void (*mx_attempt_fn)(void *ctx, const mx_attempt *a);

/* window_us: the longest pause between two connections of one attempt. */
mx_attempts *mx_attempts_new(uint64_t window_us);
void mx_attempts_free(mx_attempts *t);
/* A session ended: joins or starts an attempt; attempts that end here are
 * handed to fn, in order. */
void mx_attempts_add(mx_attempts *t, const mx_attempt_row *r, mx_attempt_fn fn, void *ctx);
/* The run ended: every open attempt ends, in the order they began. */
void mx_attempts_flush(mx_attempts *t, mx_attempt_fn fn, void *ctx);

/* An attempt's verdict: delivered or not, a downgrade (a TLS failure then a
 * delivery in clear text), a greylisting, and one sentence. */
typedef struct mx_attempt_verdict {
    int delivered, downgrade, greylisted, servers;
    int tls_only;                 /* ended by TLS established, no delivery seen */
    int stripped;                 /* STARTTLS offered by a server, missing from a later reply */
    char explanation[768];
} mx_attempt_verdict;
void mx_attempt_judge(const mx_attempt *a, mx_attempt_verdict *v);

#endif
