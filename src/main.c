/* main.c - command line. */
#include "mx/capture.h"
#include "mx/config.h"
#include "mx/engine.h"
#include "mx/keylog.h"
#include "mx/evtype.h"
#include "mx/live.h"
#include "mx/output.h"
#include "mx/sink.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MX_VERSION "0.1.0"

enum { EXIT_USAGE = 1, EXIT_INPUT = 2, EXIT_OUTPUT = 4, EXIT_PRIV = 5 };

static void usage(FILE *f)
{
    fputs(
"usage: mxtrace -r FILE [-r FILE ...] [options] [BPF filter]\n"
"       mxtrace -i IFACE [-i IFACE ...] [options] [BPF filter]\n"
"       mxtrace -D\n"
"\n"
"Follows every TCP connection on the mail ports and writes, per connection,\n"
"a time-ordered JSON story of SMTP commands and replies, STARTTLS, TLS and\n"
"TCP events.\n"
"\n"
"input:\n"
"  -r FILE             capture to read (pcap, pcap-ns, pcapng; - = stdin);\n"
"                      repeat to read several files as one stream, one\n"
"                      after the other in the order given\n"
"      --merge         read the -r files side by side in time order, as\n"
"                      mergecap merges them (frame numbers in that order)\n"
"  -i IFACE            sniff this interface (repeat for several); needs root\n"
"                      or CAP_NET_RAW+CAP_NET_ADMIN.  Sessions are written\n"
"                      as they end; SIGINT/SIGTERM end the run (open\n"
"                      sessions written, reason shutdown); SIGHUP reopens\n"
"                      output files.  The kernel filter is the followed\n"
"                      ports and UDP 53; a BPF filter given is added to it\n"
"  -D                  list the interfaces -i can open\n"
"  -s, --snaplen N     bytes kept of each packet (default 262144)\n"
"  -B, --buffer-size KIB  kernel buffer per interface (default 32768)\n"
"      --no-promisc    do not put the interfaces in promiscuous mode\n"
"      --immediate     hand each packet over at once (lowest latency)\n"
"      --tstamp-precision micro|nano  timestamps asked of the kernel\n"
"      --stats-interval SEC  capture.stats events every SEC seconds\n"
"                      (default 60; 0: only at the end)\n"
"  -Z USER             after opening the interfaces and outputs, drop root\n"
"                      for USER (its groups, gid, uid); refuse to run on\n"
"                      as root if that fails\n"
"      --chroot DIR    chroot to DIR before dropping root (with -Z)\n"
"  -w FILE             also write the packets of the followed sessions (and\n"
"                      DNS answers) to FILE, in pcap format\n"
"  -C MB               -w: start FILE1, FILE2, ... each MB million bytes\n"
"  -G SEC              -w: a new file every SEC seconds, FILE a strftime\n"
"                      pattern (e.g. mail-%Y%m%d-%H%M.pcap)\n"
"  -p, --port N[,N]    also follow these server ports (default 25,587,465)\n"
"      --tls-port N[,N] ports where TLS starts at once (default 465)\n"
"      --any-port      also follow connections on other ports that nDPI\n"
"                      recognises as SMTP or TLS\n"
"output:\n"
"  -F FORMAT           timeline (default): one JSON document per session\n"
"                      ndjson: one JSON event per line\n"
"                      text: a readable story per session, with its verdict\n"
"                      summary: one line per session\n"
"                      html: a self-contained report (use with -o)\n"
"                      tlsrpt: RFC 8460 TLS reports, one per recipient domain,\n"
"                      at the end of the run\n"
"                      ecs: one Elastic Common Schema 8.x event per line\n"
"  -o FILE             write to FILE instead of standard output\n"
"      --output KIND:TARGET[,key=value...]\n"
"                      also write to an output, in its own format; repeat\n"
"                      for several.  KIND: file, unix, unix-dgram,\n"
"                      syslog-udp, syslog-tcp, redis.  keys: format= (ndjson,\n"
"                      timeline, ecs, text, summary, html, tlsrpt; default\n"
"                      ndjson),\n"
"                      schema=ecs; file: rotate-size=, rotate-time=; network:\n"
"                      queue-size=, drop=newest|oldest, flush=, backoff-max=;\n"
"                      syslog: facility=, severity=, app-name=; redis:\n"
"                      mode=list|channel|stream, key=, push=rpush|lpush,\n"
"                      maxlen=.  With --output and no -F/-o, nothing goes\n"
"                      to standard output.  See the README, Outputs.\n"
"      --schema S      native (default) or ecs: -F ndjson in ECS (= -F ecs)\n"
"      --config FILE   a JSON file whose \"outputs\" array holds outputs as\n"
"                      objects: {\"kind\", \"target\", and the keys above}\n"
"      --pretty        indent timeline JSON\n"
"      --color WHEN    colours in text/summary: auto (default), always, never\n"
"      --show-user     write AUTH user names (passwords are never written)\n"
"      --attempt-window S  connections of one client to one destination at most\n"
"                      S seconds apart are one delivery attempt (1800; 0: none)\n"
"      --keylog FILE   TLS secrets in the NSS key log format (SSLKEYLOGFILE):\n"
"                      TLS 1.3 handshakes they belong to are decrypted\n"
"      --stats         print packet counters on stderr at the end\n"
"      --no-ndpi       do not classify flows with nDPI\n"
"      --ndpi-tls      let nDPI dissect TLS too, for its TLS risks: after\n"
"                      STARTTLS (session.end's ndpi.after_starttls) and the\n"
"                      ClientHello on port 465; slower\n"
"      --no-ndpi-tls   nDPI stops at its label and sees no TLS (the default)\n"
"      --workers N     N threads dissect, each its share of the connections\n"
"                      (by a keyed hash of addresses, ports and VLAN ids);\n"
"                      the output of a file is the same whatever N (1-64,\n"
"                      default 1: one thread)\n"
"      --progress      progress on stderr for files over 64 MiB (default when\n"
"                      stderr is a terminal)\n"
"limits (reaching one is an event in the output):\n"
"      --max-flows N --idle-timeout SEC --max-ooo-bytes N --max-ooo-segs N\n"
"      --max-line N --max-hold N --max-events N --max-pending N --memcap SIZE\n"
"      --max-field N --max-mime-parts N --max-tls-msg N --ndpi-packets N\n"
"      --ack-wait-packets N --ack-wait-ms MS --max-lingering N\n"
"      --list-event-types  the event types, one per line: name, ECS\n"
"                      event.category and event.type, summary (tab-separated)\n"
"  -h, --help          this text\n"
"  -V, --version       version\n"
"\n"
"exit status: 0 ok (also after SIGINT/SIGTERM, and when the reader of\n"
"standard output went away); 1 bad usage; 2 an input could not be read\n"
"(a file, an interface); 3 an input was damaged or reading an interface\n"
"failed (what came before is written); 4 output failed; 5 root could not\n"
"be dropped (-Z).\n", f);
}

