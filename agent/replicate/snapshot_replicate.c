/* Copies of Stowage's RDS snapshots in the replica region. */
#include "replicate/snapshot_replicate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/duration.h"
#include "common/interrupt.h"
#include "common/log.h"

/* Returns 1 for an available DB snapshot that Stowage created (not a copy). */
static int is_candidate(const struct rds_snapshot *snapshot)
{
    return !snapshot->cluster && snapshot_is_stowage(snapshot) &&
           rds_tag_value(&snapshot->tags, RDS_TAG_COPIED_FROM) == NULL &&
           strcmp(snapshot->status, "available") == 0;
}

/* Records the manifest of a copy that an earlier run made, unless the
 * replica has it already. */
static int record_existing_copy(const struct snapshot_replicate_options *options,
                                const struct rds_snapshot *original, const char *source_region,
                                const struct rds_snapshot *copy, const char *target_region,
                                stow_error *err)
{
    struct snapshot_result result;
    struct storage_object_info info;
    char key[SNAPSHOT_KEY_MAX];
    int rc;

    if (options->replica == NULL)
        return 0;
    if (snapshot_catalog_key(key, sizeof key, copy->source_id, copy->id,
                             SNAPSHOT_MANIFEST_FILE) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "manifest key for snapshot %s is too long",
                         copy->id);
    rc = storage_head(options->replica, key, &info, err);
    if (rc != STORAGE_NOT_FOUND)
        return rc;

    /* The request time of the copy is unknown here, so started_at is null. */
    memset(&result, 0, sizeof result);
    result.snapshot = *copy; /* borrowed: not freed here */
    snprintf(result.region, sizeof result.region, "%s", target_region);
    result.available_at = time(NULL);
    snprintf(result.copied_from_id, sizeof result.copied_from_id, "%s", original->id);
    snprintf(result.copied_from_arn, sizeof result.copied_from_arn, "%s", original->arn);
    snprintf(result.copied_from_region, sizeof result.copied_from_region, "%s", source_region);
    return snapshot_manifest_store(options->replica, &result, err);
}

/* Waits for a copy that an earlier run started, then records it. */
static int finish_existing_copy(rds_client *source, rds_client *target,
                                const struct snapshot_replicate_options *options,
                                const struct rds_snapshot *original, struct rds_snapshot *copy,
                                stow_error *err)
{
    struct rds_snapshot waited;

    if (strcmp(copy->status, "available") != 0) {
        stow_log_info("copy %s of snapshot %s is \"%s\" in %s; waiting until it is available",
                      copy->id, original->id, copy->status, rds_client_region(target));
        if (snapshot_wait_available(target, 0, copy->id, &options->wait, &waited, err) != 0) {
            rds_snapshot_free(&waited);
            return -1;
        }
        rds_snapshot_free(copy);
        *copy = waited;
    }
    return record_existing_copy(options, original, rds_client_region(source), copy,
                                rds_client_region(target), err);
}

/* Gives one snapshot an available copy in the target region. */
static int replicate_snapshot(rds_client *source, rds_client *target,
                              const struct snapshot_replicate_options *options,
                              const struct rds_snapshot *original,
                              struct snapshot_replicate_item *item, stow_error *err)
{
    struct snapshot_copy_options copy_options;
    struct snapshot_result result;
    struct rds_snapshot copy;
    int rc;

    snapshot_copy_name(original->id, rds_client_region(target), item->copy_id);
    memset(&copy, 0, sizeof copy);
    rc = rds_describe_snapshot(target, 0, item->copy_id, &copy, err);
    if (rc == 0) {
        item->action = "present";
        rc = finish_existing_copy(source, target, options, original, &copy, err);
        rds_snapshot_free(&copy);
        return rc;
    }
    if (rc != RDS_NOT_FOUND)
        return -1;

    memset(&copy_options, 0, sizeof copy_options);
    copy_options.snapshot_id = original->id;
    copy_options.kms_key_id = options->kms_key_id;
    copy_options.wait = options->wait;
    copy_options.store = options->replica;
    memset(&result, 0, sizeof result);
    rc = snapshot_copy(source, target, &copy_options, &result, err);
    snapshot_result_free(&result);
    if (rc == 0)
        item->action = "copied";
    return rc;
}

