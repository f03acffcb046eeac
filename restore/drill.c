/* The drill flow, its outcome and its JSON report document. */
#include "drill.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "common/duration.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "common/metrics.h"
#include "drill_rds.h"
#include "drill_report.h"
#include "restore.h"

/* Seconds by which a recovery point may lie after the drill's start, as
 * clocks of two hosts differ, before its age counts as unmeasurable. */
#define DRILL_CLOCK_SKEW_SECONDS 300

#define DRILL_REPORT_FORMAT "stowage-drill-report"
#define DRILL_REPORT_VERSION 1

struct drill {
    storage *store;                    /* NULL when the repository could not be opened */
    const struct drill_options *options;
    const char *repository;            /* the repository's URL */
    int rds;                           /* 1 for a drill of an RDS snapshot copy */
    const char *region;                /* for the report: the RDS or repository region */
    struct timespec started;           /* monotonic */
    time_t started_at;                 /* wall clock */
    struct catalog catalog;
    const struct catalog_entry *entry; /* the backup restored by a local drill */
    struct drill_snapshot snapshot;    /* the snapshot copy restored by an RDS drill */
    int selected;                      /* 1 once the backup or snapshot copy is chosen */
    json_t *steps;                     /* owned */
    json_t *restore_report;            /* owned; NULL when no restore ran */
    stow_error restore_err;
    double rto_seconds;                /* valid when the restore passed */
    long long rpo_seconds;             /* valid when selected */
    int interrupted_by;                /* the signal that interrupted the drill, or 0 */
};

static double seconds_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void add_step(struct drill *drill, const char *step, double seconds, const char *status)
{
    json_array_append_new(drill->steps, json_pack("{s:s, s:f, s:s}", "step", step, "seconds",
                                                  seconds, "status", status));
}

/* --- the steps ------------------------------------------------------------ */

/* Finds the newest backup. A repository without one fails the drill with
 * STOW_EXIT_FAILURE: the replica cannot be restored, which is a failed
 * drill rather than bad usage. */
static int find_newest_backup(struct drill *drill, stow_error *err)
{
    const char *name = drill->options->name;

    if (catalog_load(drill->store, name, &drill->catalog, err) != 0)
        return -1;
    if (drill->catalog.count == 0 && drill->catalog.broken == 0) {
        stow_fail(err, STOW_EXIT_FAILURE, "no complete backup%s%s in %s: there is nothing to "
                  "restore", name != NULL ? " of " : "", name != NULL ? name : "",
                  drill->repository);
        stow_error_hint(err, "check --repo and --name, and that stowage replicate has copied "
                             "a backup there");
        return -1;
    }
    return catalog_resolve(&drill->catalog, "latest", NULL, name, &drill->entry, err);
}

static int select_backup(struct drill *drill, stow_error *err)
{
    struct timespec started;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &started);
    rc = find_newest_backup(drill, err);
    if (rc == 0)
        rc = signature_check_manifest(&drill->entry->manifest, drill->entry->manifest_key,
                                      drill->options->trust, err);
    add_step(drill, "select-backup", seconds_since(&started), rc == 0 ? "ok" : "failed");
    if (rc != 0)
        return -1;
    drill->selected = 1;
    drill->rpo_seconds = (long long)(drill->started_at - drill->entry->manifest.started_at);
    stow_log_info("drill: restoring backup %s of %s from %s, taken %lld s before the drill",
                  drill->entry->manifest.id, drill->entry->manifest.name,
                  drill->repository, drill->rpo_seconds);
    return 0;
}

