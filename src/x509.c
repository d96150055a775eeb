/* x509.c - certificate parsing and checks, hashes (see x509.h). */
#include "mx/x509.h"
#include "mx/dns.h"
#include "mx/text.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static void hex(const unsigned char *d, unsigned n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) { out[2 * i] = h[d[i] >> 4]; out[2 * i + 1] = h[d[i] & 15]; }
    out[2 * n] = 0;
}

/* A thread's digest state: one context, used again and again (EVP_Digest
 * makes and frees one at every call), and the last digests of short texts
 * (JA3 and JA4 hash the same few lists of ciphers and extensions again and
 * again: the clients of a mail server are a handful of TLS stacks), each
 * kept with its input and confirmed byte for byte.  Freed when the thread
 * ends. */
enum { MEMO_N = 64, MEMO_MAX = 1536 };
typedef struct memo {
    uint64_t h;
    uint32_t n;
    int which;                    /* -1: empty */
    char out[EVP_MAX_MD_SIZE * 2 + 1];
    unsigned char in[MEMO_MAX];
} memo;
typedef struct tstate {
    EVP_MD_CTX *ctx;
    memo m[MEMO_N];
} tstate;
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static int ctx_keyed;
static void ctx_free(void *v)
{
    tstate *t = v;
    EVP_MD_CTX_free(t->ctx);
    free(t);
}
static void ctx_init(void) { ctx_keyed = pthread_key_create(&ctx_key, ctx_free) == 0; }

static tstate *thread_state(void)
{
    pthread_once(&ctx_once, ctx_init);
    if (!ctx_keyed) return NULL;
    tstate *t = pthread_getspecific(ctx_key);
    if (t) return t;
    if (!(t = malloc(sizeof *t))) return NULL;
    if (!(t->ctx = EVP_MD_CTX_new()) || pthread_setspecific(ctx_key, t) != 0) {
        EVP_MD_CTX_free(t->ctx);
        free(t);
        return NULL;
    }
    for (int i = 0; i < MEMO_N; i++) t->m[i].which = -1;
    return t;
}

static void digest_memo(int which, const EVP_MD *md, const void *p, size_t n, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    tstate *t = thread_state();
    memo *m = NULL;
    uint64_t h = 0;
    if (t && n <= MEMO_MAX) {
        h = mx_quick_hash(p, n);
        m = &t->m[h % MEMO_N];
        if (m->which == which && m->h == h && m->n == n && !memcmp(m->in, p, n)) {
            memcpy(out, m->out, strlen(m->out) + 1);
            return;
        }
    }
    int ok = t ? EVP_DigestInit_ex(t->ctx, md, NULL) && EVP_DigestUpdate(t->ctx, p, n) && EVP_DigestFinal_ex(t->ctx, d, &dl)
               : EVP_Digest(p, n, d, &dl, md, NULL);
    if (!ok) { out[0] = 0; return; }
    hex(d, dl, out);
    if (m) {
        m->which = which;
        m->h = h;
        m->n = (uint32_t)n;
        memcpy(m->in, p, n);
        memcpy(m->out, out, 2 * dl + 1);
    }
}


/* OpenSSL 3 looks a digest up (under a lock) at every EVP_Digest() given
 * EVP_sha256() and the like; fetched once, it is not.  A fetched digest is
 * read-only and shared by every thread; it lives as long as the process. */
enum { MD_MD5, MD_SHA256, MD_SHA1 };
static EVP_MD *md_cache[3];
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static void md_fetch(void)
{
    static const char *const names[3] = { "MD5", "SHA256", "SHA1" };
    for (int i = 0; i < 3; i++) md_cache[i] = EVP_MD_fetch(NULL, names[i], NULL);
}
static const EVP_MD *md(int which)
{
    pthread_once(&md_once, md_fetch);
    if (md_cache[which]) return md_cache[which];
    return which == MD_MD5 ? EVP_md5() : which == MD_SHA256 ? EVP_sha256() : EVP_sha1();
}

void mx_md5_hex(const void *p, size_t n, char *out) { digest_memo(MD_MD5, md(MD_MD5), p, n, out); }
void mx_sha256_hex(const void *p, size_t n, char *out) { digest_memo(MD_SHA256, md(MD_SHA256), p, n, out); }

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
    if (!EVP_Digest(buf, o, d, &dl, md(MD_SHA1), NULL) || cap < 32) { if (cap) out[0] = 0; return; }
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
    if (cap) buf[0] = 0;
    if (gmtime_r(&s, &tm)) strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void put(mx_ev *o, const char *k, const char *v, size_t cap)
{
    mx_ev_wire(o, k, (const uint8_t *)v, strlen(v), cap);
}

