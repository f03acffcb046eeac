/* Expiry: applies a retention policy to the backups of one catalog name.
 *
 * expire_plan_build loads the name's catalog and decides, with
 * retention_decide, which backups to keep. expire_plan_apply then deletes
 * each expired backup in an order that keeps the catalog consistent at
 * every step: first the manifest (so the backup stops existing for list,
 * restore and retention), then its data object, then its verification
 * reports. A crash in between leaves a data object without a manifest,
 * which `stowage gc` removes later. Only keys under backups/NAME/ID/ of a
 * backup with a valid manifest are deleted, never a hold: a backup that
 * gained a hold after planning is kept. */
#ifndef STOWAGE_EXPIRE_H
#define STOWAGE_EXPIRE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "catalog.h"
#include "catalog/catalog_lock.h"
#include "retention.h"

struct expire_item {
    const struct catalog_entry *entry;    /* borrowed from the plan's catalog */
    struct retention_decision decision;
    int deleted;                          /* set by expire_plan_apply */
    uint64_t bytes_deleted;               /* data object and reports */
    const char *skipped;                  /* why an expired backup was not deleted, or NULL */
};

struct expire_plan {
    char name[MANIFEST_NAME_MAX + 1];
    time_t now;
    struct catalog catalog;      /* owned */
    struct expire_item *items;   /* owned; oldest first, as in the catalog */
    size_t count;
    size_t expire_count;         /* items whose decision is expire */
};

/* Loads the backups of name and decides for each at time now. */
int expire_plan_build(storage *store, const char *name, const struct retention_policy *policy,
                      time_t now, struct expire_plan *plan, stow_error *err);

/* Deletes the expired backups of plan, oldest first. Checks the lock
 * (catalog_lock_check) before each backup and stops at the first failure
 * or on SIGINT or SIGTERM. */
int expire_plan_apply(storage *store, struct expire_plan *plan, catalog_lock *lock,
                      stow_error *err);

/* Accepts a zeroed plan. */
void expire_plan_free(struct expire_plan *plan);

#endif