static int select_snapshot(struct drill *drill, stow_error *err)
{
    const struct drill_options *options = drill->options;
    struct timespec started;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &started);
    rc = drill_find_snapshot_copy(options->rds, options->instance_id, &drill->snapshot, err);
    add_step(drill, "select-snapshot", seconds_since(&started), rc == 0 ? "ok" : "failed");
    if (rc != 0)
        return -1;
    drill->selected = 1;
    drill->rpo_seconds = (long long)(drill->started_at - drill->snapshot.recovery_point);
    stow_log_info("drill: restoring snapshot copy %s of instance %s in %s, taken %lld s before "
                  "the drill (from the %s)", drill->snapshot.copy.id,
                  drill->snapshot.copy.source_id, rds_client_region(options->rds),
                  drill->rpo_seconds, drill->snapshot.basis);
    return 0;
}

/* Returns the time of the restore report's step named step, or 0. */
static double restore_step_seconds(const json_t *report, const char *step)
{
    json_t *entry;
    size_t index;

    json_array_foreach(json_object_get(report, "steps"), index, entry) {
        if (strcmp(json_string_value(json_object_get(entry, "step")), step) == 0)
            return json_real_value(json_object_get(entry, "seconds"));
    }
    return 0.0;
}

/* Takes the restore's steps into the drill's. The time up to the end of
 * the verification, without the removal step, is the RTO. */
static void take_restore_steps(struct drill *drill, const char *removal_step)
{
    json_t *step;
    size_t index;

    drill->rto_seconds = seconds_since(&drill->started) -
                         restore_step_seconds(drill->restore_report, removal_step);
    json_array_foreach(json_object_get(drill->restore_report, "steps"), index, step)
        json_array_append(drill->steps, step);
}

/* Restores into a local scratch instance with verification. */
static void restore_backup(struct drill *drill)
{
    struct restore_options restore = {0};
    int rc;

    restore.secret_key_path = drill->options->secret_key_path;
    restore.passphrase_file = drill->options->passphrase_file;
    restore.scratch_local = 1;
    restore.verify = 1;
    restore.jobs = drill->options->jobs;
    restore.spool_directory = drill->options->spool_directory;
    rc = restore_run_report(drill->store, drill->entry, &restore, &drill->restore_report,
                            &drill->restore_err);
    take_restore_steps(drill, "scratch-remove");
    if (rc != 0)
        stow_log_info("drill: the restore of backup %s failed", drill->entry->manifest.id);
}

/* Restores the snapshot copy into an RDS scratch instance with
 * verification against the repository's logical backups. */
static void restore_snapshot(struct drill *drill)
{
    const struct drill_options *options = drill->options;
    struct snapshot_restore_options restore = options->rds_restore;
    int rc;

    restore.snapshot_id = drill->snapshot.copy.id;
    restore.source_instance = NULL;
    restore.catalog_name = options->name;
    restore.verify = 1;
    restore.keep = 0;
    restore.report_path = NULL;
    rc = snapshot_restore_run_report(options->rds, drill->store, &restore,
                                     &drill->restore_report, &drill->restore_err);
    take_restore_steps(drill, "scratch-delete");
    if (rc != 0)
        stow_log_info("drill: the restore of snapshot copy %s failed", drill->snapshot.copy.id);
}

/* --- objectives and the report -------------------------------------------- */

/* {"measured_seconds", "objective_seconds", "met", "not_measured_reason"};
 * measured is JSON null when not_measured_reason is set, and met is null
 * without an objective or without a measurement. */
static json_t *measure_json(json_t *measured, int64_t objective, int met,
                            const char *not_measured_reason)
{
    int judged = objective > 0 && !json_is_null(measured);

    return json_pack("{s:o, s:o, s:o, s:o}", "measured_seconds", measured, "objective_seconds",
                     objective > 0 ? json_integer(objective) : json_null(), "met",
                     judged ? json_boolean(met) : json_null(), "not_measured_reason",
                     json_is_null(measured) ? json_string(not_measured_reason) : json_null());
}

static int restore_passed(const struct drill *drill)
{
    return drill->selected && drill->restore_report != NULL &&
           !stow_error_is_set(&drill->restore_err);
}

/* Returns 1 when the recovery point lies after the drill's start by more
 * than a clock difference between hosts: the clock that dated it was
 * wrong, and its age measures nothing. */
