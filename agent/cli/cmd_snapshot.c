/* stowage snapshot (create, list, copy, expire, gc-scratch, delete-scratch)
 * and stowage restore --scratch rds: the commands that drive RDS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/rds.h"
#include "cli/cli.h"
#include "common/duration.h"
#include "common/log.h"
#include "manifest.h"
#include "rds/snapshot.h"
#include "scratch_rds.h"

enum {
    OPT_RDS_ENDPOINT = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_RDS_REGION,
    OPT_INSTANCE,
    OPT_CLUSTER,
    OPT_JSON,
    OPT_WAIT_TIMEOUT,
    OPT_POLL_INTERVAL,
    OPT_TO_REGION,
    OPT_KMS_KEY,
    OPT_TARGET_ID,
    OPT_KEEP_LAST,
    OPT_KEEP_WITHIN,
    OPT_DRY_RUN,
    OPT_FROM_SNAPSHOT,
    OPT_AT,
    OPT_SCRATCH,
    OPT_CONNECT_HOST,
    OPT_DB_USER,
    OPT_DATABASE,
    OPT_INSTANCE_CLASS,
    OPT_SUBNET_GROUP,
    OPT_SECURITY_GROUP,
    OPT_PARAMETER_GROUP,
    OPT_AMCHECK,
    OPT_VERIFY,
    OPT_KEEP,
    OPT_REPORT,
    OPT_EXPIRES_IN,
    OPT_NAME,
    OPT_MATCH_WINDOW,
    OPT_DB_IAM_AUTH
};

#define RDS_HELP                                                                      \
    "RDS options:\n"                                                                  \
    "  --rds-region NAME      region of the RDS resources (default: --region, then\n"  \
    "                         AWS_REGION, AWS_DEFAULT_REGION)\n"                       \
    "  --rds-endpoint URL     RDS endpoint (env AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL;\n" \
    "                         default https://rds.REGION.amazonaws.com)\n"

#define WAIT_HELP                                                                     \
    "  --wait-timeout DUR     how long to wait for RDS to finish (s, m, h, d or w;\n"    \
    "                         default 1h)\n"                                            \
    "  --poll-interval DUR    first delay between status checks, doubling up to 1m\n"   \
    "                         (s, m, h, d or w; default 10s)\n"

static const char snapshot_usage[] =
    "Usage: stowage snapshot COMMAND [OPTIONS]\n\n"
    "RDS and Aurora snapshots that Stowage creates, copies and expires. Stowage\n"
    "tags what it creates (stowage:created-by=stowage) and deletes nothing else.\n\n"
    "Commands:\n"
    "  create          create a snapshot of an instance or cluster and wait for it\n"
    "  list            list snapshots, marking the ones Stowage created\n"
    "  copy            copy a snapshot to another region (disaster recovery)\n"
    "  expire          delete old Stowage snapshots of an instance by retention\n"
    "  gc-scratch      delete scratch instances past their expiry\n"
    "  delete-scratch  delete one scratch instance\n\n"
    "Run stowage snapshot COMMAND --help for a command's options.\n";

static const char create_usage[] =
    "Usage: stowage snapshot create --instance ID | --cluster ID [--repo URL] [--json]\n\n"
    "Creates a manual snapshot named stowage-ID-YYYYMMDD-HHMMSS (UTC), tagged\n"
    "stowage:created-by=stowage and stowage:source=ID, and waits until it is\n"
    "available. With a repository, records it at\n"
    "snapshots/ID/SNAPSHOT/manifest.json. A snapshot still unfinished at the\n"
    "deadline is deleted and the command fails.\n\n"
    "Options:\n"
    "  --instance ID          DB instance to snapshot\n"
    "  --cluster ID           Aurora DB cluster to snapshot\n"
    "  --json                 print the snapshot's manifest as JSON\n" WAIT_HELP "\n" RDS_HELP
    "\n" CLI_REPO_HELP;

static const char list_usage[] =
    "Usage: stowage snapshot list [--instance ID | --cluster ID] [--json]\n\n"
    "Lists the region's DB snapshots (or cluster snapshots), newest first. The\n"
    "STOWAGE column marks the snapshots that Stowage created and may expire.\n\n"
    "Options:\n"
    "  --instance ID          only snapshots of this instance\n"
    "  --cluster ID           cluster snapshots of this cluster\n"
    "  --json                 print a JSON array\n\n" RDS_HELP "\n" CLI_REPO_HELP;

static const char copy_usage[] =
    "Usage: stowage snapshot copy SNAPSHOT --to-region REGION [--kms-key KEY]\n"
    "                             [--target-id ID] [--repo URL] [--json]\n\n"
    "Copies a DB snapshot of the RDS region into REGION, tagged as Stowage's,\n"
    "and waits until the copy is available. Across regions the request carries\n"
    "a pre-signed URL for the source region. With a repository (normally the\n"
    "replica region's), records the copy.\n\n"
    "Options:\n"
    "  --to-region REGION     destination region\n"
    "  --kms-key KEY          KMS key id, ARN or alias in REGION (needed for\n"
    "                         encrypted snapshots)\n"
    "  --target-id ID         id of the copy (default: SNAPSHOT-REGION)\n"
    "  --json                 print the copy's manifest as JSON\n" WAIT_HELP "\n" RDS_HELP
    "\n" CLI_REPO_HELP;

static const char expire_usage[] =
    "Usage: stowage snapshot expire --instance ID --keep-last N [--keep-within DUR]\n"
    "                               [--dry-run] [--repo URL]\n\n"
    "Deletes the instance's snapshots that Stowage created, except the N newest\n"
    "available ones and those younger than --keep-within. Automated snapshots,\n"
    "manual snapshots without Stowage's tag, and snapshots that are not\n"
    "available are never deleted. With a repository, the manifests of deleted\n"
    "snapshots are deleted too.\n\n"
    "Options:\n"
    "  --instance ID          DB instance whose snapshots to expire\n"
    "  --keep-last N          newest snapshots to keep (at least 1)\n"
    "  --keep-within DUR      also keep snapshots younger than this, such as 7d or\n"
    "                         36h (s, m, h, d or w; default: none)\n"
    "  --dry-run              print the decisions, delete nothing\n\n" RDS_HELP "\n"
    CLI_REPO_HELP;

static const char gc_usage[] =
    "Usage: stowage snapshot gc-scratch [--dry-run]\n\n"
    "Deletes, without a final snapshot, every RDS instance of the region tagged\n"
    "stowage:scratch=true whose stowage:expires-at time has passed: scratch\n"
    "instances that a killed restore left behind.\n\n"
    "Options:\n"
    "  --dry-run              print what would be deleted, delete nothing\n\n" RDS_HELP
    "\n" CLI_REPO_HELP;

static const char delete_scratch_usage[] =
    "Usage: stowage snapshot delete-scratch INSTANCE\n\n"
    "Deletes one scratch instance without a final snapshot (for example one kept\n"
    "with restore --keep). Instances without the tag stowage:scratch=true are\n"
    "refused.\n\n" RDS_HELP "\n" CLI_REPO_HELP;

static const char restore_rds_usage[] =
    "Usage: stowage restore --from-snapshot ID --scratch rds [--verify] [OPTIONS]\n"
    "       stowage restore --instance ID --at TIME|latest --scratch rds [--verify]\n"
    "                       [OPTIONS]\n\n"
    "Restores an RDS snapshot, or an instance as of a point in time, into a new\n"
    "scratch instance (stowage-scratch-RANDOM, never publicly accessible, tagged\n"
    "with an expiry), waits until it is available, checks it over libpq, reports\n"
    "the steps and their times, and deletes the instance without a final\n"
    "snapshot, also on failure and on SIGINT or SIGTERM.\n\n"
    "Verification (--verify): the server responds; the databases exist; when the\n"
    "repository holds a logical backup of a database taken within the match\n"
    "window, its schemas and tables exist and their row counts are compared\n"
    "(an approximate match: the two were taken at different times).\n\n"
    "Options:\n"
    "  --from-snapshot ID       DB snapshot to restore\n"
    "  --instance ID --at TIME  instance to restore as of TIME (RFC 3339) or latest\n"
    "  --verify                 check databases, schemas, tables and row counts\n"
    "  --amcheck                also run bt_index_check on every btree index\n"
    "  --database NAME          database to verify; repeatable (default: all)\n"
    "  --connect-host HOST:PORT connect there instead of the instance endpoint\n"
    "                           (a tunnel or bastion)\n"
    "  --db-user NAME           database user (default: PGUSER, else the master\n"
    "                           user); the password comes from PGPASSWORD or\n"
    "                           .pgpass\n"
    "  --db-iam-auth            sign in with an RDS IAM authentication token as the\n"
    "                           password; the scratch instance gets IAM database\n"
    "                           authentication enabled, the connection sslmode=require\n"
    "                           (not for a loopback --connect-host), and --db-user needs\n"
    "                           the rds_iam role\n"
    "  --instance-class CLASS   class of the scratch instance (default: as the\n"
    "                           source)\n"
    "  --subnet-group NAME      DB subnet group of the scratch instance\n"
    "  --security-group ID      VPC security group; repeatable\n"
    "  --parameter-group NAME   DB parameter group\n"
    "  --expires-in DUR         expiry written on the scratch instance (s, m, h, d\n"
    "                           or w; default 6h)\n"
    "  --name NAME              catalog name of the backups to compare with\n"
    "  --match-window DUR       maximum distance in time between the backup and the\n"
    "                           restored state (s, m, h, d or w; default 24h)\n"
    "  --report FILE            write the JSON report to FILE (default: none)\n"
    "  --keep                   leave the scratch instance running\n" WAIT_HELP "\n" RDS_HELP
    "\n" CLI_REPO_HELP;

struct rds_cli {
    struct cli_common common;
    const char *command;          /* "snapshot create", for messages */
    const char *rds_endpoint;
    const char *rds_region;
    const char *instance;
    const char *cluster;
    int json;
    struct snapshot_wait wait;
    const char *to_region;
    const char *kms_key;
    const char *target_id;
    long keep_last;
    int64_t keep_within;
    int dry_run;
    const char *from_snapshot;
    const char *at;
    const char *scratch;
    const char *connect_host;
    const char *db_user;
    const char *databases[CLI_MAX_REPEATED];
    size_t database_count;
    const char *instance_class;
    const char *subnet_group;
    const char *security_groups[CLI_MAX_REPEATED];
    size_t security_group_count;
    const char *parameter_group;
    int amcheck;
    int verify;
    int keep;
    const char *report;
    int64_t expires_in;
    const char *name;
    int64_t match_window;
    int db_iam_auth;
};

