/* The command-line interface: dispatch to one function per command, and
 * the option handling they share (repository options, sizes, output). */
#ifndef STOWAGE_CLI_H
#define STOWAGE_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "common/error.h"
#include "storage/storage.h"

int cli_main(int argc, char **argv);

/* Commands: each parses its own options and returns an exit code. */
int cmd_keygen(int argc, char **argv);
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
    {"help", no_argument, NULL, CLI_OPT_HELP}

#define CLI_REPO_HELP                                                              \
    "Repository options:\n"                                                        \
    "  --repo URL            s3://BUCKET/PREFIX or file:///PATH (env STOWAGE_REPO)\n" \
    "  --endpoint URL        S3 endpoint (env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)\n" \
    "  --region NAME         AWS region (env AWS_REGION, AWS_DEFAULT_REGION)\n"    \
    "  --path-style          use path-style S3 addressing (automatic for IPs and localhost)\n" \
    "  --storage-class NAME  S3 storage class for uploaded objects\n"              \
    "  --transfers N         parts uploaded or downloaded at once (default 4)\n"   \
    "  --log-format FORMAT   text (default) or json (JSON lines on stderr)\n"      \
    "  --log-level LEVEL     error, warn, info (default), detail or debug\n"      \
    "  --metrics-file PATH   write Prometheus metrics of the run to PATH (node_exporter\n" \
    "                      textfile; backup, restore and verify)\n"                \
    "  --pushgateway URL     push the run's metrics to this Prometheus Pushgateway\n"

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

/* Parses "64KiB", "8MiB", "1GiB", "5M", or plain bytes. */
int cli_parse_size(const char *option, const char *text, uint64_t *out, stow_error *err);
int cli_parse_int(const char *option, const char *text, long min, long max, long *out,
                  stow_error *err);

/* Handles one command-specific option; returns 0 or -1 (err filled). */
typedef int (*cli_option_fn)(void *context, int code, const char *value, stow_error *err);

/* Parses argv with getopt_long: shared options go to common, the rest to
 * on_option, and up to max_positional positional arguments to positional. */
int cli_parse(int argc, char **argv, const char *command, const struct option *options,
              struct cli_common *common, cli_option_fn on_option, void *context,
              const char **positional, int max_positional, int *positional_count,
              stow_error *err);

/* Reports an unknown option or missing argument from getopt. */
int cli_usage_error(stow_error *err, const char *command, const char *message);

/* Logs err and returns its exit code. */
int cli_finish(const stow_error *err);

void cli_format_bytes(uint64_t bytes, char *out, size_t size);

#endif
