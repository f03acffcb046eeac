/* Tests for formats/dumpscan.c against the golden dumps in data/ (see
 * data/make_dumps.sh) and against small archives built here field by
 * field. The expected row counts and digests in data/sample.expected come
 * from the server and from an independent Python digest. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "formats/dumpscan.h"
#include "formats/dumpscan_internal.h"
#include "unit.h"

#define SAMPLE_DUMP "data/sample.dump"
#define SAMPLE_EXPECTED "data/sample.expected"
#define COMPRESSED_DUMP "data/sample_z6.dump"

struct bytes {
    unsigned char *data;
    size_t len;
};

static struct bytes sample;

static struct bytes read_file(const char *path)
{
    struct bytes file = {NULL, 0};
    FILE *stream = fopen(path, "rb");
    long size;

    if (stream == NULL) {
        unit_fail(__FILE__, __LINE__, "cannot open %s", path);
        return file;
    }
    fseek(stream, 0, SEEK_END);
    size = ftell(stream);
    fseek(stream, 0, SEEK_SET);
    file.data = malloc((size_t)size + 1);
    file.len = fread(file.data, 1, (size_t)size, stream);
    file.data[file.len] = '\0';
    fclose(stream);
    return file;
}

/* Scans data in chunks of the given sizes (cycled); returns the scanner,
 * or NULL after recording the error in err. */
static dumpscan *scan_chunks(const unsigned char *data, size_t len, const size_t *sizes,
                             size_t size_count, stow_error *err)
{
    dumpscan *scanner = NULL;
    size_t at = 0;

    stow_error_clear(err);
    if (dumpscan_new(NULL, &scanner, err) != 0)
        return NULL;

    for (size_t i = 0; at < len; i++) {
        size_t chunk = sizes[i % size_count];

        chunk = chunk < len - at ? chunk : len - at;
        if (dumpscan_write(scanner, data + at, chunk, err) != 0) {
            dumpscan_free(scanner);
            return NULL;
        }
        at += chunk;
    }
    if (dumpscan_finish(scanner, err) != 0) {
        dumpscan_free(scanner);
        return NULL;
    }
    return scanner;
}

static dumpscan *scan_whole(const unsigned char *data, size_t len, stow_error *err)
{
    size_t whole = len > 0 ? len : 1;

    return scan_chunks(data, len, &whole, 1, err);
}

/* Scans and expects failure; returns the message. */
static const char *scan_error(const unsigned char *data, size_t len, stow_error *err)
{
    dumpscan *scanner = scan_whole(data, len, err);

    if (scanner != NULL) {
        dumpscan_free(scanner);
        return "(no error)";
    }
    return err->message;
}

static const struct dumpscan_table *find_table(const struct dumpscan_contents *contents,
                                               const char *schema, const char *name)
{
    for (size_t i = 0; i < contents->table_count; i++)
        if (strcmp(contents->tables[i].schema, schema) == 0 &&
            strcmp(contents->tables[i].name, name) == 0)
            return &contents->tables[i];
    return NULL;
}

static const struct dumpscan_sequence *find_sequence(const struct dumpscan_contents *contents,
                                                     const char *schema, const char *name)
{
    for (size_t i = 0; i < contents->sequence_count; i++)
        if (strcmp(contents->sequences[i].schema, schema) == 0 &&
            strcmp(contents->sequences[i].name, name) == 0)
            return &contents->sequences[i];
    return NULL;
}

static size_t find_bytes(const struct bytes *haystack, const void *needle, size_t len)
{
    for (size_t at = 0; at + len <= haystack->len; at++)
        if (memcmp(haystack->data + at, needle, len) == 0)
            return at;
    unit_fail(__FILE__, __LINE__, "pattern not found in the sample dump");
    return 0;
}

/* --- Archives built field by field ------------------------------------------ */

static void put(stow_buf *out, const void *data, size_t len)
{
    stow_buf_append(out, data, len, NULL);
}

static void put_byte(stow_buf *out, unsigned value)
{
    unsigned char byte = (unsigned char)value;

    put(out, &byte, 1);
}

static void put_int(stow_buf *out, int64_t value)
{
    uint64_t magnitude = value < 0 ? (uint64_t)-value : (uint64_t)value;

    put_byte(out, value < 0);
    for (int i = 0; i < 4; i++)
        put_byte(out, (unsigned)((magnitude >> (8 * i)) & 0xff));
}

static void put_string(stow_buf *out, const char *text)
{
    if (text == NULL) {
        put_int(out, -1);
        return;
    }
    put_int(out, (int64_t)strlen(text));
    put(out, text, strlen(text));
}

static void put_header(stow_buf *out, int minor, int64_t compression)
{
    put(out, "PGDMP", 5);
    put_byte(out, 1);
    put_byte(out, (unsigned)minor);
    put_byte(out, 0);
    put_byte(out, 4);      /* integer size */
    put_byte(out, 8);      /* offset size */
    put_byte(out, 1);      /* custom format */
    if (minor >= 15)
        put_byte(out, (unsigned)compression);
    else
        put_int(out, compression);
    for (int i = 0; i < 7; i++)
        put_int(out, 1);
    put_string(out, "db");
    put_string(out, "15.0");
    put_string(out, "15.0");
}

struct test_entry {
    int64_t dump_id;
    int had_dumper;
    const char *tag;
    const char *desc;
    const char *defn;
    const char *copy;
    const char *namespace;
};

static void put_entry(stow_buf *out, int minor, const struct test_entry *entry)
{
    put_int(out, entry->dump_id);
    put_int(out, entry->had_dumper);
    put_string(out, "0");
    put_string(out, "0");
    put_string(out, entry->tag);
    put_string(out, entry->desc);
    put_int(out, 1);
    put_string(out, entry->defn);
    put_string(out, "");
    put_string(out, entry->copy);
    put_string(out, entry->namespace);
    put_string(out, "");
    if (minor >= 14)
        put_string(out, "heap");
    put_string(out, "owner");
    put_string(out, "false");
    put_string(out, "1");
    put_string(out, NULL);
    put_byte(out, 1);
    for (int i = 0; i < 8; i++)
        put_byte(out, 0);
}

