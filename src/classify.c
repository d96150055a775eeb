/* classify.c - nDPI 4.2 adapter (see classify.h). */
#include "mx/classify.h"

#include <ndpi_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mx_classifier {
    struct ndpi_detection_module_struct *mod;
    uint32_t max_packets;
    int tls_pass;                  /* --ndpi-tls */
};

typedef struct result {
    uint16_t master, app;
    char proto[64];
    const char *category;
    ndpi_risk risk;
    uint8_t done;
} result;

static pthread_mutex_t module_lock = PTHREAD_MUTEX_INITIALIZER;

struct mx_cflow {
    struct ndpi_flow_struct *nf;   /* live nDPI state, NULL once done */
    uint32_t packets;
    uint8_t phase;                 /* 0: first flow, 1: after STARTTLS */
    uint8_t paused;                /* SMTP named: shown nothing until AUTH */
    uint8_t woken;                 /* AUTH seen: shown all until nDPI is done */
    result r[2];
};

mx_classifier *mx_classify_new(uint32_t max_packets, int every_protocol, int tls_pass, char *err, size_t cap)
{
    if (ndpi_get_api_version() != NDPI_API_VERSION) {
        snprintf(err, cap, "nDPI library API %u does not match the headers' %u",
                 (unsigned)ndpi_get_api_version(), (unsigned)NDPI_API_VERSION);
        return NULL;
    }
    mx_classifier *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, cap, "out of memory"); return NULL; }
    /* Modules are made and freed one at a time: the first initialises
     * libgcrypt (nDPI links it), whose set-up must not run in two threads
     * at once (--workers makes a module per worker thread). */
    pthread_mutex_lock(&module_lock);
    c->mod = ndpi_init_detection_module(ndpi_no_prefs);
    if (!c->mod) {
        pthread_mutex_unlock(&module_lock);
        free(c);
        snprintf(err, cap, "nDPI initialisation failed");
        return NULL;
    }
    /* Every dissector nDPI runs costs time on every packet it is shown; the
     * IP-address lists alone are several tree look-ups a packet.  On the
     * mail ports the mail dissectors are all that can answer; only flows off
     * those ports (--any-port) need nDPI to name any protocol. */
    NDPI_PROTOCOL_BITMASK sel;
    if (every_protocol) {
        NDPI_BITMASK_SET_ALL(sel);
    } else {
        NDPI_BITMASK_RESET(sel);
        NDPI_ADD_PROTOCOL_TO_BITMASK(sel, NDPI_PROTOCOL_MAIL_SMTP);
        NDPI_ADD_PROTOCOL_TO_BITMASK(sel, NDPI_PROTOCOL_MAIL_SMTPS);
        NDPI_ADD_PROTOCOL_TO_BITMASK(sel, NDPI_PROTOCOL_TLS);
    }
    ndpi_set_protocol_detection_bitmask2(c->mod, &sel);
    ndpi_finalize_initialization(c->mod);
    pthread_mutex_unlock(&module_lock);
    c->max_packets = max_packets;
    c->tls_pass = tls_pass;
    return c;
}

void mx_classify_free(mx_classifier *c)
{
    if (!c) return;
    pthread_mutex_lock(&module_lock);
    ndpi_exit_detection_module(c->mod);
    pthread_mutex_unlock(&module_lock);
    free(c);
}

mx_cflow *mx_cflow_new(void) { return calloc(1, sizeof(mx_cflow)); }

static void finish(mx_classifier *c, mx_cflow *f)
{
    result *r = &f->r[f->phase];
    if (!f->nf || r->done) return;
    uint8_t guessed = 0;
    ndpi_protocol p = ndpi_detection_giveup(c->mod, f->nf, 1, &guessed);
    if (p.master_protocol || p.app_protocol) { r->master = p.master_protocol; r->app = p.app_protocol; }
    ndpi_protocol2name(c->mod, p, r->proto, sizeof r->proto);
    r->category = ndpi_category_get_name(c->mod, p.category);
    r->risk = f->nf->risk;
    r->done = 1;
    ndpi_flow_free(f->nf);
    f->nf = NULL;
}

