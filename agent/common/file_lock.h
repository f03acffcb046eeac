/* An exclusive lock between stowage processes on this host for a
 * read-modify-write of a shared local file (the run state file, a
 * node_exporter textfile): flock(2) on a lock file beside it.
 *
 * The lock file is PATH.lock, created with mode 0644 when missing and
 * never removed: removing it would let a waiting process lock the removed
 * file while a newer one locks its replacement. The kernel releases the
 * lock when the holder exits, so a crashed holder never blocks the next
 * process. flock is advisory: it orders stowage processes only. */
#ifndef STOWAGE_FILE_LOCK_H
#define STOWAGE_FILE_LOCK_H

#include "common/error.h"

/* Takes the lock of path, waiting up to timeout_ms while another process
 * holds it. On success *fd is the open lock file, which the caller passes
 * to stow_file_unlock. Fails with STOW_EXIT_LOCKED when the wait times out
 * and with STOW_EXIT_FAILURE when the lock file cannot be opened. */
int stow_file_lock(const char *path, int timeout_ms, int *fd, stow_error *err);

/* Releases the lock and closes fd; accepts -1. */
void stow_file_unlock(int fd);

#endif
