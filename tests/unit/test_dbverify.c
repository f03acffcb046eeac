/* Tests for restore/dbverify.c against a real PostgreSQL 15 server that the
 * test starts itself (data/pg_scratch.sh): the sample database is dumped
 * with pg_dump -Fc -Z0 through the dump scanner, restored with pg_restore,
 * verified, then changed in known ways and verified again.
 *
 * STOWAGE_PG_BINDIR selects the PostgreSQL binaries (default: PostgreSQL
 * 15 on Debian). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "dbverify.h"
#include "formats/dumpscan.h"
#include "unit.h"

#define SCRATCH_SCRIPT "data/pg_scratch.sh"
#define SAMPLE_SQL "data/sample.sql"

static char directory[] = "/tmp/stowage-dbverify-XXXXXX";
static char port[16];
static char bindir[512];
static char dump_path[600];
static int directory_created;
static int server_started;
static json_t *contents;
static json_t *ranges_contents;   /* of the database "ranges" */

static PGconn *connect_to(const char *database)
{
    char conninfo[1024];
    PGconn *conn;

    snprintf(conninfo, sizeof conninfo, "host=%s port=%s user=postgres dbname=%s", directory,
             port, database);
    conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        unit_fail(__FILE__, __LINE__, "connecting to %s failed: %s", database,
                  PQerrorMessage(conn));
    return conn;
}

static int execute(PGconn *conn, const char *sql)
{
    PGresult *result = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(result);

    PQclear(result);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        return 0;
    unit_fail(__FILE__, __LINE__, "%s failed: %s", sql, PQerrorMessage(conn));
    return -1;
}

static char *read_text(const char *path)
{
    FILE *stream = fopen(path, "rb");
    char *text;
    long size;

    if (stream == NULL)
        return NULL;
    fseek(stream, 0, SEEK_END);
    size = ftell(stream);
    fseek(stream, 0, SEEK_SET);
    text = calloc(1, (size_t)size + 1);
    if (fread(text, 1, (size_t)size, stream) != (size_t)size) {
        free(text);
        text = NULL;
    }
    fclose(stream);
    return text;
}

static int run_command(const char *fmt, const char *argument)
{
    char command[2048];

    snprintf(command, sizeof command, fmt, bindir, directory, port, argument);
    return system(command);
}

/* --- Set-up ---------------------------------------------------------------- */

static int start_server(void)
{
    char command[1024];
    FILE *output;

    if (mkdtemp(directory) == NULL)
        return -1;
    directory_created = 1;
    snprintf(command, sizeof command, "%s start %s", SCRATCH_SCRIPT, directory);
    output = popen(command, "r");
    if (output == NULL || fgets(port, sizeof port, output) == NULL) {
        if (output != NULL)
            pclose(output);
        return -1;
    }
    port[strcspn(port, "\n")] = '\0';
    server_started = pclose(output) == 0;
    return server_started ? 0 : -1;
}

static int create_sample(void)
{
    PGconn *admin = connect_to("postgres");
    PGconn *sample = NULL;
    char *sql = read_text(SAMPLE_SQL);
    int rc = -1;

    if (sql != NULL && execute(admin, "CREATE DATABASE sample") == 0 &&
        execute(admin, "CREATE DATABASE restored") == 0) {
        sample = connect_to("sample");
        rc = execute(sample, sql);
    }
    free(sql);
    PQfinish(sample);
    PQfinish(admin);
    return rc;
}

/* Runs pg_dump of database as stowage does and feeds its output to the
 * scanner, keeping a copy of the archive in dump_path for pg_restore. */
