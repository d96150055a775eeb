/* fuzz_keylog.c - TLS records opened with a key log, through the test
 * harness (implicit TLS).  Fixed ClientHello and ServerHello (TLS 1.3, the
 * suite chosen by the first input byte) whose client random is in a key log
 * the target writes once; then the input is a list of records:
 *   [flags(1): bit 0 the side, bit 1 its application keys (else its
 *    handshake keys), bit 2 a damaged tag, bits 3-4 the inner content type
 *    (22 handshake, 23 data, 21 alert, 20 other)] [len(2)] [plaintext]
 * each sealed with the keys the flags name, so the parsers see fuzzed
 * plaintext: handshake messages, alerts, the SMTP conversation inside. */
#define MX_FUZZ_WITH_HARNESS
#include "fuzz_common.h"

#include "mx/keylog.h"

#include <openssl/evp.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const secret_hex[4] = {
    "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21b3eddb126e067f35a780b3abf45e2d8f",
    "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38b67b7d690cc16c4e75e54213cb2d37b4",
    "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a59e40646ce79a7f9dc05af8889bce6552",
    "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643a11af9f05531f856ad47116b45a95032",
};
static const char *const labels[4] = { "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                       "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0" };
static uint8_t random_[32];
static mx_keylog *logs[2];       /* 32-byte secrets (SHA-256 suites), 48-byte (SHA-384) */

static void setup(void)
{
    if (logs[0]) return;
    for (int i = 0; i < 32; i++) random_[i] = (uint8_t)(0xA0 + i);
    for (int w = 0; w < 2; w++) {
        char path[] = "/tmp/mx-fuzz-keylog-XXXXXX", err[256];
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f) abort();
        for (int s = 0; s < 4; s++) {
            fprintf(f, "%s ", labels[s]);
            for (int i = 0; i < 32; i++) fprintf(f, "%02x", random_[i]);
            fprintf(f, " %.*s\n", w ? 96 : 64, secret_hex[s]);
        }
        fclose(f);
        logs[w] = mx_keylog_load(path, err, sizeof err);
        unlink(path);
        if (!logs[w]) abort();
    }
}

static uint8_t hexb(const char *s)
{
    unsigned v = 0;
    sscanf(s, "%2x", &v);
    return (uint8_t)v;
}

