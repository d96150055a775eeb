/* output.c - transports (see output.h).
 *
 * Every output but the caller's stream gives the renderer a FILE* made with
 * fopencookie(): for a file the cookie writes to the file descriptor (so the
 * FILE* outlives rotation and reopening), for the network kinds it collects
 * the record, which mx_output_commit() copies into a bounded byte ring.  A
 * writer thread per network output takes records from the ring in batches,
 * frames them (newline, datagram, RFC 5424 / RFC 6587, Redis command) and
 * sends them, reconnecting with doubling back-off.  The packet path only
 * ever takes the ring's lock for a memcpy.
 */
#define _GNU_SOURCE 1              /* fopencookie */
#include "mx/output.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "output_redis.h"

enum {
    DEFAULT_QUEUE = 16 << 20,       /* bytes                               */
    BATCH_MAX = 256 * 1024,         /* bytes taken from the ring at once   */
    BATCH_RECS = 512,
    BACKOFF_MIN_MS = 100,
    SEND_TIMEOUT_MS = 1000,
    REC_HDR = 4 + 8 + 1,            /* length, commit time (us), tag length */
};

struct mx_output {
    mx_output_spec sp;
    char name[600];
    FILE *f;
    int owns_f, failed, tty;
    int fail_errno;             /* why the first failed write failed       */

    /* file */
    int fd;
    char path[1200];                /* the file now open                   */
    uint64_t fbytes;
    time_t fopened;
    unsigned hup_gen;

    /* the record being written (network kinds) */
    char *rec;
    size_t rlen, rcap;

    /* queue: the ring is [len u32][us u64][taglen u8][tag][bytes]... */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *ring;
    size_t qcap, qhead, qused;
    int stop, thread_up;
    pthread_t th;
    mx_output_stats st;             /* under mu                            */
    uint64_t rep_dropped;           /* dropped and not yet reported        */
    uint64_t rep_first_us;          /* when the first of them was dropped  */
    int rep_outage;                 /* an outage began since the last report */
    uint64_t rep_last_ms;           /* when the last report was taken        */
    unsigned refusal_said;

    /* writer thread only */
    int sock;
    void *redis;
    int down;
    uint64_t down_since_ms, backoff_ms, next_try_ms;
    uint8_t *batch;                 /* framed records                      */
    size_t blen, bsent;
    rec_ref brec[BATCH_RECS];
    size_t nrec, rsent;             /* records in the batch, fully sent    */
    char hostname[256];
    long pid;
    uint64_t stop_deadline_ms;
};

static volatile sig_atomic_t hup_count;
void mx_output_reopen_all(void) { hup_count++; }

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the option string --------------------------------------------------- */

static const struct { const char *name; mx_output_kind kind; } kinds[] = {
    { "file", MX_OUT_FILE }, { "unix", MX_OUT_UNIX }, { "unix-dgram", MX_OUT_UNIX_DGRAM },
    { "syslog-udp", MX_OUT_SYSLOG_UDP }, { "syslog-tcp", MX_OUT_SYSLOG_TCP }, { "redis", MX_OUT_REDIS },
};

static const struct { const char *name; int code; } facilities[] = {
    { "kern", 0 }, { "user", 1 }, { "mail", 2 }, { "daemon", 3 }, { "auth", 4 }, { "syslog", 5 },
    { "lpr", 6 }, { "news", 7 }, { "uucp", 8 }, { "cron", 9 }, { "authpriv", 10 }, { "ftp", 11 },
    { "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
    { "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};
static const char *const severities[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };

/* "16M", "512k", "1G", "1000" */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024ull * 1024 * 1024, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v > UINT64_MAX / mul) return 0;
    *out = v * mul;
    return 1;
}

/* "90", "90s", "15m", "1h", "1d", "250ms"; in milliseconds. */
static int parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    uint64_t mul = 1000;
    if (!strcmp(end, "ms")) mul = 1, end += 2;
    else if (*end == 's') end++;
    else if (*end == 'm') mul = 60000, end++;
    else if (*end == 'h') mul = 3600000, end++;
    else if (*end == 'd') mul = 86400000, end++;
    if (*end || v > UINT64_MAX / mul) return 0;
    *out = v * mul;
    return 1;
}

void mx_output_clean_msg(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) *s = '?';
}

static int bad(char *err, size_t cap, const char *arg, const char *why)
{
    snprintf(err, cap, "--output %s: %s", arg, why);
    mx_output_clean_msg(err);       /* the user's text: one line, no controls */
    return 0;
}

