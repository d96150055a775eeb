/* engine.c - flow table, TCP state and dispatch (see engine.h).
 *
 * The flow table is a chained hash table plus two lists in order of last
 * activity, one of open flows and one of ended ones (which wait a shorter
 * time), so the flows due to expire are found at their heads in O(1): an
 * open flow that waits for its idle timeout never holds back ended ones.  A flow's session is
 * embedded in it.  A closed flow stays a little while (CLOSED) so that late
 * ACKs and retransmissions are absorbed instead of opening a new session.
 */
#include "mx/engine.h"
#include "mx/capture.h"
#include "mx/classify.h"
#include "mx/dns.h"
#include "mx/event.h"
#include "mx/limits.h"
#include "mx/sink.h"
#include "mx/smtp.h"
#include "mx/stream.h"
#include "mx/text.h"
#include "mx/tls.h"
#include "mx/verdict.h"
#include "mx/workers.h"
#include "mx/x509.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define LINGER_US (5ull * 1000000ull)   /* closed flows absorb stragglers */

enum tcp_state {
    ST_NEW = 0,       /* created, no handshake seen yet                 */
    ST_SYN,           /* client SYN seen                                */
    ST_SYNACK,        /* server SYN-ACK seen                            */
    ST_OPEN,          /* data may flow                                  */
    ST_CLOSED,        /* session written; absorbing stragglers          */
};

typedef struct dirstate {
    mx_stream st;
    uint64_t pkts, wire_bytes;
    uint32_t isn;
    uint16_t win;
    uint8_t syn, fin, rst;
    uint32_t next_sent;       /* highest seq+len sent by this side        */
    uint8_t have_sent;
    uint8_t have_ack;
    uint32_t first_ack, last_ack;   /* what this side acknowledged      */
} dirstate;

typedef struct flow {
    struct flow *hnext;
    struct flow *prev, *next;     /* activity list (open or done)           */
    uint8_t done;                 /* on the done list: ending or CLOSED      */
    uint32_t hash;
    uint64_t stamp;               /* frame at which it joined its list       */
    uint16_t vlan[2];             /* outer, inner VLAN id: part of its key   */
    enum tcp_state state;
    uint64_t last_us;             /* on the idle clock                      */
    uint64_t max_us;              /* latest packet time of the flow         */
    uint32_t syn_count;
    uint64_t syn_frame, refused_frame, rst_frame, fin_frame;
    int rst_from, fin_first;
    const char *end_reason;
    /* The connection is over (FINs, a reset, a refusal) but its session is
     * written only after LINGER_US of capture time, so that late resets
     * (both sides resetting, late segments answered by RST) are on it. */
    uint8_t ending;
    struct flow *end_prev, *end_next;   /* ended flows, in order of ending */
    uint8_t pend_incomplete;
    const char *pend_reason;
    uint64_t end_us;
    uint64_t late_packets;
    uint8_t probation;            /* off the mail ports, awaiting nDPI      */
    mx_cflow *cf;
    dirstate d[2];
    mx_sess sess;
} flow;

struct mx_engine {
    mx_engine_cfg cfg;
    mx_sink *sink;
    mx_classifier *cls;
    mx_cert_cache *certs;
    mx_dns dns;
    flow **buckets;
    uint32_t nbuckets;            /* power of two */
    uint32_t live;
    flow *head, *tail;            /* open flows, least recently active first */
    flow *dhead, *dtail;          /* ended flows (lingering), the same order  */
    uint64_t due_us;              /* no flow expires before this (a bound)    */
    uint32_t nending;             /* ended flows waiting to be written      */
    flow *end_head, *end_tail;
    uint64_t next_id;
    mx_memcap mc;                 /* --memcap over every stream's buffers    */
    mx_engine_stats st;
    /* pkt_us: the current packet's own capture time, which every event
     * carries; now_us: the latest time seen, a clock that never runs back,
     * for idle timeouts (capture time may step back, and several files
     * may be given in any order) */
    uint64_t now_us, pkt_us, frame;
    int ticking;                  /* the clock moved without a packet         */
    uint32_t tickno;              /* mx_engine_tick() calls since the packet  */
    uint64_t hkey[2];             /* the flow hash's key                      */
    mx_pktdump *dump;             /* -w                                       */
    mx_pool *pool;                /* --workers: this engine only dispatches   */
};

/* ---- flow table -------------------------------------------------------- */

/* SipHash-1-3 (Aumasson and Bernstein) of n 64-bit words: keyed, so that
 * tuples cannot be crafted to fall into one bucket or one worker. */
#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
    } while (0)

