/* fuzz_json.c - the JSON writer (src/render_json.c) against cJSON.
 *
 * The input is a little program that builds one tree twice, as event nodes
 * and as cJSON items: byte 0 chooses compact or indented output, then each
 * op byte opens an object or array (under a key from a fixed list), closes
 * one, or adds a string (its bytes cleaned by mx_text_clean, the one path
 * wire text takes), an integer, a microsecond time, a double, a boolean or
 * null.  Invariants: the writer's text is byte for byte cJSON's printer's
 * (with U+0085, U+2028 and U+2029 escaped, the one rewrite mxtrace adds),
 * and it parses back with cJSON to an equal tree. */
#include "mx/event.h"
#include "mx/text.h"
#include "render_json.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(m) do { fprintf(stderr, "fuzz invariant: %s\n", m); abort(); } while (0)

static const char *const keys[] = { "type", "t", "ts", "code", "k\"q", "", "\xe2\x80\xa8", "lines", "a\\b", "x" };

typedef struct rd { const uint8_t *p; size_t n, i; } rd;

static int byte(rd *r) { return r->i < r->n ? r->p[r->i++] : -1; }

static uint64_t u64(rd *r)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) { int b = byte(r); v = v << 8 | (uint64_t)(b < 0 ? 0 : b); }
    return v;
}

static char *escaped_seps(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n * 3 + 1), *w = o;
    if (!o) return NULL;
    for (const char *p = s; *p;) {
        if (!strncmp(p, "\xe2\x80\xa8", 3)) { memcpy(w, "\\u2028", 6); w += 6; p += 3; }
        else if (!strncmp(p, "\xe2\x80\xa9", 3)) { memcpy(w, "\\u2029", 6); w += 6; p += 3; }
        else if (!strncmp(p, "\xc2\x85", 2)) { memcpy(w, "\\u0085", 6); w += 6; p += 2; }
        else *w++ = *p++;
    }
    *w = 0;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 14) return 0;
    rd r = { data, size, 1 };
    int pretty = data[0] & 1;
    mx_arena a = { 0 };
    mx_node *nstack[16];
    cJSON *cstack[16];
    int depth = 0;
    nstack[0] = mx_node_new(&a, MX_VT_OBJ);
    cstack[0] = cJSON_CreateObject();
    if (!nstack[0] || !cstack[0]) FAIL("out of memory");
    int op;
    while ((op = byte(&r)) >= 0) {
        const char *key = keys[(op >> 4) % (sizeof keys / sizeof *keys)];
        mx_node *np = nstack[depth];
        cJSON *cp = cstack[depth];
        mx_node *nv = NULL;
        cJSON *cv = NULL;
        switch (op & 15) {
        case 0: case 1:
            if (depth == 15) continue;
            nv = mx_node_new(&a, (op & 15) == 0 ? MX_VT_OBJ : MX_VT_ARR);
            cv = (op & 15) == 0 ? cJSON_CreateObject() : cJSON_CreateArray();
            break;
        case 2:
            if (depth) depth--;
            continue;
        case 3: case 4: {
            int len = byte(&r);
            if (len < 0) len = 0;
            size_t in = (size_t)len;
            if (in > r.n - r.i) in = r.n - r.i;
            char buf[256 * 3 + 4];
            size_t outlen;
            mx_text_clean(r.p + r.i, in, in, buf, sizeof buf, &outlen);
            r.i += in;
            nv = mx_node_str(&a, buf, outlen);
            cv = cJSON_CreateString(buf);
            break;
        }
        case 5: {
            int64_t v = (int64_t)u64(&r);
            /* as mx_ev_int: beyond 2^53 a number would lose digits */
            if (v > (1LL << 53) || v < -(1LL << 53)) v %= (1LL << 53);
            char t[32];
            snprintf(t, sizeof t, "%lld", (long long)v);
            nv = mx_node_int(&a, v);
            cv = cJSON_CreateRaw(t);
            break;
        }
        case 6: {
            uint64_t us = u64(&r) >> 12;
            char t[48];
            int l = snprintf(t, sizeof t, "%llu.%06u", (unsigned long long)(us / 1000000), (unsigned)(us % 1000000));
            while (t[l - 1] == '0') t[--l] = 0;
            if (t[l - 1] == '.') t[--l] = 0;
            nv = mx_node_new(&a, MX_VT_USEC);
            if (nv) nv->v.i = (int64_t)us;
            cv = cJSON_CreateRaw(t);
            break;
        }
        case 7: {
            uint64_t bits = u64(&r);
            double d;
            memcpy(&d, &bits, sizeof d);
            nv = mx_node_new(&a, MX_VT_NUM);
            if (nv) nv->v.d = d;
            cv = cJSON_CreateNumber(d);
            break;
        }
        case 8: nv = mx_node_new(&a, MX_VT_TRUE); cv = cJSON_CreateTrue(); break;
        case 9: nv = mx_node_new(&a, MX_VT_FALSE); cv = cJSON_CreateFalse(); break;
        default: nv = mx_node_new(&a, MX_VT_NULL); cv = cJSON_CreateNull(); break;
        }
        if (!nv || !cv) FAIL("out of memory");
        mx_node_add(np, key, nv);
        if (np->vt == MX_VT_OBJ) cJSON_AddItemToObject(cp, key, cv);
        else cJSON_AddItemToArray(cp, cv);
        if (nv->vt >= MX_VT_OBJ) { depth++; nstack[depth] = nv; cstack[depth] = cv; }
    }

    mx_buf b = { 0 };
    if (!mx_json_write(&b, nstack[0], pretty)) FAIL("the writer failed");
    char *c = pretty ? cJSON_Print(cstack[0]) : cJSON_PrintUnformatted(cstack[0]);
    char *want = c ? escaped_seps(c) : NULL;
    if (!want) FAIL("out of memory");
    if (b.len != strlen(want) || memcmp(b.p, want, b.len)) {
        fprintf(stderr, "cJSON: %s\nmine:  %s\n", want, b.p);
        FAIL("the writer's text differs from cJSON's");
    }
    /* and it reads back as the same tree (numbers as cJSON reads them) */
    cJSON *back = cJSON_ParseWithLength(b.p, b.len);
    if (!back) FAIL("the writer's text does not parse");
    char *again = cJSON_PrintUnformatted(back), *orig = cJSON_PrintUnformatted(cstack[0]);
    cJSON *orig_back = orig ? cJSON_Parse(orig) : NULL;
    char *orig_again = orig_back ? cJSON_PrintUnformatted(orig_back) : NULL;
    if (again && orig_again && strcmp(again, orig_again)) FAIL("parsed back, the tree differs");
    cJSON_free(again);
    cJSON_free(orig);
    cJSON_free(orig_again);
    cJSON_Delete(orig_back);
    cJSON_Delete(back);
    cJSON_free(c);
    free(want);
    mx_buf_free(&b);
    cJSON_Delete(cstack[0]);
    mx_arena_free(&a);
    return 0;
}
