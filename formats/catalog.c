/* Catalog loading from manifests, and backup selection. */
#include "catalog.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct key_list {
    char **keys;
    size_t count;
    size_t capacity;
};

struct manifest_keys {
    struct key_list manifests;
    struct key_list verifications;
    struct key_list holds;
};

static int has_suffix(const char *text, const char *suffix)
{
    size_t len = strlen(text);
    size_t suffix_len = strlen(suffix);

    return len > suffix_len && strcmp(text + len - suffix_len, suffix) == 0;
}

static int key_list_add(struct key_list *list, const char *key)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity == 0 ? 32 : list->capacity * 2;
        char **grown = realloc(list->keys, capacity * sizeof *grown);

        if (grown == NULL)
            return -1;
        list->keys = grown;
        list->capacity = capacity;
    }
    list->keys[list->count] = strdup(key);
    if (list->keys[list->count] == NULL)
        return -1;
    list->count++;
    return 0;
}

static void key_list_free(struct key_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->keys[i]);
    free(list->keys);
}

static int collect_manifest_key(const char *key, const struct storage_object_info *info,
                                void *context)
{
    struct manifest_keys *keys = context;

    if (has_suffix(key, "/" CATALOG_MANIFEST_FILE))
        return key_list_add(&keys->manifests, key);
    if (strstr(key, "/" CATALOG_VERIFICATIONS_DIR "/") != NULL && has_suffix(key, ".json"))
        return key_list_add(&keys->verifications, key);
    if (has_suffix(key, "/" CATALOG_HOLD_FILE))
        return key_list_add(&keys->holds, key);
    return 0;
}

/* Applies one key "backups/NAME/ID/verifications/STAMP-RESULT-N.json" to
 * its entry; keys sort by time, so the last one applied is the newest. */
static void apply_verification(struct catalog *catalog, const char *key)
{
    const char *file = strrchr(key, '/') + 1;
    size_t dir_len = (size_t)(file - key) - strlen(CATALOG_VERIFICATIONS_DIR "/");
    struct tm parts = {0};
    char result[16] = "";

    if (sscanf(file, "%4d%2d%2dT%2d%2d%2dZ-%15[a-z]", &parts.tm_year, &parts.tm_mon,
               &parts.tm_mday, &parts.tm_hour, &parts.tm_min, &parts.tm_sec, result) != 7)
        return;
    parts.tm_year -= 1900;
    parts.tm_mon -= 1;

    for (size_t i = 0; i < catalog->count; i++) {
        struct catalog_entry *entry = &catalog->entries[i];
        size_t manifest_dir_len = strlen(entry->manifest_key) - strlen(CATALOG_MANIFEST_FILE);

        if (manifest_dir_len != dir_len || strncmp(entry->manifest_key, key, dir_len) != 0)
            continue;
        /* A passed storage check does not make a backup verified, but a
         * failed one means it would not restore. */
        if (strcmp(result, "checkpassed") == 0)
            return;
        entry->last_verified_at = timegm(&parts);
        entry->last_verification_passed = strcmp(result, "passed") == 0;
        entry->verification_count++;
        return;
    }
}

/* Marks the entry whose directory holds the key "backups/NAME/ID/hold.json"
 * as held and reads the hold document. A hold that cannot be read or
 * parsed still holds the backup. */
static int apply_hold(storage *store, struct catalog *catalog, const char *key, stow_error *err)
{
    size_t dir_len = strlen(key) - strlen(CATALOG_HOLD_FILE);
    stow_buf text;
    json_error_t parse_error;
    int rc;

    for (size_t i = 0; i < catalog->count; i++) {
        struct catalog_entry *entry = &catalog->entries[i];
        size_t manifest_dir_len = strlen(entry->manifest_key) - strlen(CATALOG_MANIFEST_FILE);

        if (manifest_dir_len != dir_len || strncmp(entry->manifest_key, key, dir_len) != 0)
            continue;
        entry->held = 1;
        stow_buf_init(&text, CATALOG_HOLD_MAX_BYTES);
        rc = storage_get(store, key, &text, err);
        if (rc == STORAGE_NOT_FOUND) {
            entry->held = 0; /* released since the listing */
            rc = 0;
        } else if (rc == 0) {
            entry->hold = json_loadb((const char *)text.data, text.len, JSON_REJECT_DUPLICATES,
                                     &parse_error);
            entry->hold_reason = json_string_value(json_object_get(entry->hold, "reason"));
            if (entry->hold_reason == NULL)
                stow_log_warn("hold %s is unreadable, so the backup stays held: %s", key,
                              entry->hold == NULL ? parse_error.text : "no \"reason\" string");
        }
        stow_buf_free(&text);
        return rc;
    }
    return 0;
}

