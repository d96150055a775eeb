/* x509.c - certificate parsing and checks, hashes (see x509.h). */
#include "mx/x509.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void hex(const unsigned char *d, unsigned n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) { out[2 * i] = h[d[i] >> 4]; out[2 * i + 1] = h[d[i] & 15]; }
    out[2 * n] = 0;
}

static void digest(const EVP_MD *md, const void *p, size_t n, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (!EVP_Digest(p, n, d, &dl, md, NULL)) { out[0] = 0; return; }
    hex(d, dl, out);
}

void mx_md5_hex(const void *p, size_t n, char *out) { digest(EVP_md5(), p, n, out); }
void mx_sha256_hex(const void *p, size_t n, char *out) { digest(EVP_sha256(), p, n, out); }

void mx_community_id(const mx_addr *a, uint16_t ap, const mx_addr *b, uint16_t bp, char *out, size_t cap)
{
    /* seed(2) saddr daddr proto(1) pad(1) sport(2) dport(2), the smaller
     * endpoint first */
    size_t al = a->v6 ? 16 : 4;
    int swap = memcmp(a->b, b->b, al);
    if (swap == 0) swap = ap < bp ? -1 : ap > bp;
    if (swap > 0) { const mx_addr *t = a; a = b; b = t; uint16_t tp = ap; ap = bp; bp = tp; }
    unsigned char buf[2 + 16 + 16 + 2 + 4], d[20];
    size_t o = 0;
    buf[o++] = 0; buf[o++] = 0;
    memcpy(buf + o, a->b, al); o += al;
    memcpy(buf + o, b->b, al); o += al;
    buf[o++] = 6; buf[o++] = 0;
    buf[o++] = (unsigned char)(ap >> 8); buf[o++] = (unsigned char)ap;
    buf[o++] = (unsigned char)(bp >> 8); buf[o++] = (unsigned char)bp;
    unsigned dl = 0;
    if (!EVP_Digest(buf, o, d, &dl, EVP_sha1(), NULL) || cap < 32) { if (cap) out[0] = 0; return; }
    memcpy(out, "1:", 2);
    EVP_EncodeBlock((unsigned char *)out + 2, d, 20);
}

/* RFC 2253 form of a name into buf. */
static void name_str(const X509_NAME *nm, char *buf, size_t cap)
{
    buf[0] = 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return;
    X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int n = BIO_read(b, buf, (int)cap - 1);
    buf[n > 0 ? n : 0] = 0;
    BIO_free(b);
}

static int asn1_us(const ASN1_TIME *t, int64_t *us)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm)) return 0;
    *us = (int64_t)timegm(&tm) * 1000000;
    return 1;
}

static void iso(int64_t us, char *buf, size_t cap)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void put(mx_ev *o, const char *k, const char *v, size_t cap)
{
    mx_ev_wire(o, k, (const uint8_t *)v, strlen(v), cap);
}

