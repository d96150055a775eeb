/* session.h - one TCP connection as the parsers see it, and the event API.
 *
 * A session is what a parser writes to: it carries the endpoints, the current
 * packet's time and frame number, and the output sink.  Parsers build events
 * with the mx_ev_* calls below and never see the JSON library, TCP or pcap.
 *
 * Lifecycle: the engine (or a unit test, with mx_sess_init/mx_sess_close)
 * owns the session.  An event handle returned by mx_ev_begin() is valid until
 * mx_ev_end(); nested handles from mx_ev_obj()/mx_ev_arr() live as long as
 * their top-level event.  Strings passed in are copied.
 */
#ifndef MX_SESSION_H
#define MX_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "mx/decode.h"
#include "mx/evtype.h"
#include "mx/limits.h"

enum { MX_CLIENT = 0, MX_SERVER = 1, MX_NODIR = -1 };

/* What a direction's bytes are handed to. */
enum mx_app { MX_APP_NONE = 0, MX_APP_SMTP, MX_APP_TLS, MX_APP_OPAQUE };

typedef struct mx_ev mx_ev;         /* an event under construction (opaque) */
typedef struct mx_sink mx_sink;     /* where finished events go (opaque)    */
typedef struct mx_smtp mx_smtp;
typedef struct mx_tls mx_tls;

struct mx_keylog;
typedef struct mx_opts {
    mx_limits lim;
    int show_user;        /* write AUTH user names                      */
    int pretty;           /* indent JSON                                 */
    const struct mx_keylog *keylog;   /* --keylog: TLS secrets, or NULL  */
    uint64_t attempt_window_us;       /* --attempt-window; 0: no attempts */
} mx_opts;

typedef struct mx_sess {
    uint64_t id;                 /* 1-based, in order of first packet   */
    const mx_opts *opt;
    mx_sink *sink;
    void *out;                   /* sink's per-session state            */
    mx_addr cli, srv;
    uint16_t cli_port, srv_port;
    uint64_t start_us, cur_us;   /* first packet, current packet        */
    uint64_t cur_frame;          /* current packet's number (1-based)   */
    uint32_t nevents, events_dropped;
    uint8_t midstream;           /* no SYN seen                         */
    uint8_t tls_from_start;      /* implicit TLS port (465)             */
    uint8_t tls_handoff;         /* STARTTLS accepted in this packet    */
    uint8_t off_port;            /* not a mail port: followed on nDPI's word */
    uint8_t handoff_open[2];     /* first bytes after a STARTTLS hand-off not yet judged */
    uint8_t starttls_plain;      /* SMTP went on in clear text after the 220 */
    uint8_t plain_on_tls_port;   /* clear-text SMTP on an implicit-TLS port */
    uint8_t handoff_early;       /* the client sent bytes before the 220 to STARTTLS */
    uint8_t starttls_injected;   /* SMTP lines sent with STARTTLS, before its 220 */
    uint8_t response_injected;   /* server lines after its 220, before the ClientHello */
    uint64_t starttls_plain_frame;
    enum mx_app app[2];
    mx_smtp *smtp;
    mx_tls *tls;
    /* Hand-offs the parsers return: bit d set asks the owner of the streams
     * to offer direction d's held bytes again (a reply that releases the
     * client, STARTTLS).  A parser that sets it stops consuming at once, so
     * the owner can act in wire order, clear it, and feed the rest. */
    uint8_t release;
    void *owner;                 /* the stream owner's own handle        */
    /* anomalies: first of each kind is an event, the rest are counted */
    struct mx_anom { const char *kind; uint32_t count; } *anom;   /* made at the first */
    uint8_t nanom;
    char community_id[40];       /* Community ID v1 of the connection   */
    /* names the server is known by, for certificate checks */
    const char *banner_host;     /* from the 220 greeting (the SMTP parser's text), or NULL */
    const char *ehlo_host;       /* from the reply to EHLO (likewise)    */
    char *dns_name;              /* looked up by the client, if captured (or NULL) */
    char *mx_domain;             /* the domain dns_name is a mail exchanger of (DNS MX), or NULL */
    struct mx_dns_tlsa *tlsa;    /* TLSA answers for _port._tcp.dns_name, if captured */
    int ntlsa;
    struct mx_cert_cache *certs; /* parsed-certificate cache (engine's), or NULL */
} mx_sess;

/* --- events ------------------------------------------------------------- */

/* Starts an event of the given type (evtype.h) stamped with the session's current time
 * and frame; from is MX_CLIENT, MX_SERVER or MX_NODIR.  Returns NULL when the
 * session's event cap is reached (the calls below accept NULL and do nothing).
 */
mx_ev *mx_ev_begin(mx_sess *s, mx_evtype type, int from);
void mx_ev_end(mx_sess *s, mx_ev *e);

/* Keys are string literals (static storage): the output refers to them.
 * They are the program's own names (short plain ASCII, never wire bytes);
 * the macros pass each one's length along, known when it is compiled. */