static int compare_entries(const void *a, const void *b)
{
    const struct catalog_entry *left = a;
    const struct catalog_entry *right = b;

    if (left->manifest.started_at != right->manifest.started_at)
        return left->manifest.started_at < right->manifest.started_at ? -1 : 1;
    if (left->manifest.started_at_us != right->manifest.started_at_us)
        return left->manifest.started_at_us < right->manifest.started_at_us ? -1 : 1;
    /* Manifests written before times carried microseconds have 0 here, so
     * two of them started in the same second fall back to finish, then id. */
    if (left->manifest.finished_at != right->manifest.finished_at)
        return left->manifest.finished_at < right->manifest.finished_at ? -1 : 1;
    if (left->manifest.finished_at_us != right->manifest.finished_at_us)
        return left->manifest.finished_at_us < right->manifest.finished_at_us ? -1 : 1;
    return strcmp(left->manifest.id, right->manifest.id);
}

/* Writes the ID of the key "backups/NAME/ID/manifest.json" to out. */
static void backup_id_of_key(const char *key, char *out, size_t size)
{
    const char *end = strrchr(key, '/');
    const char *start = end;

    while (start != NULL && start > key && start[-1] != '/')
        start--;
    snprintf(out, size, "%.*s", end == NULL ? 0 : (int)(end - start), end == NULL ? "" : start);
}

/* Returns the format_version of a manifest that manifest_parse rejected as
 * written by a newer stowage (STOW_EXIT_USAGE), or 0 for any other failure. */
static int newer_format_version(const stow_buf *text, const stow_error *parse_err)
{
    json_t *document;
    json_int_t version;

    if (parse_err->exit_code != STOW_EXIT_USAGE)
        return 0;
    document = json_loadb((const char *)text->data, text->len, 0, NULL);
    version = json_integer_value(json_object_get(document, "format_version"));
    json_decref(document);
    if (version > INT_MAX)
        return INT_MAX;
    return version > MANIFEST_VERSION ? (int)version : 0;
}

/* Logs why a manifest is skipped. A newer format gets a hint to upgrade,
 * and any other failure is named. */
static void warn_skipped(const char *key, int newer_version, const stow_error *parse_err)
{
    char id[MANIFEST_NAME_MAX + 64];

    if (newer_version == 0) {
        stow_log_warn("skipping %s: %s", key, parse_err->message);
        return;
    }
    backup_id_of_key(key, id, sizeof id);
    stow_log_warn("skipping backup %s: it was written by a newer stowage (%s has "
                  "format_version %d, and this stowage reads format_version %d to %d); upgrade "
                  "stowage to read it",
                  id, key, newer_version, MANIFEST_VERSION_OLDEST, MANIFEST_VERSION);
}

