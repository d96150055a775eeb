/* fuzz_tls.c - the TLS record layer through the test harness, both
 * directions TLS from the first byte (implicit TLS, as on port 465).  Same
 * script format as fuzz_smtp (fz_run_script in fuzz_common.h); the implicit
 * TLS option bit is ignored since it is always on. */
#define MX_FUZZ_WITH_HARNESS
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run_script(data, size, 1);
    return 0;
}
