/* RDS IAM database authentication tokens: the password that an IAM-enabled
 * RDS or Aurora instance accepts in place of a database password.
 *
 * A token is a SigV4-presigned GET of https://HOST:PORT/?Action=connect&
 * DBUser=USER for the service "rds-db", valid for 900 seconds, written
 * without the scheme. Its signature equals that of botocore's
 * generate_db_auth_token (tests/unit/test_rds_auth.c). The parameters are
 * in sorted order, where botocore puts X-Amz-Security-Token last. A token
 * is a credential: callers never log it or put it on a command line. */
#ifndef STOWAGE_AWS_RDS_AUTH_H
#define STOWAGE_AWS_RDS_AUTH_H

#include <time.h>

#include "aws/credentials.h"
#include "common/buf.h"
#include "common/error.h"

#define RDS_AUTH_SERVICE "rds-db"
#define RDS_AUTH_TOKEN_SECONDS 900

/* Writes the token for user at host:port, signed for region at time now,
 * into token (reset first). Release token with stow_buf_free_secret. */
int rds_auth_token(const struct aws_credentials *credentials, const char *region,
                   const char *host, const char *port, const char *user, time_t now,
                   stow_buf *token, stow_error *err);

/* Writes the region of an RDS endpoint name ("db.abc.eu-west-1.rds.amazonaws.com"
 * gives "eu-west-1"). Returns 0, or 1 when host is not such a name. */
int rds_auth_region_of_host(const char *host, char *out, size_t size);

#endif
