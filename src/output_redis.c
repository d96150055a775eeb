/* output_redis.c - Redis through hiredis: pipelined commands, one per record. */
#include "output_redis.h"

#include <stdio.h>
#include <string.h>

#ifdef MX_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <sys/time.h>

void *mx_redis_connect(const mx_output_spec *sp, char *err, size_t cap)
{
    struct timeval tv = { 2, 0 };
    redisContext *c;
    if (sp->target[0] == '/') {
        c = redisConnectUnixWithTimeout(sp->target, tv);
    } else {
        char host[256];
        int port = 6379;
        const char *t = sp->target, *colon = strrchr(t, ':');
        size_t hl;
        if (*t == '[') {
            const char *e = strchr(t, ']');
            if (!e) { snprintf(err, cap, "target is HOST[:PORT] or a socket path"); return NULL; }
            t++;
            hl = (size_t)(e - t);
            colon = e[1] == ':' ? e + 1 : NULL;
        } else {
            hl = colon ? (size_t)(colon - t) : strlen(t);
        }
        if (!hl || hl >= sizeof host) { snprintf(err, cap, "target is HOST[:PORT] or a socket path"); return NULL; }
        memcpy(host, t, hl);
        host[hl] = 0;
        if (colon) {
            char *end;
            long p = strtol(colon + 1, &end, 10);
            if (*end || p < 1 || p > 65535) { snprintf(err, cap, "bad port '%s'", colon + 1); return NULL; }
            port = (int)p;
        }
        c = redisConnectWithTimeout(host, port, tv);
    }
    if (!c) { snprintf(err, cap, "out of memory"); return NULL; }
    if (c->err) {
        snprintf(err, cap, "cannot connect: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    struct timeval cmd = { 2, 0 };
    redisSetTimeout(c, cmd);
    return c;
}

int mx_redis_send(void *vc, const mx_output_spec *sp, const unsigned char *batch, const struct rec_ref *refs,
                  size_t n, size_t *ok, size_t *refused, char *err, size_t cap)
{
    redisContext *c = vc;
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%llu", (unsigned long long)sp->maxlen);
    *ok = *refused = 0;
    for (size_t i = 0; i < n; i++) {
        const char *argv[8];
        size_t lens[8];
        int argc = 0;
#define ARG(s, l) (argv[argc] = (s), lens[argc] = (l), argc++)
        const char *rec = (const char *)batch + refs[i].off;
        switch (sp->redis_mode) {
        case MX_REDIS_CHANNEL: ARG("PUBLISH", 7); break;
        case MX_REDIS_STREAM: ARG("XADD", 4); break;
        default: if (sp->redis_lpush) ARG("LPUSH", 5); else ARG("RPUSH", 5); break;
        }
        ARG(sp->key, strlen(sp->key));
        if (sp->redis_mode == MX_REDIS_STREAM) {
            if (sp->maxlen) { ARG("MAXLEN", 6); ARG("~", 1); ARG(maxlen, strlen(maxlen)); }
            ARG("*", 1);
            ARG("event", 5);
        }
        ARG(rec, refs[i].len);
#undef ARG
        if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) {
            snprintf(err, cap, "%s", c->errstr[0] ? c->errstr : "out of memory");
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK || !r) {
            snprintf(err, cap, "%s", c->errstr[0] ? c->errstr : "connection lost");
            if (r) freeReplyObject(r);
            return -1;
        }
        redisReply *rr = r;
        if (rr->type == REDIS_REPLY_ERROR) {
            if (!*refused) snprintf(err, cap, "the server refused a record: %.200s", rr->str);
            (*refused)++;
        }
        freeReplyObject(r);
        (*ok)++;
    }
    return 0;
}

void mx_redis_free(void *c) { if (c) redisFree(c); }

#else

void *mx_redis_connect(const mx_output_spec *sp, char *err, size_t cap)
{
    (void)sp;
    snprintf(err, cap, "this mxtrace was built without hiredis");
    return NULL;
}

int mx_redis_send(void *c, const mx_output_spec *sp, const unsigned char *batch, const struct rec_ref *refs,
                  size_t n, size_t *ok, size_t *refused, char *err, size_t cap)
{
    (void)c; (void)sp; (void)batch; (void)refs; (void)n;
    *ok = *refused = 0;
    snprintf(err, cap, "no hiredis");
    return -1;
}

void mx_redis_free(void *c) { (void)c; }

#endif
