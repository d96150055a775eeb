/* Unit tests: no AUTH secret ever reaches the output.
 *
 * For every SASL mechanism an SMTP client commonly uses (PLAIN with and
 * without an initial response, LOGIN in two steps and in one, CRAM-MD5,
 * XOAUTH2 and OAUTHBEARER with and without the server's error challenge,
 * NTLM with and without an initial type 1 message) a conversation carries a
 * distinctive password, token or response and user name.  Each conversation
 * is played in many variants: as captured; as if the capture began at each
 * 334 and at each client response (midstream); with the AUTH line lost, or
 * only its "AUTH MECH " part; with each server challenge lost; refused with
 * 504, 535 or 538 and the client sending its lines anyway; failed with 535
 * and retried; pipelined as a whole and after the first challenge.  Every
 * variant is fed whole, with each credential-carrying chunk split at every
 * byte, and byte by byte, with show_user off and on.
 *
 * Every output is searched for each secret in clear, in base64 at the three
 * alignments a secret can have inside a larger blob, in base64url, and in
 * lower- and upper-case hex - and for every 10-byte window of each of those
 * (no_secret()).  User names are searched the same way with show_user off;
 * with it on, only their clear form may appear, as the `user` field.
 *
 * Variants marked LEAK (known_leaks[], explained in main()) fail today: they
 * show a way a secret reaches the output.  They run on their own, as
 * `test_leaks --known-leaks` (ctest unit_leaks_known), so that unit_leaks
 * keeps guarding everything else; once the parser is fixed, remove them
 * from known_leaks[] and they join the rest.
 */
#include "check.h"
#include "harness.h"

#include <stdint.h>
#include <stdlib.h>

typedef mxh_chunk chunk;
#define D_GAP_C (-1)        /* harness convention: a hole in the client bytes */
#define D_END (-2)
#define D_GAP_S (-3)        /* harness convention: a hole in the server bytes */

/* ---- encodings ---------------------------------------------------------- */

