/* Retention decisions over a list of backups. retention.h describes the rules. */
#include "retention.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/duration.h"

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define PERIOD_MAX 24

/* The calendar periods of one backup, as the reasons print them. */
struct periods {
    char day[PERIOD_MAX];    /* 2026-12-03 */
    char week[PERIOD_MAX];   /* 2026-W49 (ISO 8601 year and week) */
    char month[PERIOD_MAX];  /* 2026-12 */
};

/* Serialises changes of TZ made by retention_decide. */
static pthread_mutex_t zone_mutex = PTHREAD_MUTEX_INITIALIZER;

int retention_policy_is_empty(const struct retention_policy *policy)
{
    return policy->keep_last == 0 && policy->keep_daily == 0 && policy->keep_weekly == 0 &&
           policy->keep_monthly == 0 && policy->keep_within == 0;
}

static int is_utc(const char *zone)
{
    return zone == NULL || strcmp(zone, "UTC") == 0;
}

/* A POSIX TZ string starts with a zone abbreviation (three or more letters,
 * or <...> quoted) and an offset of up to two hour digits; glibc parses the
 * rest (daylight saving rules). */
static int looks_like_posix_tz(const char *zone)
{
    const char *cursor = zone;
    size_t letters = 0;

    if (*cursor == '<') {
        for (cursor++; *cursor != '\0' && *cursor != '>'; cursor++) {
            if (!isalnum((unsigned char)*cursor) && *cursor != '+' && *cursor != '-')
                return 0;
            letters++;
        }
        if (*cursor != '>')
            return 0;
        cursor++;
    } else {
        for (; isalpha((unsigned char)*cursor); cursor++)
            letters++;
    }
    if (letters < 3)
        return 0;
    if (*cursor == '+' || *cursor == '-')
        cursor++;
    if (!isdigit((unsigned char)cursor[0]))
        return 0;
    return !isdigit((unsigned char)cursor[1]) || !isdigit((unsigned char)cursor[2]);
}

/* An IANA name is a relative path of letters, digits, '_', '+' and '-'
 * segments (no "." or ".." segment) naming a regular file of the tz
 * database. */
static int is_zone_file(const char *zone)
{
    const char *dir = getenv("TZDIR");
    char path[4096];
    struct stat st;
    int segment_start = 1;

    if (zone[0] == '\0' || zone[0] == '/')
        return 0;
    for (const char *cursor = zone; *cursor != '\0'; cursor++) {
        unsigned char c = (unsigned char)*cursor;

        if (c == '/' && !segment_start) {
            segment_start = 1;
            continue;
        }
        if (!isalnum(c) && c != '_' && c != '+' && c != '-')
            return 0;
        segment_start = 0;
    }
    if (segment_start)
        return 0;
    if (dir == NULL || dir[0] == '\0')
        dir = TZ_DEFAULT_DIR;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, zone) >= sizeof path)
        return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int retention_check_time_zone(const char *zone, stow_error *err)
{
    const char *name;

    if (is_utc(zone))
        return 0;
    name = zone[0] == ':' ? zone + 1 : zone;
    if (looks_like_posix_tz(name) || is_zone_file(name))
        return 0;
    stow_fail(err, STOW_EXIT_USAGE, "unknown time zone \"%s\"", zone);
    stow_error_hint(err, "use a name from the tz database such as Europe/Berlin (see %s), "
                         "a POSIX TZ string such as EST5EDT,M3.2.0,M11.1.0, or UTC",
                    getenv("TZDIR") ? getenv("TZDIR") : TZ_DEFAULT_DIR);
    return -1;
}

static int check_policy(const struct retention_policy *policy, stow_error *err)
{
    if (policy->keep_last < 0 || policy->keep_daily < 0 || policy->keep_weekly < 0 ||
        policy->keep_monthly < 0 || policy->keep_within < 0)
        return stow_fail(err, STOW_EXIT_USAGE, "retention counts and durations cannot be "
                                               "negative");
    if (retention_policy_is_empty(policy)) {
        stow_fail(err, STOW_EXIT_USAGE, "no retention policy given: nothing says which "
                                        "backups to keep");
        stow_error_hint(err, "pass at least one of --keep-last, --keep-daily, --keep-weekly, "
                             "--keep-monthly or --keep-within");
        return -1;
    }
    return retention_check_time_zone(policy->time_zone, err);
}

