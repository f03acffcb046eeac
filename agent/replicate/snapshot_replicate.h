/* Replication of Stowage's RDS DB snapshots to the replica region.
 *
 * Every available DB snapshot in the source region that Stowage owns
 * (snapshot_is_stowage) and that is not itself a copy (no
 * stowage:copied-from tag) is copied with snapshot_copy, newest first,
 * under its default copy id "ID-REGION". A snapshot whose copy already
 * exists in the target region is not copied again: the run waits until the
 * copy is available and records its manifest in the replica repository
 * when an earlier, interrupted run did not. Automated snapshots, manual
 * snapshots without Stowage's tag, and cluster snapshots are never copied.
 * Each copy waits until it is available, so a run takes as long as RDS
 * needs to copy the new snapshots. */
#ifndef STOWAGE_SNAPSHOT_REPLICATE_H
#define STOWAGE_SNAPSHOT_REPLICATE_H

#include <jansson.h>
#include <stddef.h>

#include "aws/rds.h"
#include "common/error.h"
#include "rds/snapshot.h"
#include "storage/storage.h"

struct snapshot_replicate_options {
    const char *instance_id;  /* only snapshots of this instance; NULL: every instance */
    const char *kms_key_id;   /* KMS key of the target region; needed for encrypted snapshots */
    struct snapshot_wait wait;
    storage *replica;         /* records the copies' manifests; NULL: no record */
};

/* The outcome for one snapshot that Stowage owns. */
struct snapshot_replicate_item {
    char id[RDS_ID_MAX];        /* the snapshot in the source region */
    char copy_id[RDS_ID_MAX];   /* its copy in the target region */
    const char *action;         /* "copied", "present" or "failed"; static string */
    double seconds;             /* copying and waiting */
    stow_error error;           /* set when action is "failed" */
};

struct snapshot_replicate_result {
    struct snapshot_replicate_item *items;  /* owned */
    size_t count;
    size_t copied, present, failed;
    size_t skipped;     /* snapshots that are not Stowage's, copies, or not available */
};

/* Copies the snapshots described above from the source client's region to
 * the target client's region. Returns 0 when every snapshot has an
 * available copy. Otherwise it returns -1, and err names how many failed
 * and carries the exit code of the first failure. An interruption stops the
 * run at once. result is filled either way; free it with
 * snapshot_replicate_result_free. */
int snapshot_replicate_run(rds_client *source, rds_client *target,
                           const struct snapshot_replicate_options *options,
                           struct snapshot_replicate_result *result, stow_error *err);

void snapshot_replicate_result_free(struct snapshot_replicate_result *result);

/* Builds the JSON summary of a run (a new reference). */
json_t *snapshot_replicate_result_json(const struct snapshot_replicate_result *result,
                                       const rds_client *source, const rds_client *target);

#endif
