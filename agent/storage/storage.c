/* Repository URL parsing, dispatch to the driver, and the pieces both
 * drivers share: key joining, part digests and the part-size policy. */
#include "storage/storage_driver.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *copy_or_null(const char *text)
{
    return text == NULL ? NULL : strdup(text);
}

static char *trim_slashes(const char *text, size_t len)
{
    while (len > 0 && *text == '/') {
        text++;
        len--;
    }
    while (len > 0 && text[len - 1] == '/')
        len--;
    return strndup(text, len);
}

/* Splits s3://BUCKET/PREFIX into location and prefix. */
static int parse_s3_url(storage *store, const char *rest, stow_error *err)
{
    const char *slash = strchr(rest, '/');
    size_t bucket_len = slash == NULL ? strlen(rest) : (size_t)(slash - rest);

    if (bucket_len == 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "invalid repository URL %s: the bucket name is missing", store->url);
    store->location = strndup(rest, bucket_len);
    store->prefix = slash == NULL ? strdup("") : trim_slashes(slash, strlen(slash));
    return 0;
}

/* file:///PATH keeps the whole path as the location; the prefix is empty. */
static int parse_file_url(storage *store, const char *rest, stow_error *err)
{
    size_t len = strlen(rest);

    if (rest[0] != '/')
        return stow_fail(err, STOW_EXIT_USAGE,
                         "invalid repository URL %s: a file:// URL needs an absolute path, "
                         "as in file:///var/backups/stowage", store->url);
    while (len > 1 && rest[len - 1] == '/')
        len--;
    store->location = strndup(rest, len);
    store->prefix = strdup("");
    return 0;
}

static int select_driver(storage *store, stow_error *err)
{
    const char *url = store->url;

    if (strncmp(url, "s3://", 5) == 0) {
        store->driver = &storage_s3_driver;
        return parse_s3_url(store, url + 5, err);
    }
    if (strncmp(url, "file://", 7) == 0) {
        store->driver = &storage_file_driver;
        return parse_file_url(store, url + 7, err);
    }
    stow_fail(err, STOW_EXIT_USAGE, "invalid repository URL %s: unknown scheme", url);
    stow_error_hint(err, "use s3://BUCKET/PREFIX or file:///PATH");
    return -1;
}

