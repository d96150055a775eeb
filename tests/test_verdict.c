/* Unit tests: verdicts from facts, and reply causes. */
#include "check.h"
#include "mx/verdict.h"

static mx_verdict decide(const mx_facts *f)
{
    mx_verdict v;
    mx_verdict_decide(f, &v);
    return v;
}

static mx_facts base(void)
{
    mx_facts f;
    mx_facts_init(&f);
    f.syn_seen = f.synack_seen = 1;
    f.syn_count = 1;
    snprintf(f.server, sizeof f.server, "192.0.2.25");
    f.server_port = 25;
    f.greeting_code = 220;
    f.ehlo_code = 250;
    f.esmtp = 1;
    return f;
}

int main(void)
{
    mx_facts f = base();
    f.mail_seen = 1; f.rcpt_ok = 1; f.data_seen = 1; f.msgs_ok = 1; f.quit_sent = f.quit_answered = 1;
    snprintf(f.queue_id, sizeof f.queue_id, "Q1");
    mx_verdict v = decide(&f);
    CHECK(!strcmp(v.code, "delivered") && v.ok, "delivered: %s", v.code);
    CHECK(!strcmp(v.tls, "starttls_not_offered"), "tls part %s", v.tls);
    CHECK(strstr(v.explanation, "queue id Q1") && strstr(v.explanation, "clear text"), "%s", v.explanation);
    CHECK(!strcmp(v.last_step, "quit") && !strcmp(v.ended_by, "client") && !strcmp(v.how, "quit"), "steps");

    /* AUTH refused before any credential: no clear-text claim. */
    f = base();
    snprintf(f.auth_mech, sizeof f.auth_mech, "GSSAPI");
    f.auth_code = 504; f.auth_frame = 10; f.auth_sent = 0;
    v = decide(&f);
    CHECK(!strcmp(v.code, "auth_failed") && v.cause && !strcmp(v.cause, "mechanism_not_supported"), "504: %s %s", v.code, v.cause ? v.cause : "-");
    CHECK(!strstr(v.explanation, "clear text") && strstr(v.explanation, "before any credential"), "%s", v.explanation);
    /* CRAM-MD5 never sends the password: not flagged */
    f = base();
    snprintf(f.auth_mech, sizeof f.auth_mech, "CRAM-MD5");
    f.auth_code = 235; f.auth_sent = 1;
    f.mail_seen = 1; f.rcpt_ok = 1; f.data_seen = 1; f.msgs_ok = 1; f.quit_sent = f.quit_answered = 1;
    v = decide(&f);
    CHECK(!strcmp(v.code, "delivered") && (!v.cause || strcmp(v.cause, "cleartext_credentials")), "cram: %s", v.cause ? v.cause : "-");
    CHECK(!strstr(v.explanation, "credentials sent in clear text"), "%s", v.explanation);
    snprintf(f.auth_mech, sizeof f.auth_mech, "PLAIN");
    v = decide(&f);
    CHECK(v.cause && !strcmp(v.cause, "cleartext_credentials"), "plain is flagged");
    CHECK(mx_mech_exposes_secret("LOGIN") && mx_mech_exposes_secret("XOAUTH2") && !mx_mech_exposes_secret("SCRAM-SHA-256") &&
          !mx_mech_exposes_secret("NTLM"), "mechanism table");
    /* STARTTLS offered, not used: the remedy is on the client's side */
    f = base();
    f.starttls_offered = 1;
    f.mail_seen = 1; f.rcpt_ok = 1; f.data_seen = 1; f.msgs_ok = 1; f.quit_sent = f.quit_answered = 1;
    v = decide(&f);
    CHECK(!strcmp(v.tls, "starttls_not_used") && strstr(v.remedy, "client") && !strstr(v.remedy, "on the server"), "%s", v.remedy);

    /* Text without a code, then the server hangs up: not a client quit. */
    f = base();
    f.mail_seen = 1; f.fin_first = MX_SERVER;
    f.bad_reply.frame = 10; f.bad_reply.verb = "MAIL";
    snprintf(f.bad_reply.text, sizeof f.bad_reply.text, "Service temporarily unavailable");
    v = decide(&f);
    CHECK(!strcmp(v.code, "server_abort") && !strcmp(v.cause, "reply_without_code"), "no code: %s", v.code);
    CHECK(strstr(v.explanation, "MAIL") && strstr(v.explanation, "frame 10"), "%s", v.explanation);
    /* ClientHello to a server speaking clear SMTP on 465 */
    f = base();
    f.implicit_tls = 1; f.plain_on_tls_port = 1; f.client_hello_seen = 1; f.server_port = 465; f.greeting_frame = 4;
    v = decide(&f);
    CHECK(!strcmp(v.code, "tls_failed") && !strcmp(v.cause, "plaintext_on_tls_port"), "465 plain: %s", v.code);

    /* Only the client's direction captured: not "no answer". */
    f = base();
    f.synack_seen = 0; f.greeting_code = 0; f.ehlo_code = 0;
    f.one_sided = MX_CLIENT; f.peer_acked = 388; f.commands = 5; f.msgs_sent = 1;
    v = decide(&f);
    CHECK(!strcmp(v.code, "one_sided_capture") && !v.ok, "one-sided: %s", v.code);
    CHECK(strstr(v.explanation, "388 bytes") && strstr(v.explanation, "5 commands and 1 message"), "%s", v.explanation);
    CHECK(strstr(v.remedy, "both directions"), "%s", v.remedy);
    f = base();
    f.one_sided = MX_SERVER; f.peer_acked = 55033; f.replies = 7; f.last_reply = 221;
    v = decide(&f);
    CHECK(!strcmp(v.code, "one_sided_capture") && !strcmp(v.cause, "client_side_not_captured"), "server side only: %s", v.code);
    CHECK(strstr(v.explanation, "7 replies, the last 221") && strstr(v.explanation, "55033 bytes"), "%s", v.explanation);

    /* STARTTLS accepted, then clear text: delivered, but not over TLS. */
    f = base();
    f.starttls_offered = 1; f.starttls_code = 220; f.starttls_plain = 1; f.starttls_plain_frame = 12;
    f.mail_seen = 1; f.rcpt_ok = 1; f.data_seen = 1; f.msgs_ok = 1; f.quit_sent = f.quit_answered = 1;
    v = decide(&f);
    CHECK(!strcmp(v.code, "delivered") && !strcmp(v.tls, "starttls_not_followed_by_tls"), "plain after STARTTLS: %s %s", v.code, v.tls);
    CHECK(v.cause && !strcmp(v.cause, "starttls_not_followed_by_tls"), "cause %s", v.cause ? v.cause : "-");
    CHECK(strstr(v.explanation, "frame 12") && strstr(v.explanation, "without TLS"), "%s", v.explanation);
    CHECK(strstr(v.remedy, "inspection"), "%s", v.remedy);
    CHECK(!strstr(v.log_line, "TLS success"), "%s", v.log_line);

    f = base();
    f.synack_seen = 0; f.greeting_code = 0; f.ehlo_code = 0; f.refused = 1; f.syn_frame = 5; f.refused_frame = 6;
    f.server_port = 587;
    snprintf(f.dns_name, sizeof f.dns_name, "relay.example");
    v = decide(&f);
    CHECK(!strcmp(v.code, "refused"), "refused: %s", v.code);
    CHECK(strstr(v.explanation, "frame 5") && strstr(v.explanation, "frame 6"), "evidence frames: %s", v.explanation);
    CHECK(strstr(v.remedy, "587") && strstr(v.remedy, "relay.example"), "remedy: %s", v.remedy);

    f = base();
    f.synack_seen = 0; f.greeting_code = 0; f.ehlo_code = 0; f.syn_count = 3;
    v = decide(&f);
    CHECK(!strcmp(v.code, "no_answer"), "no answer: %s", v.code);

    f = base();
    f.starttls_offered = 1; f.starttls_code = 220; f.tls_seen = 1; f.cert_seen = 1;
    f.alert_from = MX_CLIENT; f.alert_code = 46; f.alert_name = "certificate_unknown"; f.alert_after = "server_hello_done";
    f.alert_frame = 17;
    snprintf(f.cert_issuer_cn, sizeof f.cert_issuer_cn, "Test CA");
    v = decide(&f);
    CHECK(!strcmp(v.code, "tls_rejected_by_client"), "client rejects: %s", v.code);
    CHECK(strstr(v.explanation, "certificate_unknown (46)") && strstr(v.explanation, "frame 17"), "%s", v.explanation);
    CHECK(strstr(v.remedy, "root CA") && strstr(v.remedy, "Test CA"), "%s", v.remedy);
    CHECK(strstr(v.log_line, "TLS failed"), "%s", v.log_line);

    f.alert_from = MX_SERVER; f.alert_code = 40; f.alert_name = "handshake_failure"; f.alert_after = "client_hello";
    f.cert_seen = 0;
    v = decide(&f);
    CHECK(!strcmp(v.code, "tls_rejected_by_server") && !strcmp(v.cause, "no_shared_cipher"), "%s %s", v.code, v.cause);
    CHECK(!strcmp(v.log_line, "TLS failed: no shared cipher"), "%s", v.log_line);

    f = base();
    f.starttls_offered = 1; f.starttls_code = 454;
    v = decide(&f);
    CHECK(!strcmp(v.code, "starttls_refused"), "%s", v.code);
    CHECK(!strcmp(v.log_line, "TLS failed: STARTTLS unexpected response 454"), "%s", v.log_line);

    f = base();
    f.starttls_offered = 1; f.starttls_code = 220; f.tls_seen = 1; f.tls_complete = 1;
    snprintf(f.tls_version, sizeof f.tls_version, "TLSv1.2");
    snprintf(f.tls_cipher_openssl, sizeof f.tls_cipher_openssl, "ECDHE-RSA-AES256-GCM-SHA384");
    v = decide(&f);
    CHECK(!strcmp(v.code, "tls_ok"), "%s", v.code);
    CHECK(!strcmp(v.log_line, "TLS success protocol TLSv1.2 cipher ECDHE-RSA-AES256-GCM-SHA384"), "%s", v.log_line);

    f = base();
    f.auth_code = 535; snprintf(f.auth_mech, sizeof f.auth_mech, "LOGIN");
    v = decide(&f);
    CHECK(!strcmp(v.code, "auth_failed") && strstr(v.remedy, "user name and password"), "%s", v.code);

    f = base();
    f.mail_seen = 1; f.rcpt_bad = 1;
    f.first_failure.code = 550; f.first_failure.verb = "RCPT";
    snprintf(f.first_failure.enhanced, sizeof f.first_failure.enhanced, "5.1.1");
    snprintf(f.first_failure.text, sizeof f.first_failure.text, "5.1.1 <x@y>: Recipient address rejected: User unknown");
    v = decide(&f);
    CHECK(!strcmp(v.code, "rcpt_rejected") && !strcmp(v.cause, "mailbox_unknown"), "%s %s", v.code, v.cause);

    f = base();
    f.tls_required_530 = 1; f.first_failure.code = 530; f.first_failure.verb = "MAIL";
    v = decide(&f);
    CHECK(!strcmp(v.code, "tls_required"), "%s", v.code);
    CHECK(!strcmp(v.log_line, "TLS required but not initiated by the remote host"), "%s", v.log_line);

    f = base();
    f.greeting_code = 0; f.ehlo_code = 0; f.fin_first = MX_CLIENT;
    v = decide(&f);
    CHECK(!strcmp(v.code, "no_banner"), "%s", v.code);

    f = base();
    f.quit_sent = f.quit_answered = 1;
    v = decide(&f);
    CHECK(!strcmp(v.code, "no_mail") && v.ok, "connection test: %s", v.code);

    static const struct { int code; const char *enh, *text, *want; } c[] = {
        { 450, "4.7.1", "<a@b>: Recipient address rejected: Greylisted, try again later", "greylisting" },
        { 554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "dns_blocklist" },
        { 550, "5.7.23", "SPF check failed", "spf_dmarc_dkim" },
        { 550, "5.1.1", "User unknown", "mailbox_unknown" },
        { 552, "5.2.2", "Mailbox full", "mailbox_full" },
        { 552, "5.3.4", "Message size exceeds fixed limit", "message_too_big" },
        { 554, "5.7.1", "<x@y>: Relay access denied", "relaying_denied" },
        { 530, "5.7.0", "Must issue a STARTTLS command first", "tls_required" },
        { 535, "5.7.8", "Error: authentication failed", "auth_failed" },
        { 421, "4.3.0", "Service shutting down", "service_unavailable" },
        { 554, "5.7.1", "Message contains virus: rejected.", "virus" },
        { 553, "5.1.8", "<a@b>... Domain of sender address a@b does not exist", "sender_rejected" },
        { 450, "4.1.8", "<a@b>: Sender address rejected: Domain not found", "sender_rejected" },
        { 530, "", "Not logged in", "auth_required" },
        { 503, "5.5.1", "Error: need MAIL command", "bad_sequence" },
        { 503, "", "Bad sequence of commands", "bad_sequence" },
        { 504, "5.5.2", "<bad_host>: Helo command rejected: need fully-qualified hostname", "helo_rejected" },
        { 250, "2.0.0", "Ok", NULL },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const char *got = mx_reply_cause(c[i].code, c[i].enh, c[i].text, strlen(c[i].text));
        CHECK((!got && !c[i].want) || (got && c[i].want && !strcmp(got, c[i].want)), "cause of %d %s: %s, want %s",
              c[i].code, c[i].text, got ? got : "NULL", c[i].want ? c[i].want : "NULL");
    }
    return CHECK_DONE();
}
