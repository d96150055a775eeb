/* verdict.c - deciding what a session amounts to (see verdict.h). */
#include "mx/verdict.h"
#include "mx/text.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int mx_mech_exposes_secret(const char *mech)
{
    /* challenge-response and token mechanisms: the password itself never
     * crosses the network */
    static const char *const safe[] = { "CRAM-MD5", "DIGEST-MD5", "NTLM", "GSSAPI", "GSS-SPNEGO", "EXTERNAL",
                                        "ANONYMOUS", "KERBEROS_V4", "KERBEROS_V5", "GS2-KRB5", "SRP", "OTP", "SKEY" };
    if (!mech || !mech[0]) return 0;
    if (strncmp(mech, "SCRAM-", 6) == 0) return 0;
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(mech, safe[i]) == 0) return 0;
    return 1;
}

void mx_facts_init(mx_facts *f)
{
    memset(f, 0, sizeof *f);
    f->rst_from = -1;
    f->fin_first = -1;
    f->alert_from = -1;
    f->alert_code = -1;
    f->one_sided = -1;
}

/* ---- reply causes ------------------------------------------------------ */

/* t is the reply text lower-cased (see mx_reply_cause); needles are lower case. */
#define has(t, n, needle) (strstr((t), (needle)) != NULL)

const char *mx_reply_cause(int code, const char *enh, const char *text, size_t len)
{
    if (code < 400) return NULL;
    enh = enh ? enh : "";
    /* lower-case the first 255 bytes once; the needles are searched in it */
    char t[256];
    size_t n = len < sizeof t - 1 ? len : sizeof t - 1;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        t[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c ? c : ' ');
    }
    t[n] = 0;
    /* text first: servers often use a generic enhanced code */
    if (has(t, n, "greylist") || has(t, n, "graylist")) return "greylisting";
    if (has(t, n, "spamhaus") || has(t, n, "blocklist") || has(t, n, "blacklist") || has(t, n, "block list") ||
        has(t, n, "blocked using") || has(t, n, "listed at") || has(t, n, "rbl") || has(t, n, "dnsbl"))
        return "dns_blocklist";
    if (has(t, n, "spf") || has(t, n, "dmarc") || has(t, n, "dkim")) return "spf_dmarc_dkim";
    if (strcmp(enh, "5.7.0") == 0 && (has(t, n, "starttls") || has(t, n, "tls")))
        return "tls_required";
    if (has(t, n, "must issue a starttls") || has(t, n, "tls required") || has(t, n, "encryption required"))
        return "tls_required";
    if (has(t, n, "virus") || has(t, n, "malware") || has(t, n, "infected")) return "virus";
    if (has(t, n, "not logged in") || has(t, n, "must authenticate") || has(t, n, "authenticate first") ||
        has(t, n, "authentication is required") || (strcmp(enh, "5.7.0") == 0 && has(t, n, "authentication required")))
        return "auth_required";
    if (has(t, n, "sender address rejected") || has(t, n, "sender rejected") || has(t, n, "domain of sender") ||
        has(t, n, "sender domain") || strcmp(enh, "5.1.7") == 0 || strcmp(enh, "5.1.8") == 0 ||
        strcmp(enh, "4.1.8") == 0)
        return "sender_rejected";
    if (code == 503 || has(t, n, "bad sequence") || (strcmp(enh, "5.5.1") == 0 && has(t, n, "sequence")))
        return "bad_sequence";
    if (has(t, n, "helo command rejected") || has(t, n, "invalid helo") || has(t, n, "invalid ehlo") ||
        has(t, n, "helo hostname") || has(t, n, "ehlo hostname"))
        return "helo_rejected";
    if (code == 535 || strcmp(enh, "5.7.8") == 0 || has(t, n, "authentication failed") ||
        has(t, n, "authentication unsuccessful") || has(t, n, "invalid credentials"))
        return "auth_failed";
    if (strcmp(enh, "5.7.0") == 0 && has(t, n, "authentication required")) return "auth_required";
    if (has(t, n, "authentication required") || code == 530) return "auth_required";
    if (has(t, n, "relay") && (has(t, n, "denied") || has(t, n, "not permitted") || has(t, n, "not allowed")))
        return "relaying_denied";
    if (strcmp(enh, "5.1.1") == 0 || strcmp(enh, "5.1.10") == 0 || has(t, n, "user unknown") ||
        has(t, n, "no such user") || has(t, n, "mailbox unavailable") || has(t, n, "does not exist") ||
        has(t, n, "recipient address rejected"))
        return "mailbox_unknown";
    if (strncmp(enh, "4.2.2", 5) == 0 || strncmp(enh, "5.2.2", 5) == 0 || has(t, n, "quota") ||
        has(t, n, "mailbox full") || has(t, n, "over quota"))
        return "mailbox_full";
    if (strcmp(enh, "5.3.4") == 0 || strcmp(enh, "5.2.3") == 0 || has(t, n, "too big") ||
        has(t, n, "too large") || has(t, n, "size limit") || has(t, n, "exceeds"))
        return "message_too_big";
    if (has(t, n, "rate") || has(t, n, "too many") || has(t, n, "throttl")) return "rate_limited";
    if (code >= 500 && code <= 504) return "syntax_error";
    if (strncmp(enh, "5.5.", 4) == 0) return "syntax_error";
    if (code == 421) return "service_unavailable";
    if (strncmp(enh, "5.7.", 4) == 0 || code == 554) return "policy";
    if (code / 100 == 4) return "temporary_failure";
    return NULL;
}

/* ---- verdicts ---------------------------------------------------------- */

static const char *side(int d) { return d == MX_CLIENT ? "client" : d == MX_SERVER ? "server" : "capture"; }

