/* dns.h - names from DNS answers (RFC 1035 §4.1) seen in the capture.
 *
 * The table maps an address to the name a client looked up to get it, so a
 * session can say "relay.example.com resolved to 192.0.2.5" and the
 * certificate check can use that name.  It holds the last MX_DNS_SLOTS
 * answers (a ring: the oldest is forgotten first).
 */
#ifndef MX_DNS_H
#define MX_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "mx/decode.h"

#define MX_DNS_SLOTS 1024
#define MX_DNS_MX_SLOTS 256
#define MX_DNS_TLSA_SLOTS 256

typedef struct mx_dns_entry {
    mx_addr addr;
    char name[256];      /* the name asked for (question), printable ASCII */
    uint64_t frame, us;
} mx_dns_entry;

/* An MX answer: host is a mail exchanger of domain (RFC 1035 §3.3.9). */
typedef struct mx_dns_mx {
    char domain[256], host[256];
    uint16_t pref;
    uint64_t frame;
} mx_dns_mx;

/* A TLSA answer (RFC 6698 §2.1) for _port._tcp.host. */
typedef struct mx_dns_tlsa {
    char host[256];
    uint16_t port;
    uint8_t usage, selector, mtype, len;
    uint8_t data[64];
    uint64_t frame;
} mx_dns_tlsa;

typedef struct mx_dns {
    mx_dns_entry slot[MX_DNS_SLOTS];
    uint32_t next, used;
    mx_dns_mx mx[MX_DNS_MX_SLOTS];
    uint32_t mx_next, mx_used;
    mx_dns_tlsa tlsa[MX_DNS_TLSA_SLOTS];
    uint32_t tlsa_next, tlsa_used;
} mx_dns;

/* Reads one DNS response; records every A/AAAA answer under the question's
 * name, and its MX and TLSA answers.  Returns the number of addresses
 * recorded (A/AAAA). */
int mx_dns_response(mx_dns *d, const uint8_t *p, size_t n, uint64_t frame, uint64_t us);

/* The most recent entry for addr, or NULL. */
const mx_dns_entry *mx_dns_lookup(const mx_dns *d, const mx_addr *addr);
/* The most recent MX answer naming host as an exchanger, or NULL. */
const mx_dns_mx *mx_dns_mx_of(const mx_dns *d, const char *host);
/* The TLSA answers for _port._tcp.host (newest first, the most recent
 * answer's records only), at most max of them; their count. */
int mx_dns_tlsa_of(const mx_dns *d, const char *host, uint16_t port, const mx_dns_tlsa **out, int max);

#endif