/* Whether an IPv4/IPv6 TCP header carries SYN, FIN or RST (1), or is a
 * bare ACK (0); anything unexpected counts as flags. */
static int tcp_flags_set(const uint8_t *l3, uint32_t n)
{
    uint32_t off;
    if ((l3[0] >> 4) == 4) off = (uint32_t)(l3[0] & 15) * 4;
    else if ((l3[0] >> 4) == 6 && n >= 40 && l3[6] == 6) off = 40;
    else return 1;
    if (n < off + 14) return 1;
    return (l3[off + 13] & 0x07) != 0;
}

/* A client's AUTH command at the start of a packet (where clients put it:
 * AUTH waits for the reply to EHLO). */
static int auth_start(const uint8_t *p, uint32_t n)
{
    return n >= 5 && (p[0] | 0x20) == 'a' && (p[1] | 0x20) == 'u' && (p[2] | 0x20) == 't' &&
           (p[3] | 0x20) == 'h' && p[4] == ' ';
}

/* A TLS ClientHello's first bytes on a flow to or from port 465: all nDPI
 * would make of it is TLS on 465, SMTPS, the name its port already gives
 * (and its TLS risks, with --ndpi-tls); mxtrace parses the ClientHello
 * itself. */
static int tls_hello_on_465(const uint8_t *l3, uint32_t n, const uint8_t *pay, uint32_t paylen)
{
    if (paylen < 6 || pay[0] != 0x16 || pay[1] != 3 || pay[5] != 1) return 0;
    uint32_t off;
    if ((l3[0] >> 4) == 4) off = (uint32_t)(l3[0] & 15) * 4;
    else if ((l3[0] >> 4) == 6 && n >= 40 && l3[6] == 6) off = 40;
    else return 0;
    if (n < off + 4) return 0;
    unsigned sp = (unsigned)l3[off] << 8 | l3[off + 1], dp = (unsigned)l3[off + 2] << 8 | l3[off + 3];
    return sp == 465 || dp == 465;
}

/* What nDPI can still learn of a flow it has named.  Of clear-text SMTP,
 * only the credentials (its clear-text-credentials risk): the flow waits,
 * paused, until the client sends AUTH.  Of TLS, its risk pass, which
 * repeats mxtrace's own certificate and version checks: only with
 * --ndpi-tls.  Anything else it names, as long as it says it can learn
 * more. */
static int stop_at_label(const mx_classifier *c, const mx_cflow *f, const result *r)
{
    uint16_t id = r->app ? r->app : r->master;
    if (c->tls_pass) return 0;
    return f->phase == 0 && (id == NDPI_PROTOCOL_MAIL_SMTPS || id == NDPI_PROTOCOL_TLS ||
                             r->master == NDPI_PROTOCOL_MAIL_SMTPS || r->master == NDPI_PROTOCOL_TLS);
}

