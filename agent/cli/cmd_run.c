/* stowage run: the nightly job of every database in the configuration.
 * Each step is a child process of this binary, so a crash in one step
 * cannot take the others down. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "config/run_state.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "common/metrics.h"
#include "config/config.h"
#include "formats/container.h"

extern char **environ;

enum {
    OPT_NAME = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_ALL,
    OPT_JSON,
    OPT_RUN_METRICS_FILE,
    OPT_RUN_PUSHGATEWAY,
    OPT_STATE_FILE
};

enum step_kind { STEP_SNAPSHOT, STEP_BACKUP, STEP_REPLICATE, STEP_EXPIRE, STEP_VERIFY, STEP_COUNT };

static const char *const step_names[STEP_COUNT] = {"snapshot", "backup", "replicate", "expire",
                                                   "verify"};

#define MAX_DATABASES 256
#define MAX_STEP_ARGS 24
#define BACKUP_OUTPUT_MAX 4096 /* backup --json prints one line of about 200 bytes */

static const char usage[] =
    "Usage: stowage run [--name NAME | --all] [--json] [--metrics-file PATH]\n"
    "                   [--pushgateway URL] [--state-file PATH] [--config FILE]\n\n"
    "The nightly job of one database (--name) or of every [database NAME] section\n"
    "of the configuration file (--all). For each database, in order:\n"
    "  snapshot   stowage snapshot create, when snapshot = true\n"
    "  backup     stowage backup\n"
    "  replicate  stowage replicate, when a replica is set (to = URL)\n"
    "  expire     stowage expire, when a keep-* retention key is set\n"
    "  verify     stowage restore --scratch local --verify ID of the backup this run\n"
    "             took (or stowage drill of the newest backup with verify-with =\n"
    "             drill), when the schedule says it is due: verify-every = N runs\n"
    "             (default 7) or verify-on = DAY[,DAY] (UTC)\n"
    "Each step runs as a child process with the database's effective settings,\n"
    "such as db-iam-auth = true (RDS IAM tokens for backup and an RDS drill) or\n"
    "object-lock-days = N (S3 Object Lock for backup and replicate).\n"
    "After a failed backup the database's later steps are skipped, and after a\n"
    "failed replication its expiry; other databases go on.\n\n"
    "Options:\n"
    "  --name NAME         run the job of this database (env STOWAGE_NAME); when the\n"
    "                      file has [database NAME] sections, one of them\n"
    "  --all               run the job of every database in the file\n"
    "  --json              print the outcome of each step as JSON on stdout\n"
    "  --metrics-file PATH write each step's outcome, duration and last success\n"
    "                      time as Prometheus metrics (node_exporter textfile); the\n"
    "                      series of other databases and commands in it stay\n"
    "  --pushgateway URL   push the same metrics to a Prometheus Pushgateway, one\n"
    "                      group per database and step\n"
    "  --state-file PATH   where runs since the last verification are counted\n"
    "                      (default /var/lib/stowage/run-state.json); runs of other\n"
    "                      databases may share it (locked with PATH.lock)\n"
    "  --config FILE       configuration file (env STOWAGE_CONFIG)\n"
    "  --log-format, --log-level as for the other commands; the steps log in the\n"
    "                      same format and at the same level\n\n"
    "SIGINT, SIGTERM, SIGQUIT or SIGHUP stops the running step, which cleans up.\n"
    "A second signal (not a repeat within a second) stops waiting for that\n"
    "cleanup. Either way run then prints the outcome, with the stopped step as\n"
    "interrupted, and writes the metrics and the run state. A third signal\n"
    "exits at once.\n\n"
    "Exit code: 0 when every step that ran succeeded; 130 when interrupted;\n"
    "else the most severe step exit code, in this order: 3, 8, 7, 6, 2, 1, 5, 4.\n"
    "A step killed by a signal counts as 1.\n";

struct step_result {
    int ran;               /* 0: skipped or not started */
    int exit_code;
    double seconds;
    time_t finished_at;
    char note[192];        /* the reason a step was skipped, or the step's command */
};

