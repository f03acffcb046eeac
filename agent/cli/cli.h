/* The command-line interface: dispatch to one function per command, and
 * the option handling they share (repository options, sizes, output). */
#ifndef STOWAGE_CLI_H
#define STOWAGE_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "common/error.h"
#include "config/config.h"
#include "storage/storage.h"

int cli_main(int argc, char **argv);

/* Commands: each parses its own options and returns an exit code. */
int cmd_keygen(int argc, char **argv);
int cmd_rekey(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_replicate(int argc, char **argv);
int cmd_dr(int argc, char **argv);
int cmd_drill(int argc, char **argv);
int cmd_hold(int argc, char **argv);
int cmd_release(int argc, char **argv);
int cmd_expire(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* Option codes shared by every command that opens a repository. */
enum cli_repo_option_code {
    CLI_OPT_REPO = 1000,
    CLI_OPT_ENDPOINT,
    CLI_OPT_REGION,
    CLI_OPT_PATH_STYLE,
    CLI_OPT_STORAGE_CLASS,
    CLI_OPT_TRANSFERS,
    CLI_OPT_LOG_FORMAT,
    CLI_OPT_LOG_LEVEL,
    CLI_OPT_METRICS_FILE,
    CLI_OPT_PUSHGATEWAY,
    CLI_OPT_PROGRESS,
    CLI_OPT_NO_PROGRESS,
    CLI_OPT_HELP,
    CLI_OPT_FIRST_COMMAND_OPTION /* commands number their own options from here */
};

#define CLI_REPO_LONG_OPTIONS                                                      \
    {"repo", required_argument, NULL, CLI_OPT_REPO},                               \
    {"endpoint", required_argument, NULL, CLI_OPT_ENDPOINT},                       \
    {"region", required_argument, NULL, CLI_OPT_REGION},                           \
    {"path-style", no_argument, NULL, CLI_OPT_PATH_STYLE},                         \
    {"storage-class", required_argument, NULL, CLI_OPT_STORAGE_CLASS},             \
    {"transfers", required_argument, NULL, CLI_OPT_TRANSFERS},                     \
    {"log-format", required_argument, NULL, CLI_OPT_LOG_FORMAT},                   \
    {"log-level", required_argument, NULL, CLI_OPT_LOG_LEVEL},                     \
    {"metrics-file", required_argument, NULL, CLI_OPT_METRICS_FILE},               \
    {"pushgateway", required_argument, NULL, CLI_OPT_PUSHGATEWAY},                 \
    {"progress", no_argument, NULL, CLI_OPT_PROGRESS},                             \
    {"no-progress", no_argument, NULL, CLI_OPT_NO_PROGRESS},                       \
    {"help", no_argument, NULL, CLI_OPT_HELP}

#define CLI_REPO_HELP                                                          \
    "Repository options:\n" \
    "  --config FILE         configuration file (env STOWAGE_CONFIG; default\n" \
    "                        " CONFIG_DEFAULT_PATH " when it exists)\n" \
    "  --repo URL            s3://BUCKET/PREFIX or file:///PATH (env STOWAGE_REPO)\n" \
    "  --endpoint URL        S3 endpoint (env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL;\n" \
    "                        default https://s3.REGION.amazonaws.com)\n" \
    "  --region NAME         AWS region (env AWS_REGION, AWS_DEFAULT_REGION;\n" \
    "                        default us-east-1)\n" \
    "  --path-style          use path-style S3 addressing (default: only for IP\n" \
    "                        addresses and localhost)\n" \
    "  --storage-class NAME  S3 storage class for uploaded objects (default: the\n" \
    "                        bucket's, normally STANDARD)\n" \
    "  --transfers N         parts uploaded or downloaded at once, 1 to 64 (default 4);\n" \
    "                        an S3 upload holds N + 1 part buffers in memory, an S3\n" \
    "                        download one part and as many ranged GETs (of one or\n" \
    "                        two parts) as fit in N x 8 MiB, at least one\n" \
    "  --log-format FORMAT   text (default) or json (JSON lines on stderr)\n" \
    "  --log-level LEVEL     error, warn, info (default), detail or debug\n" \
    "  --metrics-file PATH   write Prometheus metrics of the run to PATH (node_exporter\n" \
    "                        textfile; default: none); the series of other names and\n" \
    "                        commands in PATH stay\n" \
    "  --pushgateway URL     push the run's metrics to this Prometheus Pushgateway,\n" \
    "                        http:// or https:// (default: none)\n" \
    "  --progress            show the progress line on stderr even when it is not a\n" \
    "                        terminal (default: only on a terminal with text logs;\n" \
    "                        rejected with --log-format json)\n" \
    "  --no-progress         never show the progress line\n"

struct cli_common {
    struct storage_options storage;
    int help;
};

void cli_common_init(struct cli_common *common);

/* Handles a shared option code. Returns 1 when handled, 0 when the code is
 * not a shared option, -1 on a bad value (err filled). */
int cli_common_option(struct cli_common *common, int code, const char *value, stow_error *err);

/* Opens the repository from the options (after STOWAGE_REPO). */
int cli_open_repository(struct cli_common *common, storage **out, stow_error *err);

/* Makes the connections that use conninfo sign in with RDS IAM tokens from
 * the default AWS credential chain (--db-iam-auth). */
int cli_use_db_iam_auth(const char *conninfo, stow_error *err);

#define CLI_DB_IAM_AUTH_HELP                                                       \
    "  --db-iam-auth          sign in with an RDS IAM authentication token (valid\n" \
    "                         900 s, made for each connection from the AWS\n"      \
    "                         credentials) instead of a password; needs\n"         \
    "                         sslmode=require or stricter unless the host is\n"    \
    "                         loopback\n"

/* Parses "64KiB", "8MiB", "1GiB", "5M", or plain bytes. */
int cli_parse_size(const char *option, const char *text, uint64_t *out, stow_error *err);
/* Parses the value of --object-lock-days (1 to 36500) into *days when days
 * is not NULL, else of --object-lock-mode into *mode. option names the
 * option or environment variable in the message. */
int cli_parse_object_lock(const char *option, const char *value, int *days,
                          enum storage_lock_mode *mode, stow_error *err);

int cli_parse_int(const char *option, const char *text, long min, long max, long *out,
                  stow_error *err);

/* Maximum number of times a repeatable option may be given. */
#define CLI_MAX_REPEATED 32

/* Appends value to list (CLI_MAX_REPEATED entries) for a repeatable option. */
int cli_add_repeated(const char **list, size_t *count, const char *option, const char *value,
                     stow_error *err);

/* Handles one command-specific option; returns 0 or -1 (err filled). */
typedef int (*cli_option_fn)(void *context, int code, const char *value, stow_error *err);

/* Parses argv with getopt_long: shared options go to common, the rest to
 * on_option, and up to max_positional positional arguments to positional.
 * Every option that argv does not give is taken from its STOWAGE_<OPTION>
 * environment variable, else from the configuration file (--config FILE,
 * STOWAGE_CONFIG or /etc/stowage/stowage.conf) for the catalog name of
 * --name or STOWAGE_NAME; see config/config.h. Values from those layers
 * are applied first. argv loses its --config arguments. */
int cli_parse(int argc, char **argv, const char *command, const struct option *options,
              struct cli_common *common, cli_option_fn on_option, void *context,
              const char **positional, int max_positional, int *positional_count,
              stow_error *err);

/* Checks --name of a command that uses it only to pick the configuration
 * file's [database NAME] section (check, gc): a valid catalog name, and a
 * section for it when the file has [database] sections (STOW_EXIT_USAGE). */
int cli_check_config_section(const char *name, stow_error *err);

/* Fails with STOW_EXIT_USAGE when the directory of path, the file that
 * option names (such as "--report"), is missing or not writable, so that
 * a command rejects the path before it starts its work. path may be NULL. */
int cli_check_output_path(const char *option, const char *path, stow_error *err);

/* Reports an unknown option or missing argument from getopt. */
int cli_usage_error(stow_error *err, const char *command, const char *message);

/* Reports argument, which getopt did not accept: unknown, or without its
 * value. */
int cli_unknown_option(stow_error *err, const char *command, const char *argument);

/* Logs err and returns its exit code. */
int cli_finish(const stow_error *err);

void cli_format_bytes(uint64_t bytes, char *out, size_t size);

#endif
