/* Unit tests: hashes and Community ID against published values; the TLS
 * 1.3 key schedule against RFC 8448's example handshake; record opening;
 * key log files. */
#include "check.h"
#include "mx/keylog.h"
#include "mx/x509.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void unhex(const char *s, uint8_t *o, size_t n)
{
    for (size_t i = 0; i < n; i++) { unsigned v; sscanf(s + 2 * i, "%2x", &v); o[i] = (uint8_t)v; }
}

static int same_hex(const uint8_t *b, size_t n, const char *want)
{
    char h[200];
    for (size_t i = 0; i < n; i++) snprintf(h + 2 * i, 3, "%02x", b[i]);
    return strcmp(h, want) == 0;
}

/* A TLS 1.3 record sealed with OpenSSL directly: the reference for opening. */
static size_t seal(const mx_tls_keys *k, uint64_t seq, const uint8_t hdr[5], const uint8_t *pt, size_t n, uint8_t *out)
{
    uint8_t nonce[12];
    memcpy(nonce, k->iv, 12);
    for (int i = 0; i < 8; i++) nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l = 0, l2 = 0;
    const EVP_CIPHER *ci = k->aead == MX_AEAD_AES128_GCM ? EVP_aes_128_gcm() : k->aead == MX_AEAD_AES256_GCM ? EVP_aes_256_gcm()
                                                                                                            : EVP_chacha20_poly1305();
    EVP_EncryptInit_ex(c, ci, NULL, NULL, NULL);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL);
    EVP_EncryptInit_ex(c, NULL, NULL, k->key, nonce);
    EVP_EncryptUpdate(c, NULL, &l, hdr, 5);
    EVP_EncryptUpdate(c, out, &l, pt, (int)n);
    EVP_EncryptFinal_ex(c, out + l, &l2);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + l + l2);
    EVP_CIPHER_CTX_free(c);
    return (size_t)(l + l2) + 16;
}

static void tls13_tests(void)
{
    /* RFC 8448 §3 (TLS_AES_128_GCM_SHA256): traffic secrets -> write key and IV */
    static const struct { const char *secret, *key, *iv, *what; } v[] = {
        { "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38", "3fce516009c21727d0f2e4e86ee403bc",
          "5d313eb2671276ee13000b30", "server handshake" },
        { "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21", "dbfaa693d1762c5b666af5d950258d01",
          "5bd3c71b836e0b76bb73265f", "client handshake" },
        { "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643", "9f02283b6c9c07efc26bb9f2ac92e356",
          "cf782b88dd83549aadf1e984", "server application" },
        { "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5", "17422dda596ed5d9acd890e3c63f5051",
          "5b78923dee08579033e523d9", "client application" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t sec[32];
        unhex(v[i].secret, sec, 32);
        mx_tls_keys k;
        CHECK(mx_tls13_keys(MX_AEAD_AES128_GCM, 0, sec, 32, &k), "%s keys", v[i].what);
        CHECK(same_hex(k.key, 16, v[i].key) && same_hex(k.iv, 12, v[i].iv), "RFC 8448 %s key and IV", v[i].what);
    }
    int aead, sha384;
    CHECK(mx_tls13_suite(0x1302, &aead, &sha384) && aead == MX_AEAD_AES256_GCM && sha384, "TLS_AES_256_GCM_SHA384");
    CHECK(!mx_tls13_suite(0xC02F, &aead, &sha384), "a TLS 1.2 suite is not a TLS 1.3 one");

    /* records of each AEAD: opened in order, a changed byte or a wrong order refused */
    static const int aeads[] = { MX_AEAD_AES128_GCM, MX_AEAD_AES256_GCM, MX_AEAD_CHACHA20_POLY1305 };
    for (size_t a = 0; a < 3; a++) {
        uint8_t sec[48];
        for (int i = 0; i < 48; i++) sec[i] = (uint8_t)(i * 7 + a);
        int s384 = aeads[a] == MX_AEAD_AES256_GCM;
        mx_tls_keys w, r;
        CHECK(mx_tls13_keys(aeads[a], s384, sec, s384 ? 48 : 32, &w), "keys for aead %d", aeads[a]);
        r = w;
        const uint8_t pt[] = "EHLO client.example\r\n\x17";
        uint8_t ct[128], out[128];
        size_t ol = 0;
        uint8_t hdr[5] = { 23, 3, 3, 0, (uint8_t)(sizeof pt - 1 + 16) };
        size_t cl0 = seal(&w, 0, hdr, pt, sizeof pt - 1, ct);
        CHECK(mx_tls13_open(&r, hdr, ct, cl0, out, &ol) && ol == sizeof pt - 1 && !memcmp(out, pt, ol) && r.seq == 1,
              "aead %d: record 0 opened", aeads[a]);
        size_t cl1 = seal(&w, 1, hdr, pt, sizeof pt - 1, ct);
        ct[3] ^= 1;
        CHECK(!mx_tls13_open(&r, hdr, ct, cl1, out, &ol) && r.seq == 1, "aead %d: a changed byte does not open", aeads[a]);
        ct[3] ^= 1;
        hdr[2] = 1;
        CHECK(!mx_tls13_open(&r, hdr, ct, cl1, out, &ol), "aead %d: the header is authenticated", aeads[a]);
        hdr[2] = 3;
        CHECK(mx_tls13_open(&r, hdr, ct, cl1, out, &ol) && r.seq == 2, "aead %d: record 1 opened", aeads[a]);
        CHECK(!mx_tls13_open(&r, hdr, ct, cl1, out, &ol), "aead %d: a record is not opened twice", aeads[a]);
        CHECK(!mx_tls13_open(&r, hdr, ct, 16, out, &ol), "aead %d: a record shorter than its tag", aeads[a]);
    }
}

/* A TLS 1.2 AES-GCM record sealed with OpenSSL directly (RFC 5288). */
static size_t seal12(const mx_tls_keys *k, uint64_t seq, uint8_t type, const uint8_t *pt, size_t n, uint8_t *out)
{
    uint8_t nonce[12], aad[13];
    memcpy(nonce, k->iv, 4);
    for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(0x40 + i);        /* the explicit part */
    memcpy(out, nonce + 4, 8);
    for (int i = 0; i < 8; i++) aad[7 - i] = (uint8_t)(seq >> (8 * i));
    aad[8] = type; aad[9] = 3; aad[10] = 3; aad[11] = (uint8_t)(n >> 8); aad[12] = (uint8_t)n;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l = 0, l2 = 0;
    EVP_EncryptInit_ex(c, k->aead == MX_AEAD_AES128_GCM ? EVP_aes_128_gcm() : EVP_aes_256_gcm(), NULL, NULL, NULL);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL);
    EVP_EncryptInit_ex(c, NULL, NULL, k->key, nonce);
    EVP_EncryptUpdate(c, NULL, &l, aad, 13);
    EVP_EncryptUpdate(c, out + 8, &l, pt, (int)n);
    EVP_EncryptFinal_ex(c, out + 8 + l, &l2);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + 8 + l + l2);
    EVP_CIPHER_CTX_free(c);
    return 8 + (size_t)(l + l2) + 16;
}

