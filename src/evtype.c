/* evtype.c - the table behind mx_evtype (see evtype.h). */
#include "mx/evtype.h"

static const mx_evtype_info table[MX_EV__COUNT] = {
#define MX_EVT_ROW(e, name, cat, typ, doc) [MX_EV_##e] = { name, cat, typ, doc },
    MX_EVENT_TYPES(MX_EVT_ROW)
#undef MX_EVT_ROW
};

const mx_evtype_info *mx_evtype_get(mx_evtype t)
{
    return (unsigned)t < MX_EV__COUNT ? &table[t] : 0;
}
