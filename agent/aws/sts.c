/* STS AssumeRole and AssumeRoleWithWebIdentity over the Query API, and the
 * web identity credential source. */
#include "aws/sts.h"
#include "aws/aws_env.h"

#include <curl/curl.h>
#include <errno.h>
#include <libxml/tree.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_request.h"
#include "aws/aws_xml.h"
#include "aws/http.h"
#include "aws/sigv4.h"
#include "common/buf.h"

#define STS_URL_MAX 4096
#define STS_HOST_MAX 1024
#define STS_REGION_MAX 64
#define STS_BODY_MAX (256u * 1024)
#define STS_RESPONSE_MAX (64u * 1024)
#define STS_ERROR_BODY_MAX (64u * 1024)
#define STS_MAX_ATTEMPTS 3
#define STS_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"

/* One STS request: the form body and, for AssumeRole, the signer. */
struct sts_call {
    struct http_job job;
    char url[STS_URL_MAX];
    char host[STS_HOST_MAX];        /* host[:port], the signed Host header */
    char path[STS_URL_MAX];         /* path of the endpoint, "/" when none */
    char region[STS_REGION_MAX];    /* signing region */
    stow_buf body;                  /* form body; may contain the web identity token */
    stow_buf response;              /* 2xx body with the secret key; wiped on free */
    const struct aws_credentials *signer; /* NULL: unsigned */
    char payload_hash[SIGV4_HEX_SHA256_SIZE];
};

int sts_endpoint(const char *region, char *out, size_t size, char *signing_region,
                 size_t signing_region_size, stow_error *err)
{
    const char *endpoint = aws_env_value("AWS_ENDPOINT_URL_STS");
    int written;

    if (endpoint == NULL)
        endpoint = aws_env_value("AWS_ENDPOINT_URL");
    snprintf(signing_region, signing_region_size, "%s", region != NULL ? region : "us-east-1");
    if (endpoint != NULL)
        written = snprintf(out, size, "%s", endpoint);
    else if (region != NULL)
        written = snprintf(out, size, "https://sts.%s.amazonaws.com", region);
    else
        written = snprintf(out, size, "https://sts.amazonaws.com");
    if (written < 0 || (size_t)written >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "STS endpoint URL is too long");
    return 0;
}

/* Splits call->url into the Host header value and the path. */
static int split_endpoint(struct sts_call *call, stow_error *err)
{
    struct aws_endpoint parts;

    if (aws_endpoint_parse(call->url, "STS", "AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL must be "
                                             "http:// or https:// URLs",
                           &parts, err) != 0)
        return -1;
    snprintf(call->host, sizeof call->host, "%s", parts.authority);
    snprintf(call->path, sizeof call->path, "%s", parts.path);
    aws_endpoint_free(&parts);
    return 0;
}

/* Adds the SigV4 headers for AssumeRole. */
static int sign_call(struct sts_call *call, struct curl_slist **headers, stow_error *err)
{
    const struct sigv4_header signed_headers[] = {{"content-type", STS_CONTENT_TYPE}};
    const struct sigv4_request request = {
        .service = "sts",
        .region = call->region,
        .method = "POST",
        .host = call->host,
        .path = call->path,
        .headers = signed_headers,
        .header_count = 1,
        .payload_hash = call->payload_hash,
        .time = time(NULL),
    };

    return aws_request_sign(&request, call->signer, headers, err);
}

/* Describes one attempt (http_build_fn). */
static int build_call(struct http_job *job, struct http_request *request, stow_error *err)
{
    struct sts_call *call = job->owner;

    if (aws_request_add_header(&request->headers, "Host", call->host, err) != 0 ||
        aws_request_add_header(&request->headers, "Content-Type", STS_CONTENT_TYPE, err) != 0 ||
        aws_request_add_header(&request->headers, "Accept", "text/xml", err) != 0)
        return -1;
    if (call->signer != NULL && sign_call(call, &request->headers, err) != 0)
        return -1;
    request->method = "POST";
    request->url = call->url;
    request->body = call->body.data;
    request->body_len = call->body.len;
    return 0;
}

/* Appends "&name=value" (without '&' first), form-encoded. */
static int append_param(stow_buf *body, const char *name, const char *value, stow_error *err)
{
    if ((body->len > 0 && stow_buf_append_str(body, "&", err) != 0) ||
        stow_buf_append_str(body, name, err) != 0 || stow_buf_append_str(body, "=", err) != 0)
        return -1;
    return sigv4_uri_encode(body, value, 0, err);
}

