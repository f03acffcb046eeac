/* DR status from the catalogs of the primary and the replica. */
#include "replicate/dr_status.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define RPO_DEFINITION                                                                       \
    "age now of the started_at of the newest complete backup in the replica whose last "    \
    "verified restore passed (basis \"verified\"); when none passed, of the newest complete " \
    "backup there (basis \"complete\")"

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns the sorted distinct names of both catalogs (borrowed strings). */
static const char **union_names(const struct catalog *primary, const struct catalog *replica,
                                size_t *count)
{
    size_t total = primary->count + replica->count;
    const char **names = calloc(total + 1, sizeof *names);
    size_t distinct = 0;

    *count = 0;
    if (names == NULL)
        return NULL;
    for (size_t i = 0; i < primary->count; i++)
        names[i] = primary->entries[i].manifest.name;
    for (size_t i = 0; i < replica->count; i++)
        names[primary->count + i] = replica->entries[i].manifest.name;
    qsort(names, total, sizeof *names, compare_names);
    for (size_t i = 0; i < total; i++) {
        if (distinct == 0 || strcmp(names[distinct - 1], names[i]) != 0)
            names[distinct++] = names[i];
    }
    *count = distinct;
    return names;
}

static const struct catalog_entry *newest_of(const struct catalog *catalog, const char *name,
                                             int verified_only)
{
    for (size_t i = catalog->count; i-- > 0;) {
        const struct catalog_entry *entry = &catalog->entries[i];

        if (strcmp(entry->manifest.name, name) != 0)
            continue;
        if (verified_only && !(entry->last_verified_at != 0 && entry->last_verification_passed))
            continue;
        return entry;
    }
    return NULL;
}

static size_t count_of(const struct catalog *catalog, const char *name)
{
    size_t count = 0;

    for (size_t i = 0; i < catalog->count; i++)
        count += strcmp(catalog->entries[i].manifest.name, name) == 0;
    return count;
}

/* Counts the primary's backups of name that the replica lacks. */
static size_t missing_of(const struct catalog *primary, const struct catalog *replica,
                         const char *name)
{
    size_t missing = 0;

    for (size_t i = 0; i < primary->count; i++) {
        const struct manifest *expected = &primary->entries[i].manifest;
        int found = 0;

        if (strcmp(expected->name, name) != 0)
            continue;
        for (size_t j = 0; j < replica->count && !found; j++)
            found = strcmp(replica->entries[j].manifest.id, expected->id) == 0 &&
                    strcmp(replica->entries[j].manifest.name, name) == 0;
        missing += !found;
    }
    return missing;
}

static json_t *time_json(time_t when)
{
    char text[32];

    manifest_format_time(when, text);
    return json_string(text);
}

/* {"backups", "newest_id", "newest_started_at"} of one side. */
static json_t *side_json(const struct catalog *catalog, const char *name)
{
    const struct catalog_entry *newest = newest_of(catalog, name, 0);

    return json_pack("{s:I, s:o, s:o}", "backups", (json_int_t)count_of(catalog, name),
                     "newest_id", newest ? json_string(newest->manifest.id) : json_null(),
                     "newest_started_at",
                     newest ? time_json(newest->manifest.started_at) : json_null());
}

static json_t *rpo_json(const struct catalog *replica, const char *name, time_t now)
{
    const struct catalog_entry *usable = newest_of(replica, name, 1);
    const char *basis = "verified";

    if (usable == NULL) {
        usable = newest_of(replica, name, 0);
        basis = "complete";
    }
    if (usable == NULL)
        return json_pack("{s:n, s:n, s:n, s:s}", "seconds", "backup_id", "started_at", "basis",
                         "none");
    /* A backup dated after now (a host's wrong clock) has no age: null, so
     * that an alert on a large RPO is not silenced by a negative one. */
    if (usable->manifest.started_at > now + CATALOG_CLOCK_SKEW_SECONDS) {
        stow_log_warn("backup %s of %s in the replica is dated after the current time (the "
                      "clock of the host that took it was probably wrong): its RPO cannot be "
                      "measured", usable->manifest.id, name);
        return json_pack("{s:n, s:s, s:o, s:s}", "seconds", "backup_id", usable->manifest.id,
                         "started_at", time_json(usable->manifest.started_at), "basis",
                         "future");
    }
    return json_pack("{s:I, s:s, s:o, s:s}", "seconds",
                     (json_int_t)(now - usable->manifest.started_at), "backup_id",
                     usable->manifest.id, "started_at", time_json(usable->manifest.started_at),
                     "basis", basis);
}

