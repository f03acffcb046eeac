/* Durations as options write them: "90s", "10m", "36h", "7d", "2w", or a
 * sum such as "1w3d" or "1h30m". Units are fixed lengths: s seconds,
 * m minutes, h hours, d 86400 seconds, w 7 days. Months and years are not
 * accepted because their length varies. */
#ifndef STOWAGE_DURATION_H
#define STOWAGE_DURATION_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"

/* The largest duration accepted: 100 years of 365 days, in seconds. */
#define STOW_DURATION_MAX ((int64_t)100 * 365 * 86400)

/* Parses text into seconds. Returns -1 (err filled, STOW_EXIT_USAGE, naming
 * option) for an empty text, an unknown unit, a number without a unit, zero,
 * or a total above STOW_DURATION_MAX. */
int stow_duration_parse(const char *option, const char *text, int64_t *seconds,
                        stow_error *err);

/* Writes seconds in the largest unit that divides it exactly ("2w", "36h",
 * "90s"); 0 is "0s". */
void stow_duration_format(int64_t seconds, char *out, size_t size);

/* Seconds elapsed since start, a CLOCK_MONOTONIC reading. */
double stow_seconds_since(const struct timespec *start);

#endif
