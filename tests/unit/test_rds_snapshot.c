/* Snapshot logic without RDS: names, ownership, expiry plans and the
 * snapshot manifest document. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "rds/snapshot.h"

/* 2026-12-04T03:00:00Z */
#define FIXED_TIME 1796353200
#define HOUR 3600

static struct rds_tag stowage_tags[] = {{RDS_TAG_CREATED_BY, RDS_TAG_CREATED_BY_VALUE}};
static struct rds_tag foreign_tags[] = {{"team", "dba"}};

static struct rds_snapshot make_snapshot(const char *id, const char *type, const char *status,
                                         time_t created, int ours)
{
    struct rds_snapshot s;

    memset(&s, 0, sizeof s);
    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.source_id, sizeof s.source_id, "db1");
    snprintf(s.snapshot_type, sizeof s.snapshot_type, "%s", type);
    snprintf(s.status, sizeof s.status, "%s", status);
    s.created = created;
    s.tags.present = 1;
    s.tags.tags = ours ? stowage_tags : foreign_tags;
    s.tags.count = 1;
    return s;
}

static void test_snapshot_name(void)
{
    char name[RDS_ID_MAX];

    snapshot_name("db1", FIXED_TIME, name);
    CHECK_STR_EQ("stowage-db1-20261204-030000", name);
    CHECK_INT_EQ(1, rds_identifier_is_valid(name, 255));
}

static void test_copy_name(void)
{
    char name[RDS_ID_MAX];
    char long_id[RDS_ID_MAX];

    snapshot_copy_name("stowage-db1-20261204-030000", "us-west-2", name);
    CHECK_STR_EQ("stowage-db1-20261204-030000-us-west-2", name);

    snapshot_copy_name("rds:db1-2026-12-04-03-00", "eu-west-1", name);
    CHECK_STR_EQ("rds-db1-2026-12-04-03-00-eu-west-1", name);
    CHECK_INT_EQ(1, rds_identifier_is_valid(name, 255));

    snapshot_copy_name("9lives", "us-east-1", name);
    CHECK_STR_EQ("s9lives-us-east-1", name);

    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    snapshot_copy_name(long_id, "us-east-1", name);
    CHECK_INT_EQ(255, strlen(name));
    CHECK_INT_EQ(1, rds_identifier_is_valid(name, 255));
}

static void test_ownership(void)
{
    struct rds_snapshot ours = make_snapshot("stowage-db1-1", "manual", "available", 1, 1);
    struct rds_snapshot foreign = make_snapshot("nightly", "manual", "available", 1, 0);
    struct rds_snapshot automated = make_snapshot("rds:db1-2026", "automated", "available", 1, 1);
    struct rds_snapshot shared = make_snapshot("shared-1", "shared", "available", 1, 1);
    struct rds_snapshot rds_named = make_snapshot("rds:db1-x", "manual", "available", 1, 1);

    CHECK_INT_EQ(1, snapshot_is_stowage(&ours));
    CHECK_INT_EQ(0, snapshot_is_stowage(&foreign));
    CHECK_INT_EQ(0, snapshot_is_stowage(&automated));
    CHECK_INT_EQ(1, snapshot_is_automated(&automated));
    CHECK_INT_EQ(0, snapshot_is_stowage(&shared));
    CHECK_INT_EQ(1, snapshot_is_automated(&rds_named));
    CHECK_INT_EQ(0, snapshot_is_stowage(&rds_named));
}

static void test_plan_keep_last(void)
{
    struct rds_snapshot items[] = {
        make_snapshot("s5", "manual", "available", FIXED_TIME - 1 * HOUR, 1),
        make_snapshot("s4", "manual", "creating", FIXED_TIME - 2 * HOUR, 1),
        make_snapshot("rds:db1-a", "automated", "available", FIXED_TIME - 3 * HOUR, 0),
        make_snapshot("s3", "manual", "available", FIXED_TIME - 4 * HOUR, 1),
        make_snapshot("foreign", "manual", "available", FIXED_TIME - 5 * HOUR, 0),
        make_snapshot("s2", "manual", "available", FIXED_TIME - 6 * HOUR, 1),
        make_snapshot("s1", "manual", "available", FIXED_TIME - 7 * HOUR, 1),
    };
    struct snapshot_expiry_policy policy = {2, 0, FIXED_TIME};
    enum snapshot_verdict verdicts[7];

    snapshot_plan_expiry(items, 7, &policy, verdicts);
    CHECK_INT_EQ(SNAPSHOT_KEEP_NEWEST, verdicts[0]);
    CHECK_INT_EQ(SNAPSHOT_KEEP_NOT_AVAILABLE, verdicts[1]);
    CHECK_INT_EQ(SNAPSHOT_KEEP_AUTOMATED, verdicts[2]);
    CHECK_INT_EQ(SNAPSHOT_KEEP_NEWEST, verdicts[3]);
    CHECK_INT_EQ(SNAPSHOT_KEEP_NOT_OURS, verdicts[4]);
    CHECK_INT_EQ(SNAPSHOT_DELETE, verdicts[5]);
    CHECK_INT_EQ(SNAPSHOT_DELETE, verdicts[6]);
}

