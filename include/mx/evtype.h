/* evtype.h - the event types, from one table.
 *
 * Each row names a type's enum, its string in the output, its Elastic Common
 * Schema event.category and event.type, and one line of documentation.  The
 * enum, mxtrace --list-event-types (which the documentation and schema tests
 * read) and the ECS mapping all come from this table, so a type cannot be
 * added to one and not the others.
 */
#ifndef MX_EVTYPE_H
#define MX_EVTYPE_H

/* X(ENUM, "name", "ecs category", "ecs type", "summary") */
#define MX_EVENT_TYPES(X) \
    X(SESSION_START, "session.start", "network", "start", "first packet of a followed connection: endpoints, network, mode") \
    X(SESSION_END, "session.end", "network", "end", "the connection ended or was given up: summary and verdict") \
    X(TCP_SYN, "tcp.syn", "network", "connection", "the client's SYN") \
    X(TCP_SYNACK, "tcp.synack", "network", "connection", "the server's SYN-ACK") \
    X(TCP_FIN, "tcp.fin", "network", "connection", "a FIN from one side") \
    X(TCP_RST, "tcp.rst", "network", "connection", "a reset from one side") \
    X(TCP_REFUSED, "tcp.refused", "network", "denied", "the server answered the SYN with a reset") \
    X(TCP_GAP, "tcp.gap", "network", "error", "bytes of a direction missing from the capture") \
    X(SMTP_COMMAND, "smtp.command", "email", "protocol", "one client command") \
    X(SMTP_REPLY, "smtp.reply", "email", "protocol", "one server reply, with the command it answers") \
    X(SMTP_AUTH_RESPONSE, "smtp.auth_response", "authentication", "info", "a client line inside an AUTH exchange (credentials withheld)") \
    X(SMTP_AUTH, "smtp.auth", "authentication", "info", "the outcome of an AUTH exchange") \
    X(SMTP_STARTTLS, "smtp.starttls", "network", "protocol", "the server accepted or refused STARTTLS") \
    X(SMTP_DATA, "smtp.data", "email", "info", "a message sent with DATA or BDAT: size and headers") \
    X(TLS_CLIENT_HELLO, "tls.client_hello", "network", "protocol", "the client's ClientHello") \
    X(TLS_SERVER_HELLO, "tls.server_hello", "network", "protocol", "the server's ServerHello") \
    X(TLS_HELLO_RETRY_REQUEST, "tls.hello_retry_request", "network", "protocol", "a TLS 1.3 HelloRetryRequest") \
    X(TLS_CERTIFICATE, "tls.certificate", "network", "protocol", "a Certificate message, with its chain and checks") \
    X(TLS_SERVER_KEY_EXCHANGE, "tls.server_key_exchange", "network", "protocol", "the server's key exchange group") \
    X(TLS_HANDSHAKE, "tls.handshake", "network", "protocol", "another handshake message in clear") \
    X(TLS_ALERT, "tls.alert", "network", "error", "a TLS alert, clear or encrypted") \
    X(TLS_CHANGE_CIPHER_SPEC, "tls.change_cipher_spec", "network", "protocol", "a ChangeCipherSpec record") \
    X(TLS_ENCRYPTED, "tls.encrypted", "network", "protocol", "the first encrypted record of a direction") \
    X(TLS_HANDSHAKE_COMPLETE, "tls.handshake_complete", "network", "protocol", "both sides finished the handshake") \
    X(ANOMALY, "anomaly", "network", "info", "something off in the traffic, once per kind and session") \
    X(LIMIT, "limit", "network", "info", "a cap that ends part of the output was reached") \
    X(OUTPUT_DROP, "output.drop", "network", "info", "records an output lost while its collector was slow or away (no session)") \
    X(CAPTURE_STATS, "capture.stats", "network", "info", "an interface's packet counters from libpcap, periodically and at the end (live capture; no session)") \
    X(CAPTURE_LOSS, "capture.loss", "network", "error", "the kernel or the interface dropped packets since the last report (live capture; no session)") \
    X(ATTEMPT_END, "attempt.end", "email", "info", "a delivery attempt of more than one connection ended: its sessions and what the sequence means (no session)")

typedef enum mx_evtype {
#define MX_EVT_ENUM(e, name, cat, typ, doc) MX_EV_##e,
    MX_EVENT_TYPES(MX_EVT_ENUM)
#undef MX_EVT_ENUM
    MX_EV__COUNT
} mx_evtype;

typedef struct mx_evtype_info {
    const char *name;           /* as written in "type"            */
    const char *ecs_category;   /* ECS event.category              */
    const char *ecs_type;       /* ECS event.type                  */
    const char *summary;        /* one line for the documentation  */
} mx_evtype_info;

/* The row of t; NULL for a value outside the table. */
const mx_evtype_info *mx_evtype_get(mx_evtype t);
static inline const char *mx_evtype_name(mx_evtype t)
{
    const mx_evtype_info *i = mx_evtype_get(t);
    return i ? i->name : "unknown";
}

#endif
