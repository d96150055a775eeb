/* output_redis.h - the Redis transport of output.c (private). */
#ifndef MX_OUTPUT_REDIS_H
#define MX_OUTPUT_REDIS_H

#include <stddef.h>

#include "mx/output.h"

/* One record in a writer's batch. */
typedef struct rec_ref { size_t off, len; } rec_ref;

/* A connection to the spec's server (HOST[:PORT] or a socket path); NULL and
 * a message in err if it cannot be made. */
void *mx_redis_connect(const mx_output_spec *sp, char *err, size_t cap);
/* Sends n records of batch (refs give offset and length) as one pipeline of
 * RPUSH/LPUSH, PUBLISH or XADD.  *ok: records from the start the server
 * answered; *refused: of those, the ones it answered with an error.  0 when
 * all n were answered, -1 when the connection broke (the caller reconnects
 * and sends the rest again). */
int mx_redis_send(void *c, const mx_output_spec *sp, const unsigned char *batch, const struct rec_ref *refs,
                  size_t n, size_t *ok, size_t *refused, char *err, size_t cap);
void mx_redis_free(void *c);

#endif
