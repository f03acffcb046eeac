/* RDS scratch instances: creation with Stowage's tags, waiting, removal,
 * and the cleanup of expired ones. */
#include "scratch_rds.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/interrupt.h"
#include "common/log.h"
#include "manifest.h"

#define SCRATCH_RDS_TAG_COUNT 4

/* Fills the id, expiry and tags of a new scratch instance. The tag values
 * point into scratch and expires_text. */
static void prepare_scratch(struct scratch_rds *scratch, const char *source,
                            const struct scratch_rds_options *options, char expires_text[32],
                            struct rds_tag tags[SCRATCH_RDS_TAG_COUNT])
{
    uint8_t random[6];
    char hex[2 * sizeof random + 1];
    int64_t ttl = options->ttl_seconds > 0 ? options->ttl_seconds : SCRATCH_RDS_DEFAULT_TTL;

    memset(scratch, 0, sizeof *scratch);
    randombytes_buf(random, sizeof random);
    sodium_bin2hex(hex, sizeof hex, random, sizeof random);
    snprintf(scratch->id, sizeof scratch->id, "%s%s", SCRATCH_RDS_ID_PREFIX, hex);
    snprintf(scratch->source, sizeof scratch->source, "%s", source);
    scratch->expires_at = time(NULL) + (time_t)ttl;
    manifest_format_time(scratch->expires_at, expires_text);

    tags[0] = (struct rds_tag){RDS_TAG_SCRATCH, "true"};
    tags[1] = (struct rds_tag){RDS_TAG_EXPIRES_AT, expires_text};
    tags[2] = (struct rds_tag){RDS_TAG_CREATED_BY, RDS_TAG_CREATED_BY_VALUE};
    tags[3] = (struct rds_tag){RDS_TAG_SOURCE, scratch->source};
}

static void describe_restore(const struct scratch_rds *scratch,
                             const struct scratch_rds_options *options,
                             const struct rds_tag *tags, struct rds_restore_instance *out)
{
    memset(out, 0, sizeof *out);
    out->instance_id = scratch->id;
    out->instance_class = options->instance_class;
    out->subnet_group = options->subnet_group;
    out->parameter_group = options->parameter_group;
    out->security_groups = options->security_groups;
    out->security_group_count = options->security_group_count;
    out->tags = tags;
    out->tag_count = SCRATCH_RDS_TAG_COUNT;
    out->enable_iam_auth = options->iam_auth;
}

int scratch_rds_restore_snapshot(rds_client *client, const char *snapshot_id,
                                 const struct scratch_rds_options *options,
                                 struct scratch_rds *scratch, stow_error *err)
{
    struct rds_tag tags[SCRATCH_RDS_TAG_COUNT];
    struct rds_restore_instance request;
    char expires[32];

    prepare_scratch(scratch, snapshot_id, options, expires, tags);
    describe_restore(scratch, options, tags, &request);
    request.snapshot_id = snapshot_id;
    stow_log_info("restoring snapshot %s into scratch instance %s (expires %s)", snapshot_id,
                  scratch->id, expires);
    scratch->requested = 1;
    return rds_restore_from_snapshot(client, &request, &scratch->instance, err);
}

int scratch_rds_restore_point_in_time(rds_client *client, const char *source_instance,
                                      time_t at, const struct scratch_rds_options *options,
                                      struct scratch_rds *scratch, stow_error *err)
{
    struct rds_tag tags[SCRATCH_RDS_TAG_COUNT];
    struct rds_restore_instance request;
    char expires[32];
    char when[32] = "its latest restorable time";

    prepare_scratch(scratch, source_instance, options, expires, tags);
    describe_restore(scratch, options, tags, &request);
    request.source_instance_id = source_instance;
    request.restore_time = at;
    if (at != 0)
        manifest_format_time(at, when);
    stow_log_info("restoring instance %s as of %s into scratch instance %s (expires %s)",
                  source_instance, when, scratch->id, expires);
    scratch->requested = 1;
    return rds_restore_to_point_in_time(client, &request, &scratch->instance, err);
}

int scratch_rds_wait(rds_client *client, struct scratch_rds *scratch,
                     const struct scratch_rds_options *options, stow_error *err)
{
    rds_instance_free(&scratch->instance);
    return snapshot_wait_instance_available(client, scratch->id, &options->wait,
                                            &scratch->instance, err);
}

