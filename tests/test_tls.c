/* Unit tests: the TLS record layer and handshake parsers, fed whole, split
 * at every offset and byte by byte (implicit TLS, as on port 465). */
#include "check.h"
#include "harness.h"

#include <stdlib.h>

typedef struct buf { uint8_t b[2048]; size_t n; } buf;

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

int main(void)
{
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
        mxh_chunk t[] = { { MX_CLIENT, "EHLO x\r\n", 8 }, { -2, NULL, 0 } };
        int same;
        char *o = mxh_feed_all(name, t, 1, 0, &same);
        CHECK(same, "%s: same events however fed", name);
        CHECK(strstr(o, "\"kind\":\"not_tls\"") != NULL, "%s: reported", name);
        free(o);
    }
    return CHECK_DONE();
}
