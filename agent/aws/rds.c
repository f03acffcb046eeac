/* RDS client: configuration, form requests and their signing, the Query
 * API calls, the conversion of RDS error codes, and the response parsers. */
#include "aws/rds.h"
#include "aws/aws_env.h"

#include <ctype.h>
#include <libxml/tree.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_xml.h"
#include "common/log.h"

#define RDS_URL_MAX 4096
#define RDS_FORM_MAX (1024u * 1024)
#define RDS_ENDPOINT_MAX 2048
/* Instances per DescribeDBInstances page (RDS accepts 20 to 100). */
#define RDS_PAGE_SIZE "100"

struct rds_client {
    char *region;
    char *endpoint;   /* as configured, for messages */
    char *authority;  /* host[:port] of the endpoint */
    char *path;       /* endpoint path (decoded) with a trailing '/', often "/" */
    char *url;        /* scheme://authority/path, encoded */
    struct http_settings settings;
    struct http_engine *engine;
    struct aws_credentials_provider *credentials;
    int owns_credentials;
    char error_code[AWS_ERROR_CODE_MAX];
};

/* --- configuration -------------------------------------------------------- */

const char *rds_default_region(void)
{
    return aws_default_region();
}

int rds_default_endpoint(const char *region, char *out, size_t size, stow_error *err)
{
    return aws_service_endpoint("AWS_ENDPOINT_URL_RDS", "rds", region, "RDS", out, size, err);
}

static char *join_url_parts(const char *first, const char *second, const char *third)
{
    size_t len = strlen(first) + strlen(second) + strlen(third) + 1;
    char *text = malloc(len);

    if (text != NULL)
        snprintf(text, len, "%s%s%s", first, second, third);
    return text;
}

/* The parts of an endpoint URL; each string is malloc'd. */
struct endpoint_parts {
    char *scheme;    /* "http" or "https" */
    char *authority; /* host[:port] */
    char *path;      /* the path with a trailing '/', often "/" */
};

static void endpoint_parts_free(struct endpoint_parts *parts)
{
    free(parts->scheme);
    free(parts->authority);
    free(parts->path);
    memset(parts, 0, sizeof *parts);
}