void mx_cert_chain(mx_ev *ev, const uint8_t *const *der, const size_t *len, int n,
                   uint64_t now_us, const char *const *names, const char *const *name_src,
                   int nnames, size_t cap, mx_cert_checks *out)
{
    X509 *certs[16] = { 0 };
    char buf[1024];
    memset(out, 0, sizeof *out);
    out->chain_order_ok = 1;
    if (n > 16) n = 16;
    mx_ev *chain = mx_ev_arr(ev, "chain");
    for (int i = 0; i < n; i++) {
        const unsigned char *p = der[i];
        X509 *x = d2i_X509(NULL, &p, (long)len[i]);
        mx_ev *c = mx_ev_push_obj(chain);
        char fp[65];
        mx_sha256_hex(der[i], len[i], fp);
        mx_ev_str(c, "sha256", fp);
        mx_ev_int(c, "der_bytes", (int64_t)len[i]);
        if (!x) { mx_ev_bool(c, "parse_error", 1); out->parse_errors++; continue; }
        certs[i] = x;
        name_str(X509_get_subject_name(x), buf, sizeof buf);
        put(c, "subject", buf, cap);
        name_str(X509_get_issuer_name(x), buf, sizeof buf);
        put(c, "issuer", buf, cap);
        const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
        if (sn) { hex(sn->data, (unsigned)(sn->length > 64 ? 64 : sn->length), buf); mx_ev_str(c, "serial", buf); }
        int64_t nb = 0, na = 0;
        int hnb = asn1_us(X509_get0_notBefore(x), &nb), hna = asn1_us(X509_get0_notAfter(x), &na);
        if (hnb) { iso(nb, buf, sizeof buf); mx_ev_str(c, "not_before", buf); }
        if (hna) { iso(na, buf, sizeof buf); mx_ev_str(c, "not_after", buf); }
        if (hna && (int64_t)now_us > na) { mx_ev_bool(c, "expired", 1); if (i == 0) out->expired = 1; }
        if (hnb && (int64_t)now_us < nb) { mx_ev_bool(c, "not_yet_valid", 1); if (i == 0) out->not_yet_valid = 1; }
        GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        if (sans) {
            mx_ev *a = mx_ev_arr(c, "san");
            for (int k = 0; k < sk_GENERAL_NAME_num(sans) && k < 100; k++) {
                GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, k);
                if (g->type == GEN_DNS) {
                    const ASN1_IA5STRING *s = g->d.dNSName;
                    mx_ev_push_wire(a, s->data, (size_t)s->length, cap);
                } else if (g->type == GEN_IPADD) {
                    const ASN1_OCTET_STRING *s = g->d.iPAddress;
                    if (s->length == 4) {
                        snprintf(buf, sizeof buf, "%u.%u.%u.%u", s->data[0], s->data[1], s->data[2], s->data[3]);
                        mx_ev_push_str(a, buf);
                    }
                } else if (g->type == GEN_EMAIL) {
                    const ASN1_IA5STRING *s = g->d.rfc822Name;
                    mx_ev_push_wire(a, s->data, (size_t)s->length, cap);
                }
            }
            GENERAL_NAMES_free(sans);
        }
        EVP_PKEY *pk = X509_get0_pubkey(x);
        if (pk) {
            int id = EVP_PKEY_get_base_id(pk);
            const char *kt = id == EVP_PKEY_RSA ? "RSA" : id == EVP_PKEY_EC ? "EC" : id == EVP_PKEY_ED25519 ? "Ed25519"
                           : id == EVP_PKEY_ED448 ? "Ed448" : id == EVP_PKEY_DSA ? "DSA" : "other";
            mx_ev_str(c, "key_type", kt);
            mx_ev_int(c, "key_bits", EVP_PKEY_get_bits(pk));
        }
        int sig = X509_get_signature_nid(x);
        if (sig != NID_undef) mx_ev_str(c, "signature_algorithm", OBJ_nid2ln(sig));
        /* Self-signed: issued by its own subject and signed by its own key
         * (X509_check_issued also wants keyCertSign, which leaf
         * certificates made self-signed usually lack). */
        EVP_PKEY *own = X509_get0_pubkey(x);
        int self = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0 &&
                   own && X509_verify(x, own) == 1;
        if (self) { mx_ev_bool(c, "self_signed", 1); if (i == 0) out->self_signed = 1; }
        if (i == 0) {
            if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out->leaf_cn, sizeof out->leaf_cn) < 0)
                out->leaf_cn[0] = 0;
            if (X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, out->issuer_cn, sizeof out->issuer_cn) < 0)
                out->issuer_cn[0] = 0;
            if (hna) iso(na, out->not_after, sizeof out->not_after);
        }
        if (i > 0 && certs[i - 1] && X509_check_issued(x, certs[i - 1]) != X509_V_OK) out->chain_order_ok = 0;
        if (X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, out->root_cn, sizeof out->root_cn) < 0)
            out->root_cn[0] = 0;
    }
    mx_ev *ck = mx_ev_obj(ev, "checks");
    mx_ev_bool(ck, "expired", out->expired);
    mx_ev_bool(ck, "not_yet_valid", out->not_yet_valid);
    mx_ev_bool(ck, "self_signed", out->self_signed);
    if (n > 1) mx_ev_bool(ck, "chain_order_ok", out->chain_order_ok);
    if (certs[0] && nnames > 0) {
        mx_ev *na = mx_ev_arr(ck, "names");
        for (int k = 0; k < nnames; k++) {
            if (!names[k] || !names[k][0]) continue;
            int ok = X509_check_host(certs[0], names[k], strlen(names[k]), 0, NULL) == 1;
            mx_ev *o = mx_ev_push_obj(na);
            put(o, "name", names[k], cap);
            mx_ev_str(o, "source", name_src[k]);
            mx_ev_bool(o, "covered", ok);
            out->names_checked++;
            if (!ok) {
                out->name_mismatch++;
                size_t ul = strlen(out->uncovered);
                snprintf(out->uncovered + ul, sizeof out->uncovered - ul, "%s%s", ul ? ", " : "", names[k]);
            }
        }
    }
    for (int i = 0; i < n; i++) X509_free(certs[i]);
}
