/* Manifest validation on golden files, times, ids, catalog names and the
 * part-size policy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "storage/storage.h"
#include "unit.h"

static char *read_golden(const char *name, size_t *len)
{
    char path[256];
    FILE *file;
    char *text;
    long size;

    snprintf(path, sizeof path, "golden/manifests/%s", name);
    file = fopen(path, "rb");
    if (file == NULL)
        return NULL;
    fseek(file, 0, SEEK_END);
    size = ftell(file);
    fseek(file, 0, SEEK_SET);
    text = malloc((size_t)size + 1);
    *len = fread(text, 1, (size_t)size, file);
    text[*len] = '\0';
    fclose(file);
    return text;
}

static void check_rejected(const char *name, const char *expected_fragment)
{
    struct manifest manifest;
    stow_error err = {0};
    size_t len = 0;
    char *text = read_golden(name, &len);

    CHECK(text != NULL);
    if (text == NULL)
        return;
    CHECK_INT_EQ(-1, manifest_parse(name, text, len, &manifest, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, name);
    CHECK_CONTAINS(err.message, expected_fragment);
    free(text);
}

static void test_valid_manifest(void)
{
    struct manifest manifest;
    stow_error err = {0};
    size_t len = 0;
    char *text = read_golden("valid.json", &len);

    CHECK_INT_EQ(0, manifest_parse("valid.json", text, len, &manifest, &err));
    CHECK_STR_EQ("20261204T030000Z-a1b2c3", manifest.id);
    CHECK_STR_EQ("appdb", manifest.name);
    CHECK_INT_EQ(2, manifest.parts.count);
    CHECK_INT_EQ(300, manifest.parts.total_size);
    CHECK_INT_EQ(200, manifest.parts.parts[1].offset);
    CHECK_INT_EQ(0xbb, manifest.parts.parts[1].sha256[31]);
    CHECK_INT_EQ(1, manifest.encrypted);
    CHECK_INT_EQ(1, manifest.recipient_count);
    CHECK_STR_EQ("0123456789abcdef", manifest.recipients[0].key_id);
    CHECK_INT_EQ(1796353200, manifest.started_at);
    manifest_free(&manifest);
    free(text);
}

static void test_newer_format_version(void)
{
    struct manifest manifest;
    stow_error err = {0};
    size_t len = 0;
    char *text = read_golden("wrong-version.json", &len);

    CHECK(text != NULL);
    if (text == NULL)
        return;
    CHECK_INT_EQ(-1, manifest_parse("wrong-version.json", text, len, &manifest, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "manifest wrong-version.json was written by a newer stowage: "
                                "it has format_version 3, and this stowage reads "
                                "format_version 1 to 2");
    CHECK_CONTAINS(err.hint, "upgrade stowage");
    free(text);
}

static void test_rejected_manifests(void)
{
    check_rejected("missing-id.json", "field id is missing");
    check_rejected("missing-part-sha256.json", "object.parts[].sha256 is missing");
    check_rejected("parts-do-not-sum.json", "the parts add up to 300 bytes but "
                                            "object.stored_bytes is 301");
    check_rejected("part-gap.json", "part 2 starts at offset 201, expected 200");
    check_rejected("no-recipients.json", "lists no encryption.recipients");
    check_rejected("bad-time.json", "not an RFC 3339 time");
    check_rejected("duplicate-key.json", "not valid JSON");
    check_rejected("not-json.json", "not valid JSON");
}

/* Parses valid.json with its object_lock member replaced by lock (NULL:
 * left out) and returns manifest_parse's result. */
static int parse_with_object_lock(json_t *lock, struct manifest *manifest, stow_error *err)
{
    size_t len = 0;
    char *text = read_golden("valid.json", &len);
    json_t *document = json_loadb(text, len, 0, NULL);
    char *changed;
    int rc;

    if (lock != NULL)
        json_object_set_new(document, "object_lock", lock);
    changed = json_dumps(document, 0);
    rc = manifest_parse("locked.json", changed, strlen(changed), manifest, err);
    free(changed);
    json_decref(document);
    free(text);
    return rc;
}

