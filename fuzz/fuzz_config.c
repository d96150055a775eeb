/* fuzz_config.c - the --output option parser and the --config JSON reader.
 *
 * The first byte chooses: even, the rest is one --output argument; odd, it
 * is the text of a configuration file.  Nothing is opened or connected.
 * Invariants: a refusal leaves a one-line message; an accepted spec has a
 * known kind, a target, a format the sink knows, and sizes in range. */
#include "mx/config.h"
#include "mx/output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(m) do { fprintf(stderr, "fuzz invariant: %s\n", m); abort(); } while (0)

static void check_spec(const mx_output_spec *sp)
{
    if (sp->kind < MX_OUT_FILE || sp->kind > MX_OUT_REDIS) FAIL("unknown kind accepted");
    if (!sp->target[0] || !memchr(sp->target, 0, sizeof sp->target)) FAIL("empty or unterminated target");
    static const char *const fmts[] = { "", "ndjson", "timeline", "ecs", "text", "summary", "html" };
    int ok = 0;
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) ok |= !strcmp(sp->format, fmts[i]);
    if (!ok) FAIL("unknown format accepted");
    if (sp->kind != MX_OUT_FILE && (sp->queue_bytes < 4096 || sp->queue_bytes > (1ull << 32))) FAIL("queue size out of range");
    if (sp->facility < 0 || sp->facility > 23 || sp->severity < 0 || sp->severity > 7) FAIL("syslog priority out of range");
    if (!sp->app_name[0] || !sp->key[0]) FAIL("empty app-name or key");
}

static void check_err(const char *err)
{
    if (!memchr(err, 0, 1024)) FAIL("unterminated message");
    if (!err[0]) FAIL("refused without a message");
    if (strchr(err, '\n')) FAIL("message of more than one line");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    char *txt = malloc(size);
    if (!txt) return 0;
    memcpy(txt, data + 1, size - 1);
    txt[size - 1] = 0;
    char err[1024] = "";
    if (!(data[0] & 1)) {
        mx_output_spec sp;
        if (mx_output_parse(txt, &sp, err, sizeof err)) check_spec(&sp);
        else check_err(err);
    } else {
        mx_output_spec specs[8];
        int n = 0;
        if (mx_config_parse(txt, "fuzz.json", specs, &n, 8, err, sizeof err)) {
            if (n < 0 || n > 8) FAIL("output count out of range");
            for (int i = 0; i < n; i++) check_spec(&specs[i]);
        } else {
            check_err(err);
        }
    }
    free(txt);
    return 0;
}