int storage_open(const struct storage_options *options, storage **out, stow_error *err)
{
    storage *store;

    *out = NULL;
    if (options->url == NULL || options->url[0] == '\0') {
        stow_fail(err, STOW_EXIT_USAGE, "no repository given");
        stow_error_hint(err, "pass --repo s3://BUCKET/PREFIX or --repo file:///PATH, "
                             "or set STOWAGE_REPO");
        return -1;
    }

    store = calloc(1, sizeof *store);
    if (store == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    store->options = *options;
    store->url = strdup(options->url);
    store->options.url = store->url;
    store->options.region = copy_or_null(options->region);
    store->options.endpoint = copy_or_null(options->endpoint);
    store->options.storage_class = copy_or_null(options->storage_class);
    if (store->options.transfers_in_flight <= 0)
        store->options.transfers_in_flight = STORAGE_DEFAULT_TRANSFERS;
    if (store->options.max_attempts <= 0)
        store->options.max_attempts = 8;
    if (store->options.min_part_size == 0)
        store->options.min_part_size = STORAGE_MIN_PART_SIZE;

    if (select_driver(store, err) != 0 || store->driver->open(store, &store->options, err) != 0) {
        storage_free(store);
        return -1;
    }
    *out = store;
    return 0;
}

int storage_open_copy(const storage *store, storage **out, stow_error *err)
{
    return storage_open(&store->options, out, err);
}

void storage_free(storage *store)
{
    if (store == NULL)
        return;
    if (store->driver != NULL && store->driver->close != NULL && store->location != NULL)
        store->driver->close(store);
    free((char *)store->options.region);
    free((char *)store->options.endpoint);
    free((char *)store->options.storage_class);
    free(store->url);
    free(store->location);
    free(store->prefix);
    free(store);
}

size_t storage_min_part_size(const storage *store)
{
    return store->options.min_part_size;
}

const char *storage_url(const storage *store)
{
    return store->url;
}

char *storage_full_key(const storage *store, const char *key)
{
    size_t prefix_len = strlen(store->prefix);
    size_t key_len = strlen(key);
    char *full = malloc(prefix_len + key_len + 2);

    if (full == NULL)
        return NULL;
    if (prefix_len == 0) {
        memcpy(full, key, key_len + 1);
        return full;
    }
    memcpy(full, store->prefix, prefix_len);
    full[prefix_len] = '/';
    memcpy(full + prefix_len + 1, key, key_len + 1);
    return full;
}

int storage_check(storage *store, enum storage_access access, stow_error *err)
{
    return store->driver->check(store, access, err);
}

int storage_put(storage *store, const char *key, const void *data, size_t len,
                const struct storage_put_options *options, stow_error *err)
{
    static const struct storage_put_options defaults = {0, NULL};

    return store->driver->put(store, key, data, len, options != NULL ? options : &defaults,
                              err);
}

const char *storage_lock_mode_name(enum storage_lock_mode mode)
{
    switch (mode) {
    case STORAGE_LOCK_GOVERNANCE:
        return "GOVERNANCE";
    case STORAGE_LOCK_COMPLIANCE:
        return "COMPLIANCE";
    case STORAGE_LOCK_NONE:
        break;
    }
    return NULL;
}

int storage_lock_mode_parse(const char *text, enum storage_lock_mode *out)
{
    if (strcasecmp(text, "governance") == 0)
        *out = STORAGE_LOCK_GOVERNANCE;
    else if (strcasecmp(text, "compliance") == 0)
        *out = STORAGE_LOCK_COMPLIANCE;
    else
        return -1;
    return 0;
}

static int fail_no_object_lock(const storage *store, stow_error *err)
{
    stow_fail(err, STOW_EXIT_USAGE, "repository %s cannot store locked objects: only s3:// "
                                    "repositories support Object Lock",
              store->url);
    stow_error_hint(err, "use an s3:// repository in a bucket created with Object Lock "
                         "enabled, or leave out --object-lock-days");
    return -1;
}

static int is_locked(const struct storage_object_lock *lock)
{
    return lock != NULL && lock->mode != STORAGE_LOCK_NONE;
}

int storage_check_object_lock(storage *store, stow_error *err)
{
    if (store->driver->check_object_lock == NULL)
        return fail_no_object_lock(store, err);
    return store->driver->check_object_lock(store, err);
}

int storage_put_locked(storage *store, const char *key, const void *data, size_t len,
                       const struct storage_put_options *options,
                       const struct storage_object_lock *lock, stow_error *err)
{
    static const struct storage_put_options defaults = {0, NULL};

    if (!is_locked(lock))
        return storage_put(store, key, data, len, options, err);
    if (store->driver->put_locked == NULL)
        return fail_no_object_lock(store, err);
    return store->driver->put_locked(store, key, data, len,
                                     options != NULL ? options : &defaults, lock, err);
}

int storage_lock_object(storage *store, const char *key, const struct storage_object_lock *lock,
                        stow_error *err)
{
    if (store->driver->lock_object == NULL)
        return fail_no_object_lock(store, err);
    return store->driver->lock_object(store, key, lock, err);
}

void storage_remove_empty_dirs(storage *store, const char *prefix, time_t modified_before,
                               size_t *removed)
{
    if (store->driver->remove_empty_dirs != NULL)
        store->driver->remove_empty_dirs(store, prefix, modified_before, removed);
}

int storage_delete_versions(storage *store, const char *key, stow_error *err)
{
    if (store->driver->delete_versions == NULL)
        return storage_delete(store, key, err);
    return store->driver->delete_versions(store, key, err);
}

int storage_get(storage *store, const char *key, stow_buf *out, stow_error *err)
{
    stow_buf_reset(out);
    return store->driver->get(store, key, out, err);
}

int storage_get_range(storage *store, const char *key, uint64_t offset, uint64_t len,
                      stow_buf *out, stow_error *err)
{
    stow_buf_reset(out);
    return store->driver->get_range(store, key, offset, len, out, err);
}

int storage_head(storage *store, const char *key, struct storage_object_info *info,
                 stow_error *err)
{
    memset(info, 0, sizeof *info);
    return store->driver->head(store, key, info, err);
}

int storage_check_object_size(storage *store, const char *key, uint64_t size,
                              const char *backup_id, stow_error *err)
{
    struct storage_object_info info;
    int rc = storage_head(store, key, &info, err);

    if (rc == STORAGE_NOT_FOUND)
        return stow_fail(err, STOW_EXIT_VERIFY, "object %s is missing from %s", key,
                         storage_url(store));
    if (rc != 0)
        return -1;
    if (info.size != size)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "object %s in %s has %llu bytes, the manifest of backup %s says %llu",
                         key, storage_url(store), (unsigned long long)info.size, backup_id,
                         (unsigned long long)size);
    return 0;
}

int storage_list(storage *store, const char *prefix, storage_list_fn fn, void *context,
                 stow_error *err)
{
    return store->driver->list(store, prefix, fn, context, err);
}

int storage_delete(storage *store, const char *key, stow_error *err)
{
    return store->driver->delete_key(store, key, err);
}

int storage_list_uploads(storage *store, const char *prefix, storage_upload_list_fn fn,
                         void *context, stow_error *err)
{
    return store->driver->list_uploads(store, prefix, fn, context, err);
}

int storage_abort_upload(storage *store, const char *key, const char *upload_id,
                         stow_error *err)
{
    return store->driver->abort_upload(store, key, upload_id, err);
}

/* Every upload and download handle starts with a pointer to its storage,
 * so the dispatchers below can find the driver. */
struct storage_transfer_head {
    storage *store;
};

int storage_upload_begin(storage *store, const char *key, storage_upload **out,
                         stow_error *err)
{
    *out = NULL;
    return store->driver->upload_begin(store, key, out, err);
}

