/* capture.c - libpcap adapter (see capture.h). */
#include "mx/capture.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int worse(int a, int b)
{
    /* UNREADABLE (2) stops a file from being read at all; DAMAGED (3) means
     * part of it was read.  Report the higher number. */
    return a > b ? a : b;
}

/* Progress on stderr for big files: share of the file read so far. */
#define PROGRESS_MIN_BYTES (64ll << 20)

static void progress(pcap_t *p, const char *name, long long size, uint64_t frame, time_t *last)
{
    time_t now = time(NULL);
    if (now == *last) return;
    *last = now;
    FILE *f = pcap_file(p);
    long pos = f ? ftell(f) : -1;
    if (pos < 0) return;
    fprintf(stderr, "\rmxtrace: %s: %3lld%% (%llu packets)", name, (long long)pos * 100 / size,
            (unsigned long long)frame);
}

static int run_one(mx_engine *e, const char *path, const char *filter, uint64_t *frame, int show)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    const char *name = strcmp(path, "-") == 0 ? "(stdin)" : path;
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) != 0) {
        fprintf(stderr, "mxtrace: %s: cannot open: %s\n", name, strerror(errno));
        return MX_CAP_UNREADABLE;
    }
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, err);
    if (!p) {
        const char *why = err;
        if (strstr(err, "unknown file format") || strstr(err, "bad dump file format"))
            why = "not a pcap or pcapng capture";
        else if (strstr(err, "truncated dump file"))
            why = "file ends inside its header";
        fprintf(stderr, "mxtrace: %s: cannot read: %s\n", name, why);
        return MX_CAP_UNREADABLE;
    }
    int lt = pcap_datalink(p);
    if (!mx_link_supported(lt)) {
        const char *ln = pcap_datalink_val_to_name(lt);
        fprintf(stderr, "mxtrace: %s: unsupported link type %d (%s)\n", name, lt, ln ? ln : "unknown");
        pcap_close(p);
        return MX_CAP_UNREADABLE;
    }
    /* The filter is applied packet by packet (not with pcap_setfilter) so
     * that frame numbers count every record, as Wireshark numbers them. */
    struct bpf_program prog;
    int filtered = filter && *filter;
    if (filtered && pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        fprintf(stderr, "mxtrace: %s: bad filter: %s\n", name, pcap_geterr(p));
        pcap_close(p);
        return MX_CAP_UNREADABLE;
    }
    int rc = MX_CAP_OK;
    long long size = strcmp(path, "-") != 0 ? (long long)st.st_size : 0;
    int show_progress = show && size >= PROGRESS_MIN_BYTES;
    time_t last = time(NULL);
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int r = pcap_next_ex(p, &h, &data);
        if (r == 1) {
            ++*frame;
            if (filtered && !pcap_offline_filter(&prog, h, data)) continue;
            uint64_t us = (uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec;
            uint32_t caplen = h->caplen, len = h->len < h->caplen ? h->caplen : h->len;
            mx_engine_packet(e, lt, us, data, caplen, len, *frame);
            if (show_progress && (*frame & 0xFFFF) == 0) progress(p, name, size, *frame, &last);
            continue;
        }
        if (r == PCAP_ERROR_BREAK) break;        /* end of file */
        fprintf(stderr, "mxtrace: %s: damaged capture after packet %llu: %s\n", name,
                (unsigned long long)*frame, pcap_geterr(p));
        rc = MX_CAP_DAMAGED;
        break;
    }
    if (show_progress) fprintf(stderr, "\r%*s\r", 70, "");
    if (filtered) pcap_freecode(&prog);
    pcap_close(p);
    return rc;
}

int mx_capture_run(mx_engine *e, const char *const *files, int nfiles,
                   const char *filter, int show_progress)
{
    int rc = MX_CAP_OK;
    uint64_t frame = 0;
    for (int i = 0; i < nfiles; i++) rc = worse(rc, run_one(e, files[i], filter, &frame, show_progress));
    return rc;
}