void mx_ev_str_k(mx_ev *e, const char *key, size_t kl, const char *s);      /* trusted, copied */
void mx_ev_lit_k(mx_ev *e, const char *key, size_t kl, const char *s);      /* trusted literal, not copied */
/* Wire bytes: cleaned by mx_text_clean(), at most cap input bytes; a cut
 * value gets a sibling "<key>_truncated": true. */
void mx_ev_wire_k(mx_ev *e, const char *key, size_t kl, const uint8_t *p, size_t n, size_t cap);
void mx_ev_int_k(mx_ev *e, const char *key, size_t kl, int64_t v);
void mx_ev_num_k(mx_ev *e, const char *key, size_t kl, double v);
void mx_ev_seconds_k(mx_ev *e, const char *key, size_t kl, uint64_t us);   /* µs as seconds */
void mx_ev_bool_k(mx_ev *e, const char *key, size_t kl, int v);
void mx_ev_null_k(mx_ev *e, const char *key, size_t kl);
mx_ev *mx_ev_obj_k(mx_ev *e, const char *key, size_t kl);     /* nested object */
mx_ev *mx_ev_arr_k(mx_ev *e, const char *key, size_t kl);     /* nested array  */
#define MX_KL(key) __builtin_strlen(key)
#define mx_ev_str(e, key, s) mx_ev_str_k((e), (key), MX_KL(key), (s))
#define mx_ev_lit(e, key, s) mx_ev_lit_k((e), (key), MX_KL(key), (s))
#define mx_ev_wire(e, key, p, n, cap) mx_ev_wire_k((e), (key), MX_KL(key), (p), (n), (cap))
#define mx_ev_int(e, key, v) mx_ev_int_k((e), (key), MX_KL(key), (v))
#define mx_ev_num(e, key, v) mx_ev_num_k((e), (key), MX_KL(key), (v))
#define mx_ev_seconds(e, key, us) mx_ev_seconds_k((e), (key), MX_KL(key), (us))
#define mx_ev_bool(e, key, v) mx_ev_bool_k((e), (key), MX_KL(key), (v))
#define mx_ev_null(e, key) mx_ev_null_k((e), (key), MX_KL(key))
#define mx_ev_obj(e, key) mx_ev_obj_k((e), (key), MX_KL(key))
#define mx_ev_arr(e, key) mx_ev_arr_k((e), (key), MX_KL(key))
void mx_ev_push_wire(mx_ev *arr, const uint8_t *p, size_t n, size_t cap);
void mx_ev_push_str(mx_ev *arr, const char *s);
void mx_ev_push_lit(mx_ev *arr, const char *s);   /* literal, not copied */
void mx_ev_push_int(mx_ev *arr, int64_t v);
mx_ev *mx_ev_push_obj(mx_ev *arr);
/* Writes an endpoint object {ip, port}. */
void mx_ev_endpoint_k(mx_ev *e, const char *key, size_t kl, const mx_addr *a, uint16_t port);
#define mx_ev_endpoint(e, key, a, port) mx_ev_endpoint_k((e), (key), MX_KL(key), (a), (port))

/* The connection is on an implicit-TLS port (465): TLS from the first byte. */
void mx_sess_implicit_tls(mx_sess *s);

/* Records an anomaly once per session and kind (later ones are counted;
 * up to MX_MAX_ANOM kinds a session are counted, every one is an event). */
#define MX_MAX_ANOM 48
void mx_sess_anomaly(mx_sess *s, int from, const char *kind, const char *detail);
/* Frees what the session itself holds (its anomaly counts, DNS name). */
void mx_sess_release(mx_sess *s);

/* --- hand-offs (called by parsers) -------------------------------------- */

/* Both directions speak TLS from their current position on (after the 220
 * that answers STARTTLS); the client's held bytes are offered again. */
void mx_sess_start_tls(mx_sess *s);

/* --- dispatch (called by the stream layer) ------------------------------ */

/* Ordered bytes of one direction, handed to whatever parser that direction
 * speaks now; a hand-off in the middle (STARTTLS) passes the rest on to the
 * next parser.  Returns bytes consumed (the caller keeps the rest). */
size_t mx_sess_feed(mx_sess *s, int dir, const uint8_t *p, size_t n, int force);
void mx_sess_gap(mx_sess *s, int dir, uint32_t len);
void mx_sess_eof(mx_sess *s, int dir);

/* Makes the parsers' states if no byte has made them yet (they are made on
 * a direction's first byte); the end of a session calls it, so that its
 * summary is written the same either way. */
void mx_sess_parsers(mx_sess *s);

/* Writes the anomaly counts into obj (session summary). */
void mx_sess_anomaly_summary(const mx_sess *s, mx_ev *obj);

/* Formats microseconds since the epoch as ISO-8601 UTC with microseconds
 * into buf (>= 32 bytes). */
void mx_iso_time(uint64_t us, char *buf, size_t cap);

#endif
