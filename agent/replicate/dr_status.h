/* DR status: for each catalog name, how far the replica is behind the
 * primary, and the recovery point (RPO) that the replica offers now.
 *
 * Times are the backups' started_at, when pg_dump takes its snapshot, so
 * they are the points in time that a restore returns to.
 *   lag  started_at of the primary's newest backup minus that of the
 *        replica's newest. It is 0 when the replica has the newest, and null
 *        when the replica has no backup of the name.
 *   RPO  age now of the newest complete backup in the replica whose last
 *        verified restore passed (basis "verified"); when no backup there
 *        passed one, age of the newest complete backup (basis "complete");
 *        null when the replica has none (basis "none"). */
#ifndef STOWAGE_DR_STATUS_H
#define STOWAGE_DR_STATUS_H

#include <jansson.h>
#include <stdio.h>
#include <time.h>

#include "catalog.h"

/* Builds the status document (a new reference): "checked_at",
 * "rpo_definition" and "names", one object per name found in either
 * catalog, sorted by name. */
json_t *dr_status_build(const struct catalog *primary, const struct catalog *replica, time_t now);

/* Prints the status as a table, one line per name. */
void dr_status_print_table(const json_t *status, FILE *out);

/* Writes seconds as "45s", "12m05s", "3h04m" or "2d03h". */
void dr_format_age(long long seconds, char *out, size_t size);

#endif
