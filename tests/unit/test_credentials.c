/* Credential sources and the caching provider: environment, profiles in
 * the shared files, STS and metadata response parsing, endpoint rules and
 * refresh timing. Nothing here opens a connection: instance metadata is
 * disabled for the whole program, and the container and STS tests stop at
 * URL building or parsing. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/credentials.h"
#include "aws/imds.h"
#include "aws/sts.h"

static char temp_dir[] = "/tmp/stowage-credentials-XXXXXX";
static char config_path[256];
static char credentials_path[256];

static void write_file(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");

    CHECK(file != NULL);
    if (file == NULL)
        return;
    fputs(text, file);
    fclose(file);
}

static const char *const aws_variables[] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "STOWAGE_CREDENTIALS_REFRESH_MARGIN",
};

/* Clears every variable the chain reads and points both shared files at
 * files of this test that start empty. */
static void reset_environment(void)
{
    for (size_t i = 0; i < sizeof aws_variables / sizeof aws_variables[0]; i++)
        unsetenv(aws_variables[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_CONFIG_FILE", config_path, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", credentials_path, 1);
    write_file(config_path, "");
    write_file(credentials_path, "");
}

static void test_environment_source(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(1, aws_credentials_from_environment(&credentials, &err));

    setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT1", 1);
    CHECK_INT_EQ(-1, aws_credentials_from_environment(&credentials, &err));
    CHECK_CONTAINS(err.message, "AWS_SECRET_ACCESS_KEY is not");

    stow_error_clear(&err);
    setenv("AWS_SECRET_ACCESS_KEY", "environment-secret", 1);
    setenv("AWS_SESSION_TOKEN", "environment-token", 1);
    CHECK_INT_EQ(0, aws_credentials_from_environment(&credentials, &err));
    CHECK_STR_EQ("AKIDENVIRONMENT1", credentials.access_key_id);
    CHECK_STR_EQ("environment-secret", credentials.secret_access_key);
    CHECK_STR_EQ("environment-token", credentials.session_token);
    CHECK_INT_EQ(0, credentials.expiration);
    CHECK_CONTAINS(credentials.source, "environment");
}

static void test_describe_shows_key_suffix_only(void)
{
    struct aws_credentials credentials;
    char text[1024];

    memset(&credentials, 0, sizeof credentials);
    strcpy(credentials.access_key_id, "ASIAEXAMPLEKEY1234");
    strcpy(credentials.secret_access_key, "very-secret");
    strcpy(credentials.session_token, "very-token");
    strcpy(credentials.source, "somewhere");
    credentials.expiration = 1700000000;
    aws_credentials_describe(&credentials, text, sizeof text);
    CHECK_STR_EQ("somewhere (access key id ending 1234, expiring at 2023-11-14T22:13:20Z)", text);
    CHECK(strstr(text, "ASIAEXAMPLE") == NULL);
    CHECK(strstr(text, "very-secret") == NULL);
    CHECK(strstr(text, "very-token") == NULL);

    strcpy(credentials.access_key_id, "AKID");
    credentials.expiration = 0;
    aws_credentials_describe(&credentials, text, sizeof text);
    CHECK_STR_EQ("somewhere (long-term key)", text);
}

static void test_profile_static_keys(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    write_file(credentials_path, "[default]\naws_access_key_id = AKIDDEFAULT\n"
                                 "aws_secret_access_key = default-secret\n\n"
                                 "[ops]\n  aws_access_key_id=AKIDOPS  \n"
                                 "aws_secret_access_key=ops-secret\naws_session_token = ops-token\n");
    CHECK_INT_EQ(0, aws_credentials_from_profile("default", 0, &credentials, &err));
    CHECK_STR_EQ("AKIDDEFAULT", credentials.access_key_id);
    CHECK_STR_EQ("default-secret", credentials.secret_access_key);
    CHECK_CONTAINS(credentials.source, credentials_path);
    CHECK_CONTAINS(credentials.source, "profile default");

    CHECK_INT_EQ(0, aws_credentials_from_profile("ops", 1, &credentials, &err));
    CHECK_STR_EQ("ops-secret", credentials.secret_access_key);
    CHECK_STR_EQ("ops-token", credentials.session_token);
}

static void test_config_file_profile_sections(void)
{
    struct aws_credentials credentials;
    char region[64];
    stow_error err = {0};

    reset_environment();
    write_file(config_path, "[default]\nregion = eu-west-1\n"
                            "[profile ops]\nregion = eu-central-1\n"
                            "aws_access_key_id = AKIDCONFIG\naws_secret_access_key = config-secret\n"
                            "s3 =\n  region = ignored-nested\n"
                            "[ops]\naws_access_key_id = AKIDWRONGSECTION\n");
    CHECK_INT_EQ(0, aws_credentials_from_profile("ops", 1, &credentials, &err));
    CHECK_STR_EQ("AKIDCONFIG", credentials.access_key_id);
    CHECK_CONTAINS(credentials.source, config_path);

    CHECK_INT_EQ(0, aws_config_profile_value("ops", "region", region, sizeof region, &err));
    CHECK_STR_EQ("eu-central-1", region);
    CHECK_INT_EQ(0, aws_config_profile_value("default", "region", region, sizeof region, &err));
    CHECK_STR_EQ("eu-west-1", region);
    CHECK_INT_EQ(1, aws_config_profile_value("ops", "output", region, sizeof region, &err));

    /* The default profile has settings but no keys: the chain goes on. */
    CHECK_INT_EQ(1, aws_credentials_from_profile("default", 0, &credentials, &err));
}

static void test_credentials_file_wins_over_config(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    write_file(config_path, "[profile ops]\naws_access_key_id = AKIDCONFIG\n"
                            "aws_secret_access_key = config-secret\n");
    write_file(credentials_path, "[ops]\naws_access_key_id = AKIDCREDENTIALS\n"
                                 "aws_secret_access_key = credentials-secret\n");
    CHECK_INT_EQ(0, aws_credentials_from_profile("ops", 1, &credentials, &err));
    CHECK_STR_EQ("AKIDCREDENTIALS", credentials.access_key_id);
    CHECK_STR_EQ("credentials-secret", credentials.secret_access_key);
    CHECK_CONTAINS(credentials.source, credentials_path);
}

static void test_profile_errors(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(1, aws_credentials_from_profile("default", 0, &credentials, &err));
    CHECK_INT_EQ(-1, aws_credentials_from_profile("missing", 1, &credentials, &err));
    CHECK_CONTAINS(err.message, "has no profile missing, and the config file");
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);

    stow_error_clear(&err);
    write_file(credentials_path, "[half]\naws_access_key_id = AKIDHALF\n");
    CHECK_INT_EQ(-1, aws_credentials_from_profile("half", 1, &credentials, &err));
    CHECK_CONTAINS(err.message, "no aws_secret_access_key");

    stow_error_clear(&err);
    write_file(config_path, "[profile process]\ncredential_process = /bin/echo\n"
                            "[profile lonely]\nrole_arn = arn:aws:iam::123456789012:role/r\n"
                            "[profile badsource]\nrole_arn = arn:aws:iam::123456789012:role/r\n"
                            "credential_source = Somewhere\n");
    CHECK_INT_EQ(-1, aws_credentials_from_profile("process", 1, &credentials, &err));
    CHECK_CONTAINS(err.message, "uses credential_process, which stowage does not support");

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, aws_credentials_from_profile("lonely", 1, &credentials, &err));
    CHECK_CONTAINS(err.message, "has role_arn but no source_profile");

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, aws_credentials_from_profile("badsource", 1, &credentials, &err));
    CHECK_CONTAINS(err.message, "credential_source = Somewhere");
}

