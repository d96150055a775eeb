/* check.h - minimal test macros; each binary ends with "N passed, N failed". */
#ifndef MX_CHECK_H
#define MX_CHECK_H

#include <stdio.h>
#include <string.h>

static int mx_pass, mx_fail;

#define CHECK(cond, ...) do { \
    if (cond) mx_pass++; \
    else { mx_fail++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_DONE() (printf("%d passed, %d failed\n", mx_pass, mx_fail), mx_fail ? 1 : 0)

#endif