static size_t b64(const uint8_t *in, size_t n, char *out, int url)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char web[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *a = url ? web : std;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = i + 1 < n ? a[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static size_t hex(const uint8_t *in, size_t n, char *out, int upper)
{
    const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (size_t i = 0; i < n; i++) { out[2 * i] = d[in[i] >> 4]; out[2 * i + 1] = d[in[i] & 15]; }
    out[2 * n] = 0;
    return 2 * n;
}

/* ---- searching an output for a secret ------------------------------------ */

#define WIN 10
#define MAXWIN 1024

typedef struct win { char s[WIN]; const char *enc; } win;
typedef struct wset { win w[MAXWIN]; size_t n; uint8_t first[65536 / 8]; } wset;

static int win_cmp(const void *a, const void *b) { return memcmp(a, b, WIN); }

static void add_windows(wset *ws, const char *enc, const char *label)
{
    size_t n = strlen(enc);
    for (size_t i = 0; i + WIN <= n && ws->n < MAXWIN; i++) {
        memcpy(ws->w[ws->n].s, enc + i, WIN);
        ws->w[ws->n].enc = label;
        ws->n++;
    }
}

/* Every 10-byte window of every encoding of secret[0..len).  Base64 of a
 * secret inside a blob depends on its offset mod 3: for each offset k only
 * the characters made of the secret's bits alone are kept. */
static void build_windows(wset *ws, const uint8_t *sec, size_t len, int clear)
{
    static char buf[4096];
    uint8_t tmp[1024];
    ws->n = 0;
    memset(ws->first, 0, sizeof ws->first);
    if (clear) {
        memcpy(buf, sec, len);
        buf[len] = 0;
        if (strlen(buf) == len) add_windows(ws, buf, "clear");
    }
    for (int url = 0; url < 2; url++)
        for (size_t k = 0; k < 3; k++) {
            memset(tmp, 0, k);
            memcpy(tmp + k, sec, len);
            b64(tmp, k + len, buf, url);
            size_t a = (8 * k + 5) / 6, b = (8 * (k + len)) / 6;
            buf[b] = 0;
            add_windows(ws, buf + a, url ? (k == 0 ? "base64url+0" : k == 1 ? "base64url+1" : "base64url+2")
                                         : (k == 0 ? "base64+0" : k == 1 ? "base64+1" : "base64+2"));
        }
    hex(sec, len, buf, 0);
    add_windows(ws, buf, "hex");
    hex(sec, len, buf, 1);
    add_windows(ws, buf, "HEX");
    qsort(ws->w, ws->n, sizeof ws->w[0], win_cmp);
    for (size_t i = 0; i < ws->n; i++) {
        unsigned f = (unsigned)(uint8_t)ws->w[i].s[0] << 8 | (uint8_t)ws->w[i].s[1];
        ws->first[f >> 3] |= (uint8_t)(1u << (f & 7));
    }
}

/* The first window of ws found in out, or NULL. */
static const win *find_window(const wset *ws, const char *out)
{
    size_t n = strlen(out);
    for (size_t i = 0; i + WIN <= n; i++) {
        unsigned f = (unsigned)(uint8_t)out[i] << 8 | (uint8_t)out[i + 1];
        if (!(ws->first[f >> 3] & (1u << (f & 7)))) continue;
        const win *w = bsearch(out + i, ws->w, ws->n, sizeof ws->w[0], win_cmp);
        if (w) return w;
    }
    return NULL;
}

static const char *secret_name(const uint8_t *sec, size_t len)
{
    static char s[80];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < sizeof s; i++)
        o += (size_t)snprintf(s + o, sizeof s - o, sec[i] >= 0x20 && sec[i] < 0x7F ? "%c" : "\\x%02x", sec[i]);
    return s;
}

/* Fails the test (and says where) when any encoding of the secret, or any
 * 10-byte window of one, is in out.  clear 0: the clear form is allowed
 * (a user name with show_user). */
static int no_secret_enc(const char *name, const char *out, const void *secret, size_t len, int clear)
{
    static wset ws;
    CHECK(len >= WIN, "%s: a secret of at least %d bytes (%zu)", name, WIN, len);
    build_windows(&ws, secret, len, clear);
    const win *w = find_window(&ws, out);
    if (w) {
        const char *at = out;
        for (size_t i = 0, n = strlen(out); i + WIN <= n; i++)
            if (!memcmp(out + i, w->s, WIN)) { at = out + i; break; }
        const char *ls = at;
        while (ls > out && ls[-1] != '\n') ls--;
        const char *le = strchr(at, '\n');
        CHECK(0, "%s: LEAK of \"%s\" (%s window \"%.*s\") in: %.*s", name, secret_name(secret, len), w->enc,
              WIN, w->s, (int)(le ? le - ls : (long)strlen(ls)), ls);
        return 0;
    }
    mx_pass++;
    return 1;
}

static int no_secret(const char *name, const char *out, const char *secret)
{
    return no_secret_enc(name, out, secret, strlen(secret), 1);
}

/* ---- the secrets ---------------------------------------------------------- */

static const char PW[] = "Sup3rS3cretPw!";
static const char USER[] = "alice.leaktest";
static const char MAILUSER[] = "alice.leaktest@example.org";
static const char TOKEN[] = "ya29.Sup3rS3cretTok3n-AbC";
static const char DIGEST[] = "5d3ea1f0c2b94e87a6d1f03b9c2e4a71";  /* CRAM-MD5 response */
/* NTLM: the NT response (what a cracker wants) and the names, as UTF-16LE */
static const uint8_t NTRESP[24] = { 0x53, 0x75, 0x70, 0x33, 0xc7, 0x1e, 0x9a, 0x02, 0x4b, 0xd3, 0x88, 0x61,
                                    0xf0, 0x0d, 0x5e, 0xa7, 0x13, 0x39, 0xbe, 0x47, 0x90, 0x2c, 0x6a, 0xe5 };

/* ---- mechanisms ----------------------------------------------------------- */

#define MAXSTEP 4
#define LINE 8192

typedef struct sec { const uint8_t *p; size_t n; } sec;

typedef struct mech {
    const char *name;
    char cmd[LINE];               /* the AUTH line, CRLF included */
    size_t ir_prefix;             /* "AUTH MECH " before an initial response, 0: none */
    int nsteps;
    char chal[MAXSTEP][LINE];     /* server 334 line before response i */
    char resp[MAXSTEP][LINE];     /* client line i */
    const char *final;            /* the server's answer at the end */
    sec secret[4];                /* must never appear */
    int nsecret;
    sec user[3];                  /* only in clear, and only with show_user */
    int nuser;
    const char *user_field;       /* expected with show_user in the plain case, NULL: none */
} mech;

static char bigblob[4800];
static uint8_t utf16_user[2 * sizeof USER], utf16_dom[2 * sizeof "TESTLAB"], utf16_ws[2 * sizeof "WS01"];

static size_t to_utf16(const char *s, uint8_t *out)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) { out[2 * i] = (uint8_t)s[i]; out[2 * i + 1] = 0; }
    return 2 * n;
}

static void put16(uint8_t *p, size_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, size_t v) { put16(p, v & 0xFFFF); put16(p + 2, v >> 16); }

/* An NTLM AUTHENTICATE (type 3) message: LM and NT responses, domain, user,
 * workstation, as MS-NLMP lays them out. */
static size_t ntlm_type3(uint8_t *b)
{
    size_t ul = to_utf16(USER, utf16_user), dl = to_utf16("TESTLAB", utf16_dom), wl = to_utf16("WS01", utf16_ws);
    memset(b, 0, 64);
    memcpy(b, "NTLMSSP", 8);
    put32(b + 8, 3);
    size_t off = 64;
    struct { const uint8_t *p; size_t n; size_t at; } f[5] = {
        { NULL, 24, 12 }, { NTRESP, 24, 20 }, { utf16_dom, dl, 28 }, { utf16_user, ul, 36 }, { utf16_ws, wl, 44 },
    };
    for (int i = 0; i < 5; i++) {
        put16(b + f[i].at, f[i].n);
        put16(b + f[i].at + 2, f[i].n);
        put32(b + f[i].at + 4, off);
        if (f[i].p) memcpy(b + off, f[i].p, f[i].n);
        else memset(b + off, 0, f[i].n);
        off += f[i].n;
    }
    put16(b + 52, 0); put16(b + 54, 0); put32(b + 56, off);    /* no session key */
    put32(b + 60, 0x60088215);
    return off;
}

