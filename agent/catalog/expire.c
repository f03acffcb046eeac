/* Expiry plans and the deletion of expired backups. */
#include "catalog/expire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/hold.h"
#include "common/interrupt.h"
#include "common/log.h"

/* Keeps every backup whose manifest records an S3 Object Lock retention
 * that has not passed at now: S3 would reject deleting it anyway, and the
 * manifest date saves a HeadObject per object. */
static void keep_locked(struct expire_item *item, time_t now)
{
    const struct manifest *manifest = &item->entry->manifest;
    struct retention_decision *decision = &item->decision;
    char until[32];

    if (manifest->lock_mode == STORAGE_LOCK_NONE || manifest->lock_retain_until <= now)
        return;
    manifest_format_time(manifest->lock_retain_until, until);
    if (decision->reason_count < RETENTION_MAX_REASONS)
        snprintf(decision->reasons[decision->reason_count++], RETENTION_REASON_MAX,
                 "locked until %.20s", until);
    if (!decision->keep)
        stow_log_info("keeping backup %s of %s: S3 Object Lock (%s) retains it until %s",
                      manifest->id, manifest->name, storage_lock_mode_name(manifest->lock_mode),
                      until);
    decision->keep = 1;
}


/* Warns of a backup that started after now: its host's clock was wrong,
 * and the rules count it as the newest backup, by its wrong dates. */
static void warn_if_future(const struct catalog_entry *entry, time_t now)
{
    char started[32];

    if (entry->manifest.started_at <= now + CATALOG_CLOCK_SKEW_SECONDS)
        return;
    manifest_format_time(entry->manifest.started_at, started);
    stow_log_warn("backup %s of %s started at %s, after the current time: the clock of the "
                  "host that took it was probably wrong, and retention counts it as the newest "
                  "backup; hold the backups you need (stowage hold) until newer ones exist",
                  entry->manifest.id, entry->manifest.name, started);
}

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
        backups[i].started_at_us = entry->manifest.started_at_us;
        backups[i].finished_at_us = entry->manifest.finished_at_us;
        backups[i].verified = entry->last_verified_at != 0;
        backups[i].last_verification_passed = entry->last_verification_passed;
        backups[i].held = entry->held;
        warn_if_future(entry, now);
    }
    if (retention_decide(backups, plan->count, policy, now, decisions, err) != 0)
        goto cleanup;

    for (size_t i = 0; i < plan->count; i++) {
        plan->items[i].entry = &plan->catalog.entries[i];
        plan->items[i].decision = decisions[i];
        keep_locked(&plan->items[i], now);
        if (!plan->items[i].decision.keep)
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

/* Deletes key with a plain DELETE, or every version of it when the backup
 * was stored under Object Lock. Such a bucket is versioned, and a plain
 * DELETE would only add a delete marker. Returns STORAGE_ACCESS_DENIED
 * when S3 rejected a locked version. */
static int delete_key(storage *store, const struct manifest *manifest, const char *key,
                      stow_error *err)
{
    if (manifest->lock_mode != STORAGE_LOCK_NONE)
        return storage_delete_versions(store, key, err);
    return storage_delete(store, key, err);
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
        rc = delete_key(store, &item->entry->manifest, reports.keys[i], err);
        if (rc == STORAGE_ACCESS_DENIED) {
            stow_log_warn("S3 rejected deleting the verification report %s (AccessDenied); it "
                          "stays",
                          reports.keys[i]);
            rc = 0;
        } else if (rc == 0) {
            item->bytes_deleted += reports.sizes[i];
        }
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

/* Deletes the data object of an expired backup whose manifest is gone. A
 * locked object stays, with a warning, because the backup no longer
 * exists either way. */
static int delete_object(storage *store, struct expire_item *item, stow_error *err)
{
    const struct manifest *manifest = &item->entry->manifest;
    int rc = delete_key(store, manifest, manifest->object_key, err);

    if (rc == STORAGE_ACCESS_DENIED) {
        stow_log_warn("backup %s: S3 rejected deleting its data object %s (AccessDenied), so "
                      "the object stays until its Object Lock retention ends and a later "
                      "stowage gc removes it",
                      manifest->id, manifest->object_key);
        return 0;
    }
    if (rc == 0)
        item->bytes_deleted += manifest->stored_bytes;
    return rc;
}

/* Puts the manifest back, from the bytes read before it was deleted. */
static int restore_manifest(storage *store, const struct catalog_entry *entry,
                            const stow_buf *original, stow_error *err)
{
    static const struct storage_put_options create_only = {1, "application/json"};
    int rc = storage_put(store, entry->manifest_key, original->data, original->len, &create_only,
                         err);

    if (rc == STORAGE_CONFLICT)
        return 0; /* already back: written by another run */
    if (rc != 0)
        stow_error_prefix(err, "restoring the manifest %s of held backup %s failed",
                          entry->manifest_key, entry->manifest.id);
    return rc;
}

/* Deletes the manifest of an expired backup. Returns 0 when it is gone, 1
 * when the backup is kept (item->skipped gives the reason), -1 on failure.
 *
 * A hold placed between the hold check and the delete would be lost, so
 * the hold is checked again after the delete, and the manifest is put
 * back, byte for byte, when a hold appeared (or the check failed). The
 * data object is still in place then, so the backup is whole again. */
static int delete_manifest(storage *store, struct expire_item *item, stow_error *err)
{
    const struct catalog_entry *entry = item->entry;
    const struct manifest *manifest = &entry->manifest;
    stow_buf original;
    int held;
    int rc;

    stow_buf_init(&original, MANIFEST_MAX_BYTES);
    rc = storage_get(store, entry->manifest_key, &original, err);
    if (rc == STORAGE_NOT_FOUND) {
        item->skipped = "its manifest was deleted by another run";
        stow_log_warn("not expiring backup %s: %s", manifest->id, item->skipped);
        rc = 1;
        goto done;
    }
    if (rc != 0)
        goto done;

    rc = delete_key(store, manifest, entry->manifest_key, err);
    if (rc == STORAGE_ACCESS_DENIED) {
        item->skipped = "kept: locked (S3 rejected the delete with AccessDenied)";
        stow_log_warn("not expiring backup %s of %s: S3 rejected deleting its manifest "
                      "(AccessDenied), so it is still under Object Lock retention or a legal "
                      "hold, or the credentials lack s3:DeleteObjectVersion",
                      manifest->id, manifest->name);
        rc = 1;
        goto done;
    }
    if (rc != 0)
        goto done;

    held = held_now(store, entry, err);
    if (held == 0)
        goto done;
    stow_log_warn("backup %s: %s while it expired; putting its manifest back", manifest->id,
                  held > 0 ? "a hold was placed" : "the hold check failed");
    if (restore_manifest(store, entry, &original, err) != 0 || held < 0) {
        rc = -1;
        goto done;
    }
    item->skipped = "a hold was placed while it expired; its manifest was put back";
    rc = 1;

done:
    stow_buf_free(&original);
    return rc;
}

/* Deletes one expired backup: manifest, data object, verification reports. */
static int delete_backup(storage *store, struct expire_item *item, stow_error *err)
{
    const struct catalog_entry *entry = item->entry;
    const struct manifest *manifest = &entry->manifest;
    size_t dir_len = backup_dir_length(entry);
    char dir[256];
    int held;
    int rc;

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
    rc = delete_manifest(store, item, err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    item->deleted = 1;

    if (strncmp(manifest->object_key, dir, dir_len) == 0) {
        if (delete_object(store, item, err) != 0)
            return -1;
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