/* ---- parsed-certificate cache ----------------------------------------------
 * Mail servers present the same certificate to every client, and OpenSSL's
 * decoding (the public key especially) dominates the cost of a TLS session.
 * Parsed certificates are kept in a small direct-mapped cache keyed by their
 * SHA-256; a collision simply replaces the older entry. */

#define SAN_MAX 24
#define HOSTS_KEPT 4

/* A host name checked against a certificate, and whether it is covered. */
typedef struct host_seen {
    char name[128];
    int covered;
} host_seen;

typedef struct cert_entry {
    uint64_t key;            /* quick hash of the DER (see der_key)       */
    uint8_t *der;            /* the DER itself, to confirm a hit          */
    size_t der_len;
    int used;
    X509 *x;
    char fp[65];
    char subject[512], issuer[512], serial[130];
    int has_nb, has_na;
    int64_t nb, na;
    char san[SAN_MAX][128];
    int nsan;
    const char *key_type, *sig;
    int key_bits, self_signed;
    char cn[256], issuer_cn[128];
    char nb_txt[32], na_txt[32];     /* the dates, as written             */
    host_seen hosts[HOSTS_KEPT];     /* the last names checked (ring)      */
    int nhosts;
    char issuer_fp[65];              /* the certificate checked as issuer  */
    int issuer_ok;                   /* (X509_check_issued said OK)        */
} cert_entry;

struct mx_cert_cache {
    cert_entry *e;
    unsigned slots;         /* power of two */
    uint64_t hits, misses;
};

mx_cert_cache *mx_cert_cache_new(unsigned slots)
{
    mx_cert_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    unsigned n = 1;
    while (n < slots) n <<= 1;
    c->slots = n;            /* the table itself comes with the first certificate */
    return c;
}

void mx_cert_cache_free(mx_cert_cache *c)
{
    if (!c) return;
    for (unsigned i = 0; c->e && i < c->slots; i++) { X509_free(c->e[i].x); free(c->e[i].der); }
    free(c->e);
    free(c);
}

static void fill(cert_entry *ce, X509 *x)
{
    char buf[200];
    name_str(X509_get_subject_name(x), ce->subject, sizeof ce->subject);
    name_str(X509_get_issuer_name(x), ce->issuer, sizeof ce->issuer);
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    ce->serial[0] = 0;
    if (sn) hex(sn->data, (unsigned)(sn->length > 64 ? 64 : sn->length), ce->serial);
    ce->has_nb = asn1_us(X509_get0_notBefore(x), &ce->nb);
    ce->has_na = asn1_us(X509_get0_notAfter(x), &ce->na);
    ce->nb_txt[0] = ce->na_txt[0] = 0;
    if (ce->has_nb) iso(ce->nb, ce->nb_txt, sizeof ce->nb_txt);
    if (ce->has_na) iso(ce->na, ce->na_txt, sizeof ce->na_txt);
    ce->nhosts = 0;
    ce->issuer_fp[0] = 0;
    ce->nsan = 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (sans) {
        for (int k = 0; k < sk_GENERAL_NAME_num(sans) && ce->nsan < SAN_MAX; k++) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, k);
            const ASN1_STRING *str = NULL;
            if (g->type == GEN_DNS) str = g->d.dNSName;
            else if (g->type == GEN_EMAIL) str = g->d.rfc822Name;
            else if (g->type == GEN_IPADD && g->d.iPAddress->length == 4) {
                const unsigned char *a = g->d.iPAddress->data;
                snprintf(ce->san[ce->nsan++], sizeof ce->san[0], "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
                continue;
            }
            if (!str) continue;
            size_t l = (size_t)str->length < sizeof ce->san[0] - 1 ? (size_t)str->length : sizeof ce->san[0] - 1;
            memcpy(ce->san[ce->nsan], str->data, l);
            ce->san[ce->nsan][l] = 0;
            for (size_t i = 0; i < l; i++) if (!ce->san[ce->nsan][i]) ce->san[ce->nsan][i] = '?';
            ce->nsan++;
        }
        GENERAL_NAMES_free(sans);
    }
    EVP_PKEY *pk = X509_get0_pubkey(x);
    ce->key_type = NULL;
    ce->key_bits = 0;
    if (pk) {
        int id = EVP_PKEY_get_base_id(pk);
        ce->key_type = id == EVP_PKEY_RSA ? "RSA" : id == EVP_PKEY_EC ? "EC" : id == EVP_PKEY_ED25519 ? "Ed25519"
                     : id == EVP_PKEY_ED448 ? "Ed448" : id == EVP_PKEY_DSA ? "DSA" : "other";
        ce->key_bits = EVP_PKEY_get_bits(pk);
    }
    int sig = X509_get_signature_nid(x);
    ce->sig = sig != NID_undef ? OBJ_nid2ln(sig) : NULL;
    /* Self-signed: issued by its own subject and signed by its own key
     * (X509_check_issued also wants keyCertSign, which leaf certificates
     * made self-signed usually lack). */
    ce->self_signed = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0 && pk &&
                      X509_verify(x, pk) == 1;
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, ce->cn, sizeof ce->cn) < 0) ce->cn[0] = 0;
    if (X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, ce->issuer_cn, sizeof ce->issuer_cn) < 0)
        ce->issuer_cn[0] = 0;
    (void)buf;
}