static void seal(const mx_tls_keys *k, uint64_t seq, uint8_t *rec, const uint8_t *pt, size_t n, int damage)
{
    static const char *const names[4] = { NULL, "AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305" };
    uint8_t nonce[12];
    memcpy(nonce, k->iv, 12);
    for (int i = 0; i < 8; i++) nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
    EVP_CIPHER *ci = EVP_CIPHER_fetch(NULL, names[k->aead], NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l = 0, l2 = 0;
    if (!ci || !c) abort();
    EVP_EncryptInit_ex(c, ci, NULL, NULL, NULL);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL);
    EVP_EncryptInit_ex(c, NULL, NULL, k->key, nonce);
    EVP_EncryptUpdate(c, NULL, &l, rec, 5);
    EVP_EncryptUpdate(c, rec + 5, &l, pt, (int)n);
    EVP_EncryptFinal_ex(c, rec + 5 + l, &l2);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, rec + 5 + l + l2);
    if (damage) rec[5 + n + 15] ^= 1;
    EVP_CIPHER_CTX_free(c);
    EVP_CIPHER_free(ci);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    setup();
    uint8_t opt = fz_u8(&in);
    static const uint16_t suites[3] = { 0x1301, 0x1302, 0x1303 };
    uint16_t suite = suites[(opt & 3) % 3];
    int aead, sha384;
    mx_tls13_suite(suite, &aead, &sha384);
    mx_harness h;
    fz_self_test();
    mxh_init(&h, 1, opt & 4);
    h.opt.keylog = logs[sha384];
    if (opt & 8) fuzz_tiny_limits(&h.opt.lim);

    /* the hellos, in clear */
    uint8_t ch[5 + 4 + 2 + 32 + 1 + 4 + 2 + 2 + 7] = { 22, 3, 1, 0, 0, 1, 0, 0, 0, 3, 3 };
    size_t o = 11;
    memcpy(ch + o, random_, 32); o += 32;
    ch[o++] = 0;                                       /* session id */
    ch[o++] = 0; ch[o++] = 2; ch[o++] = (uint8_t)(suite >> 8); ch[o++] = (uint8_t)suite;
    ch[o++] = 1; ch[o++] = 0;                          /* compression */
    ch[o++] = 0; ch[o++] = 7; ch[o++] = 0; ch[o++] = 43; ch[o++] = 0; ch[o++] = 3; ch[o++] = 2; ch[o++] = 3; ch[o++] = 4;
    ch[3] = (uint8_t)((o - 5) >> 8); ch[4] = (uint8_t)(o - 5);
    ch[8] = (uint8_t)(o - 9);
    mxh_feed(&h, MX_CLIENT, ch, o);
    uint8_t sh[5 + 4 + 2 + 32 + 1 + 2 + 1 + 2 + 6] = { 22, 3, 3, 0, 0, 2, 0, 0, 0, 3, 3 };
    o = 11;
    for (int i = 0; i < 32; i++) sh[o++] = (uint8_t)(0x11 * i);
    sh[o++] = 0;
    sh[o++] = (uint8_t)(suite >> 8); sh[o++] = (uint8_t)suite;
    sh[o++] = 0;
    sh[o++] = 0; sh[o++] = 6; sh[o++] = 0; sh[o++] = 43; sh[o++] = 0; sh[o++] = 2; sh[o++] = 3; sh[o++] = 4;
    sh[3] = (uint8_t)((o - 5) >> 8); sh[4] = (uint8_t)(o - 5);
    sh[8] = (uint8_t)(o - 9);
    mxh_feed(&h, MX_SERVER, sh, o);

    /* the writers' keys: [side][application] */
    mx_tls_keys k[2][2];
    uint64_t seq[2][2] = { { 0, 0 }, { 0, 0 } };
    for (int side = 0; side < 2; side++)
        for (int app = 0; app < 2; app++) {
            uint8_t sec[48];
            const char *hx = secret_hex[app * 2 + side];
            for (int i = 0; i < (sha384 ? 48 : 32); i++) sec[i] = hexb(hx + 2 * i);
            if (!mx_tls13_keys(aead, sha384, sec, sha384 ? 48 : 32, &k[side][app])) abort();
        }
    static const uint8_t types[4] = { 22, 23, 21, 20 };
    size_t total = 0;
    while (in.left && total < (1u << 20)) {
        uint8_t fl = fz_u8(&in);
        int side = fl & 1, app = (fl >> 1) & 1, damage = (fl >> 2) & 1;
        size_t n;
        const uint8_t *pt = fz_bytes(&in, fz_u16(&in) % 2048, &n);
        uint8_t plain[2049], rec[5 + 2049 + 16];
        memcpy(plain, pt, n);
        plain[n++] = types[(fl >> 3) & 3];
        size_t cl = n + 16;
        rec[0] = 23; rec[1] = 3; rec[2] = 3; rec[3] = (uint8_t)(cl >> 8); rec[4] = (uint8_t)cl;
        seal(&k[side][app], seq[side][app]++, rec, plain, n, damage);
        /* (split in two, to reassemble) */
        size_t cut = (fl >> 5) ? (5 + cl) * (fl >> 5) / 8 : 5 + cl;
        mxh_feed(&h, side, rec, cut);
        if (cut < 5 + cl) mxh_feed(&h, side, rec + cut, 5 + cl - cut);
        total += 5 + cl;
    }
    const char *out = mxh_finish(&h);
    fz_check_ndjson(out, strlen(out), 0);
    mxh_free(&h);
    return 0;
}
