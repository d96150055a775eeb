/* render_ecs.h - the ECS rendering of an event (output layer, private). */
#ifndef MX_RENDER_ECS_H
#define MX_RENDER_ECS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "mx/evtype.h"
#include "mx/session.h"

/* Where the wrapper's nodes come from (the sink's event arena). */
typedef struct mx_ecs_alloc {
    void *ctx;
    cJSON *(*node)(void *ctx, int type);
    cJSON *(*text)(void *ctx, const char *s, size_t n);   /* string, copied */
    cJSON *(*num)(void *ctx, double v);                   /* a number       */
} mx_ecs_alloc;

/* The ECS document for the finished native event ev (which it takes in as
 * its "mxtrace" member); s is NULL for an event of the run, not of a
 * session (output.drop).  NULL when out of memory. */
cJSON *mx_ecs_wrap(mx_ecs_alloc *al, const mx_sess *s, mx_evtype type, cJSON *ev);

#endif