static const struct test_entry encoding_entry = {
    1, 0, "ENCODING", "ENCODING", "SET client_encoding = 'UTF8';\n", NULL, NULL};

static const struct test_entry table_data_entry = {
    2, 1, "t", "TABLE DATA", "", "COPY public.t (a) FROM stdin;\n", "public"};

/* An archive with an encoding and one table whose data block holds the
 * given chunks (without the end-of-block marker when open is set). */
static void build_table_archive(stow_buf *out, const char *const *chunks, size_t count,
                                int open)
{
    stow_buf_init(out, 64u * 1024 * 1024);
    put_header(out, 14, 0);
    put_int(out, 2);
    put_entry(out, 14, &encoding_entry);
    put_entry(out, 14, &table_data_entry);
    put_byte(out, 1);
    put_int(out, 2);
    for (size_t i = 0; i < count; i++)
        put_string(out, chunks[i]);
    if (!open)
        put_int(out, 0);
}

/* --- Golden dump ------------------------------------------------------------ */

static void test_sample_tables(void)
{
    struct bytes expected = read_file(SAMPLE_EXPECTED);
    stow_error err;
    dumpscan *scanner = scan_whole(sample.data, sample.len, &err);
    const struct dumpscan_contents *contents;
    const struct dumpscan_table *parent;
    size_t expected_tables = 0;
    char *line;
    char *saved = NULL;

    CHECK(scanner != NULL);
    if (scanner == NULL || expected.data == NULL) {
        fprintf(stderr, "scan failed: %s\n", err.message);
        free(expected.data);
        dumpscan_free(scanner);
        return;
    }
    contents = dumpscan_contents(scanner);

    for (line = strtok_r((char *)expected.data, "\n", &saved); line != NULL;
         line = strtok_r(NULL, "\n", &saved)) {
        char *fields[4];
        char *field_saved = NULL;
        const struct dumpscan_table *table;

        fields[0] = strtok_r(line, "\t", &field_saved);
        for (int i = 1; i < 4; i++)
            fields[i] = strtok_r(NULL, "\t", &field_saved);
        table = find_table(contents, fields[0], fields[1]);
        CHECK(table != NULL);
        if (table == NULL)
            continue;
        expected_tables++;
        CHECK_INT_EQ(strtoll(fields[2], NULL, 10), table->rows);
        CHECK_STR_EQ(fields[3], table->digest);
    }

    /* The partitioned parent has no data of its own. */
    CHECK_INT_EQ(expected_tables + 1, contents->table_count);
    parent = find_table(contents, "sales", "events");
    CHECK(parent != NULL);
    if (parent != NULL) {
        CHECK(parent->copy == NULL);
        CHECK_INT_EQ(0, parent->rows);
        CHECK_STR_EQ("", parent->digest);
    }
    free(expected.data);
    dumpscan_free(scanner);
}

static void test_sample_copy_statements(void)
{
    stow_error err;
    dumpscan *scanner = scan_whole(sample.data, sample.len, &err);
    const struct dumpscan_table *table;

    CHECK(scanner != NULL);
    if (scanner == NULL)
        return;

    /* The generated column fahrenheit is not in the column list. */
    table = find_table(dumpscan_contents(scanner), "public", "measurements");
    CHECK(table != NULL);
    if (table != NULL)
        CHECK_STR_EQ("COPY public.measurements (id, celsius) FROM stdin;", table->copy);

    table = find_table(dumpscan_contents(scanner), "Mixed Case", "Order Items");
    CHECK(table != NULL);
    if (table != NULL)
        CHECK_STR_EQ("COPY \"Mixed Case\".\"Order Items\" (\"Item ID\", \"qty \"\"quoted\"\"\", "
                     "\"ünïcödé\") FROM stdin;",
                     table->copy);
    dumpscan_free(scanner);
}

static void test_sample_sequences(void)
{
    static const struct {
        const char *schema;
        const char *name;
        int64_t value;
        int is_called;
    } cases[] = {
        {"Mixed Case", "Odd \"Seq\"", 7, 0},
        {"public", "counter", 42, 1},
        {"public", "descending", -500, 1},
        {"public", "documents_id_seq", 30, 1},
        {"public", "huge", INT64_C(9223372036854775000), 1},
        {"sales", "events_id_seq", 120, 1},
    };
    stow_error err;
    dumpscan *scanner = scan_whole(sample.data, sample.len, &err);

    CHECK(scanner != NULL);
    if (scanner == NULL)
        return;
    CHECK_INT_EQ(6, dumpscan_contents(scanner)->sequence_count);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct dumpscan_sequence *sequence =
            find_sequence(dumpscan_contents(scanner), cases[i].schema, cases[i].name);

        CHECK(sequence != NULL);
        if (sequence == NULL)
            continue;
        CHECK_INT_EQ(1, sequence->has_value);
        CHECK_INT_EQ(cases[i].value, sequence->value);
        CHECK_INT_EQ(cases[i].is_called, sequence->is_called);
    }
    dumpscan_free(scanner);
}