static void format_periods(const struct tm *calendar, struct periods *out)
{
    strftime(out->day, sizeof out->day, "%Y-%m-%d", calendar);
    strftime(out->week, sizeof out->week, "%G-W%V", calendar);
    strftime(out->month, sizeof out->month, "%Y-%m", calendar);
}

static int utc_periods(const struct retention_backup *backups, size_t count,
                       struct periods *out, stow_error *err)
{
    for (size_t i = 0; i < count; i++) {
        struct tm calendar;

        if (gmtime_r(&backups[i].started_at, &calendar) == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "start time of backup %s is out of range",
                             backups[i].id);
        format_periods(&calendar, &out[i]);
    }
    return 0;
}

/* Converts start times to periods of zone with localtime_r. TZ is set for
 * the call only when it has another value (see retention.h). */
static int zone_periods(const struct retention_backup *backups, size_t count, const char *zone,
                        struct periods *out, stow_error *err)
{
    const char *current;
    char *saved = NULL;
    int switched = 0;
    int rc = 0;

    pthread_mutex_lock(&zone_mutex);
    current = getenv("TZ");
    if (current == NULL || strcmp(current, zone) != 0) {
        if (current != NULL && (saved = strdup(current)) == NULL) {
            pthread_mutex_unlock(&zone_mutex);
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        }
        setenv("TZ", zone, 1);
        switched = 1;
    }
    tzset();

    for (size_t i = 0; rc == 0 && i < count; i++) {
        struct tm calendar;

        if (localtime_r(&backups[i].started_at, &calendar) == NULL)
            rc = stow_fail(err, STOW_EXIT_FAILURE, "start time of backup %s is out of range",
                           backups[i].id);
        else
            format_periods(&calendar, &out[i]);
    }

    if (switched) {
        if (saved != NULL)
            setenv("TZ", saved, 1);
        else
            unsetenv("TZ");
        tzset();
    }
    pthread_mutex_unlock(&zone_mutex);
    free(saved);
    return rc;
}

/* A backup and its position in the caller's list, for sorting. */
struct ranked_backup {
    const struct retention_backup *backup;
    size_t index;
};

/* Newest first: later start time, then later finish (both to the
 * microsecond), then the greater id; the catalog orders backups the same
 * way. */
static int compare_newest_first(const void *a, const void *b)
{
    const struct retention_backup *left = ((const struct ranked_backup *)a)->backup;
    const struct retention_backup *right = ((const struct ranked_backup *)b)->backup;

    if (left->started_at != right->started_at)
        return left->started_at > right->started_at ? -1 : 1;
    if (left->started_at_us != right->started_at_us)
        return left->started_at_us > right->started_at_us ? -1 : 1;
    if (left->finished_at != right->finished_at)
        return left->finished_at > right->finished_at ? -1 : 1;
    if (left->finished_at_us != right->finished_at_us)
        return left->finished_at_us > right->finished_at_us ? -1 : 1;
    return -strcmp(left->id, right->id);
}

static void add_reason(struct retention_decision *decision, const char *format, const char *text)
{
    if (decision->reason_count == RETENTION_MAX_REASONS)
        return;
    snprintf(decision->reasons[decision->reason_count], RETENTION_REASON_MAX, format, text);
    decision->reason_count++;
    decision->keep = 1;
}

enum period_kind { PERIOD_DAY, PERIOD_WEEK, PERIOD_MONTH };

static const char *period_of(const struct periods *periods, enum period_kind kind)
{
    if (kind == PERIOD_DAY)
        return periods->day;
    return kind == PERIOD_WEEK ? periods->week : periods->month;
}

/* Keeps the newest backup of each distinct period, newest period first,
 * until limit periods have one. */
static void keep_periods(const size_t *order, size_t count, const struct periods *periods,
                         enum period_kind kind, int limit, const char *label,
                         struct retention_decision *decisions)
{
    const char *last = NULL;
    int kept = 0;