static const struct option rds_options[] = {
    CLI_REPO_LONG_OPTIONS,
    {"rds-endpoint", required_argument, NULL, OPT_RDS_ENDPOINT},
    {"rds-region", required_argument, NULL, OPT_RDS_REGION},
    {"instance", required_argument, NULL, OPT_INSTANCE},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"json", no_argument, NULL, OPT_JSON},
    {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {"poll-interval", required_argument, NULL, OPT_POLL_INTERVAL},
    {"to-region", required_argument, NULL, OPT_TO_REGION},
    {"kms-key", required_argument, NULL, OPT_KMS_KEY},
    {"target-id", required_argument, NULL, OPT_TARGET_ID},
    {"keep-last", required_argument, NULL, OPT_KEEP_LAST},
    {"keep-within", required_argument, NULL, OPT_KEEP_WITHIN},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"from-snapshot", required_argument, NULL, OPT_FROM_SNAPSHOT},
    {"at", required_argument, NULL, OPT_AT},
    {"scratch", required_argument, NULL, OPT_SCRATCH},
    {"connect-host", required_argument, NULL, OPT_CONNECT_HOST},
    {"db-user", required_argument, NULL, OPT_DB_USER},
    {"database", required_argument, NULL, OPT_DATABASE},
    {"instance-class", required_argument, NULL, OPT_INSTANCE_CLASS},
    {"subnet-group", required_argument, NULL, OPT_SUBNET_GROUP},
    {"security-group", required_argument, NULL, OPT_SECURITY_GROUP},
    {"parameter-group", required_argument, NULL, OPT_PARAMETER_GROUP},
    {"amcheck", no_argument, NULL, OPT_AMCHECK},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"report", required_argument, NULL, OPT_REPORT},
    {"expires-in", required_argument, NULL, OPT_EXPIRES_IN},
    {"name", required_argument, NULL, OPT_NAME},
    {"match-window", required_argument, NULL, OPT_MATCH_WINDOW},
    {"db-iam-auth", no_argument, NULL, OPT_DB_IAM_AUTH},
    {NULL, 0, NULL, 0},
};

