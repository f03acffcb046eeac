/* Amazon S3 client: the object and multipart-upload calls that the storage
 * driver needs, signed with SigV4 and sent with the retrying HTTP layer.
 *
 * Addressing. Path-style URLs (http://HOST/BUCKET/KEY) are used on request,
 * or automatically when the endpoint host is an IP address or
 * "localhost", or when the bucket name is not a valid DNS label (dots,
 * uppercase, underscores). Otherwise virtual-hosted URLs
 * (https://BUCKET.HOST/KEY) are used.
 *
 * Keys are full object keys (any repository prefix already applied). Every
 * call is synchronous and runs on the client's own engine, except
 * s3_call_upload_part and s3_call_get_range, which prepare a call for an
 * http_worker so that several parts move at once. A client is used by one
 * thread at a time, but calls prepared from it may run on a worker thread
 * while the client serves other calls: the calls share only read-only
 * client fields and the thread-safe credentials provider.
 *
 * Integrity. PutObject and UploadPart send x-amz-checksum-sha256 (base64)
 * and sign x-amz-content-sha256 (hex) from one SHA-256 of the body;
 * multipart uploads are created with x-amz-checksum-algorithm SHA256 and
 * completed with each part's ChecksumSHA256.
 *
 * Return values: 0, -1 with err filled, or S3_NOT_FOUND / S3_CONFLICT where
 * a call documents it. */
#ifndef STOWAGE_AWS_S3_H
#define STOWAGE_AWS_S3_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/sigv4.h"
#include "common/buf.h"
#include "common/error.h"

#define S3_NOT_FOUND HTTP_RESULT_NOT_FOUND
#define S3_CONFLICT HTTP_RESULT_CONFLICT
#define S3_ACCESS_DENIED 3 /* 403 AccessDenied, where a call documents it */

#define S3_ETAG_MAX 128
#define S3_XML_BODY_MAX (16u * 1024 * 1024) /* listing pages and other XML responses */

typedef struct s3_client s3_client;

struct s3_options {
    const char *bucket;
    const char *region;        /* NULL: s3_default_region() */
    const char *endpoint;      /* NULL: s3_default_endpoint() */
    int path_style;            /* -1: automatic, 0: virtual-hosted, 1: path-style */
    const char *storage_class; /* x-amz-storage-class of uploads; NULL: bucket default */
    int max_attempts;          /* attempts per call; 0: HTTP_DEFAULT_MAX_ATTEMPTS */
    struct aws_credentials_provider *credentials; /* borrowed; NULL: default chain */
};

/* S3 Object Lock retention of one object version. */
struct s3_retention {
    const char *mode;    /* "GOVERNANCE" or "COMPLIANCE" */
    time_t retain_until; /* UTC, whole seconds */
};

struct s3_object_info {
    uint64_t size;
    time_t modified;
    char etag[S3_ETAG_MAX];
    char lock_mode[16];       /* HeadObject only: x-amz-object-lock-mode, "" when unlocked */
    time_t lock_retain_until; /* HeadObject only: 0 when unlocked */
};

struct s3_put_options {
    int if_none_match;        /* 1: send If-None-Match: * (S3_CONFLICT when the key exists) */
    const char *content_type; /* NULL: application/octet-stream */
    const struct s3_retention *retention; /* NULL: no Object Lock headers */
};

/* One finished part of a multipart upload. */
struct s3_completed_part {
    uint32_t number;
    char etag[S3_ETAG_MAX];
    uint8_t sha256[32];
};

typedef int (*s3_list_fn)(const char *key, const struct s3_object_info *info, void *context);
typedef int (*s3_upload_fn)(const char *key, const char *upload_id, time_t initiated,
                            void *context);
/* One entry of ListObjectVersions: an object version, or a delete marker. */
typedef int (*s3_version_fn)(const char *key, const char *version_id, int delete_marker,
                             void *context);

/* Returns AWS_REGION, else AWS_DEFAULT_REGION, else "us-east-1". */
const char *s3_default_region(void);

/* Writes AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else
 * https://s3.REGION.amazonaws.com into out.
 * NOTE: regions outside the aws partition (China: amazonaws.com.cn) need an
 * explicit endpoint. */
int s3_default_endpoint(const char *region, char *out, size_t size, stow_error *err);

/* Creates a client. Fails with STOW_EXIT_USAGE for a malformed endpoint or
 * bucket name. Contacts nothing. */
int s3_client_new(const struct s3_options *options, s3_client **out, stow_error *err);
void s3_client_free(s3_client *client);

const char *s3_client_bucket(const s3_client *client);
const char *s3_client_endpoint(const s3_client *client);
int s3_client_path_style(const s3_client *client);

/* Sets the HTTP timeouts and backoff (tests shorten them). */
void s3_client_set_http_settings(s3_client *client, const struct http_settings *settings);

/* Checks that the bucket exists and the credentials may list it, with one
 * ListObjectsV2 of at most one key under prefix. */
int s3_check_bucket(s3_client *client, const char *prefix, stow_error *err);

