/* S3 client: addressing, request signing, the object and multipart calls,
 * and the parsers of their XML responses. */
#include "aws/s3.h"
#include "aws/aws_env.h"

#include <arpa/inet.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_request.h"
#include "aws/aws_xml.h"

#define S3_URL_MAX (64u * 1024)
#define S3_HOST_MAX 1024
#define S3_ERROR_BODY_MAX (64u * 1024)
#define S3_NAMESPACE "http://s3.amazonaws.com/doc/2006-03-01/"

struct s3_client {
    struct aws_service service; /* region, endpoint, HTTP engine, credentials */
    char *bucket;
    char *base_path;     /* decoded endpoint path without a trailing '/', often "" */
    char *storage_class; /* NULL: bucket default */
    int path_style;
};

/* --- configuration -------------------------------------------------------- */

const char *s3_default_region(void)
{
    return aws_default_region();
}

int s3_default_endpoint(const char *region, char *out, size_t size, stow_error *err)
{
    return aws_service_endpoint("AWS_ENDPOINT_URL_S3", "s3", region, "S3", out, size, err);
}

/* Returns 1 when a virtual-hosted request cannot work for the endpoint
 * authority (host[:port]): IP literals and localhost have no per-bucket
 * DNS names. */
static int host_requires_path_style(const char *authority)
{
    struct in_addr address;
    char host[S3_HOST_MAX];

    if (authority[0] == '[')
        return 1;
    snprintf(host, sizeof host, "%.*s", (int)strcspn(authority, ":"), authority);
    if (inet_pton(AF_INET, host, &address) == 1)
        return 1;
    return strcmp(host, "localhost") == 0;
}

/* Returns 1 when bucket can be a DNS label under the endpoint: lowercase
 * letters, digits and '-', 3 to 63 characters. Dots are excluded because
 * they break TLS wildcard certificates. */
static int bucket_is_dns_label(const char *bucket)
{
    size_t len = strlen(bucket);

    if (len < 3 || len > 63 || bucket[0] == '-' || bucket[len - 1] == '-')
        return 0;
    for (const char *p = bucket; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return 0;
    }
    return 1;
}

static int check_bucket_name(const char *bucket, stow_error *err)
{
    if (bucket == NULL || bucket[0] == '\0' || strlen(bucket) > 255)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid S3 bucket name \"%s\"",
                         bucket ? bucket : "");
    for (const unsigned char *p = (const unsigned char *)bucket; *p != '\0'; p++) {
        if (*p <= ' ' || *p == '/' || *p == 0x7f)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "invalid S3 bucket name \"%s\": it contains '/', a blank or a "
                             "control character",
                             bucket);
    }
    return 0;
}

/* Copies the S3-only options: bucket, storage class and addressing. */
static int copy_options(s3_client *client, const struct s3_options *options, stow_error *err)
{
    client->bucket = strdup(options->bucket);
    if (options->storage_class != NULL)
        client->storage_class = strdup(options->storage_class);
    if (client->bucket == NULL ||
        (options->storage_class != NULL && client->storage_class == NULL))
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the S3 client");
    client->path_style = options->path_style;
    return 0;
}

/* Sets the base path (the endpoint path without trailing '/') and, when
 * it is automatic, the addressing style. */