static void test_plan_keep_within(void)
{
    struct rds_snapshot items[] = {
        make_snapshot("s3", "manual", "available", FIXED_TIME - 1 * HOUR, 1),
        make_snapshot("s2", "manual", "available", FIXED_TIME - 10 * HOUR, 1),
        make_snapshot("s1", "manual", "available", FIXED_TIME - 30 * HOUR, 1),
    };
    struct snapshot_expiry_policy policy = {1, 24 * HOUR, FIXED_TIME};
    enum snapshot_verdict verdicts[3];

    snapshot_plan_expiry(items, 3, &policy, verdicts);
    CHECK_INT_EQ(SNAPSHOT_KEEP_NEWEST, verdicts[0]);
    CHECK_INT_EQ(SNAPSHOT_KEEP_WITHIN, verdicts[1]);
    CHECK_INT_EQ(SNAPSHOT_DELETE, verdicts[2]);
}

static void test_sort_newest_first(void)
{
    struct rds_snapshot items[] = {
        make_snapshot("b", "manual", "available", 100, 1),
        make_snapshot("c", "manual", "available", 300, 1),
        make_snapshot("a", "manual", "available", 100, 1),
    };

    snapshot_sort_newest_first(items, 3);
    CHECK_STR_EQ("c", items[0].id);
    CHECK_STR_EQ("a", items[1].id);
    CHECK_STR_EQ("b", items[2].id);
}

static void test_manifest_document(void)
{
    struct snapshot_result result;
    json_t *doc;
    char key[SNAPSHOT_KEY_MAX];

    memset(&result, 0, sizeof result);
    result.snapshot = make_snapshot("stowage-db1-20261204-030000-us-west-2", "manual",
                                    "available", FIXED_TIME + 60, 1);
    snprintf(result.snapshot.arn, sizeof result.snapshot.arn,
             "arn:aws:rds:us-west-2:1:snapshot:copy");
    snprintf(result.snapshot.engine, sizeof result.snapshot.engine, "postgres");
    snprintf(result.snapshot.engine_version, sizeof result.snapshot.engine_version, "15.4");
    snprintf(result.snapshot.kms_key_id, sizeof result.snapshot.kms_key_id, "arn:aws:kms:k");
    result.snapshot.encrypted = 1;
    result.snapshot.allocated_storage_gib = 20;
    snprintf(result.region, sizeof result.region, "us-west-2");
    snprintf(result.copied_from_id, sizeof result.copied_from_id, "stowage-db1-20261204-030000");
    snprintf(result.copied_from_arn, sizeof result.copied_from_arn,
             "arn:aws:rds:us-east-1:1:snapshot:src");
    snprintf(result.copied_from_region, sizeof result.copied_from_region, "us-east-1");
    result.requested_at = FIXED_TIME + 30;
    result.available_at = FIXED_TIME + 90;

    doc = snapshot_manifest_new(&result);
    CHECK_STR_EQ("stowage-manifest", json_string_value(json_object_get(doc, "format")));
    CHECK_STR_EQ("snapshot", json_string_value(json_object_get(doc, "kind")));
    CHECK_STR_EQ("db", json_string_value(json_object_get(doc, "snapshot_type")));
    CHECK_STR_EQ("us-west-2", json_string_value(json_object_get(doc, "region")));
    CHECK_STR_EQ("db1", json_string_value(json_object_get(json_object_get(doc, "source"),
                                                          "instance")));
    CHECK_INT_EQ(20, json_integer_value(json_object_get(doc, "allocated_storage_gib")));
    CHECK(json_is_true(json_object_get(doc, "encrypted")));
    CHECK_STR_EQ("arn:aws:kms:k", json_string_value(json_object_get(doc, "kms_key_id")));
    CHECK_STR_EQ("2026-12-04T03:01:00Z",
                 json_string_value(json_object_get(doc, "snapshot_created_at")));
    CHECK_STR_EQ("2026-12-04T03:00:30Z", json_string_value(json_object_get(doc, "started_at")));
    CHECK_STR_EQ("2026-12-04T03:01:30Z", json_string_value(json_object_get(doc, "finished_at")));
    CHECK_STR_EQ("stowage", json_string_value(json_object_get(json_object_get(doc, "tags"),
                                                              RDS_TAG_CREATED_BY)));
    CHECK_STR_EQ("us-east-1", json_string_value(json_object_get(
                                  json_object_get(doc, "copied_from"), "region")));
    CHECK_STR_EQ("stowage-db1-20261204-030000", json_string_value(json_object_get(
                                                    json_object_get(doc, "copied_from"), "id")));
    CHECK_STR_EQ("arn:aws:rds:us-east-1:1:snapshot:src",
                 json_string_value(json_object_get(json_object_get(doc, "copied_from"), "arn")));
    json_decref(doc);

    CHECK_INT_EQ(0, snapshot_catalog_key(key, sizeof key, "db1", "s1", SNAPSHOT_MANIFEST_FILE));
    CHECK_STR_EQ("snapshots/db1/s1/manifest.json", key);
    CHECK_INT_EQ(-1, snapshot_catalog_key(key, 10, "db1", "s1", SNAPSHOT_MANIFEST_FILE));
}

int main(void)
{
    unit_run("snapshot name", test_snapshot_name);
    unit_run("copy name", test_copy_name);
    unit_run("ownership", test_ownership);
    unit_run("plan keep last", test_plan_keep_last);
    unit_run("plan keep within", test_plan_keep_within);
    unit_run("sort newest first", test_sort_newest_first);
    unit_run("manifest document", test_manifest_document);
    return unit_finish();
}