void mx_cflow_packet(mx_classifier *c, mx_cflow *f, const uint8_t *l3, uint32_t l3len,
                     const uint8_t *pay, uint32_t paylen, uint64_t ts_us)
{
    if (!c || !f || f->r[f->phase].done || !l3 || l3len == 0) return;
    /* past the handshake, a bare ACK tells nDPI nothing (its own TCP
     * tracking follows the bytes, not the acknowledgements) */
    if (f->nf && f->packets >= 3 && paylen == 0 && !(l3len >= 1 && tcp_flags_set(l3, l3len))) return;
    if (!c->tls_pass && f->phase == 0 && f->nf && tls_hello_on_465(l3, l3len, pay, paylen)) {
        finish(c, f);
        return;
    }
    if (f->paused) {
        if (!auth_start(pay, paylen)) return;
        f->paused = 0;
        f->woken = 1;
    }
    if (!f->nf) {
        f->nf = ndpi_flow_malloc(SIZEOF_FLOW_STRUCT);
        if (!f->nf) return;
        memset(f->nf, 0, SIZEOF_FLOW_STRUCT);
        f->packets = 0;
    }
    ndpi_protocol p = ndpi_detection_process_packet(c->mod, f->nf, l3, (unsigned short)(l3len > 65535 ? 65535 : l3len),
                                                    ts_us / 1000);
    f->packets++;
    int known = p.app_protocol != NDPI_PROTOCOL_UNKNOWN || p.master_protocol != NDPI_PROTOCOL_UNKNOWN;
    if (known) { f->r[f->phase].master = p.master_protocol; f->r[f->phase].app = p.app_protocol; }
    if (f->packets >= c->max_packets || (known && !ndpi_extra_dissection_possible(c->mod, f->nf)))
        finish(c, f);
    else if (known && stop_at_label(c, f, &f->r[f->phase]))
        finish(c, f);
    else if (known && f->phase == 0 && !f->woken && (p.master_protocol == NDPI_PROTOCOL_MAIL_SMTP ||
                                                     p.app_protocol == NDPI_PROTOCOL_MAIL_SMTP)) {
        f->paused = 1;
        /* nDPI's TLS dissector took a reassembly buffer (2 KB) while it
         * watched the first packets; a named SMTP flow never returns to it */
        message_t *m = &f->nf->l4.tcp.tls.message;
        if (m->buffer) {
            ndpi_free(m->buffer);
            m->buffer = NULL;
            m->buffer_len = m->buffer_used = 0;
        }
    }
}

static int mailish(uint16_t id)
{
    return id == NDPI_PROTOCOL_MAIL_SMTP || id == NDPI_PROTOCOL_MAIL_SMTPS || id == NDPI_PROTOCOL_TLS;
}

int mx_cflow_decision(mx_classifier *c, mx_cflow *f, int final)
{
    if (!c || !f) return 0;
    result *r = &f->r[0];
    if (mailish(r->master) || mailish(r->app)) return 1;
    if (final) finish(c, f);
    if (r->done) return (mailish(r->master) || mailish(r->app)) ? 1 : 0;
    if (r->master || r->app) return 0;        /* known, and something else */
    return -1;
}

void mx_cflow_restart(mx_classifier *c, mx_cflow *f)
{
    if (!c || !f || f->phase == 1) return;
    finish(c, f);
    f->phase = 1;
}

void mx_cflow_stop(mx_classifier *c, mx_cflow *f)
{
    if (c && f) finish(c, f);
}

/* Risks that fire falsely on mail: a mail protocol on its own port is not
 * "non-standard", and TLS not carrying HTTPS is the point of SMTP/TLS. */
static int ignored_risk(int r)
{
    return r == NDPI_KNOWN_PROTOCOL_ON_NON_STANDARD_PORT || r == NDPI_TLS_NOT_CARRYING_HTTPS;
}

static void put(const result *r, mx_ev *o)
{
    mx_ev_str(o, "protocol", r->proto[0] ? r->proto : "Unknown");
    if (r->category) mx_ev_str(o, "category", r->category);
    mx_ev *a = mx_ev_arr(o, "risks");
    for (int i = 1; i < NDPI_MAX_RISK; i++)
        if ((r->risk >> i) & 1 && !ignored_risk(i)) mx_ev_push_str(a, ndpi_risk2str((ndpi_risk_enum)i));
}

void mx_cflow_summary(mx_classifier *c, mx_cflow *f, mx_ev *o)
{
    if (!c || !f || !o) return;
    finish(c, f);
    put(&f->r[0], o);
    if (f->phase == 1) put(&f->r[1], mx_ev_obj(o, "after_starttls"));
}

void mx_cflow_free(mx_cflow *f)
{
    if (!f) return;
    if (f->nf) ndpi_flow_free(f->nf);
    free(f);
}
