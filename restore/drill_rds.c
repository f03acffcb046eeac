/* The choice of the snapshot copy for RDS drills, and its recovery point. */
#include "drill_rds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "manifest.h"
#include "rds/snapshot.h"

/* Length of "YYYYMMDD-HHMMSS", the time in snapshot_name's names. */
#define NAME_STAMP_LEN 15

/* Returns 1 for an available DB snapshot that snapshot_copy made. */
static int is_stowage_copy(const struct rds_snapshot *snapshot)
{
    return !snapshot->cluster && strcmp(snapshot->status, "available") == 0 &&
           snapshot_is_stowage(snapshot) &&
           rds_tag_value(&snapshot->tags, RDS_TAG_COPIED_FROM) != NULL;
}

/* Reads the tags of manual snapshots whose listing carried none. */
static int load_missing_tags(rds_client *client, struct rds_snapshot_list *list,
                             stow_error *err)
{
    for (size_t i = 0; i < list->count; i++) {
        struct rds_snapshot *snapshot = &list->items[i];

        if (snapshot->tags.present || snapshot->arn[0] == '\0' ||
            snapshot_is_automated(snapshot))
            continue;
        if (rds_list_tags(client, snapshot->arn, &snapshot->tags, err) != 0)
            return -1;
    }
    return 0;
}

/* Parses the time of "stowage-SOURCE-YYYYMMDD-HHMMSS", the last part of the
 * original's ARN in the copied-from tag. Returns 0 when it has another form. */
static time_t time_in_original_name(const struct rds_snapshot *copy)
{
    const char *arn = rds_tag_value(&copy->tags, RDS_TAG_COPIED_FROM);
    const char *name = arn != NULL ? strrchr(arn, ':') : NULL;
    char prefix[RDS_ID_MAX + 16];
    const char *stamp;
    const char *rest;
    struct tm utc;

    if (name == NULL)
        return 0;
    name++;
    snprintf(prefix, sizeof prefix, "stowage-%s-", copy->source_id);
    if (strncmp(name, prefix, strlen(prefix)) != 0 ||
        strlen(name) != strlen(prefix) + NAME_STAMP_LEN)
        return 0;
    stamp = name + strlen(prefix);
    memset(&utc, 0, sizeof utc);
    rest = strptime(stamp, "%Y%m%d-%H%M%S", &utc);
    if (rest == NULL || *rest != '\0')
        return 0;
    return timegm(&utc);
}

void drill_snapshot_set_recovery_point(struct drill_snapshot *snapshot)
{
    const struct rds_snapshot *copy = &snapshot->copy;
    time_t named = time_in_original_name(copy);

    if (copy->original_created != 0) {
        snapshot->recovery_point = copy->original_created;
        snapshot->basis = DRILL_BASIS_ORIGINAL;
    } else if (named != 0) {
        snapshot->recovery_point = named;
        snapshot->basis = DRILL_BASIS_NAME;
    } else {
        snapshot->recovery_point = copy->created;
        snapshot->basis = DRILL_BASIS_COPY;
    }
}

/* Fails naming the region and the command that makes copies. */
static int fail_no_copy(rds_client *client, const char *instance_id, stow_error *err)
{
    const char *region = rds_client_region(client);

    stow_fail(err, STOW_EXIT_USAGE, "no available snapshot copy made by stowage replicate "
                                    "--snapshots found in %s%s%s",
              region, instance_id ? " for instance " : "", instance_id ? instance_id : "");
    stow_error_hint(err, "run stowage replicate --snapshots --to-region %s first (it copies the "
                         "snapshots that stowage snapshot create made), or check --rds-region "
                         "and --instance", region);
    return -1;
}

/* Fails when copies of more than one instance are candidates. */
static int check_one_instance(const struct rds_snapshot_list *list, const char *region,
                              stow_error *err)
{
    const struct rds_snapshot *first = NULL;

    for (size_t i = 0; i < list->count; i++) {
        const struct rds_snapshot *snapshot = &list->items[i];

        if (!is_stowage_copy(snapshot))
            continue;
        if (first == NULL) {
            first = snapshot;
            continue;
        }
        if (strcmp(first->source_id, snapshot->source_id) != 0) {
            stow_fail(err, STOW_EXIT_USAGE, "%s holds snapshot copies of several instances, "
                      "such as %s and %s", region, first->source_id, snapshot->source_id);
            stow_error_hint(err, "choose the instance to drill with --instance ID");
            return -1;
        }
    }
    return 0;
}

/* Chooses the copy with the newest recovery point and moves it to out. */
static int choose_newest(struct rds_snapshot_list *list, struct drill_snapshot *out)
{
    struct drill_snapshot candidate;
    size_t best = list->count;

    for (size_t i = 0; i < list->count; i++) {
        if (!is_stowage_copy(&list->items[i]))
            continue;
        candidate.copy = list->items[i];
        drill_snapshot_set_recovery_point(&candidate);
        if (best == list->count || candidate.recovery_point > out->recovery_point ||
            (candidate.recovery_point == out->recovery_point &&
             strcmp(candidate.copy.id, out->copy.id) > 0)) {
            best = i;
            *out = candidate;
        }
    }
    if (best == list->count)
        return -1;
    /* out->copy now owns the tags; the list must not free them too. */
    memset(&list->items[best].tags, 0, sizeof list->items[best].tags);
    return 0;
}

int drill_find_snapshot_copy(rds_client *client, const char *instance_id,
                             struct drill_snapshot *out, stow_error *err)
{
    struct rds_snapshot_list list = {0};
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (rds_describe_snapshots(client, 0, instance_id, &list, err) != 0 ||
        load_missing_tags(client, &list, err) != 0)
        goto done;
    if (instance_id == NULL && check_one_instance(&list, rds_client_region(client), err) != 0)
        goto done;
    if (choose_newest(&list, out) != 0) {
        fail_no_copy(client, instance_id, err);
        goto done;
    }
    if (strcmp(out->basis, DRILL_BASIS_COPY) == 0)
        stow_log_warn("snapshot copy %s has neither OriginalSnapshotCreateTime nor a copied-from "
                      "tag naming a Stowage snapshot; its RPO counts from when the copy was "
                      "made, which is later than when its data was taken", out->copy.id);
    rc = 0;

done:
    rds_snapshot_list_free(&list);
    return rc;
}

json_t *drill_snapshot_json(const struct drill_snapshot *snapshot)
{
    const struct rds_snapshot *copy = &snapshot->copy;
    const char *original = rds_tag_value(&copy->tags, RDS_TAG_COPIED_FROM);

    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s}", "id", copy->id, "arn",
                     copy->arn, "instance", copy->source_id, "copied_from",
                     original ? original : "", "created_at", manifest_time_json(copy->created),
                     "original_created_at", manifest_time_json(copy->original_created),
                     "recovery_point", manifest_time_json(snapshot->recovery_point),
                     "recovery_point_basis", snapshot->basis);
}

void drill_snapshot_free(struct drill_snapshot *snapshot)
{
    if (snapshot != NULL)
        rds_snapshot_free(&snapshot->copy);
}