static int dump_database(const char *database, json_t **out)
{
    char command[2048];
    unsigned char buffer[65536];
    stow_error err;
    dumpscan *scanner = NULL;
    FILE *dump;
    FILE *copy;
    size_t got;
    int rc = -1;

    snprintf(dump_path, sizeof dump_path, "%s/sample.dump", directory);
    snprintf(command, sizeof command,
             "PGTZ=UTC PGOPTIONS='-c bytea_output=hex' %s/pg_dump -Fc -Z0 -h %s -p %s "
             "-U postgres %s", bindir, directory, port, database);
    stow_error_clear(&err);
    dump = popen(command, "r");
    copy = fopen(dump_path, "wb");
    if (dump == NULL || copy == NULL || dumpscan_new(NULL, &scanner, &err) != 0)
        goto cleanup;

    while ((got = fread(buffer, 1, sizeof buffer, dump)) > 0) {
        if (dumpscan_write(scanner, buffer, got, &err) != 0 ||
            fwrite(buffer, 1, got, copy) != got)
            goto cleanup;
    }
    if (dumpscan_finish(scanner, &err) != 0)
        goto cleanup;
    *out = dumpscan_to_json(scanner);
    rc = 0;

cleanup:
    if (err.message[0] != '\0')
        unit_fail(__FILE__, __LINE__, "scanning the dump failed: %s", err.message);
    if (dump != NULL && pclose(dump) != 0)
        rc = -1;
    if (copy != NULL)
        fclose(copy);
    dumpscan_free(scanner);
    return rc;
}

static int set_up(void)
{
    const char *configured = getenv("STOWAGE_PG_BINDIR");

    snprintf(bindir, sizeof bindir, "%s",
             configured != NULL ? configured : "/usr/lib/postgresql/15/bin");
    setenv("PG_BIN", bindir, 1);

    if (start_server() != 0) {
        unit_fail(__FILE__, __LINE__, "starting PostgreSQL with %s failed", SCRATCH_SCRIPT);
        return -1;
    }
    if (create_sample() != 0 || dump_database("sample", &contents) != 0)
        return -1;
    if (run_command("%s/pg_restore -h %s -p %s -U postgres -d restored --exit-on-error %s",
                    dump_path) != 0) {
        unit_fail(__FILE__, __LINE__, "pg_restore failed");
        return -1;
    }
    return 0;
}

static void tear_down(void)
{
    char command[1024];

    json_decref(contents);
    json_decref(ranges_contents);
    if (server_started) {
        snprintf(command, sizeof command, "%s stop %s", SCRATCH_SCRIPT, directory);
        if (system(command) != 0)
            fprintf(stderr, "stopping the test server in %s failed\n", directory);
    }
    if (directory_created) {
        snprintf(command, sizeof command, "rm -rf %s", directory);
        if (system(command) != 0)
            fprintf(stderr, "removing %s failed\n", directory);
    }
}

/* --- Helpers ------------------------------------------------------------------ */

static int has_difference(const json_t *differences, const char *kind, const char *object,
                          const char *expected, const char *found)
{
    const json_t *item;
    size_t index;

    json_array_foreach(differences, index, item) {
        const char *item_expected = json_string_value(json_object_get(item, "expected"));
        const char *item_found = json_string_value(json_object_get(item, "found"));

        if (strcmp(json_string_value(json_object_get(item, "kind")), kind) == 0 &&
            strcmp(json_string_value(json_object_get(item, "object")), object) == 0 &&
            (expected == NULL || strcmp(item_expected, expected) == 0) &&
            (found == NULL || strcmp(item_found, found) == 0))
            return 1;
    }
    return 0;
}

#define CHECK_DIFFERENCE(differences, kind, object, expected, found)                   \
    do {                                                                              \
        unit_checks++;                                                                \
        if (!has_difference(differences, kind, object, expected, found))              \
            unit_fail(__FILE__, __LINE__, "no difference %s %s", kind, object);       \
    } while (0)

static json_t *compare(PGconn *conn, const json_t *expected, size_t *count)
{
    json_t *differences = NULL;
    stow_error err;

    stow_error_clear(&err);
    *count = 0;
    if (dbverify_compare(conn, expected, &differences, count, &err) != 0)
        unit_fail(__FILE__, __LINE__, "dbverify_compare failed: %s", err.message);
    return differences;
}

/* --- Cases ------------------------------------------------------------------------- */

static void test_restored_matches(void)
{
    PGconn *conn = connect_to("restored");
    size_t count;
    json_t *differences = compare(conn, contents, &count);

    CHECK_INT_EQ(0, count);
    if (count > 0)
        dbverify_print_differences(differences);
    json_decref(differences);
    PQfinish(conn);
}