static void test_source_profile_loop_detected(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    write_file(config_path, "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\n"
                            "source_profile = b\n"
                            "[profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\n"
                            "source_profile = a\n");
    CHECK_INT_EQ(-1, aws_credentials_from_profile("a", 1, &credentials, &err));
    CHECK_CONTAINS(err.message, "longer than 5 profiles or contains a loop");

    stow_error_clear(&err);
    write_file(config_path, "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\n"
                            "source_profile = nowhere\n");
    CHECK_INT_EQ(-1, aws_credentials_from_profile("a", 1, &credentials, &err));
    CHECK_CONTAINS(err.message, "has no profile nowhere");
}

static void test_legacy_file_reader(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    write_file(credentials_path, "[ops]\naws_access_key_id = AKIDOPS\n"
                                 "aws_secret_access_key = ops-secret\n");
    CHECK_INT_EQ(0, aws_credentials_from_file(credentials_path, "ops", &credentials, &err));
    CHECK_STR_EQ("AKIDOPS", credentials.access_key_id);
    CHECK_INT_EQ(-1, aws_credentials_from_file(credentials_path, "other", &credentials, &err));
    CHECK_CONTAINS(err.message, "has no profile other");
    CHECK_INT_EQ(1, aws_credentials_from_file("/nonexistent/credentials", "ops", &credentials,
                                              &err));
}

