/* Snapshot creation, copies, waits, expiry and manifests. */
#include "rds/snapshot.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "manifest.h"

#define SLEEP_SLICE_MS 200

void snapshot_wait_default(struct snapshot_wait *wait)
{
    wait->timeout_seconds = SNAPSHOT_DEFAULT_WAIT_TIMEOUT;
    wait->poll_ms = SNAPSHOT_DEFAULT_POLL_MS;
}

/* --- names and ownership --------------------------------------------------- */

void snapshot_name(const char *source_id, time_t when, char out[RDS_ID_MAX])
{
    struct tm utc;
    char stamp[32];

    gmtime_r(&when, &utc);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
    snprintf(out, RDS_ID_MAX, "stowage-%s-%s", source_id, stamp);
}

void snapshot_copy_name(const char *snapshot_id, const char *region, char out[RDS_ID_MAX])
{
    char raw[2 * RDS_ID_MAX];
    size_t len = 0;

    snprintf(raw, sizeof raw, "%s-%s", snapshot_id, region);
    for (const char *p = raw; *p != '\0' && len + 1 < RDS_ID_MAX; p++) {
        char c = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                         (*p >= '0' && *p <= '9')
                     ? *p
                     : '-';

        if (c == '-' && (len == 0 || out[len - 1] == '-'))
            continue;
        if (len == 0 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            out[len++] = 's';
        out[len++] = c;
    }
    while (len > 0 && out[len - 1] == '-')
        len--;
    out[len] = '\0';
}

int snapshot_is_automated(const struct rds_snapshot *snapshot)
{
    return strcmp(snapshot->snapshot_type, "automated") == 0 ||
           strncmp(snapshot->id, "rds:", 4) == 0;
}

int snapshot_is_stowage(const struct rds_snapshot *snapshot)
{
    const char *creator = rds_tag_value(&snapshot->tags, RDS_TAG_CREATED_BY);

    return !snapshot_is_automated(snapshot) && strcmp(snapshot->snapshot_type, "manual") == 0 &&
           creator != NULL && strcmp(creator, RDS_TAG_CREATED_BY_VALUE) == 0;
}

/* --- waiting ----------------------------------------------------------------- */

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds in short slices. Returns -1 when SIGINT or
 * SIGTERM arrived. */
static int sleep_interruptible(int64_t ms)
{
    int64_t end = monotonic_ms() + ms;

    while (!stow_interrupted()) {
        int64_t left = end - monotonic_ms();
        struct timespec slice;

        if (left <= 0)
            return 0;
        if (left > SLEEP_SLICE_MS)
            left = SLEEP_SLICE_MS;
        slice.tv_sec = 0;
        slice.tv_nsec = (long)left * 1000000;
        nanosleep(&slice, NULL);
    }
    return -1;
}

/* Returns a delay between half and all of ceiling. */
static int64_t jittered(unsigned ceiling)
{
    unsigned half = ceiling / 2;

    return half + (half > 0 ? randombytes_uniform(ceiling - half + 1) : 0);
}

/* One resource that a wait polls. */
struct wait_target {
    const char *kind;     /* "snapshot", "instance", for messages */
    const char *id;
    /* Describes the resource and copies its status into status. Returns 0,
     * RDS_NOT_FOUND or -1. */
    int (*describe)(struct wait_target *target, char *status, size_t size, stow_error *err);
    rds_client *client;
    int cluster;
    struct rds_snapshot *snapshot;
    struct rds_instance *instance;
};

static int is_failure_status(const char *status)
{
    static const char *const failures[] = {
        "failed", "error", "deleting", "deleted", "incompatible-restore",
        "incompatible-parameters", "incompatible-network", "incompatible-option-group",
        "inaccessible-encryption-credentials", "restore-error", "storage-full", "stopped"};

    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++) {
        if (strcmp(status, failures[i]) == 0)
            return 1;
    }
    return 0;
}

static int describe_snapshot_status(struct wait_target *target, char *status, size_t size,
                                    stow_error *err)
{
    int rc;

    rds_snapshot_free(target->snapshot);
    rc = rds_describe_snapshot(target->client, target->cluster, target->id, target->snapshot,
                               err);
    if (rc == 0)
        snprintf(status, size, "%s", target->snapshot->status);
    return rc;
}

