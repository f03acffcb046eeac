/* stowage backup: the logical backup command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    OPT_SIGNING_KEY,
    OPT_SIGNING_PASSPHRASE_FILE,
    OPT_LOCK_STALE_AFTER,
    OPT_OBJECT_LOCK_DAYS,
    OPT_OBJECT_LOCK_MODE,
    OPT_DB_IAM_AUTH
};

#define MAX_RECIPIENTS 32

static const char usage[] =
    "Usage: stowage backup --repo URL --db CONNINFO --recipient PUBFILE [OPTIONS]\n\n"
    "Streams pg_dump (custom format) of one database through zstd and encryption\n"
    "into the repository, then writes its manifest. Roles (without passwords)\n"
    "and tablespaces are stored beside the dump.\n\n"
    "Options:\n"
    "  --db CONNINFO          libpq URI or key=value string (env STOWAGE_DB;\n"
    "                         default: the PG* variables)\n" CLI_DB_IAM_AUTH_HELP
    "  --recipient PUBFILE    public key file from stowage keygen; repeat for\n"
    "                         several recipients (at least one unless --no-encryption)\n"
    "  --signing-key FILE     signing secret key (PATH.sign from stowage keygen) that\n"
    "                         signs the manifest (env STOWAGE_SIGNING_KEY)\n"
    "  --signing-passphrase-file FILE\n"
    "                         passphrase of a protected signing key (else asked on\n"
    "                         the terminal)\n"
    "  --name NAME            catalog name for the backups (default: the database name)\n"
    "  --compress-level N     zstd level, 1 to 19 (default 3)\n"
    "  --compress-threads N   zstd worker threads, 0 for none (default 2)\n"
    "  --part-size SIZE       size of the first upload parts: bytes, or a number with\n"
    "                         K, KB, KiB, M, MB, MiB, G, GB or GiB (default 8MiB;\n"
    "                         S3 needs at least 5MiB); the part size doubles every\n"
    "                         900 parts, so any stream fits in 10,000 parts. An S3\n"
    "                         upload holds --transfers + 1 parts in memory, allocated\n"
    "                         at the start: 40 MiB at the defaults, doubling with\n"
    "                         the parts from a 7 GiB backup object on\n"
    "  --no-encryption        store the backup unencrypted (never the default)\n"
    "  --no-globals           leave out roles and tablespaces\n"
    "  --json                 print the result as JSON on stdout\n"
    "  --lock-stale-after DUR take over a lock of the name not refreshed for DUR\n"
    "                         (default 10m; s, m, h, d or w)\n"
    "  --object-lock-days N   store every object and the manifest under S3 Object\n"
    "                         Lock until N days (1 to 36500) after the backup\n"
    "                         starts (env STOWAGE_OBJECT_LOCK_DAYS). The bucket must\n"
    "                         have Object Lock enabled; file:// repositories reject it\n"
    "  --object-lock-mode MODE\n"
    "                         governance (default) or compliance (env\n"
    "                         STOWAGE_OBJECT_LOCK_MODE). In governance mode a\n"
    "                         principal with s3:BypassGovernanceRetention can still\n"
    "                         remove a backup locked by mistake; in compliance mode\n"
    "                         nobody can before the date, not even the account root\n\n"
    CLI_REPO_HELP;

struct backup_cli {
    struct cli_common common;
    struct backup_options options;
    const char *recipients[MAX_RECIPIENTS];
    int json;
    int db_iam_auth;
};

/* Parses --object-lock-days or --object-lock-mode, or the environment
 * variable named by source. */
static int parse_object_lock_option(struct backup_options *options, int code, const char *source,
                                    const char *value, stow_error *err)
{
    return cli_parse_object_lock(source, value,
                                 code == OPT_OBJECT_LOCK_DAYS ? &options->object_lock_days : NULL,
                                 &options->object_lock_mode, err);
}

/* Reads STOWAGE_OBJECT_LOCK_DAYS and _MODE; the options override them. */
static int read_object_lock_environment(struct backup_options *options, stow_error *err)
{
    const char *days = getenv("STOWAGE_OBJECT_LOCK_DAYS");
    const char *mode = getenv("STOWAGE_OBJECT_LOCK_MODE");

    if (days != NULL && days[0] != '\0' &&
        parse_object_lock_option(options, OPT_OBJECT_LOCK_DAYS, "STOWAGE_OBJECT_LOCK_DAYS", days,
                                 err) != 0)
        return -1;
    if (mode != NULL && mode[0] != '\0' &&
        parse_object_lock_option(options, OPT_OBJECT_LOCK_MODE, "STOWAGE_OBJECT_LOCK_MODE", mode,
                                 err) != 0)
        return -1;
    return 0;
}