static void test_source_matches(void)
{
    PGconn *conn = connect_to("sample");
    size_t count;
    json_t *differences = compare(conn, contents, &count);

    CHECK_INT_EQ(0, count);
    json_decref(differences);
    PQfinish(conn);
}

static void test_session_restored(void)
{
    PGconn *conn = connect_to("restored");
    size_t count;
    json_t *differences;
    PGresult *result;

    execute(conn, "SET TimeZone = 'America/New_York'");
    execute(conn, "SET DateStyle = 'SQL, DMY'");
    differences = compare(conn, contents, &count);
    CHECK_INT_EQ(0, count);

    result = PQexec(conn, "SELECT current_setting('TimeZone'), current_setting('DateStyle'), "
                          "current_setting('search_path')");
    CHECK_STR_EQ("America/New_York", PQgetvalue(result, 0, 0));
    CHECK_STR_EQ("SQL, DMY", PQgetvalue(result, 0, 1));
    CHECK_STR_EQ("\"$user\", public", PQgetvalue(result, 0, 2));
    CHECK_INT_EQ(PQTRANS_IDLE, PQtransactionStatus(conn));
    PQclear(result);
    json_decref(differences);
    PQfinish(conn);
}

/* Manifests written before table_digest_algorithm existed carry BLAKE2b-256
 * lane sums, which verification still computes for them. These digests of
 * the sample database were computed in Python (hashlib.blake2b, digest_size
 * 32) when that was the only algorithm. */
static const char *const blake2b_digests[][3] = {
        {"Mixed Case", "Order Items", "088dd8560e4b6b66f7de4bd0f674408d9249562c5764f67a471804d3f26a3069"},
        {"public", "blobs", "51e25536e16e35c69abac98fb2e7ddfd6861d24023ba9719bf816fa5bda568d7"},
        {"public", "documents", "a1b0f7e2477532d63a09c61b3c48461fa725c11c6d3b6f346484131f8cd7d62b"},
        {"public", "empty_table", "0000000000000000000000000000000000000000000000000000000000000000"},
        {"public", "long_row", "0deefc0c6740381863abaaf4e12475b4e3ad3980e7363622b846fd1c56cf7f73"},
        {"public", "measurements", "423c22707b74fbbee8d75a749839adaafb468885e73d0cb0b2a789ada69c781f"},
        {"public", "no_columns", "2a05f44074afcb16b8038c1022cc8fe573b19fd765ae6696ee03d167d58fa9fa"},
        {"public", "plain", "6a4806cb30d617bb0230fb268b5858658215114de0be86e6e0aebb34465951f2"},
        {"public", "tricky", "2cd1dda1d3ffe7c586cdd3debc77847a6240b61b5ae686f2aa3ed8c84a13b07c"},
        {"sales", "events_2023", "07573ff71c3fc4e597a22bc10cb0884052f507b4e307f233bb925e36d2683208"},
        {"sales", "events_2024", "8d9786b1d070187c52cc06add6cc6b630189c714a948dfdecbc674cede5a52fc"},
        {"sales", "events_other", "cc73dbd5ba371e961ba263f6d7ec247f5282f982bc9ee98fdb99c2fce939b722"},
        {"ünïcode schema", "tablé with spaces", "0dd2379074413d67e3067b4f5d23b6ea6994f11c3f6982364035e32ffea86132"},
};

static void test_blake2b_manifest_verified(void)
{
    PGconn *conn = connect_to("restored");
    json_t *old = json_deep_copy(contents);
    json_t *tables = json_object_get(old, "tables");
    json_t *table;
    size_t index, count;
    json_t *differences;

    CHECK_INT_EQ(0, json_object_del(old, "table_digest_algorithm"));
    json_array_foreach(tables, index, table) {
        const char *schema = json_string_value(json_object_get(table, "schema"));
        const char *name = json_string_value(json_object_get(table, "name"));

        for (size_t i = 0; i < sizeof blake2b_digests / sizeof blake2b_digests[0]; i++) {
            if (strcmp(schema, blake2b_digests[i][0]) == 0 &&
                strcmp(name, blake2b_digests[i][1]) == 0)
                json_object_set_new(table, "digest", json_string(blake2b_digests[i][2]));
        }
    }
    differences = compare(conn, old, &count);
    CHECK_INT_EQ(0, count);
    if (count > 0)
        dbverify_print_differences(differences);
    json_decref(differences);

    /* A changed row still shows under the old algorithm. */
    execute(conn, "UPDATE public.plain SET note = note || 'x' WHERE id = 1");
    differences = compare(conn, old, &count);
    CHECK_INT_EQ(1, count);
    CHECK(has_difference(differences, "table_digest", "public.plain", NULL, NULL));
    execute(conn, "UPDATE public.plain SET note = left(note, -1) WHERE id = 1");
    json_decref(differences);
    json_decref(old);
    PQfinish(conn);
}

