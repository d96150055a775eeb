/* config.h - a JSON configuration file for sensors (--config FILE). */
#ifndef MX_CONFIG_H
#define MX_CONFIG_H

#include <stddef.h>

#include "mx/output.h"

/* Reads the "outputs" array of the JSON file at path, each object with
 * "kind", "target" and any --output key ("format", "rotate-size", "mode",
 * ...; strings or numbers), into specs[*n...max-1].  0 and a message in err
 * naming the file if it cannot. */
int mx_config_outputs(const char *path, mx_output_spec *specs, int *n, int max, char *err, size_t cap);
/* The same from the text of such a file (NUL-terminated), path naming it in
 * messages. */
int mx_config_parse(const char *txt, const char *path, mx_output_spec *specs, int *n, int max, char *err, size_t cap);

#endif
