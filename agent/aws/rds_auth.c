/* RDS IAM authentication tokens, presigned with the SigV4 signer. */
#include "aws/rds_auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aws/sigv4.h"

#define RDS_ENDPOINT_SUFFIX ".rds.amazonaws.com"

int rds_auth_token(const struct aws_credentials *credentials, const char *region,
                   const char *host, const char *port, const char *user, time_t now,
                   stow_buf *token, stow_error *err)
{
    const struct sigv4_param params[] = {{"Action", "connect"}, {"DBUser", user}};
    char host_header[512];
    struct sigv4_request request = {
        .service = RDS_AUTH_SERVICE,
        .region = region,
        .method = "GET",
        .host = host_header,
        .path = "/",
        .params = params,
        .param_count = sizeof params / sizeof params[0],
        .payload_hash = SIGV4_EMPTY_SHA256,
        .time = now,
    };
    stow_buf query;
    int rc;

    stow_buf_reset(token);
    if ((size_t)snprintf(host_header, sizeof host_header, "%s:%s", host, port) >=
        sizeof host_header)
        return stow_fail(err, STOW_EXIT_USAGE, "database host name is too long for an IAM "
                                               "authentication token: %s", host);

    stow_buf_init(&query, 16 * 1024);
    rc = sigv4_presign(&request, credentials, RDS_AUTH_TOKEN_SECONDS, &query, err);
    if (rc == 0)
        rc = stow_buf_printf(token, err, "%s/?%.*s", host_header, (int)query.len,
                             (const char *)query.data);
    stow_buf_free_secret(&query);
    return rc;
}

int rds_auth_region_of_host(const char *host, char *out, size_t size)
{
    size_t host_len = strlen(host);
    size_t suffix_len = strlen(RDS_ENDPOINT_SUFFIX);
    const char *end;
    const char *start;

    if (host_len <= suffix_len ||
        strcasecmp(host + host_len - suffix_len, RDS_ENDPOINT_SUFFIX) != 0)
        return 1;

    /* The label just before the suffix is the region. */
    end = host + host_len - suffix_len;
    start = end;
    while (start > host && start[-1] != '.')
        start--;
    if (start == host || start == end || (size_t)(end - start) >= size)
        return 1;
    snprintf(out, size, "%.*s", (int)(end - start), start);
    return 0;
}
