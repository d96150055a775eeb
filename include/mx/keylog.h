/* keylog.h - TLS secrets from an NSS key log file (SSLKEYLOGFILE), and the
 * record protection they give (TLS 1.3, RFC 8446 §7; AEAD suites).
 *
 * A key log holds, per connection (known by its ClientHello random), the
 * secrets a client or server wrote out: CLIENT_HANDSHAKE_TRAFFIC_SECRET,
 * SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0,
 * SERVER_TRAFFIC_SECRET_0 (TLS 1.3) and CLIENT_RANDOM (the TLS 1.2 master
 * secret).  It is read once, before the capture, and only read after.
 * Secrets never reach any output.
 */
#ifndef MX_KEYLOG_H
#define MX_KEYLOG_H

#include <stddef.h>
#include <stdint.h>

enum mx_secret {
    MX_SEC_CLIENT_HS = 0,     /* CLIENT_HANDSHAKE_TRAFFIC_SECRET */
    MX_SEC_SERVER_HS,         /* SERVER_HANDSHAKE_TRAFFIC_SECRET */
    MX_SEC_CLIENT_AP,         /* CLIENT_TRAFFIC_SECRET_0         */
    MX_SEC_SERVER_AP,         /* SERVER_TRAFFIC_SECRET_0         */
    MX_SEC_MASTER,            /* CLIENT_RANDOM (TLS 1.2)         */
    MX_SEC_N
};

typedef struct mx_keylog_entry {
    uint8_t random[32];       /* the ClientHello's random          */
    uint8_t have;             /* bit per mx_secret                  */
    uint8_t len[MX_SEC_N];
    uint8_t secret[MX_SEC_N][48];
} mx_keylog_entry;

typedef struct mx_keylog mx_keylog;

/* The most connections one key log may hold (a larger file is refused). */
#define MX_KEYLOG_MAX 1000000

/* Reads path; NULL with the reason in err (a missing or unreadable file, a
 * file without any key line, too many).  Lines it cannot use are counted. */
mx_keylog *mx_keylog_load(const char *path, char *err, size_t cap);
void mx_keylog_free(mx_keylog *k);
size_t mx_keylog_count(const mx_keylog *k);
size_t mx_keylog_skipped(const mx_keylog *k);
/* The secrets of the connection whose ClientHello had this random. */
const mx_keylog_entry *mx_keylog_find(const mx_keylog *k, const uint8_t random[32]);

/* ---- record protection ------------------------------------------------------ */

enum mx_aead { MX_AEAD_NONE = 0, MX_AEAD_AES128_GCM, MX_AEAD_AES256_GCM, MX_AEAD_CHACHA20_POLY1305 };

typedef struct mx_tls_keys {
    int aead;                 /* mx_aead; NONE: not decrypting      */
    uint8_t key[32];
    uint8_t iv[12];
    uint64_t seq;             /* records opened with these keys     */
} mx_tls_keys;

/* The AEAD and hash (SHA-256 or SHA-384) of a TLS 1.3 cipher suite; 0 when
 * it is not one this reads. */
int mx_tls13_suite(uint16_t suite, int *aead, int *sha384);
/* HKDF-Expand-Label (RFC 8446 §7.1) with the suite's hash. */
int mx_hkdf_expand_label(int sha384, const uint8_t *secret, size_t slen, const char *label,
                         const uint8_t *ctx, size_t ctxlen, uint8_t *out, size_t outlen);
/* The write key and IV of a traffic secret (RFC 8446 §7.3). */
int mx_tls13_keys(int aead, int sha384, const uint8_t *secret, size_t slen, mx_tls_keys *k);
/* Opens one TLS 1.3 record (its 5-byte header is the additional data):
 * the plaintext (inner content and type) into out, its length in *outlen;
 * 0 when it does not authenticate.  Advances the sequence number. */
int mx_tls13_open(mx_tls_keys *k, const uint8_t hdr[5], const uint8_t *ct, size_t n, uint8_t *out, size_t *outlen);

/* TLS 1.2 AEAD suites (AES-GCM, ChaCha20-Poly1305): the AEAD and PRF hash
 * of a suite, 0 for another. */
int mx_tls12_suite(uint16_t suite, int *aead, int *sha384);
/* The TLS 1.2 PRF (RFC 5246 §5) with SHA-256 or SHA-384. */
int mx_tls12_prf(int sha384, const uint8_t *secret, size_t slen, const char *label, const uint8_t *seed, size_t seedlen,
                 uint8_t *out, size_t outlen);
/* Both sides' keys from the master secret and the hellos' randoms (RFC 5246
 * §6.3: the key block; the write IVs are the GCM salt, or ChaCha's IV). */
int mx_tls12_keys(int aead, int sha384, const uint8_t master[48], const uint8_t client_random[32],
                  const uint8_t server_random[32], mx_tls_keys *client, mx_tls_keys *server);
/* Opens one TLS 1.2 record of content type type and header version ver:
 * the plaintext into out; 0 when it does not authenticate. */
int mx_tls12_open(mx_tls_keys *k, uint8_t type, uint16_t ver, const uint8_t *ct, size_t n, uint8_t *out, size_t *outlen);

#endif
