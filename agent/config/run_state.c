/* Reading and writing the state file of stowage run. */
#include "config/run_state.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/file_lock.h"
#include "common/log.h"

/* A run holds the lock only to read, merge and write a small file. */
#define RUN_STATE_LOCK_TIMEOUT_MS 30000

int run_state_load(const char *path, json_t **out, stow_error *err)
{
    json_error_t error;

    *out = NULL;
    if (access(path, F_OK) != 0) {
        *out = json_pack("{s:{}}", "databases");
        return *out != NULL ? 0 : stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    *out = json_load_file(path, 0, &error);
    if (*out == NULL || !json_is_object(json_object_get(*out, "databases"))) {
        json_decref(*out);
        *out = NULL;
        stow_fail(err, STOW_EXIT_USAGE, "run state file %s is invalid: %s", path,
                  error.text[0] != '\0' ? error.text : "no \"databases\" object");
        stow_error_hint(err, "remove the file; the next run of each database then verifies");
        return -1;
    }
    return 0;
}

void run_state_get(json_t *state, const char *name, struct run_state_entry *entry)
{
    json_t *item = json_object_get(json_object_get(state, "databases"), name);

    memset(entry, 0, sizeof *entry);
    if (!json_is_object(item))
        return;
    entry->known = 1;
    entry->runs_since_verification =
        (long)json_integer_value(json_object_get(item, "runs_since_verification"));
    entry->last_verification = (time_t)json_integer_value(json_object_get(item,
                                                                          "last_verification"));
    entry->last_verification_passed =
        json_is_true(json_object_get(item, "last_verification_passed"));
}

int run_state_set(json_t *state, const char *name, const struct run_state_entry *entry)
{
    json_t *item = json_pack("{s:I, s:I, s:b}", "runs_since_verification",
                             (json_int_t)entry->runs_since_verification, "last_verification",
                             (json_int_t)entry->last_verification, "last_verification_passed",
                             entry->last_verification_passed);

    if (item == NULL)
        return -1;
    return json_object_set_new(json_object_get(state, "databases"), name, item);
}

int run_state_save(const char *path, json_t *state, stow_error *err)
{
    char temporary[4096];

    if (snprintf(temporary, sizeof temporary, "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof temporary)
        return stow_fail(err, STOW_EXIT_USAGE, "run state path is too long: %s", path);
    if (json_dump_file(state, temporary, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        unlink(temporary);
        return stow_fail(err, STOW_EXIT_FAILURE, "writing the run state file %s failed; check "
                                                 "that its directory exists and is writable",
                         temporary);
    }
    if (rename(temporary, path) != 0) {
        int saved = errno;

        unlink(temporary);
        return stow_fail_errno(err, STOW_EXIT_FAILURE, saved, "replacing run state file", path);
    }
    return 0;
}

/* Copies into current the entries of state that differ from loaded. */
static int merge_changed_entries(json_t *current, const json_t *loaded, json_t *state)
{
    json_t *before = json_object_get(loaded, "databases");
    json_t *target = json_object_get(current, "databases");
    const char *name;
    json_t *entry;

    json_object_foreach(json_object_get(state, "databases"), name, entry) {
        if (json_equal(entry, json_object_get(before, name)))
            continue;
        if (json_object_set(target, name, entry) != 0)
            return -1;
    }
    return 0;
}

int run_state_save_changes(const char *path, const json_t *loaded, json_t *state,
                           stow_error *err)
{
    stow_error load_err = {0};
    json_t *current = NULL;
    int lock_fd = -1;
    int rc = -1;

    if (stow_file_lock(path, RUN_STATE_LOCK_TIMEOUT_MS, &lock_fd, err) != 0)
        return -1;

    /* Read what other runs wrote since this one started. */
    if (run_state_load(path, &current, &load_err) != 0) {
        stow_log_warn("%s. This run replaces it", load_err.message);
        current = json_pack("{s:{}}", "databases");
    }

    if (current == NULL || merge_changed_entries(current, loaded, state) != 0)
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory updating the run state file %s", path);
    else
        rc = run_state_save(path, current, err);
    json_decref(current);
    stow_file_unlock(lock_fd);
    return rc;
}

int run_parse_days(const char *text, unsigned *mask, stow_error *err)
{
    static const char *const days[] = {"sunday",   "monday", "tuesday", "wednesday",
                                       "thursday", "friday", "saturday"};
    const char *cursor = text;

    *mask = 0;
    while (*cursor != '\0') {
        size_t len;
        int found = 0;

        cursor += strspn(cursor, " ,");
        len = strcspn(cursor, " ,");
        if (len == 0)
            break;
        for (unsigned day = 0; day < 7; day++) {
            if ((len == 3 || len == strlen(days[day])) && strncasecmp(cursor, days[day], len) == 0) {
                *mask |= 1u << day;
                found = 1;
            }
        }
        if (!found) {
            stow_fail(err, STOW_EXIT_USAGE, "invalid value for verify-on: \"%s\"", text);
            stow_error_hint(err, "give day names separated by commas, for example sunday or "
                                 "mon,thu");
            return -1;
        }
        cursor += len;
    }
    if (*mask == 0)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid value for verify-on: \"%s\" names no "
                                               "day", text);
    return 0;
}