static void tls12_tests(void)
{
    /* the TLS 1.2 PRF's published SHA-256 answer (IETF TLS list, msg03416) */
    uint8_t sec[16], seed[16], out[100];
    unhex("9bbe436ba940f017b17652849a71db35", sec, 16);
    unhex("a0ba9f936cda311827a6f796ffd5198c", seed, 16);
    CHECK(mx_tls12_prf(0, sec, 16, "test label", seed, 16, out, 100) &&
              same_hex(out, 32, "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a") &&
              same_hex(out + 96, 4, "87347b66"),
          "TLS 1.2 PRF (SHA-256) known answer");
    int aead, sha384;
    CHECK(mx_tls12_suite(0xC030, &aead, &sha384) && aead == MX_AEAD_AES256_GCM && sha384, "ECDHE-RSA-AES256-GCM-SHA384");
    CHECK(!mx_tls12_suite(0xC027, &aead, &sha384), "a CBC suite is not decrypted");
    uint8_t master[48], cr[32], sr[32];
    for (int i = 0; i < 48; i++) master[i] = (uint8_t)(i * 3);
    for (int i = 0; i < 32; i++) { cr[i] = (uint8_t)i; sr[i] = (uint8_t)(255 - i); }
    mx_tls_keys c, s, c2, s2;
    CHECK(mx_tls12_keys(MX_AEAD_AES128_GCM, 0, master, cr, sr, &c, &s) && memcmp(c.key, s.key, 16) && c.aead == MX_AEAD_AES128_GCM,
          "TLS 1.2 key block: two sides' keys");
    uint8_t kb[40], seed2[64];
    memcpy(seed2, sr, 32);
    memcpy(seed2 + 32, cr, 32);
    mx_tls12_prf(0, master, 48, "key expansion", seed2, 64, kb, 40);
    CHECK(!memcmp(c.key, kb, 16) && !memcmp(s.key, kb + 16, 16) && !memcmp(c.iv, kb + 32, 4) && !memcmp(s.iv, kb + 36, 4),
          "TLS 1.2 key block order: client key, server key, client salt, server salt");
    c2 = c; s2 = s;
    const uint8_t pt[] = "250 2.0.0 Ok: queued\r\n";
    uint8_t rec[128], o[128];
    size_t ol = 0, rl = seal12(&c, 0, 23, pt, sizeof pt - 1, rec);
    CHECK(mx_tls12_open(&c2, 23, 0x0303, rec, rl, rec + 8, &ol) && ol == sizeof pt - 1 && !memcmp(rec + 8, pt, ol) && c2.seq == 1,
          "TLS 1.2 GCM record opened in place");
    rl = seal12(&c, 1, 23, pt, sizeof pt - 1, rec);
    CHECK(!mx_tls12_open(&c2, 22, 0x0303, rec, rl, o, &ol), "TLS 1.2: the content type is authenticated");
    CHECK(!mx_tls12_open(&s2, 23, 0x0303, rec, rl, o, &ol), "TLS 1.2: the other side's keys do not open it");
    CHECK(mx_tls12_open(&c2, 23, 0x0303, rec, rl, o, &ol) && c2.seq == 2, "TLS 1.2: record 1 opened");
}

