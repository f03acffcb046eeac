/* Drill reports as files (JSON, Markdown) and as the printed summary. */
#include "drill_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/duration.h"
#include "report.h"

/* Maximum size of a written report; the restore report inside can list many differences. */
#define DRILL_TEXT_MAX (64u * 1024 * 1024)

static int is_rds(const json_t *report)
{
    const char *scratch = json_string_value(json_object_get(report, "scratch"));

    return scratch != NULL && strcmp(scratch, "rds") == 0;
}

/* Writes "185 s (objective 5m: met)", "not measured: REASON (objective
 * 5m)" or "not measured: REASON (no objective)". */
static void describe_measure(const json_t *measure, char *out, size_t size)
{
    json_t *measured = json_object_get(measure, "measured_seconds");
    json_t *objective = json_object_get(measure, "objective_seconds");
    const char *reason = json_string_value(json_object_get(measure, "not_measured_reason"));
    char value[128];
    char goal[32];

    snprintf(value, sizeof value, "not measured%s%s", reason != NULL ? ": " : "",
             reason != NULL ? reason : "");

    if (json_is_integer(measured))
        snprintf(value, sizeof value, "%lld s", (long long)json_integer_value(measured));
    else if (json_is_real(measured))
        snprintf(value, sizeof value, "%.1f s", json_real_value(measured));
    if (!json_is_integer(objective)) {
        snprintf(out, size, "%s (no objective)", value);
        return;
    }
    stow_duration_format((int64_t)json_integer_value(objective), goal, sizeof goal);
    if (measured == NULL || json_is_null(measured)) {
        snprintf(out, size, "%s (objective %s)", value, goal);
        return;
    }
    snprintf(out, size, "%s (objective %s: %s)", value, goal,
             json_is_true(json_object_get(measure, "met")) ? "met" : "MISSED");
}

static int append_markdown_steps(stow_buf *text, const json_t *report, stow_error *err)
{
    const json_t *steps = json_object_get(report, "steps");
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
    if (is_rds(report))
        return 0;
    return stow_buf_printf(text, err,
                           "\nThe download and decrypt+decompress steps run inside the restore "
                           "step, as one stream; their times are the time each stage spent "
                           "working.\n");
}

/* Appends the title and the rows naming the snapshot copy of an RDS drill. */
static int append_markdown_snapshot(stow_buf *text, const json_t *report, const json_t *snapshot,
                                    stow_error *err)
{
    const char *region = json_string_value(json_object_get(report, "region"));

    if (stow_buf_printf(text, err,
                        "# DR drill: %s%s\n\n| | |\n| --- | --- |\n| Result | **%s** |\n"
                        "| Repository | %s |\n| Drill started | %s |\n",
                        json_is_object(snapshot) ? "instance " : "no snapshot copy",
                        json_is_object(snapshot)
                            ? json_string_value(json_object_get(snapshot, "instance"))
                            : "",
                        json_string_value(json_object_get(report, "result")),
                        json_string_value(json_object_get(report, "repository")),
                        json_string_value(json_object_get(report, "started_at"))) != 0)
        return -1;
    if (!json_is_object(snapshot))
        return 0;
    return stow_buf_printf(text, err,
                           "| Snapshot copy | %s in %s, a copy of %s |\n"
                           "| Recovery point | %s (from %s) |\n",
                           json_string_value(json_object_get(snapshot, "id")),
                           region ? region : "", json_string_value(json_object_get(snapshot,
                                                                                   "copied_from")),
                           json_string_value(json_object_get(snapshot, "recovery_point")),
                           json_string_value(json_object_get(snapshot,
                                                             "recovery_point_basis")));
}

/* Appends the title and the rows naming what was restored. */
static int append_markdown_source(stow_buf *text, const json_t *report, stow_error *err)
{
    json_t *backup = json_object_get(report, "backup");
    json_t *snapshot = json_object_get(report, "snapshot");
    const char *region = json_string_value(json_object_get(report, "region"));

    if (is_rds(report))
        return append_markdown_snapshot(text, report, snapshot, err);
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
    return 0;
}

