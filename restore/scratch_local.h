/* Local scratch instances: a throwaway PostgreSQL cluster in a temporary
 * directory, listening on a free loopback port with its socket in the same
 * directory, for verified restores. When stowage runs as root the cluster
 * runs as an unprivileged user, since PostgreSQL refuses to run as root. */
#ifndef STOWAGE_SCRATCH_LOCAL_H
#define STOWAGE_SCRATCH_LOCAL_H

#include <limits.h>
#include <sys/types.h>

#include "common/error.h"

/* A JSON file in every scratch directory: "format" (SCRATCH_LOCAL_MARKER_FORMAT),
 * "format_version" (1), "owner_pid", "host", "boot_id", "pid_namespace"
 * (common/process.h), "created_at" and "major". `stowage gc --scratch
 * local` removes a cluster only when its owner is gone. */
#define SCRATCH_LOCAL_MARKER "stowage-scratch.json"
#define SCRATCH_LOCAL_MARKER_FORMAT "stowage-scratch"
#define SCRATCH_LOCAL_PREFIX "stowage-scratch-"

struct scratch_local {
    char directory[PATH_MAX];   /* temporary directory holding data and socket */
    char data_directory[PATH_MAX];
    char bindir[PATH_MAX];      /* /usr/lib/postgresql/MAJOR/bin or STOWAGE_PG_BINDIR */
    int major;
    int port;
    char user[64];              /* database superuser name */
    int started;                /* 1 while the server runs */
    pid_t server_pid;           /* the postmaster while this process is its parent, else 0 */
    uid_t run_uid;              /* uid the server runs as */
    gid_t run_gid;
    char run_user[64];          /* operating system user the server runs as */
    char password[64];          /* password of user for TCP, unused on the socket */
    char encoding[64];          /* of the cluster's databases: the backup's */
};

/* Creates the cluster with initdb of PostgreSQL major and starts it. Its
 * databases have encoding, the backup's database encoding (UTF8 when NULL
 * or empty), so that the restored text keeps the source's bytes: a
 * SQL_ASCII backup in a UTF8 database could hold text invalid in UTF8.
 * Cleans up after itself on failure. A SIGINT or SIGTERM recorded by
 * common/interrupt.h ends it after the current step with
 * STOW_EXIT_INTERRUPTED. */
int scratch_local_create(int major, const char *encoding, struct scratch_local *scratch,
                         stow_error *err);

/* Writes a libpq conninfo (key=value) for database dbname. It connects
 * through the Unix socket in the directory, where the superuser is trusted,
 * so it carries no password. */
void scratch_local_conninfo(const struct scratch_local *scratch, const char *dbname,
                            char *out, size_t size);

/* Gives the cluster's empty database the name dbname, owned by the
 * superuser and without initdb's comment: initdb's postgres database,
 * renamed unless dbname is postgres, or template1 itself. */
int scratch_local_name_database(struct scratch_local *scratch, const char *dbname,
                                stow_error *err);

/* Stops the server (immediate shutdown, then SIGKILL of the postmaster)
 * and removes the directory. Safe to call twice and after a failed
 * create. */
void scratch_local_remove(struct scratch_local *scratch);

/* Adds the hint to free space or move STOWAGE_SCRATCH_DIR to err when err
 * has no hint yet and its message reports a full disk, as pg_restore's
 * "could not extend file" does. */
void scratch_local_hint_full_disk(const struct scratch_local *scratch, stow_error *err);

/* Returns 1 when the scratch server failed on its own during the restore:
 * its postmaster exited, or server.log reports a full disk, a PANIC or a
 * process killed by a signal (for example the OOM killer's SIGKILL). Such
 * a failed restore is no finding about the backup. Adds a hint to err,
 * when it has none, to free space or to check the host. */
int scratch_local_server_failed(const struct scratch_local *scratch, stow_error *err);

/* Hands a kept cluster over to the user: removes the marker file, so that
 * gc never stops it. */
void scratch_local_release(struct scratch_local *scratch);

/* Resolves the directory that holds scratch directories: STOWAGE_SCRATCH_DIR,
 * else TMPDIR, else /tmp. *source names where it came from, for messages. */
int scratch_local_base_directory(char resolved[PATH_MAX], const char **source,
                                 stow_error *err);

/* Returns the postmaster's pid from postmaster.pid, or -1 when the file is
 * missing or unreadable. */
pid_t scratch_local_postmaster_pid(const struct scratch_local *scratch);

#endif
