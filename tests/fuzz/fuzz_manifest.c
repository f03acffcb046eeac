/* libFuzzer target: manifest parsing and validation on hostile JSON. */
#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest manifest;
    stow_error err = {0};

    if (manifest_parse("fuzz.json", (const char *)data, size, &manifest, &err) == 0)
        manifest_free(&manifest);
    return 0;
}
