/* Expiry plans and the deletion of expired backups. */
#include "catalog/expire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/hold.h"
#include "common/interrupt.h"
#include "common/log.h"

int expire_plan_build(storage *store, const char *name, const struct retention_policy *policy,
                      time_t now, struct expire_plan *plan, stow_error *err)
{
    struct retention_backup *backups = NULL;
    struct retention_decision *decisions = NULL;
    int rc = -1;

    memset(plan, 0, sizeof *plan);
    snprintf(plan->name, sizeof plan->name, "%s", name);
    plan->now = now;
    if (catalog_load(store, name, &plan->catalog, err) != 0)
        return -1;
    plan->count = plan->catalog.count;
    if (plan->count == 0)
        return 0;

    plan->items = calloc(plan->count, sizeof *plan->items);
    backups = calloc(plan->count, sizeof *backups);
    decisions = calloc(plan->count, sizeof *decisions);
    if (plan->items == NULL || backups == NULL || decisions == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < plan->count; i++) {
        const struct catalog_entry *entry = &plan->catalog.entries[i];

        backups[i].id = entry->manifest.id;
        backups[i].started_at = entry->manifest.started_at;
        backups[i].finished_at = entry->manifest.finished_at;
        backups[i].verified = entry->last_verified_at != 0;
        backups[i].last_verification_passed = entry->last_verification_passed;
        backups[i].held = entry->held;
    }
    if (retention_decide(backups, plan->count, policy, now, decisions, err) != 0)
        goto cleanup;

    for (size_t i = 0; i < plan->count; i++) {
        plan->items[i].entry = &plan->catalog.entries[i];
        plan->items[i].decision = decisions[i];
        if (!decisions[i].keep)
            plan->expire_count++;
    }
    rc = 0;

cleanup:
    free(backups);
    free(decisions);
    if (rc != 0)
        expire_plan_free(plan);
    return rc;
}

/* Returns the length of "backups/NAME/ID/" when the manifest key has that
 * form for the manifest's own name and id, else 0. */
static size_t backup_dir_length(const struct catalog_entry *entry)
{
    char expected[256];

    if (catalog_key(expected, sizeof expected, entry->manifest.name, entry->manifest.id,
                    CATALOG_MANIFEST_FILE) != 0 ||
        strcmp(expected, entry->manifest_key) != 0)
        return 0;
    return strlen(entry->manifest_key) - strlen(CATALOG_MANIFEST_FILE);
}

struct report_keys {
    char **keys;
    uint64_t *sizes;
    size_t count;
    size_t capacity;
};

static int collect_report(const char *key, const struct storage_object_info *info, void *context)
{
    struct report_keys *reports = context;

    if (reports->count == reports->capacity) {
        size_t capacity = reports->capacity == 0 ? 16 : reports->capacity * 2;
        char **keys = realloc(reports->keys, capacity * sizeof *keys);
        uint64_t *sizes;

        if (keys == NULL)
            return -1;
        reports->keys = keys;
        sizes = realloc(reports->sizes, capacity * sizeof *sizes);
        if (sizes == NULL)
            return -1;
        reports->sizes = sizes;
        reports->capacity = capacity;
    }
    reports->keys[reports->count] = strdup(key);
    if (reports->keys[reports->count] == NULL)
        return -1;
    reports->sizes[reports->count++] = info->size;
    return 0;
}

/* Deletes the verification reports under dir (backups/NAME/ID/). */
static int delete_reports(storage *store, const char *dir, struct expire_item *item,
                          stow_error *err)
{
    struct report_keys reports = {0};
    char prefix[512];
    int rc;

    snprintf(prefix, sizeof prefix, "%s%s/", dir, CATALOG_VERIFICATIONS_DIR);
    rc = storage_list(store, prefix, collect_report, &reports, err);
    if (rc > 0 || (rc < 0 && !stow_error_is_set(err)))
        rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing %s", prefix);
    for (size_t i = 0; rc == 0 && i < reports.count; i++) {
        rc = storage_delete(store, reports.keys[i], err);
        if (rc == 0)
            item->bytes_deleted += reports.sizes[i];
    }
    for (size_t i = 0; i < reports.count; i++)
        free(reports.keys[i]);
    free(reports.keys);
    free(reports.sizes);
    return rc;
}

/* Returns 1 when the backup has a hold now; it may have gained one since
 * the plan was made. */
static int held_now(storage *store, const struct catalog_entry *entry, stow_error *err)
{
    struct storage_object_info info;
    char key[512];
    int rc;

    if (hold_key(entry, key, sizeof key) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "hold key of %s is too long",
                         entry->manifest_key);
    rc = storage_head(store, key, &info, err);
    if (rc < 0)
        return -1;
    return rc == STORAGE_NOT_FOUND ? 0 : 1;
}

/* Deletes one expired backup: manifest, data object, verification reports. */
static int delete_backup(storage *store, struct expire_item *item, stow_error *err)
{
    const struct catalog_entry *entry = item->entry;
    const struct manifest *manifest = &entry->manifest;
    size_t dir_len = backup_dir_length(entry);
    char dir[256];
    int held;

    if (dir_len == 0 || dir_len >= sizeof dir) {
        item->skipped = "its manifest is not at backups/NAME/ID/ of its own name and id";
        stow_log_warn("not expiring %s: %s", entry->manifest_key, item->skipped);
        return 0;
    }
    memcpy(dir, entry->manifest_key, dir_len);
    dir[dir_len] = '\0';
    held = held_now(store, entry, err);
    if (held < 0)
        return -1;
    if (held) {
        item->skipped = "a hold was placed after the plan was made";
        stow_log_warn("not expiring backup %s: %s", manifest->id, item->skipped);
        return 0;
    }

    /* The manifest first: from here on the backup no longer exists. */
    if (storage_delete(store, entry->manifest_key, err) != 0)
        return -1;
    item->deleted = 1;

    if (strncmp(manifest->object_key, dir, dir_len) == 0) {
        if (storage_delete(store, manifest->object_key, err) != 0)
            return -1;
        item->bytes_deleted += manifest->stored_bytes;
    } else {
        stow_log_warn("backup %s: leaving its data object %s, which is outside %s",
                      manifest->id, manifest->object_key, dir);
    }
    if (delete_reports(store, dir, item, err) != 0)
        return -1;
    stow_log_info("expired backup %s of %s", manifest->id, manifest->name);
    return 0;
}

int expire_plan_apply(storage *store, struct expire_plan *plan, catalog_lock *lock,
                      stow_error *err)
{
    for (size_t i = 0; i < plan->count; i++) {
        struct expire_item *item = &plan->items[i];

        if (item->decision.keep)
            continue;
        if (stow_interrupted())
            return stow_fail_interrupted(err, "expiring backups");
        if (catalog_lock_check(lock, err) != 0)
            return -1;
        if (delete_backup(store, item, err) != 0) {
            stow_error_prefix(err, "expiring backup %s of %s", item->entry->manifest.id,
                              plan->name);
            stow_error_hint(err, "run stowage expire again; stowage gc removes data objects "
                                 "whose manifest is gone");
            return -1;
        }
    }
    return 0;
}

void expire_plan_free(struct expire_plan *plan)
{
    if (plan == NULL)
        return;
    catalog_free(&plan->catalog);
    free(plan->items);
    memset(plan, 0, sizeof *plan);
}
