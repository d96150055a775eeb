/* Unit tests: the JSON writer (render_json.c) against cJSON's printer.
 *
 * The goldens were written by cJSON; the writer must give the same bytes.
 * Random trees (nested objects and arrays, strings with quotes, control
 * characters, DEL, multi-byte UTF-8 and the line separators, integers,
 * microsecond times, doubles of every kind) are built twice, as event nodes
 * and as cJSON items, and printed both ways, compact and indented.  cJSON's
 * text gets the one rewrite mxtrace adds (U+0085, U+2028 and U+2029 as \u
 * escapes) by a plain search and replace here. */
#include "check.h"
#include "mx/event.h"
#include "render_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Pieces strings are made of: plain, JSON specials, controls, UTF-8. */
static const char *const piece[] = {
    "a", "Z", "9", " ", "mail", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f",
    "\xc3\xa9", "\xc2\xa0", "\xc2\x85", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\x99", "\xe2\x82\xac",
    "\xf0\x9f\x93\xa7", "<", ">", "&", "'",
};

static const char *const keys[] = {
    "type", "session", "ts", "t", "frame", "from", "code", "lines", "k\"q", "tab\tkey", "\xe2\x80\xa8sep", "",
};

static void rand_text(char *out, size_t cap)
{
    size_t n = 0, parts = rnd(8);
    out[0] = 0;
    for (size_t i = 0; i < parts; i++) {
        const char *p = piece[rnd(sizeof piece / sizeof *piece)];
        size_t l = strlen(p);
        if (n + l + 1 > cap) break;
        memcpy(out + n, p, l + 1);
        n += l;
    }
}

static double rand_double(void)
{
    switch (rnd(8)) {
    case 0: return (double)(int32_t)rnd(2000000) - 1000000;     /* integral */
    case 1: return (double)rnd(1000000) / 1000.0;
    case 2: return 1.0 / (double)(1 + rnd(97));
    case 3: return 3e300 * (double)rnd(5);
    case 4: return rnd(2) ? -1.5e-300 : -0.0;
    case 5: return 4294967296.0 + rnd(10);                        /* over int range */
    case 6: return rnd(2) ? NAN : INFINITY;
    default: return 0.1 * (double)rnd(100);
    }
}

/* A value of both kinds; depth limits nesting. */
static void value(mx_arena *a, int depth, mx_node **nv, cJSON **cv)
{
    char t[256];
    uint32_t kind = depth > 4 ? rnd(7) : rnd(9);
    switch (kind) {
    case 0: *nv = mx_node_new(a, MX_VT_NULL); *cv = cJSON_CreateNull(); break;
    case 1: { int b = (int)rnd(2); *nv = mx_node_new(a, b ? MX_VT_TRUE : MX_VT_FALSE); *cv = cJSON_CreateBool(b); break; }
    case 2: {
        int64_t i = (int64_t)((uint64_t)rnd(1u << 31) << rnd(23)) * (rnd(2) ? -1 : 1);
        if (rnd(4) == 0) i = rnd(2) ? INT64_MIN + 1 : (1LL << 53);
        *nv = mx_node_int(a, i);
        snprintf(t, sizeof t, "%lld", (long long)i);
        *cv = cJSON_CreateRaw(t);
        break;
    }
    case 3: {
        uint64_t us = rnd(4) == 0 ? (uint64_t)rnd(1000000) : (uint64_t)rnd(1u << 31) * (1 + rnd(1000));
        mx_node *n = mx_node_new(a, MX_VT_USEC);
        n->v.i = (int64_t)us;
        *nv = n;
        /* seconds, with the fraction's trailing zeros (and a bare point) dropped */
        int l = snprintf(t, sizeof t, "%llu.%06u", (unsigned long long)(us / 1000000), (unsigned)(us % 1000000));
        while (t[l - 1] == '0') t[--l] = 0;
        if (t[l - 1] == '.') t[--l] = 0;
        *cv = cJSON_CreateRaw(t);
        break;
    }
    case 4: {
        double d = rand_double();
        mx_node *n = mx_node_new(a, MX_VT_NUM);
        n->v.d = d;
        *nv = n;
        *cv = cJSON_CreateNumber(d);
        break;
    }
    case 5: case 6:
        rand_text(t, sizeof t);
        *nv = mx_node_str(a, t, strlen(t));
        *cv = cJSON_CreateString(t);
        break;
    default: {
        int isobj = kind == 7;
        mx_node *n = mx_node_new(a, isobj ? MX_VT_OBJ : MX_VT_ARR);
        cJSON *c = isobj ? cJSON_CreateObject() : cJSON_CreateArray();
        uint32_t m = rnd(6);
        for (uint32_t i = 0; i < m; i++) {
            mx_node *cn;
            cJSON *cc;
            value(a, depth + 1, &cn, &cc);
            const char *k = keys[rnd(sizeof keys / sizeof *keys)];
            mx_node_add(n, k, cn);
            if (isobj) cJSON_AddItemToObject(c, k, cc);
            else cJSON_AddItemToArray(c, cc);
        }
        *nv = n;
        *cv = c;
    }
    }
}

