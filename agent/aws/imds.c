/* Container credentials and EC2 instance metadata (IMDSv2) credentials. */
#include "aws/imds.h"
#include "aws/aws_env.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/aws_xml.h"
#include "aws/http.h"
#include "common/buf.h"
#include "common/log.h"

#define METADATA_URL_MAX 4096
#define METADATA_RESPONSE_MAX (64u * 1024)
#define METADATA_TOKEN_MAX (16u * 1024)
#define METADATA_ROLE_MAX 256
#define CONTAINER_MAX_ATTEMPTS 3

/* One metadata request. The response and the header lines can carry
 * secrets and are wiped on release. */
struct metadata_call {
    struct http_job job;
    const char *method;
    char url[METADATA_URL_MAX];
    stow_buf header;   /* one "Name: value" line, or empty */
    stow_buf response;
};

static int append_header(struct curl_slist **list, const char *line, stow_error *err)
{
    struct curl_slist *grown = curl_slist_append(*list, line);

    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory building a metadata request");
    *list = grown;
    return 0;
}

static int build_metadata_call(struct http_job *job, struct http_request *request,
                               stow_error *err)
{
    struct metadata_call *call = job->owner;

    if (call->header.len > 0 &&
        append_header(&request->headers, (const char *)call->header.data, err) != 0)
        return -1;
    request->method = call->method;
    request->url = call->url;
    request->body = "";
    request->body_len = 0;
    return 0;
}

static int metadata_call_init(struct metadata_call *call, const char *service,
                              const char *operation, const char *method, stow_error *err)
{
    memset(call, 0, sizeof *call);
    http_job_init(&call->job, NULL, METADATA_RESPONSE_MAX);
    call->job.service = service;
    call->job.operation = operation;
    call->job.build = build_metadata_call;
    call->job.owner = call;
    call->job.sink = &call->response;
    call->method = method;
    stow_buf_init(&call->header, METADATA_TOKEN_MAX + 256);
    stow_buf_init(&call->response, METADATA_RESPONSE_MAX);
    /* Sized once so that no reallocation leaves a copy of a secret behind. */
    if (stow_buf_reserve(&call->response, METADATA_RESPONSE_MAX, err) != 0 ||
        stow_buf_reserve(&call->header, METADATA_TOKEN_MAX + 256, err) != 0)
        return -1;
    return 0;
}

static void metadata_call_free(struct metadata_call *call)
{
    http_job_free(&call->job);
    stow_buf_free_secret(&call->header);
    stow_buf_free_secret(&call->response);
}

/* Writes endpoint followed by path into the call's URL. */
static int set_url(struct metadata_call *call, const char *endpoint, const char *path,
                   stow_error *err)
{
    int written = snprintf(call->url, sizeof call->url, "%s%s", endpoint, path);

    if (written < 0 || (size_t)written >= sizeof call->url)
        return stow_fail(err, STOW_EXIT_USAGE, "the metadata URL for %s is too long", path);
    return 0;
}

/* Names the source of credentials. A description too long is cut. */
static void set_source(struct aws_credentials *out, const char *what)
{
    if (snprintf(out->source, sizeof out->source, "%s", what) < 0)
        out->source[0] = '\0';
}

/* Runs call on an engine of its own. */
static int metadata_perform(struct metadata_call *call, const struct http_settings *settings,
                            stow_error *err)
{
    struct http_engine *engine = NULL;
    int rc;

    call->job.settings = settings;
    if (http_engine_new(&engine, err) != 0)
        return -1;
    rc = http_engine_perform(engine, &call->job, err);
    http_engine_free(engine);
    return rc;
}

/* --- the credentials document -------------------------------------------- */

static int copy_json_string(json_t *document, const char *name, char *out, size_t size)
{
    const char *value = json_string_value(json_object_get(document, name));

    if (value == NULL || strlen(value) >= size)
        return -1;
    memcpy(out, value, strlen(value) + 1);
    return 0;
}

int imds_parse_credentials(const void *body, size_t len, const char *what,
                           struct aws_credentials *out, stow_error *err)
{
    json_t *document = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *code = json_string_value(json_object_get(document, "Code"));
    char expiration[64] = "";
    int rc = -1;

