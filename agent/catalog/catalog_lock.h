/* Per-name catalog locks: at most one backup or expire run per catalog name
 * at a time.
 *
 * The lock is the object locks/NAME.json, created with a create-only put
 * (S3 If-None-Match: *, link(2) on file://), so of two runs that start at
 * once exactly one creates it. Its content is a JSON object: "format"
 * ("stowage-lock"), "format_version" (1), "name", "host", "pid", "run_id"
 * (16 random hexadecimal digits), "command", "started_at" and
 * "refreshed_at" (RFC 3339 UTC), "boot_id" and "pid_namespace" (see
 * common/process.h; empty when /proc cannot tell).
 *
 * While the run lasts, a background thread rewrites refreshed_at every
 * quarter of stale_after (at least 1 s, at most 60 s). The storage layer
 * offers no If-Match write, so a refresh reads the lock, checks that its
 * run_id is still this run's, and then overwrites it with a plain put. A
 * lock that disappeared or carries another run id is lost: the thread logs
 * an error and stops, and catalog_lock_check fails from then on.
 *
 * A lock whose refreshed_at is older than stale_after, by this host's
 * clock, is stale: its run died or lost contact with the repository. It is
 * taken over (deleted, then created again with the create-only put) with a
 * warn log line naming the old holder. So is a fresh lock whose holder ran on
 * this host (same hostname, boot id and pid namespace) under a pid that no longer
 * exists: a run killed with SIGKILL need not block the next one until its
 * lock goes stale. A reused pid keeps such a lock until it goes stale.
 * NOTE: two runs that find the same stale lock at the same moment can both
 * delete and create it, because S3 offers no conditional delete here. The
 * run whose lock was replaced finds out at its next refresh (lost).
 *
 * The lock works through a storage handle of its own (storage_open_copy),
 * so the caller's handle stays with the caller's thread. */
#ifndef STOWAGE_CATALOG_LOCK_H
#define STOWAGE_CATALOG_LOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"
#include "storage/storage.h"

#define CATALOG_LOCKS_DIR "locks"
#define CATALOG_LOCK_STALE_AFTER_DEFAULT (10 * 60) /* seconds */
#define CATALOG_LOCK_MAX_BYTES (64u * 1024)

typedef struct catalog_lock catalog_lock;

struct catalog_lock_options {
    const char *name;     /* catalog name, checked with catalog_check_name */
    const char *command;  /* the command taking it: "backup", "expire" */
    int64_t stale_after;  /* seconds; 0: CATALOG_LOCK_STALE_AFTER_DEFAULT */
};

/* The content of a lock object, as read back. */
struct catalog_lock_holder {
    char host[256];
    char boot_id[40];        /* kernel boot id of host; "" when unknown */
    char pid_namespace[40];  /* pid namespace of pid, "pid:[INODE]"; "" when unknown */
    long long pid;
    char run_id[40];
    char command[32];
    time_t started_at;
    time_t refreshed_at;
    int readable;  /* 0: not a lock document; both times are the object's modification time */
};

/* Takes the lock of options->name, taking over a stale one. Fails with
 * STOW_EXIT_LOCKED naming the holder's host, pid, command and start time
 * when another run has it. On success *out is the lock, and its refresh
 * thread runs until catalog_lock_release. */
int catalog_lock_acquire(storage *store, const struct catalog_lock_options *options,
                         catalog_lock **out, stow_error *err);

/* Fails with STOW_EXIT_LOCKED when the refresh thread found the lock lost
 * (taken over or deleted). Accepts NULL (no lock: passes). */
int catalog_lock_check(catalog_lock *lock, stow_error *err);

/* Stops the refresh thread, deletes the lock object if it still carries
 * this run's id, and frees the lock. Accepts NULL. */
void catalog_lock_release(catalog_lock *lock);

/* Reads locks/NAME.json. Returns STORAGE_NOT_FOUND when there is none. A
 * lock object that is not a valid lock document is returned with
 * readable 0. */
int catalog_lock_read(storage *store, const char *name, struct catalog_lock_holder *holder,
                      stow_error *err);

/* Returns 1 when the holder last refreshed the lock more than stale_after
 * seconds before now. */
int catalog_lock_is_stale(const struct catalog_lock_holder *holder, time_t now,
                          int64_t stale_after);

/* Returns 1 when the holder ran on this host, in this boot and pid
 * namespace, and its pid no longer exists, so a new run takes its lock over
 * at once. */
int catalog_lock_holder_is_dead(const struct catalog_lock_holder *holder);

/* Describes the holder for messages: "stowage backup on host db1 (pid 42,
 * run 0123...), started at ..., last refreshed at ...". */
void catalog_lock_describe(const struct catalog_lock_holder *holder, char *out, size_t size);

#endif
