/* Password redaction in error messages and log lines. */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "unit.h"

static void check_redacted(const char *input, const char *expected)
{
    char text[512];

    snprintf(text, sizeof text, "%s", input);
    stow_redact_passwords(text);
    CHECK_STR_EQ(expected, text);
}

static void test_uri_passwords(void)
{
    check_redacted("postgresql://app:S3cr3tPw@db:5432/app", "postgresql://app:*****@db:5432/app");
    check_redacted("failed: \"postgresql://u:p@[127.0.0.1:5/x\"", "failed: \"postgresql://u:*@[127.0.0.1:5/x\"");
    check_redacted("postgres://u:p@ss:w@rd@host/db", "postgres://u:*****@host/db");
    check_redacted("postgresql://user@host/db", "postgresql://user@host/db");
    check_redacted("s3://bucket/prefix and https://example.com/a@b",
                   "s3://bucket/prefix and https://example.com/a@b");
}

static void test_keyword_passwords(void)
{
    check_redacted("host=db password=hunter22 user=app", "host=db password=***** user=app");
    check_redacted("password = 'it\\'s a secret' dbname=x", "password = ***** dbname=x");
    check_redacted("PASSWORD=x", "PASSWORD=*");
    check_redacted("wrong passphrase for key.key", "wrong passphrase for key.key");
    check_redacted("password authentication failed for user \"app\"",
                   "password authentication failed for user \"app\"");
}

static void test_errors_are_redacted(void)
{
    stow_error err = {0};

    stow_fail(&err, STOW_EXIT_DATABASE, "connecting to %s failed", "postgresql://a:topsecret@h/d");
    CHECK(strstr(err.message, "topsecret") == NULL);
    stow_error_prefix(&err, "restore into %s", "host=h password=topsecret");
    CHECK(strstr(err.message, "topsecret") == NULL);
    CHECK_CONTAINS(err.message, "password=*****");
}

int main(void)
{
    unit_run("redaction of URI passwords", test_uri_passwords);
    unit_run("redaction of password keywords", test_keyword_passwords);
    unit_run("recorded errors are redacted", test_errors_are_redacted);
    return unit_finish();
}