static int apply_endpoint(s3_client *client, stow_error *err)
{
    const struct aws_endpoint *parts = &client->service.parts;
    char *end;

    client->base_path = strdup(parts->path);
    if (client->base_path == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the S3 client");
    end = client->base_path + strlen(client->base_path);
    while (end > client->base_path && end[-1] == '/')
        *--end = '\0';
    if (client->path_style < 0)
        client->path_style = host_requires_path_style(parts->authority) ||
                             !bucket_is_dns_label(client->bucket);
    return 0;
}

int s3_client_new(const struct s3_options *options, s3_client **out, stow_error *err)
{
    const struct aws_service_options service = {
        .service = "S3",
        .region = options->region,
        .endpoint = options->endpoint,
        .default_endpoint = s3_default_endpoint,
        .endpoint_hint = "--endpoint must be an http:// or https:// URL, for example "
                         "http://127.0.0.1:9000",
        .max_attempts = options->max_attempts,
        .credentials = options->credentials,
    };
    s3_client *client;

    *out = NULL;
    if (check_bucket_name(options->bucket, err) != 0)
        return -1;
    client = calloc(1, sizeof *client);
    if (client == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the S3 client");

    if (copy_options(client, options, err) != 0 ||
        aws_service_open(&client->service, &service, err) != 0 ||
        apply_endpoint(client, err) != 0) {
        s3_client_free(client);
        return -1;
    }
    *out = client;
    return 0;
}

void s3_client_free(s3_client *client)
{
    if (client == NULL)
        return;
    aws_service_close(&client->service);
    free(client->bucket);
    free(client->base_path);
    free(client->storage_class);
    free(client);
}

const char *s3_client_bucket(const s3_client *client)
{
    return client->bucket;
}

const char *s3_client_endpoint(const s3_client *client)
{
    return client->service.endpoint;
}

int s3_client_path_style(const s3_client *client)
{
    return client->path_style;
}

void s3_client_set_http_settings(s3_client *client, const struct http_settings *settings)
{
    client->service.settings = *settings;
}

/* --- request building ----------------------------------------------------- */

/* Writes the Host value and the unencoded path of call's target. */
static int build_target(const struct s3_call *call, char host[S3_HOST_MAX], stow_buf *path,
                        stow_error *err)
{
    const s3_client *client = call->client;
    const char *key = call->key != NULL ? call->key : "";
    int written;

    if (client->path_style)
        written = snprintf(host, S3_HOST_MAX, "%s", client->service.parts.authority);
    else
        written = snprintf(host, S3_HOST_MAX, "%s.%s", client->bucket,
                           client->service.parts.authority);
    if (written < 0 || written >= S3_HOST_MAX)
        return stow_fail(err, STOW_EXIT_USAGE, "S3 host name for bucket %s is too long",
                         client->bucket);

    if (!client->path_style)
        return stow_buf_printf(path, err, "%s/%s", client->base_path, key);
    if (call->key != NULL)
        return stow_buf_printf(path, err, "%s/%s/%s", client->base_path, client->bucket, key);
    return stow_buf_printf(path, err, "%s/%s", client->base_path, client->bucket);
}

static int write_url(struct s3_call *call, const char *host, const char *path, stow_error *err)
{
    stow_buf *url = &call->url;

    stow_buf_reset(url);
    if (stow_buf_printf(url, err, "%s://%s", call->client->service.parts.scheme, host) != 0 ||
        sigv4_uri_encode(url, path, 1, err) != 0)
        return -1;
    for (size_t i = 0; i < call->param_count; i++) {
        if (stow_buf_append_str(url, i == 0 ? "?" : "&", err) != 0 ||
            sigv4_uri_encode(url, call->params[i].name, 0, err) != 0 ||
            stow_buf_append_str(url, "=", err) != 0 ||
            sigv4_uri_encode(url, call->params[i].value, 0, err) != 0)
            return -1;
    }
    return 0;
}

/* The headers that are signed: the call's own and the payload digests. */
static size_t collect_signed_headers(const struct s3_call *call,
                                     struct sigv4_header out[S3_CALL_MAX_HEADERS + 2])
{
    size_t count = 0;

    for (size_t i = 0; i < call->header_count; i++)
        out[count++] = call->headers[i];
    out[count++] = (struct sigv4_header){"x-amz-content-sha256", call->payload_hash};
    if (call->send_checksum)
        out[count++] = (struct sigv4_header){"x-amz-checksum-sha256", call->checksum_base64};
    return count;
}

static void describe_signing(const struct s3_call *call, const char *host, const char *path,
                             const struct sigv4_header *headers, size_t header_count,
                             struct sigv4_request *out)
{
    memset(out, 0, sizeof *out);
    out->service = "s3";
    out->region = call->client->service.region;
    out->method = call->method;
    out->host = host;
    out->path = path;
    out->params = call->params;
    out->param_count = call->param_count;
    out->headers = headers;
    out->header_count = header_count;
    out->payload_hash = call->payload_hash;
    out->time = time(NULL);
}

static int add_headers(struct curl_slist **list, const struct sigv4_header *headers,
                       size_t count, stow_error *err)
{
    for (size_t i = 0; i < count; i++) {
        if (aws_request_add_header(list, headers[i].name, headers[i].value, err) != 0)
            return -1;
    }
    return 0;
}

/* Signs and describes one attempt of call (http_build_fn). */
static int build_request(struct http_job *job, struct http_request *request, stow_error *err)
{
    struct s3_call *call = job->owner;
    struct sigv4_request signing;
    struct sigv4_header headers[S3_CALL_MAX_HEADERS + 2];
    size_t header_count = collect_signed_headers(call, headers);
    char host[S3_HOST_MAX];
    stow_buf path;
    int rc = -1;

    stow_buf_init(&path, S3_URL_MAX);
    if (build_target(call, host, &path, err) != 0)
        goto done;

    describe_signing(call, host, (const char *)path.data, headers, header_count, &signing);
    if (aws_request_add_header(&request->headers, "Host", host, err) != 0 ||
        aws_request_sign_current(&signing, call->client->service.credentials,
                                 &request->headers, err) != 0 ||
        add_headers(&request->headers, headers, header_count, err) != 0 ||
        write_url(call, host, (const char *)path.data, err) != 0)
        goto done;

    request->method = call->method;
    request->url = (const char *)call->url.data;
    request->body = call->body;
    request->body_len = call->body_len;
    rc = 0;

done:
    stow_buf_free(&path);
    return rc;
}

/* Hashes the body once, before the first attempt (http_prepare_fn). */
static int prepare_request(struct http_job *job, stow_error *err)
{
    struct s3_call *call = job->owner;

    sigv4_sha256(call->body != NULL ? call->body : "", call->body_len, call->body_sha256);
    sigv4_hex(call->body_sha256, call->payload_hash);
    sodium_bin2base64(call->checksum_base64, sizeof call->checksum_base64, call->body_sha256,
                      sizeof call->body_sha256, sodium_base64_VARIANT_ORIGINAL);
    if (call->send_content_md5) {
        uint8_t md5[16];

        if (EVP_Digest(call->body != NULL ? call->body : "", call->body_len, md5, NULL, EVP_md5(),
                       NULL) != 1)
            return stow_fail(err, STOW_EXIT_FAILURE, "MD5 of the %s request body failed",
                             call->job.operation);
        sodium_bin2base64(call->content_md5, sizeof call->content_md5, md5, sizeof md5,
                          sodium_base64_VARIANT_ORIGINAL);
    }
    return 0;
}

static void call_init(struct s3_call *call, s3_client *client, const char *operation,
                      const char *method, const char *key)
{
    memset(call, 0, sizeof *call);
    aws_service_job_init(&client->service, &call->job, operation, build_request, call,
                         S3_ERROR_BODY_MAX);
    call->job.prepare = prepare_request;
    /* A read changes nothing, so a signal may end it at once. */
    call->job.ends_on_interrupt = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    call->client = client;
    call->method = method;
    call->key = key;
    stow_buf_init(&call->url, S3_URL_MAX);
    if (key != NULL)
        http_job_subject(&call->job, "bucket %s key %s", client->bucket, key);
    else
        http_job_subject(&call->job, "bucket %s", client->bucket);
}

static void call_param(struct s3_call *call, const char *name, const char *value)
{
    if (call->param_count < S3_CALL_MAX_PARAMS)
        call->params[call->param_count++] = (struct sigv4_param){name, value};
}

static void call_header(struct s3_call *call, const char *name, const char *value)
{
    if (call->header_count < S3_CALL_MAX_HEADERS)
        call->headers[call->header_count++] = (struct sigv4_header){name, value};
}

void s3_call_free(struct s3_call *call)
{
    if (call == NULL)
        return;
    http_job_free(&call->job);
    stow_buf_free(&call->url);
    free(call->copy_source);
    call->copy_source = NULL;
}

static int call_perform(struct s3_call *call, stow_error *err)
{
    return http_engine_perform(call->client->service.engine, &call->job, err);
}

/* Writes an RFC 3339 UTC time, the form S3 takes for retain-until dates. */
static void format_utc(time_t when, char out[32])
{
    struct tm utc;

    gmtime_r(&when, &utc);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

/* Adds Content-MD5, which S3 (and moto) require on a PutObject with Object
 * Lock headers and on PutObjectRetention; prepare_request computes it. */
static void call_content_md5(struct s3_call *call)
{
    call->send_content_md5 = 1;
    call_header(call, "Content-MD5", call->content_md5);
}

/* Adds the Object Lock headers of retention; NULL adds none. */
static void call_retention_headers(struct s3_call *call, const struct s3_retention *retention)
{
    if (retention == NULL)
        return;
    format_utc(retention->retain_until, call->retain_until_text);
    call_header(call, "x-amz-object-lock-mode", retention->mode);
    call_header(call, "x-amz-object-lock-retain-until-date", call->retain_until_text);
}

/* --- object calls --------------------------------------------------------- */

int s3_check_bucket(s3_client *client, const char *prefix, stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, "ListObjectsV2", "GET", NULL);
    call_param(&call, "list-type", "2");
    call_param(&call, "max-keys", "1");
    call_param(&call, "prefix", prefix != NULL ? prefix : "");
    rc = call_perform(&call, err);
    s3_call_free(&call);
    return rc;
}

int s3_put_object(s3_client *client, const char *key, const void *data, size_t len,
                  const struct s3_put_options *options, stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, "PutObject", "PUT", key);
    call.body = data;
    call.body_len = len;
    call.send_checksum = 1;
    call_header(&call, "Content-Type",
                options && options->content_type ? options->content_type
                                                 : "application/octet-stream");
    if (options != NULL && options->if_none_match) {
        call_header(&call, "If-None-Match", "*");
        call.job.accept_conflict = 1;
    }
    if (client->storage_class != NULL)
        call_header(&call, "x-amz-storage-class", client->storage_class);
    if (options != NULL && options->retention != NULL) {
        call_retention_headers(&call, options->retention);
        call_content_md5(&call);
    }

    rc = call_perform(&call, err);
    s3_call_free(&call);
    return rc;
}

int s3_get_object_lock_enabled(s3_client *client, int *enabled, stow_error *err)
{
    struct s3_call call;
    int rc;

    *enabled = 0;
    call_init(&call, client, "GetObjectLockConfiguration", "GET", NULL);
    call_param(&call, "object-lock", "");
    call.job.accept_not_found = 1;
    rc = call_perform(&call, err);
    if (rc == 0 && s3_parse_object_lock_configuration(call.job.response.body.data,
                                                      call.job.response.body.len, enabled,
                                                      err) != 0) {
        stow_error_prefix(err, "S3 GetObjectLockConfiguration for bucket %s", client->bucket);
        rc = -1;
    }
    s3_call_free(&call);
    return rc == S3_NOT_FOUND ? 0 : rc;
}

int s3_put_object_retention(s3_client *client, const char *key,
                            const struct s3_retention *retention, stow_error *err)
{
    struct s3_call call;
    stow_buf body;
    int rc;

    stow_buf_init(&body, 4096);
    call_init(&call, client, "PutObjectRetention", "PUT", key);
    call_param(&call, "retention", "");
    call_header(&call, "Content-Type", "application/xml");
    call.send_checksum = 1;
    call_content_md5(&call);
    rc = s3_build_retention_body(retention, &body, err);
    if (rc == 0) {
        call.body = body.data;
        call.body_len = body.len;
        rc = call_perform(&call, err);
    }
    s3_call_free(&call);
    stow_buf_free(&body);
    return rc;
}

void s3_call_get_range(struct s3_call *call, s3_client *client, const char *key,
                       uint64_t offset, uint64_t len, stow_buf *sink)
{
    call_init(call, client, "GetObject", "GET", key);
    snprintf(call->range_text, sizeof call->range_text, "bytes=%llu-%llu",
             (unsigned long long)offset, (unsigned long long)(offset + len - 1));
    call_header(call, "Range", call->range_text);
    http_job_subject(&call->job, "bucket %s key %s range %s", client->bucket, key,
                     call->range_text);
    call->job.sink = sink;
    call->job.accept_not_found = 1;
}

int s3_call_check_range(const struct s3_call *call, uint64_t offset, uint64_t len,
                        const stow_buf *body, int rc, stow_error *err)
{
    const struct http_response *response = &call->job.response;

    if (response->status == 416 && strcmp(call->job.error.code, "InvalidRange") == 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "S3 GetObject for %s: the object ends before the range starts "
                         "(InvalidRange); it was truncated or replaced",
                         call->job.subject);
    if (rc != 0 || body->len == len)
        return rc;

    if (response->status == 206 && response->has_object_size &&
        response->object_size < offset + len)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "S3 GetObject for %s returned %zu bytes instead of %llu: the object "
                         "is %llu bytes, so it was truncated or replaced",
                         call->job.subject, body->len, (unsigned long long)len,
                         (unsigned long long)response->object_size);
    return stow_fail(err, STOW_EXIT_STORAGE,
                     "S3 GetObject for %s returned %zu bytes instead of %llu (HTTP %ld)",
                     call->job.subject, body->len, (unsigned long long)len, response->status);
}