/* Reads and validates one manifest; a broken one is logged and skipped. */
static int load_entry(storage *store, const char *key, stow_buf *text, struct catalog *out,
                      stow_error *err)
{
    struct catalog_entry *entry = &out->entries[out->count];
    stow_error parse_err = {0};
    int rc = storage_get(store, key, text, err);

    if (rc == STORAGE_NOT_FOUND)
        return 0; /* deleted since the listing */
    if (rc != 0)
        return -1;

    if (manifest_parse(key, (const char *)text->data, text->len, &entry->manifest,
                       &parse_err) != 0) {
        int newer_version = newer_format_version(text, &parse_err);

        warn_skipped(key, newer_version, &parse_err);
        out->broken_keys[out->broken] = strdup(key);
        if (out->broken_keys[out->broken] == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        out->broken_versions[out->broken] = newer_version;
        out->broken++;
        return 0;
    }
    entry->manifest_key = strdup(key);
    out->count++;
    return 0;
}

int catalog_load(storage *store, const char *name, struct catalog *out, stow_error *err)
{
    struct manifest_keys keys = {0};
    char prefix[128];
    stow_buf text;
    int rc;

    memset(out, 0, sizeof *out);
    snprintf(prefix, sizeof prefix, "%s/%s%s", CATALOG_BACKUPS_DIR, name ? name : "",
             name ? "/" : "");
    rc = storage_list(store, prefix, collect_manifest_key, &keys, err);
    if (rc > 0 || (rc < 0 && !stow_error_is_set(err)))
        rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing the catalog");

    if (rc == 0 && keys.manifests.count > 0) {
        out->entries = calloc(keys.manifests.count, sizeof *out->entries);
        out->broken_keys = calloc(keys.manifests.count, sizeof *out->broken_keys);
        out->broken_versions = calloc(keys.manifests.count, sizeof *out->broken_versions);
        if (out->entries == NULL || out->broken_keys == NULL || out->broken_versions == NULL)
            rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }

    stow_buf_init(&text, MANIFEST_MAX_BYTES);
    for (size_t i = 0; rc == 0 && i < keys.manifests.count; i++)
        rc = load_entry(store, keys.manifests.keys[i], &text, out, err);
    stow_buf_free(&text);
    for (size_t i = 0; rc == 0 && i < keys.verifications.count; i++)
        apply_verification(out, keys.verifications.keys[i]);
    for (size_t i = 0; rc == 0 && i < keys.holds.count; i++)
        rc = apply_hold(store, out, keys.holds.keys[i], err);

    key_list_free(&keys.manifests);
    key_list_free(&keys.verifications);
    key_list_free(&keys.holds);

    if (rc != 0) {
        catalog_free(out);
        return -1;
    }
    if (out->count > 1)
        qsort(out->entries, out->count, sizeof *out->entries, compare_entries);
    return 0;
}

void catalog_free(struct catalog *catalog)
{
    if (catalog == NULL)
        return;
    for (size_t i = 0; i < catalog->count; i++) {
        free(catalog->entries[i].manifest_key);
        manifest_free(&catalog->entries[i].manifest);
        json_decref(catalog->entries[i].hold);
    }
    free(catalog->entries);
    for (size_t i = 0; i < catalog->broken; i++)
        free(catalog->broken_keys[i]);
    free(catalog->broken_keys);
    free(catalog->broken_versions);
    memset(catalog, 0, sizeof *catalog);
}

static int names_in_catalog(const struct catalog *catalog)
{
    for (size_t i = 1; i < catalog->count; i++) {
        if (strcmp(catalog->entries[i].manifest.name, catalog->entries[0].manifest.name) != 0)
            return 2;
    }
    return catalog->count > 0 ? 1 : 0;
}

/* Reads NAME and the start time from "backups/NAME/ID/manifest.json", whose
 * ID starts with "YYYYMMDDTHHMMSSZ". Sets *start to -1 when the ID has
 * another shape. Returns -1 when the key has no NAME. */
static int broken_key_parts(const char *key, char name[MANIFEST_NAME_MAX + 1], time_t *start)
{
    struct tm parts = {0};
    const char *name_start = key + strlen(CATALOG_BACKUPS_DIR "/");
    const char *name_end = strchr(name_start, '/');
    size_t name_len = name_end == NULL ? 0 : (size_t)(name_end - name_start);

    if (name_len == 0 || name_len > MANIFEST_NAME_MAX)
        return -1;
    memcpy(name, name_start, name_len);
    name[name_len] = '\0';

    *start = -1;
    if (sscanf(name_end + 1, "%4d%2d%2dT%2d%2d%2dZ-", &parts.tm_year, &parts.tm_mon,
               &parts.tm_mday, &parts.tm_hour, &parts.tm_min, &parts.tm_sec) == 6) {
        parts.tm_year -= 1900;
        parts.tm_mon -= 1;
        *start = timegm(&parts);
    }
    return 0;
}

/* Fails with STOW_EXIT_USAGE because a newer stowage wrote the manifest at
 * key. context is prefixed to the message. */
static int fail_newer_version(const char *key, int version, const char *context,
                              stow_error *err)
{
    char id[MANIFEST_NAME_MAX + 64];

    backup_id_of_key(key, id, sizeof id);
    stow_fail(err, STOW_EXIT_USAGE,
              "%sbackup %s was written by a newer stowage: its manifest %s has format_version "
              "%d, and this stowage reads format_version %d to %d",
              context, id, key, version, MANIFEST_VERSION_OLDEST, MANIFEST_VERSION);
    stow_error_hint(err, "upgrade stowage to a version that reads format_version %d", version);
    return -1;
}

/* Fails when an invalid manifest of name could be the backup a choice by
 * time should have found: one newer than chosen (or any one when nothing
 * was chosen), and not after at. Ids have one-second resolution, so an
 * invalid manifest from the second chosen started in also counts, and so
 * does one whose start time is unknown. */
static int check_newer_broken(const struct catalog *catalog, const char *name,
                              const struct catalog_time *at, const struct catalog_entry *chosen,
                              stow_error *err)
{
    const char *failure = at != NULL ? "cannot choose a backup by time: "
                                     : "cannot choose the latest backup: ";

    for (size_t i = 0; i < catalog->broken; i++) {
        const char *key = catalog->broken_keys[i];
        char key_name[MANIFEST_NAME_MAX + 1];
        time_t start = -1;
        int named = broken_key_parts(key, key_name, &start) == 0;

        if (named && name != NULL && strcmp(key_name, name) != 0)
            continue;
        if (start != -1 && at != NULL && start > at->seconds)
            continue;
        if (start != -1 && chosen != NULL && start < chosen->manifest.started_at)
            continue;

        if (catalog->broken_versions[i] != 0)
            return fail_newer_version(key, catalog->broken_versions[i], failure, err);
        stow_fail(err, STOW_EXIT_VERIFY, "%smanifest %s is invalid and may be newer than %s%s",
                  failure, key, chosen != NULL ? "backup " : "every valid backup",
                  chosen != NULL ? chosen->manifest.id : "");
        stow_error_hint(err, "check the warning above; to use an older backup, give its id "
                             "(see stowage list), or remove the invalid manifest");
        return -1;
    }
    return 0;
}

int catalog_parse_time(const char *option, const char *text, struct catalog_time *out,
                       stow_error *err)
{
    if (manifest_parse_time(text, &out->seconds) != 0) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid %s time \"%s\"", option, text);
        stow_error_hint(err, "use RFC 3339, for example 2026-12-04T03:00:00Z or "
                             "2026-12-04T04:00:00+01:00");
        return -1;
    }
    out->microseconds = manifest_time_microseconds(text);
    return 0;
}