static int describe_instance_status(struct wait_target *target, char *status, size_t size,
                                    stow_error *err)
{
    int rc;

    rds_instance_free(target->instance);
    rc = rds_describe_instance(target->client, target->id, target->instance, err);
    if (rc == 0)
        snprintf(status, size, "%s", target->instance->status);
    return rc;
}

static int fail_timed_out(stow_error *err, const struct wait_target *target,
                          const char *status, int64_t timeout_seconds)
{
    char timeout[32];

    stow_duration_format(timeout_seconds, timeout, sizeof timeout);
    stow_fail(err, STOW_EXIT_FAILURE,
              "timed out waiting for RDS %s %s: still \"%s\" after %s (--wait-timeout)",
              target->kind, target->id, status, timeout);
    stow_error_hint(err, "RDS may need longer for large databases: raise --wait-timeout, or "
                         "check the %s in the AWS console", target->kind);
    return -1;
}

static int wait_available(struct wait_target *target, const struct snapshot_wait *wait,
                          stow_error *err)
{
    int64_t deadline = monotonic_ms() + wait->timeout_seconds * 1000;
    unsigned delay = wait->poll_ms > 0 ? wait->poll_ms : SNAPSHOT_DEFAULT_POLL_MS;
    char status[RDS_FIELD_MAX];
    char step[RDS_ID_MAX + 64];

    snprintf(step, sizeof step, "waiting for %s %s", target->kind, target->id);
    for (int checks = 1;; checks++) {
        int64_t left;
        int64_t pause;
        int rc = target->describe(target, status, sizeof status, err);

        if (rc < 0)
            return -1;
        if (rc == RDS_NOT_FOUND)
            return stow_fail(err, STOW_EXIT_FAILURE, "RDS %s %s disappeared while waiting "
                             "for it to become available", target->kind, target->id);
        if (strcmp(status, "available") == 0) {
            stow_log_detail("RDS %s %s is available (check %d)", target->kind, target->id,
                            checks);
            return 0;
        }
        if (is_failure_status(status))
            return stow_fail(err, STOW_EXIT_FAILURE, "RDS %s %s reached status \"%s\" instead "
                             "of becoming available", target->kind, target->id, status);

        left = deadline - monotonic_ms();
        if (left <= 0)
            return fail_timed_out(err, target, status, wait->timeout_seconds);
        pause = jittered(delay);
        if (pause > left)
            pause = left;
        stow_log_detail("RDS %s %s is \"%s\"; next check in %.1f s", target->kind, target->id,
                        status, (double)pause / 1000);
        if (sleep_interruptible(pause) != 0)
            return stow_fail_interrupted(err, step);
        delay = delay >= SNAPSHOT_POLL_MAX_MS / 2 ? SNAPSHOT_POLL_MAX_MS : delay * 2;
    }
}

int snapshot_wait_available(rds_client *client, int cluster, const char *snapshot_id,
                            const struct snapshot_wait *wait, struct rds_snapshot *out,
                            stow_error *err)
{
    struct wait_target target = {cluster ? "cluster snapshot" : "snapshot", snapshot_id,
                                 describe_snapshot_status, client, cluster, out, NULL};

    memset(out, 0, sizeof *out);
    return wait_available(&target, wait, err);
}

int snapshot_wait_instance_available(rds_client *client, const char *instance_id,
                                     const struct snapshot_wait *wait,
                                     struct rds_instance *out, stow_error *err)
{
    struct wait_target target = {"instance", instance_id, describe_instance_status, client, 0,
                                 NULL, out};

    memset(out, 0, sizeof *out);
    return wait_available(&target, wait, err);
}

/* --- manifests --------------------------------------------------------------- */

int snapshot_catalog_key(char *out, size_t size, const char *source_id,
                         const char *snapshot_id, const char *file)
{
    int written = snprintf(out, size, "%s/%s/%s/%s", SNAPSHOT_CATALOG_DIR, source_id,
                           snapshot_id, file);

    return written < 0 || (size_t)written >= size ? -1 : 0;
}

static json_t *time_or_null(time_t when)
{
    char text[32];

    if (when == 0)
        return json_null();
    manifest_format_time(when, text);
    return json_string(text);
}