/* "prefix" + base64(blob) + CRLF */
static void line_b64(char *dst, const char *prefix, const void *blob, size_t n)
{
    size_t pl = strlen(prefix);
    memcpy(dst, prefix, pl);
    size_t k = b64(blob, n, dst + pl, 0);
    memcpy(dst + pl + k, "\r\n", 3);
}

static void line(char *dst, const char *s) { snprintf(dst, LINE, "%s\r\n", s); }

#define SEC(s) ((sec){ (const uint8_t *)(s), sizeof(s) - 1 })

static int make_mechs(mech *ms)
{
    char blob[512];
    int n = 0, k;
    mech *m;
    static const char ok[] = "235 2.7.0 Authentication successful\r\n";

    /* PLAIN: authzid NUL authcid NUL passwd (RFC 4616) */
    k = snprintf(blob, sizeof blob, "%c%s%c%s", 0, USER, 0, PW);
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "plain-ir";
    line_b64(m->cmd, "AUTH PLAIN ", blob, (size_t)k);
    m->ir_prefix = strlen("AUTH PLAIN ");
    m->final = ok;
    m->secret[m->nsecret++] = SEC(PW);
    m->user[m->nuser++] = SEC(USER);
    m->user_field = "\"user\":\"alice.leaktest\"";

    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "plain-334";
    line(m->cmd, "AUTH PLAIN");
    m->nsteps = 1;
    line(m->chal[0], "334 ");
    line_b64(m->resp[0], "", blob, (size_t)k);
    m->final = ok;
    m->secret[m->nsecret++] = SEC(PW);
    m->user[m->nuser++] = SEC(USER);
    m->user_field = "\"user\":\"alice.leaktest\"";

    /* LOGIN (draft-murchison-sasl-login): user, then password */
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "login-2step";
    line(m->cmd, "AUTH LOGIN");
    m->nsteps = 2;
    line(m->chal[0], "334 VXNlcm5hbWU6");
    line_b64(m->resp[0], "", USER, strlen(USER));
    line(m->chal[1], "334 UGFzc3dvcmQ6");
    line_b64(m->resp[1], "", PW, strlen(PW));
    m->final = ok;
    m->secret[m->nsecret++] = SEC(PW);
    m->user[m->nuser++] = SEC(USER);
    m->user_field = "\"user\":\"alice.leaktest\"";

    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "login-1step";
    line_b64(m->cmd, "AUTH LOGIN ", USER, strlen(USER));
    m->ir_prefix = strlen("AUTH LOGIN ");
    m->nsteps = 1;
    line(m->chal[0], "334 UGFzc3dvcmQ6");
    line_b64(m->resp[0], "", PW, strlen(PW));
    m->final = ok;
    m->secret[m->nsecret++] = SEC(PW);
    m->user[m->nuser++] = SEC(USER);
    m->user_field = "\"user\":\"alice.leaktest\"";

    /* CRAM-MD5 (RFC 2195): "user SP hex-digest" answers the challenge */
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "cram-md5";
    line(m->cmd, "AUTH CRAM-MD5");
    m->nsteps = 1;
    line_b64(m->chal[0], "334 ", "<1896.697170952@mx.test>", 24);
    k = snprintf(blob, sizeof blob, "%s %s", USER, DIGEST);
    line_b64(m->resp[0], "", blob, (size_t)k);
    m->final = ok;
    m->secret[m->nsecret++] = SEC(DIGEST);
    m->secret[m->nsecret++] = SEC(PW);
    m->user[m->nuser++] = SEC(USER);
    m->user_field = "\"user\":\"alice.leaktest\"";

    /* XOAUTH2: "user=" U ^A "auth=Bearer " T ^A ^A */
    char xo[512];
    int xl = snprintf(xo, sizeof xo, "user=%s\001auth=Bearer %s\001\001", MAILUSER, TOKEN);
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "xoauth2-ir";
    line_b64(m->cmd, "AUTH XOAUTH2 ", xo, (size_t)xl);
    m->ir_prefix = strlen("AUTH XOAUTH2 ");
    m->final = ok;
    m->secret[m->nsecret++] = SEC(TOKEN);
    m->user[m->nuser++] = SEC(MAILUSER);
    m->user_field = "\"user\":\"alice.leaktest@example.org\"";

    /* ... refused: the server's error is a 334 with a JSON status, the
     * client answers with an empty line, then 535 */
    static const char xerr[] = "{\"status\":\"401\",\"schemes\":\"Bearer\",\"scope\":\"https://mail.google.test/\"}";
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "xoauth2-ir-error";
    line_b64(m->cmd, "AUTH XOAUTH2 ", xo, (size_t)xl);
    m->ir_prefix = strlen("AUTH XOAUTH2 ");
    m->nsteps = 1;
    line_b64(m->chal[0], "334 ", xerr, sizeof xerr - 1);
    line(m->resp[0], "");
    m->final = "535 5.7.8 Username and Password not accepted\r\n";
    m->secret[m->nsecret++] = SEC(TOKEN);
    m->user[m->nuser++] = SEC(MAILUSER);
    m->user_field = "\"user\":\"alice.leaktest@example.org\"";

    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "xoauth2-334";
    line(m->cmd, "AUTH XOAUTH2");
    m->nsteps = 1;
    line(m->chal[0], "334 ");
    line_b64(m->resp[0], "", xo, (size_t)xl);
    m->final = ok;
    m->secret[m->nsecret++] = SEC(TOKEN);
    m->user[m->nuser++] = SEC(MAILUSER);
    m->user_field = "\"user\":\"alice.leaktest@example.org\"";

    /* ... from a client that separates the fields with spaces, not ^A: the
     * user name must still not take the token with it */
    xl = snprintf(xo, sizeof xo, "user=%s auth=Bearer %s", MAILUSER, TOKEN);
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "xoauth2-ir-no-ctrl-a";
    line_b64(m->cmd, "AUTH XOAUTH2 ", xo, (size_t)xl);
    m->ir_prefix = strlen("AUTH XOAUTH2 ");
    m->final = "535 5.7.8 Username and Password not accepted\r\n";
    m->secret[m->nsecret++] = SEC(TOKEN);
    m->user[m->nuser++] = SEC(MAILUSER);
    m->user_field = NULL;

    /* OAUTHBEARER (RFC 7628): gs2 header with a=, then key/values */
    char ob[512];
    int obl = snprintf(ob, sizeof ob, "n,a=%s,\001host=mx.test\001port=587\001auth=Bearer %s\001\001", MAILUSER, TOKEN);
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "oauthbearer-ir";
    line_b64(m->cmd, "AUTH OAUTHBEARER ", ob, (size_t)obl);
    m->ir_prefix = strlen("AUTH OAUTHBEARER ");
    m->final = ok;
    m->secret[m->nsecret++] = SEC(TOKEN);
    m->user[m->nuser++] = SEC(MAILUSER);
    m->user_field = NULL;         /* the parser does not read a= (see the report) */

    static const char oerr[] = "{\"status\":\"invalid_token\",\"scope\":\"mail\"}";
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "oauthbearer-ir-error";
    line_b64(m->cmd, "AUTH OAUTHBEARER ", ob, (size_t)obl);
    m->ir_prefix = strlen("AUTH OAUTHBEARER ");
    m->nsteps = 1;
    line_b64(m->chal[0], "334 ", oerr, sizeof oerr - 1);
    line(m->resp[0], "AQ==");     /* %x01: the client ends the exchange */
    m->final = "535 5.7.8 Authentication failed\r\n";
    m->secret[m->nsecret++] = SEC(TOKEN);
    m->user[m->nuser++] = SEC(MAILUSER);
    m->user_field = NULL;

    /* NTLM: type 1, the server's type 2 challenge, type 3 */
    static uint8_t t1[] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 1, 0, 0, 0, 0x07, 0x82, 0x08, 0x00,
                            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    static uint8_t t2[] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 2, 0, 0, 0, 0, 0, 0, 0, 56, 0, 0, 0,
                            0x05, 0x82, 0x89, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    static uint8_t t3[512];
    size_t t3l = ntlm_type3(t3);
    for (int ir = 0; ir < 2; ir++) {
        m = &ms[n++]; memset(m, 0, sizeof *m);
        m->name = ir ? "ntlm-ir" : "ntlm";
        int s = 0;
        if (ir) {
            line_b64(m->cmd, "AUTH NTLM ", t1, sizeof t1);
            m->ir_prefix = strlen("AUTH NTLM ");
        } else {
            line(m->cmd, "AUTH NTLM");
            line(m->chal[s], "334 ");
            line_b64(m->resp[s++], "", t1, sizeof t1);
        }
        line_b64(m->chal[s], "334 ", t2, sizeof t2);
        line_b64(m->resp[s++], "", t3, t3l);
        m->nsteps = s;
        m->final = ok;
        m->secret[m->nsecret++] = (sec){ NTRESP, sizeof NTRESP };
        m->user[m->nuser++] = SEC(USER);
        m->user[m->nuser++] = (sec){ utf16_user, 2 * strlen(USER) };
        m->user_field = NULL;     /* the parser does not read type 3 (see the report) */
    }
    /* GSSAPI: a Kerberos ticket is easily longer than max_line (4096); the
     * password-equivalent parts sit before and after the cut */
    m = &ms[n++]; memset(m, 0, sizeof *m);
    m->name = "gssapi-long";
    line(m->cmd, "AUTH GSSAPI");
    m->nsteps = 2;
    line(m->chal[0], "334 ");
    memset(bigblob, 0x5a, sizeof bigblob);
    memcpy(bigblob + 100, PW, strlen(PW));
    memcpy(bigblob + 3500, PW, strlen(PW));      /* base64 beyond byte 4096 */
    memcpy(bigblob + sizeof bigblob - 20, PW, strlen(PW));
    line_b64(m->resp[0], "", bigblob, sizeof bigblob);
    line_b64(m->chal[1], "334 ", "\x05\x04\x01\xff", 4);
    line(m->resp[1], "");
    m->final = ok;
    m->secret[m->nsecret++] = SEC(PW);
    m->user_field = NULL;
    return n;
}