/* Sets *enabled to 1 when the bucket has Object Lock enabled
 * (GetObjectLockConfiguration), 0 when S3 reports no configuration. */
int s3_get_object_lock_enabled(s3_client *client, int *enabled, stow_error *err);

/* Stores data under key. Returns S3_CONFLICT when if_none_match is set and
 * the key exists. With a retention, sends x-amz-object-lock-mode and
 * x-amz-object-lock-retain-until-date (the bucket must have Object Lock). */
int s3_put_object(s3_client *client, const char *key, const void *data, size_t len,
                  const struct s3_put_options *options, stow_error *err);

/* Reads the object into out (reset first), up to out->max bytes. Returns
 * S3_NOT_FOUND when the key does not exist. */
int s3_get_object(s3_client *client, const char *key, stow_buf *out, stow_error *err);

/* Reads len bytes at offset into out (reset first). A response of another
 * length fails as s3_call_check_range describes. Returns S3_NOT_FOUND when
 * the key does not exist. */
int s3_get_object_range(s3_client *client, const char *key, uint64_t offset, uint64_t len,
                        stow_buf *out, stow_error *err);

/* Returns S3_NOT_FOUND when the key does not exist. */
int s3_head_object(s3_client *client, const char *key, struct s3_object_info *info,
                   stow_error *err);

/* Calls fn for every key under prefix in lexical order, page by page. A
 * non-zero return of fn stops the listing and is returned. */
int s3_list_objects(s3_client *client, const char *prefix, s3_list_fn fn, void *context,
                    stow_error *err);

/* Copies source_key of source_bucket to key inside S3 (CopyObject, up to
 * the 5 GiB limit of one request), with x-amz-checksum-algorithm SHA256 so
 * that the copy carries a SHA-256 checksum. Returns S3_NOT_FOUND when the
 * source does not exist. The client's credentials must be allowed to read
 * the source. */
int s3_copy_object(s3_client *client, const char *key, const char *source_bucket,
                   const char *source_key, stow_error *err);

/* Deletes key; a missing key succeeds. In a versioned bucket this only
 * adds a delete marker. */
int s3_delete_object(s3_client *client, const char *key, stow_error *err);

/* Deletes one version (or delete marker) of key for good. A missing
 * version succeeds. Returns S3_ACCESS_DENIED, with err untouched, when S3
 * returns 403 AccessDenied: the version is under Object Lock retention or
 * a legal hold, or the credentials lack s3:DeleteObjectVersion. */
int s3_delete_object_version(s3_client *client, const char *key, const char *version_id,
                             stow_error *err);

/* Calls fn for every version and delete marker whose key starts with
 * prefix (ListObjectVersions), page by page. A non-zero return of fn stops
 * the listing and is returned. */
int s3_list_object_versions(s3_client *client, const char *prefix, s3_version_fn fn,
                            void *context, stow_error *err);

/* Sets the retention of the current version of key (PutObjectRetention).
 * S3 rejects a date earlier than the current one unless governance mode is
 * bypassed, which this call never requests. */
int s3_put_object_retention(s3_client *client, const char *key,
                            const struct s3_retention *retention, stow_error *err);

/* Starts a multipart upload; *upload_id (malloc'd) identifies it. With a
 * retention, sends the Object Lock headers, which S3 applies to the
 * completed object (moto 5.2.1 ignores them: see storage_s3.c). */
int s3_create_multipart_upload(s3_client *client, const char *key,
                               const struct s3_retention *retention, char **upload_id,
                               stow_error *err);

/* Commits the parts, in ascending part number order. */
int s3_complete_multipart_upload(s3_client *client, const char *key, const char *upload_id,
                                 const struct s3_completed_part *parts, size_t count,
                                 stow_error *err);

/* Aborts the upload; an upload that no longer exists succeeds. */
int s3_abort_multipart_upload(s3_client *client, const char *key, const char *upload_id,
                              stow_error *err);

/* Calls fn for every unfinished multipart upload under prefix. */
int s3_list_multipart_uploads(s3_client *client, const char *prefix, s3_upload_fn fn,
                              void *context, stow_error *err);

/* --- calls prepared for an http_worker --------------------------------- */

#define S3_CALL_MAX_PARAMS 8
#define S3_CALL_MAX_HEADERS 8

/* One S3 request and its results. Run it with http_worker_submit(worker,
 * &call->job), or on the client's engine. Strings it points to (key,
 * upload id, body) must outlive the call. */
struct s3_call {
    struct http_job job;
    s3_client *client;
    const char *method;
    const char *key;                 /* full key; NULL for bucket-level calls */
    struct sigv4_param params[S3_CALL_MAX_PARAMS];
    size_t param_count;
    struct sigv4_header headers[S3_CALL_MAX_HEADERS];
    size_t header_count;
    const void *body;
    size_t body_len;
    int send_checksum;               /* add x-amz-checksum-sha256 */
    int send_content_md5;            /* add Content-MD5 */
    char content_md5[32];            /* base64 MD5 of body, computed with the SHA-256 */
    uint8_t body_sha256[32];         /* SHA-256 of body, computed before the first attempt */
    char payload_hash[SIGV4_HEX_SHA256_SIZE];
    char checksum_base64[48];
    char part_number_text[16];
    char range_text[64];
    char retain_until_text[32];      /* x-amz-object-lock-retain-until-date value */
    char *copy_source;               /* x-amz-copy-source value, owned; NULL unless a copy */
    stow_buf url;
};

