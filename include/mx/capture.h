/* capture.h - reading capture files (the only module that uses libpcap).
 *
 * mx_capture_run() reads the files (pcap, pcap-ns or pcapng; "-" is standard
 * input), applies the optional BPF filter and hands every packet to the
 * engine with its own capture time and a frame number that runs on across
 * files.  Files are read one after the other in the order given, or, with
 * merge, all at once, packet by packet in time order (as mergecap merges
 * them).  Problems are reported on stderr as one line naming the file; the
 * return value says how bad the worst was.
 *
 * pcap files go through libpcap.  pcapng files go through the small block
 * reader below: libpcap 1.10 gives one link type per file and refuses a
 * pcapng whose interfaces differ (mergecap output, an interface declared
 * later on), while each interface has its own link type and time resolution.
 * libwiretap (Debian's libwiretap-dev) would read them too, but it is
 * Wireshark's internal library: GLib, a set-up of its own, an interface that
 * changes with every release, its own encapsulation numbers; the part of the
 * format mxtrace needs is a few hundred bounds-checked lines.
 */
#ifndef MX_CAPTURE_H
#define MX_CAPTURE_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "mx/engine.h"

typedef struct mx_pktdump mx_pktdump;

/* What a reading loop answers to, besides the packets. */
typedef struct mx_capture_ctl {
    volatile sig_atomic_t *stop;    /* set (by a signal): stop reading now    */
    /* After each batch of packets (and on a quiet link, at each wake-up):
     * flush what must be seen now; 0 stops the run (an output failed). */
    int (*batch)(void *ctx);
    void *ctx;
    mx_pktdump *dump;               /* -w (mx_engine_set_dump writes to it)    */
    /* A pipe has nothing to read for now (NULL: nothing to do). */
    void (*idle)(void *ctx);
} mx_capture_ctl;

enum mx_capture_rc {
    MX_CAP_OK = 0,
    MX_CAP_DAMAGED = 3,     /* a file ended early or held a bad record      */
    MX_CAP_UNREADABLE = 2,  /* a file could not be opened or is not a capture */
};

/* show_progress: print progress on stderr while reading files over 64 MiB.
 * merge: read the files side by side in time order instead of one by one. */
int mx_capture_run(mx_engine *e, const char *const *files, int nfiles,
                   const char *filter, int show_progress, int merge,
                   const mx_capture_ctl *ctl);

/* --- -w: writing the followed packets to pcap files ----------------------
 *
 * Files in libpcap's format with the link type and snap length of the
 * first packet written; packets of another link type are counted and
 * skipped.  rotate_bytes (-C) starts FILE1, FILE2, ... once a file is that
 * large; rotate_s (-G) starts a new file every rotate_s seconds, its name
 * FILE formatted by strftime (local time), as tcpdump does. */
mx_pktdump *mx_pktdump_open(const char *path, uint64_t rotate_bytes, unsigned rotate_s, char *err, size_t cap);
void mx_pktdump_write(mx_pktdump *d, int linktype, uint64_t us, const uint8_t *data,
                      uint32_t caplen, uint32_t len, uint32_t snaplen);
void mx_pktdump_flush(mx_pktdump *d);
/* 0 once a write failed (said on stderr then). */
int mx_pktdump_ok(const mx_pktdump *d);
void mx_pktdump_close(mx_pktdump *d);

/* --- pcapng block reader ------------------------------------------------
 *
 * Section header blocks in either byte order (each starts a new section
 * with its own interfaces), interface description blocks (link type, snap
 * length, if_tsresol, if_tsoffset), enhanced, simple and obsolete packet
 * blocks; every other block is skipped.  Every length is checked against
 * its block before use.  Reads from a FILE (any stream: stdin, fmemopen);
 * the bytes of a packet stay valid until the next call. */

typedef struct mx_pcapng mx_pcapng;

typedef struct mx_pcapng_pkt {
    uint64_t us;            /* capture time, µs since the epoch           */
    const uint8_t *data;
    uint32_t caplen, len;   /* captured and original length              */
    int linktype;           /* of the packet's interface                  */
    uint32_t iface;         /* interface number in the file, counted over
                               every section from 0                       */
    uint32_t snaplen;       /* the interface's snap length (0 = none)     */
} mx_pcapng_pkt;

enum mx_pcapng_rc {
    MX_NG_PACKET = 1,       /* *out holds a packet                        */
    MX_NG_END = 0,          /* the file ended at a block boundary         */
    MX_NG_DAMAGED = -1,     /* a truncated or impossible block            */
    MX_NG_NOT_PCAPNG = -2,  /* no complete section header at the start    */
};

#define MX_PCAPNG_MAGIC 0x0A0D0D0Au      /* first four bytes of the file */
#define MX_PCAPNG_MAX_BLOCK (16u << 20)  /* larger blocks are refused    */

/* pre/npre: bytes already read from the start of f (the magic that told
 * the file's format), at most 8. */
mx_pcapng *mx_pcapng_new(FILE *f, const uint8_t *pre, size_t npre);
int mx_pcapng_next(mx_pcapng *r, mx_pcapng_pkt *out);
/* Why the last call failed, for a message. */
const char *mx_pcapng_error(const mx_pcapng *r);
/* Bytes consumed so far (progress). */
uint64_t mx_pcapng_offset(const mx_pcapng *r);
void mx_pcapng_free(mx_pcapng *r);

#endif
