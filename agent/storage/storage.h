/* Repository storage: one interface, two drivers (S3 and file://).
 *
 * Keys are relative to the repository's prefix and use '/' as separator.
 * Every command reaches the repository only through these calls, so both
 * drivers behave the same to it. A storage handle is used by one thread at
 * a time; an upload or download may run worker threads of its own.
 *
 * Return values: 0 success, -1 failure (err filled), or one of the
 * STORAGE_* outcomes below where a call documents it. */
#ifndef STOWAGE_STORAGE_H
#define STOWAGE_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/error.h"

#define STORAGE_NOT_FOUND 1   /* the key does not exist; err untouched */
#define STORAGE_CONFLICT 2    /* a conditional write lost; err untouched */
#define STORAGE_UNSUPPORTED 3 /* the stores cannot do this between them; err untouched */
#define STORAGE_ACCESS_DENIED 4 /* the store rejected a delete (S3 AccessDenied); err untouched */

/* Hard limits that S3 sets and both drivers keep, so a repository can move
 * between drivers. */
#define STORAGE_MAX_PARTS 10000
#define STORAGE_MIN_PART_SIZE (5u * 1024 * 1024)
#define STORAGE_MAX_PART_SIZE (5ull * 1024 * 1024 * 1024)
/* Parts between doublings of the part size. With 900, even 5 MiB first
 * parts add up to about 9 TiB over 10,000 parts, past the 5 TiB object
 * limit; 1000 would stop at 4.9 TiB. */
#define STORAGE_PART_GROWTH_INTERVAL 900
/* Default size of the first upload parts. An S3 upload uses
 * transfers_in_flight + 1 part buffers (40 MiB with 4 transfers), a
 * file:// upload 2. The
 * parts, and so that memory, double from an object of 900 x 8 MiB =
 * 7.03 GiB on. A download reads ahead at most transfers_in_flight x this
 * many bytes while its parts are no larger. */
#define STORAGE_DEFAULT_PART_SIZE (8u * 1024 * 1024)
#define STORAGE_DEFAULT_TRANSFERS 4
/* A download joins consecutive parts into ranged GETs of up to this many
 * parts and bytes: half the requests of one GET per default part. AWS's
 * "Optimizing Amazon S3 performance" guide gives 8 MB or 16 MB as typical
 * byte-range sizes, aligned with the parts of a multipart upload. */
#define STORAGE_DOWNLOAD_FETCH_PARTS 2
#define STORAGE_DOWNLOAD_FETCH_SIZE (2u * STORAGE_DEFAULT_PART_SIZE)

typedef struct storage storage;
typedef struct storage_upload storage_upload;
typedef struct storage_download storage_download;

struct storage_options {
    const char *url;           /* s3://BUCKET/PREFIX or file:///PATH */
    const char *region;        /* NULL: AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1 */
    const char *endpoint;      /* NULL: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS */
    int path_style;            /* -1: automatic (IP and localhost endpoints), 0 or 1 */
    const char *storage_class; /* NULL: the bucket's default */
    int transfers_in_flight;   /* parts uploaded or downloaded at once; 0: default 4 */
    int max_attempts;          /* attempts per request, retries included; 0: default 8 */
    size_t min_part_size;      /* 0: STORAGE_MIN_PART_SIZE; tests lower it */
};

struct storage_object_info {
    uint64_t size;
    time_t modified;
    char etag[128];
};

/* One completed part of an upload, as the manifest records it. */
struct storage_part {
    uint32_t number;       /* 1-based */
    uint64_t offset;       /* byte offset of the part in the object */
    uint64_t size;
    uint8_t sha256[32];    /* SHA-256 of the part's bytes */
};

struct storage_part_list {
    struct storage_part *parts;  /* owned; free with storage_part_list_free */
    size_t count;
    uint64_t total_size;
};

typedef int (*storage_list_fn)(const char *key, const struct storage_object_info *info,
                               void *context);

/* Opens the repository named by options->url. Fails with STOW_EXIT_USAGE for
 * a malformed URL. Does not contact the store: storage_check does. */
