/* PostgreSQL connections and the standard PostgreSQL programs (pg_dump,
 * pg_dumpall, pg_restore, psql, initdb, pg_ctl) run as child processes.
 *
 * Connection settings follow libpq: a URI or key=value conninfo, plus the
 * PG* variables, .pgpass and service files. Children get the settings as
 * PG* environment variables, never on the command line, so a password in a
 * conninfo does not show in the process list. */
#ifndef STOWAGE_PGTOOLS_H
#define STOWAGE_PGTOOLS_H

#include <libpq-fe.h>
#include <pthread.h>
#include <sys/types.h>

#include "aws/credentials.h"
#include "common/buf.h"
#include "common/error.h"

#define PGTOOLS_STDERR_TAIL 4096

/* Facts about a source server, recorded in the manifest. */
struct pg_server_info {
    int version_num;            /* server_version_num, e.g. 150018 */
    int major;                  /* 15 */
    char version[64];           /* "15.18 (Debian 15.18-0+deb12u1)" */
    char database[256];
    char host[256];             /* host or socket directory, as libpq reports */
    char port[16];
    char user[128];
    char encoding[64];          /* server_encoding of the database */
    char lc_collate[257];       /* the database's datcollate and datctype */
    char lc_ctype[257];
    char locale_provider[16];   /* "libc", "icu" or "builtin": datlocprovider */
    char locale[257];           /* the ICU or builtin locale; empty with libc */
    char icu_rules[4097];       /* daticurules; empty when unset or too long */
};

/* Opens a connection; fails with STOW_EXIT_DATABASE and libpq's message
 * (which never contains the password). */
int pgtools_connect(const char *conninfo, PGconn **out, stow_error *err);

/* Parses conninfo (NULL: empty) with libpq. Fails with STOW_EXIT_USAGE,
 * naming libpq's reason, when it cannot be parsed. Free the result with
 * PQconninfoFree. */
PQconninfoOption *pgtools_parse_conninfo(const char *conninfo, stow_error *err);

/* Writes conninfo with its database replaced by dbname into out (reset
 * first), as a key=value string, also when conninfo is a URI. The string
 * keeps any password of conninfo: release out with stow_buf_free_secret.
 * Fails with STOW_EXIT_USAGE when libpq cannot parse conninfo. */
int pgtools_conninfo_with_database(const char *conninfo, const char *dbname, stow_buf *out,
                                   stow_error *err);

/* RDS IAM database authentication (--db-iam-auth). Makes every connection
 * and child process that uses conninfo (NULL: the PG* variables alone)
 * sign in with a fresh token from rds_auth.h as its password, signed with
 * credentials from provider, which this module then owns (also on failure).
 * The token is signed for the host, port and user that libpq would use, in
 * the region named by an RDS endpoint host, else AWS_REGION. Fails with
 * STOW_EXIT_USAGE when there is no single TCP host, or when sslmode is
 * weaker than require for a host that is not loopback. A connection made
 * with any other string, even to the same server, keeps libpq's usual
 * password sources (local scratch clusters rely on that), unless it was
 * added with pgtools_iam_auth_add_alias. */
int pgtools_iam_auth_enable(const char *conninfo, struct aws_credentials_provider *provider,
                            stow_error *err);

/* Returns 1 for "localhost" and loopback addresses (127.0.0.0/8, ::1):
 * hosts that IAM authentication may reach without TLS (a tunnel, a test). */
int pgtools_host_is_loopback(const char *host);

/* Returns 1 when IAM authentication applies to conninfo, else 0. */
int pgtools_iam_applies(const char *conninfo);

/* Maximum number of connection strings that pgtools_iam_auth_add_alias
 * keeps. */
#define PGTOOLS_IAM_ALIASES_MAX 8