int mx_output_parse(const char *arg, mx_output_spec *sp, char *err, size_t cap)
{
    memset(sp, 0, sizeof *sp);
    sp->queue_bytes = DEFAULT_QUEUE;
    sp->flush_ms = 2000;
    sp->backoff_max_ms = 5000;
    sp->facility = 16;              /* local0 */
    sp->severity = 6;               /* info   */
    snprintf(sp->app_name, sizeof sp->app_name, "mxtrace");
    snprintf(sp->key, sizeof sp->key, "mxtrace");
    sp->maxlen = 100000;

    const char *colon = strchr(arg, ':');
    if (!colon) return bad(err, cap, arg, "expected KIND:TARGET (file, unix, unix-dgram, syslog-udp, syslog-tcp, redis)");
    size_t kl = (size_t)(colon - arg);
    int found = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i].name) == kl && !strncmp(arg, kinds[i].name, kl)) { sp->kind = kinds[i].kind; found = 1; }
    if (!found) return bad(err, cap, arg, "unknown kind (file, unix, unix-dgram, syslog-udp, syslog-tcp, redis)");

    char buf[2048];
    if (strlen(colon + 1) >= sizeof buf) return bad(err, cap, arg, "too long");
    snprintf(buf, sizeof buf, "%s", colon + 1);
    /* TARGET runs to the first ",key=" */
    char *opts = NULL;
    for (char *p = strchr(buf, ','); p; p = strchr(p + 1, ',')) {
        char *eq = strchr(p + 1, '='), *nc = strchr(p + 1, ',');
        if (eq && (!nc || eq < nc)) { *p = 0; opts = p + 1; break; }
    }
    if (!buf[0]) return bad(err, cap, arg, "no target");
    if (strlen(buf) >= sizeof sp->target) return bad(err, cap, arg, "target too long");
    snprintf(sp->target, sizeof sp->target, "%s", buf);

    for (char *kv = opts ? strtok(opts, ",") : NULL; kv; kv = strtok(NULL, ",")) {
        char *v = strchr(kv, '=');
        if (!v) return bad(err, cap, arg, "options are key=value");
        *v++ = 0;
        uint64_t n;
        int net = sp->kind != MX_OUT_FILE;
        if (!strcmp(kv, "format")) {
            static const char *const fmts[] = { "ndjson", "timeline", "ecs", "text", "summary", "html", "tlsrpt" };
            int ok = 0;
            for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) ok |= !strcmp(v, fmts[i]);
            if (!ok) return bad(err, cap, arg, "format: ndjson, timeline, ecs, text, summary, html or tlsrpt");
            snprintf(sp->format, sizeof sp->format, "%s", v);
        } else if (!strcmp(kv, "schema")) {
            if (strcmp(v, "ecs") && strcmp(v, "native")) return bad(err, cap, arg, "schema: ecs or native");
            if (!strcmp(v, "ecs")) snprintf(sp->format, sizeof sp->format, "ecs");
        } else if (!strcmp(kv, "rotate-size") && !net) {
            if (!parse_size(v, &sp->rotate_size) || sp->rotate_size == 0) return bad(err, cap, arg, "rotate-size: a size such as 100M");
        } else if (!strcmp(kv, "rotate-time") && !net) {
            if (!parse_duration_ms(v, &n) || n < 1000 || n / 1000 > UINT32_MAX) return bad(err, cap, arg, "rotate-time: a duration such as 1h (at least 1s)");
            sp->rotate_time = (uint32_t)(n / 1000);
        } else if (!strcmp(kv, "queue-size") && net) {
            if (!parse_size(v, &sp->queue_bytes) || sp->queue_bytes < 4096 || sp->queue_bytes > (1ull << 32))
                return bad(err, cap, arg, "queue-size: 4k to 4G");
        } else if (!strcmp(kv, "drop") && net) {
            if (!strcmp(v, "oldest")) sp->drop_oldest = 1;
            else if (!strcmp(v, "newest")) sp->drop_oldest = 0;
            else return bad(err, cap, arg, "drop: newest or oldest");
        } else if (!strcmp(kv, "flush") && net) {
            if (!parse_duration_ms(v, &n) || n > 3600000) return bad(err, cap, arg, "flush: a duration such as 2s");
            sp->flush_ms = (uint32_t)n;
        } else if (!strcmp(kv, "backoff-max") && net) {
            if (!parse_duration_ms(v, &n) || n < BACKOFF_MIN_MS || n > 3600000) return bad(err, cap, arg, "backoff-max: 100ms to 1h");
            sp->backoff_max_ms = (uint32_t)n;
        } else if (!strcmp(kv, "facility") && (sp->kind == MX_OUT_SYSLOG_UDP || sp->kind == MX_OUT_SYSLOG_TCP)) {
            int f = -1;
            for (size_t i = 0; i < sizeof facilities / sizeof facilities[0]; i++)
                if (!strcmp(v, facilities[i].name)) f = facilities[i].code;
            if (f < 0 && parse_size(v, &n) && n <= 23) f = (int)n;
            if (f < 0) return bad(err, cap, arg, "facility: a name (mail, daemon, local0..local7, ...) or 0-23");
            sp->facility = f;
        } else if (!strcmp(kv, "severity") && (sp->kind == MX_OUT_SYSLOG_UDP || sp->kind == MX_OUT_SYSLOG_TCP)) {
            int s = -1;
            for (int i = 0; i < 8; i++) if (!strcmp(v, severities[i])) s = i;
            if (s < 0 && parse_size(v, &n) && n <= 7) s = (int)n;
            if (s < 0) return bad(err, cap, arg, "severity: emerg..debug or 0-7");
            sp->severity = s;
        } else if (!strcmp(kv, "app-name") && (sp->kind == MX_OUT_SYSLOG_UDP || sp->kind == MX_OUT_SYSLOG_TCP)) {
            size_t l = strlen(v);
            if (!l || l > 48) return bad(err, cap, arg, "app-name: 1 to 48 printable characters");
            for (size_t i = 0; i < l; i++) if (v[i] < 33 || v[i] > 126) return bad(err, cap, arg, "app-name: 1 to 48 printable characters");
            snprintf(sp->app_name, sizeof sp->app_name, "%s", v);
        } else if (!strcmp(kv, "mode") && sp->kind == MX_OUT_REDIS) {
            if (!strcmp(v, "list")) sp->redis_mode = MX_REDIS_LIST;
            else if (!strcmp(v, "channel")) sp->redis_mode = MX_REDIS_CHANNEL;
            else if (!strcmp(v, "stream")) sp->redis_mode = MX_REDIS_STREAM;
            else return bad(err, cap, arg, "mode: list, channel or stream");
        } else if (!strcmp(kv, "key") && sp->kind == MX_OUT_REDIS) {
            if (!*v || strlen(v) >= sizeof sp->key) return bad(err, cap, arg, "key: 1 to 255 bytes");
            snprintf(sp->key, sizeof sp->key, "%s", v);
        } else if (!strcmp(kv, "push") && sp->kind == MX_OUT_REDIS) {
            if (!strcmp(v, "lpush")) sp->redis_lpush = 1;
            else if (!strcmp(v, "rpush")) sp->redis_lpush = 0;
            else return bad(err, cap, arg, "push: rpush or lpush");
        } else if (!strcmp(kv, "maxlen") && sp->kind == MX_OUT_REDIS) {
            if (!parse_size(v, &sp->maxlen)) return bad(err, cap, arg, "maxlen: a count (0 = no cap)");
        } else {
            char why[160];
            snprintf(why, sizeof why, "unknown option '%s' for this kind", kv);
            return bad(err, cap, arg, why);
        }
    }
    return 1;
}

