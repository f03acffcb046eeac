/* Holds: an operator's mark that keeps a backup from expiring, stored as
 * backups/NAME/ID/hold.json beside the manifest (see CATALOG_HOLD_FILE in
 * catalog.h for its fields). */
#ifndef STOWAGE_HOLD_H
#define STOWAGE_HOLD_H

#include "catalog.h"
#include "common/error.h"
#include "storage/storage.h"

#define HOLD_REASON_MAX 1024 /* bytes of UTF-8 */

/* Writes the hold of entry's backup with reason, this host and user, and
 * the current time, replacing an earlier hold. Fails with STOW_EXIT_USAGE
 * for an empty, overlong or non-UTF-8 reason. */
int hold_place(storage *store, const struct catalog_entry *entry, const char *reason,
               stow_error *err);

/* Deletes the hold of entry's backup. Deleting a missing hold succeeds. */
int hold_release(storage *store, const struct catalog_entry *entry, stow_error *err);

/* Builds the key of the hold file of entry into out. */
int hold_key(const struct catalog_entry *entry, char *out, size_t size);

#endif