static void on_hup(int sig) { (void)sig; mx_output_reopen_all(); }

/* SIGINT, SIGTERM: the reading loops stop at their next look (a packet, a
 * batch, a wake-up); a second signal ends the process at once. */
static volatile sig_atomic_t stop_flag;
static void on_stop(int sig)
{
    stop_flag = sig;
    signal(sig, SIG_DFL);
}

static void handle(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* After each batch of packets: outputs that must be seen now are flushed,
 * and a failed one is told at once and stops the run. */
typedef struct batch_ctx {
    mx_sink *sink;
    int flush;
    mx_engine *eng;
    int live;
} batch_ctx;

static int on_batch(void *ctx)
{
    batch_ctx *b = ctx;
    /* with workers: what they made is written (live: all of it, now) */
    mx_engine_sync(b->eng, b->live);
    return mx_sink_flush(b->sink, b->flush);
}

/* The input has nothing to read for now: everything read so far is
 * dissected and written. */
static void on_idle(void *ctx)
{
    batch_ctx *b = ctx;
    mx_engine_sync(b->eng, 1);
    mx_sink_flush(b->sink, b->flush);
}

/* capture.stats (and capture.loss when drops rose) into every output. */
typedef struct stats_ctx {
    mx_sink *sink;
    int to_stderr;
    mx_engine *eng;
} stats_ctx;

static void on_capture_stats(void *ctx, const mx_live_stats *st)
{
    stats_ctx *c = ctx;
    char line[512];
    mx_engine_sync(c->eng, 1);          /* after what the packets so far made */
    snprintf(line, sizeof line, "capture.stats: %s received %llu, dropped %llu by the kernel, %llu by the interface%s",
             st->iface, (unsigned long long)st->received, (unsigned long long)st->dropped,
             (unsigned long long)st->if_dropped, st->final ? " (end of the run)" : "");
    mx_ev *ev = mx_sink_run_begin(c->sink, MX_EV_CAPTURE_STATS);
    mx_ev_str(ev, "interface", st->iface);
    mx_ev_int(ev, "received", (int64_t)st->received);
    mx_ev_int(ev, "dropped", (int64_t)st->dropped);
    mx_ev_int(ev, "if_dropped", (int64_t)st->if_dropped);
    mx_ev_bool(ev, "final", st->final);
    mx_sink_run_end(c->sink, ev, line);
    if (c->to_stderr) fprintf(stderr, "mxtrace: %s\n", line);
    if (st->d_dropped || st->d_if_dropped) {
        char since[40];
        mx_iso_time(st->since_us, since, sizeof since);
        snprintf(line, sizeof line, "capture.loss: %s dropped %llu packets in the kernel and %llu in the interface "
                 "since %s (%llu received)", st->iface, (unsigned long long)st->d_dropped,
                 (unsigned long long)st->d_if_dropped, since, (unsigned long long)st->d_received);
        ev = mx_sink_run_begin(c->sink, MX_EV_CAPTURE_LOSS);
        mx_ev_str(ev, "interface", st->iface);
        mx_ev_str(ev, "since", since);
        mx_ev_int(ev, "received", (int64_t)st->d_received);
        mx_ev_int(ev, "dropped", (int64_t)st->d_dropped);
        mx_ev_int(ev, "if_dropped", (int64_t)st->d_if_dropped);
        mx_sink_run_end(c->sink, ev, line);
        fprintf(stderr, "mxtrace: %s\n", line);
    }
}

/* The process's peak resident memory (VmHWM: its own, not what a parent
 * had before exec, as getrusage's ru_maxrss may say); 0 if unknown. */
static unsigned long long peak_memory_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* -Z: root is given up for user (and its groups) after the interfaces and
 * outputs are open; --chroot first.  0 (said) when it cannot be. */
static int drop_root(const char *user, const char *dir)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) { fprintf(stderr, "mxtrace: -Z %s: no such user\n", user); return 0; }
    if (dir && (chroot(dir) != 0 || chdir("/") != 0)) {
        fprintf(stderr, "mxtrace: --chroot %s: %s\n", dir, strerror(errno));
        return 0;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "mxtrace: -Z %s: cannot drop root: %s\n", user, strerror(errno));
        return 0;
    }
    if (pw->pw_uid != 0 && (getuid() == 0 || geteuid() == 0 || setuid(0) == 0)) {
        fprintf(stderr, "mxtrace: -Z %s: still root after dropping it: refusing to go on\n", user);
        return 0;
    }
    return 1;
}