static const char assume_role_response[] =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    "<AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>"
    "</AssumedRoleUser><Credentials><AccessKeyId>ASIAROLEKEY00001</AccessKeyId>"
    "<SecretAccessKey>role-secret</SecretAccessKey><SessionToken>role-token</SessionToken>"
    "<Expiration>2030-01-02T03:04:05Z</Expiration></Credentials></AssumeRoleResult>"
    "<ResponseMetadata><RequestId>abc</RequestId></ResponseMetadata></AssumeRoleResponse>";

static const char web_identity_response[] =
    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    "<AssumeRoleWithWebIdentityResult><Credentials>"
    "<SessionToken>web-token</SessionToken><SecretAccessKey>web-secret</SecretAccessKey>"
    "<Expiration>2030-01-02T03:04:05.000Z</Expiration><AccessKeyId>ASIAWEBKEY000002</AccessKeyId>"
    "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";

static void test_sts_parse_credentials(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    memset(&credentials, 0, sizeof credentials);
    CHECK_INT_EQ(0, sts_parse_credentials(assume_role_response, strlen(assume_role_response),
                                          &credentials, &err));
    CHECK_STR_EQ("ASIAROLEKEY00001", credentials.access_key_id);
    CHECK_STR_EQ("role-secret", credentials.secret_access_key);
    CHECK_STR_EQ("role-token", credentials.session_token);
    CHECK_INT_EQ(1893553445, credentials.expiration);

    CHECK_INT_EQ(0, sts_parse_credentials(web_identity_response, strlen(web_identity_response),
                                          &credentials, &err));
    CHECK_STR_EQ("ASIAWEBKEY000002", credentials.access_key_id);
    CHECK_STR_EQ("web-token", credentials.session_token);
    CHECK_INT_EQ(1893553445, credentials.expiration);
}

static void test_sts_parse_rejects_incomplete(void)
{
    static const char missing_secret[] =
        "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>"
        "<SessionToken>t</SessionToken><Expiration>2030-01-02T03:04:05Z</Expiration>"
        "</Credentials></AssumeRoleResult></AssumeRoleResponse>";
    static const char other_document[] = "<GetCallerIdentityResponse/>";
    struct aws_credentials credentials;
    stow_error err = {0};

    memset(&credentials, 0, sizeof credentials);
    CHECK_INT_EQ(-1, sts_parse_credentials(missing_secret, strlen(missing_secret), &credentials,
                                           &err));
    CHECK_CONTAINS(err.message, "no complete Credentials element");
    CHECK_STR_EQ("", credentials.access_key_id);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, sts_parse_credentials(other_document, strlen(other_document), &credentials,
                                           &err));
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, sts_parse_credentials("not xml", 7, &credentials, &err));
}

static void test_sts_endpoint_rules(void)
{
    char url[256];
    char region[64];
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(0, sts_endpoint("eu-west-1", url, sizeof url, region, sizeof region, &err));
    CHECK_STR_EQ("https://sts.eu-west-1.amazonaws.com", url);
    CHECK_STR_EQ("eu-west-1", region);
    CHECK_INT_EQ(0, sts_endpoint(NULL, url, sizeof url, region, sizeof region, &err));
    CHECK_STR_EQ("https://sts.amazonaws.com", url);
    CHECK_STR_EQ("us-east-1", region);

    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/", 1);
    CHECK_INT_EQ(0, sts_endpoint("eu-west-1", url, sizeof url, region, sizeof region, &err));
    CHECK_STR_EQ("http://127.0.0.1:1/", url);
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2", 1);
    CHECK_INT_EQ(0, sts_endpoint("eu-west-1", url, sizeof url, region, sizeof region, &err));
    CHECK_STR_EQ("http://127.0.0.1:2", url);
    CHECK_STR_EQ("eu-west-1", region);
}