/* Fails with STOW_EXIT_VERIFY when the manifest of backup id exists but
 * is invalid, because "not found" would send the reader looking elsewhere.
 * A manifest that a newer stowage wrote fails with STOW_EXIT_USAGE. */
static int fail_if_broken(const struct catalog *catalog, const char *id, stow_error *err)
{
    for (size_t i = 0; i < catalog->broken; i++) {
        const char *key = catalog->broken_keys[i];
        const char *slash = strrchr(key, '/');
        size_t id_len = strlen(id);

        if (slash == NULL || slash - key < (ptrdiff_t)id_len + 1 ||
            strncmp(slash - id_len, id, id_len) != 0 || slash[-(ptrdiff_t)id_len - 1] != '/')
            continue;
        if (catalog->broken_versions[i] != 0)
            return fail_newer_version(key, catalog->broken_versions[i], "", err);
        stow_fail(err, STOW_EXIT_VERIFY, "the manifest of backup %s (%s) is invalid", id, key);
        stow_error_hint(err, "see the warning above for what is wrong with it");
        return -1;
    }
    return 0;
}

/* Returns 1 when the backup started after at: within the same second, its
 * microseconds decide (0 in manifests that do not record them). */
static int started_after(const struct manifest *manifest, const struct catalog_time *at)
{
    if (manifest->started_at != at->seconds)
        return manifest->started_at > at->seconds;
    return manifest->started_at_us > at->microseconds;
}

int catalog_started_in_future(const struct catalog_entry *entry, time_t now)
{
    return entry->manifest.started_at > now + CATALOG_CLOCK_SKEW_SECONDS;
}

/* Warns when a backup chosen by time started after now: a host with a
 * wrong clock took it, and it stays "latest" until a newer one exists. */
static void warn_if_future(const struct catalog_entry *entry)
{
    char started[32];

    if (!catalog_started_in_future(entry, time(NULL)))
        return;
    manifest_format_time(entry->manifest.started_at, started);
    stow_log_warn("backup %s started at %s, after the current time: the clock of the host "
                  "that took it was probably wrong, and it stays the newest backup of %s; "
                  "give a backup id to choose another",
                  entry->manifest.id, started, entry->manifest.name);
}

