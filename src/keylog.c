/* keylog.c - NSS key log files and TLS 1.3 record protection (keylog.h). */
#include "mx/keylog.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mx_keylog {
    mx_keylog_entry *e;       /* sorted by random, one per connection */
    size_t n, skipped;
};

static const struct { const char *label; int sec; size_t minlen, maxlen; } labels[] = {
    { "CLIENT_HANDSHAKE_TRAFFIC_SECRET", MX_SEC_CLIENT_HS, 32, 48 },
    { "SERVER_HANDSHAKE_TRAFFIC_SECRET", MX_SEC_SERVER_HS, 32, 48 },
    { "CLIENT_TRAFFIC_SECRET_0", MX_SEC_CLIENT_AP, 32, 48 },
    { "SERVER_TRAFFIC_SECRET_0", MX_SEC_SERVER_AP, 32, 48 },
    { "CLIENT_RANDOM", MX_SEC_MASTER, 48, 48 },
};
/* written by the same tools, of no use to reading records */
static const char *const unused[] = { "EXPORTER_SECRET", "CLIENT_EARLY_TRAFFIC_SECRET", "EARLY_EXPORTER_SECRET" };

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* n bytes of hex at s (exactly 2n digits, then a space, end or CR/LF). */
static int unhex(const char *s, uint8_t *out, size_t n, const char **end)
{
    for (size_t i = 0; i < n; i++) {
        int a = hexval((unsigned char)s[2 * i]), b = a < 0 ? -1 : hexval((unsigned char)s[2 * i + 1]);
        if (a < 0 || b < 0) return 0;
        out[i] = (uint8_t)(a << 4 | b);
    }
    *end = s + 2 * n;
    return 1;
}

static int cmp_random(const void *a, const void *b)
{
    return memcmp(((const mx_keylog_entry *)a)->random, ((const mx_keylog_entry *)b)->random, 32);
}

mx_keylog *mx_keylog_load(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, cap, "%s: cannot open: %m", path); return NULL; }
    mx_keylog *k = calloc(1, sizeof *k);
    size_t ecap = 0;
    char line[1100];
    int toolong = 0, ok = k != NULL;
    while (ok && fgets(line, sizeof line, f)) {
        size_t ll = strlen(line);
        if (ll && line[ll - 1] != '\n' && !feof(f)) {            /* a line longer than any key line */
            toolong = 1;
            continue;
        }
        if (toolong) { toolong = 0; k->skipped++; continue; }  /* its end */
        while (ll && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = 0;
        if (!ll || line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        if (!sp) { k->skipped++; continue; }
        *sp = 0;
        int li = -1;
        for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
            if (!strcmp(line, labels[i].label)) li = (int)i;
        if (li < 0) {
            int known = 0;
            for (size_t i = 0; i < sizeof unused / sizeof unused[0]; i++) known |= !strcmp(line, unused[i]);
            if (!known) k->skipped++;
            continue;
        }
        uint8_t random[32], secret[48];
        const char *p = sp + 1, *e;
        if (!unhex(p, random, 32, &e) || *e != ' ') { k->skipped++; continue; }
        p = e + 1;
        size_t sl = strlen(p) / 2;
        if (strlen(p) % 2 || sl < labels[li].minlen || sl > labels[li].maxlen || !unhex(p, secret, sl, &e) || *e) {
            k->skipped++;
            continue;
        }
        if (k->n == MX_KEYLOG_MAX) {
            snprintf(err, cap, "%s: more than %d key lines", path, MX_KEYLOG_MAX);
            ok = 0;
            break;
        }
        if (k->n == ecap) {
            size_t nc = ecap ? ecap * 2 : 64;
            mx_keylog_entry *ne = realloc(k->e, nc * sizeof *ne);
            if (!ne) { snprintf(err, cap, "%s: out of memory", path); ok = 0; break; }
            k->e = ne;
            ecap = nc;
        }
        mx_keylog_entry *x = &k->e[k->n++];
        memset(x, 0, sizeof *x);
        memcpy(x->random, random, 32);
        int s = labels[li].sec;
        x->have = (uint8_t)(1u << s);
        x->len[s] = (uint8_t)sl;
        memcpy(x->secret[s], secret, sl);
    }
    if (ok && ferror(f)) { snprintf(err, cap, "%s: read error", path); ok = 0; }
    fclose(f);
    if (ok && !k->n) { snprintf(err, cap, "%s: no key lines (NSS key log format: LABEL CLIENT_RANDOM SECRET)", path); ok = 0; }
    if (!ok) { mx_keylog_free(k); return NULL; }
    /* one entry per connection: the lines of one random merged */
    qsort(k->e, k->n, sizeof *k->e, cmp_random);
    size_t w = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (w && !memcmp(k->e[w - 1].random, k->e[i].random, 32)) {
            mx_keylog_entry *d = &k->e[w - 1], *s = &k->e[i];
            for (int j = 0; j < MX_SEC_N; j++)
                if (s->have >> j & 1) { d->have |= (uint8_t)(1u << j); d->len[j] = s->len[j]; memcpy(d->secret[j], s->secret[j], 48); }
            continue;
        }
        if (w != i) k->e[w] = k->e[i];
        w++;
    }
    k->n = w;
    return k;
}