int storage_upload_begin_locked(storage *store, const char *key,
                                const struct storage_object_lock *lock, storage_upload **out,
                                stow_error *err)
{
    *out = NULL;
    if (!is_locked(lock))
        return store->driver->upload_begin(store, key, out, err);
    if (store->driver->upload_begin_locked == NULL)
        return fail_no_object_lock(store, err);
    return store->driver->upload_begin_locked(store, key, lock, out, err);
}

int storage_upload_reserve(storage_upload *upload, size_t part_size, stow_buf *part,
                           stow_error *err)
{
    storage *store = ((struct storage_transfer_head *)upload)->store;

    return store->driver->upload_reserve(upload, part_size, part, err);
}

int storage_upload_part(storage_upload *upload, stow_buf *part, stow_error *err)
{
    storage *store = ((struct storage_transfer_head *)upload)->store;

    return store->driver->upload_part(upload, part, err);
}

int storage_upload_part_copy(storage_upload *upload, storage *source, const char *source_key,
                             uint64_t offset, uint64_t size, const uint8_t sha256[32],
                             stow_error *err)
{
    storage *store = ((struct storage_transfer_head *)upload)->store;

    if (store->driver->upload_part_copy == NULL || source->driver != store->driver)
        return STORAGE_UNSUPPORTED;
    return store->driver->upload_part_copy(upload, source, source_key, offset, size, sha256,
                                           err);
}

int storage_upload_complete(storage_upload *upload, struct storage_part_list *parts_out,
                            stow_error *err)
{
    storage *store = ((struct storage_transfer_head *)upload)->store;

    memset(parts_out, 0, sizeof *parts_out);
    return store->driver->upload_complete(upload, parts_out, err);
}

void storage_upload_abort(storage_upload *upload)
{
    storage *store;

    if (upload == NULL)
        return;
    store = ((struct storage_transfer_head *)upload)->store;
    store->driver->upload_abort(upload);
}

int storage_download_begin(storage *store, const char *key,
                           const struct storage_part_list *ranges, storage_download **out,
                           stow_error *err)
{
    *out = NULL;
    return store->driver->download_begin(store, key, ranges, out, err);
}

int storage_download_next(storage_download *download, stow_buf *out, stow_error *err)
{
    storage *store = ((struct storage_transfer_head *)download)->store;

    stow_buf_reset(out);
    return store->driver->download_next(download, out, err);
}

void storage_download_cancel(storage_download *download)
{
    storage *store = ((struct storage_transfer_head *)download)->store;

    if (store->driver->download_cancel != NULL)
        store->driver->download_cancel(download);
}

void storage_download_free(storage_download *download)
{
    storage *store;

    if (download == NULL)
        return;
    store = ((struct storage_transfer_head *)download)->store;
    store->driver->download_free(download);
}

void storage_part_list_free(struct storage_part_list *list)
{
    if (list == NULL)
        return;
    free(list->parts);
    list->parts = NULL;
    list->count = 0;
    list->total_size = 0;
}

size_t storage_download_buffer_size(const struct storage_part_list *ranges)
{
    uint64_t largest = STORAGE_DEFAULT_PART_SIZE;

    for (size_t i = 0; i < ranges->count; i++) {
        if (ranges->parts[i].size > largest)
            largest = ranges->parts[i].size;
    }
    return (size_t)largest;
}

void storage_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int out_len = 32;

    EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL);
}

static void hex_encode(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

int storage_check_part_digest(const char *key, const struct storage_part *part,
                              const stow_buf *data, stow_error *err)
{
    uint8_t actual[32];
    char expected_hex[65];
    char actual_hex[65];

    if (data->len != part->size)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "part %u of %s (offset %llu) has %zu bytes, expected %llu: "
                         "the object is truncated or was replaced",
                         part->number, key, (unsigned long long)part->offset, data->len,
                         (unsigned long long)part->size);

    storage_sha256(data->data, data->len, actual);
    if (memcmp(actual, part->sha256, 32) == 0)
        return 0;

    hex_encode(part->sha256, 32, expected_hex);
    hex_encode(actual, 32, actual_hex);
    return stow_fail(err, STOW_EXIT_VERIFY,
                     "part %u of %s (offset %llu, %llu bytes) failed its SHA-256 check: "
                     "expected %s, found %s",
                     part->number, key, (unsigned long long)part->offset,
                     (unsigned long long)part->size, expected_hex, actual_hex);
}

uint64_t storage_part_size_for(uint32_t part_number, uint64_t base_size,
                               uint32_t growth_interval)
{
    uint32_t doublings;
    uint64_t size = base_size;

    if (growth_interval == 0)
        growth_interval = STORAGE_PART_GROWTH_INTERVAL;
    doublings = part_number == 0 ? 0 : (part_number - 1) / growth_interval;
    for (uint32_t i = 0; i < doublings && size < STORAGE_MAX_PART_SIZE; i++)
        size *= 2;
    return size > STORAGE_MAX_PART_SIZE ? STORAGE_MAX_PART_SIZE : size;
}
