/* libpq connections and child processes for the PostgreSQL programs. */
#include "pg/pgtools.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sodium.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/interrupt.h"
#include "common/log.h"

extern char **environ;

/* Drops libpq's trailing newline and joins lines for a one-line message. */
static void flatten_message(const char *text, char *out, size_t size)
{
    size_t used = 0;

    for (const char *p = text; *p != '\0' && used + 1 < size; p++)
        out[used++] = *p == '\n' ? ' ' : *p;
    while (used > 0 && out[used - 1] == ' ')
        used--;
    out[used] = '\0';
}

int pgtools_fail(stow_error *err, int exit_code, PGconn *conn, const char *context)
{
    char message[1024];

    flatten_message(conn ? PQerrorMessage(conn) : "out of memory", message, sizeof message);
    return stow_fail(err, exit_code, "%s: %s", context, message);
}

int pgtools_mentions_full_disk(const char *text)
{
    return text != NULL && (strstr(text, "No space left on device") != NULL ||
                            strstr(text, "could not extend file") != NULL ||
                            strstr(text, "Check free disk space") != NULL);
}

int pgtools_reports_server_io_failure(const char *text)
{
    static const char *const failures[] = {
        "ERROR:  could not extend file", "ERROR:  could not write",
        "FATAL:  could not write",       "PANIC:  could not write",
    };

    for (size_t i = 0; text != NULL && i < sizeof failures / sizeof failures[0]; i++) {
        if (strstr(text, failures[i]) != NULL)
            return 1;
    }
    return 0;
}

/* Checks a port setting: one port, or a comma-separated list of ports (one
 * per host), each a number from 1 to 65535. An empty entry means the
 * default port, as in libpq. */
