/* Unit tests: DNS answers (A, MX with name compression, TLSA) and the DANE
 * match of a certificate chain against TLSA records. */
#include "check.h"
#include "mx/dns.h"
#include "mx/x509.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>

static uint8_t msg[1024];
static size_t ml;

static void put8(uint8_t v) { msg[ml++] = v; }
static void put16(uint16_t v) { put8((uint8_t)(v >> 8)); put8((uint8_t)v); }
static void name(const char *n)
{
    while (*n) {
        const char *dot = strchr(n, '.');
        size_t l = dot ? (size_t)(dot - n) : strlen(n);
        put8((uint8_t)l);
        memcpy(msg + ml, n, l);
        ml += l;
        n += l + (dot ? 1 : 0);
    }
    put8(0);
}

/* A response header and its question. */
static void start(const char *q, uint16_t qtype, uint16_t an)
{
    ml = 0;
    put16(0x1234); put16(0x8180); put16(1); put16(an); put16(0); put16(0);
    name(q);
    put16(qtype); put16(1);
}

static void rr_head(uint16_t type, uint16_t rdlen)
{
    put16(0xC00C);                  /* the question's name */
    put16(type); put16(1);
    put16(0); put16(300);           /* ttl */
    put16(rdlen);
}

static size_t der_of(const char *path, uint8_t **der)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    int l = x ? i2d_X509(x, der) : -1;
    X509_free(x);
    return l > 0 ? (size_t)l : 0;
}

int main(int argc, char **argv)
{
    mx_dns *d = calloc(1, sizeof *d);
    /* MX example.test: 10 mx1.example.test, 20 mx2.example.test (the
     * exchangers' names compressed against the question) */
    start("example.test", 15, 2);
    rr_head(15, 2 + 4 + 2);
    put16(10); put8(3); memcpy(msg + ml, "mx1", 3); ml += 3; put16(0xC00C);
    rr_head(15, 2 + 4 + 2);
    put16(20); put8(3); memcpy(msg + ml, "mx2", 3); ml += 3; put16(0xC00C);
    CHECK(mx_dns_response(d, msg, ml, 5, 1) == 0 && d->mx_used == 2, "two MX answers (no address)");
    const mx_dns_mx *m = mx_dns_mx_of(d, "MX1.example.test");
    CHECK(m && !strcmp(m->domain, "example.test") && m->pref == 10 && m->frame == 5, "mx1 is example.test's exchanger");
    m = mx_dns_mx_of(d, "mx2.example.test");
    CHECK(m && m->pref == 20, "mx2 too");
    CHECK(!mx_dns_mx_of(d, "mx3.example.test"), "no other");
    /* A mx1.example.test */
    start("mx1.example.test", 1, 1);
    rr_head(1, 4);
    put8(10); put8(30); put8(0); put8(11);
    CHECK(mx_dns_response(d, msg, ml, 6, 2) == 1, "an A answer");
    mx_addr a = { .v6 = 0 };
    inet_pton(AF_INET, "10.30.0.11", a.b);
    const mx_dns_entry *e = mx_dns_lookup(d, &a);
    CHECK(e && !strcmp(e->name, "mx1.example.test"), "the address is mx1's");
    /* an MX whose exchanger's name points past the message is refused */
    start("bad.test", 15, 1);
    rr_head(15, 4);
    put16(10); put16(0xC3FF);
    CHECK(mx_dns_response(d, msg, ml, 7, 3) == 0 && d->mx_used == 2, "a bad compression pointer: nothing");

    /* DANE: 3 1 1 of the leaf's SubjectPublicKeyInfo, 2 0 1 of its issuer */
    const char *dir = argc > 1 ? argv[1] : "pcaps/tls/certs";
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/mail.testlab.example.pem", dir);
    snprintf(p2, sizeof p2, "%s/intermediate-ca.pem", dir);
    uint8_t *leaf = NULL, *ca = NULL;
    size_t ll = der_of(p1, &leaf), cl = der_of(p2, &ca);
    CHECK(ll && cl, "the test certificates (%s)", dir);
    if (ll && cl) {
        const unsigned char *q = leaf;
        X509 *x = d2i_X509(NULL, &q, (long)ll);
        uint8_t *spki = NULL;
        int sl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
        X509_free(x);
        uint8_t h[64];
        unsigned hl = 0;
        EVP_Digest(spki, (size_t)sl, h, &hl, EVP_sha256(), NULL);
        OPENSSL_free(spki);
        /* the record as a DNS answer */
        start("_25._tcp.mx1.example.test", 52, 1);
        rr_head(52, (uint16_t)(3 + hl));
        put8(3); put8(1); put8(1);
        memcpy(msg + ml, h, hl);
        ml += hl;
        CHECK(mx_dns_response(d, msg, ml, 8, 4) == 0 && d->tlsa_used == 1, "a TLSA answer");
        const mx_dns_tlsa *t[8];
        int nt = mx_dns_tlsa_of(d, "mx1.example.test", 25, t, 8);
        CHECK(nt == 1 && t[0]->usage == 3 && t[0]->selector == 1 && t[0]->mtype == 1 && t[0]->len == 32,
              "TLSA 3 1 1 for _25._tcp.mx1.example.test");
        CHECK(mx_dns_tlsa_of(d, "mx1.example.test", 587, t, 8) == 0, "none for port 587");
        const uint8_t *der[2] = { leaf, ca };
        size_t len[2] = { ll, cl };
        mx_dns_tlsa r = *t[0];
        CHECK(mx_dane_match(der, len, 2, &r, 1) == 0, "3 1 1 matches the leaf's key");
        r.data[0] ^= 1;
        CHECK(mx_dane_match(der, len, 2, &r, 1) < 0, "a changed digest does not");
        /* 2 0 1: the issuer's whole certificate */
        mx_dns_tlsa r2 = { .usage = 2, .selector = 0, .mtype = 1, .len = 32 };
        EVP_Digest(ca, cl, r2.data, &hl, EVP_sha256(), NULL);
        mx_dns_tlsa both[2] = { r, r2 };
        CHECK(mx_dane_match(der, len, 2, both, 2) == 1, "2 0 1 matches the issuer sent in the chain");
        both[1].usage = 3;
        CHECK(mx_dane_match(der, len, 2, both, 2) < 0, "as 3 0 1 (the leaf only) it does not");
        OPENSSL_free(leaf);
        OPENSSL_free(ca);
    }
    free(d);
    return CHECK_DONE();
}