int s3_get_object(s3_client *client, const char *key, stow_buf *out, stow_error *err)
{
    struct s3_call call;
    int rc;

    stow_buf_reset(out);
    call_init(&call, client, "GetObject", "GET", key);
    call.job.sink = out;
    call.job.accept_not_found = 1;
    rc = call_perform(&call, err);
    s3_call_free(&call);
    return rc;
}

int s3_get_object_range(s3_client *client, const char *key, uint64_t offset, uint64_t len,
                        stow_buf *out, stow_error *err)
{
    struct s3_call call;
    int rc;

    stow_buf_reset(out);
    if (len == 0)
        return stow_buf_append(out, "", 0, err);

    s3_call_get_range(&call, client, key, offset, len, out);
    rc = s3_call_check_range(&call, offset, len, out, call_perform(&call, err), err);
    s3_call_free(&call);
    return rc;
}

int s3_head_object(s3_client *client, const char *key, struct s3_object_info *info,
                   stow_error *err)
{
    struct s3_call call;
    int rc;

    memset(info, 0, sizeof *info);
    call_init(&call, client, "HeadObject", "HEAD", key);
    call.job.accept_not_found = 1;
    rc = call_perform(&call, err);
    if (rc == 0) {
        const struct http_response *response = &call.job.response;

        info->size = response->content_length;
        info->modified = response->last_modified;
        snprintf(info->etag, sizeof info->etag, "%s", response->etag);
        snprintf(info->lock_mode, sizeof info->lock_mode, "%s", response->object_lock_mode);
        if (response->object_lock_retain_until[0] != '\0' &&
            aws_xml_parse_time(response->object_lock_retain_until, &info->lock_retain_until) != 0)
            rc = stow_fail(err, STOW_EXIT_STORAGE,
                           "S3 HeadObject for %s returned an invalid "
                           "x-amz-object-lock-retain-until-date \"%s\"",
                           call.job.subject, response->object_lock_retain_until);
    }
    s3_call_free(&call);
    return rc;
}