static int parse_wait_option(struct rds_cli *cli, int code, const char *value, stow_error *err)
{
    int64_t seconds;

    if (code == OPT_WAIT_TIMEOUT) {
        if (stow_duration_parse("--wait-timeout", value, &seconds, err) != 0)
            return -1;
        cli->wait.timeout_seconds = seconds;
    } else {
        if (stow_duration_parse("--poll-interval", value, &seconds, err) != 0)
            return -1;
        if (seconds > SNAPSHOT_POLL_MAX_MS / 1000)
            return stow_fail(err, STOW_EXIT_USAGE, "--poll-interval may be at most %ds",
                             SNAPSHOT_POLL_MAX_MS / 1000);
        cli->wait.poll_ms = (unsigned)(seconds * 1000);
    }
    return 0;
}

static int parse_restore_option(struct rds_cli *cli, int code, const char *value, stow_error *err)
{
    switch (code) {
    case OPT_FROM_SNAPSHOT: cli->from_snapshot = value; return 0;
    case OPT_AT: cli->at = value; return 0;
    case OPT_SCRATCH: cli->scratch = value; return 0;
    case OPT_CONNECT_HOST: cli->connect_host = value; return 0;
    case OPT_DB_USER: cli->db_user = value; return 0;
    case OPT_DB_IAM_AUTH: cli->db_iam_auth = 1; return 0;
    case OPT_DATABASE:
        return cli_add_repeated(cli->databases, &cli->database_count, "--database", value, err);
    case OPT_INSTANCE_CLASS: cli->instance_class = value; return 0;
    case OPT_SUBNET_GROUP: cli->subnet_group = value; return 0;
    case OPT_SECURITY_GROUP:
        return cli_add_repeated(cli->security_groups, &cli->security_group_count,
                                "--security-group", value, err);
    case OPT_PARAMETER_GROUP: cli->parameter_group = value; return 0;
    case OPT_AMCHECK: cli->amcheck = 1; return 0;
    case OPT_VERIFY: cli->verify = 1; return 0;
    case OPT_KEEP: cli->keep = 1; return 0;
    case OPT_REPORT: cli->report = value; return 0;
    case OPT_EXPIRES_IN:
        return stow_duration_parse("--expires-in", value, &cli->expires_in, err);
    case OPT_NAME: cli->name = value; return 0;
    case OPT_MATCH_WINDOW:
        return stow_duration_parse("--match-window", value, &cli->match_window, err);
    default:
        return cli_usage_error(err, cli->command, "unknown option");
    }
}

