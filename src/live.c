/* live.c - sniffing interfaces with libpcap (see live.h). */
#define _GNU_SOURCE 1
#include "mx/live.h"

#include <errno.h>
#include <poll.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

enum { WAKE_MS = 250, PER_DISPATCH = 512 };

typedef struct iface {
    char name[64];
    pcap_t *p;
    int fd;
    int lt;
    uint32_t snaplen;
    int up;                       /* still read                              */
    unsigned last_recv, last_drop, last_ifdrop;   /* libpcap's 32-bit counters */
    uint64_t recv, drop, ifdrop;  /* the same, widened                       */
    uint64_t rep_recv, rep_drop, rep_ifdrop;      /* at the last report       */
} iface;

struct mx_live {
    iface ifs[MX_LIVE_MAX_IFACES];
    int n;
    mx_live_opts o;
    uint64_t frame;
    uint64_t last_report_us;
};

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void close_ifaces(mx_live *l)
{
    for (int i = 0; i < l->n; i++)
        if (l->ifs[i].p) pcap_close(l->ifs[i].p);
    l->n = 0;
}

/* One interface, opened and activated; 0 and a message when it cannot be. */
static int open_iface(mx_live *l, iface *f, const char *name, char *err, size_t cap)
{
    char e[PCAP_ERRBUF_SIZE] = "";
    snprintf(f->name, sizeof f->name, "%s", name);
    f->p = pcap_create(name, e);
    if (!f->p) { snprintf(err, cap, "%s: cannot capture: %s", name, e); return 0; }
    pcap_set_snaplen(f->p, l->o.snaplen);
    pcap_set_promisc(f->p, l->o.promisc);
    pcap_set_timeout(f->p, WAKE_MS);
    if (l->o.buffer_kib > 0) pcap_set_buffer_size(f->p, l->o.buffer_kib * 1024);
    if (l->o.immediate) pcap_set_immediate_mode(f->p, 1);
    if (l->o.nano && pcap_set_tstamp_precision(f->p, PCAP_TSTAMP_PRECISION_NANO) != 0) {
        snprintf(err, cap, "%s: nanosecond timestamps are not available", name);
        return 0;
    }
    int rc = pcap_activate(f->p);
    if (rc < 0) {
        const char *why = rc == PCAP_ERROR ? pcap_geterr(f->p) : pcap_statustostr(rc);
        if (rc == PCAP_ERROR_PERM_DENIED)
            snprintf(err, cap, "%s: cannot capture: %s (run as root, or give mxtrace CAP_NET_RAW and CAP_NET_ADMIN)", name, why);
        else if (rc == PCAP_ERROR_NO_SUCH_DEVICE)
            snprintf(err, cap, "%s: no such interface (mxtrace -D lists them)", name);
        else
            snprintf(err, cap, "%s: cannot capture: %s", name, why);
        return 0;
    }
    if (rc > 0) fprintf(stderr, "mxtrace: %s: %s\n", name, pcap_statustostr(rc));
    f->lt = pcap_datalink(f->p);
    if (!mx_link_supported(f->lt)) {
        const char *ln = pcap_datalink_val_to_name(f->lt);
        snprintf(err, cap, "%s: unsupported link type %d (%s)", name, f->lt, ln ? ln : "unknown");
        return 0;
    }
    f->snaplen = (uint32_t)pcap_snapshot(f->p);
    if (l->o.filter && *l->o.filter) {
        struct bpf_program prog;
        if (pcap_compile(f->p, &prog, l->o.filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
            snprintf(err, cap, "%s: bad filter: %s", name, pcap_geterr(f->p));
            return 0;
        }
        int sr = pcap_setfilter(f->p, &prog);
        pcap_freecode(&prog);
        if (sr != 0) { snprintf(err, cap, "%s: cannot set the filter: %s", name, pcap_geterr(f->p)); return 0; }
    }
    if (pcap_setnonblock(f->p, 1, e) != 0) { snprintf(err, cap, "%s: %s", name, e); return 0; }
    f->fd = pcap_get_selectable_fd(f->p);
    if (f->fd < 0) { snprintf(err, cap, "%s: cannot be waited on", name); return 0; }
    f->up = 1;
    return 1;
}

mx_live *mx_live_open(const mx_live_opts *o, char *err, size_t cap)
{
    mx_live *l = calloc(1, sizeof *l);
    if (!l) { snprintf(err, cap, "out of memory"); return NULL; }
    l->o = *o;
    for (int i = 0; i < o->nifaces && i < MX_LIVE_MAX_IFACES; i++) {
        l->n = i + 1;
        if (!open_iface(l, &l->ifs[i], o->ifaces[i], err, cap)) {
            close_ifaces(l);
            free(l);
            return NULL;
        }
    }
    return l;
}

void mx_live_close(mx_live *l)
{
    if (!l) return;
    close_ifaces(l);
    free(l);
}

typedef struct rd {
    mx_live *l;
    iface *f;
    mx_engine *e;
    const mx_capture_ctl *ctl;
} rd;

static void on_packet(u_char *u, const struct pcap_pkthdr *h, const u_char *data)
{
    rd *r = (rd *)(void *)u;
    uint64_t us = (uint64_t)h->ts.tv_sec * 1000000u +
                  (uint64_t)(r->l->o.nano ? h->ts.tv_usec / 1000 : h->ts.tv_usec);
    uint32_t len = h->len < h->caplen ? h->caplen : h->len;
    mx_input in = { r->f->lt, us, ++r->l->frame, data, h->caplen, len, h->len, (uint32_t)r->f->snaplen, 0 };
    mx_engine_input(r->e, &in);
    if (r->ctl->stop && *r->ctl->stop) pcap_breakloop(r->f->p);
}

/* libpcap's counters are 32 bits wide and may wrap on a busy link. */
static void update_counters(iface *f)
{
    struct pcap_stat ps;
    if (pcap_stats(f->p, &ps) != 0) return;
    f->recv += (unsigned)(ps.ps_recv - f->last_recv);
    f->drop += (unsigned)(ps.ps_drop - f->last_drop);
    f->ifdrop += (unsigned)(ps.ps_ifdrop - f->last_ifdrop);
    f->last_recv = ps.ps_recv;
    f->last_drop = ps.ps_drop;
    f->last_ifdrop = ps.ps_ifdrop;
}

static void report(mx_live *l, mx_live_stats_fn fn, void *ctx, uint64_t now, int final)
{
    for (int i = 0; i < l->n; i++) {
        iface *f = &l->ifs[i];
        if (f->up) update_counters(f);
        mx_live_stats st = {
            .iface = f->name,
            .received = f->recv, .dropped = f->drop, .if_dropped = f->ifdrop,
            .d_received = f->recv - f->rep_recv, .d_dropped = f->drop - f->rep_drop,
            .d_if_dropped = f->ifdrop - f->rep_ifdrop,
            .since_us = l->last_report_us, .now_us = now, .final = final,
        };
        f->rep_recv = f->recv;
        f->rep_drop = f->drop;
        f->rep_ifdrop = f->ifdrop;
        if (fn) fn(ctx, &st);
    }
    l->last_report_us = now;
}

int mx_live_run(mx_live *l, mx_engine *e, const mx_capture_ctl *ctl, mx_live_stats_fn stats, void *sctx)
{
    struct pollfd pf[MX_LIVE_MAX_IFACES];
    int rc = MX_CAP_OK;
    uint64_t interval = (uint64_t)l->o.stats_interval_s * 1000000u;
    l->last_report_us = wall_us();
    for (;;) {
        if (ctl->stop && *ctl->stop) break;
        int np = 0, up = 0;
        for (int i = 0; i < l->n; i++) {
            pf[i].fd = l->ifs[i].up ? l->ifs[i].fd : -1;
            pf[i].events = POLLIN;
            pf[i].revents = 0;
            np = i + 1;
            up += l->ifs[i].up;
        }
        if (!up) break;
        int pr = poll(pf, (nfds_t)np, WAKE_MS);
        if (pr < 0 && errno != EINTR) {
            fprintf(stderr, "mxtrace: waiting for packets failed: %s\n", strerror(errno));
            rc = MX_CAP_DAMAGED;
            break;
        }
        for (int i = 0; i < l->n && !(ctl->stop && *ctl->stop); i++) {
            iface *f = &l->ifs[i];
            if (!f->up) continue;
            /* TPACKET_V3 hands blocks over on its timeout even when poll
             * said nothing: read every interface at every wake-up */
            rd r = { l, f, e, ctl };
            int n;
            do n = pcap_dispatch(f->p, PER_DISPATCH, on_packet, (u_char *)&r);
            while (n == PER_DISPATCH && !(ctl->stop && *ctl->stop));
            if (n == PCAP_ERROR) {
                fprintf(stderr, "mxtrace: %s: reading failed: %s\n", f->name, pcap_geterr(f->p));
                f->up = 0;
                rc = MX_CAP_DAMAGED;
            }
        }
        uint64_t now = wall_us();
        mx_engine_tick(e, now);
        if (ctl->dump) mx_pktdump_flush(ctl->dump);
        if (ctl->batch && !ctl->batch(ctl->ctx)) break;
        if (interval && now - l->last_report_us >= interval) report(l, stats, sctx, now, 0);
    }
    report(l, stats, sctx, wall_us(), 1);
    return rc;
}

int mx_live_list(FILE *out, char *err, size_t cap)
{
    pcap_if_t *all = NULL;
    char e[PCAP_ERRBUF_SIZE] = "";
    if (pcap_findalldevs(&all, e) != 0) { snprintf(err, cap, "cannot list interfaces: %s", e); return 0; }
    int n = 0;
    for (pcap_if_t *d = all; d; d = d->next) {
        fprintf(out, "%d.%s", ++n, d->name);
        if (d->description) fprintf(out, " (%s)", d->description);
        const char *sep = " [";
        if (d->flags & PCAP_IF_UP) { fprintf(out, "%sUp", sep); sep = ", "; }
        if (d->flags & PCAP_IF_RUNNING) { fprintf(out, "%sRunning", sep); sep = ", "; }
        if (d->flags & PCAP_IF_WIRELESS) { fprintf(out, "%sWireless", sep); sep = ", "; }
        if (d->flags & PCAP_IF_LOOPBACK) { fprintf(out, "%sLoopback", sep); sep = ", "; }
        switch (d->flags & PCAP_IF_CONNECTION_STATUS) {
        case PCAP_IF_CONNECTION_STATUS_CONNECTED: fprintf(out, "%sConnected", sep); sep = ", "; break;
        case PCAP_IF_CONNECTION_STATUS_DISCONNECTED: fprintf(out, "%sDisconnected", sep); sep = ", "; break;
        case PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE:
            if (!(d->flags & PCAP_IF_LOOPBACK)) { fprintf(out, "%sNone", sep); sep = ", "; }
            break;
        default: break;
        }
        if (sep[0] == ',') fputc(']', out);
        fputc('\n', out);
    }
    pcap_freealldevs(all);
    if (!n) snprintf(err, cap, "no interface can be captured on (run as root, or give mxtrace CAP_NET_RAW)");
    return n;
}
