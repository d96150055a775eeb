/* fuzz_pipeline.c - capture records -> decode -> flow table -> reassembly ->
 * SMTP/TLS (and DNS answers) -> output, as mxtrace runs them.
 *
 * Input: [options u8] [format u8] [pcap records...].  The target writes a
 * pcap file header itself, so the fuzzer spends its time on packets, and
 * reads the result with libpcap from memory (fmemopen + pcap_fopen_offline),
 * the way src/capture.c reads a file.  Every packet is copied into an
 * exact-size buffer before it reaches mx_engine_packet().
 *
 *   options: bits0-3 link type (table below)   bit4 show_user
 *            bit5 small stream/line/TLS caps     bit6 idle timeout of 1 s
 *            bit7 terminal colours (text and summary views)
 *   format:  bits0-2: 0 ndjson, 1 timeline, 2 text, 3 summary, 4 HTML,
 *            5 pretty timeline, 6-7 ndjson
 *
 * Watched ports 25, 587, 2525 and 465 (implicit TLS); max_flows 8,
 * max_events 64; nDPI classification off (see below).  Checks: JSON output
 * is valid UTF-8 and one document per line (ndjson, timeline) or a sequence
 * of documents (pretty), with U+0085/U+2028/U+2029 escaped; text views
 * carry no control characters, nor C1, bidi or line-separator code points;
 * the HTML report has no markup but its own and none of those code points
 * either; the engine's counters are consistent.
 */
#include "fuzz_common.h"
#include "mx/engine.h"
#include "mx/sink.h"