int storage_open(const struct storage_options *options, storage **out, stow_error *err);

/* Opens a second handle on the repository of store, with the same options,
 * for use by another thread (a handle serves one thread at a time). */
int storage_open_copy(const storage *store, storage **out, stow_error *err);
void storage_free(storage *store);

/* The smallest part the store accepts (all but the last part). */
size_t storage_min_part_size(const storage *store);

/* The repository URL, safe to print (no credentials). */
const char *storage_url(const storage *store);

/* The access a command needs to the repository: reading alone (list, a
 * dry run) or writing too (a backup, expire, gc). */
enum storage_access { STORAGE_ACCESS_READ, STORAGE_ACCESS_WRITE };

/* Checks that the repository is reachable enough to start: the bucket
 * exists and the credentials work, or the directory exists and this user
 * may read it, and write it for STORAGE_ACCESS_WRITE. Fails with
 * STOW_EXIT_STORAGE naming the bucket or path and the fix. */
int storage_check(storage *store, enum storage_access access, stow_error *err);

struct storage_put_options {
    int if_none_match;        /* 1: create only; STORAGE_CONFLICT if the key exists */
    const char *content_type; /* NULL: application/octet-stream */
};

/* Writes a small object whole and durably (manifests, locks, reports). */
int storage_put(storage *store, const char *key, const void *data, size_t len,
                const struct storage_put_options *options, stow_error *err);

/* --- S3 Object Lock (write once, read many) ---------------------------- */

enum storage_lock_mode {
    STORAGE_LOCK_NONE = 0,
    STORAGE_LOCK_GOVERNANCE, /* removable early by s3:BypassGovernanceRetention */
    STORAGE_LOCK_COMPLIANCE  /* removable by nobody, the account root included */
};

/* The retention that a new object is stored with. */
struct storage_object_lock {
    enum storage_lock_mode mode;
    time_t retain_until; /* UTC, whole seconds */
};

/* The S3 name of mode ("GOVERNANCE", "COMPLIANCE"), or NULL for none. */
const char *storage_lock_mode_name(enum storage_lock_mode mode);

/* Parses "governance" or "compliance" in any case. Returns -1 otherwise. */
int storage_lock_mode_parse(const char *text, enum storage_lock_mode *out);

/* Checks that the repository can store locked objects: an S3 bucket with
 * Object Lock enabled. Fails with STOW_EXIT_USAGE naming the bucket and
 * the fix when it has none, and for file:// repositories. */
int storage_check_object_lock(storage *store, stow_error *err);

/* storage_put, and the object is stored under lock (NULL: no lock). On S3
 * the object's retention is read back, and the call fails unless the
 * store applied it. */
int storage_put_locked(storage *store, const char *key, const void *data, size_t len,
                       const struct storage_put_options *options,
                       const struct storage_object_lock *lock, stow_error *err);

/* Sets the retention of the existing object key to at least lock, as
 * storage_put_locked does after its write: HeadObject, then
 * PutObjectRetention when the object is not locked that long, then
 * HeadObject again. Returns STORAGE_NOT_FOUND (err untouched) when key does
 * not exist. */
int storage_lock_object(storage *store, const char *key, const struct storage_object_lock *lock,
                        stow_error *err);

/* Deletes key for good: on S3 every version and delete marker of key
 * (ListObjectVersions, then DELETE with versionId), so a versioned bucket
 * keeps no copy. Returns STORAGE_ACCESS_DENIED, with err untouched, when S3
 * rejected a version (Object Lock retention, a legal hold, or missing
 * s3:DeleteObjectVersion); versions already deleted stay deleted. On
 * file:// it is storage_delete. */
int storage_delete_versions(storage *store, const char *key, stow_error *err);

/* Reads a whole object into out (reset first), up to out->max bytes.
 * Returns STORAGE_NOT_FOUND when the key does not exist. */
int storage_get(storage *store, const char *key, stow_buf *out, stow_error *err);

