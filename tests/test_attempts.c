/* Unit tests: connections grouped into delivery attempts, and their verdicts. */
#include "check.h"
#include "mx/attempts.h"

#include <stdio.h>

static mx_attempt got[8];
static int ngot;

static void done(void *ctx, const mx_attempt *a)
{
    (void)ctx;
    if (ngot < 8) got[ngot++] = *a;
}

static mx_attempt_row row(uint64_t id, uint64_t start_s, const char *client, const char *server, const char *dest,
                          const char *name, const char *code, const char *cause, const char *tls)
{
    mx_attempt_row r;
    memset(&r, 0, sizeof r);
    r.id = id;
    r.start_us = start_s * 1000000u;
    r.end_us = r.start_us + 500000u;
    snprintf(r.client, sizeof r.client, "%s", client);
    snprintf(r.server, sizeof r.server, "%s", server);
    snprintf(r.dest, sizeof r.dest, "%s", dest);
    snprintf(r.server_name, sizeof r.server_name, "%s", name);
    snprintf(r.code, sizeof r.code, "%s", code);
    snprintf(r.cause, sizeof r.cause, "%s", cause);
    snprintf(r.tls, sizeof r.tls, "%s", tls);
    r.delivered = !strcmp(code, "delivered");
    r.tls_ok = !strcmp(tls, "tls_ok");
    r.tls_failed = !strcmp(tls, "tls_rejected_by_client") || !strcmp(tls, "starttls_refused");
    r.greylisted = !strcmp(cause, "greylisting");
    return r;
}