    if (!json_is_object(document)) {
        stow_fail(err, STOW_EXIT_STORAGE, "%s returned a document that is not a JSON object",
                  what);
    } else if (code != NULL && strcmp(code, "Success") != 0) {
        stow_fail(err, STOW_EXIT_STORAGE, "%s returned Code \"%.64s\" instead of Success", what,
                  code);
    } else if (copy_json_string(document, "AccessKeyId", out->access_key_id,
                                sizeof out->access_key_id) != 0 ||
               copy_json_string(document, "SecretAccessKey", out->secret_access_key,
                                sizeof out->secret_access_key) != 0 ||
               out->access_key_id[0] == '\0' || out->secret_access_key[0] == '\0') {
        stow_fail(err, STOW_EXIT_STORAGE,
                  "%s returned no usable AccessKeyId and SecretAccessKey", what);
    } else if (json_object_get(document, "Token") != NULL &&
               copy_json_string(document, "Token", out->session_token,
                                sizeof out->session_token) != 0) {
        stow_fail(err, STOW_EXIT_STORAGE, "%s returned a Token that is not a string or longer "
                                          "than %d bytes", what, AWS_SESSION_TOKEN_MAX);
    } else if (json_object_get(document, "Expiration") != NULL &&
               (copy_json_string(document, "Expiration", expiration, sizeof expiration) != 0 ||
                aws_xml_parse_time(expiration, &out->expiration) != 0)) {
        stow_fail(err, STOW_EXIT_STORAGE, "%s returned an Expiration that is not an ISO 8601 "
                                          "time", what);
    } else {
        rc = 0;
    }
    json_decref(document);
    if (rc != 0) {
        out->access_key_id[0] = '\0';
        sodium_memzero(out->secret_access_key, sizeof out->secret_access_key);
        sodium_memzero(out->session_token, sizeof out->session_token);
    }
    return rc;
}

/* --- container credentials ----------------------------------------------- */

/* Returns 1 when host (as libcurl returns it, IPv6 in brackets) may receive
 * the authorization token over plain http. */
static int container_host_allowed(const char *host)
{
    static const char *const link_local[] = {"169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"};
    struct in_addr address;

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &address) == 1 && (ntohl(address.s_addr) >> 24) == 127)
        return 1;
    for (size_t i = 0; i < sizeof link_local / sizeof link_local[0]; i++) {
        if (strcasecmp(host, link_local[i]) == 0)
            return 1;
    }
    return 0;
}

