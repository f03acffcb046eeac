/* RDS scratch instances: throwaway instances restored from a snapshot or
 * to a point in time, verified over libpq and deleted, and the cleanup of
 * the ones a killed run left behind.
 *
 * A scratch instance is named SCRATCH_RDS_ID_PREFIX and 12 random hex
 * digits, is never publicly accessible, and carries the tags
 * stowage:scratch=true, stowage:expires-at=RFC 3339 UTC time (creation plus
 * the time to live, default 6 hours), stowage:created-by=stowage and
 * stowage:source=SNAPSHOT-OR-INSTANCE. Only instances with the scratch tag
 * are ever deleted (aws/rds.h, rds_delete_scratch_instance), always without
 * a final snapshot.
 *
 * The verified restore itself (snapshot_restore.c) runs as named steps and
 * deletes the instance on success, on failure and after SIGINT or SIGTERM
 * (common/interrupt.h), unless asked to keep it. A run killed outright
 * leaves the instance until scratch_rds_cleanup_expired finds it past its
 * expiry. */
#ifndef STOWAGE_SCRATCH_RDS_H
#define STOWAGE_SCRATCH_RDS_H

#include <stdint.h>
#include <time.h>

#include "aws/rds.h"
#include "common/error.h"
#include "rds/snapshot.h"
#include "storage/storage.h"

#define SCRATCH_RDS_ID_PREFIX "stowage-scratch-"
#define SCRATCH_RDS_DEFAULT_TTL (6 * 3600)            /* seconds */
#define SCRATCH_RDS_DEFAULT_MATCH_WINDOW (24 * 3600)  /* seconds */

struct scratch_rds_options {
    const char *instance_class;          /* NULL: as the source */
    const char *subnet_group;            /* NULL: as the source, or the default VPC */
    const char *parameter_group;         /* NULL: the engine's default */
    const char *const *security_groups;  /* VPC security group ids */
    size_t security_group_count;
    int64_t ttl_seconds;                 /* 0: SCRATCH_RDS_DEFAULT_TTL */
    int iam_auth;                        /* enable RDS IAM database authentication */
    struct snapshot_wait wait;
};

struct scratch_rds {
    char id[RDS_ID_MAX];
    char source[RDS_ID_MAX];       /* snapshot id, or the source instance id */
    time_t expires_at;
    int requested;                 /* 1 once a restore call was sent: the instance may exist */
    struct rds_instance instance;  /* the last description */
};

/* Restores snapshot_id into a new scratch instance (without waiting). */
int scratch_rds_restore_snapshot(rds_client *client, const char *snapshot_id,
                                 const struct scratch_rds_options *options,
                                 struct scratch_rds *scratch, stow_error *err);

/* Restores source_instance as of at (0: its latest restorable time) into a
 * new scratch instance (without waiting). */
int scratch_rds_restore_point_in_time(rds_client *client, const char *source_instance,
                                      time_t at, const struct scratch_rds_options *options,
                                      struct scratch_rds *scratch, stow_error *err);

/* Waits until the scratch instance is available. */
int scratch_rds_wait(rds_client *client, struct scratch_rds *scratch,
                     const struct scratch_rds_options *options, stow_error *err);

/* Deletes the scratch instance without a final snapshot. An instance that
 * does not exist (never created, or already gone) is success. */
int scratch_rds_remove(rds_client *client, struct scratch_rds *scratch, stow_error *err);

/* Accepts NULL. */
void scratch_rds_free(struct scratch_rds *scratch);

/* --- cleanup of leaked instances ----------------------------------------------- */

enum scratch_rds_cleanup_action {
    SCRATCH_RDS_KEPT = 0,      /* not expired yet */
    SCRATCH_RDS_DELETED,
    SCRATCH_RDS_WOULD_DELETE,  /* dry run */
    SCRATCH_RDS_DELETE_FAILED,
    SCRATCH_RDS_NO_EXPIRY      /* scratch tag without a readable expires-at: kept */
};

struct scratch_rds_cleanup_entry {
    char id[RDS_ID_MAX];
    char status[RDS_FIELD_MAX];
    time_t expires_at;         /* 0 when the tag is missing or invalid */
    enum scratch_rds_cleanup_action action;
};

struct scratch_rds_cleanup {
    struct scratch_rds_cleanup_entry *entries;  /* one per scratch instance found */
    size_t count;
    size_t deleted;
    size_t failed;
};

/* Deletes every scratch instance of the client's region whose expires-at
 * tag is before now (nothing with dry_run). Instances without the scratch
 * tag are not looked at. A failed deletion is logged and counted, the others
 * go on, and the call then fails naming the count. */
int scratch_rds_cleanup_expired(rds_client *client, time_t now, int dry_run,
                                struct scratch_rds_cleanup *result, stow_error *err);

void scratch_rds_cleanup_free(struct scratch_rds_cleanup *result);

/* --- verified restores from RDS (snapshot_restore.c) ------------------------------ */

struct snapshot_restore_options {
    const char *snapshot_id;        /* restore this DB snapshot, or ... */
    const char *source_instance;    /* ... this instance at point_in_time */
    time_t point_in_time;           /* 0: the latest restorable time */
    struct scratch_rds_options scratch;
    const char *connect_host;       /* "HOST:PORT" or "HOST"; NULL: the instance endpoint */
    const char *db_user;            /* NULL: the instance's master user name */
    int db_iam_auth;                /* sign in with RDS IAM tokens (pgtools.h), with
                                       sslmode=require unless the host is loopback; the
                                       scratch instance gets IAM authentication enabled */
    const char *const *databases;   /* databases to verify; none: every database found */
    size_t database_count;
    const char *catalog_name;       /* narrows the search for a matching logical backup */
    int64_t match_window_seconds;   /* 0: SCRATCH_RDS_DEFAULT_MATCH_WINDOW */
    int verify;                     /* check databases, schemas, tables and row counts */
    int amcheck;                    /* also run bt_index_check on every btree index */
    int keep;                       /* leave the scratch instance running */
    const char *report_path;        /* JSON report file, or NULL */
};

/* Restores into a scratch instance, verifies it, writes the report and
 * removes the instance. store (may be NULL) is searched for the logical
 * backup of each database taken closest to the snapshot (or point in time)
 * within the match window. The backup's tables must exist, and their row
 * counts are compared and reported as an approximate match, because the two
 * were taken at different times. With a store and a snapshot, the report is
 * also kept at snapshots/SOURCE/SNAPSHOT-ID/verifications/.
 * Fails with STOW_EXIT_VERIFY when a database, schema or table is missing
 * or amcheck finds corruption, and with STOW_EXIT_DATABASE when the
 * instance cannot be reached. */
int snapshot_restore_run(rds_client *client, storage *store,
                         const struct snapshot_restore_options *options, stow_error *err);

/* Runs snapshot_restore_run and, when report is not NULL, stores a new
 * reference to the report document in *report (also when the run fails). */
int snapshot_restore_run_report(rds_client *client, storage *store,
                                const struct snapshot_restore_options *options, json_t **report,
                                stow_error *err);

#endif