static void keylog_tests(void)
{
    char path[] = "/tmp/mx-keylog-XXXXXX", err[256];
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    const char *r1 = "0101010101010101010101010101010101010101010101010101010101010101";
    const char *r2 = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
    fprintf(f, "# a comment\n\nSERVER_HANDSHAKE_TRAFFIC_SECRET %s b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38\n", r1);
    fprintf(f, "CLIENT_HANDSHAKE_TRAFFIC_SECRET %s B3EDDB126E067F35A780B3ABF45E2D8F3B1A950738F52E9600746A0E27A55A21\r\n", r1);
    fprintf(f, "CLIENT_RANDOM %s 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f\n", r2);
    fprintf(f, "EXPORTER_SECRET %s 00\nCLIENT_RANDOM %s 00\nCLIENT_RANDOM zz\nNOT_A_LABEL x y\n", r1, r1);
    fclose(f);
    mx_keylog *k = mx_keylog_load(path, err, sizeof err);
    CHECK(k && mx_keylog_count(k) == 2 && mx_keylog_skipped(k) == 3, "key log: 2 connections, 3 lines skipped (%s)", k ? "" : err);
    uint8_t rnd[32];
    unhex(r1, rnd, 32);
    const mx_keylog_entry *e = mx_keylog_find(k, rnd);
    CHECK(e && (e->have >> MX_SEC_SERVER_HS & 1) && (e->have >> MX_SEC_CLIENT_HS & 1) && e->len[MX_SEC_CLIENT_HS] == 32 &&
              same_hex(e->secret[MX_SEC_CLIENT_HS], 32, "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21"),
          "key log: both handshake secrets of one connection, upper-case hex and CR LF read");
    unhex(r2, rnd, 32);
    e = mx_keylog_find(k, rnd);
    CHECK(e && e->have == 1u << MX_SEC_MASTER && e->len[MX_SEC_MASTER] == 48, "key log: a TLS 1.2 master secret");
    rnd[0] ^= 1;
    CHECK(!mx_keylog_find(k, rnd), "key log: an unknown random");
    mx_keylog_free(k);
    f = fopen(path, "w");
    fputs("hello\n", f);
    fclose(f);
    CHECK(!mx_keylog_load(path, err, sizeof err) && strstr(err, "no key lines"), "key log without keys: %s", err);
    unlink(path);
    CHECK(!mx_keylog_load(path, err, sizeof err) && strstr(err, "cannot open"), "missing key log: %s", err);
}

int main(void)
{
    char h[80];
    mx_md5_hex("abc", 3, h);
    CHECK(strcmp(h, "900150983cd24fb0d6963f7d28e17f72") == 0, "md5(abc) %s", h);
    mx_sha256_hex("abc", 3, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256(abc)");

    mx_addr a = { .v6 = 0 }, b = { .v6 = 0 };
    inet_pton(AF_INET, "1.2.3.4", a.b);
    inet_pton(AF_INET, "5.6.7.8", b.b);
    mx_community_id(&a, 1122, &b, 3344, h, sizeof h);
    CHECK(strcmp(h, "1:wCb3OG7yAFWelaUydu0D+125CLM=") == 0, "community id %s", h);
    mx_community_id(&b, 3344, &a, 1122, h, sizeof h);
    CHECK(strcmp(h, "1:wCb3OG7yAFWelaUydu0D+125CLM=") == 0, "community id is direction-free %s", h);
    tls13_tests();
    tls12_tests();
    keylog_tests();
    return CHECK_DONE();
}
