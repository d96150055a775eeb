/* tls.c - TLS after STARTTLS or on an implicit-TLS port (see tls.h).
 *
 * Record layer (RFC 8446 §5.1, RFC 5246 §6.2):
 *
 *   +------+---------+---------+--------------------+
 *   | type | version | length  | fragment[length]   |   type: 20 CCS, 21 alert,
 *   |  1   |    2    |    2    |                    |         22 handshake, 23 data
 *   +------+---------+---------+--------------------+
 *
 * Handshake messages (type 1 byte, length 3 bytes) are reassembled across
 * records up to max_tls_msg bytes and parsed while they are in clear: the
 * hellos, the certificate chain (TLS 1.2 and older), key exchange, requests.
 * Once a side's records are encrypted (after its ChangeCipherSpec in TLS 1.2,
 * after the ServerHello in TLS 1.3) they are only counted and skipped.
 * Alerts in clear are decoded; encrypted ones are reported as such, and a
 * TLS 1.3 client that answers the server's flight with one short record and
 * closes is reported as a probable rejection whose code cannot be seen.
 */
#include "mx/tls.h"
#include "mx/text.h"
#include "mx/cursor.h"
#include "mx/dns.h"
#include "mx/keylog.h"
#include "mx/smtp.h"
#include "mx/verdict.h"
#include "mx/x509.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ------------------------------------------------------------- */

