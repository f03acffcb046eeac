/* Command dispatch and the options every command shares. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "aws/credentials.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/progress.h"
#include "config/config.h"
#include "manifest.h"
#include "pg/pgtools.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"keygen", cmd_keygen, "create a recipient key pair and a signing key pair"},
    {"rekey", cmd_rekey, "change the recipients of backups and sign their manifests again"},
    {"backup", cmd_backup, "take an encrypted logical backup of a database"},
    {"list", cmd_list, "list the backups in a repository"},
    {"show", cmd_show, "show one backup's manifest"},
    {"restore", cmd_restore, "restore a backup into a database or a scratch instance"},
    {"verify", cmd_verify, "check a stored backup, or compare a database with one"},
    {"extract", cmd_extract, "write a backup's archive members as plain files"},
    {"snapshot", cmd_snapshot, "create, list, copy and expire RDS snapshots"},
    {"replicate", cmd_replicate, "copy backups and RDS snapshots to a replica, checked"},
    {"dr", cmd_dr, "show how far a replica is behind and the RPO it offers (dr status)"},
    {"drill", cmd_drill, "restore the newest backup of a replica, verified, with RPO and RTO"},
    {"hold", cmd_hold, "keep a backup from expiring"},
    {"release", cmd_release, "remove the hold of a backup"},
    {"expire", cmd_expire, "delete the backups a retention policy does not keep"},
    {"gc", cmd_gc, "remove leftovers of failed runs and abandoned uploads"},
    {"check", cmd_check, "check credentials, repository, database and RDS access"},
    {"config", cmd_config, "show the effective settings of each database and their sources"},
    {"run", cmd_run, "the nightly job: backup, replicate, expire and verify, per database"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: stowage COMMAND [OPTIONS]\n\n"
                 "Backups of PostgreSQL into S3 or a local directory, encrypted,\n"
                 "compressed, catalogued and verified.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun stowage COMMAND --help for a command's options.\n"
                 "Exit codes: 0 success, 1 failure, 2 bad usage or configuration,\n"
                 "3 verification failed, 4 lock held, 5 objective missed,\n"
                 "6 repository unreachable, full or access denied, 7 database unreachable,\n"
                 "8 wrong key or passphrase, 130 interrupted.\n");
}

/* Keeps a private copy of each argument and masks passwords in the
 * original strings, which the process list (/proc/PID/cmdline) shows. The
 * masked text is shorter than the original, so the bytes after its NUL
 * are cleared too: the kernel shows the whole argument area. */
static void hide_argument_passwords(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t original_len = strlen(argv[i]);
        size_t masked_len;
        char *copy;

        if (strstr(argv[i], "://") == NULL && strcasestr(argv[i], "password") == NULL)
            continue;
        copy = strdup(argv[i]);
        if (copy == NULL)
            continue;
        stow_redact_passwords(argv[i]);
        masked_len = strlen(argv[i]);
        memset(argv[i] + masked_len, 0, original_len - masked_len);
        argv[i] = copy;
    }
}

static int asks_for_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

/* STOWAGE_CLEANUP_TIMEOUT applies to every command, so it is read before
 * the command's options. A bad value is reported, but --help still works. */
static int configure_cleanup_timeout(int argc, char **argv)
{
    stow_error err = {0};

    if (stow_interrupt_configure(&err) == 0)
        return 0;
    stow_log_error(&err);
    return asks_for_help(argc, argv) ? 0 : -1;
}

/* Makes a step of stowage run get STOW_PARENT_DEATH_SIGNAL when run dies,
 * so that it cleans up and exits instead of running on, orphaned, with
 * the repository lock. A run that died before this call sends it at
 * once. Call before stow_interrupt_install. */
static void stop_with_run(void)
{
    const char *run_pid = getenv(CONFIG_RUN_STEP_ENV);

    if (run_pid == NULL)
        return;
    stow_interrupt_stop_on_parent_death();
    if (prctl(PR_SET_PDEATHSIG, STOW_PARENT_DEATH_SIGNAL) != 0 ||
        getppid() != (pid_t)atol(run_pid))
        kill(getpid(), STOW_PARENT_DEATH_SIGNAL);
}

/* Returns 0 when the run's --name is invalid, or is missing from a
 * configuration file that has [database NAME] sections: a usage error
 * then writes no metrics, so that a mistyped name leaves no series
 * behind. A bad key file or option under a good name still does. */