static json_t *string_or_null(const char *text)
{
    return text != NULL && text[0] != '\0' ? json_string(text) : json_null();
}

static json_t *tags_json(const struct rds_tag_list *tags)
{
    json_t *object = json_object();

    for (size_t i = 0; i < tags->count; i++)
        json_object_set_new(object, tags->tags[i].key, json_string(tags->tags[i].value));
    return object;
}

json_t *snapshot_manifest_new(const struct snapshot_result *result)
{
    const struct rds_snapshot *s = &result->snapshot;
    json_t *doc = json_object();
    json_t *source = json_object();

    json_object_set_new(source, s->cluster ? "cluster" : "instance", json_string(s->source_id));
    json_object_set_new(source, "engine", json_string(s->engine));
    json_object_set_new(source, "engine_version", json_string(s->engine_version));

    json_object_set_new(doc, "format", json_string(MANIFEST_FORMAT));
    json_object_set_new(doc, "format_version", json_integer(MANIFEST_SNAPSHOT_VERSION));
    json_object_set_new(doc, "kind", json_string(SNAPSHOT_MANIFEST_KIND));
    json_object_set_new(doc, "id", json_string(s->id));
    json_object_set_new(doc, "snapshot_type", json_string(s->cluster ? "db-cluster" : "db"));
    json_object_set_new(doc, "arn", json_string(s->arn));
    json_object_set_new(doc, "region", json_string(result->region));
    json_object_set_new(doc, "source", source);
    json_object_set_new(doc, "allocated_storage_gib", json_integer(s->allocated_storage_gib));
    json_object_set_new(doc, "encrypted", json_boolean(s->encrypted));
    json_object_set_new(doc, "kms_key_id", string_or_null(s->kms_key_id));
    json_object_set_new(doc, "snapshot_created_at", time_or_null(s->created));
    json_object_set_new(doc, "started_at", time_or_null(result->requested_at));
    json_object_set_new(doc, "finished_at", time_or_null(result->available_at));
    json_object_set_new(doc, "tags", tags_json(&s->tags));
    if (result->copied_from_id[0] != '\0')
        json_object_set_new(doc, "copied_from",
                            json_pack("{s:s, s:s, s:s}", "id", result->copied_from_id, "arn",
                                      result->copied_from_arn, "region",
                                      result->copied_from_region));
    else
        json_object_set_new(doc, "copied_from", json_null());
    json_object_set_new(doc, "tools", json_pack("{s:s}", "stowage", STOWAGE_VERSION));
    return doc;
}

int snapshot_manifest_store(storage *store, struct snapshot_result *result, stow_error *err)
{
    static const struct storage_put_options options = {1, "application/json"};
    const struct rds_snapshot *s = &result->snapshot;
    json_t *doc;
    char *text;
    char key[SNAPSHOT_KEY_MAX];
    int rc;

    if (snapshot_catalog_key(key, sizeof key, s->source_id, s->id, SNAPSHOT_MANIFEST_FILE) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "manifest key for snapshot %s is too long",
                         s->id);
    doc = snapshot_manifest_new(result);
    text = manifest_serialise(doc, err);
    json_decref(doc);
    if (text == NULL)
        return -1;
    rc = storage_put(store, key, text, strlen(text), &options, err);
    free(text);
    if (rc == STORAGE_CONFLICT) {
        stow_fail(err, STOW_EXIT_FAILURE, "the repository already holds a manifest at %s", key);
        stow_error_hint(err, "snapshot ids are unique per repository; record the snapshot in "
                             "another repository or delete the stale manifest");
        return -1;
    }
    if (rc != 0)
        return -1;
    snprintf(result->manifest_key, sizeof result->manifest_key, "%s", key);
    stow_log_info("recorded snapshot %s in %s", s->id, key);
    return 0;
}

void snapshot_result_free(struct snapshot_result *result)
{
    if (result != NULL)
        rds_snapshot_free(&result->snapshot);
}

/* --- create ---------------------------------------------------------------- */