static int parse_rds_option(void *context, int code, const char *value, stow_error *err)
{
    struct rds_cli *cli = context;

    switch (code) {
    case OPT_RDS_ENDPOINT: cli->rds_endpoint = value; return 0;
    case OPT_RDS_REGION: cli->rds_region = value; return 0;
    case OPT_INSTANCE: cli->instance = value; return 0;
    case OPT_CLUSTER: cli->cluster = value; return 0;
    case OPT_JSON: cli->json = 1; return 0;
    case OPT_WAIT_TIMEOUT:
    case OPT_POLL_INTERVAL: return parse_wait_option(cli, code, value, err);
    case OPT_TO_REGION: cli->to_region = value; return 0;
    case OPT_KMS_KEY: cli->kms_key = value; return 0;
    case OPT_TARGET_ID: cli->target_id = value; return 0;
    case OPT_KEEP_LAST:
        return cli_parse_int("--keep-last", value, 1, 100000, &cli->keep_last, err);
    case OPT_KEEP_WITHIN:
        return stow_duration_parse("--keep-within", value, &cli->keep_within, err);
    case OPT_DRY_RUN: cli->dry_run = 1; return 0;
    default: return parse_restore_option(cli, code, value, err);
    }
}

/* Parses argv; returns 1 after printing help. */
static int parse_command(struct rds_cli *cli, const char *command, const char *usage, int argc,
                         char **argv, const char **positional, int max_positional,
                         int *positional_count, stow_error *err)
{
    memset(cli, 0, sizeof *cli);
    cli_common_init(&cli->common);
    cli->command = command;
    snapshot_wait_default(&cli->wait);
    if (cli_parse(argc, argv, command, rds_options, &cli->common, parse_rds_option, cli,
                  positional, max_positional, positional_count, err) != 0)
        return -1;
    if (cli->common.help) {
        fputs(usage, stdout);
        return 1;
    }
    return 0;
}

static int open_rds(const struct rds_cli *cli, const char *region, rds_client **out,
                    stow_error *err)
{
    struct rds_options options;

    memset(&options, 0, sizeof options);
    options.region = region;
    if (options.region == NULL)
        options.region = cli->rds_region != NULL ? cli->rds_region : cli->common.storage.region;
    options.endpoint = cli->rds_endpoint;
    return rds_client_new(&options, out, err);
}