/* Makes IAM authentication apply to conninfo too: a string that names
 * another database on the same server, for the same user (restore
 * --create's maintenance and temporary databases), so the token signed
 * for that host, port and user is valid there. Does nothing while IAM
 * authentication is off. Call from the thread that enabled it, before
 * other threads connect. */
int pgtools_iam_auth_add_alias(const char *conninfo, stow_error *err);

/* Turns IAM authentication off and frees the provider. */
void pgtools_iam_auth_disable(void);

/* Writes a new token for conninfo into password (reset first) when IAM
 * authentication applies to it. Returns 0, 1 when it does not apply, or -1
 * (err filled). Release password with stow_buf_free_secret. */
int pgtools_iam_password(const char *conninfo, stow_buf *password, stow_error *err);

/* Converts the last libpq error on conn into a failure with context. */
int pgtools_fail(stow_error *err, int exit_code, PGconn *conn, const char *context);

/* Returns 1 when a program's output, a server log or an error message
 * reports a full disk. PostgreSQL's messages contain the errno text only
 * sometimes: a failed file extension reports "could not extend file", and
 * a PANIC during a write "Check free disk space". */
int pgtools_mentions_full_disk(const char *text);

/* Returns 1 when text contains a server's own error about writing or
 * extending a file ("ERROR:  could not extend file ..."), as the server
 * words a full disk or a failing device. Unlike pgtools_mentions_full_disk
 * it does not match rows that an error's DETAIL or CONTEXT quotes. */
int pgtools_reports_server_io_failure(const char *text);

int pgtools_server_info(PGconn *conn, struct pg_server_info *info, stow_error *err);

/* Finds program (e.g. "pg_dump") for PostgreSQL major version major:
 * $STOWAGE_PG_BINDIR, then /usr/lib/postgresql/MAJOR/bin. Fails with
 * STOW_EXIT_USAGE naming the version and the package to install. */
int pgtools_find_program(int major, const char *program, char *out, size_t size,
                         stow_error *err);

/* A child process with its standard streams. */
struct pg_child {
    pid_t pid;
    int stdin_fd;               /* write end, or -1 */
    int stdout_fd;              /* read end, or -1 */
    int stderr_fd;              /* read end, drained by a thread */
    pthread_t stderr_thread;
    int stderr_thread_started;
    char name[64];              /* program name for messages */
    char stderr_tail[PGTOOLS_STDERR_TAIL]; /* last lines of standard error */
    size_t stderr_len;
    pthread_mutex_t stderr_mutex;
};

enum pg_child_streams {
    PG_CHILD_STDIN_PIPE = 1,    /* else /dev/null */
    PG_CHILD_STDOUT_PIPE = 2    /* else standard error of this process */
};

/* Starts path with argv, the caller's environment plus the PG* variables
 * derived from conninfo (may be NULL) and PGTZ=UTC. */
int pgtools_spawn(const char *path, char *const argv[], const char *conninfo, int streams,
                  struct pg_child *child, stow_error *err);

/* Waits for the child; fails with STOW_EXIT_FAILURE naming the program, its
 * exit status or signal, and the tail of its standard error. */
int pgtools_wait(struct pg_child *child, stow_error *err);

/* Sends SIGTERM, then waits; used on the failure path. */
void pgtools_kill(struct pg_child *child);

/* Copies the collected standard error tail (for reports). */
void pgtools_stderr_tail(struct pg_child *child, char *out, size_t size);

/* Reads a child started with PG_CHILD_STDOUT_PIPE to the end of its
 * standard output, up to max bytes, into *output (newly allocated,
 * NUL-terminated), then waits for it. On failure the child is gone too. */
int pgtools_capture_output(struct pg_child *child, size_t max, char **output,
                           size_t *output_len, stow_error *err);

/* Runs a program to the end, capturing its standard output up to max
 * bytes into *output (newly allocated, NUL-terminated). */
int pgtools_run_capture(const char *path, char *const argv[], const char *conninfo,
                        size_t max, char **output, size_t *output_len, stow_error *err);

#endif
