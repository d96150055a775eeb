/* Unit tests: wire text cleaning, base64, the ISO-8601 times and addresses
 * as text. */
#include "check.h"
#include "mx/decode.h"
#include "mx/session.h"
#include "mx/text.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <time.h>

/* mx_text_clean's reference: byte by byte, as RFC 3629 has it. */
static size_t utf8_len_ref(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t k = c < 0x80 ? (c ? 1 : 0) : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!k || k > n) return 0;
    for (size_t i = 1; i < k; i++) if ((p[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) || (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
        return 0;
    return k;
}

static size_t clean_ref(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len_ref(in + i, n - i);
        const char *src = k ? (const char *)in + i : "\xEF\xBF\xBD";
        size_t w = k ? k : 3;
        if (o + w + 1 > cap) {
            if (k == 1) continue;              /* (not reached: ASCII is cut below) */
            break;
        }
        memcpy(out + o, src, w);
        o += w;
        i += k ? k : 1;
    }
    out[o] = 0;
    return o;
}

/* What gmtime and printf make of a time: mx_iso_time's reference. */
static void iso_ref(uint64_t us, char buf[80], size_t cap)
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(us % 1000000u));
}

static const char *clean(const char *in, size_t n, size_t maxin, int *fl)
{
    static char out[256];
    size_t ol;
    *fl = mx_text_clean((const uint8_t *)in, n, maxin, out, sizeof out, &ol);
    CHECK(strlen(out) == ol, "length matches");
    return out;
}

