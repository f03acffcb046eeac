/* Local scratch clusters: initdb, start, stop and removal of a throwaway
 * PostgreSQL cluster, with the programs run as the cluster's owner.
 *
 * The cluster lives in a private directory (mode 0700, owned by the user
 * the server runs as). Inside it are the data directory, server.log and
 * the Unix socket. The superuser is trusted on the socket only. TCP on
 * 127.0.0.1 requires the random password in struct scratch_local, so other
 * local users cannot log in as superuser while a restore runs.
 *
 * Children run in their own process group (the server in its own session),
 * so a SIGINT from the terminal reaches only stowage. Each step (initdb,
 * the server's start) runs to its end, and then the interrupt unwinds
 * through scratch_local_remove(). stowage starts and stops the postmaster
 * itself rather than through pg_ctl, whose -w checks the server ten times
 * a second: that added 0.1 to 0.2 s to every scratch cluster. */
#include "scratch_local.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <jansson.h>
#include <locale.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/duration.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "common/process.h"
#include "manifest.h"
#include "pg/pgtools.h"

extern char **environ;

#define SCRATCH_SUPERUSER "stowage"
#define SCRATCH_RUN_USER "postgres"     /* system user that runs the server for root */
#define SCRATCH_START_ATTEMPTS 5        /* new ports tried when the chosen one is taken */
#define SCRATCH_START_TIMEOUT_S 60      /* wait for the server to accept connections */
/* Waits for an immediate shutdown. The postmaster SIGKILLs children that
 * ignore its SIGQUIT after 5 s, so 10 s leave room, and with the SIGKILL
 * wait stay under the default cleanup timeout of 20 s. */
#define SCRATCH_STOP_TIMEOUT_MS 10000
/* The same for a server that never got ready, such as a start that a
 * signal interrupted: it has nothing to shut down, and a wrapper script in
 * STOWAGE_PG_BINDIR ignores SIGQUIT (bash always does). */
#define SCRATCH_UNREADY_STOP_TIMEOUT_MS 1000
#define SCRATCH_KILL_WAIT_MS 5000       /* wait for a killed postmaster to exit */
#define SCRATCH_POLL_MS 2               /* between checks of a starting or stopping server */
#define PROGRAM_OUTPUT_TAIL 1536        /* bytes of a child's output kept for errors */
#define PROGRAM_OUTPUT_LINES 5          /* lines of that output quoted in errors */
#define SERVER_LOG_TAIL 1024            /* bytes of server.log quoted in errors */

/* Memory for each index build of the restore (PostgreSQL's default is
 * 64MB). pg_restore --jobs N builds up to N indexes at once, so the
 * server may use N times this much, which a machine with 2 GB of memory
 * still has at --jobs 2. Measured on PostgreSQL 15 with 2 shared CPUs:
 * the primary key of a 5 million row table like pgbench_accounts at scale
 * 50 took 1.55 and 1.60 s to build instead of 2.04 and 1.81 s with 64MB.
 * Its parallel sort still spills to disk, in fewer runs. */
#define SCRATCH_MAINTENANCE_WORK_MEM "256MB"

/* --- Children run as the cluster's owner ---------------------------------- */

/* Exit status and the last bytes of standard output and error of a child. */
struct program_run {
    int status;                            /* wait status */
    char output[PROGRAM_OUTPUT_TAIL];
    size_t output_len;
};

/* Environment of a child: PATH, TZ and TMPDIR of the caller, LC_ALL=C so
 * that messages stay untranslated, and HOME, USER and LOGNAME of the owner.
 * Nothing else passes, so the caller's secrets (AWS keys, PGPASSWORD) and
 * libpq settings never reach initdb or the server, which may run as another
 * user. Entries point into environ or into the struct's own buffers. */
struct child_environment {
    char **entries;
    char home[PATH_MAX + 8];
    char user[80];
    char logname[80];
};

static int drops_privileges(const struct scratch_local *scratch)
{
    return geteuid() != scratch->run_uid;
}

static int keep_variable(const char *entry, int dropping)
{
    static const char *const always[] = {"PATH=", "TZ=", "TMPDIR="};
    static const char *const owner[] = {"HOME=", "USER=", "LOGNAME="};

    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++) {
        if (strncmp(entry, always[i], strlen(always[i])) == 0)
            return 1;
    }
    for (size_t i = 0; !dropping && i < sizeof owner / sizeof owner[0]; i++) {
        if (strncmp(entry, owner[i], strlen(owner[i])) == 0)
            return 1;
    }
    return 0;
}

static int child_environment_new(const struct scratch_local *scratch,
                                 struct child_environment *env, stow_error *err)
{
    int dropping = drops_privileges(scratch);
    size_t count = 0;
    size_t used = 0;

    while (environ[count] != NULL)
        count++;
    env->entries = calloc(count + 5, sizeof *env->entries);
    if (env->entries == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    for (size_t i = 0; i < count; i++) {
        if (keep_variable(environ[i], dropping))
            env->entries[used++] = environ[i];
    }
    env->entries[used++] = "LC_ALL=C";
    if (dropping) {
        snprintf(env->home, sizeof env->home, "HOME=%s", scratch->directory);
        snprintf(env->user, sizeof env->user, "USER=%s", scratch->run_user);
        snprintf(env->logname, sizeof env->logname, "LOGNAME=%s", scratch->run_user);
        env->entries[used++] = env->home;
        env->entries[used++] = env->user;
        env->entries[used++] = env->logname;
    }
    env->entries[used] = NULL;
    return 0;
}

static void child_environment_free(struct child_environment *env)
{
    free(env->entries);
    env->entries = NULL;
}

static void child_write(const char *text)
{
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));

    (void)ignored;
}

/* The kind of child being started. A program that stowage waits for runs
 * in its own process group. The server gets its own session, as pg_ctl
 * gives it, so it has no controlling terminal and keeps running after
 * stowage exits with a kept cluster. */
enum child_kind { CHILD_PROGRAM, CHILD_SERVER };