static void test_sample_catalog(void)
{
    stow_error err;
    dumpscan *scanner = scan_whole(sample.data, sample.len, &err);
    const struct dumpscan_contents *contents;

    CHECK(scanner != NULL);
    if (scanner == NULL)
        return;
    contents = dumpscan_contents(scanner);

    CHECK_STR_EQ("1.14-0", contents->archive_version);
    CHECK_STR_EQ("sample", contents->database);
    CHECK_STR_EQ("UTF8", contents->encoding);
    CHECK_STR_EQ("UTC", contents->timezone);
    CHECK_STR_EQ("hex", contents->bytea_output);

    /* pg_dump 15 does not dump the public schema that initdb creates. */
    CHECK_INT_EQ(3, contents->schema_count);
    if (contents->schema_count == 3) {
        CHECK_STR_EQ("Mixed Case", contents->schemas[0]);
        CHECK_STR_EQ("sales", contents->schemas[1]);
        CHECK_STR_EQ("ünïcode schema", contents->schemas[2]);
    }
    CHECK_INT_EQ(2, contents->extension_count);
    if (contents->extension_count == 2) {
        CHECK_STR_EQ("hstore", contents->extensions[0]);
        CHECK_STR_EQ("pgcrypto", contents->extensions[1]);
    }

    /* Three large objects of 0, 18 and 2560 * 16 bytes. */
    CHECK_INT_EQ(3, contents->large_object_count);
    CHECK_INT_EQ(18 + 2560 * 16, contents->large_object_bytes);
    dumpscan_free(scanner);
}

static void test_sample_chunkings_agree(void)
{
    static const size_t one_byte[] = {1};
    static const size_t odd[] = {7, 3, 1000, 1, 65536, 13};
    size_t random_sizes[64];
    uint32_t state = 12345;
    stow_error err;
    dumpscan *whole = scan_whole(sample.data, sample.len, &err);
    json_t *expected = whole != NULL ? dumpscan_to_json(whole) : NULL;
    const struct {
        const size_t *sizes;
        size_t count;
    } chunkings[] = {{one_byte, 1}, {odd, 6}, {random_sizes, 64}};

    /* A fixed linear congruential sequence, so failures repeat. */
    for (size_t i = 0; i < 64; i++) {
        state = state * 1103515245u + 12345u;
        random_sizes[i] = 1 + (state >> 8) % 20000;
    }

    CHECK(expected != NULL);
    for (size_t i = 0; expected != NULL && i < sizeof chunkings / sizeof chunkings[0]; i++) {
        dumpscan *scanner = scan_chunks(sample.data, sample.len, chunkings[i].sizes,
                                        chunkings[i].count, &err);
        json_t *actual = scanner != NULL ? dumpscan_to_json(scanner) : NULL;

        CHECK(actual != NULL);
        CHECK(json_equal(expected, actual));
        json_decref(actual);
        dumpscan_free(scanner);
    }
    json_decref(expected);
    dumpscan_free(whole);
}

static void test_sample_json_round_trip(void)
{
    stow_error err;
    dumpscan *scanner = scan_whole(sample.data, sample.len, &err);
    json_t *json = scanner != NULL ? dumpscan_to_json(scanner) : NULL;
    struct dumpscan_contents *loaded = NULL;
    json_t *again = NULL;
    const json_t *first_table;

    CHECK(json != NULL);
    if (json == NULL) {
        dumpscan_free(scanner);
        return;
    }

    first_table = json_array_get(json_object_get(json, "tables"), 0);
    CHECK_STR_EQ("Mixed Case", json_string_value(json_object_get(first_table, "schema")));
    CHECK_INT_EQ(50, json_integer_value(json_object_get(first_table, "rows")));

    CHECK_INT_EQ(0, dumpscan_contents_from_json(json, &loaded, &err));
    if (loaded != NULL)
        again = dumpscan_contents_to_json(loaded);
    CHECK(again != NULL);
    CHECK(json_equal(json, again));

    json_decref(again);
    dumpscan_contents_free(loaded);
    json_decref(json);
    dumpscan_free(scanner);
}

/* --- Truncation and rejection ------------------------------------------------ */

static void test_truncated_sample(void)
{
    const unsigned char end_of_plain[] = "1000\tnote 1000\n";
    size_t inside_plain = find_bytes(&sample, "500\tnote 500\n", 13) + 5;
    size_t after_plain = find_bytes(&sample, end_of_plain, sizeof end_of_plain - 1);
    stow_error err;

    /* After plain's last row: its end-marker chunk (5 + 5 bytes) and the
     * zero-length end of block (5 bytes). */
    after_plain += sizeof end_of_plain - 1 + 15;

    CHECK_STR_EQ("the dump is empty", scan_error(sample.data, 0, &err));
    CHECK_CONTAINS(scan_error(sample.data, 12, &err),
                   "the dump ended inside the archive header after 12 bytes");
    CHECK_CONTAINS(scan_error(sample.data, 2000, &err),
                   "the dump ended inside the table of contents after 2000 bytes");
    CHECK_STR_EQ("the dump ended inside the data of table public.plain: the dump is truncated",
                 scan_error(sample.data, inside_plain, &err));
    CHECK_STR_EQ("the dump ended before the data of table public.tricky: the dump is truncated",
                 scan_error(sample.data, after_plain, &err));
    CHECK_STR_EQ("the dump ended inside the large objects: the dump is truncated",
                 scan_error(sample.data, sample.len - 1, &err));
}

static void test_every_prefix_fails(void)
{
    size_t failures = 0;
    size_t cuts = 0;

    for (size_t cut = 0; cut < sample.len; cut += 7919) {
        stow_error err;
        dumpscan *scanner = scan_whole(sample.data, cut, &err);

        cuts++;
        if (scanner == NULL && strstr(err.message, "truncated") != NULL)
            failures++;
        else if (scanner == NULL && cut == 0)
            failures++;
        dumpscan_free(scanner);
    }
    CHECK_INT_EQ(cuts, failures);
}

static void test_compressed_dump_rejected(void)
{
    struct bytes compressed = read_file(COMPRESSED_DUMP);
    stow_error err;

    CHECK_STR_EQ("the dump is compressed; stowage runs pg_dump with -Z0",
                 scan_error(compressed.data, compressed.len, &err));
    CHECK_INT_EQ(STOW_EXIT_FAILURE, err.exit_code);
    free(compressed.data);
}

/* The 1.15 header (pg_dump 16) stores the compression as one byte where
 * 1.14 has an integer (sign byte and 4 bytes at offset 11). */