/* Opens the repository when one is named (--repo or STOWAGE_REPO). */
static int open_optional_repository(struct rds_cli *cli, storage **out, stow_error *err)
{
    *out = NULL;
    if (cli->common.storage.url == NULL || cli->common.storage.url[0] == '\0')
        return 0;
    if (cli_open_repository(&cli->common, out, err) != 0)
        return -1;
    return storage_check(*out, STORAGE_ACCESS_WRITE, err);
}

static void print_json(json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text != NULL) {
        printf("%s\n", text);
        free(text);
    }
}

static void print_result(const struct snapshot_result *result, int json, const char *verb)
{
    const struct rds_snapshot *s = &result->snapshot;

    if (json) {
        json_t *doc = snapshot_manifest_new(result);

        json_object_set_new(doc, "manifest_key", result->manifest_key[0]
                                                     ? json_string(result->manifest_key)
                                                     : json_null());
        print_json(doc);
        json_decref(doc);
        return;
    }
    printf("%s %s of %s %s in %s: available after %llds\n", verb, s->id,
           s->cluster ? "cluster" : "instance", s->source_id, result->region,
           (long long)(result->available_at - result->requested_at));
    printf("  arn        %s\n  engine     %s %s\n  storage    %ld GiB, %s\n", s->arn, s->engine,
           s->engine_version, s->allocated_storage_gib,
           s->encrypted ? "encrypted" : "not encrypted");
    if (s->encrypted)
        printf("  kms key    %s\n", s->kms_key_id);
    if (result->copied_from_id[0] != '\0')
        printf("  copied     from %s in %s\n", result->copied_from_id, result->copied_from_region);
    if (result->manifest_key[0] != '\0')
        printf("  manifest   %s\n", result->manifest_key);
}

/* --- create ------------------------------------------------------------------- */

static int snapshot_create_command(int argc, char **argv)
{
    struct rds_cli cli;
    struct snapshot_create_options options;
    struct snapshot_result result;
    rds_client *client = NULL;
    storage *store = NULL;
    stow_error err = {0};
    int rc = parse_command(&cli, "snapshot create", create_usage, argc, argv, NULL, 0, NULL, &err);

    memset(&result, 0, sizeof result);
    if (rc == 1)
        return STOW_EXIT_OK;
    if (rc == 0 && (cli.instance == NULL) == (cli.cluster == NULL))
        cli_usage_error(&err, cli.command, "give exactly one of --instance ID and --cluster ID");
    if (stow_error_is_set(&err))
        return cli_finish(&err);

    memset(&options, 0, sizeof options);
    options.instance_id = cli.instance;
    options.cluster_id = cli.cluster;
    options.wait = cli.wait;
    if (open_optional_repository(&cli, &store, &err) == 0 &&
        open_rds(&cli, NULL, &client, &err) == 0) {
        options.store = store;
        if (snapshot_create(client, &options, &result, &err) == 0)
            print_result(&result, cli.json, "snapshot");
    }
    snapshot_result_free(&result);
    rds_client_free(client);
    storage_free(store);
    return cli_finish(&err);
}

/* --- list --------------------------------------------------------------------- */

static json_t *snapshot_json(const struct rds_snapshot *s, const char *region)
{
    json_t *tags = json_object();
    char created[32] = "";

    for (size_t i = 0; i < s->tags.count; i++)
        json_object_set_new(tags, s->tags.tags[i].key, json_string(s->tags.tags[i].value));
    if (s->created != 0)
        manifest_format_time(s->created, created);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:b, s:o, s:s, s:b, s:o}", "id",
                     s->id, s->cluster ? "cluster" : "instance", s->source_id, "type",
                     s->snapshot_type, "status", s->status, "engine_version", s->engine_version,
                     "region", region, "created_at",
                     created[0] ? json_string(created) : json_null(), "allocated_storage_gib",
                     (json_int_t)s->allocated_storage_gib, "encrypted", s->encrypted,
                     "kms_key_id", s->kms_key_id[0] ? json_string(s->kms_key_id) : json_null(),
                     "arn", s->arn, "stowage", snapshot_is_stowage(s), "tags", tags);
}

static void print_snapshot_table(const struct rds_snapshot_list *list)
{
    printf("%-44s %-24s %-9s %-10s %-20s %6s %-9s %s\n", "SNAPSHOT", "SOURCE", "TYPE", "STATUS",
           "CREATED (UTC)", "GIB", "ENCRYPTED", "STOWAGE");
    for (size_t i = 0; i < list->count; i++) {
        const struct rds_snapshot *s = &list->items[i];
        char created[32] = "-";

        if (s->created != 0)
            manifest_format_time(s->created, created);
        printf("%-44s %-24s %-9s %-10s %-20s %6ld %-9s %s\n", s->id, s->source_id,
               s->snapshot_type, s->status, created, s->allocated_storage_gib,
               s->encrypted ? "yes" : "no", snapshot_is_stowage(s) ? "yes" : "no");
    }
}

