/* render_ecs.c - an event in Elastic Common Schema 8.x (output layer).
 *
 * The native event is kept whole under "mxtrace" (its type, session, frame
 * and every field, as -F ndjson writes them); around it go the ECS fields
 * that hold for every event (@timestamp, ecs, event.*, source/destination,
 * network.*) and, for the events that carry them, tls.* and email.*.  Values
 * are shared with the native tree, never copied: the wrapper lives exactly
 * as long as the event.  The mapping is documented in docs/ECS.md.
 */
#include "render_ecs.h"

#include <stdlib.h>
#include <string.h>

#define ECS_VERSION "8.11.0"

static const cJSON *get(const cJSON *o, const char *k) { return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }

/* A node that shows another's value (or children) without owning it. */
static cJSON *ref(mx_ecs_alloc *al, const cJSON *v)
{
    if (!v) return NULL;
    cJSON *n = al->node(al->ctx, (v->type & 0xFF) | cJSON_IsReference);
    if (!n) return NULL;
    n->valuestring = v->valuestring;
    n->valuedouble = v->valuedouble;
    n->valueint = v->valueint;
    n->child = v->child;
    return n;
}

static void put(cJSON *obj, const char *key, cJSON *v)
{
    if (!obj || !v) return;
    if (cJSON_IsArray(obj)) cJSON_AddItemToArray(obj, v);
    else cJSON_AddItemToObjectCS(obj, key, v);
}

static cJSON *obj(mx_ecs_alloc *al, cJSON *parent, const char *key)
{
    cJSON *o = al->node(al->ctx, cJSON_Object);
    put(parent, key, o);
    return o;
}

static cJSON *lit(mx_ecs_alloc *al, const char *s)
{
    cJSON *v = al->node(al->ctx, cJSON_String | cJSON_IsReference);
    if (v) v->valuestring = (char *)(uintptr_t)s;
    return v;
}

/* The address inside "Name <a@b>" (or the whole text when there is none). */
static cJSON *address(mx_ecs_alloc *al, const char *s)
{
    const char *lt = strrchr(s, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt) return lit(al, s);
    return al->text(al->ctx, lt + 1, (size_t)(gt - lt - 1));
}

/* "a@b, C <c@d>" as an array of addresses (commas inside quotes or <> are
 * not split on; raw headers are not MIME-decoded). */
static cJSON *addresses(mx_ecs_alloc *al, const char *s)
{
    cJSON *arr = al->node(al->ctx, cJSON_Array);
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
            if (*b) {
                cJSON *a = address(al, b);
                if (a && a->valuestring == b) a = al->text(al->ctx, b, strlen(b));   /* one[] is ours */
                put(arr, NULL, a);
            }
            n = 0;
            if (!*p) break;
            continue;
        }
        if (n < sizeof one - 1) one[n++] = *p;
    }
    return arr;
}

static void endpoint(mx_ecs_alloc *al, cJSON *root, const char *key, const char *ip, uint16_t port)
{
    cJSON *o = obj(al, root, key);
    put(o, "ip", al->text(al->ctx, ip, strlen(ip)));
    put(o, "port", al->num(al->ctx, port));
}

/* "TLSv1.2" -> version "1.2", version_protocol "tls". */
static void tls_version(mx_ecs_alloc *al, cJSON *tls, const cJSON *v)
{
    const char *s = cJSON_GetStringValue(v);
    if (!s) return;
    if (strncmp(s, "TLSv", 4) && strncmp(s, "SSLv", 4)) return;
    /* ECS writes a major version with its minor: TLSv1 is "1.0", SSLv3 "3.0" */
    const char *n = s + 4;
    put(tls, "version", lit(al, !strcmp(n, "1") ? "1.0" : !strcmp(n, "2") ? "2.0" : !strcmp(n, "3") ? "3.0" : n));
    put(tls, "version_protocol", lit(al, !strncmp(s, "TLS", 3) ? "tls" : "ssl"));
}