static const char *last_step(const mx_facts *f)
{
    if (f->quit_answered && f->msgs_ok) return "quit";
    if (f->msgs_ok) return "message_accepted";
    if (f->data_seen) return "data";
    if (f->rcpt_ok) return "rcpt_to";
    if (f->mail_seen && !f->first_failure.code) return "mail_from";
    if (f->auth_code / 100 == 2) return "auth";
    if (f->tls_complete) return "tls_handshake";
    if (f->starttls_code == 220) return "starttls";
    if (f->ehlo_code / 100 == 2 || f->helo_code / 100 == 2) return "ehlo";
    if (f->greeting_code == 220) return "greeting";
    if (f->synack_seen || f->midstream) return "tcp_connect";
    if (f->syn_seen) return "syn_sent";
    return "none";
}

static void tls_part(const mx_facts *f, mx_verdict *v)
{
    if (f->starttls_plain) { v->tls = "starttls_not_followed_by_tls"; return; }
    if (f->plain_on_tls_port) { v->tls = "plaintext_on_tls_port"; return; }
    if (f->implicit_tls || f->starttls_code == 220 || (f->tls_seen && f->client_hello_seen)) {
        if (f->tls_complete) v->tls = "tls_ok";
        else if (f->alert_from == MX_SERVER) v->tls = "tls_rejected_by_server";
        else if (f->alert_from == MX_CLIENT) v->tls = "tls_rejected_by_client";
        else if (f->tls_seen) v->tls = "tls_failed";
        return;
    }
    if (f->starttls_code) { v->tls = "starttls_refused"; return; }
    /* 500/502: EHLO not known.  A 501 or 550 refuses its argument (the
     * host name), which says nothing about ESMTP. */
    if ((f->ehlo_code == 500 || f->ehlo_code == 502) && f->helo_code / 100 == 2) { v->tls = "no_esmtp"; return; }
    if (f->ehlo_code / 100 == 2 && !f->starttls_offered) {
        v->tls = f->starttls_masked ? "starttls_masked" : "starttls_not_offered";
        return;
    }
    if (f->ehlo_code / 100 == 2 && f->starttls_offered) { v->tls = "starttls_not_used"; return; }
}

static void tls_alert_remedy(const mx_facts *f, mx_verdict *v)
{
    const char *a = f->alert_name ? f->alert_name : "";
    if (f->cert_name_mismatch) {
        mx_fmt(v->remedy, sizeof v->remedy,
                 "Give the server a certificate whose names cover %s, or configure the client with a name the certificate has (%s).",
                 f->cert_names[0] ? f->cert_names : "the name the client uses",
                 f->cert_subject_cn[0] ? f->cert_subject_cn : "see the certificate");
        v->cause = "name_mismatch";
    } else if (f->cert_expired || strcmp(a, "certificate_expired") == 0) {
        mx_fmt(v->remedy, sizeof v->remedy, "Renew the server's certificate%s%s.",
                 f->cert_not_after[0] ? " (it expired on " : "", f->cert_not_after[0] ? f->cert_not_after : "");
        if (f->cert_not_after[0]) strncat(v->remedy, ")", sizeof v->remedy - strlen(v->remedy) - 1);
        v->cause = "certificate_expired";
    } else if (f->cert_self_signed) {
        mx_fmt(v->remedy, sizeof v->remedy,
                 "The server's certificate is self-signed: give the server a certificate from a CA the client trusts, or add this certificate to the client's trusted store.");
        v->cause = "self_signed";
    } else if (strcmp(a, "unknown_ca") == 0 || strcmp(a, "certificate_unknown") == 0 ||
               strcmp(a, "bad_certificate") == 0 || f->alert_probable || f->cert_self_signed) {
        mx_fmt(v->remedy, sizeof v->remedy,
                 "Import the root CA of the server's certificate%s%s%s into the client's trusted store (or have the server use a certificate from a CA the client trusts).",
                 f->cert_issuer_cn[0] ? " (\"" : "", f->cert_issuer_cn, f->cert_issuer_cn[0] ? "\")" : "");
        v->cause = f->cert_self_signed ? "self_signed" : "untrusted_certificate";
    } else if (strcmp(a, "handshake_failure") == 0 || strcmp(a, "insufficient_security") == 0) {
        mx_fmt(v->remedy, sizeof v->remedy,
                 "Enable at least one TLS version and cipher suite that both sides accept (see the ciphers in tls.client_hello).");
        v->cause = "no_shared_cipher";
    } else if (strcmp(a, "protocol_version") == 0) {
        mx_fmt(v->remedy, sizeof v->remedy, "Enable a TLS version both sides support (one side offers only older or newer versions).");
        v->cause = "protocol_version";
    } else {
        mx_fmt(v->remedy, sizeof v->remedy, "Look at the certificate and the TLS settings of both sides around the alert.");
    }
}

/* The server's fatal alert answers the client's missing certificate: it
 * asked for one, got none, and refused (RFC 5246 §7.4.6: handshake_failure;
 * RFC 8446 §4.4.2.4: certificate_required; older: no_certificate). */
static int client_cert_refusal(const mx_facts *f)
{
    return f->client_cert_requested && f->client_cert_empty &&
           (f->alert_code == 40 || f->alert_code == 41 || f->alert_code == 42 || f->alert_code == 116);
}

