/* limits.c - default caps (documented in README, "Limits"). */
#include "mx/limits.h"

void mx_limits_default(mx_limits *l)
{
    l->max_flows = 100000;
    l->idle_timeout_s = 300;
    l->max_ooo_bytes = 256 * 1024;
    l->max_ooo_segs = 512;
    l->ack_wait_packets = 32;
    l->ack_wait_ms = 100;
    l->max_lingering = 1024;
    l->max_line = 4096;
    l->max_hold = 16 * 1024;
    l->memcap = 256ull << 20;
    l->max_events = 10000;
    l->max_pending = 128;
    l->max_field = 1024;
    l->max_headers = 200;
    l->max_mime_parts = 64;
    l->max_tls_msg = 64 * 1024;
    l->ndpi_packets = 32;
}