static void test_timezone_changes_digests(void)
{
    PGconn *conn = connect_to("restored");
    json_t *other_zone = json_deep_copy(contents);
    size_t count;
    json_t *differences;

    /* timestamptz columns print in the session time zone. */
    json_object_set_new(other_zone, "timezone", json_string("America/New_York"));
    differences = compare(conn, other_zone, &count);
    CHECK_DIFFERENCE(differences, "table_digest", "public.documents", NULL, NULL);
    CHECK_DIFFERENCE(differences, "table_digest", "sales.events_2023", NULL, NULL);
    CHECK(!has_difference(differences, "table_digest", "public.plain", NULL, NULL));
    json_decref(differences);
    json_decref(other_zone);
    PQfinish(conn);
}

static void test_changes_reported(void)
{
    static const char *const changes[] = {
        "DELETE FROM public.plain WHERE id = 500",
        "UPDATE public.tricky SET t = 'changed' WHERE id = 6",
        "SELECT setval('public.counter', 43, true)",
        "DROP TABLE public.empty_table",
        "CREATE TABLE public.extra_table (a integer)",
        "CREATE SCHEMA extra_schema",
        "DROP EXTENSION hstore CASCADE",
        ("SELECT lo_unlink(oid) FROM pg_largeobject_metadata "
         "WHERE lo_get(oid) = 'small large object'"),
    };
    PGconn *conn = connect_to("restored");
    stow_buf text;
    stow_error err;
    struct dumpscan_contents *expected = NULL;
    struct dbverify_result *result = NULL;
    json_t *differences;
    size_t count;

    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
        execute(conn, changes[i]);
    differences = compare(conn, contents, &count);

    CHECK_DIFFERENCE(differences, "table_rows", "public.plain", "1000", "999");
    CHECK_DIFFERENCE(differences, "table_digest", "public.plain", NULL, NULL);
    CHECK_DIFFERENCE(differences, "table_digest", "public.tricky", NULL, NULL);
    CHECK_DIFFERENCE(differences, "sequence_value", "public.counter", "42 (is_called true)",
                     "43 (is_called true)");
    CHECK_DIFFERENCE(differences, "table_missing", "public.empty_table", "present", "missing");
    CHECK_DIFFERENCE(differences, "table_extra", "public.extra_table", "absent", "present");
    CHECK_DIFFERENCE(differences, "schema_extra", "extra_schema", "absent", "present");
    CHECK_DIFFERENCE(differences, "extension_missing", "hstore", "present", "missing");
    CHECK_DIFFERENCE(differences, "table_unreadable", "\"ünïcode schema\".\"tablé with spaces\"",
                     "readable", "column \"v\" of relation \"tablé with spaces\" does not exist");
    CHECK_DIFFERENCE(differences, "large_object_count", "large objects", "3", "2");
    CHECK_DIFFERENCE(differences, "large_object_bytes", "large objects", "40978", "40960");
    CHECK_INT_EQ(11, count);
    json_decref(differences);

    /* The structured result and its text form. */
    stow_error_clear(&err);
    stow_buf_init(&text, 1024 * 1024);
    if (dumpscan_contents_from_json(contents, &expected, &err) == 0 &&
        dbverify_run(conn, expected, &result, &err) == 0) {
        CHECK_INT_EQ(11, result->count);
        CHECK_INT_EQ(11, result->summary.tables);
        CHECK_INT_EQ(6, result->summary.sequences);
        CHECK_INT_EQ(0, dbverify_result_to_text(result, &text, &err));
        CHECK_CONTAINS((char *)text.data, "compared 11 tables (1259 rows), 6 sequences, "
                                          "3 schemas, 2 extensions, 2 large objects: "
                                          "11 differences\n");
        CHECK_CONTAINS((char *)text.data,
                       "table_rows public.plain: expected 1000, found 999\n");
    } else {
        unit_fail(__FILE__, __LINE__, "dbverify_run failed: %s", err.message);
    }
    stow_buf_free(&text);
    dbverify_result_free(result);
    dumpscan_contents_free(expected);
    PQfinish(conn);
}

