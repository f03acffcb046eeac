/* The spool file of a parallel restore: pg_restore --jobs needs a seekable
 * archive, so the decrypted, decompressed dump is written to a temporary
 * file first.
 *
 * The file has no name: it is opened with O_TMPFILE, or created with
 * mkstemp and unlinked at once where the filesystem lacks O_TMPFILE. The
 * kernel frees its space when the last descriptor closes, so it is gone
 * after success, failure, SIGTERM and SIGKILL alike (except a SIGKILL
 * between mkstemp and unlink). pg_restore and its workers reach it as
 * /dev/fd/N through an inherited descriptor. */
#ifndef STOWAGE_SPOOL_H
#define STOWAGE_SPOOL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct restore_spool {
    int fd;                       /* -1 while closed */
    char directory[PATH_MAX];
    char path[32];                /* "/dev/fd/N", the name pg_restore opens */
    uint64_t expected_bytes;      /* the dump size from the manifest */
    uint64_t written_bytes;
    int header_only;              /* opened unreserved, for the dump's header and TOC */
    int out_of_space;             /* 1 after a write failed for want of space */
};

/* Returns the spool directory: directory when not NULL, else
 * $STOWAGE_SPOOL_DIR, $TMPDIR or /tmp. */
const char *restore_spool_directory(const char *directory);

/* Checks that the directory's filesystem has room for bytes and opens the
 * spool file there (mode 0600). Fails with STOW_EXIT_USAGE naming the
 * directory, the space needed and available, and the fix when it does
 * not. */
int restore_spool_open(struct restore_spool *spool, const char *directory, uint64_t bytes,
                       stow_error *err);

/* Opens the spool file like restore_spool_open without checking for room,
 * for a restore that spools the dump's header and TOC alone. Call
 * restore_spool_reserve before spooling the whole dump after all. */
int restore_spool_open_unreserved(struct restore_spool *spool, const char *directory,
                                  uint64_t bytes, stow_error *err);

/* Checks that the spool directory has room for the whole dump, failing as
 * restore_spool_open does. */
int restore_spool_reserve(struct restore_spool *spool, stow_error *err);

/* Cuts the file to its first bytes. */
int restore_spool_truncate(struct restore_spool *spool, uint64_t bytes, stow_error *err);

/* Appends data. Fails when the dump grows past the expected size or the
 * filesystem fills up meanwhile. */
int restore_spool_write(struct restore_spool *spool, const void *data, size_t len,
                        stow_error *err);

/* Checks that the whole dump arrived. */
int restore_spool_finish(struct restore_spool *spool, stow_error *err);

/* Lets the next program started inherit the descriptor (inherit 1), which
 * pg_restore needs to open path, or stops that again (inherit 0). */
int restore_spool_set_inherited(struct restore_spool *spool, int inherit, stow_error *err);

/* Closes the file, which frees its space. Safe to call twice. */
void restore_spool_close(struct restore_spool *spool);

#endif