/* Runs in the forked child, so it calls only async-signal-safe functions. */
static void exec_child(const struct scratch_local *scratch, enum child_kind kind,
                       char *const argv[], char **env, int null_fd, int output_fd)
{
    int dropping = drops_privileges(scratch);
    struct sigaction default_action;
    sigset_t no_signals;

    if (kind == CHILD_SERVER)
        setsid();
    else
        setpgid(0, 0);
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &default_action, NULL);
    sigaction(SIGXFSZ, &default_action, NULL);
    sigemptyset(&no_signals);
    sigprocmask(SIG_SETMASK, &no_signals, NULL);

    if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(output_fd, STDOUT_FILENO) < 0 ||
        dup2(output_fd, STDERR_FILENO) < 0)
        _exit(126);
    if (dropping && (setgroups(1, &scratch->run_gid) != 0 || setgid(scratch->run_gid) != 0 ||
                     setuid(scratch->run_uid) != 0)) {
        child_write("stowage: switching to the scratch cluster's user failed\n");
        _exit(126);
    }
    if (chdir(scratch->directory) != 0) {
        child_write("stowage: entering the scratch directory failed\n");
        _exit(126);
    }
    close_range(3, ~0U, 0);
    execve(argv[0], argv, env);
    child_write("stowage: executing ");
    child_write(argv[0]);
    child_write(" failed\n");
    _exit(127);
}

/* Keeps the newest bytes of a child's output in run->output. A chunk is
 * at most 1 KiB, smaller than run->output, so the newest bytes always fit. */
static void keep_output_tail(struct program_run *run, const char *chunk, size_t got)
{
    size_t room = sizeof run->output - 1 - got;
    size_t keep = run->output_len < room ? run->output_len : room;

    memmove(run->output, run->output + run->output_len - keep, keep);
    memcpy(run->output + keep, chunk, got);
    run->output_len = keep + got;
    run->output[run->output_len] = '\0';
}

static void collect_output(int fd, struct program_run *run)
{
    char chunk[1024];
    ssize_t got;

    while ((got = read(fd, chunk, sizeof chunk)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        keep_output_tail(run, chunk, (size_t)got);
    }
}

/* Starts argv[0] as the cluster's owner in the scratch directory, with its
 * standard output and error on output_fd. */
static int spawn_as_owner(const struct scratch_local *scratch, enum child_kind kind,
                          char *const argv[], int output_fd, pid_t *pid, stow_error *err)
{
    struct child_environment env;
    int null_fd;
    int rc = -1;

    if (child_environment_new(scratch, &env, err) != 0)
        return -1;
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "preparing to run", argv[0]);
        goto cleanup;
    }

    stow_log_debug("running %s as uid %d", argv[0], (int)scratch->run_uid);
    *pid = fork();
    if (*pid < 0) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "starting", argv[0]);
        goto cleanup;
    }
    if (*pid == 0)
        exec_child(scratch, kind, argv, env.entries, null_fd, output_fd);
    rc = 0;

cleanup:
    if (null_fd >= 0)
        close(null_fd);
    child_environment_free(&env);
    return rc;
}

/* Waits for a child, retrying after signals. */
static int wait_for_child(pid_t pid, int *status, const char *program, stow_error *err)
{
    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR)
            return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "waiting for", program);
    }
    return 0;
}

/* Runs argv[0] as the cluster's owner in the scratch directory and waits
 * for it. Fails only when the child cannot be started. Its exit status is
 * in run->status. */
static int run_as_owner(const struct scratch_local *scratch, char *const argv[],
                        struct program_run *run, stow_error *err)
{
    int output[2];
    pid_t pid;
    int rc;

    memset(run, 0, sizeof *run);
    if (pipe2(output, O_CLOEXEC) != 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "preparing to run", argv[0]);
    rc = spawn_as_owner(scratch, CHILD_PROGRAM, argv, output[1], &pid, err);
    close(output[1]);
    if (rc == 0) {
        collect_output(output[0], run);
        rc = wait_for_child(pid, &run->status, argv[0], err);
    }
    close(output[0]);
    return rc;
}

static int program_succeeded(const struct program_run *run)
{
    return WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0;
}

/* Joins lines into one, for a one-line error message. */
static void flatten(char *text)
{
    size_t len;

    for (char *p = text; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
    len = strlen(text);
    while (len > 0 && text[len - 1] == ' ')
        text[--len] = '\0';
}

/* Keeps only the last count lines of text, where programs print the cause
 * of a failure after their progress lines. */
static void keep_last_lines(char *text, int count)
{
    size_t len = strlen(text);
    char *start = text + len;

    while (start > text && start[-1] == '\n')
        *--start = '\0';
    while (start > text && count > 0) {
        start--;
        if (*start == '\n')
            count--;
    }
    if (*start == '\n')
        start++;
    memmove(text, start, strlen(start) + 1);
}

static void hint_free_space(const struct scratch_local *scratch, stow_error *err)
{
    int base_len = (int)(strrchr(scratch->directory, '/') - scratch->directory);

    stow_error_hint(err, "free space on the file system of %.*s, or set "
                         "STOWAGE_SCRATCH_DIR to a directory with room for the restored "
                         "database",
                    base_len > 0 ? base_len : 1, scratch->directory);
}

void scratch_local_hint_full_disk(const struct scratch_local *scratch, stow_error *err)
{
    if (err->hint[0] == '\0' && pgtools_mentions_full_disk(err->message))
        hint_free_space(scratch, err);
}

/* Records the failure of a child, naming the directory when the disk is
 * full. step names the program and its purpose ("initdb of PostgreSQL 15"). */
static int fail_program(const struct scratch_local *scratch, const char *step,
                        struct program_run *run, const char *server_log, stow_error *err)
{
    char status[64];

    keep_last_lines(run->output, PROGRAM_OUTPUT_LINES);
    flatten(run->output);
    if (WIFSIGNALED(run->status))
        snprintf(status, sizeof status, "was killed by signal %d", WTERMSIG(run->status));
    else
        snprintf(status, sizeof status, "failed with exit status %d",
                 WEXITSTATUS(run->status));

    if (pgtools_mentions_full_disk(run->output) || pgtools_mentions_full_disk(server_log)) {
        stow_fail(err, STOW_EXIT_FAILURE, "%s in %s %s: no space left on device%s%s%s%s",
                  step, scratch->directory, status, run->output[0] ? ": " : "", run->output,
                  server_log ? "; server.log: " : "", server_log ? server_log : "");
        hint_free_space(scratch, err);
        return -1;
    }
    return stow_fail(err, STOW_EXIT_FAILURE, "%s in %s %s%s%s%s%s", step, scratch->directory,
                     status, run->output[0] ? ": " : "", run->output,
                     server_log ? "; server.log: " : "", server_log ? server_log : "");
}

/* --- Programs and the user that runs them ---------------------------------- */

/* Fails unless the postgres program in bindir is of PostgreSQL major, so
 * that STOWAGE_PG_BINDIR cannot silently pick another version. */
static int check_version(const struct scratch_local *scratch, const char *postgres,
                         stow_error *err)
{
    char *argv[] = {(char *)postgres, "--version", NULL};
    char *output = NULL;
    size_t output_len;
    const char *number;
    int found;

    if (pgtools_run_capture(postgres, argv, NULL, 4096, &output, &output_len, err) != 0)
        return -1;

    /* The output reads "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)". */
    number = strstr(output, ") ");
    found = number != NULL ? atoi(number + 2) : 0;
    flatten(output);
    if (found != scratch->major) {
        stow_fail(err, STOW_EXIT_USAGE, "%s is not PostgreSQL %d: it reports \"%s\"", postgres,
                  scratch->major, output);
        stow_error_hint(err, "point STOWAGE_PG_BINDIR at the bin directory of PostgreSQL %d, "
                             "or unset it",
                        scratch->major);
    }
    free(output);
    return found == scratch->major ? 0 : -1;
}

static int find_programs(struct scratch_local *scratch, stow_error *err)
{
    static const char *const programs[] = {"initdb", "pg_ctl", "postgres"};
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        stow_error missing = {0};

        if (pgtools_find_program(scratch->major, programs[i], path, sizeof path, &missing) != 0) {
            stow_fail(err, missing.exit_code, "cannot create a scratch cluster: %s",
                      missing.message);
            stow_error_hint(err, "install the server package postgresql-%d (Debian and "
                                 "Ubuntu), or point STOWAGE_PG_BINDIR at the bin directory "
                                 "of PostgreSQL %d",
                            scratch->major, scratch->major);
            return -1;
        }
    }

    /* path is the last program found, postgres, and its directory is bindir. */
    snprintf(scratch->bindir, sizeof scratch->bindir, "%.*s",
             (int)(strrchr(path, '/') - path), path);
    return check_version(scratch, path, err);
}