static void count_item(struct snapshot_replicate_result *result,
                       const struct snapshot_replicate_item *item)
{
    if (strcmp(item->action, "copied") == 0)
        result->copied++;
    else if (strcmp(item->action, "present") == 0)
        result->present++;
    else
        result->failed++;
}

static int summarise_failures(const struct snapshot_replicate_result *result,
                              const rds_client *target, stow_error *err)
{
    for (size_t i = 0; i < result->count; i++) {
        const struct snapshot_replicate_item *item = &result->items[i];

        if (strcmp(item->action, "failed") != 0)
            continue;
        stow_fail(err, item->error.exit_code, "%zu of %zu RDS snapshots were not copied to %s; "
                                              "the first: %s",
                  result->failed, result->count, rds_client_region(target), item->error.message);
        if (item->error.hint[0] != '\0')
            stow_error_hint(err, "%s", item->error.hint);
        return -1;
    }
    return 0;
}

int snapshot_replicate_run(rds_client *source, rds_client *target,
                           const struct snapshot_replicate_options *options,
                           struct snapshot_replicate_result *result, stow_error *err)
{
    struct rds_snapshot_list list = {0};
    int rc;

    memset(result, 0, sizeof result[0]);
    if (rds_describe_snapshots(source, 0, options->instance_id, &list, err) != 0)
        return -1;
    snapshot_sort_newest_first(list.items, list.count);
    result->items = calloc(list.count + 1, sizeof *result->items);
    if (result->items == NULL) {
        rds_snapshot_list_free(&list);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    stow_log_info("copying Stowage's RDS snapshots from %s to %s", rds_client_region(source),
                  rds_client_region(target));

    rc = 0;
    for (size_t i = 0; rc == 0 && i < list.count; i++) {
        struct snapshot_replicate_item *item;
        struct timespec started;

        if (!is_candidate(&list.items[i])) {
            result->skipped++;
            continue;
        }
        if (stow_interrupted()) {
            rc = stow_fail_interrupted(err, "the copy of RDS snapshots");
            break;
        }
        item = &result->items[result->count++];
        snprintf(item->id, sizeof item->id, "%s", list.items[i].id);
        clock_gettime(CLOCK_MONOTONIC, &started);
        if (replicate_snapshot(source, target, options, &list.items[i], item, &item->error) != 0) {
            item->action = "failed";
            if (item->error.exit_code == STOW_EXIT_INTERRUPTED) {
                *err = item->error;
                rc = -1;
            } else {
                stow_error_prefix(&item->error, "snapshot %s was not copied", item->id);
                stow_log_error(&item->error);
            }
        }
        item->seconds = stow_seconds_since(&started);
        count_item(result, item);
    }
    rds_snapshot_list_free(&list);

    if (rc == 0) {
        stow_log_info("RDS snapshots in %s: %zu copied, %zu already there, %zu failed, %zu "
                      "skipped (not Stowage's, copies, or not available)",
                      rds_client_region(target), result->copied, result->present,
                      result->failed, result->skipped);
        rc = summarise_failures(result, target, err);
    }
    return rc;
}

void snapshot_replicate_result_free(struct snapshot_replicate_result *result)
{
    if (result == NULL)
        return;
    free(result->items);
    memset(result, 0, sizeof *result);
}

json_t *snapshot_replicate_result_json(const struct snapshot_replicate_result *result,
                                       const rds_client *source, const rds_client *target)
{
    json_t *snapshots = json_array();

    for (size_t i = 0; i < result->count; i++) {
        const struct snapshot_replicate_item *item = &result->items[i];
        json_t *entry = json_pack("{s:s, s:s, s:s, s:f}", "id", item->id, "copy_id",
                                  item->copy_id, "action", item->action, "seconds",
                                  item->seconds);

        if (strcmp(item->action, "failed") == 0)
            json_object_set_new(entry, "error", json_string(item->error.message));
        json_array_append_new(snapshots, entry);
    }
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "source_region",
                     rds_client_region(source), "target_region", rds_client_region(target),
                     "copied", (json_int_t)result->copied, "present",
                     (json_int_t)result->present, "failed", (json_int_t)result->failed,
                     "skipped", (json_int_t)result->skipped, "snapshots", snapshots);
}
