/* Tests of the recovery point of RDS drills (restore/drill_rds.c): which
 * time of a snapshot copy the RPO counts from. */
#include <stdio.h>
#include <string.h>

#include "drill_rds.h"
#include "unit.h"

#define ORIGINAL_ARN "arn:aws:rds:us-east-1:123456789012:snapshot:"

/* Returns a copy of instance db1 whose copied-from tag names original_name
 * (NULL: no tag). The tag strings point into static storage, so the copy is
 * not freed. */
static struct drill_snapshot copy_of(const char *original_name, time_t original_created,
                                     time_t created)
{
    static char arn[512];
    static struct rds_tag tag;
    struct drill_snapshot snapshot;

    memset(&snapshot, 0, sizeof snapshot);
    snprintf(snapshot.copy.id, sizeof snapshot.copy.id, "copy");
    snprintf(snapshot.copy.source_id, sizeof snapshot.copy.source_id, "db1");
    snapshot.copy.original_created = original_created;
    snapshot.copy.created = created;
    snapshot.copy.tags.present = 1;
    if (original_name != NULL) {
        snprintf(arn, sizeof arn, ORIGINAL_ARN "%s", original_name);
        tag.key = (char *)RDS_TAG_COPIED_FROM;
        tag.value = arn;
        snapshot.copy.tags.tags = &tag;
        snapshot.copy.tags.count = 1;
    }
    return snapshot;
}

static void test_original_create_time_first(void)
{
    struct drill_snapshot snapshot = copy_of("stowage-db1-20261204-030000", 1796353215,
                                             1796356800);

    drill_snapshot_set_recovery_point(&snapshot);
    CHECK_INT_EQ(1796353215, snapshot.recovery_point);
    CHECK_STR_EQ(DRILL_BASIS_ORIGINAL, snapshot.basis);
}

static void test_name_of_original(void)
{
    /* 2026-12-04T03:00:00Z */
    struct drill_snapshot snapshot = copy_of("stowage-db1-20261204-030000", 0, 1796356800);

    drill_snapshot_set_recovery_point(&snapshot);
    CHECK_INT_EQ(1796353200, snapshot.recovery_point);
    CHECK_STR_EQ(DRILL_BASIS_NAME, snapshot.basis);
}

static void test_copy_time_last(void)
{
    static const char *const names[] = {
        "manual-db1-20261204-030000",   /* not a Stowage name */
        "stowage-db2-20261204-030000",  /* another instance's */
        "stowage-db1-20261204-0300",    /* time too short */
        "stowage-db1-20261204-030000x", /* trailing text */
        "stowage-db1-20261304-030000",  /* month 13 */
    };
    struct drill_snapshot snapshot;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snapshot = copy_of(names[i], 0, 1796356800);
        drill_snapshot_set_recovery_point(&snapshot);
        CHECK_INT_EQ(1796356800, snapshot.recovery_point);
        CHECK_STR_EQ(DRILL_BASIS_COPY, snapshot.basis);
    }

    snapshot = copy_of(NULL, 0, 1796356800);
    drill_snapshot_set_recovery_point(&snapshot);
    CHECK_INT_EQ(1796356800, snapshot.recovery_point);
    CHECK_STR_EQ(DRILL_BASIS_COPY, snapshot.basis);
}

int main(void)
{
    unit_run("original create time first", test_original_create_time_first);
    unit_run("name of the original", test_name_of_original);
    unit_run("copy time last", test_copy_time_last);
    return unit_finish();
}