static int name_label_valid(void)
{
    const char *name = metrics_run_name();
    stow_error ignored = {0};

    return name[0] == '\0' || cli_check_config_section(name, &ignored) == 0;
}

int cli_main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "stowage: libsodium failed to initialise\n");
        return STOW_EXIT_FAILURE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    stop_with_run();
    stow_interrupt_install();
    hide_argument_passwords(argc, argv);
    if (configure_cleanup_timeout(argc, argv) != 0)
        return STOW_EXIT_USAGE;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? STOW_EXIT_USAGE : STOW_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("stowage %s\n", STOWAGE_VERSION);
        return STOW_EXIT_OK;
    }

    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc;

            metrics_run_begin(commands[i].name, argc - 1, argv + 1);
            stow_progress_set_command(commands[i].name);
            rc = commands[i].run(argc - 1, argv + 1);
            if (rc == STOW_EXIT_USAGE && !name_label_valid())
                metrics_discard_run();
            rc = metrics_run_end(rc);
            config_release_process();
            pgtools_iam_auth_disable();
            stow_progress_end();

            curl_global_cleanup();
            return rc;
        }
    }
    fprintf(stderr, "stowage: unknown command \"%s\"\n\n", argv[1]);
    print_usage(stderr);
    return STOW_EXIT_USAGE;
}

void cli_common_init(struct cli_common *common)
{
    memset(common, 0, sizeof *common);
    common->storage.path_style = -1;
    common->storage.url = getenv("STOWAGE_REPO");
}

int cli_common_option(struct cli_common *common, int code, const char *value, stow_error *err)
{
    enum stow_log_level level;
    long number = 0;

    switch (code) {
    case CLI_OPT_REPO:
        common->storage.url = value;
        return 1;
    case CLI_OPT_ENDPOINT:
        common->storage.endpoint = value;
        return 1;
    case CLI_OPT_REGION:
        common->storage.region = value;
        return 1;
    case CLI_OPT_PATH_STYLE:
        common->storage.path_style = 1;
        return 1;
    case CLI_OPT_STORAGE_CLASS:
        common->storage.storage_class = value;
        return 1;
    case CLI_OPT_TRANSFERS:
        if (cli_parse_int("--transfers", value, 1, 64, &number, err) != 0)
            return -1;
        common->storage.transfers_in_flight = (int)number;
        return 1;
    case CLI_OPT_LOG_FORMAT:
        if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "invalid --log-format \"%s\": use text or json", value);
        stow_log_set_format(strcmp(value, "json") == 0 ? STOW_LOG_JSON : STOW_LOG_TEXT);
        return 1;
    case CLI_OPT_LOG_LEVEL:
        if (stow_log_level_parse(value, &level) != 0)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "invalid --log-level \"%s\": use error, warn, info, detail "
                             "or debug", value);
        stow_log_set_level(level);
        return 1;
    case CLI_OPT_METRICS_FILE:
        metrics_set_textfile(value);
        return 1;
    case CLI_OPT_PUSHGATEWAY:
        if (metrics_check_pushgateway_url(value, err) != 0)
            return -1;
        metrics_set_pushgateway(value);
        return 1;
    case CLI_OPT_PROGRESS:
    case CLI_OPT_NO_PROGRESS:
        stow_progress_set_mode(code == CLI_OPT_PROGRESS ? STOW_PROGRESS_ON : STOW_PROGRESS_OFF);
        return 1;
    case CLI_OPT_HELP:
        common->help = 1;
        return 1;
    default:
        return 0;
    }
}

int cli_open_repository(struct cli_common *common, storage **out, stow_error *err)
{
    const char *min_part = getenv("STOWAGE_MIN_PART_SIZE");
    uint64_t size;

    /* Test stores (moto with S3_UPLOAD_PART_MIN_SIZE) accept smaller parts. */
    if (min_part != NULL) {
        if (cli_parse_size("STOWAGE_MIN_PART_SIZE", min_part, &size, err) != 0)
            return -1;
        common->storage.min_part_size = (size_t)size;
    }
    return storage_open(&common->storage, out, err);
}

int cli_use_db_iam_auth(const char *conninfo, stow_error *err)
{
    struct aws_credentials_provider *provider = NULL;

    if (aws_credentials_provider_new_default(&provider, err) != 0)
        return -1;
    return pgtools_iam_auth_enable(conninfo, provider, err);
}