static void test_web_identity_needs_role_arn(void)
{
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(1, sts_credentials_from_web_identity_env(&credentials, &err));
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
    CHECK_INT_EQ(-1, sts_credentials_from_web_identity_env(&credentials, &err));
    CHECK_CONTAINS(err.message, "AWS_ROLE_ARN is not");

    /* An unreadable token file fails before any request. */
    stow_error_clear(&err);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9", 1);
    CHECK_INT_EQ(-1, sts_credentials_from_web_identity_env(&credentials, &err));
    CHECK_CONTAINS(err.message, "reading the web identity token file /nonexistent/token");
}

static void test_metadata_document_parsing(void)
{
    static const char ok[] = "{\"Code\": \"Success\", \"AccessKeyId\": \"ASIAIMDSKEY00003\", "
                             "\"SecretAccessKey\": \"imds-secret\", \"Token\": \"imds-token\", "
                             "\"Expiration\": \"2030-01-02T03:04:05Z\", \"Type\": \"AWS-HMAC\"}";
    static const char container[] = "{\"AccessKeyId\": \"ASIACONTAINER004\", "
                                    "\"SecretAccessKey\": \"c-secret\", \"Token\": \"c-token\", "
                                    "\"Expiration\": \"2030-01-02T03:04:05Z\"}";
    static const char failed[] = "{\"Code\": \"AssumeRoleUnauthorizedAccess\"}";
    static const char no_secret[] = "{\"AccessKeyId\": \"ASIA5\", \"Token\": \"t\"}";
    struct aws_credentials credentials;
    stow_error err = {0};

    memset(&credentials, 0, sizeof credentials);
    CHECK_INT_EQ(0, imds_parse_credentials(ok, strlen(ok), "imds", &credentials, &err));
    CHECK_STR_EQ("ASIAIMDSKEY00003", credentials.access_key_id);
    CHECK_STR_EQ("imds-secret", credentials.secret_access_key);
    CHECK_STR_EQ("imds-token", credentials.session_token);
    CHECK_INT_EQ(1893553445, credentials.expiration);

    memset(&credentials, 0, sizeof credentials);
    CHECK_INT_EQ(0, imds_parse_credentials(container, strlen(container), "container",
                                           &credentials, &err));
    CHECK_STR_EQ("c-token", credentials.session_token);

    CHECK_INT_EQ(-1, imds_parse_credentials(failed, strlen(failed), "imds", &credentials, &err));
    CHECK_CONTAINS(err.message, "AssumeRoleUnauthorizedAccess");
    CHECK_STR_EQ("", credentials.secret_access_key);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, imds_parse_credentials(no_secret, strlen(no_secret), "imds", &credentials,
                                            &err));
    CHECK_CONTAINS(err.message, "no usable AccessKeyId and SecretAccessKey");
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, imds_parse_credentials("[1]", 3, "imds", &credentials, &err));
}

static void test_container_url_rules(void)
{
    char url[512];
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(1, container_credentials_url(url, sizeof url, &err));

    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:8080/creds", 1);
    CHECK_INT_EQ(0, container_credentials_url(url, sizeof url, &err));
    CHECK_STR_EQ("http://127.0.0.1:8080/creds", url);

    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.9.8.7/creds", 1);
    CHECK_INT_EQ(0, container_credentials_url(url, sizeof url, &err));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://[::1]:80/creds", 1);
    CHECK_INT_EQ(0, container_credentials_url(url, sizeof url, &err));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials", 1);
    CHECK_INT_EQ(0, container_credentials_url(url, sizeof url, &err));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://credentials.example.com/x", 1);
    CHECK_INT_EQ(0, container_credentials_url(url, sizeof url, &err));

    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://credentials.example.com/x", 1);
    CHECK_INT_EQ(-1, container_credentials_url(url, sizeof url, &err));
    CHECK_CONTAINS(err.message, "must use https, or http to a loopback address");
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    stow_error_clear(&err);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/x", 1);
    CHECK_INT_EQ(-1, container_credentials_url(url, sizeof url, &err));
    stow_error_clear(&err);

    /* The relative form wins and always names the ECS host. */
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
    CHECK_INT_EQ(0, container_credentials_url(url, sizeof url, &err));
    CHECK_STR_EQ("http://169.254.170.2/v2/credentials/abc", url);
}

