/* Unit tests: the TLS record layer and handshake parsers, fed whole, split
 * at every offset and byte by byte (implicit TLS, as on port 465). */
#include "check.h"
#include "harness.h"

#include "mx/text.h"
#include "mx/tls.h"
#include "mx/verdict.h"
#include "mx/x509.h"

#include <stdlib.h>

typedef struct buf { uint8_t b[8192]; size_t n; } buf;

static void u8(buf *b, unsigned v) { b->b[b->n++] = (uint8_t)v; }
static void u16(buf *b, unsigned v) { u8(b, v >> 8); u8(b, v & 0xFF); }
static void u24(buf *b, unsigned v) { u8(b, v >> 16); u16(b, v & 0xFFFF); }
static void bytes(buf *b, const void *p, size_t n) { memcpy(b->b + b->n, p, n); b->n += n; }
static void put16at(buf *b, size_t at, unsigned v) { b->b[at] = (uint8_t)(v >> 8); b->b[at + 1] = (uint8_t)v; }
static void put24at(buf *b, size_t at, unsigned v) { b->b[at] = (uint8_t)(v >> 16); put16at(b, at + 1, v & 0xFFFF); }

/* Wraps a handshake body in a handshake header, then in records of at most
 * `frag` bytes each (so messages can straddle records). */
static void records(buf *out, const buf *hs, size_t frag, unsigned type)
{
    for (size_t o = 0; o < hs->n; o += frag) {
        size_t k = hs->n - o < frag ? hs->n - o : frag;
        u8(out, type); u16(out, 0x0303); u16(out, (unsigned)k);
        bytes(out, hs->b + o, k);
    }
}

static void client_hello(buf *hs, int tls13)
{
    static const uint8_t random[32];
    u8(hs, 1); size_t len = hs->n; u24(hs, 0);
    u16(hs, 0x0303); bytes(hs, random, 32); u8(hs, 0);
    u16(hs, 8); u16(hs, 0x0A0A); u16(hs, 0x1302); u16(hs, 0xC030); u16(hs, 0x009C);   /* GREASE first */
    u8(hs, 1); u8(hs, 0);
    size_t ext = hs->n; u16(hs, 0);
    u16(hs, 0x1A1A); u16(hs, 0);                                  /* GREASE extension */
    const char *sni = "mail.example.com";
    u16(hs, 0); u16(hs, (unsigned)strlen(sni) + 5); u16(hs, (unsigned)strlen(sni) + 3); u8(hs, 0);
    u16(hs, (unsigned)strlen(sni)); bytes(hs, sni, strlen(sni));
    u16(hs, 10); u16(hs, 6); u16(hs, 4); u16(hs, 29); u16(hs, 23);            /* groups */
    u16(hs, 11); u16(hs, 2); u8(hs, 1); u8(hs, 0);                             /* point formats */
    u16(hs, 13); u16(hs, 6); u16(hs, 4); u16(hs, 0x0403); u16(hs, 0x0804);     /* sig algs */
    u16(hs, 16); u16(hs, 7); u16(hs, 5); u8(hs, 4); bytes(hs, "smtp", 4);     /* ALPN */
    if (tls13) { u16(hs, 43); u16(hs, 5); u8(hs, 4); u16(hs, 0x0304); u16(hs, 0x0303); }
    put16at(hs, ext, (unsigned)(hs->n - ext - 2));
    put24at(hs, len, (unsigned)(hs->n - len - 3));
}

/* The ClientHello above with one thing changed (variant 1..9), for the
 * fingerprints: 0 none, 1 a cipher, 2 the ciphers' order, 3 no SNI, 4 the
 * ALPN, 5 a group, 6 the point format, 7 a signature algorithm, 8 TLS 1.3's
 * versions, 9 another GREASE value (which the fingerprints leave out). */
static void client_hello_v(buf *hs, int v)
{
    static const uint8_t random[32];
    u8(hs, 1); size_t len = hs->n; u24(hs, 0);
    u16(hs, 0x0303); bytes(hs, random, 32); u8(hs, 0);
    u16(hs, 8); u16(hs, v == 9 ? 0x2A2A : 0x0A0A);
    if (v == 2) { u16(hs, 0xC030); u16(hs, 0x1302); } else { u16(hs, 0x1302); u16(hs, 0xC030); }
    u16(hs, v == 1 ? 0x009D : 0x009C);
    u8(hs, 1); u8(hs, 0);
    size_t ext = hs->n; u16(hs, 0);
    u16(hs, v == 9 ? 0x3A3A : 0x1A1A); u16(hs, 0);
    const char *sni = "mail.example.com";
    if (v != 3) {
        u16(hs, 0); u16(hs, (unsigned)strlen(sni) + 5); u16(hs, (unsigned)strlen(sni) + 3); u8(hs, 0);
        u16(hs, (unsigned)strlen(sni)); bytes(hs, sni, strlen(sni));
    }
    u16(hs, 10); u16(hs, 6); u16(hs, 4); u16(hs, 29); u16(hs, v == 5 ? 24 : 23);
    u16(hs, 11); u16(hs, 2); u8(hs, 1); u8(hs, v == 6 ? 1 : 0);
    u16(hs, 13); u16(hs, 6); u16(hs, 4); u16(hs, 0x0403); u16(hs, v == 7 ? 0x0805 : 0x0804);
    const char *alpn = v == 4 ? "h2" : "smtp";
    u16(hs, 16); u16(hs, (unsigned)strlen(alpn) + 3); u16(hs, (unsigned)strlen(alpn) + 1); u8(hs, (unsigned)strlen(alpn));
    bytes(hs, alpn, strlen(alpn));
    if (v == 8) { u16(hs, 43); u16(hs, 5); u8(hs, 4); u16(hs, 0x0304); u16(hs, 0x0303); }
    put16at(hs, ext, (unsigned)(hs->n - ext - 2));
    put24at(hs, len, (unsigned)(hs->n - len - 3));
}