static int build_markdown(const json_t *report, stow_buf *text, stow_error *err)
{
    json_t *verification = json_object_get(report, "verification");
    char rpo[256], rto[256], verified[128] = "not run";

    describe_measure(json_object_get(report, "rpo"), rpo, sizeof rpo);
    describe_measure(json_object_get(report, "rto"), rto, sizeof rto);
    if (json_is_object(verification))
        snprintf(verified, sizeof verified, "%s, %lld %s",
                 json_is_true(json_object_get(verification, "passed")) ? "passed" : "FAILED",
                 (long long)json_integer_value(json_object_get(verification,
                                                               "difference_count")),
                 is_rds(report) ? "problems" : "differences");

    if (append_markdown_source(text, report, err) != 0)
        return -1;
    if (stow_buf_printf(text, err, "| RPO | %s |\n| RTO | %s |\n| Verification | %s |\n", rpo,
                        rto, verified) != 0)
        return -1;
    if (json_is_string(json_object_get(report, "error")) &&
        stow_buf_printf(text, err, "| Error | %s |\n",
                        json_string_value(json_object_get(report, "error"))) != 0)
        return -1;
    if (append_markdown_steps(text, report, err) != 0)
        return -1;
    return stow_buf_printf(text, err, "\nRPO: %s. RTO: %s.\n",
                           json_string_value(json_object_get(
                               json_object_get(report, "definitions"), "rpo")),
                           json_string_value(json_object_get(
                               json_object_get(report, "definitions"), "rto")));
}

int drill_write_reports(const json_t *report, const char *json_path, const char *markdown_path,
                        stow_error *err)
{
    char *json_text = NULL;
    stow_buf markdown;
    stow_buf json_line;
    int rc = 0;

    stow_buf_init(&markdown, DRILL_TEXT_MAX);
    stow_buf_init(&json_line, DRILL_TEXT_MAX);
    if (json_path != NULL) {
        json_text = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (json_text == NULL)
            rc = stow_fail(err, STOW_EXIT_FAILURE, "could not serialise the drill report");
        if (rc == 0 && (stow_buf_printf(&json_line, err, "%s\n", json_text) != 0 ||
                        report_write_text(json_path, (const char *)json_line.data, err) != 0))
            rc = -1;
    }
    if (rc == 0 && markdown_path != NULL &&
        (build_markdown(report, &markdown, err) != 0 ||
         report_write_text(markdown_path, (const char *)markdown.data, err) != 0))
        rc = -1;
    free(json_text);
    stow_buf_free(&markdown);
    stow_buf_free(&json_line);
    return rc;
}

void drill_print_summary(const json_t *report)
{
    json_t *backup = json_object_get(report, "backup");
    json_t *snapshot = json_object_get(report, "snapshot");
    char rpo[256], rto[256];

    describe_measure(json_object_get(report, "rpo"), rpo, sizeof rpo);
    describe_measure(json_object_get(report, "rto"), rto, sizeof rto);
    if (is_rds(report)) {
        printf("drill of snapshot copy %s in %s: %s\n  RPO  %s\n  RTO  %s\n",
               json_is_object(snapshot) ? json_string_value(json_object_get(snapshot, "id"))
                                        : "(none)",
               json_string_value(json_object_get(report, "region")),
               json_string_value(json_object_get(report, "result")), rpo, rto);
        return;
    }
    printf("drill of backup %s from %s: %s\n  RPO  %s\n  RTO  %s\n",
           json_is_object(backup) ? json_string_value(json_object_get(backup, "id")) : "(none)",
           json_string_value(json_object_get(report, "repository")),
           json_string_value(json_object_get(report, "result")), rpo, rto);
}