static void test_instance_metadata_settings(void)
{
    struct aws_credentials credentials;
    char url[256];
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(1, imds_disabled());
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    CHECK_INT_EQ(1, imds_disabled());
    /* Disabled: nothing is contacted and the chain goes on. */
    CHECK_INT_EQ(1, imds_credentials(&credentials, &err));
    setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
    CHECK_INT_EQ(0, imds_disabled());
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);

    CHECK_INT_EQ(0, imds_endpoint(url, sizeof url, &err));
    CHECK_STR_EQ("http://169.254.169.254", url);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6", 1);
    CHECK_INT_EQ(0, imds_endpoint(url, sizeof url, &err));
    CHECK_STR_EQ("http://[fd00:ec2::254]", url);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:4567/", 1);
    CHECK_INT_EQ(0, imds_endpoint(url, sizeof url, &err));
    CHECK_STR_EQ("http://127.0.0.1:4567", url);
}

static void test_refresh_time(void)
{
    CHECK_INT_EQ(1700, aws_credentials_refresh_time(1000, 2000, 300));
    /* A lifetime shorter than the margin: refresh halfway through it. */
    CHECK_INT_EQ(1010, aws_credentials_refresh_time(1000, 1020, 300));
    CHECK_INT_EQ(1000, aws_credentials_refresh_time(1000, 900, 300));

    reset_environment();
    CHECK_INT_EQ(300, aws_credentials_refresh_margin());
    setenv("STOWAGE_CREDENTIALS_REFRESH_MARGIN", "15", 1);
    CHECK_INT_EQ(15, aws_credentials_refresh_margin());
    setenv("STOWAGE_CREDENTIALS_REFRESH_MARGIN", "soon", 1);
    CHECK_INT_EQ(300, aws_credentials_refresh_margin());
}

/* A source for the provider tests: counts calls, hands out key ids with
 * the call number, and fails while fail is set. */
struct counting_source {
    int calls;
    int fail;
    time_t lifetime; /* 0: long-term */
};

static int refresh_counting(struct aws_credentials_provider *provider,
                            struct aws_credentials *out, stow_error *err)
{
    struct counting_source *source = provider->state;

    source->calls++;
    if (source->fail)
        return stow_fail(err, STOW_EXIT_STORAGE, "source unavailable");
    snprintf(out->access_key_id, sizeof out->access_key_id, "ASIACOUNTING%04d", source->calls);
    strcpy(out->secret_access_key, "counting-secret");
    strcpy(out->source, "the counting source");
    out->expiration = source->lifetime != 0 ? time(NULL) + source->lifetime : 0;
    return 0;
}

static void test_provider_caches_and_refreshes(void)
{
    struct counting_source source = {0, 0, 3600};
    struct aws_credentials_provider *provider = NULL;
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    setenv("STOWAGE_CREDENTIALS_REFRESH_MARGIN", "60", 1);
    CHECK_INT_EQ(0, aws_credentials_provider_new(refresh_counting, &source, NULL, &provider,
                                                 &err));
    CHECK_INT_EQ(60, provider->refresh_margin);
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_INT_EQ(1, source.calls);
    CHECK_STR_EQ("ASIACOUNTING0001", credentials.access_key_id);

    /* Inside the margin: the next get refreshes. */
    provider->current.expiration = time(NULL) + 30;
    provider->refresh_at = time(NULL) - 1;
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_INT_EQ(2, source.calls);
    CHECK_STR_EQ("ASIACOUNTING0002", credentials.access_key_id);

    /* ExpiredToken: the cache is dropped. */
    aws_credentials_provider_invalidate(provider);
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_INT_EQ(3, source.calls);
    CHECK_STR_EQ("ASIACOUNTING0003", credentials.access_key_id);
    aws_credentials_provider_free(provider);
}

