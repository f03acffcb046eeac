/* libFuzzer target: the pg_dump custom-format scanner on hostile archives,
 * fed in chunks whose size the first input byte picks. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "dumpscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dumpscan *scanner = NULL;
    stow_error err = {0};
    size_t chunk;

    if (size < 1)
        return 0;
    chunk = (size_t)data[0] + 1;
    data++;
    size--;

    if (dumpscan_new(NULL, &scanner, &err) != 0)
        return 0;
    for (size_t offset = 0; offset < size; offset += chunk) {
        size_t len = size - offset < chunk ? size - offset : chunk;

        if (dumpscan_write(scanner, data + offset, len, &err) != 0)
            break;
    }
    if (!stow_error_is_set(&err) && dumpscan_finish(scanner, &err) == 0)
        json_decref(dumpscan_to_json(scanner));
    dumpscan_free(scanner);
    return 0;
}
