/* Archive members: the pax (POSIX.1-2001 tar) stream inside a container.
 *
 * A backup's archive holds, in order:
 *   backup-info.json        what the backup is (id, database, versions)
 *   globals.sql             roles (without passwords) and tablespaces
 *   database.dump.NNNNNNNN  the pg_dump custom-format archive, in segments
 * The dump is cut into segments of at most MEMBERS_SEGMENT_BYTES because a
 * tar header needs the member's size up front and the dump's length is
 * unknown until pg_dump ends. Concatenating the segments in order (which
 * `tar -xO` does) gives the dump file. */
#ifndef STOWAGE_MEMBERS_H
#define STOWAGE_MEMBERS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"

#define MEMBERS_INFO_NAME "backup-info.json"
#define MEMBERS_GLOBALS_NAME "globals.sql"
#define MEMBERS_DUMP_PREFIX "database.dump."
#define MEMBERS_SEGMENT_BYTES (4u * 1024 * 1024)

typedef int (*members_sink_fn)(void *context, const void *data, size_t len, stow_error *err);

typedef struct members_writer members_writer;

int members_writer_new(members_sink_fn sink, void *sink_context, members_writer **out,
                       stow_error *err);
/* Writes one whole member. */
int members_writer_add(members_writer *writer, const char *name, const void *data,
                       size_t len, time_t mtime, stow_error *err);
/* Ends the archive (two zero blocks). */
int members_writer_finish(members_writer *writer, stow_error *err);
void members_writer_free(members_writer *writer);

/* --- Reading -------------------------------------------------------------- */

/* Supplies archive bytes on demand: sets *data and *len (0 at the end). */
typedef int (*members_source_fn)(void *context, const void **data, size_t *len,
                                 stow_error *err);

/* Called for each member's data in order; offset is within the member.
 * A member's first call has offset 0; an empty member gets one call with
 * len 0. */
typedef int (*members_data_fn)(void *context, const char *name, uint64_t offset,
                               const void *data, size_t len, stow_error *err);

/* Reads the whole archive from source, checking each member's name (no
 * absolute paths, no "..", regular files only) and that the archive ends
 * properly. Fails with STOW_EXIT_VERIFY on a damaged archive. */
int members_read(members_source_fn source, void *source_context, members_data_fn on_data,
                 void *data_context, stow_error *err);

/* Returns 1 for a safe relative member name. */
int members_name_is_safe(const char *name);

#endif