/* The "ja3" and "ja4" of a session that is only this ClientHello. */
static void fingerprints_of(int v, char ja3[40], char ja4[64])
{
    buf ch = { .n = 0 }, c1 = { .n = 0 };
    client_hello_v(&ch, v);
    records(&c1, &ch, 1000, 22);
    mxh_chunk t[] = { { MX_CLIENT, (const char *)c1.b, c1.n }, { -2, NULL, 0 } };
    int same;
    char *o = mxh_feed_all("fingerprints", t, 1, 0, &same);
    const char *a = strstr(o, "\"ja3\":\""), *b = strstr(o, "\"ja4\":\"");
    snprintf(ja3, 40, "%.32s", a ? a + 7 : "");
    snprintf(ja4, 64, "%.36s", b ? b + 7 : "");
    free(o);
}

static void server_hello(buf *hs, unsigned cipher, int tls13)
{
    static const uint8_t random[32] = { 1 };
    u8(hs, 2); size_t len = hs->n; u24(hs, 0);
    u16(hs, 0x0303); bytes(hs, random, 32); u8(hs, 0); u16(hs, cipher); u8(hs, 0);
    size_t ext = hs->n; u16(hs, 0);
    if (tls13) { u16(hs, 43); u16(hs, 2); u16(hs, 0x0304); }
    put16at(hs, ext, (unsigned)(hs->n - ext - 2));
    put24at(hs, len, (unsigned)(hs->n - len - 3));
}

/* A record of the given type whose body looks encrypted: bytes of 0x80 and
 * above, which can never start a record header (type 20-24, version 3.x). */
static void opaque(buf *b, unsigned type, size_t n, unsigned seed)
{
    u8(b, type); u16(b, 0x0303); u16(b, (unsigned)n);
    for (size_t i = 0; i < n; i++) u8(b, 0x80 | ((i * 37 + seed) & 0x7F));
}

/* Bytes with no record header anywhere in them (the rest of a lost record). */
static void garbage(buf *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) u8(b, 0x80 | ((i * 53 + seed) & 0x7F));
}

/* A TLS 1.2 handshake that completes: the hellos (no certificate), the
 * client's key exchange, both ChangeCipherSpecs and encrypted Finished. */
static void tls12_complete(buf *c1, buf *s1, buf *c2, buf *s2)
{
    buf ch = { .n = 0 }, sh = { .n = 0 }, kx = { .n = 0 };
    client_hello(&ch, 0);
    records(c1, &ch, 1000, 22);
    server_hello(&sh, 0xC030, 0);
    u8(&sh, 14); u24(&sh, 0);                                   /* ServerHelloDone */
    records(s1, &sh, 1000, 22);
    u8(&kx, 16); u24(&kx, 4); u8(&kx, 3); u8(&kx, 1); u8(&kx, 2); u8(&kx, 3);
    records(c2, &kx, 1000, 22);
    u8(c2, 20); u16(c2, 0x0303); u16(c2, 1); u8(c2, 1);
    opaque(c2, 22, 40, 1);                                      /* encrypted Finished */
    u8(s2, 20); u16(s2, 0x0303); u16(s2, 1); u8(s2, 1);
    opaque(s2, 22, 40, 2);
}

/* Like mxh_run/mxh_feed_all, for a connection whose start is not in the
 * capture (midstream) when asked, and with holes in either direction (dir
 * -1: client, -3: server); the verdict from the facts into *v. */
static char *run(const mxh_chunk *cs, int midstream, int mode, int which, size_t at, mx_verdict *v)
{
    mx_harness h;
    mxh_init(&h, 1, 0);
    h.sess.midstream = (uint8_t)midstream;
    mxh_play(&h, cs, mode, which, at);
    char *r = strdup(mxh_finish(&h));
    if (v) {
        mx_facts f;
        mx_facts_init(&f);
        f.implicit_tls = 1;
        f.midstream = midstream;
        mx_tls_facts(h.sess.tls, &f);
        mx_verdict_decide(&f, v);
    }
    mxh_free(&h);
    return r;
}