static void test_lost_connection(void)
{
    PGconn *conn = connect_to("restored");
    PGconn *admin = connect_to("postgres");
    char sql[128];
    json_t *differences = NULL;
    size_t count = 0;
    stow_error err;

    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(conn));
    execute(admin, sql);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, dbverify_compare(conn, contents, &differences, &count, &err));
    CHECK_INT_EQ(STOW_EXIT_DATABASE, err.exit_code);
    CHECK_CONTAINS(err.message, "verifying database restored");
    CHECK(differences == NULL);
    PQfinish(admin);
    PQfinish(conn);
}

/* --- Block ranges ---------------------------------------------------------------- */

static void test_range_count(void)
{
    CHECK_INT_EQ(1, dbverify_range_count(0, 150000));
    CHECK_INT_EQ(1, dbverify_range_count(2 * DBVERIFY_RANGE_MIN_BLOCKS - 1, 150000));
    CHECK_INT_EQ(2, dbverify_range_count(2 * DBVERIFY_RANGE_MIN_BLOCKS, 150000));
    CHECK_INT_EQ(2, dbverify_range_count(2 * DBVERIFY_RANGE_MIN_BLOCKS, 140000));
    CHECK_INT_EQ(DBVERIFY_RANGES_MAX, dbverify_range_count(100000, 150000));
    CHECK_INT_EQ(DBVERIFY_RANGES_MAX, dbverify_range_count(UINT32_MAX, 150000));
}

/* PostgreSQL 13 and older have no TID Range Scan: a ctid range would scan
 * the whole table, so every table is read whole. */
static void test_range_count_before_14(void)
{
    CHECK_INT_EQ(1, dbverify_range_count(100000, 130000));
    CHECK_INT_EQ(1, dbverify_range_count(100000, 139999));
}

static void test_range_sql(void)
{
    char *sql = dbverify_range_sql("COPY public.plain (id, note) FROM stdin;\n", 0, 1024);

    CHECK_STR_EQ("COPY (SELECT id, note FROM ONLY public.plain WHERE ctid >= '(0,0)' "
                 "AND ctid < '(1024,0)') TO STDOUT",
                 sql);
    free(sql);

    sql = dbverify_range_sql("COPY public.plain (id, note) FROM stdin;\n", 1024, 0);
    CHECK_STR_EQ("COPY (SELECT id, note FROM ONLY public.plain WHERE ctid >= '(1024,0)') "
                 "TO STDOUT",
                 sql);
    free(sql);

    sql = dbverify_range_sql("COPY \"odd (schema\".\"t \"\"x\"\" (y)\" (\"a (b)\", c) FROM stdin;\n",
                             5, 9);
    CHECK_STR_EQ("COPY (SELECT \"a (b)\", c FROM ONLY \"odd (schema\".\"t \"\"x\"\" (y)\" "
                 "WHERE ctid >= '(5,0)' AND ctid < '(9,0)') TO STDOUT",
                 sql);
    free(sql);
}

static void test_range_sql_rejects(void)
{
    CHECK(dbverify_range_sql("COPY public.no_columns  FROM stdin;\n", 0, 0) == NULL);
    CHECK(dbverify_range_sql("SELECT 1", 0, 0) == NULL);
    CHECK(dbverify_range_sql("COPY public.t (a) TO stdout;", 0, 0) == NULL);
}

/* public.wide: 15000 rows at fillfactor 10 take about 2500 blocks, more
 * than two ranges of DBVERIFY_RANGE_MIN_BLOCKS. */
