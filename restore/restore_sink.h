/* Feeds a backup's archive members into a database: globals through psql,
 * the dump through pg_restore's standard input, or with jobs > 1 in three
 * sections. pg_restore --section=pre-data creates the schema from a spool
 * file that contains the dump's header and TOC alone. Then the table data goes
 * over jobs COPY connections as the dump streams (copy_loader.h), and last
 * pg_restore --section=post-data --jobs builds the indexes and constraints.
 * Dumps that cannot be loaded that way are spooled whole, and pg_restore
 * --jobs reads the spool file after the whole backup was read and checked.
 * Used as the on_data callback of backup_reader_run. */
#ifndef STOWAGE_RESTORE_SINK_H
#define STOWAGE_RESTORE_SINK_H

#include <limits.h>

#include "common/buf.h"
#include "copy_loader.h"
#include "formats/dumpscan.h"
#include "pg/pgtools.h"
#include "spool.h"

struct restore_sink {
    const char *conninfo;         /* target connection (PG* variables for children) */
    const char *dbname;           /* target database name, for --dbname */
    int major;                    /* target server's major version */
    int with_globals;
    int clean;
    int no_owner;
    int jobs;                     /* pg_restore --jobs; 0 or 1 streams in one transaction */
    struct restore_spool *spool;  /* open spool file when jobs > 1, else NULL */
    int load_tables;              /* with spool: load the table data over COPY while the
                                   * dump streams, and spool the header and TOC alone */
    dumpscan *scanner;            /* parses the streaming dump: for the loader when
                                   * load_tables, else on its way to pg_restore */
    int toc_passed;               /* the TOC ended and the table data goes to loader */
    copy_loader *loader;
    stow_buf globals;             /* globals.sql, applied before the dump */
    int globals_applied;
    struct pg_child restore;      /* pg_restore, once started */
    int restore_started;
    int restore_began;            /* pg_restore was started, and may have changed the target */
    char restore_path[PATH_MAX];
    char psql_path[PATH_MAX];
    uint64_t dump_bytes;
    double parallel_restore_seconds;  /* wall time of pg_restore --jobs on the spool file
                                       * (both sections when load_tables) */
};

void restore_sink_init(struct restore_sink *sink);

/* members_data_fn: routes member data by name. */
int restore_sink_data(void *context, const char *name, uint64_t offset, const void *data,
                      size_t len, stow_error *err);

/* Waits for pg_restore after the last member, or with a spool file runs
 * it. Fails with pg_restore's errors. */
int restore_sink_finish(struct restore_sink *sink, stow_error *err);

/* Stops pg_restore if it runs (on the failure path) and frees the sink. */
void restore_sink_free(struct restore_sink *sink);

#endif