struct database_run {
    const char *name;
    struct step_result steps[STEP_COUNT];
    char backup_id[CONTAINER_BACKUP_ID_MAX + 1]; /* the backup this run took; "" if none */
};

struct run_cli {
    struct cli_common common;
    const char *name;
    int all;
    int json;
    const char *metrics_file;
    const char *pushgateway;
    const char *state_file;
};

static int parse_run_option(void *context, int code, const char *value, stow_error *err)
{
    struct run_cli *cli = context;

    switch (code) {
    case OPT_NAME: cli->name = value; return 0;
    case OPT_ALL: cli->all = 1; return 0;
    case OPT_JSON: cli->json = 1; return 0;
    case OPT_RUN_METRICS_FILE: cli->metrics_file = value; return 0;
    case OPT_RUN_PUSHGATEWAY:
        cli->pushgateway = value;
        return metrics_check_pushgateway_url(value, err);
    case OPT_STATE_FILE: cli->state_file = value; return 0;
    default: return cli_usage_error(err, "run", "unknown option");
    }
}

static int parse_arguments(struct run_cli *cli, int argc, char **argv, stow_error *err)
{
    static const struct option options[] = {
        {"name", required_argument, NULL, OPT_NAME},
        {"all", no_argument, NULL, OPT_ALL},
        {"json", no_argument, NULL, OPT_JSON},
        {"metrics-file", required_argument, NULL, OPT_RUN_METRICS_FILE},
        {"pushgateway", required_argument, NULL, OPT_RUN_PUSHGATEWAY},
        {"state-file", required_argument, NULL, OPT_STATE_FILE},
        {"log-format", required_argument, NULL, CLI_OPT_LOG_FORMAT},
        {"log-level", required_argument, NULL, CLI_OPT_LOG_LEVEL},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };

    cli_common_init(&cli->common);
    cli->state_file = RUN_STATE_DEFAULT_PATH;
    return cli_parse(argc, argv, "run", options, &cli->common, parse_run_option, cli, NULL, 0,
                     NULL, err);
}

/* Lists the databases to run: --all takes every section. */
static int choose_databases(const struct run_cli *cli, const struct config *config,
                            struct database_run *runs, size_t *count, stow_error *err)
{
    *count = 0;
    if (!cli->all) {
        if (cli->name == NULL)
            return cli_usage_error(err, "run", "give --name NAME or --all");
        if (config_check_database(config, cli->name, err) != 0)
            return -1;
        runs[(*count)++].name = cli->name;
        return 0;
    }
    for (size_t i = 0; i < config->count && *count < MAX_DATABASES; i++) {
        if (config->sections[i].name != NULL)
            runs[(*count)++].name = config->sections[i].name;
    }
    if (*count == 0) {
        stow_fail(err, STOW_EXIT_USAGE, "--all found no [database NAME] section in %s",
                  config->path != NULL ? config->path : "the configuration (no file was read)");
        stow_error_hint(err, "add a [database NAME] section per database, or give --name NAME");
        return -1;
    }
    return 0;
}

/* --- settings of one database -------------------------------------------- */

static int setting_is_true(const struct config *config, const char *name, const char *key)
{
    const char *value = config_value(config, name, key);
    int on = 0;

    return value != NULL && config_parse_flag(value, &on) == 0 && on;
}

static int has_retention(const struct config *config, const char *name)
{
    static const char *const keys[] = {"keep-last", "keep-daily", "keep-weekly", "keep-monthly",
                                       "keep-within"};

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (config_value(config, name, keys[i]) != NULL)
            return 1;
    }
    return 0;
}

/* --- child processes ------------------------------------------------------- */

/* Waits for the step, forwarding SIGINT, SIGTERM, SIGQUIT or SIGHUP once.
 * Returns its exit code, and STOW_EXIT_FAILURE for a step killed by a
 * signal. After a second signal to run it stops waiting, leaves the step
 * to finish its cleanup alone, and returns STOW_EXIT_INTERRUPTED with
 * *left_running set. */