static int check_port(const char *ports, stow_error *err)
{
    const char *entry = ports;

    while (entry != NULL) {
        const char *end = strchr(entry, ',');
        size_t len = end != NULL ? (size_t)(end - entry) : strlen(entry);
        long port = 0;
        size_t i;

        for (i = 0; i < len && isdigit((unsigned char)entry[i]) && port <= 65535; i++)
            port = port * 10 + (entry[i] - '0');
        if (len > 0 && (i < len || port < 1 || port > 65535)) {
            stow_fail(err, STOW_EXIT_USAGE,
                      "invalid port \"%.*s\" in the connection string: expected a number "
                      "from 1 to 65535",
                      (int)(len > 32 ? 32 : len), entry);
            stow_error_hint(err, "fix the port in the connection string "
                                 "(postgresql://host:5432/dbname or port=5432)");
            return -1;
        }
        entry = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

PQconninfoOption *pgtools_parse_conninfo(const char *conninfo, stow_error *err)
{
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse(conninfo != NULL ? conninfo : "", &parse_error);

    if (options != NULL)
        return options;
    stow_fail(err, STOW_EXIT_USAGE, "invalid connection string: %s",
              parse_error != NULL ? parse_error : "out of memory");
    stow_error_hint(err, "use a libpq URI (postgresql://user@host:port/dbname) or "
                         "key=value pairs (host=... dbname=...)");
    PQfreemem(parse_error);
    return NULL;
}

/* A connection string libpq cannot parse is bad usage, not an outage. */
static int check_conninfo_syntax(const char *conninfo, stow_error *err)
{
    PQconninfoOption *options = pgtools_parse_conninfo(conninfo, err);
    int rc = 0;

    if (options == NULL)
        return -1;
    for (PQconninfoOption *option = options; rc == 0 && option->keyword != NULL; option++) {
        if (strcmp(option->keyword, "port") == 0 && option->val != NULL)
            rc = check_port(option->val, err);
    }
    PQconninfoFree(options);
    return rc;
}

/* Connects with conninfo, and with an RDS IAM token as the password when
 * --db-iam-auth applies to it. Fails only when the token cannot be made;
 * the caller checks the connection's status. */
static int connect_with_password(const char *conninfo, PGconn **conn, stow_error *err)
{
    /* The password comes after dbname, so it overrides one in conninfo. */
    const char *const keywords[] = {"dbname", "password", NULL};
    const char *values[] = {conninfo != NULL ? conninfo : "", NULL, NULL};
    stow_buf token;
    int rc;

    stow_buf_init(&token, 64 * 1024);
    rc = pgtools_iam_password(conninfo, &token, err);
    if (rc > 0)
        *conn = PQconnectdb(values[0]);
    if (rc == 0) {
        values[1] = (const char *)token.data;
        *conn = PQconnectdbParams(keywords, values, 1);
    }
    stow_buf_free_secret(&token);
    return rc < 0 ? -1 : 0;
}

int pgtools_connect(const char *conninfo, PGconn **out, stow_error *err)
{
    PGconn *conn = NULL;

    *out = NULL;
    if (conninfo != NULL && check_conninfo_syntax(conninfo, err) != 0)
        return -1;
    if (connect_with_password(conninfo, &conn, err) != 0)
        return -1;
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        pgtools_fail(err, STOW_EXIT_DATABASE, conn, "connecting to the database failed");
        stow_error_hint(err, "check the connection string (a libpq URI or key=value "
                             "string), the PG* variables and .pgpass");
        PQfinish(conn);
        return -1;
    }
    *out = conn;
    return 0;
}

/* Appends keyword='value' with libpq's quoting: a backslash before every
 * quote and backslash in the value. */
static int append_conninfo_pair(stow_buf *out, const char *keyword, const char *value,
                                stow_error *err)
{
    if (stow_buf_printf(out, err, "%s%s='", out->len > 0 ? " " : "", keyword) != 0)
        return -1;
    for (const char *c = value; *c != '\0'; c++) {
        if ((*c == '\'' || *c == '\\') && stow_buf_append(out, "\\", 1, err) != 0)
            return -1;
        if (stow_buf_append(out, c, 1, err) != 0)
            return -1;
    }
    return stow_buf_append(out, "'", 1, err);
}

int pgtools_conninfo_with_database(const char *conninfo, const char *dbname, stow_buf *out,
                                   stow_error *err)
{
    PQconninfoOption *options = pgtools_parse_conninfo(conninfo, err);
    int rc = 0;

    stow_buf_reset(out);
    if (options == NULL)
        return -1;
    for (PQconninfoOption *option = options; rc == 0 && option->keyword != NULL; option++) {
        if (option->val != NULL && strcmp(option->keyword, "dbname") != 0)
            rc = append_conninfo_pair(out, option->keyword, option->val, err);
    }
    PQconninfoFree(options);
    if (rc != 0)
        return -1;
    return append_conninfo_pair(out, "dbname", dbname, err);
}

static int query_one(PGconn *conn, const char *sql, char *out, size_t size, stow_error *err)
{
    PGresult *result = PQexec(conn, sql);
    int rc = 0;

    if (PQresultStatus(result) != PGRES_TUPLES_OK || PQntuples(result) != 1)
        rc = pgtools_fail(err, STOW_EXIT_DATABASE, conn, sql);
    else
        snprintf(out, size, "%s", PQgetvalue(result, 0, 0));
    PQclear(result);
    return rc;
}

/* Reads the database's locale provider and its ICU or builtin locale,
 * which PostgreSQL 15 introduced: libc alone before that. The columns
 * moved in 16 (daticurules) and 17 (datlocale replaced daticulocale).
 * NOTE: the tests run PostgreSQL 15 only, so the queries for 16 and 17
 * have never run against those servers. */
static int query_locale_provider(PGconn *conn, struct pg_server_info *info, stow_error *err)
{
    const char *sql;
    PGresult *result;
    int rc = 0;

    snprintf(info->locale_provider, sizeof info->locale_provider, "libc");
    if (info->major < 15)
        return 0;
    if (info->major >= 17)
        sql = "SELECT datlocprovider, datlocale, daticurules FROM pg_database "
              "WHERE datname = current_database()";
    else if (info->major == 16)
        sql = "SELECT datlocprovider, daticulocale, daticurules FROM pg_database "
              "WHERE datname = current_database()";
    else
        sql = "SELECT datlocprovider, daticulocale, NULL FROM pg_database "
              "WHERE datname = current_database()";

    result = PQexec(conn, sql);
    if (PQresultStatus(result) != PGRES_TUPLES_OK || PQntuples(result) != 1) {
        rc = pgtools_fail(err, STOW_EXIT_DATABASE, conn, sql);
    } else {
        const char *provider = PQgetvalue(result, 0, 0);

        if (strcmp(provider, "i") == 0 || strcmp(provider, "b") == 0)
            snprintf(info->locale_provider, sizeof info->locale_provider, "%s",
                     provider[0] == 'i' ? "icu" : "builtin");
        snprintf(info->locale, sizeof info->locale, "%s", PQgetvalue(result, 0, 1));
        if ((size_t)PQgetlength(result, 0, 2) < sizeof info->icu_rules)
            snprintf(info->icu_rules, sizeof info->icu_rules, "%s", PQgetvalue(result, 0, 2));
        else
            stow_log_warn("the database's ICU rules are %d bytes long, more than the %zu that "
                          "the manifest records: restore --create gives the new database its "
                          "ICU locale without them", PQgetlength(result, 0, 2),
                          sizeof info->icu_rules - 1);
    }
    PQclear(result);
    return rc;
}

/* Clears a locale name that filled its buffer, which may have cut it, so
 * that no manifest records a wrong locale. */
static void drop_cut_locale(char *name, size_t size, const char *column)
{
    if (strlen(name) + 1 < size)
        return;
    stow_log_warn("the database's %s is %zu bytes or longer, more than the manifest records: "
                  "restore --create gives the new database the server's default instead",
                  column, size - 1);
    name[0] = '\0';
}

int pgtools_server_info(PGconn *conn, struct pg_server_info *info, stow_error *err)
{
    char number[32];

    memset(info, 0, sizeof *info);
    if (query_one(conn, "SHOW server_version_num", number, sizeof number, err) != 0 ||
        query_one(conn, "SHOW server_version", info->version, sizeof info->version, err) != 0 ||
        query_one(conn, "SELECT pg_encoding_to_char(encoding) FROM pg_database "
                        "WHERE datname = current_database()",
                  info->encoding, sizeof info->encoding, err) != 0 ||
        query_one(conn, "SELECT datcollate FROM pg_database WHERE datname = current_database()",
                  info->lc_collate, sizeof info->lc_collate, err) != 0 ||
        query_one(conn, "SELECT datctype FROM pg_database WHERE datname = current_database()",
                  info->lc_ctype, sizeof info->lc_ctype, err) != 0)
        return -1;

    info->version_num = atoi(number);
    info->major = info->version_num / 10000;
    if (query_locale_provider(conn, info, err) != 0)
        return -1;
    drop_cut_locale(info->lc_collate, sizeof info->lc_collate, "datcollate");
    drop_cut_locale(info->lc_ctype, sizeof info->lc_ctype, "datctype");
    drop_cut_locale(info->locale, sizeof info->locale, "ICU or builtin locale");
    snprintf(info->database, sizeof info->database, "%s", PQdb(conn));
    snprintf(info->host, sizeof info->host, "%s", PQhost(conn) ? PQhost(conn) : "");
    snprintf(info->port, sizeof info->port, "%s", PQport(conn) ? PQport(conn) : "");
    snprintf(info->user, sizeof info->user, "%s", PQuser(conn) ? PQuser(conn) : "");
    return 0;
}

int pgtools_find_program(int major, const char *program, char *out, size_t size,
                         stow_error *err)
{
    const char *bindir = getenv("STOWAGE_PG_BINDIR");

    if (bindir != NULL && bindir[0] != '\0') {
        snprintf(out, size, "%s/%s", bindir, program);
        if (access(out, X_OK) == 0)
            return 0;
        return stow_fail(err, STOW_EXIT_USAGE, "%s not found in STOWAGE_PG_BINDIR=%s",
                         program, bindir);
    }

    snprintf(out, size, "/usr/lib/postgresql/%d/bin/%s", major, program);
    if (access(out, X_OK) == 0)
        return 0;

    stow_fail(err, STOW_EXIT_USAGE,
              "no %s for PostgreSQL %d found (looked for %s); a %s of another major "
              "version cannot be trusted with this server",
              program, major, out, program);
    stow_error_hint(err, "install postgresql-client-%d (Debian and Ubuntu), or point "
                         "STOWAGE_PG_BINDIR at the bin directory of PostgreSQL %d",
                    major, major);
    return -1;
}

/* --- Environment for children -------------------------------------------- */

struct env_list {
    char **entries;
    size_t count;
    size_t capacity;
};

static int env_add(struct env_list *env, const char *name, const char *value)
{
    size_t name_len = strlen(name);
    char *entry;

    for (size_t i = 0; i < env->count; i++) {
        if (strncmp(env->entries[i], name, name_len) == 0 && env->entries[i][name_len] == '=') {
            free(env->entries[i]);
            env->entries[i] = env->entries[--env->count];
            break;
        }
    }
    if (env->count + 2 > env->capacity) {
        size_t capacity = env->capacity == 0 ? 64 : env->capacity * 2;
        char **grown = realloc(env->entries, capacity * sizeof *grown);

        if (grown == NULL)
            return -1;
        env->entries = grown;
        env->capacity = capacity;
    }
    entry = malloc(name_len + strlen(value) + 2);
    if (entry == NULL)
        return -1;
    sprintf(entry, "%s=%s", name, value);
    env->entries[env->count++] = entry;
    env->entries[env->count] = NULL;
    return 0;
}

static void env_free(struct env_list *env)
{
    /* Entries may carry PGPASSWORD: wipe them before release. */
    for (size_t i = 0; i < env->count; i++) {
        sodium_memzero(env->entries[i], strlen(env->entries[i]));
        free(env->entries[i]);
    }
    free(env->entries);
}

/* Appends bytea_output=hex to PGOPTIONS, keeping the caller's options. */
static int add_session_options(struct env_list *env)
{
    const char *existing = getenv("PGOPTIONS");
    char options[1024];

    snprintf(options, sizeof options, "%s%s-c bytea_output=hex", existing ? existing : "",
             existing && existing[0] ? " " : "");
    return env_add(env, "PGOPTIONS", options);
}

/* Sets PGPASSWORD to an RDS IAM token when --db-iam-auth applies to
 * conninfo; frees env on failure. */
static int add_iam_password(const char *conninfo, struct env_list *env, stow_error *err)
{
    stow_buf token;
    int rc;

    stow_buf_init(&token, 64 * 1024);
    rc = pgtools_iam_password(conninfo, &token, err);
    if (rc == 0 && env_add(env, "PGPASSWORD", (const char *)token.data) != 0)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    stow_buf_free_secret(&token);
    if (rc < 0) {
        env_free(env);
        return -1;
    }
    return 0;
}

static int env_build(const char *conninfo, struct env_list *env, stow_error *err)
{
    PQconninfoOption *options = NULL;
    char *parse_error = NULL;

    memset(env, 0, sizeof *env);
    for (char **entry = environ; *entry != NULL; entry++) {
        char *equals = strchr(*entry, '=');
        char name[256];

        if (equals == NULL || (size_t)(equals - *entry) >= sizeof name)
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(equals - *entry), *entry);
        if (env_add(env, name, equals + 1) != 0)
            goto oom;
    }
    /* pg_dump takes TimeZone and bytea_output from the session, and both
     * change the COPY text that table digests are computed over. */
    if (env_add(env, "PGTZ", "UTC") != 0 || env_add(env, "PGAPPNAME", "stowage") != 0 ||
        add_session_options(env) != 0)
        goto oom;
    if (conninfo == NULL || conninfo[0] == '\0')
        return add_iam_password(conninfo, env, err);

    options = PQconninfoParse(conninfo, &parse_error);
    if (options == NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid connection string: %s",
                  parse_error ? parse_error : "out of memory");
        PQfreemem(parse_error);
        env_free(env);
        return -1;
    }
    for (PQconninfoOption *option = options; option->keyword != NULL; option++) {
        if (option->val != NULL && option->envvar != NULL &&
            env_add(env, option->envvar, option->val) != 0) {
            PQconninfoFree(options);
            goto oom;
        }
    }
    PQconninfoFree(options);
    return add_iam_password(conninfo, env, err);

