/* pktdump.c - -w: the packets of the followed connections, to pcap files
 * (capture layer: libpcap writes them). */
#include "mx/capture.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mx_pktdump {
    char path[1024];            /* as given: a name, or a strftime pattern   */
    char cur[1100];             /* the file being written                    */
    uint64_t rotate_bytes;
    unsigned rotate_s;
    int linktype;               /* of the files; -1 until the first packet   */
    uint32_t snaplen;
    pcap_t *dead;
    pcap_dumper_t *d;
    uint64_t bytes;             /* written to the current file               */
    unsigned count;             /* -C: files started so far                  */
    time_t opened;
    uint64_t other_link;        /* packets skipped: another link type        */
    int failed;
};

/* The name of the next file. */
static void next_name(mx_pktdump *w, time_t now)
{
    char base[1024];
    if (w->rotate_s) {
        struct tm tm;
        localtime_r(&now, &tm);
        /* the pattern is the user's -w argument, as tcpdump takes it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        size_t n = strftime(base, sizeof base, w->path, &tm);
#pragma GCC diagnostic pop
        if (!n) snprintf(base, sizeof base, "%s", w->path);
    } else {
        snprintf(base, sizeof base, "%s", w->path);
    }
    if (w->rotate_bytes && w->count) snprintf(w->cur, sizeof w->cur, "%s%u", base, w->count);
    else snprintf(w->cur, sizeof w->cur, "%s", base);
}

static int open_file(mx_pktdump *w, time_t now)
{
    if (w->d) pcap_dump_close(w->d);
    w->d = NULL;
    next_name(w, now);
    w->d = pcap_dump_open(w->dead, w->cur);
    if (!w->d) {
        fprintf(stderr, "mxtrace: -w %s: cannot write: %s\n", w->cur, pcap_geterr(w->dead));
        w->failed = 1;
        return 0;
    }
    w->bytes = 24;
    w->opened = now;
    w->count++;
    return 1;
}

mx_pktdump *mx_pktdump_open(const char *path, uint64_t rotate_bytes, unsigned rotate_s, char *err, size_t cap)
{
    mx_pktdump *w = calloc(1, sizeof *w);
    if (!w) { snprintf(err, cap, "out of memory"); return NULL; }
    snprintf(w->path, sizeof w->path, "%s", path);
    w->rotate_bytes = rotate_bytes;
    w->rotate_s = rotate_s;
    w->linktype = -1;
    /* the first file is made now, so that a bad path is said at the start;
     * its link type is set when the first packet comes (Ethernet until then) */
    w->dead = pcap_open_dead(DLT_EN10MB, 262144);
    if (!w->dead || !open_file(w, time(NULL))) {
        snprintf(err, cap, "-w %s: cannot write: %s", w->cur[0] ? w->cur : path,
                 w->dead ? pcap_geterr(w->dead) : "out of memory");
        if (w->dead) pcap_close(w->dead);
        free(w);
        return NULL;
    }
    w->count = 0;                /* the first packet opens it again, for real */
    return w;
}

/* pcap link types are LINKTYPE_* values; pcap_open_dead takes DLT_*. */
static int dlt_of(int linktype) { return linktype == MX_LINK_RAW ? DLT_RAW : linktype; }

void mx_pktdump_write(mx_pktdump *w, int linktype, uint64_t us, const uint8_t *data,
                      uint32_t caplen, uint32_t len, uint32_t snaplen)
{
    if (!w || w->failed) return;
    time_t now = time(NULL);
    if (w->linktype < 0) {
        /* the files take the first packet's link type and snap length */
        w->linktype = linktype;
        w->snaplen = snaplen ? snaplen : 262144;
        if (w->d) pcap_dump_close(w->d);
        w->d = NULL;
        pcap_close(w->dead);
        w->dead = pcap_open_dead(dlt_of(linktype), (int)(w->snaplen & 0x7FFFFFFF));
        if (!w->dead) { w->failed = 1; fprintf(stderr, "mxtrace: -w %s: out of memory\n", w->path); return; }
        if (!open_file(w, now)) return;
    }
    if (linktype != w->linktype) { w->other_link++; return; }
    if ((w->rotate_bytes && w->bytes + 16 + caplen > w->rotate_bytes && w->bytes > 24) ||
        (w->rotate_s && now - w->opened >= (time_t)w->rotate_s)) {
        if (!open_file(w, now)) return;
    }
    struct pcap_pkthdr h;
    h.ts.tv_sec = (time_t)(us / 1000000u);
    h.ts.tv_usec = (suseconds_t)(us % 1000000u);
    h.caplen = caplen;
    h.len = len < caplen ? caplen : len;
    pcap_dump((u_char *)w->d, &h, data);
    w->bytes += 16 + caplen;
}

void mx_pktdump_flush(mx_pktdump *w)
{
    if (!w || !w->d || w->failed) return;
    if (pcap_dump_flush(w->d) != 0) {
        fprintf(stderr, "mxtrace: -w %s: write failed: %s\n", w->cur, strerror(errno));
        w->failed = 1;
    }
}

int mx_pktdump_ok(const mx_pktdump *w) { return !w || !w->failed; }

void mx_pktdump_close(mx_pktdump *w)
{
    if (!w) return;
    if (w->d) {
        if (!w->failed && pcap_dump_flush(w->d) != 0) {
            fprintf(stderr, "mxtrace: -w %s: write failed: %s\n", w->cur, strerror(errno));
            w->failed = 1;
        }
        pcap_dump_close(w->d);
    }
    if (w->other_link)
        fprintf(stderr, "mxtrace: -w %s: %llu packet%s of another link type than the first not written\n", w->path,
                (unsigned long long)w->other_link, w->other_link == 1 ? "" : "s");
    if (w->dead) pcap_close(w->dead);
    free(w);
}