void mx_keylog_free(mx_keylog *k)
{
    if (!k) return;
    if (k->e) memset(k->e, 0, k->n * sizeof *k->e);      /* (secrets) */
    free(k->e);
    free(k);
}

size_t mx_keylog_count(const mx_keylog *k) { return k ? k->n : 0; }
size_t mx_keylog_skipped(const mx_keylog *k) { return k ? k->skipped : 0; }

const mx_keylog_entry *mx_keylog_find(const mx_keylog *k, const uint8_t random[32])
{
    if (!k || !k->n) return NULL;
    mx_keylog_entry key;
    memcpy(key.random, random, 32);
    return bsearch(&key, k->e, k->n, sizeof *k->e, cmp_random);
}

/* ---- record protection ------------------------------------------------------ */

int mx_tls13_suite(uint16_t suite, int *aead, int *sha384)
{
    switch (suite) {
    case 0x1301: *aead = MX_AEAD_AES128_GCM; *sha384 = 0; return 1;
    case 0x1302: *aead = MX_AEAD_AES256_GCM; *sha384 = 1; return 1;
    case 0x1303: *aead = MX_AEAD_CHACHA20_POLY1305; *sha384 = 0; return 1;
    default: return 0;
    }
}

int mx_hkdf_expand_label(int sha384, const uint8_t *secret, size_t slen, const char *label,
                         const uint8_t *ctx, size_t ctxlen, uint8_t *out, size_t outlen)
{
    const EVP_MD *md = sha384 ? EVP_sha384() : EVP_sha256();
    size_t hl = sha384 ? 48 : 32, ll = strlen(label);
    if (ll + 6 > 255 || ctxlen > 255 || outlen > 255 * hl || outlen > 0xFFFF) return 0;
    /* HkdfLabel: length, "tls13 " label, context (RFC 8446 §7.1) */
    uint8_t info[2 + 1 + 255 + 1 + 255];
    size_t il = 0;
    info[il++] = (uint8_t)(outlen >> 8);
    info[il++] = (uint8_t)outlen;
    info[il++] = (uint8_t)(6 + ll);
    memcpy(info + il, "tls13 ", 6);
    il += 6;
    memcpy(info + il, label, ll);
    il += ll;
    info[il++] = (uint8_t)ctxlen;
    if (ctxlen) memcpy(info + il, ctx, ctxlen);
    il += ctxlen;
    /* HKDF-Expand (RFC 5869 §2.3): T(i) = HMAC(PRK, T(i-1) | info | i) */
    uint8_t t[64], in[64 + sizeof info + 1];
    size_t tl = 0, done = 0;
    for (unsigned i = 1; done < outlen; i++) {
        size_t n = 0;
        memcpy(in, t, tl);
        n += tl;
        memcpy(in + n, info, il);
        n += il;
        in[n++] = (uint8_t)i;
        unsigned ml = 0;
        if (!HMAC(md, secret, (int)slen, in, n, t, &ml)) return 0;
        tl = ml;
        size_t take = outlen - done < tl ? outlen - done : tl;
        memcpy(out + done, t, take);
        done += take;
    }
    return 1;
}