static int parse_endpoint(const char *endpoint, struct endpoint_parts *out, stow_error *err)
{
    CURLU *url = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (url == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing the RDS endpoint");
    if (curl_url_set(url, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid RDS endpoint URL \"%s\"", endpoint);
        stow_error_hint(err, "--rds-endpoint must be an http:// or https:// URL, for example "
                             "https://rds.eu-west-1.amazonaws.com");
        goto done;
    }
    curl_url_get(url, CURLUPART_PORT, &port, 0);
    curl_url_get(url, CURLUPART_PATH, &path, CURLU_URLDECODE);

    out->scheme = strdup(scheme);
    out->authority = join_url_parts(host, port ? ":" : "", port ? port : "");
    if (path == NULL || path[0] == '\0')
        out->path = strdup("/");
    else
        out->path = join_url_parts(path, path[strlen(path) - 1] == '/' ? "" : "/", "");
    if (out->scheme == NULL || out->authority == NULL || out->path == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing the RDS endpoint");
        endpoint_parts_free(out);
        goto done;
    }
    rc = 0;

done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(url);
    return rc;
}

/* Writes scheme://authority followed by the encoded path into out. */
static int write_endpoint_url(const struct endpoint_parts *parts, stow_buf *out, stow_error *err)
{
    if (stow_buf_printf(out, err, "%s://%s", parts->scheme, parts->authority) != 0)
        return -1;
    return sigv4_uri_encode(out, parts->path, 1, err);
}

static int set_endpoint(rds_client *client, stow_error *err)
{
    struct endpoint_parts parts;
    stow_buf url;
    int rc;

    if (parse_endpoint(client->endpoint, &parts, err) != 0)
        return -1;
    stow_buf_init(&url, RDS_URL_MAX);
    rc = write_endpoint_url(&parts, &url, err);
    if (rc == 0) {
        client->authority = parts.authority;
        client->path = parts.path;
        parts.authority = NULL;
        parts.path = NULL;
        client->url = (char *)url.data;
        url.data = NULL;
    }
    endpoint_parts_free(&parts);
    stow_buf_free(&url);
    return rc;
}

static int copy_options(rds_client *client, const struct rds_options *options, stow_error *err)
{
    const char *region = options->region ? options->region : rds_default_region();
    char endpoint[RDS_ENDPOINT_MAX];

    if (options->endpoint != NULL)
        snprintf(endpoint, sizeof endpoint, "%s", options->endpoint);
    else if (rds_default_endpoint(region, endpoint, sizeof endpoint, err) != 0)
        return -1;

    client->region = strdup(region);
    client->endpoint = strdup(endpoint);
    if (client->region == NULL || client->endpoint == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the RDS client");
    http_settings_default(&client->settings);
    if (options->max_attempts > 0)
        client->settings.max_attempts = options->max_attempts;
    return 0;
}

int rds_client_new(const struct rds_options *options, rds_client **out, stow_error *err)
{
    rds_client *client = calloc(1, sizeof *client);

    *out = NULL;
    if (client == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the RDS client");
    if (copy_options(client, options, err) != 0 || set_endpoint(client, err) != 0)
        goto fail;
    if (options->credentials != NULL) {
        client->credentials = options->credentials;
    } else {
        client->owns_credentials = 1;
        if (aws_credentials_provider_new_default(&client->credentials, err) != 0)
            goto fail;
    }
    if (http_engine_new(&client->engine, err) != 0)
        goto fail;
    *out = client;
    return 0;

fail:
    rds_client_free(client);
    return -1;
}

void rds_client_free(rds_client *client)
{
    if (client == NULL)
        return;
    http_engine_free(client->engine);
    if (client->owns_credentials)
        aws_credentials_provider_free(client->credentials);
    free(client->region);
    free(client->endpoint);
    free(client->authority);
    free(client->path);
    free(client->url);
    free(client);
}

const char *rds_client_region(const rds_client *client)
{
    return client->region;
}

const char *rds_client_endpoint(const rds_client *client)
{
    return client->endpoint;
}

void rds_client_set_http_settings(rds_client *client, const struct http_settings *settings)
{
    client->settings = *settings;
}

const char *rds_client_error_code(const rds_client *client)
{
    return client->error_code;
}

int rds_identifier_is_valid(const char *text, size_t max_len)
{
    size_t len = text != NULL ? strlen(text) : 0;

    if (len == 0 || len > max_len || !isalpha((unsigned char)text[0]) || text[len - 1] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (!(isalnum(c) || c == '-') || c > 0x7f)
            return 0;
        if (c == '-' && i > 0 && text[i - 1] == '-')
            return 0;
    }
    return 1;
}

/* --- parameters and forms --------------------------------------------------- */

void rds_params_init(struct rds_params *params)
{
    memset(params, 0, sizeof *params);
}

int rds_params_add(struct rds_params *params, const char *name, const char *value,
                   stow_error *err)
{
    char *name_copy;
    char *value_copy;

    if (params->count == params->cap) {
        size_t cap = params->cap == 0 ? 16 : params->cap * 2;
        struct sigv4_param *grown = realloc(params->items, cap * sizeof *grown);

        if (grown == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory building an RDS request");
        params->items = grown;
        params->cap = cap;
    }
    name_copy = strdup(name);
    value_copy = strdup(value);
    if (name_copy == NULL || value_copy == NULL) {
        free(name_copy);
        free(value_copy);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory building an RDS request");
    }
    params->items[params->count].name = name_copy;
    params->items[params->count].value = value_copy;
    params->count++;
    return 0;
}

static int params_add_numbered(struct rds_params *params, const char *prefix, size_t number,
                               const char *suffix, const char *value, stow_error *err)
{
    char name[128];

    snprintf(name, sizeof name, "%s.%zu%s", prefix, number, suffix);
    return rds_params_add(params, name, value, err);
}

int rds_params_add_tags(struct rds_params *params, const struct rds_tag *tags, size_t count,
                        stow_error *err)
{
    for (size_t i = 0; i < count; i++) {
        if (params_add_numbered(params, "Tags.Tag", i + 1, ".Key", tags[i].key, err) != 0 ||
            params_add_numbered(params, "Tags.Tag", i + 1, ".Value", tags[i].value, err) != 0)
            return -1;
    }
    return 0;
}

void rds_params_free(struct rds_params *params)
{
    if (params == NULL)
        return;
    for (size_t i = 0; i < params->count; i++) {
        free((char *)params->items[i].name);
        free((char *)params->items[i].value);
    }
    free(params->items);
    memset(params, 0, sizeof *params);
}

int rds_form_encode(const struct sigv4_param *params, size_t count, stow_buf *out,
                    stow_error *err)
{
    for (size_t i = 0; i < count; i++) {
        if ((i > 0 && stow_buf_append_str(out, "&", err) != 0) ||
            sigv4_uri_encode(out, params[i].name, 0, err) != 0 ||
            stow_buf_append_str(out, "=", err) != 0 ||
            sigv4_uri_encode(out, params[i].value, 0, err) != 0)
            return -1;
    }
    return 0;
}

/* Starts params with Action and Version. */
static int params_begin(struct rds_params *params, const char *action, stow_error *err)
{
    rds_params_init(params);
    if (rds_params_add(params, "Action", action, err) != 0 ||
        rds_params_add(params, "Version", RDS_API_VERSION, err) != 0)
        return -1;
    return 0;
}

/* --- signing ------------------------------------------------------------------ */

int rds_sign_form(const struct rds_signing *signing, struct sigv4_signature *out,
                  stow_error *err)
{
    struct sigv4_header headers[] = {{"content-type", RDS_FORM_CONTENT_TYPE}};
    struct sigv4_request request;
    uint8_t digest[32];
    char payload_hash[SIGV4_HEX_SHA256_SIZE];

    sigv4_sha256(signing->body != NULL ? signing->body : "", signing->body_len, digest);
    sigv4_hex(digest, payload_hash);

    memset(&request, 0, sizeof request);
    request.service = "rds";
    request.region = signing->region;
    request.method = "POST";
    request.host = signing->host;
    request.path = signing->path != NULL ? signing->path : "/";
    request.headers = headers;
    request.header_count = sizeof headers / sizeof headers[0];
    request.payload_hash = payload_hash;
    request.time = signing->time;
    return sigv4_sign(&request, signing->credentials, out, err);
}

/* Adds the CopyDBSnapshot parameters of request, without PreSignedUrl. */
static int copy_params(struct rds_params *params, const struct rds_copy_snapshot *request,
                       stow_error *err)
{
    if (params_begin(params, "CopyDBSnapshot", err) != 0 ||
        rds_params_add(params, "SourceDBSnapshotIdentifier", request->source_arn, err) != 0 ||
        rds_params_add(params, "TargetDBSnapshotIdentifier", request->target_id, err) != 0)
        return -1;
    if (request->kms_key_id != NULL &&
        rds_params_add(params, "KmsKeyId", request->kms_key_id, err) != 0)
        return -1;
    return rds_params_add_tags(params, request->tags, request->tag_count, err);
}

int rds_presign_copy_url(const struct rds_copy_snapshot *request,
                         const char *destination_region,
                         const struct aws_credentials *credentials, stow_buf *url,
                         stow_error *err)
{
    struct endpoint_parts endpoint;
    struct rds_params params;
    struct sigv4_request signing;
    stow_buf query;
    int rc = -1;

    rds_params_init(&params);
    stow_buf_init(&query, RDS_FORM_MAX);
    stow_buf_reset(url);
    if (parse_endpoint(request->source_endpoint, &endpoint, err) != 0)
        return -1;
    if (copy_params(&params, request, err) != 0 ||
        rds_params_add(&params, "DestinationRegion", destination_region, err) != 0)
        goto done;

    memset(&signing, 0, sizeof signing);
    signing.service = "rds";
    signing.region = request->source_region;
    signing.method = "GET";
    signing.host = endpoint.authority;
    signing.path = endpoint.path;
    signing.params = params.items;
    signing.param_count = params.count;
    signing.payload_hash = SIGV4_EMPTY_SHA256;
    signing.time = request->time != 0 ? request->time : time(NULL);
    if (sigv4_presign(&signing, credentials, RDS_PRESIGN_EXPIRES, &query, err) != 0 ||
        write_endpoint_url(&endpoint, url, err) != 0 ||
        stow_buf_printf(url, err, "?%s", (const char *)query.data) != 0)
        goto done;
    rc = 0;

done:
    rds_params_free(&params);
    stow_buf_free_secret(&query);
    endpoint_parts_free(&endpoint);
    return rc;
}

/* --- calls -------------------------------------------------------------------- */

struct rds_call {
    struct http_job job;
    rds_client *client;
    stow_buf body;
};

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
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory building RDS request headers");
    *list = grown;
    return 0;
}

/* Signs and describes one attempt of call (http_build_fn). */
static int build_request(struct http_job *job, struct http_request *request, stow_error *err)
{
    struct rds_call *call = job->owner;
    rds_client *client = call->client;
    struct aws_credentials credentials;
    struct sigv4_signature signature;
    struct rds_signing signing = {client->region, client->authority, client->path,
                                  call->body.data, call->body.len, time(NULL), NULL};
    int rc = -1;

    memset(&credentials, 0, sizeof credentials);
    signing.credentials = &credentials;
    if (aws_credentials_provider_get(client->credentials, &credentials, err) != 0 ||
        rds_sign_form(&signing, &signature, err) != 0)
        goto done;
    if (append_header(&request->headers, "Host", client->authority, err) != 0 ||
        append_header(&request->headers, "Content-Type", RDS_FORM_CONTENT_TYPE, err) != 0 ||
        append_header(&request->headers, "X-Amz-Date", signature.amz_date, err) != 0 ||
        append_header(&request->headers, "Authorization", signature.authorization, err) != 0)
        goto done;
    if (credentials.session_token[0] != '\0' &&
        append_header(&request->headers, "X-Amz-Security-Token", credentials.session_token,
                      err) != 0)
        goto done;

    request->method = "POST";
    request->url = client->url;
    request->body = call->body.data;
    request->body_len = call->body.len;
    rc = 0;

done:
    aws_credentials_clear(&credentials);
    return rc;
}

/* Sends params (Action first) and leaves a 2xx body in call->job.response.
 * On failure err names the action and subject, and the client keeps the
 * AWS error code. The call must be released with call_free. */
static int call_perform(rds_client *client, struct rds_call *call, const char *action,
                        const struct rds_params *params, stow_error *err, const char *subject_fmt,
                        ...) STOW_PRINTF(6, 7);

static int call_perform(rds_client *client, struct rds_call *call, const char *action,
                        const struct rds_params *params, stow_error *err, const char *subject_fmt,
                        ...)
{
    va_list ap;
    int rc;

    memset(call, 0, sizeof *call);
    http_job_init(&call->job, &client->settings, RDS_XML_BODY_MAX);
    stow_buf_init(&call->body, RDS_FORM_MAX);
    call->client = client;
    call->job.service = "RDS";
    call->job.operation = action;
    call->job.build = build_request;
    call->job.owner = call;
    call->job.credentials = client->credentials;
    va_start(ap, subject_fmt);
    vsnprintf(call->job.subject, sizeof call->job.subject, subject_fmt, ap);
    va_end(ap);
    client->error_code[0] = '\0';

    if (rds_form_encode(params->items, params->count, &call->body, err) != 0)
        return -1;
    stow_log_debug("RDS %s (%s) in %s", action, call->job.subject, client->region);
    rc = http_engine_perform(client->engine, &call->job, err);
    if (rc != 0) {
        snprintf(client->error_code, sizeof client->error_code, "%s", call->job.error.code);
        rds_error_advise(err, call->job.error.code);
    }
    return rc;
}

static void call_free(struct rds_call *call)
{
    http_job_free(&call->job);
    stow_buf_free(&call->body);
}

/* Returns 1 when the last failure was one of the not-found codes. */
static int failed_not_found(const rds_client *client)
{
    static const char *const codes[] = {"DBSnapshotNotFound", "DBSnapshotNotFoundFault",
                                        "DBClusterSnapshotNotFoundFault", "DBInstanceNotFound",
                                        "DBInstanceNotFoundFault", "DBClusterNotFoundFault"};

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (strcmp(client->error_code, codes[i]) == 0)
            return 1;
    }
    return 0;
}

/* Turns a not-found failure into RDS_NOT_FOUND with err cleared. */
static int not_found_result(const rds_client *client, int rc, stow_error *err)
{
    if (rc != 0 && failed_not_found(client)) {
        stow_error_clear(err);
        return RDS_NOT_FOUND;
    }
    return rc;
}

/* --- snapshot calls ----------------------------------------------------------- */

int rds_create_snapshot(rds_client *client, const struct rds_create_snapshot *request,
                        struct rds_snapshot *out, stow_error *err)
{
    const char *action = request->cluster ? "CreateDBClusterSnapshot" : "CreateDBSnapshot";
    struct rds_params params;
    struct rds_call call;
    int rc = -1;

    if (params_begin(&params, action, err) == 0 &&
        rds_params_add(&params, request->cluster ? "DBClusterSnapshotIdentifier"
                                                 : "DBSnapshotIdentifier",
                       request->snapshot_id, err) == 0 &&
        rds_params_add(&params, request->cluster ? "DBClusterIdentifier" : "DBInstanceIdentifier",
                       request->source_id, err) == 0 &&
        rds_params_add_tags(&params, request->tags, request->tag_count, err) == 0) {
        rc = call_perform(client, &call, action, &params, err, "snapshot %s of %s %s",
                          request->snapshot_id, request->cluster ? "cluster" : "instance",
                          request->source_id);
        if (rc == 0)
            rc = rds_parse_snapshot_result(call.job.response.body.data,
                                           call.job.response.body.len, action, request->cluster,
                                           out, err);
        call_free(&call);
    }
    rds_params_free(&params);
    return rc;
}

/* Runs one Describe*Snapshots page; *marker is replaced by the next one. */
static int snapshots_page(rds_client *client, int cluster, const char *snapshot_id,
                          const char *source_id, char **marker, struct rds_snapshot_list *page,
                          stow_error *err)
{
    const char *action = cluster ? "DescribeDBClusterSnapshots" : "DescribeDBSnapshots";
    struct rds_params params;
    struct rds_call call;
    char *next = NULL;
    int rc = params_begin(&params, action, err);

    if (rc == 0 && snapshot_id != NULL)
        rc = rds_params_add(&params, cluster ? "DBClusterSnapshotIdentifier"
                                             : "DBSnapshotIdentifier", snapshot_id, err);
    if (rc == 0 && source_id != NULL)
        rc = rds_params_add(&params, cluster ? "DBClusterIdentifier" : "DBInstanceIdentifier",
                            source_id, err);
    if (rc == 0 && *marker != NULL)
        rc = rds_params_add(&params, "Marker", *marker, err);
    if (rc == 0) {
        rc = call_perform(client, &call, action, &params, err, "%s %s",
                          snapshot_id ? "snapshot" : (cluster ? "cluster" : "instance"),
                          snapshot_id ? snapshot_id : (source_id ? source_id : "(all)"));
        if (rc == 0)
            rc = rds_parse_snapshots(call.job.response.body.data, call.job.response.body.len,
                                     cluster, page, &next, err);
        call_free(&call);
    }
    rds_params_free(&params);
    free(*marker);
    *marker = next;
    return rc;
}

/* Moves the items of page to the end of list. */
static int append_snapshots(struct rds_snapshot_list *list, struct rds_snapshot_list *page,
                            stow_error *err)
{
    struct rds_snapshot *grown;

    if (page->count == 0)
        return 0;
    grown = realloc(list->items, (list->count + page->count) * sizeof *grown);
    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing snapshots");
    memcpy(grown + list->count, page->items, page->count * sizeof *grown);
    list->items = grown;
    list->count += page->count;
    free(page->items);
    memset(page, 0, sizeof *page);
    return 0;
}

static int describe_snapshots(rds_client *client, int cluster, const char *snapshot_id,
                              const char *source_id, struct rds_snapshot_list *out,
                              stow_error *err)
{
    char *marker = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    do {
        struct rds_snapshot_list page = {0};

        rc = snapshots_page(client, cluster, snapshot_id, source_id, &marker, &page, err);
        if (rc == 0)
            rc = append_snapshots(out, &page, err);
        rds_snapshot_list_free(&page);
    } while (rc == 0 && marker != NULL);
    free(marker);
    if (rc != 0)
        rds_snapshot_list_free(out);
    return rc;
}

int rds_describe_snapshots(rds_client *client, int cluster, const char *source_id,
                           struct rds_snapshot_list *out, stow_error *err)
{
    int rc = describe_snapshots(client, cluster, NULL, source_id, out, err);

    /* Filtering by a source that does not exist is an empty list in AWS;
     * an emulator may report the source as missing instead. */
    return not_found_result(client, rc, err) == RDS_NOT_FOUND ? 0 : rc;
}

int rds_describe_snapshot(rds_client *client, int cluster, const char *snapshot_id,
                          struct rds_snapshot *out, stow_error *err)
{
    struct rds_snapshot_list list = {0};
    int rc = describe_snapshots(client, cluster, snapshot_id, NULL, &list, err);

    memset(out, 0, sizeof *out);
    rc = not_found_result(client, rc, err);
    if (rc == 0 && list.count == 0)
        rc = RDS_NOT_FOUND;
    if (rc == 0) {
        *out = list.items[0];
        memset(&list.items[0], 0, sizeof list.items[0]);
    }
    rds_snapshot_list_free(&list);
    return rc;
}

int rds_copy_snapshot(rds_client *client, const struct rds_copy_snapshot *request,
                      struct rds_snapshot *out, stow_error *err)
{
    struct aws_credentials credentials;
    struct rds_params params;
    struct rds_call call;
    stow_buf url;
    int cross_region = strcmp(request->source_region, client->region) != 0;
    int rc;

    memset(&credentials, 0, sizeof credentials);
    stow_buf_init(&url, RDS_FORM_MAX);
    rc = copy_params(&params, request, err);
    if (rc == 0 && cross_region) {
        rc = aws_credentials_provider_get(client->credentials, &credentials, err);
        if (rc == 0)
            rc = rds_presign_copy_url(request, client->region, &credentials, &url, err);
        if (rc == 0)
            rc = rds_params_add(&params, "PreSignedUrl", (const char *)url.data, err);
    }
    if (rc == 0) {
        rc = call_perform(client, &call, "CopyDBSnapshot", &params, err,
                          "snapshot %s from %s to %s", request->source_arn,
                          request->source_region, request->target_id);
        if (rc == 0)
            rc = rds_parse_snapshot_result(call.job.response.body.data,
                                           call.job.response.body.len, "CopyDBSnapshot", 0, out,
                                           err);
        call_free(&call);
    }
    aws_credentials_clear(&credentials);
    /* The parameters hold the pre-signed URL, which works for anyone. */
    for (size_t i = 0; i < params.count; i++) {
        if (strcmp(params.items[i].name, "PreSignedUrl") == 0)
            sodium_memzero((char *)params.items[i].value, strlen(params.items[i].value));
    }
    rds_params_free(&params);
    stow_buf_free_secret(&url);
    return rc;
}

int rds_delete_snapshot(rds_client *client, const char *snapshot_id, stow_error *err)
{
    struct rds_params params;
    struct rds_call call;
    int rc;

    rc = params_begin(&params, "DeleteDBSnapshot", err);
    if (rc == 0)
        rc = rds_params_add(&params, "DBSnapshotIdentifier", snapshot_id, err);
    if (rc == 0) {
        rc = call_perform(client, &call, "DeleteDBSnapshot", &params, err, "snapshot %s",
                          snapshot_id);
        rc = not_found_result(client, rc, err);
        call_free(&call);
    }
    rds_params_free(&params);
    return rc;
}

/* --- tags --------------------------------------------------------------------- */

int rds_add_tags(rds_client *client, const char *arn, const struct rds_tag *tags, size_t count,
                 stow_error *err)
{
    struct rds_params params;
    struct rds_call call;
    int rc;

    rc = params_begin(&params, "AddTagsToResource", err);
    if (rc == 0)
        rc = rds_params_add(&params, "ResourceName", arn, err);
    if (rc == 0)
        rc = rds_params_add_tags(&params, tags, count, err);
    if (rc == 0) {
        rc = call_perform(client, &call, "AddTagsToResource", &params, err, "%s", arn);
        call_free(&call);
    }
    rds_params_free(&params);
    return rc;
}

int rds_list_tags(rds_client *client, const char *arn, struct rds_tag_list *out,
                  stow_error *err)
{
    struct rds_params params;
    struct rds_call call;
    int rc;

    memset(out, 0, sizeof *out);
    rc = params_begin(&params, "ListTagsForResource", err);
    if (rc == 0)
        rc = rds_params_add(&params, "ResourceName", arn, err);
    if (rc == 0) {
        rc = call_perform(client, &call, "ListTagsForResource", &params, err, "%s", arn);
        if (rc == 0)
            rc = rds_parse_tags(call.job.response.body.data, call.job.response.body.len, out,
                                err);
        call_free(&call);
    }
    rds_params_free(&params);
    return rc;
}

const char *rds_tag_value(const struct rds_tag_list *tags, const char *key)
{
    for (size_t i = 0; i < tags->count; i++) {
        if (strcmp(tags->tags[i].key, key) == 0)
            return tags->tags[i].value;
    }
    return NULL;
}

/* --- instance calls ------------------------------------------------------------ */

static int instances_page(rds_client *client, const char *instance_id, char **marker,
                          struct rds_instance_list *page, stow_error *err)
{
    struct rds_params params;
    struct rds_call call;
    char *next = NULL;
    int rc = params_begin(&params, "DescribeDBInstances", err);

    if (rc == 0 && instance_id != NULL)
        rc = rds_params_add(&params, "DBInstanceIdentifier", instance_id, err);
    if (rc == 0 && instance_id == NULL)
        rc = rds_params_add(&params, "MaxRecords", RDS_PAGE_SIZE, err);
    if (rc == 0 && *marker != NULL)
        rc = rds_params_add(&params, "Marker", *marker, err);
    if (rc == 0) {
        rc = call_perform(client, &call, "DescribeDBInstances", &params, err, "instance %s",
                          instance_id ? instance_id : "(all)");
        if (rc == 0)
            rc = rds_parse_instances(call.job.response.body.data, call.job.response.body.len,
                                     page, &next, err);
        call_free(&call);
    }
    rds_params_free(&params);
    free(*marker);
    *marker = next;
    return rc;
}

static int append_instances(struct rds_instance_list *list, struct rds_instance_list *page,
                            stow_error *err)
{
    struct rds_instance *grown;

    if (page->count == 0)
        return 0;
    grown = realloc(list->items, (list->count + page->count) * sizeof *grown);
    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing instances");
    memcpy(grown + list->count, page->items, page->count * sizeof *grown);
    list->items = grown;
    list->count += page->count;
    free(page->items);
    memset(page, 0, sizeof *page);
    return 0;
}

static int describe_instances(rds_client *client, const char *instance_id,
                              struct rds_instance_list *out, stow_error *err)
{
    char *marker = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    do {
        struct rds_instance_list page = {0};

        rc = instances_page(client, instance_id, &marker, &page, err);
        if (rc == 0)
            rc = append_instances(out, &page, err);
        rds_instance_list_free(&page);
    } while (rc == 0 && marker != NULL);
    free(marker);
    if (rc != 0)
        rds_instance_list_free(out);
    return rc;
}

int rds_describe_instances(rds_client *client, struct rds_instance_list *out, stow_error *err)
{
    return describe_instances(client, NULL, out, err);
}

int rds_describe_instance(rds_client *client, const char *instance_id,
                          struct rds_instance *out, stow_error *err)
{
    struct rds_instance_list list = {0};
    int rc = describe_instances(client, instance_id, &list, err);

    memset(out, 0, sizeof *out);
    rc = not_found_result(client, rc, err);
    if (rc == 0 && list.count == 0)
        rc = RDS_NOT_FOUND;
    if (rc == 0) {
        *out = list.items[0];
        memset(&list.items[0], 0, sizeof list.items[0]);
    }
    rds_instance_list_free(&list);
    return rc;
}

/* Adds the settings that both restore actions share. */
static int restore_params(struct rds_params *params, const struct rds_restore_instance *request,
                          stow_error *err)
{
    if (request->instance_class != NULL &&
        rds_params_add(params, "DBInstanceClass", request->instance_class, err) != 0)
        return -1;
    if (request->subnet_group != NULL &&
        rds_params_add(params, "DBSubnetGroupName", request->subnet_group, err) != 0)
        return -1;
    if (request->parameter_group != NULL &&
        rds_params_add(params, "DBParameterGroupName", request->parameter_group, err) != 0)
        return -1;
    if (rds_params_add(params, "PubliclyAccessible", "false", err) != 0)
        return -1;
    for (size_t i = 0; i < request->security_group_count; i++) {
        if (params_add_numbered(params, "VpcSecurityGroupIds.VpcSecurityGroupId", i + 1, "",
                                request->security_groups[i], err) != 0)
            return -1;
    }
    return rds_params_add_tags(params, request->tags, request->tag_count, err);
}

static int run_instance_action(rds_client *client, const char *action,
                               const struct rds_params *params, const char *subject,
                               struct rds_instance *out, stow_error *err)
{
    struct rds_call call;
    int rc = call_perform(client, &call, action, params, err, "%s", subject);

    if (rc == 0)
        rc = rds_parse_instance_result(call.job.response.body.data, call.job.response.body.len,
                                       action, out, err);
    call_free(&call);
    return rc;
}

int rds_restore_from_snapshot(rds_client *client, const struct rds_restore_instance *request,
                              struct rds_instance *out, stow_error *err)
{
    static const char action[] = "RestoreDBInstanceFromDBSnapshot";
    struct rds_params params;
    char subject[2 * RDS_ID_MAX + 64];
    int rc;

    snprintf(subject, sizeof subject, "instance %s from snapshot %s", request->instance_id,
             request->snapshot_id);
    rc = params_begin(&params, action, err);
    if (rc == 0)
        rc = rds_params_add(&params, "DBInstanceIdentifier", request->instance_id, err);
    if (rc == 0)
        rc = rds_params_add(&params, "DBSnapshotIdentifier", request->snapshot_id, err);
    if (rc == 0)
        rc = restore_params(&params, request, err);
    if (rc == 0)
        rc = run_instance_action(client, action, &params, subject, out, err);
    rds_params_free(&params);
    return rc;
}

int rds_restore_to_point_in_time(rds_client *client,
                                 const struct rds_restore_instance *request,
                                 struct rds_instance *out, stow_error *err)
{
    static const char action[] = "RestoreDBInstanceToPointInTime";
    struct rds_params params;
    char subject[2 * RDS_ID_MAX + 96];
    char when[32];
    struct tm utc;
    int rc;

    if (request->restore_time != 0) {
        gmtime_r(&request->restore_time, &utc);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    } else {
        snprintf(when, sizeof when, "latest");
    }
    snprintf(subject, sizeof subject, "instance %s from instance %s at %s",
             request->instance_id, request->source_instance_id, when);
    rc = params_begin(&params, action, err);
    if (rc == 0)
        rc = rds_params_add(&params, "SourceDBInstanceIdentifier", request->source_instance_id,
                            err);
    if (rc == 0)
        rc = rds_params_add(&params, "TargetDBInstanceIdentifier", request->instance_id, err);
    if (rc == 0 && request->restore_time != 0)
        rc = rds_params_add(&params, "RestoreTime", when, err);
    if (rc == 0 && request->restore_time == 0)
        rc = rds_params_add(&params, "UseLatestRestorableTime", "true", err);
    if (rc == 0)
        rc = restore_params(&params, request, err);
    if (rc == 0)
        rc = run_instance_action(client, action, &params, subject, out, err);
    rds_params_free(&params);
    return rc;
}

/* Reads the instance's tags: the describe call's TagList, or a
 * ListTagsForResource call when the response had none. */
static int instance_tags(rds_client *client, struct rds_instance *instance, stow_error *err)
{
    if (instance->tags.present)
        return 0;
    rds_tag_list_free(&instance->tags);
    return rds_list_tags(client, instance->arn, &instance->tags, err);
}

static int reject_non_scratch(const struct rds_instance *instance, stow_error *err)
{
    const char *scratch = rds_tag_value(&instance->tags, RDS_TAG_SCRATCH);

    if (scratch != NULL && strcmp(scratch, "true") == 0)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE,
              "refusing to delete RDS instance %s: it is not a Stowage scratch instance "
              "(it has no tag %s=true)", instance->id, RDS_TAG_SCRATCH);
    stow_error_hint(err, "Stowage deletes only the scratch instances it created for "
                         "verification; delete other instances with the AWS console or CLI");
    return -1;
}

int rds_delete_scratch_instance(rds_client *client, const char *instance_id, stow_error *err)
{
    struct rds_instance instance;
    struct rds_params params;
    struct rds_call call;
    int rc = rds_describe_instance(client, instance_id, &instance, err);

    if (rc == 0)
        rc = instance_tags(client, &instance, err);
    if (rc == 0)
        rc = reject_non_scratch(&instance, err);
    rds_instance_free(&instance);
    if (rc != 0)
        return rc;

    rc = params_begin(&params, "DeleteDBInstance", err);
    if (rc == 0)
        rc = rds_params_add(&params, "DBInstanceIdentifier", instance_id, err);
    if (rc == 0)
        rc = rds_params_add(&params, "SkipFinalSnapshot", "true", err);
    if (rc == 0) {
        rc = call_perform(client, &call, "DeleteDBInstance", &params, err, "scratch instance %s",
                          instance_id);
        rc = not_found_result(client, rc, err);
        call_free(&call);
    }
    rds_params_free(&params);
    return rc;
}

/* --- error advice ------------------------------------------------------------- */

struct rds_advice {
    const char *code;
    int exit_code;
    const char *hint;
};

static const struct rds_advice rds_advice[] = {
    {"DBSnapshotNotFound", STOW_EXIT_USAGE,
     "check the snapshot id and --region; stowage snapshot list shows the snapshots"},
    {"DBSnapshotNotFoundFault", STOW_EXIT_USAGE,
     "check the snapshot id and --region; stowage snapshot list shows the snapshots"},
    {"DBClusterSnapshotNotFoundFault", STOW_EXIT_USAGE,
     "check the cluster snapshot id and --region; stowage snapshot list --cluster ID shows "
     "them"},
    {"DBInstanceNotFound", STOW_EXIT_USAGE, "check the instance id and --region"},
    {"DBInstanceNotFoundFault", STOW_EXIT_USAGE, "check the instance id and --region"},
    {"DBClusterNotFoundFault", STOW_EXIT_USAGE, "check the cluster id and --region"},
    {"SnapshotQuotaExceeded", STOW_EXIT_FAILURE,
     "the account has reached its limit of manual snapshots: delete old ones (stowage "
     "snapshot expire) or request a higher quota"},
    {"InstanceQuotaExceeded", STOW_EXIT_FAILURE,
     "the account has reached its limit of DB instances: delete unused ones (stowage "
     "snapshot gc-scratch removes expired scratch instances) or request a higher quota"},
    {"StorageQuotaExceeded", STOW_EXIT_FAILURE,
     "the account has reached its storage limit: free storage or request a higher quota"},
    {"InvalidDBInstanceState", STOW_EXIT_FAILURE,
     "the instance is busy (creating, modifying, backing up or stopped): retry once it is "
     "available"},
    {"InvalidDBClusterStateFault", STOW_EXIT_FAILURE,
     "the cluster is busy: retry once it is available"},
    {"InvalidDBSnapshotState", STOW_EXIT_FAILURE,
     "the snapshot is not available yet (creating or copying): retry later"},
    {"DBSnapshotAlreadyExists", STOW_EXIT_FAILURE,
     "a snapshot with this id exists already: choose another id or delete the old one"},
    {"DBInstanceAlreadyExists", STOW_EXIT_FAILURE,
     "an instance with this id exists already: choose another id"},
    {"KMSKeyNotAccessibleFault", STOW_EXIT_USAGE,
     "check that --kms-key names a key in the destination region that these credentials "
     "may use"},
    {"Throttling", STOW_EXIT_FAILURE,
     "RDS kept throttling the requests: run the command again later"},
    {"PointInTimeRestoreNotEnabled", STOW_EXIT_USAGE,
     "the source instance keeps no automated backups (backup retention 0)"},
    {"InvalidRestoreFault", STOW_EXIT_USAGE,
     "choose a time between the instance's earliest and latest restorable times"},
};

void rds_error_advise(stow_error *err, const char *code)
{
    if (err == NULL || code == NULL || code[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof rds_advice / sizeof rds_advice[0]; i++) {
        if (strcmp(code, rds_advice[i].code) == 0) {
            err->exit_code = rds_advice[i].exit_code;
            stow_error_hint(err, "%s", rds_advice[i].hint);
            return;
        }
    }
}

/* --- response parsers ----------------------------------------------------------- */

static int parse_failed(stow_error *err, const char *what)
{
    return stow_fail(err, STOW_EXIT_FAILURE, "invalid RDS response: %s", what);
}

/* Copies child name into out. A missing child leaves "" unless required;
 * a value that does not fit fails. */
static int copy_field(const xmlNode *node, const char *name, char *out, size_t size,
                      int required, stow_error *err)
{
    char *text = aws_xml_child_strdup(node, name);
    int rc = 0;

    out[0] = '\0';
    if (text == NULL) {
        if (required)
            rc = stow_fail(err, STOW_EXIT_FAILURE, "invalid RDS response: element %s is missing",
                           name);
    } else if (strlen(text) >= size) {
        rc = stow_fail(err, STOW_EXIT_FAILURE,
                       "invalid RDS response: element %s is longer than %zu bytes", name,
                       size - 1);
    } else {
        memcpy(out, text, strlen(text) + 1);
    }
    free(text);
    return rc;
}

static int child_is_true(const xmlNode *node, const char *name)
{
    char text[8];

    return aws_xml_child_text(node, name, text, sizeof text) == 0 && strcmp(text, "true") == 0;
}

static long child_long(const xmlNode *node, const char *name, long missing)
{
    char text[32];
    char *end = NULL;
    long value;

    if (aws_xml_child_text(node, name, text, sizeof text) != 0 || text[0] == '\0')
        return missing;
    value = strtol(text, &end, 10);
    return *end == '\0' ? value : missing;
}

static time_t child_time(const xmlNode *node, const char *name)
{
    char text[64];
    time_t value = 0;

    if (aws_xml_child_text(node, name, text, sizeof text) != 0 ||
        aws_xml_parse_time(text, &value) != 0)
        return 0;
    return value;
}

static int parse_tag_list(const xmlNode *parent, struct rds_tag_list *out, stow_error *err)
{
    const xmlNode *list = aws_xml_child(parent, "TagList");
    size_t count = 0;

    memset(out, 0, sizeof *out);
    if (list == NULL)
        return 0;
    out->present = 1;
    for (const xmlNode *tag = list->children; tag != NULL; tag = tag->next)
        count += aws_xml_is(tag, "Tag");
    if (count == 0)
        return 0;
    out->tags = calloc(count, sizeof *out->tags);
    if (out->tags == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing tags");
    for (const xmlNode *tag = list->children; tag != NULL; tag = tag->next) {
        struct rds_tag *item;

        if (!aws_xml_is(tag, "Tag"))
            continue;
        item = &out->tags[out->count];
        item->key = aws_xml_child_strdup(tag, "Key");
        item->value = aws_xml_child_strdup(tag, "Value");
        if (item->key == NULL) {
            free(item->value);
            item->value = NULL;
            return parse_failed(err, "a tag without a Key");
        }
        if (item->value == NULL)
            item->value = strdup("");
        out->count++;
        if (item->value == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing tags");
    }
    return 0;
}

static int parse_snapshot(const xmlNode *node, int cluster, struct rds_snapshot *out,
                          stow_error *err)
{
    memset(out, 0, sizeof *out);
    out->cluster = cluster;
    if (copy_field(node, cluster ? "DBClusterSnapshotIdentifier" : "DBSnapshotIdentifier",
                   out->id, sizeof out->id, 1, err) != 0 ||
        copy_field(node, cluster ? "DBClusterIdentifier" : "DBInstanceIdentifier",
                   out->source_id, sizeof out->source_id, 0, err) != 0 ||
        copy_field(node, cluster ? "DBClusterSnapshotArn" : "DBSnapshotArn", out->arn,
                   sizeof out->arn, 0, err) != 0 ||
        copy_field(node, "Status", out->status, sizeof out->status, 0, err) != 0 ||
        copy_field(node, "SnapshotType", out->snapshot_type, sizeof out->snapshot_type, 0,
                   err) != 0 ||
        copy_field(node, "Engine", out->engine, sizeof out->engine, 0, err) != 0 ||
        copy_field(node, "EngineVersion", out->engine_version, sizeof out->engine_version, 0,
                   err) != 0 ||
        copy_field(node, "KmsKeyId", out->kms_key_id, sizeof out->kms_key_id, 0, err) != 0 ||
        copy_field(node, "SourceRegion", out->source_region, sizeof out->source_region, 0,
                   err) != 0)
        return -1;
    out->encrypted = child_is_true(node, cluster ? "StorageEncrypted" : "Encrypted");
    if (!out->encrypted)
        out->kms_key_id[0] = '\0'; /* moto 5.2 reports a placeholder key for unencrypted clusters */
    out->allocated_storage_gib = child_long(node, "AllocatedStorage", 0);
    out->percent_progress = (int)child_long(node, "PercentProgress", -1);
    out->created = child_time(node, "SnapshotCreateTime");
    return parse_tag_list(node, &out->tags, err);
}

static int parse_instance(const xmlNode *node, struct rds_instance *out, stow_error *err)
{
    const xmlNode *endpoint = aws_xml_child(node, "Endpoint");

    memset(out, 0, sizeof *out);
    if (copy_field(node, "DBInstanceIdentifier", out->id, sizeof out->id, 1, err) != 0 ||
        copy_field(node, "DBInstanceArn", out->arn, sizeof out->arn, 0, err) != 0 ||
        copy_field(node, "DBInstanceStatus", out->status, sizeof out->status, 0, err) != 0 ||
        copy_field(node, "Engine", out->engine, sizeof out->engine, 0, err) != 0 ||
        copy_field(node, "EngineVersion", out->engine_version, sizeof out->engine_version, 0,
                   err) != 0 ||
        copy_field(node, "DBInstanceClass", out->instance_class, sizeof out->instance_class, 0,
                   err) != 0 ||
        copy_field(node, "MasterUsername", out->master_username, sizeof out->master_username, 0,
                   err) != 0)
        return -1;
    if (endpoint != NULL) {
        if (copy_field(endpoint, "Address", out->endpoint_address,
                       sizeof out->endpoint_address, 0, err) != 0)
            return -1;
        out->endpoint_port = (int)child_long(endpoint, "Port", 0);
    }
    out->publicly_accessible = child_is_true(node, "PubliclyAccessible");
    out->encrypted = child_is_true(node, "StorageEncrypted");
    out->allocated_storage_gib = child_long(node, "AllocatedStorage", 0);
    out->created = child_time(node, "InstanceCreateTime");
    out->latest_restorable = child_time(node, "LatestRestorableTime");
    return parse_tag_list(node, &out->tags, err);
}

/* Returns the <ACTION>Result element of a <ACTION>Response document. */
static xmlNode *result_element(xmlDoc *doc, const char *action, stow_error *err)
{
    xmlNode *root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
    char name[128];
    xmlNode *result;

    snprintf(name, sizeof name, "%sResponse", action);
    if (!aws_xml_is(root, name)) {
        stow_fail(err, STOW_EXIT_FAILURE, "invalid RDS response: not a %s document", name);
        return NULL;
    }
    snprintf(name, sizeof name, "%sResult", action);
    result = aws_xml_child(root, name);
    if (result == NULL)
        stow_fail(err, STOW_EXIT_FAILURE, "invalid RDS response: %s has no %s", action, name);
    return result;
}

static size_t count_children(const xmlNode *parent, const char *name)
{
    size_t count = 0;

    for (const xmlNode *child = parent != NULL ? parent->children : NULL; child != NULL;
         child = child->next)
        count += aws_xml_is(child, name);
    return count;
}

/* Reads the Marker of a describe result: NULL when absent or empty. */
static char *next_marker(const xmlNode *result)
{
    char *marker = aws_xml_child_strdup(result, "Marker");

    if (marker != NULL && marker[0] == '\0') {
        free(marker);
        marker = NULL;
    }
    return marker;
}

int rds_parse_snapshots(const void *body, size_t len, int cluster,
                        struct rds_snapshot_list *out, char **marker, stow_error *err)
{
    const char *action = cluster ? "DescribeDBClusterSnapshots" : "DescribeDBSnapshots";
    const char *item_name = cluster ? "DBClusterSnapshot" : "DBSnapshot";
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *result = result_element(doc, action, err);
    const xmlNode *items;
    int rc = -1;

    memset(out, 0, sizeof *out);
    *marker = NULL;
    if (result == NULL)
        goto done;
    items = aws_xml_child(result, cluster ? "DBClusterSnapshots" : "DBSnapshots");
    out->items = calloc(count_children(items, item_name) + 1, sizeof *out->items);
    if (out->items == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing snapshots");
        goto done;
    }
    for (const xmlNode *node = items ? items->children : NULL; node != NULL; node = node->next) {
        if (!aws_xml_is(node, item_name))
            continue;
        out->count++;
        if (parse_snapshot(node, cluster, &out->items[out->count - 1], err) != 0)
            goto done;
    }
    *marker = next_marker(result);
    rc = 0;

done:
    if (rc != 0)
        rds_snapshot_list_free(out);
    xmlFreeDoc(doc);
    return rc;
}

int rds_parse_instances(const void *body, size_t len, struct rds_instance_list *out,
                        char **marker, stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *result = result_element(doc, "DescribeDBInstances", err);
    const xmlNode *items;
    int rc = -1;

    memset(out, 0, sizeof *out);
    *marker = NULL;
    if (result == NULL)
        goto done;
    items = aws_xml_child(result, "DBInstances");
    out->items = calloc(count_children(items, "DBInstance") + 1, sizeof *out->items);
    if (out->items == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing instances");
        goto done;
    }
    for (const xmlNode *node = items ? items->children : NULL; node != NULL; node = node->next) {
        if (!aws_xml_is(node, "DBInstance"))
            continue;
        out->count++;
        if (parse_instance(node, &out->items[out->count - 1], err) != 0)
            goto done;
    }
    *marker = next_marker(result);
    rc = 0;

done:
    if (rc != 0)
        rds_instance_list_free(out);
    xmlFreeDoc(doc);
    return rc;
}

int rds_parse_snapshot_result(const void *body, size_t len, const char *action, int cluster,
                              struct rds_snapshot *out, stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *result = result_element(doc, action, err);
    const xmlNode *node = aws_xml_child(result, cluster ? "DBClusterSnapshot" : "DBSnapshot");
    int rc;

    memset(out, 0, sizeof *out);
    if (result == NULL)
        rc = -1;
    else if (node == NULL)
        rc = parse_failed(err, cluster ? "no DBClusterSnapshot in the result"
                                       : "no DBSnapshot in the result");
    else
        rc = parse_snapshot(node, cluster, out, err);
    if (rc != 0)
        rds_snapshot_free(out);
    xmlFreeDoc(doc);
    return rc;
}

int rds_parse_instance_result(const void *body, size_t len, const char *action,
                              struct rds_instance *out, stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *result = result_element(doc, action, err);
    const xmlNode *node = aws_xml_child(result, "DBInstance");
    int rc;

    memset(out, 0, sizeof *out);
    if (result == NULL)
        rc = -1;
    else if (node == NULL)
        rc = parse_failed(err, "no DBInstance in the result");
    else
        rc = parse_instance(node, out, err);
    if (rc != 0)
        rds_instance_free(out);
    xmlFreeDoc(doc);
    return rc;
}

int rds_parse_tags(const void *body, size_t len, struct rds_tag_list *out, stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    xmlNode *result = result_element(doc, "ListTagsForResource", err);
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (result != NULL)
        rc = parse_tag_list(result, out, err);
    if (rc == 0)
        out->present = 1;
    else
        rds_tag_list_free(out);
    xmlFreeDoc(doc);
    return rc;
}

/* --- release ------------------------------------------------------------------ */

void rds_tag_list_free(struct rds_tag_list *tags)
{
    if (tags == NULL)
        return;
    for (size_t i = 0; i < tags->count; i++) {
        free(tags->tags[i].key);
        free(tags->tags[i].value);
    }
    free(tags->tags);
    memset(tags, 0, sizeof *tags);
}

void rds_snapshot_free(struct rds_snapshot *snapshot)
{
    if (snapshot != NULL)
        rds_tag_list_free(&snapshot->tags);
}

void rds_snapshot_list_free(struct rds_snapshot_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        rds_snapshot_free(&list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

void rds_instance_free(struct rds_instance *instance)
{
    if (instance != NULL)
        rds_tag_list_free(&instance->tags);
}

void rds_instance_list_free(struct rds_instance_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        rds_instance_free(&list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}
