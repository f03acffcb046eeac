/* Retention: which backups of one catalog name to keep, and why.
 *
 * Pure logic over a list of backups: it reads nothing from the repository,
 * and the only file it may open is the system's tz database (through the C
 * library) when a time zone other than UTC is given. The rules, documented
 * for operators in docs/RETENTION.md, follow restic's "forget":
 *
 * - keep_last N keeps the N newest backups ("last N").
 * - keep_daily, keep_weekly and keep_monthly N walk the backups from newest
 *   to oldest and keep the newest backup of each distinct calendar day
 *   ("daily 2026-12-03"), ISO 8601 week ("weekly 2026-W53") or month
 *   ("monthly 2026-12"), until N periods have a kept backup. Periods
 *   without a backup (missed nights) are not counted, so N daily periods
 *   can span more than N days. Each rule runs on the whole list: a backup
 *   kept by one rule still counts for the others (restic; Borg differs).
 * - keep_within D keeps every backup that started at most D seconds before
 *   `now`, and any that started after it ("within 7d"). Unlike restic,
 *   which measures from the newest backup, the age is measured from `now`.
 * - Whatever the policy, the newest backup ("newest"), the newest backup
 *   whose last verification passed ("newest verified") and every held
 *   backup ("held") are kept. When the newest backups all failed their
 *   last verification, so is the newest unverified one below them
 *   ("newest not failed").
 *
 * A backup is kept when any rule keeps it. Its decision lists every rule
 * that applies, in the order of the list above.
 *
 * Time zones. Calendar periods are taken in policy->time_zone: NULL or
 * "UTC" uses gmtime_r. Any other value is a TZ setting for the C library:
 * an IANA name such as "Europe/Berlin" (a file of the tz database under
 * TZDIR, default /usr/share/zoneinfo) or a POSIX TZ string such as
 * "EST5EDT,M3.2.0,M11.1.0". glibc has no per-call zone, so retention_decide
 * sets TZ in the environment for the duration of the call when it differs,
 * under a mutex, and restores it. Changing the environment races with
 * other threads that read it. A program with threads therefore sets TZ to
 * the zone before it starts them, as stowage expire does, and
 * retention_decide then leaves the environment alone. */
#ifndef STOWAGE_RETENTION_H
#define STOWAGE_RETENTION_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"

#define RETENTION_MAX_REASONS 9 /* one per rule: every rule can apply at once */
#define RETENTION_REASON_MAX 40

/* The facts about one backup that the rules use. */
struct retention_backup {
    const char *id;                /* borrowed; ties in both times sort by id */
    time_t started_at;             /* UTC */
    int verified;                  /* at least one verification is recorded */
    int last_verification_passed;  /* the newest recorded verification passed */
    int held;                      /* a hold is placed on the backup */
    time_t finished_at;            /* UTC; orders backups started in one second */
    long started_at_us;            /* microseconds past started_at; 0 when not known */
    long finished_at_us;           /* microseconds past finished_at; 0 when not known */
};

struct retention_policy {
    int keep_last;          /* 0: rule off */
    int keep_daily;         /* 0: rule off */
    int keep_weekly;        /* 0: rule off */
    int keep_monthly;       /* 0: rule off */
    int64_t keep_within;    /* seconds; 0: rule off */
    const char *time_zone;  /* zone of the calendar periods; NULL: UTC */
};

/* The outcome for one backup. */
struct retention_decision {
    int keep;
    size_t reason_count;  /* 0 exactly when the backup expires */
    char reasons[RETENTION_MAX_REASONS][RETENTION_REASON_MAX];
};

/* Returns 1 when no keep rule is on (keep_last, keep_daily, keep_weekly,
 * keep_monthly and keep_within all 0). */
int retention_policy_is_empty(const struct retention_policy *policy);

/* Checks a time zone as described above: an IANA name must exist in the tz
 * database, a POSIX TZ string must start with a zone name and an offset.
 * Fails with STOW_EXIT_USAGE naming the zone. NULL and "UTC" pass. */
int retention_check_time_zone(const char *zone, stow_error *err);

/* Decides keep or expire for each of count backups (in any order), at
 * time now. decisions has count entries, in the order of backups. Fails
 * with STOW_EXIT_USAGE for an empty policy, a negative count or duration,
 * or an unknown time zone. */
int retention_decide(const struct retention_backup *backups, size_t count,
                     const struct retention_policy *policy, time_t now,
                     struct retention_decision *decisions, stow_error *err);

/* Joins the reasons of decision with ", " into out ("" when it expires). */
void retention_reasons_text(const struct retention_decision *decision, char *out, size_t size);

#endif
