/* fuzz_pcapng.c - the pcapng block reader (src/capture.c), and mx_decode()
 * on every packet it returns.
 *
 * Input: a pcapng file, read from memory (fmemopen) twice: once with no
 * bytes given ahead, once with its first four handed over as the bytes
 * already read (as mxtrace does after looking at the magic).  Checks: both
 * reads give the same packets and the same outcome; every packet lies in a
 * block no larger than the cap (its bytes are touched, so ASan sees a stray
 * read), caplen within MX_PCAPNG_MAX_BLOCK; the offset never passes the
 * input's size; the end, once reached, stays the end; a failure comes with
 * a reason.  Supported link types go on to mx_decode().
 */
#define _GNU_SOURCE
#include "fuzz_common.h"
#include "mx/capture.h"
#include "mx/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXPKTS 4096

typedef struct seen {
    uint64_t us;
    uint32_t caplen, len, iface;
    int linktype;
    uint32_t sum;
} seen;

static int read_all(const uint8_t *data, size_t size, size_t npre, seen *out, int *n, char *err, size_t ecap)
{
    /* fmemopen refuses an empty buffer */
    FILE *f = size > npre ? fmemopen((void *)(data + npre), size - npre, "rb") : fopen("/dev/null", "rb");
    if (!f) abort();
    mx_pcapng *r = mx_pcapng_new(f, data, npre);
    if (!r) abort();
    mx_pcapng_pkt k;
    int rc;
    *n = 0;
    while ((rc = mx_pcapng_next(r, &k)) == MX_NG_PACKET) {
        if (k.caplen > MX_PCAPNG_MAX_BLOCK) FZ_FAIL("caplen %u beyond the block cap", k.caplen);
        if (mx_pcapng_offset(r) > size) FZ_FAIL("offset %llu past the input (%zu)",
                                                (unsigned long long)mx_pcapng_offset(r), size);
        uint8_t *pkt = fz_dup(k.data, k.caplen);
        uint32_t sum = 0;
        for (uint32_t i = 0; i < k.caplen; i++) sum = sum * 31 + pkt[i];
        if (mx_link_supported(k.linktype)) {
            mx_pkt p;
            uint32_t wire = k.len < k.caplen ? k.caplen : k.len;
            mx_decode(k.linktype, pkt, k.caplen, wire, &p);
        }
        free(pkt);
        if (*n < MAXPKTS) {
            seen *s = &out[(*n)++];
            memset(s, 0, sizeof *s);
            s->us = k.us; s->caplen = k.caplen; s->len = k.len; s->iface = k.iface;
            s->linktype = k.linktype; s->sum = sum;
        } else {
            break;
        }
    }
    if (rc != MX_NG_PACKET) snprintf(err, ecap, "%s", mx_pcapng_error(r));
    if (rc == MX_NG_END && mx_pcapng_next(r, &k) != MX_NG_END) FZ_FAIL("end is not final");
    if (mx_pcapng_offset(r) > size) FZ_FAIL("offset past the input");
    mx_pcapng_free(r);
    fclose(f);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static seen a[MAXPKTS], b[MAXPKTS];
    char ea[160] = "", eb[160] = "";
    int na, nb;
    if (size < 4) return 0;
    int ra = read_all(data, size, 0, a, &na, ea, sizeof ea);
    int rb = read_all(data, size, 4, b, &nb, eb, sizeof eb);
    if (ra != rb || na != nb) FZ_FAIL("with and without the magic given ahead: rc %d/%d, %d/%d packets", ra, rb, na, nb);
    if (memcmp(a, b, (size_t)na * sizeof a[0]) != 0) FZ_FAIL("packets differ with the magic given ahead");
    if (strcmp(ea, eb) != 0) FZ_FAIL("errors differ: '%s' / '%s'", ea, eb);
    if ((ra == MX_NG_DAMAGED || ra == MX_NG_NOT_PCAPNG) && !ea[0]) FZ_FAIL("failure without a reason");
    return 0;
}