static int wait_for_step(pid_t pid, const char *step, const char *name, int *left_running)
{
    int forwarded = 0;
    int status = 0;

    *left_running = 0;
    for (;;) {
        int signum;

        if (waitpid(pid, &status, 0) == pid)
            break;
        if (errno != EINTR)
            return STOW_EXIT_FAILURE;
        signum = stow_interrupted();
        if (signum != 0 && !forwarded) {
            stow_log_info("forwarding %s to the %s step of %s (pid %ld)",
                          stow_signal_name(signum), step, name, (long)pid);
            kill(pid, signum);
            forwarded = 1;
        }
        if (stow_interrupted_again() != 0) {
            stow_log_warn("%s: no longer waiting for the %s step (pid %ld) to finish its "
                          "cleanup", name, step, (long)pid);
            *left_running = 1;
            return STOW_EXIT_INTERRUPTED;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    stow_log_warn("the %s step of %s was killed by signal %d", step, name, WTERMSIG(status));
    return forwarded ? STOW_EXIT_INTERRUPTED : STOW_EXIT_FAILURE;
}

/* Starts /proc/self/exe with args, its output on stderr so that run's
 * stdout contains only the summary, and signals at their defaults. With
 * JSON logs the step's output (a text summary) is dropped instead, so
 * that stderr carries JSON lines only. An output_fd other than -1 takes
 * the step's output instead. */
static int spawn_step(char *const *args, int output_fd, pid_t *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t signals;
    int rc;

    posix_spawn_file_actions_init(&actions);
    if (output_fd >= 0)
        posix_spawn_file_actions_adddup2(&actions, output_fd, STDOUT_FILENO);
    else if (stow_log_get_format() == STOW_LOG_JSON)
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    else
        posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    posix_spawnattr_init(&attributes);
    sigemptyset(&signals);
    posix_spawnattr_setsigmask(&attributes, &signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGPIPE);
    sigaddset(&signals, SIGXFSZ);
    posix_spawnattr_setsigdefault(&attributes, &signals);
    /* The step stays in run's process group, the terminal's foreground
     * group, so that it can ask for a passphrase there. */
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(pid, "/proc/self/exe", &actions, &attributes, args, environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

static void describe_command(const char *const *args, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 1; args[i] != NULL && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i > 1 ? " " : "", args[i]);
    stow_redact_passwords(out);
}

static void run_step_with_output(const char *name, enum step_kind kind, const char *const *args,
                                 int output_fd, struct step_result *result)
{
    struct timespec started;
    struct timespec ended;
    pid_t pid;
    int left_running = 0;
    int rc;

    describe_command(args, result->note, sizeof result->note);
    stow_log_info("%s: starting the %s step: stowage %s", name, step_names[kind], result->note);
    clock_gettime(CLOCK_MONOTONIC, &started);
    rc = spawn_step((char *const *)args, output_fd, &pid);
    if (rc != 0) {
        stow_log(STOW_LOG_ERROR, "%s: the %s step could not start: %s", name, step_names[kind],
                               strerror(rc));
        result->exit_code = STOW_EXIT_FAILURE;
    } else {
        result->exit_code = wait_for_step(pid, step_names[kind], name, &left_running);
    }
    clock_gettime(CLOCK_MONOTONIC, &ended);
    result->ran = 1;
    result->finished_at = time(NULL);
    result->seconds = (double)(ended.tv_sec - started.tv_sec) +
                      (double)(ended.tv_nsec - started.tv_nsec) / 1e9;
    if (left_running)
        stow_log_info("%s: the %s step was interrupted after %.1f s and is still cleaning up",
                      name, step_names[kind], result->seconds);
    else
        stow_log_info("%s: the %s step finished with exit code %d in %.1f s", name,
                      step_names[kind], result->exit_code, result->seconds);
}

static void run_step(const char *name, enum step_kind kind, const char *const *args,
                     struct step_result *result)
{
    run_step_with_output(name, kind, args, -1, result);
}

static void skip_step(struct step_result *result, const char *reason)
{
    result->ran = 0;
    snprintf(result->note, sizeof result->note, "%s", reason);
}

/* --- the verification schedule -------------------------------------------- */

/* Decides whether this run verifies the database, and writes the reason
 * into reason. */
static int verification_due(const struct config *config, const char *name,
                            const struct run_state_entry *state, time_t now, char *reason,
                            size_t size)
{
    const char *every_text = config_value(config, name, "verify-every");
    const char *days_text = config_value(config, name, "verify-on");
    long every = every_text != NULL ? strtol(every_text, NULL, 10) : 7;
    unsigned days = 0;
    struct tm today;

    if (days_text != NULL && run_parse_days(days_text, &days, NULL) == 0) {
        gmtime_r(&now, &today);
        if ((days & (1u << today.tm_wday)) != 0) {
            snprintf(reason, size, "verify-on = %s", days_text);
            return 1;
        }
        if (every_text == NULL) {
            snprintf(reason, size, "not due: verify-on = %s (UTC)", days_text);
            return 0;
        }
    }
    if (every == 0) {
        snprintf(reason, size, "not due: verify-every = 0");
        return 0;
    }
    if (!state->known || state->last_verification == 0 ||
        state->runs_since_verification + 1 >= every) {
        snprintf(reason, size, "verify-every = %ld, %ld runs since the last passed verification",
                 every, state->known ? state->runs_since_verification : 0);
        return 1;
    }
    snprintf(reason, size, "not due: %ld of verify-every = %ld runs since the last verification",
             state->runs_since_verification + 1, every);
    return 0;
}

/* Builds the verification command: a verified restore into a local scratch
 * instance of the backup this run took (latest when its id is unknown),
 * or a drill of the replica (or of the repository when there is no
 * replica), which restores the newest backup there. */
static void verification_args(const struct config *config, const struct database_run *run,
                              const char **args)
{
    const char *name = run->name;
    const char *with = config_value(config, name, "verify-with");
    const char *replica = config_value(config, name, "to");
    size_t n = 1;

    if (with != NULL && strcmp(with, "drill") == 0) {
        args[n++] = "drill";
        args[n++] = "--name";
        args[n++] = name;
        if (replica != NULL) {
            const char *region = config_value(config, name, "to-region");
            const char *endpoint = config_value(config, name, "to-endpoint");

            args[n++] = "--repo";
            args[n++] = replica;
            if (region != NULL) {
                args[n++] = "--region";
                args[n++] = region;
            }
            if (endpoint != NULL) {
                args[n++] = "--endpoint";
                args[n++] = endpoint;
            }
        }
    } else {
        args[n++] = "restore";
        args[n++] = "--name";
        args[n++] = name;
        args[n++] = "--scratch";
        args[n++] = "local";
        args[n++] = "--verify";
        args[n++] = run->backup_id[0] != '\0' ? run->backup_id : "latest";
    }
    args[n] = NULL;
}

static void run_verification(const struct config *config, struct database_run *run,
                             json_t *state, time_t now)
{
    struct step_result *result = &run->steps[STEP_VERIFY];
    struct run_state_entry entry;
    const char *args[MAX_STEP_ARGS] = {"stowage"};
    char reason[160];

    run_state_get(state, run->name, &entry);
    if (config_value(config, run->name, "key") == NULL) {
        skip_step(result, "no key: set key = SECFILE to verify");
    } else if (!verification_due(config, run->name, &entry, now, reason, sizeof reason)) {
        skip_step(result, reason);
    } else {
        verification_args(config, run, args);
        run_step(run->name, STEP_VERIFY, args, result);
    }

    if (result->ran && result->exit_code == 0) {
        entry.runs_since_verification = 0;
        entry.last_verification = result->finished_at;
        entry.last_verification_passed = 1;
    } else {
        /* Only a failed check of the backup's data (exit code 3) makes the
         * last verification a failed one, because an interruption or a
         * failure of the environment (key, database, repository, scratch
         * cluster) is no finding about the backup. NOTE: a failed
         * pg_restore exits with 1 as a scratch cluster that cannot be
         * created does, so it keeps the flag too. The catalog records it. */
        entry.runs_since_verification++;
        if (result->ran && result->exit_code == STOW_EXIT_VERIFY)
            entry.last_verification_passed = 0;
    }
    run_state_set(state, run->name, &entry);
}

/* --- one database ---------------------------------------------------------- */

static void run_simple_step(struct database_run *run, enum step_kind kind, const char *command,
                            const char *subcommand)
{
    const char *args[MAX_STEP_ARGS] = {"stowage", command};
    size_t n = 2;

    if (subcommand != NULL)
        args[n++] = subcommand;
    args[n++] = "--name";
    args[n++] = run->name;
    args[n] = NULL;
    run_step(run->name, kind, args, &run->steps[kind]);
}

static int step_failed(const struct database_run *run, enum step_kind kind)
{
    return run->steps[kind].ran && run->steps[kind].exit_code != 0;
}

/* Reads the id from the backup step's JSON result in output into
 * run->backup_id. In text log mode the result goes on to stderr, as the
 * output of the other steps does. */
static void read_backup_id(int output, struct database_run *run)
{
    char text[BACKUP_OUTPUT_MAX + 1];
    ssize_t len = pread(output, text, BACKUP_OUTPUT_MAX, 0);
    json_error_t error;
    json_t *result;
    const char *id;

    text[len > 0 ? len : 0] = '\0';
    if (stow_log_get_format() != STOW_LOG_JSON)
        fputs(text, stderr);

    result = json_loads(text, 0, &error);
    id = json_string_value(json_object_get(result, "id"));
    if (id != NULL && id[0] != '\0' && strlen(id) < sizeof run->backup_id) {
        snprintf(run->backup_id, sizeof run->backup_id, "%s", id);
        stow_log_info("%s: the backup step took backup %s", run->name, id);
    } else {
        stow_log_warn("%s: the backup step printed no backup id (%s), so the verify step "
                      "checks the latest backup",
                      run->name, result == NULL ? error.text : "no \"id\" string");
    }
    json_decref(result);
}

/* Opens an anonymous memory file for a step's output. Where the sysctl
 * vm.memfd_noexec is 2, memfd_create needs MFD_NOEXEC_SEAL (Linux 6.3),
 * which older kernels reject. */
static int open_output_file(void)
{
#ifdef MFD_NOEXEC_SEAL
    int fd = memfd_create("stowage-step-output", MFD_CLOEXEC | MFD_NOEXEC_SEAL);

    if (fd >= 0)
        return fd;
#endif
    return memfd_create("stowage-step-output", MFD_CLOEXEC);
}

/* Runs the backup step with --json and its output in memory, so that the
 * verify step can check the backup that this run took. The newest backup
 * in the catalog may be another one: a backup dated in the future by a
 * wrong clock stays the newest for every later run. */
static void run_backup_step(struct database_run *run)
{
    const char *args[] = {"stowage", "backup", "--name", run->name, "--json", NULL};
    struct step_result *result = &run->steps[STEP_BACKUP];
    int output = open_output_file();

    if (output < 0)
        stow_log_warn("%s: no memory file for the backup step's output (%s), so the verify "
                      "step checks the latest backup",
                      run->name, strerror(errno));
    run_step_with_output(run->name, STEP_BACKUP, args, output, result);
    if (output >= 0 && result->exit_code == 0)
        read_backup_id(output, run);
    if (output >= 0)
        close(output);
}

/* Runs the steps of one database until an interruption. The steps after
 * an interruption stay "not started", with no skip reason, so that the
 * outcome and the metrics do not count them as skipped or done. */
static void run_database(const struct config *config, struct database_run *run, json_t *state,
                         time_t now)
{
    if (!setting_is_true(config, run->name, "snapshot"))
        skip_step(&run->steps[STEP_SNAPSHOT], "not configured: snapshot = false");
    else
        run_simple_step(run, STEP_SNAPSHOT, "snapshot", "create");

    if (stow_interrupted())
        return;
    run_backup_step(run);

    if (stow_interrupted())
        return;
    if (step_failed(run, STEP_BACKUP))
        skip_step(&run->steps[STEP_REPLICATE], "the backup failed");
    else if (config_value(config, run->name, "to") == NULL)
        skip_step(&run->steps[STEP_REPLICATE], "not configured: no replica (to = URL)");
    else
        run_simple_step(run, STEP_REPLICATE, "replicate", NULL);

    if (stow_interrupted())
        return;
    if (step_failed(run, STEP_BACKUP) || step_failed(run, STEP_REPLICATE))
        skip_step(&run->steps[STEP_EXPIRE], step_failed(run, STEP_BACKUP)
                                                ? "the backup failed"
                                                : "the replication failed");
    else if (!has_retention(config, run->name))
        skip_step(&run->steps[STEP_EXPIRE], "not configured: no keep-* key");
    else
        run_simple_step(run, STEP_EXPIRE, "expire", NULL);

    if (stow_interrupted())
        return;
    if (step_failed(run, STEP_BACKUP))
        skip_step(&run->steps[STEP_VERIFY], "the backup failed");
    else
        run_verification(config, run, state, now);
}

/* --- outcome ---------------------------------------------------------------- */

/* A step that neither ran nor was skipped (with a reason) was not started. */
static int step_not_started(const struct step_result *result)
{
    return !result->ran && result->note[0] == '\0';
}

static const char *step_outcome(const struct step_result *result)
{
    if (!result->ran)
        return step_not_started(result) ? "not started" : "skipped";
    if (result->exit_code == STOW_EXIT_INTERRUPTED)
        return "interrupted";
    return result->exit_code == 0 ? "ok" : "failed";
}

/* Severity ranking of step exit codes, most severe first. */
static const int severity_order[] = {STOW_EXIT_INTERRUPTED, STOW_EXIT_VERIFY,  STOW_EXIT_KEY,
                                     STOW_EXIT_DATABASE,    STOW_EXIT_STORAGE, STOW_EXIT_USAGE,
                                     STOW_EXIT_FAILURE,     STOW_EXIT_OBJECTIVE,
                                     STOW_EXIT_LOCKED};

/* Returns the rank of an exit code: higher is more severe, 0 for success.
 * A code outside the table (a crash) ranks as STOW_EXIT_FAILURE. */
static int severity(int exit_code)
{
    size_t count = sizeof severity_order / sizeof severity_order[0];

    if (exit_code == 0)
        return 0;
    for (size_t i = 0; i < count; i++) {
        if (severity_order[i] == exit_code)
            return (int)(count - i);
    }
    return severity(STOW_EXIT_FAILURE);
}

static int overall_exit_code(const struct database_run *runs, size_t count)
{
    int worst = 0;

    if (stow_interrupted())
        return STOW_EXIT_INTERRUPTED;
    for (size_t i = 0; i < count; i++) {
        for (int kind = 0; kind < STEP_COUNT; kind++) {
            const struct step_result *result = &runs[i].steps[kind];

            if (result->ran && severity(result->exit_code) > severity(worst))
                worst = result->exit_code;
        }
    }
    return severity(worst) == severity(STOW_EXIT_FAILURE) ? STOW_EXIT_FAILURE : worst;
}

static void print_table(const struct database_run *runs, size_t count)
{
    printf("%-20s %-10s %-11s %4s %9s  %s\n", "DATABASE", "STEP", "OUTCOME", "EXIT", "SECONDS",
           "DETAIL");
    for (size_t i = 0; i < count; i++) {
        for (int kind = 0; kind < STEP_COUNT; kind++) {
            const struct step_result *result = &runs[i].steps[kind];

            if (result->ran)
                printf("%-20s %-10s %-11s %4d %9.1f  %s\n", runs[i].name, step_names[kind],
                       step_outcome(result), result->exit_code, result->seconds, result->note);
            else
                printf("%-20s %-10s %-11s %4s %9s  %s\n", runs[i].name, step_names[kind],
                       step_outcome(result), "-", "-", result->note);
        }
    }
}

static void print_json(const struct database_run *runs, size_t count, int exit_code)
{
    json_t *databases = json_array();
    json_t *document;
    char *text;

    for (size_t i = 0; i < count; i++) {
        json_t *steps = json_array();

        for (int kind = 0; kind < STEP_COUNT; kind++) {
            const struct step_result *result = &runs[i].steps[kind];

            json_array_append_new(
                steps, json_pack("{s:s, s:s, s:o, s:o, s:s}", "step", step_names[kind],
                                 "outcome", step_outcome(result), "exit_code",
                                 result->ran ? json_integer(result->exit_code) : json_null(),
                                 "seconds",
                                 result->ran ? json_real(result->seconds) : json_null(),
                                 "detail", result->note));
        }
        json_array_append_new(databases,
                              json_pack("{s:s, s:o}", "name", runs[i].name, "steps", steps));
    }
    document = json_pack("{s:i, s:o}", "exit_code", exit_code, "databases", databases);
    text = json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(document);
}

/* --- metrics ---------------------------------------------------------------- */

static void fill_metrics(struct metrics_run *record, const char *name, const char *command,
                         int success, double seconds, time_t finished_at)
{
    memset(record, 0, sizeof *record);
    snprintf(record->name, sizeof record->name, "%s", name);
    snprintf(record->command, sizeof record->command, "%s", command);
    record->success = success;
    record->duration_seconds = seconds;
    record->finished_at = finished_at;
    record->last_success = success ? finished_at : 0;
    record->verification = -1;
}

/* Adds the records of one database to records: one per step that ran,
 * named by the step, and one "run" record. The run record is a success
 * only when every step ran or was skipped and those that ran succeeded.
 * So a database that an interruption left unfinished or never started
 * reports 0, and metrics_write_runs keeps its old last success time.
 * Returns the number of records added. */
static size_t database_metrics(const struct database_run *run, struct metrics_run *records)
{
    size_t used = 0;
    double total = 0;
    int success = 1;

    for (int kind = 0; kind < STEP_COUNT; kind++) {
        const struct step_result *result = &run->steps[kind];

        success = success && !step_not_started(result);
        if (!result->ran)
            continue;
        fill_metrics(&records[used], run->name, step_names[kind], result->exit_code == 0,
                     result->seconds, result->finished_at);
        if (kind == STEP_VERIFY)
            records[used].verification = result->exit_code == 0;
        used++;
        total += result->seconds;
        success = success && result->exit_code == 0;
    }
    fill_metrics(&records[used++], run->name, "run", success, total, time(NULL));
    return used;
}

/* Writes and pushes the records of every database (database_metrics). A
 * failed write or push is logged and does not change the exit code. The
 * textfile write replaces every series of these databases that a run
 * writes, also of the steps skipped this time, and keeps the rest: other
 * databases and other commands. */
static void publish_metrics(const struct run_cli *cli, const struct database_run *runs,
                            size_t count)
{
    const char *run_commands[STEP_COUNT + 2];
    struct metrics_run *records = calloc(count * (STEP_COUNT + 1), sizeof *records);
    stow_error err = {0};
    size_t used = 0;

    if (records == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        used += database_metrics(&runs[i], records + used);

    for (int kind = 0; kind < STEP_COUNT; kind++)
        run_commands[kind] = step_names[kind];
    run_commands[STEP_COUNT] = "run";
    run_commands[STEP_COUNT + 1] = NULL;
    if (cli->metrics_file != NULL && metrics_write_runs(cli->metrics_file, records, used,
                                                         run_commands, &err) != 0) {
        stow_log_warn("metrics were not written: %s", err.message);
        stow_error_clear(&err);
    }
    for (size_t i = 0; cli->pushgateway != NULL && i < used; i++) {
        if (metrics_push(cli->pushgateway, &records[i], &err) != 0) {
            stow_log_warn("metrics were not pushed: %s", err.message);
            stow_error_clear(&err);
        }
    }
    free(records);
}

/* --- the command ------------------------------------------------------------ */

/* Checks the run keys and the step keys below of every database before any
 * step starts, so that a bad value fails the run once, not in every step.
 * The file's values were checked when it was read, but not the
 * environment's. */
static int check_run_settings(const struct config *config, const struct database_run *runs,
                              size_t count, stow_error *err)
{
    static const char *const keys[] = {"verify-with",      "verify-on",        "verify-every",
                                       "object-lock-days", "object-lock-mode", "db-iam-auth"};

    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            const char *value = config_value(config, runs[i].name, keys[k]);

            if (value != NULL && config_check_value(config_key_find(keys[k]), value, err) != 0) {
                stow_error_prefix(err, "database %s", runs[i].name);
                return -1;
            }
        }
    }
    return 0;
}

/* Runs every database's steps; returns the overall exit code. */
static int run_all(const struct run_cli *cli, const struct config *config,
                   struct database_run *runs, size_t count)
{
    stow_error err = {0};
    time_t now = time(NULL);
    json_t *state = NULL;
    json_t *loaded;
    int rc;

    if (run_state_load(cli->state_file, &state, &err) != 0) {
        stow_log_error(&err);
        stow_error_clear(&err);
        state = json_pack("{s:{}}", "databases");
    }
    loaded = json_deep_copy(state);
    for (size_t i = 0; i < count && !stow_interrupted(); i++)
        run_database(config, &runs[i], state, now);

    /* Only the entries that this run changed, so that runs of other
     * databases sharing the file keep theirs. */
    if (run_state_save_changes(cli->state_file, loaded, state, &err) != 0)
        stow_log_warn("the run state was not saved, so every run verifies: %s", err.message);
    json_decref(loaded);
    json_decref(state);

    rc = overall_exit_code(runs, count);
    if (cli->metrics_file != NULL || cli->pushgateway != NULL)
        publish_metrics(cli, runs, count);
    if (cli->json)
        print_json(runs, count, rc);
    else
        print_table(runs, count);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    static struct database_run runs[MAX_DATABASES];
    struct run_cli cli;
    const struct config *config = NULL;
    stow_error err = {0};
    size_t count = 0;
    char run_pid[32];

    memset(&cli, 0, sizeof cli);
    memset(runs, 0, sizeof runs);
    if (parse_arguments(&cli, argc, argv, &err) != 0)
        return cli_finish(&err);
    if (cli.common.help) {
        fputs(usage, stdout);
        return STOW_EXIT_OK;
    }
    if (config_load_process(NULL, &config, &err) != 0 ||
        choose_databases(&cli, config, runs, &count, &err) != 0 ||
        check_run_settings(config, runs, count, &err) != 0)
        return cli_finish(&err);

    /* The steps read the same file, leave the metrics to this process and
     * log in its format and at its level, so that one stream has one
     * format. */
    if (config->path != NULL)
        setenv("STOWAGE_CONFIG", config->path, 1);
    snprintf(run_pid, sizeof run_pid, "%ld", (long)getpid());
    setenv(CONFIG_RUN_STEP_ENV, run_pid, 1);
    setenv("STOWAGE_LOG_FORMAT", stow_log_get_format() == STOW_LOG_JSON ? "json" : "text", 1);
    setenv("STOWAGE_LOG_LEVEL", stow_log_level_name(stow_log_get_level()), 1);

    /* A second signal stops the wait for a step's cleanup but still lets
     * run report what each step did. */
    stow_interrupt_return_on_second_signal();
    return run_all(&cli, config, runs, count);
}