/* ---- file ------------------------------------------------------------------ */

/* The name to open: TARGET itself, or TARGET as a strftime pattern (UTC). */
static void file_name(mx_output *o, char *out, size_t cap)
{
    if (!strchr(o->sp.target, '%')) { snprintf(out, cap, "%s", o->sp.target); return; }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    /* the pattern is the user's own, from the command line */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(out, cap, o->sp.target, &tm);
#pragma GCC diagnostic pop
    if (!n) snprintf(out, cap, "%s", o->sp.target);
}

static int exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

static int file_open(mx_output *o, char *err, size_t cap)
{
    char name[1300];
    file_name(o, name, 1200);
    if (strchr(o->sp.target, '%') && o->fd >= 0 && !strcmp(name, o->path)) {
        /* a pattern that names the same file again: number the new one */
        for (int i = 1; i < 10000; i++) {
            snprintf(name, sizeof name, "%s.%d", o->path, i);
            if (!exists(name)) break;
        }
    }
    int fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (err) snprintf(err, cap, "%s: cannot write: %s", name, strerror(errno));
        return 0;
    }
    if (o->fd >= 0) close(o->fd);
    o->fd = fd;
    snprintf(o->path, sizeof o->path, "%.1199s", name);
    struct stat st;
    o->fbytes = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    o->fopened = time(NULL);
    return 1;
}

/* Rotation: a plain name is renamed to NAME.YYYYMMDDTHHMMSSZ and opened
 * anew; a pattern just opens the file it now names. */