static int snapshot_list_command(int argc, char **argv)
{
    struct rds_cli cli;
    struct rds_snapshot_list list = {0};
    rds_client *client = NULL;
    stow_error err = {0};
    int rc = parse_command(&cli, "snapshot list", list_usage, argc, argv, NULL, 0, NULL, &err);

    if (rc == 1)
        return STOW_EXIT_OK;
    if (rc == 0 && cli.instance != NULL && cli.cluster != NULL)
        cli_usage_error(&err, cli.command, "give at most one of --instance and --cluster");
    if (stow_error_is_set(&err))
        return cli_finish(&err);

    if (open_rds(&cli, NULL, &client, &err) == 0 &&
        rds_describe_snapshots(client, cli.cluster != NULL,
                               cli.cluster != NULL ? cli.cluster : cli.instance, &list,
                               &err) == 0) {
        snapshot_sort_newest_first(list.items, list.count);
        if (cli.json) {
            json_t *array = json_array();

            for (size_t i = 0; i < list.count; i++)
                json_array_append_new(array,
                                      snapshot_json(&list.items[i], rds_client_region(client)));
            print_json(array);
            json_decref(array);
        } else {
            print_snapshot_table(&list);
        }
    }
    rds_snapshot_list_free(&list);
    rds_client_free(client);
    return cli_finish(&err);
}

/* --- copy --------------------------------------------------------------------- */

static int snapshot_copy_command(int argc, char **argv)
{
    struct rds_cli cli;
    struct snapshot_copy_options options;
    struct snapshot_result result;
    const char *positional[1] = {NULL};
    int positional_count = 0;
    rds_client *source = NULL;
    rds_client *target = NULL;
    storage *store = NULL;
    stow_error err = {0};
    int rc = parse_command(&cli, "snapshot copy", copy_usage, argc, argv, positional, 1,
                           &positional_count, &err);

    memset(&result, 0, sizeof result);
    if (rc == 1)
        return STOW_EXIT_OK;
    if (rc == 0 && (positional_count != 1 || cli.to_region == NULL))
        cli_usage_error(&err, cli.command, "name the snapshot and give --to-region REGION");
    if (rc == 0 && cli.target_id != NULL && !rds_identifier_is_valid(cli.target_id, 255))
        stow_fail(&err, STOW_EXIT_USAGE, "invalid --target-id \"%s\": use 1 to 255 letters, "
                  "digits and hyphens, starting with a letter", cli.target_id);
    if (stow_error_is_set(&err))
        return cli_finish(&err);

    memset(&options, 0, sizeof options);
    options.snapshot_id = positional[0];
    options.target_id = cli.target_id;
    options.kms_key_id = cli.kms_key;
    options.wait = cli.wait;
    if (open_optional_repository(&cli, &store, &err) == 0 &&
        open_rds(&cli, NULL, &source, &err) == 0 &&
        open_rds(&cli, cli.to_region, &target, &err) == 0) {
        options.store = store;
        if (snapshot_copy(source, target, &options, &result, &err) == 0)
            print_result(&result, cli.json, "copy");
    }
    snapshot_result_free(&result);
    rds_client_free(source);
    rds_client_free(target);
    storage_free(store);
    return cli_finish(&err);
}

/* --- expire ------------------------------------------------------------------- */

static const char *expiry_outcome(const struct snapshot_expiry *expiry, size_t i, int dry_run)
{
    if (expiry->verdicts[i] != SNAPSHOT_DELETE)
        return "";
    if (dry_run)
        return "would delete";
    if (expiry->deleted[i] > 0)
        return "deleted";
    return expiry->deleted[i] < 0 ? "FAILED" : "not reached";
}

static void print_expiry(const struct snapshot_expiry *expiry, int dry_run)
{
    printf("%-44s %-20s %-30s %s\n", "SNAPSHOT", "CREATED (UTC)", "DECISION", "OUTCOME");
    for (size_t i = 0; i < expiry->snapshots.count; i++) {
        const struct rds_snapshot *s = &expiry->snapshots.items[i];
        char created[32] = "-";

        if (s->created != 0)
            manifest_format_time(s->created, created);
        printf("%-44s %-20s %-30s %s\n", s->id, created,
               snapshot_verdict_text(expiry->verdicts[i]), expiry_outcome(expiry, i, dry_run));
    }
    if (dry_run)
        printf("dry run: %zu of %zu snapshots would be deleted\n", expiry->delete_count,
               expiry->snapshots.count);
    else
        printf("%zu of %zu snapshots deleted\n", expiry->delete_count - expiry->failed_count,
               expiry->snapshots.count);
}

