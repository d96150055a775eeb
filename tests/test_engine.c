/* Unit tests: the engine's TCP life cycle, driven with packets built here
 * (Ethernet, IPv4, TCP), through mx_engine_packet() as a capture would.
 *
 * Resets after a connection has ended - both sides resetting, late segments
 * answered by RST - must each be on the timeline, and the session must
 * still end with the reason of its real end.
 */
#include "check.h"
#include "mx/engine.h"
#include "mx/sink.h"

#include <stdlib.h>

enum { F_FIN = 0x01, F_SYN = 0x02, F_RST = 0x04, F_PSH = 0x08, F_ACK = 0x10 };

typedef struct run {
    mx_engine *e;
    mx_sink *k;
    FILE *out;
    char *buf;
    size_t len;
    uint64_t frame, us;
    uint32_t seq[2];          /* next sequence number of client, server */
    uint16_t cport;
} run;

static mx_engine_cfg cfg;

static void start(run *r, uint16_t cport)
{
    memset(r, 0, sizeof *r);
    memset(&cfg, 0, sizeof cfg);
    mx_limits_default(&cfg.opt.lim);
    cfg.no_ndpi = 1;
    cfg.ports[cfg.nports++] = 25;
    r->out = open_memstream(&r->buf, &r->len);
    r->k = mx_sink_new(MX_FMT_NDJSON, r->out, &cfg.opt, 0);
    char err[256];
    r->e = mx_engine_new(&cfg, r->k, err, sizeof err);
    CHECK(r->e != NULL, "engine: %s", err);
    r->us = 1700000000000000ull;
    r->seq[0] = 1000;
    r->seq[1] = 5000;
    r->cport = cport;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* One packet from dir (0 client, 1 server); seq and ack from the run's
 * state unless seq_override is non-zero.  Data advances the sender's seq. */
static void pkt(run *r, int dir, uint8_t flags, const char *data, uint32_t seq_override)
{
    uint8_t p[1600];
    size_t n = data ? strlen(data) : 0;
    memset(p, 0, 54);
    p[12] = 0x08;                                  /* IPv4 */
    uint8_t *ip = p + 14, *tcp = ip + 20;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(40 + n));
    ip[8] = 64;
    ip[9] = 6;
    uint8_t a[4] = { 192, 0, 2, 1 }, b[4] = { 192, 0, 2, 25 };
    memcpy(ip + 12, dir ? b : a, 4);
    memcpy(ip + 16, dir ? a : b, 4);
    put16(tcp, dir ? 25 : r->cport);
    put16(tcp + 2, dir ? r->cport : 25);
    put32(tcp + 4, seq_override ? seq_override : r->seq[dir]);
    put32(tcp + 8, (flags & F_ACK) ? r->seq[!dir] : 0);
    tcp[12] = 0x50;
    tcp[13] = flags;
    put16(tcp + 14, 65000);
    if (n) memcpy(tcp + 20, data, n);
    r->us += 1000;
    mx_engine_packet(r->e, 1, r->us, p, (uint32_t)(54 + n), (uint32_t)(54 + n), ++r->frame);
    r->seq[dir] += (uint32_t)n + ((flags & (F_SYN | F_FIN)) ? 1 : 0);
}

static void handshake(run *r)
{
    pkt(r, 0, F_SYN, NULL, 0);
    pkt(r, 1, F_SYN | F_ACK, NULL, 0);
    pkt(r, 0, F_ACK, NULL, 0);
    pkt(r, 1, F_ACK | F_PSH, "220 mx ESMTP\r\n", 0);
    pkt(r, 0, F_ACK | F_PSH, "QUIT\r\n", 0);
    pkt(r, 1, F_ACK | F_PSH, "221 bye\r\n", 0);
}

static char *finish(run *r)
{
    mx_engine_finish(r->e, "end_of_input");
    mx_sink_finish(r->k);
    mx_engine_free(r->e);
    mx_sink_free(r->k);
    fclose(r->out);
    return r->buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

int main(void)
{
    run r;
    {
        /* FIN both ways, then the client resets twice (late ACK answered). */
        start(&r, 40001);
        handshake(&r);
        pkt(&r, 1, F_FIN | F_ACK, NULL, 0);
        pkt(&r, 0, F_FIN | F_ACK, NULL, 0);
        pkt(&r, 1, F_ACK, NULL, 0);                   /* last ACK: not late */
        pkt(&r, 0, F_RST, NULL, 0);
        pkt(&r, 0, F_RST, NULL, 0);
        char *o = finish(&r);
        CHECK(count(o, "\"type\":\"tcp.rst\"") == 2, "two late resets: %s", o);
        CHECK(count(o, "\"after_close\":true") == 2, "both after close");
        CHECK(strstr(o, "\"reason\":\"closed\"") != NULL, "the end is still the FINs");
        CHECK(strstr(o, "\"packets_after_close\":2") != NULL, "two late packets counted");
        CHECK(strstr(o, "\"how\":\"quit\"") != NULL, "ended by QUIT");
        CHECK(count(o, "\"type\":\"session.end\"") == 1, "one session");
        free(o);
    }
    {
        /* Both sides reset: the first one ends it, the second is reported. */
        start(&r, 40002);
        handshake(&r);
        pkt(&r, 0, F_RST | F_ACK, NULL, 0);
        pkt(&r, 1, F_ACK | F_PSH, "late\r\n", 0);
        pkt(&r, 1, F_RST, NULL, 0);
        char *o = finish(&r);
        CHECK(count(o, "\"type\":\"tcp.rst\"") == 2, "both resets: %s", o);
        CHECK(count(o, "\"after_close\":true") == 1, "the second after close");
        CHECK(strstr(o, "\"reason\":\"reset_by_client\"") != NULL, "first reset decides");
        CHECK(strstr(o, "\"from\":\"server\",\"seq\"") != NULL, "server's reset has its side");
        CHECK(strstr(o, "bad_reply_line") == NULL, "late data is not parsed");
        free(o);
    }
    {
        /* The port is reused within the linger: the ended session is written
         * and a new one starts. */
        start(&r, 40003);
        handshake(&r);
        pkt(&r, 1, F_FIN | F_ACK, NULL, 0);
        pkt(&r, 0, F_FIN | F_ACK, NULL, 0);
        r.seq[0] += 100000;
        r.seq[1] += 100000;
        handshake(&r);
        char *o = finish(&r);
        CHECK(count(o, "\"type\":\"session.end\"") == 2, "two sessions: %s", o);
        CHECK(strstr(o, "\"session\":2") != NULL, "second session");
        CHECK(strstr(o, "\"reason\":\"closed\"") != NULL, "first closed");
        free(o);
    }
    {
        /* Past the linger the ended session is written before what comes
         * next (here a segment that opens a mid-stream session). */
        start(&r, 40004);
        handshake(&r);
        pkt(&r, 1, F_FIN | F_ACK, NULL, 0);
        pkt(&r, 0, F_FIN | F_ACK, NULL, 0);
        r.us += 6000000;
        pkt(&r, 0, F_ACK | F_PSH, "NOOP\r\n", 0);
        char *o = finish(&r);
        const char *end1 = strstr(o, "\"type\":\"session.end\",\"session\":1");
        const char *s2 = strstr(o, "\"session\":2");
        CHECK(end1 && s2 && end1 < s2, "session 1 written before session 2 starts: %s", o);
        free(o);
    }
    return CHECK_DONE();
}
