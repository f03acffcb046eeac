/* Parsing and formatting of option durations. */
#include "common/duration.h"

#include <ctype.h>
#include <stdio.h>

static int64_t unit_seconds(char unit)
{
    switch (unit) {
    case 's':
        return 1;
    case 'm':
        return 60;
    case 'h':
        return 3600;
    case 'd':
        return 86400;
    case 'w':
        return 7 * 86400;
    default:
        return 0;
    }
}

int stow_duration_parse(const char *option, const char *text, int64_t *seconds,
                        stow_error *err)
{
    const char *cursor = text;
    int64_t total = 0;

    while (*cursor != '\0') {
        int64_t number = 0;
        int64_t unit;

        if (!isdigit((unsigned char)*cursor))
            goto invalid;
        while (isdigit((unsigned char)*cursor)) {
            number = number * 10 + (*cursor - '0');
            if (number > STOW_DURATION_MAX)
                goto invalid;
            cursor++;
        }
        unit = unit_seconds(*cursor);
        if (unit == 0 || number > (STOW_DURATION_MAX - total) / unit)
            goto invalid;
        total += number * unit;
        cursor++;
    }
    if (total == 0 && *text != '\0') {
        stow_fail(err, STOW_EXIT_USAGE, "invalid duration for %s: \"%s\" is zero, and %s "
                                        "needs a duration longer than zero",
                  option, text, option);
        stow_error_hint(err, "give at least 1s");
        return -1;
    }
    if (total == 0)
        goto invalid;
    *seconds = total;
    return 0;

invalid:
    stow_fail(err, STOW_EXIT_USAGE, "invalid duration for %s: \"%s\"", option, text);
    stow_error_hint(err, "give a number with a unit: s, m (minutes), h, d or w, for example "
                         "36h, 7d or 1w3d; the longest duration is 100 years");
    return -1;
}

void stow_duration_format(int64_t seconds, char *out, size_t size)
{
    static const char units[] = "wdhm";

    for (const char *unit = units; *unit != '\0'; unit++) {
        int64_t length = unit_seconds(*unit);

        if (seconds > 0 && seconds % length == 0) {
            snprintf(out, size, "%lld%c", (long long)(seconds / length), *unit);
            return;
        }
    }
    snprintf(out, size, "%llds", (long long)seconds);
}

double stow_seconds_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}