/* Sets the x-amz-copy-source header of call: "/BUCKET/KEY", percent-encoded
 * with '/' kept, as S3 expects. */
static int set_copy_source(struct s3_call *call, const char *source_bucket,
                           const char *source_key, stow_error *err)
{
    stow_buf value;

    stow_buf_init(&value, S3_URL_MAX);
    if (stow_buf_append_str(&value, "/", err) != 0 ||
        sigv4_uri_encode(&value, source_bucket, 0, err) != 0 ||
        stow_buf_append_str(&value, "/", err) != 0 ||
        sigv4_uri_encode(&value, source_key, 1, err) != 0 ||
        stow_buf_append(&value, "", 0, err) != 0) {
        stow_buf_free(&value);
        return -1;
    }
    call->copy_source = (char *)value.data;
    call_header(call, "x-amz-copy-source", call->copy_source);
    return 0;
}

int s3_copy_object(s3_client *client, const char *key, const char *source_bucket,
                   const char *source_key, stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, "CopyObject", "PUT", key);
    http_job_subject(&call.job, "bucket %s key %s from bucket %s key %s", client->bucket, key,
                     source_bucket, source_key);
    call.job.error_in_success_body = 1;
    call.job.accept_not_found = 1;
    call_header(&call, "x-amz-checksum-algorithm", "SHA256");
    if (client->storage_class != NULL)
        call_header(&call, "x-amz-storage-class", client->storage_class);
    rc = set_copy_source(&call, source_bucket, source_key, err);
    if (rc == 0)
        rc = call_perform(&call, err);
    s3_call_free(&call);
    return rc;
}

int s3_delete_object(s3_client *client, const char *key, stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, "DeleteObject", "DELETE", key);
    call.job.accept_not_found = 1;
    rc = call_perform(&call, err);
    s3_call_free(&call);
    return rc == S3_NOT_FOUND ? 0 : rc;
}

int s3_delete_object_version(s3_client *client, const char *key, const char *version_id,
                             stow_error *err)
{
    struct s3_call call;
    stow_error failure;
    int rc;

    stow_error_clear(&failure);
    call_init(&call, client, "DeleteObject", "DELETE", key);
    call_param(&call, "versionId", version_id);
    http_job_subject(&call.job, "bucket %s key %s version %s", client->bucket, key, version_id);
    call.job.accept_not_found = 1;
    rc = call_perform(&call, &failure);
    if (rc < 0 && call.job.response.status == 403 &&
        strcmp(call.job.error.code, "AccessDenied") == 0)
        rc = S3_ACCESS_DENIED;
    else if (rc < 0 && err != NULL && !stow_error_is_set(err))
        *err = failure;
    s3_call_free(&call);
    return rc == S3_NOT_FOUND ? 0 : rc;
}

/* --- listing -------------------------------------------------------------- */

/* Fetches and parses one page of ListObjectsV2. */
static int list_page(s3_client *client, const char *prefix, const char *token,
                     struct s3_list_page *page, stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, "ListObjectsV2", "GET", NULL);
    call_param(&call, "list-type", "2");
    call_param(&call, "encoding-type", "url");
    call_param(&call, "prefix", prefix != NULL ? prefix : "");
    if (token != NULL)
        call_param(&call, "continuation-token", token);
    call.job.response.body.max = S3_XML_BODY_MAX;

    rc = call_perform(&call, err);
    if (rc == 0 && s3_parse_list_objects(call.job.response.body.data,
                                         call.job.response.body.len, page, err) != 0) {
        stow_error_prefix(err, "S3 ListObjectsV2 for bucket %s prefix %s", client->bucket,
                          prefix != NULL ? prefix : "");
        rc = -1;
    }
    s3_call_free(&call);
    return rc;
}

int s3_list_objects(s3_client *client, const char *prefix, s3_list_fn fn, void *context,
                    stow_error *err)
{
    char *token = NULL;
    int rc;

    do {
        struct s3_list_page page;

        memset(&page, 0, sizeof page);
        rc = list_page(client, prefix, token, &page, err);
        free(token);
        token = NULL;

        for (size_t i = 0; rc == 0 && i < page.count; i++)
            rc = fn(page.entries[i].key, &page.entries[i].info, context);

        if (rc == 0 && page.truncated) {
            token = page.next_token;
            page.next_token = NULL;
            if (token == NULL)
                rc = stow_fail(err, STOW_EXIT_STORAGE,
                               "S3 ListObjectsV2 for bucket %s returned a truncated page "
                               "without NextContinuationToken",
                               client->bucket);
        }
        s3_list_page_free(&page);
    } while (rc == 0 && token != NULL);

    free(token);
    return rc;
}

/* --- multipart uploads ---------------------------------------------------- */