static struct bytes sample_as_version_15(unsigned algorithm)
{
    struct bytes converted = {malloc(sample.len), 0};

    memcpy(converted.data, sample.data, 11);
    converted.data[6] = 15;
    converted.data[11] = (unsigned char)algorithm;
    memcpy(converted.data + 12, sample.data + 16, sample.len - 16);
    converted.len = sample.len - 4;
    return converted;
}

static void test_version_15_header(void)
{
    struct bytes converted = sample_as_version_15(0);
    struct bytes zstd = sample_as_version_15(3);
    stow_error err;
    dumpscan *scanner = scan_whole(converted.data, converted.len, &err);
    dumpscan *original = scan_whole(sample.data, sample.len, &err);

    CHECK(scanner != NULL);
    CHECK(original != NULL);
    if (scanner != NULL && original != NULL) {
        const struct dumpscan_contents *contents = dumpscan_contents(scanner);

        CHECK_STR_EQ("1.15-0", contents->archive_version);
        CHECK_INT_EQ(dumpscan_contents(original)->table_count, contents->table_count);
        CHECK_STR_EQ(find_table(dumpscan_contents(original), "public", "plain")->digest,
                     find_table(contents, "public", "plain")->digest);
    }
    CHECK_STR_EQ("the dump is compressed; stowage runs pg_dump with -Z0",
                 scan_error(zstd.data, zstd.len, &err));

    dumpscan_free(scanner);
    dumpscan_free(original);
    free(converted.data);
    free(zstd.data);
}

static void test_foreign_input_rejected(void)
{
    struct bytes copy = {malloc(sample.len), sample.len};
    stow_error err;

    memcpy(copy.data, sample.data, sample.len);
    CHECK_CONTAINS(scan_error((const unsigned char *)"-- PostgreSQL database dump\n", 28, &err),
                   "not a pg_dump custom-format archive (no PGDMP signature)");

    copy.data[6] = 16;
    CHECK_CONTAINS(scan_error(copy.data, copy.len, &err),
                   "unsupported pg_dump archive version 1.16-0");
    copy.data[6] = 11;
    CHECK_CONTAINS(scan_error(copy.data, copy.len, &err),
                   "unsupported pg_dump archive version 1.11-0");
    copy.data[6] = 14;

    copy.data[10] = 3;
    CHECK_CONTAINS(scan_error(copy.data, copy.len, &err),
                   "the dump is not a custom-format archive (format 3)");
    free(copy.data);
}

static void test_unknown_block_rejected(void)
{
    /* The data block of public.plain starts with type 1 and its entry id
     * 3548 (sign byte and 4 bytes, least significant first). */
    const unsigned char block[] = {1, 0, 0xdc, 0x0d, 0, 0};
    struct bytes copy = {malloc(sample.len), sample.len};
    size_t at = find_bytes(&sample, block, sizeof block);
    stow_error err;

    memcpy(copy.data, sample.data, sample.len);
    copy.data[at + 2] = 0x0f;
    CHECK_CONTAINS(scan_error(copy.data, copy.len, &err),
                   "data block for entry 3343, which the TOC does not list with data");
    free(copy.data);
}

/* Flipped bytes must give a clean failure or a successful scan, never a
 * crash or a sanitizer report. Most flips land in the header and TOC, where
 * the parser makes the most decisions. */
static void test_flipped_bytes_handled(void)
{
    struct bytes copy = {malloc(sample.len), sample.len};
    uint32_t state = 777;
    size_t failures = 0;

    for (int round = 0; round < 60; round++) {
        stow_error err;
        dumpscan *scanner;

        memcpy(copy.data, sample.data, sample.len);
        for (int flip = 0; flip < 3; flip++) {
            size_t range = round % 4 == 0 ? sample.len : 40000;

            state = state * 1103515245u + 12345u;
            copy.data[(state >> 4) % range] ^= (unsigned char)(1u << (state % 8));
        }
        scanner = scan_whole(copy.data, copy.len, &err);
        if (scanner == NULL) {
            CHECK(err.message[0] != '\0');
            failures++;
        }
        dumpscan_free(scanner);
    }
    CHECK(failures > 0);
    free(copy.data);
}

/* --- Built archives ------------------------------------------------------------ */

static void test_rows_across_chunks(void)
{
    /* pg_dump writes one row per chunk; other writers may split rows. */
    static const char *const split[] = {"fi", "rst\nsec", "ond\n", "\\", ".\n", "\n\n"};
    static const char *const whole[] = {"first\n", "second\n", "\\.\n\n\n"};
    stow_buf split_archive;
    stow_buf whole_archive;
    stow_error err;
    dumpscan *a;
    dumpscan *b;

    build_table_archive(&split_archive, split, 6, 0);
    build_table_archive(&whole_archive, whole, 3, 0);
    a = scan_whole(split_archive.data, split_archive.len, &err);
    b = scan_whole(whole_archive.data, whole_archive.len, &err);

    CHECK(a != NULL);
    CHECK(b != NULL);
    if (a != NULL && b != NULL) {
        CHECK_INT_EQ(2, dumpscan_contents(a)->tables[0].rows);
        CHECK_STR_EQ(dumpscan_contents(b)->tables[0].digest, dumpscan_contents(a)->tables[0].digest);
    }
    dumpscan_free(a);
    dumpscan_free(b);
    stow_buf_free(&split_archive);
    stow_buf_free(&whole_archive);
}

/* The calls an observer received, with the rows of every table concatenated. */
struct observed {
    stow_buf rows;
    uint64_t toc_end_offset;
    size_t table_data_count;
    int tables_begun;
    int tables_ended;
    int rows_outside_table;
};