static int create_ranges_database(void)
{
    PGconn *admin = connect_to("postgres");
    PGconn *conn = NULL;
    int rc = -1;

    if (execute(admin, "CREATE DATABASE ranges") == 0) {
        conn = connect_to("ranges");
        if (execute(conn, "CREATE TABLE public.wide (id integer PRIMARY KEY, note text) "
                          "WITH (fillfactor = 10)") == 0 &&
            execute(conn, "INSERT INTO public.wide SELECT i, repeat(md5(i::text), 3) "
                          "FROM generate_series(1, 15000) i") == 0 &&
            execute(conn, "CREATE TABLE public.small (id integer)") == 0 &&
            execute(conn, "INSERT INTO public.small SELECT generate_series(1, 10)") == 0)
            rc = dump_database("ranges", &ranges_contents);
    }
    PQfinish(conn);
    PQfinish(admin);
    return rc;
}

static uint64_t table_blocks(PGconn *conn, const char *table)
{
    const char *params[1] = {table};
    PGresult *result = PQexecParams(conn,
                                    "SELECT pg_relation_size($1::regclass) / "
                                    "current_setting('block_size')::int8",
                                    1, NULL, params, NULL, NULL, 0);
    uint64_t blocks = 0;

    if (PQresultStatus(result) == PGRES_TUPLES_OK)
        blocks = strtoull(PQgetvalue(result, 0, 0), NULL, 10);
    PQclear(result);
    return blocks;
}

static void test_large_table_ranges_match(void)
{
    PGconn *conn;
    json_t *differences;
    size_t count;

    if (create_ranges_database() != 0) {
        unit_fail(__FILE__, __LINE__, "creating the database ranges failed");
        return;
    }
    conn = connect_to("ranges");
    CHECK(dbverify_range_count(table_blocks(conn, "public.wide"), PQserverVersion(conn)) >= 2);
    differences = compare(conn, ranges_contents, &count);
    CHECK_INT_EQ(0, count);
    if (count > 0)
        dbverify_print_differences(differences);
    json_decref(differences);
    PQfinish(conn);
}

/* The row inserted last lies in the table's last block, so in its last
 * range. */
static void test_large_table_changes_reported(void)
{
    PGconn *conn = connect_to("ranges");
    json_t *differences;
    size_t count;

    execute(conn, "UPDATE public.wide SET note = 'changed' WHERE id = 15000");
    differences = compare(conn, ranges_contents, &count);
    CHECK_DIFFERENCE(differences, "table_digest", "public.wide", NULL, NULL);
    CHECK_INT_EQ(1, count);
    json_decref(differences);

    execute(conn, "DELETE FROM public.wide WHERE id = 14999");
    differences = compare(conn, ranges_contents, &count);
    CHECK_DIFFERENCE(differences, "table_rows", "public.wide", "15000", "14999");
    CHECK_DIFFERENCE(differences, "table_digest", "public.wide", NULL, NULL);
    CHECK_INT_EQ(2, count);
    json_decref(differences);
    PQfinish(conn);
}

static int ready;

static void test_set_up(void)
{
    ready = set_up() == 0;
}

int main(void)
{
    unit_run("dbverify range count", test_range_count);
    unit_run("dbverify range count before 14", test_range_count_before_14);
    unit_run("dbverify range sql", test_range_sql);
    unit_run("dbverify range sql rejects", test_range_sql_rejects);
    unit_run("dbverify set-up: server, dump, restore", test_set_up);
    if (ready) {
        unit_run("dbverify restored matches", test_restored_matches);
        unit_run("dbverify source matches", test_source_matches);
        unit_run("dbverify session restored", test_session_restored);
        unit_run("dbverify blake2b manifest verified", test_blake2b_manifest_verified);
        unit_run("dbverify timezone changes digests", test_timezone_changes_digests);
        unit_run("dbverify changes reported", test_changes_reported);
        unit_run("dbverify lost connection", test_lost_connection);
        unit_run("dbverify large table ranges match", test_large_table_ranges_match);
        unit_run("dbverify large table changes reported", test_large_table_changes_reported);
    }
    tear_down();
    return unit_finish();
}
