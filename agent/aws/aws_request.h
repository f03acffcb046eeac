/* Request plumbing shared by the S3, RDS and STS clients: the parts of an
 * endpoint URL, the state of a service client (region, endpoint, HTTP
 * engine and settings, credentials provider), and the header lines of a
 * SigV4-signed request.
 *
 * What stays in each client: the addressing (S3 virtual-hosted or path
 * style, RDS and STS form POSTs), which headers are signed, and how
 * responses are parsed. Every call here is synchronous. Only
 * aws_request_sign_current may open a connection, when the provider
 * refreshes its credentials (STS, IMDS). Header lines that carry a secret
 * are wiped from the temporary buffers they are formatted in, but stay in
 * the curl_slist, which the HTTP engine frees after the attempt. */
#ifndef STOWAGE_AWS_AWS_REQUEST_H
#define STOWAGE_AWS_AWS_REQUEST_H

#include <curl/curl.h>
#include <stddef.h>

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/sigv4.h"
#include "common/error.h"

/* --- endpoints ------------------------------------------------------------ */

/* The parts of an http:// or https:// endpoint URL. Each string is malloc'd. */
struct aws_endpoint {
    char *scheme;    /* "http" or "https" */
    char *authority; /* host[:port], the value of the Host header */
    char *path;      /* the URL-decoded path, "/" when the URL has none */
};

/* Splits url into out. Fails with STOW_EXIT_USAGE, "invalid SERVICE
 * endpoint URL" and hint, when url does not parse or is not http(s). */
int aws_endpoint_parse(const char *url, const char *service, const char *hint,
                       struct aws_endpoint *out, stow_error *err);

/* Frees the parts and leaves the structure empty. Accepts an empty one. */
void aws_endpoint_free(struct aws_endpoint *endpoint);

/* --- service clients ------------------------------------------------------ */

typedef int (*aws_default_endpoint_fn)(const char *region, char *out, size_t size,
                                       stow_error *err);

struct aws_service_options {
    const char *service;       /* "S3", for messages */
    const char *region;        /* NULL: aws_default_region() */
    const char *endpoint;      /* NULL: default_endpoint(region) */
    aws_default_endpoint_fn default_endpoint;
    const char *endpoint_hint; /* the hint of an invalid endpoint URL */
    int max_attempts;          /* 0: HTTP_DEFAULT_MAX_ATTEMPTS */
    struct aws_credentials_provider *credentials; /* borrowed; NULL: the default chain */
};

/* The state every service client keeps. One thread uses it at a time. */
struct aws_service {
    const char *name;              /* "S3", for messages */
    char *region;
    char *endpoint;                /* the URL as configured, for messages */
    struct aws_endpoint parts;     /* endpoint split into scheme, authority and path */
    struct http_settings settings;
    struct http_engine *engine;
    struct aws_credentials_provider *credentials;
    int owns_credentials;
};

/* Fills service from options: region and endpoint (defaults resolved),
 * endpoint parts, HTTP settings, credentials and an engine. On failure
 * what was set up stays in service for aws_service_close. */
int aws_service_open(struct aws_service *service, const struct aws_service_options *options,
                     stow_error *err);

/* Frees what aws_service_open set up. Accepts a zeroed service. */
void aws_service_close(struct aws_service *service);

/* Prepares job for a call of operation on service, signed by build on
 * every attempt (owner is passed to build as job->owner). Error and XML
 * bodies are kept up to body_max bytes. */
void aws_service_job_init(const struct aws_service *service, struct http_job *job,
                          const char *operation, http_build_fn build, void *owner,
                          size_t body_max);

/* --- signed requests ------------------------------------------------------ */

/* Appends the header line "name: value" to list. */
int aws_request_add_header(struct curl_slist **list, const char *name, const char *value,
                           stow_error *err);

/* Signs request with credentials and appends X-Amz-Date, Authorization
 * and, for temporary credentials, X-Amz-Security-Token to list. The caller
 * sends Host as request->host and every other header it signed. */
int aws_request_sign(const struct sigv4_request *request,
                     const struct aws_credentials *credentials, struct curl_slist **list,
                     stow_error *err);

/* Does what aws_request_sign does with the current credentials of
 * provider, which are wiped from memory afterwards. */
int aws_request_sign_current(const struct sigv4_request *request,
                             struct aws_credentials_provider *provider,
                             struct curl_slist **list, stow_error *err);

#endif
