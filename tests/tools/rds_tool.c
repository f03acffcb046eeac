/* rds_tool: prints RDS requests exactly as the RDS client signs them, at a
 * fixed time, so that integration tests can compare them with botocore.
 *
 *   rds_tool rds-sign REGION ENDPOINT UNIX_TIME Name=Value...
 *       builds the form body of the parameters (give Action and Version
 *       first, as the client does), signs it and prints the lines
 *       "Body: ...", "Content-Type: ...", "X-Amz-Date: ..." and
 *       "Authorization: ...".
 *   rds_tool presign-copy SOURCE_REGION SOURCE_ENDPOINT DESTINATION_REGION UNIX_TIME
 *                         SOURCE_ARN TARGET_ID KMS_KEY|- [Key=Value tag]...
 *       prints the pre-signed CopyDBSnapshot URL that a cross-region copy
 *       sends as PreSignedUrl.
 *
 * Both use the credentials in the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). Exit codes: 0, or the
 * stow_error exit code of a failure (2 for bad arguments). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/credentials.h"
#include "aws/rds.h"
#include "common/log.h"

#define TOOL_MAX_ITEMS 64

static int usage(void)
{
    fprintf(stderr, "usage: rds_tool rds-sign REGION ENDPOINT UNIX_TIME Name=Value...\n"
                    "       rds_tool presign-copy SOURCE_REGION SOURCE_ENDPOINT "
                    "DESTINATION_REGION UNIX_TIME SOURCE_ARN TARGET_ID KMS_KEY|- "
                    "[Key=Value]...\n");
    return STOW_EXIT_USAGE;
}

static int load_credentials(struct aws_credentials *credentials, stow_error *err)
{
    int rc = aws_credentials_from_environment(credentials, err);

    if (rc == 1)
        return stow_fail(err, STOW_EXIT_USAGE, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    return rc;
}

/* Splits "name=value" arguments in place at the first '='. */
static int split_pairs(char **args, int count, struct sigv4_param *out)
{
    for (int i = 0; i < count; i++) {
        char *equals = strchr(args[i], '=');

        if (equals == NULL)
            return -1;
        *equals = '\0';
        out[i].name = args[i];
        out[i].value = equals + 1;
    }
    return 0;
}

/* Returns the authority and path of an endpoint URL such as http://h:1/ . */
static int split_endpoint(const char *endpoint, char *host, size_t host_size, char *path,
                          size_t path_size)
{
    const char *start = strstr(endpoint, "://");
    const char *slash;

    if (start == NULL)
        return -1;
    start += 3;
    slash = strchr(start, '/');
    snprintf(host, host_size, "%.*s", (int)(slash ? slash - start : (long)strlen(start)), start);
    snprintf(path, path_size, "%s", slash ? slash : "/");
    return 0;
}

static int command_sign(int argc, char **argv, stow_error *err)
{
    struct sigv4_param params[TOOL_MAX_ITEMS];
    struct aws_credentials credentials;
    struct sigv4_signature signature;
    struct rds_signing signing;
    char host[256];
    char path[1024];
    stow_buf body;
    int count = argc - 5;
    int rc;

    if (argc < 6 || count > TOOL_MAX_ITEMS || split_pairs(argv + 5, count, params) != 0 ||
        split_endpoint(argv[3], host, sizeof host, path, sizeof path) != 0)
        return usage();
    memset(&credentials, 0, sizeof credentials);
    stow_buf_init(&body, 1 << 20);
    rc = load_credentials(&credentials, err);
    if (rc == 0)
        rc = rds_form_encode(params, (size_t)count, &body, err);
    if (rc == 0) {
        memset(&signing, 0, sizeof signing);
        signing.region = argv[2];
        signing.host = host;
        signing.path = path;
        signing.body = body.data;
        signing.body_len = body.len;
        signing.time = (time_t)strtoll(argv[4], NULL, 10);
        signing.credentials = &credentials;
        rc = rds_sign_form(&signing, &signature, err);
    }
    if (rc == 0)
        printf("Body: %s\nContent-Type: %s\nX-Amz-Date: %s\nAuthorization: %s\n",
               (const char *)body.data, RDS_FORM_CONTENT_TYPE, signature.amz_date,
               signature.authorization);
    aws_credentials_clear(&credentials);
    stow_buf_free(&body);
    return rc;
}

static int command_presign_copy(int argc, char **argv, stow_error *err)
{
    struct sigv4_param pairs[TOOL_MAX_ITEMS];
    struct rds_tag tags[TOOL_MAX_ITEMS];
    struct aws_credentials credentials;
    struct rds_copy_snapshot request;
    stow_buf url;
    int count = argc - 9;
    int rc;

    if (argc < 9 || count > TOOL_MAX_ITEMS || split_pairs(argv + 9, count, pairs) != 0)
        return usage();
    for (int i = 0; i < count; i++) {
        tags[i].key = (char *)pairs[i].name;
        tags[i].value = (char *)pairs[i].value;
    }
    memset(&request, 0, sizeof request);
    request.source_region = argv[2];
    request.source_endpoint = argv[3];
    request.time = (time_t)strtoll(argv[5], NULL, 10);
    request.source_arn = argv[6];
    request.target_id = argv[7];
    request.kms_key_id = strcmp(argv[8], "-") != 0 ? argv[8] : NULL;
    request.tags = tags;
    request.tag_count = (size_t)count;

    memset(&credentials, 0, sizeof credentials);
    stow_buf_init(&url, 1 << 20);
    rc = load_credentials(&credentials, err);
    if (rc == 0)
        rc = rds_presign_copy_url(&request, argv[4], &credentials, &url, err);
    if (rc == 0)
        printf("%s\n", (const char *)url.data);
    aws_credentials_clear(&credentials);
    stow_buf_free(&url);
    return rc;
}

int main(int argc, char **argv)
{
    stow_error err = {0};
    int rc;

    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "rds-sign") == 0)
        rc = command_sign(argc, argv, &err);
    else if (strcmp(argv[1], "presign-copy") == 0)
        rc = command_presign_copy(argc, argv, &err);
    else
        return usage();
    if (rc == STOW_EXIT_USAGE && !stow_error_is_set(&err))
        return rc;
    if (rc != 0) {
        stow_log_error(&err);
        return err.exit_code != 0 ? err.exit_code : STOW_EXIT_FAILURE;
    }
    return 0;
}
