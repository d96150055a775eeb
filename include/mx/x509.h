/* x509.h - certificates and hashes through OpenSSL's libcrypto.
 *
 * The only module that includes OpenSSL headers.  Certificates are parsed
 * from DER as they came off the wire; checks are made against the capture's
 * own clock, never the machine's.
 */
#ifndef MX_X509_H
#define MX_X509_H

#include <stddef.h>
#include <stdint.h>

#include "mx/session.h"

/* Lower-case hex digests into out (md5: 33 bytes, sha256: 65 bytes). */
void mx_md5_hex(const void *p, size_t n, char *out);
void mx_sha256_hex(const void *p, size_t n, char *out);

/* Community ID v1 of a TCP connection ("1:" + base64 SHA-1 of the ordered
 * endpoints, seed 0) into out (>= 40 bytes). */
void mx_community_id(const mx_addr *a, uint16_t ap, const mx_addr *b, uint16_t bp, char *out, size_t cap);

typedef struct mx_cert_checks {
    int expired, not_yet_valid, self_signed, chain_order_ok, parse_errors;
    int names_checked;       /* host names tested against the leaf       */
    int name_mismatch;       /* a tested name is not covered            */
    char leaf_cn[256];
    char issuer_cn[128];     /* of the leaf                              */
    char root_cn[128];       /* issuer of the last certificate sent      */
    char not_after[32];      /* of the leaf, ISO-8601                   */
    char uncovered[160];     /* names the leaf does not cover           */
} mx_cert_checks;

/* Writes the chain (array of DER certificates) as a "chain" array into ev and
 * the checks into an object "checks": validity at now_us, self-signed, order,
 * and whether each of the names (NULL entries skipped) is covered by the
 * leaf's SANs/CN.  Fills *out for the session summary. */
/* A cache of parsed certificates, keyed by SHA-256 (one per engine). */
typedef struct mx_cert_cache mx_cert_cache;
mx_cert_cache *mx_cert_cache_new(unsigned slots);
void mx_cert_cache_free(mx_cert_cache *c);

void mx_cert_chain(mx_ev *ev, const uint8_t *const *der, const size_t *len, int n,
                   uint64_t now_us, const char *const *names, const char *const *name_src,
                   int nnames, size_t field_cap, mx_cert_cache *cache, mx_cert_checks *out);

/* DANE (RFC 6698, RFC 7672): whether one of the TLSA records matches the
 * chain the server sent (usage 3 and 1 the first certificate, 2 and 0 any
 * of them; selector 0 the certificate, 1 its SubjectPublicKeyInfo; matching
 * type 0 exact, 1 SHA-256, 2 SHA-512).  Returns the index of the first
 * record that matches, -1 if none does. */
struct mx_dns_tlsa;
int mx_dane_match(const uint8_t *const *der, const size_t *len, int n, const struct mx_dns_tlsa *t, int nt);

#endif
