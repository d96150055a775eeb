/* config.c - the JSON configuration file: its outputs become --output specs. */
#include "mx/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CONFIG = 1 << 20 };

static char *slurp(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, cap, "%s: cannot read: %s", path, strerror(errno)); return NULL; }
    char *buf = malloc(MAX_CONFIG + 1);
    size_t n = buf ? fread(buf, 1, MAX_CONFIG + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > MAX_CONFIG) {
        snprintf(err, cap, "%s: %s", path, !buf ? "out of memory" : bad ? "read error" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* Appends ",key=value" (or the first "kind:target") to out. */
static int put(char *out, size_t cap, size_t *len, const char *sep, const char *k, const char *v)
{
    int w = snprintf(out + *len, cap - *len, "%s%s%s%s", sep, k, *k ? "=" : "", v);
    if (w < 0 || (size_t)w >= cap - *len) return 0;
    *len += (size_t)w;
    return 1;
}

int mx_config_outputs(const char *path, mx_output_spec *specs, int *n, int max, char *err, size_t cap)
{
    char *txt = slurp(path, err, cap);
    if (!txt) { mx_output_clean_msg(err); return 0; }
    int ok = mx_config_parse(txt, path, specs, n, max, err, cap);
    free(txt);
    return ok;
}

int mx_config_parse(const char *txt, const char *path, mx_output_spec *specs, int *n, int max, char *err, size_t cap)
{
    cJSON *root = cJSON_Parse(txt);
    int ok = 0;
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, cap, "%s: not a JSON object", path);
        goto out;
    }
    for (const cJSON *k = root->child; k; k = k->next)
        if (strcmp(k->string, "outputs")) { snprintf(err, cap, "%s: unknown key \"%.64s\" (known: outputs)", path, k->string); goto out; }
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (outs && !cJSON_IsArray(outs)) { snprintf(err, cap, "%s: \"outputs\" must be an array", path); goto out; }
    int i = 0;
    for (const cJSON *o = outs ? outs->child : NULL; o; o = o->next, i++) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind"), *target = cJSON_GetObjectItemCaseSensitive(o, "target");
        if (!cJSON_IsObject(o) || !cJSON_IsString(kind) || !cJSON_IsString(target)) {
            snprintf(err, cap, "%s: outputs[%d]: an object with \"kind\" and \"target\" strings", path, i);
            goto out;
        }
        char arg[2048], num[32];
        size_t len = 0;
        if (!put(arg, sizeof arg, &len, "", "", kind->valuestring) || !put(arg, sizeof arg, &len, ":", "", target->valuestring)) {
            snprintf(err, cap, "%s: outputs[%d]: too long", path, i);
            goto out;
        }
        for (const cJSON *kv = o->child; kv; kv = kv->next) {
            if (!strcmp(kv->string, "kind") || !strcmp(kv->string, "target")) continue;
            const char *v = NULL;
            if (cJSON_IsString(kv)) v = kv->valuestring;
            else if (cJSON_IsNumber(kv) && kv->valuedouble >= 0 && kv->valuedouble < 1e15) {
                snprintf(num, sizeof num, "%.0f", kv->valuedouble);
                v = num;
            }
            if (!v || strchr(v, ',') || strchr(kv->string, ',') || strchr(kv->string, '=')) {
                snprintf(err, cap, "%s: outputs[%d].%.64s: a string (without commas) or a whole number", path, i, kv->string);
                goto out;
            }
            if (!put(arg, sizeof arg, &len, ",", kv->string, v)) { snprintf(err, cap, "%s: outputs[%d]: too long", path, i); goto out; }
        }
        if (*n >= max) { snprintf(err, cap, "%s: at most %d outputs", path, max); goto out; }
        char why[600];
        if (!mx_output_parse(arg, &specs[*n], why, sizeof why)) {
            snprintf(err, cap, "%s: outputs[%d]: %s", path, i, why);
            goto out;
        }
        (*n)++;
    }
    ok = 1;
out:
    if (!ok) mx_output_clean_msg(err);
    cJSON_Delete(root);
    return ok;
}
