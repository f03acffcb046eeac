/* Replication of backups from a primary repository to a replica, usually
 * in another region, for disaster recovery.
 *
 * Model. A backup is in the replica when the replica has a valid manifest
 * for it under the same key. For each complete backup of the primary that
 * the replica lacks, newest first:
 *   1. the primary's manifest is read and its signature checked (below);
 *   2. the data object is copied under the same key with the manifest's
 *      part boundaries (object_copy.h): inside S3 when both repositories
 *      are on one S3 service, else streamed part by part;
 *   3. the copy is checked against the manifest: its size, and each part's
 *      SHA-256 read back from the replica, which reads the copy once;
 *   4. the primary's verification reports and hold that the replica lacks
 *      are copied;
 *   5. the primary's manifest is read again. When it changed meanwhile (a
 *      rekey) but still names the same object, the current one is taken.
 *      It is written last, with the primary's bytes and a create-only put.
 * A run that stops before step 5 leaves no manifest, so the backup does not
 * exist in the replica and the next run copies it again. A complete object
 * that an earlier run left without a manifest is checked and kept when it
 * passes. An object under a backup's key that fails the check, such as one
 * written by another tool, is never taken for the backup: it is replaced
 * by a copy.
 *
 * Signatures. With trusted keys, a primary manifest is written to the
 * replica only when a trusted key signed it and the signature verifies.
 * Anything else fails that backup with STOW_EXIT_VERIFY. Without trusted
 * keys, the primary's bytes travel with their signature, so readers of the
 * replica check it. A manifest that is signed again for the replica's
 * Object Lock must have a signature that this run can check: by a trusted
 * key or by the signing key itself.
 *
 * Repair. With repair set, backups that the replica already has are checked
 * as in step 3, and their manifest is compared with the primary's. It
 * passes with the same bytes, or with the same document apart from the
 * object_lock member and the signature of a locked copy. A backup that
 * fails is copied as if it were missing, but its replica manifest stays
 * until the new copy has passed its check, and is then replaced in one
 * put. A repair that
 * would drop the replica's Object Lock (a run without object_lock_days),
 * or replace a signed manifest with one whose signature was not checked,
 * fails that backup instead. An invalid manifest in the replica is
 * replaced only with repair set.
 *
 * Locks. Each catalog name is replicated under the replica's lock for that
 * name (catalog_lock.h, command "replicate"), so that expire and gc on the
 * replica leave a copy in progress alone. A name whose lock is held is
 * skipped with STOW_EXIT_LOCKED; the other names go on.
 *
 * Object Lock. With object_lock_days set, the data object and the manifest
 * of every backup this run writes to the replica are stored under S3 Object
 * Lock until the start of the run plus object_lock_days. As in backup
 * (storage_put_locked, storage_upload_begin_locked), each lock is read back
 * with HeadObject and set with PutObjectRetention where the store did not
 * apply it. The replica must have Object Lock enabled, which is checked
 * before anything is written. The replica's manifest then differs from the
 * primary's in its object_lock member, and one that carries a signature is
 * signed again with signing_key. Verification reports and holds are copied
 * without a lock, as verify and hold write them in the primary. Without
 * object_lock_days the manifest keeps the primary's bytes, object_lock
 * member included.
 *
 * Replication never deletes a backup from the replica: retention runs on
 * each repository separately. */
#ifndef STOWAGE_REPLICATE_H
#define STOWAGE_REPLICATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "keys.h"
#include "signature.h"
#include "storage/storage.h"

/* The outcome for one backup. REPLICATE_REUSED means that a complete
 * object left by an earlier run passed the check, so only the manifest was
 * written. */
enum replicate_action {
    REPLICATE_PRESENT,   /* the replica had it (checked too, with repair) */
    REPLICATE_COPIED,    /* copied by this run */
    REPLICATE_REUSED,
    REPLICATE_REPAIRED,  /* failed the repair check: manifest replaced, object copied when it failed */
    REPLICATE_FAILED
};

struct replicate_options {
    const char *name;   /* only this catalog name; NULL: every name */
    int repair;         /* check the backups the replica has, copy failed ones again */
    int stream;         /* never copy inside the store, always through this host */
    int64_t lock_stale_after; /* seconds; 0: CATALOG_LOCK_STALE_AFTER_DEFAULT */
    int object_lock_days;     /* S3 Object Lock retention in the replica; 0: no lock */
    enum storage_lock_mode object_lock_mode;         /* used when object_lock_days > 0 */
    const struct keys_signing_secret *signing_key;   /* re-signs locked manifests; may be NULL */
    const struct signature_trust *trust; /* signers of the primary's manifests; NULL: none */
};

/* The outcome for one backup of the primary. */
struct replicate_item {
    char *id;                  /* owned */
    char *name;                /* owned */
    enum replicate_action action;
    const char *method;        /* "server-side" or "streamed" when copied; else NULL */
    uint64_t stored_bytes;
    size_t parts;
    double copy_seconds;
    double check_seconds;      /* reading the copy back; 0 when not checked */
    size_t reports_copied;     /* verification reports written to the replica */
    char *note;                /* owned; why the backup was repaired or its object replaced, or NULL */
    stow_error error;          /* set when action is REPLICATE_FAILED */
};

struct replicate_result {
    struct replicate_item *items;  /* owned; in the order processed */
    size_t count;
    size_t capacity;
    size_t present, copied, reused, repaired, failed;
    size_t reports_copied;
    size_t primary_broken;         /* invalid manifests skipped in the primary */
    struct storage_object_lock object_lock; /* of what this run wrote; mode NONE: no lock */
};

/* Replicates the backups of primary into replica as described above.
 * Returns 0 when every backup of the primary is in the replica. Otherwise it
 * returns -1, and err names how many backups failed and carries the exit
 * code of the first failure. An interruption (STOW_EXIT_INTERRUPTED) stops
 * the run at once. result is filled either way; free it with
 * replicate_result_free. */
int replicate_run(storage *primary, storage *replica, const struct replicate_options *options,
                  struct replicate_result *result, stow_error *err);

void replicate_result_free(struct replicate_result *result);

/* Fails with STOW_EXIT_USAGE for a catalog name that has no backup in the
 * primary, naming the names that it has. Returns -1. */
int replicate_reject_unknown_name(storage *primary, const char *name, stow_error *err);

/* Returns the action's name as in the JSON output ("copied", ...). */
const char *replicate_action_name(enum replicate_action action);

/* Builds the JSON summary of a run (a new reference). */
json_t *replicate_result_json(const struct replicate_result *result, const storage *primary,
                              const storage *replica);

#endif