int main(void)
{
    mx_attempt_verdict v;
    /* TLS fails on mx1 (no recipient seen: the MX's domain from DNS), the
     * mail goes in clear to mx2: one attempt, a downgrade */
    mx_attempts *t = mx_attempts_new(1800ull * 1000000u);
    mx_attempt_row r1 = row(1, 100, "10.0.0.1", "10.0.0.11", "example.test", "mx1.example.test", "tls_rejected_by_client",
                            "untrusted_certificate", "tls_rejected_by_client");
    mx_attempt_row r2 = row(2, 101, "10.0.0.1", "10.0.0.12", "example.test", "mx2.example.test", "delivered", "",
                            "starttls_not_offered");
    mx_attempt_row other = row(3, 102, "10.0.0.2", "10.0.0.11", "example.test", "mx1.example.test", "no_mail", "", "");
    mx_attempts_add(t, &r1, done, NULL);
    mx_attempts_add(t, &other, done, NULL);
    CHECK(ngot == 0, "nothing ends before the delivery");
    mx_attempts_add(t, &r2, done, NULL);
    CHECK(ngot == 1 && got[0].n == 2 && got[0].s[0].id == 1 && got[0].s[1].id == 2 && got[0].no == 1,
          "the delivery ends the attempt of sessions 1 and 2 (another client's session apart)");
    mx_attempt_judge(&got[0], &v);
    CHECK(v.delivered && v.downgrade && v.servers == 2 && !v.greylisted, "delivered after a downgrade, on 2 servers");
    CHECK(strstr(v.explanation, "TLS failed on mx1.example.test (untrusted_certificate), then delivered in clear text on mx2.example.test") &&
              strstr(v.explanation, "a downgrade"),
          "the sentence: %s", v.explanation);
    mx_attempts_flush(t, done, NULL);
    CHECK(ngot == 1, "a one-connection attempt is not written (%d)", ngot);
    mx_attempts_free(t);

    /* greylisted, retried 10 minutes later: delivered; the window is 30 min */
    ngot = 0;
    t = mx_attempts_new(1800ull * 1000000u);
    mx_attempt_row g1 = row(1, 1000, "10.0.0.1", "10.0.0.11", "example.test", "mx.example.test", "rcpt_rejected", "greylisting", "tls_ok");
    g1.tls_ok = 0;                    /* (a clear session, the 450 in clear) */
    mx_attempt_row g2 = row(2, 1600, "10.0.0.1", "10.0.0.11", "example.test", "mx.example.test", "delivered", "", "starttls_not_offered");
    mx_attempts_add(t, &g1, done, NULL);
    mx_attempts_add(t, &g2, done, NULL);
    CHECK(ngot == 1, "greylisting then delivery: one attempt");
    mx_attempt_judge(&got[0], &v);
    CHECK(v.delivered && v.greylisted && !v.downgrade && v.servers == 1, "delivered after greylisting, no downgrade");
    /* the same retry an hour later is a new attempt */
    ngot = 0;
    mx_attempt_row h1 = g1, h2 = g2;
    h1.start_us += 7200ull * 1000000u; h1.end_us += 7200ull * 1000000u;
    h2.start_us = h1.start_us + 3600ull * 1000000u; h2.end_us = h2.start_us + 500000u;
    mx_attempts_add(t, &h1, done, NULL);
    mx_attempts_add(t, &h2, done, NULL);
    CHECK(ngot == 0, "past the window: two attempts of one connection each, none written (%d)", ngot);
    /* sessions without a domain meet by the server's address */
    mx_attempt_row n1 = row(5, 20000, "10.0.0.9", "10.0.0.11", "", "10.0.0.11", "tls_rejected_by_client", "encrypted_alert",
                            "tls_rejected_by_client");
    mx_attempt_row n2 = row(6, 20005, "10.0.0.9", "10.0.0.11", "example.test", "mx.example.test", "delivered", "", "starttls_not_used");
    mx_attempts_add(t, &n1, done, NULL);
    mx_attempts_add(t, &n2, done, NULL);
    CHECK(ngot == 1 && got[0].n == 2 && got[0].s[0].id == 5, "no domain: the same server makes them one attempt");
    mx_attempt_judge(&got[0], &v);
    CHECK(v.downgrade, "and a downgrade");
    /* failures only: written at the end, not delivered */
    ngot = 0;
    mx_attempt_row f1 = row(7, 30000, "10.0.0.3", "10.0.0.11", "example.test", "mx1.example.test", "refused", "", "");
    mx_attempt_row f2 = row(8, 30001, "10.0.0.3", "10.0.0.12", "example.test", "mx2.example.test", "no_answer", "", "");
    mx_attempts_add(t, &f1, done, NULL);
    mx_attempts_add(t, &f2, done, NULL);
    mx_attempts_flush(t, done, NULL);
    CHECK(ngot == 1, "failures end with the run");
    mx_attempt_judge(&got[0], &v);
    CHECK(!v.delivered && !v.downgrade && strstr(v.explanation, "not delivered"), "not delivered: %s", v.explanation);
    mx_attempts_free(t);

    /* STARTTLS offered on one connection (TLS, its own attempt), missing
     * from the same server's EHLO reply on the next: written although one
     * connection long */
    ngot = 0;
    t = mx_attempts_new(1800ull * 1000000u);
    mx_attempt_row s1 = row(1, 100, "10.0.0.1", "10.0.0.11", "", "mx.example.test", "tls_ok", "", "tls_ok");
    s1.ehlo_ok = 1; s1.starttls_offered = 1;
    mx_attempt_row s2 = row(2, 200, "10.0.0.1", "10.0.0.11", "example.test", "mx.example.test", "delivered", "", "starttls_not_offered");
    s2.ehlo_ok = 1;
    mx_attempt_row s3 = row(3, 300, "10.0.0.2", "10.0.0.11", "example.test", "mx.example.test", "delivered", "", "starttls_not_offered");
    s3.ehlo_ok = 1;
    mx_attempts_add(t, &s1, done, NULL);
    mx_attempts_add(t, &s2, done, NULL);
    mx_attempts_add(t, &s3, done, NULL);
    CHECK(ngot == 1 && got[0].n == 1 && got[0].s[0].id == 2 && got[0].s[0].stripped,
          "the later connection without STARTTLS is told (another client's is not)");
    mx_attempt_judge(&got[0], &v);
    CHECK(v.stripped && strstr(v.explanation, "stripped"), "stripped: %s", v.explanation);
    mx_attempts_free(t);
    return CHECK_DONE();
}
