/* The drill flow and its JSON and Markdown reports. */
#include "drill.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "common/duration.h"
#include "common/log.h"
#include "restore.h"

#define DRILL_REPORT_FORMAT "stowage-drill-report"
#define DRILL_REPORT_VERSION 1
/* Maximum size of a written report; the restore report inside can list many differences. */
#define DRILL_TEXT_MAX (64u * 1024 * 1024)

struct drill {
    storage *store;
    const struct drill_options *options;
    struct timespec started;           /* monotonic */
    time_t started_at;                 /* wall clock */
    struct catalog catalog;
    const struct catalog_entry *entry; /* the backup restored */
    json_t *steps;                     /* owned */
    json_t *restore_report;            /* owned; NULL when no restore ran */
    stow_error restore_err;
    double rto_seconds;                /* valid when the restore passed */
    long long rpo_seconds;             /* valid when entry is set */
};

static double seconds_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static json_t *time_json(time_t when)
{
    char text[32];

    manifest_format_time(when, text);
    return json_string(text);
}

static void add_step(struct drill *drill, const char *step, double seconds, const char *status)
{
    json_array_append_new(drill->steps, json_pack("{s:s, s:f, s:s}", "step", step, "seconds",
                                                  seconds, "status", status));
}

/* --- the steps ------------------------------------------------------------ */

static int select_backup(struct drill *drill, stow_error *err)
{
    struct timespec started;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &started);
    rc = catalog_find(drill->store, "latest", 0, drill->options->name, &drill->catalog,
                      &drill->entry, err);
    add_step(drill, "select-backup", seconds_since(&started), rc == 0 ? "ok" : "failed");
    if (rc != 0)
        return -1;
    drill->rpo_seconds = (long long)(drill->started_at - drill->entry->manifest.started_at);
    stow_log_info("drill: restoring backup %s of %s from %s, taken %lld s before the drill",
                  drill->entry->manifest.id, drill->entry->manifest.name,
                  storage_url(drill->store), drill->rpo_seconds);
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

/* Restores into a local scratch instance with verification; the time up to
 * the end of the verification is the RTO. */
static void restore_and_verify(struct drill *drill)
{
    struct restore_options restore = {0};
    json_t *step;
    size_t index;
    int rc;

    restore.secret_key_path = drill->options->secret_key_path;
    restore.passphrase_file = drill->options->passphrase_file;
    restore.scratch_local = 1;
    restore.verify = 1;
    rc = restore_run_report(drill->store, drill->entry, &restore, &drill->restore_report,
                            &drill->restore_err);
    drill->rto_seconds = seconds_since(&drill->started) -
                         restore_step_seconds(drill->restore_report, "scratch-remove");

    json_array_foreach(json_object_get(drill->restore_report, "steps"), index, step)
        json_array_append(drill->steps, step);
    if (rc != 0)
        stow_log_info("drill: the restore of backup %s failed", drill->entry->manifest.id);
}

/* --- objectives and the report -------------------------------------------- */

/* {"measured_seconds", "objective_seconds", "met"}; met is null without
 * an objective. */
static json_t *measure_json(json_t *measured, int64_t objective, int met)
{
    return json_pack("{s:o, s:o, s:o}", "measured_seconds", measured, "objective_seconds",
                     objective > 0 ? json_integer(objective) : json_null(), "met",
                     objective > 0 ? json_boolean(met) : json_null());
}

static int restore_passed(const struct drill *drill)
{
    return drill->entry != NULL && drill->restore_report != NULL &&
           !stow_error_is_set(&drill->restore_err);
}

static int rpo_met(const struct drill *drill)
{
    return drill->entry != NULL &&
           (drill->options->rpo_objective <= 0 ||
            drill->rpo_seconds <= (long long)drill->options->rpo_objective);
}

