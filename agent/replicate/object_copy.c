/* Copying and checking data objects with the manifest's part boundaries. */
#include "replicate/object_copy.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/duration.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "common/progress.h"

static size_t largest_part(const struct storage_part_list *parts)
{
    uint64_t largest = 0;

    for (size_t i = 0; i < parts->count; i++) {
        if (parts->parts[i].size > largest)
            largest = parts->parts[i].size;
    }
    return (size_t)largest;
}

/* Copies parts inside the store from the first on. *copied counts the parts
 * handed over. Returns STORAGE_UNSUPPORTED when the stores cannot copy
 * between them; the parts from *copied on are then still to be sent. */
static int copy_parts_in_store(storage *source, storage_upload *upload,
                               const struct manifest *manifest, size_t *copied,
                               stow_error *err)
{
    for (size_t i = 0; i < manifest->parts.count; i++) {
        const struct storage_part *part = &manifest->parts.parts[i];
        int rc;

        if (stow_interrupted())
            return stow_fail_interrupted(err, "the copy of the data object");
        rc = storage_upload_part_copy(upload, source, manifest->object_key, part->offset,
                                      part->size, part->sha256, err);
        if (rc != 0)
            return rc;
        *copied = i + 1;
        stow_progress_add_bytes(part->size);
    }
    return 0;
}

/* Reads the parts from index first on from source (each checked against its
 * SHA-256) and uploads each as one part of the same size. */
static int stream_parts(storage *source, storage_upload *upload, const struct manifest *manifest,
                        size_t first, stow_error *err)
{
    struct storage_part_list rest = {manifest->parts.parts + first,
                                     manifest->parts.count - first, 0};
    storage_download *download = NULL;
    stow_buf part;
    int rc;

    for (size_t i = 0; i < rest.count; i++)
        rest.total_size += rest.parts[i].size;
    if (rest.count == 0)
        return 0;
    stow_buf_init(&part, largest_part(&rest));
    rc = storage_download_begin(source, manifest->object_key, &rest, &download, err);
    while (rc == 0) {
        if (stow_interrupted()) {
            rc = stow_fail_interrupted(err, "the copy of the data object");
            break;
        }
        rc = storage_download_next(download, &part, err);
        if (rc == STORAGE_NOT_FOUND) {
            rc = 0;
            break;
        }
        if (rc == 0)
            stow_progress_add_bytes(part.len);
        if (rc == 0)
            rc = storage_upload_part(upload, &part, err);
    }
    storage_download_free(download);
    stow_buf_free(&part);
    return rc;
}

/* Checks that the upload stored exactly the manifest's parts. */
static int compare_parts(const struct manifest *manifest, const struct storage_part_list *written,
                         const char *repository, stow_error *err)
{
    if (written->count != manifest->parts.count)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the copy of %s in %s has %zu parts, the manifest of backup %s lists "
                         "%zu",
                         manifest->object_key, repository, written->count, manifest->id,
                         manifest->parts.count);
    for (size_t i = 0; i < written->count; i++) {
        const struct storage_part *expected = &manifest->parts.parts[i];
        const struct storage_part *actual = &written->parts[i];

        if (actual->offset != expected->offset || actual->size != expected->size ||
            memcmp(actual->sha256, expected->sha256, sizeof actual->sha256) != 0)
            return stow_fail(err, STOW_EXIT_VERIFY,
                             "part %u of the copy of %s in %s differs from the manifest of "
                             "backup %s (offset, size or SHA-256)",
                             expected->number, manifest->object_key, repository, manifest->id);
    }
    return 0;
}

/* Warns when the source object is longer than its manifest states. The copy
 * takes the manifest's parts, so it is whole, but restores from the source
 * fail their size check. A shorter or missing source fails in the copy,
 * which names the part where the object ends. */
static int check_source_size(storage *source, const struct manifest *manifest, stow_error *err)
{
    struct storage_object_info info;
    int rc = storage_head(source, manifest->object_key, &info, err);

    if (rc == STORAGE_NOT_FOUND)
        return 0;
    if (rc != 0)
        return -1;
    if (info.size > manifest->stored_bytes)
        stow_log_warn("object %s in %s has %llu bytes, the manifest of backup %s says %llu: "
                      "the copy gets the manifest's bytes, and restores from %s fail their "
                      "size check until that object is replaced; check it with "
                      "`stowage verify --repo %s %s`",
                      manifest->object_key, storage_url(source),
                      (unsigned long long)info.size, manifest->id,
                      (unsigned long long)manifest->stored_bytes, storage_url(source),
                      storage_url(source), manifest->id);
    return 0;
}

int object_copy(storage *source, storage *destination, const struct manifest *manifest,
                int server_side, const struct storage_object_lock *lock,
                struct object_copy_stats *stats, stow_error *err)
{
    struct storage_part_list written = {0};
    storage_upload *upload = NULL;
    struct timespec started;
    size_t copied = 0;
    int rc;

    memset(stats, 0, sizeof *stats);
    clock_gettime(CLOCK_MONOTONIC, &started);
    if (check_source_size(source, manifest, err) != 0)
        return -1;
    if (storage_upload_begin_locked(destination, manifest->object_key, lock, &upload, err) != 0)
        return -1;

    /* Copy inside the store where it can; stream the rest. */
    stow_progress_begin("copied", manifest->stored_bytes);
    rc = server_side ? copy_parts_in_store(source, upload, manifest, &copied, err)
                     : STORAGE_UNSUPPORTED;
    if (rc == STORAGE_UNSUPPORTED)
        rc = stream_parts(source, upload, manifest, copied, err);
    stow_progress_end();
    if (rc != 0) {
        storage_upload_abort(upload);
        return -1;
    }

    /* Commit the object, then compare what was stored with the manifest. */
    rc = storage_upload_complete(upload, &written, err);
    if (rc == 0)
        rc = compare_parts(manifest, &written, storage_url(destination), err);
    storage_part_list_free(&written);

    stats->method = copied == manifest->parts.count && server_side ? "server-side" : "streamed";
    stats->bytes = manifest->stored_bytes;
    stats->parts = manifest->parts.count;
    stats->seconds = stow_seconds_since(&started);
    return rc;
}

int object_check(storage *store, const struct manifest *manifest, double *seconds,
                 stow_error *err)
{
    storage_download *download = NULL;
    struct timespec started;
    stow_buf part;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &started);
    if (storage_check_object_size(store, manifest->object_key, manifest->stored_bytes,
                                  manifest->id, err) != 0)
        return -1;

    /* Read every part back once; storage_download checks each SHA-256. */
    stow_buf_init(&part, largest_part(&manifest->parts));
    stow_progress_begin("checked", manifest->stored_bytes);
    rc = storage_download_begin(store, manifest->object_key, &manifest->parts, &download, err);
    while (rc == 0) {
        if (stow_interrupted()) {
            rc = stow_fail_interrupted(err, "the check of the copied object");
            break;
        }
        rc = storage_download_next(download, &part, err);
        if (rc == STORAGE_NOT_FOUND) {
            rc = 0;
            break;
        }
        if (rc == 0)
            stow_progress_add_bytes(part.len);
    }
    stow_progress_end();
    storage_download_free(download);
    stow_buf_free(&part);
    if (seconds != NULL)
        *seconds = stow_seconds_since(&started);
    return rc;
}
