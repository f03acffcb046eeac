/* RDS snapshots as Stowage manages them: names, creation and waiting,
 * copies to another region, expiry by retention, and the snapshot
 * manifests recorded in a repository.
 *
 * Ownership. Stowage owns a snapshot when it is a manual snapshot tagged
 * RDS_TAG_CREATED_BY=stowage. Expiry deletes only owned snapshots:
 * automated snapshots (SnapshotType "automated", or an id starting with
 * "rds:") and manual snapshots without the tag are never deleted, and
 * neither are snapshots that are not "available".
 *
 * Waiting. Waits poll the describe call: the first delay is poll_ms, each
 * later one doubles up to SNAPSHOT_POLL_MAX_MS, and each is drawn between
 * half and all of that value (jitter). A wait ends when the resource is
 * available, reaches a failure status, disappears, the deadline passes
 * (STOW_EXIT_FAILURE naming the status and the timeout) or SIGINT/SIGTERM
 * arrives (STOW_EXIT_INTERRUPTED).
 *
 * Manifests. A snapshot that Stowage creates or copies is recorded, when
 * a repository is given, at snapshots/SOURCE/SNAPSHOT-ID/manifest.json
 * (formats/FORMAT.md, "Snapshot manifests"). These manifests are not
 * backups: the backup catalog reads only backups/. */
#ifndef STOWAGE_RDS_SNAPSHOT_H
#define STOWAGE_RDS_SNAPSHOT_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "aws/rds.h"
#include "common/error.h"
#include "storage/storage.h"

#define SNAPSHOT_CATALOG_DIR "snapshots"
#define SNAPSHOT_MANIFEST_FILE "manifest.json"
#define SNAPSHOT_VERIFICATIONS_DIR "verifications"
#define SNAPSHOT_MANIFEST_KIND "snapshot"

#define SNAPSHOT_DEFAULT_WAIT_TIMEOUT 3600 /* seconds */
#define SNAPSHOT_DEFAULT_POLL_MS 10000
#define SNAPSHOT_POLL_MAX_MS 60000

#define SNAPSHOT_KEY_MAX 1024

struct snapshot_wait {
    int64_t timeout_seconds; /* deadline, counted from the start of the wait */
    unsigned poll_ms;        /* first delay between two checks */
};

void snapshot_wait_default(struct snapshot_wait *wait);

/* Writes "stowage-SOURCE-YYYYMMDD-HHMMSS" (UTC) for a snapshot of source_id. */
void snapshot_name(const char *source_id, time_t when, char out[RDS_ID_MAX]);

/* Writes the default id of a copy of snapshot_id in region: the id with
 * "-REGION" appended, made a valid identifier (an automated snapshot's
 * "rds:" becomes "rds-"). */
void snapshot_copy_name(const char *snapshot_id, const char *region, char out[RDS_ID_MAX]);

/* Returns 1 for automated snapshots (type "automated" or an "rds:" id). */
int snapshot_is_automated(const struct rds_snapshot *snapshot);

/* Returns 1 for snapshots that Stowage owns (see the header comment). */
int snapshot_is_stowage(const struct rds_snapshot *snapshot);

/* Waits until the snapshot is available; *out is its last description. */
int snapshot_wait_available(rds_client *client, int cluster, const char *snapshot_id,
                            const struct snapshot_wait *wait, struct rds_snapshot *out,
                            stow_error *err);

/* Waits until the instance is available; *out is its last description. */
int snapshot_wait_instance_available(rds_client *client, const char *instance_id,
                                     const struct snapshot_wait *wait,
                                     struct rds_instance *out, stow_error *err);

/* A snapshot that a command created or copied, as it was once available. */
struct snapshot_result {
    struct rds_snapshot snapshot;
    char region[RDS_FIELD_MAX];
    time_t requested_at;
    time_t available_at;
    char manifest_key[SNAPSHOT_KEY_MAX]; /* "" when no repository was given */
    /* The source of a copy; all "" for a snapshot that is not a copy. */
    char copied_from_id[RDS_ID_MAX];
    char copied_from_arn[RDS_ARN_MAX];
    char copied_from_region[RDS_FIELD_MAX];
};

void snapshot_result_free(struct snapshot_result *result);

