/* capture.h - reading capture files (the only module that uses libpcap).
 *
 * mx_capture_run() reads each file in turn (pcap, pcap-ns or pcapng; "-" is
 * standard input), applies the optional BPF filter and hands every packet to
 * the engine with a frame number that runs on across files.  Problems are
 * reported on stderr as one line naming the file; the return value says how
 * bad the worst was.
 */
#ifndef MX_CAPTURE_H
#define MX_CAPTURE_H

#include "mx/engine.h"

enum mx_capture_rc {
    MX_CAP_OK = 0,
    MX_CAP_DAMAGED = 3,     /* a file ended early or held a bad record      */
    MX_CAP_UNREADABLE = 2,  /* a file could not be opened or is not a capture */
};

/* show_progress: print progress on stderr while reading files over 64 MiB. */
int mx_capture_run(mx_engine *e, const char *const *files, int nfiles,
                   const char *filter, int show_progress);

#endif