/* A mode alone is a mistake: without days nothing would be locked. */
static int check_object_lock_options(struct backup_options *options, stow_error *err)
{
    if (options->object_lock_days > 0 && options->object_lock_mode == STORAGE_LOCK_NONE)
        options->object_lock_mode = STORAGE_LOCK_GOVERNANCE;
    if (options->object_lock_days == 0 && options->object_lock_mode != STORAGE_LOCK_NONE) {
        stow_fail(err, STOW_EXIT_USAGE, "--object-lock-mode is set but --object-lock-days is "
                                        "not, so nothing would be locked");
        stow_error_hint(err, "pass --object-lock-days N (or STOWAGE_OBJECT_LOCK_DAYS) as well");
        return -1;
    }
    return 0;
}

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
    case OPT_SIGNING_KEY:
        cli->options.signing_key_path = value;
        return 0;
    case OPT_SIGNING_PASSPHRASE_FILE:
        cli->options.signing_passphrase_file = value;
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
    case OPT_DB_IAM_AUTH:
        cli->db_iam_auth = 1;
        return 0;
    case OPT_OBJECT_LOCK_DAYS:
    case OPT_OBJECT_LOCK_MODE:
        return parse_object_lock_option(&cli->options, code,
                                        code == OPT_OBJECT_LOCK_DAYS ? "--object-lock-days"
                                                                     : "--object-lock-mode",
                                        value, err);
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
        {"signing-key", required_argument, NULL, OPT_SIGNING_KEY},
        {"signing-passphrase-file", required_argument, NULL, OPT_SIGNING_PASSPHRASE_FILE},
        {"compress-level", required_argument, NULL, OPT_COMPRESS_LEVEL},
        {"compress-threads", required_argument, NULL, OPT_COMPRESS_THREADS},
        {"part-size", required_argument, NULL, OPT_PART_SIZE},
        {"part-growth-interval", required_argument, NULL, OPT_PART_GROWTH},
        {"no-encryption", no_argument, NULL, OPT_NO_ENCRYPTION},
        {"no-globals", no_argument, NULL, OPT_NO_GLOBALS},
        {"json", no_argument, NULL, OPT_JSON},
        {"lock-stale-after", required_argument, NULL, OPT_LOCK_STALE_AFTER},
        {"object-lock-days", required_argument, NULL, OPT_OBJECT_LOCK_DAYS},
        {"object-lock-mode", required_argument, NULL, OPT_OBJECT_LOCK_MODE},
        {"db-iam-auth", no_argument, NULL, OPT_DB_IAM_AUTH},
        {NULL, 0, NULL, 0},
    };

    return cli_parse(argc, argv, "backup", long_options, &cli->common, parse_backup_option, cli,
                     NULL, 0, NULL, err);
}

/* The part buffers are allocated and written when the upload starts, so a
 * part size and transfer count that this machine cannot hold fail here,
 * before anything is dumped. Half of the physical memory is the limit. */
static int check_part_memory(const struct backup_cli *cli, stow_error *err)
{
    const char *url = cli->common.storage.url;
    int transfers = cli->common.storage.transfers_in_flight > 0
                        ? cli->common.storage.transfers_in_flight
                        : STORAGE_DEFAULT_TRANSFERS;
    uint64_t buffers = url != NULL && strncmp(url, "file://", 7) == 0 ? 1 : (uint64_t)transfers + 1;
    uint64_t needed = buffers * cli->options.part_size;
    long pages = sysconf(_SC_PHYS_PAGES);
    long page_size = sysconf(_SC_PAGESIZE);
    uint64_t physical = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;

    if (physical == 0 || needed <= physical / 2)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE,
              "%llu part buffers of --part-size %llu bytes need %llu MiB, more than half of "
              "this machine's %llu MiB of memory",
              (unsigned long long)buffers, (unsigned long long)cli->options.part_size,
              (unsigned long long)(needed >> 20), (unsigned long long)(physical >> 20));
    stow_error_hint(err, "lower --part-size or --transfers (the upload holds --transfers + 1 "
                         "part buffers)");
    return -1;
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
    return check_part_memory(cli, err);
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
    cli.options.part_size = STORAGE_DEFAULT_PART_SIZE;
    cli.options.recipient_files = cli.recipients;
    if (getenv("STOWAGE_DB") != NULL)
        cli.options.conninfo = getenv("STOWAGE_DB");
    cli.options.signing_key_path = getenv("STOWAGE_SIGNING_KEY");

    if (read_object_lock_environment(&cli.options, &err) != 0 ||
        parse_arguments(&cli, argc, argv, &err) != 0 ||
        check_object_lock_options(&cli.options, &err) != 0)
        return cli_finish(&err);
    if (cli.common.help) {
        fputs(usage, stdout);
        return STOW_EXIT_OK;
    }

    if ((!cli.db_iam_auth || cli_use_db_iam_auth(cli.options.conninfo, &err) == 0) &&
        cli_open_repository(&cli.common, &store, &err) == 0 &&
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
