/* stowage check: reports whether the credentials, the repository, the
 * database and RDS can be reached, one line each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/credentials.h"
#include "aws/rds.h"
#include "cli/cli.h"
#include "common/log.h"
#include "pg/pgtools.h"
#include "storage/storage.h"

enum { OPT_DB = CLI_OPT_FIRST_COMMAND_OPTION, OPT_RDS_REGION, OPT_DB_IAM_AUTH, OPT_NAME };

static const char usage[] =
    "Usage: stowage check --repo URL [--db CONNINFO [--db-iam-auth]] [--rds-region REGION]\n"
    "       stowage check --name NAME    (settings from [database NAME] of the file)\n\n"
    "Checks what a backup needs, one line each, and exits with the code of the\n"
    "first check that failed (0 when all passed):\n"
    "  credentials  which AWS credential source is used (the secret is never\n"
    "               shown; at most the last 4 characters of the access key id)\n"
    "  repository   the bucket exists and the credentials may list it, or the\n"
    "               directory exists\n"
    "  database     a libpq connection works, and the server's version\n"
    "  rds          DescribeDBInstances in REGION works\n"
    "Checks that were not asked for are shown as skipped.\n\n"
    "Options:\n"
    "  --db CONNINFO          libpq URI or key=value string (env STOWAGE_DB;\n"
    "                         default: the database check is skipped)\n" CLI_DB_IAM_AUTH_HELP
    "  --rds-region REGION    region of the RDS instances to check (default: the\n"
    "                         RDS check is skipped)\n"
    "  --name NAME            take --db, --repo and the other settings from the\n"
    "                         configuration file's [database NAME] section\n\n"
    CLI_REPO_HELP;

struct check_cli {
    struct cli_common common;
    const char *conninfo;
    const char *rds_region;
    int db_iam_auth;
    stow_error first_failure; /* decides the exit code */
};

static int parse_check_option(void *context, int code, const char *value, stow_error *err)
{
    struct check_cli *cli = context;

    switch (code) {
    case OPT_DB:
        cli->conninfo = value;
        return 0;
    case OPT_RDS_REGION:
        cli->rds_region = value;
        return 0;
    case OPT_DB_IAM_AUTH:
        cli->db_iam_auth = 1;
        return 0;
    case OPT_NAME:
        return cli_check_config_section(value, err);
    default:
        return cli_usage_error(err, "check", "unknown option");
    }
}

static int parse_arguments(struct check_cli *cli, int argc, char **argv, stow_error *err)
{
    static const struct option long_options[] = {
        CLI_REPO_LONG_OPTIONS,
        {"db", required_argument, NULL, OPT_DB},
        {"rds-region", required_argument, NULL, OPT_RDS_REGION},
        {"db-iam-auth", no_argument, NULL, OPT_DB_IAM_AUTH},
        {"name", required_argument, NULL, OPT_NAME},
        {NULL, 0, NULL, 0},
    };

    return cli_parse(argc, argv, "check", long_options, &cli->common, parse_check_option, cli,
                     NULL, 0, NULL, err);
}

static void report_ok(const char *what, const char *detail)
{
    printf("%-12s ok       %s\n", what, detail);
}

static void report_skipped(const char *what, const char *reason)
{
    printf("%-12s skipped  %s\n", what, reason);
}

/* Prints the failure, logs it with its hint, and keeps the first one. */
static void report_failure(struct check_cli *cli, const char *what, const stow_error *err)
{
    printf("%-12s failed   %s\n", what, err->message);
    stow_log_error(err);
    if (!stow_error_is_set(&cli->first_failure))
        memcpy(&cli->first_failure, err, sizeof *err);
}

static void check_credentials(struct check_cli *cli, struct aws_credentials_provider *provider)
{
    struct aws_credentials credentials;
    char description[AWS_CREDENTIALS_SOURCE_MAX + 128];
    stow_error err = {0};

    memset(&credentials, 0, sizeof credentials);
    if (aws_credentials_provider_get(provider, &credentials, &err) != 0) {
        report_failure(cli, "credentials", &err);
        return;
    }
    aws_credentials_describe(&credentials, description, sizeof description);
    aws_credentials_clear(&credentials);
    report_ok("credentials", description);
}

