/* Tests for formats/retention.c: which backups each rule keeps, and why,
 * on synthetic catalogs. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "formats/manifest.h"
#include "formats/retention.h"

/* One synthetic backup and the reasons expected for it ("" expires it). */
struct case_backup {
    const char *started_at;  /* RFC 3339 UTC, also used as the id */
    const char *expected;
    int held;
    int verified;
    int passed;
};

#define CASE_MAX 16

static time_t parse_time(const char *text)
{
    time_t when = 0;

    if (manifest_parse_time(text, &when) != 0)
        unit_fail(__FILE__, __LINE__, "bad time in test data: %s", text);
    return when;
}

/* Runs the policy on cases at now and checks every decision. */
static void check_decisions(const char *label, const struct case_backup *cases, size_t count,
                            const struct retention_policy *policy, const char *now)
{
    struct retention_backup backups[CASE_MAX] = {{0}};
    struct retention_decision decisions[CASE_MAX];
    stow_error err = {0};
    int rc;

    for (size_t i = 0; i < count; i++) {
        backups[i].id = cases[i].started_at;
        backups[i].started_at = parse_time(cases[i].started_at);
        backups[i].held = cases[i].held;
        backups[i].verified = cases[i].verified;
        backups[i].last_verification_passed = cases[i].passed;
    }
    rc = retention_decide(backups, count, policy, parse_time(now), decisions, &err);
    CHECK_INT_EQ(0, rc);
    if (rc != 0) {
        unit_fail(__FILE__, __LINE__, "%s: %s", label, err.message);
        return;
    }

    for (size_t i = 0; i < count; i++) {
        char reasons[512];

        retention_reasons_text(&decisions[i], reasons, sizeof reasons);
        unit_checks++;
        if (strcmp(cases[i].expected, reasons) != 0)
            unit_fail(__FILE__, __LINE__, "%s: backup %s:\n  expected: \"%s\"\n  actual:   \"%s\"",
                      label, cases[i].started_at, cases[i].expected, reasons);
        unit_checks++;
        if (decisions[i].keep != (cases[i].expected[0] != '\0'))
            unit_fail(__FILE__, __LINE__, "%s: backup %s: keep is %d", label,
                      cases[i].started_at, decisions[i].keep);
    }
}

#define COUNT(cases) (sizeof cases / sizeof cases[0])

