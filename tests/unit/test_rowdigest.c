/* Tests for formats/rowdigest.c. Expected digests of the current algorithm
 * (sum128-siphash) were computed with the Python SipHash-2-4-128 of
 * tests/unit/data/make_dumps.sh, and for rows over 65536 bytes with
 * Python's hashlib.blake2b(digest_size=16), summing the two little-endian
 * uint64 lanes of each row's hash modulo 2^64. Those of the older
 * sum256-blake2b come from hashlib.blake2b(digest_size=32) and four lanes. */
#include <stdio.h>
#include <string.h>

#include "formats/rowdigest.h"
#include "unit.h"

#define ZERO_DIGEST "00000000000000000000000000000000"

/* Digest of the rows "1\tone", "2\ttwo" and "3\t\N". */
#define THREE_ROWS_DIGEST "aa43ea9080e0fb107113f85f9c778c0e"
#define THREE_ROWS_BLAKE2B "d2779f8ddeb6dc1951b6a2a807f82e0e307b0e1ac0866ea8d35164c1e1fc3258"

static const char *const three_rows[] = {"1\tone", "2\ttwo", "3\t\\N"};

static void digest_of(const char *const *rows, size_t count, char out[ROWDIGEST_HEX_SIZE])
{
    rowdigest digest;

    rowdigest_init(&digest);
    for (size_t i = 0; i < count; i++)
        rowdigest_add_row(&digest, rows[i], strlen(rows[i]));
    rowdigest_hex(&digest, out);
}

static void test_empty_table(void)
{
    rowdigest digest;
    char hex[ROWDIGEST_HEX_SIZE];

    rowdigest_init(&digest);
    rowdigest_hex(&digest, hex);
    CHECK_STR_EQ(ZERO_DIGEST, hex);
    CHECK_INT_EQ(0, digest.rows);
}

static void test_single_row_is_its_hash(void)
{
    const char *row = "abc";
    char hex[ROWDIGEST_HEX_SIZE];

    digest_of(&row, 1, hex);
    CHECK_STR_EQ("6c95dec302962fa8ca5e69c1d5d15478", hex);
}

static void test_known_rows(void)
{
    char hex[ROWDIGEST_HEX_SIZE];

    digest_of(three_rows, 3, hex);
    CHECK_STR_EQ(THREE_ROWS_DIGEST, hex);
}

static void test_order_independent(void)
{
    const char *const reordered[] = {"3\t\\N", "1\tone", "2\ttwo"};
    char hex[ROWDIGEST_HEX_SIZE];

    digest_of(reordered, 3, hex);
    CHECK_STR_EQ(THREE_ROWS_DIGEST, hex);
}

static void test_duplicates_change_digest(void)
{
    const char *const with_duplicate[] = {"1\tone", "2\ttwo", "3\t\\N", "2\ttwo"};
    const char *const pair[] = {"same", "same"};
    char base[ROWDIGEST_HEX_SIZE];
    char duplicated[ROWDIGEST_HEX_SIZE];
    char pair_hex[ROWDIGEST_HEX_SIZE];

    digest_of(three_rows, 3, base);
    digest_of(with_duplicate, 4, duplicated);
    CHECK(strcmp(base, duplicated) != 0);

    /* Under XOR two equal rows would cancel out to the empty digest. */
    digest_of(pair, 2, pair_hex);
    CHECK(strcmp(ZERO_DIGEST, pair_hex) != 0);
}

static void test_empty_row_counts(void)
{
    rowdigest digest;
    char hex[ROWDIGEST_HEX_SIZE];

    rowdigest_init(&digest);
    rowdigest_row_end(&digest);
    rowdigest_hex(&digest, hex);
    CHECK_INT_EQ(1, digest.rows);
    CHECK_STR_EQ("5049d74780a3e07d4202ab47d4cef2f4", hex);
}

static void test_incremental_equals_one_shot(void)
{
    rowdigest digest;
    char hex[ROWDIGEST_HEX_SIZE];

    rowdigest_init(&digest);
    for (size_t i = 0; i < 3; i++) {
        const char *row = three_rows[i];
        size_t len = strlen(row);

        /* One byte at a time, then the row ends. */
        for (size_t at = 0; at < len; at++)
            rowdigest_row_update(&digest, row + at, 1);
        rowdigest_row_end(&digest);
    }
    rowdigest_hex(&digest, hex);
    CHECK_STR_EQ(THREE_ROWS_DIGEST, hex);
    CHECK_INT_EQ(3, digest.rows);
}

static void test_cancel_drops_row(void)
{
    rowdigest digest;
    char hex[ROWDIGEST_HEX_SIZE];

    rowdigest_init(&digest);
    rowdigest_row_update(&digest, "\\.", 2);
    rowdigest_row_cancel(&digest);
    for (size_t i = 0; i < 3; i++)
        rowdigest_add_row(&digest, three_rows[i], strlen(three_rows[i]));
    rowdigest_hex(&digest, hex);
    CHECK_STR_EQ(THREE_ROWS_DIGEST, hex);
    CHECK_INT_EQ(3, digest.rows);
}