static void decide(const mx_facts *f, mx_verdict *v)
{
    memset(v, 0, sizeof *v);
    char *e = v->explanation, *r = v->remedy, *l = v->log_line;
    size_t ec = sizeof v->explanation, rc = sizeof v->remedy, lc = sizeof v->log_line;
    const mx_reply_fact *ff = &f->first_failure;

    v->last_step = last_step(f);
    tls_part(f, v);

    /* who ended it, and how */
    if (f->refused) { v->ended_by = "server"; v->how = "rst"; }
    else if (f->alert_from >= 0 && !f->tls_complete) { v->ended_by = side(f->alert_from); v->how = f->alert_probable ? "encrypted_alert" : "alert"; }
    else if (f->rst_from >= 0) { v->ended_by = side(f->rst_from); v->how = "rst"; }
    else if (f->quit_sent) { v->ended_by = "client"; v->how = "quit"; }
    else if (f->fin_first >= 0) { v->ended_by = side(f->fin_first); v->how = "fin"; }
    else { v->ended_by = "capture"; v->how = f->end_reason ? f->end_reason : "end_of_input"; }

    int tls_tried = !f->starttls_plain && !f->plain_on_tls_port &&
                    (f->implicit_tls || f->starttls_code == 220 || (f->tls_seen && f->client_hello_seen));

    if (f->refused) {
        v->code = "refused";
        mx_fmt(e, ec, "Connection refused: the SYN to %s port %u (frame %llu) was answered by a reset (frame %llu); nothing listens there or a firewall rejects it.",
                 f->server, f->server_port, (unsigned long long)f->syn_frame, (unsigned long long)f->refused_frame);
        mx_fmt(r, rc, "Check the SMTP port (is the server listening on %u?), firewalls on the way, and that %s resolves to the right address%s%s%s.",
                 f->server_port, f->dns_name[0] ? f->dns_name : "the server name",
                 f->dns_name[0] ? " (it resolved to " : "", f->dns_name[0] ? f->server : "", f->dns_name[0] ? ")" : "");
        mx_fmt(l, lc, "Connection refused by %s port %u", f->server, f->server_port);
        return;
    }
    if (f->one_sided == MX_CLIENT) {
        v->code = "one_sided_capture";
        v->cause = "server_side_not_captured";
        char msgs[64] = "";
        if (f->msgs_sent) mx_fmt(msgs, sizeof msgs, " and %u message%s", f->msgs_sent, f->msgs_sent > 1 ? "s" : "");
        mx_fmt(e, ec, "Only the client's packets are in the capture: none from %s. The client sent %u command%s%s, and its "
                        "acknowledgements show that the server answered (%llu bytes); what it said, and "
                        "whether the mail was accepted, cannot be seen here.",
                 f->server, f->commands, f->commands == 1 ? "" : "s", msgs, (unsigned long long)f->peer_acked);
        mx_fmt(r, rc, "Capture both directions: the server's packets take another path (asymmetric routing, or a span "
                        "port that mirrors one direction only). Mirror both directions, or capture on the client or the server.");
        mx_fmt(l, lc, "One-sided capture: server's packets missing");
        return;
    }
    if (f->one_sided == MX_SERVER) {
        v->code = "one_sided_capture";
        v->cause = "client_side_not_captured";
        char last[32] = "";
        if (f->last_reply) mx_fmt(last, sizeof last, ", the last %d", f->last_reply);
        mx_fmt(e, ec, "Only the server's packets are in the capture: none from the client. The server sent %u repl%s%s, and "
                        "its acknowledgements show that the client sent %llu bytes; the commands themselves cannot be seen here.",
                 f->replies, f->replies == 1 ? "y" : "ies", last, (unsigned long long)f->peer_acked);
        mx_fmt(r, rc, "Capture both directions: the client's packets take another path (asymmetric routing, or a span "
                        "port that mirrors one direction only). Mirror both directions, or capture on the client or the server.");
        mx_fmt(l, lc, "One-sided capture: client's packets missing");
        return;
    }
    if (f->syn_seen && !f->synack_seen && !f->midstream && !f->greeting_code && !f->tls_seen) {
        v->code = "no_answer";
        mx_fmt(e, ec, "No answer: %u SYN(s) to %s port %u got no reply in the capture (first at frame %llu).",
                 f->syn_count, f->server, f->server_port, (unsigned long long)f->syn_frame);
        mx_fmt(r, rc, "Check the server address, routing and firewalls: the packets are dropped on the way or the host is down.");
        mx_fmt(l, lc, "Connection to %s port %u timed out", f->server, f->server_port);
        return;
    }
    if (f->not_smtp) {
        v->code = "not_smtp";
        mx_fmt(e, ec, "The client does not speak SMTP on this connection.");
        mx_fmt(r, rc, "Check what software connects to the mail port.");
        mx_fmt(l, lc, "Not SMTP");
        return;
    }
    if (tls_tried && f->midstream && !f->client_hello_seen && !f->server_hello_seen && f->tls_seen && !f->tls_complete) {
        /* the capture starts inside the encrypted part: nothing failed */
        v->code = "incomplete";
        v->cause = "started_after_handshake";
        mx_fmt(e, ec, "The capture starts after the TLS handshake: the connection is encrypted from the first packet seen, "
                        "so what was said cannot be seen; it ended (%s by the %s)%s.", v->how, v->ended_by,
                 f->alert_from >= 0 ? " after an encrypted alert, most likely close_notify" : "");
        mx_fmt(r, rc, "Capture from the start of the connection to see its handshake and verdict.");
        mx_fmt(l, lc, "TLS session seen after its handshake");
        return;
    }
    if (tls_tried && !f->tls_complete && f->alert_from < 0 && f->rst_from < 0 && f->fin_first < 0) {
        v->code = "incomplete";
        /* name only the handshake steps that were seen */
        if (!f->client_hello_seen && !f->server_hello_seen && f->midstream)
            mx_fmt(e, ec, "The capture starts inside the TLS connection, after its handshake, and ends (%s) while the connection is open.",
                     f->end_reason ? f->end_reason : "end_of_input");
        else
            mx_fmt(e, ec, "The capture ends (%s) during the TLS handshake, %s.",
                     f->end_reason ? f->end_reason : "end_of_input",
                     f->cert_seen ? "after the server's certificate" : f->server_hello_seen ? "after the ServerHello"
                     : f->client_hello_seen ? "after the ClientHello" : "before any handshake message");
        mx_fmt(l, lc, "TLS handshake incomplete in the capture");
        return;
    }
    if (tls_tried && !f->tls_complete && (f->alert_from >= 0 || f->tls_seen)) {
        char after_c[96] = "before any handshake message", after_s[96] = "before any handshake message";
        if (f->alert_after) {
            mx_fmt(after_c, sizeof after_c, "right after the client's %s", f->alert_after);
            mx_fmt(after_s, sizeof after_s, "right after the server's %s", f->alert_after);
        }
        if (f->alert_from == MX_CLIENT && !f->alert_encrypted) {
            v->code = "tls_rejected_by_client";
            v->cause = f->alert_name;
            mx_fmt(e, ec, "TLS failed: the client sent a fatal %s (%d) alert at frame %llu, %s; it did not accept the server's certificate%s%s%s.",
                     f->alert_name, f->alert_code, (unsigned long long)f->alert_frame, after_s,
                     f->cert_subject_cn[0] ? " (" : "", f->cert_subject_cn, f->cert_subject_cn[0] ? ")" : "");
            tls_alert_remedy(f, v);
            mx_fmt(l, lc, "TLS failed: alert %s (%d) from client", f->alert_name, f->alert_code);
        } else if (f->alert_from == MX_CLIENT) {
            v->code = "tls_rejected_by_client";
            v->cause = "encrypted_alert";
            mx_fmt(e, ec, "TLS failed: the client answered the server's TLS 1.3 flight with one short encrypted record (frame %llu) and closed: a rejection whose alert code cannot be seen, most likely of the certificate.",
                     (unsigned long long)f->alert_frame);
            tls_alert_remedy(f, v);
            v->cause = "encrypted_alert";
            mx_fmt(l, lc, "TLS failed: client closed the TLS 1.3 handshake with an encrypted alert");
        } else if (f->alert_from == MX_SERVER && !f->alert_encrypted && client_cert_refusal(f)) {
            v->code = "tls_rejected_by_server";
            v->cause = "client_certificate_required";
            char sent[64] = "went on to its key exchange without one";
            if (f->client_cert_frame)
                mx_fmt(sent, sizeof sent, "sent an empty Certificate (frame %llu)", (unsigned long long)f->client_cert_frame);
            mx_fmt(e, ec, "TLS failed: the server required a client certificate and the client sent none: the server asked for one (CertificateRequest, frame %llu), the client %s, and the server answered with a fatal %s (%d) alert at frame %llu.",
                     (unsigned long long)f->cert_request_frame, sent, f->alert_name ? f->alert_name : "?", f->alert_code,
                     (unsigned long long)f->alert_frame);
            mx_fmt(r, rc, "Configure the client with a certificate and key that the server accepts (issued by a CA the server trusts for clients), or stop requiring client certificates on the server for this port.");
            mx_fmt(l, lc, "TLS failed: client certificate required, none sent");
        } else if (f->alert_from == MX_SERVER) {
            v->code = "tls_rejected_by_server";
            v->cause = f->alert_name;
            mx_fmt(e, ec, "TLS failed: the server sent a fatal %s (%d) alert at frame %llu, %s.",
                     f->alert_name ? f->alert_name : "?", f->alert_code, (unsigned long long)f->alert_frame, after_c);
            tls_alert_remedy(f, v);
            if (v->cause && strcmp(v->cause, "no_shared_cipher") == 0)
                mx_fmt(l, lc, "TLS failed: no shared cipher");
            else
                mx_fmt(l, lc, "TLS failed: alert %s (%d) from server", f->alert_name ? f->alert_name : "?", f->alert_code);
        } else {
            v->code = f->cert_seen && f->fin_first == MX_CLIENT ? "tls_rejected_by_client" : "tls_failed";
            v->cause = "closed_without_alert";
            mx_fmt(e, ec, "TLS failed: the handshake did not complete and the %s closed the connection without an alert%s.",
                     side(f->rst_from >= 0 ? f->rst_from : f->fin_first),
                     f->cert_seen ? " after the server's certificate" : "");
            tls_alert_remedy(f, v);
            mx_fmt(l, lc, "TLS failed: handshake not completed");
        }
        return;
    }
    if (f->auth_code >= 400 && !f->msgs_ok) {
        int ae = ff->enhanced[0] && ff->verb && strcmp(ff->verb, "AUTH") == 0;
        v->code = "auth_failed";
        if (!f->auth_sent && (f->auth_code == 503 || f->auth_code == 504 || f->auth_code == 538 || f->auth_code / 100 == 4)) {
            /* refused before any credential was sent */
            v->cause = f->auth_code == 504 ? "mechanism_not_supported" : f->auth_code == 538 ? "encryption_required"
                     : f->auth_code == 503 ? "bad_sequence" : "temporary_failure";
            mx_fmt(e, ec, "Authentication refused before any credential was sent: AUTH %s was answered %d%s%s at frame %llu (%s).",
                     f->auth_mech, f->auth_code, ae ? " " : "", ae ? ff->enhanced : "", (unsigned long long)f->auth_frame,
                     f->auth_code == 504 ? "the server does not offer that mechanism"
                     : f->auth_code == 538 ? "the server wants that mechanism over TLS only"
                     : f->auth_code == 503 ? "AUTH at the wrong point of the session" : "a temporary failure");
            mx_fmt(r, rc, "%s", f->auth_code == 504 ? "Configure the client for a mechanism the server lists in its EHLO reply (AUTH ...)."
                               : f->auth_code == 538 ? "Use STARTTLS (or port 465) before AUTH."
                               : f->auth_code == 503 ? "The client sent AUTH out of order (before EHLO, or twice): check its SMTP settings."
                               : "Try again later; if it persists, check the server's authentication back end.");
            mx_fmt(l, lc, "Authentication refused (%d)", f->auth_code);
            return;
        }
        v->cause = "auth_failed";
        mx_fmt(e, ec, "Authentication failed: AUTH %s was answered %d%s%s at frame %llu%s.", f->auth_mech, f->auth_code,
                 ae ? " " : "", ae ? ff->enhanced : "", (unsigned long long)f->auth_frame,
                 tls_tried || !mx_mech_exposes_secret(f->auth_mech) ? ""
                 : "; the credentials crossed the network in clear text");
        mx_fmt(r, rc, "Check the configured user name and password, and that the account may send through this server.");
        mx_fmt(l, lc, "Authentication failed (%d)", f->auth_code);
        return;
    }
    if (f->msgs_ok) {
        v->code = "delivered";
        v->ok = 1;
        char plainp[192];
        mx_fmt(plainp, sizeof plainp, ", in clear text: STARTTLS was accepted (220) but the session went on without TLS from frame %llu",
                 (unsigned long long)f->starttls_plain_frame);
        char overtls[160] = "";
        if (f->tls_decrypted)
            mx_fmt(overtls, sizeof overtls, ", over TLS (%s with %s; read with the key log)", f->tls_version, f->tls_cipher);
        const char *how_tls = !v->tls ? "" : strcmp(v->tls, "tls_ok") == 0 ? overtls
                            : strcmp(v->tls, "starttls_not_offered") == 0 ? ", in clear text: the server did not offer STARTTLS"
                            : strcmp(v->tls, "starttls_masked") == 0 ? ", in clear text: STARTTLS was masked in the EHLO reply (XXXXXXXA) by something in the path"
                            : strcmp(v->tls, "starttls_refused") == 0 && f->mail_in_clear ? ", in clear text: STARTTLS was refused and the client went on without it"
                            : strcmp(v->tls, "no_esmtp") == 0 ? ", in clear text: the server does not speak ESMTP (EHLO rejected), so STARTTLS was impossible"
                            : strcmp(v->tls, "starttls_not_used") == 0 ? ", in clear text: STARTTLS was offered but the client did not use it"
                            : strcmp(v->tls, "starttls_not_followed_by_tls") == 0 ? plainp
                            : strcmp(v->tls, "plaintext_on_tls_port") == 0 ? ", in clear text on a port where TLS is expected from the first byte"
                            : ", in clear text";
        char authp[96] = "";
        int exposed = f->auth_code / 100 == 2 && !tls_tried && mx_mech_exposes_secret(f->auth_mech);
        if (f->auth_code / 100 == 2)
            mx_fmt(authp, sizeof authp, " after AUTH %s succeeded%s", f->auth_mech,
                     exposed ? " (credentials sent in clear text)" : "");
        mx_fmt(e, ec, "%u message%s accepted (last at frame %llu%s%s)%s%s%s.", f->msgs_ok, f->msgs_ok > 1 ? "s" : "",
                 (unsigned long long)f->accepted_frame, f->queue_id[0] ? ", queue id " : "", f->queue_id, authp, how_tls,
                 f->rcpt_bad ? "; some recipients were rejected" : "");
        if (f->rcpt_bad) v->cause = "some_recipients_rejected";
        if (exposed) v->cause = "cleartext_credentials";
        if (f->plain_on_tls_port) {
            v->cause = "plaintext_on_tls_port";
            mx_fmt(r, rc, "Port %u is meant for TLS from the first byte (RFC 8314), but the server speaks clear SMTP there: "
                            "enable implicit TLS on it, or use port 587 with STARTTLS%s.", f->server_port,
                     f->auth_code / 100 == 2 ? "; the AUTH credentials crossed the network in clear text" : "");
        } else if (f->starttls_plain) {
            v->cause = "starttls_not_followed_by_tls";
            mx_fmt(r, rc, "Something between client and server answered STARTTLS and kept the session in clear text "
                            "(a firewall's SMTP inspection, or a broken server): turn that inspection off or let STARTTLS through%s.",
                     f->auth_code / 100 == 2 ? "; the AUTH credentials crossed the network in clear text" : "");
        } else if (f->starttls_masked && !f->starttls_offered) {
            v->cause = "starttls_masked";
            mx_fmt(r, rc, "An SMTP inspection between client and server (a firewall's ESMTP inspection) hides the server's "
                            "STARTTLS: turn that inspection off so that STARTTLS reaches the client%s.",
                     exposed ? "; the AUTH credentials crossed the network in clear text" : "");
        } else if (f->mail_in_clear && f->starttls_code && f->starttls_code != 220) {
            if (!v->cause) v->cause = "mail_in_clear_after_starttls_failure";
            mx_fmt(r, rc, "The server refused STARTTLS (%d) and then accepted the mail in clear text: fix its TLS set-up "
                            "(a %d is often a missing or unreadable key), and make the client require TLS rather than fall back.",
                     f->starttls_code, f->starttls_code);
        } else if (exposed)
            mx_fmt(r, rc, "The AUTH credentials crossed the network in clear text: use STARTTLS or port 465.");
        else if (v->tls && strcmp(v->tls, "starttls_not_used") == 0) {
            mx_fmt(r, rc, "The server offers STARTTLS but the client did not use it: if the mail must be encrypted, "
                            "enable (and require) STARTTLS in the client's settings%s.",
                     f->mail_in_clear ? "; the server accepts mail without it (TLS not enforced): to require TLS there, "
                                        "have it refuse MAIL before STARTTLS (530 5.7.0)" : "");
            if (f->mail_in_clear && !v->cause) v->cause = "tls_not_enforced";
        }
        else if (v->tls && strcmp(v->tls, "tls_ok") != 0)
            mx_fmt(r, rc, "If the mail must be encrypted, enable STARTTLS on the server and require it on the client.");
        if (v->tls && strcmp(v->tls, "tls_ok") == 0)
            mx_fmt(l, lc, "TLS success protocol %s cipher %s; message accepted%s%s", f->tls_version,
                     f->tls_cipher_openssl[0] ? f->tls_cipher_openssl : f->tls_cipher, f->queue_id[0] ? " queue id " : "", f->queue_id);
        else
            mx_fmt(l, lc, "Message accepted%s%s, TLS not used", f->queue_id[0] ? " queue id " : "", f->queue_id);
        return;
    }
    if (f->greeting_code && f->greeting_code != 220) {
        v->code = "rejected_at_connect";
        v->cause = mx_reply_cause(f->greeting_code, ff->enhanced, ff->text, strlen(ff->text));
        mx_fmt(e, ec, "The server refused the session in its greeting: %d%s%s \"%s\" at frame %llu.", f->greeting_code,
                 ff->enhanced[0] ? " " : "", ff->enhanced, ff->text,
                 (unsigned long long)f->greeting_frame);
        mx_fmt(r, rc, "The server does not accept mail from this client now: check its reason, blocklists, or try later (4xx).");
        mx_fmt(l, lc, "Rejected at connect (%d)", f->greeting_code);
        return;
    }
    if (f->starttls_code && f->starttls_code != 220) {
        v->code = "starttls_refused";
        mx_fmt(e, ec, "TLS failed: STARTTLS was answered %d%s%s \"%s\" at frame %llu; the session went no further in TLS.",
                 f->starttls_code, ff->enhanced[0] && ff->verb && strcmp(ff->verb, "STARTTLS") == 0 ? " " : "",
                 ff->verb && strcmp(ff->verb, "STARTTLS") == 0 ? ff->enhanced : "",
                 ff->verb && strcmp(ff->verb, "STARTTLS") == 0 ? ff->text : "", (unsigned long long)f->starttls_frame);
        mx_fmt(r, rc, "The server could not start TLS: check its certificate and key configuration%s.",
                 f->starttls_code / 100 == 4 ? " (454 is often a missing or unreadable key)" : "");
        mx_fmt(l, lc, "TLS failed: STARTTLS unexpected response %d", f->starttls_code);
        return;
    }
    if (f->tls_required_530) {
        v->code = "tls_required";
        v->cause = "tls_required";
        mx_fmt(e, ec, "The server requires TLS but the client did not start it: %d%s%s \"%s\" at frame %llu.", ff->code,
                 ff->enhanced[0] ? " " : "", ff->enhanced, ff->text,
                 (unsigned long long)f->tls_required_frame);
        mx_fmt(r, rc, "Enable TLS (STARTTLS) in the client's SMTP settings, or use port 465.");
        mx_fmt(l, lc, "TLS required but not initiated by the remote host");
        return;
    }
    if (ff->code) {
        v->cause = mx_reply_cause(ff->code, ff->enhanced, ff->text, strlen(ff->text));
        const char *what;
        if (ff->verb && strcmp(ff->verb, "MAIL") == 0) { v->code = "sender_rejected"; what = "the sender"; }
        else if (ff->verb && strcmp(ff->verb, "RCPT") == 0) { v->code = "rcpt_rejected"; what = "the recipient"; }
        else if (ff->verb && (!strcmp(ff->verb, "DATA") || !strcmp(ff->verb, ".") || !strcmp(ff->verb, "BDAT"))) { v->code = "data_rejected"; what = "the message"; }
        else if (ff->verb && (!strcmp(ff->verb, "EHLO") || !strcmp(ff->verb, "HELO"))) { v->code = "helo_rejected"; what = "the greeting (HELO/EHLO)"; }
        else { v->code = "command_rejected"; what = ff->verb ? ff->verb : "a command"; }
        mx_fmt(e, ec, "The server rejected %s: %d%s%s \"%s\" at frame %llu%s%s%s.", what, ff->code, ff->enhanced[0] ? " " : "",
                 ff->enhanced, ff->text, (unsigned long long)ff->frame, v->cause ? " (" : "", v->cause ? v->cause : "",
                 v->cause ? ")" : "");
        const char *c = v->cause ? v->cause : "";
        if (!strcmp(c, "mailbox_unknown")) mx_fmt(r, rc, "Check the recipient address: the mailbox does not exist on that server.");
        else if (!strcmp(c, "relaying_denied")) mx_fmt(r, rc, "The server does not relay for this client: authenticate (AUTH) or allow the client's address on the server.");
        else if (!strcmp(c, "greylisting")) mx_fmt(r, rc, "Greylisting: a proper MTA retries later and gets through; nothing to fix unless retries fail.");
        else if (!strcmp(c, "dns_blocklist")) mx_fmt(r, rc, "The client's address is on a DNS blocklist: find out why, fix it and request delisting.");
        else if (!strcmp(c, "spf_dmarc_dkim")) mx_fmt(r, rc, "Fix the sender domain's SPF/DKIM/DMARC records so they authorise this sending host.");
        else if (!strcmp(c, "message_too_big")) mx_fmt(r, rc, "Send a smaller message or raise the server's size limit.");
        else if (!strcmp(c, "mailbox_full")) mx_fmt(r, rc, "The recipient's mailbox is full: they must make room.");
        else if (!strcmp(c, "auth_required")) mx_fmt(r, rc, "Configure the client to authenticate (AUTH) before sending.");
        else if (ff->code / 100 == 4) mx_fmt(r, rc, "A temporary failure: retry later; if it persists, read the server's reason.");
        else mx_fmt(r, rc, "Read the server's reason in the reply and fix that on the client or the server.");
        mx_fmt(l, lc, "Rejected %d %s%s%s", ff->code, ff->enhanced, ff->enhanced[0] ? " " : "", ff->text);
        return;
    }
    if (f->abort421.code) {
        v->code = "server_abort";
        v->cause = "service_unavailable";
        mx_fmt(e, ec, "The server ended the session: 421%s%s \"%s\" at frame %llu.", f->abort421.enhanced[0] ? " " : "",
                 f->abort421.enhanced, f->abort421.text, (unsigned long long)f->abort421.frame);
        mx_fmt(r, rc, "The server is shutting down or overloaded (421): retry later, and check the server's logs if it keeps happening.");
        mx_fmt(l, lc, "Server closed the session (421)");
        return;
    }
    if (f->plain_on_tls_port && f->client_hello_seen && !f->msgs_ok) {
        v->code = "tls_failed";
        v->cause = "plaintext_on_tls_port";
        mx_fmt(e, ec, "The client started TLS on port %u, as the port requires, but the server speaks clear SMTP there "
                        "(greeting at frame %llu) and took the ClientHello for bad commands: the server is not set up for implicit TLS.",
                 f->server_port, (unsigned long long)f->greeting_frame);
        mx_fmt(r, rc, "Enable implicit TLS on the server's port %u (RFC 8314), or point the client at port 587 with STARTTLS.",
                 f->server_port);
        mx_fmt(l, lc, "TLS failed: server speaks clear SMTP on port %u", f->server_port);
        return;
    }
    if (f->bad_reply.frame && !f->msgs_ok && !f->quit_answered &&
        (f->fin_first == MX_SERVER || f->rst_from == MX_SERVER)) {
        /* text without a reply code, then the server hung up: a deferral
         * (or refusal) that forgot its code, not a client that quit */
        const mx_reply_fact *b = &f->bad_reply;
        v->code = "server_abort";
        v->cause = "reply_without_code";
        mx_fmt(e, ec, "The server answered %s%s with a line that is not an SMTP reply (\"%s\", frame %llu) and then closed the connection: "
                        "most likely a deferral or refusal sent without its reply code.",
                 !b->verb ? "the client" : !strcmp(b->verb, ".") ? "the end of the message" : b->verb, "", b->text,
                 (unsigned long long)b->frame);
        mx_fmt(r, rc, "Look at the server's logs for why it refused at that point (the text says: %s); "
                        "its answer breaks RFC 5321, which needs a three-digit code.", b->text);
        mx_fmt(l, lc, "Server closed the session after a reply without code");
        return;
    }
    if (tls_tried && f->tls_complete) {
        v->code = "tls_ok";
        v->ok = 1;
        mx_fmt(e, ec, "TLS established at frame %llu: %s with %s; what followed is encrypted.",
                 (unsigned long long)f->tls_complete_frame, f->tls_version, f->tls_cipher);
        mx_fmt(l, lc, "TLS success protocol %s cipher %s", f->tls_version,
                 f->tls_cipher_openssl[0] ? f->tls_cipher_openssl : f->tls_cipher);
        return;
    }
    if (f->rst_from >= 0) {
        v->code = f->rst_from == MX_CLIENT ? "reset_by_client" : "reset_by_server";
        mx_fmt(e, ec, "The %s reset the connection at frame %llu, after the last step %s.", side(f->rst_from),
                 (unsigned long long)f->rst_frame, v->last_step);
        mx_fmt(r, rc, "Look at the %s's logs for why it aborted at that point.", side(f->rst_from));
        mx_fmt(l, lc, "Connection reset by %s", side(f->rst_from));
        return;
    }
    if (!f->greeting_code && (f->synack_seen) && !f->midstream) {
        v->code = "no_banner";
        mx_fmt(e, ec, "The server accepted the TCP connection but never sent its SMTP greeting.");
        mx_fmt(r, rc, "Check the mail service (hung or overloaded), or whether the port expects TLS first (465).");
        mx_fmt(l, lc, "No SMTP greeting");
        return;
    }
    if (f->incomplete) {
        v->code = "incomplete";
        mx_fmt(e, ec, "The capture ends (%s) while the session is still open, after the step %s.",
                 f->end_reason ? f->end_reason : "end_of_input", v->last_step);
        mx_fmt(l, lc, "Session incomplete in the capture");
        return;
    }
    v->code = "no_mail";
    v->ok = f->quit_answered;
    mx_fmt(e, ec, "The session ended (%s by the %s) without sending a message; last step %s.", v->how, v->ended_by, v->last_step);
    if (f->greeting_code == 220 && f->quit_answered)
        mx_fmt(r, rc, "A connection test: the server answers on this port.");
    mx_fmt(l, lc, "Session closed without mail");
}

