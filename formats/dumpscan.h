/* Dump scanning: the contents of a pg_dump custom-format archive, read from
 * the stream as it passes by.
 *
 * Stowage runs `pg_dump -Fc -Z0` with its standard output on a pipe, so the
 * archive is: a header, the table of contents (TOC) without data offsets,
 * then one data block per TABLE DATA or BLOBS entry in TOC order. The
 * scanner is push-style: the caller writes the archive bytes in any
 * chunking and the scanner never looks back. From the TOC it collects the
 * schemas, extensions, tables (with the COPY statement that carries the
 * exact column list), sequences with their setval() values, and the
 * database encoding. From the data blocks it counts each table's rows and
 * takes their digest (formats/rowdigest.h), and counts large objects and
 * their bytes. An optional observer (struct dumpscan_observer) receives each
 * table's rows as they pass, for restore --jobs.
 *
 * Memory is bounded: the scanner holds at most one TOC string (up to
 * DUMPSCAN_STRING_MAX bytes), a few bytes of a block header, and the open
 * row's digest state (ROWDIGEST_SIPHASH_MAX bytes of the row at most),
 * plus the collected names. Longer rows are hashed as they stream.
 *
 * Accepted archives: custom format, uncompressed, format version 1.12 to
 * 1.15, whose byte layouts differ only in the fields the scanner handles.
 * pg_dump 15 writes 1.14 and pg_dump 16 writes 1.15. The byte layout is
 * specified in formats/FORMAT.md, "Table digests". The result is
 * the manifest's "contents" member (dumpscan_contents_to_json), which
 * restore/dbverify.h checks against a restored database. */
#ifndef STOWAGE_DUMPSCAN_H
#define STOWAGE_DUMPSCAN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/rowdigest.h"

/* Longest TOC string the scanner keeps (a tag, a COPY statement, a setval
 * call). Longer strings that it does not need, such as function bodies,
 * are skipped without being held. */
#define DUMPSCAN_STRING_MAX (1024u * 1024u)

struct dumpscan_table {
    char *schema;
    char *name;
    char *copy;            /* "COPY schema.name (cols) FROM stdin;", or NULL
                            * for a table without data in the dump, such as a
                            * partitioned table whose rows live in its partitions */
    uint64_t rows;         /* 0 when copy is NULL */
    char digest[ROWDIGEST_HEX_SIZE]; /* empty when copy is NULL */
};

struct dumpscan_sequence {
    char *schema;
    char *name;
    int has_value;         /* 0 when the dump has no SEQUENCE SET for it */
    int64_t value;         /* last_value */
    int is_called;
};

/* The contents of a dump. All strings and arrays are owned. */
struct dumpscan_contents {
    char *archive_version;     /* "1.14-0" */
    char *database;            /* database name from the archive header */
    char *server_version;      /* server version string from the header */
    char *pg_dump_version;     /* pg_dump version string from the header */
    char *encoding;            /* from the TOC ENCODING entry, e.g. "UTF8" */
    char *timezone;            /* session settings of the dump, as the caller */
    char *bytea_output;        /* declared them in struct dumpscan_options */
    char **schemas;
    size_t schema_count;
    char **extensions;
    size_t extension_count;
    rowdigest_algorithm table_digest_algorithm; /* of every tables[].digest */
    struct dumpscan_table *tables;         /* sorted by schema, then name */
    size_t table_count;
    struct dumpscan_sequence *sequences;   /* sorted by schema, then name */
    size_t sequence_count;
    uint64_t large_object_count;
    uint64_t large_object_bytes;
};

/* Session settings that pg_dump ran with and that the archive does not
 * record. pg_dump 15 sets DateStyle, IntervalStyle and extra_float_digits
 * itself, but takes TimeZone from PGTZ or the server and bytea_output from
 * the server, and both change the COPY text of timestamptz and bytea
 * columns. Verification sets the same values. NULL means the default. */
struct dumpscan_options {
    const char *timezone;      /* default "UTC": stowage runs pg_dump with PGTZ=UTC */
    const char *bytea_output;  /* default "hex" */
    int skip_row_digests;      /* 1: count rows without digests (tables[].digest stays
                                * empty), for a restore that only needs the observer */
    int skip_rows;             /* 1: do not read the rows at all (tables[].rows stays 0
                                * and the observer gets no rows), for a restore that
                                * only needs the output */
};

typedef struct dumpscan dumpscan;

/* Counts of the TOC's entries with data, passed to the observer when the
 * TOC ends. */
struct dumpscan_toc_summary {
    uint64_t toc_end_offset;      /* bytes of the header and the TOC: data blocks start here */
    size_t table_data_count;      /* TABLE DATA entries with data */
    size_t large_object_count;    /* BLOBS entries with data */
    size_t other_data_count;      /* other entries with data, not passed to the observer */
};