/* Reads len bytes at offset into out (reset first). */
int storage_get_range(storage *store, const char *key, uint64_t offset, uint64_t len,
                      stow_buf *out, stow_error *err);

/* Returns STORAGE_NOT_FOUND when the key does not exist. */
int storage_head(storage *store, const char *key, struct storage_object_info *info,
                 stow_error *err);

/* Checks that the object at key exists and has exactly size bytes, as the
 * manifest of backup_id states: a missing, shorter or longer object fails
 * with STOW_EXIT_VERIFY. Other errors keep their exit code. */
int storage_check_object_size(storage *store, const char *key, uint64_t size,
                              const char *backup_id, stow_error *err);

/* Calls fn for every key under prefix, in lexical order. A non-zero return
 * from fn stops the listing and is returned. */
int storage_list(storage *store, const char *prefix, storage_list_fn fn, void *context,
                 stow_error *err);

/* Deletes one key; deleting a missing key succeeds. On file://, the
 * directories the deletion leaves empty are removed too, except the first
 * two levels of the key (backups/NAME). */
int storage_delete(storage *store, const char *key, stow_error *err);

/* Removes the empty directories under prefix that were last modified
 * before modified_before, except the first two levels of a key, and adds
 * their number to *removed. Best effort: a directory that cannot be read
 * or removed stays. A no-op on stores without directories (S3). */
void storage_remove_empty_dirs(storage *store, const char *prefix, time_t modified_before,
                               size_t *removed);

/* An unfinished upload: an S3 multipart upload, or on file:// the hidden
 * temporary file (".NAME.tmp-RANDOM") of an upload or a put. */
struct storage_upload_info {
    const char *key;        /* the key it would create, relative to the repository */
    const char *upload_id;  /* S3 upload id, or the temporary file's name */
    time_t initiated;       /* S3 Initiated; file: last write of the temporary file */
    uint64_t size;          /* bytes written so far when size_known */
    int size_known;         /* 1 on file://; 0 on S3, which lists no sizes */
};

typedef int (*storage_upload_list_fn)(const struct storage_upload_info *upload, void *context);

/* Calls fn for every unfinished upload whose key starts with prefix. A
 * non-zero return from fn stops the listing and is returned.
 * NOTE: moto reports every multipart upload as initiated in 2010, so
 * `initiated` cannot be trusted there. */
int storage_list_uploads(storage *store, const char *prefix, storage_upload_list_fn fn,
                         void *context, stow_error *err);

/* Aborts one unfinished upload that storage_list_uploads returned. An upload
 * that no longer exists succeeds. */
int storage_abort_upload(storage *store, const char *key, const char *upload_id,
                         stow_error *err);

/* --- Streaming upload of an object of unknown length ------------------- */

/* Starts an upload to key. Nothing is visible under key until
 * storage_upload_complete succeeds. */
int storage_upload_begin(storage *store, const char *key, storage_upload **out,
                         stow_error *err);

/* storage_upload_begin for an object stored under lock (NULL: no lock).
 * storage_upload_complete then reads the object's retention back and
 * applies it when the store did not (S3 PutObjectRetention). */
int storage_upload_begin_locked(storage *store, const char *key,
                                const struct storage_object_lock *lock, storage_upload **out,
                                stow_error *err);

/* Allocates and prefaults every part buffer that the upload will use, each
 * of part_size bytes: part itself, and the buffers that storage_upload_part
 * hands back in turn (transfers_in_flight on S3, one on file://, whose
 * writer thread writes one part while the next is filled). The footprint is
 * then fixed from the start (see part_pool.h). Optional: without it the
 * buffers grow as parts arrive, with the same bound. */
int storage_upload_reserve(storage_upload *upload, size_t part_size, stow_buf *part,
                           stow_error *err);

/* Hands the next part to the upload. The upload takes the buffer's memory
 * and part comes back empty (same max) holding a buffer that the upload no
 * longer needs, so a caller that refills the same buffer keeps memory at
 * transfers_in_flight + 1 part buffers (2 on file://). Blocks while
 * transfers_in_flight parts (one on file://) are in flight. Each part is
 * hashed once (SHA-256); on S3 the digest serves both the request
 * signature and the checksum header. Every part
 * but the last must be at least min_part_size bytes. A failure of any
 * earlier part may surface here. */
