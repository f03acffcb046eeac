/* Copying a backup's data object between repositories with the manifest's
 * part boundaries, and checking a stored object against its manifest.
 *
 * A copy keeps every part's offset and size, so the SHA-256 of each part in
 * the manifest stays valid for the copy. Parts are copied inside the store
 * (S3 UploadPartCopy) when storage_upload_part_copy allows it between the
 * two repositories, else read from the source with storage_download, which
 * checks each part's SHA-256, and uploaded with storage_upload_part. Memory
 * is bounded by the largest part times the transfers in flight of the two
 * handles. An interrupted or failed copy aborts its upload, so nothing
 * appears under the key; an upload that cannot be aborted is left for
 * `stowage gc`. */
#ifndef STOWAGE_OBJECT_COPY_H
#define STOWAGE_OBJECT_COPY_H

#include <stdint.h>

#include "common/error.h"
#include "manifest.h"
#include "storage/storage.h"

struct object_copy_stats {
    const char *method;   /* "server-side" or "streamed"; static string */
    uint64_t bytes;
    size_t parts;
    double seconds;
};

/* Copies the data object of manifest from source to destination under the
 * same key, then compares the part list the upload returns with the
 * manifest's. server_side 0 streams every part through this host. With a
 * lock (NULL: none), the copy is stored under S3 Object Lock, and its
 * retention is read back and set when the store did not apply it
 * (storage_upload_begin_locked). Fails
 * with STOW_EXIT_VERIFY when a source part fails its SHA-256 check, and
 * with STOW_EXIT_INTERRUPTED on SIGINT or SIGTERM. Nothing is written under
 * the key unless the whole copy succeeds. */
int object_copy(storage *source, storage *destination, const struct manifest *manifest,
                int server_side, const struct storage_object_lock *lock,
                struct object_copy_stats *stats, stow_error *err);

/* Checks the object of manifest in store: its size, then every part's
 * SHA-256, read back once with ranged reads. Fails with STOW_EXIT_VERIFY
 * naming the key and the first difference (missing, wrong size, or the
 * part that differs), and with STOW_EXIT_INTERRUPTED on SIGINT or SIGTERM.
 * *seconds receives the time taken (may be NULL). */
int object_check(storage *store, const struct manifest *manifest, double *seconds,
                 stow_error *err);

#endif