static json_t *name_json(const struct catalog *primary, const struct catalog *replica,
                         const char *name, time_t now)
{
    const struct catalog_entry *primary_newest = newest_of(primary, name, 0);
    const struct catalog_entry *replica_newest = newest_of(replica, name, 0);
    json_t *lag = json_null();
    json_t *replica_side = side_json(replica, name);

    if (primary_newest != NULL && replica_newest != NULL) {
        time_t behind = primary_newest->manifest.started_at - replica_newest->manifest.started_at;

        lag = json_integer(behind > 0 ? (json_int_t)behind : 0);
    }
    json_object_set_new(replica_side, "missing",
                        json_integer((json_int_t)missing_of(primary, replica, name)));
    return json_pack("{s:s, s:o, s:o, s:o, s:o}", "name", name, "primary",
                     side_json(primary, name), "replica", replica_side, "lag_seconds", lag,
                     "rpo", rpo_json(replica, name, now));
}

json_t *dr_status_build(const struct catalog *primary, const struct catalog *replica, time_t now)
{
    json_t *names_json = json_array();
    size_t count = 0;
    const char **names = union_names(primary, replica, &count);

    for (size_t i = 0; names != NULL && i < count; i++)
        json_array_append_new(names_json, name_json(primary, replica, names[i], now));
    free(names);
    return json_pack("{s:o, s:s, s:o}", "checked_at", time_json(now), "rpo_definition",
                     RPO_DEFINITION, "names", names_json);
}

void dr_format_age(long long seconds, char *out, size_t size)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds < 60)
        snprintf(out, size, "%llds", seconds);
    else if (seconds < 3600)
        snprintf(out, size, "%lldm%02llds", seconds / 60, seconds % 60);
    else if (seconds < 86400)
        snprintf(out, size, "%lldh%02lldm", seconds / 3600, seconds % 3600 / 60);
    else
        snprintf(out, size, "%lldd%02lldh", seconds / 86400, seconds % 86400 / 3600);
}

/* Writes an age from a JSON integer, or "-" for null. */
static void format_optional_age(const json_t *value, char *out, size_t size)
{
    if (!json_is_integer(value))
        snprintf(out, size, "-");
    else
        dr_format_age((long long)json_integer_value(value), out, size);
}

/* Writes a count from a JSON integer, or "-" for null. */
static void format_optional_count(const json_t *value, char *out, size_t size)
{
    if (json_is_integer(value))
        snprintf(out, size, "%lld", (long long)json_integer_value(value));
    else
        snprintf(out, size, "-");
}

static const char *text_or_dash(const json_t *value)
{
    return json_is_string(value) ? json_string_value(value) : "-";
}

void dr_status_print_table(const json_t *status, FILE *out)
{
    json_t *names = json_object_get(status, "names");
    json_t *entry;
    size_t index;

    fprintf(out, "%-16s %-23s %-23s %7s %8s %8s %s\n", "NAME", "PRIMARY NEWEST",
            "REPLICA NEWEST", "MISSING", "LAG", "RPO", "RPO BASIS");
    json_array_foreach(names, index, entry) {
        json_t *primary = json_object_get(entry, "primary");
        json_t *replica = json_object_get(entry, "replica");
        json_t *rpo = json_object_get(entry, "rpo");
        char lag[32], age[32], missing[32], basis[128];

        format_optional_age(json_object_get(entry, "lag_seconds"), lag, sizeof lag);
        format_optional_age(json_object_get(rpo, "seconds"), age, sizeof age);
        if (json_is_string(json_object_get(rpo, "backup_id")))
            snprintf(basis, sizeof basis, "%s %s", text_or_dash(json_object_get(rpo, "basis")),
                     json_string_value(json_object_get(rpo, "backup_id")));
        else
            snprintf(basis, sizeof basis, "none: the replica has no backup");
        format_optional_count(json_object_get(replica, "missing"), missing, sizeof missing);
        fprintf(out, "%-16s %-23s %-23s %7s %8s %8s %s\n",
                json_string_value(json_object_get(entry, "name")),
                text_or_dash(json_object_get(primary, "newest_id")),
                text_or_dash(json_object_get(replica, "newest_id")), missing, lag, age, basis);
    }
    if (json_is_string(json_object_get(status, "primary_error")))
        fprintf(out, "\nThe primary %s could not be read, so the primary's columns are empty "
                     "and MISSING and LAG are not known: %s\n",
                json_string_value(json_object_get(status, "primary")),
                json_string_value(json_object_get(status, "primary_error")));
    fprintf(out, "\nRPO: %s.\n", json_string_value(json_object_get(status, "rpo_definition")));
}