/* The RFC 8460 (TLS-RPT) result type a session's TLS outcome maps to, or
 * NULL: a failure to negotiate TLS with the receiving MX.  (The policy
 * types, sts-*, tlsa-* and dnssec-*, need a policy the capture does not
 * show.) */
static const char *tlsrpt_type(const mx_facts *f, const mx_verdict *v)
{
    const char *t = v->tls, *c = v->cause ? v->cause : "";
    if (!t) return NULL;
    /* a failed handshake with TLSA records that do not match: DANE's */
    if (f->dane_checked && !f->dane_match &&
        (!strcmp(t, "tls_rejected_by_client") || !strcmp(t, "tls_rejected_by_server") || !strcmp(t, "tls_failed")))
        return "tlsa-invalid";
    if (!strcmp(t, "starttls_not_offered") || !strcmp(t, "no_esmtp") || !strcmp(t, "starttls_refused") ||
        !strcmp(t, "starttls_masked"))
        return "starttls-not-supported";
    if (!strcmp(t, "tls_rejected_by_client") || !strcmp(t, "tls_rejected_by_server") || !strcmp(t, "tls_failed")) {
        if (!strcmp(c, "name_mismatch")) return "certificate-host-mismatch";
        if (!strcmp(c, "certificate_expired")) return "certificate-expired";
        if (!strcmp(c, "self_signed") || !strcmp(c, "untrusted_certificate")) return "certificate-not-trusted";
        return "validation-failure";
    }
    if (!strcmp(t, "starttls_not_followed_by_tls") || !strcmp(t, "plaintext_on_tls_port")) return "validation-failure";
    return NULL;
}