/* Picks the user that runs the server: the caller, or the postgres system
 * user when the caller is root, because the PostgreSQL server exits when
 * started as root. */
static int choose_run_user(struct scratch_local *scratch, stow_error *err)
{
    struct passwd entry;
    struct passwd *found = NULL;
    char buffer[4096];
    uid_t self = geteuid();

    if (self != 0) {
        scratch->run_uid = self;
        scratch->run_gid = getegid();
        getpwuid_r(self, &entry, buffer, sizeof buffer, &found);
        snprintf(scratch->run_user, sizeof scratch->run_user, "%s",
                 found != NULL ? found->pw_name : "");
        return 0;
    }

    getpwnam_r(SCRATCH_RUN_USER, &entry, buffer, sizeof buffer, &found);
    if (found == NULL || found->pw_uid == 0) {
        stow_fail(err, STOW_EXIT_FAILURE,
                  "cannot create a scratch cluster as root: the PostgreSQL server does not "
                  "run as root, and no unprivileged user \"%s\" exists to run it",
                  SCRATCH_RUN_USER);
        stow_error_hint(err, "create the system user %s (the Debian postgresql packages do, "
                             "or run useradd --system --user-group --no-create-home %s), or "
                             "run stowage as an unprivileged user",
                        SCRATCH_RUN_USER, SCRATCH_RUN_USER);
        return -1;
    }
    scratch->run_uid = found->pw_uid;
    scratch->run_gid = found->pw_gid;
    snprintf(scratch->run_user, sizeof scratch->run_user, "%s", found->pw_name);
    return 0;
}

/* --- The scratch directory -------------------------------------------------- */

/* The directory goes into unix_socket_directories, a comma-separated list
 * whose entries may be quoted, and into the instructions printed for a kept
 * cluster, which a shell reads. */
static int check_path_characters(const char *path, const char *source, stow_error *err)
{
    for (const char *p = path; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/._-+@%", *p) != NULL)
            continue;
        stow_fail(err, STOW_EXIT_USAGE,
                  "invalid scratch base directory %s (from %s): character '%c' is not "
                  "allowed in a PostgreSQL socket directory",
                  path, source, *p);
        stow_error_hint(err, "set STOWAGE_SCRATCH_DIR to a path of letters, digits and "
                             "/._-+@%%");
        return -1;
    }
    return 0;
}

/* A Unix socket path must fit into sockaddr_un. PostgreSQL names its socket
 * DIR/.s.PGSQL.PORT. */
static int check_socket_path_length(const char *base, stow_error *err)
{
    static const char socket_name[] = "/stowage-scratch-XXXXXX/.s.PGSQL.65535";
    struct sockaddr_un address;

    if (strlen(base) + strlen(socket_name) < sizeof address.sun_path)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE,
              "scratch base directory %s is too long for a Unix socket path (at most %zu "
              "characters)",
              base, sizeof address.sun_path - strlen(socket_name) - 1);
    stow_error_hint(err, "set STOWAGE_SCRATCH_DIR to a shorter path");
    return -1;
}

/* Writes directory/name into out; fails when it does not fit. */
static int join_path(char *out, size_t size, const char *directory, const char *name,
                     stow_error *err)
{
    if ((size_t)snprintf(out, size, "%s/%s", directory, name) < size)
        return 0;
    return stow_fail(err, STOW_EXIT_USAGE, "path %s/%s is too long", directory, name);
}

/* Fails unless the run user may enter path and each of its parents. The
 * child keeps only its primary group, so only that group counts. */
static int check_traversable(const struct scratch_local *scratch, const char *path,
                             stow_error *err)
{
    char current[PATH_MAX];

    snprintf(current, sizeof current, "%s", path);
    for (;;) {
        struct stat info;
        mode_t bit = S_IXOTH;
        char *slash;

        if (stat(current, &info) != 0)
            return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "checking", current);
        if (info.st_uid == scratch->run_uid)
            bit = S_IXUSR;
        else if (info.st_gid == scratch->run_gid)
            bit = S_IXGRP;
        if ((info.st_mode & bit) == 0) {
            stow_fail(err, STOW_EXIT_FAILURE,
                      "user %s cannot enter %s, so a scratch cluster under %s would be "
                      "unreachable for its server",
                      scratch->run_user, current, path);
            stow_error_hint(err, "set STOWAGE_SCRATCH_DIR to a directory whose parents all "
                                 "allow others to enter, such as /tmp");
            return -1;
        }

        slash = strrchr(current, '/');
        if (slash == NULL || current[1] == '\0')
            return 0;
        if (slash == current)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
}