static void test_provider_keeps_valid_after_failed_refresh(void)
{
    struct counting_source source = {0, 0, 3600};
    struct aws_credentials_provider *provider = NULL;
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(0, aws_credentials_provider_new(refresh_counting, &source, NULL, &provider,
                                                 &err));
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));

    /* Due for refresh but still valid for 100 s: the failure is a warning. */
    source.fail = 1;
    provider->current.expiration = time(NULL) + 100;
    provider->refresh_at = time(NULL);
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_INT_EQ(2, source.calls);
    CHECK_STR_EQ("ASIACOUNTING0001", credentials.access_key_id);
    CHECK(provider->refresh_at > time(NULL));
    CHECK(!stow_error_is_set(&err));

    /* Once invalidated there is nothing to fall back on. */
    aws_credentials_provider_invalidate(provider);
    CHECK_INT_EQ(-1, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_CONTAINS(err.message, "source unavailable");
    aws_credentials_provider_free(provider);
}

static void test_default_chain_order(void)
{
    struct aws_credentials_provider *provider = NULL;
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    write_file(credentials_path, "[default]\naws_access_key_id = AKIDFILEDEFAULT\n"
                                 "aws_secret_access_key = file-secret\n");
    setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT1", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "environment-secret", 1);
    CHECK_INT_EQ(0, aws_credentials_provider_new_default(&provider, &err));
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_STR_EQ("AKIDENVIRONMENT1", credentials.access_key_id);
    aws_credentials_provider_free(provider);

    unsetenv("AWS_ACCESS_KEY_ID");
    CHECK_INT_EQ(0, aws_credentials_provider_new_default(&provider, &err));
    CHECK_INT_EQ(0, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_STR_EQ("AKIDFILEDEFAULT", credentials.access_key_id);
    aws_credentials_provider_free(provider);
}

static void test_default_chain_without_credentials(void)
{
    struct aws_credentials_provider *provider = NULL;
    struct aws_credentials credentials;
    stow_error err = {0};

    reset_environment();
    CHECK_INT_EQ(0, aws_credentials_provider_new_default(&provider, &err));
    CHECK_INT_EQ(-1, aws_credentials_provider_get(provider, &credentials, &err));
    CHECK_CONTAINS(err.message, "no AWS credentials found");
    CHECK_CONTAINS(err.message, "instance metadata is disabled");
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    aws_credentials_provider_free(provider);
}

int main(void)
{
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(config_path, sizeof config_path, "%s/config", temp_dir);
    snprintf(credentials_path, sizeof credentials_path, "%s/credentials", temp_dir);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);

    unit_run("environment source", test_environment_source);
    unit_run("describe shows key suffix only", test_describe_shows_key_suffix_only);
    unit_run("profile static keys", test_profile_static_keys);
    unit_run("config file profile sections", test_config_file_profile_sections);
    unit_run("credentials file wins over config", test_credentials_file_wins_over_config);
    unit_run("profile errors", test_profile_errors);
    unit_run("source profile loop detected", test_source_profile_loop_detected);
    unit_run("legacy file reader", test_legacy_file_reader);
    unit_run("sts parse credentials", test_sts_parse_credentials);
    unit_run("sts parse rejects incomplete", test_sts_parse_rejects_incomplete);
    unit_run("sts endpoint rules", test_sts_endpoint_rules);
    unit_run("web identity needs role arn", test_web_identity_needs_role_arn);
    unit_run("metadata document parsing", test_metadata_document_parsing);
    unit_run("container url rules", test_container_url_rules);
    unit_run("instance metadata settings", test_instance_metadata_settings);
    unit_run("refresh time", test_refresh_time);
    unit_run("provider caches and refreshes", test_provider_caches_and_refreshes);
    unit_run("provider keeps valid after failed refresh",
             test_provider_keeps_valid_after_failed_refresh);
    unit_run("default chain order", test_default_chain_order);
    unit_run("default chain without credentials", test_default_chain_without_credentials);

    unlink(config_path);
    unlink(credentials_path);
    rmdir(temp_dir);
    return unit_finish();
}