/* Prepares UploadPart of data as part_number. The SHA-256 of the part is
 * computed on the thread that runs the call, once; it is in
 * call->body_sha256 and the ETag in call->job.response.etag afterwards. */
void s3_call_upload_part(struct s3_call *call, s3_client *client, const char *key,
                         const char *upload_id, uint32_t part_number, const void *data,
                         size_t len);

/* Prepares UploadPartCopy: part part_number of the upload becomes the len
 * bytes at offset of source_key in source_bucket (x-amz-copy-source and
 * x-amz-copy-source-range), copied inside S3. The client's credentials must
 * be allowed to read the source. The response body (CopyPartResult) is in
 * call->job.response.body afterwards: read its ETag with
 * s3_parse_copy_result. Fails only when out of memory. */
int s3_call_upload_part_copy(struct s3_call *call, s3_client *client, const char *key,
                             const char *upload_id, uint32_t part_number,
                             const char *source_bucket, const char *source_key,
                             uint64_t offset, uint64_t len, stow_error *err);

/* Prepares a ranged GetObject of len bytes at offset into sink (whose max
 * must allow len bytes). */
void s3_call_get_range(struct s3_call *call, s3_client *client, const char *key,
                       uint64_t offset, uint64_t len, stow_buf *sink);

/* Checks a finished ranged GetObject of len bytes at offset that returned rc
 * (0 or -1 with err filled) into body. Fails with STOW_EXIT_VERIFY when S3 reports an
 * object that ends before the range does (a 206 whose Content-Range size is
 * smaller, or 416 InvalidRange), because then the object was truncated or
 * replaced. Another short body fails with STOW_EXIT_STORAGE. Returns rc
 * otherwise. */
int s3_call_check_range(const struct s3_call *call, uint64_t offset, uint64_t len,
                        const stow_buf *body, int rc, stow_error *err);

/* Releases what the call allocated. Accepts NULL. */
void s3_call_free(struct s3_call *call);

/* --- response parsers (exposed for tests) ------------------------------ */

struct s3_list_entry {
    char *key;
    struct s3_object_info info;
};

struct s3_list_page {
    struct s3_list_entry *entries;
    size_t count;
    int truncated;
    char *next_token; /* NextContinuationToken; NULL when absent */
};

struct s3_upload_entry {
    char *key;
    char *upload_id;
    time_t initiated;
};

struct s3_uploads_page {
    struct s3_upload_entry *entries;
    size_t count;
    int truncated;
    char *next_key_marker;
    char *next_upload_id_marker;
};

/* Parses a ListObjectsV2 result. Keys are decoded when the response has
 * EncodingType url. */
int s3_parse_list_objects(const void *body, size_t len, struct s3_list_page *out,
                          stow_error *err);
void s3_list_page_free(struct s3_list_page *page);

/* Parses an InitiateMultipartUploadResult; *upload_id is malloc'd. */
int s3_parse_upload_id(const void *body, size_t len, char **upload_id, stow_error *err);

/* Parses a ListMultipartUploadsResult. */
int s3_parse_multipart_uploads(const void *body, size_t len, struct s3_uploads_page *out,
                               stow_error *err);
void s3_uploads_page_free(struct s3_uploads_page *page);

/* Parses a CopyPartResult or CopyObjectResult: the ETag (quotes kept), and
 * the ChecksumSHA256 when the store reports one (*has_sha256 is then 1). */
int s3_parse_copy_result(const void *body, size_t len, char etag[S3_ETAG_MAX],
                         uint8_t sha256[32], int *has_sha256, stow_error *err);

struct s3_version_entry {
    char *key;
    char *version_id;
    int delete_marker;
};

struct s3_versions_page {
    struct s3_version_entry *entries; /* versions and delete markers in document order */
    size_t count;
    int truncated;
    char *next_key_marker;
    char *next_version_id_marker;
};

/* Parses a ListVersionsResult. Keys are decoded when the response has
 * EncodingType url. */
int s3_parse_object_versions(const void *body, size_t len, struct s3_versions_page *out,
                             stow_error *err);
void s3_versions_page_free(struct s3_versions_page *page);

/* Parses a GetObjectLockConfiguration result: *enabled is 1 when
 * ObjectLockEnabled is "Enabled". */
int s3_parse_object_lock_configuration(const void *body, size_t len, int *enabled,
                                       stow_error *err);

/* Writes the PutObjectRetention request document into out (reset first). */
int s3_build_retention_body(const struct s3_retention *retention, stow_buf *out,
                            stow_error *err);

/* Writes the CompleteMultipartUpload request document into out (reset
 * first). */
int s3_build_complete_body(const struct s3_completed_part *parts, size_t count, stow_buf *out,
                           stow_error *err);

#endif
