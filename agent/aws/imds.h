/* Credentials from metadata endpoints: the container credentials endpoint
 * (ECS task roles, EKS Pod Identity) and the EC2 instance metadata service
 * (IMDSv2). Both return the same JSON document:
 *   {"AccessKeyId": ..., "SecretAccessKey": ..., "Token": ...,
 *    "Expiration": "2024-05-01T12:00:00Z"}
 * parsed with jansson.
 *
 * Container credentials. AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is a path
 * on http://169.254.170.2 and wins over AWS_CONTAINER_CREDENTIALS_FULL_URI.
 * A full URI must use https, or http to a loopback address (127.0.0.0/8,
 * ::1, localhost) or to the ECS and EKS link-local hosts 169.254.170.2,
 * 169.254.170.23 and fd00:ec2::23; anything else is rejected before any
 * connection, so the authorization token cannot leak to another host. The
 * Authorization header is read from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 * (re-read on every call) or AWS_CONTAINER_AUTHORIZATION_TOKEN.
 *
 * Instance metadata. Skipped when AWS_EC2_METADATA_DISABLED is "true" (any
 * case). The endpoint is AWS_EC2_METADATA_SERVICE_ENDPOINT, else
 * http://[fd00:ec2::254] when AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE is
 * IPv6, else http://169.254.169.254. A session token comes from
 * PUT /latest/api/token; the role name and then the role's credentials
 * from GET /latest/meta-data/iam/security-credentials/[ROLE] with that
 * token. Timeouts are AWS_METADATA_SERVICE_TIMEOUT seconds (default 1) and
 * attempts AWS_METADATA_SERVICE_NUM_ATTEMPTS (default 1), so a host
 * outside EC2 gives up within about a second.
 * NOTE: IMDSv1 (requests without a session token) is not used, even when
 * the token request is rejected.
 *
 * Tokens and credentials are wiped from the buffers that carried them and
 * never appear in messages. Failures exit with STOW_EXIT_STORAGE. */
#ifndef STOWAGE_AWS_IMDS_H
#define STOWAGE_AWS_IMDS_H

#include <stddef.h>

#include "aws/credentials.h"
#include "common/error.h"

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define IMDS_DEFAULT_ENDPOINT_IPV6 "http://[fd00:ec2::254]"
#define IMDS_TOKEN_TTL_SECONDS 21600
#define CONTAINER_CREDENTIALS_HOST "http://169.254.170.2"

/* Returns 1 when AWS_EC2_METADATA_DISABLED is "true" in any case. */
int imds_disabled(void);

/* Writes the instance metadata endpoint (without a trailing '/'). */
int imds_endpoint(char *out, size_t size, stow_error *err);

/* Fetches the instance role's credentials. Returns 1 when instance
 * metadata is disabled, cannot be reached or the instance has no role,
 * 0 on success, -1 when the service answered with an error or a malformed
 * document. */
int imds_credentials(struct aws_credentials *out, stow_error *err);

/* Writes the container credentials URL from the environment. Returns 1
 * when neither variable is set, 0 on success, -1 when the full URI is not
 * allowed (STOW_EXIT_USAGE). Contacts nothing. */
int container_credentials_url(char *out, size_t size, stow_error *err);

/* Fetches credentials from the container credentials endpoint. Returns 1
 * when it is not configured, 0 on success, -1 on error. */
int container_credentials(struct aws_credentials *out, stow_error *err);

/* Parses the JSON credentials document into out (source left untouched).
 * what names the document in messages. Exposed for tests. */
int imds_parse_credentials(const void *body, size_t len, const char *what,
                           struct aws_credentials *out, stow_error *err);

#endif