int cli_parse_object_lock(const char *option, const char *value, int *days,
                          enum storage_lock_mode *mode, stow_error *err)
{
    long number = 0;

    if (days != NULL) {
        if (cli_parse_int(option, value, 1, 36500, &number, err) != 0)
            return -1;
        *days = (int)number;
        return 0;
    }
    if (storage_lock_mode_parse(value, mode) == 0)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE, "invalid %s \"%s\"", option, value);
    stow_error_hint(err, "use governance or compliance");
    return -1;
}

int cli_parse_size(const char *option, const char *text, uint64_t *out, stow_error *err)
{
    static const struct {
        const char *suffix;
        uint64_t factor;
    } units[] = {{"", 1},           {"B", 1},           {"K", 1000},
                 {"KB", 1000},      {"KiB", 1024},      {"M", 1000000},
                 {"MB", 1000000},   {"MiB", 1048576},   {"G", 1000000000},
                 {"GB", 1000000000}, {"GiB", 1073741824}};
    char *end = NULL;
    unsigned long long value;

    errno = 0;
    value = strtoull(text, &end, 10);
    if (errno == 0 && end != text && isdigit((unsigned char)text[0])) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcmp(end, units[i].suffix) == 0 && value <= UINT64_MAX / units[i].factor) {
                *out = value * units[i].factor;
                return 0;
            }
        }
    }
    stow_fail(err, STOW_EXIT_USAGE, "invalid size for %s: \"%s\"", option, text);
    stow_error_hint(err, "give bytes, or a number with KiB, MiB or GiB (for example 16MiB)");
    return -1;
}

int cli_add_repeated(const char **list, size_t *count, const char *option, const char *value,
                     stow_error *err)
{
    if (*count == CLI_MAX_REPEATED)
        return stow_fail(err, STOW_EXIT_USAGE, "more than %d %s options", CLI_MAX_REPEATED,
                         option);
    list[(*count)++] = value;
    return 0;
}

int cli_parse_int(const char *option, const char *text, long min, long max, long *out,
                  stow_error *err)
{
    char *end = NULL;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid value for %s: \"%s\" (expected a "
                                               "whole number from %ld to %ld)",
                         option, text, min, max);
    *out = value;
    return 0;
}

/* Applies one option value from any layer: shared options to common, the
 * rest to the command. */
struct option_target {
    struct cli_common *common;
    cli_option_fn on_option;
    void *context;
};

static int apply_option(void *context, int code, const char *value, stow_error *err)
{
    struct option_target *target = context;
    int handled = cli_common_option(target->common, code, value, err);

    if (handled < 0)
        return -1;
    if (handled == 0 && target->on_option(target->context, code, value, err) != 0)
        return -1;
    return 0;
}

/* Records the codes of the options argv gives, and the --name value, with
 * a first getopt pass that also reports unknown options. */
static int scan_flags(int argc, char **argv, const char *command, const struct option *options,
                      int *given_codes, size_t *given_count, const char **name,
                      stow_error *err)
{
    int code;
    int index;

    *given_count = 0;
    opterr = 0;
    optind = 0;
    while ((code = getopt_long(argc, argv, "", options, &index)) != -1) {
        if (code == '?' || code == ':')
            return cli_unknown_option(err, command, argv[optind - 1]);
        given_codes[(*given_count)++] = code;
        if (strcmp(options[index].name, "name") == 0)
            *name = optarg;
    }
    return 0;
}

/* Warns when backup is given a name that the file has no section for: it
 * still runs (a first backup of a new database needs no section), with
 * the settings of [defaults], under a new catalog name. */
static void warn_unknown_database(const char *name)
{
    const struct config *config = NULL;
    stow_error check = {0};

    if (config_load_process(NULL, &config, &check) == 0 &&
        config_check_database(config, name, &check) != 0)
        stow_log_warn("%s; backing up with the settings of [defaults] under this name (%s)",
                      check.message, check.hint);
}

int cli_check_config_section(const char *name, stow_error *err)
{
    const struct config *config = NULL;

    if (catalog_check_name(name, err) != 0 || config_load_process(NULL, &config, err) != 0)
        return -1;
    return config_check_database(config, name, err);
}

/* Applies the environment and the configuration file below the flags, and
 * sets *name to the catalog name that selects the file's section. */
