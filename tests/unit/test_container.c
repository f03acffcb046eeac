/* Tests for formats/container.c: round trips at frame boundaries and in
 * any chunking, and rejection of damaged, truncated or mismatched objects. */
#include "unit.h"

#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "formats/container.h"
#include "formats/keys.h"

#define BACKUP_ID "20240501T020000Z-orders"
#define OUTPUT_MAX (64u * 1024 * 1024)
#define FULL_FRAME CONTAINER_FRAME_STORED_BYTES

static uint8_t data_key[CONTAINER_DATA_KEY_BYTES];
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

/* Deterministic xorshift generator, so a failing chunking can be replayed. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int sink_append(void *context, const void *data, size_t len, stow_error *err)
{
    return stow_buf_append(context, data, len, err);
}

static uint8_t *random_bytes(size_t len)
{
    uint8_t *data = malloc(len + 1);

    randombytes_buf(data, len);
    return data;
}

/* Text that compresses well but not trivially. */
static uint8_t *compressible_bytes(size_t len)
{
    uint8_t *data = malloc(len + 1);
    size_t pos = 0;
    unsigned long row = 0;

    while (pos < len) {
        char line[96];
        int n = snprintf(line, sizeof line, "%lu\tcustomer-%lu\t%lu.%02lu\t2024-05-01\n", row,
                         row % 977, (row * 7919) % 100000, row % 100);
        size_t take = (size_t)n < len - pos ? (size_t)n : len - pos;

        memcpy(data + pos, line, take);
        pos += take;
        row++;
    }
    return data;
}

/* Chunk size policies for feeding bytes in. */
enum chunking { CHUNK_WHOLE, CHUNK_ONE_BYTE, CHUNK_RANDOM };

static size_t chunk_size(enum chunking chunking, size_t left)
{
    size_t size = left;

    if (chunking == CHUNK_ONE_BYTE)
        size = 1;
    else if (chunking == CHUNK_RANDOM)
        size = (size_t)(rng_next() % 200000) + 1;
    return size < left ? size : left;
}

struct seal_params {
    int encrypt;
    int threads;
    int level;
    enum chunking chunking;
};

/* Writes plain through a container writer into stored (initialized here). */
static int seal(const uint8_t *plain, size_t len, const struct seal_params *params,
                stow_buf *stored, struct container_stats *stats, stow_error *err)
{
    struct container_writer_options options = {
        .backup_id = BACKUP_ID,
        .compress_level = params->level > 0 ? params->level : 3,
        .compress_threads = params->threads,
        .encrypt = params->encrypt,
        .data_key = params->encrypt ? data_key : NULL,
    };
    container_writer *writer = NULL;
    size_t pos = 0;
    int rc = -1;

    stow_buf_init(stored, OUTPUT_MAX);
    if (container_writer_new(&options, sink_append, stored, &writer, err) != 0)
        goto done;
    while (pos < len) {
        size_t take = chunk_size(params->chunking, len - pos);

        if (container_writer_write(writer, plain + pos, take, err) != 0)
            goto done;
        pos += take;
    }
    if (container_writer_finish(writer, err) != 0)
        goto done;
    if (stats != NULL)
        container_writer_stats(writer, stats);
    rc = 0;

done:
    container_writer_free(writer);
    return rc;
}

struct open_params {
    const char *expected_backup_id;
    int expect_encrypted;
    const uint8_t *key;
    enum chunking chunking;
};

static const struct open_params open_encrypted = {BACKUP_ID, 1, data_key, CHUNK_WHOLE};
static const struct open_params open_plain = {BACKUP_ID, 0, NULL, CHUNK_WHOLE};

/* Reads stored through a container reader into plain (initialized here). */
static int unseal(const uint8_t *stored, size_t len, const struct open_params *params,
                  stow_buf *plain, struct container_stats *stats, stow_error *err)
{
    struct container_reader_options options = {
        .expected_backup_id = params->expected_backup_id,
        .expect_encrypted = params->expect_encrypted,
        .data_key = params->key,
    };
    container_reader *reader = NULL;
    size_t pos = 0;
    int rc = -1;

    stow_buf_init(plain, OUTPUT_MAX);
    if (container_reader_new(&options, sink_append, plain, &reader, err) != 0)
        goto done;
    while (pos < len) {
        size_t take = chunk_size(params->chunking, len - pos);

        if (container_reader_write(reader, stored + pos, take, err) != 0)
            goto done;
        pos += take;
    }
    if (container_reader_finish(reader, err) != 0)
        goto done;
    if (stats != NULL)
        container_reader_stats(reader, stats);
    rc = 0;

done:
    container_reader_free(reader);
    return rc;
}