/* Deletes a snapshot whose wait failed; logs what happened. */
static void discard_unfinished(rds_client *client, const char *snapshot_id, int cluster)
{
    stow_error err = {0};

    if (cluster) {
        stow_log_warn("cluster snapshot %s was left in RDS; it carries Stowage's tag, so "
                      "delete it once it is available", snapshot_id);
        return;
    }
    if (rds_delete_snapshot(client, snapshot_id, &err) < 0)
        stow_log_warn("could not delete the unfinished snapshot %s (%s); it carries "
                      "Stowage's tag, so stowage snapshot expire removes it later",
                      snapshot_id, err.message);
    else
        stow_log_info("deleted the unfinished snapshot %s", snapshot_id);
}

/* Returns 1 when a failed create only met its own snapshot: an earlier
 * attempt of the call took effect but its response was lost, and the retry
 * got DBSnapshotAlreadyExists. The snapshot must come from source_id and
 * carry Stowage's tag. Clears err when it returns 1. */
static int created_by_lost_attempt(rds_client *client, int cluster, const char *snapshot_id,
                                   const char *source_id, stow_error *err)
{
    const char *code = rds_client_error_code(client);
    struct rds_snapshot found;
    stow_error ignored = {0};
    const char *creator;
    int ours;

    if (rds_client_error_attempts(client) < 2 ||
        (strcmp(code, "DBSnapshotAlreadyExists") != 0 &&
         strcmp(code, "DBClusterSnapshotAlreadyExistsFault") != 0))
        return 0;
    if (rds_describe_snapshot(client, cluster, snapshot_id, &found, &ignored) != 0)
        return 0;
    creator = rds_tag_value(&found.tags, RDS_TAG_CREATED_BY);
    ours = strcmp(found.source_id, source_id) == 0 && creator != NULL &&
           strcmp(creator, RDS_TAG_CREATED_BY_VALUE) == 0;
    rds_snapshot_free(&found);
    if (!ours)
        return 0;
    stow_log_warn("snapshot %s was created by an earlier attempt whose response was lost; "
                  "using it", snapshot_id);
    stow_error_clear(err);
    return 1;
}

int snapshot_create(rds_client *client, const struct snapshot_create_options *options,
                    struct snapshot_result *out, stow_error *err)
{
    int cluster = options->cluster_id != NULL;
    const char *source_id = cluster ? options->cluster_id : options->instance_id;
    char snapshot_id[RDS_ID_MAX];
    struct rds_tag tags[] = {{RDS_TAG_CREATED_BY, RDS_TAG_CREATED_BY_VALUE},
                             {RDS_TAG_SOURCE, (char *)source_id}};
    struct rds_create_snapshot request = {cluster, snapshot_id, source_id, tags, 2};
    struct rds_snapshot created;

    memset(out, 0, sizeof *out);
    snprintf(out->region, sizeof out->region, "%s", rds_client_region(client));
    out->requested_at = time(NULL);
    snapshot_name(source_id, out->requested_at, snapshot_id);

    /* Ask RDS for the snapshot. */
    stow_log_info("creating %s %s of %s %s in %s", cluster ? "cluster snapshot" : "snapshot",
                  snapshot_id, cluster ? "cluster" : "instance", source_id, out->region);
    if (rds_create_snapshot(client, &request, &created, err) != 0) {
        if (!created_by_lost_attempt(client, cluster, snapshot_id, source_id, err))
            return -1;
    } else {
        rds_snapshot_free(&created);
    }

    /* Wait until it is available. */
    if (snapshot_wait_available(client, cluster, snapshot_id, &options->wait, &out->snapshot,
                                err) != 0) {
        discard_unfinished(client, snapshot_id, cluster);
        return -1;
    }
    out->available_at = time(NULL);
    stow_log_info("snapshot %s is available after %llds (%ld GiB allocated)", snapshot_id,
                  (long long)(out->available_at - out->requested_at),
                  out->snapshot.allocated_storage_gib);

    /* Record it. */
    if (options->store != NULL && snapshot_manifest_store(options->store, out, err) != 0)
        return -1;
    return 0;
}

/* --- copy ------------------------------------------------------------------- */

static int check_copy_source(const struct rds_snapshot *source,
                             const struct snapshot_copy_options *options, int cross_region,
                             const char *target_region, stow_error *err)
{
    if (strcmp(source->status, "available") != 0) {
        stow_fail(err, STOW_EXIT_FAILURE, "snapshot %s is \"%s\", not available", source->id,
                  source->status);
        stow_error_hint(err, "copy it once it is available");
        return -1;
    }
    if (source->encrypted && cross_region && options->kms_key_id == NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "snapshot %s is encrypted: copying it to %s needs a "
                  "KMS key of that region", source->id, target_region);
        stow_error_hint(err, "give --kms-key with a key id, ARN or alias in %s", target_region);
        return -1;
    }
    return 0;
}

