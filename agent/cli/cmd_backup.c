/* stowage backup: the logical backup command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup.h"
#include "cli/cli.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/metrics.h"

enum {
    OPT_DB = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_RECIPIENT,
    OPT_NAME,
    OPT_COMPRESS_LEVEL,
    OPT_COMPRESS_THREADS,
    OPT_PART_SIZE,
    OPT_PART_GROWTH,
    OPT_NO_ENCRYPTION,
    OPT_NO_GLOBALS,
    OPT_JSON,
    OPT_LOCK_STALE_AFTER
};

#define MAX_RECIPIENTS 32

static const char usage[] =
    "Usage: stowage backup --repo URL --db CONNINFO --recipient PUBFILE [OPTIONS]\n\n"
    "Streams pg_dump (custom format) of one database through zstd and encryption\n"
    "into the repository, then writes its manifest. Roles (without passwords)\n"
    "and tablespaces are stored beside the dump.\n\n"
    "Options:\n"
    "  --db CONNINFO          libpq URI or key=value string (default: PG* variables)\n"
    "  --recipient PUBFILE    public key file from stowage keygen; repeat for\n"
    "                         several recipients (at least one unless --no-encryption)\n"
    "  --name NAME            catalog name for the backups (default: the database name)\n"
    "  --compress-level N     zstd level, 1 to 19 (default 3)\n"
    "  --compress-threads N   zstd worker threads, 0 for none (default 2)\n"
    "  --part-size SIZE       size of the first upload parts (default 16MiB; S3 needs\n"
    "                         at least 5MiB); the part size doubles every 900\n"
    "                         parts, so any stream fits in 10,000 parts\n"
    "  --no-encryption        store the backup unencrypted (never the default)\n"
    "  --no-globals           leave out roles and tablespaces\n"
    "  --json                 print the result as JSON on stdout\n"
    "  --lock-stale-after DUR take over a lock of the name not refreshed for DUR\n"
    "                         (default 10m; s, m, h, d or w)\n\n" CLI_REPO_HELP;

struct backup_cli {
    struct cli_common common;
    struct backup_options options;
    const char *recipients[MAX_RECIPIENTS];
    int json;
};

static int parse_backup_option(void *context, int code, const char *value, stow_error *err)
{
    struct backup_cli *cli = context;
    long number;
    uint64_t size;

    switch (code) {
    case OPT_DB:
        cli->options.conninfo = value;
        return 0;
    case OPT_RECIPIENT:
        if (cli->options.recipient_count == MAX_RECIPIENTS)
            return stow_fail(err, STOW_EXIT_USAGE, "more than %d --recipient options",
                             MAX_RECIPIENTS);
        cli->recipients[cli->options.recipient_count++] = value;
        return 0;
    case OPT_NAME:
        cli->options.name = value;
        return 0;
    case OPT_COMPRESS_LEVEL:
        if (cli_parse_int("--compress-level", value, 1, 19, &number, err) != 0)
            return -1;
        cli->options.compress_level = (int)number;
        return 0;
    case OPT_COMPRESS_THREADS:
        if (cli_parse_int("--compress-threads", value, 0, 64, &number, err) != 0)
            return -1;
        cli->options.compress_threads = (int)number;
        return 0;
    case OPT_PART_SIZE:
        if (cli_parse_size("--part-size", value, &size, err) != 0)
            return -1;
        cli->options.part_size = size;
        return 0;
    case OPT_PART_GROWTH:
        if (cli_parse_int("--part-growth-interval", value, 1, 10000, &number, err) != 0)
            return -1;
        cli->options.part_growth_interval = (uint32_t)number;
        return 0;
    case OPT_NO_ENCRYPTION:
        cli->options.no_encryption = 1;
        return 0;
    case OPT_NO_GLOBALS:
        cli->options.skip_globals = 1;
        return 0;
    case OPT_JSON:
        cli->json = 1;
        return 0;
    case OPT_LOCK_STALE_AFTER:
        return stow_duration_parse("--lock-stale-after", value, &cli->options.lock_stale_after,
                                   err);
    default:
        return cli_usage_error(err, "backup", "unknown option");
    }
}

static int parse_arguments(struct backup_cli *cli, int argc, char **argv, stow_error *err)
{
    static const struct option long_options[] = {
        CLI_REPO_LONG_OPTIONS,
        {"db", required_argument, NULL, OPT_DB},
        {"recipient", required_argument, NULL, OPT_RECIPIENT},
        {"name", required_argument, NULL, OPT_NAME},
        {"compress-level", required_argument, NULL, OPT_COMPRESS_LEVEL},
        {"compress-threads", required_argument, NULL, OPT_COMPRESS_THREADS},
        {"part-size", required_argument, NULL, OPT_PART_SIZE},
        {"part-growth-interval", required_argument, NULL, OPT_PART_GROWTH},
        {"no-encryption", no_argument, NULL, OPT_NO_ENCRYPTION},
        {"no-globals", no_argument, NULL, OPT_NO_GLOBALS},
        {"json", no_argument, NULL, OPT_JSON},
        {"lock-stale-after", required_argument, NULL, OPT_LOCK_STALE_AFTER},
        {NULL, 0, NULL, 0},
    };

    return cli_parse(argc, argv, "backup", long_options, &cli->common, parse_backup_option, cli,
                     NULL, 0, NULL, err);
}

static int check_part_size(const struct backup_cli *cli, size_t min_part_size, stow_error *err)
{
    if (cli->options.part_size < min_part_size) {
        stow_fail(err, STOW_EXIT_USAGE, "--part-size %llu is below the minimum part size of "
                                        "%zu bytes",
                  (unsigned long long)cli->options.part_size, min_part_size);
        stow_error_hint(err, "S3 rejects parts under 5 MiB except the last; use 5MiB or more");
        return -1;
    }
    if (cli->options.part_size > STORAGE_MAX_PART_SIZE)
        return stow_fail(err, STOW_EXIT_USAGE, "--part-size is above the S3 maximum of 5 GiB");
    return 0;
}

static void print_result(const struct backup_cli *cli, const struct backup_result *result)
{
    char stored[32];
    char plain[32];

    if (cli->json) {
        printf("{\"id\": \"%s\", \"name\": \"%s\", \"plain_bytes\": %llu, "
               "\"stored_bytes\": %llu, \"parts\": %zu, \"tables\": %zu, "
               "\"seconds\": %.3f}\n",
               result->id, result->name, (unsigned long long)result->plain_bytes,
               (unsigned long long)result->stored_bytes, result->parts, result->tables,
               result->seconds);
        return;
    }
    cli_format_bytes(result->stored_bytes, stored, sizeof stored);
    cli_format_bytes(result->plain_bytes, plain, sizeof plain);
    printf("backup %s of %s complete: %zu tables, %s archive stored as %s in %zu parts, "
           "%.1f s\n",
           result->id, result->name, result->tables, plain, stored, result->parts,
           result->seconds);
}

int cmd_backup(int argc, char **argv)
{
    struct backup_cli cli;
    struct backup_result result = {0};
    stow_error err = {0};
    storage *store = NULL;

    memset(&cli, 0, sizeof cli);
    cli_common_init(&cli.common);
    cli.options.compress_level = 3;
    cli.options.compress_threads = 2;
    cli.options.part_size = 16u * 1024 * 1024;
    cli.options.recipient_files = cli.recipients;
    if (getenv("STOWAGE_DB") != NULL)
        cli.options.conninfo = getenv("STOWAGE_DB");

    if (parse_arguments(&cli, argc, argv, &err) != 0)
        return cli_finish(&err);
    if (cli.common.help) {
        fputs(usage, stdout);
        return STOW_EXIT_OK;
    }

    if (cli_open_repository(&cli.common, &store, &err) == 0 &&
        check_part_size(&cli, storage_min_part_size(store), &err) == 0 &&
        backup_run(store, &cli.options, &result, &err) == 0)
        print_result(&cli, &result);

    /* Metrics of the run: the catalog name, and the sizes once complete. */
    metrics_set_name(result.name[0] != '\0' ? result.name : cli.options.name);
    if (!stow_error_is_set(&err))
        metrics_record_backup(result.plain_bytes, result.compressed_bytes, result.stored_bytes,
                              result.parts);

    storage_free(store);
    return cli_finish(&err);
}
