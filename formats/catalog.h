/* The catalog: the set of complete backups in a repository, read from
 * their manifests. A backup without a manifest does not exist here. */
#ifndef STOWAGE_CATALOG_H
#define STOWAGE_CATALOG_H

#include <time.h>

#include "manifest.h"
#include "storage/storage.h"

/* A hold on a backup: backups/NAME/ID/hold.json, a JSON object with
 * "reason", "held_at" (RFC 3339 UTC), "host" and "user". Retention never
 * expires a held backup. */
#define CATALOG_HOLD_FILE "hold.json"
#define CATALOG_HOLD_MAX_BYTES (64u * 1024)

struct catalog_entry {
    char *manifest_key;       /* owned */
    struct manifest manifest;
    time_t last_verified_at;  /* 0: never verified by a restore */
    int last_verification_passed;
    size_t verification_count;
    int held;                 /* the backup's hold.json exists */
    json_t *hold;             /* owned: the hold document; NULL when unreadable */
    const char *hold_reason;  /* borrowed from hold; NULL when unreadable */
};

struct catalog {
    struct catalog_entry *entries;  /* sorted by start, finish (to the microsecond), then id */
    size_t count;
    size_t broken;                  /* manifests that failed validation (logged) */
    char **broken_keys;             /* owned: the keys of those manifests */
    int *broken_versions;           /* owned: for each, the format_version when a newer
                                       stowage wrote it, else 0 */
};

/* Loads every manifest under backups/ (or backups/NAME/ when name is not
 * NULL). A manifest that fails validation, or that a newer stowage wrote,
 * is logged and counted, not returned: it is never taken for a backup. */
int catalog_load(storage *store, const char *name, struct catalog *out, stow_error *err);
void catalog_free(struct catalog *catalog);

/* Clock difference between hosts that a backup's start time may show
 * against the current time without a warning. */
#define CATALOG_CLOCK_SKEW_SECONDS 300

/* Returns 1 when the backup started more than CATALOG_CLOCK_SKEW_SECONDS
 * after now, which means the clock of the host that took it was wrong. */
int catalog_started_in_future(const struct catalog_entry *entry, time_t now);

/* A point in time to choose a backup by: --at, to the microsecond. */
struct catalog_time {
    time_t seconds;
    long microseconds;
};

/* Parses the RFC 3339 value of option (--at) into out, fractions of a
 * second included; fails with STOW_EXIT_USAGE naming the value. */
int catalog_parse_time(const char *option, const char *text, struct catalog_time *out,
                       stow_error *err);

/* Picks a backup: spec is an id or "latest" (the newest complete backup);
 * with at not NULL, the newest backup that started at or before at.
 * name narrows the choice when the catalog holds several names. Fails with
 * STOW_EXIT_USAGE naming what was looked for. A choice by time does not
 * fall back to an older backup past an invalid manifest of that name that
 * may be newer: one whose id starts in the same second or later, or does
 * not parse. It fails with STOW_EXIT_VERIFY naming that manifest, or with
 * STOW_EXIT_USAGE and a hint to upgrade when a newer stowage wrote it. An
 * id whose manifest a newer stowage wrote fails the same way. */
int catalog_resolve(const struct catalog *catalog, const char *spec,
                    const struct catalog_time *at, const char *name,
                    const struct catalog_entry **out, stow_error *err);

/* Loads one backup by id, latest or time, without reading every manifest
 * when an id is given. out must be freed with catalog_free. */
int catalog_find(storage *store, const char *spec, const struct catalog_time *at,
                 const char *name, struct catalog *out, const struct catalog_entry **entry,
                 stow_error *err);

/* Collects the distinct catalog names of the repository, sorted. Free
 * them with catalog_names_free. */
int catalog_names(storage *store, char ***names, size_t *count, stow_error *err);
void catalog_names_free(char **names, size_t count);

/* Warns when the repository contains no backup of name, and lists the
 * names it contains, because a mistyped --name in a cron line would
 * otherwise find nothing every night without a message. */
void catalog_warn_unknown_name(storage *store, const char *name);

#endif