static void test_object_lock_member(void)
{
    struct storage_object_lock lock = {STORAGE_LOCK_COMPLIANCE, 1796428800};
    struct manifest manifest;
    stow_error err = {0};

    CHECK_INT_EQ(0, parse_with_object_lock(NULL, &manifest, &err));
    CHECK_INT_EQ(STORAGE_LOCK_NONE, manifest.lock_mode);
    CHECK_INT_EQ(0, manifest.lock_retain_until);
    manifest_free(&manifest);

    CHECK_INT_EQ(0, parse_with_object_lock(manifest_object_lock_to_json(&lock), &manifest, &err));
    CHECK_INT_EQ(STORAGE_LOCK_COMPLIANCE, manifest.lock_mode);
    CHECK_INT_EQ(1796428800, manifest.lock_retain_until);
    manifest_free(&manifest);
}

static void test_object_lock_rejected(void)
{
    struct manifest manifest;
    stow_error err = {0};

    CHECK_INT_EQ(-1, parse_with_object_lock(json_pack("{s:s, s:s}", "mode", "strict",
                                                      "retain_until", "2026-12-05T00:00:00Z"),
                                            &manifest, &err));
    CHECK_CONTAINS(err.message, "object_lock.mode \"strict\" is not GOVERNANCE or COMPLIANCE");
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, parse_with_object_lock(json_pack("{s:s, s:s}", "mode", "GOVERNANCE",
                                                      "retain_until", "tomorrow"),
                                            &manifest, &err));
    CHECK_CONTAINS(err.message, "object_lock.retain_until is not an RFC 3339 time");
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, parse_with_object_lock(json_pack("{s:s}", "mode", "GOVERNANCE"), &manifest,
                                            &err));
    CHECK_CONTAINS(err.message, "object_lock.retain_until is missing");
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, parse_with_object_lock(json_string("GOVERNANCE"), &manifest, &err));
    CHECK_CONTAINS(err.message, "field object_lock is not an object");
}