/* The kernel filter of a live run: the followed ports (every TCP port with
 * --any-port) and DNS answers, VLAN-tagged or not, and the user's. */
static char *live_filter(const mx_engine_cfg *cfg, const char *user)
{
    char base[2048];
    size_t n = 0;
    if (cfg->any_port) {
        n = (size_t)snprintf(base, sizeof base, "tcp or udp port 53");
    } else {
        for (int i = 0; i < cfg->nports; i++)
            n += (size_t)snprintf(base + n, sizeof base - n, "%stcp port %u", n ? " or " : "", cfg->ports[i]);
        for (int i = 0; i < cfg->ntls_ports; i++)
            n += (size_t)snprintf(base + n, sizeof base - n, " or tcp port %u", cfg->tls_ports[i]);
        snprintf(base + n, sizeof base - n, " or udp port 53");
    }
    size_t cap = 2 * strlen(base) + (user ? strlen(user) : 0) + 64;
    char *f = malloc(cap);
    if (!f) return NULL;
    if (user && *user) snprintf(f, cap, "((%s) or (vlan and (%s))) and (%s)", base, base, user);
    else snprintf(f, cap, "(%s) or (vlan and (%s))", base, base);
    return f;
}

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < min || v > UINT32_MAX) {
        fprintf(stderr, "mxtrace: %s: bad value '%s'\n", opt, s);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

/* N, NK, NM or NG (powers of 1024), at least 64 KiB. */
static int parse_size(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10;
    else if (*end == 'M' || *end == 'm') shift = 20;
    else if (*end == 'G' || *end == 'g') shift = 30;
    if (shift) end++;
    if (errno || end == s || *end || v > (1ull << 40) || (v << shift) < (64u << 10)) {
        fprintf(stderr, "mxtrace: %s: bad size '%s' (bytes, or with K, M, G; at least 64K)\n", opt, s);
        return 0;
    }
    *out = (uint64_t)v << shift;
    return 1;
}

static int add_ports(const char *s, uint16_t *ports, int *n, int max)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t v;
        if (!parse_u32("--port", tok, 1, &v) || v > 65535) return 0;
        if (*n >= max) { fprintf(stderr, "mxtrace: too many ports\n"); return 0; }
        ports[(*n)++] = (uint16_t)v;
    }
    return 1;
}