static int snapshot_expire_command(int argc, char **argv)
{
    struct rds_cli cli;
    struct snapshot_expire_options options;
    struct snapshot_expiry expiry;
    rds_client *client = NULL;
    storage *store = NULL;
    stow_error err = {0};
    int rc = parse_command(&cli, "snapshot expire", expire_usage, argc, argv, NULL, 0, NULL,
                           &err);

    memset(&expiry, 0, sizeof expiry);
    if (rc == 1)
        return STOW_EXIT_OK;
    if (rc == 0 && (cli.instance == NULL || cli.keep_last < 1))
        cli_usage_error(&err, cli.command, "give --instance ID and --keep-last N (N at least 1)");
    if (stow_error_is_set(&err))
        return cli_finish(&err);

    memset(&options, 0, sizeof options);
    options.instance_id = cli.instance;
    options.policy.keep_last = cli.keep_last;
    options.policy.keep_within_seconds = cli.keep_within;
    options.policy.now = time(NULL);
    options.dry_run = cli.dry_run;
    if (open_optional_repository(&cli, &store, &err) == 0 &&
        open_rds(&cli, NULL, &client, &err) == 0) {
        options.store = store;
        rc = snapshot_expire(client, &options, &expiry, &err);
        if (expiry.verdicts != NULL)
            print_expiry(&expiry, cli.dry_run);
    }
    snapshot_expiry_free(&expiry);
    rds_client_free(client);
    storage_free(store);
    return cli_finish(&err);
}

/* --- scratch instances -------------------------------------------------------- */

static const char *cleanup_action_text(enum scratch_rds_cleanup_action action)
{
    switch (action) {
    case SCRATCH_RDS_KEPT: return "kept (not expired)";
    case SCRATCH_RDS_DELETED: return "deleted";
    case SCRATCH_RDS_WOULD_DELETE: return "would delete";
    case SCRATCH_RDS_DELETE_FAILED: return "FAILED";
    case SCRATCH_RDS_NO_EXPIRY: return "kept (no valid expiry tag)";
    }
    return "";
}

static int snapshot_gc_scratch_command(int argc, char **argv)
{
    struct rds_cli cli;
    struct scratch_rds_cleanup cleanup;
    rds_client *client = NULL;
    stow_error err = {0};
    int rc = parse_command(&cli, "snapshot gc-scratch", gc_usage, argc, argv, NULL, 0, NULL,
                           &err);

    memset(&cleanup, 0, sizeof cleanup);
    if (rc == 1)
        return STOW_EXIT_OK;
    if (rc != 0)
        return cli_finish(&err);

    if (open_rds(&cli, NULL, &client, &err) == 0) {
        scratch_rds_cleanup_expired(client, time(NULL), cli.dry_run, &cleanup, &err);
        printf("%-32s %-12s %-20s %s\n", "SCRATCH INSTANCE", "STATUS", "EXPIRES (UTC)", "ACTION");
        for (size_t i = 0; i < cleanup.count; i++) {
            char expires[32] = "-";

            if (cleanup.entries[i].expires_at != 0)
                manifest_format_time(cleanup.entries[i].expires_at, expires);
            printf("%-32s %-12s %-20s %s\n", cleanup.entries[i].id, cleanup.entries[i].status,
                   expires, cleanup_action_text(cleanup.entries[i].action));
        }
        printf("%zu scratch instances found, %zu deleted\n", cleanup.count, cleanup.deleted);
    }
    scratch_rds_cleanup_free(&cleanup);
    rds_client_free(client);
    return cli_finish(&err);
}

