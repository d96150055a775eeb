/* render_ecs.h - the ECS rendering of an event (output layer, private). */
#ifndef MX_RENDER_ECS_H
#define MX_RENDER_ECS_H

#include "mx/event.h"

/* The ECS document for the finished native event ev (which it shows whole
 * as its "mxtrace" member), its own nodes built in scratch and the values
 * shared with ev; s is NULL for an event of the run, not of a session
 * (output.drop).  NULL when out of memory. */
mx_node *mx_ecs_wrap(mx_arena *scratch, const mx_sess *s, mx_evtype type, const mx_node *ev);

#endif