int snapshot_copy(rds_client *source, rds_client *target,
                  const struct snapshot_copy_options *options, struct snapshot_result *out,
                  stow_error *err)
{
    const char *source_region = rds_client_region(source);
    const char *target_region = rds_client_region(target);
    int cross_region = strcmp(source_region, target_region) != 0;
    struct rds_snapshot original;
    struct rds_snapshot requested;
    char target_id[RDS_ID_MAX];
    struct rds_tag tags[3];
    struct rds_copy_snapshot request;
    int rc;

    memset(out, 0, sizeof *out);
    snprintf(out->region, sizeof out->region, "%s", target_region);
    out->requested_at = time(NULL);

    /* Find the source snapshot: its ARN, its state and whether it is encrypted. */
    rc = rds_describe_snapshot(source, 0, options->snapshot_id, &original, err);
    if (rc == RDS_NOT_FOUND) {
        stow_fail(err, STOW_EXIT_USAGE, "RDS snapshot %s not found in %s", options->snapshot_id,
                  source_region);
        stow_error_hint(err, "check the snapshot id and --region; stowage snapshot list shows "
                             "the snapshots");
        return -1;
    }
    if (rc != 0)
        return -1;
    rc = check_copy_source(&original, options, cross_region, target_region, err);
    if (rc != 0)
        goto done;
    if (options->target_id != NULL)
        snprintf(target_id, sizeof target_id, "%s", options->target_id);
    else
        snapshot_copy_name(original.id, target_region, target_id);

    /* Copy it in the target region, tagged as Stowage's. */
    tags[0] = (struct rds_tag){RDS_TAG_CREATED_BY, RDS_TAG_CREATED_BY_VALUE};
    tags[1] = (struct rds_tag){RDS_TAG_SOURCE, original.source_id};
    tags[2] = (struct rds_tag){RDS_TAG_COPIED_FROM, original.arn};
    memset(&request, 0, sizeof request);
    request.source_arn = original.arn;
    request.source_region = source_region;
    request.source_endpoint = rds_client_endpoint(source);
    request.target_id = target_id;
    request.kms_key_id = options->kms_key_id;
    request.tags = tags;
    request.tag_count = 3;
    stow_log_info("copying snapshot %s from %s to %s as %s", original.id, source_region,
                  target_region, target_id);
    rc = rds_copy_snapshot(target, &request, &requested, err);
    rds_snapshot_free(&requested);
    if (rc != 0)
        goto done;

    /* Wait until the copy is available, then record it. */
    rc = snapshot_wait_available(target, 0, target_id, &options->wait, &out->snapshot, err);
    if (rc != 0) {
        discard_unfinished(target, target_id, 0);
        goto done;
    }
    out->available_at = time(NULL);
    snprintf(out->copied_from_id, sizeof out->copied_from_id, "%s", original.id);
    snprintf(out->copied_from_arn, sizeof out->copied_from_arn, "%s", original.arn);
    snprintf(out->copied_from_region, sizeof out->copied_from_region, "%s", source_region);
    stow_log_info("copy %s is available in %s after %llds", target_id, target_region,
                  (long long)(out->available_at - out->requested_at));
    if (options->store != NULL)
        rc = snapshot_manifest_store(options->store, out, err);

done:
    rds_snapshot_free(&original);
    return rc == 0 ? 0 : -1;
}

/* --- expiry ------------------------------------------------------------------ */

static int compare_newest_first(const void *left, const void *right)
{
    const struct rds_snapshot *a = left;
    const struct rds_snapshot *b = right;

    if (a->created != b->created)
        return a->created > b->created ? -1 : 1;
    return strcmp(a->id, b->id);
}

void snapshot_sort_newest_first(struct rds_snapshot *items, size_t count)
{
    if (count > 1)
        qsort(items, count, sizeof *items, compare_newest_first);
}

void snapshot_plan_expiry(const struct rds_snapshot *items, size_t count,
                          const struct snapshot_expiry_policy *policy,
                          enum snapshot_verdict *verdicts)
{
    long rank = 0;

