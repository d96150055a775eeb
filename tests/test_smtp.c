/* Unit tests: the SMTP parser, driven through the harness.
 *
 * Every transcript is fed three ways - each chunk whole, each chunk split at
 * every offset, and byte by byte - and must give the same events (times and
 * frame numbers aside).  Then each case's own expectations are checked.
 */
#include "check.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

typedef mxh_chunk chunk;
#define C(s) { MX_CLIENT, s, sizeof(s) - 1 }
#define S(s) { MX_SERVER, s, sizeof(s) - 1 }
#define GAP(n) { -1, NULL, n }
#define END { -2, NULL, 0 }

/* Runs all feeding modes, checks they agree, returns the whole-chunk output. */
static char *feed_all(const char *name, const chunk *cs, int show_user)
{
    int same;
    char *o = mxh_feed_all(name, cs, 0, show_user, &same);
    CHECK(same, "%s: whole, split and byte-by-byte feeding give the same events", name);
    return o;
}

#define HAS(out, s) CHECK(strstr(out, s) != NULL, "%s: expected %s", name, s)
#define HASNT(out, s) CHECK(strstr(out, s) == NULL, "%s: must not contain %s", name, s)

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

int main(void)
{
    {
        const char *name = "delivery";
        chunk t[] = {
            S("220 mx.example.com ESMTP ready\r\n"),
            C("EHLO ISE3-1\r\n"),
            S("250-mx.example.com Hello\r\n250-SIZE 37748736\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"),
            C("MAIL FROM:<ise@testlab.com> SIZE=900 BODY=8BITMIME\r\n"),
            S("250 2.1.0 Sender OK\r\n"),
            C("RCPT TO:<guest@testlab.com>\r\n"),
            S("250 2.1.5 Recipient OK\r\n"),
            C("DATA\r\n"),
            S("354 Start mail input; end with <CRLF>.<CRLF>\r\n"),
            C("From: ISE <ise@testlab.com>\r\nTo: guest@testlab.com\r\nSubject: Your Guest\r\n Account Credentials\r\n"
              "Message-ID: <1@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BND\"\r\n\r\n"
              "preamble\r\n--BND\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n"
              "--BND\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"logo.png\"\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n..leading dot\r\n--BND--\r\n.\r\n"),
            S("250 2.6.0 <abc@mx> [InternalId=1] Queued mail for delivery\r\n"),
            C("QUIT\r\n"),
            S("221 2.0.0 Service closing transmission channel\r\n"),
            END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"answers\":\"<greeting>\"");
        HAS(o, "\"capabilities\":[\"SIZE 37748736\",\"PIPELINING\",\"STARTTLS\",\"ENHANCEDSTATUSCODES\"]");
        HAS(o, "\"address\":\"ise@testlab.com\",\"params\":[\"SIZE=900\",\"BODY=8BITMIME\"]");
        HAS(o, "\"enhanced\":\"2.1.5\"");
        HAS(o, "\"subject\":\"Your Guest Account Credentials\"");
        HAS(o, "\"message_id\":\"<1@x>\"");
        HAS(o, "\"content_type\":\"multipart/mixed\"");
        HAS(o, "\"filename\":\"logo.png\"");
        HAS(o, "\"attachments\":1");
        HAS(o, "\"end\":\"dot\"");
        HAS(o, "\"answers\":\".\"");
        HAS(o, "\"queue_id\":\"<abc@mx>\"");
        HAS(o, "\"answers\":\"QUIT\"");
        HAS(o, "\"starttls_offered\":true");
        HAS(o, "\"messages_accepted\":1");
        /* STARTTLS offered, MAIL accepted in clear: the only anomaly */
        HAS(o, "\"kind\":\"tls_not_enforced\"");
        CHECK(count(o, "\"type\":\"anomaly\"") == 1, "%s: one anomaly", name);
        free(o);
    }
    {
        /* body lines that are only counted and lines that are looked at,
         * side by side: a part's bytes, a line like a boundary, a bare CR,
         * a dot-stuffed line, an empty line, a line of the longest kind */
        const char *name = "body lines";
        static char body[2048];
        snprintf(body, sizeof body, "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n"
                 "Content-Type: text/plain\r\n\r\nline one\r\n\r\n-- not the boundary\r\na\rb\r\n..dot\r\n%s\r\n"
                 "--B--\r\n.\r\n", "");
        size_t bl = strlen(body);
        /* a 998-byte line before the closing boundary */
        char *cut = strstr(body, "\r\n--B--");
        memmove(cut + 998, cut, bl - (size_t)(cut - body) + 1);
        memset(cut, 'x', 998);
        chunk t[] = {
            S("220 mx ESMTP\r\n"), C("EHLO c\r\n"), S("250 mx\r\n"),
            C("MAIL FROM:<a@b>\r\n"), S("250 ok\r\n"), C("RCPT TO:<c@d>\r\n"), S("250 ok\r\n"),
            C("DATA\r\n"), S("354 go\r\n"),
            { MX_CLIENT, body, strlen(body) },
            S("250 queued as Q1\r\n"), C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"content_type\":\"text/plain\",\"bytes\":1045");
        HAS(o, "\"bare_cr\":1");
        HAS(o, "\"lines\":12");
        free(o);
    }
    {
        const char *name = "pipelining";
        chunk t[] = {
            S("220 mx ESMTP\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 PIPELINING\r\n"),
            C("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<nobody@x>\r\nDATA\r\n"),
            S("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@x>: Recipient address rejected: User unknown\r\n354 go\r\n"),
            C("Subject: t\r\n\r\nbody\r\n.\r\nRSET\r\nQUIT\r\n"),
            S("250 2.0.0 Ok: queued as 4XyZ\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"),
            END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"code\":550,\"enhanced\":\"5.1.1\",\"class\":\"permanent\"");
        HAS(o, "\"pipelined\":true");
        HAS(o, "\"queue_id\":\"4XyZ\"");
        HAS(o, "\"answers\":\"RSET\"");
        HAS(o, "\"recipients_rejected\":1");
        CHECK(count(o, "\"answers\":\"RCPT\"") == 2, "two RCPT replies");
        free(o);
    }
    {
        const char *name = "auth-login";
        chunk t[] = {
            S("220 mx ESMTP\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 AUTH LOGIN PLAIN\r\n"),
            C("AUTH LOGIN\r\n"), S("334 VXNlcm5hbWU6\r\n"),
            C("aXNlQHRlc3RsYWIuY29t\r\n"), S("334 UGFzc3dvcmQ6\r\n"),
            C("UzNjcjN0LVBhNTU=\r\n"), S("535 5.7.3 Authentication unsuccessful\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"decoded\":\"Username:\"");
        HAS(o, "\"decoded\":\"Password:\"");
        HAS(o, "\"kind\":\"username\"");
        HAS(o, "\"kind\":\"password\"");
        HAS(o, "\"type\":\"smtp.auth\"");
        HAS(o, "\"result\":\"failure\"");
        HAS(o, "\"enhanced\":\"5.7.3\"");
        HAS(o, "\"answers\":\"QUIT\"");
        HASNT(o, "UzNjcjN0LVBhNTU");
        HASNT(o, "S3cr3t");
        HASNT(o, "aXNlQHRlc3RsYWIuY29t");
        HASNT(o, "ise@testlab.com");
        free(o);
        o = feed_all(name, t, 1);
        HAS(o, "\"user\":\"ise@testlab.com\"");
        HASNT(o, "S3cr3t");
        HASNT(o, "UzNjcjN0LVBhNTU");
        free(o);
    }
    {
        /* the client sends its credentials without waiting for the 334s */
        const char *name = "auth-login-pipelined";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nMAIL FROM:<a@x>\r\n"),
            S("250 mx\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 ok\r\n250 ok\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        CHECK(count(o, "\"type\":\"smtp.auth_response\"") == 2, "two responses");
        HAS(o, "\"verb\":\"MAIL\"");
        HAS(o, "\"answers\":\"MAIL\"");
        HAS(o, "\"result\":\"success\"");
        HASNT(o, "cGFzcw");
        free(o);
    }
    {
        const char *name = "auth-plain";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250 AUTH PLAIN\r\n"),
            C("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"), S("235 2.7.0 Authentication successful\r\n"),
            C("AUTH PLAIN\r\n"), S("334 \r\n"), C("AGFsaWNlAHNlY3JldA==\r\n"), S("503 5.5.1 already\r\n"),
            END,
        };
        char *o = feed_all(name, t, 1);
        HAS(o, "\"user\":\"alice\"");
        HAS(o, "\"result\":\"success\"");
        HAS(o, "\"kind\":\"credentials\"");
        HASNT(o, "secret");
        HASNT(o, "AGFsaWNlAHNlY3JldA");
        free(o);
        o = feed_all(name, t, 0);
        HASNT(o, "alice");
        free(o);
    }
    {
        const char *name = "bdat";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 CHUNKING\r\n"),
            C("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n"), S("250 ok\r\n250 ok\r\n"),
            C("BDAT 22\r\nSubject: chunk\r\n\r\nab\r\n"), S("250 2.0.0 22 octets\r\n"),
            C("BDAT 7 LAST\r\nDATA\r\n\r\n"), S("250 2.0.0 Ok: queued as QQ\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"transfer\":\"BDAT\",\"bytes\":29");
        HAS(o, "\"subject\":\"chunk\"");
        HAS(o, "\"queue_id\":\"QQ\"");
        HAS(o, "\"last\":true");
        CHECK(count(o, "\"verb\":\"DATA\"") == 0, "DATA inside a chunk is not a command");
        HAS(o, "\"answers\":\"QUIT\"");
        free(o);
    }
    {
        const char *name = "starttls";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n\x16\x03\x01\x00\x05hello"),      /* client did not wait */
            S("220 2.0.0 Ready to start TLS\r\n\x16\x03\x03\x00\x02hi"),
            C("\x17\x03\x03\x00\x03xyz"),
            END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"type\":\"smtp.starttls\"");
        HAS(o, "\"result\":\"accepted\"");
        CHECK(count(o, "\"type\":\"smtp.command\"") == 2, "no command after the hand-off");
        HAS(o, "\"kind\":\"client_did_not_wait\",\"detail\":\"TLS bytes sent before the 220 to STARTTLS\"");
        HAS(o, "\"client\":{\"bytes\":18,\"records\":2");
        HAS(o, "\"server\":{\"bytes\":7,\"records\":1");
        free(o);
    }
    {
        /* CVE-2011-0411 class: commands sent with STARTTLS, before its 220;
         * an injected AUTH's credentials never appear */
        const char *name = "starttls-command-injection";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\nRSET\r\nAUTH PLAIN AGFsaWNlAHNlY3JldHB3\r\n"),
            S("220 2.0.0 Ready to start TLS\r\n"),
            C("\x16\x03\x01\x00\x05hello"),
            S("\x16\x03\x03\x00\x02hi"),
            END,
        };
        char *o = feed_all(name, t, 0);
        if (getenv("MX_DEBUG")) fputs(o, stderr);
        HAS(o, "\"kind\":\"starttls_command_injection\"");
        HAS(o, "\"bytes\":39,\"verbs\":[\"RSET\",\"AUTH\"]");
        HASNT(o, "starttls_not_followed_by_tls");
        HASNT(o, "client_did_not_wait");
        HASNT(o, "AGFsaWNl");
        HASNT(o, "secretpw");
        HAS(o, "\"client\":{\"bytes\":10,\"records\":1");
        free(o);
    }
    {
        /* reply lines after the 220 to STARTTLS, before the ClientHello */
        const char *name = "starttls-response-injection";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"),
            S("220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected\r\n"),
            C("\x16\x03\x01\x00\x05hello"),
            S("\x16\x03\x03\x00\x02hi"),
            END,
        };
        char *o = feed_all(name, t, 0);
        if (getenv("MX_DEBUG")) fputs(o, stderr);
        HAS(o, "\"kind\":\"starttls_response_injection\"");
        HAS(o, "\"bytes\":20,\"codes\":[250]");
        HASNT(o, "starttls_not_followed_by_tls");
        HAS(o, "\"server\":{\"bytes\":7,\"records\":1");
        free(o);
    }
    {
        /* a middlebox answering STARTTLS itself: not injection */
        const char *name = "starttls-then-clear";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"), S("220 go ahead\r\n"),
            C("EHLO c\r\n"), S("250 mx\r\n"), C("QUIT\r\n"), S("221 bye\r\n"),
            END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"starttls_not_followed_by_tls\"");
        HASNT(o, "injection");
        free(o);
    }
    {
        /* STARTTLS masked by an inspection in the path */
        const char *name = "starttls-masked";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250-XXXXXXXA\r\n250 8BITMIME\r\n"),
            C("MAIL FROM:<a@b>\r\n"), S("250 ok\r\n"), C("QUIT\r\n"), S("221 bye\r\n"),
            END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"starttls_masked\"");
        HAS(o, "\"starttls_offered\":false");
        HASNT(o, "tls_not_enforced");
        free(o);
    }
    {
        const char *name = "starttls-refused";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"), S("454 4.7.0 TLS not available due to temporary reason\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"result\":\"refused\"");
        HAS(o, "\"code\":454");
        HAS(o, "\"answers\":\"QUIT\"");
        free(o);
    }
    {
        const char *name = "smuggling";
        chunk t[] = {
            S("220 mx\r\n"), C("HELO c\r\n"), S("250 mx\r\n"),
            C("MAIL FROM:<a@x>\r\n"), S("250 ok\r\n"), C("RCPT TO:<b@x>\r\n"), S("250 ok\r\n"),
            C("DATA\r\n"), S("354 go\r\n"),
            C("Subject: s\r\n\r\nline\n.\nMAIL FROM:<evil@x>\r\nbare\rcr\r\n.\r\n"),
            S("250 ok queued as 1\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"smtp_smuggling\",\"detail\":\"<LF>.<LF>\"");
        HAS(o, "\"kind\":\"bare_lf_in_data\"");
        HAS(o, "\"bare_cr\":1");
        HAS(o, "\"smuggling_markers\":1");
        CHECK(count(o, "\"verb\":\"MAIL\"") == 1, "smuggled MAIL is body, not a command");
        free(o);
    }
    {
        const char *name = "long-and-garbage";
        static char longline[9000];
        memset(longline, 'A', sizeof longline - 3);
        memcpy(longline, "NOOP ", 5);
        memcpy(longline + sizeof longline - 3, "\r\n", 3);
        chunk t[] = {
            S("220 mx\r\n"), { MX_CLIENT, longline, sizeof longline - 1 }, S("250 ok\r\n"),
            C("\x01\x02\xff\x00zz\r\n"), S("500 what\r\n"),
            C("XFOO bar\r\n"), S("502 5.5.2 Error: command not recognized\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"line_too_long\"");
        HAS(o, "\"arg_truncated\":true");
        HAS(o, "\"truncated\":true");
        HAS(o, "\"kind\":\"not_smtp_command\"");
        HAS(o, "\"verb\":\"UNKNOWN\",\"known\":false,\"withheld\":true,\"length\":8,\"chars\":\"text\"");
        HASNT(o, "XFOO");
        HASNT(o, "bar");
        HAS(o, "\"answers\":\"QUIT\"");
        free(o);
    }
    {
        /* The client speaks before the 220: the greeting is still the
         * greeting, and every later reply pairs with its own command. */
        const char *name = "early-talker";
        chunk t[] = {
            C("EHLO c.example\r\n"), S("220 mx.example ESMTP\r\n"),
            S("250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
            C("MAIL FROM:<a@x>\r\n"), S("250 2.1.0 Ok\r\n"),
            C("RCPT TO:<b@x>\r\n"), S("250 2.1.5 Ok\r\n"),
            C("DATA\r\n"), S("354 go\r\n"),
            C("Subject: s\r\n\r\nQUIT\r\nbody\r\n.\r\n"), S("250 2.0.0 Ok: queued as E1\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"client_spoke_first\"");
        HAS(o, "\"code\":220,\"class\":\"success\",\"lines\":[\"mx.example ESMTP\"],\"answers\":\"<greeting>\"");
        HAS(o, "\"answers\":\"EHLO\"");
        HAS(o, "\"STARTTLS\"");
        HAS(o, "\"code\":354,\"class\":\"intermediate\",\"lines\":[\"go\"],\"answers\":\"DATA\"");
        HAS(o, "\"queue_id\":\"E1\"");
        HAS(o, "\"answers\":\"QUIT\"");
        CHECK(count(o, "\"type\":\"smtp.command\"") == 5, "%s: five commands, message lines are not commands", name);
        HAS(o, "\"starttls_offered\":true");
        HAS(o, "\"messages_accepted\":1");
        HASNT(o, "\"unanswered\"");
        free(o);
    }
    {
        /* PIPE_CONNECT: EHLO, MAIL and RCPT all before the greeting. */
        const char *name = "pipe-connect";
        chunk t[] = {
            C("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n"),
            S("220 mx\r\n"), S("250 mx\r\n250 ok\r\n250 ok\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"client_spoke_first\"");
        HAS(o, "\"answers\":\"<greeting>\"");
        HAS(o, "\"answers\":\"RCPT\"");
        HAS(o, "\"answers\":\"QUIT\"");
        HASNT(o, "\"unsolicited\"");
        free(o);
    }
    {
        /* A normal start says nothing about early talking. */
        const char *name = "no-early-talk";
        chunk t[] = { S("220 mx\r\n"), C("EHLO c\r\n"), S("250 mx\r\n"), C("QUIT\r\n"), S("221 bye\r\n"), END };
        char *o = feed_all(name, t, 0);
        HASNT(o, "client_spoke_first");
        free(o);
    }
    {
        /* "BDAT 5 X": the server answers 501 and reads no chunk; the commands
         * pipelined after it are commands, not five bytes of message. */
        const char *name = "bdat-extra-token";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 CHUNKING\r\n"),
            C("BDAT 5 X\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 7 LAST\r\nhello\r\n"),
            S("501 5.5.4 Syntax: BDAT count [LAST]\r\n250 ok\r\n250 ok\r\n250 2.0.0 Ok: queued as B7\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"bad_bdat_args\"");
        HAS(o, "\"kind\":\"bdat_chunk_not_sent\"");
        HAS(o, "\"verb\":\"MAIL\"");
        HAS(o, "\"code\":501,\"enhanced\":\"5.5.4\",\"class\":\"permanent\",\"lines\":[\"5.5.4 Syntax: BDAT count [LAST]\"],\"answers\":\"BDAT\"");
        HAS(o, "\"queue_id\":\"B7\"");
        HAS(o, "\"messages_accepted\":1");
        HAS(o, "\"answers\":\"QUIT\"");
        HASNT(o, "withheld");
        free(o);
    }
    {
        /* Extra tokens but the chunk does follow: it is read as a chunk. */
        const char *name = "bdat-extra-token-chunk";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 CHUNKING\r\n"),
            C("MAIL FROM:<a@x>\r\n"), S("250 ok\r\n"), C("RCPT TO:<b@x>\r\n"), S("250 ok\r\n"),
            C("BDAT 6 X\r\nhello\n"), S("250 ok 6 octets\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"bad_bdat_args\"");
        HASNT(o, "bdat_chunk_not_sent");
        HASNT(o, "withheld");
        HAS(o, "\"answers\":\"QUIT\"");
        free(o);
    }
    {
        /* No usable size: no chunk at all, the next lines are commands. */
        const char *name = "bdat-bad-size";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 CHUNKING\r\n"),
            C("BDAT 99999999999999999999 LAST\r\n"), S("552 5.3.4 too big\r\n"),
            C("BDAT abc\r\n"), S("501 5.5.4 Syntax\r\n"),
            C("BDAT 5LAST\r\n"), S("501 5.5.4 Syntax\r\n"),
            C("BDAT\r\n"), S("501 5.5.4 Syntax\r\n"),
            C("RSET\r\nMAIL FROM:<a@x>\r\n"), S("250 ok\r\n250 ok\r\n"),
            C("RCPT TO:<b@x>\r\n"), S("250 ok\r\n"),
            C("BDAT 5 LAST\r\nab\r\n\n"), S("250 2.0.0 Ok: queued as Z1\r\n"),
            C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"bad_bdat_size\"");
        CHECK(count(o, "\"malformed\":true") == 4, "%s: four malformed BDAT", name);
        HAS(o, "\"verb\":\"RSET\"");
        HAS(o, "\"queue_id\":\"Z1\"");
        HAS(o, "\"messages_accepted\":1");
        HAS(o, "\"answers\":\"QUIT\"");
        HASNT(o, "withheld");
        HASNT(o, "\"unsolicited\"");
        free(o);
    }
    {
        /* A middlebox answers STARTTLS itself and the session goes on in
         * clear text: SMTP is followed on, not taken for broken TLS. */
        const char *name = "starttls-then-cleartext";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"), S("220 2.0.0 Ready to start TLS\r\n"),
            C("EHLO c\r\n"), S("250-mx\r\n250 8BITMIME\r\n"),
            C("MAIL FROM:<a@x>\r\n"), S("250 ok\r\n"), C("RCPT TO:<b@x>\r\n"), S("250 ok\r\n"),
            C("DATA\r\n"), S("354 go\r\n"), C("Subject: p\r\n\r\nhi\r\n.\r\n"),
            S("250 2.0.0 Ok: queued as P1\r\n"), C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"starttls_not_followed_by_tls\"");
        HASNT(o, "cleartext_after_starttls");
        HASNT(o, "not_tls");
        HAS(o, "\"queue_id\":\"P1\"");
        HAS(o, "\"messages_accepted\":1");
        HAS(o, "\"answers\":\"QUIT\"");
        free(o);
    }
    {
        /* Injection after the 220 (not SMTP, not TLS) is still reported so. */
        const char *name = "starttls-then-garbage";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO c\r\n"), S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"), S("220 go\r\n"), C("hello there\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"kind\":\"cleartext_after_starttls\"");
        HASNT(o, "starttls_not_followed_by_tls");
        free(o);
    }
    {
        /* Raw U+2028/U+2029/U+0085 are escaped in JSON and every event is
         * still one well-formed line. */
        const char *name = "line-separators";
        chunk t[] = { S("220 mx ES\xE2\x80\xA8MTP \xE2\x80\xA9 x\xC2\x85y\r\n"), C("QUIT\r\n"), S("221 bye\r\n"), END };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"lines\":[\"mx ES\\u2028MTP \\u2029 x\\u0085y\"]");
        HASNT(o, "\xE2\x80\xA8");
        HASNT(o, "{{");
        int lines_ok = 1;
        for (const char *p = o; *p; ) {
            if (strncmp(p, "{\"type\":", 8) != 0) lines_ok = 0;
            const char *nl = strchr(p, '\n');
            if (!nl) break;
            p = nl + 1;
        }
        CHECK(lines_ok, "%s: every line is an event", name);
        free(o);
    }
    {
        /* Clear SMTP on an implicit-TLS port is followed as SMTP. */
        const char *name = "plaintext-465";
        chunk t[] = {
            S("220 mx ESMTP\r\n"), C("EHLO c\r\n"), S("250 mx\r\n"),
            C("MAIL FROM:<a@x>\r\n"), S("250 ok\r\n"), C("RCPT TO:<b@x>\r\n"), S("250 ok\r\n"),
            C("DATA\r\n"), S("354 go\r\n"), C("Subject: p\r\n\r\nhi\r\n.\r\n"),
            S("250 2.0.0 Ok: queued as T4\r\n"), C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        int same;
        char *o = mxh_feed_all(name, t, 1, 0, &same);
        CHECK(same, "%s: whole, split and byte-by-byte feeding give the same events", name);
        HAS(o, "\"kind\":\"plaintext_on_tls_port\"");
        HASNT(o, "not_tls");
        HAS(o, "\"queue_id\":\"T4\"");
        HAS(o, "\"answers\":\"QUIT\"");
        free(o);
    }
    {
        /* ... but TLS on it is TLS, and garbage is not_tls. */
        const char *name = "garbage-465";
        chunk t[] = { C("\x16\x03\x01\x00\x05hello"), S("what is this\r\n"), END };
        int same;
        char *o = mxh_feed_all(name, t, 1, 0, &same);
        CHECK(same, "%s: same events every way", name);
        HASNT(o, "plaintext_on_tls_port");
        HAS(o, "\"kind\":\"not_tls\"");
        free(o);
    }
    {
        /* Snaplen-cut packets: only the verb of each command is in the
         * capture, then a hole.  What is visible is still told. */
        const char *name = "snaplen-verbs";
        chunk t[] = {
            S("220 mx\r\n"), C("EHLO"), GAP(10), S("250 mx\r\n"),
            C("MAIL"), GAP(20), S("250 ok\r\n"), C("RCPT"), GAP(15), S("250 ok\r\n"),
            C("QUIT"), GAP(2), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"verb\":\"MAIL\"");
        HAS(o, "\"verb\":\"RCPT\"");
        HAS(o, "\"verb\":\"QUIT\"");
        HAS(o, "\"answers\":\"QUIT\"");
        HASNT(o, "bad_path_syntax");
        HASNT(o, "withheld");
        free(o);
    }
    {
        const char *name = "gap-in-body";
        chunk t[] = {
            S("220 mx\r\n"), C("HELO c\r\n"), S("250 mx\r\n"),
            C("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("Subject: g\r\n\r\nfirst part\r\n"), GAP(500), C("more\r\n.\r\n"),
            S("250 2.0.0 Ok: queued as G1\r\n"), C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"gap_bytes\":500");
        HAS(o, "\"queue_id\":\"G1\"");
        HAS(o, "\"answers\":\"QUIT\"");
        free(o);
    }
    {
        const char *name = "abort-mid-data";
        chunk t[] = {
            S("220 mx\r\n"), C("HELO c\r\n"), S("250 mx\r\n"),
            C("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"), S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("Subject: big\r\n\r\nxxxxxxxxxxxx\r\nyyyy"),
            S("421 4.3.0 Service shutting down\r\n"),
            C("more body\r\nRSET lookalike\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\"end\":\"eof\"");
        HAS(o, "\"server_abort\":421");
        CHECK(count(o, "\"type\":\"smtp.command\"") == 4, "body after the 421 is not commands");
        HAS(o, "\"code\":421");
        HAS(o, "\"unsolicited\":true");
        free(o);
    }
    {
        const char *name = "hostile-text";
        chunk t[] = {
            S("220 mx \xff\xfe<script>\x1b[2J\r\n"), C("EHLO \"quote\\\r\n"), S("250 ok\r\n"),
            C("MAIL FROM:<a\x00" "b@x>\r\n"), S("250 ok\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        HAS(o, "\xEF\xBF\xBD\xEF\xBF\xBD<script>");
        HAS(o, "\\u001b[2J");
        HAS(o, "\"arg\":\"\\\"quote\\\\\"");
        HAS(o, "a\xEF\xBF\xBD" "b@x");
        free(o);
    }
    {
        /* Long bodies are counted 64 bytes at a time where their lines are
         * plain; every line that needs a look (bare CR or LF, ".", "--" with
         * boundaries, a CR LF across two blocks) must come out as the line by
         * line path (byte-by-byte feeding) counts it.  Each line's length
         * shifts the next across the 64-byte blocks. */
        const char *name = "bulk-body-lines";
        static char body[24000];
        size_t n = 0, want_lines = 0, bare_lf = 0, bare_cr = 0;
        const char *hdr = "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n\r\n";
        memcpy(body, hdr, strlen(hdr));
        n = strlen(hdr);
        want_lines = 4;
        uint32_t r = 12345;
        for (int i = 0; i < 300; i++) {
            r = r * 1103515245u + 12345u;
            size_t len = (r >> 16) % 131;
            int kind = (int)((r >> 8) % 23);
            for (size_t k = 0; k < len; k++) body[n++] = (char)('A' + (k + i) % 26);
            if (kind == 0) { body[n++] = '\n'; bare_lf++; }                      /* bare LF            */
            else if (kind == 1 && len) { body[n - 1] = '\r'; body[n++] = 'x'; bare_cr++; body[n++] = '\r'; body[n++] = '\n'; }
            else if (kind == 2) { memcpy(body + n, "\r\n--B\r\n\r\n", 9); n += 9; want_lines += 3; body[n++] = '\r'; body[n++] = '\n'; }
            else if (kind == 3) { memcpy(body + n, "\r\n..stuffed\r\n-x\r\n", 17); n += 17; want_lines += 2; }
            else if (kind == 4) { memcpy(body + n, "\r\n.\r", 4); n += 4; body[n++] = 'y'; body[n++] = '\r'; body[n++] = '\n'; bare_cr++; want_lines++; }
            else { body[n++] = '\r'; body[n++] = '\n'; }
            want_lines++;
        }
        memcpy(body + n, "--B--\r\n.\r\n", 10);
        n += 10;
        want_lines += 1;
        chunk t[] = {
            S("220 mx ESMTP\r\n"), C("EHLO c\r\n"), S("250 mx\r\n"),
            C("MAIL FROM:<a@x>\r\n"), S("250 ok\r\n"), C("RCPT TO:<b@y>\r\n"), S("250 ok\r\n"),
            C("DATA\r\n"), S("354 go\r\n"),
            { MX_CLIENT, body, n },
            S("250 queued\r\n"), C("QUIT\r\n"), S("221 bye\r\n"), END,
        };
        char *o = feed_all(name, t, 0);
        size_t lfs = 0;
        for (size_t k = 0; k < n; k++) lfs += body[k] == '\n';
        CHECK(lfs - 1 == want_lines, "%s: the body has the lines it was made with (%zu, %zu)", name, lfs - 1, want_lines);
        char want[64];
        snprintf(want, sizeof want, "\"lines\":%zu,", lfs - 1);
        HAS(o, want);
        snprintf(want, sizeof want, "\"bare_lf\":%zu", bare_lf);
        HAS(o, want);
        snprintf(want, sizeof want, "\"bare_cr\":%zu", bare_cr);
        HAS(o, want);
        HAS(o, "\"end\":\"dot\"");
        free(o);
    }
    return CHECK_DONE();
}