int s3_create_multipart_upload(s3_client *client, const char *key,
                               const struct s3_retention *retention, char **upload_id,
                               stow_error *err)
{
    struct s3_call call;
    int rc;

    *upload_id = NULL;
    call_init(&call, client, "CreateMultipartUpload", "POST", key);
    call_param(&call, "uploads", "");
    call_header(&call, "Content-Type", "application/octet-stream");
    call_header(&call, "x-amz-checksum-algorithm", "SHA256");
    if (client->storage_class != NULL)
        call_header(&call, "x-amz-storage-class", client->storage_class);
    call_retention_headers(&call, retention);

    rc = call_perform(&call, err);
    if (rc == 0 && s3_parse_upload_id(call.job.response.body.data, call.job.response.body.len,
                                      upload_id, err) != 0) {
        stow_error_prefix(err, "S3 CreateMultipartUpload for %s", call.job.subject);
        rc = -1;
    }
    s3_call_free(&call);
    return rc;
}

void s3_call_upload_part(struct s3_call *call, s3_client *client, const char *key,
                         const char *upload_id, uint32_t part_number, const void *data,
                         size_t len)
{
    call_init(call, client, "UploadPart", "PUT", key);
    snprintf(call->part_number_text, sizeof call->part_number_text, "%u", part_number);
    call_param(call, "partNumber", call->part_number_text);
    call_param(call, "uploadId", upload_id);
    call->body = data;
    call->body_len = len;
    call->send_checksum = 1;
    /* Aborting the upload, which the interrupted run does next, drops it. */
    call->job.ends_on_interrupt = 1;
    http_job_subject(&call->job, "bucket %s key %s part %u upload id %s", client->bucket, key,
                     part_number, upload_id);
}

int s3_call_upload_part_copy(struct s3_call *call, s3_client *client, const char *key,
                             const char *upload_id, uint32_t part_number,
                             const char *source_bucket, const char *source_key,
                             uint64_t offset, uint64_t len, stow_error *err)
{
    call_init(call, client, "UploadPartCopy", "PUT", key);
    snprintf(call->part_number_text, sizeof call->part_number_text, "%u", part_number);
    call_param(call, "partNumber", call->part_number_text);
    call_param(call, "uploadId", upload_id);
    snprintf(call->range_text, sizeof call->range_text, "bytes=%llu-%llu",
             (unsigned long long)offset, (unsigned long long)(offset + len - 1));
    call_header(call, "x-amz-copy-source-range", call->range_text);
    /* S3 reports a failed copy in the body of a 200 response as well. */
    call->job.error_in_success_body = 1;
    call->job.ends_on_interrupt = 1;
    http_job_subject(&call->job, "bucket %s key %s part %u upload id %s from bucket %s key %s %s",
                     client->bucket, key, part_number, upload_id, source_bucket, source_key,
                     call->range_text);
    return set_copy_source(call, source_bucket, source_key, err);
}

int s3_complete_multipart_upload(s3_client *client, const char *key, const char *upload_id,
                                 const struct s3_completed_part *parts, size_t count,
                                 stow_error *err)
{
    struct s3_call call;
    stow_buf body;
    int rc;

    stow_buf_init(&body, (size_t)count * 512 + 4096);
    call_init(&call, client, "CompleteMultipartUpload", "POST", key);
    call_param(&call, "uploadId", upload_id);
    call_header(&call, "Content-Type", "application/xml");
    call.job.error_in_success_body = 1;
    http_job_subject(&call.job, "bucket %s key %s upload id %s (%zu parts)", client->bucket, key,
                     upload_id, count);

    rc = s3_build_complete_body(parts, count, &body, err);
    if (rc == 0) {
        call.body = body.data;
        call.body_len = body.len;
        rc = call_perform(&call, err);
    }
    s3_call_free(&call);
    stow_buf_free(&body);
    return rc;
}

int s3_abort_multipart_upload(s3_client *client, const char *key, const char *upload_id,
                              stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, "AbortMultipartUpload", "DELETE", key);
    call_param(&call, "uploadId", upload_id);
    http_job_subject(&call.job, "bucket %s key %s upload id %s", client->bucket, key, upload_id);
    call.job.accept_not_found = 1;
    rc = call_perform(&call, err);
    s3_call_free(&call);
    return rc == S3_NOT_FOUND ? 0 : rc;
}

/* The markers that continue a listing paged by key and a second id
 * (ListMultipartUploads, ListObjectVersions); strings are malloc'd. */
struct page_markers {
    char *key;
    char *id;
    int truncated;
};

struct marker_listing;

/* Parses one page, passes its entries to the listing's callback and fills
 * next. Returns the callback's non-zero return as it is, or -1 with err
 * filled. */
typedef int (*page_handler)(const void *body, size_t len, const struct marker_listing *listing,
                            struct page_markers *next, stow_error *err);

/* One marker-paged listing: its operation, query parameters and the
 * caller's callback. */
struct marker_listing {
    const char *operation;       /* "ListObjectVersions" */
    const char *subresource;     /* "versions" */
    const char *id_marker_param; /* "version-id-marker" */
    page_handler handle;
    union {
        s3_upload_fn upload;
        s3_version_fn version;
    } fn;
    void *context;               /* passed to fn */
};

static int fetch_marker_page(s3_client *client, const struct marker_listing *listing,
                             const char *prefix, const struct page_markers *markers,
                             struct page_markers *next, stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, listing->operation, "GET", NULL);
    call_param(&call, listing->subresource, "");
    call_param(&call, "encoding-type", "url");
    call_param(&call, "prefix", prefix != NULL ? prefix : "");
    if (markers->key != NULL)
        call_param(&call, "key-marker", markers->key);
    if (markers->id != NULL)
        call_param(&call, listing->id_marker_param, markers->id);
    call.job.response.body.max = S3_XML_BODY_MAX;

    rc = call_perform(&call, err);
    if (rc == 0)
        rc = listing->handle(call.job.response.body.data, call.job.response.body.len, listing,
                             next, err);
    if (rc < 0 && stow_error_is_set(err) && call.job.result == 0)
        stow_error_prefix(err, "S3 %s for bucket %s prefix %s", listing->operation,
                          client->bucket, prefix != NULL ? prefix : "");
    s3_call_free(&call);
    return rc;
}

