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

typedef struct mx_dns_entry {
    mx_addr addr;
    char name[256];      /* the name asked for (question), printable ASCII */
    uint64_t frame, us;
} mx_dns_entry;

typedef struct mx_dns {
    mx_dns_entry slot[MX_DNS_SLOTS];
    uint32_t next, used;
} mx_dns;

/* Reads one DNS response; records every A/AAAA answer under the question's
 * name.  Returns the number of addresses recorded. */
int mx_dns_response(mx_dns *d, const uint8_t *p, size_t n, uint64_t frame, uint64_t us);

/* The most recent entry for addr, or NULL. */
const mx_dns_entry *mx_dns_lookup(const mx_dns *d, const mx_addr *addr);

#endif