int scratch_local_base_directory(char resolved[PATH_MAX], const char **source,
                                 stow_error *err)
{
    const char *base;

    *source = "STOWAGE_SCRATCH_DIR";
    base = getenv(*source);
    if (base == NULL || base[0] == '\0') {
        *source = "TMPDIR";
        base = getenv(*source);
    }
    if (base == NULL || base[0] == '\0') {
        *source = "the default";
        base = "/tmp";
    }
    if (realpath(base, resolved) == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "resolving the scratch base directory %s (from %s) failed: %s", base,
                         *source, strerror(errno));
    return 0;
}

/* Writes the marker file that lets `stowage gc --scratch local` recognise
 * the directory once this process is gone. It stays owned by this user,
 * which gc checks, so another user cannot plant one. */
static int write_marker(const struct scratch_local *scratch, stow_error *err)
{
    char host[256] = "";
    char boot_id[STOW_BOOT_ID_MAX];
    char pid_namespace[64];
    char created[32];
    char path[PATH_MAX + 32];
    json_t *document;
    char *text;
    int fd;
    int rc = -1;

    gethostname(host, sizeof host - 1);
    stow_boot_id(boot_id, sizeof boot_id);
    stow_pid_namespace(pid_namespace, sizeof pid_namespace);
    manifest_format_time(time(NULL), created);
    document = json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s, s:i}", "format",
                         SCRATCH_LOCAL_MARKER_FORMAT, "format_version", 1, "owner_pid",
                         (json_int_t)getpid(), "host", host, "boot_id", boot_id,
                         "pid_namespace", pid_namespace, "created_at", created, "major",
                         scratch->major);
    text = document == NULL ? NULL : json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(document);
    if (text == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "building the scratch marker file failed");

    snprintf(path, sizeof path, "%s/%s", scratch->directory, SCRATCH_LOCAL_MARKER);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "creating", path);
    } else if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing", path);
    } else {
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    free(text);
    return rc;
}

/* Creates the private directory under STOWAGE_SCRATCH_DIR, TMPDIR or /tmp
 * and hands it to the run user. */
static int make_directory(struct scratch_local *scratch, stow_error *err)
{
    const char *source;
    char resolved[PATH_MAX];
    char template[PATH_MAX];

    if (scratch_local_base_directory(resolved, &source, err) != 0)
        return -1;
    if (check_path_characters(resolved, source, err) != 0 ||
        check_socket_path_length(resolved, err) != 0)
        return -1;
    if (drops_privileges(scratch) && check_traversable(scratch, resolved, err) != 0)
        return -1;

    if (join_path(template, sizeof template, resolved, "stowage-scratch-XXXXXX", err) != 0)
        return -1;
    if (mkdtemp(template) == NULL) {
        int errnum = errno;

        stow_fail_errno(err, STOW_EXIT_FAILURE, errnum, "creating a scratch directory in",
                        resolved);
        if (errnum == ENOSPC || errnum == EDQUOT)
            stow_error_hint(err, "free space in %s or set STOWAGE_SCRATCH_DIR", resolved);
        else if (errnum == EROFS || errnum == EACCES || errnum == EPERM)
            stow_error_hint(err, "set STOWAGE_SCRATCH_DIR to a writable directory");
        return -1;
    }
    snprintf(scratch->directory, sizeof scratch->directory, "%s", template);
    if (join_path(scratch->data_directory, sizeof scratch->data_directory, template, "data",
                  err) != 0 ||
        write_marker(scratch, err) != 0)
        return -1;

    if (drops_privileges(scratch) &&
        chown(scratch->directory, scratch->run_uid, scratch->run_gid) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "changing the owner of %s to %s failed: %s",
                         scratch->directory, scratch->run_user, strerror(errno));
    return 0;
}

/* Calls remove() on every entry; nftw visits children before parents. */
static int remove_entry(const char *path, const struct stat *info, int type,
                        struct FTW *position)
{
    if (remove(path) != 0 && errno != ENOENT)
        stow_log_warn("removing %s failed: %s", path, strerror(errno));
    return 0;
}

static void remove_tree(const char *directory)
{
    /* FTW_PHYS: never follow a symlink out of the tree. FTW_MOUNT: never
     * descend into a file system mounted inside it. */
    if (nftw(directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0 &&
        errno != ENOENT)
        stow_log_warn("removing scratch directory %s failed: %s", directory, strerror(errno));
    if (access(directory, F_OK) == 0)
        stow_log_warn("scratch directory %s is still present; remove it by hand", directory);
}

/* --- initdb ------------------------------------------------------------------ */

/* Writes the superuser's password into a file for initdb --pwfile. */
static int write_password_file(const struct scratch_local *scratch, const char *path,
                               stow_error *err)
{
    size_t len = strlen(scratch->password);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "creating", path);
    if (write(fd, scratch->password, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
        (drops_privileges(scratch) && fchown(fd, scratch->run_uid, scratch->run_gid) != 0)) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing", path);
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

/* C.UTF-8 sorts like C and keeps UTF-8 character classes. Systems without
 * it, and clusters of another encoding, get C, which suits every
 * encoding. */
static const char *cluster_locale(const char *encoding)
{
    locale_t probe;

    if (strcmp(encoding, "UTF8") != 0)
        return "C";
    probe = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);

    if (probe == (locale_t)0)
        return "C";
    freelocale(probe);
    return "C.UTF-8";
}

static int init_cluster(struct scratch_local *scratch, stow_error *err)
{
    unsigned char secret[24];
    char initdb[PATH_MAX + 8];
    char password_file[PATH_MAX + 16];
    char password_option[PATH_MAX + 32];
    char locale_option[32];
    char step[64];
    struct program_run run;
    int rc;

    /* The password guards TCP connections. The socket trusts the superuser. */
    if (sodium_init() < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "initializing libsodium failed");
    randombytes_buf(secret, sizeof secret);
    sodium_bin2hex(scratch->password, sizeof scratch->password, secret, sizeof secret);
    sodium_memzero(secret, sizeof secret);

    if (join_path(password_file, sizeof password_file, scratch->directory, "initdb-password",
                  err) != 0 ||
        write_password_file(scratch, password_file, err) != 0)
        return -1;

    snprintf(initdb, sizeof initdb, "%s/initdb", scratch->bindir);
    snprintf(password_option, sizeof password_option, "--pwfile=%s", password_file);
    snprintf(locale_option, sizeof locale_option, "--locale=%s",
             cluster_locale(scratch->encoding));
    {
        char *argv[] = {initdb, "-D", scratch->data_directory, "-U", scratch->user,
                        "--auth-local=trust", "--auth-host=scram-sha-256", password_option,
                        "--no-sync", "-E", scratch->encoding, locale_option, NULL};

        rc = run_as_owner(scratch, argv, &run, err);
    }
    unlink(password_file);
    if (rc != 0)
        return -1;
    if (!program_succeeded(&run)) {
        snprintf(step, sizeof step, "initdb of PostgreSQL %d", scratch->major);
        return fail_program(scratch, step, &run, NULL, err);
    }
    return 0;
}

/* --- Start and stop ------------------------------------------------------------ */

/* Returns a TCP port on 127.0.0.1 that was free a moment ago. Another
 * process may take it before the server binds it; the caller retries. */
static int choose_port(int *port, stow_error *err)
{
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "creating", "a TCP socket");
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "choosing a free port on",
                        "127.0.0.1");
        close(fd);
        return -1;
    }
    close(fd);
    *port = ntohs(address.sin_port);
    return 0;
}