/* Runs a marker-paged listing to its end, or until the handler's callback
 * returns non-zero. */
static int list_by_markers(s3_client *client, const struct marker_listing *listing,
                           const char *prefix, stow_error *err)
{
    struct page_markers markers = {NULL, NULL, 0};
    int more;
    int rc;

    do {
        struct page_markers next = {NULL, NULL, 0};

        rc = fetch_marker_page(client, listing, prefix, &markers, &next, err);
        free(markers.key);
        free(markers.id);
        markers = next;
        more = rc == 0 && next.truncated && next.key != NULL;
    } while (more);

    free(markers.key);
    free(markers.id);
    return rc;
}

/* Moves the continuation markers of a parsed page into next. */
static void take_markers(struct page_markers *next, int truncated, char **key_marker,
                         char **id_marker)
{
    next->key = *key_marker;
    next->id = *id_marker;
    next->truncated = truncated;
    *key_marker = NULL;
    *id_marker = NULL;
}

static int handle_uploads_page(const void *body, size_t len,
                               const struct marker_listing *listing, struct page_markers *next,
                               stow_error *err)
{
    struct s3_uploads_page page;
    int rc = s3_parse_multipart_uploads(body, len, &page, err);

    if (rc != 0)
        return -1;
    take_markers(next, page.truncated, &page.next_key_marker, &page.next_upload_id_marker);

    for (size_t i = 0; rc == 0 && i < page.count; i++)
        rc = listing->fn.upload(page.entries[i].key, page.entries[i].upload_id,
                                page.entries[i].initiated, listing->context);
    s3_uploads_page_free(&page);
    return rc;
}

int s3_list_multipart_uploads(s3_client *client, const char *prefix, s3_upload_fn fn,
                              void *context, stow_error *err)
{
    const struct marker_listing listing = {"ListMultipartUploads", "uploads", "upload-id-marker",
                                           handle_uploads_page, {.upload = fn}, context};

    return list_by_markers(client, &listing, prefix, err);
}

static int handle_versions_page(const void *body, size_t len,
                                const struct marker_listing *listing, struct page_markers *next,
                                stow_error *err)
{
    struct s3_versions_page page;
    int rc = s3_parse_object_versions(body, len, &page, err);

    if (rc != 0)
        return -1;
    take_markers(next, page.truncated, &page.next_key_marker, &page.next_version_id_marker);

    for (size_t i = 0; rc == 0 && i < page.count; i++)
        rc = listing->fn.version(page.entries[i].key, page.entries[i].version_id,
                                 page.entries[i].delete_marker, listing->context);
    s3_versions_page_free(&page);
    return rc;
}

int s3_list_object_versions(s3_client *client, const char *prefix, s3_version_fn fn,
                            void *context, stow_error *err)
{
    const struct marker_listing listing = {"ListObjectVersions", "versions", "version-id-marker",
                                           handle_versions_page, {.version = fn}, context};

    return list_by_markers(client, &listing, prefix, err);
}

/* --- response parsers ----------------------------------------------------- */

/* Decodes a key of a listing with EncodingType url: '+' is a space. */
static char *decode_key(const char *text, stow_error *err)
{
    char *plus_decoded = strdup(text);
    char *decoded = NULL;
    char *copy = NULL;
    int len = 0;

    if (plus_decoded == NULL)
        goto done;
    for (char *p = plus_decoded; *p != '\0'; p++) {
        if (*p == '+')
            *p = ' ';
    }
    decoded = curl_easy_unescape(NULL, plus_decoded, 0, &len);
    if (decoded == NULL)
        goto done;
    if ((size_t)len != strlen(decoded)) {
        stow_fail(err, STOW_EXIT_STORAGE, "listing contains a key with a NUL byte: %s", text);
        goto done;
    }
    copy = strdup(decoded);

done:
    if (copy == NULL)
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory decoding a listed key");
    free(plus_decoded);
    curl_free(decoded);
    return copy;
}

static char *listed_key(const xmlNode *node, int url_encoded, stow_error *err)
{
    char *key = aws_xml_child_strdup(node, "Key");
    char *decoded;

    if (key == NULL) {
        stow_fail(err, STOW_EXIT_STORAGE, "listing entry without a Key");
        return NULL;
    }
    if (!url_encoded)
        return key;
    decoded = decode_key(key, err);
    free(key);
    return decoded;
}

/* Returns the root element when the document is named root_name. */
static xmlNode *expect_root(xmlDoc *doc, const char *root_name, stow_error *err)
{
    xmlNode *root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;

    if (!aws_xml_is(root, root_name)) {
        stow_fail(err, STOW_EXIT_STORAGE, "response is not a %s XML document", root_name);
        return NULL;
    }
    return root;
}

/* Returns 1 when a listing has EncodingType url, so its keys are
 * percent-encoded. */
static int is_url_encoded(const xmlNode *root)
{
    char encoding[16];

    return aws_xml_child_text(root, "EncodingType", encoding, sizeof encoding) == 0 &&
           strcmp(encoding, "url") == 0;
}

static int child_is_true(const xmlNode *parent, const char *name)
{
    char text[8];

    return aws_xml_child_text(parent, name, text, sizeof text) == 0 && strcmp(text, "true") == 0;
}

/* Parses one entry element of a listing into element index of entries. */
typedef int (*entry_parser)(const xmlNode *node, int url_encoded, void *entries, size_t index,
                            stow_error *err);

/* The entry elements of one kind of listing. */
struct entry_kind {
    const char *names[2]; /* element names, names[1] NULL when there is only one */
    size_t size;          /* bytes of one parsed entry */
    entry_parser parse;
    const char *plural;   /* "uploads", names the entries in messages */
};

static int is_entry(const xmlNode *node, const struct entry_kind *kind)
{
    return aws_xml_is(node, kind->names[0]) ||
           (kind->names[1] != NULL && aws_xml_is(node, kind->names[1]));
}

