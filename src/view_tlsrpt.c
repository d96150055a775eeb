/* view_tlsrpt.c - a run's sessions as RFC 8460 (SMTP TLS Reporting) reports.
 *
 * Each session's document gives one row (who sent, which MX received, whether
 * TLS was established or how it failed); rows are counted per policy domain
 * (the recipients' domain, else the receiving MX's name) and per failure, and
 * at the end of the run each domain's report is written: the report the
 * domain would get from a sending MTA that saw these sessions.  No policy
 * (MTA-STS, DANE) is known from a capture: the policy type is
 * no-policy-found.
 */
#include "mx/view.h"
#include "mx/event.h"

#include "render_json.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DOMAINS 4096
#define MAX_DETAILS 256          /* failure kinds per domain */

typedef struct detail {
    char result_type[32], sending_ip[48], receiving_ip[48], mx_host[256], helo[256], reason[160];
    uint64_t count;
} detail;

typedef struct domain {
    char name[256];
    char mx_host[256];           /* the first receiving MX seen          */
    uint64_t ok, failed;
    detail *d;
    size_t nd, capd, dropped;
} domain;

struct mx_tlsrpt {
    domain *dom;
    size_t n, cap, dropped;
    uint64_t first_us, last_us;
    int any;
};

mx_tlsrpt *mx_tlsrpt_new(void) { return calloc(1, sizeof(mx_tlsrpt)); }

void mx_tlsrpt_free(mx_tlsrpt *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) free(t->dom[i].d);
    free(t->dom);
    free(t);
}

static void copy(char *o, size_t cap, const char *s)
{
    snprintf(o, cap, "%s", s ? s : "");
}

static const mx_node *last_of(const mx_node *arr) { return arr && arr->vt >= MX_VT_OBJ ? arr->v.kids.last : NULL; }

/* (an ISO time of the document "2026-12-04T10:30:24.107865Z" as µs) */
static uint64_t doc_us(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    unsigned us = 0;
    if (!iso || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d.%6uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                       &tm.tm_min, &tm.tm_sec, &us) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t s = timegm(&tm);
    return s < 0 ? 0 : (uint64_t)s * 1000000u + us;
}

int mx_tlsrpt_row_from_doc(const mx_node *doc, const mx_node *start, mx_tlsrpt_row *r)
{
    memset(r, 0, sizeof *r);
    const mx_node *end = last_of(mx_node_get(doc, "events"));
    const mx_node *v = mx_node_get(end, "verdict"), *smtp = mx_node_get(end, "smtp");
    const mx_node *rpt = mx_node_get(v, "tlsrpt");
    const char *tls = mx_node_gets(v, "tls");
    r->start_us = doc_us(mx_node_gets(doc, "start"));
    r->end_us = doc_us(mx_node_gets(doc, "end"));
    if (rpt) r->outcome = -1;
    else if (tls && !strcmp(tls, "tls_ok")) r->outcome = 1;
    copy(r->sending_ip, sizeof r->sending_ip, mx_node_gets(mx_node_get(doc, "client"), "ip"));
    copy(r->receiving_ip, sizeof r->receiving_ip, mx_node_gets(mx_node_get(doc, "server"), "ip"));
    /* the MX's name: from the client's DNS look-up, else the name it asked
     * TLS for (SNI), else the server's own greeting, else its address */
    const char *dns = mx_node_gets(mx_node_get(start, "dns"), "name");
    const char *sni = mx_node_gets(mx_node_get(end, "tls"), "sni");
    const char *banner = mx_node_gets(smtp, "banner_host");
    const char *ehlo = mx_node_gets(smtp, "ehlo_host");
    copy(r->mx_host, sizeof r->mx_host, dns ? dns : sni ? sni : banner ? banner : ehlo ? ehlo : r->receiving_ip);
    copy(r->helo, sizeof r->helo, banner ? banner : ehlo);
    const char *rd = mx_node_text(mx_node_at(mx_node_get(smtp, "recipient_domains"), 0));
    copy(r->domain, sizeof r->domain, rd ? rd : r->mx_host);
    if (rpt) {
        copy(r->result_type, sizeof r->result_type, mx_node_gets(rpt, "result_type"));
        copy(r->reason, sizeof r->reason, mx_node_gets(rpt, "failure_reason"));
    }
    return 1;
}

static domain *find_domain(mx_tlsrpt *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->dom[i].name, name)) return &t->dom[i];
    if (t->n == MAX_DOMAINS) { t->dropped++; return NULL; }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        domain *nd = realloc(t->dom, nc * sizeof *nd);
        if (!nd) { t->dropped++; return NULL; }
        t->dom = nd;
        t->cap = nc;
    }
    domain *d = &t->dom[t->n++];
    memset(d, 0, sizeof *d);
    copy(d->name, sizeof d->name, name);
    return d;
}