/* cJSON's text with the line separators escaped. */
static char *with_separators_escaped(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n * 3 + 1), *w = o;
    for (const char *p = s; *p;) {
        if (!strncmp(p, "\xe2\x80\xa8", 3)) { memcpy(w, "\\u2028", 6); w += 6; p += 3; }
        else if (!strncmp(p, "\xe2\x80\xa9", 3)) { memcpy(w, "\\u2029", 6); w += 6; p += 3; }
        else if (!strncmp(p, "\xc2\x85", 2)) { memcpy(w, "\\u0085", 6); w += 6; p += 2; }
        else *w++ = *p++;
    }
    *w = 0;
    return o;
}

int main(void)
{
    mx_arena a = { 0 };
    mx_buf b = { 0 };
    int same[2] = { 0, 0 }, trees = 3000;
    for (int i = 0; i < trees; i++) {
        mx_node *nv;
        cJSON *cv;
        /* the top is an object, as every event is; sometimes a bare value */
        if (i % 10) {
            nv = mx_node_new(&a, MX_VT_OBJ);
            cv = cJSON_CreateObject();
            uint32_t m = 1 + rnd(8);
            for (uint32_t j = 0; j < m; j++) {
                mx_node *cn;
                cJSON *cc;
                value(&a, 1, &cn, &cc);
                const char *k = keys[rnd(sizeof keys / sizeof *keys)];
                mx_node_add(nv, k, cn);
                cJSON_AddItemToObject(cv, k, cc);
            }
        } else {
            value(&a, 0, &nv, &cv);
        }
        for (int pretty = 0; pretty < 2; pretty++) {
            char *c = pretty ? cJSON_Print(cv) : cJSON_PrintUnformatted(cv);
            char *want = with_separators_escaped(c);
            b.len = 0;
            int ok = mx_json_write(&b, nv, pretty);
            int eq = ok && b.len == strlen(want) && !memcmp(b.p, want, b.len);
            if (!eq && same[pretty] >= 0) {
                fprintf(stderr, "tree %d (%s):\n cJSON: %s\n mine:  %s\n", i, pretty ? "indented" : "compact", want, ok ? b.p : "(failed)");
                same[pretty] = -1;
            }
            if (eq && same[pretty] >= 0) same[pretty]++;
            free(c);
            free(want);
        }
        cJSON_Delete(cv);
        mx_arena_reset(&a);
    }
    CHECK(same[0] == trees, "compact JSON equals cJSON's on every tree");
    CHECK(same[1] == trees, "indented JSON equals cJSON's on every tree");

    /* a node of a string with no text, and an empty object and array */
    mx_node *o = mx_node_new(&a, MX_VT_OBJ);
    mx_node_add(o, "e", mx_node_new(&a, MX_VT_OBJ));
    mx_node_add(o, "a", mx_node_new(&a, MX_VT_ARR));
    mx_node_add(o, "s", mx_node_str(&a, "", 0));
    b.len = 0;
    CHECK(mx_json_write(&b, o, 0) && !strcmp(b.p, "{\"e\":{},\"a\":[],\"s\":\"\"}"), "empty members: %s", b.p);

    /* reading: lookups by key, elements by position, numbers of every kind */
    mx_node *ev = mx_node_new(&a, MX_VT_OBJ);
    mx_node_add(ev, "code", mx_node_int(&a, 554));
    mx_node *t = mx_node_new(&a, MX_VT_USEC);
    t->v.i = 1500000;
    mx_node_add(ev, "t", t);
    mx_node *arr = mx_node_new(&a, MX_VT_ARR);
    mx_node_add(arr, "ignored", mx_node_lit(&a, "first"));
    mx_node_add(arr, NULL, mx_node_lit(&a, "second"));
    mx_node_add(ev, "lines", arr);
    char dyn[8] = "code";          /* a key at another address than the literal */
    CHECK(mx_node_getint(ev, dyn, 0) == 554, "lookup by an equal key at another address");
    CHECK(mx_node_getnum(ev, "t", 0) == 1.5, "microseconds read as seconds");
    CHECK(mx_node_getnum(ev, "missing", -1) == -1, "missing member: the default");
    CHECK(!strcmp(mx_node_text(mx_node_at(arr, 1)), "second") && !mx_node_at(arr, 2), "elements by position");
    CHECK(mx_node_at(arr, 0)->key == NULL, "array elements have no key");
    CHECK(arr->len == 2 && ev->len == 3, "member counts");
    CHECK(mx_node_get(arr, "first") == NULL && mx_node_gets(ev, "code") == NULL, "no lookups in arrays, no text of numbers");
    mx_node *r = mx_node_ref(&a, arr);
    mx_node *wrap = mx_node_new(&a, MX_VT_OBJ);
    mx_node_add(wrap, "copy", r);
    b.len = 0;
    CHECK(mx_json_write(&b, wrap, 0) && !strcmp(b.p, "{\"copy\":[\"first\",\"second\"]}"), "a reference shows the members: %s", b.p);
    b.len = 0;
    CHECK(mx_json_write(&b, ev, 0) && !strcmp(b.p, "{\"code\":554,\"t\":1.5,\"lines\":[\"first\",\"second\"]}"),
          "the original is unchanged by its reference: %s", b.p);

    mx_buf_free(&b);
    mx_arena_free(&a);
    return CHECK_DONE();
}
