/* fuzz_smtp.c - the SMTP parser (and the STARTTLS hand-off to the TLS record
 * layer) through the test harness: the input is a script of client/server
 * chunks and gaps (see fz_run_script in fuzz_common.h). */
#define MX_FUZZ_WITH_HARNESS
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run_script(data, size, 0);
    return 0;
}
