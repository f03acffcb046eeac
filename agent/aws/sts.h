/* AWS Security Token Service: the two calls that turn a role into
 * temporary credentials, over the Query API (version 2011-06-15).
 * AssumeRole is signed with SigV4 by the source credentials (a profile's
 * role_arn with source_profile). AssumeRoleWithWebIdentity is not signed,
 * because the OIDC token of a Kubernetes service account proves the caller.
 *
 * Endpoint: AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else the regional
 * endpoint https://sts.REGION.amazonaws.com, or the global
 * https://sts.amazonaws.com when no region is known. Requests are signed
 * for the region (us-east-1 for the global endpoint).
 *
 * Each call runs on its own HTTP engine on the calling thread, with up to
 * three attempts for throttling, 5xx and connection failures. The request
 * body of AssumeRoleWithWebIdentity carries the token and every response
 * carries a secret key: both buffers are wiped before they are freed, and
 * no message contains either. Failures exit with STOW_EXIT_STORAGE. */
#ifndef STOWAGE_AWS_STS_H
#define STOWAGE_AWS_STS_H

#include <stddef.h>

#include "aws/credentials.h"
#include "common/error.h"

#define STS_API_VERSION "2011-06-15"
#define STS_ROLE_SESSION_NAME_MAX 64
#define STS_WEB_IDENTITY_TOKEN_MAX (64u * 1024)

struct sts_role_request {
    const char *role_arn;        /* required */
    const char *session_name;    /* NULL: "stowage-UNIXTIME" */
    const char *external_id;     /* AssumeRole only; NULL when none */
    int duration_seconds;        /* 0: the role's default (one hour) */
    const char *region;          /* NULL: AWS_REGION, AWS_DEFAULT_REGION, else global */
    const char *source;          /* how the role was configured, for messages and
                                    credentials->source ("profile ops") */
};

/* Calls AssumeRole signed with source_credentials. */
int sts_assume_role(const struct sts_role_request *request,
                    const struct aws_credentials *source_credentials,
                    struct aws_credentials *out, stow_error *err);

/* Calls AssumeRoleWithWebIdentity with the token (not signed). */
int sts_assume_role_with_web_identity(const struct sts_role_request *request,
                                      const char *token, struct aws_credentials *out,
                                      stow_error *err);

/* Reads the token from token_file (re-read on every call, because
 * Kubernetes rotates it) and calls AssumeRoleWithWebIdentity. */
int sts_credentials_from_token_file(const struct sts_role_request *request,
                                    const char *token_file, struct aws_credentials *out,
                                    stow_error *err);

/* Uses AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and AWS_ROLE_SESSION_NAME.
 * Returns 1 when AWS_WEB_IDENTITY_TOKEN_FILE is unset, 0 on success, -1 on
 * error (also when AWS_ROLE_ARN is missing). */
int sts_credentials_from_web_identity_env(struct aws_credentials *out, stow_error *err);

/* Writes the STS endpoint URL for region (NULL: no region) into out and
 * the signing region into signing_region. */
int sts_endpoint(const char *region, char *out, size_t size, char *signing_region,
                 size_t signing_region_size, stow_error *err);

/* Parses the Credentials element of an AssumeRoleResponse or
 * AssumeRoleWithWebIdentityResponse into out (source left untouched).
 * Exposed for tests. */
int sts_parse_credentials(const void *body, size_t len, struct aws_credentials *out,
                          stow_error *err);

#endif