    for (size_t rank = 0; rank < count && kept < limit; rank++) {
        size_t index = order[rank];
        const char *period = period_of(&periods[index], kind);

        if (last != NULL && strcmp(period, last) == 0)
            continue;
        add_reason(&decisions[index], label, period);
        last = period;
        kept++;
    }
}

/* Keeps the newest backup whose last verification did not fail, when
 * newer backups all failed theirs: it may be the only restorable one,
 * verified or not. A verified one is already "newest verified". */
static void keep_newest_not_failed(const struct retention_backup *backups, const size_t *order,
                                   size_t count, struct retention_decision *decisions)
{
    for (size_t rank = 0; rank < count; rank++) {
        const struct retention_backup *backup = &backups[order[rank]];

        if (backup->verified && !backup->last_verification_passed)
            continue;
        if (rank > 0 && !backup->verified)
            add_reason(&decisions[order[rank]], "%s", "newest not failed");
        return;
    }
}

static void apply_rules(const struct retention_backup *backups, const size_t *order,
                        size_t count, const struct retention_policy *policy, time_t now,
                        const struct periods *periods, struct retention_decision *decisions)
{
    char text[32];

    snprintf(text, sizeof text, "%d", policy->keep_last);
    for (size_t rank = 0; rank < count && rank < (size_t)policy->keep_last; rank++)
        add_reason(&decisions[order[rank]], "last %s", text);

    keep_periods(order, count, periods, PERIOD_DAY, policy->keep_daily,
                 "daily %s", decisions);
    keep_periods(order, count, periods, PERIOD_WEEK, policy->keep_weekly,
                 "weekly %s", decisions);
    keep_periods(order, count, periods, PERIOD_MONTH, policy->keep_monthly,
                 "monthly %s", decisions);

    if (policy->keep_within > 0) {
        stow_duration_format(policy->keep_within, text, sizeof text);
        for (size_t i = 0; i < count; i++) {
            if (backups[i].started_at >= now || now - backups[i].started_at <= policy->keep_within)
                add_reason(&decisions[i], "within %s", text);
        }
    }

    for (size_t i = 0; i < count; i++) {
        if (backups[i].held)
            add_reason(&decisions[i], "%s", "held");
    }
    if (count > 0)
        add_reason(&decisions[order[0]], "%s", "newest");
    for (size_t rank = 0; rank < count; rank++) {
        const struct retention_backup *backup = &backups[order[rank]];

        if (backup->verified && backup->last_verification_passed) {
            add_reason(&decisions[order[rank]], "%s", "newest verified");
            break;
        }
    }
    keep_newest_not_failed(backups, order, count, decisions);
}

int retention_decide(const struct retention_backup *backups, size_t count,
                     const struct retention_policy *policy, time_t now,
                     struct retention_decision *decisions, stow_error *err)
{
    struct periods *periods = NULL;
    struct ranked_backup *ranked = NULL;
    size_t *order = NULL;
    int rc = -1;

    if (check_policy(policy, err) != 0)
        return -1;
    if (count == 0)
        return 0;
    memset(decisions, 0, count * sizeof *decisions);
    periods = calloc(count, sizeof *periods);
    ranked = calloc(count, sizeof *ranked);
    order = calloc(count, sizeof *order);
    if (periods == NULL || ranked == NULL || order == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        goto cleanup;
    }

    if (is_utc(policy->time_zone) ? utc_periods(backups, count, periods, err)
                                  : zone_periods(backups, count, policy->time_zone, periods, err))
        goto cleanup;

    for (size_t i = 0; i < count; i++) {
        ranked[i].backup = &backups[i];
        ranked[i].index = i;
    }
    qsort(ranked, count, sizeof *ranked, compare_newest_first);
    for (size_t rank = 0; rank < count; rank++)
        order[rank] = ranked[rank].index;

    apply_rules(backups, order, count, policy, now, periods, decisions);
    rc = 0;

cleanup:
    free(periods);
    free(ranked);
    free(order);
    return rc;
}

void retention_reasons_text(const struct retention_decision *decision, char *out, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < decision->reason_count && used < size; i++) {
        int written = snprintf(out + used, size - used, "%s%s", i > 0 ? ", " : "",
                               decision->reasons[i]);

        if (written < 0)
            return;
        used += (size_t)written;
    }
}