int storage_upload_part(storage_upload *upload, stow_buf *part, stow_error *err);

/* Hands the next part to the upload as a copy, made inside the store, of
 * the size bytes at offset of source_key in source: S3 UploadPartCopy with
 * x-amz-copy-source-range, so the data does not pass through this host.
 * sha256 is the part's expected SHA-256. It goes into the part list and the
 * completion request, and a store that reports the copied part's checksum
 * is checked against it (a mismatch fails with STOW_EXIT_VERIFY). Otherwise
 * the copy is not read, so callers check the object afterwards. Returns
 * STORAGE_UNSUPPORTED, leaving the upload unchanged, unless both stores are
 * S3 on the same endpoint (or both on AWS's own endpoints); the caller then
 * reads the part and hands it over with storage_upload_part. Part-size rules
 * and failures behave as in storage_upload_part, and the two calls may be
 * mixed in one upload. */
int storage_upload_part_copy(storage_upload *upload, storage *source, const char *source_key,
                             uint64_t offset, uint64_t size, const uint8_t sha256[32],
                             stow_error *err);

/* Waits for all parts, commits the object and returns the part list in
 * order (parts_out owned by the caller). An upload with no parts stores an
 * empty object. On failure the upload is aborted before returning. Frees
 * the upload either way. */
int storage_upload_complete(storage_upload *upload, struct storage_part_list *parts_out,
                            stow_error *err);

/* Aborts the upload (S3 AbortMultipartUpload, or removal of the temporary
 * file) and frees it. Accepts NULL. Safe after a failed upload_part. */
void storage_upload_abort(storage_upload *upload);

/* --- Streaming download by ranges ---------------------------------------- */

/* Starts a download of key in the given ranges (normally the manifest's
 * parts). The part list is copied. On S3 consecutive parts after the first
 * are fetched together, in ranged GETs of up to STORAGE_DOWNLOAD_FETCH_PARTS
 * parts and STORAGE_DOWNLOAD_FETCH_SIZE bytes (a larger part alone). Once the
 * first part has arrived, as many GETs run ahead as fit in
 * transfers_in_flight x STORAGE_DEFAULT_PART_SIZE bytes, never fewer than
 * one. Each of those buffers takes a GET of joined parts of the largest
 * part's size. One more, for out, takes the largest part (at least
 * STORAGE_DEFAULT_PART_SIZE). All are allocated and prefaulted here,
 * whatever the object's length, so a download's memory depends on the
 * settings and the part size alone. On
 * file:// the first storage_download_next grows and prefaults out. */
int storage_download_begin(storage *store, const char *key,
                           const struct storage_part_list *ranges,
                           storage_download **out, stow_error *err);

/* Returns the next range's bytes in order in out (reset first), after
 * checking its SHA-256 against the list: a mismatch fails with
 * STOW_EXIT_VERIFY naming the part number and offset. Returns
 * STORAGE_NOT_FOUND after the last range. */
int storage_download_next(storage_download *download, stow_buf *out, stow_error *err);

/* Ends the ranges in flight and those still to be fetched, so that the
 * thread in storage_download_next returns an error soon. Callable from
 * another thread while the download is in use, not after it is freed. */
void storage_download_cancel(storage_download *download);

/* Accepts NULL. Cancels ranges still in flight. */
void storage_download_free(storage_download *download);

void storage_part_list_free(struct storage_part_list *list);

/* Part size for 1-based part number when base_size bytes start the upload:
 * the size doubles every `growth_interval` parts (STORAGE_PART_GROWTH_INTERVAL
 * by default), capped
 * at STORAGE_MAX_PART_SIZE, so a stream of any length up to the S3 object
 * limit fits in STORAGE_MAX_PARTS parts. */
uint64_t storage_part_size_for(uint32_t part_number, uint64_t base_size,
                               uint32_t growth_interval);

#endif
