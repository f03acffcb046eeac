/* Password redaction in error messages and log lines, and outside text
 * in text log lines. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
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

/* Logs message at warn level in text format and returns what reached
 * stderr in out. */
static void capture_text_log(const char *message, char *out, size_t size)
{
    FILE *capture = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t length;

    fflush(stderr);
    dup2(fileno(capture), STDERR_FILENO);
    stow_log(STOW_LOG_WARN, "%s", message);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);

    rewind(capture);
    length = fread(out, 1, size - 1, capture);
    out[length] = '\0';
    fclose(capture);
}

static void test_log_lines_contain_outside_text(void)
{
    char line[1024];

    capture_text_log("value \"de\nDE\" rejected", line, sizeof line);
    CHECK_CONTAINS(line, "value \"de\n  DE\" rejected\n");
    capture_text_log("bell\a and escape\x1b[2J and tab\t", line, sizeof line);
    CHECK_CONTAINS(line, "bell? and escape?[2J and tab\t\n");
    capture_text_log("failed\n  hint: do this", line, sizeof line);
    CHECK_CONTAINS(line, "failed\n  hint: do this\n");
    capture_text_log("c1 \xc2\x9b" "31m and \xc3\xa9", line, sizeof line);
    CHECK_CONTAINS(line, "c1 ?31m and \xc3\xa9\n");
    CHECK(!stow_has_control_characters("de-DE u-ks-level2 caf\xc3\xa9"));
    CHECK(stow_has_control_characters("de\nDE"));
    CHECK(stow_has_control_characters("del\x7f"));
    CHECK(stow_has_control_characters("next line \xc2\x85"));
}

static void test_errors_are_one_clean_line(void)
{
    stow_error err = {0};

    stow_fail(&err, STOW_EXIT_USAGE, "the database %s already exists", "ev\n2026 error\x1b[31m");
    CHECK_STR_EQ("the database ev 2026 error?[31m already exists", err.message);
    stow_error_hint(&err, "drop \xc2\x9b" "31m first");
    CHECK_STR_EQ("drop ?31m first", err.hint);
    stow_error_prefix(&err, "restore of\t%s", "x\r");
    CHECK_STR_EQ("restore of x : the database ev 2026 error?[31m already exists", err.message);
}

int main(void)
{
    unit_run("redaction of URI passwords", test_uri_passwords);
    unit_run("redaction of password keywords", test_keyword_passwords);
    unit_run("recorded errors are redacted", test_errors_are_redacted);
    unit_run("text log lines contain outside text", test_log_lines_contain_outside_text);
    unit_run("errors are one clean line", test_errors_are_one_clean_line);
    return unit_finish();
}
