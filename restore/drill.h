/* DR drills: restore the newest backup of a repository, normally the
 * replica, into a local scratch instance, verify it against its manifest,
 * and report the recovery point and recovery time against objectives. An
 * RDS drill restores the newest RDS snapshot copy in the replica region
 * (drill_rds.h) into an RDS scratch instance instead.
 *
 *   RPO  age of the recovery point at the moment the drill started: the
 *        restored backup's started_at (when pg_dump took its snapshot), or
 *        the time the original of the restored snapshot copy was taken;
 *   RTO  wall time from the start of the drill to the end of the
 *        verification: choosing the backup or snapshot, opening the key,
 *        creating the scratch instance, the restore and the verification.
 *        Removing the scratch instance afterwards is not counted.
 *
 * The local restore is restore_run with a local scratch instance and
 * verification. The RDS restore is snapshot_restore_run with verification.
 * Each also records its report in the repository. The drill report (JSON,
 * and Markdown for people) contains each step's time, both measures, the
 * objectives and the outcome. */
#ifndef STOWAGE_DRILL_H
#define STOWAGE_DRILL_H

#include <stdint.h>

#include "common/error.h"
#include "scratch_rds.h"
#include "signature.h"
#include "storage/storage.h"

struct drill_options {
    const char *name;             /* catalog name; NULL when the repository has one name */
    const char *secret_key_path;  /* a recipient's secret key, such as the escrow key */
    const char *passphrase_file;
    const struct signature_trust *trust; /* signing keys the manifest must be signed by */
    int64_t rpo_objective;        /* seconds; 0: none */
    int64_t rto_objective;        /* seconds; 0: none */
    const char *report_path;      /* JSON drill report, or NULL */
    const char *markdown_path;    /* Markdown drill report, or NULL */
    const char *region;           /* the repository's region, for the report; may be NULL */
    int jobs;                     /* pg_restore --jobs of a local drill; 0 or 1 streams */
    const char *spool_directory;  /* --spool-dir for jobs > 1, or NULL for the default */

    /* RDS drills. */
    rds_client *rds;              /* client of the replica region; NULL: a local drill */
    const char *instance_id;      /* source instance of the copies; NULL: the only one */
    /* Connection, scratch instance settings and databases of the RDS
     * restore; the drill sets the snapshot, verification and catalog name. */
    struct snapshot_restore_options rds_restore;
};

/* Runs the drill and prints its summary; writes the reports also when the
 * drill fails. Fails with STOW_EXIT_FAILURE when the repository contains no
 * complete backup, with the restore's exit code when the restore fails
 * (STOW_EXIT_VERIFY when the restored database differs from the manifest
 * or misses a database, schema or table; STOW_EXIT_INTERRUPTED after
 * SIGINT or SIGTERM, once the scratch instance is removed), else with
 * STOW_EXIT_OBJECTIVE when the RPO or RTO objective is missed. */
int drill_run(storage *store, const struct drill_options *options, stow_error *err);

/* Reports a drill that failed before drill_run could start, because the
 * repository or the RDS client of the replica region could not be opened:
 * writes the reports and prints the summary with failure as the outcome.
 * repository is the repository's URL; rds_region is the replica region of
 * an RDS drill and NULL for a local drill. */
void drill_report_unstarted(const char *repository, const char *rds_region,
                            const struct drill_options *options, const stow_error *failure);

#endif