int main(void)
{
    int fl;
    CHECK(strcmp(clean("hello", 5, 100, &fl), "hello") == 0 && fl == 0, "ascii passes");
    CHECK(strcmp(clean("a\0b", 3, 100, &fl), "a\xEF\xBF\xBD" "b") == 0 && (fl & MX_TEXT_REPLACED), "NUL replaced");
    CHECK(strcmp(clean("\xff\xfe", 2, 100, &fl), "\xEF\xBF\xBD\xEF\xBF\xBD") == 0, "invalid bytes replaced");
    CHECK(strcmp(clean("caf\xC3\xA9", 5, 100, &fl), "caf\xC3\xA9") == 0 && fl == 0, "valid UTF-8 kept");
    CHECK(strcmp(clean("\xC0\xAF", 2, 100, &fl), "\xEF\xBF\xBD\xEF\xBF\xBD") == 0, "overlong rejected");
    CHECK(strcmp(clean("\xED\xA0\x80", 3, 100, &fl), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") == 0, "surrogate rejected");
    CHECK(strcmp(clean("\xE2\x82", 2, 100, &fl), "\xEF\xBF\xBD\xEF\xBF\xBD") == 0, "cut sequence rejected");
    CHECK(strcmp(clean("abcdef", 6, 3, &fl), "abc") == 0 && (fl & MX_TEXT_TRUNCATED), "input cap");
    CHECK(strcmp(clean("\x1b[31m", 5, 100, &fl), "\x1b[31m") == 0, "controls left to the format's quoting");

    uint8_t b[64];
    long n = mx_base64_decode((const uint8_t *)"VXNlcm5hbWU6", 12, b, sizeof b);
    CHECK(n == 9 && memcmp(b, "Username:", 9) == 0, "base64 Username:");
    n = mx_base64_decode((const uint8_t *)"AGFsaWNlAHNlY3JldA==", 20, b, sizeof b);
    CHECK(n == 13 && memcmp(b, "\0alice\0secret", 13) == 0, "base64 with padding and NULs");
    CHECK(mx_base64_decode((const uint8_t *)"ab$d", 4, b, sizeof b) < 0, "bad base64 refused");
    CHECK(mx_base64_decode((const uint8_t *)"QQ==QQ", 6, b, sizeof b) < 0, "data after padding refused");
    CHECK(mx_base64_decode((const uint8_t *)"QUFBQUFBQUFB", 12, b, 4) < 0, "output cap respected");
    CHECK(mx_ci_prefix((const uint8_t *)"starttls", 8, "STARTTLS"), "ci prefix");
    CHECK(mx_ci_find((const uint8_t *)"Ok: Queued as X", 15, "queued as ") == 4, "ci find");
    CHECK(!mx_ci_prefix((const uint8_t *)"@B", 2, "`b") && !mx_ci_prefix((const uint8_t *)"[", 1, "{") &&
          !mx_ci_prefix((const uint8_t *)"STARTTL", 7, "STARTTLS") && mx_ci_prefix((const uint8_t *)"x", 1, ""),
          "ci prefix: only letters fold, a short slice is no match");
    /* long runs (the sixteen-byte path) against the byte-by-byte reference:
     * ASCII with NUL, controls, high bytes and UTF-8 sequences at every
     * offset, output room large and small */
    {
        static const char *const bits[] = { "a", "Z", "\x01", "\x7f", "\x80", "\xff", "\xC3\xA9", "\xE2\x82\xAC",
                                            "\xF0\x9F\x98\x80", "\xED\xA0\x80", "\xC0\xAF", "\xE2\x82" };
        uint32_t seed = 12345;
        int ok = 1;
        for (int round = 0; round < 20000 && ok; round++) {
            uint8_t in[300];
            size_t len = 0, want = (seed = seed * 1103515245u + 12345u) >> 16 & 255;
            while (len < want) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 16;
                const char *piece = (r & 7) ? "abcdefghijklmnopqrstuvwxyz0123456789 .:<>@"
                                : bits[(r >> 3) % (sizeof bits / sizeof bits[0])];
                size_t bl = (r & 7) ? 1 + (r >> 4) % 40 : strlen(piece);
                if (!strcmp(piece, "\x01") && (r & 64)) { in[len++] = 0; continue; }
                for (size_t i = 0; i < bl && len < sizeof in; i++) in[len++] = (uint8_t)piece[i];
            }
            char o1[1024], o2[1024];
            size_t l1 = 0, cap = (round & 1) ? sizeof o1 : 1 + (seed >> 20) % 200;
            int f = mx_text_clean(in, len, len, o1, cap, &l1);
            size_t l2 = clean_ref(in, len, o2, sizeof o2);
            /* a cut output is the reference's prefix, at a character's end */
            ok = (f & MX_TEXT_TRUNCATED) ? l1 < cap && l1 <= l2 && memcmp(o1, o2, l1) == 0 : l1 == l2 && strcmp(o1, o2) == 0;
        }
        CHECK(ok, "text cleaning: 20 000 random mixes of ASCII, NUL, controls and UTF-8 as the byte-by-byte reference");
    }
    /* mx_fmt against snprintf: the conversions the verdicts use, values at
     * their edges, every room from 1 byte up */
    {
        int ok = 1;
        static const int ds[] = { 0, 7, -1, 2147483647, -2147483647 - 1, 421 };
        static const unsigned long long us[] = { 0, 9, 10, 4294967295ull, 18446744073709551615ull, 1234567 };
        for (size_t cap = 1; cap < 120 && ok; cap++)
            for (size_t i = 0; i < 6 && ok; i++) {
                char fa[128], fb[128];
                const char *s = i & 1 ? "mx.example.org" : "";
                memset(fa, 'x', sizeof fa);
                memset(fb, 'x', sizeof fb);
                size_t fl2 = mx_fmt(fa, cap, "Port %u of %s (%d) at frame %llu: 100%% %s.", (unsigned)us[i], s, ds[i], us[i], s);
                snprintf(fb, cap, "Port %u of %s (%d) at frame %llu: 100%% %s.", (unsigned)us[i], s, ds[i], us[i], s);
                ok = memcmp(fa, fb, sizeof fa) == 0 && fl2 == strlen(fb);
                if (!ok) fprintf(stderr, "cap %zu: [%s] [%s]\n", cap, fa, fb);
            }
        char ga[64], gb[64];
        mx_fmt(ga, sizeof ga, "%5.2f|%x|%s", 3.14159, 255u, "z");       /* another conversion: vsnprintf's */
        snprintf(gb, sizeof gb, "%5.2f|%x|%s", 3.14159, 255u, "z");
        CHECK(ok && strcmp(ga, gb) == 0, "mx_fmt writes what snprintf writes, cut the same way");
    }
    /* times: the epoch, leap days, century years, the last of year 9999,
     * the first of 10000 (printf's path), and a million others */
    static const uint64_t sec[] = { 0, 68169599, 951782400, 951868799, 4107542400ull, 4107628800ull,
                                    253402300799ull, 253402300800ull, 1700000000 };
    char a[40], r[80];
    int same = 1;
    for (size_t i = 0; i < sizeof sec / sizeof sec[0]; i++) {
        uint64_t us = sec[i] * 1000000u + (i * 137) % 1000000u;
        mx_iso_time(us, a, sizeof a);
        iso_ref(us, r, sizeof r);
        CHECK(strcmp(a, r) == 0, "iso time of %llu s: %s, gmtime says %s", (unsigned long long)sec[i], a, r);
    }
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 1000000 && same; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint64_t us = x % 253402300800000000ull;
        mx_iso_time(us, a, sizeof a);
        iso_ref(us, r, sizeof r);
        same = strcmp(a, r) == 0;
    }
    CHECK(same, "iso time: a million random times as gmtime has them (last %s, %s)", a, r);
    /* IPv4 addresses as inet_ntop writes them: every value of each byte */
    same = 1;
    for (unsigned v = 0; v < 256 * 4 && same; v++) {
        mx_addr ad;
        memset(&ad, 0, sizeof ad);
        uint8_t q[4] = { 10, 0, 255, 7 };
        q[v / 256] = (uint8_t)(v % 256);
        memcpy(ad.b, q, 4);
        char m[64], nt[64];
        mx_addr_str(&ad, m, sizeof m);
        inet_ntop(AF_INET, q, nt, sizeof nt);
        same = strcmp(m, nt) == 0;
        if (!same) fprintf(stderr, "%s %s\n", m, nt);
    }
    CHECK(same, "IPv4 addresses as inet_ntop writes them");
    return CHECK_DONE();
}
