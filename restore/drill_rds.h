/* The snapshot that an RDS drill restores: the newest copy that `stowage
 * replicate --snapshots` made in the replica region, and its recovery point.
 *
 * A copy counts when it is an available manual DB snapshot tagged
 * stowage:created-by=stowage and stowage:copied-from=ORIGINAL-ARN, the tags
 * that snapshot_copy writes. The recovery point is when the ORIGINAL
 * snapshot was taken, because a copy contains the data of its original. It is
 * read, in this order, from:
 *   1. OriginalSnapshotCreateTime, which the RDS API reference (DBSnapshot)
 *      defines as the time of the CreateDBSnapshot call, unchanged by
 *      copies. moto 5.2.1 returns it for copies too;
 *   2. the time in the original's name, stowage-SOURCE-YYYYMMDD-HHMMSS (UTC),
 *      taken from the stowage:copied-from tag. stowage snapshot create names
 *      a snapshot just before it sends CreateDBSnapshot, so this time is at
 *      or before the real one and the RPO comes out a few seconds too old;
 *   3. the copy's own SnapshotCreateTime, which is when the copy was made:
 *      the RPO then comes out too young by the time the copy took, and a
 *      warning says so.
 * The report names the source as recovery_point_basis. */
#ifndef STOWAGE_DRILL_RDS_H
#define STOWAGE_DRILL_RDS_H

#include <jansson.h>
#include <time.h>

#include "aws/rds.h"
#include "common/error.h"

#define DRILL_BASIS_ORIGINAL "OriginalSnapshotCreateTime"
#define DRILL_BASIS_NAME "name of the original snapshot"
#define DRILL_BASIS_COPY "SnapshotCreateTime of the copy"

struct drill_snapshot {
    struct rds_snapshot copy;   /* the snapshot copy restored */
    time_t recovery_point;      /* when the original snapshot was taken */
    const char *basis;          /* DRILL_BASIS_*: where recovery_point comes from */
};

/* Finds the newest snapshot copy of instance_id (NULL: of any instance) in
 * the client's region, newest by recovery point. Fails with STOW_EXIT_USAGE
 * when there is none, naming the region and `stowage replicate --snapshots`,
 * and when instance_id is NULL and copies of several instances exist. */
int drill_find_snapshot_copy(rds_client *client, const char *instance_id,
                             struct drill_snapshot *out, stow_error *err);

/* Sets recovery_point and basis from snapshot->copy, as described above.
 * Exposed for tests. */
void drill_snapshot_set_recovery_point(struct drill_snapshot *snapshot);

/* Returns the report member describing the copy (a new reference). */
json_t *drill_snapshot_json(const struct drill_snapshot *snapshot);

/* Accepts NULL. */
void drill_snapshot_free(struct drill_snapshot *snapshot);

#endif
