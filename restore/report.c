/* Restore and verification reports. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static double elapsed(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

void report_begin(struct report *report, const char *kind, const struct manifest *manifest)
{
    char now[32];

    memset(report, 0, sizeof *report);
    clock_gettime(CLOCK_MONOTONIC, &report->started);
    manifest_format_time(time(NULL), now);
    report->document = json_object();
    report->steps = json_array();
    json_object_set_new(report->document, "format", json_string("stowage-report"));
    json_object_set_new(report->document, "kind", json_string(kind));
    json_object_set_new(report->document, "backup_id", json_string(manifest->id));
    json_object_set_new(report->document, "name", json_string(manifest->name));
    json_object_set_new(report->document, "database", json_string(manifest->database));
    json_object_set(report->document, "backup_started_at",
                    json_object_get(manifest->document, "started_at"));
    json_object_set_new(report->document, "started_at", json_string(now));
    json_object_set(report->document, "steps", report->steps);
    json_decref(report->steps);
}

void report_add_step(struct report *report, const char *step, double seconds,
                     const char *status)
{
    json_array_append_new(report->steps, json_pack("{s:s, s:f, s:s}", "step", step, "seconds",
                                                    seconds, "status", status));
}

/* Returns "interrupted" for an outcome of SIGINT or SIGTERM, else
 * "failed". */
static const char *failure_word(const stow_error *outcome)
{
    return outcome->exit_code == STOW_EXIT_INTERRUPTED ? "interrupted" : "failed";
}

void report_step_end(struct report *report, const stow_error *err)
{
    int failed = stow_error_is_set(err);

    if (report->step[0] == '\0')
        return;
    report_add_step(report, report->step, elapsed(&report->step_started),
                    failed ? failure_word(err) : "ok");
    if (failed)
        json_object_set_new(report->document, "failed_step", json_string(report->step));
    report->step[0] = '\0';
    stow_log_set_context("step", NULL);
}

void report_step_begin(struct report *report, const char *step)
{
    report_step_end(report, NULL);
    snprintf(report->step, sizeof report->step, "%s", step);
    clock_gettime(CLOCK_MONOTONIC, &report->step_started);
    stow_log_set_context("step", step);
}

void report_set(struct report *report, const char *key, json_t *value)
{
    json_object_set_new(report->document, key, value);
}

void report_finish(struct report *report, const stow_error *outcome)
{
    char now[32];
    int failed = stow_error_is_set(outcome);

    report_step_end(report, outcome);
    manifest_format_time(time(NULL), now);
    json_object_set_new(report->document, "finished_at", json_string(now));
    json_object_set_new(report->document, "total_seconds", json_real(elapsed(&report->started)));
    json_object_set_new(report->document, "result",
                        json_string(failed ? failure_word(outcome) : "passed"));
    if (failed) {
        json_object_set_new(report->document, "error", json_string(outcome->message));
        json_object_set_new(report->document, "exit_code", json_integer(outcome->exit_code));
        /* The summary may be all that a cron mail shows, so it carries the
         * next step too, such as dropping a partly restored database. */
        if (outcome->hint[0] != '\0')
            json_object_set_new(report->document, "hint", json_string(outcome->hint));
    }
}

static char *report_text(const struct report *report, stow_error *err)
{
    char *text = json_dumps(report->document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text == NULL)
        stow_fail(err, STOW_EXIT_FAILURE, "could not serialise the report");
    return text;
}

int report_write_text(const char *path, const char *text, stow_error *err)
{
    char temp[4096];
    FILE *file;
    int rc = 0;

    if (snprintf(temp, sizeof temp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof temp)
        return stow_fail(err, STOW_EXIT_USAGE, "report path %s is too long", path);
    file = fopen(temp, "w");
    if (file == NULL)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing report", temp);
    if (fputs(text, file) == EOF || fflush(file) != 0 || fsync(fileno(file)) != 0)
        rc = stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing report", temp);
    if (fclose(file) != 0 && rc == 0)
        rc = stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing report", temp);
    if (rc == 0 && rename(temp, path) != 0)
        rc = stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing report", path);
    if (rc != 0)
        unlink(temp);
    return rc;
}

int report_write_file(const struct report *report, const char *path, stow_error *err)
{
    char *text = report_text(report, err);
    char *line;
    size_t len;
    int rc;

    if (text == NULL)
        return -1;
    len = strlen(text);
    line = realloc(text, len + 2);
    if (line == NULL) {
        free(text);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory writing the report");
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    rc = report_write_text(path, line, err);
    free(line);
    return rc;
}

int report_store(const struct report *report, storage *store, const struct manifest *manifest,
                 stow_error *err)
{
    static const struct storage_put_options options = {1, "application/json"};
    char key[512];
    char stamp[32];
    char *text = report_text(report, err);
    struct tm utc;
    time_t now = time(NULL);
    int passed;
    int storage_check;
    int rc;

    if (text == NULL)
        return -1;
    gmtime_r(&now, &utc);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    /* The outcome is part of the key so a listing shows it without a read.
     * A storage check is labelled apart: it proves the object, not that the
     * backup restores. */
    passed = strcmp(json_string_value(json_object_get(report->document, "result")), "passed") == 0;
    storage_check = strcmp(json_string_value(json_object_get(report->document, "kind")),
                           REPORT_KIND_STORAGE_CHECK) == 0;
    snprintf(key, sizeof key, "%s/%s/%s/%s/%s-%s%s-%06x.json", CATALOG_BACKUPS_DIR,
             manifest->name, manifest->id, CATALOG_VERIFICATIONS_DIR, stamp,
             storage_check ? "check" : "", passed ? "passed" : "failed",
             randombytes_uniform(0x1000000));
    rc = storage_put(store, key, text, strlen(text), &options, err);
    free(text);
    if (rc == STORAGE_CONFLICT)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "report %s already exists", key);
    return rc;
}

void report_print_text(const struct report *report)
{
    json_t *doc = report->document;
    json_t *step;
    size_t index;

    printf("%s of backup %s (%s): %s\n", json_string_value(json_object_get(doc, "kind")),
           json_string_value(json_object_get(doc, "backup_id")),
           json_string_value(json_object_get(doc, "name")),
           json_string_value(json_object_get(doc, "result")));
    json_array_foreach(report->steps, index, step) {
        printf("  %-20s %9.2f s  %s\n", json_string_value(json_object_get(step, "step")),
               json_real_value(json_object_get(step, "seconds")),
               json_string_value(json_object_get(step, "status")));
    }
    printf("  %-20s %9.2f s\n", "total", json_real_value(json_object_get(doc, "total_seconds")));
    if (json_object_get(doc, "bytes") != NULL)
        printf("  (download and decrypt+decompress are the time those stages worked while\n"
               "  the restore streamed; they overlap it and are not added to the total)\n");
    if (json_object_get(doc, "error") != NULL)
        printf("  error: %s\n", json_string_value(json_object_get(doc, "error")));
    if (json_object_get(doc, "hint") != NULL)
        printf("  hint: %s\n", json_string_value(json_object_get(doc, "hint")));
}

void report_free(struct report *report)
{
    if (report == NULL)
        return;
    json_decref(report->document);
    report->document = NULL;
}
