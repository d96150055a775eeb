/* Unit tests: the event builder and its arena (event.c), through the sink.
 *
 * Events with more nodes than one node block, texts larger than one text
 * block, an event large enough to make the sink trim its arena afterwards,
 * events begun inside other events, and the cap on events per session: the
 * printed JSON must parse back to exactly what was put in. */
#include "check.h"
#include "harness.h"
#include "mx/event.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

/* Splits the harness output into lines and parses line i. */
static cJSON *line(const char *out, int i)
{
    const char *p = out;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p || !*p) return NULL;
    const char *e = strchr(p, '\n');
    return cJSON_ParseWithLength(p, e ? (size_t)(e - p) : strlen(p));
}

static int nlines(const char *out)
{
    int n = 0;
    for (const char *p = out; *p; p++) n += *p == '\n';
    return n;
}

int main(void)
{
    mx_harness h;
    mxh_init(&h, 0, 0);
    mx_sess *s = &h.sess;
    enum { N = 1000, BIG = 100 * 1000, HUGE = 3 * 1000 * 1000 };
    char *big = malloc(HUGE);
    CHECK(big != NULL, "memory");
    for (int i = 0; i < HUGE; i++) big[i] = (char)('a' + i % 26);
    big[5] = '"';                 /* needs escaping */
    big[6] = '\n';

    /* 1: many nodes (several node blocks) */
    mx_ev *ev = mx_ev_begin(s, MX_EV_SMTP_COMMAND, MX_CLIENT);
    mx_ev *a = mx_ev_arr(ev, "n");
    for (int i = 0; i < N; i++) mx_ev_push_int(a, i);
    mx_ev *o = mx_ev_obj(ev, "o");
    for (int i = 0; i < N; i++) {
        mx_ev *x = mx_ev_push_obj(mx_ev_arr(o, "list"));
        mx_ev_str(x, "s", "value");
    }
    mx_ev_str(ev, "after", "nested objects were closed");
    mx_ev_end(s, ev);

    /* 2: a text larger than a text block, and a cut one */
    ev = mx_ev_begin(s, MX_EV_SMTP_REPLY, MX_SERVER);
    mx_ev_wire(ev, "w", (const uint8_t *)big, BIG, BIG);
    mx_ev_wire(ev, "cut", (const uint8_t *)big, BIG, 10);
    mx_ev_end(s, ev);

    /* 3: a huge event (the arena is trimmed after it), then a small one */
    ev = mx_ev_begin(s, MX_EV_SMTP_DATA, MX_NODIR);
    mx_ev_wire(ev, "w", (const uint8_t *)big, HUGE, HUGE);
    mx_ev_end(s, ev);
    ev = mx_ev_begin(s, MX_EV_TCP_FIN, MX_NODIR);
    mx_ev_int(ev, "k", -42);
    mx_ev_int(ev, "large", 1LL << 60);
    mx_ev_seconds(ev, "sec", 1500000);
    mx_ev_bool(ev, "yes", 1);
    mx_ev_null(ev, "nothing");
    mx_ev_lit(ev, "lit", "literal");
    mx_ev_end(s, ev);

    /* 4: an event begun and ended while another is open */
    mx_ev *outer = mx_ev_begin(s, MX_EV_TLS_ALERT, MX_NODIR);
    mx_ev_str(outer, "before", "x");
    mx_ev *inner = mx_ev_begin(s, MX_EV_ANOMALY, MX_NODIR);
    mx_ev_str(inner, "k", "inner value");
    mx_ev_end(s, inner);
    mx_ev_str(outer, "after", "outer still whole");
    mx_ev_end(s, outer);

    fflush(h.out);
    const char *out = h.buf;
    CHECK(nlines(out) == 6, "six events written");

    cJSON *j = line(out, 0);
    CHECK(j != NULL, "many-node event parses");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "n");
    CHECK(cJSON_GetArraySize(n) == N, "all array items");
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= cJSON_GetArrayItem(n, i)->valuedouble == i;
    CHECK(ok, "array items in order");
    const cJSON *lists = cJSON_GetObjectItemCaseSensitive(j, "o");
    CHECK(cJSON_GetArraySize(lists) == N, "nested objects kept");
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "after")), "nested objects were closed") == 0,
          "key after the nested ones");
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "from")), "client") == 0, "from");
    cJSON_Delete(j);

    j = line(out, 1);
    const char *w = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "w"));
    CHECK(w && strlen(w) == BIG && memcmp(w, big, BIG) == 0, "big text intact, escaped and back");
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "cut"));
    CHECK(c && strlen(c) == 10 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "cut_truncated")), "cut text flagged");
    cJSON_Delete(j);

    j = line(out, 2);
    w = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "w"));
    CHECK(w && strlen(w) == HUGE && memcmp(w, big, HUGE) == 0, "huge text intact");
    cJSON_Delete(j);

    j = line(out, 3);
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "k")->valuedouble == -42, "negative integer");
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "large")), "1152921504606846976") == 0,
          "integer over 2^53 as a string");
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "sec")->valuedouble == 1.5, "seconds");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "yes")), "bool");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "nothing")), "null");
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "lit")), "literal") == 0, "literal");
    CHECK(!cJSON_GetObjectItemCaseSensitive(j, "from"), "no from without a direction");
    cJSON_Delete(j);

    j = line(out, 4);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "type")), "anomaly") == 0 &&
          strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "k")), "inner value") == 0,
          "inner event written first");
    cJSON_Delete(j);
    j = line(out, 5);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "before")), "x") == 0 &&
          strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "after")), "outer still whole") == 0,
          "outer event survives the inner one");
    cJSON_Delete(j);

    /* the cap on events: one limit event, then nothing but session.end */
    h.opt.lim.max_events = s->nevents + 2;
    for (int i = 0; i < 10; i++) {
        ev = mx_ev_begin(s, MX_EV_TCP_GAP, MX_NODIR);
        mx_ev_int(ev, "i", i);
        mx_ev_end(s, ev);
    }
    out = mxh_finish(&h);
    int capped = 0, limits = 0;
    for (const char *p = out; (p = strstr(p, "\"type\":")); p++) {
        if (strncmp(p, "\"type\":\"tcp.gap\"", 16) == 0) capped++;
        if (strncmp(p, "\"type\":\"limit\"", 14) == 0) limits++;
    }
    CHECK(capped == 2 && limits == 1, "max_events: two events, one limit event");
    CHECK(strstr(out, "\"type\":\"session.end\"") != NULL, "session.end still written");
    mxh_free(&h);
    free(big);
    {   /* a worker's session id as a marker and back, at every width and
         * over the whole 56-bit range of its numbers */
        uint64_t x = 0x9E3779B97F4A7C15ull;
        int good = 1;
        for (int i = 0; i < 100000 && good; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            uint64_t id = i < 64 ? (i < 56 ? 1ull << i : (uint64_t)i - 56) : x & ((1ull << 56) - 1);
            int width = i % 32, w2 = -1;
            char t[32];
            size_t tl = mx_sid_text(MX_SID_HANDLE | id, width, t);
            uint64_t back = mx_sid_mark_read(t, &w2);
            good = tl == MX_SID_MARK_LEN && t[0] == MX_SID_MARK && (back & ~MX_SID_HANDLE) == id && w2 == width;
            if (!good) fprintf(stderr, "id %llx width %d: read %llx width %d\n", (unsigned long long)id, width,
                             (unsigned long long)back, w2);
        }
        CHECK(good, "session id markers read back as written");
    }
    return CHECK_DONE();
}
