/* Test tool for local scratch clusters, driven by
 * tests/integration/test_scratch_local.py.
 *
 *   scratch_tool create MAJOR   creates a cluster and the database
 *                               "scratchtest", runs a query over libpq,
 *                               prints the cluster's facts, removes it
 *   scratch_tool hold MAJOR     the same, then prints "ready" and keeps the
 *                               cluster until SIGINT or SIGTERM, then
 *                               removes it and exits with 130
 *
 * Facts go to stdout as "name: value" lines; logs go to stderr. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "pg/pgtools.h"
#include "scratch_local.h"

#define TEST_DATABASE "scratchtest"

static int usage(void)
{
    fprintf(stderr, "usage: scratch_tool create|hold MAJOR\n");
    return STOW_EXIT_USAGE;
}

static int parse_major(const char *text, int *major)
{
    char *end;
    long value = strtol(text, &end, 10);

    if (end == text || *end != '\0' || value < 10 || value > 99)
        return -1;
    *major = (int)value;
    return 0;
}

/* Writes a table and reads it back through libpq, printing one line. */
static int query_cluster(const char *conninfo, stow_error *err)
{
    static const char *const statements[] = {
        "CREATE TABLE numbers AS SELECT generate_series(1, 1000) AS n",
        "SELECT current_database(), current_user, sum(n), current_setting('fsync'), "
        "current_setting('server_version_num') FROM numbers",
    };
    PGconn *conn;
    PGresult *result = NULL;
    int rc = 0;

    if (pgtools_connect(conninfo, &conn, err) != 0)
        return -1;
    for (size_t i = 0; rc == 0 && i < sizeof statements / sizeof statements[0]; i++) {
        ExecStatusType expected = i == 0 ? PGRES_COMMAND_OK : PGRES_TUPLES_OK;

        PQclear(result);
        result = PQexec(conn, statements[i]);
        if (PQresultStatus(result) != expected)
            rc = pgtools_fail(err, STOW_EXIT_DATABASE, conn, statements[i]);
    }
    if (rc == 0)
        printf("query: %s %s %s %s %s\n", PQgetvalue(result, 0, 0), PQgetvalue(result, 0, 1),
               PQgetvalue(result, 0, 2), PQgetvalue(result, 0, 3), PQgetvalue(result, 0, 4));
    PQclear(result);
    PQfinish(conn);
    return rc;
}

static void print_facts(const struct scratch_local *scratch, const char *conninfo)
{
    printf("conninfo: %s\n", conninfo);
    printf("directory: %s\n", scratch->directory);
    printf("port: %d\n", scratch->port);
    printf("postmaster_pid: %d\n", (int)scratch_local_postmaster_pid(scratch));
    printf("run_user: %s\n", scratch->run_user);
    fflush(stdout);
}

/* Blocks until SIGINT or SIGTERM. The signals stay blocked between the
 * check and sigsuspend, so one that arrives in between is not lost. */
static void wait_for_interrupt(void)
{
    sigset_t blocked;
    sigset_t previous;

    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigprocmask(SIG_BLOCK, &blocked, &previous);
    while (stow_interrupted() == 0)
        sigsuspend(&previous);
    sigprocmask(SIG_SETMASK, &previous, NULL);
}

int main(int argc, char **argv)
{
    struct scratch_local scratch;
    char conninfo[PATH_MAX + 256];
    stow_error err = {0};
    int hold;
    int major;

    if (argc != 3 || parse_major(argv[2], &major) != 0)
        return usage();
    if (strcmp(argv[1], "hold") == 0)
        hold = 1;
    else if (strcmp(argv[1], "create") == 0)
        hold = 0;
    else
        return usage();
    stow_interrupt_install();

    if (scratch_local_create(major, NULL, &scratch, &err) != 0) {
        stow_log_error(&err);
        return err.exit_code;
    }

    scratch_local_conninfo(&scratch, TEST_DATABASE, conninfo, sizeof conninfo);
    if (scratch_local_name_database(&scratch, TEST_DATABASE, &err) != 0 ||
        query_cluster(conninfo, &err) != 0) {
        stow_log_error(&err);
        scratch_local_remove(&scratch);
        return err.exit_code;
    }
    print_facts(&scratch, conninfo);

    if (hold) {
        printf("ready\n");
        fflush(stdout);
        wait_for_interrupt();
    }

    /* The second call must find nothing left to do. */
    scratch_local_remove(&scratch);
    scratch_local_remove(&scratch);
    if (stow_interrupted() != 0) {
        stow_fail_interrupted(&err, hold ? "hold" : "create");
        stow_log_error(&err);
        return err.exit_code;
    }
    return STOW_EXIT_OK;
}