/* Reads server.log from offset, keeping at most the last SERVER_LOG_TAIL
 * bytes, joined into one line. */
static void read_server_log_lines(const struct scratch_local *scratch, off_t offset,
                                  char *out, size_t size)
{
    char path[PATH_MAX + 16];
    off_t end;
    ssize_t got;
    int fd;

    out[0] = '\0';
    snprintf(path, sizeof path, "%s/server.log", scratch->directory);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (snprintf(out, size, "(cannot read %s: %s)", path, strerror(errno)) < 0)
            out[0] = '\0';
        return;
    }
    end = lseek(fd, 0, SEEK_END);
    if (end - offset > (off_t)size - 1)
        offset = end - (off_t)size + 1;
    got = pread(fd, out, size - 1, offset);
    close(fd);
    out[got > 0 ? got : 0] = '\0';
}

static void read_server_log(const struct scratch_local *scratch, off_t offset, char *out,
                            size_t size)
{
    read_server_log_lines(scratch, offset, out, size);
    flatten(out);
}

/* Returns 1 when process pid has exited: gone, or a zombie not yet
 * reaped. */
static int process_exited(pid_t pid)
{
    char path[64];
    char text[512];
    const char *end;
    FILE *file;
    size_t got;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    file = fopen(path, "r");
    if (file == NULL)
        return 1;
    got = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[got] = '\0';
    end = strrchr(text, ')');
    return end != NULL && end[1] == ' ' && end[2] == 'Z';
}

/* Failures that the server's own log lines report. */
struct server_log_findings {
    int crashed;     /* a PANIC, or a process killed by a signal */
    int disk_full;   /* the server could not extend or write a file */
};

/* Returns the message of a log line whose severity is severity, after
 * the prefix "TIME [PID] ", or NULL. Rows that the log quotes stand in
 * DETAIL, CONTEXT or STATEMENT lines, or inside the message, never in
 * place of the severity, so matching from there ignores them. */
static const char *message_of(const char *line, const char *severity)
{
    const char *after_pid = strstr(line, "] ");
    size_t length = strlen(severity);

    if (after_pid == NULL || strncmp(after_pid + 2, severity, length) != 0 ||
        strncmp(after_pid + 2 + length, ":  ", 3) != 0)
        return NULL;
    return after_pid + 2 + length + 3;
}

static int starts_with(const char *text, const char *prefix)
{
    return text != NULL && strncmp(text, prefix, strlen(prefix)) == 0;
}

/* Classifies one line of server.log (without its newline). */
static void read_log_line(const char *line, struct server_log_findings *findings)
{
    const char *panic = message_of(line, "PANIC");
    const char *log = message_of(line, "LOG");
    const char *error = message_of(line, "ERROR");

    if (error == NULL)
        error = message_of(line, "FATAL");
    if (error == NULL)
        error = panic;
    if (panic != NULL ||
        (starts_with(log, "server process (PID ") && strstr(log, " was terminated by ") != NULL))
        findings->crashed = 1;
    if (starts_with(error, "could not extend file") || starts_with(error, "could not write"))
        findings->disk_full = 1;
}

int scratch_local_server_failed(const struct scratch_local *scratch, stow_error *err)
{
    char log[SERVER_LOG_TAIL * 8];
    struct server_log_findings findings = {0};

    read_server_log_lines(scratch, 0, log, sizeof log);
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n"))
        read_log_line(line, &findings);
    if (scratch->server_pid > 0 && process_exited(scratch->server_pid))
        findings.crashed = 1;

    if (findings.disk_full && err->hint[0] == '\0')
        hint_free_space(scratch, err);
    if (findings.crashed && err->hint[0] == '\0')
        stow_error_hint(err, "the scratch server in %s crashed or was killed: check this host's "
                             "memory and disk (rerun with --keep to keep the cluster and its "
                             "server.log), then run the restore again",
                        scratch->directory);
    return findings.crashed || findings.disk_full;
}

/* Reads line number of postmaster.pid (1: pid, 7: shared memory key and
 * id, 8: status) into out, without its newline. Returns 0 when the line
 * exists. */
static int read_pid_file_line(const struct scratch_local *scratch, int number, char *out,
                              size_t size)
{
    char path[PATH_MAX + 32];
    char line[256];
    int found = -1;
    FILE *file;

    if (scratch->data_directory[0] == '\0')
        return -1;
    snprintf(path, sizeof path, "%s/postmaster.pid", scratch->data_directory);
    file = fopen(path, "re");
    if (file == NULL)
        return -1;
    for (int at = 1; found != 0 && fgets(line, sizeof line, file) != NULL; at++) {
        if (at == number) {
            size_t len = strcspn(line, "\n");

            len = len < size - 1 ? len : size - 1;
            memcpy(out, line, len);
            out[len] = '\0';
            found = 0;
        }
    }
    fclose(file);
    return found;
}

