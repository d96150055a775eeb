/* main.c - command line. */
#include "mx/capture.h"
#include "mx/engine.h"
#include "mx/evtype.h"
#include "mx/sink.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MX_VERSION "0.1.0"

enum { EXIT_USAGE = 1, EXIT_OUTPUT = 4 };

static void usage(FILE *f)
{
    fputs(
"usage: mxtrace -r FILE [-r FILE ...] [options] [BPF filter]\n"
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
"                      ecs: one Elastic Common Schema 8.x event per line\n"
"  -o FILE             write to FILE instead of standard output\n"
"      --pretty        indent timeline JSON\n"
"      --color WHEN    colours in text/summary: auto (default), always, never\n"
"      --show-user     write AUTH user names (passwords are never written)\n"
"      --stats         print packet counters on stderr at the end\n"
"      --no-ndpi       do not classify flows with nDPI\n"
"      --progress      progress on stderr for files over 64 MiB (default when\n"
"                      stderr is a terminal)\n"
"limits (reaching one is an event in the output):\n"
"      --max-flows N --idle-timeout SEC --max-ooo-bytes N --max-ooo-segs N\n"
"      --max-line N --max-hold N --max-events N --max-pending N\n"
"      --max-field N --max-mime-parts N --max-tls-msg N --ndpi-packets N\n"
"      --ack-wait-packets N --ack-wait-ms MS --max-lingering N\n"
"      --list-event-types  the event types, one per line: name, ECS\n"
"                      event.category and event.type, summary (tab-separated)\n"
"  -h, --help          this text\n"
"  -V, --version       version\n"
"\n"
"exit status: 0 ok; 1 bad usage; 2 an input could not be read; 3 an input\n"
"was damaged (what came before the damage is written); 4 output failed.\n", f);
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
           O_ACKPKTS, O_ACKMS, O_LINGER, O_EVTYPES };
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
        { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },
        { 0, 0, 0, 0 },
    };
    static mx_engine_cfg cfg;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    int nfiles = 0, stats = 0, merge = 0, color = -1, progress = -1;
    const char *outpath = NULL;
    mx_format fmt = MX_FMT_TIMELINE;
    mx_limits *L = &cfg.opt.lim;

    if (!files) return EXIT_USAGE;
    mx_limits_default(L);
    cfg.ports[cfg.nports++] = 25;
    cfg.ports[cfg.nports++] = 587;
    int tls_ports_given = 0;

    int c;
    while ((c = getopt_long(argc, argv, "r:F:o:p:hV", lo, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case 'r': files[nfiles++] = optarg; break;
        case 'F':
            if (strcmp(optarg, "timeline") == 0) fmt = MX_FMT_TIMELINE;
            else if (strcmp(optarg, "ndjson") == 0) fmt = MX_FMT_NDJSON;
            else if (strcmp(optarg, "text") == 0) fmt = MX_FMT_TEXT;
            else if (strcmp(optarg, "summary") == 0) fmt = MX_FMT_SUMMARY;
            else if (strcmp(optarg, "html") == 0) fmt = MX_FMT_HTML;
            else if (strcmp(optarg, "ecs") == 0) fmt = MX_FMT_ECS;
            else { fprintf(stderr, "mxtrace: -F: unknown format '%s' (timeline, ndjson, text, summary, html, ecs)\n", optarg); ok = 0; }
            break;
        case 'o': outpath = optarg; break;
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
    if (nfiles == 0) {
        fprintf(stderr, "mxtrace: no input: give -r FILE (see --help)\n");
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
    FILE *out = stdout;
    if (outpath && !(out = fopen(outpath, "w"))) {
        fprintf(stderr, "mxtrace: %s: cannot write: %s\n", outpath, strerror(errno));
        free(files); free(filter);
        return EXIT_OUTPUT;
    }
    if (color < 0) color = out == stdout && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (progress < 0) progress = isatty(STDERR_FILENO);
    mx_sink *sink = mx_sink_new(fmt, out, &cfg.opt, color);
    char err[256] = "out of memory";
    mx_engine *eng = sink ? mx_engine_new(&cfg, sink, err, sizeof err) : NULL;
    if (!eng) { fprintf(stderr, "mxtrace: %s\n", err); return EXIT_OUTPUT; }

    int rc = mx_capture_run(eng, files, nfiles, filter, progress, merge);
    mx_engine_finish(eng);
    mx_sink_finish(sink);
    if (stats) {
        const mx_engine_stats *s = mx_engine_stats_get(eng);
        fprintf(stderr, "mxtrace: packets %llu tcp %llu mail %llu sessions %llu "
                "non-ip %llu non-tcp %llu fragments %llu truncated %llu malformed %llu "
                "evicted %llu timed-out %llu peak-flows %llu off-port-ignored %llu\n",
                (unsigned long long)s->packets, (unsigned long long)s->tcp_packets,
                (unsigned long long)s->mail_packets, (unsigned long long)s->sessions,
                (unsigned long long)s->not_ip, (unsigned long long)s->not_tcp,
                (unsigned long long)s->fragments, (unsigned long long)s->truncated,
                (unsigned long long)s->malformed, (unsigned long long)s->evicted,
                (unsigned long long)s->timed_out, (unsigned long long)s->max_live_flows,
                (unsigned long long)s->off_port_ignored);
    }
    mx_engine_free(eng);
    if (fflush(out) != 0 || mx_sink_failed(sink)) {
        fprintf(stderr, "mxtrace: %s: write failed\n", outpath ? outpath : "(stdout)");
        if (!rc) rc = EXIT_OUTPUT;
    }
    mx_sink_free(sink);
    if (out != stdout) fclose(out);
    free(files);
    free(filter);
    return rc;
}