static size_t header_length(void)
{
    return CONTAINER_HEADER_FIXED_BYTES + strlen(BACKUP_ID);
}

/* Seals and opens plain with the given chunkings and checks every byte and
 * counter. */
static void check_round_trip(const uint8_t *plain, size_t len, const struct seal_params *seal_with,
                             enum chunking open_chunking)
{
    struct open_params open_with = seal_with->encrypt ? open_encrypted : open_plain;
    struct container_stats written;
    struct container_stats read;
    stow_buf stored;
    stow_buf out;
    stow_error err;

    stow_error_clear(&err);
    open_with.chunking = open_chunking;
    CHECK_INT_EQ(0, seal(plain, len, seal_with, &stored, &written, &err));
    CHECK_INT_EQ(0, unseal(stored.data, stored.len, &open_with, &out, &read, &err));
    CHECK_STR_EQ("", err.message);

    CHECK_INT_EQ(len, out.len);
    if (len > 0 && out.len == len)
        CHECK(memcmp(plain, out.data, len) == 0);
    CHECK_INT_EQ(len, written.plain_bytes);
    CHECK_INT_EQ(stored.len, written.stored_bytes);
    CHECK_INT_EQ(written.plain_bytes, read.plain_bytes);
    CHECK_INT_EQ(written.compressed_bytes, read.compressed_bytes);
    CHECK_INT_EQ(written.stored_bytes, read.stored_bytes);

    stow_buf_free(&stored);
    stow_buf_free(&out);
}

/* Returns the stored size an encrypted object must have for a zstd stream
 * of compressed bytes: full frames, then a shorter final frame. */
static uint64_t expected_stored(uint64_t compressed)
{
    uint64_t full = compressed / CONTAINER_FRAME_PLAIN_BYTES;

    return header_length() + full * FULL_FRAME +
           (compressed % CONTAINER_FRAME_PLAIN_BYTES) + CONTAINER_FRAME_OVERHEAD_BYTES;
}

/* Finds a random plaintext whose zstd stream has exactly target bytes;
 * random data is stored in raw blocks, so the size is linear in length. */
static uint8_t *random_with_compressed_size(size_t target, size_t *len)
{
    struct seal_params params = {0, 0, 1, CHUNK_WHOLE};
    struct container_stats stats;
    uint8_t *data = random_bytes(target + 64);
    size_t try_len = target;

    for (int attempt = 0; attempt < 8; attempt++) {
        stow_buf stored;
        stow_error err;

        stow_error_clear(&err);
        seal(data, try_len, &params, &stored, &stats, &err);
        stow_buf_free(&stored);
        if (stats.compressed_bytes == target)
            break;
        try_len = try_len + target - (size_t)stats.compressed_bytes;
    }
    CHECK_INT_EQ(target, stats.compressed_bytes);
    *len = try_len;
    return data;
}

/* --- Round trips -------------------------------------------------------- */

static void test_round_trip_small_sizes(void)
{
    static const size_t sizes[] = {0, 1, 2, 100, 4096};
    uint8_t *data = compressible_bytes(4096);

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int encrypt = 0; encrypt <= 1; encrypt++) {
            struct seal_params params = {encrypt, 0, 3, CHUNK_ONE_BYTE};

            check_round_trip(data, sizes[i], &params, CHUNK_ONE_BYTE);
            params.chunking = CHUNK_WHOLE;
            check_round_trip(data, sizes[i], &params, CHUNK_WHOLE);
        }
    }
    free(data);
}

static void test_round_trip_empty_layout(void)
{
    struct seal_params params = {1, 0, 3, CHUNK_WHOLE};
    struct container_stats stats;
    stow_buf stored;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, seal(NULL, 0, &params, &stored, &stats, &err));
    CHECK_INT_EQ(0, stats.plain_bytes);
    CHECK(stats.compressed_bytes > 0);
    CHECK_INT_EQ(expected_stored(stats.compressed_bytes), stored.len);
    stow_buf_free(&stored);
}

/* Compressed sizes around the frame size: one byte short of a frame,
 * exactly one frame (then an empty final frame), and one frame and a byte. */