/* ---- conversations -------------------------------------------------------- */

#define MAXCH 48

typedef struct conv {
    chunk c[MAXCH];
    int n;
    int cred[MAXCH];        /* chunk carries a credential: split it everywhere */
    int midstream;
    int tiny;               /* the smallest caps the command line accepts */
} conv;

static void push(conv *v, int dir, const char *p, size_t n, int cred)
{
    if (v->n >= MAXCH - 1) abort();
    v->cred[v->n] = cred;
    v->c[v->n++] = (chunk){ dir, p, n };
}
static void cl(conv *v, const char *s, int cred) { push(v, MX_CLIENT, s, strlen(s), cred); }
static void sv(conv *v, const char *s) { push(v, MX_SERVER, s, strlen(s), 0); }
static void hole(conv *v, int dir, size_t n) { push(v, dir == MX_CLIENT ? D_GAP_C : D_GAP_S, NULL, n, 0); }
static void fin(conv *v) { v->c[v->n] = (chunk){ D_END, NULL, 0 }; }

static const char GREET[] = "220 mx.test ESMTP\r\n", EHLO[] = "EHLO client.test\r\n",
    EHLO_OK[] = "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER NTLM\r\n",
    MAIL[] = "MAIL FROM:<a@x.test>\r\n", RCPT[] = "RCPT TO:<b@x.test>\r\n", OK250[] = "250 2.1.0 Ok\r\n",
    QUIT[] = "QUIT\r\n", BYE[] = "221 2.0.0 Bye\r\n", WHAT[] = "500 5.5.2 Error: command not recognized\r\n";