static int apply_lower_layers(int argc, char **argv, const char *config_path,
                              const char *command, const struct option *options,
                              struct option_target *target, const char **name,
                              stow_error *err)
{
    const struct config *config = NULL;
    size_t given_count = 0;
    int *given_codes;
    int rc;

    given_codes = calloc((size_t)argc + 1, sizeof *given_codes);
    if (given_codes == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    *name = getenv("STOWAGE_NAME");
    rc = scan_flags(argc, argv, command, options, given_codes, &given_count, name, err);
    if (rc == 0)
        rc = config_load_process(config_path, &config, err);
    if (rc == 0)
        rc = config_apply_layers(config, command, *name, options, given_codes, given_count,
                                 apply_option, target, err);
    free(given_codes);
    return rc;
}

/* Rejects --progress with JSON logs, whichever layer set each: the status
 * line's carriage returns and erase sequences would break the JSON lines. */
static int check_progress_format(stow_error *err)
{
    if (stow_progress_get_mode() != STOW_PROGRESS_ON || stow_log_get_format() != STOW_LOG_JSON)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE, "--progress cannot be used with --log-format json");
    stow_error_hint(err, "drop --progress (JSON logs have no progress line), or use "
                         "--log-format text");
    return -1;
}

int cli_parse(int argc, char **argv, const char *command, const struct option *options,
              struct cli_common *common, cli_option_fn on_option, void *context,
              const char **positional, int max_positional, int *positional_count,
              stow_error *err)
{
    struct option_target target = {common, on_option, context};
    const char *config_path = NULL;
    const char *name = NULL;
    char message[256];
    int code;

    argc = config_take_argument(argc, argv, &config_path, err);
    if (argc < 0)
        return -1;
    if (apply_lower_layers(argc, argv, config_path, command, options, &target, &name,
                           err) != 0)
        return -1;

    opterr = 0;
    optind = 0;
    while ((code = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (code == '?' || code == ':')
            return cli_unknown_option(err, command, argv[optind - 1]);
        if (apply_option(&target, code, optarg, err) != 0)
            return -1;
    }
    if (check_progress_format(err) != 0)
        return -1;
    /* After the flags, so that the warning has the requested log format. */
    if (name != NULL && strcmp(command, "backup") == 0)
        warn_unknown_database(name);

    if (positional_count != NULL)
        *positional_count = 0;
    for (; optind < argc; optind++) {
        if (positional_count == NULL || *positional_count >= max_positional) {
            snprintf(message, sizeof message, "unexpected argument \"%s\"", argv[optind]);
            return cli_usage_error(err, command, message);
        }
        positional[(*positional_count)++] = argv[optind];
    }
    return 0;
}

int cli_unknown_option(stow_error *err, const char *command, const char *argument)
{
    char message[256];

    snprintf(message, sizeof message, "unknown option or missing value: %s", argument);
    return cli_usage_error(err, command, message);
}

int cli_check_output_path(const char *option, const char *path, stow_error *err)
{
    char directory[4096];
    char *slash;

    if (path == NULL)
        return 0;
    snprintf(directory, sizeof directory, "%s", path);
    slash = strrchr(directory, '/');
    if (slash == NULL)
        snprintf(directory, sizeof directory, ".");
    else if (slash == directory)
        slash[1] = '\0';
    else
        *slash = '\0';
    if (access(directory, W_OK | X_OK) != 0) {
        stow_fail(err, STOW_EXIT_USAGE, "cannot write %s %s: directory %s is missing or not "
                                        "writable", option, path, directory);
        stow_error_hint(err, "create the directory or choose another %s path", option);
        return -1;
    }
    return 0;
}

int cli_usage_error(stow_error *err, const char *command, const char *message)
{
    stow_fail(err, STOW_EXIT_USAGE, "%s", message);
    stow_error_hint(err, "run stowage %s --help for the options", command);
    return -1;
}

int cli_finish(const stow_error *err)
{
    if (!stow_error_is_set(err))
        return STOW_EXIT_OK;
    stow_log_error(err);
    return err->exit_code;
}

void cli_format_bytes(uint64_t bytes, char *out, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = (double)bytes;
    size_t unit = 0;

    while (value >= 1024 && unit + 1 < sizeof units / sizeof units[0]) {
        value /= 1024;
        unit++;
    }
    if (unit == 0)
        snprintf(out, size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, size, "%.1f %s", value, units[unit]);
}
