/* S3 client: addressing, request signing, the object and multipart calls,
 * and the parsers of their XML responses. */
#include "aws/s3.h"
#include "aws/aws_env.h"

#include <arpa/inet.h>
#include <libxml/tree.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_xml.h"

#define S3_URL_MAX (64u * 1024)
#define S3_HOST_MAX 1024
#define S3_ERROR_BODY_MAX (64u * 1024)
#define S3_NAMESPACE "http://s3.amazonaws.com/doc/2006-03-01/"

struct s3_client {
    char *bucket;
    char *region;
    char *endpoint;      /* as configured, for messages */
    char *scheme;        /* "http" or "https" */
    char *authority;     /* host[:port] of the endpoint */
    char *base_path;     /* decoded endpoint path without a trailing '/', often "" */
    char *storage_class; /* NULL: bucket default */
    int path_style;
    struct http_settings settings;
    struct http_engine *engine;
    struct aws_credentials_provider *credentials;
    int owns_credentials;
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

/* Returns 1 when a virtual-hosted request cannot work for host: IP
 * literals and localhost have no per-bucket DNS names. */
static int host_requires_path_style(const char *host)
{
    struct in_addr address;

    if (host[0] == '[')
        return 1;
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

static char *join_authority(const char *host, const char *port)
{
    size_t len = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
    char *authority = malloc(len);

    if (authority != NULL)
        snprintf(authority, len, "%s%s%s", host, port ? ":" : "", port ? port : "");
    return authority;
}

/* Splits the endpoint URL into scheme, authority and base path. */
static int parse_endpoint(s3_client *client, stow_error *err)
{
    CURLU *url = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    int rc = -1;

    if (url == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing the S3 endpoint");
    if (curl_url_set(url, CURLUPART_URL, client->endpoint, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid S3 endpoint URL \"%s\"", client->endpoint);
        stow_error_hint(err, "--endpoint must be an http:// or https:// URL, for example "
                             "http://127.0.0.1:9000");
        goto done;
    }
    curl_url_get(url, CURLUPART_PORT, &port, 0);
    curl_url_get(url, CURLUPART_PATH, &path, CURLU_URLDECODE);

    client->scheme = strdup(scheme);
    client->authority = join_authority(host, port);
    client->base_path = strdup(path != NULL ? path : "");
    if (client->scheme == NULL || client->authority == NULL || client->base_path == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing the S3 endpoint");
        goto done;
    }
    while (client->base_path[0] != '\0' &&
           client->base_path[strlen(client->base_path) - 1] == '/')
        client->base_path[strlen(client->base_path) - 1] = '\0';
    if (client->path_style < 0)
        client->path_style = host_requires_path_style(host) || !bucket_is_dns_label(client->bucket);
    rc = 0;

done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(url);
    return rc;
}

static int copy_options(s3_client *client, const struct s3_options *options, stow_error *err)
{
    const char *region = options->region ? options->region : s3_default_region();
    char endpoint[4096];

    if (options->endpoint != NULL)
        snprintf(endpoint, sizeof endpoint, "%s", options->endpoint);
    else if (s3_default_endpoint(region, endpoint, sizeof endpoint, err) != 0)
        return -1;

    client->bucket = strdup(options->bucket);
    client->region = strdup(region);
    client->endpoint = strdup(endpoint);
    if (options->storage_class != NULL)
        client->storage_class = strdup(options->storage_class);
    if (client->bucket == NULL || client->region == NULL || client->endpoint == NULL ||
        (options->storage_class != NULL && client->storage_class == NULL))
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the S3 client");

    client->path_style = options->path_style;
    http_settings_default(&client->settings);
    if (options->max_attempts > 0)
        client->settings.max_attempts = options->max_attempts;
    return 0;
}

static int attach_credentials(s3_client *client, const struct s3_options *options,
                              stow_error *err)
{
    if (options->credentials != NULL) {
        client->credentials = options->credentials;
        return 0;
    }
    client->owns_credentials = 1;
    return aws_credentials_provider_new_default(&client->credentials, err);
}

int s3_client_new(const struct s3_options *options, s3_client **out, stow_error *err)
{
    s3_client *client;

    *out = NULL;
    if (check_bucket_name(options->bucket, err) != 0)
        return -1;
    client = calloc(1, sizeof *client);
    if (client == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the S3 client");

    if (copy_options(client, options, err) != 0 || parse_endpoint(client, err) != 0 ||
        attach_credentials(client, options, err) != 0 ||
        http_engine_new(&client->engine, err) != 0) {
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
    http_engine_free(client->engine);
    if (client->owns_credentials)
        aws_credentials_provider_free(client->credentials);
    free(client->bucket);
    free(client->region);
    free(client->endpoint);
    free(client->scheme);
    free(client->authority);
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
    return client->endpoint;
}

int s3_client_path_style(const s3_client *client)
{
    return client->path_style;
}

void s3_client_set_http_settings(s3_client *client, const struct http_settings *settings)
{
    client->settings = *settings;
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
        written = snprintf(host, S3_HOST_MAX, "%s", client->authority);
    else
        written = snprintf(host, S3_HOST_MAX, "%s.%s", client->bucket, client->authority);
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
    if (stow_buf_printf(url, err, "%s://%s", call->client->scheme, host) != 0 ||
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

static int append_header(struct curl_slist **list, const char *name, const char *value,
                         stow_error *err)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = malloc(len);
    struct curl_slist *grown = NULL;

    if (line != NULL) {
        snprintf(line, len, "%s: %s", name, value);
        grown = curl_slist_append(*list, line);
        free(line);
    }
    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory building S3 request headers");
    *list = grown;
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

static int write_curl_headers(const char *host, const struct sigv4_header *headers, size_t count,
                              const struct aws_credentials *credentials,
                              const struct sigv4_signature *signature,
                              struct curl_slist **list, stow_error *err)
{
    if (append_header(list, "Host", host, err) != 0 ||
        append_header(list, "X-Amz-Date", signature->amz_date, err) != 0 ||
        append_header(list, "Authorization", signature->authorization, err) != 0)
        return -1;
    if (credentials->session_token[0] != '\0' &&
        append_header(list, "X-Amz-Security-Token", credentials->session_token, err) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (append_header(list, headers[i].name, headers[i].value, err) != 0)
            return -1;
    }
    return 0;
}

static void describe_signing(const struct s3_call *call, const char *host, const char *path,
                             const struct sigv4_header *headers, size_t header_count,
                             struct sigv4_request *out)
{
    memset(out, 0, sizeof *out);
    out->service = "s3";
    out->region = call->client->region;
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

/* Signs and describes one attempt of call (http_build_fn). */
static int build_request(struct http_job *job, struct http_request *request, stow_error *err)
{
    struct s3_call *call = job->owner;
    struct aws_credentials credentials;
    struct sigv4_request signing;
    struct sigv4_signature signature;
    struct sigv4_header headers[S3_CALL_MAX_HEADERS + 2];
    size_t header_count = collect_signed_headers(call, headers);
    char host[S3_HOST_MAX];
    stow_buf path;
    int rc = -1;

    memset(&credentials, 0, sizeof credentials);
    stow_buf_init(&path, S3_URL_MAX);
    if (aws_credentials_provider_get(call->client->credentials, &credentials, err) != 0 ||
        build_target(call, host, &path, err) != 0)
        goto done;

    describe_signing(call, host, (const char *)path.data, headers, header_count, &signing);
    if (sigv4_sign(&signing, &credentials, &signature, err) != 0 ||
        write_url(call, host, (const char *)path.data, err) != 0 ||
        write_curl_headers(host, headers, header_count, &credentials, &signature,
                           &request->headers, err) != 0)
        goto done;

    request->method = call->method;
    request->url = (const char *)call->url.data;
    request->body = call->body;
    request->body_len = call->body_len;
    rc = 0;

done:
    aws_credentials_clear(&credentials);
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
    return 0;
}

static void call_init(struct s3_call *call, s3_client *client, const char *operation,
                      const char *method, const char *key)
{
    memset(call, 0, sizeof *call);
    http_job_init(&call->job, &client->settings, S3_ERROR_BODY_MAX);
    call->job.service = "S3";
    call->job.operation = operation;
    call->job.prepare = prepare_request;
    call->job.build = build_request;
    call->job.owner = call;
    call->job.credentials = client->credentials;
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
    return http_engine_perform(call->client->engine, &call->job, err);
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

    rc = call_perform(&call, err);
    s3_call_free(&call);
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
    rc = call_perform(&call, err);
    if (rc == 0 && out->len != len)
        rc = stow_fail(err, STOW_EXIT_STORAGE,
                       "S3 GetObject for %s returned %zu bytes instead of %llu (HTTP %ld)",
                       call.job.subject, out->len, (unsigned long long)len,
                       call.job.response.status);
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
        info->size = call.job.response.content_length;
        info->modified = call.job.response.last_modified;
        snprintf(info->etag, sizeof info->etag, "%s", call.job.response.etag);
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

int s3_create_multipart_upload(s3_client *client, const char *key, char **upload_id,
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

static int uploads_page(s3_client *client, const char *prefix, const char *key_marker,
                        const char *upload_id_marker, struct s3_uploads_page *page,
                        stow_error *err)
{
    struct s3_call call;
    int rc;

    call_init(&call, client, "ListMultipartUploads", "GET", NULL);
    call_param(&call, "uploads", "");
    call_param(&call, "encoding-type", "url");
    call_param(&call, "prefix", prefix != NULL ? prefix : "");
    if (key_marker != NULL)
        call_param(&call, "key-marker", key_marker);
    if (upload_id_marker != NULL)
        call_param(&call, "upload-id-marker", upload_id_marker);
    call.job.response.body.max = S3_XML_BODY_MAX;

    rc = call_perform(&call, err);
    if (rc == 0 && s3_parse_multipart_uploads(call.job.response.body.data,
                                              call.job.response.body.len, page, err) != 0) {
        stow_error_prefix(err, "S3 ListMultipartUploads for bucket %s", client->bucket);
        rc = -1;
    }
    s3_call_free(&call);
    return rc;
}

int s3_list_multipart_uploads(s3_client *client, const char *prefix, s3_upload_fn fn,
                              void *context, stow_error *err)
{
    char *key_marker = NULL;
    char *upload_id_marker = NULL;
    int more;
    int rc;

    do {
        struct s3_uploads_page page;

        memset(&page, 0, sizeof page);
        rc = uploads_page(client, prefix, key_marker, upload_id_marker, &page, err);
        free(key_marker);
        free(upload_id_marker);
        key_marker = page.next_key_marker;
        upload_id_marker = page.next_upload_id_marker;
        page.next_key_marker = NULL;
        page.next_upload_id_marker = NULL;

        for (size_t i = 0; rc == 0 && i < page.count; i++)
            rc = fn(page.entries[i].key, page.entries[i].upload_id, page.entries[i].initiated,
                    context);
        more = rc == 0 && page.truncated && key_marker != NULL;
        s3_uploads_page_free(&page);
    } while (more);

    free(key_marker);
    free(upload_id_marker);
    return rc;
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

static int child_is_true(const xmlNode *parent, const char *name)
{
    char text[8];

    return aws_xml_child_text(parent, name, text, sizeof text) == 0 && strcmp(text, "true") == 0;
}

static size_t count_children(const xmlNode *parent, const char *name)
{
    size_t count = 0;

    for (xmlNode *child = parent->children; child != NULL; child = child->next)
        count += aws_xml_is(child, name);
    return count;
}

static int parse_list_entry(const xmlNode *node, int url_encoded, struct s3_list_entry *entry,
                            stow_error *err)
{
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
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = expect_root(doc, "ListBucketResult", err);
    char encoding[16];
    int url_encoded;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (root == NULL)
        goto done;
    url_encoded = aws_xml_child_text(root, "EncodingType", encoding, sizeof encoding) == 0 &&
                  strcmp(encoding, "url") == 0;
    out->truncated = child_is_true(root, "IsTruncated");
    out->next_token = aws_xml_child_strdup(root, "NextContinuationToken");
    out->entries = calloc(count_children(root, "Contents") + 1, sizeof *out->entries);
    if (out->entries == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing a listing");
        goto done;
    }

    for (xmlNode *node = root->children; node != NULL; node = node->next) {
        if (!aws_xml_is(node, "Contents"))
            continue;
        if (parse_list_entry(node, url_encoded, &out->entries[out->count], err) != 0)
            goto done;
        out->count++;
    }
    rc = 0;

done:
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

static int parse_upload_entry(const xmlNode *node, int url_encoded,
                              struct s3_upload_entry *entry, stow_error *err)
{
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
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *root = expect_root(doc, "ListMultipartUploadsResult", err);
    char encoding[16];
    int url_encoded;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (root == NULL)
        goto done;
    url_encoded = aws_xml_child_text(root, "EncodingType", encoding, sizeof encoding) == 0 &&
                  strcmp(encoding, "url") == 0;
    out->truncated = child_is_true(root, "IsTruncated");
    out->next_key_marker = aws_xml_child_strdup(root, "NextKeyMarker");
    out->next_upload_id_marker = aws_xml_child_strdup(root, "NextUploadIdMarker");
    out->entries = calloc(count_children(root, "Upload") + 1, sizeof *out->entries);
    if (out->entries == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing a listing of uploads");
        goto done;
    }

    for (xmlNode *node = root->children; node != NULL; node = node->next) {
        if (!aws_xml_is(node, "Upload"))
            continue;
        out->count++;
        if (parse_upload_entry(node, url_encoded, &out->entries[out->count - 1], err) != 0)
            goto done;
    }
    rc = 0;

done:
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

int s3_build_complete_body(const struct s3_completed_part *parts, size_t count, stow_buf *out,
                           stow_error *err)
{
    xmlDoc *doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNode *root = xmlNewNode(NULL, BAD_CAST "CompleteMultipartUpload");
    xmlNs *ns = root != NULL ? xmlNewNs(root, BAD_CAST S3_NAMESPACE, NULL) : NULL;
    xmlChar *text = NULL;
    int size = 0;
    int rc = -1;

    stow_buf_reset(out);
    if (doc == NULL || ns == NULL) {
        xmlFreeNode(root);
        goto done;
    }
    xmlSetNs(root, ns);
    xmlDocSetRootElement(doc, root);
    for (size_t i = 0; i < count; i++) {
        if (add_part_element(root, &parts[i]) != 0)
            goto done;
    }
    xmlDocDumpMemoryEnc(doc, &text, &size, "UTF-8");
    if (text != NULL)
        rc = stow_buf_append(out, text, (size_t)size, err);

done:
    if (rc != 0)
        stow_fail(err, STOW_EXIT_FAILURE, "cannot build the CompleteMultipartUpload document");
    xmlFree(text);
    xmlFreeDoc(doc);
    return rc;
}