static void x509(mx_ecs_alloc *al, cJSON *parent, const cJSON *c)
{
    cJSON *x = obj(al, parent, "x509");
    cJSON *sub = obj(al, x, "subject"), *iss = obj(al, x, "issuer");
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

static void uppercase_hex(mx_ecs_alloc *al, cJSON *o, const char *key, const cJSON *v)
{
    const char *s = cJSON_GetStringValue(v);
    if (!s) return;
    cJSON *n = al->text(al->ctx, s, strlen(s));
    if (!n) return;
    for (char *p = n->valuestring; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    put(o, key, n);
}

cJSON *mx_ecs_wrap(mx_ecs_alloc *al, const mx_sess *s, mx_evtype type, cJSON *ev)
{
    const mx_evtype_info *ti = mx_evtype_get(type);
    cJSON *root = al->node(al->ctx, cJSON_Object);
    if (!root || !ti) return NULL;
    put(root, "@timestamp", ref(al, get(ev, "ts")));
    put(obj(al, root, "ecs"), "version", lit(al, ECS_VERSION));

    cJSON *e = obj(al, root, "event");
    put(e, "kind", lit(al, type == MX_EV_ANOMALY ? "alert" : "event"));
    cJSON *cat = al->node(al->ctx, cJSON_Array), *typ = al->node(al->ctx, cJSON_Array);
    put(e, "category", cat);
    put(cat, NULL, lit(al, ti->ecs_category));
    put(e, "type", typ);
    put(typ, NULL, lit(al, ti->ecs_type));
    put(e, "action", lit(al, ti->name));
    put(e, "module", lit(al, "mxtrace"));
    put(e, "dataset", lit(al, "mxtrace.events"));

    cJSON *net = NULL;
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
        if (s->community_id[0]) put(net, "community_id", al->text(al->ctx, s->community_id, strlen(s->community_id)));
    }

    switch (type) {
    case MX_EV_OUTPUT_DROP:
        put(e, "outcome", lit(al, "failure"));
        put(e, "reason", ref(al, get(ev, "reason")));
        break;
    case MX_EV_SESSION_START: {
        const cJSON *vl = get(get(ev, "network"), "vlan_id");
        if (cJSON_GetArraySize(vl) > 0) put(obj(al, net, "vlan"), "id", ref(al, cJSON_GetArrayItem(vl, 0)));
        break;
    }
    case MX_EV_SESSION_END: {
        const cJSON *v = get(ev, "verdict");
        if (v) put(e, "outcome", lit(al, cJSON_IsTrue(get(v, "ok")) ? "success" : "failure"));
        if (v) put(e, "reason", ref(al, get(v, "explanation")));
        put(e, "duration", al->num(al->ctx, (double)(s->cur_us - s->start_us) * 1000.0));
        break;
    }
    case MX_EV_SMTP_REPLY: {
        const cJSON *c = get(ev, "code");
        int code = c && (c->type & 0xFF) == cJSON_Raw && c->valuestring ? atoi(c->valuestring) : 0;
        if (code >= 200) put(e, "outcome", lit(al, code < 400 ? "success" : "failure"));
        break;
    }
    case MX_EV_TLS_CLIENT_HELLO: {
        cJSON *cl = obj(al, obj(al, root, "tls"), "client");
        put(cl, "server_name", ref(al, get(ev, "sni")));
        put(cl, "ja3", ref(al, get(ev, "ja3")));
        put(cl, "supported_ciphers", ref(al, get(ev, "ciphers")));
        break;
    }
    case MX_EV_TLS_SERVER_HELLO: {
        cJSON *tls = obj(al, root, "tls");
        tls_version(al, tls, get(ev, "version"));
        put(tls, "cipher", ref(al, get(ev, "cipher")));
        const cJSON *alpn = get(ev, "alpn");
        if (cJSON_IsString(alpn)) put(tls, "next_protocol", ref(al, alpn));
        put(obj(al, tls, "server"), "ja3s", ref(al, get(ev, "ja3s")));
        break;
    }
    case MX_EV_TLS_HANDSHAKE_COMPLETE: {
        cJSON *tls = obj(al, root, "tls");
        put(tls, "established", al->node(al->ctx, cJSON_True));
        tls_version(al, tls, get(ev, "version"));
        put(tls, "cipher", ref(al, get(ev, "cipher")));
        break;
    }
    case MX_EV_TLS_CERTIFICATE: {
        const cJSON *leaf = cJSON_GetArrayItem(get(ev, "chain"), 0);
        const cJSON *from = get(ev, "from");
        if (!leaf) break;
        int srv = cJSON_GetStringValue(from) && !strcmp(cJSON_GetStringValue(from), "server");
        cJSON *side = obj(al, obj(al, root, "tls"), srv ? "server" : "client");
        uppercase_hex(al, obj(al, side, "hash"), "sha256", get(leaf, "sha256"));
        x509(al, side, leaf);
        put(side, "not_before", ref(al, get(leaf, "not_before")));
        put(side, "not_after", ref(al, get(leaf, "not_after")));
        put(side, "subject", ref(al, get(leaf, "subject")));
        put(side, "issuer", ref(al, get(leaf, "issuer")));
        break;
    }
    case MX_EV_TLS_ALERT: {
        const cJSON *lv = get(ev, "level");
        if (cJSON_GetStringValue(lv) && !strcmp(cJSON_GetStringValue(lv), "fatal")) put(e, "outcome", lit(al, "failure"));
        break;
    }
    case MX_EV_SMTP_DATA: {
        const cJSON *h = get(ev, "headers");
        cJSON *em = obj(al, root, "email");
        put(em, "direction", lit(al, "unknown"));
        const char *v;
        if ((v = cJSON_GetStringValue(get(h, "from"))) != NULL) put(obj(al, em, "from"), "address", addresses(al, v));
        if ((v = cJSON_GetStringValue(get(h, "to"))) != NULL) put(obj(al, em, "to"), "address", addresses(al, v));
        if ((v = cJSON_GetStringValue(get(h, "cc"))) != NULL) put(obj(al, em, "cc"), "address", addresses(al, v));
        if ((v = cJSON_GetStringValue(get(h, "reply_to"))) != NULL) put(obj(al, em, "reply_to"), "address", addresses(al, v));
        put(em, "subject", ref(al, get(h, "subject")));
        put(em, "message_id", ref(al, get(h, "message_id")));
        put(em, "x_mailer", ref(al, get(h, "x_mailer")));
        put(em, "content_type", ref(al, get(ev, "content_type")));
        const cJSON *parts = get(ev, "mime");
        cJSON *att = NULL;
        for (const cJSON *p = parts ? parts->child : NULL; p; p = p->next) {
            const cJSON *fn = get(p, "filename"), *disp = get(p, "disposition");
            int is_att = cJSON_IsString(fn) || (cJSON_GetStringValue(disp) && !strcmp(cJSON_GetStringValue(disp), "attachment"));
            if (!is_att) continue;
            if (!att) { att = al->node(al->ctx, cJSON_Array); put(em, "attachments", att); }
            cJSON *a = al->node(al->ctx, cJSON_Object);
            put(att, NULL, a);
            cJSON *f = obj(al, a, "file");
            put(f, "name", ref(al, fn));
            put(f, "mime_type", ref(al, get(p, "content_type")));
            put(f, "size", ref(al, get(p, "bytes")));
        }
        break;
    }
    default: break;
    }
    put(root, "mxtrace", ev);
    return root;
}
