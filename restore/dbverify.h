/* Database verification: recompute a backup's contents from a live or
 * restored database over libpq and compare them with the manifest.
 *
 * The session is set up as pg_dump 15 sets up its own (setup_connection in
 * pg_dump.c: empty search_path, DateStyle ISO, IntervalStyle postgres,
 * extra_float_digits 3, row_security off, no timeouts) plus the settings
 * the contents record: client_encoding, TimeZone and bytea_output. All of
 * it is local to one REPEATABLE READ, READ ONLY transaction, so every table
 * is read from the same snapshot and the connection keeps its own settings
 * afterwards.
 *
 * Each table with data is read with its recorded COPY statement turned
 * into COPY ... TO STDOUT (the same column list, so generated columns stay
 * out) and its rows go through the same digest as at backup time
 * (formats/rowdigest.h). Also compared: the set of tables, schemas,
 * extensions and sequences in both directions, each sequence's last_value
 * and is_called, and the number and total size of large objects.
 *
 * The tables are read over two connections, largest first: a second
 * connection with the same parameters imports the first one's snapshot
 * (pg_export_snapshot, SET TRANSACTION SNAPSHOT), as pg_dump --jobs does.
 * Where the server rejects the export or the second connection fails, the
 * first connection reads every table. The server's COPY is the limit.
 * Measured with 3 runs each of stowage verify --against on 2 busy shared
 * CPUs: two connections took 1.0 to 1.5 s instead of 2.2 to 2.9 s for a
 * 300 MB real-estate dataset (scripts/bench/dataset).
 *
 * On PostgreSQL 14 and later, a table of 2 * DBVERIFY_RANGE_MIN_BLOCKS
 * blocks or more is read in block ranges: COPY of a SELECT with a ctid
 * range, which runs as a TID Range Scan. Both connections then share a
 * large table, such as pgbench_accounts, which contains nearly all rows of
 * a pgbench database. The digest is a sum over rows (formats/rowdigest.h),
 * so the ranges' digests and row counts add up to the table's.
 *
 * A difference never stops the run: everything is checked and every
 * difference is listed. Only a failure to run the checks at all (lost
 * connection, a failing catalog query) is an error. Not thread-safe per
 * connection. */
#ifndef STOWAGE_DBVERIFY_H
#define STOWAGE_DBVERIFY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "formats/dumpscan.h"

/* One way in which the database differs from the backup. Kinds:
 * schema_missing, schema_extra, extension_missing, extension_extra,
 * table_missing, table_extra, table_unreadable, table_rows, table_digest,
 * sequence_missing, sequence_extra, sequence_unreadable, sequence_value,
 * large_object_count, large_object_bytes, large_objects_unreadable. */
struct dbverify_difference {
    char *kind;
    char *object;      /* schema.name, a schema or extension name, or "large objects" */
    char *expected;    /* from the backup */
    char *found;       /* in the database; a server message for *_unreadable */
};

/* Counts of the objects compared. */
struct dbverify_summary {
    size_t tables;             /* tables whose rows were read and digested */
    uint64_t rows;             /* rows read from them */
    size_t sequences;          /* sequences whose values were read */
    size_t schemas;            /* schemas listed in the backup */
    size_t extensions;         /* extensions listed in the backup */
    uint64_t large_objects;    /* large objects found */
};

struct dbverify_result {
    struct dbverify_difference *differences;  /* owned */
    size_t count;
    size_t cap;
    struct dbverify_summary summary;
};

/* Compares the database on conn with expected. On success *out is the
 * result, with zero or more differences. Fails with STOW_EXIT_DATABASE when
 * the connection is lost and STOW_EXIT_FAILURE when a catalog query fails,
 * with the server's message. */
int dbverify_run(PGconn *conn, const struct dumpscan_contents *expected,
                 struct dbverify_result **out, stow_error *err);

/* Builds {"passed", "summary": {...}, "differences": [...]}. */
json_t *dbverify_result_to_json(const struct dbverify_result *result);

/* Builds [{"kind", "object", "expected", "found"}, ...]. */
json_t *dbverify_differences_to_json(const struct dbverify_result *result);

/* Appends a summary line and one line per difference to out. */
int dbverify_result_to_text(const struct dbverify_result *result, stow_buf *out,
                            stow_error *err);

/* Accepts NULL. */
void dbverify_result_free(struct dbverify_result *result);

/* Loads the manifest's "contents" member, runs the comparison and returns
 * the differences as a new JSON array (see dbverify_differences_to_json)
 * and their number. */
int dbverify_compare(PGconn *conn, const json_t *contents, json_t **differences,
                     size_t *count, stow_error *err);

/* Prints one line per difference of a differences array to stdout. */
void dbverify_print_differences(const json_t *differences);

/* Block ranges of large tables. A range is read with a TID Range Scan,
 * which PostgreSQL has since version 14, so older servers read every table
 * whole. A range has at least DBVERIFY_RANGE_MIN_BLOCKS blocks (8 MiB at
 * the default block size), and a table has at most DBVERIFY_RANGES_MAX. */
#define DBVERIFY_RANGE_MIN_SERVER_VERSION 140000
#define DBVERIFY_RANGE_MIN_BLOCKS 1024
#define DBVERIFY_RANGES_MAX 16

/* Returns the number of ranges that a table of blocks blocks is read in on
 * a server of server_version (PQserverVersion): 1 when it is not split. */
unsigned dbverify_range_count(uint64_t blocks, int server_version);

/* Builds COPY (SELECT columns FROM ONLY table WHERE ctid ...) TO STDOUT for
 * the rows in blocks [first_block, end_block) of the table in copy, the
 * COPY ... FROM stdin statement of pg_dump. end_block 0 means to the end
 * of the table. Returns a malloc'd string, or NULL when copy names no
 * columns or is not such a statement. */
char *dbverify_range_sql(const char *copy, uint64_t first_block, uint64_t end_block);

#endif
