/* SigV4 signer against published known-answer vectors: the AWS SigV4 test
 * suite (service "service", 2015-08-30T12:36:00Z) and the examples of the
 * Amazon S3 API reference ("Signature calculations for the Authorization
 * header" and "query string authentication", 2013-05-24). */
#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aws/sigv4.h"

#define SUITE_SCOPE "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
#define S3_SCOPE "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"

static time_t utc_time(int year, int month, int day, int hour, int minute, int second)
{
    struct tm tm = {0};

    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return timegm(&tm);
}

static struct aws_credentials suite_credentials(void)
{
    struct aws_credentials credentials;

    memset(&credentials, 0, sizeof credentials);
    strcpy(credentials.access_key_id, "AKIDEXAMPLE");
    strcpy(credentials.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    return credentials;
}

static struct aws_credentials s3_example_credentials(void)
{
    struct aws_credentials credentials;

    memset(&credentials, 0, sizeof credentials);
    strcpy(credentials.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    strcpy(credentials.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    return credentials;
}

/* A request of the SigV4 test suite: GET / on example.amazonaws.com. */
static struct sigv4_request suite_request(void)
{
    struct sigv4_request request = {
        .service = "service",
        .region = "us-east-1",
        .method = "GET",
        .host = "example.amazonaws.com",
        .path = "/",
        .payload_hash = SIGV4_EMPTY_SHA256,
        .time = utc_time(2015, 8, 30, 12, 36, 0),
    };
    return request;
}

/* A request of the S3 examples: bucket examplebucket, virtual-hosted. */
static struct sigv4_request s3_example_request(const char *method, const char *path)
{
    struct sigv4_request request = {
        .service = "s3",
        .region = "us-east-1",
        .method = method,
        .host = "examplebucket.s3.amazonaws.com",
        .path = path,
        .payload_hash = SIGV4_EMPTY_SHA256,
        .time = utc_time(2013, 5, 24, 0, 0, 0),
    };
    return request;
}

/* Signs request and checks the whole Authorization header. */
static void check_authorization(const struct sigv4_request *request,
                                const struct aws_credentials *credentials, const char *expected)
{
    struct sigv4_signature signature;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, sigv4_sign(request, credentials, &signature, &err));
    CHECK_STR_EQ("", err.message);
    CHECK_STR_EQ(expected, signature.authorization);
}

static void check_canonical(const struct sigv4_request *request,
                            const struct aws_credentials *credentials, const char *expected)
{
    stow_buf canonical;
    stow_error err;
    char amz_date[SIGV4_AMZ_DATE_SIZE];

    stow_error_clear(&err);
    stow_buf_init(&canonical, 1 << 20);
    sigv4_format_amz_date(request->time, amz_date);
    CHECK_INT_EQ(0, sigv4_canonical_request(request, credentials, amz_date, &canonical, &err));
    CHECK_STR_EQ(expected, (const char *)canonical.data);
    stow_buf_free(&canonical);
}

static void test_amz_date_format(void)
{
    char amz_date[SIGV4_AMZ_DATE_SIZE];

    sigv4_format_amz_date(utc_time(2015, 8, 30, 12, 36, 0), amz_date);
    CHECK_STR_EQ("20150830T123600Z", amz_date);
}

static void test_sha256_of_s3_example_body(void)
{
    uint8_t digest[32];
    char hex[SIGV4_HEX_SHA256_SIZE];

    sigv4_sha256("Welcome to Amazon S3.", strlen("Welcome to Amazon S3."), digest);
    sigv4_hex(digest, hex);
    CHECK_STR_EQ("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", hex);

    sigv4_sha256("", 0, digest);
    sigv4_hex(digest, hex);
    CHECK_STR_EQ(SIGV4_EMPTY_SHA256, hex);
}

static void test_uri_encode_rules(void)
{
    stow_buf out;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&out, 1024);
    CHECK_INT_EQ(0, sigv4_uri_encode(&out, "a b+c/d~e_f-g.h=i&j%\xe1\x88\xb4", 1, &err));
    CHECK_STR_EQ("a%20b%2Bc/d~e_f-g.h%3Di%26j%25%E1%88%B4", (const char *)out.data);