/* The failure-reason text a TLS-RPT report gives with the result type:
 * what the TLS part of the session ran into (not the session's end). */
static void tlsrpt_reason(const mx_facts *f, const mx_verdict *v, char *out, size_t cap)
{
    const char *t = v->tls;
    if (!strcmp(t, "starttls_not_offered")) mx_fmt(out, cap, "STARTTLS not offered in the EHLO reply");
    else if (!strcmp(t, "starttls_masked")) mx_fmt(out, cap, "STARTTLS masked in the EHLO reply (XXXXXXXA)");
    else if (!strcmp(t, "no_esmtp")) mx_fmt(out, cap, "EHLO not supported (%d): no STARTTLS", f->ehlo_code);
    else if (!strcmp(t, "starttls_refused")) mx_fmt(out, cap, "STARTTLS refused (%d)", f->starttls_code);
    else if (!strcmp(t, "starttls_not_followed_by_tls"))
        mx_fmt(out, cap, "STARTTLS accepted (220), then the session went on in clear text");
    else if (!strcmp(t, "plaintext_on_tls_port")) mx_fmt(out, cap, "clear-text SMTP on the implicit-TLS port");
    else if (f->alert_name && !f->alert_encrypted)
        mx_fmt(out, cap, "TLS alert %s (%d) from the %s", f->alert_name, f->alert_code, side(f->alert_from));
    else if (f->alert_from >= 0)
        mx_fmt(out, cap, "encrypted TLS alert from the %s%s", side(f->alert_from),
                 v->cause && !strcmp(v->cause, "encrypted_alert") ? " (most likely a rejected certificate)" : "");
    else mx_fmt(out, cap, "TLS handshake not completed (%s)", v->cause ? v->cause : v->how ? v->how : "closed");
}