static void test_round_trip_frame_boundaries(void)
{
    static const long offsets[] = {-1, 0, 1};

    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        size_t target = (size_t)(CONTAINER_FRAME_PLAIN_BYTES + offsets[i]);
        struct seal_params params = {1, 0, 1, CHUNK_RANDOM};
        struct container_stats stats;
        stow_buf stored;
        stow_error err;
        size_t len;
        uint8_t *data = random_with_compressed_size(target, &len);

        stow_error_clear(&err);
        CHECK_INT_EQ(0, seal(data, len, &params, &stored, &stats, &err));
        CHECK_INT_EQ(target, stats.compressed_bytes);
        CHECK_INT_EQ(expected_stored(target), stored.len);
        stow_buf_free(&stored);

        check_round_trip(data, len, &params, CHUNK_ONE_BYTE);
        check_round_trip(data, len, &params, CHUNK_RANDOM);
        params.encrypt = 0;
        check_round_trip(data, len, &params, CHUNK_ONE_BYTE);
        free(data);
    }
}

static void test_round_trip_random_mebibytes(void)
{
    size_t len = 3 * 1024 * 1024 + 12345;
    uint8_t *data = random_bytes(len);
    struct seal_params params = {1, 0, 3, CHUNK_RANDOM};

    check_round_trip(data, len, &params, CHUNK_RANDOM);
    check_round_trip(data, len, &params, CHUNK_WHOLE);
    params.encrypt = 0;
    check_round_trip(data, len, &params, CHUNK_RANDOM);
    free(data);
}

static void test_round_trip_compressible_mebibytes(void)
{
    size_t len = 8 * 1024 * 1024 + 7;
    uint8_t *data = compressible_bytes(len);
    struct seal_params params = {1, 0, 3, CHUNK_RANDOM};

    check_round_trip(data, len, &params, CHUNK_RANDOM);
    params.threads = 2;
    check_round_trip(data, len, &params, CHUNK_RANDOM);
    params.encrypt = 0;
    check_round_trip(data, len, &params, CHUNK_RANDOM);
    free(data);
}

/* --- Header ------------------------------------------------------------- */

static void test_header_layout(void)
{
    struct seal_params params = {1, 0, 3, CHUNK_WHOLE};
    struct container_header header;
    stow_buf stored;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, seal((const uint8_t *)"x", 1, &params, &stored, NULL, &err));
    CHECK(memcmp(stored.data, "STOWAGE\0", 8) == 0);
    CHECK_INT_EQ(0, stored.data[8]);
    CHECK_INT_EQ(1, stored.data[9]);
    CHECK_INT_EQ(0, stored.data[10]);
    CHECK_INT_EQ(CONTAINER_FLAG_ENCRYPTED | CONTAINER_FLAG_ZSTD, stored.data[11]);
    CHECK_INT_EQ(header_length(), (stored.data[12] << 8) | stored.data[13]);
    CHECK_INT_EQ(0x00010000, ((uint32_t)stored.data[14] << 24) | (stored.data[15] << 16) |
                                 (stored.data[16] << 8) | stored.data[17]);
    CHECK_INT_EQ(strlen(BACKUP_ID), stored.data[42]);
    CHECK(memcmp(stored.data + 43, BACKUP_ID, strlen(BACKUP_ID)) == 0);

    CHECK_INT_EQ(0, container_header_parse(stored.data, stored.len, &header, &err));
    CHECK_INT_EQ(1, header.version);
    CHECK_INT_EQ(header_length(), header.length);
    CHECK_INT_EQ(CONTAINER_FRAME_PLAIN_BYTES, header.frame_plain_bytes);
    CHECK_STR_EQ(BACKUP_ID, header.backup_id);
    CHECK(memcmp(header.stream_header, stored.data + 18, CONTAINER_STREAM_HEADER_BYTES) == 0);
    stow_buf_free(&stored);
}

static void test_header_layout_unencrypted(void)
{
    static const uint8_t zeros[CONTAINER_STREAM_HEADER_BYTES];
    struct seal_params params = {0, 0, 3, CHUNK_WHOLE};
    struct container_header header;
    stow_buf stored;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, seal((const uint8_t *)"x", 1, &params, &stored, NULL, &err));
    CHECK_INT_EQ(CONTAINER_FLAG_ZSTD, stored.data[11]);
    CHECK_INT_EQ(0, container_header_parse(stored.data, stored.len, &header, &err));
    CHECK_INT_EQ(0, header.frame_plain_bytes);
    CHECK(memcmp(stored.data + 18, zeros, sizeof zeros) == 0);
    /* The body is a bare zstd frame: its magic follows the header. */
    CHECK_INT_EQ(0x28, stored.data[header_length()]);
    CHECK_INT_EQ(0xB5, stored.data[header_length() + 1]);
    stow_buf_free(&stored);
}

