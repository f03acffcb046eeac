/* DR drills: restore the newest backup of a repository, normally the
 * replica, into a local scratch instance, verify it against its manifest,
 * and report the recovery point and recovery time against objectives.
 *
 *   RPO  age of the restored backup (its started_at, when pg_dump took its
 *        snapshot) at the moment the drill started;
 *   RTO  wall time from the start of the drill to the end of the
 *        verification: choosing the backup, opening the key, creating the
 *        scratch instance, the restore and the verification. Removing the
 *        scratch instance afterwards is not counted.
 *
 * The restore is restore_run with a local scratch instance and
 * verification, so it also records its verification report in the
 * repository. The drill report (JSON, and Markdown for people) contains
 * each step's time, both measures, the objectives and the outcome. */
#ifndef STOWAGE_DRILL_H
#define STOWAGE_DRILL_H

#include <stdint.h>

#include "common/error.h"
#include "storage/storage.h"

struct drill_options {
    const char *name;             /* catalog name; NULL when the repository has one name */
    const char *secret_key_path;  /* a recipient's secret key, such as the escrow key */
    const char *passphrase_file;
    int64_t rpo_objective;        /* seconds; 0: none */
    int64_t rto_objective;        /* seconds; 0: none */
    const char *report_path;      /* JSON drill report, or NULL */
    const char *markdown_path;    /* Markdown drill report, or NULL */
    const char *region;           /* the repository's region, for the report; may be NULL */
};

/* Runs the drill and prints its summary; writes the reports also when the
 * drill fails. Fails with the restore's exit code when the restore fails
 * (STOW_EXIT_VERIFY when the restored database differs from the manifest),
 * else with STOW_EXIT_OBJECTIVE when the RPO or RTO objective is missed. */
int drill_run(storage *store, const struct drill_options *options, stow_error *err);

#endif