int scratch_rds_remove(rds_client *client, struct scratch_rds *scratch, stow_error *err)
{
    int rc;

    if (!scratch->requested)
        return 0;
    rc = rds_delete_scratch_instance(client, scratch->id, err);
    if (rc == RDS_NOT_FOUND) {
        stow_log_detail("scratch instance %s does not exist; nothing to delete", scratch->id);
        return 0;
    }
    if (rc == 0)
        stow_log_info("deleted scratch instance %s (no final snapshot)", scratch->id);
    return rc;
}

void scratch_rds_free(struct scratch_rds *scratch)
{
    if (scratch != NULL)
        rds_instance_free(&scratch->instance);
}

/* --- cleanup ------------------------------------------------------------------ */

static int is_scratch(const struct rds_instance *instance)
{
    const char *value = rds_tag_value(&instance->tags, RDS_TAG_SCRATCH);

    return value != NULL && strcmp(value, "true") == 0;
}

/* Reads the tags of instances whose listing carried none. */
static int load_missing_tags(rds_client *client, struct rds_instance_list *list,
                             stow_error *err)
{
    for (size_t i = 0; i < list->count; i++) {
        struct rds_instance *instance = &list->items[i];

        if (instance->tags.present || instance->arn[0] == '\0')
            continue;
        if (rds_list_tags(client, instance->arn, &instance->tags, err) != 0)
            return -1;
    }
    return 0;
}

/* Decides and carries out the fate of one scratch instance. */
static void clean_one(rds_client *client, const struct rds_instance *instance, time_t now,
                      int dry_run, struct scratch_rds_cleanup_entry *entry)
{
    const char *expires = rds_tag_value(&instance->tags, RDS_TAG_EXPIRES_AT);
    stow_error err = {0};
    int rc;

    snprintf(entry->id, sizeof entry->id, "%s", instance->id);
    snprintf(entry->status, sizeof entry->status, "%s", instance->status);
    if (expires == NULL || manifest_parse_time(expires, &entry->expires_at) != 0) {
        entry->expires_at = 0;
        entry->action = SCRATCH_RDS_NO_EXPIRY;
        stow_log_warn("scratch instance %s has no valid %s tag; delete it with stowage "
                      "snapshot delete-scratch %s", instance->id, RDS_TAG_EXPIRES_AT,
                      instance->id);
        return;
    }
    if (entry->expires_at > now) {
        entry->action = SCRATCH_RDS_KEPT;
        return;
    }
    if (dry_run) {
        entry->action = SCRATCH_RDS_WOULD_DELETE;
        return;
    }
    rc = rds_delete_scratch_instance(client, instance->id, &err);
    if (rc < 0) {
        entry->action = SCRATCH_RDS_DELETE_FAILED;
        stow_log_error(&err);
        return;
    }
    entry->action = SCRATCH_RDS_DELETED;
    stow_log_info("deleted expired scratch instance %s (expired %s)", instance->id, expires);
}

int scratch_rds_cleanup_expired(rds_client *client, time_t now, int dry_run,
                                struct scratch_rds_cleanup *result, stow_error *err)
{
    struct rds_instance_list list = {0};
    int rc = -1;

    memset(result, 0, sizeof *result);
    if (rds_describe_instances(client, &list, err) != 0 || load_missing_tags(client, &list, err) != 0)
        goto done;
    result->entries = calloc(list.count + 1, sizeof *result->entries);
    if (result->entries == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory cleaning up scratch instances");
        goto done;
    }
    for (size_t i = 0; i < list.count; i++) {
        struct scratch_rds_cleanup_entry *entry;

        if (!is_scratch(&list.items[i]))
            continue;
        if (stow_interrupted()) {
            stow_fail_interrupted(err, "the cleanup of scratch instances");
            goto done;
        }
        entry = &result->entries[result->count++];
        clean_one(client, &list.items[i], now, dry_run, entry);
        result->deleted += entry->action == SCRATCH_RDS_DELETED;
        result->failed += entry->action == SCRATCH_RDS_DELETE_FAILED;
    }
    rc = 0;
    if (result->failed > 0)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "%zu expired scratch instances could not be "
                       "deleted (see the log)", result->failed);

done:
    rds_instance_list_free(&list);
    return rc;
}

void scratch_rds_cleanup_free(struct scratch_rds_cleanup *result)
{
    if (result == NULL)
        return;
    free(result->entries);
    memset(result, 0, sizeof *result);
}