/* Damages one field of a valid header and checks container_header_parse. */
static void check_header_damage(size_t offset, uint8_t value, const char *fragment)
{
    struct seal_params params = {0, 0, 3, CHUNK_WHOLE};
    struct container_header header;
    stow_buf stored;
    stow_error err;

    stow_error_clear(&err);
    seal((const uint8_t *)"x", 1, &params, &stored, NULL, &err);
    stored.data[offset] = value;
    CHECK_INT_EQ(-1, container_header_parse(stored.data, stored.len, &header, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, fragment);
    stow_buf_free(&stored);
}

static void test_header_parse_rejects(void)
{
    check_header_damage(0, 'X', "not a Stowage backup object");
    check_header_damage(9, 2, "unsupported container format version 2 (this build reads version 1)");
    check_header_damage(8, 1, "unsupported container format version 257");
    check_header_damage(11, 0x07, "unsupported container flags 0x0007");
    check_header_damage(11, 0x00, "lacks the zstd flag");
    check_header_damage(13, 43, "invalid container header length 43");
    check_header_damage(13, 200, "invalid container header length 200");
    check_header_damage(42, 3, "does not match its backup id length 3");
    check_header_damage(45, ' ', "characters other than visible ASCII");
    check_header_damage(17, 1, "unsupported frame size 1");
    check_header_damage(30, 1, "non-zero stream header");
}

static void test_header_parse_short(void)
{
    struct container_header header;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, container_header_parse("STOWAGE", 7, &header, &err));
    CHECK_CONTAINS(err.message, "container header is truncated (7 bytes)");
}

/* --- Writer options ----------------------------------------------------- */

static void check_writer_rejects(struct container_writer_options options, int exit_code,
                                 const char *fragment)
{
    container_writer *writer = NULL;
    stow_buf stored;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&stored, OUTPUT_MAX);
    CHECK_INT_EQ(-1, container_writer_new(&options, sink_append, &stored, &writer, &err));
    CHECK(writer == NULL);
    CHECK_INT_EQ(0, stored.len);
    CHECK_INT_EQ(exit_code, err.exit_code);
    CHECK_CONTAINS(err.message, fragment);
    stow_buf_free(&stored);
}

static void test_writer_rejects_options(void)
{
    struct container_writer_options good = {BACKUP_ID, 3, 0, 1, data_key};
    struct container_writer_options options;

    options = good;
    options.backup_id = "";
    check_writer_rejects(options, STOW_EXIT_USAGE, "invalid backup id \"\"");
    options.backup_id = "has space";
    check_writer_rejects(options, STOW_EXIT_USAGE, "invalid backup id \"has space\"");
    options.backup_id = "0123456789012345678901234567890123456789012345678901234567890123456789";
    check_writer_rejects(options, STOW_EXIT_USAGE, "expected 1 to 64 visible ASCII");

    options = good;
    options.compress_level = 0;
    check_writer_rejects(options, STOW_EXIT_USAGE, "invalid compression level 0");
    options.compress_level = 22;
    check_writer_rejects(options, STOW_EXIT_USAGE, "invalid compression level 22");

    options = good;
    options.compress_threads = -1;
    check_writer_rejects(options, STOW_EXIT_USAGE, "compression threads -1");

    options = good;
    options.data_key = NULL;
    check_writer_rejects(options, STOW_EXIT_FAILURE, "no data key");
}

static void test_writer_after_finish(void)
{
    struct container_writer_options options = {BACKUP_ID, 3, 0, 1, data_key};
    container_writer *writer = NULL;
    stow_buf stored;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&stored, OUTPUT_MAX);
    CHECK_INT_EQ(0, container_writer_new(&options, sink_append, &stored, &writer, &err));
    CHECK_INT_EQ(header_length(), stored.len);
    CHECK_INT_EQ(0, container_writer_finish(writer, &err));
    CHECK_INT_EQ(-1, container_writer_write(writer, "x", 1, &err));
    CHECK_CONTAINS(err.message, "already finished");
    container_writer_free(writer);
    container_writer_free(NULL);
    stow_buf_free(&stored);
}

static int sink_fail(void *context, const void *data, size_t len, stow_error *err)
{
    return stow_fail(err, STOW_EXIT_STORAGE, "disk full");
}

static void test_writer_sink_failure(void)
{
    struct container_writer_options options = {BACKUP_ID, 3, 0, 1, data_key};
    container_writer *writer = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, container_writer_new(&options, sink_fail, NULL, &writer, &err));
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_STR_EQ("disk full", err.message);
}

