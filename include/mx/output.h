/* output.h - transports: where rendered bytes go (output layer).
 *
 * An output carries records, the unit a renderer finishes: one event (ndjson,
 * ecs), one session (timeline, text, summary) or one part of the HTML report.
 * The renderer writes a record into mx_output_stream() and ends it with
 * mx_output_commit(); nothing here knows JSON.
 *
 * Kinds:
 *   stdout / stream   a FILE* owned by the caller (-o FILE, standard output)
 *   file              appended to; rotated by size or time; reopened on SIGHUP
 *   unix, unix-dgram  a Unix socket: newline-framed stream, or one datagram
 *                     per record
 *   syslog-udp/-tcp   RFC 5424 messages, the record as MSG; TCP with RFC 6587
 *                     octet counting
 *   redis             RPUSH/LPUSH to a list, PUBLISH, or XADD with MAXLEN
 *
 * Network kinds never block the caller: a record is copied into the output's
 * bounded queue, which a writer thread empties.  When the queue is full the
 * newest (drop=newest, the default) or the oldest (drop=oldest) records are
 * dropped and counted; an outage is reported once on stderr when it starts
 * and when it ends, and an output.drop record follows in the output itself.
 */
#ifndef MX_OUTPUT_H
#define MX_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum mx_output_kind {
    MX_OUT_STREAM = 0,      /* caller's FILE*: stdout or -o            */
    MX_OUT_FILE,
    MX_OUT_UNIX,
    MX_OUT_UNIX_DGRAM,
    MX_OUT_SYSLOG_UDP,
    MX_OUT_SYSLOG_TCP,
    MX_OUT_REDIS,
} mx_output_kind;

enum mx_redis_mode { MX_REDIS_LIST = 0, MX_REDIS_CHANNEL, MX_REDIS_STREAM };

typedef struct mx_output_spec {
    mx_output_kind kind;
    char target[512];           /* path, host:port                         */
    char format[16];            /* renderer name; "" = ndjson              */
    /* file */
    uint64_t rotate_size;       /* bytes; 0 = never                         */
    uint32_t rotate_time;       /* seconds; 0 = never                       */
    /* network */
    uint64_t queue_bytes;       /* bounded queue                            */
    int drop_oldest;
    uint32_t flush_ms;          /* how long the end of the run waits        */
    uint32_t backoff_max_ms;    /* reconnect back-off ceiling               */
    /* syslog */
    int facility, severity;
    char app_name[49];
    /* redis */
    int redis_mode;
    int redis_lpush;
    char key[256];
    uint64_t maxlen;            /* stream MAXLEN ~; 0 = none                */
} mx_output_spec;

typedef struct mx_output mx_output;

typedef struct mx_output_stats {
    uint64_t records;           /* committed                               */
    uint64_t delivered;         /* handed to the collector                  */
    uint64_t dropped;           /* lost: queue full, too large, or at exit  */
    uint64_t outages;
    uint64_t rotations;
} mx_output_stats;

/* Parses KIND:TARGET[,key=value...]; 0 and a message in err if it cannot. */
int mx_output_parse(const char *arg, mx_output_spec *sp, char *err, size_t cap);
/* Opens (connects) the output; NULL and a message in err if it cannot. */
mx_output *mx_output_open(const mx_output_spec *sp, char *err, size_t cap);
/* An output over a caller's FILE* (not closed by mx_output_close). */
mx_output *mx_output_stream(FILE *f, const char *name);
/* Where the next record is written. */
FILE *mx_output_file(mx_output *o);
/* Ends the record written since the last commit; tag is a short name of what
 * it holds (the event type, "session"), used as the syslog MSGID. */
void mx_output_commit(mx_output *o, const char *tag);
/* Once the collector takes records again after some were dropped: how many
 * (since the last report), when the first was, and whether the collector was
 * unreachable (else the queue was full); 0 when there is nothing to say.
 * At most one report a second, unless final (the end of the run). */
int mx_output_drop_report(mx_output *o, uint64_t *dropped, uint64_t *first_us, int *outage, int final);
/* Non-zero once a write to a stream or file output failed. */
int mx_output_failed(const mx_output *o);
/* The errno of a file output's first failed write (0 if not known). */
int mx_output_errno(const mx_output *o);
const char *mx_output_name(const mx_output *o);
int mx_output_is_tty(const mx_output *o);
/* Sends what is queued (waiting at most flush= for the collector), stops the
 * writer, and fills st; the output stays valid for stats until freed. */
void mx_output_close(mx_output *o, mx_output_stats *st);
void mx_output_free(mx_output *o);

/* Rewrites control characters in a message (one that quotes the user's or
 * a file's text) so that it stays one line on stderr. */
void mx_output_clean_msg(char *s);

/* SIGHUP: file outputs close and reopen their file at their next record. */
void mx_output_reopen_all(void);

#endif