/* The server's command line. Scratch data is thrown away after the
 * restore, so durability is off for speed: no fsync, no full-page images,
 * no waiting for WAL flushes. The other settings:
 * - wal_level=minimal, which needs max_wal_senders=0: rows and index
 *   builds of a table created in the same transaction write no WAL.
 *   pg_restore --single-transaction creates and fills every table in
 *   one transaction, and pg_restore --jobs truncates a new table in
 *   the transaction of its COPY for the same reason. A table under
 *   wal_skip_threshold (2MB, PostgreSQL 13 and later) is written to WAL
 *   whole at commit.
 *   Nothing replicates from a scratch cluster.
 * - max_wal_size=8GB and checkpoint_timeout=1d: no checkpoint starts
 *   before about 4 GB of WAL (max_wal_size divided by 1 plus
 *   checkpoint_completion_target).
 * - autovacuum=off: ANALYZE and VACUUM of the new tables would compete
 *   with the restore and the verification for the CPUs, and the
 *   cluster is removed afterwards.
 * - maintenance_work_mem: see SCRATCH_MAINTENANCE_WORK_MEM. */
struct server_command {
    char postgres[PATH_MAX + 16];
    char port[16];
    char socket_directory[PATH_MAX + 32];
    char *argv[32];
};

static void server_command_init(const struct scratch_local *scratch,
                                struct server_command *command)
{
    char *settings[] = {"listen_addresses=127.0.0.1", command->socket_directory,
                        "fsync=off", "full_page_writes=off", "synchronous_commit=off",
                        "wal_level=minimal", "max_wal_senders=0", "max_wal_size=8GB",
                        "checkpoint_timeout=1d", "autovacuum=off",
                        "maintenance_work_mem=" SCRATCH_MAINTENANCE_WORK_MEM};
    size_t count = 0;

    snprintf(command->postgres, sizeof command->postgres, "%s/postgres", scratch->bindir);
    snprintf(command->port, sizeof command->port, "%d", scratch->port);
    snprintf(command->socket_directory, sizeof command->socket_directory,
             "unix_socket_directories=%s", scratch->directory);
    command->argv[count++] = command->postgres;
    command->argv[count++] = "-D";
    command->argv[count++] = (char *)scratch->data_directory;
    command->argv[count++] = "-p";
    command->argv[count++] = command->port;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        command->argv[count++] = "-c";
        command->argv[count++] = settings[i];
    }
    command->argv[count] = NULL;
}

/* Opens server.log for appending, owned by the server's user, and returns
 * its descriptor and its size before this start in *offset. */
static int open_server_log(const struct scratch_local *scratch, off_t *offset, stow_error *err)
{
    char path[PATH_MAX + 16];
    int fd;

    snprintf(path, sizeof path, "%s/server.log", scratch->directory);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "opening", path);
    if (drops_privileges(scratch) && fchown(fd, scratch->run_uid, scratch->run_gid) != 0) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "handing to the server's user", path);
        close(fd);
        return -1;
    }
    *offset = lseek(fd, 0, SEEK_END);
    return fd;
}

/* Returns 1 once the postmaster pid, which this process started, accepts
 * connections. PostgreSQL 10 and later write "ready" into postmaster.pid
 * then. For older servers a connection attempt decides. */
static int server_ready(const struct scratch_local *scratch, pid_t pid)
{
    char line[64];
    char conninfo[PATH_MAX + 64];

    if (read_pid_file_line(scratch, 1, line, sizeof line) != 0 || atol(line) != (long)pid)
        return 0;
    if (scratch->major >= 10)
        return read_pid_file_line(scratch, 8, line, sizeof line) == 0 &&
               strncmp(line, "ready", 5) == 0;
    scratch_local_conninfo(scratch, "postgres", conninfo, sizeof conninfo);
    return PQping(conninfo) == PQPING_OK;
}

/* Outcomes of waiting for the server, beside its wait status. */
#define SERVER_TIMED_OUT (-1)
#define SERVER_WAIT_INTERRUPTED (-2)

/* Waits until the server started as pid accepts connections. pg_ctl -w
 * checks ten times a second; a new cluster is ready in about 30 ms, so
 * this checks every SCRATCH_POLL_MS. Returns 0 when it is ready, -1 when
 * it exited (its wait status in *status), timed out or a SIGINT or
 * SIGTERM came (*status SERVER_TIMED_OUT or SERVER_WAIT_INTERRUPTED). */
static int wait_until_ready(const struct scratch_local *scratch, pid_t pid, int *status)
{
    struct timespec pause = {0, SCRATCH_POLL_MS * 1000L * 1000L};
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (stow_seconds_since(&start) < SCRATCH_START_TIMEOUT_S) {
        if (waitpid(pid, status, WNOHANG) == pid)
            return -1;
        if (server_ready(scratch, pid))
            return 0;
        if (stow_interrupted()) {
            *status = SERVER_WAIT_INTERRUPTED;
            return -1;
        }
        nanosleep(&pause, NULL);
    }
    *status = SERVER_TIMED_OUT;
    return -1;
}

/* Starts the server once on the chosen port. Sets *port_taken when the
 * server failed only because another process had bound the port. */
static int start_once(struct scratch_local *scratch, int *port_taken, stow_error *err)
{
    struct server_command command;
    char server_log[SERVER_LOG_TAIL];
    char step[96];
    struct program_run run = {0};
    off_t log_offset = 0;
    pid_t pid;
    int log_fd;
    int rc;

    *port_taken = 0;
    server_command_init(scratch, &command);
    log_fd = open_server_log(scratch, &log_offset, err);
    if (log_fd < 0)
        return -1;
    rc = spawn_as_owner(scratch, CHILD_SERVER, command.argv, log_fd, &pid, err);
    close(log_fd);
    if (rc != 0)
        return -1;

    scratch->server_pid = pid;
    if (wait_until_ready(scratch, pid, &run.status) == 0)
        return 0;

    read_server_log(scratch, log_offset, server_log, sizeof server_log);
    snprintf(step, sizeof step, "starting PostgreSQL %d on port %d", scratch->major,
             scratch->port);
    if (run.status == SERVER_WAIT_INTERRUPTED)
        return stow_fail_interrupted(err, "the start of the scratch server");
    if (run.status == SERVER_TIMED_OUT)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "%s in %s: the server did not accept connections within %d s; "
                         "server.log: %s",
                         step, scratch->directory, SCRATCH_START_TIMEOUT_S, server_log);
    scratch->server_pid = 0;
    if (strstr(server_log, "Address already in use") != NULL) {
        *port_taken = 1;
        return -1;
    }
    return fail_program(scratch, step, &run, server_log, err);
}

