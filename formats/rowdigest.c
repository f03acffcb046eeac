/* Order-independent lane-sum digests of COPY text rows. */
#include "formats/rowdigest.h"

#include <endian.h>
#include <string.h>

/* The SipHash key is public and fixed, so the digest detects damaged or
 * missing rows, not rows forged on purpose. */
static const unsigned char siphash_key[crypto_shorthash_siphashx24_KEYBYTES];

static size_t hash_bytes(rowdigest_algorithm algorithm)
{
    return algorithm == ROWDIGEST_SUM256_BLAKE2B ? 32 : 16;
}

/* One load per lane: this runs for every row of every table. */
static uint64_t load_le64(const unsigned char *bytes)
{
    uint64_t value;

    memcpy(&value, bytes, sizeof value);
    return le64toh(value);
}

static void store_le64(unsigned char *bytes, uint64_t value)
{
    value = htole64(value);
    memcpy(bytes, &value, sizeof value);
}

static void add_hash(rowdigest *digest, const unsigned char *hash)
{
    size_t lanes = hash_bytes(digest->algorithm) / 8;

    for (size_t lane = 0; lane < lanes; lane++)
        digest->lanes[lane] += load_le64(hash + 8 * lane);
    digest->rows++;
}

void rowdigest_init_algorithm(rowdigest *digest, rowdigest_algorithm algorithm)
{
    digest->algorithm = algorithm;
    memset(digest->lanes, 0, sizeof digest->lanes);
    digest->rows = 0;
    digest->row_open = 0;
    digest->row_len = 0;
}

void rowdigest_init(rowdigest *digest)
{
    rowdigest_init_algorithm(digest, ROWDIGEST_CURRENT);
}

void rowdigest_add_row(rowdigest *digest, const void *row, size_t len)
{
    unsigned char hash[ROWDIGEST_MAX_BYTES];
    size_t size = hash_bytes(digest->algorithm);

    if (digest->algorithm == ROWDIGEST_SUM128_SIPHASH && len <= ROWDIGEST_SIPHASH_MAX)
        crypto_shorthash_siphashx24(hash, row, len, siphash_key);
    else
        crypto_generichash(hash, size, row, len, NULL, 0);
    add_hash(digest, hash);
}

/* Whether the open row goes through the incremental BLAKE2b state rather
 * than the pending buffer. */
static int row_is_streamed(const rowdigest *digest)
{
    return digest->algorithm != ROWDIGEST_SUM128_SIPHASH ||
           digest->row_len > ROWDIGEST_SIPHASH_MAX;
}

void rowdigest_row_update(rowdigest *digest, const void *bytes, size_t len)
{
    int was_streamed = row_is_streamed(digest);

    if (!digest->row_open) {
        digest->row_open = 1;
        digest->row_len = 0;
        was_streamed = row_is_streamed(digest);
        if (was_streamed)
            crypto_generichash_init(&digest->row, NULL, 0, hash_bytes(digest->algorithm));
    }
    digest->row_len += len;

    if (was_streamed) {
        crypto_generichash_update(&digest->row, bytes, len);
        return;
    }
    if (!row_is_streamed(digest)) {
        memcpy(digest->pending + digest->row_len - len, bytes, len);
        return;
    }

    /* The row has just outgrown SipHash: hash what was collected so far. */
    crypto_generichash_init(&digest->row, NULL, 0, hash_bytes(digest->algorithm));
    crypto_generichash_update(&digest->row, digest->pending, digest->row_len - len);
    crypto_generichash_update(&digest->row, bytes, len);
}

void rowdigest_row_end(rowdigest *digest)
{
    unsigned char hash[ROWDIGEST_MAX_BYTES];

    if (!digest->row_open) {
        rowdigest_add_row(digest, "", 0);
        return;
    }
    digest->row_open = 0;
    if (!row_is_streamed(digest)) {
        rowdigest_add_row(digest, digest->pending, digest->row_len);
        return;
    }
    crypto_generichash_final(&digest->row, hash, hash_bytes(digest->algorithm));
    add_hash(digest, hash);
}

void rowdigest_row_cancel(rowdigest *digest)
{
    digest->row_open = 0;
    digest->row_len = 0;
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
    unsigned char bytes[ROWDIGEST_MAX_BYTES];
    size_t size = hash_bytes(digest->algorithm);

    for (size_t lane = 0; lane < size / 8; lane++)
        store_le64(bytes + 8 * lane, digest->lanes[lane]);
    sodium_bin2hex(out, ROWDIGEST_HEX_SIZE, bytes, size);
}

size_t rowdigest_hex_length(rowdigest_algorithm algorithm)
{
    return 2 * hash_bytes(algorithm);
}

static const struct {
    rowdigest_algorithm algorithm;
    const char *name;
} algorithm_names[] = {
    {ROWDIGEST_SUM256_BLAKE2B, "sum256-blake2b"},
    {ROWDIGEST_SUM128_SIPHASH, "sum128-siphash"},
};

const char *rowdigest_algorithm_name(rowdigest_algorithm algorithm)
{
    for (size_t i = 0; i < sizeof algorithm_names / sizeof algorithm_names[0]; i++) {
        if (algorithm_names[i].algorithm == algorithm)
            return algorithm_names[i].name;
    }
    return "unknown";
}

rowdigest_algorithm rowdigest_algorithm_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof algorithm_names / sizeof algorithm_names[0]; i++) {
        if (strcmp(algorithm_names[i].name, name) == 0)
            return algorithm_names[i].algorithm;
    }
    return 0;
}
