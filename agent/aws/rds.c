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

#include "aws/aws_request.h"
#include "aws/aws_xml.h"
#include "common/log.h"

#define RDS_URL_MAX 4096
#define RDS_FORM_MAX (1024u * 1024)
/* Instances per DescribeDBInstances page (RDS accepts 20 to 100). */
#define RDS_PAGE_SIZE "100"

struct rds_client {
    struct aws_service service; /* endpoint parts with a path that ends in '/' */
    char *url;        /* scheme://authority/path, encoded */
    char error_code[AWS_ERROR_CODE_MAX];
    int error_attempts;  /* attempts of the last failed call */
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

#define RDS_ENDPOINT_HINT                                                                    \
    "--rds-endpoint must be an http:// or https:// URL, for example "                        \
    "https://rds.eu-west-1.amazonaws.com"

/* Makes the path of parts end in '/', as RDS request paths do. */
static int end_path_with_slash(struct aws_endpoint *parts, stow_error *err)
{
    size_t len = strlen(parts->path);
    char *path;

    if (parts->path[len - 1] == '/')
        return 0;
    path = malloc(len + 2);
    if (path == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing the RDS endpoint");
    snprintf(path, len + 2, "%s/", parts->path);
    free(parts->path);
    parts->path = path;
    return 0;
}

static int parse_endpoint(const char *endpoint, struct aws_endpoint *out, stow_error *err)
{
    if (aws_endpoint_parse(endpoint, "RDS", RDS_ENDPOINT_HINT, out, err) != 0)
        return -1;
    if (end_path_with_slash(out, err) != 0) {
        aws_endpoint_free(out);
        return -1;
    }
    return 0;
}

/* Writes scheme://authority followed by the encoded path into out. */
static int write_endpoint_url(const struct aws_endpoint *parts, stow_buf *out, stow_error *err)
{
    if (stow_buf_printf(out, err, "%s://%s", parts->scheme, parts->authority) != 0)
        return -1;
    return sigv4_uri_encode(out, parts->path, 1, err);
}

static int set_url(rds_client *client, stow_error *err)
{
    stow_buf url;

    if (end_path_with_slash(&client->service.parts, err) != 0)
        return -1;
    stow_buf_init(&url, RDS_URL_MAX);
    if (write_endpoint_url(&client->service.parts, &url, err) != 0) {
        stow_buf_free(&url);
        return -1;
    }
    client->url = (char *)url.data;
    return 0;
}

int rds_client_new(const struct rds_options *options, rds_client **out, stow_error *err)
{
    const struct aws_service_options service = {
        .service = "RDS",
        .region = options->region,
        .endpoint = options->endpoint,
        .default_endpoint = rds_default_endpoint,
        .endpoint_hint = RDS_ENDPOINT_HINT,
        .max_attempts = options->max_attempts,
        .credentials = options->credentials,
    };
    rds_client *client = calloc(1, sizeof *client);

    *out = NULL;
    if (client == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the RDS client");
    if (aws_service_open(&client->service, &service, err) != 0 || set_url(client, err) != 0) {
        rds_client_free(client);
        return -1;
    }
    *out = client;
    return 0;
}

void rds_client_free(rds_client *client)
{
    if (client == NULL)
        return;
    aws_service_close(&client->service);
    free(client->url);
    free(client);
}

const char *rds_client_region(const rds_client *client)
{
    return client->service.region;
}

const char *rds_client_endpoint(const rds_client *client)
{
    return client->service.endpoint;
}

void rds_client_set_http_settings(rds_client *client, const struct http_settings *settings)
{
    client->service.settings = *settings;
}

int rds_client_error_attempts(const rds_client *client)
{
    return client->error_attempts;
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

static const struct sigv4_header form_headers[] = {{"content-type", RDS_FORM_CONTENT_TYPE}};

/* Describes the SigV4 request of a form POST. payload_hash receives the
 * hex SHA-256 of the body and must outlive out. */
static void describe_form(const struct rds_signing *signing,
                          char payload_hash[SIGV4_HEX_SHA256_SIZE], struct sigv4_request *out)
{
    uint8_t digest[32];

    sigv4_sha256(signing->body != NULL ? signing->body : "", signing->body_len, digest);
    sigv4_hex(digest, payload_hash);

    memset(out, 0, sizeof *out);
    out->service = "rds";
    out->region = signing->region;
    out->method = "POST";
    out->host = signing->host;
    out->path = signing->path != NULL ? signing->path : "/";
    out->headers = form_headers;
    out->header_count = sizeof form_headers / sizeof form_headers[0];
    out->payload_hash = payload_hash;
    out->time = signing->time;
}

int rds_sign_form(const struct rds_signing *signing, struct sigv4_signature *out,
                  stow_error *err)
{
    struct sigv4_request request;
    char payload_hash[SIGV4_HEX_SHA256_SIZE];

    describe_form(signing, payload_hash, &request);
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
    struct aws_endpoint endpoint;
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
    aws_endpoint_free(&endpoint);
    return rc;
}

/* --- calls -------------------------------------------------------------------- */

struct rds_call {
    struct http_job job;
    rds_client *client;
    stow_buf body;
};

/* Signs and describes one attempt of call (http_build_fn). */
static int build_request(struct http_job *job, struct http_request *request, stow_error *err)
{
    struct rds_call *call = job->owner;
    const struct aws_service *service = &call->client->service;
    const struct rds_signing form = {service->region, service->parts.authority,
                                     service->parts.path, call->body.data, call->body.len,
                                     time(NULL), NULL};
    struct sigv4_request signing;
    char payload_hash[SIGV4_HEX_SHA256_SIZE];

    describe_form(&form, payload_hash, &signing);
    if (aws_request_add_header(&request->headers, "Host", service->parts.authority, err) != 0 ||
        aws_request_add_header(&request->headers, "Content-Type", RDS_FORM_CONTENT_TYPE,
                               err) != 0 ||
        aws_request_sign_current(&signing, service->credentials, &request->headers, err) != 0)
        return -1;

    request->method = "POST";
    request->url = call->client->url;
    request->body = call->body.data;
    request->body_len = call->body.len;
    return 0;
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
    aws_service_job_init(&client->service, &call->job, action, build_request, call,
                         RDS_XML_BODY_MAX);
    stow_buf_init(&call->body, RDS_FORM_MAX);
    call->client = client;
    va_start(ap, subject_fmt);
    vsnprintf(call->job.subject, sizeof call->job.subject, subject_fmt, ap);
    va_end(ap);
    client->error_code[0] = '\0';

    if (rds_form_encode(params->items, params->count, &call->body, err) != 0)
        return -1;
    stow_log_debug("RDS %s (%s) in %s", action, call->job.subject, client->service.region);
    rc = http_engine_perform(client->service.engine, &call->job, err);
    if (rc != 0) {
        snprintf(client->error_code, sizeof client->error_code, "%s", call->job.error.code);
        client->error_attempts = call->job.attempts;
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

/* --- paged descriptions -------------------------------------------------------- */

/* Parses one Describe* page, moves its items into context's list and sets
 * *marker (malloc'd) to the next page's Marker, or NULL after the last. */
typedef int (*page_consumer)(const void *body, size_t len, void *context, char **marker,
                             stow_error *err);

/* One Describe* call paged by Marker. */
struct paged_describe {
    const char *action;
    struct rds_params *params; /* the filters; each page adds Marker and removes it again */
    const char *subject;
    page_consumer consume;
    void *context;
};

static void params_remove_last(struct rds_params *params)
{
    params->count--;
    free((char *)params->items[params->count].name);
    free((char *)params->items[params->count].value);
}

/* Runs one page and replaces *marker with the next page's marker. */
static int describe_page(rds_client *client, const struct paged_describe *describe,
                         char **marker, stow_error *err)
{
    struct rds_call call;
    char *next = NULL;
    int rc;

    if (*marker != NULL && rds_params_add(describe->params, "Marker", *marker, err) != 0)
        return -1;
    rc = call_perform(client, &call, describe->action, describe->params, err, "%s",
                      describe->subject);
    if (rc == 0)
        rc = describe->consume(call.job.response.body.data, call.job.response.body.len,
                               describe->context, &next, err);
    call_free(&call);

    if (*marker != NULL)
        params_remove_last(describe->params);
    free(*marker);
    *marker = next;
    return rc;
}

static int describe_all_pages(rds_client *client, const struct paged_describe *describe,
                              stow_error *err)
{
    char *marker = NULL;
    int rc;

    do {
        rc = describe_page(client, describe, &marker, err);
    } while (rc == 0 && marker != NULL);
    free(marker);
    return rc;
}

/* Moves the *more_count elements of size bytes at more to the end of the
 * array *items of *count elements, then sets *more_count to 0 so that
 * freeing the page's list frees only its array. plural names the elements
 * in the out-of-memory message. */
static int move_elements(void **items, size_t *count, void *more, size_t *more_count,
                         size_t size, const char *plural, stow_error *err)
{
    char *grown;

    if (*more_count == 0)
        return 0;
    grown = realloc(*items, (*count + *more_count) * size);
    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing %s", plural);
    memcpy(grown + *count * size, more, *more_count * size);
    *items = grown;
    *count += *more_count;
    *more_count = 0;
    return 0;
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

struct snapshot_listing {
    int cluster;
    struct rds_snapshot_list *out;
};

static int consume_snapshots(const void *body, size_t len, void *context, char **marker,
                             stow_error *err)
{
    struct snapshot_listing *listing = context;
    struct rds_snapshot_list page = {0};
    void *items = listing->out->items;
    int rc = rds_parse_snapshots(body, len, listing->cluster, &page, marker, err);

    if (rc == 0)
        rc = move_elements(&items, &listing->out->count, page.items, &page.count,
                           sizeof *page.items, "snapshots", err);
    listing->out->items = items;
    rds_snapshot_list_free(&page);
    return rc;
}

static int describe_snapshots(rds_client *client, int cluster, const char *snapshot_id,
                              const char *source_id, struct rds_snapshot_list *out,
                              stow_error *err)
{
    const char *action = cluster ? "DescribeDBClusterSnapshots" : "DescribeDBSnapshots";
    struct snapshot_listing listing = {cluster, out};
    struct rds_params params;
    char subject[HTTP_SUBJECT_MAX];
    const struct paged_describe describe = {action, &params, subject, consume_snapshots,
                                            &listing};
    int rc = params_begin(&params, action, err);

    memset(out, 0, sizeof *out);
    snprintf(subject, sizeof subject, "%s %s",
             snapshot_id ? "snapshot" : (cluster ? "cluster" : "instance"),
             snapshot_id ? snapshot_id : (source_id ? source_id : "(all)"));
    if (rc == 0 && snapshot_id != NULL)
        rc = rds_params_add(&params, cluster ? "DBClusterSnapshotIdentifier"
                                             : "DBSnapshotIdentifier", snapshot_id, err);
    if (rc == 0 && source_id != NULL)
        rc = rds_params_add(&params, cluster ? "DBClusterIdentifier" : "DBInstanceIdentifier",
                            source_id, err);
    if (rc == 0)
        rc = describe_all_pages(client, &describe, err);
    rds_params_free(&params);
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
    int cross_region = strcmp(request->source_region, client->service.region) != 0;
    int rc;

    memset(out, 0, sizeof *out); /* the caller frees it also after a failure */
    memset(&credentials, 0, sizeof credentials);
    stow_buf_init(&url, RDS_FORM_MAX);
    rc = copy_params(&params, request, err);
    if (rc == 0 && cross_region) {
        rc = aws_credentials_provider_get(client->service.credentials, &credentials, err);
        if (rc == 0)
            rc = rds_presign_copy_url(request, client->service.region, &credentials, &url, err);
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

static int consume_instances(const void *body, size_t len, void *context, char **marker,
                             stow_error *err)
{
    struct rds_instance_list *out = context;
    struct rds_instance_list page = {0};
    void *items = out->items;
    int rc = rds_parse_instances(body, len, &page, marker, err);

    if (rc == 0)
        rc = move_elements(&items, &out->count, page.items, &page.count, sizeof *page.items,
                           "instances", err);
    out->items = items;
    rds_instance_list_free(&page);
    return rc;
}

static int describe_instances(rds_client *client, const char *instance_id,
                              struct rds_instance_list *out, stow_error *err)
{
    struct rds_params params;
    char subject[HTTP_SUBJECT_MAX];
    const struct paged_describe describe = {"DescribeDBInstances", &params, subject,
                                            consume_instances, out};
    int rc = params_begin(&params, "DescribeDBInstances", err);

    memset(out, 0, sizeof *out);
    snprintf(subject, sizeof subject, "instance %s", instance_id ? instance_id : "(all)");
    if (rc == 0 && instance_id != NULL)
        rc = rds_params_add(&params, "DBInstanceIdentifier", instance_id, err);
    if (rc == 0 && instance_id == NULL)
        rc = rds_params_add(&params, "MaxRecords", RDS_PAGE_SIZE, err);
    if (rc == 0)
        rc = describe_all_pages(client, &describe, err);
    rds_params_free(&params);
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
    if (request->enable_iam_auth &&
        rds_params_add(params, "EnableIAMDatabaseAuthentication", "true", err) != 0)
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
    out->original_created = child_time(node, "OriginalSnapshotCreateTime");
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