static void check_repository(struct check_cli *cli)
{
    storage *store = NULL;
    stow_error err = {0};
    char detail[4200];

    if (cli_open_repository(&cli->common, &store, &err) == 0 && storage_check(store, STORAGE_ACCESS_WRITE, &err) == 0) {
        snprintf(detail, sizeof detail, "%s is reachable", storage_url(store));
        report_ok("repository", detail);
    } else
        report_failure(cli, "repository", &err);
    storage_free(store);
}

static void check_database(struct check_cli *cli)
{
    struct pg_server_info info;
    char detail[sizeof info.version + sizeof info.host + sizeof info.database +
                sizeof info.port + sizeof info.user + 64];
    PGconn *conn = NULL;
    stow_error err = {0};

    if (cli->conninfo == NULL) {
        report_skipped("database", "no --db given");
        return;
    }
    memset(&info, 0, sizeof info);
    if ((!cli->db_iam_auth || cli_use_db_iam_auth(cli->conninfo, &err) == 0) &&
        pgtools_connect(cli->conninfo, &conn, &err) == 0 &&
        pgtools_server_info(conn, &info, &err) == 0) {
        snprintf(detail, sizeof detail, "PostgreSQL %s, database %s on %s port %s as %s",
                 info.version, info.database, info.host, info.port, info.user);
        report_ok("database", detail);
    } else {
        report_failure(cli, "database", &err);
    }
    PQfinish(conn);
}

static void check_rds(struct check_cli *cli, struct aws_credentials_provider *provider)
{
    struct rds_options options = {.region = cli->rds_region, .credentials = provider};
    struct rds_instance_list instances = {0};
    rds_client *client = NULL;
    stow_error err = {0};
    char detail[256];

    if (cli->rds_region == NULL) {
        report_skipped("rds", "no --rds-region given");
        return;
    }
    if (rds_client_new(&options, &client, &err) == 0 &&
        rds_describe_instances(client, &instances, &err) == 0) {
        snprintf(detail, sizeof detail, "DescribeDBInstances in %s lists %zu instance%s",
                 cli->rds_region, instances.count, instances.count == 1 ? "" : "s");
        report_ok("rds", detail);
    } else {
        report_failure(cli, "rds", &err);
    }
    rds_instance_list_free(&instances);
    rds_client_free(client);
}

/* Returns 1 when a check needs AWS credentials. */
static int needs_aws(const struct check_cli *cli)
{
    const char *url = cli->common.storage.url;

    return cli->rds_region != NULL || (url != NULL && strncmp(url, "s3://", 5) == 0);
}

int cmd_check(int argc, char **argv)
{
    struct check_cli cli;
    struct aws_credentials_provider *provider = NULL;
    stow_error err = {0};

    memset(&cli, 0, sizeof cli);
    cli_common_init(&cli.common);
    cli.conninfo = getenv("STOWAGE_DB");
    if (parse_arguments(&cli, argc, argv, &err) != 0)
        return cli_finish(&err);
    if (cli.common.help) {
        fputs(usage, stdout);
        return STOW_EXIT_OK;
    }
    if (cli.common.storage.url == NULL) {
        cli_usage_error(&err, "check", "missing --repo (or STOWAGE_REPO)");
        return cli_finish(&err);
    }

    /* Credentials first: the repository and RDS checks depend on them. */
    if (!needs_aws(&cli))
        report_skipped("credentials", "not needed for this repository");
    else if (aws_credentials_provider_new_default(&provider, &err) != 0)
        report_failure(&cli, "credentials", &err);
    else
        check_credentials(&cli, provider);

    check_repository(&cli);
    check_database(&cli);
    if (provider != NULL || cli.rds_region == NULL)
        check_rds(&cli, provider);

    aws_credentials_provider_free(provider);
    fflush(stdout);
    return stow_error_is_set(&cli.first_failure) ? cli.first_failure.exit_code : STOW_EXIT_OK;
}
