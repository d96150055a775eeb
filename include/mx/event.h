/* event.h - events as trees of typed values, independent of any format.
 *
 * The parsers build events through the mx_ev_* calls of session.h; this
 * header is the other side of that API, for the layers that read events
 * (renderers and views) and for the layer that takes finished ones (the
 * sink).  An event is a tree of nodes: its type (evtype.h), then members,
 * each a key and a typed value.  Nodes and their texts live in an arena
 * (blocks that are reused, never freed one by one), so building an event
 * allocates nothing once the arena has grown to the largest event.
 *
 * Nothing here knows JSON: the JSON writer (render_json.c) and the views
 * (view.c) turn trees into bytes.
 */
#ifndef MX_EVENT_H
#define MX_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "mx/evtype.h"
#include "mx/session.h"

typedef enum mx_vt {
    MX_VT_NULL = 0,
    MX_VT_FALSE,
    MX_VT_TRUE,
    MX_VT_INT,       /* v.i                                         */
    MX_VT_USEC,      /* v.i microseconds, shown as seconds          */
    MX_VT_NUM,       /* v.d                                         */
    MX_VT_STR,       /* v.s, len bytes: valid UTF-8 without NUL      */
    MX_VT_SID,       /* v.i a session's id (shown as an integer)     */
    MX_VT_OBJ,       /* v.kids: members with keys                    */
    MX_VT_ARR,       /* v.kids: elements without keys                */
    MX_VT_EVENT,     /* a session's event: head, then v.kids members  */
} mx_vt;

/* What every event of a session starts with, kept as values: the writers
 * show it as the members type, session, ts, t, frame and from. */
typedef struct mx_evhead {
    uint64_t session;             /* the session's id                        */
    uint64_t frame;               /* the packet it came from                 */
    uint64_t ts_us;               /* capture time, µs since the epoch        */
    int64_t t_us;                 /* µs since the session's first packet     */
    int from;                     /* MX_CLIENT, MX_SERVER or MX_NODIR        */
} mx_evhead;

typedef struct mx_arena mx_arena;

/* A node: a top-level event, a member or an element.  (mx_ev, the handle
 * the parsers hold, is this struct.) */
struct mx_ev {
    union {
        const char *key;          /* member name (static or arena text); NULL in an array */
        const mx_evhead *head;    /* MX_VT_EVENT (never a member of an object) */
    };
    struct mx_ev *next;           /* next member or element                 */
    union {
        int64_t i;
        double d;
        const char *s;            /* NUL-terminated as well                 */
        struct { struct mx_ev *first, *last; } kids;
    } v;
    mx_arena *a;                  /* the arena a container's members come from */
    uint32_t len;                 /* STR: bytes; OBJ/ARR: members           */
    uint8_t vt;                   /* mx_vt                                  */
    uint8_t evtype;               /* top level: its mx_evtype               */
    uint16_t klen;                /* key's length when its maker knew it (the
                                     program's own names), else 0           */
};
typedef struct mx_ev mx_node;

/* ---- arenas ---------------------------------------------------------------- */

typedef struct mx_nblk mx_nblk;
typedef struct mx_tblk mx_tblk;

struct mx_arena {
    mx_nblk *nfirst, *ncur;       /* node blocks; ncur is being filled      */
    size_t nused;                 /* nodes used in ncur                      */
    mx_tblk *tfirst, *tcur;       /* text blocks; tcur is being filled       */
    size_t tused;                 /* bytes used in tcur                      */
    size_t tbytes, nbytes;        /* capacity of all text / node blocks      */
    int open;                     /* events begun and not yet ended          */
    int failed;                   /* out of memory since the last reset      */
    int small;                    /* blocks start small and double (a session's) */
    int keep;                     /* not reset when its events end (a session's) */
};

/* Forgets every node and text (keeps the blocks; trims a huge text store). */
void mx_arena_reset(mx_arena *a);
void mx_arena_free(mx_arena *a);
/* n bytes of text space that stay put until the next reset; NULL when out
 * of memory (and a->failed is set). */
char *mx_arena_text(mx_arena *a, size_t n);

/* ---- building (for renderers; parsers use session.h) ----------------------- */

