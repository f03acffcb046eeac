/* Endpoint parsing, service client state and SigV4 header lines shared by
 * the AWS clients. */
#include "aws/aws_request.h"
#include "aws/aws_env.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AWS_DEFAULT_ENDPOINT_MAX 4096

/* --- endpoints ------------------------------------------------------------ */

static char *join_authority(const char *host, const char *port)
{
    size_t len = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
    char *authority = malloc(len);

    if (authority != NULL)
        snprintf(authority, len, "%s%s%s", host, port ? ":" : "", port ? port : "");
    return authority;
}

int aws_endpoint_parse(const char *url, const char *service, const char *hint,
                       struct aws_endpoint *out, stow_error *err)
{
    CURLU *parsed = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (parsed == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing the %s endpoint",
                         service);
    if (curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(parsed, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid %s endpoint URL \"%s\"", service, url);
        stow_error_hint(err, "%s", hint);
        goto done;
    }
    curl_url_get(parsed, CURLUPART_PORT, &port, 0);
    curl_url_get(parsed, CURLUPART_PATH, &path, CURLU_URLDECODE);

    out->scheme = strdup(scheme);
    out->authority = join_authority(host, port);
    out->path = strdup(path != NULL && path[0] != '\0' ? path : "/");
    if (out->scheme == NULL || out->authority == NULL || out->path == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory parsing the %s endpoint", service);
        aws_endpoint_free(out);
        goto done;
    }
    rc = 0;

done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(parsed);
    return rc;
}

void aws_endpoint_free(struct aws_endpoint *endpoint)
{
    free(endpoint->scheme);
    free(endpoint->authority);
    free(endpoint->path);
    memset(endpoint, 0, sizeof *endpoint);
}

/* --- service clients ------------------------------------------------------ */

static int copy_location(struct aws_service *service, const struct aws_service_options *options,
                         stow_error *err)
{
    const char *region = options->region ? options->region : aws_default_region();
    char endpoint[AWS_DEFAULT_ENDPOINT_MAX];
    const char *chosen = options->endpoint;

    if (chosen == NULL) {
        if (options->default_endpoint(region, endpoint, sizeof endpoint, err) != 0)
            return -1;
        chosen = endpoint;
    }
    service->region = strdup(region);
    service->endpoint = strdup(chosen);
    if (service->region == NULL || service->endpoint == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the %s client",
                         service->name);
    return 0;
}

static int attach_credentials(struct aws_service *service,
                              const struct aws_service_options *options, stow_error *err)
{
    if (options->credentials != NULL) {
        service->credentials = options->credentials;
        return 0;
    }
    service->owns_credentials = 1;
    return aws_credentials_provider_new_default(&service->credentials, err);
}

int aws_service_open(struct aws_service *service, const struct aws_service_options *options,
                     stow_error *err)
{
    memset(service, 0, sizeof *service);
    service->name = options->service;
    http_settings_default(&service->settings);
    if (options->max_attempts > 0)
        service->settings.max_attempts = options->max_attempts;

    if (copy_location(service, options, err) != 0 ||
        aws_endpoint_parse(service->endpoint, service->name, options->endpoint_hint,
                           &service->parts, err) != 0 ||
        attach_credentials(service, options, err) != 0)
        return -1;
    return http_engine_new(&service->engine, err);
}

void aws_service_close(struct aws_service *service)
{
    http_engine_free(service->engine);
    if (service->owns_credentials)
        aws_credentials_provider_free(service->credentials);
    free(service->region);
    free(service->endpoint);
    aws_endpoint_free(&service->parts);
    memset(service, 0, sizeof *service);
}

void aws_service_job_init(const struct aws_service *service, struct http_job *job,
                          const char *operation, http_build_fn build, void *owner,
                          size_t body_max)
{
    http_job_init(job, &service->settings, body_max);
    job->service = service->name;
    job->operation = operation;
    job->build = build;
    job->owner = owner;
    job->credentials = service->credentials;
}

/* --- signed requests ------------------------------------------------------ */

int aws_request_add_header(struct curl_slist **list, const char *name, const char *value,
                           stow_error *err)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = malloc(len);
    struct curl_slist *grown = NULL;

    if (line != NULL) {
        snprintf(line, len, "%s: %s", name, value);
        grown = curl_slist_append(*list, line);
        /* The line may be Authorization or X-Amz-Security-Token. */
        sodium_memzero(line, len);
        free(line);
    }
    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory building the %s header",
                         name);
    *list = grown;
    return 0;
}

int aws_request_sign(const struct sigv4_request *request,
                     const struct aws_credentials *credentials, struct curl_slist **list,
                     stow_error *err)
{
    struct sigv4_signature signature;

    if (sigv4_sign(request, credentials, &signature, err) != 0 ||
        aws_request_add_header(list, "X-Amz-Date", signature.amz_date, err) != 0 ||
        aws_request_add_header(list, "Authorization", signature.authorization, err) != 0)
        return -1;
    if (credentials->session_token[0] != '\0' &&
        aws_request_add_header(list, "X-Amz-Security-Token", credentials->session_token,
                               err) != 0)
        return -1;
    return 0;
}

int aws_request_sign_current(const struct sigv4_request *request,
                             struct aws_credentials_provider *provider,
                             struct curl_slist **list, stow_error *err)
{
    struct aws_credentials credentials;
    int rc;

    memset(&credentials, 0, sizeof credentials);
    rc = aws_credentials_provider_get(provider, &credentials, err);
    if (rc == 0)
        rc = aws_request_sign(request, &credentials, list, err);
    aws_credentials_clear(&credentials);
    return rc;
}