static int start_server(struct scratch_local *scratch, stow_error *err)
{
    for (int attempt = 1; attempt <= SCRATCH_START_ATTEMPTS; attempt++) {
        int port_taken;

        if (choose_port(&scratch->port, err) != 0)
            return -1;
        if (start_once(scratch, &port_taken, err) == 0) {
            scratch->started = 1;
            return 0;
        }
        if (!port_taken)
            return -1;
        stow_log_warn("port %d on 127.0.0.1 was taken before the scratch server bound it; "
                      "retrying with another port (attempt %d of %d)",
                      scratch->port, attempt, SCRATCH_START_ATTEMPTS);
    }
    return stow_fail(err, STOW_EXIT_FAILURE,
                     "starting PostgreSQL %d in %s failed: every one of %d free ports was "
                     "taken before the server bound it",
                     scratch->major, scratch->directory, SCRATCH_START_ATTEMPTS);
}

/* Returns 1 when pid is a live process (not a zombie) whose working
 * directory is the data directory, as it is for a postmaster and its
 * children. A stale postmaster.pid may name an unrelated process. */
static int runs_in_data_directory(const struct scratch_local *scratch, pid_t pid)
{
    char link_path[64];
    char target[PATH_MAX];
    char stat_path[64];
    char stat_line[512];
    ssize_t len;
    FILE *file;
    char *close_paren;
    int alive = 0;

    snprintf(link_path, sizeof link_path, "/proc/%d/cwd", (int)pid);
    len = readlink(link_path, target, sizeof target - 1);
    if (len < 0)
        return 0;
    target[len] = '\0';
    if (strcmp(target, scratch->data_directory) != 0)
        return 0;

    snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)pid);
    file = fopen(stat_path, "re");
    if (file == NULL)
        return 0;
    if (fgets(stat_line, sizeof stat_line, file) != NULL) {
        close_paren = strrchr(stat_line, ')');
        alive = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] != 'Z';
    }
    fclose(file);
    return alive;
}

/* The running postmaster: the child this process started and has not
 * reaped, else the one that postmaster.pid names (gc stops clusters of
 * other processes), or -1. */
static pid_t running_postmaster(const struct scratch_local *scratch)
{
    pid_t pid = scratch_local_postmaster_pid(scratch);

    if (scratch->server_pid > 0)
        return scratch->server_pid;
    return pid > 0 && runs_in_data_directory(scratch, pid) ? pid : -1;
}

/* Waits up to timeout_ms for the postmaster to exit, reaping it when this
 * process started it. Returns 0 once it is gone. */
static int wait_for_exit(struct scratch_local *scratch, pid_t pid, int timeout_ms)
{
    struct timespec pause = {0, SCRATCH_POLL_MS * 1000L * 1000L};
    struct timespec start;
    int status;

    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        if (pid == scratch->server_pid && waitpid(pid, &status, WNOHANG) != 0) {
            scratch->server_pid = 0;
            return 0;
        }
        if (pid != scratch->server_pid && !runs_in_data_directory(scratch, pid))
            return 0;
        nanosleep(&pause, NULL);
    } while (stow_seconds_since(&start) * 1000 < timeout_ms);
    return -1;
}

/* Last resort after the immediate shutdown failed: SIGKILL the postmaster.
 * Its children exit on their own once they notice that it is gone. */
static void kill_postmaster(struct scratch_local *scratch, pid_t pid)
{
    char line[128];
    unsigned long key;
    int shared_memory_id = -1;

    if (read_pid_file_line(scratch, 7, line, sizeof line) != 0 ||
        sscanf(line, "%lu %d", &key, &shared_memory_id) != 2)
        shared_memory_id = -1;
    stow_log_warn("killing postmaster %d of the scratch cluster in %s with SIGKILL", (int)pid,
                  scratch->directory);
    if (kill(pid, SIGKILL) != 0) {
        stow_log_warn("killing postmaster %d failed: %s", (int)pid, strerror(errno));
        return;
    }
    wait_for_exit(scratch, pid, SCRATCH_KILL_WAIT_MS);
    if (shared_memory_id >= 0)
        shmctl(shared_memory_id, IPC_RMID, NULL);
}

/* Stops the server with an immediate shutdown, the SIGQUIT of pg_ctl -m
 * immediate: the data directory is removed next, so the shutdown
 * checkpoint of a fast shutdown would write every dirty buffer for
 * nothing. */
static void stop_server(struct scratch_local *scratch)
{
    pid_t pid = running_postmaster(scratch);
    int timeout_ms = scratch->server_pid > 0 && !scratch->started
                         ? SCRATCH_UNREADY_STOP_TIMEOUT_MS
                         : SCRATCH_STOP_TIMEOUT_MS;

    if (pid <= 0)
        return;
    if (kill(pid, SIGQUIT) == 0 && wait_for_exit(scratch, pid, timeout_ms) == 0)
        return;
    stow_log_warn("the immediate shutdown of postmaster %d in %s did not end within %.0f s",
                  (int)pid, scratch->directory, timeout_ms / 1000.0);
    kill_postmaster(scratch, pid);
}

/* --- Public interface ---------------------------------------------------------- */

pid_t scratch_local_postmaster_pid(const struct scratch_local *scratch)
{
    char line[64];
    long pid;

    if (read_pid_file_line(scratch, 1, line, sizeof line) != 0)
        return -1;
    pid = atol(line);
    return pid > 0 ? (pid_t)pid : -1;
}

/* Records an interruption unless an earlier failure is recorded. */
static int check_interrupted(stow_error *err)
{
    if (stow_interrupted() == 0)
        return 0;
    return stow_fail_interrupted(err, "creation of a scratch cluster");
}

/* Removes a cluster whose creation failed. The error names its directory,
 * so a hint reports that the directory, and its server.log, are gone. */
static void remove_failed_cluster(struct scratch_local *scratch, stow_error *err)
{
    char directory[sizeof scratch->directory];

    snprintf(directory, sizeof directory, "%s", scratch->directory);
    scratch_local_remove(scratch);
    if (directory[0] != '\0' && err->hint[0] == '\0' && strstr(err->message, directory) != NULL)
        stow_error_hint(err, "%s has been removed with the failed cluster", directory);
}