static uint64_t siphash13(const uint64_t *m, size_t n, const uint64_t key[2])
{
    uint64_t v0 = key[0] ^ 0x736f6d6570736575ull, v1 = key[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = key[0] ^ 0x6c7967656e657261ull, v3 = key[1] ^ 0x7465646279746573ull;
    for (size_t i = 0; i < n; i++) {
        v3 ^= m[i];
        SIPROUND;
        v0 ^= m[i];
    }
    uint64_t last = (uint64_t)(n * 8) << 56;
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t mx_flow_hash(const mx_pkt *k, const uint64_t key[2])
{
    /* the lower endpoint first, so that both directions hash alike */
    int swap = memcmp(k->src.b, k->dst.b, 16);
    if (!swap) swap = (int)k->sport - (int)k->dport;
    const mx_addr *a = swap > 0 ? &k->dst : &k->src, *b = swap > 0 ? &k->src : &k->dst;
    uint16_t pa = swap > 0 ? k->dport : k->sport, pb = swap > 0 ? k->sport : k->dport;
    uint64_t m[5];
    memcpy(&m[0], a->b, 16);
    memcpy(&m[2], b->b, 16);
    m[4] = (uint64_t)pa | (uint64_t)pb << 16 | (uint64_t)k->vlan[0] << 32 | (uint64_t)k->vlan[1] << 44 |
           (uint64_t)(a->v6 != 0) << 56;
    return siphash13(m, 5, key);
}

static int addr_eq(const mx_addr *a, const mx_addr *b)
{
    return a->v6 == b->v6 && memcmp(a->b, b->b, 16) == 0;
}

/* Returns the flow and which side sent the packet (MX_CLIENT/MX_SERVER). */
static flow *flow_find(mx_engine *e, const mx_pkt *k, uint32_t h, int *dir)
{
    for (flow *f = e->buckets[h & (e->nbuckets - 1)]; f; f = f->hnext) {
        if (f->hash != h || f->vlan[0] != k->vlan[0] || f->vlan[1] != k->vlan[1]) continue;
        mx_sess *s = &f->sess;
        if (k->sport == s->cli_port && k->dport == s->srv_port &&
            addr_eq(&k->src, &s->cli) && addr_eq(&k->dst, &s->srv)) { *dir = MX_CLIENT; return f; }
        if (k->sport == s->srv_port && k->dport == s->cli_port &&
            addr_eq(&k->src, &s->srv) && addr_eq(&k->dst, &s->cli)) { *dir = MX_SERVER; return f; }
    }
    return NULL;
}

/* When the flow is to be written out or dropped for quiet (see expire). */
static uint64_t due_of(const mx_engine *e, const flow *f)
{
    return f->last_us + (f->done ? LINGER_US : (uint64_t)e->cfg.opt.lim.idle_timeout_s * 1000000ull);
}

static void list_unlink(mx_engine *e, flow *f)
{
    flow **h = f->done ? &e->dhead : &e->head, **t = f->done ? &e->dtail : &e->tail;
    if (!f->prev && f->next && due_of(e, f->next) < e->due_us) e->due_us = due_of(e, f->next);  /* a new head */
    if (f->prev) f->prev->next = f->next; else *h = f->next;
    if (f->next) f->next->prev = f->prev; else *t = f->prev;
    f->prev = f->next = NULL;
}

static void list_append(mx_engine *e, flow *f)
{
    flow **h = f->done ? &e->dhead : &e->head, **t = f->done ? &e->dtail : &e->tail;
    f->prev = *t;
    f->next = NULL;
    if (*t) (*t)->next = f; else *h = f;
    *t = f;
    f->stamp = e->frame;
    if (!f->prev && due_of(e, f) < e->due_us) e->due_us = due_of(e, f);            /* a new head */
}

/* The flow has ended (or is ending): it moves to the done list. */
static void mark_done(mx_engine *e, flow *f)
{
    if (f->done) return;
    list_unlink(e, f);
    f->done = 1;
    list_append(e, f);
}

/* Every flow: the open ones, then the done ones. */
#define FOR_EACH_FLOW(e, f) \
    for (int _l = 0; _l < 2; _l++) \
        for (flow *f = _l ? (e)->dhead : (e)->head; f; f = f->next)

static void flow_remove(mx_engine *e, flow *f)
{
    flow **pp = &e->buckets[f->hash & (e->nbuckets - 1)];
    while (*pp && *pp != f) pp = &(*pp)->hnext;
    if (*pp) *pp = f->hnext;
    list_unlink(e, f);
    e->live--;
    mx_stream_free(&f->d[0].st);
    mx_stream_free(&f->d[1].st);
    mx_cflow_free(f->cf);
    mx_sess_release(&f->sess);
    free(f);
}

/* ---- stream consumers -------------------------------------------------- */

static mx_stream_ctx sctx(mx_engine *e, flow *f, int dir);

/* Feeds the session; a hand-off it returns (held bytes of the other
 * direction released) is acted on here, between the bytes that caused it
 * and the ones after. */
static size_t on_data(void *ctx, int dir, const uint8_t *p, size_t n, int force)
{
    flow *f = ctx;
    mx_sess *s = &f->sess;
    size_t used = 0;
    for (;;) {
        used += mx_sess_feed(s, dir, p + used, n - used, force);
        uint8_t rel = s->release;
        s->release = 0;
        if (!rel) break;
        for (int d = 0; d < 2; d++) {
            if (d == dir || !(rel >> d & 1)) continue;
            mx_stream_ctx c = sctx(s->owner, f, d);
            mx_stream_kick(&f->d[d].st, &c);
        }
        if (used >= n) break;
    }
    return used;
}

static const char *gap_why[] = { "lost", "snaplen", "reassembly_limit", "close", "memcap" };

static void on_gap(void *ctx, int dir, uint64_t at, uint32_t len, int why)
{
    flow *f = ctx;
    mx_sess *s = &f->sess;
    if (why == MX_GAP_SNAPLEN) {
        /* every packet of a cut capture has one: say it once, count the rest */
        mx_sess_anomaly(s, dir, "snaplen_cut", "packets cut short by the capture's snaplen: payload missing");
        mx_sess_gap(s, dir, len);
        return;
    }
    mx_ev *ev = mx_ev_begin(s, MX_EV_TCP_GAP, dir);
    mx_ev_int(ev, "bytes", len);
    mx_ev_int(ev, "stream_offset", (int64_t)at);
    mx_ev_str(ev, "reason", why >= 0 && why < 5 ? gap_why[why] : "lost");
    mx_ev_end(s, ev);
    mx_sess_gap(s, dir, len);
}

static void on_limit(void *ctx, int dir, int which, uint32_t value)
{
    flow *f = ctx;
    mx_sess *s = &f->sess;
    (void)value;
    /* One event per limit and session is enough; the rest are counted. */
    if (which == MX_STREAM_LIMIT_MEMCAP)
        mx_sess_anomaly(s, dir, "limit.memcap",
                        "the memory budget of all connections' buffers (--memcap) is spent: this connection's held bytes were given up");
    else
        mx_sess_anomaly(s, dir, which == MX_STREAM_LIMIT_OOO ? "limit.max_ooo_bytes" : "limit.max_hold",
                        which == MX_STREAM_LIMIT_OOO ? "max_ooo_bytes" : "max_hold");
}

static const mx_stream_ops stream_ops = { on_data, on_gap, on_limit };

static mx_stream_ctx sctx(mx_engine *e, flow *f, int dir)
{
    mx_stream_ctx c = { &stream_ops, f, dir, &e->cfg.opt.lim, e->now_us, &e->mc };
    return c;
}

/* ---- sessions ---------------------------------------------------------- */

static int is_tls_port(const mx_engine *e, uint16_t port)
{
    for (int i = 0; i < e->cfg.ntls_ports; i++)
        if (e->cfg.tls_ports[i] == port) return 1;
    return 0;
}

static int is_mail_port(const mx_engine *e, uint16_t port)
{
    for (int i = 0; i < e->cfg.nports; i++)
        if (e->cfg.ports[i] == port) return 1;
    return is_tls_port(e, port);
}

static void dir_summary(mx_ev *o, const dirstate *d)
{
    mx_ev_int(o, "packets", (int64_t)d->pkts);
    mx_ev_int(o, "bytes", (int64_t)d->st.bytes);
    if (d->st.retrans_segs) mx_ev_int(o, "retransmitted_segments", d->st.retrans_segs);
    if (d->st.ooo_seen) mx_ev_int(o, "out_of_order_segments", d->st.ooo_seen);
    if (d->st.gaps) {
        mx_ev_int(o, "gaps", d->st.gaps);
        mx_ev_int(o, "gap_bytes", (int64_t)d->st.gap_bytes);
    }
    if (d->st.conflicts) mx_ev_int(o, "overlap_conflicts", d->st.conflicts);
    if (d->st.out_of_window) mx_ev_int(o, "out_of_window_segments", d->st.out_of_window);
}

/* A flow off the mail ports is written only if nDPI calls it SMTP or TLS.
 * Returns 0 when the flow was dropped. */
static int decide(mx_engine *e, flow *f, int final)
{
    if (!f->probation) return 1;
    int d = mx_cflow_decision(e->cls, f->cf, final);
    if (d < 0) return 1;
    if (d == 1) {
        f->probation = 0;
        mx_sink_session_confirm(e->sink, &f->sess);
        return 1;
    }
    mx_sess *s = &f->sess;
    mx_sink_session_drop(e->sink, s);
    if (s->smtp) { mx_smtp_free(s->smtp); s->smtp = NULL; }
    if (s->tls) { mx_tls_free(s->tls); s->tls = NULL; }
    for (int dir = 0; dir < 2; dir++) mx_stream_free(&f->d[dir].st);
    mx_cflow_free(f->cf);
    f->cf = NULL;
    f->probation = 0;
    f->state = ST_CLOSED;
    mark_done(e, f);
    e->st.off_port_ignored++;
    e->st.sessions--;
    return 0;
}

static void session_close(mx_engine *e, flow *f, const char *reason, int incomplete)
{
    mx_sess *s = &f->sess;
    if (f->state == ST_CLOSED) return;
    if (f->ending) {
        reason = f->pend_reason;
        incomplete = f->pend_incomplete;
        e->nending--;
        if (f->end_prev) f->end_prev->end_next = f->end_next; else e->end_head = f->end_next;
        if (f->end_next) f->end_next->end_prev = f->end_prev; else e->end_tail = f->end_prev;
        f->end_prev = f->end_next = NULL;
    }
    if (!decide(e, f, 1)) return;
    mx_sess_parsers(s);
    for (int dir = 0; dir < 2; dir++) {
        mx_stream_ctx c = sctx(e, f, dir);
        mx_stream_flush(&f->d[dir].st, &c);
    }
    mx_sess_eof(s, MX_CLIENT);
    mx_sess_eof(s, MX_SERVER);

    mx_facts facts;
    mx_verdict verdict;
    mx_facts_init(&facts);
    facts.syn_seen = f->d[MX_CLIENT].syn;
    facts.synack_seen = f->d[MX_SERVER].syn;
    facts.syn_count = f->syn_count;
    facts.syn_frame = f->syn_frame;
    facts.refused = strcmp(reason, "refused") == 0;
    facts.refused_frame = f->refused_frame;
    facts.midstream = s->midstream;
    facts.rst_from = f->rst_from;
    facts.rst_frame = f->rst_frame;
    facts.fin_first = f->fin_first;
    facts.fin_frame = f->fin_frame;
    facts.end_reason = reason;
    facts.incomplete = incomplete;
    facts.implicit_tls = s->tls_from_start;
    mx_addr_str(&s->srv, facts.server, sizeof facts.server);
    facts.server_port = s->srv_port;
    mx_copy_str(facts.dns_name, sizeof facts.dns_name, s->dns_name ? s->dns_name : "");
    for (int d = 0; d < 2; d++)
        if (f->d[d].pkts && !f->d[!d].pkts && f->d[d].have_ack &&
            (f->d[d].last_ack != f->d[d].first_ack || f->d[d].syn)) {
            /* Only one side's packets, and that side acknowledges bytes:
             * the other side spoke, but its packets are not in the capture. */
            facts.one_sided = d;
            facts.peer_acked = f->d[d].last_ack - f->d[d].first_ack;
        }
    mx_smtp_facts(s->smtp, &facts);
    mx_tls_facts(s->tls, &facts);
    mx_verdict_decide(&facts, &verdict);

    mx_ev *ev = mx_ev_begin(s, MX_EV_SESSION_END, MX_NODIR);
    mx_verdict_write(&verdict, mx_ev_obj(ev, "verdict"));
    mx_ev_str(ev, "reason", reason);
    mx_ev_bool(ev, "incomplete", incomplete);
    mx_ev_seconds(ev, "duration", (f->ending ? f->end_us : f->max_us) - s->start_us);
    if (f->late_packets) mx_ev_int(ev, "packets_after_close", (int64_t)f->late_packets);
    if (s->midstream) mx_ev_bool(ev, "midstream", 1);
    dir_summary(mx_ev_obj(ev, "client_stats"), &f->d[MX_CLIENT]);
    dir_summary(mx_ev_obj(ev, "server_stats"), &f->d[MX_SERVER]);
    if (s->smtp) mx_smtp_summary(s->smtp, mx_ev_obj(ev, "smtp"));
    if (mx_tls_seen(s->tls)) mx_tls_summary(s->tls, mx_ev_obj(ev, "tls"));
    if (f->cf) {
        mx_cflow_summary(e->cls, f->cf, mx_ev_obj(ev, "ndpi"));
        mx_cflow_free(f->cf);
        f->cf = NULL;
    }
    if (s->nanom) mx_sess_anomaly_summary(s, mx_ev_obj(ev, "anomalies"));
    if (s->events_dropped) mx_ev_int(ev, "events_dropped", s->events_dropped);
    mx_ev_end(s, ev);
    mx_sink_session_end(e->sink, s);
    if (s->smtp) { mx_smtp_free(s->smtp); s->smtp = NULL; }
    if (s->tls) { mx_tls_free(s->tls); s->tls = NULL; }
    for (int dir = 0; dir < 2; dir++) mx_stream_free(&f->d[dir].st);
    f->state = ST_CLOSED;
    mark_done(e, f);
    f->ending = 0;
    f->end_reason = reason;
}

/* The connection ended at this packet: its session is written later. */

static void session_end_soon(mx_engine *e, flow *f, const char *reason, int incomplete)
{
    if (f->state == ST_CLOSED || f->ending) return;
    f->ending = 1;
    f->pend_reason = reason;
    f->pend_incomplete = (uint8_t)incomplete;
    f->end_us = f->max_us;
    mark_done(e, f);
    /* Bounded: past --max-lingering the longest-ended one is written now
     * (nothing is lost but later resets of it). */
    f->end_prev = e->end_tail;
    f->end_next = NULL;
    if (e->end_tail) e->end_tail->end_next = f; else e->end_head = f;
    e->end_tail = f;
    if (++e->nending > e->cfg.opt.lim.max_lingering && e->end_head != f) {
        flow *old = e->end_head;
        mx_ev *ev = mx_ev_begin(&old->sess, MX_EV_LIMIT, MX_NODIR);
        mx_ev_str(ev, "limit", "max_lingering");
        mx_ev_int(ev, "value", e->cfg.opt.lim.max_lingering);
        mx_ev_end(&old->sess, ev);
        session_close(e, old, NULL, 0);
    }
}

static flow *flow_new(mx_engine *e, const mx_pkt *k, uint32_t h, int client_is_src, int off_port)
{
    if (e->live >= e->cfg.opt.lim.max_flows) {
        /* Evict the least recently active flow, an ended one first. */
        flow *old = e->dhead ? e->dhead : e->head;
        if (old->ending) {
            session_close(e, old, NULL, 0);
        } else if (old->state != ST_CLOSED) {
            e->st.evicted++;
            mx_ev *ev = mx_ev_begin(&old->sess, MX_EV_LIMIT, MX_NODIR);
            mx_ev_str(ev, "limit", "max_flows");
            mx_ev_int(ev, "value", e->cfg.opt.lim.max_flows);
            mx_ev_end(&old->sess, ev);
            session_close(e, old, "evicted", 1);
        }
        flow_remove(e, old);
    }
    flow *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->hash = h;
    f->vlan[0] = k->vlan[0];
    f->vlan[1] = k->vlan[1];
    f->rst_from = f->fin_first = -1;
    mx_sess *s = &f->sess;
    /* a worker's ids stand in for the run's, given by its writer */
    s->id = ++e->next_id | (e->cfg.in_worker ? MX_SID_HANDLE : 0);
    s->opt = &e->cfg.opt;
    s->sink = e->sink;
    if (client_is_src) {
        s->cli = k->src; s->cli_port = k->sport; s->srv = k->dst; s->srv_port = k->dport;
    } else {
        s->cli = k->dst; s->cli_port = k->dport; s->srv = k->src; s->srv_port = k->sport;
    }
    s->start_us = e->pkt_us;
    s->cur_us = e->pkt_us;
    f->max_us = e->pkt_us;
    s->cur_frame = e->frame;
    s->owner = e;
    s->certs = e->certs;
    mx_stream_init(&f->d[0].st);
    mx_stream_init(&f->d[1].st);
    f->hnext = e->buckets[h & (e->nbuckets - 1)];
    e->buckets[h & (e->nbuckets - 1)] = f;
    list_append(e, f);
    e->live++;
    if (e->live > e->st.max_live_flows) e->st.max_live_flows = e->live;
    e->st.sessions++;

    s->tls_from_start = (uint8_t)is_tls_port(e, s->srv_port);
    if (e->cls) f->cf = mx_cflow_new();
    if (s->tls_from_start) mx_sess_implicit_tls(s);
    else s->app[0] = s->app[1] = MX_APP_SMTP;

    mx_sink_session_begin(e->sink, s);
    if (off_port) {
        f->probation = 1;
        s->off_port = 1;
        mx_sink_session_defer(e->sink, s);
    }
    const mx_dns_entry *dn = mx_dns_lookup(&e->dns, &s->srv);
    const mx_dns_mx *mxr = NULL;
    if (dn) {
        s->dns_name = strdup(dn->name);
        /* the name an MX answer gave: the host the client delivers to for
         * that domain; its TLSA answers (DANE, RFC 7672), if asked */
        if ((mxr = mx_dns_mx_of(&e->dns, dn->name))) s->mx_domain = strdup(mxr->domain);
        const mx_dns_tlsa *t[8];
        int nt = mx_dns_tlsa_of(&e->dns, dn->name, s->srv_port, t, 8);
        if (nt && (s->tlsa = malloc((size_t)nt * sizeof *s->tlsa))) {
            for (int i = 0; i < nt; i++) s->tlsa[i] = *t[i];
            s->ntlsa = nt;
        }
    }
    mx_ev *ev = mx_ev_begin(s, MX_EV_SESSION_START, MX_NODIR);
    mx_ev_endpoint(ev, "client", &s->cli, s->cli_port);
    mx_ev_endpoint(ev, "server", &s->srv, s->srv_port);
    if (dn) {
        /* the name the client looked up for this server, from a DNS
         * answer earlier in the capture */
        mx_ev *d = mx_ev_obj(ev, "dns");
        mx_ev_str(d, "name", dn->name);
        mx_ev_int(d, "answer_frame", (int64_t)dn->frame);
        char t[40];
        mx_iso_time(dn->us, t, sizeof t);
        mx_ev_str(d, "answer_ts", t);
        if (mxr) {
            mx_ev *m = mx_ev_obj(d, "mx");
            mx_ev_str(m, "domain", mxr->domain);
            mx_ev_int(m, "preference", mxr->pref);
            mx_ev_int(m, "answer_frame", (int64_t)mxr->frame);
        }
        if (s->ntlsa) mx_ev_int(d, "tlsa_records", s->ntlsa);
    }
    mx_community_id(&s->cli, s->cli_port, &s->srv, s->srv_port, s->community_id, sizeof s->community_id);
    mx_ev *net = mx_ev_obj(ev, "network");
    mx_ev_str(net, "transport", "tcp");
    mx_ev_str(net, "type", s->cli.v6 ? "ipv6" : "ipv4");
    mx_ev_str(net, "community_id", s->community_id);
    if (k->nvlan) {
        mx_ev *v = mx_ev_arr(net, "vlan_id");
        for (int i = 0; i < k->nvlan && i < 2; i++) mx_ev_push_int(v, k->vlan[i]);
    }
    mx_ev_str(ev, "mode", off_port ? "detected" : s->tls_from_start ? "implicit_tls" : "smtp");
    mx_ev_end(s, ev);
    return f;
}

/* ---- TCP --------------------------------------------------------------- */

static void tcp_event(mx_sess *s, mx_evtype type, int from, const mx_pkt *k)
{
    mx_ev *ev = mx_ev_begin(s, type, from);
    mx_ev_int(ev, "seq", k->seq);
    if (k->flags & MX_TCP_ACK) mx_ev_int(ev, "ack", k->ack);
    mx_ev_int(ev, "window", k->win);
    mx_ev_end(s, ev);
}

/* RFC 5961 §3: a reset is acceptable when its sequence number lies in the
 * receiver's window; exactly the next expected number is the normal case. */
static void on_rst(mx_engine *e, flow *f, int dir, const mx_pkt *k)
{
    mx_sess *s = &f->sess;
    dirstate *me = &f->d[dir], *peer = &f->d[!dir];
    int in_window = 1, exact = 1;
    if (me->have_sent) {
        int32_t d = (int32_t)(k->seq - me->next_sent);
        uint32_t win = (uint32_t)peer->win ? peer->win : 65535;
        exact = d == 0;
        in_window = d >= 0 && (uint32_t)d <= win * 16u;
    }
    if (f->ending) {
        /* After the end: a second reset, or late segments answered by one. */
        mx_ev *ev = mx_ev_begin(s, MX_EV_TCP_RST, dir);
        mx_ev_int(ev, "seq", k->seq);
        mx_ev_bool(ev, "in_window", in_window);
        mx_ev_bool(ev, "after_close", 1);
        if (k->paylen) mx_ev_int(ev, "payload_bytes", k->paylen);
        mx_ev_end(s, ev);
        return;
    }
    if (f->rst_from < 0) { f->rst_from = dir; f->rst_frame = e->frame; }
    if (f->state == ST_SYN && dir == MX_SERVER) {
        f->refused_frame = e->frame;
        mx_ev *ev = mx_ev_begin(s, MX_EV_TCP_REFUSED, MX_SERVER);
        mx_ev_int(ev, "syn_count", f->syn_count);
        mx_ev_int(ev, "window", k->win);
        mx_ev_end(s, ev);
        me->rst = 1;
        session_end_soon(e, f, "refused", 0);
        return;
    }
    mx_ev *ev = mx_ev_begin(s, MX_EV_TCP_RST, dir);
    mx_ev_int(ev, "seq", k->seq);
    mx_ev_bool(ev, "in_window", in_window);
    if (!exact && in_window) mx_ev_bool(ev, "exact", 0);
    if (k->paylen) mx_ev_int(ev, "payload_bytes", k->paylen);
    mx_ev_end(s, ev);
    if (!in_window) {                /* a receiver would ignore it */
        if (f->rst_from == dir && f->rst_frame == e->frame) f->rst_from = -1;
        return;
    }
    me->rst = 1;
    session_end_soon(e, f, dir == MX_CLIENT ? "reset_by_client" : "reset_by_server", 0);
}

static void tcp_packet(mx_engine *e, flow *f, int dir, const mx_pkt *k)
{
    mx_sess *s = &f->sess;
    dirstate *me = &f->d[dir];
    s->cur_us = e->pkt_us;
    s->cur_frame = e->frame;
    me->pkts++;
    me->wire_bytes += k->paylen;
    me->win = k->win;
    if (k->flags & MX_TCP_ACK) {
        if (!me->have_ack) { me->have_ack = 1; me->first_ack = me->last_ack = k->ack; }
        else if ((int32_t)(k->ack - me->last_ack) > 0) me->last_ack = k->ack;
    }

    if (k->flags & MX_TCP_SYN) {
        if (!(k->flags & MX_TCP_ACK)) {
            if (dir == MX_CLIENT) {
                f->syn_count++;
                if (f->syn_count == 1) f->syn_frame = e->frame;
                mx_ev *ev = mx_ev_begin(s, MX_EV_TCP_SYN, MX_CLIENT);
                mx_ev_int(ev, "seq", k->seq);
                mx_ev_int(ev, "window", k->win);
                if (f->syn_count > 1) mx_ev_bool(ev, "retransmission", 1);
                mx_ev_end(s, ev);
                me->syn = 1; me->isn = k->seq;
                if (f->state == ST_NEW) f->state = ST_SYN;
                mx_stream_start(&me->st, k->seq + 1);
                me->next_sent = k->seq + 1; me->have_sent = 1;
            }
        } else if (dir == MX_SERVER) {
            if (!me->syn) tcp_event(s, MX_EV_TCP_SYNACK, MX_SERVER, k);
            me->syn = 1; me->isn = k->seq;
            if (f->state < ST_SYNACK) f->state = ST_SYNACK;
            if (!me->st.have_seq) mx_stream_start(&me->st, k->seq + 1);
            me->next_sent = k->seq + 1; me->have_sent = 1;
        }
        return;
    }
    if (k->flags & MX_TCP_RST) { on_rst(e, f, dir, k); return; }
    if (f->state != ST_OPEN) {
        if (f->state == ST_NEW) s->midstream = 1;
        f->state = ST_OPEN;
    }
    uint32_t end = k->seq + k->paylen;
    if (!me->have_sent || (int32_t)(end - me->next_sent) > 0) { me->next_sent = end; me->have_sent = 1; }

    if ((k->flags & MX_TCP_ACK) && f->d[!dir].st.have_seq) {
        mx_stream_ctx pc = sctx(e, f, !dir);
        mx_stream_acked(&f->d[!dir].st, &pc, k->ack);
    }
    int fin = (k->flags & MX_TCP_FIN) != 0;
    if (k->paylen || fin) {
        mx_stream_ctx c = sctx(e, f, dir);
        uint32_t conflicts = me->st.conflicts;
        mx_stream_segment(&me->st, &c, k->seq, k->payload, k->caplen, k->paylen, fin);
        if (me->st.conflicts != conflicts)
            mx_sess_anomaly(s, dir, "retransmission_conflict",
                            "a retransmitted segment differs from the bytes already seen at that place");
    }
    for (int d = 0; d < 2; d++)
        if (f->d[d].st.ack_wait) {
            mx_stream_ctx c = sctx(e, f, d);
            mx_stream_tick(&f->d[d].st, &c);
        }
    if (fin && !me->fin) {
        me->fin = 1;
        if (f->fin_first < 0) { f->fin_first = dir; f->fin_frame = e->frame; }
        me->next_sent = end + 1;
        mx_ev *ev = mx_ev_begin(s, MX_EV_TCP_FIN, dir);
        mx_ev_int(ev, "seq", end);
        mx_ev_end(s, ev);
    }
    if (f->d[0].fin && f->d[1].fin) session_end_soon(e, f, "closed", 0);
}

/* ---- packets ----------------------------------------------------------- */

static void expire(mx_engine *e)
{
    /* every packet comes here: the lists' heads (cold, once the flows are
     * many) are looked at only once the earliest a flow can expire is due */
    if (e->now_us < e->due_us) return;
    uint64_t idle = (uint64_t)e->cfg.opt.lim.idle_timeout_s * 1000000ull;
    for (;;) {
        flow *f = e->dhead && e->dhead->last_us + LINGER_US <= e->now_us ? e->dhead
                : e->head && e->head->last_us + idle <= e->now_us ? e->head : NULL;
        if (!f) break;
        mx_sink_order(e->sink, e->frame, e->ticking ? MX_PH_TICK : MX_PH_EXPIRE, e->ticking ? e->tickno : 0,
                      f->done ? 0 : 1, f->stamp);
        if (f->ending) {
            session_close(e, f, NULL, 0);
        } else if (f->state != ST_CLOSED) {
            e->st.timed_out++;
            session_close(e, f, "idle_timeout", 1);
        }
        flow_remove(e, f);
    }
    /* expire looks at the heads only: the bound is theirs, lowered when
     * a list gets a new head (list_append, list_unlink) */
    uint64_t a = e->dhead ? due_of(e, e->dhead) : UINT64_MAX, b = e->head ? due_of(e, e->head) : UINT64_MAX;
    e->due_us = a < b ? a : b;
}

void mx_engine_clock(mx_engine *e, uint64_t ts_us, uint64_t frame)
{
    e->pkt_us = ts_us;
    if (ts_us > e->now_us) e->now_us = ts_us;   /* the idle clock never runs back */
    e->frame = frame;
    e->tickno = 0;
    expire(e);
}

void mx_engine_dns(mx_engine *e, const mx_pkt *k)
{
    mx_dns_response(&e->dns, k->payload, k->caplen, e->frame, e->pkt_us);
}

/* Decodes a packet and counts what is not TCP.  Returns MX_PE_TCP,
 * MX_PE_DNS (a DNS answer) or MX_PE_CLOCK (nothing more to do). */
static int classify_packet(mx_engine *e, int linktype, const uint8_t *data, uint32_t caplen, uint32_t wirelen, mx_pkt *k)
{
    switch (mx_decode(linktype, data, caplen, wirelen, k)) {
    case MX_DEC_OK: break;
    case MX_DEC_UDP:
        if (k->sport == 53) return MX_PE_DNS;
        e->st.not_tcp++;
        return MX_PE_CLOCK;
    case MX_DEC_NOT_IP: e->st.not_ip++; return MX_PE_CLOCK;
    case MX_DEC_NOT_TCP: e->st.not_tcp++; return MX_PE_CLOCK;
    case MX_DEC_FRAGMENT: e->st.fragments++; return MX_PE_CLOCK;
    case MX_DEC_TRUNCATED: e->st.truncated++; return MX_PE_CLOCK;
    default: e->st.malformed++; return MX_PE_CLOCK;
    }
    e->st.tcp_packets++;
    return MX_PE_TCP;
}

/* Whether a TCP packet is one the engine follows. */
static int followed(const mx_engine *e, const mx_pkt *k)
{
    if (is_mail_port(e, k->sport) || is_mail_port(e, k->dport)) return 1;
    return e->cfg.any_port && !e->cfg.no_ndpi;
}

/* --workers: this engine decodes and hands the packets to its workers. */
static int front_input(mx_engine *e, const mx_input *in)
{
    mx_pkt k;
    e->st.packets++;
    int kind = classify_packet(e, in->linktype, in->data, in->caplen, in->wirelen, &k);
    if (kind == MX_PE_TCP && !followed(e, &k)) kind = MX_PE_CLOCK;
    mx_pool_add(e->pool, in, &k, kind, kind == MX_PE_TCP ? mx_flow_hash(&k, e->hkey) : 0);
    return 0;
}

int mx_engine_packet(mx_engine *e, int linktype, uint64_t ts_us,
                      const uint8_t *data, uint32_t caplen, uint32_t wirelen,
                      uint64_t frame)
{
    mx_pkt k;
    if (e->pool) {
        mx_input in = { linktype, ts_us, frame, data, caplen, wirelen, wirelen, 0, 0 };
        return front_input(e, &in);
    }
    e->st.packets++;
    mx_engine_clock(e, ts_us, frame);
    switch (classify_packet(e, linktype, data, caplen, wirelen, &k)) {
    case MX_PE_TCP: return mx_engine_tcp(e, &k, mx_flow_hash(&k, e->hkey));
    case MX_PE_DNS: mx_engine_dns(e, &k); return 1;
    default: return 0;
    }
}

int mx_engine_input(mx_engine *e, const mx_input *in)
{
    if (e->pool) return front_input(e, in);
    int kept = mx_engine_packet(e, in->linktype, in->ts_us, in->data, in->caplen, in->wirelen, in->frame);
    if (kept && e->dump)
        mx_pktdump_write(e->dump, in->linktype, in->ts_us, in->data, in->caplen, in->origlen, in->snaplen);
    return kept;
}

void mx_engine_set_dump(mx_engine *e, mx_pktdump *d)
{
    e->dump = d;
    if (e->pool) mx_pool_set_dump(e->pool, d);
}

void mx_engine_sync(mx_engine *e, int wait)
{
    if (e->pool) mx_pool_sync(e->pool, wait);
}

uint64_t mx_engine_done_frame(const mx_engine *e)
{
    return e->pool ? mx_pool_done_frame(e->pool) : e->frame;
}

int mx_engine_tcp(mx_engine *e, const mx_pkt *kp, uint64_t h64)
{
    const mx_pkt k = *kp;
    int sport_mail = is_mail_port(e, k.sport), dport_mail = is_mail_port(e, k.dport);
    int off_port = !sport_mail && !dport_mail;
    if (off_port && (!e->cfg.any_port || !e->cls)) return 0;
    e->st.mail_packets++;
    mx_sink_order(e->sink, e->frame, MX_PH_PACKET, 0, 0, 0);

    uint32_t h = (uint32_t)h64;
    int dir = MX_CLIENT;
    flow *f = flow_find(e, &k, h, &dir);
    int syn_only = (k.flags & (MX_TCP_SYN | MX_TCP_ACK)) == MX_TCP_SYN;

    if (f && f->ending && !syn_only) {
        /* Late packets of an ended connection: resets are told, the rest
         * counted.  They do not extend its linger. */
        if (k.paylen || (k.flags & (MX_TCP_FIN | MX_TCP_RST))) f->late_packets++;
        if (k.flags & MX_TCP_RST) {
            f->sess.cur_us = e->pkt_us;
            f->sess.cur_frame = e->frame;
            on_rst(e, f, dir, &k);
        }
        return 1;
    }
    if (f && f->ending) session_close(e, f, NULL, 0);      /* port reuse */
    if (f && f->state == ST_CLOSED) {
        if (!syn_only) {                                    /* straggler */
            f->last_us = e->now_us;
            list_unlink(e, f);
            list_append(e, f);
            return 1;
        }
        flow_remove(e, f);                                  /* port reuse */
        f = NULL;
    }
    if (!f) {
        /* Who is the client: the SYN sender; the SYN-ACK receiver; else the
         * side not on a mail port (the destination when both are). */
        int client_is_src;
        if (syn_only) client_is_src = 1;
        else if ((k.flags & (MX_TCP_SYN | MX_TCP_ACK)) == (MX_TCP_SYN | MX_TCP_ACK)) client_is_src = 0;
        else if (k.paylen == 0 && !(k.flags & (MX_TCP_FIN | MX_TCP_RST))) return 0; /* bare ACK */
        else client_is_src = dport_mail || !sport_mail;
        f = flow_new(e, &k, h, client_is_src, off_port);
        if (!f) return 0;
        dir = client_is_src ? MX_CLIENT : MX_SERVER;
    } else {
        list_unlink(e, f);
        list_append(e, f);
    }
    f->last_us = e->now_us;
    /* a packet stamped before the session's first keeps its own time: the
     * session then starts there, so that no event is before its start */
    if (e->pkt_us < f->sess.start_us) f->sess.start_us = e->pkt_us;
    if (e->pkt_us > f->max_us) f->max_us = e->pkt_us;
    if (f->cf) mx_cflow_packet(e->cls, f->cf, k.l3, k.l3len, k.payload, k.caplen, e->now_us);
    if (f->probation && !decide(e, f, 0)) return 0;
    tcp_packet(e, f, dir, &k);
    if (f->sess.tls_handoff) {
        f->sess.tls_handoff = 0;
        if (f->cf) {
            if (!e->cfg.ndpi_tls) mx_cflow_stop(e->cls, f->cf);
            else mx_cflow_restart(e->cls, f->cf);
        }
    }
    return 1;
}

void mx_engine_tick(mx_engine *e, uint64_t now_us)
{
    if (e->pool) { mx_pool_tick(e->pool, now_us); return; }
    e->tickno++;
    if (now_us <= e->now_us) return;
    e->now_us = now_us;
    e->ticking = 1;
    expire(e);
    e->ticking = 0;
}

static int by_session_id(const void *a, const void *b)
{
    uint64_t x = (*(flow *const *)a)->sess.id, y = (*(flow *const *)b)->sess.id;
    return x < y ? -1 : x > y;
}

void mx_engine_finish(mx_engine *e, const char *reason)
{
    if (e->pool) {
        mx_pool_finish(e->pool, reason, &e->st);
        return;
    }
    /* End open flows in the order they started (= session id): sorted once,
     * not searched for at every close. */
    size_t n = 0, k = 0;
    FOR_EACH_FLOW(e, f) if (f->state != ST_CLOSED) n++;
    flow **v = n ? malloc(n * sizeof *v) : NULL;
    if (v) {
        FOR_EACH_FLOW(e, f) if (f->state != ST_CLOSED) v[k++] = f;
        qsort(v, k, sizeof *v, by_session_id);
        for (size_t i = 0; i < k; i++) {
            mx_sink_order(e->sink, UINT64_MAX, MX_PH_FINISH, 0, 0, v[i]->sess.id & ~MX_SID_HANDLE);
            session_close(e, v[i], reason, 1);
        }
        free(v);
    } else {
        for (;;) {                      /* no memory for the list: the slow way */
            flow *first = NULL;
            FOR_EACH_FLOW(e, f)
                if (f->state != ST_CLOSED && (!first || f->sess.id < first->sess.id)) first = f;
            if (!first) break;
            mx_sink_order(e->sink, UINT64_MAX, MX_PH_FINISH, 0, 0, first->sess.id & ~MX_SID_HANDLE);
            session_close(e, first, reason, 1);
        }
    }
    while (e->head) flow_remove(e, e->head);
    while (e->dhead) flow_remove(e, e->dhead);
}

mx_engine *mx_engine_new(const mx_engine_cfg *cfg, mx_sink *sink, char *err, size_t cap)
{
    mx_engine *e = calloc(1, sizeof *e);
    if (!e) { snprintf(err, cap, "out of memory"); return NULL; }
    e->cfg = *cfg;
    e->sink = sink;
    e->mc.cap = cfg->opt.lim.memcap;
    if (getrandom(e->hkey, sizeof e->hkey, GRND_NONBLOCK) != (ssize_t)sizeof e->hkey) {
        /* no entropy yet (early boot): the clock and the address of e */
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        e->hkey[0] = (uint64_t)t.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)t.tv_sec;
        e->hkey[1] = (uint64_t)(uintptr_t)e * 0xC2B2AE3D27D4EB4Full;
    }
    if (cfg->workers > 1 && !cfg->in_worker) {
        if (!(e->pool = mx_pool_new(cfg, sink, err, cap))) { free(e); return NULL; }
        return e;
    }
    mx_sink_set_memcap(sink, &e->mc);
    if (!cfg->no_ndpi && !(e->cls = mx_classify_new(cfg->opt.lim.ndpi_packets, cfg->any_port, cfg->ndpi_tls, err, cap))) {
        free(e);
        return NULL;
    }
    e->certs = mx_cert_cache_new(256);
    uint32_t n = 1024;
    while (n < e->cfg.opt.lim.max_flows * 2u && n < (1u << 24)) n <<= 1;
    e->nbuckets = n;
    e->buckets = calloc(n, sizeof *e->buckets);
    if (!e->buckets) { free(e); return NULL; }
    return e;
}

void mx_engine_stats_add(mx_engine_stats *to, const mx_engine_stats *from)
{
    to->packets += from->packets;
    to->tcp_packets += from->tcp_packets;
    to->mail_packets += from->mail_packets;
    to->not_ip += from->not_ip;
    to->not_tcp += from->not_tcp;
    to->fragments += from->fragments;
    to->truncated += from->truncated;
    to->malformed += from->malformed;
    to->sessions += from->sessions;
    to->evicted += from->evicted;
    to->timed_out += from->timed_out;
    to->off_port_ignored += from->off_port_ignored;
    to->max_live_flows += from->max_live_flows;
    to->memcap_refused += from->memcap_refused;
    to->sessions_split += from->sessions_split;
    to->buffers_peak += from->buffers_peak;
}

const mx_engine_stats *mx_engine_stats_get(const mx_engine *e)
{
    if (e->pool) return &e->st;
    mx_engine *w = (mx_engine *)(uintptr_t)e;      /* counters kept by the streams */
    w->st.memcap_refused = e->mc.refused;
    w->st.sessions_split = e->mc.split;
    w->st.buffers_peak = e->mc.peak;
    return &e->st;
}

int mx_engine_worker_stats(const mx_engine *e, int i, mx_engine_stats *out)
{
    return e->pool ? mx_pool_worker_stats(e->pool, i, out) : 0;
}

void mx_engine_free(mx_engine *e)
{
    if (!e) return;
    if (e->pool) {
        mx_pool_free(e->pool);
        free(e);
        return;
    }
    while (e->head || e->dhead) {
        flow *f = e->head ? e->head : e->dhead;
        if (f->sess.smtp) mx_smtp_free(f->sess.smtp);
        if (f->sess.tls) mx_tls_free(f->sess.tls);
        if (f->state != ST_CLOSED) mx_sink_session_drop(e->sink, &f->sess);
        flow_remove(e, f);
    }
    free(e->buckets);
    mx_classify_free(e->cls);
    mx_cert_cache_free(e->certs);
    free(e);
}