/* --- Rejections --------------------------------------------------------- */

/* A sealed object of three full frames and a final frame of about 5 KiB. */
struct sample {
    uint8_t *plain;
    size_t plain_len;
    stow_buf stored;
};

static void sample_make(struct sample *sample, int encrypt)
{
    struct seal_params params = {encrypt, 0, 1, CHUNK_WHOLE};
    stow_error err;

    stow_error_clear(&err);
    sample->plain_len = 3 * CONTAINER_FRAME_PLAIN_BYTES + 5000;
    sample->plain = random_bytes(sample->plain_len);
    seal(sample->plain, sample->plain_len, &params, &sample->stored, NULL, &err);
}

static void sample_free(struct sample *sample)
{
    free(sample->plain);
    stow_buf_free(&sample->stored);
}

/* Opens stored (in every chunking) and checks that it fails with
 * STOW_EXIT_VERIFY and a message containing fragment, and that whatever
 * reached the sink is a prefix of the original plaintext. */
static void check_rejects(const struct sample *sample, const uint8_t *stored, size_t len,
                          const struct open_params *params, const char *fragment)
{
    static const enum chunking chunkings[] = {CHUNK_WHOLE, CHUNK_RANDOM, CHUNK_ONE_BYTE};

    for (size_t i = 0; i < sizeof chunkings / sizeof chunkings[0]; i++) {
        struct open_params with = *params;
        stow_buf out;
        stow_error err;

        if (chunkings[i] == CHUNK_ONE_BYTE && len > 300000)
            continue;
        stow_error_clear(&err);
        with.chunking = chunkings[i];
        CHECK_INT_EQ(-1, unseal(stored, len, &with, &out, NULL, &err));
        CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
        CHECK_CONTAINS(err.message, fragment);
        CHECK(out.len <= sample->plain_len);
        CHECK(out.len == 0 || memcmp(out.data, sample->plain, out.len) == 0);
        stow_buf_free(&out);
    }
}

static void test_reject_truncated(void)
{
    struct sample sample;
    size_t header = header_length();
    char expected[200];

    sample_make(&sample, 1);

    check_rejects(&sample, sample.stored.data, 0, &open_encrypted,
                  "not a Stowage backup object");
    check_rejects(&sample, sample.stored.data, 5, &open_encrypted,
                  "the object is truncated: it ends at offset 5, inside the container header");
    check_rejects(&sample, sample.stored.data, 20, &open_encrypted,
                  "the object is truncated: it ends at offset 20, inside the container header");
    check_rejects(&sample, sample.stored.data, header, &open_encrypted,
                  "the object is truncated: it ends at offset 66, at a frame boundary");

    snprintf(expected, sizeof expected,
             "the last frame at offset %zu (1000 bytes) failed authentication (truncated object",
             header);
    check_rejects(&sample, sample.stored.data, header + 1000, &open_encrypted, expected);

    snprintf(expected, sizeof expected,
             "the object is truncated: it ends at offset %zu, at a frame boundary, before the "
             "final frame",
             header + 2 * (size_t)FULL_FRAME);
    check_rejects(&sample, sample.stored.data, header + 2 * FULL_FRAME, &open_encrypted,
                  expected);

    snprintf(expected, sizeof expected,
             "its last frame at offset %zu has 5 bytes, fewer than the 17 bytes",
             header + (size_t)FULL_FRAME);
    check_rejects(&sample, sample.stored.data, header + FULL_FRAME + 5, &open_encrypted,
                  expected);

    snprintf(expected, sizeof expected, "the last frame at offset %zu",
             header + 3 * (size_t)FULL_FRAME);
    check_rejects(&sample, sample.stored.data, sample.stored.len - 1, &open_encrypted,
                  expected);
    sample_free(&sample);
}

/* Flips one byte at offset in a copy of the sample and checks rejection. */
static void check_flipped(const struct sample *sample, size_t offset, const char *fragment)
{
    uint8_t *copy = malloc(sample->stored.len);

    memcpy(copy, sample->stored.data, sample->stored.len);
    copy[offset] ^= 0x01;
    check_rejects(sample, copy, sample->stored.len, &open_encrypted, fragment);
    free(copy);
}