static int observe_toc_end(void *context, const struct dumpscan_toc_summary *summary,
                           const struct dumpscan_contents *contents, stow_error *err)
{
    struct observed *observed = context;

    observed->toc_end_offset = summary->toc_end_offset;
    observed->table_data_count = summary->table_data_count;
    return contents->encoding == NULL ? stow_fail(err, STOW_EXIT_FAILURE, "no encoding") : 0;
}

static int observe_begin(void *context, const struct dumpscan_table *table, stow_error *err)
{
    struct observed *observed = context;

    observed->tables_begun++;
    return table->copy == NULL ? stow_fail(err, STOW_EXIT_FAILURE, "no COPY statement") : 0;
}

static int observe_rows(void *context, const void *rows, size_t len, stow_error *err)
{
    struct observed *observed = context;

    if (observed->tables_begun == observed->tables_ended)
        observed->rows_outside_table++;
    return stow_buf_append(&observed->rows, rows, len, err);
}

static int observe_end(void *context, stow_error *err)
{
    struct observed *observed = context;

    observed->tables_ended++;
    return 0;
}

/* Scans data in pieces of piece bytes with an observer. */
static int scan_observed(const unsigned char *data, size_t len, size_t piece,
                         struct observed *observed)
{
    struct dumpscan_options options = {.skip_row_digests = 1};
    struct dumpscan_observer observer = {observed, observe_toc_end, observe_begin,
                                         observe_rows, observe_end};
    dumpscan *scanner = NULL;
    stow_error err = {0};
    int rc;

    memset(observed, 0, sizeof *observed);
    stow_buf_init(&observed->rows, 64u * 1024 * 1024);
    if (dumpscan_new(&options, &scanner, &err) != 0)
        return -1;
    dumpscan_set_observer(scanner, &observer);
    rc = 0;
    for (size_t at = 0; rc == 0 && at < len; at += piece)
        rc = dumpscan_write(scanner, data + at, len - at < piece ? len - at : piece, &err);
    if (rc == 0)
        rc = dumpscan_finish(scanner, &err);
    dumpscan_free(scanner);
    return rc;
}

static void test_observer_gets_exact_rows(void)
{
    /* Rows split across chunks, rows that start with a backslash like the
     * end marker, and the end marker itself split. */
    static const char *const chunks[] = {"fi", "rst\nline\tx\nsec", "ond\n", "\\", "N\tz\n",
                                         "\\", "N\n", "a", "\n", "\\", ".\n", "\n\n"};
    static const char expected[] = "first\nline\tx\nsecond\n\\N\tz\n\\N\na\n";
    static const size_t pieces[] = {1, 2, 3, 7, 1000000};
    stow_buf archive;
    stow_buf header;
    struct observed observed;

    build_table_archive(&archive, chunks, sizeof chunks / sizeof chunks[0], 0);
    build_table_archive(&header, NULL, 0, 1);
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        CHECK_INT_EQ(0, scan_observed(archive.data, archive.len, pieces[i], &observed));
        CHECK_INT_EQ(strlen(expected), observed.rows.len);
        CHECK(observed.rows.len == strlen(expected) &&
              memcmp(expected, observed.rows.data, observed.rows.len) == 0);
        /* The TOC ends where the data block (type byte, then id) starts. */
        CHECK_INT_EQ(header.len - 1 - 1 - 4, observed.toc_end_offset);
        CHECK_INT_EQ(1, observed.table_data_count);
        CHECK_INT_EQ(1, observed.tables_begun);
        CHECK_INT_EQ(1, observed.tables_ended);
        CHECK_INT_EQ(0, observed.rows_outside_table);
        stow_buf_free(&observed.rows);
    }
    stow_buf_free(&archive);
    stow_buf_free(&header);
}

static void test_observer_sample_rows(void)
{
    /* The rows of the golden dump, fed whole and byte by byte, agree. */
    struct observed whole;
    struct observed bytewise;

    CHECK_INT_EQ(0, scan_observed(sample.data, sample.len, sample.len, &whole));
    CHECK_INT_EQ(0, scan_observed(sample.data, sample.len, 1, &bytewise));
    CHECK(whole.rows.len > 0);
    CHECK_INT_EQ(whole.rows.len, bytewise.rows.len);
    CHECK(whole.rows.len == bytewise.rows.len &&
          memcmp(whole.rows.data, bytewise.rows.data, whole.rows.len) == 0);
    CHECK(memmem(whole.rows.data, whole.rows.len, "\n\\.\n", 4) == NULL);
    CHECK_INT_EQ(whole.tables_begun, whole.tables_ended);
    stow_buf_free(&whole.rows);
    stow_buf_free(&bytewise.rows);
}

static void test_bad_table_data_rejected(void)
{
    static const char *const unfinished[] = {"first\nsecond"};
    static const char *const after_marker[] = {"first\n\\.\nsecond\n"};
    static const char *const open_block[] = {"first\n"};
    stow_buf archive;
    stow_error err;

    build_table_archive(&archive, unfinished, 1, 0);
    CHECK_CONTAINS(scan_error(archive.data, archive.len, &err),
                   "the data of table public.t ends inside a row");
    stow_buf_free(&archive);

    build_table_archive(&archive, after_marker, 1, 0);
    CHECK_CONTAINS(scan_error(archive.data, archive.len, &err),
                   "the data of table public.t continues after the end marker");
    stow_buf_free(&archive);

    build_table_archive(&archive, open_block, 1, 1);
    CHECK_STR_EQ("the dump ended inside the data of table public.t: the dump is truncated",
                 scan_error(archive.data, archive.len, &err));
    stow_buf_free(&archive);
}

