/* tls.c - TLS record layer (RFC 8446 §5.1, RFC 5246 §6.2).
 *
 *   struct { uint8 type; uint16 version; uint16 length; opaque body[length]; }
 *
 * Records are followed by their length with O(1) state per direction; bodies
 * are skipped without being stored.
 */
#include "mx/tls.h"

#include <stdlib.h>
#include <string.h>

typedef struct tls_dir {
    uint8_t hdr[5];
    uint8_t hlen;          /* header bytes collected     */
    uint32_t body_left;    /* bytes of the current body  */
    uint64_t bytes, records, by_type[4];
    uint8_t not_tls;
} tls_dir;

struct mx_tls {
    mx_sess *s;
    tls_dir d[2];
};

mx_tls *mx_tls_new(mx_sess *s)
{
    mx_tls *t = calloc(1, sizeof *t);
    if (t) t->s = s;
    return t;
}

void mx_tls_free(mx_tls *t) { free(t); }

size_t mx_tls_feed(mx_tls *t, int dir, const uint8_t *p, size_t n, int force)
{
    (void)force;
    if (!t) return n;
    tls_dir *d = &t->d[dir];
    size_t i = 0;
    d->bytes += n;
    if (d->not_tls) return n;
    while (i < n) {
        if (d->body_left) {
            size_t take = n - i < d->body_left ? n - i : d->body_left;
            d->body_left -= (uint32_t)take;
            i += take;
            continue;
        }
        d->hdr[d->hlen++] = p[i++];
        if (d->hlen < 5) continue;
        d->hlen = 0;
        uint8_t type = d->hdr[0];
        uint16_t len = (uint16_t)((d->hdr[3] << 8) | d->hdr[4]);
        if (type < 20 || type > 23 || d->hdr[1] != 3 || len > 16384 + 2048) {
            d->not_tls = 1;
            mx_sess_anomaly(t->s, dir, "not_tls", "bytes are not TLS records");
            return n;
        }
        d->records++;
        d->by_type[type - 20]++;
        d->body_left = len;
    }
    return n;
}

void mx_tls_gap(mx_tls *t, int dir, uint32_t len)
{
    if (!t) return;
    tls_dir *d = &t->d[dir];
    if (len <= d->body_left) { d->body_left -= len; return; }
    d->not_tls = 1;            /* lost the record boundary */
}

void mx_tls_eof(mx_tls *t, int dir) { (void)t; (void)dir; }

void mx_tls_summary(const mx_tls *t, mx_ev *o)
{
    if (!t || !o) return;
    static const char *names[2] = { "client", "server" };
    for (int i = 0; i < 2; i++) {
        mx_ev *d = mx_ev_obj(o, names[i]);
        mx_ev_int(d, "bytes", (int64_t)t->d[i].bytes);
        mx_ev_int(d, "records", (int64_t)t->d[i].records);
        mx_ev_int(d, "application_data_records", (int64_t)t->d[i].by_type[3]);
    }
}