int scratch_local_create(int major, const char *encoding, struct scratch_local *scratch,
                         stow_error *err)
{
    memset(scratch, 0, sizeof *scratch);
    scratch->major = major;
    snprintf(scratch->encoding, sizeof scratch->encoding, "%s",
             encoding != NULL && encoding[0] != '\0' ? encoding : "UTF8");
    snprintf(scratch->user, sizeof scratch->user, "%s", SCRATCH_SUPERUSER);

    /* Find initdb, postgres and pg_ctl (named in the instructions for a
     * kept cluster) of this major version. */
    if (find_programs(scratch, err) != 0)
        return -1;

    /* Pick the user that runs them, never root. */
    if (choose_run_user(scratch, err) != 0)
        return -1;

    /* Make the private directory for data, log and socket. */
    if (make_directory(scratch, err) != 0 || check_interrupted(err) != 0)
        goto failed;

    /* Create the cluster. */
    if (init_cluster(scratch, err) != 0 || check_interrupted(err) != 0)
        goto failed;

    /* Start the server on a free port. */
    if (start_server(scratch, err) != 0 || check_interrupted(err) != 0)
        goto failed;

    stow_log_info("started scratch PostgreSQL %d in %s on port %d as user %s", major,
                  scratch->directory, scratch->port, scratch->run_user);
    return 0;

failed:
    remove_failed_cluster(scratch, err);
    return -1;
}

/* Appends key='value' to a conninfo, escaping quotes and backslashes. */
static void append_conninfo(char *out, size_t size, const char *key, const char *value)
{
    size_t used = strlen(out);

    used += (size_t)snprintf(out + used, used < size ? size - used : 0, "%s%s='",
                             used > 0 ? " " : "", key);
    for (const char *p = value; *p != '\0' && used + 2 < size; p++) {
        if (*p == '\'' || *p == '\\')
            out[used++] = '\\';
        out[used++] = *p;
    }
    if (used + 1 < size)
        out[used++] = '\'';
    out[used < size ? used : size - 1] = '\0';
}

void scratch_local_conninfo(const struct scratch_local *scratch, const char *dbname,
                            char *out, size_t size)
{
    char port[16];

    if (size == 0)
        return;
    out[0] = '\0';
    snprintf(port, sizeof port, "%d", scratch->port);
    append_conninfo(out, size, "host", scratch->directory);
    append_conninfo(out, size, "port", port);
    append_conninfo(out, size, "user", scratch->user);
    append_conninfo(out, size, "dbname", dbname);
}

/* Runs one statement about database identifier (quoted) on conn. */
static int run_database_statement(PGconn *conn, const char *format, const char *identifier,
                                  const char *action, stow_error *err)
{
    char context[512];
    PGresult *result;
    char *sql = NULL;
    int rc = 0;

    if (asprintf(&sql, format, identifier) < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    result = PQexec(conn, sql);
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
        snprintf(context, sizeof context, "%s %s in the scratch cluster", action, identifier);
        rc = pgtools_fail(err, STOW_EXIT_DATABASE, conn, context);
    }
    PQclear(result);
    free(sql);
    return rc;
}

int scratch_local_name_database(struct scratch_local *scratch, const char *dbname,
                                stow_error *err)
{
    char conninfo[PATH_MAX + 256];
    PGconn *conn = NULL;
    char *identifier = NULL;
    int rc = -1;

    /* A new cluster's template1 is as empty as its postgres database. */
    if (strcmp(dbname, "template1") == 0)
        return 0;
    scratch_local_conninfo(scratch, "template1", conninfo, sizeof conninfo);
    if (pgtools_connect(conninfo, &conn, err) != 0) {
        stow_error_hint(err, "the scratch server in %s has stopped; rerun with --keep to "
                             "keep its server.log",
                        scratch->directory);
        return -1;
    }

    /* initdb made postgres a copy of template1, which in a new cluster
     * contains what template0 does: no objects that a restored dump could
     * collide with. Renaming it takes a millisecond; CREATE DATABASE copies
     * and WAL-logs about 7.5 MB of catalog pages, which took 0.17 to 0.28 s
     * on PostgreSQL 15. */
    identifier = PQescapeIdentifier(conn, dbname, strlen(dbname));
    if (identifier == NULL) {
        pgtools_fail(err, STOW_EXIT_DATABASE, conn, "quoting the database name");
        goto cleanup;
    }
    if ((strcmp(dbname, "postgres") != 0 &&
         run_database_statement(conn, "ALTER DATABASE postgres RENAME TO %s", identifier,
                                "naming database", err) != 0) ||
        run_database_statement(conn, "COMMENT ON DATABASE %s IS NULL", identifier,
                               "clearing the comment of database", err) != 0)
        goto cleanup;
    rc = 0;

cleanup:
    PQfreemem(identifier);
    PQfinish(conn);
    return rc;
}

void scratch_local_release(struct scratch_local *scratch)
{
    char path[PATH_MAX + 32];

    snprintf(path, sizeof path, "%s/%s", scratch->directory, SCRATCH_LOCAL_MARKER);
    if (unlink(path) != 0 && errno != ENOENT)
        stow_log_warn("removing %s failed, so `stowage gc --scratch local` may stop the kept "
                      "cluster once this process has exited: %s",
                      path, strerror(errno));
}

void scratch_local_remove(struct scratch_local *scratch)
{
    int was_started;

    if (scratch == NULL || scratch->directory[0] == '\0')
        return;
    was_started = scratch->started;

    stop_server(scratch);
    scratch->started = 0;

    /* The data goes first and the marker file with the rest: a run that
     * ends in between (a second signal) leaves a marker for gc. */
    if (scratch->data_directory[0] != '\0')
        remove_tree(scratch->data_directory);
    remove_tree(scratch->directory);

    /* gc --scratch local removes clusters of other processes, whose port
     * it does not know (0). */
    if (was_started && scratch->port > 0)
        stow_log_info("stopped scratch PostgreSQL %d on port %d and removed %s",
                      scratch->major, scratch->port, scratch->directory);
    else if (was_started)
        stow_log_info("stopped scratch PostgreSQL %d and removed %s", scratch->major,
                      scratch->directory);
    else
        stow_log_detail("removed scratch directory %s", scratch->directory);
    sodium_memzero(scratch->password, sizeof scratch->password);
    scratch->directory[0] = '\0';
    scratch->data_directory[0] = '\0';
}