static void test_reject_flipped_byte(void)
{
    struct sample sample;
    size_t header = header_length();
    size_t last = header + 3 * (size_t)FULL_FRAME;
    char first_frame[120];
    char last_frame[120];

    sample_make(&sample, 1);
    snprintf(first_frame, sizeof first_frame,
             "frame at offset %zu failed authentication (changed data, or the data key of "
             "another object)", header);
    snprintf(last_frame, sizeof last_frame, "the last frame at offset %zu", last);

    check_flipped(&sample, 3, "not a Stowage backup object");
    check_flipped(&sample, 30, first_frame);
    check_flipped(&sample, 62, "the object belongs to backup 20240501T020000Z-oreers, "
                               "expected backup 20240501T020000Z-orders");
    check_flipped(&sample, header, first_frame);
    check_flipped(&sample, header + 40000, first_frame);
    check_flipped(&sample, header + FULL_FRAME - 1, first_frame);
    check_flipped(&sample, last + 10, last_frame);
    check_flipped(&sample, sample.stored.len - 1, last_frame);
    sample_free(&sample);
}

static void test_reject_changed_header_hint(void)
{
    struct sample sample;
    stow_buf out;
    stow_error err;

    sample_make(&sample, 1);
    sample.stored.data[25] ^= 0x80;
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, unseal(sample.stored.data, sample.stored.len, &open_encrypted, &out, NULL,
                            &err));
    CHECK_CONTAINS(err.hint, "authenticates the container header");
    CHECK_INT_EQ(0, out.len);
    stow_buf_free(&out);
    sample_free(&sample);
}

static void swap_frames(uint8_t *stored, size_t first, size_t second)
{
    uint8_t *temporary = malloc(FULL_FRAME);
    size_t header = header_length();
    uint8_t *a = stored + header + first * FULL_FRAME;
    uint8_t *b = stored + header + second * FULL_FRAME;

    memcpy(temporary, a, FULL_FRAME);
    memcpy(a, b, FULL_FRAME);
    memcpy(b, temporary, FULL_FRAME);
    free(temporary);
}

static void test_reject_swapped_frames(void)
{
    struct sample sample;
    size_t header = header_length();
    char expected[120];

    sample_make(&sample, 1);

    swap_frames(sample.stored.data, 1, 2);
    snprintf(expected, sizeof expected, "frame at offset %zu failed authentication",
             header + (size_t)FULL_FRAME);
    check_rejects(&sample, sample.stored.data, sample.stored.len, &open_encrypted, expected);
    swap_frames(sample.stored.data, 1, 2);

    swap_frames(sample.stored.data, 0, 1);
    snprintf(expected, sizeof expected, "frame at offset %zu failed authentication", header);
    check_rejects(&sample, sample.stored.data, sample.stored.len, &open_encrypted, expected);
    sample_free(&sample);
}

/* Appends count bytes of garbage to a copy of the sample. */
static void check_trailing(const struct sample *sample, size_t count, const char *fragment)
{
    uint8_t *copy = malloc(sample->stored.len + count);

    memcpy(copy, sample->stored.data, sample->stored.len);
    memset(copy + sample->stored.len, 'G', count);
    check_rejects(sample, copy, sample->stored.len + count, &open_encrypted, fragment);
    free(copy);
}

static void test_reject_trailing_garbage(void)
{
    struct sample sample;
    size_t last;
    char expected[200];

    sample_make(&sample, 1);
    last = header_length() + 3 * (size_t)FULL_FRAME;

    snprintf(expected, sizeof expected,
             "the last frame at offset %zu (%zu bytes) failed authentication (truncated "
             "object, bytes after the final frame",
             last, sample.stored.len - last + 1);
    check_trailing(&sample, 1, expected);

    snprintf(expected, sizeof expected, "frame at offset %zu failed authentication (changed data",
             last);
    check_trailing(&sample, FULL_FRAME, expected);
    sample_free(&sample);
}

static void test_reject_wrong_backup_id(void)
{
    struct sample sample;
    struct open_params params = open_encrypted;

    sample_make(&sample, 1);
    params.expected_backup_id = "20240502T020000Z-orders";
    check_rejects(&sample, sample.stored.data, sample.stored.len, &params,
                  "the object belongs to backup 20240501T020000Z-orders, expected backup "
                  "20240502T020000Z-orders");
    sample_free(&sample);
}

/* The header is authenticated, so an object relabelled with another
 * backup id of the same length fails even when the reader expects that id. */
static void test_reject_relabelled_backup_id(void)
{
    struct sample sample;
    struct open_params params = open_encrypted;
    char expected[120];

    sample_make(&sample, 1);
    memcpy(sample.stored.data + CONTAINER_HEADER_FIXED_BYTES, "20240502", 8);
    params.expected_backup_id = "20240502T020000Z-orders";
    snprintf(expected, sizeof expected, "frame at offset %zu failed authentication",
             header_length());
    check_rejects(&sample, sample.stored.data, sample.stored.len, &params, expected);
    sample_free(&sample);
}