int main(int argc, char **argv)
{
    enum { O_PRETTY = 256, O_COLOR, O_PROGRESS, O_NONDPI, O_ANYPORT, O_NDPIPKTS, O_SHOWUSER, O_TLSPORT, O_STATS, O_MERGE, O_MAXFLOWS, O_IDLE,
           O_OOOB, O_OOOS, O_LINE, O_HOLD, O_EVENTS, O_PENDING, O_FIELD, O_PARTS, O_TLSMSG,
           O_ACKPKTS, O_ACKMS, O_LINGER, O_EVTYPES, O_OUTPUT, O_SCHEMA, O_CONFIG,
           O_NOPROMISC, O_IMMEDIATE, O_TSPREC, O_STATSIV, O_CHROOT, O_MEMCAP, O_NONDPITLS, O_NDPITLS, O_WORKERS, O_KEYLOG, O_ATTWIN };
    static const struct option lo[] = {
        { "port", required_argument, 0, 'p' },
        { "tls-port", required_argument, 0, O_TLSPORT },
        { "pretty", no_argument, 0, O_PRETTY },
        { "color", required_argument, 0, O_COLOR },
        { "progress", no_argument, 0, O_PROGRESS },
        { "show-user", no_argument, 0, O_SHOWUSER },
        { "no-ndpi", no_argument, 0, O_NONDPI },
        { "any-port", no_argument, 0, O_ANYPORT },
        { "ndpi-packets", required_argument, 0, O_NDPIPKTS },
        { "stats", no_argument, 0, O_STATS },
        { "merge", no_argument, 0, O_MERGE },
        { "max-flows", required_argument, 0, O_MAXFLOWS },
        { "idle-timeout", required_argument, 0, O_IDLE },
        { "max-ooo-bytes", required_argument, 0, O_OOOB },
        { "max-ooo-segs", required_argument, 0, O_OOOS },
        { "ack-wait-packets", required_argument, 0, O_ACKPKTS },
        { "ack-wait-ms", required_argument, 0, O_ACKMS },
        { "max-lingering", required_argument, 0, O_LINGER },
        { "max-line", required_argument, 0, O_LINE },
        { "max-hold", required_argument, 0, O_HOLD },
        { "max-events", required_argument, 0, O_EVENTS },
        { "max-pending", required_argument, 0, O_PENDING },
        { "max-field", required_argument, 0, O_FIELD },
        { "max-mime-parts", required_argument, 0, O_PARTS },
        { "max-tls-msg", required_argument, 0, O_TLSMSG },
        { "list-event-types", no_argument, 0, O_EVTYPES },
        { "output", required_argument, 0, O_OUTPUT },
        { "schema", required_argument, 0, O_SCHEMA },
        { "config", required_argument, 0, O_CONFIG },
        { "snaplen", required_argument, 0, 's' },
        { "buffer-size", required_argument, 0, 'B' },
        { "no-promisc", no_argument, 0, O_NOPROMISC },
        { "immediate", no_argument, 0, O_IMMEDIATE },
        { "tstamp-precision", required_argument, 0, O_TSPREC },
        { "stats-interval", required_argument, 0, O_STATSIV },
        { "chroot", required_argument, 0, O_CHROOT },
        { "memcap", required_argument, 0, O_MEMCAP },
        { "keylog", required_argument, 0, O_KEYLOG },
        { "attempt-window", required_argument, 0, O_ATTWIN },
        { "workers", required_argument, 0, O_WORKERS },
        { "no-ndpi-tls", no_argument, 0, O_NONDPITLS },
        { "ndpi-tls", no_argument, 0, O_NDPITLS },
        { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },
        { 0, 0, 0, 0 },
    };
    static mx_engine_cfg cfg;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    int nfiles = 0, stats = 0, merge = 0, color = -1, progress = -1, list_ifaces = 0;
    static mx_live_opts lopt = { .snaplen = 262144, .buffer_kib = 32768, .promisc = 1, .stats_interval_s = 60 };
    const char *zuser = NULL, *chroot_dir = NULL, *wpath = NULL, *keylog_path = NULL;
    uint32_t w_mb = 0, w_secs = 0;
    const char *outpath = NULL;
    mx_format fmt = MX_FMT_TIMELINE;
    int fmt_given = 0, ecs_schema = 0;
    enum { MAX_OUTPUTS = 15 };
    static mx_output_spec specs[MAX_OUTPUTS];
    int nspecs = 0;
    char perr[600];
    mx_limits *L = &cfg.opt.lim;

    if (!files) return EXIT_USAGE;
    mx_limits_default(L);
    cfg.opt.attempt_window_us = 1800ull * 1000000u;
    cfg.ports[cfg.nports++] = 25;
    cfg.ports[cfg.nports++] = 587;
    int tls_ports_given = 0;

    int c;
    while ((c = getopt_long(argc, argv, "r:F:o:p:hVi:Ds:B:Z:w:C:G:", lo, NULL)) != -1) {
        int ok = 1;
        uint32_t u;
        switch (c) {
        case 'r': files[nfiles++] = optarg; break;
        case 'i':
            if (lopt.nifaces == MX_LIVE_MAX_IFACES) { fprintf(stderr, "mxtrace: -i: at most %d interfaces\n", MX_LIVE_MAX_IFACES); ok = 0; break; }
            lopt.ifaces[lopt.nifaces++] = optarg;
            break;
        case 'D': list_ifaces = 1; break;
        case 's': ok = parse_u32("-s", optarg, 64, &u) && u <= 262144; if (ok) lopt.snaplen = (int)u; else fprintf(stderr, "mxtrace: -s: 64 to 262144\n"); break;
        case 'B': ok = parse_u32("-B", optarg, 1, &u) && u <= 4u << 20; if (ok) lopt.buffer_kib = (int)u; else fprintf(stderr, "mxtrace: -B: 1 to 4194304 KiB\n"); break;
        case O_NOPROMISC: lopt.promisc = 0; break;
        case O_IMMEDIATE: lopt.immediate = 1; break;
        case O_TSPREC:
            if (!strcmp(optarg, "nano")) lopt.nano = 1;
            else if (!strcmp(optarg, "micro")) lopt.nano = 0;
            else { fprintf(stderr, "mxtrace: --tstamp-precision: micro or nano\n"); ok = 0; }
            break;
        case O_STATSIV: ok = parse_u32("--stats-interval", optarg, 0, &lopt.stats_interval_s); break;
        case 'Z': zuser = optarg; break;
        case O_CHROOT: chroot_dir = optarg; break;
        case 'w': wpath = optarg; break;
        case 'C': ok = parse_u32("-C", optarg, 1, &w_mb); break;
        case 'G': ok = parse_u32("-G", optarg, 1, &w_secs); break;
        case 'F':
            fmt_given = 1;
            if (strcmp(optarg, "timeline") == 0) fmt = MX_FMT_TIMELINE;
            else if (strcmp(optarg, "ndjson") == 0) fmt = MX_FMT_NDJSON;
            else if (strcmp(optarg, "text") == 0) fmt = MX_FMT_TEXT;
            else if (strcmp(optarg, "summary") == 0) fmt = MX_FMT_SUMMARY;
            else if (strcmp(optarg, "html") == 0) fmt = MX_FMT_HTML;
            else if (strcmp(optarg, "ecs") == 0) fmt = MX_FMT_ECS;
            else if (strcmp(optarg, "tlsrpt") == 0) fmt = MX_FMT_TLSRPT;
            else { fprintf(stderr, "mxtrace: -F: unknown format '%s' (timeline, ndjson, text, summary, html, ecs, tlsrpt)\n", optarg); ok = 0; }
            break;
        case 'o': outpath = optarg; break;
        case O_OUTPUT:
            if (nspecs == MAX_OUTPUTS) { fprintf(stderr, "mxtrace: --output: at most %d outputs\n", MAX_OUTPUTS); ok = 0; break; }
            ok = mx_output_parse(optarg, &specs[nspecs], perr, sizeof perr);
            if (!ok) fprintf(stderr, "mxtrace: %s\n", perr);
            else nspecs++;
            break;
        case O_CONFIG:
            ok = mx_config_outputs(optarg, specs, &nspecs, MAX_OUTPUTS, perr, sizeof perr);
            if (!ok) fprintf(stderr, "mxtrace: --config %s\n", perr);
            break;
        case O_SCHEMA:
            if (!strcmp(optarg, "ecs")) ecs_schema = 1;
            else if (!strcmp(optarg, "native")) ecs_schema = 0;
            else { fprintf(stderr, "mxtrace: --schema: native or ecs\n"); ok = 0; }
            break;
        case 'p': ok = add_ports(optarg, cfg.ports, &cfg.nports, 48); break;
        case O_TLSPORT: ok = add_ports(optarg, cfg.tls_ports, &cfg.ntls_ports, 16); tls_ports_given = 1; break;
        case O_PRETTY: cfg.opt.pretty = 1; break;
        case O_COLOR:
            if (!strcmp(optarg, "always")) color = 1;
            else if (!strcmp(optarg, "never")) color = 0;
            else if (!strcmp(optarg, "auto")) color = -1;
            else { fprintf(stderr, "mxtrace: --color: auto, always or never\n"); ok = 0; }
            break;
        case O_PROGRESS: progress = 1; break;
        case O_SHOWUSER: cfg.opt.show_user = 1; break;
        case O_NONDPI: cfg.no_ndpi = 1; break;
        case O_NONDPITLS: cfg.ndpi_tls = 0; break;
        case O_NDPITLS: cfg.ndpi_tls = 1; break;
        case O_WORKERS:
            ok = parse_u32("--workers", optarg, 1, &u);
            if (ok && u > 64) { fprintf(stderr, "mxtrace: --workers: 1 to 64\n"); ok = 0; }
            if (ok) cfg.workers = (int)u;
            break;
        case O_ANYPORT: cfg.any_port = 1; break;
        case O_NDPIPKTS: ok = parse_u32("--ndpi-packets", optarg, 1, &L->ndpi_packets); break;
        case O_STATS: stats = 1; break;
        case O_MERGE: merge = 1; break;
        case O_MAXFLOWS: ok = parse_u32("--max-flows", optarg, 1, &L->max_flows); break;
        case O_IDLE: ok = parse_u32("--idle-timeout", optarg, 1, &L->idle_timeout_s); break;
        case O_OOOB: ok = parse_u32("--max-ooo-bytes", optarg, 0, &L->max_ooo_bytes); break;
        case O_OOOS: ok = parse_u32("--max-ooo-segs", optarg, 0, &L->max_ooo_segs); break;
        case O_ACKPKTS: ok = parse_u32("--ack-wait-packets", optarg, 0, &L->ack_wait_packets); break;
        case O_ACKMS: ok = parse_u32("--ack-wait-ms", optarg, 0, &L->ack_wait_ms); break;
        case O_LINGER: ok = parse_u32("--max-lingering", optarg, 0, &L->max_lingering); break;
        case O_LINE: ok = parse_u32("--max-line", optarg, 16, &L->max_line); break;
        case O_HOLD: ok = parse_u32("--max-hold", optarg, 64, &L->max_hold); break;
        case O_EVENTS: ok = parse_u32("--max-events", optarg, 1, &L->max_events); break;
        case O_PENDING: ok = parse_u32("--max-pending", optarg, 1, &L->max_pending); break;
        case O_FIELD: ok = parse_u32("--max-field", optarg, 16, &L->max_field); break;
        case O_PARTS: ok = parse_u32("--max-mime-parts", optarg, 1, &L->max_mime_parts); break;
        case O_TLSMSG: ok = parse_u32("--max-tls-msg", optarg, 64, &L->max_tls_msg); break;
        case O_MEMCAP: ok = parse_size("--memcap", optarg, &L->memcap); break;
        case O_KEYLOG: keylog_path = optarg; break;
        case O_ATTWIN: {
            uint32_t w = 0;
            ok = parse_u32("--attempt-window", optarg, 0, &w);
            cfg.opt.attempt_window_us = (uint64_t)w * 1000000u;
            break;
        }
        case O_EVTYPES:
            for (int t = 0; t < MX_EV__COUNT; t++) {
                const mx_evtype_info *i = mx_evtype_get((mx_evtype)t);
                printf("%s\t%s\t%s\t%s\n", i->name, i->ecs_category, i->ecs_type, i->summary);
            }
            free(files);
            return 0;
        case 'h': usage(stdout); free(files); return 0;
        case 'V': puts("mxtrace " MX_VERSION); free(files); return 0;
        default: ok = 0; break;
        }
        if (!ok) { free(files); return EXIT_USAGE; }
    }
    if (!tls_ports_given) cfg.tls_ports[cfg.ntls_ports++] = 465;
    if (L->max_hold < L->max_line + 2) L->max_hold = L->max_line + 2;
    if (list_ifaces) {
        char lerr[256];
        int n = mx_live_list(stdout, lerr, sizeof lerr);
        if (!n) fprintf(stderr, "mxtrace: -D: %s\n", lerr);
        free(files);
        return n ? 0 : EXIT_INPUT;
    }
    int live = lopt.nifaces > 0;
    if (nfiles == 0 && !live) {
        fprintf(stderr, "mxtrace: no input: give -r FILE or -i IFACE (see --help)\n");
        free(files);
        return EXIT_USAGE;
    }
    if (nfiles && live) {
        fprintf(stderr, "mxtrace: -r and -i cannot be used together\n");
        free(files);
        return EXIT_USAGE;
    }
    if (chroot_dir && !zuser) {
        fprintf(stderr, "mxtrace: --chroot needs -Z USER\n");
        free(files);
        return EXIT_USAGE;
    }
    if ((w_mb || w_secs) && !wpath) {
        fprintf(stderr, "mxtrace: -C and -G need -w FILE\n");
        free(files);
        return EXIT_USAGE;
    }
    /* The rest of the command line is a BPF filter, as with tcpdump. */
    char *filter = NULL;
    if (optind < argc) {
        size_t len = 1;
        for (int i = optind; i < argc; i++) len += strlen(argv[i]) + 1;
        filter = calloc(1, len);
        for (int i = optind; i < argc; i++) {
            if (i > optind) strcat(filter, " ");
            strcat(filter, argv[i]);
        }
    }
    if (ecs_schema && (fmt == MX_FMT_NDJSON || !fmt_given)) fmt = MX_FMT_ECS;
    /* With --output alone, standard output stays quiet. */
    int primary = !nspecs || fmt_given || outpath || ecs_schema;
    FILE *out = stdout;
    if (primary && outpath && !(out = fopen(outpath, "w"))) {
        fprintf(stderr, "mxtrace: %s: cannot write: %s\n", outpath, strerror(errno));
        free(files); free(filter);
        return EXIT_OUTPUT;
    }
    if (color < 0) color = out == stdout && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (progress < 0) progress = isatty(STDERR_FILENO);
    mx_sink *sink = mx_sink_create(&cfg.opt);
    mx_output *outs[MAX_OUTPUTS + 1];
    int nouts = 0, net = 0, files_out = 0;
    if (sink && primary) {
        outs[nouts] = mx_output_stream(out, outpath ? outpath : "(stdout)");
        if (!outs[nouts] || !mx_sink_add(sink, fmt, outs[nouts], color)) { fprintf(stderr, "mxtrace: out of memory\n"); return EXIT_OUTPUT; }
        nouts++;
    }
    for (int i = 0; sink && i < nspecs; i++) {
        static const struct { const char *n; mx_format f; } fm[] = {
            { "ndjson", MX_FMT_NDJSON }, { "timeline", MX_FMT_TIMELINE }, { "ecs", MX_FMT_ECS },
            { "text", MX_FMT_TEXT }, { "summary", MX_FMT_SUMMARY }, { "html", MX_FMT_HTML },
            { "tlsrpt", MX_FMT_TLSRPT },
        };
        mx_format f = MX_FMT_NDJSON;
        for (size_t j = 0; j < sizeof fm / sizeof fm[0]; j++)
            if (!strcmp(specs[i].format, fm[j].n)) f = fm[j].f;
        mx_output *o = mx_output_open(&specs[i], perr, sizeof perr);
        if (!o) {
            fprintf(stderr, "mxtrace: %s\n", perr);
            for (int j = 0; j < nouts; j++) mx_output_free(outs[j]);
            mx_sink_free(sink);
            if (out != stdout) fclose(out);
            free(files); free(filter);
            return EXIT_OUTPUT;
        }
        outs[nouts++] = o;
        mx_sink_add(sink, f, o, 0);
        if (specs[i].kind == MX_OUT_FILE) files_out = 1; else net = 1;
    }
    (void)net;
    (void)files_out;
    /* A reader or collector that goes away is a failed write, not the end
     * of the process; SIGHUP reopens the files (logrotate); SIGINT and
     * SIGTERM end the run with every open session written. */
    signal(SIGPIPE, SIG_IGN);
    handle(SIGHUP, on_hup);
    handle(SIGINT, on_stop);
    handle(SIGTERM, on_stop);
    mx_pktdump *dump = NULL;
    mx_live *lv = NULL;
    int setup_rc = 0;
    if (wpath && !(dump = mx_pktdump_open(wpath, (uint64_t)w_mb * 1000000u, w_secs, perr, sizeof perr))) {
        fprintf(stderr, "mxtrace: %s\n", perr);
        setup_rc = EXIT_OUTPUT;
    }
    if (!setup_rc && live) {
        char *kf = live_filter(&cfg, filter);
        lopt.filter = kf;
        if (!kf || !(lv = mx_live_open(&lopt, perr, sizeof perr))) {
            mx_output_clean_msg(perr);
            fprintf(stderr, "mxtrace: %s\n", kf ? perr : "out of memory");
            setup_rc = EXIT_INPUT;
        }
        free(kf);
        lopt.filter = NULL;
    }
    mx_keylog *keylog = NULL;
    if (!setup_rc && keylog_path) {
        if (!(keylog = mx_keylog_load(keylog_path, perr, sizeof perr))) {
            fprintf(stderr, "mxtrace: --keylog %s\n", perr);
            setup_rc = EXIT_INPUT;
        } else if (mx_keylog_skipped(keylog)) {
            fprintf(stderr, "mxtrace: --keylog %s: %zu lines not understood, left out\n", keylog_path,
                    mx_keylog_skipped(keylog));
        }
        cfg.opt.keylog = keylog;
    }
    if (!setup_rc && zuser && !drop_root(zuser, chroot_dir)) setup_rc = EXIT_PRIV;
    char err[256] = "out of memory";
    mx_engine *eng = sink && !setup_rc ? mx_engine_new(&cfg, sink, err, sizeof err) : NULL;
    if (!eng) {
        if (!setup_rc) fprintf(stderr, "mxtrace: %s\n", err);
        mx_live_close(lv);
        mx_pktdump_close(dump);
        mx_sink_free(sink);
        for (int i = 0; i < nouts; i++) { mx_output_stats st; mx_output_close(outs[i], &st); mx_output_free(outs[i]); }
        if (out != stdout) fclose(out);
        free(files); free(filter);
        mx_keylog_free(keylog);
        return setup_rc ? setup_rc : EXIT_OUTPUT;
    }

    /* what reads a pipe (or tails a live run's files) sees each session as
     * it ends, not a buffer later */
    struct stat ost;
    int out_regular = primary && fstat(fileno(out), &ost) == 0 && S_ISREG(ost.st_mode);
    batch_ctx bc = { sink, live || (primary && !out_regular), eng, live };
    stats_ctx sc = { sink, stats, eng };
    mx_capture_ctl ctl = { &stop_flag, on_batch, &bc, dump, on_idle };
    mx_engine_set_dump(eng, dump);
    int rc = live ? mx_live_run(lv, eng, &ctl, on_capture_stats, &sc)
                  : mx_capture_run(eng, files, nfiles, filter, progress, merge, &ctl);
    mx_engine_finish(eng, stop_flag ? "shutdown" : "end_of_input");
    mx_sink_finish(sink);
    mx_sink_flush(sink, 1);
    mx_live_close(lv);
    if (dump && !mx_pktdump_ok(dump) && !rc) rc = EXIT_OUTPUT;
    mx_pktdump_close(dump);
    if (stats) {
        const mx_engine_stats *s = mx_engine_stats_get(eng);
        fprintf(stderr, "mxtrace: packets %llu tcp %llu mail %llu sessions %llu "
                "non-ip %llu non-tcp %llu fragments %llu truncated %llu malformed %llu "
                "evicted %llu timed-out %llu peak-flows %llu off-port-ignored %llu memcap-refused %llu "
                "sessions-split %llu buffers-peak-kb %llu peak-memory-kb %llu\n",
                (unsigned long long)s->packets, (unsigned long long)s->tcp_packets,
                (unsigned long long)s->mail_packets, (unsigned long long)s->sessions,
                (unsigned long long)s->not_ip, (unsigned long long)s->not_tcp,
                (unsigned long long)s->fragments, (unsigned long long)s->truncated,
                (unsigned long long)s->malformed, (unsigned long long)s->evicted,
                (unsigned long long)s->timed_out, (unsigned long long)s->max_live_flows,
                (unsigned long long)s->off_port_ignored, (unsigned long long)s->memcap_refused,
                (unsigned long long)s->sessions_split,
                (unsigned long long)(s->buffers_peak / 1024), peak_memory_kb());
        /* how evenly the connections were shared out */
        mx_engine_stats ws;
        for (int i = 0; mx_engine_worker_stats(eng, i, &ws); i++)
            fprintf(stderr, "mxtrace: worker %d: mail %llu sessions %llu timed-out %llu evicted %llu peak-flows %llu "
                    "buffers-peak-kb %llu\n", i, (unsigned long long)ws.mail_packets, (unsigned long long)ws.sessions,
                    (unsigned long long)ws.timed_out, (unsigned long long)ws.evicted,
                    (unsigned long long)ws.max_live_flows, (unsigned long long)(ws.buffers_peak / 1024));
    }
    mx_engine_free(eng);
    mx_keylog_free(keylog);
    int failed = mx_sink_failed(sink);
    for (int i = 0; i < nouts; i++) {
        mx_output_stats st;
        mx_output_close(outs[i], &st);
        const char *name = mx_output_name(outs[i]);
        if (st.dropped)
            fprintf(stderr, "mxtrace: output %s: %llu of %llu records dropped (%llu outage%s)\n", name,
                    (unsigned long long)st.dropped, (unsigned long long)st.records,
                    (unsigned long long)st.outages, st.outages == 1 ? "" : "s");
        if (stats)
            fprintf(stderr, "mxtrace: output %s: records %llu delivered %llu dropped %llu outages %llu rotations %llu\n",
                    name, (unsigned long long)st.records, (unsigned long long)st.delivered,
                    (unsigned long long)st.dropped, (unsigned long long)st.outages, (unsigned long long)st.rotations);
        if (mx_output_failed(outs[i])) {
            if (!mx_sink_told(sink))
                fprintf(stderr, "mxtrace: %s: write failed\n", i == 0 && primary ? (outpath ? outpath : "(stdout)") : name);
            failed = 0;
            if (!rc && !mx_sink_epipe(sink)) rc = EXIT_OUTPUT;
        }
    }
    if (failed && !mx_sink_epipe(sink)) {
        if (!mx_sink_told(sink)) fprintf(stderr, "mxtrace: %s: write failed\n", outpath ? outpath : "(stdout)");
        if (!rc) rc = EXIT_OUTPUT;
    }
    mx_sink_free(sink);
    for (int i = 0; i < nouts; i++) mx_output_free(outs[i]);
    if (out != stdout) fclose(out);
    free(files);
    free(filter);
    return rc;
}