typedef struct cs_name { uint16_t id; const char *iana, *openssl; } cs_name;
static const cs_name suites[] = {
    { 0x1301, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256" },
    { 0x1302, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384" },
    { 0x1303, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256" },
    { 0x1304, "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_SHA256" },
    { 0x1305, "TLS_AES_128_CCM_8_SHA256", "TLS_AES_128_CCM_8_SHA256" },
    { 0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256" },
    { 0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384" },
    { 0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256" },
    { 0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384" },
    { 0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305" },
    { 0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305" },
    { 0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "DHE-RSA-CHACHA20-POLY1305" },
    { 0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256" },
    { 0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384" },
    { 0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256" },
    { 0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384" },
    { 0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA" },
    { 0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA" },
    { 0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA" },
    { 0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA" },
    { 0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA" },
    { 0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-ECDSA-DES-CBC3-SHA" },
    { 0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "ECDHE-RSA-RC4-SHA" },
    { 0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "ECDHE-ECDSA-RC4-SHA" },
    { 0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE-ECDSA-AES128-CCM" },
    { 0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", "ECDHE-ECDSA-AES256-CCM" },
    { 0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256" },
    { 0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "DHE-RSA-AES256-GCM-SHA384" },
    { 0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", "DHE-RSA-AES128-SHA256" },
    { 0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", "DHE-RSA-AES256-SHA256" },
    { 0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "DHE-RSA-AES128-SHA" },
    { 0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "DHE-RSA-AES256-SHA" },
    { 0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", "EDH-RSA-DES-CBC3-SHA" },
    { 0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256" },
    { 0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384" },
    { 0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256" },
    { 0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", "AES256-SHA256" },
    { 0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA" },
    { 0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA" },
    { 0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", "CAMELLIA128-SHA" },
    { 0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", "CAMELLIA256-SHA" },
    { 0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA" },
    { 0x0005, "TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA" },
    { 0x0004, "TLS_RSA_WITH_RC4_128_MD5", "RC4-MD5" },
    { 0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV", NULL },
    { 0x5600, "TLS_FALLBACK_SCSV", NULL },
};

static const cs_name *suite(uint16_t id)
{
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (suites[i].id == id) return &suites[i];
    return NULL;
}

/* Weak: RC4, 3DES, NULL, export, anonymous (RFC 7465, RFC 8996 spirit). */
static int weak_suite(const cs_name *c)
{
    return c && (strstr(c->iana, "RC4") || strstr(c->iana, "3DES") || strstr(c->iana, "NULL") ||
                 strstr(c->iana, "EXPORT") || strstr(c->iana, "anon"));
}

static const char *alert_name(uint8_t d)
{
    switch (d) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 21: return "decryption_failed";
    case 22: return "record_overflow";
    case 30: return "decompression_failure";
    case 40: return "handshake_failure";
    case 41: return "no_certificate";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 60: return "export_restriction";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 100: return "no_renegotiation";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 111: return "certificate_unobtainable";
    case 112: return "unrecognized_name";
    case 113: return "bad_certificate_status_response";
    case 114: return "bad_certificate_hash_value";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "unknown";
    }
}

static const char *hs_name(uint8_t t)
{
    switch (t) {
    case 0: return "hello_request";
    case 1: return "client_hello";
    case 2: return "server_hello";
    case 4: return "new_session_ticket";
    case 5: return "end_of_early_data";
    case 8: return "encrypted_extensions";
    case 11: return "certificate";
    case 12: return "server_key_exchange";
    case 13: return "certificate_request";
    case 14: return "server_hello_done";
    case 15: return "certificate_verify";
    case 16: return "client_key_exchange";
    case 20: return "finished";
    case 22: return "certificate_status";
    case 24: return "key_update";
    default: return "unknown";
    }
}

static const char *version_name(uint16_t v)
{
    if ((v & 0xFF00) == 0x7F00) return "TLSv1.3-draft";   /* draft-ietf-tls-tls13 */
    switch (v) {
    case 0x0300: return "SSLv3";
    case 0x0301: return "TLSv1";
    case 0x0302: return "TLSv1.1";
    case 0x0303: return "TLSv1.2";
    case 0x0304: return "TLSv1.3";
    default: return "unknown";
    }
}

static const char *group_name(uint16_t g)
{
    switch (g) {
    case 23: return "secp256r1";
    case 24: return "secp384r1";
    case 25: return "secp521r1";
    case 29: return "x25519";
    case 30: return "x448";
    case 256: return "ffdhe2048";
    case 257: return "ffdhe3072";
    case 258: return "ffdhe4096";
    case 259: return "ffdhe6144";
    case 260: return "ffdhe8192";
    default: return NULL;
    }
}

/* RFC 8701: GREASE values are 0x?A?A with equal bytes. */
static int grease(uint16_t v) { return (v & 0x0F0F) == 0x0A0A && (v >> 8) == (v & 0xFF); }

/* The shortest TLS 1.3 Finished record: 4-byte header + 32-byte MAC +
 * content type + 16-byte tag.  A client record shorter than this in answer
 * to the server's flight cannot be its Finished. */
#define TLS13_MIN_FINISHED 53

/* HelloRetryRequest is a ServerHello with this random (RFC 8446 §4.1.3). */
static const uint8_t hrr_random[32] = {
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
};

/* ---- state ------------------------------------------------------------- */
struct mx_tls;
static void keys_from_log(struct mx_tls *t);
static void app_keys(struct mx_tls *t, int dir);

typedef struct tls_dir {
    uint8_t hdr[5];
    uint8_t hlen;
    uint8_t rtype;           /* type of the record being read  */
    uint16_t rlen;           /* its length                     */
    uint32_t body_left;
    uint8_t *hs;             /* handshake bytes being assembled */
    uint32_t hs_len, hs_cap; /* grown as messages need, up to max_tls_msg */
    uint8_t alert[2];
    uint8_t alen;
    uint8_t encrypted;       /* this side's records are encrypted */
    uint8_t not_tls, hs_dropped;
    uint64_t bytes, records, app_bytes, app_records, enc_records;
    uint32_t first_enc_len;  /* length of the first encrypted record */
    uint8_t last_hs;         /* last handshake message from this side */
    uint8_t any_hs;
    /* after lost bytes (or a capture that starts inside a record): looking
     * for the next record header, resync_pos bytes after the hole so far */
    uint8_t resync, started;
    uint64_t resync_pos;
    uint8_t hs_skip;         /* the rest of this handshake record is lost */
    uint32_t hs_discard;     /* bytes still to come of a message a hole cut */
    uint8_t hs_check;        /* first handshake record after a hole: its
                                first message must look like one */
    uint8_t after_hole, midstream;
    uint16_t rec_ver;        /* version in this side's last record header */
    /* with a key log: this side's records are opened */
    mx_tls_keys keys;        /* current keys; aead NONE: not opening   */
    uint8_t app_keys;        /* the keys are the application ones     */
    uint8_t collect;         /* the record being read is kept to open  */
    uint8_t opening;         /* its plaintext is being parsed           */
    uint8_t rhdr[5];         /* the record's header (additional data)   */
    uint8_t *rec;            /* the record being read (MAX_RECORD)      */
    uint32_t rec_len;
    uint64_t opened, app_plain_bytes;
    /* the SMTP conversation inside: bytes the parser has not taken yet */
    uint8_t inner;
    uint8_t *ibuf;
    uint32_t ilen, icap;
} tls_dir;

struct mx_tls {
    mx_sess *s;
    const mx_limits *lim;
    tls_dir d[2];
    uint16_t version;        /* negotiated (supported_versions aware) */
    uint16_t cipher;
    char sni[256];
    char alpn[64];
    uint8_t have_ch, have_sh, hrr, complete, tls13;
    int last_from;           /* who sent the last handshake message   */
    uint64_t alert_frame, cert_frame, complete_frame;
    uint8_t last_type;
    int alert_from, alert_code, alert_level, alert_encrypted;
    uint8_t probable_reject, saw_close_notify, alert_after_type;
    uint8_t cert_seen, weak;
    /* client certificates: asked for by the server (CertificateRequest),
     * the client's answer (its Certificate message, possibly empty) */
    uint8_t cert_requested, client_cert_msg, client_cert_count, client_kx;
    uint64_t cert_request_frame, client_cert_frame;
    mx_cert_checks checks;
    char ja3[33], ja4[64], ja3s[33];
    uint8_t client_random[32], have_random, server_random[32];
    mx_tls_keys pending[2];      /* TLS 1.2: a side's keys until its ChangeCipherSpec */
    uint8_t tls12_keyed;
    const mx_keylog_entry *kl;   /* this connection's secrets, if logged */
    uint8_t decrypting, decrypt_failed, alert_decrypted;
    uint8_t dane_checked, dane_match;
    int sha384;
};

mx_tls *mx_tls_new(mx_sess *s)
{
    mx_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->s = s;
    t->lim = &s->opt->lim;
    t->last_from = -1;
    t->alert_from = -1;
    return t;
}

void mx_tls_free(mx_tls *t)
{
    if (!t) return;
    free(t->d[0].hs);
    free(t->d[1].hs);
    free(t->d[0].rec);
    free(t->d[1].rec);
    free(t->d[0].ibuf);
    free(t->d[1].ibuf);
    memset(t->d, 0, sizeof t->d);             /* (keys) */
    free(t);
}

#define WIRE(ev, key, p, n) mx_ev_wire(ev, key, (const uint8_t *)(p), n, t->lim->max_field)
static const char *const side[2] = { "client", "server" };

/* Next extension of a hello's extension block: type and a cursor over its
 * body.  0 at the end or on a malformed length. */
static int next_ext(mx_cur *ex, uint16_t *type, mx_cur *body)
{
    uint16_t len;
    if (!mx_cur_has(ex, 4)) return 0;
    mx_cur_u16(ex, type);
    mx_cur_u16(ex, &len);
    return mx_cur_sub(ex, len, body);
}

/* ---- ClientHello ---------------------------------------------------------- */

typedef struct list16 { uint16_t v[128]; int n; } list16;

static void push16(list16 *l, uint16_t v) { if (l->n < 128) l->v[l->n++] = v; }


/* Appends the decimal digits of v at buf[*o] (room permitting). */
/* "0x" and four upper-case hex digits (a code no table names). */
static void hex4(char out[7], unsigned v)
{
    static const char hx[] = "0123456789ABCDEF";
    out[0] = '0';
    out[1] = 'x';
    for (int k = 0; k < 4; k++) out[2 + k] = hx[(v >> (12 - 4 * k)) & 15];
    out[6] = 0;
}

static void put_u16(char *buf, size_t cap, size_t *o, unsigned v)
{
    char d[6];
    int n = 0;
    do { d[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    if (*o + (size_t)n + 1 >= cap) return;
    while (n) buf[(*o)++] = d[--n];
    buf[*o] = 0;
}

/* Appends "a-b-c" of the non-GREASE values (decimal) to buf at o; the
 * new end. */
static size_t dash_list(char *buf, size_t cap, size_t o, const list16 *l)
{
    int first = 1;
    for (int i = 0; i < l->n; i++) {
        if (grease(l->v[i])) continue;
        if (!first && o + 2 < cap) { buf[o++] = '-'; buf[o] = 0; }
        put_u16(buf, cap, &o, l->v[i]);
        first = 0;
    }
    return o;
}

/* "xxxx,yyyy" of the values, sorted if asked, GREASE and `skip*` left out. */
static size_t hex_list(char *buf, size_t cap, const list16 *l, int sort, int skip_sni_alpn)
{
    uint16_t v[128];
    int n = 0;
    for (int i = 0; i < l->n; i++) {
        if (grease(l->v[i])) continue;
        if (skip_sni_alpn && (l->v[i] == 0x0000 || l->v[i] == 0x0010)) continue;
        v[n++] = l->v[i];
    }
    if (sort)      /* (a few dozen values: insertion, no comparison calls) */
        for (int i = 1; i < n; i++) {
            uint16_t x = v[i];
            int j = i;
            for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
            v[j] = x;
        }
    static const char hx[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < n && o + 6 < cap; i++) {
        if (i) buf[o++] = ',';
        for (int k = 12; k >= 0; k -= 4) buf[o++] = hx[(v[i] >> k) & 15];
    }
    buf[o] = 0;
    return o;
}

/* A list of 16-bit values behind a 1- or 2-byte length (RFC 8446 §3.4). */
static void u16_list(mx_cur *e, int lenbytes, list16 *out)
{
    uint8_t l1;
    uint16_t l2 = 0;
    mx_cur s;
    if (lenbytes == 1) { if (!mx_cur_u8(e, &l1)) return; l2 = l1; }
    else if (!mx_cur_u16(e, &l2)) return;
    if (!mx_cur_sub(e, l2, &s)) return;
    while (mx_cur_has(&s, 2)) { uint16_t v; mx_cur_u16(&s, &v); push16(out, v); }
}

static int count_ng(const list16 *l)
{
    int n = 0;
    for (int i = 0; i < l->n; i++) n += !grease(l->v[i]);
    return n;
}

/* JA3 and JA4 of a ClientHello's lists into t->ja3, t->ja4. */
static void fingerprints(mx_tls *t, uint16_t legacy, uint16_t top, char a0, char a1, const list16 *ciphers,
                         const list16 *exts, const list16 *groups, const list16 *pf, const list16 *sigs)
{
    /* JA3: version,ciphers,extensions,groups,point formats (decimal). */
    char ja3s[2048];
    size_t jo = 0;
    ja3s[0] = 0;
    put_u16(ja3s, sizeof ja3s, &jo, legacy);
    const list16 *parts[4] = { ciphers, exts, groups, pf };
    for (int k = 0; k < 4; k++) {
        if (jo + 2 < sizeof ja3s) { ja3s[jo++] = ','; ja3s[jo] = 0; }
        jo = dash_list(ja3s, sizeof ja3s, jo, parts[k]);
    }
    mx_md5_hex(ja3s, jo, t->ja3);

    /* JA4 (client): t<ver><d|i><#ciphers><#exts><alpn>_<ciphers>_<exts>_<sigs> */
    const char *vv = top == 0x0304 ? "13" : top == 0x0303 ? "12" : top == 0x0302 ? "11" : top == 0x0301 ? "10" : top == 0x0300 ? "s3" : "00";
    int nc = count_ng(ciphers), ne = count_ng(exts);
    char clist[1024], elist[2048], h1[65], h2[65];
    size_t cl = hex_list(clist, sizeof clist, ciphers, 1, 0);
    size_t el = hex_list(elist, sizeof elist - 800, exts, 1, 1);
    size_t sl = hex_list(elist + el + 1, 800, sigs, 0, 0);
    if (sl) { elist[el] = '_'; el += 1 + sl; }     /* (the signatures were written after it) */
    elist[el] = 0;
    if (cl) mx_sha256_hex(clist, cl, h1); else memcpy(h1, "000000000000", 13);
    if (ne) mx_sha256_hex(elist, el, h2); else memcpy(h2, "000000000000", 13);
    /* t<ver><d|i><#ciphers><#exts><alpn>_<12 hex>_<12 hex> */
    int c2 = nc > 99 ? 99 : nc, e2 = ne > 99 ? 99 : ne;
    char *j4 = t->ja4;
    _Static_assert(sizeof t->ja4 >= 37, "JA4 is 36 characters");
    j4[0] = 't'; j4[1] = vv[0]; j4[2] = vv[1]; j4[3] = t->sni[0] ? 'd' : 'i';
    j4[4] = (char)('0' + c2 / 10); j4[5] = (char)('0' + c2 % 10);
    j4[6] = (char)('0' + e2 / 10); j4[7] = (char)('0' + e2 % 10);
    j4[8] = a0; j4[9] = a1; j4[10] = '_';
    memcpy(j4 + 11, h1, 12); j4[23] = '_';
    memcpy(j4 + 24, h2, 12); j4[36] = 0;
}

/* The last ClientHellos' fingerprints, per thread (a direct-mapped table
 * of CH_MEMO_N slots; a key is confirmed value for value). */
enum { CH_KEY_MAX = 4 + 5 * 129, CH_MEMO_N = 32 };
typedef struct ch_memo {
    uint64_t h;
    uint16_t n;
    uint16_t key[CH_KEY_MAX];
    char ja3[33], ja4[64];
} ch_memo;
static _Thread_local ch_memo ch_memos[CH_MEMO_N];

/* The slot for a key; *hit whether it holds that key's fingerprints. */
static ch_memo *ch_memo_slot(const uint16_t *k, size_t n, uint64_t *h, int *hit)
{
    *h = mx_quick_hash(k, n * sizeof *k);
    ch_memo *m = &ch_memos[*h % CH_MEMO_N];
    *hit = m->n == n && m->h == *h && memcmp(m->key, k, n * sizeof *k) == 0;
    return m;
}

static void client_hello(mx_tls *t, mx_cur c)
{
    uint16_t legacy, len16;
    uint8_t sidlen, complen;
    list16 ciphers = { .n = 0 }, exts = { .n = 0 }, groups = { .n = 0 }, pf = { .n = 0 }, sigs = { .n = 0 }, vers = { .n = 0 };
    char alpn_first[64] = "";
    mx_cur cs, ex;
    const uint8_t *random = mx_cur_has(&c, 34) ? c.p + 2 : NULL;
    if (!mx_cur_u16(&c, &legacy) || !mx_cur_skip(&c, 32) || !mx_cur_u8(&c, &sidlen) ||
        !mx_cur_skip(&c, sidlen) || !mx_cur_u16(&c, &len16) || !mx_cur_sub(&c, len16, &cs)) {
        mx_sess_anomaly(t->s, MX_CLIENT, "tls_bad_client_hello", "ClientHello too short");
        return;
    }
    /* (the key log knows the connection by it) */
    if (random && !t->have_random) { memcpy(t->client_random, random, 32); t->have_random = 1; }
    while (mx_cur_has(&cs, 2)) { uint16_t v; mx_cur_u16(&cs, &v); push16(&ciphers, v); }
    if (!mx_cur_u8(&c, &complen) || !mx_cur_skip(&c, complen)) return;
    t->have_ch = 1;
    if (mx_cur_u16(&c, &len16) && mx_cur_sub(&c, len16, &ex)) {
        uint16_t et;
        mx_cur e;
        while (next_ext(&ex, &et, &e)) {
            push16(&exts, et);
            uint16_t l2;
            mx_cur s2;
            switch (et) {
            case 0: /* server_name: list of (type, name) */
                if (mx_cur_u16(&e, &l2) && mx_cur_sub(&e, l2, &s2)) {
                    uint8_t nt; uint16_t nl;
                    if (mx_cur_u8(&s2, &nt) && mx_cur_u16(&s2, &nl) && nt == 0 && mx_cur_has(&s2, nl)) {
                        size_t k = nl < sizeof t->sni - 1 ? nl : sizeof t->sni - 1;
                        memcpy(t->sni, s2.p, k);
                        t->sni[k] = 0;
                        for (size_t i = 0; i < k; i++) if (t->sni[i] == 0) t->sni[i] = '?';
                    }
                }
                break;
            case 10: u16_list(&e, 2, &groups); break;       /* supported_groups */
            case 11: { /* ec_point_formats */
                uint8_t l1;
                if (mx_cur_u8(&e, &l1) && mx_cur_sub(&e, l1, &s2))
                    while (mx_cur_has(&s2, 1)) { uint8_t v; mx_cur_u8(&s2, &v); push16(&pf, v); }
                break;
            }
            case 13: u16_list(&e, 2, &sigs); break;         /* signature_algorithms */
            case 16: /* ALPN: list of length-prefixed names */
                if (mx_cur_u16(&e, &l2) && mx_cur_sub(&e, l2, &s2)) {
                    uint8_t nl;
                    if (mx_cur_u8(&s2, &nl) && mx_cur_has(&s2, nl) && nl < sizeof alpn_first) {
                        memcpy(alpn_first, s2.p, nl);
                        alpn_first[nl] = 0;
                    }
                }
                break;
            case 43: u16_list(&e, 1, &vers); break;         /* supported_versions */
            default:
                break;
            }
        }
    }
    /* JA3 and JA4 are functions of the lists (GREASE left out), the top
     * version, whether there is an SNI and the ALPN's two characters:
     * client stacks repeat them, so they are looked up first. */
    uint16_t top = legacy;
    for (int i = 0; i < vers.n; i++) if (!grease(vers.v[i]) && vers.v[i] > top) top = vers.v[i];
    char a0 = '0', a1 = '0';
    size_t al = strlen(alpn_first);
    if (al) {
        /* ALPN: first and last characters of the first value; when either
         * is not alphanumeric, the first and last hex digits of the value */
        unsigned char f0 = (unsigned char)alpn_first[0], f1 = (unsigned char)alpn_first[al - 1];
        int alnum0 = (f0 >= '0' && f0 <= '9') || (f0 >= 'A' && f0 <= 'Z') || (f0 >= 'a' && f0 <= 'z');
        int alnum1 = (f1 >= '0' && f1 <= '9') || (f1 >= 'A' && f1 <= 'Z') || (f1 >= 'a' && f1 <= 'z');
        static const char hx[] = "0123456789abcdef";
        if (alnum0 && alnum1) { a0 = (char)f0; a1 = (char)f1; }
        else { a0 = hx[f0 >> 4]; a1 = hx[f1 & 15]; }
    }
    uint16_t key[CH_KEY_MAX];
    size_t kn = 0;
    key[kn++] = legacy;
    key[kn++] = top;
    key[kn++] = t->sni[0] ? 1 : 0;
    key[kn++] = (uint16_t)((unsigned)(unsigned char)a0 << 8 | (unsigned char)a1);
    const list16 *keyed[5] = { &ciphers, &exts, &groups, &pf, &sigs };
    for (int k = 0; k < 5; k++) {
        size_t at = kn++;
        for (int i = 0; i < keyed[k]->n; i++)
            if (!grease(keyed[k]->v[i])) key[kn++] = keyed[k]->v[i];
        key[at] = (uint16_t)(kn - at - 1);
    }
    uint64_t kh;
    int hit;
    ch_memo *mm = ch_memo_slot(key, kn, &kh, &hit);
    if (hit) {
        memcpy(t->ja3, mm->ja3, sizeof t->ja3);
        memcpy(t->ja4, mm->ja4, sizeof t->ja4);
    } else {
        fingerprints(t, legacy, top, a0, a1, &ciphers, &exts, &groups, &pf, &sigs);
        mm->h = kh;
        mm->n = (uint16_t)kn;
        memcpy(mm->key, key, kn * sizeof *key);
        memcpy(mm->ja3, t->ja3, sizeof mm->ja3);
        memcpy(mm->ja4, t->ja4, sizeof mm->ja4);
    }
    int nc = count_ng(&ciphers);

    mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_CLIENT_HELLO, MX_CLIENT);
    mx_ev_str(ev, "legacy_version", version_name(legacy));
    if (vers.n) {
        mx_ev *a = mx_ev_arr(ev, "supported_versions");
        for (int i = 0; i < vers.n; i++) if (!grease(vers.v[i])) mx_ev_push_lit(a, version_name(vers.v[i]));
    }
    if (t->sni[0]) WIRE(ev, "sni", t->sni, strlen(t->sni));
    if (al) WIRE(ev, "alpn", alpn_first, al);
    mx_ev_int(ev, "cipher_suites", nc);
    mx_ev *a = mx_ev_arr(ev, "ciphers");
    for (int i = 0; i < ciphers.n; i++) {
        if (grease(ciphers.v[i])) continue;
        const cs_name *n = suite(ciphers.v[i]);
        if (n) { mx_ev_push_lit(a, n->iana); continue; }
        char hx[8];
        hex4(hx, ciphers.v[i]);
        mx_ev_push_str(a, hx);
    }
    if (groups.n) {
        mx_ev *g = mx_ev_arr(ev, "groups");
        for (int i = 0; i < groups.n; i++) {
            if (grease(groups.v[i])) continue;
            const char *gn = group_name(groups.v[i]);
            if (gn) mx_ev_push_lit(g, gn); else mx_ev_push_int(g, groups.v[i]);
        }
    }
    mx_ev_int(ev, "signature_algorithms", count_ng(&sigs));
    mx_ev_str(ev, "ja3", t->ja3);
    mx_ev_str(ev, "ja4", t->ja4);
    mx_ev_end(t->s, ev);
}

/* ---- ServerHello ---------------------------------------------------------- */

static void server_hello(mx_tls *t, mx_cur c)
{
    uint16_t legacy, cipher, len16;
    uint8_t sidlen, comp;
    const uint8_t *random;
    mx_cur ex;
    if (!mx_cur_u16(&c, &legacy) || !mx_cur_has(&c, 32)) return;
    random = c.p;
    mx_cur_skip(&c, 32);
    /* TLS 1.3 drafts (0x7fNN) sent no session id and no compression */
    int draft = (legacy & 0xFF00) == 0x7F00;
    sidlen = 0;
    comp = 0;
    if ((!draft && (!mx_cur_u8(&c, &sidlen) || !mx_cur_skip(&c, sidlen))) || !mx_cur_u16(&c, &cipher) ||
        (!draft && !mx_cur_u8(&c, &comp))) {
        mx_sess_anomaly(t->s, MX_SERVER, "tls_bad_server_hello", "ServerHello too short");
        return;
    }
    int is_hrr = memcmp(random, hrr_random, 32) == 0;
    uint16_t selected = 0;
    char alpn[64] = "";
    list16 exts = { .n = 0 };
    if (mx_cur_u16(&c, &len16) && mx_cur_sub(&c, len16, &ex)) {
        uint16_t et;
        mx_cur e;
        while (next_ext(&ex, &et, &e)) {
            push16(&exts, et);
            if (et == 43) mx_cur_u16(&e, &selected);
            else if (et == 16) {
                uint16_t l2; uint8_t nl;
                if (mx_cur_u16(&e, &l2) && mx_cur_u8(&e, &nl) && mx_cur_has(&e, nl) && nl < sizeof alpn) {
                    memcpy(alpn, e.p, nl);
                    alpn[nl] = 0;
                }
            }
        }
    }
    uint16_t ver = selected ? selected : legacy;
    const cs_name *cn = suite(cipher);
    char ja3src[1024];
    size_t jo = 0;
    ja3src[0] = 0;
    put_u16(ja3src, sizeof ja3src, &jo, legacy);
    ja3src[jo++] = ',';
    put_u16(ja3src, sizeof ja3src, &jo, cipher);
    ja3src[jo++] = ',';
    ja3src[jo] = 0;
    jo = dash_list(ja3src, sizeof ja3src, jo, &exts);
    mx_ev *ev = mx_ev_begin(t->s, is_hrr ? MX_EV_TLS_HELLO_RETRY_REQUEST : MX_EV_TLS_SERVER_HELLO, MX_SERVER);
    mx_ev_str(ev, "version", version_name(ver));
    char hx[8];
    hex4(hx, cipher);
    mx_ev_str(ev, "cipher", cn ? cn->iana : hx);
    if (cn && cn->openssl) mx_ev_str(ev, "cipher_openssl", cn->openssl);
    if (alpn[0]) WIRE(ev, "alpn", alpn, strlen(alpn));
    if (!is_hrr) {
        mx_md5_hex(ja3src, jo, t->ja3s);
        mx_ev_str(ev, "ja3s", t->ja3s);
    }
    if (ver < 0x0303) mx_ev_bool(ev, "obsolete_version", 1);
    if (weak_suite(cn)) mx_ev_bool(ev, "weak_cipher", 1);
    mx_ev_end(t->s, ev);
    if (is_hrr) { t->hrr = 1; return; }
    memcpy(t->server_random, random, 32);
    t->have_sh = 1;
    t->version = ver;
    t->cipher = cipher;
    t->weak = (uint8_t)weak_suite(cn);
    memcpy(t->alpn, alpn, sizeof t->alpn);
    if (ver == 0x0304 || (ver & 0xFF00) == 0x7F00) {
        /* Everything after the ServerHello is encrypted, both ways. */
        t->tls13 = 1;
        t->d[MX_SERVER].encrypted = 1;
        t->d[MX_CLIENT].encrypted = 1;
        keys_from_log(t);
    }
}

/* ---- Certificate and the rest --------------------------------------------- */

/* A Certificate message from either side.  The server's chain is the one
 * checked against the server's names and kept for the summary; the client's
 * (its answer to a CertificateRequest, empty when it has none) is shown as
 * its own and never replaces the server's. */
static void certificate(mx_tls *t, int dir, mx_cur c)
{
    uint32_t total;
    const uint8_t *der[16];
    size_t len[16];
    int n = 0;
    mx_cur list;
    int tls13 = t->tls13;
    if (tls13 && !t->d[dir].opening) return;    /* encrypted in TLS 1.3 */
    if (tls13) {
        /* TLS 1.3 (RFC 8446 §4.4.2): a request context first, and each
         * certificate followed by its extensions */
        uint8_t ctxl;
        if (!mx_cur_u8(&c, &ctxl) || !mx_cur_skip(&c, ctxl)) return;
    }
    if (!mx_cur_u24(&c, &total) || !mx_cur_sub(&c, total, &list)) return;
    c = list;
    while (mx_cur_has(&c, 3) && n < 16) {
        uint32_t l;
        mx_cur_u24(&c, &l);
        if (!mx_cur_has(&c, l)) break;
        der[n] = c.p;
        len[n] = l;
        n++;
        mx_cur_skip(&c, l);
        uint16_t el;
        if (tls13 && (!mx_cur_u16(&c, &el) || !mx_cur_skip(&c, el))) break;
    }
    if (dir == MX_CLIENT) {
        mx_cert_checks scratch;
        mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_CERTIFICATE, MX_CLIENT);
        mx_ev_int(ev, "certificates", n);
        if (t->d[dir].opening) mx_ev_bool(ev, "decrypted", 1);
        if (t->cert_requested) mx_ev_bool(ev, "requested", 1);
        if (n) mx_cert_chain(ev, der, len, n, t->s->cur_us, NULL, NULL, 0, t->lim->max_field, t->s->certs, &scratch);
        mx_ev_end(t->s, ev);
        t->client_cert_msg = 1;
        t->client_cert_count = (uint8_t)n;
        t->client_cert_frame = t->s->cur_frame;
        return;
    }
    const char *names[4], *src[4];
    int nn = 0;
    if (t->sni[0]) { names[nn] = t->sni; src[nn++] = "sni"; }
    /* (an A answer's name that an MX answer gave: the mail exchanger the
     * client was heading for) */
    if (t->s->dns_name && t->s->dns_name[0] && strcasecmp(t->s->dns_name, t->sni) != 0) {
        names[nn] = t->s->dns_name;
        src[nn++] = t->s->mx_domain ? "mx" : "dns";
    }
    const char *banner = t->s->banner_host ? t->s->banner_host : "", *ehlo = t->s->ehlo_host ? t->s->ehlo_host : "";
    if (banner[0] && strcasecmp(banner, t->sni) != 0) { names[nn] = banner; src[nn++] = "banner"; }
    if (ehlo[0] && strcasecmp(ehlo, banner) != 0 && strcasecmp(ehlo, t->sni) != 0) { names[nn] = ehlo; src[nn++] = "ehlo"; }
    mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_CERTIFICATE, MX_SERVER);
    mx_ev_int(ev, "certificates", n);
    if (t->d[dir].opening) mx_ev_bool(ev, "decrypted", 1);
    mx_cert_chain(ev, der, len, n, t->s->cur_us, names, src, nn, t->lim->max_field, t->s->certs, &t->checks);
    if (t->s->ntlsa) {
        /* DANE: the TLSA answers the capture holds for this server */
        int m = mx_dane_match(der, len, n, t->s->tlsa, t->s->ntlsa);
        mx_ev *dn = mx_ev_obj(ev, "dane");
        mx_ev_int(dn, "tlsa_records", t->s->ntlsa);
        mx_ev_bool(dn, "match", m >= 0);
        if (m >= 0) {
            char u[16];
            snprintf(u, sizeof u, "%u %u %u", t->s->tlsa[m].usage, t->s->tlsa[m].selector, t->s->tlsa[m].mtype);
            mx_ev_str(dn, "matched", u);
        }
        t->dane_checked = 1;
        t->dane_match = m >= 0;
    }
    mx_ev_end(t->s, ev);
    if (t->dane_checked && !t->dane_match)
        mx_sess_anomaly(t->s, MX_SERVER, "dane_mismatch",
                        "no TLSA record the capture holds for this server matches the certificate it sent");
    t->cert_seen = 1;
    t->cert_frame = t->s->cur_frame;
}

static void server_key_exchange(mx_tls *t, mx_cur c)
{
    uint8_t ctype;
    uint16_t g;
    mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_SERVER_KEY_EXCHANGE, MX_SERVER);
    /* ECDHE: curve_type 3 (named_curve) then the group (RFC 8422 §5.4) */
    if (mx_cur_u8(&c, &ctype) && ctype == 3 && mx_cur_u16(&c, &g)) {
        const char *gn = group_name(g);
        if (gn) mx_ev_str(ev, "group", gn); else mx_ev_int(ev, "group", g);
    }
    mx_ev_end(t->s, ev);
}

static void handshake_msg(mx_tls *t, int dir, uint8_t type, mx_cur body)
{
    tls_dir *d = &t->d[dir];
    if (type == 13 && dir == MX_SERVER && !t->cert_requested) {
        t->cert_requested = 1;
        t->cert_request_frame = t->s->cur_frame;
    }
    if (type == 16 && dir == MX_CLIENT) t->client_kx = 1;
    switch (type) {
    case 1: if (dir == MX_CLIENT) client_hello(t, body); break;
    case 2: if (dir == MX_SERVER) server_hello(t, body); break;
    case 11: certificate(t, dir, body); break;
    case 12: if (dir == MX_SERVER) server_key_exchange(t, body); break;
    default: {
        mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_HANDSHAKE, dir);
        mx_ev_str(ev, "message", hs_name(type));
        if (d->opening) mx_ev_bool(ev, "decrypted", 1);
        mx_ev_end(t->s, ev);
        break;
    }
    }
    /* TLS 1.3: after its Finished a side writes with its application
     * traffic keys (RFC 8446 §7.2); a KeyUpdate's new keys are not logged */
    if (t->tls13 && d->opening && type == 20 && !d->app_keys) app_keys(t, dir);
    else if (t->tls13 && d->opening && type == 24) d->keys.aead = MX_AEAD_NONE;
    d->last_hs = type;
    d->any_hs = 1;
    t->last_from = dir;
    t->last_type = type;
}

/* Appends a handshake record's fragment and parses complete messages. */
static void handshake_bytes(mx_tls *t, int dir, const uint8_t *p, size_t n)
{
    tls_dir *d = &t->d[dir];
    if (d->hs_dropped || d->hs_skip) return;
    if (d->hs_discard) {
        size_t k = n < d->hs_discard ? n : d->hs_discard;
        d->hs_discard -= (uint32_t)k;
        p += k;
        n -= k;
        if (!n) return;
    }
    if (d->hs_len + n > t->lim->max_tls_msg) {
        mx_sess_anomaly(t->s, dir, "limit.max_tls_msg", "handshake message over max_tls_msg");
        d->hs_dropped = 1;
        return;
    }
    if (d->hs_len + n > d->hs_cap) {
        /* most handshakes fit in a few KB: the buffer grows only as needed */
        uint32_t nc = d->hs_cap ? d->hs_cap : 4096;
        while (nc < d->hs_len + n) nc *= 2;
        if (nc > t->lim->max_tls_msg) nc = t->lim->max_tls_msg;
        uint8_t *nb = realloc(d->hs, nc);
        if (!nb) return;
        d->hs = nb;
        d->hs_cap = nc;
    }
    memcpy(d->hs + d->hs_len, p, n);
    d->hs_len += (uint32_t)n;
    uint32_t off = 0;
    while (d->hs_len - off >= 4) {
        uint8_t type = d->hs[off];
        uint32_t len = ((uint32_t)d->hs[off + 1] << 16) | ((uint32_t)d->hs[off + 2] << 8) | d->hs[off + 3];
        if (d->hs_check) {
            /* after a hole the record may carry the rest of a lost message */
            if (strcmp(hs_name(type), "unknown") == 0 || len + 4 > t->lim->max_tls_msg) {
                d->hs_skip = 1;
                d->hs_len = 0;
                return;
            }
            d->hs_check = 0;
        }
        if (len + 4 > t->lim->max_tls_msg) {
            mx_sess_anomaly(t->s, dir, "limit.max_tls_msg", "handshake message over max_tls_msg");
            d->hs_dropped = 1;
            return;
        }
        if (d->hs_len - off - 4 < len) break;
        handshake_msg(t, dir, type, mx_cur_make(d->hs + off + 4, len));
        off += 4 + len;
        if (d->encrypted && !d->opening) { off = d->hs_len; break; }   /* rest is not in clear */
    }
    memmove(d->hs, d->hs + off, d->hs_len - off);
    d->hs_len -= off;
    if (d->encrypted && !d->hs_len && !d->keys.aead) {
        /* nothing more in clear from this side: its buffer goes */
        free(d->hs);
        d->hs = NULL;
        d->hs_cap = 0;
    }
}

static void alert(mx_tls *t, int dir, uint8_t level, uint8_t desc, int encrypted)
{
    mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_ALERT, dir);
    if (!encrypted) {
        mx_ev_str(ev, "level", level == 2 ? "fatal" : level == 1 ? "warning" : "unknown");
        mx_ev_int(ev, "code", desc);
        mx_ev_str(ev, "description", alert_name(desc));
    }
    mx_ev_bool(ev, "encrypted", encrypted || t->d[dir].opening);
    if (t->d[dir].opening) { mx_ev_bool(ev, "decrypted", 1); t->alert_decrypted = 1; }
    /* After a completed handshake an encrypted alert is almost always the
     * close_notify that ends the connection; so it is in a capture that
     * starts after the handshake (no handshake message seen): records were
     * already encrypted when it began. */
    int late = encrypted && (t->complete || (t->s->midstream && t->last_from < 0));
    if (late) mx_ev_str(ev, "probably", "close_notify");
    if (t->last_from >= 0) {
        mx_ev_str(ev, "after", hs_name(t->last_type));
        mx_ev_str(ev, "after_from", side[t->last_from]);
    } else {
        mx_ev_str(ev, "after", "nothing");
    }
    mx_ev_end(t->s, ev);
    if ((!encrypted && desc == 0) || late) { t->saw_close_notify = 1; return; }
    if (t->alert_from < 0 || (!encrypted && t->alert_encrypted)) {
        t->alert_frame = t->s->cur_frame;
        t->alert_after_type = t->last_from >= 0 ? t->last_type : 255;
        t->alert_from = dir;
        t->alert_code = encrypted ? -1 : desc;
        t->alert_level = level;
        t->alert_encrypted = encrypted;
    }
}

/* Largest record body: 2^14 bytes of plaintext and 2048 of expansion
 * (RFC 5246 §6.2.3; TLS 1.3 allows only 256, RFC 8446 §5.2). */
#define MAX_RECORD (16384 + 2048)

/* ---- with a key log -------------------------------------------------------- */

/* A side's keys from one of its logged traffic secrets; 0 if it is not
 * logged or not usable. */
static int side_keys(mx_tls *t, int dir, int sec)
{
    const mx_keylog_entry *e = t->kl;
    tls_dir *d = &t->d[dir];
    int aead, sha384;
    d->keys.aead = MX_AEAD_NONE;
    if (!e || !(e->have >> sec & 1) || !mx_tls13_suite(t->cipher, &aead, &sha384)) return 0;
    return mx_tls13_keys(aead, sha384, e->secret[sec], e->len[sec], &d->keys);
}

/* The ServerHello chose TLS 1.3: the connection's handshake secrets, if the
 * key log has them, open both sides' records from here. */
static void keys_from_log(mx_tls *t)
{
    const mx_keylog *kl = t->s->opt->keylog;
    if (!kl || !t->have_random || !(t->kl = mx_keylog_find(kl, t->client_random))) return;
    int c = side_keys(t, MX_CLIENT, MX_SEC_CLIENT_HS), sv = side_keys(t, MX_SERVER, MX_SEC_SERVER_HS);
    int aead, sha384;
    if (c || sv) {
        t->decrypting = 1;
    } else {
        mx_sess_anomaly(t->s, MX_NODIR, "tls_keys_unusable",
                        mx_tls13_suite(t->cipher, &aead, &sha384)
                            ? "the key log has this connection but not its handshake traffic secrets"
                            : "the key log has this connection, but its cipher suite is not one that is decrypted");
    }
}

/* TLS 1.2: a side's ChangeCipherSpec; from its next record it writes with
 * the keys of the logged master secret (both sides' made at the first). */
static void tls12_keys(mx_tls *t, int dir)
{
    const mx_keylog *kl = t->s->opt->keylog;
    int aead, sha384;
    if (!kl || !t->have_random || !t->have_sh) return;
    if (!t->tls12_keyed) {
        t->tls12_keyed = 1;
        const mx_keylog_entry *e = mx_keylog_find(kl, t->client_random);
        if (!e || !(e->have >> MX_SEC_MASTER & 1)) return;
        t->kl = e;
        if (!mx_tls12_suite(t->cipher, &aead, &sha384)) {
            mx_sess_anomaly(t->s, MX_NODIR, "tls_keys_unusable",
                            "the key log has this connection, but its cipher suite is not one that is decrypted");
            return;
        }
        if (!mx_tls12_keys(aead, sha384, e->secret[MX_SEC_MASTER], t->client_random, t->server_random,
                           &t->pending[MX_CLIENT], &t->pending[MX_SERVER]))
            return;
        t->decrypting = 1;
    }
    t->d[dir].keys = t->pending[dir];
    memset(&t->pending[dir], 0, sizeof t->pending[dir]);
}

static void app_keys(mx_tls *t, int dir)
{
    tls_dir *d = &t->d[dir];
    d->app_keys = 1;
    if (!side_keys(t, dir, dir == MX_CLIENT ? MX_SEC_CLIENT_AP : MX_SEC_SERVER_AP)) d->keys.aead = MX_AEAD_NONE;
}

static void handshake_bytes(mx_tls *t, int dir, const uint8_t *p, size_t n);

/* Offers dir's pending inner bytes to the SMTP parser; what it releases
 * of the other side (a 354, a 220 it waited for) is offered in turn. */
static void feed_inner(mx_tls *t, int dir, int force)
{
    mx_sess *s = t->s;
    tls_dir *d = &t->d[dir];
    while (d->ilen && s->smtp) {
        size_t c = mx_smtp_feed(s->smtp, dir, d->ibuf, d->ilen, force);
        if (c > d->ilen) c = d->ilen;
        memmove(d->ibuf, d->ibuf + c, d->ilen - c);
        d->ilen -= (uint32_t)c;
        uint8_t rel = s->release;
        s->release = 0;
        if (rel >> (1 - dir) & 1) feed_inner(t, 1 - dir, 0);
        if (!c) break;
    }
}

/* Application data opened: the SMTP conversation inside TLS. */
static void inner_smtp(mx_tls *t, int dir, const uint8_t *p, size_t n)
{
    mx_sess *s = t->s;
    tls_dir *d = &t->d[dir];
    if (!s->smtp) mx_sess_parsers(s);
    if (!s->smtp) return;
    if (!d->inner) { d->inner = 1; mx_smtp_in_tls(s->smtp, dir); }
    uint32_t room = t->lim->max_hold;
    if (d->ilen + n > d->icap) {
        uint32_t nc = d->icap ? d->icap : 1024;
        while (nc < d->ilen + n && nc < room) nc *= 2;
        if (nc > room) nc = room;
        uint8_t *nb = nc > d->icap ? realloc(d->ibuf, nc) : d->ibuf;
        if (!nb) return;
        d->ibuf = nb;
        d->icap = nc;
    }
    while (n) {
        size_t take = d->icap - d->ilen < n ? d->icap - d->ilen : n;
        memcpy(d->ibuf + d->ilen, p, take);
        d->ilen += (uint32_t)take;
        p += take;
        n -= take;
        /* a full buffer: the parser takes what it holds */
        feed_inner(t, dir, d->ilen == d->icap);
    }
}

/* A whole encrypted record of dir was read: opened, and its content parsed
 * as if it had been in clear. */
static void open_record(mx_tls *t, int dir)
{
    tls_dir *d = &t->d[dir];
    size_t pl = 0;
    d->collect = 0;
    /* (the plaintext overwrites the ciphertext it was made from; TLS 1.2's
     * GCM records start with 8 bytes of nonce) */
    uint8_t *pt = d->rec, inner;
    int ok;
    if (t->tls13) {
        ok = mx_tls13_open(&d->keys, d->rhdr, d->rec, d->rec_len, d->rec, &pl);
    } else {
        if (d->keys.aead != MX_AEAD_CHACHA20_POLY1305) pt = d->rec + 8;
        ok = mx_tls12_open(&d->keys, d->rhdr[0], (uint16_t)(d->rhdr[1] << 8 | d->rhdr[2]), d->rec, d->rec_len, pt, &pl);
    }
    if (!ok) {
        d->keys.aead = MX_AEAD_NONE;
        if (!t->decrypt_failed) {
            t->decrypt_failed = 1;
            mx_sess_anomaly(t->s, dir, "tls_decrypt_failed",
                            "a record did not open with the key log's secrets (other keys, or bytes lost): "
                            "this side is not decrypted from here");
        }
        return;
    }
    if (t->tls13) {
        while (pl && pt[pl - 1] == 0) pl--;         /* padding (RFC 8446 §5.4) */
        if (!pl) return;
        inner = pt[--pl];
    } else {
        inner = d->rhdr[0];
    }
    d->opened++;
    d->opening = 1;
    if (inner == 22) {
        handshake_bytes(t, dir, pt, pl);
    } else if (inner == 21 && pl == 2) {
        alert(t, dir, pt[0], pt[1], 0);
    } else if (inner == 23) {
        d->app_plain_bytes += pl;
        inner_smtp(t, dir, pt, pl);
    }
    d->opening = 0;
}

/* A TLS stream has a header at least every 5 + MAX_RECORD bytes: looking
 * twice that far in vain means the bytes are not TLS. */
#define RESYNC_MAX (2 * (5 + MAX_RECORD))

/* Could a record start with these 5 bytes?  Content type 20-24, version
 * 3.0-3.4 (once the ServerHello is known: the negotiated one, 3.3 under
 * TLS 1.3, or the one this side's records used so far), a length possible
 * for the type. */
static int plausible_header(const mx_tls *t, const tls_dir *d, const uint8_t *h)
{
    unsigned len = (unsigned)h[3] << 8 | h[4];
    if (h[0] < 20 || h[0] > 24 || h[1] != 3 || h[2] > 4 || len == 0 || len > MAX_RECORD) return 0;
    if (h[0] == 20 && len != 1) return 0;          /* ChangeCipherSpec is one byte */
    if (h[0] == 21 && len < 2) return 0;
    if (t->have_sh) {
        unsigned v = (unsigned)h[1] << 8 | h[2];
        unsigned want = t->tls13 ? 0x0303 : t->version;
        if (v != want && v != d->rec_ver) return 0;
    }
    return 1;
}

/* Looking for a record boundary again (after lost bytes, or in a capture
 * that starts inside a connection): skips bytes of p[0..n) until a record
 * header is accepted there (d->resync cleared) and returns how many it
 * skipped.  The first byte after the hole is taken on its own header: a
 * lost segment most often ends where a record ends, and a chance look-alike
 * at one given position is rare.  Further in, where every position is
 * tried, the record must be followed by a second plausible header.  When
 * the bytes to decide have not arrived, *wait is set and the rest stays
 * unconsumed, to be offered again with more; unless no more will come
 * before a hole or the end (final), or the record is too long for the
 * stream to hold it (then its header alone decides).  After RESYNC_MAX
 * bytes without a header it gives up (*wait = -1). */
static size_t resync_scan(mx_tls *t, tls_dir *d, const uint8_t *p, size_t n, int final, int *wait)
{
    size_t k;
    *wait = 0;
    for (k = 0; k + 5 <= n; k++) {
        if (d->resync_pos + k >= RESYNC_MAX) { *wait = -1; return k; }
        const uint8_t *h = p + k;
        if (!plausible_header(t, d, h)) continue;
        if (d->resync_pos + k == 0) break;
        size_t need = 5 + ((size_t)h[3] << 8 | h[4]) + 5;
        if (need >= t->lim->max_hold) break;   /* held, it would fill the stream's tail */
        if (k + need <= n) {
            if (plausible_header(t, d, h + need - 5)) break;
            continue;
        }
        if (!final) *wait = 1;
        return k;          /* wait here, or (final) take it as it is */
    }
    if (k + 5 > n) {       /* no header in what is there */
        if (final) return n;
        *wait = 1;
        return k;
    }
    return k;
}

/* A whole record header was read. */
static int record_start(mx_tls *t, int dir)
{
    tls_dir *d = &t->d[dir];
    uint8_t type = d->hdr[0];
    uint16_t len = (uint16_t)((d->hdr[3] << 8) | d->hdr[4]);
    /* RFC 8446 §5.2: at most 2^14 + 256 bytes of ciphertext (older: + 2048) */
    if (type < 20 || type > 24 || d->hdr[1] != 3 || len > MAX_RECORD) {
        if (d->after_hole || d->midstream) {
            /* the boundary taken after a hole was wrong: look again */
            mx_sess_anomaly(t->s, dir, "tls_resync_failed",
                            "the record boundary taken after lost bytes or at the start of the capture was wrong: looking again");
            d->resync = 1;
            d->resync_pos = 5;
            return 1;
        }
        d->not_tls = 1;
        if (d->records == 0 && !t->s->tls_from_start)
            mx_sess_anomaly(t->s, dir, "cleartext_after_starttls",
                            "bytes after the 220 to STARTTLS are not TLS (command injection or a broken peer)");
        else if (d->records == 0)
            mx_sess_anomaly(t->s, dir, "not_tls", "implicit-TLS port but the bytes are not TLS");
        else
            mx_sess_anomaly(t->s, dir, "not_tls", "bytes are not TLS records");
        return 0;
    }
    d->records++;
    d->rtype = type;
    d->rlen = len;
    d->rec_ver = (uint16_t)(d->hdr[1] << 8 | d->hdr[2]);
    d->body_left = len;
    d->alen = 0;
    d->hs_skip = 0;
    d->collect = 0;
    if (d->keys.aead && len &&
        (t->tls13 ? type == 23 : d->encrypted && (type == 22 || type == 23 || (type == 21 && len != 2)))) {
        if (!d->rec && !(d->rec = malloc(MAX_RECORD))) d->keys.aead = MX_AEAD_NONE;
        else { d->collect = 1; d->rec_len = 0; memcpy(d->rhdr, d->hdr, 5); }
    }
    if (type == 20) {                    /* ChangeCipherSpec */
        if (!t->tls13) {
            mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_CHANGE_CIPHER_SPEC, dir);
            mx_ev_end(t->s, ev);
            d->encrypted = 1;
            tls12_keys(t, dir);
        }
    } else if (type == 23 || (d->encrypted && !(type == 21 && len == 2))) {
        d->enc_records++;
        if (d->enc_records == 1) {
            d->first_enc_len = len;
            mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_ENCRYPTED, dir);
            mx_ev_int(ev, "record_bytes", len);
            mx_ev_end(t->s, ev);
        }
        if (type == 23) { d->app_records++; d->app_bytes += len; }
        /* TLS 1.2: the server's encrypted Finished completes the handshake.
         * TLS 1.3: the server speaking after the client's encrypted flight. */
        if (!t->complete && dir == MX_SERVER && t->have_sh &&
            ((!t->tls13 && t->d[MX_CLIENT].encrypted) ||
             (t->tls13 && t->d[MX_CLIENT].enc_records > 0 && t->d[MX_CLIENT].first_enc_len >= TLS13_MIN_FINISHED))) {
            t->complete = 1;
            t->complete_frame = t->s->cur_frame;
            mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_HANDSHAKE_COMPLETE, MX_NODIR);
            mx_ev_str(ev, "version", version_name(t->version));
            const cs_name *cn = suite(t->cipher);
            if (cn) mx_ev_str(ev, "cipher", cn->iana);
            mx_ev_end(t->s, ev);
        }
    }
    if (len == 0 && type == 22) mx_sess_anomaly(t->s, dir, "tls_empty_record", "empty handshake record");
    return 1;
}

/* First bytes (or hole) of a direction: an implicit-TLS connection whose
 * start is not in the capture may begin inside a record. */
static void dir_start(mx_tls *t, tls_dir *d)
{
    if (d->started) return;
    d->started = 1;
    if (t->s->midstream && t->s->tls_from_start) {
        d->resync = 1;
        d->midstream = 1;
    }
}

/* No header where one should have been: the bytes are not TLS. */
static void resync_failed(mx_tls *t, int dir)
{
    tls_dir *d = &t->d[dir];
    d->not_tls = 1;
    d->resync = 0;
    mx_sess_anomaly(t->s, dir, "not_tls", d->after_hole ? "no TLS record header in the bytes after the lost ones"
                                                        : "implicit-TLS port but the bytes are not TLS");
}

/* A header was accepted after a hole: say how far it was. */
static void resynced(mx_tls *t, int dir)
{
    tls_dir *d = &t->d[dir];
    d->resync = 0;
    if (d->midstream && !d->after_hole && d->resync_pos == 0) return;   /* started on a boundary */
    char detail[160];
    snprintf(detail, sizeof detail, "records followed again from a record header %llu bytes %s",
             (unsigned long long)d->resync_pos, d->after_hole ? "after the lost bytes" : "into the capture");
    mx_sess_anomaly(t->s, dir, "tls_resync", detail);
}

size_t mx_tls_feed(mx_tls *t, int dir, const uint8_t *p, size_t n, int force)
{
    if (!t) return n;
    tls_dir *d = &t->d[dir];
    size_t i = 0;
    dir_start(t, d);
    if (d->not_tls) { d->bytes += n; return n; }
    /* forced with less than the stream can hold: a hole or the end comes
     * next, these bytes are all there will be */
    int final = force && n < t->lim->max_hold;
    while (i < n) {
        if (d->resync) {
            int wait;
            size_t k = resync_scan(t, d, p + i, n - i, final, &wait);
            i += k;
            d->resync_pos += k;
            if (wait < 0) {
                resync_failed(t, dir);
                i = n;
                break;
            }
            if (wait) break;
            if (i < n) resynced(t, dir);
            continue;
        }
        if (d->body_left) {
            size_t take = n - i < d->body_left ? n - i : d->body_left;
            if (d->collect) {
                memcpy(d->rec + d->rec_len, p + i, take);
                d->rec_len += (uint32_t)take;
                if (d->body_left == take) {
                    d->body_left = 0;
                    i += take;
                    open_record(t, dir);
                    continue;
                }
            } else if (d->rtype == 22 && !d->encrypted) handshake_bytes(t, dir, p + i, take);
            /* an alert of exactly 2 bytes is in clear whatever we thought:
             * an encrypted one carries at least a 16-byte tag or MAC; any
             * other length is encrypted, whatever we thought */
            else if (d->rtype == 21 && d->rlen == 2) {
                for (size_t k = 0; k < take && d->alen < 2; k++) d->alert[d->alen++] = p[i + k];
                if (d->alen == 2 && d->body_left == take) alert(t, dir, d->alert[0], d->alert[1], 0);
            } else if (d->rtype == 21 && d->body_left == take) {
                alert(t, dir, 0, 0, 1);
            }
            d->body_left -= (uint32_t)take;
            i += take;
            continue;
        }
        d->hdr[d->hlen++] = p[i++];
        if (d->hlen < 5) continue;
        d->hlen = 0;
        if (!record_start(t, dir)) { i = n; break; }
    }
    if (force && i == 0) i = n;            /* cannot happen: the stream holds enough to decide */
    d->bytes += i;
    return i;
}

void mx_tls_gap(mx_tls *t, int dir, uint32_t len)
{
    if (!t) return;
    tls_dir *d = &t->d[dir];
    dir_start(t, d);
    if (d->not_tls || !len) return;
    if (!d->resync && d->hlen == 0 && len <= d->body_left) {
        /* inside a record: its end, and so the next header, are still known */
        d->body_left -= len;
        if (d->rtype == 21) d->alen = 3;                     /* the alert's bytes are not all there */
        if (d->rtype == 22 && !d->encrypted && !d->hs_dropped && !d->hs_skip) {
            /* the message being assembled is lost; if its header came
             * before the hole and its end comes after, so does the place
             * where the next one starts */
            uint32_t left = 0;                           /* bytes of it after where the hole starts */
            int known = 0;
            if (d->hs_discard) { left = d->hs_discard; known = 1; }
            else if (d->hs_len >= 4) {
                left = 4 + (((uint32_t)d->hs[1] << 16) | ((uint32_t)d->hs[2] << 8) | d->hs[3]) - d->hs_len;
                known = 1;
            }
            if (known && len <= left) {
                d->hs_discard = left - len;
            } else {
                d->hs_discard = 0;
                d->hs_skip = 1;                          /* the rest of this record is not readable */
                d->hs_check = 1;
            }
            d->hs_len = 0;
            mx_sess_anomaly(t->s, dir, "tls_gap", "bytes lost inside a handshake record: the message they cut is lost");
        }
        return;
    }
    /* the record boundary is lost: look for the next header */
    d->resync = 1;
    d->resync_pos = 0;
    d->after_hole = 1;
    d->hlen = 0;
    d->body_left = 0;
    d->hs_len = 0;
    d->hs_skip = 0;
    d->hs_discard = 0;
    d->hs_check = 1;
    mx_sess_anomaly(t->s, dir, "tls_gap", "bytes lost inside TLS: looking for the next record header");
}

void mx_tls_eof(mx_tls *t, int dir)
{
    if (!t || dir != MX_SERVER) return;   /* once, after both directions */
    tls_dir *c = &t->d[MX_CLIENT], *s = &t->d[MX_SERVER];
    for (int i = 0; i < 2; i++)
        if (t->d[i].resync && t->d[i].resync_pos) resync_failed(t, i);
    /* TLS 1.3: the client answered the server's flight with one record too
     * short to be its Finished, and nothing more came: most likely an alert
     * rejecting the certificate. */
    if (t->tls13 && !t->complete && c->enc_records == 1 && c->first_enc_len < TLS13_MIN_FINISHED &&
        t->alert_from < 0) {
        t->probable_reject = 1;
        mx_ev *ev = mx_ev_begin(t->s, MX_EV_TLS_ALERT, MX_CLIENT);
        mx_ev_bool(ev, "encrypted", 1);
        mx_ev_bool(ev, "probable_rejection", 1);
        mx_ev_str(ev, "after", "server_flight");
        mx_ev_str(ev, "detail", "one short encrypted record then close: an alert whose code cannot be seen");
        mx_ev_end(t->s, ev);
        t->alert_from = MX_CLIENT;
        t->alert_code = -1;
        t->alert_encrypted = 1;
        t->alert_frame = t->s->cur_frame;
        t->alert_after_type = 255;
    }
    if (t->complete && c->app_records + s->app_records <= 2 && t->alert_from < 0 && !t->tls13 &&
        c->app_records == 0) {
        mx_sess_anomaly(t->s, MX_NODIR, "tls_closed_without_data", "handshake completed, no data followed");
    }
}

int mx_tls_seen(const mx_tls *t)
{
    return t && (t->d[0].bytes || t->d[1].bytes);
}

void mx_tls_summary(const mx_tls *t, mx_ev *o)
{
    if (!t || !o) return;
    if (t->have_sh) {
        mx_ev_str(o, "version", version_name(t->version));
        const cs_name *cn = suite(t->cipher);
        char hx[8];
        hex4(hx, t->cipher);
        mx_ev_str(o, "cipher", cn ? cn->iana : hx);
        if (cn && cn->openssl) mx_ev_str(o, "cipher_openssl", cn->openssl);
    }
    if (t->sni[0]) mx_ev_wire(o, "sni", (const uint8_t *)t->sni, strlen(t->sni), t->lim->max_field);
    if (t->alpn[0]) mx_ev_wire(o, "alpn", (const uint8_t *)t->alpn, strlen(t->alpn), t->lim->max_field);
    mx_ev_bool(o, "handshake_complete", t->complete);
    if (t->ja3[0]) mx_ev_str(o, "ja3", t->ja3);
    if (t->ja4[0]) mx_ev_str(o, "ja4", t->ja4);
    if (t->ja3s[0]) mx_ev_str(o, "ja3s", t->ja3s);
    if (t->alert_from >= 0) {
        mx_ev *a = mx_ev_obj(o, "alert");
        mx_ev_str(a, "from", side[t->alert_from]);
        if (t->alert_code >= 0) {
            mx_ev_int(a, "code", t->alert_code);
            mx_ev_str(a, "description", alert_name((uint8_t)t->alert_code));
            mx_ev_str(a, "level", t->alert_level == 2 ? "fatal" : "warning");
        }
        mx_ev_bool(a, "encrypted", t->alert_encrypted);
        if (t->probable_reject) mx_ev_bool(a, "probable_rejection", 1);
    }
    if (t->cert_seen) {
        mx_ev *c = mx_ev_obj(o, "certificate");
        if (t->checks.leaf_cn[0]) mx_ev_wire(c, "subject_cn", (const uint8_t *)t->checks.leaf_cn, strlen(t->checks.leaf_cn), t->lim->max_field);
        mx_ev_bool(c, "expired", t->checks.expired);
        mx_ev_bool(c, "not_yet_valid", t->checks.not_yet_valid);
        mx_ev_bool(c, "self_signed", t->checks.self_signed);
        if (t->checks.names_checked) mx_ev_bool(c, "name_mismatch", t->checks.name_mismatch > 0);
    }
    if (t->cert_requested || t->client_cert_msg) {
        mx_ev *c = mx_ev_obj(o, "client_certificate");
        mx_ev_bool(c, "requested", t->cert_requested);
        if (t->client_cert_msg) mx_ev_int(c, "certificates", t->client_cert_count);
        else mx_ev_bool(c, "sent", 0);
    }
    if (t->weak) mx_ev_bool(o, "weak_cipher", 1);
    if (t->have_sh && t->version < 0x0303) mx_ev_bool(o, "obsolete_version", 1);
    for (int i = 0; i < 2; i++) {
        mx_ev *d = mx_ev_obj(o, side[i]);
        mx_ev_int(d, "bytes", (int64_t)t->d[i].bytes);
        mx_ev_int(d, "records", (int64_t)t->d[i].records);
        mx_ev_int(d, "application_data_bytes", (int64_t)t->d[i].app_bytes);
    }
}

void mx_tls_facts(const mx_tls *t, mx_facts *f)
{
    if (!t || !mx_tls_seen(t)) return;
    f->tls_seen = 1;
    f->tls_complete = t->complete;
    f->tls_complete_frame = t->complete_frame;
    f->tls_decrypted = t->d[0].opened + t->d[1].opened > 0;
    f->dane_checked = t->dane_checked;
    f->dane_match = t->dane_match;
    f->tls_keys_failed = t->decrypt_failed;
    if (t->have_sh) {
        const cs_name *cn = suite(t->cipher);
        mx_copy_str(f->tls_version, sizeof f->tls_version, version_name(t->version));
        if (cn) {
            mx_copy_str(f->tls_cipher, sizeof f->tls_cipher, cn->iana);
            mx_copy_str(f->tls_cipher_openssl, sizeof f->tls_cipher_openssl, cn->openssl ? cn->openssl : "");
        } else {
            char hx[8];
            hex4(hx, t->cipher);
            mx_copy_str(f->tls_cipher, sizeof f->tls_cipher, hx);
        }
    }
    f->client_hello_seen = t->have_ch;
    f->server_hello_seen = t->have_sh;
    f->alert_from = t->alert_from;
    f->alert_code = t->alert_code;
    f->alert_encrypted = t->alert_encrypted;
    f->alert_probable = t->probable_reject;
    f->alert_frame = t->alert_frame;
    f->alert_name = t->alert_code >= 0 ? alert_name((uint8_t)t->alert_code) : NULL;
    f->alert_after = t->alert_after_type == 255 ? NULL : hs_name(t->alert_after_type);
    f->cert_seen = t->cert_seen;
    f->cert_frame = t->cert_frame;
    f->cert_expired = t->checks.expired;
    f->cert_not_yet_valid = t->checks.not_yet_valid;
    f->cert_self_signed = t->checks.self_signed;
    f->cert_name_mismatch = t->checks.name_mismatch > 0;
    mx_copy_str(f->cert_issuer_cn, sizeof f->cert_issuer_cn, t->checks.root_cn[0] ? t->checks.root_cn : t->checks.issuer_cn);
    mx_copy_str(f->cert_subject_cn, sizeof f->cert_subject_cn, t->checks.leaf_cn);
    mx_copy_str(f->cert_not_after, sizeof f->cert_not_after, t->checks.not_after);
    mx_copy_str(f->cert_names, sizeof f->cert_names, t->checks.uncovered);
    mx_copy_str(f->sni, sizeof f->sni, t->sni);
    f->client_cert_requested = t->cert_requested;
    f->cert_request_frame = t->cert_request_frame;
    f->client_cert_frame = t->client_cert_frame;
    f->client_cert_empty = t->cert_requested &&
                           (t->client_cert_msg ? t->client_cert_count == 0 : t->client_kx);
}