/* Allocates *entries with one element per entry of root, plus one, and
 * parses the entries in document order. *count counts every entry begun,
 * the failed one included, so that the page's free function releases what
 * was parsed on failure too. */
static int parse_entries(const xmlNode *root, const struct entry_kind *kind, void **entries,
                         size_t *count, stow_error *err)
{
    int url_encoded = is_url_encoded(root);
    size_t total = 0;

    for (const xmlNode *node = root->children; node != NULL; node = node->next)
        total += is_entry(node, kind);
    *entries = calloc(total + 1, kind->size);
    if (*entries == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing a listing of %s",
                         kind->plural);

    for (const xmlNode *node = root->children; node != NULL; node = node->next) {
        if (!is_entry(node, kind))
            continue;
        (*count)++;
        if (kind->parse(node, url_encoded, *entries, *count - 1, err) != 0)
            return -1;
    }
    return 0;
}

static int parse_list_entry(const xmlNode *node, int url_encoded, void *entries, size_t index,
                            stow_error *err)
{
    struct s3_list_entry *entry = (struct s3_list_entry *)entries + index;
    char text[64];

    entry->key = listed_key(node, url_encoded, err);
    if (entry->key == NULL)
        return -1;
    if (aws_xml_child_text(node, "Size", text, sizeof text) == 0)
        entry->info.size = strtoull(text, NULL, 10);
    if (aws_xml_child_text(node, "LastModified", text, sizeof text) == 0)
        aws_xml_parse_time(text, &entry->info.modified);
    aws_xml_child_text(node, "ETag", entry->info.etag, sizeof entry->info.etag);
    return 0;
}

int s3_parse_list_objects(const void *body, size_t len, struct s3_list_page *out,
                          stow_error *err)
{
    static const struct entry_kind contents = {{"Contents", NULL}, sizeof(struct s3_list_entry),
                                               parse_list_entry, "objects"};
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = expect_root(doc, "ListBucketResult", err);
    void *entries = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (root != NULL) {
        out->truncated = child_is_true(root, "IsTruncated");
        out->next_token = aws_xml_child_strdup(root, "NextContinuationToken");
        rc = parse_entries(root, &contents, &entries, &out->count, err);
        out->entries = entries;
    }
    if (rc != 0)
        s3_list_page_free(out);
    xmlFreeDoc(doc);
    return rc;
}

void s3_list_page_free(struct s3_list_page *page)
{
    if (page == NULL)
        return;
    for (size_t i = 0; i < page->count; i++)
        free(page->entries[i].key);
    free(page->entries);
    free(page->next_token);
    memset(page, 0, sizeof *page);
}

int s3_parse_upload_id(const void *body, size_t len, char **upload_id, stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = expect_root(doc, "InitiateMultipartUploadResult", err);

    *upload_id = root != NULL ? aws_xml_child_strdup(root, "UploadId") : NULL;
    xmlFreeDoc(doc);
    if (root == NULL)
        return -1;
    if (*upload_id == NULL || (*upload_id)[0] == '\0') {
        free(*upload_id);
        *upload_id = NULL;
        return stow_fail(err, STOW_EXIT_STORAGE, "response has no UploadId");
    }
    return 0;
}

static int parse_upload_entry(const xmlNode *node, int url_encoded, void *entries,
                              size_t index, stow_error *err)
{
    struct s3_upload_entry *entry = (struct s3_upload_entry *)entries + index;
    char text[64];

    entry->key = listed_key(node, url_encoded, err);
    entry->upload_id = aws_xml_child_strdup(node, "UploadId");
    if (entry->key == NULL || entry->upload_id == NULL)
        return stow_fail(err, STOW_EXIT_STORAGE, "upload entry without Key or UploadId");
    if (aws_xml_child_text(node, "Initiated", text, sizeof text) == 0)
        aws_xml_parse_time(text, &entry->initiated);
    return 0;
}

int s3_parse_multipart_uploads(const void *body, size_t len, struct s3_uploads_page *out,
                               stow_error *err)
{
    static const struct entry_kind uploads = {{"Upload", NULL}, sizeof(struct s3_upload_entry),
                                              parse_upload_entry, "uploads"};
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = expect_root(doc, "ListMultipartUploadsResult", err);
    void *entries = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (root != NULL) {
        out->truncated = child_is_true(root, "IsTruncated");
        out->next_key_marker = aws_xml_child_strdup(root, "NextKeyMarker");
        out->next_upload_id_marker = aws_xml_child_strdup(root, "NextUploadIdMarker");
        rc = parse_entries(root, &uploads, &entries, &out->count, err);
        out->entries = entries;
    }
    if (rc != 0)
        s3_uploads_page_free(out);
    xmlFreeDoc(doc);
    return rc;
}

void s3_uploads_page_free(struct s3_uploads_page *page)
{
    if (page == NULL)
        return;
    for (size_t i = 0; i < page->count; i++) {
        free(page->entries[i].key);
        free(page->entries[i].upload_id);
    }
    free(page->entries);
    free(page->next_key_marker);
    free(page->next_upload_id_marker);
    memset(page, 0, sizeof *page);
}

static int parse_version_entry(const xmlNode *node, int url_encoded, void *entries,
                               size_t index, stow_error *err)
{
    struct s3_version_entry *entry = (struct s3_version_entry *)entries + index;

    entry->delete_marker = aws_xml_is(node, "DeleteMarker");
    entry->key = listed_key(node, url_encoded, err);
    entry->version_id = aws_xml_child_strdup(node, "VersionId");
    if (entry->key == NULL || entry->version_id == NULL || entry->version_id[0] == '\0')
        return stow_fail(err, STOW_EXIT_STORAGE, "version entry without Key or VersionId");
    return 0;
}

