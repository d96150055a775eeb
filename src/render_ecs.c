/* render_ecs.c - an event in Elastic Common Schema 8.x (output layer).
 *
 * The native event is kept whole under "mxtrace" (its type, session, frame
 * and every field, as -F ndjson writes them); around it go the ECS fields
 * that hold for every event (@timestamp, ecs, event.*, source/destination,
 * network.*) and, for the events that carry them, tls.* and email.*.  Values
 * are shared with the native tree, never copied: the wrapper is built in the
 * sink's scratch arena and lives as long as the event is being written.  The mapping is documented in docs/ECS.md.
 */
#include "render_ecs.h"

#include <stdlib.h>
#include <string.h>

#define ECS_VERSION "8.11.0"

typedef mx_arena al_t;

static const mx_node *get(const mx_node *o, const char *k) { return mx_node_get(o, k); }
static const char *sv(const mx_node *v) { return mx_node_text(v); }

/* A node that shows another's value (or members) without owning it. */
static mx_node *ref(al_t *al, const mx_node *v) { return mx_node_ref(al, v); }

static void put(mx_node *obj, const char *key, mx_node *v) { mx_node_add(obj, key, v); }

static mx_node *obj(al_t *al, mx_node *parent, const char *key)
{
    mx_node *o = mx_node_new(al, MX_VT_OBJ);
    put(parent, key, o);
    return o;
}

static mx_node *lit(al_t *al, const char *s) { return mx_node_lit(al, s); }
static mx_node *text(al_t *al, const char *s, size_t n) { return mx_node_str(al, s, n); }

/* The address inside "Name <a@b>" (or the whole text when there is none). */
static mx_node *address(al_t *al, const char *s)
{
    const char *lt = strrchr(s, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt) return text(al, s, strlen(s));
    return text(al, lt + 1, (size_t)(gt - lt - 1));
}

/* "a@b, C <c@d>" as an array of addresses (commas inside quotes or <> are
 * not split on; raw headers are not MIME-decoded). */
static mx_node *addresses(al_t *al, const char *s)
{
    mx_node *arr = mx_node_new(al, MX_VT_ARR);
    char one[512];
    size_t n = 0;
    int inq = 0, inang = 0;
    for (const char *p = s;; p++) {
        if (*p == '"') inq = !inq;
        else if (*p == '<' && !inq) inang = 1;
        else if (*p == '>' && !inq) inang = 0;
        if (!*p || (*p == ',' && !inq && !inang)) {
            while (n && one[n - 1] == ' ') n--;
            one[n] = 0;
            const char *b = one;
            while (*b == ' ') b++;
            if (*b) put(arr, NULL, address(al, b));
            n = 0;
            if (!*p) break;
            continue;
        }
        if (n < sizeof one - 1) one[n++] = *p;
    }
    return arr;
}

static void endpoint(al_t *al, mx_node *root, const char *key, const char *ip, uint16_t port)
{
    mx_node *o = obj(al, root, key);
    put(o, "ip", text(al, ip, strlen(ip)));
    put(o, "port", mx_node_int(al, port));
}

/* "TLSv1.2" -> version "1.2", version_protocol "tls". */
static void tls_version(al_t *al, mx_node *tls, const mx_node *v)
{
    const char *s = sv(v);
    if (!s) return;
    if (strncmp(s, "TLSv", 4) && strncmp(s, "SSLv", 4)) return;
    /* ECS writes a major version with its minor: TLSv1 is "1.0", SSLv3 "3.0" */
    const char *n = s + 4;
    const char *ver = !strcmp(n, "1") ? "1.0" : !strcmp(n, "2") ? "2.0" : !strcmp(n, "3") ? "3.0" : NULL;
    put(tls, "version", ver ? lit(al, ver) : text(al, n, strlen(n)));
    put(tls, "version_protocol", lit(al, !strncmp(s, "TLS", 3) ? "tls" : "ssl"));
}