static void test_time_parsing(void)
{
    time_t when = 0;

    CHECK_INT_EQ(0, manifest_parse_time("2026-12-04T03:00:00Z", &when));
    CHECK_INT_EQ(1796353200, when);
    CHECK_INT_EQ(0, manifest_parse_time("2026-12-04T04:00:00+01:00", &when));
    CHECK_INT_EQ(1796353200, when);
    CHECK_INT_EQ(0, manifest_parse_time("2026-12-03T22:00:00-05:00", &when));
    CHECK_INT_EQ(1796353200, when);
    CHECK_INT_EQ(0, manifest_parse_time("2026-12-04 03:00:00.123Z", &when));
    CHECK_INT_EQ(1796353200, when);
    CHECK_INT_EQ(0, manifest_parse_time("2028-02-29", &when));
    CHECK_INT_EQ(1835395200, when);
    CHECK_INT_EQ(-1, manifest_parse_time("2026-13-01T00:00:00Z", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("2026-12-04T03:00:00Zjunk", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("yesterday", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("2026-02-30T00:00:00Z", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("2026-12-04T21:00:60Z", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("2027-02-29", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("2026-12-04T03:00:00-25:00", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("2026-12-04T03:00:00.Z", &when));
    CHECK_INT_EQ(-1, manifest_parse_time("2026-12-04T03:00:00+01:60", &when));
    CHECK_INT_EQ(0, manifest_parse_time("2026-12-04T03:00:00+23:59", &when));
    CHECK_INT_EQ(0, manifest_parse_time("2026-12-04t03:00:00z", &when));
    CHECK_INT_EQ(1796353200, when);
}

static void test_format_time_round_trip(void)
{
    char text[32];
    time_t back = 0;

    manifest_format_time(1796353200, text);
    CHECK_STR_EQ("2026-12-04T03:00:00Z", text);
    CHECK_INT_EQ(0, manifest_parse_time(text, &back));
    CHECK_INT_EQ(1796353200, back);
}

static void test_time_microseconds(void)
{
    char text[32];
    time_t back = 0;

    manifest_format_time_us(1796353200, 4567, text);
    CHECK_STR_EQ("2026-12-04T03:00:00.004567Z", text);
    CHECK_INT_EQ(0, manifest_parse_time(text, &back));
    CHECK_INT_EQ(1796353200, back);
    CHECK_INT_EQ(4567, manifest_time_microseconds(text));
    CHECK_INT_EQ(120000, manifest_time_microseconds("2026-12-04T03:00:00.12Z"));
    CHECK_INT_EQ(123456, manifest_time_microseconds("2026-12-04T03:00:00.1234567Z"));
    CHECK_INT_EQ(0, manifest_time_microseconds("2026-12-04T03:00:00Z"));
}

static void test_catalog_names(void)
{
    stow_error err = {0};

    CHECK_INT_EQ(0, catalog_check_name("app_db-1.prod", &err));
    CHECK_INT_EQ(-1, catalog_check_name("../etc", &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, catalog_check_name(".hidden", &err));
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, catalog_check_name("", &err));
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, catalog_check_name("with space", &err));
}

static void test_backup_id_shape(void)
{
    char id[32];

    catalog_new_backup_id(1796353200, id);
    CHECK_INT_EQ(23, strlen(id));
    CHECK(strncmp(id, "20261204T030000Z-", 17) == 0);
}

static void test_part_size_policy(void)
{
    uint64_t total = 0;

    CHECK_INT_EQ(8, storage_part_size_for(1, 8, 3));
    CHECK_INT_EQ(8, storage_part_size_for(3, 8, 3));
    CHECK_INT_EQ(16, storage_part_size_for(4, 8, 3));
    CHECK_INT_EQ(32, storage_part_size_for(7, 8, 3));
    CHECK_INT_EQ(16ull << 20, storage_part_size_for(900, 16ull << 20, 0));
    CHECK_INT_EQ(32ull << 20, storage_part_size_for(901, 16ull << 20, 0));
    CHECK_INT_EQ(STORAGE_MAX_PART_SIZE, storage_part_size_for(10000, 16ull << 20, 0));

    /* 10,000 parts starting at 5 MiB reach past the 5 TiB object limit. */
    for (uint32_t n = 1; n <= STORAGE_MAX_PARTS; n++)
        total += storage_part_size_for(n, STORAGE_MIN_PART_SIZE, 0);
    CHECK(total >= 5ull * 1024 * 1024 * 1024 * 1024);
}

static void test_composite_digest(void)
{
    struct storage_part parts[2];
    struct storage_part_list list = {parts, 2, 0};
    char composite[80];

    memset(parts, 0, sizeof parts);
    manifest_composite_sha256(&list, composite);
    /* SHA-256 of 64 zero bytes. */
    CHECK_STR_EQ("f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b-2", composite);
}

int main(void)
{
    unit_run("manifest valid golden file", test_valid_manifest);
    unit_run("manifest rejects golden corrupt files", test_rejected_manifests);
    unit_run("manifest of a newer format asks for an upgrade", test_newer_format_version);
    unit_run("time parsing with offsets", test_time_parsing);
    unit_run("time formatting round trip", test_format_time_round_trip);
    unit_run("time with microseconds", test_time_microseconds);
    unit_run("catalog name rules", test_catalog_names);
    unit_run("backup id shape", test_backup_id_shape);
    unit_run("part size doubles and caps", test_part_size_policy);
    unit_run("composite part digest", test_composite_digest);
    unit_run("object lock member", test_object_lock_member);
    unit_run("object lock rejected", test_object_lock_rejected);
    return unit_finish();
}