static void test_long_strings(void)
{
    size_t long_len = DUMPSCAN_STRING_MAX + 1000;
    char *long_text = malloc(long_len + 1);
    struct test_entry function = {3, 0, "f()", "FUNCTION", NULL, NULL, "public"};
    struct test_entry long_copy = table_data_entry;
    stow_buf archive;
    stow_error err;
    dumpscan *scanner;

    memset(long_text, 'x', long_len);
    long_text[long_len] = '\0';

    /* A definition the scanner does not need is skipped, whatever its size. */
    function.defn = long_text;
    stow_buf_init(&archive, 64u * 1024 * 1024);
    put_header(&archive, 14, 0);
    put_int(&archive, 2);
    put_entry(&archive, 14, &encoding_entry);
    put_entry(&archive, 14, &function);
    scanner = scan_whole(archive.data, archive.len, &err);
    CHECK(scanner != NULL);
    dumpscan_free(scanner);
    stow_buf_free(&archive);

    /* A COPY statement is kept, so it must fit the limit. */
    long_copy.copy = long_text;
    stow_buf_init(&archive, 64u * 1024 * 1024);
    put_header(&archive, 14, 0);
    put_int(&archive, 2);
    put_entry(&archive, 14, &encoding_entry);
    put_entry(&archive, 14, &long_copy);
    CHECK_CONTAINS(scan_error(archive.data, archive.len, &err),
                   "exceeds the limit of 1048576 bytes");
    stow_buf_free(&archive);
    free(long_text);
}

static void test_version_13_layout(void)
{
    static const char *const rows[] = {"1\n", "\\.\n\n\n"};
    stow_buf archive;
    stow_error err;
    dumpscan *scanner;

    /* Before 1.14 the TOC entries have no table access method. */
    stow_buf_init(&archive, 1024 * 1024);
    put_header(&archive, 13, 0);
    put_int(&archive, 2);
    put_entry(&archive, 13, &encoding_entry);
    put_entry(&archive, 13, &table_data_entry);
    put_byte(&archive, 1);
    put_int(&archive, 2);
    for (size_t i = 0; i < 2; i++)
        put_string(&archive, rows[i]);
    put_int(&archive, 0);

    scanner = scan_whole(archive.data, archive.len, &err);
    CHECK(scanner != NULL);
    if (scanner != NULL)
        CHECK_INT_EQ(1, dumpscan_contents(scanner)->tables[0].rows);
    dumpscan_free(scanner);
    stow_buf_free(&archive);
}

/* --- Helpers ------------------------------------------------------------------------ */

static void test_parse_setval(void)
{
    int64_t value = 0;
    int is_called = -1;

    CHECK_INT_EQ(0, dumpscan_parse_setval("SELECT pg_catalog.setval('public.s', 42, true);\n",
                                          &value, &is_called));
    CHECK_INT_EQ(42, value);
    CHECK_INT_EQ(1, is_called);

    CHECK_INT_EQ(0, dumpscan_parse_setval(
                        "SELECT pg_catalog.setval('\"a'',b\".\"s, 1\"', -9223372036854775808, "
                        "false);\n",
                        &value, &is_called));
    CHECK_INT_EQ(INT64_MIN, value);
    CHECK_INT_EQ(0, is_called);

    CHECK_INT_EQ(0, dumpscan_parse_setval("SELECT pg_catalog.setval(E'a\\\\b\\'c', 5, true);",
                                          &value, &is_called));
    CHECK_INT_EQ(5, value);

    CHECK_INT_EQ(-1, dumpscan_parse_setval("SELECT pg_catalog.setval('s', 9223372036854775808, "
                                           "true);", &value, &is_called));
    CHECK_INT_EQ(-1, dumpscan_parse_setval("SELECT pg_catalog.setval('s', 1, maybe);",
                                           &value, &is_called));
    CHECK_INT_EQ(-1, dumpscan_parse_setval("SELECT pg_catalog.setval('s, 1, true);",
                                           &value, &is_called));
    CHECK_INT_EQ(-1, dumpscan_parse_setval("SELECT setval('s', 1, true);", &value, &is_called));
    CHECK_INT_EQ(-1, dumpscan_parse_setval("SELECT pg_catalog.setval('s', 1, true); DROP",
                                           &value, &is_called));
}

static void test_copy_to_stdout(void)
{
    char *statement = dumpscan_copy_to_stdout("COPY public.t (a, \"b FROM stdin;\") FROM stdin;\n");

    CHECK_STR_EQ("COPY public.t (a, \"b FROM stdin;\") TO STDOUT", statement);
    free(statement);

    statement = dumpscan_copy_to_stdout("COPY public.no_columns  FROM stdin;");
    CHECK_STR_EQ("COPY public.no_columns  TO STDOUT", statement);
    free(statement);

    CHECK(dumpscan_copy_to_stdout("INSERT INTO t VALUES (1);") == NULL);
    CHECK(dumpscan_copy_to_stdout("COPY t FROM stdin; DROP TABLE t;") == NULL);
}

static void test_format_name(void)
{
    char name[64];

    dumpscan_format_name("public", "plain_1", name, sizeof name);
    CHECK_STR_EQ("public.plain_1", name);
    dumpscan_format_name("Mixed Case", "Odd \"Seq\"", name, sizeof name);
    CHECK_STR_EQ("\"Mixed Case\".\"Odd \"\"Seq\"\"\"", name);
    dumpscan_format_name("public", "averyveryverylongname", name, 12);
    CHECK_STR_EQ("public.aver", name);
}