static int rto_met(const struct drill *drill)
{
    return restore_passed(drill) && (drill->options->rto_objective <= 0 ||
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

static json_t *build_report(const struct drill *drill, const char *result, const stow_error *outcome)
{
    const struct drill_options *options = drill->options;
    json_t *verification = json_object_get(drill->restore_report, "verification");
    json_t *report;

    report = json_pack("{s:s, s:i, s:s, s:o, s:o, s:o, s:o}", "format", DRILL_REPORT_FORMAT,
                       "format_version", DRILL_REPORT_VERSION, "repository",
                       storage_url(drill->store), "region",
                       options->region ? json_string(options->region) : json_null(),
                       "started_at", time_json(drill->started_at), "finished_at",
                       time_json(time(NULL)), "backup", backup_json(drill));
    json_object_set(report, "steps", drill->steps);
    json_object_set_new(report, "rpo",
                        measure_json(drill->entry ? json_integer(drill->rpo_seconds) : json_null(),
                                     options->rpo_objective, rpo_met(drill)));
    json_object_set_new(report, "rto",
                        measure_json(restore_passed(drill) ? json_real(drill->rto_seconds)
                                                           : json_null(),
                                     options->rto_objective, rto_met(drill)));
    json_object_set_new(report, "definitions",
                        json_pack("{s:s, s:s}", "rpo",
                                  "age of the restored backup's started_at when the drill "
                                  "started",
                                  "rto",
                                  "time from the start of the drill to the end of the "
                                  "verification; removing the scratch instance is not "
                                  "counted"));
    json_object_set(report, "verification", verification ? verification : json_null());
    json_object_set(report, "restore_report",
                    drill->restore_report ? drill->restore_report : json_null());
    json_object_set_new(report, "result", json_string(result));
    json_object_set_new(report, "exit_code", json_integer(outcome->exit_code));
    if (stow_error_is_set(outcome))
        json_object_set_new(report, "error", json_string(outcome->message));
    return report;
}

/* Writes text to path through a temporary file and a rename. */
static int write_file(const char *path, const char *text, stow_error *err)
{
    char temp[4096];
    FILE *file;
    int rc = 0;

    if (snprintf(temp, sizeof temp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof temp)
        return stow_fail(err, STOW_EXIT_USAGE, "report path %s is too long", path);
    file = fopen(temp, "w");
    if (file == NULL)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing drill report", temp);
    if (fputs(text, file) == EOF || fflush(file) != 0 || fsync(fileno(file)) != 0)
        rc = stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing drill report", temp);
    if (fclose(file) != 0 && rc == 0)
        rc = stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing drill report", temp);
    if (rc == 0 && rename(temp, path) != 0)
        rc = stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing drill report", path);
    if (rc != 0)
        unlink(temp);
    return rc;
}

/* Writes "3m05s (objective 5m: met)" or "not measured". */
static void describe_measure(const json_t *measure, char *out, size_t size)
{
    json_t *measured = json_object_get(measure, "measured_seconds");
    json_t *objective = json_object_get(measure, "objective_seconds");
    char value[32] = "not measured";
    char goal[32];

    if (json_is_integer(measured))
        snprintf(value, sizeof value, "%lld s", (long long)json_integer_value(measured));
    else if (json_is_real(measured))
        snprintf(value, sizeof value, "%.1f s", json_real_value(measured));
    if (!json_is_integer(objective)) {
        snprintf(out, size, "%s (no objective)", value);
        return;
    }
    stow_duration_format((int64_t)json_integer_value(objective), goal, sizeof goal);
    snprintf(out, size, "%s (objective %s: %s)", value, goal,
             json_is_true(json_object_get(measure, "met")) ? "met" : "MISSED");
}

static int append_markdown_steps(stow_buf *text, const json_t *steps, stow_error *err)
{
    json_t *step;
    size_t index;

    if (stow_buf_printf(text, err, "\n## Steps\n\n| Step | Seconds | Status |\n"
                                   "| --- | ---: | --- |\n") != 0)
        return -1;
    json_array_foreach(steps, index, step) {
        if (stow_buf_printf(text, err, "| %s | %.2f | %s |\n",
                            json_string_value(json_object_get(step, "step")),
                            json_real_value(json_object_get(step, "seconds")),
                            json_string_value(json_object_get(step, "status"))) != 0)
            return -1;
    }
    return stow_buf_printf(text, err,
                           "\nThe download and decrypt+decompress steps run inside the restore "
                           "step, as one stream; their times are the time each stage spent "
                           "working.\n");
}

static int build_markdown(const json_t *report, stow_buf *text, stow_error *err)
{
    json_t *backup = json_object_get(report, "backup");
    json_t *verification = json_object_get(report, "verification");
    const char *region = json_string_value(json_object_get(report, "region"));
    char rpo[128], rto[128], verified[128] = "not run";

    describe_measure(json_object_get(report, "rpo"), rpo, sizeof rpo);
    describe_measure(json_object_get(report, "rto"), rto, sizeof rto);
    if (json_is_object(verification))
        snprintf(verified, sizeof verified, "%s, %lld differences",
                 json_is_true(json_object_get(verification, "passed")) ? "passed" : "FAILED",
                 (long long)json_integer_value(json_object_get(verification,
                                                               "difference_count")));

    if (stow_buf_printf(text, err,
                        "# DR drill: %s\n\n| | |\n| --- | --- |\n| Result | **%s** |\n"
                        "| Repository | %s%s%s%s |\n| Drill started | %s |\n",
                        json_is_object(backup)
                            ? json_string_value(json_object_get(backup, "name"))
                            : "no backup",
                        json_string_value(json_object_get(report, "result")),
                        json_string_value(json_object_get(report, "repository")),
                        region ? " (region " : "", region ? region : "", region ? ")" : "",
                        json_string_value(json_object_get(report, "started_at"))) != 0)
        return -1;
    if (json_is_object(backup) &&
        stow_buf_printf(text, err, "| Backup | %s, database %s, started %s |\n",
                        json_string_value(json_object_get(backup, "id")),
                        json_string_value(json_object_get(backup, "database")),
                        json_string_value(json_object_get(backup, "started_at"))) != 0)
        return -1;
    if (stow_buf_printf(text, err, "| RPO | %s |\n| RTO | %s |\n| Verification | %s |\n", rpo,
                        rto, verified) != 0)
        return -1;
    if (json_is_string(json_object_get(report, "error")) &&
        stow_buf_printf(text, err, "| Error | %s |\n",
                        json_string_value(json_object_get(report, "error"))) != 0)
        return -1;
    if (append_markdown_steps(text, json_object_get(report, "steps"), err) != 0)
        return -1;
    return stow_buf_printf(text, err, "\nRPO: %s. RTO: %s.\n",
                           json_string_value(json_object_get(
                               json_object_get(report, "definitions"), "rpo")),
                           json_string_value(json_object_get(
                               json_object_get(report, "definitions"), "rto")));
}

static int write_reports(const json_t *report, const struct drill_options *options,
                         stow_error *err)
{
    char *json_text = NULL;
    stow_buf markdown;
    stow_buf json_line;
    int rc = 0;

    stow_buf_init(&markdown, DRILL_TEXT_MAX);
    stow_buf_init(&json_line, DRILL_TEXT_MAX);
    if (options->report_path != NULL) {
        json_text = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (json_text == NULL)
            rc = stow_fail(err, STOW_EXIT_FAILURE, "could not serialise the drill report");
        if (rc == 0 && (stow_buf_printf(&json_line, err, "%s\n", json_text) != 0 ||
                        write_file(options->report_path, (const char *)json_line.data,
                                   err) != 0))
            rc = -1;
    }
    if (rc == 0 && options->markdown_path != NULL &&
        (build_markdown(report, &markdown, err) != 0 ||
         write_file(options->markdown_path, (const char *)markdown.data, err) != 0))
        rc = -1;
    free(json_text);
    stow_buf_free(&markdown);
    stow_buf_free(&json_line);
    return rc;
}

static void print_summary(const json_t *report)
{
    json_t *backup = json_object_get(report, "backup");
    char rpo[128], rto[128];

    describe_measure(json_object_get(report, "rpo"), rpo, sizeof rpo);
    describe_measure(json_object_get(report, "rto"), rto, sizeof rto);
    printf("drill of backup %s from %s: %s\n  RPO  %s\n  RTO  %s\n",
           json_is_object(backup) ? json_string_value(json_object_get(backup, "id")) : "(none)",
           json_string_value(json_object_get(report, "repository")),
           json_string_value(json_object_get(report, "result")), rpo, rto);
}

/* Decides the outcome: the restore's failure first, then the objectives. */
static const char *judge(const struct drill *drill, stow_error *outcome, stow_error *select_err)
{
    char objective[32];

    if (stow_error_is_set(select_err)) {
        *outcome = *select_err;
        return "failed";
    }
    if (!restore_passed(drill)) {
        *outcome = drill->restore_err;
        return "failed";
    }
    if (!rpo_met(drill)) {
        stow_duration_format(drill->options->rpo_objective, objective, sizeof objective);
        stow_fail(outcome, STOW_EXIT_OBJECTIVE,
                  "the drill missed its RPO objective: backup %s was %lld s old when the drill "
                  "started, the objective is %s",
                  drill->entry->manifest.id, drill->rpo_seconds, objective);
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

int drill_run(storage *store, const struct drill_options *options, stow_error *err)
{
    struct drill drill;
    stow_error select_err = {0};
    stow_error outcome = {0};
    stow_error write_err = {0};
    const char *result;
    json_t *report;

    memset(&drill, 0, sizeof drill);
    drill.store = store;
    drill.options = options;
    drill.steps = json_array();
    clock_gettime(CLOCK_MONOTONIC, &drill.started);
    drill.started_at = time(NULL);

    /* Choose the newest backup, then restore and verify it. */
    if (select_backup(&drill, &select_err) == 0)
        restore_and_verify(&drill);

    /* Judge, report, and print. */
    result = judge(&drill, &outcome, &select_err);
    report = build_report(&drill, result, &outcome);
    if (write_reports(report, options, &write_err) != 0)
        stow_log_error(&write_err);
    print_summary(report);

    json_decref(report);
    json_decref(drill.restore_report);
    json_decref(drill.steps);
    catalog_free(&drill.catalog);
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