static void test_feed_any_chunking(void)
{
    const char text[] = "1\tone\n2\ttwo\n3\t\\N\n";
    size_t len = sizeof text - 1;

    for (size_t chunk = 1; chunk <= len; chunk++) {
        rowdigest digest;
        char hex[ROWDIGEST_HEX_SIZE];

        rowdigest_init(&digest);
        for (size_t at = 0; at < len; at += chunk)
            rowdigest_feed(&digest, text + at, len - at < chunk ? len - at : chunk);
        rowdigest_hex(&digest, hex);
        CHECK_STR_EQ(THREE_ROWS_DIGEST, hex);
        CHECK_INT_EQ(3, digest.rows);
        CHECK_INT_EQ(0, digest.row_open);
    }
}

static void test_feed_leaves_partial_row_open(void)
{
    rowdigest digest;

    rowdigest_init(&digest);
    rowdigest_feed(&digest, "1\tone\n2\tt", 9);
    CHECK_INT_EQ(1, digest.rows);
    CHECK_INT_EQ(1, digest.row_open);
}

/* Rows of 65536 bytes use SipHash and longer ones BLAKE2b-128, whether
 * they arrive whole or in pieces that cross the limit. */
static void test_long_rows_any_split(void)
{
    static char row[ROWDIGEST_SIPHASH_MAX + 1];
    static rowdigest digest;
    const size_t lengths[] = {ROWDIGEST_SIPHASH_MAX, ROWDIGEST_SIPHASH_MAX + 1};
    const char *expected[] = {"8c78c6132f7904018ff6a57efe966255",
                              "19888e260b48618fbf81dbca1583a439"};
    const size_t pieces[] = {1, 7, 4096, ROWDIGEST_SIPHASH_MAX, ROWDIGEST_SIPHASH_MAX + 1};
    char hex[ROWDIGEST_HEX_SIZE];

    memset(row, 'x', sizeof row);
    for (size_t i = 0; i < 2; i++) {
        rowdigest_init(&digest);
        rowdigest_add_row(&digest, row, lengths[i]);
        rowdigest_hex(&digest, hex);
        CHECK_STR_EQ(expected[i], hex);

        for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
            rowdigest_init(&digest);
            for (size_t at = 0; at < lengths[i]; at += pieces[p]) {
                size_t left = lengths[i] - at;

                rowdigest_row_update(&digest, row + at, left < pieces[p] ? left : pieces[p]);
            }
            rowdigest_row_end(&digest);
            rowdigest_hex(&digest, hex);
            CHECK_STR_EQ(expected[i], hex);
        }
    }
}

static void test_blake2b_algorithm(void)
{
    static rowdigest digest;
    char hex[ROWDIGEST_HEX_SIZE];

    rowdigest_init_algorithm(&digest, ROWDIGEST_SUM256_BLAKE2B);
    for (size_t i = 0; i < 3; i++)
        rowdigest_add_row(&digest, three_rows[i], strlen(three_rows[i]));
    rowdigest_hex(&digest, hex);
    CHECK_STR_EQ(THREE_ROWS_BLAKE2B, hex);

    rowdigest_init_algorithm(&digest, ROWDIGEST_SUM256_BLAKE2B);
    rowdigest_feed(&digest, "1\tone\n2\ttwo\n3\t\\N\n", 17);
    rowdigest_hex(&digest, hex);
    CHECK_STR_EQ(THREE_ROWS_BLAKE2B, hex);

    rowdigest_init_algorithm(&digest, ROWDIGEST_SUM256_BLAKE2B);
    rowdigest_row_end(&digest);
    rowdigest_hex(&digest, hex);
    CHECK_STR_EQ("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8", hex);
    CHECK_INT_EQ(64, rowdigest_hex_length(ROWDIGEST_SUM256_BLAKE2B));
}

static void test_algorithm_names(void)
{
    CHECK_STR_EQ("sum128-siphash", rowdigest_algorithm_name(ROWDIGEST_SUM128_SIPHASH));
    CHECK_STR_EQ("sum256-blake2b", rowdigest_algorithm_name(ROWDIGEST_SUM256_BLAKE2B));
    CHECK_INT_EQ(ROWDIGEST_SUM128_SIPHASH, rowdigest_algorithm_from_name("sum128-siphash"));
    CHECK_INT_EQ(ROWDIGEST_SUM256_BLAKE2B, rowdigest_algorithm_from_name("sum256-blake2b"));
    CHECK_INT_EQ(0, rowdigest_algorithm_from_name("sum256-md5"));
    CHECK_INT_EQ(32, rowdigest_hex_length(ROWDIGEST_CURRENT));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;

    unit_run("rowdigest empty table", test_empty_table);
    unit_run("rowdigest single row is its hash", test_single_row_is_its_hash);
    unit_run("rowdigest known rows", test_known_rows);
    unit_run("rowdigest order independent", test_order_independent);
    unit_run("rowdigest duplicates change digest", test_duplicates_change_digest);
    unit_run("rowdigest empty row counts", test_empty_row_counts);
    unit_run("rowdigest incremental equals one-shot", test_incremental_equals_one_shot);
    unit_run("rowdigest cancel drops row", test_cancel_drops_row);
    unit_run("rowdigest feed any chunking", test_feed_any_chunking);
    unit_run("rowdigest feed leaves partial row open", test_feed_leaves_partial_row_open);
    unit_run("rowdigest long rows any split", test_long_rows_any_split);
    unit_run("rowdigest blake2b algorithm", test_blake2b_algorithm);
    unit_run("rowdigest algorithm names", test_algorithm_names);
    return unit_finish();
}