static void x509(al_t *al, mx_node *parent, const mx_node *c)
{
    mx_node *x = obj(al, parent, "x509");
    mx_node *sub = obj(al, x, "subject"), *iss = obj(al, x, "issuer");
    put(sub, "distinguished_name", ref(al, get(c, "subject")));
    put(iss, "distinguished_name", ref(al, get(c, "issuer")));
    put(x, "serial_number", ref(al, get(c, "serial")));
    put(x, "not_before", ref(al, get(c, "not_before")));
    put(x, "not_after", ref(al, get(c, "not_after")));
    put(x, "alternative_names", ref(al, get(c, "san")));
    put(x, "signature_algorithm", ref(al, get(c, "signature_algorithm")));
    put(x, "public_key_algorithm", ref(al, get(c, "key_type")));
    put(x, "public_key_size", ref(al, get(c, "key_bits")));
}

static void uppercase_hex(al_t *al, mx_node *o, const char *key, const mx_node *v)
{
    const char *s = sv(v);
    if (!s) return;
    mx_node *n = text(al, s, strlen(s));
    if (!n) return;
    for (char *p = (char *)(uintptr_t)n->v.s; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    put(o, key, n);
}

mx_node *mx_ecs_wrap(al_t *al, const mx_sess *s, mx_evtype type, const mx_node *ev)
{
    const mx_evtype_info *ti = mx_evtype_get(type);
    mx_node *root = mx_node_new(al, MX_VT_OBJ);
    if (!root || !ti) return NULL;
    const mx_evhead *eh = mx_node_head(ev);
    if (eh) {
        char ts[28];
        mx_ev_ts_text(eh->ts_us, ts);
        put(root, "@timestamp", text(al, ts, 27));
    } else {
        put(root, "@timestamp", ref(al, get(ev, "ts")));
    }
    put(obj(al, root, "ecs"), "version", lit(al, ECS_VERSION));

    mx_node *e = obj(al, root, "event");
    put(e, "kind", lit(al, type == MX_EV_ANOMALY || type == MX_EV_CAPTURE_LOSS ? "alert" : type == MX_EV_CAPTURE_STATS ? "metric" : "event"));
    mx_node *cat = mx_node_new(al, MX_VT_ARR), *typ = mx_node_new(al, MX_VT_ARR);
    put(e, "category", cat);
    put(cat, NULL, lit(al, ti->ecs_category));
    put(e, "type", typ);
    put(typ, NULL, lit(al, ti->ecs_type));
    put(e, "action", lit(al, ti->name));
    put(e, "module", lit(al, "mxtrace"));
    put(e, "dataset", lit(al, "mxtrace.events"));

    mx_node *net = NULL;
    if (s) {
        char cip[64], sip[64];
        mx_addr_str(&s->cli, cip, sizeof cip);
        mx_addr_str(&s->srv, sip, sizeof sip);
        endpoint(al, root, "source", cip, s->cli_port);
        endpoint(al, root, "destination", sip, s->srv_port);
        net = obj(al, root, "network");
        put(net, "transport", lit(al, "tcp"));
        put(net, "type", lit(al, s->cli.v6 ? "ipv6" : "ipv4"));
        put(net, "protocol", lit(al, "smtp"));
        if (s->community_id[0]) put(net, "community_id", text(al, s->community_id, strlen(s->community_id)));
    }

    switch (type) {
    case MX_EV_OUTPUT_DROP:
        put(e, "outcome", lit(al, "failure"));
        put(e, "reason", ref(al, get(ev, "reason")));
        break;
    case MX_EV_CAPTURE_STATS:
    case MX_EV_CAPTURE_LOSS: {
        mx_node *ifc = obj(al, obj(al, obj(al, root, "observer"), "ingress"), "interface");
        put(ifc, "name", ref(al, get(ev, "interface")));
        if (type == MX_EV_CAPTURE_LOSS) put(e, "outcome", lit(al, "failure"));
        break;
    }
    case MX_EV_SESSION_START: {
        const mx_node *vl = get(get(ev, "network"), "vlan_id");
        const mx_node *v0 = mx_node_at(vl, 0);
        if (v0) put(obj(al, net, "vlan"), "id", ref(al, v0));
        break;
    }
    case MX_EV_SESSION_END: {
        const mx_node *v = get(ev, "verdict");
        if (v) put(e, "outcome", lit(al, mx_node_true(v, "ok") ? "success" : "failure"));
        if (v) put(e, "reason", ref(al, get(v, "explanation")));
        put(e, "duration", mx_node_int(al, (int64_t)((double)(s->cur_us - s->start_us) * 1000.0)));
        break;
    }
    case MX_EV_SMTP_REPLY: {
        int64_t code = mx_node_getint(ev, "code", 0);
        if (code >= 200) put(e, "outcome", lit(al, code < 400 ? "success" : "failure"));
        break;
    }
    case MX_EV_TLS_CLIENT_HELLO: {
        mx_node *cl = obj(al, obj(al, root, "tls"), "client");
        put(cl, "server_name", ref(al, get(ev, "sni")));
        put(cl, "ja3", ref(al, get(ev, "ja3")));
        put(cl, "supported_ciphers", ref(al, get(ev, "ciphers")));
        break;
    }
    case MX_EV_TLS_SERVER_HELLO: {
        mx_node *tls = obj(al, root, "tls");
        tls_version(al, tls, get(ev, "version"));
        put(tls, "cipher", ref(al, get(ev, "cipher")));
        const mx_node *alpn = get(ev, "alpn");
        if (sv(alpn)) put(tls, "next_protocol", ref(al, alpn));
        put(obj(al, tls, "server"), "ja3s", ref(al, get(ev, "ja3s")));
        break;
    }
    case MX_EV_TLS_HANDSHAKE_COMPLETE: {
        mx_node *tls = obj(al, root, "tls");
        put(tls, "established", mx_node_new(al, MX_VT_TRUE));
        tls_version(al, tls, get(ev, "version"));
        put(tls, "cipher", ref(al, get(ev, "cipher")));
        break;
    }
    case MX_EV_TLS_CERTIFICATE: {
        const mx_node *leaf = mx_node_at(get(ev, "chain"), 0);
        if (!leaf) break;
        int srv = eh && eh->from == MX_SERVER;
        mx_node *side = obj(al, obj(al, root, "tls"), srv ? "server" : "client");
        uppercase_hex(al, obj(al, side, "hash"), "sha256", get(leaf, "sha256"));
        x509(al, side, leaf);
        put(side, "not_before", ref(al, get(leaf, "not_before")));
        put(side, "not_after", ref(al, get(leaf, "not_after")));
        put(side, "subject", ref(al, get(leaf, "subject")));
        put(side, "issuer", ref(al, get(leaf, "issuer")));
        break;
    }
    case MX_EV_TLS_ALERT: {
        const char *lv = mx_node_gets(ev, "level");
        if (lv && !strcmp(lv, "fatal")) put(e, "outcome", lit(al, "failure"));
        break;
    }
    case MX_EV_SMTP_DATA: {
        const mx_node *h = get(ev, "headers");
        mx_node *em = obj(al, root, "email");
        put(em, "direction", lit(al, "unknown"));
        const char *v;
        if ((v = mx_node_gets(h, "from")) != NULL) put(obj(al, em, "from"), "address", addresses(al, v));
        if ((v = mx_node_gets(h, "to")) != NULL) put(obj(al, em, "to"), "address", addresses(al, v));
        if ((v = mx_node_gets(h, "cc")) != NULL) put(obj(al, em, "cc"), "address", addresses(al, v));
        if ((v = mx_node_gets(h, "reply_to")) != NULL) put(obj(al, em, "reply_to"), "address", addresses(al, v));
        put(em, "subject", ref(al, get(h, "subject")));
        put(em, "message_id", ref(al, get(h, "message_id")));
        put(em, "x_mailer", ref(al, get(h, "x_mailer")));
        put(em, "content_type", ref(al, get(ev, "content_type")));
        mx_node *att = NULL;
        MX_NODE_EACH(p, get(ev, "mime")) {
            const mx_node *fn = get(p, "filename");
            const char *disp = mx_node_gets(p, "disposition");
            int is_att = sv(fn) || (disp && !strcmp(disp, "attachment"));
            if (!is_att) continue;
            if (!att) { att = mx_node_new(al, MX_VT_ARR); put(em, "attachments", att); }
            mx_node *a = mx_node_new(al, MX_VT_OBJ);
            put(att, NULL, a);
            mx_node *f = obj(al, a, "file");
            put(f, "name", ref(al, fn));
            put(f, "mime_type", ref(al, get(p, "content_type")));
            put(f, "size", ref(al, get(p, "bytes")));
        }
        break;
    }
    default: break;
    }
    put(root, "mxtrace", mx_ev_expand(al, ev));
    return al->failed ? NULL : root;
}