/* A 64-bit hash of a certificate, eight bytes a step.  It only picks the
 * cache slot and rules out most misses; a hit is confirmed by comparing the
 * DER, so a certificate made to collide costs a parse, never a wrong answer.
 * (A SHA-256 here cost more than the rest of the handshake's parsing.) */
static uint64_t der_key(const uint8_t *p, size_t n) { return mx_quick_hash(p, n); }

static void entry_clear(cert_entry *ce)
{
    X509_free(ce->x);
    ce->x = NULL;
    free(ce->der);
    ce->der = NULL;
    ce->der_len = 0;
    ce->used = 0;
    ce->nhosts = 0;
    ce->issuer_fp[0] = 0;
}

/* Whether the certificate covers host name h (X509_check_host decodes the
 * names again at every call: the last few answers are kept). */
static int covers(cert_entry *ce, const char *h)
{
    size_t hl = strlen(h);
    int kept = ce->nhosts < HOSTS_KEPT ? ce->nhosts : HOSTS_KEPT;
    for (int i = 0; i < kept; i++)
        if (strcmp(ce->hosts[i].name, h) == 0) return ce->hosts[i].covered;
    int ok = X509_check_host(ce->x, h, hl, 0, NULL) == 1;
    if (hl < sizeof ce->hosts[0].name) {
        host_seen *hs = &ce->hosts[ce->nhosts++ % HOSTS_KEPT];
        memcpy(hs->name, h, hl + 1);
        hs->covered = ok;
    }
    return ok;
}

/* Whether issuer issued ce (kept for the last issuer asked about, known
 * by its SHA-256). */
static int issued_by(cert_entry *ce, const cert_entry *issuer)
{
    if (ce->issuer_fp[0] && strcmp(ce->issuer_fp, issuer->fp) == 0) return ce->issuer_ok;
    int ok = X509_check_issued(issuer->x, ce->x) == X509_V_OK;
    memcpy(ce->issuer_fp, issuer->fp, sizeof ce->issuer_fp);
    ce->issuer_ok = ok;
    return ok;
}

/* The parsed certificate for der, from the cache or freshly parsed into a
 * cache slot (or into *tmp when there is no cache).  NULL if unparsable. */
static cert_entry *lookup(mx_cert_cache *c, const uint8_t *der, size_t len, cert_entry *tmp)
{
    uint64_t key = der_key(der, len);
    cert_entry *ce = tmp;
    if (c && !c->e && !(c->e = calloc(c->slots, sizeof *c->e))) c = NULL;
    if (c) {
        ce = &c->e[(key >> 7) & (c->slots - 1)];
        if (ce->used && ce->key == key && ce->der_len == len && memcmp(ce->der, der, len) == 0) {
            c->hits++;
            return ce;
        }
        c->misses++;
    }
    entry_clear(ce);
    if (c) {
        /* keep the DER to confirm later hits */
        if (!(ce->der = malloc(len ? len : 1))) return NULL;
        memcpy(ce->der, der, len);
        ce->der_len = len;
    }
    ce->key = key;
    mx_sha256_hex(der, len, ce->fp);
    const unsigned char *p = der;
    ce->x = d2i_X509(NULL, &p, (long)len);
    if (!ce->x) return NULL;
    fill(ce, ce->x);
    ce->used = 1;
    return ce;
}