/* Receives the archive's table data as the scanner reads it, for a restore
 * that loads each table over COPY while the dump streams. Every callback
 * returns 0, or -1 with err set, which fails the scan. A callback may be
 * NULL. */
struct dumpscan_observer {
    void *context;
    /* The TOC is complete: contents lists the tables and sequences (with
     * their setval() values), and the data blocks follow. */
    int (*toc_end)(void *context, const struct dumpscan_toc_summary *summary,
                   const struct dumpscan_contents *contents, stow_error *err);
    /* The data block of table starts (table->copy is its COPY statement). */
    int (*table_begin)(void *context, const struct dumpscan_table *table, stow_error *err);
    /* COPY text rows of the open table, each ending in a newline. A row may
     * be split across calls, but the bytes of all calls of one table are
     * whole rows. The end marker "\." and the empty lines after it are left
     * out. */
    int (*table_rows)(void *context, const void *rows, size_t len, stow_error *err);
    /* The open table's data block ended after its last whole row. */
    int (*table_end)(void *context, stow_error *err);
};

/* Bytes of table data in one chunk of the output. pg_dump writes one
 * chunk per row, and pg_restore sends each chunk to the server as one
 * CopyData message. For short rows the server spends a good part of the
 * COPY on those messages. Restoring the pgbench_accounts rows of pgbench
 * scale 50 (97 bytes each) took 5 to 10% less time with the chunks
 * joined into 16, 64 or 256 KiB. */
#define DUMPSCAN_OUTPUT_CHUNK (32u * 1024u)

/* Receives the archive again as the scanner reads it, for pg_restore. The
 * bytes are the same, except that the chunks of each data block are cut
 * again into chunks of DUMPSCAN_OUTPUT_CHUNK bytes. Data offsets set in
 * the TOC are marked as not set, because they would point into the old
 * layout. Data arrives in pieces of up to 256 KiB, the last during
 * dumpscan_finish. */
struct dumpscan_output {
    void *context;
    int (*write)(void *context, const void *data, size_t len, stow_error *err);
};

/* Creates a scanner. options may be NULL for the defaults. */
int dumpscan_new(const struct dumpscan_options *options, dumpscan **out, stow_error *err);

/* Sets the observer (copied) before the first dumpscan_write. The scanner
 * keeps back at most the first two bytes of a row, to tell the end marker
 * from data, so its memory stays bounded. */
void dumpscan_set_observer(dumpscan *scanner, const struct dumpscan_observer *observer);

/* Sets the output (copied) before the first dumpscan_write. */
void dumpscan_set_output(dumpscan *scanner, const struct dumpscan_output *output);

/* Feeds archive bytes in any chunking. Fails (STOW_EXIT_FAILURE) on a
 * compressed, foreign or corrupt archive, naming the byte offset; after a
 * failure every later call fails too. */
int dumpscan_write(dumpscan *scanner, const void *data, size_t len, stow_error *err);

/* Ends the stream and passes the rest of the output on. Fails when it
 * ended inside the header, the TOC or a data block, or before the data
 * block of a TOC entry, naming the table. */
int dumpscan_finish(dumpscan *scanner, stow_error *err);

/* The contents, complete after a successful dumpscan_finish. Owned by the
 * scanner. */
const struct dumpscan_contents *dumpscan_contents(const dumpscan *scanner);

/* Builds the manifest's "contents" member of a finished scan. */
json_t *dumpscan_to_json(const dumpscan *scanner);

/* Accepts NULL. */
void dumpscan_free(dumpscan *scanner);

/* Builds the JSON form of contents (the shape is in formats/FORMAT.md). */
json_t *dumpscan_contents_to_json(const struct dumpscan_contents *contents);

/* Reads the JSON form back, validating every field. Fails with
 * STOW_EXIT_VERIFY naming the first invalid field. */
int dumpscan_contents_from_json(const json_t *json, struct dumpscan_contents **out,
                                stow_error *err);

/* Accepts NULL. */
void dumpscan_contents_free(struct dumpscan_contents *contents);

/* Writes schema.name for messages, double-quoting a part unless it is a
 * plain lower-case identifier. Truncates to size. */
void dumpscan_format_name(const char *schema, const char *name, char *out, size_t size);

/* Turns pg_dump's "COPY t (cols) FROM stdin;" into "COPY t (cols) TO STDOUT"
 * with the same table and column list. Returns a new string, or NULL when
 * copy does not have that form. */
char *dumpscan_copy_to_stdout(const char *copy);

#endif
