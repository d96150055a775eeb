/* dns.c - DNS responses to an address -> name table (see dns.h).
 *
 *   header (12 bytes): id, flags (QR = 0x8000, RCODE = low 4 bits),
 *                      qdcount, ancount, nscount, arcount
 *   question: name, type(2), class(2)
 *   answer:   name, type(2), class(2), ttl(4), rdlength(2), rdata
 */
#include "mx/dns.h"
#include "mx/cursor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reads a (possibly compressed) name starting at *c within the message
 * [msg, msg+len) into out as dotted printable ASCII.  Advances *c past the
 * name as stored at that place.  Returns 0 on malformed input. */
static int read_name(const uint8_t *msg, size_t len, mx_cur *c, char *out, size_t cap)
{
    size_t o = 0, pos = (size_t)(c->p - msg);
    int jumped = 0, hops = 0;
    for (;;) {
        if (pos >= len) return 0;
        uint8_t l = msg[pos];
        if ((l & 0xC0) == 0xC0) {                       /* pointer */
            if (pos + 1 >= len || ++hops > 16) return 0;
            size_t to = ((size_t)(l & 0x3F) << 8) | msg[pos + 1];
            if (!jumped) { if (!mx_cur_skip(c, 2)) return 0; jumped = 1; }
            if (to >= len) return 0;
            pos = to;
            continue;
        }
        if (l & 0xC0) return 0;                         /* reserved */
        if (!jumped && !mx_cur_skip(c, 1u + l)) return 0;
        if (l == 0) break;
        if (pos + 1 + l > len) return 0;
        for (size_t i = 0; i < l; i++) {
            uint8_t ch = msg[pos + 1 + i];
            if (o + 2 >= cap) return 0;
            out[o++] = (ch > 0x20 && ch < 0x7F) ? (char)ch : '?';
        }
        if (o + 1 >= cap) return 0;
        out[o++] = '.';
        pos += 1u + l;
    }
    if (o) o--;                                         /* no final dot */
    out[o] = 0;
    return 1;
}

int mx_dns_response(mx_dns *d, const uint8_t *p, size_t n, uint64_t frame, uint64_t us)
{
    mx_cur c = mx_cur_make(p, n);
    uint16_t id, flags, qd, an, ns, ar;
    char qname[256], tmp[256];
    if (!mx_cur_u16(&c, &id) || !mx_cur_u16(&c, &flags) || !mx_cur_u16(&c, &qd) ||
        !mx_cur_u16(&c, &an) || !mx_cur_u16(&c, &ns) || !mx_cur_u16(&c, &ar))
        return 0;
    if (!(flags & 0x8000) || (flags & 0x000F) != 0 || qd != 1 || an == 0) return 0;
    if (!read_name(p, n, &c, qname, sizeof qname) || !mx_cur_skip(&c, 4)) return 0;
    int added = 0;
    for (unsigned i = 0; i < an && i < 64; i++) {
        uint16_t type, cls, rdlen;
        uint32_t ttl;
        if (!read_name(p, n, &c, tmp, sizeof tmp) || !mx_cur_u16(&c, &type) || !mx_cur_u16(&c, &cls) ||
            !mx_cur_u32(&c, &ttl) || !mx_cur_u16(&c, &rdlen) || !mx_cur_has(&c, rdlen))
            break;
        if (type == 15 && rdlen > 2) {
            /* MX: preference, then the exchanger's (compressed) name */
            mx_cur r = mx_cur_make(c.p, rdlen);
            uint16_t pref;
            char host[256];
            mx_cur_u16(&r, &pref);
            if (read_name(p, n, &r, host, sizeof host) && host[0]) {
                mx_dns_mx *m = &d->mx[d->mx_next];
                memset(m, 0, sizeof *m);
                memcpy(m->domain, qname, sizeof m->domain);
                memcpy(m->host, host, sizeof m->host);
                m->pref = pref;
                m->frame = frame;
                d->mx_next = (d->mx_next + 1) % MX_DNS_MX_SLOTS;
                if (d->mx_used < MX_DNS_MX_SLOTS) d->mx_used++;
            }
        } else if (type == 52 && rdlen > 3 && rdlen - 3 <= 64 && !strncmp(qname, "_", 1)) {
            /* TLSA for _port._tcp.host: usage, selector, matching type, data */
            char *dot = strchr(qname, '.');
            if (dot && !strncasecmp(dot, "._tcp.", 6) && dot[6]) {
                mx_dns_tlsa *t = &d->tlsa[d->tlsa_next];
                memset(t, 0, sizeof *t);
                t->port = (uint16_t)atoi(qname + 1);
                snprintf(t->host, sizeof t->host, "%s", dot + 6);
                t->usage = c.p[0];
                t->selector = c.p[1];
                t->mtype = c.p[2];
                t->len = (uint8_t)(rdlen - 3);
                memcpy(t->data, c.p + 3, t->len);
                t->frame = frame;
                d->tlsa_next = (d->tlsa_next + 1) % MX_DNS_TLSA_SLOTS;
                if (d->tlsa_used < MX_DNS_TLSA_SLOTS) d->tlsa_used++;
            }
        } else if ((type == 1 && rdlen == 4) || (type == 28 && rdlen == 16)) {
            mx_dns_entry *e = &d->slot[d->next];
            memset(e, 0, sizeof *e);
            memcpy(e->addr.b, c.p, rdlen);
            e->addr.v6 = type == 28;
            memcpy(e->name, qname, sizeof e->name);
            e->frame = frame;
            e->us = us;
            d->next = (d->next + 1) % MX_DNS_SLOTS;
            if (d->used < MX_DNS_SLOTS) d->used++;
            added++;
        }
        mx_cur_skip(&c, rdlen);
    }
    return added;
}

const mx_dns_mx *mx_dns_mx_of(const mx_dns *d, const char *host)
{
    for (uint32_t k = 0; k < d->mx_used; k++) {
        const mx_dns_mx *m = &d->mx[(d->mx_next + MX_DNS_MX_SLOTS - 1 - k) % MX_DNS_MX_SLOTS];
        if (!strcasecmp(m->host, host)) return m;
    }
    return NULL;
}

int mx_dns_tlsa_of(const mx_dns *d, const char *host, uint16_t port, const mx_dns_tlsa **out, int max)
{
    int n = 0;
    uint64_t frame = 0;
    for (uint32_t k = 0; k < d->tlsa_used && n < max; k++) {
        const mx_dns_tlsa *t = &d->tlsa[(d->tlsa_next + MX_DNS_TLSA_SLOTS - 1 - k) % MX_DNS_TLSA_SLOTS];
        if (t->port != port || strcasecmp(t->host, host)) continue;
        if (n && t->frame != frame) break;             /* an older answer */
        frame = t->frame;
        out[n++] = t;
    }
    return n;
}

const mx_dns_entry *mx_dns_lookup(const mx_dns *d, const mx_addr *a)
{
    /* newest first */
    for (uint32_t k = 0; k < d->used; k++) {
        const mx_dns_entry *e = &d->slot[(d->next + MX_DNS_SLOTS - 1 - k) % MX_DNS_SLOTS];
        if (e->addr.v6 == a->v6 && memcmp(e->addr.b, a->b, 16) == 0) return e;
    }
    return NULL;
}