static void head(conv *v) { sv(v, GREET); cl(v, EHLO, 0); sv(v, EHLO_OK); }
static void tail(conv *v) { cl(v, MAIL, 0); sv(v, OK250); cl(v, RCPT, 0); sv(v, OK250); cl(v, QUIT, 0); sv(v, BYE); }

/* The IR blob of an AUTH line as a line of its own (what a client resends). */
static const char *ir_line(const mech *m) { return m->cmd + m->ir_prefix; }

static char scratch[8][(MAXSTEP + 2) * LINE];   /* a line and all responses, MAIL, RCPT */

/* ---- running ------------------------------------------------------------- */

/* Like mxh_run, with midstream and server gaps.  mode 0 whole, 1 chunk
 * `which` split at `at`, 2 byte by byte. */
static char *run(const conv *v, int show_user, int mode, int which, size_t at)
{
    mx_harness h;
    mxh_init(&h, 0, show_user);
    h.sess.midstream = (uint8_t)v->midstream;
    if (v->tiny) {          /* as fuzz_tiny_limits() */
        h.opt.lim.max_line = 16;
        h.opt.lim.max_hold = 64;
        h.opt.lim.max_field = 16;
        h.opt.lim.max_pending = 2;
    }
    mxh_play(&h, v->c, mode, which, at);
    char *r = strdup(mxh_finish(&h));
    mxh_free(&h);
    return r;
}

static int leaks_found;

static void check_output(const char *name, const mech *m, const char *o, int show_user)
{
    int before = mx_fail;
    for (int i = 0; i < m->nsecret; i++) no_secret_enc(name, o, m->secret[i].p, m->secret[i].n, 1);
    for (int i = 0; i < m->nuser; i++) no_secret_enc(name, o, m->user[i].p, m->user[i].n, !show_user);
    CHECK(strstr(o, "{\"type\":\"session.end\"") != NULL, "%s: session.end written", name);
    if (mx_fail != before) leaks_found++;
}

/* Variants that leak today (see main()).  `test_leaks` runs all the others
 * and must pass; `test_leaks --known-leaks` runs only these and fails until
 * the parser is fixed (ctest: unit_leaks_known). */
static const char *const known_leaks[][2] = {
    { "", "" },    /* none today: the leaks found here (see main()) are fixed */
};
static int only_known;

static int is_known_leak(const mech *m, const char *name)
{
    for (size_t i = 0; i < sizeof known_leaks / sizeof known_leaks[0]; i++)
        if (known_leaks[i][0][0] && !strcmp(known_leaks[i][0], m->name) && !strcmp(known_leaks[i][1], name)) return 1;
    return 0;
}

/* Every way of feeding v, both show_user settings; returns the whole-chunk
 * output with show_user (caller frees), NULL when the variant is not run. */
