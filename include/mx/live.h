/* live.h - sniffing interfaces (capture layer, with capture.c: libpcap).
 *
 * mx_live_open() opens and activates every interface (as root or with
 * CAP_NET_RAW and CAP_NET_ADMIN), sets the kernel filter, and returns;
 * privileges can be dropped after it.  mx_live_run() then reads until
 * *ctl->stop is set or an output fails: packets from all interfaces, as
 * they come, numbered in arrival order; the engine's clock is moved on at
 * every wake-up (at least every 250 ms), so flows on a quiet link still
 * time out; libpcap's counters are reported every stats_interval_s seconds
 * and once at the end.
 */
#ifndef MX_LIVE_H
#define MX_LIVE_H

#include <stdint.h>
#include <stdio.h>

#include "mx/capture.h"

enum { MX_LIVE_MAX_IFACES = 16 };

typedef struct mx_live_opts {
    const char *ifaces[MX_LIVE_MAX_IFACES];
    int nifaces;
    const char *filter;          /* the whole kernel filter (BPF text)      */
    int snaplen;                 /* bytes kept of a packet                  */
    int buffer_kib;              /* kernel buffer per interface             */
    int promisc;
    int immediate;               /* hand packets over at once (no batching) */
    int nano;                    /* nanosecond timestamps from the kernel   */
    unsigned stats_interval_s;   /* 0: only at the end                      */
} mx_live_opts;

typedef struct mx_live mx_live;

/* One interface's counters from libpcap, at a report. */
typedef struct mx_live_stats {
    const char *iface;
    uint64_t received, dropped, if_dropped;      /* since the start          */
    uint64_t d_received, d_dropped, d_if_dropped;/* since the last report     */
    uint64_t since_us;           /* wall clock of the last report (or start) */
    uint64_t now_us;
    int final;                   /* the report at the end of the run         */
} mx_live_stats;

typedef void (*mx_live_stats_fn)(void *ctx, const mx_live_stats *st);

/* NULL with one line in err when an interface cannot be opened. */
mx_live *mx_live_open(const mx_live_opts *o, char *err, size_t cap);
/* Returns MX_CAP_OK, or MX_CAP_DAMAGED when reading an interface failed
 * (said on stderr). */
int mx_live_run(mx_live *l, mx_engine *e, const mx_capture_ctl *ctl, mx_live_stats_fn stats, void *sctx);
void mx_live_close(mx_live *l);

/* -D: the interfaces libpcap can open, one per line, numbered as tcpdump
 * numbers them.  0 when there are none or they cannot be listed. */
int mx_live_list(FILE *out, char *err, size_t cap);

#endif