static void test_reject_wrong_data_key(void)
{
    struct sample sample;
    struct open_params params = open_encrypted;
    uint8_t other_key[CONTAINER_DATA_KEY_BYTES];
    char expected[120];

    sample_make(&sample, 1);
    memcpy(other_key, data_key, sizeof other_key);
    other_key[0] ^= 0x01;
    params.key = other_key;
    snprintf(expected, sizeof expected,
             "frame at offset %zu failed authentication (changed data, or the data key of "
             "another object)",
             header_length());
    check_rejects(&sample, sample.stored.data, sample.stored.len, &params, expected);
    sample_free(&sample);
}

static void test_reject_wrong_version(void)
{
    struct sample sample;

    sample_make(&sample, 1);
    sample.stored.data[9] = 2;
    check_rejects(&sample, sample.stored.data, sample.stored.len, &open_encrypted,
                  "unsupported container format version 2 (this build reads version 1)");
    sample_free(&sample);
}

static void test_reject_encryption_mismatch(void)
{
    struct sample encrypted;
    struct sample plain;

    sample_make(&encrypted, 1);
    sample_make(&plain, 0);
    check_rejects(&encrypted, encrypted.stored.data, encrypted.stored.len, &open_plain,
                  "the object is encrypted but the manifest says it is not");
    check_rejects(&plain, plain.stored.data, plain.stored.len, &open_encrypted,
                  "the manifest says encrypted but the object is not");
    sample_free(&encrypted);
    sample_free(&plain);
}

static void test_reject_unencrypted_damage(void)
{
    struct sample sample;
    size_t len;
    uint8_t *copy;
    char expected[120];

    sample_make(&sample, 0);
    len = sample.stored.len;

    snprintf(expected, sizeof expected,
             "the object is truncated: the compressed stream ends at offset %zu", len - 1);
    check_rejects(&sample, sample.stored.data, len - 1, &open_plain, expected);

    copy = malloc(len + 10);
    memcpy(copy, sample.stored.data, len);
    memset(copy + len, 'G', 10);
    snprintf(expected, sizeof expected,
             "bytes after the end of the compressed stream, from offset %zu", len);
    check_rejects(&sample, copy, len + 10, &open_plain, expected);

    memcpy(copy, sample.stored.data, len);
    copy[len - 2] ^= 0x01;
    check_rejects(&sample, copy, len, &open_plain, "in stored bytes");
    free(copy);
    sample_free(&sample);
}

static void test_reader_rejects_options(void)
{
    struct container_reader_options options = {BACKUP_ID, 1, NULL};
    container_reader *reader = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, container_reader_new(&options, sink_append, NULL, &reader, &err));
    CHECK(reader == NULL);
    CHECK_CONTAINS(err.message, "no data key was given");
    container_reader_free(NULL);
}

static void test_reader_stops_after_error(void)
{
    struct container_reader_options options = {BACKUP_ID, 1, data_key};
    container_reader *reader = NULL;
    stow_buf out;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&out, OUTPUT_MAX);
    CHECK_INT_EQ(0, container_reader_new(&options, sink_append, &out, &reader, &err));
    CHECK_INT_EQ(-1, container_reader_write(reader, "GIF89a-not-stowage", 18, &err));
    CHECK_CONTAINS(err.message, "not a Stowage backup object");
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, container_reader_finish(reader, &err));
    CHECK_CONTAINS(err.message, "stopped after an earlier error");
    container_reader_free(reader);
    stow_buf_free(&out);
}

/* --- Golden files ------------------------------------------------------- */

/* Golden files sit next to this source file, in golden/. */
static void golden_path(const char *name, char *path, size_t size)
{
    char source[4096];

    snprintf(source, sizeof source, "%s", __FILE__);
    snprintf(path, size, "%s/golden/%s", dirname(source), name);
}

static int golden_read(const char *name, stow_buf *out)
{
    char path[4200];
    char chunk[65536];
    stow_error err;
    size_t got;
    FILE *file;

    golden_path(name, path, sizeof path);
    stow_buf_init(out, OUTPUT_MAX);
    file = fopen(path, "rb");
    if (file == NULL) {
        unit_fail(__FILE__, __LINE__, "cannot open golden file %s", path);
        return -1;
    }
    while ((got = fread(chunk, 1, sizeof chunk, file)) > 0)
        stow_buf_append(out, chunk, got, &err);
    fclose(file);
    return 0;
}

