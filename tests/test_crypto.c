/* Unit tests: hashes and Community ID against published values. */
#include "check.h"
#include "mx/x509.h"

#include <arpa/inet.h>

int main(void)
{
    char h[80];
    mx_md5_hex("abc", 3, h);
    CHECK(strcmp(h, "900150983cd24fb0d6963f7d28e17f72") == 0, "md5(abc) %s", h);
    mx_sha256_hex("abc", 3, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256(abc)");

    mx_addr a = { .v6 = 0 }, b = { .v6 = 0 };
    inet_pton(AF_INET, "1.2.3.4", a.b);
    inet_pton(AF_INET, "5.6.7.8", b.b);
    mx_community_id(&a, 1122, &b, 3344, h, sizeof h);
    CHECK(strcmp(h, "1:wCb3OG7yAFWelaUydu0D+125CLM=") == 0, "community id %s", h);
    mx_community_id(&b, 3344, &a, 1122, h, sizeof h);
    CHECK(strcmp(h, "1:wCb3OG7yAFWelaUydu0D+125CLM=") == 0, "community id is direction-free %s", h);
    return CHECK_DONE();
}