static char *feed_all(const char *name, const mxh_chunk *cs, int midstream, int *same, mx_verdict *v)
{
    char *base = run(cs, midstream, 0, 0, 0, v), *nb = mxh_normalise(base);
    *same = 1;
    for (int i = 0; cs[i].dir != -2 && *same; i++) {
        if (cs[i].dir < 0) continue;
        for (size_t at = 1; at < cs[i].n && *same; at++) {
            char *o = run(cs, midstream, 1, i, at, NULL), *no = mxh_normalise(o);
            if (strcmp(nb, no) != 0) {
                *same = 0;
                fprintf(stderr, "%s: chunk %d split at %zu differs:\n--- whole\n%s--- split\n%s", name, i, at, nb, no);
            }
            free(o);
            free(no);
        }
    }
    char *o = run(cs, midstream, 2, 0, 0, NULL), *no = mxh_normalise(o);
    if (strcmp(nb, no) != 0) {
        *same = 0;
        fprintf(stderr, "%s: byte-by-byte differs:\n--- whole\n%s--- bytes\n%s", name, nb, no);
    }
    free(o);
    free(no);
    free(nb);
    return base;
}

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* A certificate of pcaps/tls/certs as DER (the directory is found from this
 * file's path); 0 if it cannot be read. */
static size_t load_cert(const char *file, uint8_t *der, size_t cap)
{
    char path[1024];
    const char *src = __FILE__, *slash = strrchr(src, '/');
    snprintf(path, sizeof path, "%.*s/../pcaps/tls/certs/%s", slash ? (int)(slash - src) : 1, slash ? src : ".", file);
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    static char pem[16384];
    size_t n = fread(pem, 1, sizeof pem - 1, fp);
    fclose(fp);
    pem[n] = 0;
    char *b = strstr(pem, "-----BEGIN CERTIFICATE-----"), *e = b ? strstr(b, "-----END CERTIFICATE-----") : NULL;
    if (!b || !e) return 0;
    b += strlen("-----BEGIN CERTIFICATE-----");
    long k = mx_base64_decode((const uint8_t *)b, (size_t)(e - b), der, cap);
    return k > 0 ? (size_t)k : 0;
}

int main(void)
{
    {   /* JA3/JA4 of ClientHellos that differ in one thing each, in turns
         * (the fingerprints of a client stack are kept per thread: each
         * must be its own hello's) */
        char j3[10][40], j4[10][64], k3[40], k4[64];
        for (int v = 0; v < 10; v++) fingerprints_of(v, j3[v], j4[v]);
        char want[33];
        static const char base[] = "771,4866-49200-156,0-10-11-13-16,29-23,0";
        mx_md5_hex(base, strlen(base), want);
        CHECK(strcmp(j3[0], want) == 0, "JA3 of the base hello: md5 of %s (%s)", base, j3[0]);
        /* which of the two each change is in: JA3 has the ciphers in their
         * order, the extensions, groups and point formats; JA4 the sorted
         * ciphers and extensions, SNI or not, the ALPN, the signature
         * algorithms and the top version */
        static const int in3[10] = { 0, 1, 1, 1, 0, 1, 1, 0, 1, 0 }, in4[10] = { 0, 1, 0, 1, 1, 0, 0, 1, 1, 0 };
        int distinct = 1;
        for (int v = 1; v < 9; v++) {
            int d3 = strcmp(j3[v], j3[0]) != 0, d4 = strcmp(j4[v], j4[0]) != 0;
            if (d3 != in3[v] || d4 != in4[v]) { distinct = 0; fprintf(stderr, "variant %d: %s %s\n", v, j3[v], j4[v]); }
        }
        CHECK(distinct, "each change moves the fingerprints that cover it, and only those");
        CHECK(!strcmp(j3[9], j3[0]) && !strcmp(j4[9], j4[0]), "other GREASE values: the same fingerprints");
        int again = 1;
        for (int v = 9; v >= 0; v--) {
            fingerprints_of(v, k3, k4);
            again &= !strcmp(k3, j3[v]) && !strcmp(k4, j4[v]);
        }
        CHECK(again, "the same hellos again, in the other order: the same fingerprints");
    }
    {   /* TLS 1.2: hellos, a certificate that does not parse, server done, client alert */
        const char *name = "tls12-rejected";
        buf ch = { .n = 0 }, c1 = { .n = 0 }, sh = { .n = 0 }, s1 = { .n = 0 }, a = { .n = 0 };
        client_hello(&ch, 0);
        records(&c1, &ch, 1000, 22);
        server_hello(&sh, 0xC030, 0);
        u8(&sh, 11); u24(&sh, 3 + 3 + 4); u24(&sh, 3 + 4); u24(&sh, 4); bytes(&sh, "junk", 4);  /* Certificate */
        u8(&sh, 14); u24(&sh, 0);                                                              /* ServerHelloDone */
        records(&s1, &sh, 30, 22);            /* the flight straddles several records */
        u8(&a, 21); u16(&a, 0x0303); u16(&a, 2); u8(&a, 2); u8(&a, 48);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)a.b, a.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = mxh_feed_all(name, t, 1, 0, &same);
        CHECK(same, "%s: whole, split and byte-by-byte feeding give the same events", name);
        CHECK(strstr(o, "\"sni\":\"mail.example.com\"") != NULL, "%s: SNI", name);
        CHECK(strstr(o, "\"alpn\":\"smtp\"") != NULL, "%s: ALPN", name);
        CHECK(strstr(o, "\"cipher_suites\":3") != NULL, "%s: GREASE left out of the count", name);
        CHECK(strstr(o, "\"groups\":[\"x25519\",\"secp256r1\"]") != NULL, "%s: groups", name);
        CHECK(strstr(o, "\"ja4\":\"t12d0305sp_") != NULL, "%s: JA4 prefix (%s)", name, strstr(o, "\"ja4\""));
        CHECK(strstr(o, "\"version\":\"TLSv1.2\",\"cipher\":\"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\"") != NULL, "%s: ServerHello", name);
        CHECK(strstr(o, "\"parse_error\":true") != NULL, "%s: unparsable certificate reported", name);
        CHECK(strstr(o, "\"message\":\"server_hello_done\"") != NULL, "%s: ServerHelloDone", name);
        CHECK(strstr(o, "\"level\":\"fatal\",\"code\":48,\"description\":\"unknown_ca\",\"encrypted\":false,\"after\":\"server_hello_done\",\"after_from\":\"server\"") != NULL,
              "%s: alert with the step it followed", name);
        free(o);
    }
    {   /* TLS 1.3: after the ServerHello everything is encrypted; the client
         * answers with one short record and nothing more */
        const char *name = "tls13-probable-rejection";
        buf ch = { .n = 0 }, c1 = { .n = 0 }, sh = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 };
        client_hello(&ch, 1);
        records(&c1, &ch, 1000, 22);
        server_hello(&sh, 0x1302, 1);
        records(&s1, &sh, 1000, 22);
        u8(&s1, 20); u16(&s1, 0x0303); u16(&s1, 1); u8(&s1, 1);            /* compatibility CCS */
        u8(&s1, 23); u16(&s1, 0x0303); u16(&s1, 40); for (int i = 0; i < 40; i++) u8(&s1, i);
        u8(&c2, 20); u16(&c2, 0x0303); u16(&c2, 1); u8(&c2, 1);
        u8(&c2, 23); u16(&c2, 0x0303); u16(&c2, 19); for (int i = 0; i < 19; i++) u8(&c2, i);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = mxh_feed_all(name, t, 1, 0, &same);
        CHECK(same, "%s: whole, split and byte-by-byte feeding give the same events", name);
        CHECK(strstr(o, "\"supported_versions\":[\"TLSv1.3\",\"TLSv1.2\"]") != NULL, "%s: versions", name);
        CHECK(strstr(o, "\"version\":\"TLSv1.3\",\"cipher\":\"TLS_AES_256_GCM_SHA384\"") != NULL, "%s: ServerHello", name);
        CHECK(strstr(o, "\"probable_rejection\":true") != NULL, "%s: probable rejection", name);
        CHECK(strstr(o, "tls.change_cipher_spec") == NULL, "%s: TLS 1.3 compatibility CCS is not an event", name);
        CHECK(strstr(o, "\"handshake_complete\":false") != NULL, "%s: not complete", name);
        free(o);
    }
    {   /* not TLS on a TLS port */
        const char *name = "not-tls";
        mxh_chunk t[] = { { MX_CLIENT, "xyzzy 1\r\n", 9 }, { -2, NULL, 0 } };
        int same;
        char *o = mxh_feed_all(name, t, 1, 0, &same);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"kind\":\"not_tls\"") != NULL, "%s: reported", name);
        free(o);
        /* clear SMTP there is followed as SMTP instead */
        mxh_chunk t2[] = { { MX_CLIENT, "EHLO x\r\n", 8 }, { -2, NULL, 0 } };
        o = mxh_feed_all(name, t2, 1, 0, &same);
        CHECK(same, "%s: same events however fed (SMTP)", name);
        CHECK(strstr(o, "\"kind\":\"plaintext_on_tls_port\"") != NULL && strstr(o, "not_tls") == NULL,
              "%s: SMTP on the TLS port", name);
        free(o);
    }
    {   /* a hole in the client's encrypted records, then the rest of the
         * lost record and two whole records: the parser finds the boundary
         * again and sees the final (encrypted) alert */
        const char *name = "gap-then-records";
        buf c1 = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 }, s2 = { .n = 0 }, c3 = { .n = 0 }, c4 = { .n = 0 };
        tls12_complete(&c1, &s1, &c2, &s2);
        opaque(&c3, 23, 100, 3);
        garbage(&c4, 37, 4);                    /* the end of a record whose start was lost */
        opaque(&c4, 23, 30, 5);
        opaque(&c4, 21, 26, 6);                 /* encrypted alert: 2 bytes + nonce + tag */
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)s2.b, s2.n },
            { MX_CLIENT, (const char *)c3.b, c3.n }, { -1, NULL, 50 },
            { MX_CLIENT, (const char *)c4.b, c4.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: whole, split and byte-by-byte feeding give the same events", name);
        CHECK(strstr(o, "\"kind\":\"tls_gap\"") != NULL, "%s: the hole is reported", name);
        CHECK(strstr(o, "\"kind\":\"tls_resync\",\"detail\":\"records followed again from a record header 37 bytes after the lost bytes\"") != NULL,
              "%s: boundary found after the 37 bytes left of the lost record", name);
        CHECK(strstr(o, "\"from\":\"client\",\"encrypted\":true,\"probably\":\"close_notify\"") != NULL, "%s: the alert after the hole", name);
        CHECK(strstr(o, "\"client\":{\"bytes\":") != NULL && strstr(o, ",\"records\":7,") != NULL,
              "%s: 1 + 3 + 1 records before the hole, 2 after, none invented (%s)", name, strstr(o, "\"client\":{"));
        CHECK(strstr(o, "not_tls") == NULL, "%s: never given up", name);
        free(o);
    }
    {   /* the hole ends where a record starts: that header is taken at once */
        const char *name = "gap-at-boundary";
        buf c1 = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 }, s2 = { .n = 0 }, c4 = { .n = 0 };
        tls12_complete(&c1, &s1, &c2, &s2);
        opaque(&c4, 21, 26, 6);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)s2.b, s2.n },
            { -1, NULL, 300 }, { MX_CLIENT, (const char *)c4.b, c4.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "record header 0 bytes after the lost bytes") != NULL, "%s: nothing skipped", name);
        CHECK(strstr(o, "\"from\":\"client\",\"encrypted\":true,\"probably\":\"close_notify\"") != NULL, "%s: the alert", name);
        free(o);
    }
    {   /* after the hole, bytes that look almost like a header: wrong version,
         * content type 25, a two-byte ChangeCipherSpec, the version not
         * negotiated, and one plausible header not followed by another */
        const char *name = "gap-then-lookalikes";
        static const uint8_t fake[] = {
            0x17, 0x03, 0x05, 0x00, 0x10,   0x19, 0x03, 0x03, 0x00, 0x10,   0x14, 0x03, 0x03, 0x00, 0x02,
            0x17, 0x03, 0x01, 0x00, 0x10,
            0x17, 0x03, 0x03, 0x00, 0x08, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
            0x00, 0x00, 0x00, 0x00, 0x00,
        };
        buf c1 = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 }, s2 = { .n = 0 }, c4 = { .n = 0 };
        tls12_complete(&c1, &s1, &c2, &s2);
        garbage(&c4, 3, 7);
        bytes(&c4, fake, sizeof fake);
        size_t skipped = c4.n;
        opaque(&c4, 23, 64, 8);
        opaque(&c4, 21, 26, 9);
        char want[128];
        snprintf(want, sizeof want, "record header %zu bytes after the lost bytes", skipped);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)s2.b, s2.n },
            { -1, NULL, 1000 }, { MX_CLIENT, (const char *)c4.b, c4.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, want) != NULL, "%s: no look-alike taken (%s)", name, want);
        CHECK(strstr(o, ",\"records\":6,") != NULL, "%s: 1 + 3 records before, 2 after (%s)", name, strstr(o, "\"client\":{"));
        CHECK(count(o, "\"type\":\"tls.alert\"") == 1 && strstr(o, "\"encrypted\":true,\"probably\":\"close_notify\"") != NULL,
              "%s: one alert, the real one", name);
        free(o);
    }
    {   /* right after the hole a plausible header whose record is followed by
         * garbage: the boundary was wrong, the parser looks again */
        const char *name = "gap-false-start";
        buf c1 = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 }, s2 = { .n = 0 }, c4 = { .n = 0 };
        tls12_complete(&c1, &s1, &c2, &s2);
        u8(&c4, 0x17); u16(&c4, 0x0303); u16(&c4, 4); garbage(&c4, 4, 10);
        garbage(&c4, 20, 11);
        opaque(&c4, 23, 30, 12);
        opaque(&c4, 21, 26, 13);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)s2.b, s2.n },
            { -1, NULL, 100 }, { MX_CLIENT, (const char *)c4.b, c4.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"kind\":\"tls_resync_failed\"") != NULL, "%s: the wrong boundary is noticed", name);
        CHECK(strstr(o, "\"encrypted\":true,\"probably\":\"close_notify\"") != NULL, "%s: the alert is still found", name);
        CHECK(strstr(o, "not_tls") == NULL, "%s: never given up", name);
        free(o);
    }
    {   /* after the hole, one record and the end: no second header can
         * confirm it, and nothing more will come, so its header decides */
        const char *name = "gap-last-record";
        buf c1 = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 }, s2 = { .n = 0 }, c4 = { .n = 0 };
        tls12_complete(&c1, &s1, &c2, &s2);
        garbage(&c4, 11, 14);
        opaque(&c4, 21, 26, 15);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)s2.b, s2.n },
            { -1, NULL, 100 }, { MX_CLIENT, (const char *)c4.b, c4.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "record header 11 bytes after the lost bytes") != NULL, "%s: found at the end", name);
        CHECK(strstr(o, "\"encrypted\":true,\"probably\":\"close_notify\"") != NULL, "%s: the alert", name);
        free(o);
    }
    {   /* a hole inside a record whose end is known: nothing to look for */
        const char *name = "gap-inside-record";
        buf c1 = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 }, s2 = { .n = 0 }, c3 = { .n = 0 }, c4 = { .n = 0 };
        tls12_complete(&c1, &s1, &c2, &s2);
        opaque(&c3, 23, 500, 16);
        c3.n -= 300;                            /* the last 300 bytes of its body are lost */
        opaque(&c4, 21, 26, 17);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)s2.b, s2.n },
            { MX_CLIENT, (const char *)c3.b, c3.n }, { -1, NULL, 300 },
            { MX_CLIENT, (const char *)c4.b, c4.n }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "tls_gap") == NULL && strstr(o, "tls_resync") == NULL, "%s: the boundary was never lost", name);
        CHECK(strstr(o, "\"encrypted\":true,\"probably\":\"close_notify\"") != NULL, "%s: the alert", name);
        free(o);
    }
    {   /* a capture that starts after the handshake: an alert record of 26
         * bytes is encrypted, not a clear close_notify of level "unknown" */
        const char *name = "midstream-alert";
        buf c = { .n = 0 };
        opaque(&c, 21, 26, 18);
        c.b[5] = 0; c.b[6] = 0;                  /* ciphertext that starts like "unknown close_notify" */
        mxh_chunk t[] = { { MX_CLIENT, (const char *)c.b, c.n }, { -2, NULL, 0 } };
        int same;
        mx_verdict v;
        char *o = feed_all(name, t, 1, &same, &v);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"type\":\"tls.alert\",") != NULL && strstr(o, "\"encrypted\":true,\"probably\":\"close_notify\",\"after\":\"nothing\"") != NULL,
              "%s: encrypted, most likely the close_notify", name);
        CHECK(strstr(o, "\"level\"") == NULL && strstr(o, "\"description\"") == NULL, "%s: no clear alert invented", name);
        CHECK(strstr(o, "tls_resync") == NULL && strstr(o, "not_tls") == NULL, "%s: the capture starts on a record", name);
        CHECK(strstr(v.explanation, "ClientHello") == NULL, "%s: no ClientHello in the verdict (%s)", name, v.explanation);
        CHECK(v.cause == NULL || strcmp(v.cause, "encrypted_alert") != 0, "%s: not a rejection (%s)", name, v.cause);
        free(o);
    }
    {   /* a capture that starts inside a record: the first header is found */
        const char *name = "midstream-inside-record";
        buf c = { .n = 0 };
        garbage(&c, 25, 19);
        opaque(&c, 23, 40, 20);
        opaque(&c, 21, 26, 21);
        mxh_chunk t[] = { { MX_CLIENT, (const char *)c.b, c.n }, { -2, NULL, 0 } };
        int same;
        char *o = feed_all(name, t, 1, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "record header 25 bytes into the capture") != NULL, "%s: found after 25 bytes", name);
        CHECK(strstr(o, "\"encrypted\":true,\"probably\":\"close_notify\"") != NULL, "%s: the alert", name);
        CHECK(strstr(o, ",\"records\":2,") != NULL, "%s: two records", name);
        free(o);
    }
    {   /* the same bytes at the start of a connection seen from its SYN are
         * not TLS: only a mid-stream capture looks for a boundary */
        const char *name = "start-inside-record-not-midstream";
        buf c = { .n = 0 };
        garbage(&c, 25, 19);
        opaque(&c, 23, 40, 20);
        mxh_chunk t[] = { { MX_CLIENT, (const char *)c.b, c.n }, { -2, NULL, 0 } };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"kind\":\"not_tls\"") != NULL, "%s: not TLS", name);
        free(o);
    }
    {   /* a hole inside the server's handshake record: the certificate it
         * cut is lost, the rest of it in the next record is not taken for a
         * message, and the ServerHelloDone after it is still read */
        const char *name = "gap-in-handshake-record";
        buf ch = { .n = 0 }, c1 = { .n = 0 }, sh = { .n = 0 }, s1 = { .n = 0 };
        client_hello(&ch, 0);
        records(&c1, &ch, 1000, 22);
        server_hello(&sh, 0xC030, 0);
        size_t cert_at = sh.n;
        u8(&sh, 11); u24(&sh, 3 + 3 + 900); u24(&sh, 3 + 900); u24(&sh, 900);
        for (int i = 0; i < 900; i++) u8(&sh, 0x41);
        u8(&sh, 14); u24(&sh, 0);
        records(&s1, &sh, 300, 22);             /* records of 300 bytes: the certificate spans four */
        size_t cut = 5 + cert_at + 100;         /* 100 bytes into the certificate, in the first record */
        size_t lost = 150;
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, cut }, { -3, NULL, lost },
            { MX_SERVER, (const char *)s1.b + cut + lost, s1.n - cut - lost }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"type\":\"tls.server_hello\"") != NULL, "%s: ServerHello before the hole", name);
        CHECK(strstr(o, "\"type\":\"tls.certificate\"") == NULL, "%s: the cut certificate is not made up", name);
        CHECK(strstr(o, "\"message\":\"server_hello_done\"") != NULL, "%s: ServerHelloDone after it", name);
        CHECK(strstr(o, "bytes lost inside a handshake record") != NULL, "%s: reported", name);
        CHECK(strstr(o, "\"message\":\"unknown\"") == NULL && strstr(o, "limit.max_tls_msg") == NULL,
              "%s: no message parsed from the middle of the lost one", name);
        free(o);
    }
    {   /* a hole across the end of one handshake message and the start of
         * the next: the rest of that record cannot be read, the next record
         * can */
        const char *name = "gap-across-handshake-messages";
        buf ch = { .n = 0 }, c1 = { .n = 0 }, sh = { .n = 0 }, s1 = { .n = 0 }, m2 = { .n = 0 };
        client_hello(&ch, 0);
        records(&c1, &ch, 1000, 22);
        server_hello(&sh, 0xC030, 0);
        size_t cert_at = sh.n;
        u8(&sh, 11); u24(&sh, 3 + 3 + 50); u24(&sh, 3 + 50); u24(&sh, 50);
        for (int i = 0; i < 50; i++) u8(&sh, 0x41);
        u8(&sh, 12); u24(&sh, 40); for (int i = 0; i < 40; i++) u8(&sh, 0x42);  /* ServerKeyExchange */
        records(&s1, &sh, 1000, 22);
        u8(&m2, 13); u24(&m2, 4); u8(&m2, 1); u8(&m2, 1); u16(&m2, 0);          /* CertificateRequest */
        u8(&m2, 14); u24(&m2, 0);
        records(&s1, &m2, 1000, 22);
        size_t cut = 5 + cert_at + 30, lost = 40;      /* the certificate's end, the key exchange's header */
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, cut }, { -3, NULL, lost },
            { MX_SERVER, (const char *)s1.b + cut + lost, s1.n - cut - lost }, { -2, NULL, 0 },
        };
        int same;
        char *o = feed_all(name, t, 0, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"type\":\"tls.certificate\"") == NULL && strstr(o, "tls.server_key_exchange") == NULL,
              "%s: neither cut message is made up", name);
        CHECK(strstr(o, "\"message\":\"certificate_request\"") != NULL && strstr(o, "\"message\":\"server_hello_done\"") != NULL,
              "%s: the next record is read", name);
        CHECK(strstr(o, "\"client_certificate\":{\"requested\":true") != NULL, "%s: the request counts", name);
        free(o);
    }
    {   /* a capture that starts inside a connection on a TLS port whose
         * bytes are not TLS at all */
        const char *name = "midstream-not-tls";
        mxh_chunk t[] = { { MX_CLIENT, "xyzzy x\r\nplugh FROM:<a@b>\r\n", 26 }, { -2, NULL, 0 } };
        int same;
        char *o = feed_all(name, t, 1, &same, NULL);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"kind\":\"not_tls\"") != NULL, "%s: reported at the end", name);
        free(o);
    }
    {   /* after a hole, more bytes than a record can span without a header */
        const char *name = "gap-then-no-tls";
        buf c1 = { .n = 0 }, s1 = { .n = 0 }, c2 = { .n = 0 }, s2 = { .n = 0 };
        tls12_complete(&c1, &s1, &c2, &s2);
        size_t n = 40000;
        uint8_t *g = malloc(n);
        for (size_t i = 0; i < n; i++) g[i] = (uint8_t)(0x80 | ((i * 53) & 0x7F));
        memcpy(g + 39000, "\x17\x03\x03\x00\x05\x80\x80\x80\x80\x80\x17\x03\x03\x00\x01", 15);   /* too late */
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)s2.b, s2.n },
            { -1, NULL, 100 }, { MX_CLIENT, (const char *)g, n }, { -2, NULL, 0 },
        };
        char *o = run(t, 0, 0, 0, 0, NULL), *b = run(t, 0, 2, 0, 0, NULL);
        char *no = mxh_normalise(o), *nb = mxh_normalise(b);
        CHECK(strcmp(no, nb) == 0, "%s: whole and byte by byte give the same events", name);
        CHECK(strstr(o, "no TLS record header in the bytes after the lost ones") != NULL, "%s: given up", name);
        CHECK(strstr(o, "tls_resync\"") == NULL, "%s: no boundary taken", name);
        free(o); free(b); free(no); free(nb); free(g);
    }
    {   /* the server asks for a client certificate; the client answers with
         * an empty Certificate; the server refuses with handshake_failure */
        const char *name = "client-cert-empty";
        uint8_t der[4096];
        size_t dn = load_cert("mail.testlab.example.pem", der, sizeof der);
        CHECK(dn > 0, "%s: test certificate readable", name);
        buf ch = { .n = 0 }, c1 = { .n = 0 }, sh = { .n = 0 }, s1 = { .n = 0 }, cc = { .n = 0 }, c2 = { .n = 0 }, a = { .n = 0 };
        client_hello(&ch, 0);
        records(&c1, &ch, 1000, 22);
        server_hello(&sh, 0xC030, 0);
        u8(&sh, 11); u24(&sh, (unsigned)(3 + 3 + dn)); u24(&sh, (unsigned)(3 + dn)); u24(&sh, (unsigned)dn); bytes(&sh, der, dn);
        u8(&sh, 13); u24(&sh, 4); u8(&sh, 1); u8(&sh, 1); u16(&sh, 0);     /* CertificateRequest */
        u8(&sh, 14); u24(&sh, 0);
        records(&s1, &sh, 1200, 22);
        u8(&cc, 11); u24(&cc, 3); u24(&cc, 0);                             /* empty Certificate */
        u8(&cc, 16); u24(&cc, 4); u8(&cc, 3); u8(&cc, 1); u8(&cc, 2); u8(&cc, 3);
        records(&c2, &cc, 1000, 22);
        u8(&c2, 20); u16(&c2, 0x0303); u16(&c2, 1); u8(&c2, 1);
        opaque(&c2, 22, 40, 22);
        u8(&a, 21); u16(&a, 0x0303); u16(&a, 2); u8(&a, 2); u8(&a, 40);
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)a.b, a.n }, { -2, NULL, 0 },
        };
        int same;
        mx_verdict v;
        char *o = feed_all(name, t, 0, &same, &v);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"from\":\"server\",\"certificates\":1,\"chain\":[{") != NULL, "%s: the server's chain from the server", name);
        CHECK(strstr(o, "\"from\":\"client\",\"certificates\":0,\"requested\":true}") != NULL, "%s: the client's empty one from the client", name);
        CHECK(strstr(o, "\"certificate\":{\"subject_cn\":\"mail.testlab.example\"") != NULL, "%s: the server's name is kept", name);
        CHECK(strstr(o, "\"client_certificate\":{\"requested\":true,\"certificates\":0}") != NULL, "%s: summary", name);
        CHECK(strcmp(v.code, "tls_rejected_by_server") == 0 && v.cause && strcmp(v.cause, "client_certificate_required") == 0,
              "%s: verdict %s (%s)", name, v.code, v.cause ? v.cause : "-");
        CHECK(strstr(v.explanation, "required a client certificate and the client sent none") != NULL &&
              strstr(v.explanation, "empty Certificate") != NULL && strstr(v.explanation, "handshake_failure (40)") != NULL,
              "%s: explanation names the evidence (%s)", name, v.explanation);
        CHECK(strstr(v.log_line, "cipher") == NULL, "%s: not a cipher problem (%s)", name, v.log_line);
        free(o);
    }
    {   /* the client does send a certificate (of another name): it is the
         * client's, and the server's chain and names stay */
        const char *name = "client-cert-sent";
        uint8_t der[4096], cder[4096];
        size_t dn = load_cert("mail.testlab.example.pem", der, sizeof der);
        size_t cn = load_cert("mailC.example.com.pem", cder, sizeof cder);
        CHECK(dn > 0 && cn > 0, "%s: test certificates readable", name);
        buf ch = { .n = 0 }, c1 = { .n = 0 }, sh = { .n = 0 }, s1 = { .n = 0 }, cc = { .n = 0 }, c2 = { .n = 0 }, a = { .n = 0 };
        client_hello(&ch, 0);
        records(&c1, &ch, 1000, 22);
        server_hello(&sh, 0xC030, 0);
        u8(&sh, 11); u24(&sh, (unsigned)(3 + 3 + dn)); u24(&sh, (unsigned)(3 + dn)); u24(&sh, (unsigned)dn); bytes(&sh, der, dn);
        u8(&sh, 13); u24(&sh, 4); u8(&sh, 1); u8(&sh, 1); u16(&sh, 0);
        u8(&sh, 14); u24(&sh, 0);
        records(&s1, &sh, 700, 22);             /* the server's certificate straddles records */
        u8(&cc, 11); u24(&cc, (unsigned)(3 + 3 + cn)); u24(&cc, (unsigned)(3 + cn)); u24(&cc, (unsigned)cn); bytes(&cc, cder, cn);
        u8(&cc, 16); u24(&cc, 4); u8(&cc, 3); u8(&cc, 1); u8(&cc, 2); u8(&cc, 3);
        records(&c2, &cc, 1000, 22);
        u8(&a, 21); u16(&a, 0x0303); u16(&a, 2); u8(&a, 2); u8(&a, 48);    /* unknown_ca: the client's */
        mxh_chunk t[] = {
            { MX_CLIENT, (const char *)c1.b, c1.n }, { MX_SERVER, (const char *)s1.b, s1.n },
            { MX_CLIENT, (const char *)c2.b, c2.n }, { MX_SERVER, (const char *)a.b, a.n }, { -2, NULL, 0 },
        };
        int same;
        mx_verdict v;
        char *o = feed_all(name, t, 0, &same, &v);
        CHECK(same, "%s: same events however fed", name);
        const char *cev = strstr(o, "\"from\":\"client\",\"certificates\":1,\"requested\":true,\"chain\":[{");
        CHECK(cev != NULL, "%s: the client's certificate from the client", name);
        CHECK(cev && strstr(cev, "mailC.example.com") != NULL, "%s: with its own subject", name);
        CHECK(strstr(o, "\"certificate\":{\"subject_cn\":\"mail.testlab.example\"") != NULL, "%s: the server's name is kept", name);
        CHECK(count(o, "\"names\":[") == 1, "%s: only the server's certificate is checked against the server's names", name);
        CHECK(strstr(o, "\"client_certificate\":{\"requested\":true,\"certificates\":1}") != NULL, "%s: summary", name);
        CHECK(v.cause == NULL || strcmp(v.cause, "client_certificate_required") != 0, "%s: a certificate was sent (%s)", name, v.cause);
        free(o);
    }
    return CHECK_DONE();
}