int mx_tls13_keys(int aead, int sha384, const uint8_t *secret, size_t slen, mx_tls_keys *k)
{
    size_t kl = aead == MX_AEAD_AES128_GCM ? 16 : 32;
    memset(k, 0, sizeof *k);
    if (aead == MX_AEAD_NONE || slen != (size_t)(sha384 ? 48 : 32)) return 0;
    if (!mx_hkdf_expand_label(sha384, secret, slen, "key", NULL, 0, k->key, kl) ||
        !mx_hkdf_expand_label(sha384, secret, slen, "iv", NULL, 0, k->iv, 12))
        return 0;
    k->aead = aead;
    return 1;
}

/* The ciphers, fetched once for the process; a context per thread. */
static EVP_CIPHER *ciphers[4];
static pthread_once_t ciph_once = PTHREAD_ONCE_INIT;
static pthread_key_t cctx_key;
static int cctx_keyed;
static void cctx_free(void *c) { EVP_CIPHER_CTX_free(c); }
static void ciph_fetch(void)
{
    ciphers[MX_AEAD_AES128_GCM] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    ciphers[MX_AEAD_AES256_GCM] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    ciphers[MX_AEAD_CHACHA20_POLY1305] = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    cctx_keyed = pthread_key_create(&cctx_key, cctx_free) == 0;
}

static EVP_CIPHER_CTX *thread_cctx(void)
{
    if (!cctx_keyed) return NULL;
    EVP_CIPHER_CTX *c = pthread_getspecific(cctx_key);
    if (!c && (c = EVP_CIPHER_CTX_new()) && pthread_setspecific(cctx_key, c) != 0) {
        EVP_CIPHER_CTX_free(c);
        c = NULL;
    }
    return c;
}

int mx_tls13_open(mx_tls_keys *k, const uint8_t hdr[5], const uint8_t *ct, size_t n, uint8_t *out, size_t *outlen)
{
    pthread_once(&ciph_once, ciph_fetch);
    if (k->aead <= MX_AEAD_NONE || k->aead > MX_AEAD_CHACHA20_POLY1305 || n < 17 || n > (1u << 14) + 256) return 0;
    const EVP_CIPHER *ci = ciphers[k->aead];
    EVP_CIPHER_CTX *c = thread_cctx();
    if (!ci || !c) return 0;
    /* the nonce: the IV with the record's sequence number in its last 8 bytes (RFC 8446 §5.3) */
    uint8_t nonce[12];
    memcpy(nonce, k->iv, 12);
    for (int i = 0; i < 8; i++) nonce[11 - i] ^= (uint8_t)(k->seq >> (8 * i));
    size_t cl = n - 16;
    int l1 = 0, l2 = 0, ok = EVP_DecryptInit_ex(c, ci, NULL, NULL, NULL) &&
                             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) &&
                             EVP_DecryptInit_ex(c, NULL, NULL, k->key, nonce) &&
                             EVP_DecryptUpdate(c, NULL, &l1, hdr, 5) &&
                             EVP_DecryptUpdate(c, out, &l1, ct, (int)cl) &&
                             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(uintptr_t)(ct + cl)) &&
                             EVP_DecryptFinal_ex(c, out + l1, &l2) > 0;
    if (!ok) return 0;
    *outlen = (size_t)(l1 + l2);
    k->seq++;
    return 1;
}

/* ---- TLS 1.2 ------------------------------------------------------------------ */

int mx_tls12_suite(uint16_t suite, int *aead, int *sha384)
{
    switch (suite) {
    case 0xC02F: case 0xC02B: case 0x009C: case 0x009E: *aead = MX_AEAD_AES128_GCM; *sha384 = 0; return 1;
    case 0xC030: case 0xC02C: case 0x009D: case 0x009F: *aead = MX_AEAD_AES256_GCM; *sha384 = 1; return 1;
    case 0xCCA8: case 0xCCA9: case 0xCCAA: *aead = MX_AEAD_CHACHA20_POLY1305; *sha384 = 0; return 1;
    default: return 0;
    }
}

