/* engine.h - from decoded packets to sessions.
 *
 * The engine owns the flow table.  For every TCP packet on a watched port it
 * finds (or creates) the flow, tracks the TCP handshake, resets and closes,
 * reassembles each direction and hands the bytes to the SMTP or TLS parser.
 * Flows end on close, reset, idle timeout (in capture time), eviction when
 * the table is full, or at the end of input; each ends with a session.end
 * event.  Not thread-safe: one engine per thread.
 */
#ifndef MX_ENGINE_H
#define MX_ENGINE_H

#include <stdint.h>

#include "mx/decode.h"
#include "mx/session.h"

typedef struct mx_engine mx_engine;
typedef struct mx_pktdump mx_pktdump;

typedef struct mx_engine_cfg {
    mx_opts opt;
    uint16_t ports[64];        /* watched server ports                   */
    int nports;
    uint16_t tls_ports[16];    /* ports where TLS starts at once (465)   */
    int ntls_ports;
    int no_ndpi;               /* skip nDPI classification               */
    int ndpi_tls;              /* --ndpi-tls: nDPI's TLS risk pass after STARTTLS */
    int any_port;              /* follow SMTP/TLS that nDPI finds anywhere */
    int workers;               /* engines on threads of their own (1: none) */
    int in_worker;             /* (set by workers.c for its engines)        */
} mx_engine_cfg;

typedef struct mx_engine_stats {
    uint64_t packets, tcp_packets, mail_packets;
    uint64_t not_ip, not_tcp, fragments, truncated, malformed;
    uint64_t sessions, evicted, timed_out;
    uint64_t off_port_ignored;      /* --any-port flows nDPI called other */
    uint64_t max_live_flows;
    uint64_t memcap_refused;        /* stream buffers the budget refused  */
    uint64_t sessions_split;        /* sessions the budget made write parts */
    uint64_t buffers_peak;          /* most bytes of stream buffers at once */
} mx_engine_stats;

/* cfg is copied.  sink receives every session's events.  NULL on failure,
 * with the reason in err. */
mx_engine *mx_engine_new(const mx_engine_cfg *cfg, mx_sink *sink, char *err, size_t cap);

/* One captured packet: link type, time in microseconds since the epoch, the
 * captured bytes, original length, and its 1-based number in the input.
 * Returns 1 when the packet belongs to a followed connection (or is a DNS
 * answer the verdicts use), 0 when it was passed over. */
int mx_engine_packet(mx_engine *e, int linktype, uint64_t ts_us,
                      const uint8_t *data, uint32_t caplen, uint32_t wirelen,
                      uint64_t frame);

/* One captured packet as the capture modules have it: as above, with the
 * length the record gave (origlen, written by -w) and its interface's
 * snap length. */
typedef struct mx_input {
    int linktype;
    uint64_t ts_us, frame;
    const uint8_t *data;
    uint32_t caplen, wirelen, origlen, snaplen;
    int stable;            /* data stays put until mx_engine_sync(e, 1)    */
} mx_input;
/* mx_engine_packet(), then -w: the packet goes to the dump when kept (with
 * workers, in the order of the input, once its worker kept it). */
int mx_engine_input(mx_engine *e, const mx_input *in);
/* Where mx_engine_input() writes kept packets (NULL: nowhere). */
void mx_engine_set_dump(mx_engine *e, mx_pktdump *d);
/* With workers: hands over the packets read so far, and writes what the
 * workers made of them that can be written in order; with wait, first
 * waits until every worker is done with them (so that everything up to
 * the last packet is written).  Nothing to do without workers. */
void mx_engine_sync(mx_engine *e, int wait);
/* Every packet up to this frame is done with (its bytes are no longer
 * read): the last one given, or with workers the last before the oldest
 * they may still be reading. */
uint64_t mx_engine_done_frame(const mx_engine *e);

/* The clock moved on without a packet (live capture on a quiet link):
 * flows whose idle timeout or linger ran out by now_us end. */
void mx_engine_tick(mx_engine *e, uint64_t now_us);

/* Ends every open flow, writing each out as incomplete with the reason
 * given ("end_of_input", "shutdown"); in the order they started, in
 * O(n log n). */
void mx_engine_finish(mx_engine *e, const char *reason);

/* With workers: the workers' counters are added in once they are done
 * (after mx_engine_finish); peaks are the sum of each worker's peak. */
const mx_engine_stats *mx_engine_stats_get(const mx_engine *e);

/* With workers, after mx_engine_finish: worker i's own counters; 0 past
 * the last worker (or without workers). */
int mx_engine_worker_stats(const mx_engine *e, int i, mx_engine_stats *out);

/* ---- for workers.c ----------------------------------------------------------- */

/* The keyed hash of a packet's connection: the same for both directions,
 * the VLAN ids part of it. */
uint64_t mx_flow_hash(const mx_pkt *k, const uint64_t key[2]);
/* The clock at a packet of the input (any packet, any worker's). */
void mx_engine_clock(mx_engine *e, uint64_t ts_us, uint64_t frame);
/* A TCP packet already decoded, after mx_engine_clock(); h its hash. */
int mx_engine_tcp(mx_engine *e, const mx_pkt *k, uint64_t h);
/* A DNS answer, after mx_engine_clock(). */
void mx_engine_dns(mx_engine *e, const mx_pkt *k);
/* A worker's counters into the run's. */
void mx_engine_stats_add(mx_engine_stats *to, const mx_engine_stats *from);
void mx_engine_free(mx_engine *e);

#endif