    for (size_t i = 0; i < count; i++) {
        const struct rds_snapshot *s = &items[i];

        if (snapshot_is_automated(s))
            verdicts[i] = SNAPSHOT_KEEP_AUTOMATED;
        else if (!snapshot_is_stowage(s))
            verdicts[i] = SNAPSHOT_KEEP_NOT_OURS;
        else if (strcmp(s->status, "available") != 0 || s->created == 0)
            verdicts[i] = SNAPSHOT_KEEP_NOT_AVAILABLE;
        else if (++rank <= policy->keep_last)
            verdicts[i] = SNAPSHOT_KEEP_NEWEST;
        else if (policy->keep_within_seconds > 0 &&
                 policy->now - s->created < policy->keep_within_seconds)
            verdicts[i] = SNAPSHOT_KEEP_WITHIN;
        else
            verdicts[i] = SNAPSHOT_DELETE;
    }
}

const char *snapshot_verdict_text(enum snapshot_verdict verdict)
{
    switch (verdict) {
    case SNAPSHOT_DELETE: return "delete";
    case SNAPSHOT_KEEP_NEWEST: return "keep (newest)";
    case SNAPSHOT_KEEP_WITHIN: return "keep (within --keep-within)";
    case SNAPSHOT_KEEP_AUTOMATED: return "keep (automated)";
    case SNAPSHOT_KEEP_NOT_OURS: return "keep (not created by Stowage)";
    case SNAPSHOT_KEEP_NOT_AVAILABLE: return "keep (not available)";
    }
    return "keep";
}

/* Deletes one planned snapshot and its manifest. Returns 0 or -1 (logged). */
static int delete_planned(rds_client *client, storage *store, const struct rds_snapshot *s)
{
    char key[SNAPSHOT_KEY_MAX];
    stow_error err = {0};
    int rc = rds_delete_snapshot(client, s->id, &err);

    if (rc < 0) {
        stow_log_error(&err);
        return -1;
    }
    stow_log_info("deleted snapshot %s of instance %s (created %lld s ago)", s->id,
                  s->source_id, (long long)(time(NULL) - s->created));
    if (store != NULL &&
        snapshot_catalog_key(key, sizeof key, s->source_id, s->id, SNAPSHOT_MANIFEST_FILE) == 0 &&
        storage_delete(store, key, &err) != 0) {
        stow_log_warn("deleted snapshot %s, but not its manifest %s: %s", s->id, key,
                      err.message);
    }
    return 0;
}

int snapshot_expire(rds_client *client, const struct snapshot_expire_options *options,
                    struct snapshot_expiry *out, stow_error *err)
{
    struct rds_snapshot_list *list = &out->snapshots;

    memset(out, 0, sizeof *out);
    if (rds_describe_snapshots(client, 0, options->instance_id, list, err) != 0)
        return -1;
    snapshot_sort_newest_first(list->items, list->count);
    out->verdicts = calloc(list->count + 1, sizeof *out->verdicts);
    out->deleted = calloc(list->count + 1, sizeof *out->deleted);
    if (out->verdicts == NULL || out->deleted == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory planning snapshot expiry");
    snapshot_plan_expiry(list->items, list->count, &options->policy, out->verdicts);

    for (size_t i = 0; i < list->count; i++) {
        if (out->verdicts[i] != SNAPSHOT_DELETE)
            continue;
        out->delete_count++;
        if (options->dry_run)
            continue;
        if (stow_interrupted())
            return stow_fail_interrupted(err, "snapshot expiry");
        out->deleted[i] = delete_planned(client, options->store, &list->items[i]) == 0 ? 1 : -1;
        if (out->deleted[i] < 0)
            out->failed_count++;
    }
    if (out->failed_count > 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "%zu of %zu snapshots of instance %s could not "
                         "be deleted (see the log)", out->failed_count, out->delete_count,
                         options->instance_id);
    return 0;
}

void snapshot_expiry_free(struct snapshot_expiry *expiry)
{
    if (expiry == NULL)
        return;
    rds_snapshot_list_free(&expiry->snapshots);
    free(expiry->verdicts);
    free(expiry->deleted);
    memset(expiry, 0, sizeof *expiry);
}