/* What the STARTTLS hand-off showed that the verdict must not hide. */
static void integrity(const mx_facts *f, mx_verdict *v)
{
    const char *what = NULL, *cause = NULL, *fix = NULL;
    if (f->starttls_injected) {
        what = " SMTP commands were sent together with STARTTLS, before its 220 (command injection)";
        cause = "starttls_command_injection";
        fix = "Something sent commands with STARTTLS: the server must discard what it received before the TLS "
              "handshake (RFC 3207 section 4; the CVE-2011-0411 class), and the sender should be looked at.";
    } else if (f->response_injected) {
        what = " The server side sent SMTP replies after its 220 to STARTTLS, before TLS (response injection)";
        cause = "starttls_response_injection";
        fix = "Something answered for the server after its 220 to STARTTLS: the client must discard what it received "
              "before the TLS handshake (RFC 3207 section 4), and the path to the server should be looked at.";
    }
    if (!what) return;
    size_t el = strlen(v->explanation);
    mx_fmt(v->explanation + el, sizeof v->explanation - el, "%s", what);
    el = strlen(v->explanation);
    if (el + 1 < sizeof v->explanation) { v->explanation[el] = '.'; v->explanation[el + 1] = 0; }
    if (!v->cause) v->cause = cause;
    if (!v->remedy[0]) mx_fmt(v->remedy, sizeof v->remedy, "%s", fix);
}