/* The data key of the golden objects, stored in hex. */
static int golden_data_key(uint8_t *key)
{
    stow_buf hex;
    size_t len = 0;
    int rc = -1;

    if (golden_read("data-key.hex", &hex) == 0 &&
        sodium_hex2bin(key, CONTAINER_DATA_KEY_BYTES, (const char *)hex.data, hex.len, "\n",
                       &len, NULL) == 0 &&
        len == CONTAINER_DATA_KEY_BYTES)
        rc = 0;
    stow_buf_free(&hex);
    CHECK_INT_EQ(0, rc);
    return rc;
}

static void check_golden(const char *name, const char *fragment)
{
    uint8_t key[CONTAINER_DATA_KEY_BYTES];
    struct open_params params = {"golden-backup", 1, key, CHUNK_WHOLE};
    stow_buf stored;
    stow_buf out;
    stow_error err;

    if (golden_data_key(key) != 0 || golden_read(name, &stored) != 0)
        return;
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, unseal(stored.data, stored.len, &params, &out, NULL, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, fragment);
    CHECK_INT_EQ(0, out.len);
    stow_buf_free(&out);
    stow_buf_free(&stored);
}

static void test_golden_valid(void)
{
    uint8_t key[CONTAINER_DATA_KEY_BYTES];
    struct open_params params = {"golden-backup", 1, key, CHUNK_ONE_BYTE};
    stow_buf stored;
    stow_buf expected;
    stow_buf out;
    stow_error err;

    if (golden_data_key(key) != 0 || golden_read("valid.stow", &stored) != 0 ||
        golden_read("valid.txt", &expected) != 0)
        return;
    stow_error_clear(&err);
    CHECK_INT_EQ(0, unseal(stored.data, stored.len, &params, &out, NULL, &err));
    CHECK_STR_EQ("", err.message);
    CHECK_INT_EQ(expected.len, out.len);
    if (out.len == expected.len)
        CHECK(memcmp(out.data, expected.data, out.len) == 0);
    stow_buf_free(&out);
    stow_buf_free(&expected);
    stow_buf_free(&stored);
}

static void test_golden_rejects(void)
{
    check_golden("truncated.stow", "the last frame at offset 56");
    check_golden("flipped-tag.stow", "the last frame at offset 56");
    check_golden("wrong-version.stow", "unsupported container format version 2");
    check_golden("trailing-garbage.stow", "bytes after the final frame");
    check_golden("unencrypted.stow", "the manifest says encrypted but the object is not");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(data_key, sizeof data_key);

    unit_run("round trip small sizes", test_round_trip_small_sizes);
    unit_run("round trip empty layout", test_round_trip_empty_layout);
    unit_run("round trip frame boundaries", test_round_trip_frame_boundaries);
    unit_run("round trip random mebibytes", test_round_trip_random_mebibytes);
    unit_run("round trip compressible mebibytes", test_round_trip_compressible_mebibytes);
    unit_run("header layout", test_header_layout);
    unit_run("header layout unencrypted", test_header_layout_unencrypted);
    unit_run("header parse rejects damage", test_header_parse_rejects);
    unit_run("header parse short input", test_header_parse_short);
    unit_run("writer rejects options", test_writer_rejects_options);
    unit_run("writer after finish", test_writer_after_finish);
    unit_run("writer sink failure", test_writer_sink_failure);
    unit_run("reject truncated", test_reject_truncated);
    unit_run("reject flipped byte", test_reject_flipped_byte);
    unit_run("reject changed header hint", test_reject_changed_header_hint);
    unit_run("reject swapped frames", test_reject_swapped_frames);
    unit_run("reject trailing garbage", test_reject_trailing_garbage);
    unit_run("reject wrong backup id", test_reject_wrong_backup_id);
    unit_run("reject relabelled backup id", test_reject_relabelled_backup_id);
    unit_run("reject wrong data key", test_reject_wrong_data_key);
    unit_run("reject wrong version", test_reject_wrong_version);
    unit_run("reject encryption mismatch", test_reject_encryption_mismatch);
    unit_run("reject unencrypted damage", test_reject_unencrypted_damage);
    unit_run("reader rejects options", test_reader_rejects_options);
    unit_run("reader stops after error", test_reader_stops_after_error);
    unit_run("golden valid object", test_golden_valid);
    unit_run("golden objects rejected", test_golden_rejects);
    return unit_finish();
}