#include <pcap/pcap.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LINKTYPE_* values as written in pcap file headers. */
static const uint32_t linktypes[16] = {
    1, 1, 1, 1,          /* Ethernet: most captures                     */
    0, 108, 101, 113,    /* NULL, LOOP, RAW, Linux SLL                  */
    276, 228, 229, 12,   /* SLL2, IPv4, IPv6, 12 (DLT_RAW's number)     */
    14, 113, 101, 147,   /* 14, SLL, RAW, USER0 (unsupported)           */
};

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }   /* host order */
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_self_test();
    if (size < 2) return 0;
    uint8_t opt = data[0], fsel = data[1] & 7;
    static const mx_format formats[8] = { MX_FMT_NDJSON, MX_FMT_TIMELINE, MX_FMT_TEXT, MX_FMT_SUMMARY,
                                          MX_FMT_HTML, MX_FMT_TIMELINE, MX_FMT_NDJSON, MX_FMT_ECS };
    mx_format fmt = formats[fsel];
    int color = (opt & 0x80) != 0;

    /* pcap file: header (host byte order, microseconds) + the input's records */
    data += 2;
    size -= 2;
    size_t flen = 24 + size;
    uint8_t *file = malloc(flen);
    if (!file) abort();
    put32(file, 0xa1b2c3d4u);
    put16(file + 4, 2);
    put16(file + 6, 4);
    put32(file + 8, 0);
    put32(file + 12, 0);
    put32(file + 16, 262144);
    put32(file + 20, linktypes[opt & 15]);
    if (size) memcpy(file + 24, data, size);

    static mx_engine_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    mx_limits_default(&cfg.opt.lim);
    cfg.opt.lim.max_flows = 8;
    cfg.opt.lim.max_events = 64;
    if (opt & 0x20) fuzz_tiny_limits(&cfg.opt.lim);
    if (opt & 0x40) cfg.opt.lim.idle_timeout_s = 1;
    cfg.opt.show_user = (opt & 0x10) != 0;
    cfg.opt.pretty = fsel == 5;
    /* nDPI's set-up costs ~0.1 s per engine, which would bring this target
     * to a few runs a second; the classifier is a third-party library
     * and is left out. */
    cfg.no_ndpi = 1;
    cfg.ports[cfg.nports++] = 25;
    cfg.ports[cfg.nports++] = 587;
    cfg.ports[cfg.nports++] = 2525;
    cfg.tls_ports[cfg.ntls_ports++] = 465;

    char *obuf = NULL;
    size_t olen = 0;
    FILE *out = open_memstream(&obuf, &olen);
    if (!out) abort();
    mx_sink *sink = mx_sink_new(fmt, out, &cfg.opt, color);
    char eerr[256] = "";
    mx_engine *e = sink ? mx_engine_new(&cfg, sink, eerr, sizeof eerr) : NULL;
    if (!e) FZ_FAIL("engine: %s", eerr);

    uint64_t frames = 0;
    char err[PCAP_ERRBUF_SIZE];
    FILE *in = fmemopen(file, flen, "rb");
    pcap_t *p = in ? pcap_fopen_offline_with_tstamp_precision(in, PCAP_TSTAMP_PRECISION_MICRO, err) : NULL;
    if (!p) {
        if (in) fclose(in);
    } else {
        int lt = pcap_datalink(p);
        if (mx_link_supported(lt)) {
            struct pcap_pkthdr *h;
            const u_char *pd;
            while (pcap_next_ex(p, &h, &pd) == 1) {
                uint64_t us = (uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec;
                uint32_t caplen = h->caplen, len = h->len < h->caplen ? h->caplen : h->len;
                uint8_t *pkt = fz_dup(pd, caplen);
                mx_engine_packet(e, lt, us, pkt, caplen, len, ++frames);
                free(pkt);
            }
        }
        pcap_close(p);      /* closes `in` */
    }

    mx_engine_finish(e, "end_of_input");
    mx_sink_finish(sink);
    const mx_engine_stats *st = mx_engine_stats_get(e);
    if (st->packets != frames) FZ_FAIL("packets %llu != frames fed %llu",
                                       (unsigned long long)st->packets, (unsigned long long)frames);
    if (st->tcp_packets > st->packets || st->mail_packets > st->tcp_packets)
        FZ_FAIL("packet counters out of order");
    /* (DNS answers are read but counted nowhere, hence <=) */
    if (st->tcp_packets + st->not_ip + st->not_tcp + st->fragments + st->truncated + st->malformed > st->packets)
        FZ_FAIL("decode verdicts add up to more than the packets");
    if (st->max_live_flows > cfg.opt.lim.max_flows)
        FZ_FAIL("%llu flows live at once, max_flows %u",
                (unsigned long long)st->max_live_flows, cfg.opt.lim.max_flows);
    if (st->evicted + st->timed_out > st->sessions) FZ_FAIL("more sessions ended early than began");
    uint64_t sessions = st->sessions;
    mx_engine_free(e);
    if (fflush(out) != 0) abort();
    size_t n;
    switch (fmt) {
    case MX_FMT_NDJSON:
        n = fz_check_ndjson(obuf, olen, 0);
        if (n < 2 * sessions)
            FZ_FAIL("%zu events for %llu sessions (each has start and end)", n, (unsigned long long)sessions);
        break;
    case MX_FMT_ECS:
        n = fz_check_ndjson(obuf, olen, 2);
        if (n < 2 * sessions)
            FZ_FAIL("%zu ECS events for %llu sessions (each has start and end)", n, (unsigned long long)sessions);
        break;
    case MX_FMT_TIMELINE:
        n = cfg.opt.pretty ? fz_check_json_seq(obuf, olen) : fz_check_ndjson(obuf, olen, 1);
        if (n != sessions)
            FZ_FAIL("%zu timeline documents for %llu sessions", n, (unsigned long long)sessions);
        break;
    case MX_FMT_SUMMARY:
        n = fz_check_text(obuf, olen, color);
        if (n != (sessions ? sessions + 1 : 0))
            FZ_FAIL("%zu summary lines for %llu sessions (plus a header)", n, (unsigned long long)sessions);
        break;
    case MX_FMT_TEXT:
        fz_check_text(obuf, olen, color);
        break;
    default:
        fz_check_html(obuf, olen);
        break;
    }
    if (mx_sink_failed(sink)) FZ_FAIL("the writer reports a failed write to a memory stream");
    mx_sink_free(sink);
    fclose(out);
    free(obuf);
    free(file);
    return 0;
}