void mx_verdict_decide(const mx_facts *f, mx_verdict *v)
{
    decide(f, v);
    integrity(f, v);
    v->tlsrpt = tlsrpt_type(f, v);
    if (v->tlsrpt) tlsrpt_reason(f, v, v->tlsrpt_reason, sizeof v->tlsrpt_reason);
}

void mx_verdict_write(const mx_verdict *v, mx_ev *o)
{
    if (!o) return;
    mx_ev_str(o, "code", v->code);
    if (v->cause) mx_ev_str(o, "cause", v->cause);
    if (v->tls) mx_ev_str(o, "tls", v->tls);
    mx_ev_bool(o, "ok", v->ok);
    mx_ev_str(o, "last_step", v->last_step);
    mx_ev_str(o, "ended_by", v->ended_by);
    mx_ev_str(o, "how", v->how);
    /* explanation and log line quote reply texts: already cleaned, but they
     * still go through the wire path for the cap and UTF-8 check */
    mx_ev_wire(o, "explanation", (const uint8_t *)v->explanation, strlen(v->explanation), sizeof v->explanation);
    if (v->remedy[0]) mx_ev_wire(o, "remedy", (const uint8_t *)v->remedy, strlen(v->remedy), sizeof v->remedy);
    mx_ev_wire(o, "log_line", (const uint8_t *)v->log_line, strlen(v->log_line), sizeof v->log_line);
    if (v->tlsrpt) {
        mx_ev *t = mx_ev_obj(o, "tlsrpt");
        mx_ev_lit(t, "result_type", v->tlsrpt);
        mx_ev_wire(t, "failure_reason", (const uint8_t *)v->tlsrpt_reason, strlen(v->tlsrpt_reason),
                   sizeof v->tlsrpt_reason);
    }
}