static void file_rotate(mx_output *o)
{
    if (!strchr(o->sp.target, '%')) {
        char stamp[32], dst[1300];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(dst, sizeof dst, "%s.%s", o->path, stamp);
        for (int i = 1; exists(dst) && i < 10000; i++) snprintf(dst, sizeof dst, "%s.%s.%d", o->path, stamp, i);
        if (rename(o->path, dst) != 0) {
            fprintf(stderr, "mxtrace: output %s: cannot rotate to %s: %s\n", o->name, dst, strerror(errno));
            o->fbytes = 0;          /* try again after as many bytes */
            o->fopened = time(NULL);
            return;
        }
    }
    char err[1400];
    if (!file_open(o, err, sizeof err)) {
        fprintf(stderr, "mxtrace: output %s: %s\n", o->name, err);
        o->failed = 1;
        return;
    }
    o->st.rotations++;
}

static ssize_t cookie_file_write(void *c, const char *buf, size_t n)
{
    mx_output *o = c;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(o->fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { if (!o->failed) o->fail_errno = w < 0 ? errno : ENOSPC; o->failed = 1; return done ? (ssize_t)done : -1; }
        done += (size_t)w;
    }
    o->fbytes += n;
    return (ssize_t)n;
}

static ssize_t cookie_rec_write(void *c, const char *buf, size_t n)
{
    mx_output *o = c;
    if (o->rlen + n > o->rcap) {
        size_t nc = o->rcap ? o->rcap : 4096;
        while (nc < o->rlen + n) nc *= 2;
        char *nb = realloc(o->rec, nc);
        if (!nb) return -1;
        o->rec = nb;
        o->rcap = nc;
    }
    memcpy(o->rec + o->rlen, buf, n);
    o->rlen += n;
    return (ssize_t)n;
}

/* ---- sockets ----------------------------------------------------------------- */

static int split_host_port(const char *t, char *host, size_t hcap, char *port, size_t pcap, const char *dport)
{
    const char *h = t, *p = NULL;
    size_t hl;
    if (*t == '[') {
        const char *e = strchr(t, ']');
        if (!e) return 0;
        h = t + 1;
        hl = (size_t)(e - h);
        if (e[1] == ':') p = e + 2;
        else if (e[1]) return 0;
    } else {
        const char *c = strrchr(t, ':');
        if (c && strchr(t, ':') != c) c = NULL;      /* bare IPv6: no port */
        hl = c ? (size_t)(c - t) : strlen(t);
        if (c) p = c + 1;
    }
    if (!hl || hl >= hcap) return 0;
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, pcap, "%s", p && *p ? p : dport);
    return 1;
}