void mx_tlsrpt_add(mx_tlsrpt *t, const mx_tlsrpt_row *r)
{
    if (!t) return;
    if (r->start_us && (!t->any || r->start_us < t->first_us)) t->first_us = r->start_us;
    if (r->end_us > t->last_us) t->last_us = r->end_us;
    t->any = 1;
    if (!r->outcome) return;                       /* TLS not tried: not a TLS-RPT session */
    domain *d = find_domain(t, r->domain);
    if (!d) return;
    if (!d->mx_host[0]) copy(d->mx_host, sizeof d->mx_host, r->mx_host);
    if (r->outcome > 0) { d->ok++; return; }
    d->failed++;
    for (size_t i = 0; i < d->nd; i++) {
        detail *x = &d->d[i];
        if (!strcmp(x->result_type, r->result_type) && !strcmp(x->sending_ip, r->sending_ip) &&
            !strcmp(x->receiving_ip, r->receiving_ip) && !strcmp(x->mx_host, r->mx_host) &&
            !strcmp(x->helo, r->helo) && !strcmp(x->reason, r->reason)) {
            x->count++;
            return;
        }
    }
    if (d->nd == MAX_DETAILS) { d->dropped++; return; }
    if (d->nd == d->capd) {
        size_t nc = d->capd ? d->capd * 2 : 4;
        detail *nd = realloc(d->d, nc * sizeof *nd);
        if (!nd) { d->dropped++; return; }
        d->d = nd;
        d->capd = nc;
    }
    detail *x = &d->d[d->nd++];
    copy(x->result_type, sizeof x->result_type, r->result_type);
    copy(x->sending_ip, sizeof x->sending_ip, r->sending_ip);
    copy(x->receiving_ip, sizeof x->receiving_ip, r->receiving_ip);
    copy(x->mx_host, sizeof x->mx_host, r->mx_host);
    copy(x->helo, sizeof x->helo, r->helo);
    copy(x->reason, sizeof x->reason, r->reason);
    x->count = 1;
}

/* RFC 3339 date-time, to the second. */
static void rfc3339(uint64_t us, char out[32])
{
    time_t s = (time_t)(us / 1000000u);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) { snprintf(out, 32, "1970-01-01T00:00:00Z"); return; }
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static mx_node *str(mx_arena *a, const char *s) { return mx_node_str(a, s, strlen(s)); }
static mx_node *obj(mx_arena *a, mx_node *parent, const char *k)
{
    mx_node *o = mx_node_new(a, MX_VT_OBJ);
    mx_node_add(parent, k, o);
    return o;
}

/* Written by the program's one JSON writer (render_json.c): the names and
 * texts from the wire were cleaned when the session's events were made. */
void mx_tlsrpt_write(FILE *f, const mx_tlsrpt *t, int pretty)
{
    if (!t) return;
    char from[32], to[32];
    rfc3339(t->first_us, from);
    rfc3339(t->last_us + 999999u, to);
    mx_arena a;
    memset(&a, 0, sizeof a);
    mx_buf b;
    memset(&b, 0, sizeof b);
    for (size_t i = 0; i < t->n; i++) {
        const domain *d = &t->dom[i];
        mx_arena_reset(&a);
        mx_node *r = mx_node_new(&a, MX_VT_OBJ);
        mx_node_add(r, "organization-name", mx_node_lit(&a, "mxtrace"));
        mx_node *dr = obj(&a, r, "date-range");
        mx_node_add(dr, "start-datetime", str(&a, from));
        mx_node_add(dr, "end-datetime", str(&a, to));
        mx_node_add(r, "contact-info", mx_node_lit(&a, "mxtrace: from a packet capture, not sent by the MTA"));
        char id[320];
        snprintf(id, sizeof id, "%s_%s", from, d->name);
        mx_node_add(r, "report-id", str(&a, id));
        mx_node *pols = mx_node_new(&a, MX_VT_ARR);
        mx_node_add(r, "policies", pols);
        mx_node *p = mx_node_new(&a, MX_VT_OBJ);
        mx_node_add(pols, NULL, p);
        mx_node *pol = obj(&a, p, "policy");
        mx_node_add(pol, "policy-type", mx_node_lit(&a, "no-policy-found"));
        mx_node_add(pol, "policy-domain", str(&a, d->name));
        if (d->mx_host[0]) {
            mx_node *mh = mx_node_new(&a, MX_VT_ARR);
            mx_node_add(pol, "mx-host", mh);
            mx_node_add(mh, NULL, str(&a, d->mx_host));
        }
        mx_node *sum = obj(&a, p, "summary");
        mx_node_add(sum, "total-successful-session-count", mx_node_int(&a, (int64_t)d->ok));
        mx_node_add(sum, "total-failure-session-count", mx_node_int(&a, (int64_t)d->failed));
        if (d->nd) {
            mx_node *fd = mx_node_new(&a, MX_VT_ARR);
            mx_node_add(p, "failure-details", fd);
            for (size_t k = 0; k < d->nd; k++) {
                const detail *x = &d->d[k];
                mx_node *o = mx_node_new(&a, MX_VT_OBJ);
                mx_node_add(fd, NULL, o);
                mx_node_add(o, "result-type", str(&a, x->result_type));
                mx_node_add(o, "sending-mta-ip", str(&a, x->sending_ip));
                mx_node_add(o, "receiving-mx-hostname", str(&a, x->mx_host));
                if (x->helo[0]) mx_node_add(o, "receiving-mx-helo", str(&a, x->helo));
                mx_node_add(o, "receiving-ip", str(&a, x->receiving_ip));
                mx_node_add(o, "failed-session-count", mx_node_int(&a, (int64_t)x->count));
                if (x->reason[0]) mx_node_add(o, "failure-reason-code", str(&a, x->reason));
            }
        }
        if (d->dropped) {
            char note[96];
            snprintf(note, sizeof note, "%zu more kinds of failure were not listed", d->dropped);
            mx_node_add(p, "additional-information", str(&a, note));
        }
        b.len = 0;
        b.failed = 0;
        if (!a.failed && mx_json_write(&b, r, pretty)) { fwrite(b.p, 1, b.len, f); fputc('\n', f); }
    }
    mx_buf_free(&b);
    mx_arena_free(&a);
    if (t->dropped) fprintf(stderr, "mxtrace: -F tlsrpt: %zu sessions of more than %d domains were not counted\n",
                            t->dropped, MAX_DOMAINS);
}