static char *play(const char *name, const mech *m, const conv *v)
{
    char label[160];
    char *keep = NULL;
    if (is_known_leak(m, name) != only_known) return NULL;
    for (int su = 0; su < 2; su++) {
        char *o = run(v, su, 0, 0, 0);
        snprintf(label, sizeof label, "%s/%s show_user=%d whole", m->name, name, su);
        check_output(label, m, o, su);
        if (getenv("MX_LEAKS_DUMP")) fprintf(stderr, "==== %s\n%s", label, o);
        if (su) keep = o; else free(o);
        o = run(v, su, 2, 0, 0);
        snprintf(label, sizeof label, "%s/%s show_user=%d byte-by-byte", m->name, name, su);
        check_output(label, m, o, su);
        free(o);
        for (int i = 0; v->c[i].dir != D_END; i++) {
            if (!v->cred[i]) continue;
            /* every byte; past 1 KiB every 61st and those around max_line */
            for (size_t at = 1; at < v->c[i].n; at += v->c[i].n > 1024 && (at < 4090 || at > 4100) ? 61 : 1) {
                o = run(v, su, 1, i, at);
                snprintf(label, sizeof label, "%s/%s show_user=%d chunk %d split at %zu", m->name, name, su, i, at);
                int f = mx_fail;
                check_output(label, m, o, su);
                free(o);
                if (mx_fail != f) break;      /* one report per chunk is enough */
            }
        }
    }
    return keep;
}

/* ---- the variants ---------------------------------------------------------- */