mx_node *mx_node_new(mx_arena *a, mx_vt vt);
mx_node *mx_node_str(mx_arena *a, const char *s, size_t n);   /* copied */
mx_node *mx_node_lit(mx_arena *a, const char *s);             /* static text, not copied */
mx_node *mx_node_int(mx_arena *a, int64_t v);
/* A node that shows v's value (for a container, its members, shared and
 * not to be changed); NULL for NULL. */
mx_node *mx_node_ref(mx_arena *a, const mx_node *v);
/* Appends v (a fresh node) to parent under key; key is ignored in an array
 * and must outlive the tree.  NULLs do nothing. */
void mx_node_add(mx_node *parent, const char *key, mx_node *v);
/* The same with the key's length, for the program's own names (session.h's
 * calls): short plain ASCII, written as they are. */
void mx_node_add_k(mx_node *parent, const char *key, size_t klen, mx_node *v);

/* ---- reading --------------------------------------------------------------- */

/* An event's head, or NULL when e is not a session's event. */
static inline const mx_evhead *mx_node_head(const mx_node *e) { return e && e->vt == MX_VT_EVENT ? e->head : NULL; }
/* The head of event e as nodes (out[], ts[] for the time's text), linked in
 * front of e's own members: returns the first, as an object would have it. */
const mx_node *mx_ev_head_nodes(const mx_node *e, mx_node out[6], char ts[28]);
/* The same, built in arena a: an object that shows e whole (its members
 * shared, not copied).  NULL when out of memory. */
mx_node *mx_ev_expand(mx_arena *a, const mx_node *e);
/* A session id as text: its digits, left-justified in width columns.  A
 * worker's stand-in (MX_SID_HANDLE set, see workers.c) is written as a
 * marker instead, MX_SID_MARK_LEN bytes: MX_SID_MARK (a byte no output
 * otherwise holds: every text from the wire is quoted), a letter for the
 * width, the worker's id in 16 hex digits (nothing a line splitter or a
 * string function trips on); the writer puts the id the session has in the
 * run in its place. */
#define MX_SID_HANDLE (1ull << 62)
#define MX_SID_MARK 0x01
#define MX_SID_MARK_LEN 18
/* The worker's id in a marker at p (MX_SID_MARK_LEN bytes), and its width. */
uint64_t mx_sid_mark_read(const char *p, int *width);
size_t mx_sid_text(uint64_t id, int width, char out[32]);

/* ISO-8601 UTC with microseconds and a Z (27 characters and a NUL). */
void mx_ev_ts_text(uint64_t us, char out[28]);

/* The member of obj named key, or NULL (obj may be NULL or not an object). */
const mx_node *mx_node_get(const mx_node *obj, const char *key);
/* Element i of an array (NULL past its end). */
const mx_node *mx_node_at(const mx_node *arr, size_t i);
/* Its text if v is a string, else NULL. */
static inline const char *mx_node_text(const mx_node *v) { return v && v->vt == MX_VT_STR ? v->v.s : NULL; }
/* A member's text, or NULL when it is missing or not a string. */
static inline const char *mx_node_gets(const mx_node *o, const char *k) { return mx_node_text(mx_node_get(o, k)); }
/* A member's number (INT, USEC in seconds, NUM), or dflt. */
double mx_node_getnum(const mx_node *o, const char *k, double dflt);
/* A member that is an integer (INT), or dflt. */
int64_t mx_node_getint(const mx_node *o, const char *k, int64_t dflt);
static inline int mx_node_true(const mx_node *o, const char *k)
{
    const mx_node *v = mx_node_get(o, k);
    return v && v->vt == MX_VT_TRUE;
}
#define MX_NODE_EACH(c, parent) for (const mx_node *c = (parent) && (parent)->vt >= MX_VT_OBJ ? (parent)->v.kids.first : NULL; c; c = c->next)
/* (over an event, its own members: the head is read with mx_node_head) */

/* ---- the consumer of events (the output layer provides these) -------------- */

/* The arena s's next event (of type type) is built in: the sink's scratch
 * arena, reset when no event is open, or the session's own when the event
 * is kept for the views.  Never NULL. */
mx_arena *mx_sink_ev_arena(mx_sink *k, mx_sess *s, int type);
/* A finished event of s (built in the arena above), to be rendered. */
void mx_sink_ev_done(mx_sink *k, mx_sess *s, mx_node *ev);

#endif