/* Accepts https to any host, and http only to the hosts above. */
static int check_full_uri(const char *uri, stow_error *err)
{
    CURLU *url = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    int rc = -1;

    if (url == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing a URL");
    if (curl_url_set(url, CURLUPART_URL, uri, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        stow_fail(err, STOW_EXIT_USAGE, "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL");
    } else if (strcmp(scheme, "https") == 0 ||
               (strcmp(scheme, "http") == 0 && container_host_allowed(host))) {
        rc = 0;
    } else {
        stow_fail(err, STOW_EXIT_USAGE,
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI must use https, or http to a loopback "
                  "address or to 169.254.170.2, 169.254.170.23 or fd00:ec2::23 (host %s)",
                  host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(url);
    return rc;
}

int container_credentials_url(char *out, size_t size, stow_error *err)
{
    const char *relative = aws_env_value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = aws_env_value("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    int written;

    if (relative != NULL) {
        written = snprintf(out, size, "%s%s%s", CONTAINER_CREDENTIALS_HOST,
                           relative[0] == '/' ? "" : "/", relative);
    } else if (full != NULL) {
        if (check_full_uri(full, err) != 0)
            return -1;
        written = snprintf(out, size, "%s", full);
    } else {
        return 1;
    }
    if (written < 0 || (size_t)written >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "the container credentials URI is too long");
    return 0;
}

/* Writes "Authorization: TOKEN" into header when a token is configured. */
static int container_authorization(stow_buf *header, stow_error *err)
{
    const char *path = aws_env_value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *token = aws_env_value("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char chunk[4096];
    FILE *file;
    size_t got;
    int rc = 0;

    if (path == NULL)
        return token != NULL ? stow_buf_printf(header, err, "Authorization: %s", token) : 0;

    file = fopen(path, "r");
    if (file == NULL)
        return stow_fail_errno(err, STOW_EXIT_STORAGE, errno,
                               "reading the container authorization token file", path);
    rc = stow_buf_append_str(header, "Authorization: ", err);
    while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, file)) > 0)
        rc = stow_buf_append(header, chunk, got, err);
    fclose(file);
    sodium_memzero(chunk, sizeof chunk);
    while (header->len > 0 && (header->data[header->len - 1] == '\n' ||
                               header->data[header->len - 1] == '\r'))
        header->data[--header->len] = '\0';
    if (rc != 0 || memchr(header->data, '\n', header->len) != NULL)
        return stow_fail(err, STOW_EXIT_STORAGE, "the container authorization token file %s is "
                                                 "too large or has several lines", path);
    return 0;
}

int container_credentials(struct aws_credentials *out, stow_error *err)
{
    struct metadata_call call;
    struct http_settings settings;
    char what[METADATA_URL_MAX + 64];
    int rc;

    aws_credentials_clear(out);
    rc = metadata_call_init(&call, "container credentials", "GetCredentials", "GET", err);
    if (rc == 0)
        rc = container_credentials_url(call.url, sizeof call.url, err);
    if (rc != 0) {
        metadata_call_free(&call);
        return rc;
    }

    http_settings_default(&settings);
    settings.connect_timeout_ms = 2000;
    settings.low_speed_seconds = 5;
    settings.max_attempts = CONTAINER_MAX_ATTEMPTS;
    snprintf(what, sizeof what, "the container credentials endpoint %s", call.url);
    http_job_subject(&call.job, "%s", call.url);

    rc = container_authorization(&call.header, err);
    if (rc == 0)
        rc = metadata_perform(&call, &settings, err) == 0 ? 0 : -1;
    if (rc == 0)
        rc = imds_parse_credentials(call.response.data, call.response.len, what, out, err);
    if (rc == 0)
        set_source(out, what);
    else if (err != NULL)
        err->exit_code = STOW_EXIT_STORAGE;
    metadata_call_free(&call);
    return rc;
}

/* --- instance metadata ---------------------------------------------------- */

int imds_disabled(void)
{
    const char *value = getenv("AWS_EC2_METADATA_DISABLED");

    return value != NULL && strcasecmp(value, "true") == 0;
}

int imds_endpoint(char *out, size_t size, stow_error *err)
{
    const char *endpoint = aws_env_value("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = aws_env_value("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    size_t len;

    if (endpoint == NULL)
        endpoint = mode != NULL && strcasecmp(mode, "IPv6") == 0 ? IMDS_DEFAULT_ENDPOINT_IPV6
                                                                  : IMDS_DEFAULT_ENDPOINT;
    len = strlen(endpoint);
    while (len > 0 && endpoint[len - 1] == '/')
        len--;
    if (len >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "AWS_EC2_METADATA_SERVICE_ENDPOINT is too long");
    memcpy(out, endpoint, len);
    out[len] = '\0';
    return 0;
}

/* Reads a whole number of at least 1 from the environment. */
static long positive_env(const char *name, long fallback)
{
    const char *text = aws_env_value(name);
    char *end = NULL;
    long value;

    if (text == NULL)
        return fallback;
    value = strtol(text, &end, 10);
    return *end == '\0' && value >= 1 && value <= 3600 ? value : fallback;
}

static void imds_settings(struct http_settings *settings)
{
    long timeout = positive_env("AWS_METADATA_SERVICE_TIMEOUT", 1);

    http_settings_default(settings);
    settings->connect_timeout_ms = timeout * 1000;
    settings->low_speed_bytes = 1;
    settings->low_speed_seconds = timeout;
    settings->max_attempts = (int)positive_env("AWS_METADATA_SERVICE_NUM_ATTEMPTS", 1);
    settings->backoff_base_ms = 100;
    settings->backoff_max_ms = 1000;
}

/* Returns 1 when a failed call got no HTTP response, so that no metadata
 * service is listening. */
static int is_unreachable(const struct metadata_call *call)
{
    return call->job.response.status == 0;
}

/* PUT /latest/api/token. Returns 1 when the service is unreachable. */
static int imds_session_token(const char *endpoint, const struct http_settings *settings,
                              stow_buf *token, stow_error *err)
{
    struct metadata_call call;
    stow_error call_err = {0};
    int rc = metadata_call_init(&call, "IMDS", "GetToken", "PUT", err);

    if (rc == 0)
        rc = set_url(&call, endpoint, "/latest/api/token", err);
    if (rc == 0) {
        rc = stow_buf_printf(&call.header, err, "X-aws-ec2-metadata-token-ttl-seconds: %d",
                             IMDS_TOKEN_TTL_SECONDS);
    }
    if (rc == 0 && metadata_perform(&call, settings, &call_err) != 0) {
        if (is_unreachable(&call)) {
            stow_log_detail("no instance metadata service at %s: %s", endpoint,
                            call_err.message);
            rc = 1;
        } else {
            if (err != NULL)
                memcpy(err, &call_err, sizeof call_err);
            rc = -1;
        }
    }
    if (rc == 0)
        rc = stow_buf_printf(token, err, "X-aws-ec2-metadata-token: %.*s", (int)call.response.len,
                             (const char *)call.response.data);
    metadata_call_free(&call);
    return rc;
}

/* GET one metadata path with the session token into out. Returns 1 when the
 * path does not exist. */
static int imds_get(const char *endpoint, const char *path, const stow_buf *token,
                    const struct http_settings *settings, const char *operation,
                    stow_buf *out, stow_error *err)
{
    struct metadata_call call;
    int rc = metadata_call_init(&call, "IMDS", operation, "GET", err);

    if (rc == 0)
        rc = set_url(&call, endpoint, path, err);
    if (rc == 0) {
        call.job.accept_not_found = 1;
        rc = stow_buf_append(&call.header, token->data, token->len, err);
    }
    if (rc == 0)
        rc = metadata_perform(&call, settings, err);
    if (rc == 0)
        rc = stow_buf_append(out, call.response.data, call.response.len, err);
    metadata_call_free(&call);
    return rc;
}

/* Reads the first role name of the instance profile into role. Returns 1
 * when the instance has none. */
static int imds_role_name(const char *endpoint, const stow_buf *token,
                          const struct http_settings *settings, char *role, size_t size,
                          stow_error *err)
{
    stow_buf listing;
    size_t len;
    int rc;

    stow_buf_init(&listing, METADATA_RESPONSE_MAX);
    rc = imds_get(endpoint, "/latest/meta-data/iam/security-credentials/", token, settings,
                  "ListRoles", &listing, err);
    if (rc == 0) {
        len = strcspn(listing.len > 0 ? (const char *)listing.data : "", "\r\n");
        if (len == 0)
            rc = 1;
        else if (len >= size || strchr((const char *)listing.data, '/') != NULL)
            rc = stow_fail(err, STOW_EXIT_STORAGE, "instance metadata returned an invalid role "
                                                   "name");
        else
            snprintf(role, size, "%.*s", (int)len, (const char *)listing.data);
    }
    stow_buf_free(&listing);
    return rc;
}

static int imds_role_credentials(const char *endpoint, const stow_buf *token,
                                 const struct http_settings *settings, const char *role,
                                 struct aws_credentials *out, stow_error *err)
{
    char path[METADATA_ROLE_MAX + 64];
    char what[METADATA_ROLE_MAX + 64];
    stow_buf document;
    int rc;

    snprintf(path, sizeof path, "/latest/meta-data/iam/security-credentials/%s", role);
    snprintf(what, sizeof what, "instance metadata (IMDSv2), role %s", role);
    stow_buf_init(&document, METADATA_RESPONSE_MAX);
    rc = stow_buf_reserve(&document, METADATA_RESPONSE_MAX, err);
    if (rc == 0)
        rc = imds_get(endpoint, path, token, settings, "GetCredentials", &document, err);
    if (rc == 1)
        rc = stow_fail(err, STOW_EXIT_STORAGE, "%s: the role's credentials are not found", what);
    if (rc == 0)
        rc = imds_parse_credentials(document.data, document.len, what, out, err);
    if (rc == 0)
        set_source(out, what);
    stow_buf_free_secret(&document);
    return rc;
}

int imds_credentials(struct aws_credentials *out, stow_error *err)
{
    char endpoint[METADATA_URL_MAX];
    char role[METADATA_ROLE_MAX];
    struct http_settings settings;
    stow_buf token;
    int rc;

    aws_credentials_clear(out);
    if (imds_disabled())
        return 1;
    if (imds_endpoint(endpoint, sizeof endpoint, err) != 0)
        return -1;

    imds_settings(&settings);
    stow_buf_init(&token, METADATA_TOKEN_MAX + 64);
    rc = stow_buf_reserve(&token, METADATA_TOKEN_MAX + 64, err);
    if (rc == 0)
        rc = imds_session_token(endpoint, &settings, &token, err);
    if (rc == 0)
        rc = imds_role_name(endpoint, &token, &settings, role, sizeof role, err);
    if (rc == 1)
        stow_log_detail("instance metadata at %s has no IAM role credentials", endpoint);
    if (rc == 0)
        rc = imds_role_credentials(endpoint, &token, &settings, role, out, err);
    if (rc < 0) {
        if (err != NULL)
            err->exit_code = STOW_EXIT_STORAGE;
        stow_error_prefix(err, "getting AWS credentials from instance metadata at %s", endpoint);
    }
    stow_buf_free_secret(&token);
    return rc;
}