static int rpo_in_future(const struct drill *drill)
{
    return drill->rpo_seconds < -DRILL_CLOCK_SKEW_SECONDS;
}

/* An interrupted drill measures nothing: the signal may have cut the
 * restore or the verification short at any point. */
static int rpo_measured(const struct drill *drill)
{
    return drill->selected && drill->interrupted_by == 0 && !rpo_in_future(drill);
}

static int rto_measured(const struct drill *drill)
{
    return restore_passed(drill) && drill->interrupted_by == 0;
}

/* Writes why a measure is null into out. */
static void describe_not_measured(const struct drill *drill, const char *missing, char *out,
                                  size_t size)
{
    if (drill->interrupted_by != 0)
        snprintf(out, size, "the drill was interrupted by %s",
                 stow_signal_name(drill->interrupted_by));
    else
        snprintf(out, size, "%s", missing);
}

/* Without an objective nothing can be missed, unless the drill was
 * interrupted. */
static int rpo_met(const struct drill *drill)
{
    if (drill->options->rpo_objective <= 0)
        return drill->selected && drill->interrupted_by == 0;
    return rpo_measured(drill) &&
           drill->rpo_seconds <= (long long)drill->options->rpo_objective;
}

static int rto_met(const struct drill *drill)
{
    return rto_measured(drill) && (drill->options->rto_objective <= 0 ||
                                     drill->rto_seconds <= (double)drill->options->rto_objective);
}

static json_t *backup_json(const struct drill *drill)
{
    const struct manifest *manifest;

    if (drill->entry == NULL)
        return json_null();
    manifest = &drill->entry->manifest;
    return json_pack("{s:s, s:s, s:s, s:O, s:O, s:I, s:b}", "id", manifest->id, "name",
                     manifest->name, "database", manifest->database, "started_at",
                     json_object_get(manifest->document, "started_at"), "finished_at",
                     json_object_get(manifest->document, "finished_at"), "stored_bytes",
                     (json_int_t)manifest->stored_bytes, "encrypted", manifest->encrypted);
}

/* The verification outcome: the local restore's own member, or for an RDS
 * restore {"passed", "difference_count", "differences"} made from its
 * problems. null when the verification did not finish. */
static json_t *verification_json(const struct drill *drill)
{
    json_t *problems = json_object_get(drill->restore_report, "problems");

    if (!drill->rds) {
        json_t *verification = json_object_get(drill->restore_report, "verification");

        return verification != NULL ? json_incref(verification) : json_null();
    }
    if (drill->restore_report == NULL || (stow_error_is_set(&drill->restore_err) &&
                                          drill->restore_err.exit_code != STOW_EXIT_VERIFY))
        return json_null();
    return json_pack("{s:b, s:I, s:O}", "passed", !stow_error_is_set(&drill->restore_err),
                     "difference_count", (json_int_t)json_array_size(problems), "differences",
                     problems != NULL ? problems : json_null());
}

static json_t *definitions_json(const struct drill *drill)
{
    const char *rpo = drill->rds
                          ? "age of the recovery point of the restored snapshot copy (when its "
                            "original snapshot was taken) when the drill started"
                          : "age of the restored backup's started_at when the drill started";

    return json_pack("{s:s, s:s}", "rpo", rpo, "rto",
                     "time from the start of the drill to the end of the verification; "
                     "removing the scratch instance is not counted");
}