static void variants(const mech *m)
{
    conv v;
    char name[64];
    char *o;

    /* as captured */
    memset(&v, 0, sizeof v);
    head(&v);
    cl(&v, m->cmd, m->ir_prefix != 0);
    for (int s = 0; s < m->nsteps; s++) { sv(&v, m->chal[s]); cl(&v, m->resp[s], 1); }
    sv(&v, m->final);
    tail(&v); fin(&v);
    o = play("normal", m, &v);
    if (o) {
        const char *nm = m->name;
        char buf[96];
        snprintf(buf, sizeof buf, "\"type\":\"smtp.auth\",");
        CHECK(strstr(o, buf) != NULL, "%s: the AUTH outcome is an event", nm);
        if (m->nsteps) CHECK(strstr(o, "\"redacted\":true") != NULL, "%s: responses are written redacted", nm);
        if (m->user_field) CHECK(strstr(o, m->user_field) != NULL, "%s: with show_user the output has %s", nm, m->user_field);
    }
    free(o);

    /* midstream: the capture begins at challenge s, or at response s */
    for (int s = 0; s < m->nsteps; s++) {
        for (int at_resp = 0; at_resp < 2; at_resp++) {
            memset(&v, 0, sizeof v);
            v.midstream = 1;
            if (!at_resp) sv(&v, m->chal[s]);
            cl(&v, m->resp[s], 1);
            for (int t = s + 1; t < m->nsteps; t++) { sv(&v, m->chal[t]); cl(&v, m->resp[t], 1); }
            sv(&v, m->final);
            tail(&v); fin(&v);
            snprintf(name, sizeof name, "midstream-at-%s%d", at_resp ? "response" : "334-", s);
            free(play(name, m, &v));
        }
    }
    if (m->ir_prefix) {           /* the capture begins with the AUTH line itself */
        memset(&v, 0, sizeof v);
        v.midstream = 1;
        cl(&v, m->cmd, 1);
        for (int s = 0; s < m->nsteps; s++) { sv(&v, m->chal[s]); cl(&v, m->resp[s], 1); }
        sv(&v, m->final);
        tail(&v); fin(&v);
        free(play("midstream-at-auth", m, &v));
    }

    /* the AUTH line lost: its answers come, the parser is not in AUTH */
    memset(&v, 0, sizeof v);
    head(&v);
    hole(&v, MX_CLIENT, strlen(m->cmd));
    for (int s = 0; s < m->nsteps; s++) { sv(&v, m->chal[s]); cl(&v, m->resp[s], 1); }
    sv(&v, m->final);
    tail(&v); fin(&v);
    free(play("auth-line-lost", m, &v));

    /* only "AUTH MECH " lost: the initial response arrives as a line start */
    if (m->ir_prefix) {
        memset(&v, 0, sizeof v);
        head(&v);
        hole(&v, MX_CLIENT, m->ir_prefix);
        cl(&v, ir_line(m), 1);
        for (int s = 0; s < m->nsteps; s++) { sv(&v, m->chal[s]); cl(&v, m->resp[s], 1); }
        sv(&v, m->final);
        tail(&v); fin(&v);
        free(play("auth-verb-lost", m, &v));
    }

    /* a server challenge lost: the parser does not know what comes next */
    for (int s = 0; s < m->nsteps; s++) {
        memset(&v, 0, sizeof v);
        head(&v);
        cl(&v, m->cmd, m->ir_prefix != 0);
        for (int t = 0; t < m->nsteps; t++) {
            if (t == s) hole(&v, MX_SERVER, strlen(m->chal[t]));
            else sv(&v, m->chal[t]);
            cl(&v, m->resp[t], 1);
        }
        sv(&v, m->final);
        tail(&v); fin(&v);
        snprintf(name, sizeof name, "334-%d-lost", s);
        free(play(name, m, &v));     /* LEAK (login-2step, 334-1-lost): see main() */
    }

    /* refused at once; the client sends its lines anyway */
    static const char *const refusals[] = {
        "504 5.5.4 Unrecognized authentication type\r\n",
        "535 5.7.8 Authentication credentials invalid\r\n",
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n",
    };
    for (int r = 0; r < 3; r++) {
        memset(&v, 0, sizeof v);
        head(&v);
        cl(&v, m->cmd, m->ir_prefix != 0);
        sv(&v, refusals[r]);
        if (m->ir_prefix) { cl(&v, ir_line(m), 1); sv(&v, WHAT); }
        for (int s = 0; s < m->nsteps; s++) { cl(&v, m->resp[s], 1); sv(&v, WHAT); }
        tail(&v); fin(&v);
        snprintf(name, sizeof name, "refused-%.3s-then-credentials", refusals[r]);
        free(play(name, m, &v));
    }

    /* the whole exchange, 535, and the client tries its lines again */
    memset(&v, 0, sizeof v);
    head(&v);
    cl(&v, m->cmd, m->ir_prefix != 0);
    for (int s = 0; s < m->nsteps; s++) { sv(&v, m->chal[s]); cl(&v, m->resp[s], 1); }
    sv(&v, "535 5.7.8 Authentication credentials invalid\r\n");
    if (m->ir_prefix) { cl(&v, ir_line(m), 1); sv(&v, WHAT); }
    for (int s = 0; s < m->nsteps; s++) { cl(&v, m->resp[s], 1); sv(&v, WHAT); }
    tail(&v); fin(&v);
    free(play("failed-then-retried", m, &v));

    /* the smallest caps: lines and fields cut at 16 bytes, 2 pending */
    memset(&v, 0, sizeof v);
    v.tiny = 1;
    head(&v);
    cl(&v, m->cmd, m->ir_prefix != 0);
    for (int s = 0; s < m->nsteps; s++) { sv(&v, m->chal[s]); cl(&v, m->resp[s], 1); }
    sv(&v, m->final);
    tail(&v); fin(&v);
    free(play("tiny-limits", m, &v));

    /* STARTTLS command injection: AUTH sent in clear after STARTTLS, in
     * the same segment; after the 220 those bytes belong to TLS */
    {
        char *c = scratch[5];
        snprintf(c, sizeof scratch[5], "STARTTLS\r\n%s", m->cmd);
        for (int t = 0; t < m->nsteps; t++) strcat(c, m->resp[t]);
        memset(&v, 0, sizeof v);
        head(&v);
        cl(&v, c, 1);
        sv(&v, "220 2.0.0 Ready to start TLS\r\n");
        fin(&v);
        free(play("after-starttls-injection", m, &v));
    }

    /* pipelined: AUTH, its responses, MAIL and RCPT in one segment */
    {
        char *c = scratch[0], *s = scratch[1];
        snprintf(c, sizeof scratch[0], "%s", m->cmd);
        for (int t = 0; t < m->nsteps; t++) strcat(c, m->resp[t]);
        strcat(c, MAIL); strcat(c, RCPT);
        s[0] = 0;
        for (int t = 0; t < m->nsteps; t++) strcat(s, m->chal[t]);
        strcat(s, m->final); strcat(s, OK250); strcat(s, OK250);
        memset(&v, 0, sizeof v);
        head(&v);
        cl(&v, c, 1);
        sv(&v, s);
        cl(&v, QUIT, 0); sv(&v, BYE); fin(&v);
        free(play("pipelined", m, &v));
    }

    /* pipelined after the first challenge: the client sends the rest of its
     * responses and MAIL/RCPT together */
    if (m->nsteps >= 2) {
        char *c = scratch[2], *s = scratch[3];
        c[0] = 0;
        for (int t = 0; t < m->nsteps; t++) strcat(c, m->resp[t]);
        strcat(c, MAIL); strcat(c, RCPT);
        s[0] = 0;
        for (int t = 1; t < m->nsteps; t++) strcat(s, m->chal[t]);
        strcat(s, m->final); strcat(s, OK250); strcat(s, OK250);
        memset(&v, 0, sizeof v);
        head(&v);
        cl(&v, m->cmd, m->ir_prefix != 0);
        sv(&v, m->chal[0]);
        cl(&v, c, 1);
        sv(&v, s);
        cl(&v, QUIT, 0); sv(&v, BYE); fin(&v);
        free(play("pipelined-after-first-334", m, &v));   /* LEAK (login-2step): see main() */
    }

    /* the credential line cut by a hole in its middle */
    for (int s = 0; s < m->nsteps; s++) {
        size_t len = strlen(m->resp[s]);
        if (len < 8) continue;
        memset(&v, 0, sizeof v);
        head(&v);
        cl(&v, m->cmd, m->ir_prefix != 0);
        for (int t = 0; t < m->nsteps; t++) {
            sv(&v, m->chal[t]);
            if (t == s) {
                size_t a = len / 3;
                memcpy(scratch[4], m->resp[t], a); scratch[4][a] = 0;
                cl(&v, scratch[4], 1);
                hole(&v, MX_CLIENT, 3);
                cl(&v, m->resp[t] + a + 3, 1);
            } else {
                cl(&v, m->resp[t], 1);
            }
        }
        sv(&v, m->final);
        tail(&v); fin(&v);
        snprintf(name, sizeof name, "response-%d-cut-by-hole", s);
        free(play(name, m, &v));
    }
}

/* ---- the search itself must find what it looks for ----------------------- */