static int snapshot_delete_scratch_command(int argc, char **argv)
{
    struct rds_cli cli;
    const char *positional[1] = {NULL};
    int positional_count = 0;
    rds_client *client = NULL;
    stow_error err = {0};
    int rc = parse_command(&cli, "snapshot delete-scratch", delete_scratch_usage, argc, argv,
                           positional, 1, &positional_count, &err);

    if (rc == 1)
        return STOW_EXIT_OK;
    if (rc == 0 && positional_count != 1)
        cli_usage_error(&err, cli.command, "name the scratch instance to delete");
    if (stow_error_is_set(&err))
        return cli_finish(&err);

    if (open_rds(&cli, NULL, &client, &err) == 0) {
        rc = rds_delete_scratch_instance(client, positional[0], &err);
        if (rc == RDS_NOT_FOUND)
            stow_fail(&err, STOW_EXIT_USAGE, "RDS instance %s not found in %s", positional[0],
                      rds_client_region(client));
        else if (rc == 0)
            printf("deleted scratch instance %s (no final snapshot)\n", positional[0]);
    }
    rds_client_free(client);
    return cli_finish(&err);
}

/* --- dispatch ------------------------------------------------------------------- */

struct snapshot_command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct snapshot_command snapshot_commands[] = {
    {"create", snapshot_create_command},
    {"list", snapshot_list_command},
    {"copy", snapshot_copy_command},
    {"expire", snapshot_expire_command},
    {"gc-scratch", snapshot_gc_scratch_command},
    {"delete-scratch", snapshot_delete_scratch_command},
};

int cmd_snapshot(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(snapshot_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? STOW_EXIT_USAGE : STOW_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof snapshot_commands / sizeof snapshot_commands[0]; i++) {
        if (strcmp(argv[1], snapshot_commands[i].name) == 0)
            return snapshot_commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "stowage snapshot: unknown command \"%s\"\n\n%s", argv[1], snapshot_usage);
    return STOW_EXIT_USAGE;
}

/* --- restore --scratch rds ---------------------------------------------------------- */

static int check_restore_rds(struct rds_cli *cli, time_t *at, stow_error *err)
{
    if (cli->scratch == NULL || strcmp(cli->scratch, "rds") != 0)
        return cli_usage_error(err, "restore", "--scratch rds is required here");
    if ((cli->from_snapshot == NULL) == (cli->instance == NULL))
        return cli_usage_error(err, "restore", "give exactly one of --from-snapshot ID and "
                                               "--instance ID --at TIME");
    if (cli->instance != NULL && cli->at == NULL)
        return cli_usage_error(err, "restore", "--instance needs --at TIME (RFC 3339) or "
                                               "--at latest");
    if (cli->from_snapshot != NULL && cli->at != NULL)
        return cli_usage_error(err, "restore", "--at applies to --instance, not to "
                                               "--from-snapshot");
    *at = 0;
    if (cli->at != NULL && strcmp(cli->at, "latest") != 0 && manifest_parse_time(cli->at, at) != 0) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid --at time \"%s\"", cli->at);
        stow_error_hint(err, "use RFC 3339, for example 2026-12-04T03:00:00Z, or latest");
        return -1;
    }
    return 0;
}

int cmd_restore_rds(int argc, char **argv)
{
    struct rds_cli cli;
    struct snapshot_restore_options options;
    time_t at = 0;
    rds_client *client = NULL;
    storage *store = NULL;
    stow_error err = {0};
    int rc = parse_command(&cli, "restore", restore_rds_usage, argc, argv, NULL, 0, NULL, &err);

    if (rc == 1)
        return STOW_EXIT_OK;
    if (rc != 0 || check_restore_rds(&cli, &at, &err) != 0)
        return cli_finish(&err);

    memset(&options, 0, sizeof options);
    options.snapshot_id = cli.from_snapshot;
    options.source_instance = cli.instance;
    options.point_in_time = at;
    options.scratch.instance_class = cli.instance_class;
    options.scratch.subnet_group = cli.subnet_group;
    options.scratch.parameter_group = cli.parameter_group;
    options.scratch.security_groups = cli.security_groups;
    options.scratch.security_group_count = cli.security_group_count;
    options.scratch.ttl_seconds = cli.expires_in;
    options.scratch.wait = cli.wait;
    options.connect_host = cli.connect_host;
    options.db_user = cli.db_user;
    options.db_iam_auth = cli.db_iam_auth;
    options.databases = cli.databases;
    options.database_count = cli.database_count;
    options.catalog_name = cli.name;
    options.match_window_seconds = cli.match_window;
    options.verify = cli.verify;
    options.amcheck = cli.amcheck;
    options.keep = cli.keep;
    options.report_path = cli.report;

    if (open_optional_repository(&cli, &store, &err) == 0 &&
        open_rds(&cli, NULL, &client, &err) == 0)
        snapshot_restore_run(client, store, &options, &err);
    rds_client_free(client);
    storage_free(store);
    return cli_finish(&err);
}
