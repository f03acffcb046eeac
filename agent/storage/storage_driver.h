/* Driver interface behind storage.h. Each driver (storage_s3.c,
 * storage_file.c) fills one struct storage_driver; storage.c dispatches and
 * keeps the shared parts (URL parsing, part-size policy). Private to
 * agent/storage/. */
#ifndef STOWAGE_STORAGE_DRIVER_H
#define STOWAGE_STORAGE_DRIVER_H

#include "storage/storage.h"

struct storage_driver {
    const char *scheme; /* "s3" or "file" */
    int (*open)(storage *store, const struct storage_options *options, stow_error *err);
    void (*close)(storage *store);
    int (*check)(storage *store, enum storage_access access, stow_error *err);
    int (*put)(storage *store, const char *key, const void *data, size_t len,
               const struct storage_put_options *options, stow_error *err);
    int (*get)(storage *store, const char *key, stow_buf *out, stow_error *err);
    int (*get_range)(storage *store, const char *key, uint64_t offset, uint64_t len,
                     stow_buf *out, stow_error *err);
    int (*head)(storage *store, const char *key, struct storage_object_info *info,
                stow_error *err);
    int (*list)(storage *store, const char *prefix, storage_list_fn fn, void *context,
                stow_error *err);
    int (*delete_key)(storage *store, const char *key, stow_error *err);
    int (*list_uploads)(storage *store, const char *prefix, storage_upload_list_fn fn,
                        void *context, stow_error *err);
    int (*abort_upload)(storage *store, const char *key, const char *upload_id,
                        stow_error *err);
    int (*upload_begin)(storage *store, const char *key, storage_upload **out,
                        stow_error *err);
    int (*upload_reserve)(storage_upload *upload, size_t part_size, stow_buf *part,
                          stow_error *err);
    int (*upload_part)(storage_upload *upload, stow_buf *part, stow_error *err);
    int (*upload_complete)(storage_upload *upload, struct storage_part_list *parts_out,
                           stow_error *err);
    void (*upload_abort)(storage_upload *upload);
    /* Optional (NULL: STORAGE_UNSUPPORTED). Called only when source uses the
     * same driver; returns STORAGE_UNSUPPORTED when the two stores cannot copy
     * between them. */
    int (*upload_part_copy)(storage_upload *upload, storage *source, const char *source_key,
                            uint64_t offset, uint64_t size, const uint8_t sha256[32],
                            stow_error *err);
    /* Object Lock: optional, NULL where the store has none (file://). The
     * put and upload hooks take a lock that is never NULL. */
    int (*check_object_lock)(storage *store, stow_error *err);
    int (*put_locked)(storage *store, const char *key, const void *data, size_t len,
                      const struct storage_put_options *options,
                      const struct storage_object_lock *lock, stow_error *err);
    int (*upload_begin_locked)(storage *store, const char *key,
                               const struct storage_object_lock *lock, storage_upload **out,
                               stow_error *err);
    int (*lock_object)(storage *store, const char *key, const struct storage_object_lock *lock,
                       stow_error *err);
    int (*delete_versions)(storage *store, const char *key, stow_error *err);
    /* Optional: NULL where the store has no directories (S3). */
    void (*remove_empty_dirs)(storage *store, const char *prefix, time_t modified_before,
                              size_t *removed);
    int (*download_begin)(storage *store, const char *key,
                          const struct storage_part_list *ranges, storage_download **out,
                          stow_error *err);
    int (*download_next)(storage_download *download, stow_buf *out, stow_error *err);
    void (*download_free)(storage_download *download);
    /* Optional: NULL where reads do not wait on a network (file://). */
    void (*download_cancel)(storage_download *download);
};

/* Common head of every storage handle; drivers keep their state in
 * driver_state. */
struct storage {
    const struct storage_driver *driver;
    struct storage_options options;  /* strings below are owned copies */
    char *url;
    char *location;   /* bucket (s3) or directory (file), owned */
    char *prefix;     /* key prefix without leading or trailing '/', may be "" */
    void *driver_state;
};

/* Each driver defines struct storage_upload and struct storage_download
 * itself, and both MUST start with a `storage *store` member: storage.c
 * reads that first member to dispatch upload and download calls. */

extern const struct storage_driver storage_s3_driver;
extern const struct storage_driver storage_file_driver;

/* Joins prefix and key into a newly allocated full key ("prefix/key"). */
char *storage_full_key(const storage *store, const char *key);

/* Checks a downloaded range against its part entry; shared by drivers. */
int storage_check_part_digest(const char *key, const struct storage_part *part,
                              const stow_buf *data, stow_error *err);

/* Size of a download's part buffers: the largest range, at least
 * STORAGE_DEFAULT_PART_SIZE, so that small backups take the same memory as
 * large ones. */
size_t storage_download_buffer_size(const struct storage_part_list *ranges);

/* SHA-256 of data (OpenSSL, hardware-accelerated where the CPU allows). */
void storage_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