static void test_several_backups_per_day(void)
{
    static const struct case_backup cases[] = {
        {"2026-12-01T03:00:00Z", "", 0, 0, 0},
        {"2026-12-01T15:00:00Z", "daily 2026-12-01", 0, 0, 0},
        {"2026-12-02T03:00:00Z", "", 0, 0, 0},
        {"2026-12-02T12:00:00Z", "", 0, 0, 0},
        {"2026-12-02T23:59:59Z", "last 2, daily 2026-12-02", 0, 0, 0},
        {"2026-12-03T01:00:00Z", "last 2, daily 2026-12-03, newest", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_last = 2, .keep_daily = 3};

    check_decisions("several per day", cases, COUNT(cases), &policy, "2026-12-03T02:00:00Z");
}

static void test_input_order_does_not_matter(void)
{
    static const struct case_backup cases[] = {
        {"2026-12-02T12:00:00Z", "", 0, 0, 0},
        {"2026-12-03T01:00:00Z", "last 2, daily 2026-12-03, newest", 0, 0, 0},
        {"2026-12-01T03:00:00Z", "", 0, 0, 0},
        {"2026-12-02T23:59:59Z", "last 2, daily 2026-12-02", 0, 0, 0},
        {"2026-12-01T15:00:00Z", "daily 2026-12-01", 0, 0, 0},
        {"2026-12-02T03:00:00Z", "", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_last = 2, .keep_daily = 3};

    check_decisions("shuffled", cases, COUNT(cases), &policy, "2026-12-03T02:00:00Z");
}

static void test_missed_nights_do_not_count(void)
{
    /* No backups on 3, 4, 6, 7 and 8 December: three daily periods reach
     * back to the 2nd, and two weekly periods to week 49. */
    static const struct case_backup cases[] = {
        {"2026-11-30T03:00:00Z", "", 0, 0, 0},
        {"2026-12-01T03:00:00Z", "", 0, 0, 0},
        {"2026-12-02T03:00:00Z", "daily 2026-12-02", 0, 0, 0},
        {"2026-12-05T03:00:00Z", "daily 2026-12-05, weekly 2026-W49", 0, 0, 0},
        {"2026-12-09T03:00:00Z", "daily 2026-12-09, weekly 2026-W50, newest", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_daily = 3, .keep_weekly = 2};

    check_decisions("missed nights", cases, COUNT(cases), &policy, "2026-12-09T04:00:00Z");
}

static void test_month_ends(void)
{
    static const struct case_backup cases[] = {
        {"2026-01-31T23:30:00Z", "", 0, 0, 0},
        {"2026-02-01T00:30:00Z", "", 0, 0, 0},
        {"2026-02-28T22:00:00Z", "monthly 2026-02", 0, 0, 0},
        {"2026-03-01T02:00:00Z", "", 0, 0, 0},
        {"2026-03-31T23:59:59Z", "monthly 2026-03", 0, 0, 0},
        {"2026-04-01T00:00:00Z", "monthly 2026-04, newest", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_monthly = 3};

    check_decisions("month ends", cases, COUNT(cases), &policy, "2026-04-01T01:00:00Z");
}

static void test_more_periods_than_backups(void)
{
    static const struct case_backup cases[] = {
        {"2026-01-31T23:30:00Z", "monthly 2026-01", 0, 0, 0},
        {"2026-02-01T00:30:00Z", "monthly 2026-02, newest", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_monthly = 12};

    check_decisions("more periods than backups", cases, COUNT(cases), &policy,
                    "2026-02-02T00:00:00Z");
}

static void test_leap_day(void)
{
    /* 2028-02-29 is a Tuesday of ISO week 9; the 27th is the Sunday of week 8. */
    static const struct case_backup cases[] = {
        {"2028-02-27T03:00:00Z", "weekly 2028-W08", 0, 0, 0},
        {"2028-02-28T03:00:00Z", "daily 2028-02-28", 0, 0, 0},
        {"2028-02-29T03:00:00Z", "daily 2028-02-29, monthly 2028-02, within 2d", 0, 0, 0},
        {"2028-03-01T03:00:00Z", "daily 2028-03-01, weekly 2028-W09, monthly 2028-03, "
                                 "within 2d, newest", 0, 0, 0},
    };
    struct retention_policy policy = {
        .keep_daily = 3, .keep_weekly = 2, .keep_monthly = 2, .keep_within = 2 * 86400};

    check_decisions("leap day", cases, COUNT(cases), &policy, "2028-03-01T04:00:00Z");
}

static void test_iso_week_53(void)
{
    /* 2026 has 53 ISO weeks: week 53 runs from Monday 2026-12-28 to Sunday
     * 2027-01-03, across the year boundary. */
    static const struct case_backup cases[] = {
        {"2026-12-27T03:00:00Z", "weekly 2026-W52", 0, 0, 0},
        {"2026-12-28T03:00:00Z", "", 0, 0, 0},
        {"2026-12-31T03:00:00Z", "monthly 2026-12", 0, 0, 0},
        {"2027-01-02T03:00:00Z", "", 0, 0, 0},
        {"2027-01-03T03:00:00Z", "weekly 2026-W53", 0, 0, 0},
        {"2027-01-04T03:00:00Z", "weekly 2027-W01, monthly 2027-01, newest", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_weekly = 3, .keep_monthly = 2};

    check_decisions("ISO week 53", cases, COUNT(cases), &policy, "2027-01-04T04:00:00Z");
}

/* Start times near midnight in New York (UTC-5 in December). */
static const struct case_backup new_york_utc_cases[] = {
    {"2026-12-02T03:00:00Z", "daily 2026-12-02", 0, 0, 0},
    {"2026-12-03T02:00:00Z", "", 0, 0, 0},
    {"2026-12-03T04:30:00Z", "", 0, 0, 0},
    {"2026-12-03T05:30:00Z", "daily 2026-12-03, newest", 0, 0, 0},
};
static const struct case_backup new_york_local_cases[] = {
    {"2026-12-02T03:00:00Z", "daily 2026-12-01", 0, 0, 0},       /* 12-01 22:00 EST */
    {"2026-12-03T02:00:00Z", "", 0, 0, 0},                       /* 12-02 21:00 EST */
    {"2026-12-03T04:30:00Z", "daily 2026-12-02", 0, 0, 0},       /* 12-02 23:30 EST */
    {"2026-12-03T05:30:00Z", "daily 2026-12-03, newest", 0, 0, 0}, /* 12-03 00:30 EST */
};

static void test_zone_west_of_utc(void)
{
    struct retention_policy policy = {.keep_daily = 3};

    check_decisions("New York in UTC", new_york_utc_cases, COUNT(new_york_utc_cases), &policy,
                    "2026-12-03T06:00:00Z");
    policy.time_zone = "EST5EDT,M3.2.0,M11.1.0";
    check_decisions("New York, POSIX TZ", new_york_local_cases, COUNT(new_york_local_cases),
                    &policy, "2026-12-03T06:00:00Z");
}

static void test_zone_by_iana_name(void)
{
    struct retention_policy policy = {.keep_daily = 3, .time_zone = "America/New_York"};
    struct stat st;

    /* The tz database is a package of its own (tzdata) and may be absent. */
    if (stat("/usr/share/zoneinfo/America/New_York", &st) != 0 && getenv("TZDIR") == NULL) {
        printf("note: no tz database; America/New_York not tested\n");
        return;
    }
    check_decisions("New York, IANA name", new_york_local_cases, COUNT(new_york_local_cases),
                    &policy, "2026-12-03T06:00:00Z");
}

static void test_zone_east_of_utc_at_year_end(void)
{
    /* Auckland is UTC+13 in summer: 2026-12-31T12:00Z is already January. */
    static const struct case_backup utc_cases[] = {
        {"2026-12-30T12:00:00Z", "", 0, 0, 0},
        {"2026-12-31T10:00:00Z", "", 0, 0, 0},
        {"2026-12-31T12:00:00Z", "monthly 2026-12, newest", 0, 0, 0},
    };
    static const struct case_backup local_cases[] = {
        {"2026-12-30T12:00:00Z", "", 0, 0, 0},                        /* 12-31 01:00 NZDT */
        {"2026-12-31T10:00:00Z", "monthly 2026-12", 0, 0, 0},         /* 12-31 23:00 NZDT */
        {"2026-12-31T12:00:00Z", "monthly 2027-01, newest", 0, 0, 0}, /* 01-01 01:00 NZDT */
    };
    struct retention_policy policy = {.keep_monthly = 2};

    check_decisions("Auckland in UTC", utc_cases, COUNT(utc_cases), &policy,
                    "2027-01-01T00:00:00Z");
    policy.time_zone = "NZST-12NZDT,M9.5.0,M4.1.0/3";
    check_decisions("Auckland, POSIX TZ", local_cases, COUNT(local_cases), &policy,
                    "2027-01-01T00:00:00Z");
}

static void test_zone_restores_tz(void)
{
    struct retention_policy policy = {.keep_daily = 1, .time_zone = "EST5EDT,M3.2.0,M11.1.0"};
    static const struct case_backup cases[] = {{"2026-12-03T05:30:00Z", "daily 2026-12-03, newest", 0, 0, 0}};

    setenv("TZ", "UTC0", 1);
    check_decisions("TZ restored", cases, COUNT(cases), &policy, "2026-12-03T06:00:00Z");
    CHECK_STR_EQ("UTC0", getenv("TZ"));
    unsetenv("TZ");
    check_decisions("TZ unset", cases, COUNT(cases), &policy, "2026-12-03T06:00:00Z");
    CHECK(getenv("TZ") == NULL);
}

static void test_held_newest_and_verified_survive(void)
{
    static const struct case_backup cases[] = {
        {"2026-12-01T03:00:00Z", "held", 1, 0, 0},
        {"2026-12-02T03:00:00Z", "newest verified", 0, 1, 1},
        {"2026-12-03T03:00:00Z", "", 0, 1, 0}, /* its last verification failed */
        {"2026-12-04T03:00:00Z", "", 0, 0, 0},
        {"2026-12-05T03:00:00Z", "last 1, newest", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_last = 1};

    check_decisions("protections", cases, COUNT(cases), &policy, "2026-12-05T04:00:00Z");
}

static void test_newest_not_failed_survives(void)
{
    /* The two newest failed their verification (a deleted object, say):
     * the unverified backup below them may be the only restorable one. */
    static const struct case_backup cases[] = {
        {"2026-12-02T03:00:00Z", "", 0, 0, 0},
        {"2026-12-03T03:00:00Z", "newest not failed", 0, 0, 0},
        {"2026-12-04T03:00:00Z", "", 0, 1, 0},
        {"2026-12-05T03:00:00Z", "last 1, newest", 0, 1, 0},
    };
    static const struct case_backup verified_below[] = {
        {"2026-12-03T03:00:00Z", "newest verified", 0, 1, 1},
        {"2026-12-05T03:00:00Z", "last 1, newest", 0, 1, 0},
    };
    struct retention_policy policy = {.keep_last = 1};

    check_decisions("newest not failed", cases, COUNT(cases), &policy, "2026-12-05T04:00:00Z");
    check_decisions("a verified one below", verified_below, COUNT(verified_below), &policy,
                    "2026-12-05T04:00:00Z");
}

static void test_newest_is_also_newest_verified(void)
{
    static const struct case_backup cases[] = {
        {"2026-12-04T03:00:00Z", "", 0, 1, 1},
        {"2026-12-05T03:00:00Z", "within 1h, newest, newest verified", 0, 1, 1},
    };
    struct retention_policy policy = {.keep_within = 3600};

    check_decisions("newest verified", cases, COUNT(cases), &policy, "2026-12-05T04:00:00Z");
}

static void test_policy_keeping_nothing_old(void)
{
    /* Every backup is older than the window: only the newest survives. */
    static const struct case_backup cases[] = {
        {"2026-11-01T03:00:00Z", "", 0, 0, 0},
        {"2026-11-02T03:00:00Z", "", 0, 0, 0},
        {"2026-11-03T03:00:00Z", "newest", 0, 0, 0},
    };
    struct retention_policy policy = {.keep_within = 86400};

    check_decisions("all old", cases, COUNT(cases), &policy, "2026-12-05T04:00:00Z");
}

static void test_within_boundaries(void)
{
    static const struct case_backup cases[] = {
        {"2026-12-02T23:59:59Z", "", 0, 0, 0},
        {"2026-12-03T00:00:00Z", "within 1w", 0, 0, 0},
        {"2026-12-11T00:00:00Z", "within 1w, newest", 0, 0, 0}, /* after now: clock skew */
    };
    struct retention_policy policy = {.keep_within = 7 * 86400};

    check_decisions("within 7d", cases, COUNT(cases), &policy, "2026-12-10T00:00:00Z");
}

static void test_within_reason_units(void)
{
    static const struct case_backup cases[] = {{"2026-12-10T00:00:00Z", "within 36h, newest", 0, 0, 0}};
    struct retention_policy policy = {.keep_within = 36 * 3600};

    check_decisions("within 36h", cases, COUNT(cases), &policy, "2026-12-10T01:00:00Z");
}

static void test_equal_start_times_order_by_id(void)
{
    static const struct case_backup cases[] = {
        {"2026-12-10T00:00:00Z", "", 0, 0, 0},
        {"2026-12-10T00:00:00Z+", "daily 2026-12-10, newest", 0, 0, 0},
    };
    struct retention_backup backups[2];
    struct retention_decision decisions[2];
    struct retention_policy policy = {.keep_daily = 1};
    stow_error err = {0};

    for (size_t i = 0; i < 2; i++) {
        backups[i] = (struct retention_backup){cases[i].started_at,
                                               parse_time("2026-12-10T00:00:00Z"), 0, 0, 0, 0, 0, 0};
    }
    CHECK_INT_EQ(0, retention_decide(backups, 2, &policy, parse_time("2026-12-10T01:00:00Z"),
                                     decisions, &err));
    CHECK_INT_EQ(0, decisions[0].keep);
    CHECK_INT_EQ(1, decisions[1].keep);
    CHECK_STR_EQ("newest", decisions[1].reasons[1]);
}

/* Two backups in one second: the microseconds of the start decide which
 * is newest, whatever their random ids say. */
static void test_same_second_orders_by_microseconds(void)
{
    struct retention_backup backups[2] = {
        {.id = "20261210T000000Z-ffffff", .started_at_us = 100, .finished_at_us = 900},
        {.id = "20261210T000000Z-000000", .started_at_us = 950, .finished_at_us = 990},
    };
    struct retention_decision decisions[2];
    struct retention_policy policy = {.keep_last = 1};
    stow_error err = {0};

    for (size_t i = 0; i < 2; i++) {
        backups[i].started_at = parse_time("2026-12-10T00:00:00Z");
        backups[i].finished_at = backups[i].started_at;
    }
    CHECK_INT_EQ(0, retention_decide(backups, 2, &policy, parse_time("2026-12-10T01:00:00Z"),
                                     decisions, &err));
    CHECK_INT_EQ(0, decisions[0].keep);
    CHECK_INT_EQ(1, decisions[1].keep);
    CHECK_STR_EQ("newest", decisions[1].reasons[1]);
}

static void test_every_reason_at_once(void)
{
    static const struct case_backup cases[] = {
        {"2026-12-10T00:00:00Z", "last 1, daily 2026-12-10, weekly 2026-W50, monthly 2026-12, "
                                 "within 1d, held, newest, newest verified", 1, 1, 1},
    };
    struct retention_policy policy = {
        .keep_last = 1, .keep_daily = 1, .keep_weekly = 1, .keep_monthly = 1,
        .keep_within = 86400};

    check_decisions("every reason", cases, COUNT(cases), &policy, "2026-12-10T01:00:00Z");
}

static void test_empty_catalog(void)
{
    struct retention_policy policy = {.keep_last = 1};
    stow_error err = {0};

    CHECK_INT_EQ(0, retention_decide(NULL, 0, &policy, 0, NULL, &err));
}

static void test_empty_policy_is_rejected(void)
{
    struct retention_backup backup = {"a", 0, 0, 0, 0, 0, 0, 0};
    struct retention_decision decision;
    struct retention_policy policy = {0};
    stow_error err = {0};

    CHECK_INT_EQ(1, retention_policy_is_empty(&policy));
    CHECK_INT_EQ(-1, retention_decide(&backup, 1, &policy, 0, &decision, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "no retention policy");
    CHECK_CONTAINS(err.hint, "--keep-last");
}

static void test_negative_count_is_rejected(void)
{
    struct retention_backup backup = {"a", 0, 0, 0, 0, 0, 0, 0};
    struct retention_decision decision;
    struct retention_policy policy = {.keep_last = 1, .keep_daily = -1};
    stow_error err = {0};

    CHECK_INT_EQ(-1, retention_decide(&backup, 1, &policy, 0, &decision, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
}

static void test_time_zone_check(void)
{
    stow_error err = {0};

    CHECK_INT_EQ(0, retention_check_time_zone(NULL, &err));
    CHECK_INT_EQ(0, retention_check_time_zone("UTC", &err));
    CHECK_INT_EQ(0, retention_check_time_zone("EST5EDT,M3.2.0,M11.1.0", &err));
    CHECK_INT_EQ(0, retention_check_time_zone("<+0530>-5:30", &err));
    CHECK_INT_EQ(0, stow_error_is_set(&err));

    CHECK_INT_EQ(-1, retention_check_time_zone("Mars/Olympus_Mons", &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "Mars/Olympus_Mons");

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, retention_check_time_zone("../../etc/passwd", &err));
    stow_error_clear(&err);
    /* No offset and no file: glibc would silently use UTC for it. */
    CHECK_INT_EQ(-1, retention_check_time_zone("XYZ", &err));
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, retention_check_time_zone("", &err));
}

static void test_unknown_zone_is_rejected_by_decide(void)
{
    struct retention_backup backup = {"a", 0, 0, 0, 0, 0, 0, 0};
    struct retention_decision decision;
    struct retention_policy policy = {.keep_last = 1, .time_zone = "Nowhere/City"};
    stow_error err = {0};

    CHECK_INT_EQ(-1, retention_decide(&backup, 1, &policy, 0, &decision, &err));
    CHECK_CONTAINS(err.message, "Nowhere/City");
}

int main(void)
{
    unit_run("several backups per day", test_several_backups_per_day);
    unit_run("input order does not matter", test_input_order_does_not_matter);
    unit_run("missed nights do not count", test_missed_nights_do_not_count);
    unit_run("month ends", test_month_ends);
    unit_run("more periods than backups", test_more_periods_than_backups);
    unit_run("leap day 2028-02-29", test_leap_day);
    unit_run("ISO week 53 across the year", test_iso_week_53);
    unit_run("zone west of UTC", test_zone_west_of_utc);
    unit_run("zone by IANA name", test_zone_by_iana_name);
    unit_run("zone east of UTC at year end", test_zone_east_of_utc_at_year_end);
    unit_run("zone leaves TZ as it was", test_zone_restores_tz);
    unit_run("held, newest and verified survive", test_held_newest_and_verified_survive);
    unit_run("newest is also newest verified", test_newest_is_also_newest_verified);
    unit_run("newest not failed survives", test_newest_not_failed_survives);
    unit_run("old backups keep only the newest", test_policy_keeping_nothing_old);
    unit_run("within boundaries", test_within_boundaries);
    unit_run("within reason units", test_within_reason_units);
    unit_run("equal start times order by id", test_equal_start_times_order_by_id);
    unit_run("same second orders by microseconds", test_same_second_orders_by_microseconds);
    unit_run("every reason at once", test_every_reason_at_once);
    unit_run("empty catalog", test_empty_catalog);
    unit_run("empty policy rejected", test_empty_policy_is_rejected);
    unit_run("negative count rejected", test_negative_count_is_rejected);
    unit_run("time zone check", test_time_zone_check);
    unit_run("unknown zone rejected by decide", test_unknown_zone_is_rejected_by_decide);
    return unit_finish();
}