static void self_test(void)
{
    const char *name = "no_secret self-test";
    char buf[2048], enc[1024];
    uint8_t blob[256];
    int before = mx_fail;

    /* a copy of the checks that must fail; they are counted, not reported */
    static wset ws;
    build_windows(&ws, (const uint8_t *)PW, strlen(PW), 1);
    CHECK(find_window(&ws, "{\"user\":\"someone\",\"kind\":\"password\"}") == NULL, "%s: clean text passes", name);
    snprintf(buf, sizeof buf, "{\"x\":\"..%s..\"}", PW);
    CHECK(find_window(&ws, buf) != NULL, "%s: clear text found", name);
    snprintf(buf, sizeof buf, "{\"x\":\"..%.10s..\"}", PW + 3);
    CHECK(find_window(&ws, buf) != NULL, "%s: a 10-byte window of clear text found", name);
    snprintf(buf, sizeof buf, "{\"x\":\"..%.9s..\"}", PW + 3);
    CHECK(find_window(&ws, buf) == NULL, "%s: a 9-byte piece is not a window", name);
    for (size_t pre = 0; pre < 5; pre++) {          /* every alignment in a blob */
        memset(blob, 'z', pre);
        memcpy(blob + pre, PW, strlen(PW));
        memcpy(blob + pre + strlen(PW), "\001tail", 5);
        for (int url = 0; url < 2; url++) {
            b64(blob, pre + strlen(PW) + 5, enc, url);
            snprintf(buf, sizeof buf, "{\"arg\":\"%s\"}", enc);
            CHECK(find_window(&ws, buf) != NULL, "%s: base64%s with %zu bytes before found", name, url ? "url" : "", pre);
        }
    }
    hex((const uint8_t *)PW, strlen(PW), enc, 0);
    snprintf(buf, sizeof buf, "%.12s", enc + 4);
    CHECK(find_window(&ws, buf) != NULL, "%s: hex window found", name);
    hex((const uint8_t *)PW, strlen(PW), enc, 1);
    snprintf(buf, sizeof buf, "[%s]", enc);
    CHECK(find_window(&ws, buf) != NULL, "%s: HEX found", name);
    /* binary secrets (NTLM's response) and UTF-16 names */
    build_windows(&ws, NTRESP, sizeof NTRESP, 1);
    b64(NTRESP, sizeof NTRESP, enc, 0);
    CHECK(find_window(&ws, enc) != NULL, "%s: base64 of a binary secret found", name);
    /* without clear: a user name may be shown, its encodings may not */
    build_windows(&ws, (const uint8_t *)USER, strlen(USER), 0);
    CHECK(find_window(&ws, "\"user\":\"alice.leaktest\"") == NULL, "%s: clear user allowed when asked", name);
    b64((const uint8_t *)USER, strlen(USER), enc, 0);
    CHECK(find_window(&ws, enc) != NULL, "%s: base64 user still found", name);
    no_secret(name, "{\"type\":\"smtp.auth_response\",\"kind\":\"password\",\"redacted\":true}", PW);
    CHECK(mx_fail == before, "%s: all detections as expected", name);
}

int main(int argc, char **argv)
{
    static mech ms[16];
    only_known = argc > 1 && !strcmp(argv[1], "--known-leaks");
    self_test();
    int n = make_mechs(ms);
    for (int i = 0; i < n; i++) variants(&ms[i]);
    /*
     * Fixed leaks, kept as regression cases:
     *
     * LEAK, login-2step, variants "334-1-lost" and "pipelined-after-first-334",
     * with show_user=1: the client's password line is taken for the user
     * name and written in clear as "user" (smtp.auth_response, smtp.auth and
     * the session summary).  The parser sets "expect a user name" on the
     * 334 "Username:" and only changes it on the next 334; when that 334 is
     * lost, or not yet read because the client sent both lines at once, the
     * second response is read as a user name.  Reproducer:
     *   S: 220 mx.test ESMTP / C: EHLO client.test / S: 250 AUTH LOGIN
     *   C: AUTH LOGIN / S: 334 VXNlcm5hbWU6
     *   C: YWxpY2UubGVha3Rlc3Q=<CRLF>U3VwM3JTM2NyZXRQdyE=<CRLF>   (one segment)
     *   -> "kind":"username","user":"Sup3rS3cretPw!"
     *
     * LEAK, xoauth2-ir-no-ctrl-a, every variant that sees the AUTH line,
     * with show_user=1: the XOAUTH2 user name is taken from "user=" to the
     * first ^A or the end of the blob; a client that separates the fields
     * otherwise (here with spaces) gets its bearer token written as part
     * of "user" (smtp.command, smtp.auth, the session summary).
     * Reproducer:
     *   C: AUTH XOAUTH2 base64("user=alice.leaktest@example.org auth=Bearer ya29.Sup3rS3cretTok3n-AbC")
     *   -> "user":"alice.leaktest@example.org auth=Bearer ya29.Sup3rS3cretTok3n-AbC"
     */
    printf("%d variant run(s) with a leak%s\n", leaks_found, only_known ? " (known leaks only)" : "");
    return CHECK_DONE();
}