/* P_hash (RFC 5246 §5): the PRF with the suite's hash. */
int mx_tls12_prf(int sha384, const uint8_t *secret, size_t slen, const char *label, const uint8_t *seed, size_t seedlen,
               uint8_t *out, size_t outlen)
{
    const EVP_MD *md = sha384 ? EVP_sha384() : EVP_sha256();
    uint8_t ls[128], a[64], in[64 + 128], t[64];
    size_t ll = strlen(label), lsl = ll + seedlen;
    unsigned al = 0, tl = 0;
    if (lsl > sizeof ls) return 0;
    memcpy(ls, label, ll);
    memcpy(ls + ll, seed, seedlen);
    if (!HMAC(md, secret, (int)slen, ls, lsl, a, &al)) return 0;          /* A(1) */
    for (size_t done = 0; done < outlen;) {
        memcpy(in, a, al);
        memcpy(in + al, ls, lsl);
        if (!HMAC(md, secret, (int)slen, in, al + lsl, t, &tl)) return 0;
        size_t take = outlen - done < tl ? outlen - done : tl;
        memcpy(out + done, t, take);
        done += take;
        if (!HMAC(md, secret, (int)slen, a, al, a, &al)) return 0;        /* A(i+1) */
    }
    return 1;
}

int mx_tls12_keys(int aead, int sha384, const uint8_t master[48], const uint8_t client_random[32],
                  const uint8_t server_random[32], mx_tls_keys *client, mx_tls_keys *server)
{
    size_t kl = aead == MX_AEAD_AES128_GCM ? 16 : 32, ivl = aead == MX_AEAD_CHACHA20_POLY1305 ? 12 : 4;
    uint8_t seed[64], kb[2 * 32 + 2 * 12];
    memset(client, 0, sizeof *client);
    memset(server, 0, sizeof *server);
    if (aead == MX_AEAD_NONE) return 0;
    memcpy(seed, server_random, 32);
    memcpy(seed + 32, client_random, 32);
    if (!mx_tls12_prf(sha384, master, 48, "key expansion", seed, 64, kb, 2 * kl + 2 * ivl)) return 0;
    memcpy(client->key, kb, kl);
    memcpy(server->key, kb + kl, kl);
    memcpy(client->iv, kb + 2 * kl, ivl);
    memcpy(server->iv, kb + 2 * kl + ivl, ivl);
    client->aead = server->aead = aead;
    memset(kb, 0, sizeof kb);
    return 1;
}

int mx_tls12_open(mx_tls_keys *k, uint8_t type, uint16_t ver, const uint8_t *ct, size_t n, uint8_t *out, size_t *outlen)
{
    pthread_once(&ciph_once, ciph_fetch);
    int chacha = k->aead == MX_AEAD_CHACHA20_POLY1305;
    size_t explicit_len = chacha ? 0 : 8;
    if (k->aead <= MX_AEAD_NONE || k->aead > MX_AEAD_CHACHA20_POLY1305 || n < explicit_len + 16 || n > (1u << 14) + 2048)
        return 0;
    const EVP_CIPHER *ci = ciphers[k->aead];
    EVP_CIPHER_CTX *c = thread_cctx();
    if (!ci || !c) return 0;
    uint8_t nonce[12], aad[13];
    if (chacha) {
        /* RFC 7905: the IV with the sequence number in its last 8 bytes */
        memcpy(nonce, k->iv, 12);
        for (int i = 0; i < 8; i++) nonce[11 - i] ^= (uint8_t)(k->seq >> (8 * i));
    } else {
        /* RFC 5288: the 4-byte salt, then the record's explicit 8 bytes */
        memcpy(nonce, k->iv, 4);
        memcpy(nonce + 4, ct, 8);
    }
    size_t cl = n - explicit_len - 16;
    /* additional data: sequence number, type, version, plaintext length */
    for (int i = 0; i < 8; i++) aad[7 - i] = (uint8_t)(k->seq >> (8 * i));
    aad[8] = type;
    aad[9] = (uint8_t)(ver >> 8);
    aad[10] = (uint8_t)ver;
    aad[11] = (uint8_t)(cl >> 8);
    aad[12] = (uint8_t)cl;
    const uint8_t *body = ct + explicit_len;
    int l1 = 0, l2 = 0, ok = EVP_DecryptInit_ex(c, ci, NULL, NULL, NULL) &&
                             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) &&
                             EVP_DecryptInit_ex(c, NULL, NULL, k->key, nonce) &&
                             EVP_DecryptUpdate(c, NULL, &l1, aad, 13) &&
                             EVP_DecryptUpdate(c, out, &l1, body, (int)cl) &&
                             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(uintptr_t)(body + cl)) &&
                             EVP_DecryptFinal_ex(c, out + l1, &l2) > 0;
    if (!ok) return 0;
    *outlen = (size_t)(l1 + l2);
    k->seq++;
    return 1;
}
