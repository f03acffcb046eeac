/* Tests for agent/common/duration.c: option durations. */
#include "unit.h"

#include "common/duration.h"

static int64_t parse_ok(const char *text)
{
    stow_error err = {0};
    int64_t seconds = -1;

    if (stow_duration_parse("--test", text, &seconds, &err) != 0)
        unit_fail(__FILE__, __LINE__, "\"%s\" rejected: %s", text, err.message);
    return seconds;
}

static void test_units(void)
{
    CHECK_INT_EQ(90, parse_ok("90s"));
    CHECK_INT_EQ(600, parse_ok("10m"));
    CHECK_INT_EQ(36 * 3600, parse_ok("36h"));
    CHECK_INT_EQ(7 * 86400, parse_ok("7d"));
    CHECK_INT_EQ(14 * 86400, parse_ok("2w"));
}

static void test_sums(void)
{
    CHECK_INT_EQ(10 * 86400, parse_ok("1w3d"));
    CHECK_INT_EQ(5400, parse_ok("1h30m"));
}

static void test_rejected(void)
{
    static const char *const bad[] = {"", "7", "d", "7x", "7d ", "-1d", "0s", "1y", "1M",
                                      "36500001d", "99999999999999999999s"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stow_error err = {0};
        int64_t seconds = 0;

        unit_checks++;
        if (stow_duration_parse("--keep-within", bad[i], &seconds, &err) != -1)
            unit_fail(__FILE__, __LINE__, "\"%s\" accepted as %lld s", bad[i],
                      (long long)seconds);
        CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
        CHECK_CONTAINS(err.message, "--keep-within");
    }
}

static void test_zero_duration_message(void)
{
    stow_error err = {0};
    int64_t seconds = 0;

    CHECK_INT_EQ(-1, stow_duration_parse("--older-than", "0s", &seconds, &err));
    CHECK_CONTAINS(err.message, "\"0s\" is zero");
    CHECK_CONTAINS(err.hint, "at least 1s");
}

static void test_format(void)
{
    char text[32];

    stow_duration_format(14 * 86400, text, sizeof text);
    CHECK_STR_EQ("2w", text);
    stow_duration_format(10 * 86400, text, sizeof text);
    CHECK_STR_EQ("10d", text);
    stow_duration_format(36 * 3600, text, sizeof text);
    CHECK_STR_EQ("36h", text);
    stow_duration_format(600, text, sizeof text);
    CHECK_STR_EQ("10m", text);
    stow_duration_format(90, text, sizeof text);
    CHECK_STR_EQ("90s", text);
    stow_duration_format(0, text, sizeof text);
    CHECK_STR_EQ("0s", text);
}

int main(void)
{
    unit_run("units", test_units);
    unit_run("sums of units", test_sums);
    unit_run("rejected texts", test_rejected);
    unit_run("zero duration message", test_zero_duration_message);
    unit_run("format in the largest unit", test_format);
    return unit_finish();
}