struct snapshot_create_options {
    const char *instance_id;   /* exactly one of instance_id and cluster_id */
    const char *cluster_id;
    struct snapshot_wait wait;
    storage *store;            /* records the manifest there; NULL: no record */
};

/* Creates a tagged snapshot named by snapshot_name, waits until it is
 * available and records it. When the wait fails, a DB snapshot is deleted
 * (best effort) so that retried runs do not pile them up. A cluster
 * snapshot is left in place with a warning, because this client has no
 * DeleteDBClusterSnapshot. */
int snapshot_create(rds_client *client, const struct snapshot_create_options *options,
                    struct snapshot_result *out, stow_error *err);

struct snapshot_copy_options {
    const char *snapshot_id;   /* a DB snapshot in the source client's region */
    const char *target_id;     /* NULL: snapshot_copy_name */
    const char *kms_key_id;    /* key in the target region; required for encrypted sources */
    struct snapshot_wait wait;
    storage *store;            /* records the copy's manifest there; NULL: no record */
};

/* Copies a DB snapshot into the target client's region (with a pre-signed
 * URL when the regions differ), tags the copy as Stowage's, waits until it
 * is available and records it. A copy whose wait fails is deleted (best
 * effort). */
int snapshot_copy(rds_client *source, rds_client *target,
                  const struct snapshot_copy_options *options, struct snapshot_result *out,
                  stow_error *err);

/* --- expiry --------------------------------------------------------------- */

enum snapshot_verdict {
    SNAPSHOT_DELETE = 0,
    SNAPSHOT_KEEP_NEWEST,        /* among the keep_last newest owned snapshots */
    SNAPSHOT_KEEP_WITHIN,        /* younger than keep_within */
    SNAPSHOT_KEEP_AUTOMATED,     /* automated: never deleted */
    SNAPSHOT_KEEP_NOT_OURS,      /* manual without Stowage's tag: never deleted */
    SNAPSHOT_KEEP_NOT_AVAILABLE  /* creating, copying or failed: not counted, not deleted */
};

struct snapshot_expiry_policy {
    long keep_last;              /* at least 1 */
    int64_t keep_within_seconds; /* 0: no age rule */
    time_t now;
};

/* Decides each snapshot's fate. items must be sorted newest first (see
 * snapshot_sort_newest_first); verdicts has count entries. */
void snapshot_plan_expiry(const struct rds_snapshot *items, size_t count,
                          const struct snapshot_expiry_policy *policy,
                          enum snapshot_verdict *verdicts);

/* Sorts by creation time, newest first, then by id. */
void snapshot_sort_newest_first(struct rds_snapshot *items, size_t count);

/* Returns a short text for a verdict ("delete", "keep (newest)", ...). */
const char *snapshot_verdict_text(enum snapshot_verdict verdict);

struct snapshot_expire_options {
    const char *instance_id;
    struct snapshot_expiry_policy policy;
    int dry_run;                 /* decide and report, delete nothing */
    storage *store;              /* also delete the manifests of deleted snapshots */
};

/* The snapshots of one instance with their verdicts and outcomes. */
struct snapshot_expiry {
    struct rds_snapshot_list snapshots;  /* newest first */
    enum snapshot_verdict *verdicts;
    int *deleted;                        /* 1 deleted, -1 deletion failed, 0 kept */
    size_t delete_count;                 /* verdicts SNAPSHOT_DELETE */
    size_t failed_count;
};

/* Lists the instance's snapshots, plans and (unless dry_run) deletes. A
 * failed deletion is logged and counted, and the others go on; the call
 * then fails naming the count. */
int snapshot_expire(rds_client *client, const struct snapshot_expire_options *options,
                    struct snapshot_expiry *out, stow_error *err);

void snapshot_expiry_free(struct snapshot_expiry *expiry);

/* --- manifests --------------------------------------------------------------- */

/* Builds "snapshots/SOURCE/SNAPSHOT-ID/FILE". */
int snapshot_catalog_key(char *out, size_t size, const char *source_id,
                         const char *snapshot_id, const char *file);

/* Builds the manifest document of result. */
json_t *snapshot_manifest_new(const struct snapshot_result *result);

/* Writes the manifest of result (create-only) and sets result->manifest_key. */
int snapshot_manifest_store(storage *store, struct snapshot_result *result, stow_error *err);

#endif