static json_t *build_report(const struct drill *drill, const char *result, const stow_error *outcome)
{
    const struct drill_options *options = drill->options;
    char rpo_reason[192];
    char rto_reason[192];
    json_t *report;

    report = json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:o, s:o}", "format",
                       DRILL_REPORT_FORMAT, "format_version", DRILL_REPORT_VERSION, "scratch",
                       drill->rds ? "rds" : "local", "repository", drill->repository, "region",
                       drill->region ? json_string(drill->region) : json_null(), "started_at",
                       manifest_time_json(drill->started_at), "finished_at",
                       manifest_time_json(time(NULL)), "backup", backup_json(drill));
    if (drill->rds)
        json_object_set_new(report, "snapshot", drill->selected
                                                    ? drill_snapshot_json(&drill->snapshot)
                                                    : json_null());
    json_object_set(report, "steps", drill->steps);
    if (drill->selected && rpo_in_future(drill))
        snprintf(rpo_reason, sizeof rpo_reason, "the recovery point is dated %lld s after the "
                 "drill started: the clock that dated it was wrong", -drill->rpo_seconds);
    else
        describe_not_measured(drill, drill->rds ? "no snapshot copy was selected"
                                                : "no backup was selected",
                              rpo_reason, sizeof rpo_reason);
    json_object_set_new(report, "rpo",
                        measure_json(rpo_measured(drill) ? json_integer(drill->rpo_seconds)
                                                         : json_null(),
                                     options->rpo_objective, rpo_met(drill), rpo_reason));
    describe_not_measured(drill, "the verified restore did not pass", rto_reason,
                          sizeof rto_reason);
    json_object_set_new(report, "rto",
                        measure_json(rto_measured(drill) ? json_real(drill->rto_seconds)
                                                         : json_null(),
                                     options->rto_objective, rto_met(drill), rto_reason));
    json_object_set_new(report, "definitions", definitions_json(drill));
    json_object_set_new(report, "verification", verification_json(drill));
    json_object_set(report, "restore_report",
                    drill->restore_report ? drill->restore_report : json_null());
    json_object_set_new(report, "result", json_string(result));
    json_object_set_new(report, "exit_code", json_integer(outcome->exit_code));
    if (stow_error_is_set(outcome))
        json_object_set_new(report, "error", json_string(outcome->message));
    return report;
}

static const char *failed_result(const stow_error *err)
{
    return err->exit_code == STOW_EXIT_INTERRUPTED ? "interrupted" : "failed";
}

/* Takes the step's own interruption error where there is one, so that the
 * report names the step that the signal stopped. A signal that came after
 * the restore, or during a step that does not watch for one, fails the
 * drill with STOW_EXIT_INTERRUPTED all the same. */
static const char *judge_interrupted(const struct drill *drill, stow_error *outcome,
                                     const stow_error *select_err)
{
    if (select_err->exit_code == STOW_EXIT_INTERRUPTED)
        *outcome = *select_err;
    else if (drill->restore_err.exit_code == STOW_EXIT_INTERRUPTED)
        *outcome = drill->restore_err;
    else
        stow_fail_interrupted(outcome, "the drill");
    return "interrupted";
}

/* Decides the outcome: an interruption first, then the restore's failure,
 * then the objectives. */
static const char *judge(const struct drill *drill, stow_error *outcome, stow_error *select_err)
{
    char objective[32];

    if (drill->interrupted_by != 0)
        return judge_interrupted(drill, outcome, select_err);
    if (stow_error_is_set(select_err)) {
        *outcome = *select_err;
        return failed_result(outcome);
    }
    if (!restore_passed(drill)) {
        *outcome = drill->restore_err;
        return failed_result(outcome);
    }
    if (!rpo_met(drill) && rpo_in_future(drill)) {
        stow_fail(outcome, STOW_EXIT_OBJECTIVE,
                  "the drill cannot measure its RPO: %s %s is dated %lld s after the drill "
                  "started",
                  drill->rds ? "the recovery point of snapshot copy" : "backup",
                  drill->rds ? drill->snapshot.copy.id : drill->entry->manifest.id,
                  -drill->rpo_seconds);
        stow_error_hint(outcome, "the clock of the host that took it was probably wrong; fix "
                                 "that clock and take a new backup");
        return "objective missed";
    }
    if (!rpo_met(drill)) {
        stow_duration_format(drill->options->rpo_objective, objective, sizeof objective);
        stow_fail(outcome, STOW_EXIT_OBJECTIVE,
                  "the drill missed its RPO objective: %s %s was %lld s old when the drill "
                  "started, the objective is %s",
                  drill->rds ? "the recovery point of snapshot copy" : "backup",
                  drill->rds ? drill->snapshot.copy.id : drill->entry->manifest.id,
                  drill->rpo_seconds, objective);
        return "objective missed";
    }
    if (!rto_met(drill)) {
        stow_duration_format(drill->options->rto_objective, objective, sizeof objective);
        stow_fail(outcome, STOW_EXIT_OBJECTIVE,
                  "the drill missed its RTO objective: the verified restore took %.1f s, the "
                  "objective is %s",
                  drill->rto_seconds, objective);
        return "objective missed";
    }
    return "passed";
}

