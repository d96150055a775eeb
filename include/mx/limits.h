/* limits.h - every cap mxtrace enforces, in one place.
 *
 * Each field is overridable from the command line (see README, "Limits").
 * Reaching any of them is reported as a `limit` event in the output; nothing
 * is dropped silently.
 */
#ifndef MX_LIMITS_H
#define MX_LIMITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mx_limits {
    uint32_t max_flows;        /* flows tracked at once; oldest evicted      */
    uint32_t idle_timeout_s;   /* a flow idle this long is closed            */
    uint32_t max_ooo_bytes;    /* out-of-order bytes buffered per direction  */
    uint32_t max_ooo_segs;     /* out-of-order segments per direction        */
    uint32_t max_line;         /* longest SMTP line kept; longer: truncated  */
    uint32_t max_hold;         /* bytes held while waiting for the peer      */
    uint32_t max_events;       /* events kept per session                    */
    uint32_t max_pending;      /* pipelined commands awaiting a reply        */
    uint32_t max_field;        /* longest wire string written to output      */
    uint32_t max_headers;      /* message headers scanned per message        */
    uint32_t max_mime_parts;   /* MIME parts listed per message              */
    uint32_t max_tls_msg;      /* largest TLS handshake message reassembled  */
    uint32_t ndpi_packets;     /* packets of a flow shown to nDPI            */
    uint32_t ack_wait_packets; /* acked-but-unseen bytes: packets to wait    */
    uint32_t ack_wait_ms;      /* ... and capture milliseconds to wait       */
    uint32_t max_lingering;    /* ended sessions held for late resets        */
    uint64_t memcap;           /* bytes of all streams' buffers together     */
} mx_limits;

/* Fills *l with the documented defaults. */
void mx_limits_default(mx_limits *l);

#endif
