/* Unit tests: wire text cleaning, base64, the ISO-8601 times and addresses
 * as text. */
#include "check.h"
#include "mx/decode.h"
#include "mx/session.h"
#include "mx/text.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <time.h>

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