/* Records the drill's RPO, RTO and verification outcome for the run's
 * metrics. The verification counts only when it finished, that is when the
 * report's "verification" member has "passed". */
static void record_metrics(const struct drill *drill, const json_t *report)
{
    json_t *passed = json_object_get(json_object_get(report, "verification"), "passed");

    metrics_record_drill(rpo_measured(drill), drill->rpo_seconds, rto_measured(drill),
                         drill->rto_seconds);
    if (json_is_boolean(passed))
        metrics_record_verification(json_is_true(passed));
}

static void drill_begin(struct drill *drill, const struct drill_options *options)
{
    memset(drill, 0, sizeof *drill);
    drill->options = options;
    drill->steps = json_array();
    clock_gettime(CLOCK_MONOTONIC, &drill->started);
    drill->started_at = time(NULL);
}

/* Judges the drill, writes its reports, prints its summary and frees it.
 * Returns the outcome in err. A report that could not be written is the
 * outcome only of a drill that otherwise passed; else it is logged. */
static int drill_end(struct drill *drill, stow_error *select_err, stow_error *err)
{
    stow_error outcome = {0};
    stow_error write_err = {0};
    const char *result;
    json_t *report;

    drill->interrupted_by = stow_interrupted();
    result = judge(drill, &outcome, select_err);
    report = build_report(drill, result, &outcome);
    record_metrics(drill, report);
    if (drill_write_reports(report, drill->options->report_path, drill->options->markdown_path,
                            &write_err) != 0 && stow_error_is_set(&outcome))
        stow_log_error(&write_err);
    drill_print_summary(report);

    json_decref(report);
    json_decref(drill->restore_report);
    json_decref(drill->steps);
    catalog_free(&drill->catalog);
    drill_snapshot_free(&drill->snapshot);
    if (stow_error_is_set(&outcome)) {
        *err = outcome;
        return -1;
    }
    if (stow_error_is_set(&write_err)) {
        *err = write_err;
        return -1;
    }
    return 0;
}

int drill_run(storage *store, const struct drill_options *options, stow_error *err)
{
    struct drill drill;
    stow_error select_err = {0};

    drill_begin(&drill, options);
    drill.store = store;
    drill.repository = storage_url(store);
    drill.rds = options->rds != NULL;
    drill.region = drill.rds ? rds_client_region(options->rds) : options->region;

    /* Choose the newest backup or snapshot copy, then restore and verify it. */
    if (!drill.rds && select_backup(&drill, &select_err) == 0)
        restore_backup(&drill);
    if (drill.rds && select_snapshot(&drill, &select_err) == 0)
        restore_snapshot(&drill);

    return drill_end(&drill, &select_err, err);
}

void drill_report_unstarted(const char *repository, const char *rds_region,
                            const struct drill_options *options, const stow_error *failure)
{
    struct drill drill;
    stow_error select_err = *failure;
    stow_error outcome = {0};

    drill_begin(&drill, options);
    drill.repository = repository;
    drill.rds = rds_region != NULL;
    drill.region = drill.rds ? rds_region : options->region;
    drill_end(&drill, &select_err, &outcome);
}