oom:
    env_free(env);
    return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
}

/* --- Child processes ------------------------------------------------------ */

/* Keeps the last PGTOOLS_STDERR_TAIL bytes of the child's standard error and
 * logs each chunk at detail level. */
static void *drain_stderr(void *argument)
{
    struct pg_child *child = argument;
    char chunk[1024];
    ssize_t got;

    while ((got = read(child->stderr_fd, chunk, sizeof chunk - 1)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        chunk[got] = '\0';
        stow_log_detail("%s: %s", child->name, chunk);

        /* chunk is smaller than the tail, so the newest bytes always fit. */
        pthread_mutex_lock(&child->stderr_mutex);
        {
            size_t room = sizeof child->stderr_tail - 1 - (size_t)got;
            size_t keep = child->stderr_len < room ? child->stderr_len : room;

            memmove(child->stderr_tail, child->stderr_tail + child->stderr_len - keep, keep);
            memcpy(child->stderr_tail + keep, chunk, (size_t)got);
            child->stderr_len = keep + (size_t)got;
        }
        child->stderr_tail[child->stderr_len] = '\0';
        pthread_mutex_unlock(&child->stderr_mutex);
    }
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

struct spawn_pipes {
    int in[2];
    int out[2];
    int errs[2];
};

static int open_pipes(struct spawn_pipes *pipes, int streams, stow_error *err)
{
    pipes->in[0] = pipes->in[1] = pipes->out[0] = pipes->out[1] = -1;
    pipes->errs[0] = pipes->errs[1] = -1;
    if (((streams & PG_CHILD_STDIN_PIPE) && pipe2(pipes->in, O_CLOEXEC) != 0) ||
        ((streams & PG_CHILD_STDOUT_PIPE) && pipe2(pipes->out, O_CLOEXEC) != 0) ||
        pipe2(pipes->errs, O_CLOEXEC) != 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "creating", "a pipe");
    return 0;
}

static void close_pipes(struct spawn_pipes *pipes)
{
    for (int i = 0; i < 2; i++) {
        close_fd(&pipes->in[i]);
        close_fd(&pipes->out[i]);
        close_fd(&pipes->errs[i]);
    }
}

static int start_process(const char *path, char *const argv[], struct env_list *env,
                         struct spawn_pipes *pipes, pid_t *pid, stow_error *err)
{
    posix_spawn_file_actions_t actions;
    int rc;

    posix_spawn_file_actions_init(&actions);
    if (pipes->in[0] >= 0)
        posix_spawn_file_actions_adddup2(&actions, pipes->in[0], STDIN_FILENO);
    else
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (pipes->out[1] >= 0)
        posix_spawn_file_actions_adddup2(&actions, pipes->out[1], STDOUT_FILENO);
    else
        posix_spawn_file_actions_adddup2(&actions, pipes->errs[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipes->errs[1], STDERR_FILENO);

    /* Each child leads its own process group, so stopping it also stops
     * whatever it started (a wrapper script's pipeline, for example). */
    posix_spawnattr_t attributes;

    sigset_t no_signals;
    sigset_t default_signals;

    /* The child starts with no blocked signals and default dispositions:
     * stowage blocks SIGINT and SIGTERM and ignores SIGPIPE and SIGXFSZ,
     * and a child would inherit both. */
    sigemptyset(&no_signals);
    sigemptyset(&default_signals);
    sigaddset(&default_signals, SIGPIPE);
    sigaddset(&default_signals, SIGXFSZ);
    sigaddset(&default_signals, SIGUSR1);
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                              POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setsigmask(&attributes, &no_signals);
    posix_spawnattr_setsigdefault(&attributes, &default_signals);
    rc = posix_spawn(pid, path, &actions, &attributes, argv, env->entries);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "starting %s failed: %s", path, strerror(rc));
    return 0;
}

int pgtools_spawn(const char *path, char *const argv[], const char *conninfo, int streams,
                  struct pg_child *child, stow_error *err)
{
    struct spawn_pipes pipes;
    struct env_list env;
    const char *base = strrchr(path, '/');
    int rc;

    memset(child, 0, sizeof *child);
    child->pid = -1;
    child->stdin_fd = child->stdout_fd = child->stderr_fd = -1;
    snprintf(child->name, sizeof child->name, "%s", base ? base + 1 : path);
    pthread_mutex_init(&child->stderr_mutex, NULL);

    if (env_build(conninfo, &env, err) != 0)
        return -1;
    rc = open_pipes(&pipes, streams, err);
    if (rc == 0)
        rc = start_process(path, argv, &env, &pipes, &child->pid, err);
    env_free(&env);
    if (rc != 0) {
        close_pipes(&pipes);
        return -1;
    }

    child->stdin_fd = pipes.in[1];
    child->stdout_fd = pipes.out[0];
    child->stderr_fd = pipes.errs[0];
    pipes.in[1] = pipes.out[0] = pipes.errs[0] = -1;
    close_pipes(&pipes);

    if (pthread_create(&child->stderr_thread, NULL, drain_stderr, child) == 0)
        child->stderr_thread_started = 1;
    stow_log_debug("started %s (pid %d)", child->name, (int)child->pid);
    return 0;
}

void pgtools_stderr_tail(struct pg_child *child, char *out, size_t size)
{
    pthread_mutex_lock(&child->stderr_mutex);
    flatten_message(child->stderr_tail, out, size);
    pthread_mutex_unlock(&child->stderr_mutex);
}

static void finish_streams(struct pg_child *child)
{
    close_fd(&child->stdin_fd);
    close_fd(&child->stdout_fd);
    if (child->stderr_thread_started) {
        pthread_join(child->stderr_thread, NULL);
        child->stderr_thread_started = 0;
    }
    close_fd(&child->stderr_fd);
}

int pgtools_wait(struct pg_child *child, stow_error *err)
{
    char tail[PGTOOLS_STDERR_TAIL];
    int status = 0;
    int interrupted = 0;

    close_fd(&child->stdin_fd);
    while (child->pid > 0) {
        /* Stop the child on SIGINT or SIGTERM: pg_restore then rolls back
         * its single transaction instead of committing after we leave. */
        if (stow_interrupted() && !interrupted) {
            interrupted = 1;
            kill(-child->pid, SIGTERM);
        }
        if (waitpid(child->pid, &status, 0) >= 0 || errno != EINTR)
            break;
    }
    child->pid = -1;
    finish_streams(child);
    pgtools_stderr_tail(child, tail, sizeof tail);
    pthread_mutex_destroy(&child->stderr_mutex);

    if (interrupted)
        return stow_fail_interrupted(err, child->name);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        return stow_fail(err, STOW_EXIT_FAILURE, "%s was killed by signal %d (%s)%s%s",
                         child->name, WTERMSIG(status), strsignal(WTERMSIG(status)),
                         tail[0] ? ": " : "", tail);
    return stow_fail(err, STOW_EXIT_FAILURE, "%s failed with exit status %d%s%s", child->name,
                     WEXITSTATUS(status), tail[0] ? ": " : "", tail);
}

void pgtools_kill(struct pg_child *child)
{
    stow_error ignored = {0};

    if (child->pid > 0)
        kill(-child->pid, SIGTERM);
    if (child->pid > 0 || child->stderr_fd >= 0)
        pgtools_wait(child, &ignored);
}

int pgtools_capture_output(struct pg_child *child, size_t max, char **output,
                           size_t *output_len, stow_error *err)
{
    stow_buf captured;
    char chunk[65536];
    ssize_t got;
    int rc = 0;

    *output = NULL;
    *output_len = 0;
    stow_buf_init(&captured, max);
    while (rc == 0 && (got = read(child->stdout_fd, chunk, sizeof chunk)) != 0) {
        /* After SIGINT or SIGTERM the signal thread interrupts this read
         * every 100 ms; pgtools_wait then stops the child. */
        if (got < 0 && errno == EINTR && stow_interrupted())
            break;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "reading output of", child->name);
        else
            rc = stow_buf_append(&captured, chunk, (size_t)got, err);
    }
    if (rc != 0) {
        pgtools_kill(child);
        stow_buf_free(&captured);
        return -1;
    }
    if (pgtools_wait(child, err) != 0 || stow_buf_append(&captured, "", 0, err) != 0) {
        stow_buf_free(&captured);
        return -1;
    }
    *output = (char *)captured.data;
    *output_len = captured.len;
    return 0;
}

int pgtools_run_capture(const char *path, char *const argv[], const char *conninfo,
                        size_t max, char **output, size_t *output_len, stow_error *err)
{
    struct pg_child child;

    *output = NULL;
    *output_len = 0;
    if (pgtools_spawn(path, argv, conninfo, PG_CHILD_STDOUT_PIPE, &child, err) != 0)
        return -1;
    return pgtools_capture_output(&child, max, output, output_len, err);
}