static int build_body(struct sts_call *call, const char *action,
                      const struct sts_role_request *request, const char *session_name,
                      const char *token, stow_error *err)
{
    char duration[16];

    if (append_param(&call->body, "Action", action, err) != 0 ||
        append_param(&call->body, "Version", STS_API_VERSION, err) != 0 ||
        append_param(&call->body, "RoleArn", request->role_arn, err) != 0 ||
        append_param(&call->body, "RoleSessionName", session_name, err) != 0)
        return -1;
    if (request->duration_seconds > 0) {
        snprintf(duration, sizeof duration, "%d", request->duration_seconds);
        if (append_param(&call->body, "DurationSeconds", duration, err) != 0)
            return -1;
    }
    if (request->external_id != NULL &&
        append_param(&call->body, "ExternalId", request->external_id, err) != 0)
        return -1;
    if (token != NULL && append_param(&call->body, "WebIdentityToken", token, err) != 0)
        return -1;
    return 0;
}

static int parse_credential_fields(const xmlNode *credentials, struct aws_credentials *out)
{
    char expiration[64];

    if (aws_xml_child_text(credentials, "AccessKeyId", out->access_key_id,
                           sizeof out->access_key_id) != 0 ||
        aws_xml_child_text(credentials, "SecretAccessKey", out->secret_access_key,
                           sizeof out->secret_access_key) != 0 ||
        aws_xml_child_text(credentials, "SessionToken", out->session_token,
                           sizeof out->session_token) != 0 ||
        aws_xml_child_text(credentials, "Expiration", expiration, sizeof expiration) != 0 ||
        aws_xml_parse_time(expiration, &out->expiration) != 0)
        return -1;
    if (out->access_key_id[0] == '\0' || out->secret_access_key[0] == '\0')
        return -1;
    return 0;
}

int sts_parse_credentials(const void *body, size_t len, struct aws_credentials *out,
                          stow_error *err)
{
    xmlDoc *doc = aws_xml_read(body, len);
    const xmlNode *root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
    const xmlNode *result = NULL;
    int rc = -1;

    if (aws_xml_is(root, "AssumeRoleResponse"))
        result = aws_xml_child(root, "AssumeRoleResult");
    else if (aws_xml_is(root, "AssumeRoleWithWebIdentityResponse"))
        result = aws_xml_child(root, "AssumeRoleWithWebIdentityResult");

    if (result != NULL && parse_credential_fields(aws_xml_child(result, "Credentials"), out) == 0)
        rc = 0;
    else
        stow_fail(err, STOW_EXIT_STORAGE,
                  "the STS response has no complete Credentials element (AccessKeyId, "
                  "SecretAccessKey, SessionToken, Expiration)");
    xmlFreeDoc(doc);
    if (rc != 0) {
        out->access_key_id[0] = '\0';
        sodium_memzero(out->secret_access_key, sizeof out->secret_access_key);
        sodium_memzero(out->session_token, sizeof out->session_token);
    }
    return rc;
}

static void call_free(struct sts_call *call)
{
    http_job_free(&call->job);
    stow_buf_free_secret(&call->body);
    stow_buf_free_secret(&call->response);
}

/* Sends call and parses the credentials it returns. */
static int perform_call(struct sts_call *call, const struct sts_role_request *request,
                        struct aws_credentials *out, stow_error *err)
{
    struct http_settings settings;
    struct http_engine *engine = NULL;
    int rc;

    http_settings_default(&settings);
    settings.max_attempts = STS_MAX_ATTEMPTS;
    call->job.settings = &settings;
    if (split_endpoint(call, err) != 0 || http_engine_new(&engine, err) != 0)
        return -1;
    /* Sized once so that the secret is never left behind by a reallocation. */
    if (stow_buf_reserve(&call->response, 16u * 1024, err) != 0) {
        http_engine_free(engine);
        return -1;
    }
    rc = http_engine_perform(engine, &call->job, err);
    http_engine_free(engine);
    if (rc == 0)
        rc = sts_parse_credentials(call->response.data, call->response.len, out, err);
    if (rc != 0) {
        if (err != NULL)
            err->exit_code = STOW_EXIT_STORAGE;
        stow_error_prefix(err, "getting AWS credentials for role %s (%s)", request->role_arn,
                          request->source != NULL ? request->source : "STS");
        return -1;
    }
    snprintf(out->source, sizeof out->source, "role %s assumed with %s (STS %s)",
             request->role_arn, request->source != NULL ? request->source : "STS",
             call->job.operation);
    return 0;
}

static const char *region_of(const struct sts_role_request *request)
{
    const char *region = request->region;

    if (region == NULL)
        region = aws_env_value("AWS_REGION");
    if (region == NULL)
        region = aws_env_value("AWS_DEFAULT_REGION");
    return region;
}

static int call_sts(const char *action, const struct sts_role_request *request,
                    const struct aws_credentials *signer, const char *token,
                    struct aws_credentials *out, stow_error *err)
{
    struct sts_call *call = calloc(1, sizeof *call);
    char session_name[STS_ROLE_SESSION_NAME_MAX + 1];
    int rc = -1;