int s3_parse_object_versions(const void *body, size_t len, struct s3_versions_page *out,
                             stow_error *err)
{
    static const struct entry_kind versions = {{"Version", "DeleteMarker"},
                                               sizeof(struct s3_version_entry),
                                               parse_version_entry, "versions"};
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = expect_root(doc, "ListVersionsResult", err);
    void *entries = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (root != NULL) {
        out->truncated = child_is_true(root, "IsTruncated");
        out->next_key_marker = aws_xml_child_strdup(root, "NextKeyMarker");
        out->next_version_id_marker = aws_xml_child_strdup(root, "NextVersionIdMarker");
        rc = parse_entries(root, &versions, &entries, &out->count, err);
        out->entries = entries;
    }
    if (rc != 0)
        s3_versions_page_free(out);
    xmlFreeDoc(doc);
    return rc;
}

void s3_versions_page_free(struct s3_versions_page *page)
{
    if (page == NULL)
        return;
    for (size_t i = 0; i < page->count; i++) {
        free(page->entries[i].key);
        free(page->entries[i].version_id);
    }
    free(page->entries);
    free(page->next_key_marker);
    free(page->next_version_id_marker);
    memset(page, 0, sizeof *page);
}

int s3_parse_object_lock_configuration(const void *body, size_t len, int *enabled,
                                       stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = expect_root(doc, "ObjectLockConfiguration", err);
    char status[32];

    *enabled = root != NULL &&
               aws_xml_child_text(root, "ObjectLockEnabled", status, sizeof status) == 0 &&
               strcmp(status, "Enabled") == 0;
    xmlFreeDoc(doc);
    return root != NULL ? 0 : -1;
}

int s3_parse_copy_result(const void *body, size_t len, char etag[S3_ETAG_MAX],
                         uint8_t sha256[32], int *has_sha256, stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
    char checksum[64];
    size_t decoded = 0;
    int rc = -1;

    *has_sha256 = 0;
    etag[0] = '\0';
    if (!aws_xml_is(root, "CopyPartResult") && !aws_xml_is(root, "CopyObjectResult")) {
        stow_fail(err, STOW_EXIT_STORAGE, "response is not a CopyPartResult or "
                                          "CopyObjectResult XML document");
        goto done;
    }
    if (aws_xml_child_text(root, "ETag", etag, S3_ETAG_MAX) != 0 || etag[0] == '\0') {
        stow_fail(err, STOW_EXIT_STORAGE, "copy result has no ETag");
        goto done;
    }
    if (aws_xml_child_text(root, "ChecksumSHA256", checksum, sizeof checksum) == 0 &&
        checksum[0] != '\0') {
        if (sodium_base642bin(sha256, 32, checksum, strlen(checksum), NULL, &decoded, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            decoded != 32) {
            stow_fail(err, STOW_EXIT_STORAGE, "copy result has an invalid ChecksumSHA256 "
                                              "\"%s\"", checksum);
            goto done;
        }
        *has_sha256 = 1;
    }
    rc = 0;

done:
    xmlFreeDoc(doc);
    return rc;
}

static int add_part_element(xmlNode *root, const struct s3_completed_part *part)
{
    char number[16];
    char checksum[48];
    xmlNode *node = xmlNewChild(root, NULL, BAD_CAST "Part", NULL);

    snprintf(number, sizeof number, "%u", part->number);
    sodium_bin2base64(checksum, sizeof checksum, part->sha256, sizeof part->sha256,
                      sodium_base64_VARIANT_ORIGINAL);
    if (node == NULL ||
        xmlNewTextChild(node, NULL, BAD_CAST "PartNumber", BAD_CAST number) == NULL ||
        xmlNewTextChild(node, NULL, BAD_CAST "ETag", BAD_CAST part->etag) == NULL ||
        xmlNewTextChild(node, NULL, BAD_CAST "ChecksumSHA256", BAD_CAST checksum) == NULL)
        return -1;
    return 0;
}

/* Creates a request document whose root element, root_name, is in the S3
 * namespace. Returns the root, or NULL (and *out NULL) when out of memory. */
static xmlNode *new_request_document(const char *root_name, xmlDoc **out)
{
    xmlDoc *doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNode *root = xmlNewNode(NULL, BAD_CAST root_name);
    xmlNs *ns = root != NULL ? xmlNewNs(root, BAD_CAST S3_NAMESPACE, NULL) : NULL;

    *out = NULL;
    if (doc == NULL || ns == NULL) {
        xmlFreeNode(root);
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlSetNs(root, ns);
    xmlDocSetRootElement(doc, root);
    *out = doc;
    return root;
}

/* Serialises doc into out (reset first) when built is 1, and frees doc.
 * Fails naming operation when the document could not be built or
 * serialised. */
static int finish_request_document(xmlDoc *doc, int built, const char *operation, stow_buf *out,
                                   stow_error *err)
{
    xmlChar *text = NULL;
    int size = 0;
    int rc = -1;

    stow_buf_reset(out);
    if (doc != NULL && built)
        xmlDocDumpMemoryEnc(doc, &text, &size, "UTF-8");
    if (text != NULL)
        rc = stow_buf_append(out, text, (size_t)size, err);
    if (rc != 0)
        stow_fail(err, STOW_EXIT_FAILURE, "cannot build the %s document", operation);
    xmlFree(text);
    xmlFreeDoc(doc);
    return rc;
}

int s3_build_complete_body(const struct s3_completed_part *parts, size_t count, stow_buf *out,
                           stow_error *err)
{
    xmlDoc *doc;
    xmlNode *root = new_request_document("CompleteMultipartUpload", &doc);
    int built = root != NULL;

    for (size_t i = 0; built && i < count; i++)
        built = add_part_element(root, &parts[i]) == 0;
    return finish_request_document(doc, built, "CompleteMultipartUpload", out, err);
}

int s3_build_retention_body(const struct s3_retention *retention, stow_buf *out,
                            stow_error *err)
{
    xmlDoc *doc;
    xmlNode *root = new_request_document("Retention", &doc);
    char until[32];
    int built = root != NULL;

    format_utc(retention->retain_until, until);
    if (built)
        built = xmlNewTextChild(root, NULL, BAD_CAST "Mode", BAD_CAST retention->mode) != NULL &&
                xmlNewTextChild(root, NULL, BAD_CAST "RetainUntilDate", BAD_CAST until) != NULL;
    return finish_request_document(doc, built, "PutObjectRetention", out, err);
}