static void test_contents_json_rejected(void)
{
    static const char *const cases[][2] = {
        {"{\"timezone\":\"UTC\",\"bytea_output\":\"hex\",\"schemas\":[],\"extensions\":[],"
         "\"tables\":[],\"sequences\":[],\"large_objects\":{\"count\":0,\"bytes\":0}}",
         "encoding is not a string"},
        {"{\"encoding\":\"UTF8\",\"timezone\":\"UTC\",\"bytea_output\":\"hex\",\"schemas\":[],"
         "\"extensions\":[],\"tables\":[{\"schema\":\"s\",\"name\":\"t\",\"copy\":"
         "\"COPY s.t (a) FROM stdin;\",\"rows\":1,\"digest\":\"00\"}],\"sequences\":[],"
         "\"large_objects\":{\"count\":0,\"bytes\":0}}",
         "tables[].digest is not 64 lower-case hex digits"},
        {"{\"encoding\":\"UTF8\",\"timezone\":\"UTC\",\"bytea_output\":\"hex\",\"schemas\":[],"
         "\"extensions\":[],\"table_digest_algorithm\":\"sum128-siphash\",\"tables\":"
         "[{\"schema\":\"s\",\"name\":\"t\",\"copy\":\"COPY s.t (a) FROM stdin;\",\"rows\":1,"
         "\"digest\":\"0000000000000000000000000000000000000000000000000000000000000000\"}],"
         "\"sequences\":[],\"large_objects\":{\"count\":0,\"bytes\":0}}",
         "tables[].digest is not 32 lower-case hex digits"},
        {"{\"encoding\":\"UTF8\",\"timezone\":\"UTC\",\"bytea_output\":\"hex\",\"schemas\":[],"
         "\"extensions\":[],\"table_digest_algorithm\":\"sum256-md5\",\"tables\":[],"
         "\"sequences\":[],\"large_objects\":{\"count\":0,\"bytes\":0}}",
         "table_digest_algorithm \"sum256-md5\" is unknown to this version of stowage"},
        {"{\"encoding\":\"UTF8\",\"timezone\":\"UTC\",\"bytea_output\":\"hex\",\"schemas\":[],"
         "\"extensions\":[],\"tables\":[{\"schema\":\"s\",\"name\":\"t\",\"copy\":"
         "\"DROP TABLE s.t;\",\"rows\":1,\"digest\":\"00\"}],\"sequences\":[],"
         "\"large_objects\":{\"count\":0,\"bytes\":0}}",
         "tables[].copy is not a COPY ... FROM stdin statement"},
        {"{\"encoding\":\"UTF8\",\"timezone\":\"UTC\",\"bytea_output\":\"hex\",\"schemas\":[],"
         "\"extensions\":[],\"tables\":[],\"sequences\":[{\"schema\":\"s\",\"name\":\"q\","
         "\"value\":\"1\",\"is_called\":true}],\"large_objects\":{\"count\":0,\"bytes\":0}}",
         "sequences[].value is not an integer"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *json = json_loads(cases[i][0], 0, NULL);
        struct dumpscan_contents *contents = NULL;
        stow_error err;

        stow_error_clear(&err);
        CHECK(json != NULL);
        CHECK_INT_EQ(-1, dumpscan_contents_from_json(json, &contents, &err));
        CHECK_CONTAINS(err.message, cases[i][1]);
        CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
        CHECK(contents == NULL);
        json_decref(json);
    }
}

/* --- Output: the archive with its data chunks joined ---------------------------- */

/* What an output received, and the size of its largest piece. */
struct received {
    stow_buf bytes;
    size_t largest_piece;
};

static int receive_output(void *context, const void *data, size_t len, stow_error *err)
{
    struct received *received = context;

    if (len > received->largest_piece)
        received->largest_piece = len;
    return stow_buf_append(&received->bytes, data, len, err);
}

/* Scans data in pieces of piece bytes with an output, rows skipped as a
 * restore does; returns 0 and the output in received. */
static int rewrite(const unsigned char *data, size_t len, size_t piece,
                   struct received *received, stow_error *err)
{
    struct dumpscan_options options = {.skip_row_digests = 1, .skip_rows = 1};
    struct dumpscan_output output = {.context = received, .write = receive_output};
    dumpscan *scanner = NULL;
    int rc = 0;

    memset(received, 0, sizeof *received);
    stow_buf_init(&received->bytes, 64u * 1024 * 1024);
    stow_error_clear(err);
    if (dumpscan_new(&options, &scanner, err) != 0)
        return -1;
    dumpscan_set_output(scanner, &output);
    for (size_t at = 0; rc == 0 && at < len; at += piece) {
        size_t take = piece < len - at ? piece : len - at;

        rc = dumpscan_write(scanner, data + at, take, err);
    }
    if (rc == 0)
        rc = dumpscan_finish(scanner, err);
    dumpscan_free(scanner);
    return rc;
}

static void test_output_sample_same_contents(void)
{
    static const size_t pieces[] = {1, 7, 4096, 300000};
    stow_error err;
    dumpscan *original = scan_whole(sample.data, sample.len, &err);
    json_t *expected = original != NULL ? dumpscan_to_json(original) : NULL;
    struct received first = {0};

    CHECK(expected != NULL);
    for (size_t i = 0; expected != NULL && i < sizeof pieces / sizeof pieces[0]; i++) {
        struct received received;
        dumpscan *again;
        json_t *actual;

        CHECK_INT_EQ(0, rewrite(sample.data, sample.len, pieces[i], &received, &err));
        CHECK(received.largest_piece <= 256u * 1024);
        CHECK(received.bytes.len < sample.len);

        /* The rows, digests and large objects are the same; only the
         * chunking changed, whatever the input's pieces. */
        again = scan_whole(received.bytes.data, received.bytes.len, &err);
        actual = again != NULL ? dumpscan_to_json(again) : NULL;
        CHECK(actual != NULL);
        CHECK(actual == NULL || json_equal(expected, actual));
        if (i == 0) {
            first = received;
        } else {
            CHECK_INT_EQ(first.bytes.len, received.bytes.len);
            CHECK(memcmp(first.bytes.data, received.bytes.data, first.bytes.len) == 0);
            stow_buf_free(&received.bytes);
        }
        json_decref(actual);
        dumpscan_free(again);
    }
    stow_buf_free(&first.bytes);
    json_decref(expected);
    dumpscan_free(original);
}

static void test_output_joins_rows(void)
{
    static const char *const rows[] = {"1\n", "22\n", "333\n", "\\.\n\n\n"};
    static const char *const joined[] = {"1\n22\n333\n\\.\n\n\n"};
    stow_buf archive;
    stow_buf expected;
    struct received received;
    stow_error err;

    build_table_archive(&archive, rows, 4, 0);
    build_table_archive(&expected, joined, 1, 0);
    CHECK_INT_EQ(0, rewrite(archive.data, archive.len, 5, &received, &err));
    CHECK_INT_EQ(expected.len, received.bytes.len);
    CHECK(received.bytes.len == expected.len &&
          memcmp(expected.data, received.bytes.data, expected.len) == 0);
    stow_buf_free(&received.bytes);
    stow_buf_free(&archive);
    stow_buf_free(&expected);
}

/* A row longer than a chunk is cut into whole chunks and a rest. */
static void test_output_cuts_long_rows(void)
{
    size_t long_len = 3 * DUMPSCAN_OUTPUT_CHUNK + 100;
    char *long_row = malloc(long_len + 1);
    const char *rows[] = {long_row, "tail\n"};
    stow_buf archive;
    stow_buf prefix;
    struct received received;
    stow_error err;
    size_t at;
    size_t chunks = 0;
    size_t data = 0;

    memset(long_row, 'x', long_len - 1);
    long_row[long_len - 1] = '\n';
    long_row[long_len] = '\0';
    build_table_archive(&archive, rows, 2, 0);
    build_table_archive(&prefix, rows, 0, 1);
    CHECK_INT_EQ(0, rewrite(archive.data, archive.len, 65536, &received, &err));

    /* Walk the chunks after the block header: length, bytes, ..., zero. */
    at = prefix.len;
    while (at + 5 <= received.bytes.len) {
        const unsigned char *field = received.bytes.data + at;
        size_t len = field[1] | (size_t)field[2] << 8 | (size_t)field[3] << 16 |
                     (size_t)field[4] << 24;

        at += 5;
        if (len == 0)
            break;
        CHECK(len <= DUMPSCAN_OUTPUT_CHUNK);
        chunks++;
        data += len;
        at += len;
    }
    CHECK_INT_EQ(received.bytes.len, at);
    CHECK_INT_EQ(4, chunks);
    CHECK_INT_EQ(long_len + 5, data);
    free(long_row);
    stow_buf_free(&received.bytes);
    stow_buf_free(&archive);
    stow_buf_free(&prefix);
}

/* Data offsets that a dump to a file records would point into the old
 * layout: the output marks them as not set. */
static void test_output_clears_data_offsets(void)
{
    static const char *const rows[] = {"1\n"};
    stow_buf archive;
    struct received received;
    stow_error err;
    size_t flag_at;

    build_table_archive(&archive, rows, 1, 0);
    /* The table data entry is the second; its offset flag precedes its
     * 8 offset bytes, which end the TOC before the block type byte. */
    flag_at = archive.len - (5 + 5 + 2 + 5) - 1 - 8 - 1;
    CHECK_INT_EQ(1, archive.data[flag_at]);
    archive.data[flag_at] = 2;
    CHECK_INT_EQ(0, rewrite(archive.data, archive.len, 3, &received, &err));
    CHECK_INT_EQ(archive.len, received.bytes.len);
    CHECK_INT_EQ(1, received.bytes.data[flag_at]);
    stow_buf_free(&received.bytes);
    stow_buf_free(&archive);
}

/* A truncated dump fails at dumpscan_finish and passes nothing on there. */
static void test_output_truncated_fails(void)
{
    struct received received;
    stow_error err;

    CHECK(rewrite(sample.data, sample.len - 10, 4096, &received, &err) != 0);
    CHECK_CONTAINS(err.message, "truncated");
    CHECK(received.bytes.len < sample.len);
    stow_buf_free(&received.bytes);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    sample = read_file(SAMPLE_DUMP);
    if (sample.data == NULL) {
        fprintf(stderr, "run this test in tests/unit, where ctest runs it\n");
        return 1;
    }

    unit_run("dumpscan sample tables", test_sample_tables);
    unit_run("dumpscan sample copy statements", test_sample_copy_statements);
    unit_run("dumpscan sample sequences", test_sample_sequences);
    unit_run("dumpscan sample catalog", test_sample_catalog);
    unit_run("dumpscan sample chunkings agree", test_sample_chunkings_agree);
    unit_run("dumpscan sample json round trip", test_sample_json_round_trip);
    unit_run("dumpscan truncated sample", test_truncated_sample);
    unit_run("dumpscan every prefix fails", test_every_prefix_fails);
    unit_run("dumpscan compressed dump rejected", test_compressed_dump_rejected);
    unit_run("dumpscan version 1.15 header", test_version_15_header);
    unit_run("dumpscan foreign input rejected", test_foreign_input_rejected);
    unit_run("dumpscan unknown block rejected", test_unknown_block_rejected);
    unit_run("dumpscan flipped bytes handled", test_flipped_bytes_handled);
    unit_run("dumpscan rows across chunks", test_rows_across_chunks);
    unit_run("dumpscan observer gets exact rows", test_observer_gets_exact_rows);
    unit_run("dumpscan observer sample rows", test_observer_sample_rows);
    unit_run("dumpscan bad table data rejected", test_bad_table_data_rejected);
    unit_run("dumpscan long strings", test_long_strings);
    unit_run("dumpscan version 1.13 layout", test_version_13_layout);
    unit_run("dumpscan parse setval", test_parse_setval);
    unit_run("dumpscan copy to stdout", test_copy_to_stdout);
    unit_run("dumpscan format name", test_format_name);
    unit_run("dumpscan contents json rejected", test_contents_json_rejected);
    unit_run("dumpscan output sample same contents", test_output_sample_same_contents);
    unit_run("dumpscan output joins rows", test_output_joins_rows);
    unit_run("dumpscan output cuts long rows", test_output_cuts_long_rows);
    unit_run("dumpscan output clears data offsets", test_output_clears_data_offsets);
    unit_run("dumpscan output truncated fails", test_output_truncated_fails);

    free(sample.data);
    return unit_finish();
}
