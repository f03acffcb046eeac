/* libFuzzer target: the container reader (header parsing, frame
 * authentication, decompression) on hostile stored bytes. The first input
 * byte picks encrypted or not and the chunk size, so both paths and any
 * chunking are reached. The id and key are those of the golden files in
 * tests/unit/golden, so the seed corpus decrypts and mutations reach the
 * decompressor. */
#include <stddef.h>
#include <stdint.h>

#include "container.h"

static int discard(void *context, const void *data, size_t len, stow_error *err)
{
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[CONTAINER_DATA_KEY_BYTES] = {
        0x03, 0x92, 0xa5, 0x13, 0x86, 0x4a, 0x5d, 0xf1, 0xeb, 0x93, 0xac, 0xd6, 0xef, 0xf2, 0x7e, 0x71,
        0xdb, 0x06, 0x18, 0xbb, 0x46, 0x2c, 0xf8, 0xa8, 0x3a, 0x60, 0x1f, 0xeb, 0xcf, 0xe8, 0x93, 0x37};
    struct container_reader_options options = {"golden-backup", 1, key};
    container_reader *reader = NULL;
    stow_error err = {0};
    size_t chunk;

    if (size < 1)
        return 0;
    options.expect_encrypted = data[0] & 1;
    chunk = (size_t)(data[0] >> 1) + 1;
    data++;
    size--;

    if (container_reader_new(&options, discard, NULL, &reader, &err) != 0)
        return 0;
    for (size_t offset = 0; offset < size; offset += chunk) {
        size_t len = size - offset < chunk ? size - offset : chunk;

        if (container_reader_write(reader, data + offset, len, &err) != 0)
            break;
    }
    if (!stow_error_is_set(&err))
        container_reader_finish(reader, &err);
    container_reader_free(reader);
    return 0;
}