    aws_credentials_clear(out);
    if (call == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory calling STS");
    if (request->role_arn == NULL || request->role_arn[0] == '\0') {
        free(call);
        return stow_fail(err, STOW_EXIT_USAGE, "STS %s needs a role ARN", action);
    }
    if (request->session_name != NULL)
        snprintf(session_name, sizeof session_name, "%s", request->session_name);
    else
        snprintf(session_name, sizeof session_name, "stowage-%lld", (long long)time(NULL));

    http_job_init(&call->job, NULL, STS_ERROR_BODY_MAX);
    call->job.service = "STS";
    call->job.operation = action;
    call->job.build = build_call;
    call->job.owner = call;
    call->job.sink = &call->response;
    call->signer = signer;
    http_job_subject(&call->job, "role %s", request->role_arn);
    stow_buf_init(&call->body, STS_BODY_MAX);
    stow_buf_init(&call->response, STS_RESPONSE_MAX);

    if (sts_endpoint(region_of(request), call->url, sizeof call->url, call->region,
                     sizeof call->region, err) != 0 ||
        build_body(call, action, request, session_name, token, err) != 0)
        goto done;
    if (signer != NULL) {
        uint8_t digest[32];

        sigv4_sha256(call->body.data, call->body.len, digest);
        sigv4_hex(digest, call->payload_hash);
    }
    rc = perform_call(call, request, out, err);

done:
    call_free(call);
    free(call);
    return rc;
}

int sts_assume_role(const struct sts_role_request *request,
                    const struct aws_credentials *source_credentials,
                    struct aws_credentials *out, stow_error *err)
{
    return call_sts("AssumeRole", request, source_credentials, NULL, out, err);
}

int sts_assume_role_with_web_identity(const struct sts_role_request *request,
                                      const char *token, struct aws_credentials *out,
                                      stow_error *err)
{
    return call_sts("AssumeRoleWithWebIdentity", request, NULL, token, out, err);
}

/* Reads the token file into token (reset first), without trailing blanks. */
static int read_token_file(const char *path, stow_buf *token, stow_error *err)
{
    FILE *file = fopen(path, "r");
    char chunk[4096];
    size_t got;
    int rc = 0;

    if (file == NULL)
        return stow_fail_errno(err, STOW_EXIT_STORAGE, errno, "reading the web identity token file",
                               path);
    while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, file)) > 0)
        rc = stow_buf_append(token, chunk, got, err);
    if (rc == 0 && ferror(file))
        rc = stow_fail_errno(err, STOW_EXIT_STORAGE, errno, "reading the web identity token file",
                             path);
    fclose(file);
    sodium_memzero(chunk, sizeof chunk);
    if (rc != 0)
        return stow_fail(err, STOW_EXIT_STORAGE, "the web identity token file %s is larger than "
                                                 "%u bytes", path, STS_WEB_IDENTITY_TOKEN_MAX);

    while (token->len > 0 && (token->data[token->len - 1] == '\n' ||
                              token->data[token->len - 1] == '\r' ||
                              token->data[token->len - 1] == ' '))
        token->data[--token->len] = '\0';
    if (token->len == 0)
        return stow_fail(err, STOW_EXIT_STORAGE, "the web identity token file %s is empty", path);
    return 0;
}

int sts_credentials_from_token_file(const struct sts_role_request *request,
                                    const char *token_file, struct aws_credentials *out,
                                    stow_error *err)
{
    stow_buf token;
    int rc;

    stow_buf_init(&token, STS_WEB_IDENTITY_TOKEN_MAX);
    if (stow_buf_reserve(&token, STS_WEB_IDENTITY_TOKEN_MAX, err) != 0)
        return -1;
    rc = read_token_file(token_file, &token, err);
    if (rc == 0)
        rc = sts_assume_role_with_web_identity(request, (const char *)token.data, out, err);
    stow_buf_free_secret(&token);
    return rc;
}

int sts_credentials_from_web_identity_env(struct aws_credentials *out, stow_error *err)
{
    const char *token_file = aws_env_value("AWS_WEB_IDENTITY_TOKEN_FILE");
    char description[4200];
    struct sts_role_request request = {
        .role_arn = aws_env_value("AWS_ROLE_ARN"),
        .session_name = aws_env_value("AWS_ROLE_SESSION_NAME"),
        .source = description,
    };

    aws_credentials_clear(out);
    if (token_file == NULL)
        return 1;
    if (request.role_arn == NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is "
                                        "not");
        stow_error_hint(err, "set AWS_ROLE_ARN to the role of the service account");
        return -1;
    }
    snprintf(description, sizeof description, "web identity token file %s", token_file);
    return sts_credentials_from_token_file(&request, token_file, out, err);
}
