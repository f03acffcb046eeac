/* RDS IAM authentication tokens against botocore.
 *
 * The expected tokens were computed offline with botocore 1.43.11: an RDS
 * client made with the region and keys below, whose clock was frozen at
 * 2026-12-01T03:00:00Z by patching botocore.auth.get_current_datetime:
 *
 *   client = botocore.session.get_session().create_client(
 *       'rds', region_name=REGION, aws_access_key_id=KEY_ID,
 *       aws_secret_access_key=SECRET, aws_session_token=TOKEN_OR_NONE)
 *   with mock.patch('botocore.auth.get_current_datetime',
 *                   return_value=datetime.datetime(2026, 12, 1, 3, 0, 0)):
 *       client.generate_db_auth_token(HOST, PORT, USER)
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/rds_auth.h"

#define PARAMS_MAX 16

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes token's query parameters, sorted, one per line, after the
 * "host:port/?" prefix: the order that the server's signature check uses. */
static void sort_query(const char *token, char *out, size_t size)
{
    char copy[2048];
    char *params[PARAMS_MAX];
    char *query;
    char *save = NULL;
    size_t count = 0;
    size_t used;

    snprintf(copy, sizeof copy, "%s", token);
    query = strchr(copy, '?');
    if (query == NULL) {
        snprintf(out, size, "%s", token);
        return;
    }
    *query++ = '\0';
    for (char *param = strtok_r(query, "&", &save); param != NULL && count < PARAMS_MAX;
         param = strtok_r(NULL, "&", &save))
        params[count++] = param;
    qsort(params, count, sizeof params[0], compare_strings);

    used = (size_t)snprintf(out, size, "%s?", copy);
    for (size_t i = 0; i < count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "\n%s", params[i]);
}

static time_t signing_time(void)
{
    struct tm tm = {0};

    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 11;
    tm.tm_mday = 1;
    tm.tm_hour = 3;
    return timegm(&tm);
}

static void test_token_long_term_keys(void)
{
    struct aws_credentials credentials;
    stow_buf token;
    stow_error err = {0};

    memset(&credentials, 0, sizeof credentials);
    strcpy(credentials.access_key_id, "AKIDEXAMPLE");
    strcpy(credentials.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    stow_buf_init(&token, 64 * 1024);

    CHECK_INT_EQ(0, rds_auth_token(&credentials, "eu-west-1",
                                   "mydb.abc123xyz.eu-west-1.rds.amazonaws.com", "5432",
                                   "backup_user", signing_time(), &token, &err));
    CHECK_STR_EQ("mydb.abc123xyz.eu-west-1.rds.amazonaws.com:5432/?Action=connect"
                 "&DBUser=backup_user&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 "&X-Amz-Credential=AKIDEXAMPLE%2F20261201%2Feu-west-1%2Frds-db%2Faws4_request"
                 "&X-Amz-Date=20261201T030000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
                 "&X-Amz-Signature="
                 "726135ffe4c77d63b3c43149c834d86f95913f556860471be663354e96e91327",
                 (const char *)token.data);
    stow_buf_free_secret(&token);
}

static void test_token_session_credentials(void)
{
    static const char botocore_token[] = "127.0.0.1:15432/?Action=connect&DBUser=app%20user%40x"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=ASIAEXAMPLE%2F20261201%2Fus-east-1%2Frds-db%2Faws4_request"
        "&X-Amz-Date=20261201T030000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
        "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2Ftoken%2B%3D"
        "&X-Amz-Signature="
        "2210b3ce00f43e222feeca439aaa0f0059cc7fc9521e70ab6f138030346cf25b";
    char expected[4096];
    char actual[4096];
    struct aws_credentials credentials;
    stow_buf token;
    stow_error err = {0};

    memset(&credentials, 0, sizeof credentials);
    strcpy(credentials.access_key_id, "ASIAEXAMPLE");
    strcpy(credentials.secret_access_key, "secret/with+chars");
    strcpy(credentials.session_token, "FwoGZXIvYXdzEXAMPLE/token+=");
    stow_buf_init(&token, 64 * 1024);

    /* A user name with a blank and '@' is percent-encoded in DBUser. botocore
     * appends X-Amz-Security-Token after X-Amz-SignedHeaders, while the
     * signer writes the parameters sorted. The signature covers the sorted
     * form, so the two tokens differ only in parameter order. */
    CHECK_INT_EQ(0, rds_auth_token(&credentials, "us-east-1", "127.0.0.1", "15432",
                                   "app user@x", signing_time(), &token, &err));
    sort_query(botocore_token, expected, sizeof expected);
    sort_query((const char *)token.data, actual, sizeof actual);
    CHECK_STR_EQ(expected, actual);
    CHECK_CONTAINS((const char *)token.data, "&X-Amz-Signature="
                   "2210b3ce00f43e222feeca439aaa0f0059cc7fc9521e70ab6f138030346cf25b");
    stow_buf_free_secret(&token);
}

static void test_region_of_endpoint(void)
{
    char region[32];

    CHECK_INT_EQ(0, rds_auth_region_of_host("mydb.abc123xyz.eu-west-1.rds.amazonaws.com",
                                            region, sizeof region));
    CHECK_STR_EQ("eu-west-1", region);
    CHECK_INT_EQ(0, rds_auth_region_of_host("c.cluster-ro-abc.us-east-2.RDS.amazonaws.com",
                                            region, sizeof region));
    CHECK_STR_EQ("us-east-2", region);
}

static void test_region_of_other_hosts(void)
{
    char region[32];

    CHECK_INT_EQ(1, rds_auth_region_of_host("127.0.0.1", region, sizeof region));
    CHECK_INT_EQ(1, rds_auth_region_of_host("db.example.internal", region, sizeof region));
    CHECK_INT_EQ(1, rds_auth_region_of_host(".rds.amazonaws.com", region, sizeof region));
    CHECK_INT_EQ(1, rds_auth_region_of_host("x.rds.amazonaws.com", region, sizeof region));
}

int main(void)
{
    unit_run("token with long-term keys", test_token_long_term_keys);
    unit_run("token with session credentials", test_token_session_credentials);
    unit_run("region of an RDS endpoint", test_region_of_endpoint);
    unit_run("region of other hosts", test_region_of_other_hosts);
    return unit_finish();
}