void mx_cert_chain(mx_ev *ev, const uint8_t *const *der, const size_t *len, int n,
                   uint64_t now_us, const char *const *names, const char *const *name_src,
                   int nnames, size_t cap, mx_cert_cache *cache, mx_cert_checks *out)
{
    cert_entry *ents[16] = { 0 }, tmp[2];
    memset(out, 0, sizeof *out);
    /* (the spare entries, for a run without a cache: only what
     * entry_clear and lookup read is set) */
    for (int i = 0; i < 2; i++) { tmp[i].x = NULL; tmp[i].der = NULL; tmp[i].der_len = 0; tmp[i].used = 0; tmp[i].nhosts = 0; tmp[i].issuer_fp[0] = 0; }
    out->chain_order_ok = 1;
    if (n > 16) n = 16;
    mx_ev *chain = mx_ev_arr(ev, "chain");
    for (int i = 0; i < n; i++) {
        /* without a cache, keep the leaf (names are checked against it) and
         * the one before (chain order) in tmp[] */
        cert_entry *ce = lookup(cache, der[i], len[i], &tmp[i & 1]);
        mx_ev *c = mx_ev_push_obj(chain);
        if (!ce) {
            char fp[65];
            mx_sha256_hex(der[i], len[i], fp);
            mx_ev_str(c, "sha256", fp);
            mx_ev_int(c, "der_bytes", (int64_t)len[i]);
            mx_ev_bool(c, "parse_error", 1);
            out->parse_errors++;
            continue;
        }
        ents[i] = ce;
        mx_ev_str(c, "sha256", ce->fp);
        mx_ev_int(c, "der_bytes", (int64_t)len[i]);
        put(c, "subject", ce->subject, cap);
        put(c, "issuer", ce->issuer, cap);
        if (ce->serial[0]) mx_ev_str(c, "serial", ce->serial);
        if (ce->has_nb) mx_ev_str(c, "not_before", ce->nb_txt);
        if (ce->has_na) mx_ev_str(c, "not_after", ce->na_txt);
        if (ce->has_na && (int64_t)now_us > ce->na) { mx_ev_bool(c, "expired", 1); if (i == 0) out->expired = 1; }
        if (ce->has_nb && (int64_t)now_us < ce->nb) { mx_ev_bool(c, "not_yet_valid", 1); if (i == 0) out->not_yet_valid = 1; }
        if (ce->nsan) {
            mx_ev *a = mx_ev_arr(c, "san");
            for (int k = 0; k < ce->nsan; k++) mx_ev_push_wire(a, (const uint8_t *)ce->san[k], strlen(ce->san[k]), cap);
        }
        if (ce->key_type) { mx_ev_lit(c, "key_type", ce->key_type); mx_ev_int(c, "key_bits", ce->key_bits); }
        if (ce->sig) mx_ev_str(c, "signature_algorithm", ce->sig);
        if (ce->self_signed) { mx_ev_bool(c, "self_signed", 1); if (i == 0) out->self_signed = 1; }
        if (i == 0) {
            mx_copy_str(out->leaf_cn, sizeof out->leaf_cn, ce->cn);
            mx_copy_str(out->issuer_cn, sizeof out->issuer_cn, ce->issuer_cn);
            if (ce->has_na) mx_copy_str(out->not_after, sizeof out->not_after, ce->na_txt);
        }
        if (i > 0 && ents[i - 1] && !issued_by(ents[i - 1], ce)) out->chain_order_ok = 0;
        mx_copy_str(out->root_cn, sizeof out->root_cn, ce->issuer_cn);
        if (!cache && i >= 2) ents[i - 2] = NULL;      /* its tmp slot is reused */
    }
    X509 *leaf = ents[0] ? ents[0]->x : NULL;
    mx_ev *ck = mx_ev_obj(ev, "checks");
    mx_ev_bool(ck, "expired", out->expired);
    mx_ev_bool(ck, "not_yet_valid", out->not_yet_valid);
    mx_ev_bool(ck, "self_signed", out->self_signed);
    if (n > 1) mx_ev_bool(ck, "chain_order_ok", out->chain_order_ok);
    if (leaf && nnames > 0) {
        mx_ev *na = mx_ev_arr(ck, "names");
        for (int k = 0; k < nnames; k++) {
            if (!names[k] || !names[k][0]) continue;
            int ok = covers(ents[0], names[k]);
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
    if (!cache) { entry_clear(&tmp[0]); entry_clear(&tmp[1]); }
}

/* ---- DANE ----------------------------------------------------------------------- */

static int tlsa_matches(const mx_dns_tlsa *t, const uint8_t *der, size_t len)
{
    const uint8_t *sel = der;
    size_t sl = len;
    uint8_t *spki = NULL;
    if (t->selector == 1) {
        const unsigned char *p = der;
        X509 *x = d2i_X509(NULL, &p, (long)len);
        int l = x ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki) : -1;
        X509_free(x);
        if (l <= 0) return 0;
        sel = spki;
        sl = (size_t)l;
    } else if (t->selector != 0) {
        return 0;
    }
    int ok = 0;
    if (t->mtype == 0) {
        ok = sl == t->len && !memcmp(sel, t->data, sl);
    } else if (t->mtype == 1 || t->mtype == 2) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned dl = 0;
        ok = EVP_Digest(sel, sl, d, &dl, t->mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL) && dl == t->len &&
             !memcmp(d, t->data, dl);
    }
    OPENSSL_free(spki);
    return ok;
}

int mx_dane_match(const uint8_t *const *der, const size_t *len, int n, const mx_dns_tlsa *t, int nt)
{
    for (int r = 0; r < nt; r++) {
        int leaf_only = t[r].usage == 3 || t[r].usage == 1;
        for (int i = 0; i < n && (!leaf_only || i == 0); i++)
            if (tlsa_matches(&t[r], der[i], len[i])) return r;
    }
    return -1;
}
