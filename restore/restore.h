/* Restores: a backup into a database (--target) or into a local scratch
 * instance (--scratch local), optionally verified against its manifest,
 * with a report of what was checked and how long each step took. */
#ifndef STOWAGE_RESTORE_H
#define STOWAGE_RESTORE_H

#include <jansson.h>

#include "catalog.h"
#include "storage/storage.h"

struct restore_options {
    const char *secret_key_path;
    const char *passphrase_file;
    const char *target_conninfo;  /* --target; NULL with scratch_local */
    int scratch_local;            /* restore into a throwaway local cluster */
    int verify;                   /* compare the restored database with the manifest */
    int clean;                    /* allow a target that already contains tables */
    int create;                   /* restore into a new database (new_database.h) */
    int with_globals;             /* apply roles and tablespaces first */
    int no_owner;                 /* pg_restore --no-owner --no-privileges */
    int keep;                     /* leave the scratch instance running */
    const char *report_path;      /* JSON report file, or NULL */
    int jobs;                     /* pg_restore --jobs; 0 or 1 streams in one transaction */
    const char *spool_directory;  /* --spool-dir for jobs > 1, or NULL for the default */
};

/* Maximum of --jobs: pg_restore's own maximum on Windows (MAXIMUM_WAIT_OBJECTS
 * in pg_restore.c). Each job is one more connection to the target server. */
#define RESTORE_JOBS_MAX 64
/* --jobs of restore --create when not given: the new database is renamed
 * into place only when complete, so a parallel restore costs nothing in
 * safety there. */
#define RESTORE_CREATE_JOBS 2

/* Runs the restore and prints the summary. Fails with STOW_EXIT_VERIFY
 * when verification finds a difference, after writing the report. With
 * options->verify the report is also stored as the backup's verification
 * record, when it passed or failed because of the backup: a check of its
 * data failed (STOW_EXIT_VERIFY), or the restore or verify step failed
 * (STOW_EXIT_FAILURE) without a full disk. A failure of the environment
 * (any other exit code, a failed scratch cluster, a full disk) is logged
 * as not recorded. */
int restore_run(storage *store, const struct catalog_entry *entry,
                const struct restore_options *options, stow_error *err);

/* Runs restore_run and also returns its report: *report receives a new
 * reference to the report's JSON document (free with json_decref), also
 * when the restore failed. */
int restore_run_report(storage *store, const struct catalog_entry *entry,
                       const struct restore_options *options, json_t **report, stow_error *err);

/* Reads the whole backup without restoring it: part checksums, decryption,
 * decompression, archive members and digests. */
int restore_verify_storage(storage *store, const struct catalog_entry *entry,
                           const char *secret_key_path, const char *passphrase_file,
                           stow_error *err);

/* Compares a live database with the backup's manifest. */
int restore_verify_against(const struct catalog_entry *entry, const char *conninfo,
                           const char *report_path, stow_error *err);

/* Writes the archive members as files under directory, which must be new
 * or empty (else STOW_EXIT_USAGE, with nothing written). */
int restore_extract(storage *store, const struct catalog_entry *entry,
                    const char *secret_key_path, const char *passphrase_file,
                    const char *directory, stow_error *err);

#endif