static void set_timeouts(int fd)
{
    struct timeval tv = { SEND_TIMEOUT_MS / 1000, (SEND_TIMEOUT_MS % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Connects the socket of a socket kind; -1 and errno-based text in err. */
static int sock_connect(mx_output *o, char *err, size_t cap)
{
    int fd = -1;
    if (o->sp.kind == MX_OUT_UNIX || o->sp.kind == MX_OUT_UNIX_DGRAM) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        if (strlen(o->sp.target) >= sizeof sa.sun_path) { snprintf(err, cap, "socket path too long"); return -1; }
        memcpy(sa.sun_path, o->sp.target, strlen(o->sp.target));
        fd = socket(AF_UNIX, (o->sp.kind == MX_OUT_UNIX ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            snprintf(err, cap, "cannot connect: %s", strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
    } else {
        char host[256], port[16];
        if (!split_host_port(o->sp.target, host, sizeof host, port, sizeof port, "514")) {
            snprintf(err, cap, "target is HOST[:PORT]");
            return -1;
        }
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = o->sp.kind == MX_OUT_SYSLOG_TCP ? SOCK_STREAM : SOCK_DGRAM;
        int g = getaddrinfo(host, port, &hints, &res);
        if (g) { snprintf(err, cap, "cannot resolve %s: %s", host, gai_strerror(g)); return -1; }
        int e = 0;
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd < 0) { e = errno; continue; }
            if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
            e = errno;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) { snprintf(err, cap, "cannot connect: %s", strerror(e)); return -1; }
    }
    set_timeouts(fd);
    return fd;
}

static int net_connect(mx_output *o, char *err, size_t cap)
{
    if (o->sp.kind == MX_OUT_REDIS) {
        o->redis = mx_redis_connect(&o->sp, err, cap);
        return o->redis != NULL;
    }
    o->sock = sock_connect(o, err, cap);
    return o->sock >= 0;
}

static void net_disconnect(mx_output *o)
{
    if (o->redis) { mx_redis_free(o->redis); o->redis = NULL; }
    if (o->sock >= 0) { close(o->sock); o->sock = -1; }
}

/* ---- the ring ------------------------------------------------------------------ */

static void ring_put(mx_output *o, const void *p, size_t n)
{
    size_t at = (o->qhead + o->qused) % o->qcap, first = o->qcap - at < n ? o->qcap - at : n;
    memcpy(o->ring + at, p, first);
    memcpy(o->ring, (const uint8_t *)p + first, n - first);
    o->qused += n;
}

static void ring_get(mx_output *o, void *p, size_t n)
{
    size_t first = o->qcap - o->qhead < n ? o->qcap - o->qhead : n;
    memcpy(p, o->ring + o->qhead, first);
    memcpy((uint8_t *)p + first, o->ring, n - first);
    o->qhead = (o->qhead + n) % o->qcap;
    o->qused -= n;
}

/* Drops the record at the head; under mu. */
static void ring_drop_head(mx_output *o)
{
    uint32_t len;
    uint8_t hdr[REC_HDR];
    ring_get(o, hdr, REC_HDR);
    memcpy(&len, hdr, 4);
    size_t skip = (size_t)hdr[12] + len;
    o->qhead = (o->qhead + skip) % o->qcap;
    o->qused -= skip;
}

static void count_drop(mx_output *o, uint64_t n)
{
    if (!n) return;
    if (!o->rep_dropped) o->rep_first_us = wall_us();
    o->st.dropped += n;
    o->rep_dropped += n;
}

/* ---- framing -------------------------------------------------------------------- */

static int batch_room(mx_output *o, size_t n)
{
    if (o->blen + n <= BATCH_MAX || o->blen == 0) {
        if (o->blen + n > BATCH_MAX) {       /* one record larger than a batch */
            uint8_t *nb = realloc(o->batch, o->blen + n);
            if (!nb) return 0;
            o->batch = nb;
        }
        return 1;
    }
    return 0;
}

/* The RFC 5424 header: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD */
static size_t syslog_header(mx_output *o, char *out, size_t cap, uint64_t us, const char *tag, size_t taglen)
{
    time_t sec = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%06uZ", (unsigned)(us % 1000000u));
    char msgid[33];
    size_t ml = 0;
    for (size_t i = 0; i < taglen && ml < 32; i++)
        if (tag[i] >= 33 && tag[i] <= 126) msgid[ml++] = tag[i];
    if (!ml) msgid[ml++] = '-';
    msgid[ml] = 0;
    int w = snprintf(out, cap, "<%d>1 %s %s %s %ld %s - ", o->sp.facility * 8 + o->sp.severity, ts,
                     o->hostname, o->sp.app_name, o->pid, msgid);
    return w < 0 ? 0 : (size_t)w;
}

/* Moves records from the ring into the batch, framed for the kind; under mu. */
static void fill_batch(mx_output *o)
{
    while (o->qused && o->nrec < BATCH_RECS) {
        uint8_t hdr[REC_HDR];
        size_t h = o->qhead;
        for (size_t i = 0; i < REC_HDR; i++) hdr[i] = o->ring[(h + i) % o->qcap];
        uint32_t len;
        uint64_t us;
        memcpy(&len, hdr, 4);
        memcpy(&us, hdr + 4, 8);
        size_t taglen = hdr[12];
        char sh[400];
        size_t shl = 0;
        if (o->sp.kind == MX_OUT_SYSLOG_UDP || o->sp.kind == MX_OUT_SYSLOG_TCP) {
            char tag[256];
            for (size_t i = 0; i < taglen; i++) tag[i] = (char)o->ring[(h + REC_HDR + i) % o->qcap];
            shl = syslog_header(o, sh, sizeof sh, us, tag, taglen);
        }
        char pre[24];
        size_t pl = 0;
        if (o->sp.kind == MX_OUT_SYSLOG_TCP) pl = (size_t)snprintf(pre, sizeof pre, "%zu ", shl + len);
        size_t tail = o->sp.kind == MX_OUT_UNIX ? 1 : 0;
        size_t need = pl + shl + len + tail;
        if (!batch_room(o, need)) break;
        ring_get(o, hdr, REC_HDR);
        char tagbuf[256];
        ring_get(o, tagbuf, taglen);
        rec_ref *r = &o->brec[o->nrec++];
        r->off = o->blen;
        memcpy(o->batch + o->blen, pre, pl);
        memcpy(o->batch + o->blen + pl, sh, shl);
        ring_get(o, o->batch + o->blen + pl + shl, len);
        if (tail) o->batch[o->blen + pl + shl + len] = '\n';
        o->blen += need;
        r->len = need;
    }
}

/* Forgets the first n records of the batch. */
static void batch_shift(mx_output *o, size_t n)
{
    if (!n) return;
    if (n >= o->nrec) { o->nrec = o->rsent = 0; o->blen = o->bsent = 0; return; }
    size_t cut = o->brec[n].off;
    memmove(o->batch, o->batch + cut, o->blen - cut);
    o->blen -= cut;
    o->bsent = o->bsent > cut ? o->bsent - cut : 0;
    for (size_t i = n; i < o->nrec; i++) { o->brec[i - n] = o->brec[i]; o->brec[i - n].off -= cut; }
    o->nrec -= n;
    o->rsent = o->rsent > n ? o->rsent - n : 0;
}

enum { SEND_OK, SEND_SLOW, SEND_BROKEN };

/* Sends the batch; *done is how many records from its start were delivered
 * (or, for a record refused by the collector, dropped: *refused). */
static int send_batch(mx_output *o, size_t *done, size_t *refused, char *err, size_t cap)
{
    *done = *refused = 0;
    if (o->sp.kind == MX_OUT_REDIS) {
        size_t ok = 0, rf = 0;
        int r = mx_redis_send(o->redis, &o->sp, o->batch, o->brec, o->nrec, &ok, &rf, err, cap);
        *done = ok;
        *refused = rf;
        return r == 0 ? SEND_OK : SEND_BROKEN;
    }
    if (o->sp.kind == MX_OUT_UNIX || o->sp.kind == MX_OUT_SYSLOG_TCP) {
        while (o->bsent < o->blen) {
            ssize_t w = send(o->sock, o->batch + o->bsent, o->blen - o->bsent, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (w <= 0) {
                snprintf(err, cap, "%s", w < 0 ? strerror(errno) : "closed");
                /* what is partly sent goes again whole on the next connection */
                size_t full = 0;
                while (full < o->nrec && o->brec[full].off + o->brec[full].len <= o->bsent) full++;
                *done = full;
                o->bsent = full < o->nrec ? o->brec[full].off : o->blen;
                return SEND_BROKEN;
            }
            o->bsent += (size_t)w;
        }
        size_t full = 0;
        while (full < o->nrec && o->brec[full].off + o->brec[full].len <= o->bsent) full++;
        *done = full;
        return o->bsent < o->blen ? SEND_SLOW : SEND_OK;
    }
    /* one datagram per record */
    size_t i = 0;
    while (i < o->nrec) {
        rec_ref *r = &o->brec[i];
        ssize_t w = send(o->sock, o->batch + r->off, r->len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) { *done = i; return SEND_SLOW; }
        if (w < 0 && errno == EMSGSIZE) {
            /* the record cannot be one datagram: it is counted as dropped */
            if (!*refused) snprintf(err, cap, "a record of %zu bytes is too large for a datagram", r->len);
            (*refused)++;
            i++;
            continue;
        }
        if (w < 0) {
            snprintf(err, cap, "%s", strerror(errno));
            *done = i;
            return SEND_BROKEN;
        }
        i++;
    }
    *done = i;
    return SEND_OK;
}

/* ---- the writer thread ------------------------------------------------------------- */

static void wait_until(mx_output *o, uint64_t when_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = now_ms();
    if (when_ms <= now) return;
    uint64_t d = when_ms - now;
    ts.tv_sec += (time_t)(d / 1000);
    ts.tv_nsec += (long)(d % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(&o->cv, &o->mu, &ts);
}

static void go_down(mx_output *o, const char *why)
{
    if (!o->down) {
        char w[300];
        snprintf(w, sizeof w, "%s", why);
        mx_output_clean_msg(w);
        why = w;
        o->down = 1;
        o->down_since_ms = now_ms();
        o->st.outages++;
        o->rep_outage = 1;
        fprintf(stderr, "mxtrace: output %s: collector unreachable (%s); retrying, records are queued and dropped when the queue is full\n",
                o->name, why);
    }
}

static void go_up(mx_output *o)
{
    if (o->down) {
        o->down = 0;
        fprintf(stderr, "mxtrace: output %s: collector back after %.1f s\n", o->name,
                (double)(now_ms() - o->down_since_ms) / 1000.0);
    }
    o->backoff_ms = BACKOFF_MIN_MS;
}

static void *writer(void *arg)
{
    mx_output *o = arg;
    char err[300];
    pthread_mutex_lock(&o->mu);
    for (;;) {
        int connected = o->redis || o->sock >= 0;
        /* while the collector is away, records wait in the ring (whose size
         * is the bound), not in the batch */
        if (connected) fill_batch(o);
        if (!o->nrec && !o->qused) {
            if (o->stop) break;
            pthread_cond_wait(&o->cv, &o->mu);
            continue;
        }
        uint64_t now = now_ms();
        if (o->stop) {
            /* the end of the run: wait up to flush= for a live collector,
             * give a lost one one more try, then count the rest as dropped */
            if (o->down >= 2 || now >= o->stop_deadline_ms) {
                size_t left = o->nrec;
                while (o->qused) { ring_drop_head(o); left++; }
                count_drop(o, left);
                batch_shift(o, o->nrec);
                break;
            }
            if (o->down && !connected) o->next_try_ms = now;
        }
        if (!connected) {
            if (now < o->next_try_ms) { wait_until(o, o->next_try_ms); continue; }
            pthread_mutex_unlock(&o->mu);
            int ok = net_connect(o, err, sizeof err);
            pthread_mutex_lock(&o->mu);
            if (!ok) {
                go_down(o, err);
                if (o->stop) o->down = 2;            /* the last try failed */
                o->next_try_ms = now_ms() + o->backoff_ms;
                o->backoff_ms = o->backoff_ms * 2 > o->sp.backoff_max_ms ? o->sp.backoff_max_ms : o->backoff_ms * 2;
                continue;
            }
            go_up(o);
        }
        pthread_mutex_unlock(&o->mu);
        size_t done = 0, refused = 0;
        int r = send_batch(o, &done, &refused, err, sizeof err);
        pthread_mutex_lock(&o->mu);
        o->st.delivered += done - (refused < done ? refused : done);
        if (refused) {
            count_drop(o, refused);
            mx_output_clean_msg(err);       /* the server's own words */
            if (!o->refusal_said++)
                fprintf(stderr, "mxtrace: output %s: %s (such records are dropped and counted)\n", o->name, err);
        }
        batch_shift(o, done);
        if (r == SEND_BROKEN) {
            pthread_mutex_unlock(&o->mu);
            net_disconnect(o);
            pthread_mutex_lock(&o->mu);
            go_down(o, err);
            o->next_try_ms = now_ms();              /* at once, then back off */
        } else if (r == SEND_SLOW) {
            wait_until(o, now_ms() + 10);
        }
    }
    pthread_mutex_unlock(&o->mu);
    net_disconnect(o);
    return NULL;
}

/* ---- the API ---------------------------------------------------------------------- */

static mx_output *new_output(void)
{
    mx_output *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->fd = -1;
    o->sock = -1;
    o->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&o->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cv, &ca);
    pthread_condattr_destroy(&ca);
    return o;
}

mx_output *mx_output_stream(FILE *f, const char *name)
{
    mx_output *o = new_output();
    if (!o) return NULL;
    o->sp.kind = MX_OUT_STREAM;
    o->f = f;
    o->tty = isatty(fileno(f));
    snprintf(o->name, sizeof o->name, "%s", name);
    return o;
}

mx_output *mx_output_open(const mx_output_spec *sp, char *err, size_t cap)
{
    mx_output *o = new_output();
    if (!o) { snprintf(err, cap, "out of memory"); return NULL; }
    o->sp = *sp;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == sp->kind) snprintf(o->name, sizeof o->name, "%s:%s", kinds[i].name, sp->target);
    mx_output_clean_msg(o->name);
    char why[1200];
    if (sp->kind == MX_OUT_FILE) {
        if (!file_open(o, why, sizeof why)) goto fail;
        cookie_io_functions_t io = { .write = cookie_file_write };
        o->f = fopencookie(o, "w", io);
        if (!o->f) { snprintf(why, sizeof why, "out of memory"); goto fail; }
        setvbuf(o->f, NULL, _IOFBF, 1 << 16);
        o->hup_gen = (unsigned)hup_count;
        o->owns_f = 1;
        return o;
    }
#ifndef MX_HAVE_HIREDIS
    if (sp->kind == MX_OUT_REDIS) { snprintf(why, sizeof why, "this mxtrace was built without hiredis"); goto fail; }
#endif
    gethostname(o->hostname, sizeof o->hostname - 1);
    if (!o->hostname[0]) snprintf(o->hostname, sizeof o->hostname, "-");
    for (char *p = o->hostname; *p; p++) if (*p < 33 || *p > 126) *p = '_';
    o->pid = (long)getpid();
    o->qcap = (size_t)sp->queue_bytes;
    o->ring = malloc(o->qcap);
    o->batch = malloc(BATCH_MAX);
    if (!o->ring || !o->batch) { snprintf(why, sizeof why, "out of memory for a queue of %zu bytes", o->qcap); goto fail; }
    /* The collector must be there at the start; later it may come and go. */
    if (!net_connect(o, why, sizeof why)) goto fail;
    cookie_io_functions_t io = { .write = cookie_rec_write };
    o->f = fopencookie(o, "w", io);
    if (!o->f) { snprintf(why, sizeof why, "out of memory"); goto fail; }
    setvbuf(o->f, NULL, _IOFBF, 1 << 16);
    o->owns_f = 1;
    if (pthread_create(&o->th, NULL, writer, o) != 0) { snprintf(why, sizeof why, "cannot start its writer thread"); goto fail; }
    o->thread_up = 1;
    return o;
fail:
    snprintf(err, cap, "output %s: %s", o->name, why);
    mx_output_clean_msg(err);
    mx_output_free(o);
    return NULL;
}

FILE *mx_output_file(mx_output *o) { return o->f; }
int mx_output_failed(const mx_output *o) { return o->failed || (o->sp.kind == MX_OUT_STREAM && ferror(o->f)); }
int mx_output_errno(const mx_output *o) { return o->fail_errno; }
const char *mx_output_name(const mx_output *o) { return o->name; }
int mx_output_is_tty(const mx_output *o) { return o->tty; }

void mx_output_commit(mx_output *o, const char *tag)
{
    o->st.records++;
    switch (o->sp.kind) {
    case MX_OUT_STREAM:
        return;
    case MX_OUT_FILE: {
        int hup = o->hup_gen != (unsigned)hup_count;
        int big = o->sp.rotate_size && o->fbytes + __fpending(o->f) >= o->sp.rotate_size;
        int old = o->sp.rotate_time && time(NULL) - o->fopened >= (time_t)o->sp.rotate_time;
        if (!hup && !big && !old) return;
        if (fflush(o->f) != 0) o->failed = 1;
        if (hup) {
            o->hup_gen = (unsigned)hup_count;
            char err[1200];
            if (!file_open(o, err, sizeof err)) { fprintf(stderr, "mxtrace: output %s: %s\n", o->name, err); o->failed = 1; }
        } else {
            file_rotate(o);
        }
        return;
    }
    default:
        break;
    }
    if (fflush(o->f) != 0) { o->rlen = 0; return; }
    size_t n = o->rlen;
    if (n && o->rec[n - 1] == '\n') n--;        /* records are framed by the kind */
    size_t taglen = tag ? strlen(tag) : 0;
    if (taglen > 255) taglen = 255;
    size_t need = REC_HDR + taglen + n;
    pthread_mutex_lock(&o->mu);
    if (need > o->qcap) {
        count_drop(o, 1);
    } else {
        if (o->qcap - o->qused < need) {
            if (o->sp.drop_oldest) {
                while (o->qcap - o->qused < need) { ring_drop_head(o); count_drop(o, 1); }
            } else {
                count_drop(o, 1);
                need = 0;
            }
        }
        if (need) {
            uint8_t hdr[REC_HDR];
            uint32_t len = (uint32_t)n;
            uint64_t us = wall_us();
            memcpy(hdr, &len, 4);
            memcpy(hdr + 4, &us, 8);
            hdr[12] = (uint8_t)taglen;
            ring_put(o, hdr, REC_HDR);
            ring_put(o, tag, taglen);
            ring_put(o, o->rec, n);
            pthread_cond_signal(&o->cv);
        }
    }
    pthread_mutex_unlock(&o->mu);
    o->rlen = 0;
}

int mx_output_drop_report(mx_output *o, uint64_t *dropped, uint64_t *first_us, int *outage, int final)
{
    if (!o->thread_up) return 0;
    int r = 0;
    pthread_mutex_lock(&o->mu);
    /* said once the collector takes records again and the queue has room,
     * at most once a second */
    uint64_t now = now_ms();
    if (o->rep_dropped && !o->down &&
        (final || (o->qused < o->qcap / 2 && (!o->rep_last_ms || now - o->rep_last_ms >= 1000)))) {
        o->rep_last_ms = now;
        *dropped = o->rep_dropped;
        *first_us = o->rep_first_us;
        *outage = o->rep_outage;
        o->rep_dropped = 0;
        o->rep_outage = 0;
        r = 1;
    }
    pthread_mutex_unlock(&o->mu);
    return r;
}

void mx_output_close(mx_output *o, mx_output_stats *st)
{
    if (!o) return;
    if (o->f && o->sp.kind == MX_OUT_STREAM) {
        if (fflush(o->f) != 0) o->failed = 1;
    } else if (o->f && o->owns_f) {
        if (fflush(o->f) != 0 && o->sp.kind == MX_OUT_FILE) o->failed = 1;
    }
    if (o->thread_up) {
        pthread_mutex_lock(&o->mu);
        o->stop = 1;
        o->stop_deadline_ms = now_ms() + o->sp.flush_ms;
        pthread_cond_signal(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->th, NULL);
        o->thread_up = 0;
    }
    if (st) {
        pthread_mutex_lock(&o->mu);
        *st = o->st;
        if (o->sp.kind == MX_OUT_STREAM || o->sp.kind == MX_OUT_FILE) st->delivered = st->records;
        pthread_mutex_unlock(&o->mu);
    }
}

void mx_output_free(mx_output *o)
{
    if (!o) return;
    if (o->thread_up) mx_output_close(o, NULL);
    if (o->owns_f && o->f) fclose(o->f);
    if (o->fd >= 0) close(o->fd);
    net_disconnect(o);
    free(o->rec);
    free(o->ring);
    free(o->batch);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}