int catalog_resolve(const struct catalog *catalog, const char *spec,
                    const struct catalog_time *at, const char *name,
                    const struct catalog_entry **out, stow_error *err)
{
    int by_time = at != NULL || spec == NULL || strcmp(spec, "latest") == 0;

    *out = NULL;
    if (by_time && name == NULL && names_in_catalog(catalog) > 1) {
        stow_fail(err, STOW_EXIT_USAGE,
                  "the repository holds backups of several databases; say which one");
        stow_error_hint(err, "add --name NAME (see stowage list)");
        return -1;
    }

    for (size_t i = catalog->count; i-- > 0;) {
        const struct catalog_entry *entry = &catalog->entries[i];

        if (name != NULL && strcmp(entry->manifest.name, name) != 0)
            continue;
        if (!by_time && strcmp(entry->manifest.id, spec) != 0)
            continue;
        if (at != NULL && started_after(&entry->manifest, at))
            continue;
        if (by_time && check_newer_broken(catalog, entry->manifest.name, at, entry, err) != 0)
            return -1;
        if (by_time)
            warn_if_future(entry);
        *out = entry;
        return 0;
    }

    if (by_time && check_newer_broken(catalog, name, at, NULL, err) != 0)
        return -1;

    if (!by_time && fail_if_broken(catalog, spec, err) != 0)
        return -1;
    if (!by_time)
        stow_fail(err, STOW_EXIT_USAGE, "backup %s not found in the catalog", spec);
    else if (at != NULL) {
        char at_text[32];

        if (at->microseconds == 0)
            manifest_format_time(at->seconds, at_text);
        else
            manifest_format_time_us(at->seconds, at->microseconds, at_text);
        stow_fail(err, STOW_EXIT_USAGE, "no complete backup%s%s started at or before %s",
                  name ? " of " : "", name ? name : "", at_text);
    }
    else
        stow_fail(err, STOW_EXIT_USAGE, "no complete backup%s%s in the repository",
                  name ? " of " : "", name ? name : "");
    stow_error_hint(err, "run stowage list to see the backups in the repository");
    return -1;
}

int catalog_find(storage *store, const char *spec, const struct catalog_time *at,
                 const char *name, struct catalog *out, const struct catalog_entry **entry,
                 stow_error *err)
{
    if (catalog_load(store, name, out, err) != 0)
        return -1;
    if (catalog_resolve(out, spec, at, name, entry, err) != 0) {
        catalog_free(out);
        return -1;
    }
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int catalog_names(storage *store, char ***names, size_t *count, stow_error *err)
{
    struct catalog catalog;

    *names = NULL;
    *count = 0;
    if (catalog_load(store, NULL, &catalog, err) != 0)
        return -1;
    *names = calloc(catalog.count + 1, sizeof **names);
    if (*names == NULL) {
        catalog_free(&catalog);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    for (size_t i = 0; i < catalog.count; i++) {
        const char *name = catalog.entries[i].manifest.name;
        size_t seen = 0;

        while (seen < *count && strcmp((*names)[seen], name) != 0)
            seen++;
        if (seen == *count && ((*names)[(*count)++] = strdup(name)) == NULL) {
            catalog_free(&catalog);
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        }
    }
    catalog_free(&catalog);
    qsort(*names, *count, sizeof **names, compare_names);
    return 0;
}

void catalog_names_free(char **names, size_t count)
{
    for (size_t i = 0; names != NULL && i < count; i++)
        free(names[i]);
    free(names);
}

void catalog_warn_unknown_name(storage *store, const char *name)
{
    char known[512] = "";
    size_t used = 0;
    char **names = NULL;
    size_t count = 0;
    stow_error err = {0};
    int found = 0;

    if (catalog_names(store, &names, &count, &err) != 0)
        return;
    for (size_t i = 0; i < count; i++) {
        found |= strcmp(names[i], name) == 0;
        if (used < sizeof known)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                     used > 0 ? ", " : "", names[i]);
    }
    if (!found)
        stow_log_warn("no backups of %s found in the repository; it has backups of: %s", name,
                      count > 0 ? known : "(none)");
    catalog_names_free(names, count);
}