    stow_buf_reset(&out);
    CHECK_INT_EQ(0, sigv4_uri_encode(&out, "backups/2024 01/x", 0, &err));
    CHECK_STR_EQ("backups%2F2024%2001%2Fx", (const char *)out.data);
    stow_buf_free(&out);
}

/* Signs a request of the SigV4 test suite with the suite's credentials and
 * checks its Authorization header, built from the suite's scope and the
 * case's signed headers and signature. */
static void check_suite_authorization(const struct sigv4_request *request,
                                      const char *signed_headers, const char *signature)
{
    struct aws_credentials credentials = suite_credentials();
    char expected[SIGV4_AUTHORIZATION_MAX];

    snprintf(expected, sizeof expected,
             "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE ", SignedHeaders=%s, Signature=%s",
             signed_headers, signature);
    check_authorization(request, &credentials, expected);
}

static void check_suite_canonical(const struct sigv4_request *request, const char *expected)
{
    struct aws_credentials credentials = suite_credentials();

    check_canonical(request, &credentials, expected);
}

static void test_suite_get_vanilla(void)
{
    struct sigv4_request request = suite_request();

    check_suite_canonical(&request,
                          "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                          "host;x-amz-date\n" SIGV4_EMPTY_SHA256);
    check_suite_authorization(&request, "host;x-amz-date",
                              "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void test_suite_get_unreserved(void)
{
    struct sigv4_request request = suite_request();

    request.path = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    check_suite_authorization(&request, "host;x-amz-date",
                              "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
}

static void test_suite_query_order_key_case(void)
{
    struct sigv4_param params[] = {{"Param2", "value2"}, {"Param1", "value1"}};
    struct sigv4_request request = suite_request();

    request.params = params;
    request.param_count = 2;
    check_suite_canonical(&request,
                          "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
                          "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" SIGV4_EMPTY_SHA256);
    check_suite_authorization(&request, "host;x-amz-date",
                              "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void test_suite_query_order_value(void)
{
    struct sigv4_param params[] = {{"Param1", "value2"}, {"Param1", "value1"}};
    struct sigv4_request request = suite_request();

    request.params = params;
    request.param_count = 2;
    check_suite_authorization(&request, "host;x-amz-date",
                              "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694");
}

static void test_suite_utf8_query(void)
{
    struct sigv4_param params[] = {{"\xe1\x88\xb4", "bar"}};
    struct sigv4_request request = suite_request();

    request.params = params;
    request.param_count = 1;
    check_suite_authorization(&request, "host;x-amz-date",
                              "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

static void test_suite_header_key_duplicate(void)
{
    struct sigv4_header headers[] = {
        {"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}};
    struct sigv4_request request = suite_request();

    request.headers = headers;
    request.header_count = 3;
    check_suite_canonical(&request,
                          "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
                          "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n"
                          SIGV4_EMPTY_SHA256);
    check_suite_authorization(&request, "host;my-header1;x-amz-date",
                              "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
}

static void test_suite_header_value_order(void)
{
    struct sigv4_header headers[] = {{"My-Header1", "value4"},
                                     {"My-Header1", "value1"},
                                     {"My-Header1", "value3"},
                                     {"My-Header1", "value2"}};
    struct sigv4_request request = suite_request();

    request.headers = headers;
    request.header_count = 4;
    check_suite_authorization(&request, "host;my-header1;x-amz-date",
                              "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01");
}

static void test_suite_header_value_trim(void)
{
    struct sigv4_header headers[] = {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}};
    struct sigv4_request request = suite_request();

    request.headers = headers;
    request.header_count = 2;
    check_suite_canonical(&request,
                          "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
                          "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
                          "host;my-header1;my-header2;x-amz-date\n" SIGV4_EMPTY_SHA256);
    check_suite_authorization(&request, "host;my-header1;my-header2;x-amz-date",
                              "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

static void test_suite_post_form_urlencoded(void)
{
    struct sigv4_header headers[] = {{"Content-Type", "application/x-www-form-urlencoded"}};
    struct sigv4_request request = suite_request();
    uint8_t digest[32];
    char payload_hash[SIGV4_HEX_SHA256_SIZE];

    sigv4_sha256("Param1=value1", strlen("Param1=value1"), digest);
    sigv4_hex(digest, payload_hash);
    CHECK_STR_EQ("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e", payload_hash);

    request.method = "POST";
    request.headers = headers;
    request.header_count = 1;
    request.payload_hash = payload_hash;
    check_suite_authorization(&request, "content-type;host;x-amz-date",
                              "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

/* The session token is signed as the x-amz-security-token header. The
 * expected value was computed by botocore 1.43 SigV4Auth for this request. */
static void test_session_token_signed(void)
{
    struct sigv4_request request = suite_request();
    struct aws_credentials credentials = suite_credentials();

    strcpy(credentials.session_token,
           "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267");
    check_authorization(&request, &credentials,
                        "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE
                        ", SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
                        "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
}

static void test_s3_get_object_range(void)
{
    struct sigv4_header headers[] = {{"Range", "bytes=0-9"},
                                     {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
    struct sigv4_request request = s3_example_request("GET", "/test.txt");
    struct aws_credentials credentials = s3_example_credentials();

    request.headers = headers;
    request.header_count = 2;
    check_canonical(&request, &credentials,
                    "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
                    "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
                    "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
    check_authorization(&request, &credentials,
                        "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
                        ", SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature="
                        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_s3_put_object(void)
{
    const char *body_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    struct sigv4_header headers[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                                     {"x-amz-content-sha256", body_hash}};
    struct sigv4_request request = s3_example_request("PUT", "/test$file.text");
    struct aws_credentials credentials = s3_example_credentials();

    request.headers = headers;
    request.header_count = 3;
    request.payload_hash = body_hash;
    check_canonical(&request, &credentials,
                    "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
                    "host:examplebucket.s3.amazonaws.com\n"
                    "x-amz-content-sha256:"
                    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
                    "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
                    "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    check_authorization(&request, &credentials,
                        "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
                        ", SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
                        "x-amz-storage-class, Signature="
                        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void test_s3_get_bucket_lifecycle(void)
{
    struct sigv4_header headers[] = {{"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
    struct sigv4_param params[] = {{"lifecycle", ""}};
    struct sigv4_request request = s3_example_request("GET", "/");
    struct aws_credentials credentials = s3_example_credentials();

    request.headers = headers;
    request.header_count = 1;
    request.params = params;
    request.param_count = 1;
    check_authorization(&request, &credentials,
                        "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
                        ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
                        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void test_s3_list_objects(void)
{
    struct sigv4_header headers[] = {{"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
    struct sigv4_param params[] = {{"prefix", "J"}, {"max-keys", "2"}};
    struct sigv4_request request = s3_example_request("GET", "/");
    struct aws_credentials credentials = s3_example_credentials();

    request.headers = headers;
    request.header_count = 1;
    request.params = params;
    request.param_count = 2;
    check_canonical(&request, &credentials,
                    "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
                    "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
                    "host;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
    check_authorization(&request, &credentials,
                        "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
                        ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
                        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void test_s3_presigned_get(void)
{
    struct sigv4_request request = s3_example_request("GET", "/test.txt");
    struct aws_credentials credentials = s3_example_credentials();
    stow_buf query;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&query, 1 << 16);
    request.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
    CHECK_INT_EQ(0, sigv4_presign(&request, &credentials, 86400, &query, &err));
    CHECK_STR_EQ("X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                 "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                 "&X-Amz-Signature="
                 "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
                 (const char *)query.data);
    stow_buf_free(&query);
}

static void test_presign_rejects_bad_expiry(void)
{
    struct sigv4_request request = s3_example_request("GET", "/test.txt");
    struct aws_credentials credentials = s3_example_credentials();
    stow_buf query;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&query, 1 << 16);
    CHECK_INT_EQ(-1, sigv4_presign(&request, &credentials, 604801, &query, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "604801");
    stow_buf_free(&query);
}

/* Presigning with a session token puts X-Amz-Security-Token in the signed
 * query, as botocore's SigV4QueryAuth does for RDS presigned URLs. */
static void test_presign_with_session_token(void)
{
    struct sigv4_param params[] = {{"Action", "CopyDBSnapshot"}};
    struct sigv4_request request = suite_request();
    struct aws_credentials credentials = suite_credentials();
    stow_buf query;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&query, 1 << 16);
    strcpy(credentials.session_token, "token/with+chars");
    request.service = "rds";
    request.params = params;
    request.param_count = 1;
    CHECK_INT_EQ(0, sigv4_presign(&request, &credentials, 3600, &query, &err));
    CHECK_CONTAINS((const char *)query.data, "Action=CopyDBSnapshot&X-Amz-Algorithm=");
    CHECK_CONTAINS((const char *)query.data, "&X-Amz-Security-Token=token%2Fwith%2Bchars&");
    CHECK_CONTAINS((const char *)query.data, "&X-Amz-SignedHeaders=host&X-Amz-Signature=");
    stow_buf_free(&query);
}

/* Services other than S3 sign the encoded path encoded a second time. */
static void test_non_s3_path_double_encoded(void)
{
    struct sigv4_request request = suite_request();
    struct aws_credentials credentials = suite_credentials();

    request.path = "/a b";
    check_canonical(&request, &credentials,
                    "GET\n/a%2520b\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                    "host;x-amz-date\n" SIGV4_EMPTY_SHA256);

    request.service = "s3";
    check_canonical(&request, &credentials,
                    "GET\n/a%20b\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                    "host;x-amz-date\n" SIGV4_EMPTY_SHA256);
}

static void test_sign_rejects_relative_path(void)
{
    struct sigv4_request request = suite_request();
    struct aws_credentials credentials = suite_credentials();
    struct sigv4_signature signature;
    stow_error err;

    stow_error_clear(&err);
    request.path = "test.txt";
    CHECK_INT_EQ(-1, sigv4_sign(&request, &credentials, &signature, &err));
    CHECK_CONTAINS(err.message, "does not start with '/'");
}

/* No message of the signer may contain the secret key. */
static void test_errors_omit_secret(void)
{
    struct sigv4_request request = suite_request();
    struct aws_credentials credentials = suite_credentials();
    struct sigv4_signature signature;
    stow_error err;

    stow_error_clear(&err);
    request.region = NULL;
    CHECK_INT_EQ(-1, sigv4_sign(&request, &credentials, &signature, &err));
    CHECK(strstr(err.message, credentials.secret_access_key) == NULL);
    CHECK(strstr(signature.authorization, credentials.secret_access_key) == NULL);
}

int main(void)
{
    unit_run("amz date format", test_amz_date_format);
    unit_run("sha256 of s3 example body", test_sha256_of_s3_example_body);
    unit_run("uri encode rules", test_uri_encode_rules);
    unit_run("suite get-vanilla", test_suite_get_vanilla);
    unit_run("suite get-unreserved", test_suite_get_unreserved);
    unit_run("suite get-vanilla-query-order-key-case", test_suite_query_order_key_case);
    unit_run("suite get-vanilla-query-order-value", test_suite_query_order_value);
    unit_run("suite get-vanilla-utf8-query", test_suite_utf8_query);
    unit_run("suite get-header-key-duplicate", test_suite_header_key_duplicate);
    unit_run("suite get-header-value-order", test_suite_header_value_order);
    unit_run("suite get-header-value-trim", test_suite_header_value_trim);
    unit_run("suite post-x-www-form-urlencoded", test_suite_post_form_urlencoded);
    unit_run("session token signed", test_session_token_signed);
    unit_run("s3 get object range", test_s3_get_object_range);
    unit_run("s3 put object", test_s3_put_object);
    unit_run("s3 get bucket lifecycle", test_s3_get_bucket_lifecycle);
    unit_run("s3 list objects", test_s3_list_objects);
    unit_run("s3 presigned get", test_s3_presigned_get);
    unit_run("presign rejects bad expiry", test_presign_rejects_bad_expiry);
    unit_run("presign with session token", test_presign_with_session_token);
    unit_run("non-s3 path double encoded", test_non_s3_path_double_encoded);
    unit_run("sign rejects relative path", test_sign_rejects_relative_path);
    unit_run("errors omit secret", test_errors_omit_secret);
    return unit_finish();
}
