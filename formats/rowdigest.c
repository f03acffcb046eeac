/* Order-independent BLAKE2b lane-sum digest of COPY text rows. */
#include "formats/rowdigest.h"

#include <string.h>

static uint64_t load_le64(const unsigned char *bytes)
{
    uint64_t value = 0;

    for (int i = 7; i >= 0; i--)
        value = (value << 8) | bytes[i];
    return value;
}

static void store_le64(unsigned char *bytes, uint64_t value)
{
    for (int i = 0; i < 8; i++) {
        bytes[i] = (unsigned char)(value & 0xff);
        value >>= 8;
    }
}

static void add_hash(rowdigest *digest, const unsigned char hash[ROWDIGEST_BYTES])
{
    for (int lane = 0; lane < 4; lane++)
        digest->lanes[lane] += load_le64(hash + 8 * lane);
    digest->rows++;
}

void rowdigest_init(rowdigest *digest)
{
    memset(digest->lanes, 0, sizeof digest->lanes);
    digest->rows = 0;
    digest->row_open = 0;
}

void rowdigest_add_row(rowdigest *digest, const void *row, size_t len)
{
    unsigned char hash[ROWDIGEST_BYTES];

    crypto_generichash(hash, sizeof hash, row, len, NULL, 0);
    add_hash(digest, hash);
}

void rowdigest_row_update(rowdigest *digest, const void *bytes, size_t len)
{
    if (!digest->row_open) {
        crypto_generichash_init(&digest->row, NULL, 0, ROWDIGEST_BYTES);
        digest->row_open = 1;
    }
    crypto_generichash_update(&digest->row, bytes, len);
}

void rowdigest_row_end(rowdigest *digest)
{
    unsigned char hash[ROWDIGEST_BYTES];

    if (!digest->row_open) {
        rowdigest_add_row(digest, "", 0);
        return;
    }
    crypto_generichash_final(&digest->row, hash, sizeof hash);
    digest->row_open = 0;
    add_hash(digest, hash);
}

void rowdigest_row_cancel(rowdigest *digest)
{
    digest->row_open = 0;
}

void rowdigest_feed(rowdigest *digest, const void *data, size_t len)
{
    const unsigned char *at = data;
    const unsigned char *end = at + len;

    while (at < end) {
        const unsigned char *newline = memchr(at, '\n', (size_t)(end - at));

        if (newline == NULL) {
            rowdigest_row_update(digest, at, (size_t)(end - at));
            return;
        }

        /* A row that arrives whole skips the incremental state. */
        if (digest->row_open) {
            rowdigest_row_update(digest, at, (size_t)(newline - at));
            rowdigest_row_end(digest);
        } else {
            rowdigest_add_row(digest, at, (size_t)(newline - at));
        }
        at = newline + 1;
    }
}

void rowdigest_hex(const rowdigest *digest, char out[ROWDIGEST_HEX_SIZE])
{
    unsigned char bytes[ROWDIGEST_BYTES];

    for (int lane = 0; lane < 4; lane++)
        store_le64(bytes + 8 * lane, digest->lanes[lane]);
    sodium_bin2hex(out, ROWDIGEST_HEX_SIZE, bytes, sizeof bytes);
}
