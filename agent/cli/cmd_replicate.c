/* stowage replicate, dr status and drill: the disaster-recovery commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/aws_env.h"
#include "aws/s3.h"
#include "catalog.h"
#include "cli/cli.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/metrics.h"
#include "drill.h"
#include "replicate/dr_status.h"
#include "replicate/replicate.h"
#include "replicate/snapshot_replicate.h"
#include "restore.h"

enum {
    OPT_TO = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_TO_REGION,
    OPT_TO_ENDPOINT,
    OPT_TO_PATH_STYLE,
    OPT_TO_STORAGE_CLASS,
    OPT_NAME,
    OPT_REPAIR,
    OPT_STREAM,
    OPT_SNAPSHOTS,
    OPT_JSON,
    OPT_KEY,
    OPT_PASSPHRASE_FILE,
    OPT_TRUSTED_KEY,
    OPT_RPO_OBJECTIVE,
    OPT_RTO_OBJECTIVE,
    OPT_REPORT,
    OPT_MARKDOWN,
    OPT_SCRATCH,
    OPT_LOCK_STALE_AFTER,
    OPT_INSTANCE,
    OPT_KMS_KEY,
    OPT_RDS_REGION,
    OPT_RDS_ENDPOINT,
    OPT_WAIT_TIMEOUT,
    OPT_POLL_INTERVAL,
    OPT_INSTANCE_CLASS,
    OPT_SUBNET_GROUP,
    OPT_SECURITY_GROUP,
    OPT_PARAMETER_GROUP,
    OPT_CONNECT_HOST,
    OPT_DB_USER,
    OPT_DATABASE,
    OPT_JOBS,
    OPT_SPOOL_DIR,
    OPT_OBJECT_LOCK_DAYS,
    OPT_OBJECT_LOCK_MODE,
    OPT_SIGNING_KEY,
    OPT_SIGNING_PASSPHRASE_FILE,
    OPT_DB_IAM_AUTH
};

static const char replicate_usage[] =
    "Usage: stowage replicate --repo PRIMARY --to REPLICA [OPTIONS]\n\n"
    "Copies every complete backup of the primary repository that the replica\n"
    "lacks, newest first, keeping the part boundaries so that the manifest's\n"
    "checksums stay valid. Parts are copied inside S3 (UploadPartCopy) when both\n"
    "repositories are on one S3 service, across regions too; otherwise they are\n"
    "streamed through this host. Each copy is checked before it counts: its size,\n"
    "and every part's SHA-256 read back from the replica (one read of the copy).\n"
    "Then the verification reports and, last, the manifest are written. An\n"
    "interrupted run leaves no manifest for an incomplete copy; run it again to\n"
    "finish. Holds are copied too, releases are not. Nothing is ever deleted from\n"
    "the replica; --repair replaces what fails its check.\n\n"
    "Options:\n"
    "  --to URL                replica repository: s3://BUCKET/PREFIX or file:///PATH\n"
    "  --to-region NAME        AWS region of the replica (default: AWS_REGION,\n"
    "                          AWS_DEFAULT_REGION, then us-east-1)\n"
    "  --to-endpoint URL       S3 endpoint of the replica (default: AWS_ENDPOINT_URL_S3,\n"
    "                          AWS_ENDPOINT_URL, then AWS)\n"
    "  --to-path-style         path-style S3 addressing for the replica\n"
    "  --to-storage-class NAME S3 storage class of the copies (default: the\n"
    "                          replica bucket's, normally STANDARD)\n"
    "  --name NAME             only backups of this catalog name (default: every name)\n"
    "  --repair                also check the backups the replica has (reads each\n"
    "                          copy once): copy again an object that fails, and\n"
    "                          replace a manifest that differs from the primary's\n"
    "  --stream                copy through this host even where S3 could copy\n"
    "                          inside the service (the replica's credentials cannot\n"
    "                          read the primary)\n"
    "  --lock-stale-after DUR  take over the replica's lock of a name when it was not\n"
    "                          refreshed for DUR (default 10m; s, m, h, d or w)\n"
    "  --object-lock-days N    store the data objects and manifests this run copies\n"
    "                          under S3 Object Lock until N days (1 to 36500) after\n"
    "                          the run starts. The replica bucket must have Object\n"
    "                          Lock enabled; file:// replicas reject it. The copied\n"
    "                          manifest records the replica's lock in object_lock\n"
    "  --object-lock-mode MODE governance (default) or compliance\n"
    "  --signing-key FILE      signing secret key (PATH.sign) that signs the copied\n"
    "                          manifests again; needed with --object-lock-days when\n"
    "                          the primary's manifests are signed; it signs only\n"
    "                          over a signature that it checked (--trusted-key, or\n"
    "                          one by this key)\n"
    "  --signing-passphrase-file FILE\n"
    "                          passphrase of a protected signing key\n"
    "  --trusted-key PUBFILE   signing public key (PATH.sign.pub) whose signature each\n"
    "                          primary manifest must carry before it is copied;\n"
    "                          repeat for several (env STOWAGE_TRUSTED_KEYS,\n"
    "                          colon-separated). Without it signatures are not\n"
    "                          checked, and --repair keeps a signed replica manifest\n"
    "                          that differs from the primary's\n"
    "  --json                  print the result as JSON on stdout\n\n"
    "RDS snapshots:\n"
    "  --snapshots             also copy the RDS DB snapshots that Stowage created\n"
    "                          (stowage snapshot create) to --to-region, which is then\n"
    "                          required, and record each copy in the replica; each copy\n"
    "                          is waited for until it is available\n"
    "  --instance ID           only snapshots of this DB instance (default: every\n"
    "                          instance's)\n"
    "  --kms-key KEY           KMS key id, ARN or alias in --to-region (needed for\n"
    "                          encrypted snapshots)\n"
    "  --rds-region NAME       region of the snapshots (default: --region, then\n"
    "                          AWS_REGION, AWS_DEFAULT_REGION)\n"
    "  --rds-endpoint URL      RDS endpoint (env AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL;\n"
    "                          default https://rds.REGION.amazonaws.com)\n"
    "  --wait-timeout DUR      how long to wait for each copy (s, m, h, d or w;\n"
    "                          default 1h)\n"
    "  --poll-interval DUR     first delay between status checks, doubling up to 1m\n"
    "                          (s, m, h, d or w; default 10s)\n\n"
    "The primary is --repo with the options below.\n\n" CLI_REPO_HELP;

static const char dr_usage[] =
    "Usage: stowage dr status --repo PRIMARY --replica REPLICA [OPTIONS]\n\n"
    "For each catalog name: the newest backup in the primary and in the replica,\n"
    "the backups the replica lacks, the lag (how much older the replica's newest\n"
    "backup is than the primary's) and the RPO the replica offers now: the age of\n"
    "the newest backup there whose last verified restore passed, or of the newest\n"
    "complete backup there when none has passed one (the output names the basis).\n"
    "Ages count from a backup's start, when pg_dump takes its snapshot.\n\n"
    "Options:\n"
    "  --replica URL           replica repository: s3://BUCKET/PREFIX or file:///PATH\n"
    "  --replica-region NAME   AWS region of the replica (default: AWS_REGION,\n"
    "                          AWS_DEFAULT_REGION, then us-east-1)\n"
    "  --replica-endpoint URL  S3 endpoint of the replica (default:\n"
    "                          AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS)\n"
    "  --replica-path-style    path-style S3 addressing for the replica\n"
    "  --name NAME             only this catalog name (default: every name)\n"
    "  --json                  print the status as JSON on stdout\n\n" CLI_REPO_HELP;

static const char drill_usage[] =
    "Usage: stowage drill --repo REPLICA --key SECFILE [OPTIONS]\n"
    "       stowage drill --repo REPLICA --scratch rds --rds-region REGION [OPTIONS]\n\n"
    "Restores the newest backup of the repository (normally the replica) into a\n"
    "local scratch instance, verifies it against its manifest, removes the\n"
    "instance, and reports:\n"
    "  RPO  the age of the restored backup when the drill started;\n"
    "  RTO  the time from the start of the drill to the end of the verification.\n"
    "With --scratch rds it restores the newest RDS snapshot copy that replicate\n"
    "--snapshots made in --rds-region into an RDS scratch instance instead,\n"
    "verifies it as restore --scratch rds --verify does (against the logical\n"
    "backups in the repository), and deletes the instance. Its RPO is the age of\n"
    "the original snapshot (OriginalSnapshotCreateTime), not of the copy.\n"
    "Exit codes: 0 passed, 1 the repository contains no complete backup (or a step\n"
    "failed), 3 verification failed, 5 an objective was missed, 130 interrupted\n"
    "(the scratch instance is removed; RPO and RTO are not measured), and the\n"
    "restore's own code for other failures. The reports are written for every\n"
    "outcome once the options are valid, also when the repository cannot be\n"
    "opened.\n"
    "The restore is recorded as the backup's verification when it passed or\n"
    "failed because of the backup, as with restore --verify; a failure outside\n"
    "the backup (a wrong key, an unreachable repository or database, a scratch\n"
    "instance that cannot be created, a full disk) is not.\n\n"
    "Options:\n"
    "  --key SECFILE           secret key of a recipient, such as the DR escrow key\n"
    "                          (env STOWAGE_KEY); not used with --scratch rds\n"
    "  --passphrase-file FILE  passphrase of a protected key\n"
    "  --trusted-key PUBFILE   signing public key (PATH.sign.pub) whose signature the\n"
    "                          manifest must carry; repeat for several (env\n"
    "                          STOWAGE_TRUSTED_KEYS, colon-separated)\n"
    "  --name NAME             catalog name, when the repository holds several\n"
    "                          (default: the only one)\n"
    "  --rpo-objective DUR     maximum age of the recovery point (s, m, h, d or w;\n"
    "                          default: none)\n"
    "  --rto-objective DUR     maximum time to a verified restore (s, m, h, d or w;\n"
    "                          default: none)\n"
    "  --report FILE           write the drill report as JSON (default: none)\n"
    "  --markdown FILE         write the drill report as Markdown (default: none)\n"
    "  --scratch local|rds     where to restore (default local)\n"
    "  --jobs N                restore over N connections, 1 to 64 (default 1), as\n"
    "                          restore --jobs does: the table data over N COPY\n"
    "                          connections as the dump streams, then the indexes\n"
    "                          and constraints with pg_restore --jobs N; local\n"
    "                          drills only\n"
    "  --spool-dir DIR         directory of the temporary file that holds the dump's\n"
    "                          table of contents, or the whole dump when restore\n"
    "                          --jobs needs it (default: $STOWAGE_SPOOL_DIR, else\n"
    "                          $TMPDIR, else /tmp)\n\n"
    "RDS drills (--scratch rds):\n"
    "  --rds-region NAME       replica region holding the snapshot copies (required)\n"
    "  --rds-endpoint URL      RDS endpoint (env AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL;\n"
    "                          default https://rds.REGION.amazonaws.com)\n"
    "  --instance ID           source instance of the copies (default: the only one)\n"
    "  --instance-class CLASS  class of the scratch instance (default: as the source)\n"
    "  --subnet-group NAME     DB subnet group of the scratch instance\n"
    "  --security-group ID     VPC security group; repeatable\n"
    "  --parameter-group NAME  DB parameter group\n"
    "  --connect-host HOST:PORT connect there instead of the instance endpoint\n"
    "  --db-user NAME          database user (default: PGUSER, else the master user);\n"
    "                          the password comes from PGPASSWORD or .pgpass\n"
    "  --db-iam-auth           sign in with an RDS IAM authentication token instead\n"
    "                          (sslmode=require unless --connect-host is loopback;\n"
    "                          --db-user needs the rds_iam role); local drills\n"
    "                          ignore it, so that a configuration file may set it\n"
    "  --database NAME         database to verify; repeatable (default: all)\n"
    "  --wait-timeout DUR      how long to wait for the instance (s, m, h, d or w;\n"
    "                          default 1h)\n"
    "  --poll-interval DUR     first delay between status checks, doubling up to 1m\n"
    "                          (s, m, h, d or w; default 10s)\n\n" CLI_REPO_HELP;

struct dr_cli {
    const char *command;
    const char *signing_key_path;            /* replicate --signing-key */
    const char *signing_passphrase_file;
    struct cli_common common;
    struct cli_common replica;      /* storage options of the replica */
    struct replicate_options replicate;
    struct drill_options drill;
    struct signature_trust trust;   /* replicate and drill --trusted-key */
    const char *scratch;
    int snapshots;
    struct snapshot_replicate_options snapshot;
    const char *rds_region;
    const char *rds_endpoint;
    int json;
    const char *databases[CLI_MAX_REPEATED];        /* drill --database */
    size_t database_count;
    const char *security_groups[CLI_MAX_REPEATED];  /* drill --security-group */
    size_t security_group_count;
    int rds_scratch_options;                        /* 1 when an RDS drill option is given */
};

/* Parses the options of drill --scratch rds that set the scratch instance
 * and the verification. */
static int parse_drill_rds_option(struct dr_cli *cli, int code, const char *value,
                                  stow_error *err)
{
    struct snapshot_restore_options *restore = &cli->drill.rds_restore;
    int rds_options_before = cli->rds_scratch_options;

    cli->rds_scratch_options = 1;
    switch (code) {
    case OPT_INSTANCE_CLASS: restore->scratch.instance_class = value; return 0;
    case OPT_SUBNET_GROUP: restore->scratch.subnet_group = value; return 0;
    case OPT_PARAMETER_GROUP: restore->scratch.parameter_group = value; return 0;
    case OPT_CONNECT_HOST: restore->connect_host = value; return 0;
    case OPT_DB_USER: restore->db_user = value; return 0;
    case OPT_DB_IAM_AUTH:
        cli->rds_scratch_options = rds_options_before; /* a local drill ignores it */
        restore->db_iam_auth = 1;
        return 0;
    case OPT_SECURITY_GROUP:
        return cli_add_repeated(cli->security_groups, &cli->security_group_count,
                                "--security-group", value, err);
    case OPT_DATABASE:
        return cli_add_repeated(cli->databases, &cli->database_count, "--database", value, err);
    default:
        return cli_usage_error(err, cli->command, "unknown option");
    }
}

/* Parses the options of --snapshots. */
static int parse_snapshot_option(struct dr_cli *cli, int code, const char *value,
                                 stow_error *err)
{
    int64_t seconds;

    switch (code) {
    case OPT_INSTANCE: cli->snapshot.instance_id = value; return 0;
    case OPT_KMS_KEY: cli->snapshot.kms_key_id = value; return 0;
    case OPT_RDS_REGION: cli->rds_region = value; return 0;
    case OPT_RDS_ENDPOINT: cli->rds_endpoint = value; return 0;
    case OPT_WAIT_TIMEOUT:
        return stow_duration_parse("--wait-timeout", value, &cli->snapshot.wait.timeout_seconds,
                                   err);
    case OPT_POLL_INTERVAL:
        if (stow_duration_parse("--poll-interval", value, &seconds, err) != 0)
            return -1;
        if (seconds > SNAPSHOT_POLL_MAX_MS / 1000)
            return stow_fail(err, STOW_EXIT_USAGE, "--poll-interval may be at most %ds",
                             SNAPSHOT_POLL_MAX_MS / 1000);
        cli->snapshot.wait.poll_ms = (unsigned)(seconds * 1000);
        return 0;
    default:
        return parse_drill_rds_option(cli, code, value, err);
    }
}

/* Parses the Object Lock and signing options of replicate. */
static int parse_replica_lock_option(struct dr_cli *cli, int code, const char *value,
                                     stow_error *err)
{
    switch (code) {
    case OPT_OBJECT_LOCK_DAYS:
        return cli_parse_object_lock("--object-lock-days", value,
                                     &cli->replicate.object_lock_days, NULL, err);
    case OPT_OBJECT_LOCK_MODE:
        return cli_parse_object_lock("--object-lock-mode", value, NULL,
                                     &cli->replicate.object_lock_mode, err);
    case OPT_SIGNING_KEY: cli->signing_key_path = value; return 0;
    case OPT_SIGNING_PASSPHRASE_FILE: cli->signing_passphrase_file = value; return 0;
    default: return parse_snapshot_option(cli, code, value, err);
    }
}

static int parse_drill_jobs(struct dr_cli *cli, const char *value, stow_error *err)
{
    long jobs;

    if (cli_parse_int("--jobs", value, 1, RESTORE_JOBS_MAX, &jobs, err) != 0)
        return -1;
    cli->drill.jobs = (int)jobs;
    return 0;
}

static int parse_dr_option(void *context, int code, const char *value, stow_error *err)
{
    struct dr_cli *cli = context;

    switch (code) {
    case OPT_TO: cli->replica.storage.url = value; break;
    case OPT_TO_REGION: cli->replica.storage.region = value; break;
    case OPT_TO_ENDPOINT: cli->replica.storage.endpoint = value; break;
    case OPT_TO_PATH_STYLE: cli->replica.storage.path_style = 1; break;
    case OPT_TO_STORAGE_CLASS: cli->replica.storage.storage_class = value; break;
    case OPT_NAME:
        cli->replicate.name = value;
        cli->drill.name = value;
        return catalog_check_name(value, err);
    case OPT_REPAIR: cli->replicate.repair = 1; break;
    case OPT_STREAM: cli->replicate.stream = 1; break;
    case OPT_SNAPSHOTS: cli->snapshots = 1; break;
    case OPT_JSON: cli->json = 1; break;
    case OPT_KEY: cli->drill.secret_key_path = value; break;
    case OPT_PASSPHRASE_FILE: cli->drill.passphrase_file = value; break;
    case OPT_TRUSTED_KEY: return signature_trust_add_file(&cli->trust, value, err);
    case OPT_RPO_OBJECTIVE:
        return stow_duration_parse("--rpo-objective", value, &cli->drill.rpo_objective, err);
    case OPT_RTO_OBJECTIVE:
        return stow_duration_parse("--rto-objective", value, &cli->drill.rto_objective, err);
    case OPT_REPORT: cli->drill.report_path = value; break;
    case OPT_MARKDOWN: cli->drill.markdown_path = value; break;
    case OPT_SCRATCH: cli->scratch = value; break;
    case OPT_JOBS: return parse_drill_jobs(cli, value, err);
    case OPT_SPOOL_DIR: cli->drill.spool_directory = value; break;
    case OPT_LOCK_STALE_AFTER:
        return stow_duration_parse("--lock-stale-after", value,
                                   &cli->replicate.lock_stale_after, err);
    default: return parse_replica_lock_option(cli, code, value, err);
    }
    return 0;
}

static const struct option replicate_options[] = {
    CLI_REPO_LONG_OPTIONS,
    {"to", required_argument, NULL, OPT_TO},
    {"to-region", required_argument, NULL, OPT_TO_REGION},
    {"to-endpoint", required_argument, NULL, OPT_TO_ENDPOINT},
    {"to-path-style", no_argument, NULL, OPT_TO_PATH_STYLE},
    {"to-storage-class", required_argument, NULL, OPT_TO_STORAGE_CLASS},
    {"name", required_argument, NULL, OPT_NAME},
    {"repair", no_argument, NULL, OPT_REPAIR},
    {"stream", no_argument, NULL, OPT_STREAM},
    {"snapshots", no_argument, NULL, OPT_SNAPSHOTS},
    {"lock-stale-after", required_argument, NULL, OPT_LOCK_STALE_AFTER},
    {"object-lock-days", required_argument, NULL, OPT_OBJECT_LOCK_DAYS},
    {"object-lock-mode", required_argument, NULL, OPT_OBJECT_LOCK_MODE},
    {"signing-key", required_argument, NULL, OPT_SIGNING_KEY},
    {"signing-passphrase-file", required_argument, NULL, OPT_SIGNING_PASSPHRASE_FILE},
    {"trusted-key", required_argument, NULL, OPT_TRUSTED_KEY},
    {"json", no_argument, NULL, OPT_JSON},
    {"instance", required_argument, NULL, OPT_INSTANCE},
    {"kms-key", required_argument, NULL, OPT_KMS_KEY},
    {"rds-region", required_argument, NULL, OPT_RDS_REGION},
    {"rds-endpoint", required_argument, NULL, OPT_RDS_ENDPOINT},
    {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {"poll-interval", required_argument, NULL, OPT_POLL_INTERVAL},
    {NULL, 0, NULL, 0},
};

static const struct option dr_options[] = {
    CLI_REPO_LONG_OPTIONS,
    {"replica", required_argument, NULL, OPT_TO},
    {"replica-region", required_argument, NULL, OPT_TO_REGION},
    {"replica-endpoint", required_argument, NULL, OPT_TO_ENDPOINT},
    {"replica-path-style", no_argument, NULL, OPT_TO_PATH_STYLE},
    {"name", required_argument, NULL, OPT_NAME},
    {"json", no_argument, NULL, OPT_JSON},
    {NULL, 0, NULL, 0},
};

static const struct option drill_options[] = {
    CLI_REPO_LONG_OPTIONS,
    {"key", required_argument, NULL, OPT_KEY},
    {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE},
    {"trusted-key", required_argument, NULL, OPT_TRUSTED_KEY},
    {"name", required_argument, NULL, OPT_NAME},
    {"rpo-objective", required_argument, NULL, OPT_RPO_OBJECTIVE},
    {"rto-objective", required_argument, NULL, OPT_RTO_OBJECTIVE},
    {"report", required_argument, NULL, OPT_REPORT},
    {"markdown", required_argument, NULL, OPT_MARKDOWN},
    {"scratch", required_argument, NULL, OPT_SCRATCH},
    {"jobs", required_argument, NULL, OPT_JOBS},
    {"spool-dir", required_argument, NULL, OPT_SPOOL_DIR},
    {"rds-region", required_argument, NULL, OPT_RDS_REGION},
    {"rds-endpoint", required_argument, NULL, OPT_RDS_ENDPOINT},
    {"instance", required_argument, NULL, OPT_INSTANCE},
    {"instance-class", required_argument, NULL, OPT_INSTANCE_CLASS},
    {"subnet-group", required_argument, NULL, OPT_SUBNET_GROUP},
    {"security-group", required_argument, NULL, OPT_SECURITY_GROUP},
    {"parameter-group", required_argument, NULL, OPT_PARAMETER_GROUP},
    {"connect-host", required_argument, NULL, OPT_CONNECT_HOST},
    {"db-user", required_argument, NULL, OPT_DB_USER},
    {"db-iam-auth", no_argument, NULL, OPT_DB_IAM_AUTH},
    {"database", required_argument, NULL, OPT_DATABASE},
    {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {"poll-interval", required_argument, NULL, OPT_POLL_INTERVAL},
    {NULL, 0, NULL, 0},
};

/* Parses the command line. Returns 1 after --help, 0, or -1. */
static int parse_dr_command(struct dr_cli *cli, const char *command, int argc, char **argv,
                            const struct option *options, stow_error *err)
{
    memset(cli, 0, sizeof *cli);
    cli->command = command;
    snapshot_wait_default(&cli->snapshot.wait);
    cli_common_init(&cli->common);
    cli_common_init(&cli->replica);
    cli->replica.storage.url = NULL;
    if (cli_parse(argc, argv, command, options, &cli->common, parse_dr_option, cli, NULL, 0,
                  NULL, err) != 0)
        return -1;
    if (cli->common.help)
        return 1;
    if (cli->common.storage.url == NULL)
        return cli_usage_error(err, command, "--repo URL is required (or set STOWAGE_REPO)");
    cli->replica.storage.transfers_in_flight = cli->common.storage.transfers_in_flight;
    return 0;
}

/* Warns when the primary is on a custom S3 endpoint (an S3-compatible
 * store) but an s3:// replica has none, so that its requests go to AWS.
 * The behaviour stays as it is because a replica on AWS is a valid setup. */
static void warn_replica_on_aws(const struct dr_cli *cli)
{
    const char *option = strcmp(cli->command, "replicate") == 0 ? "to-endpoint"
                                                                 : "replica-endpoint";
    const char *replica_url = cli->replica.storage.url;
    char endpoint[1024];

    if (cli->common.storage.endpoint == NULL || cli->replica.storage.endpoint != NULL ||
        replica_url == NULL || strncmp(replica_url, "s3://", 5) != 0 ||
        aws_env_value("AWS_ENDPOINT_URL_S3") != NULL || aws_env_value("AWS_ENDPOINT_URL") != NULL)
        return;
    snprintf(endpoint, sizeof endpoint, "%s", cli->common.storage.endpoint);
    stow_redact_passwords(endpoint);
    stow_log_warn("the repository %s uses the S3 endpoint %s but the replica %s has none, so "
                  "its requests go to AWS S3; set %s (--%s) if the replica is on the same store",
                  cli->common.storage.url, endpoint, replica_url, option, option);
}

/* Renames --repo, --endpoint and --region in the hint of a failure of the
 * replica, which the storage layer words for the primary's options, to the
 * options that set the replica (--to, --to-endpoint, ... for replicate;
 * --replica, --replica-endpoint, ... for dr status). */
static void name_replica_options(const struct dr_cli *cli, stow_error *err)
{
    static const struct {
        const char *primary;
        const char *replicate;
        const char *dr_status;
    } options[] = {
        {"--endpoint", "--to-endpoint", "--replica-endpoint"},
        {"--region", "--to-region", "--replica-region"},
        {"--repo", "--to", "--replica"},
    };
    int replicate = strcmp(cli->command, "replicate") == 0;
    char renamed[sizeof err->hint];
    size_t used = 0;

    for (const char *cursor = err->hint; *cursor != '\0' && used + 1 < sizeof renamed;) {
        size_t i = 0;

        while (i < sizeof options / sizeof options[0] &&
               strncmp(cursor, options[i].primary, strlen(options[i].primary)) != 0)
            i++;
        if (i < sizeof options / sizeof options[0]) {
            used += (size_t)snprintf(renamed + used, sizeof renamed - used, "%s",
                                     replicate ? options[i].replicate : options[i].dr_status);
            cursor += strlen(options[i].primary);
        } else {
            renamed[used++] = *cursor++;
        }
        if (used >= sizeof renamed)
            used = sizeof renamed - 1;
    }
    renamed[used] = '\0';
    memcpy(err->hint, renamed, used + 1);
}

/* Fails with STOW_EXIT_USAGE when the replica is the primary: the same URL
 * on the same endpoint. */
static int check_distinct(const struct dr_cli *cli, const storage *primary,
                          const storage *replica, stow_error *err)
{
    if (strcmp(storage_url(primary), storage_url(replica)) != 0 ||
        (cli->replica.storage.endpoint != NULL &&
         (cli->common.storage.endpoint == NULL ||
          strcmp(cli->replica.storage.endpoint, cli->common.storage.endpoint) != 0)))
        return 0;
    return stow_fail(err, STOW_EXIT_USAGE, "the replica %s is the primary repository",
                     storage_url(replica));
}

/* Opens the primary (--repo) and the replica, and checks that both are
 * reachable. */
static int open_both(struct dr_cli *cli, storage **primary, storage **replica, stow_error *err)
{
    warn_replica_on_aws(cli);
    if (cli_open_repository(&cli->common, primary, err) != 0)
        return -1;
    if (cli_open_repository(&cli->replica, replica, err) != 0) {
        name_replica_options(cli, err);
        return -1;
    }
    if (check_distinct(cli, *primary, *replica, err) != 0)
        return -1;
    if (storage_check(*primary, STORAGE_ACCESS_WRITE, err) != 0)
        return -1;
    if (storage_check(*replica, STORAGE_ACCESS_WRITE, err) != 0) {
        name_replica_options(cli, err);
        return -1;
    }
    return 0;
}

static void print_json(json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text != NULL) {
        printf("%s\n", text);
        free(text);
    }
}

/* --- replicate ------------------------------------------------------------ */

static void print_backups_text(const struct replicate_result *result, const storage *replica)
{
    for (size_t i = 0; i < result->count; i++) {
        const struct replicate_item *item = &result->items[i];
        char size[32];

        cli_format_bytes(item->stored_bytes, size, sizeof size);
        printf("%-9s %-23s %-16s %6zu parts %10s", replicate_action_name(item->action),
               item->id, item->name, item->parts, size);
        if (item->method != NULL)
            printf("  %s in %.1f s, checked in %.1f s", item->method, item->copy_seconds,
                   item->check_seconds);
        else if (item->check_seconds > 0)
            printf("  checked in %.1f s", item->check_seconds);
        if (item->action == REPLICATE_FAILED)
            printf("  %s", item->error.message);
        else if (item->note != NULL)
            printf("  (%s)", item->note);
        printf("\n");
    }
    printf("replicated to %s: %zu copied, %zu kept from an earlier run, %zu repaired, "
           "%zu already there, %zu failed\n",
           storage_url(replica), result->copied, result->reused, result->repaired,
           result->present, result->failed);
}

static void print_snapshots_text(const struct snapshot_replicate_result *result,
                                 const rds_client *target)
{
    for (size_t i = 0; i < result->count; i++) {
        const struct snapshot_replicate_item *item = &result->items[i];

        printf("%-9s snapshot %s as %s (%.1f s)%s%s\n", item->action, item->id, item->copy_id,
               item->seconds, strcmp(item->action, "failed") == 0 ? "  " : "",
               strcmp(item->action, "failed") == 0 ? item->error.message : "");
    }
    printf("RDS snapshots in %s: %zu copied, %zu already there, %zu failed, %zu skipped\n",
           rds_client_region(target), result->copied, result->present, result->failed,
           result->skipped);
}

/* Opens the RDS clients of the snapshots' region and of --to-region. */
static int open_rds_clients(const struct dr_cli *cli, rds_client **source, rds_client **target,
                            stow_error *err)
{
    struct rds_options options;

    memset(&options, 0, sizeof options);
    options.region = cli->rds_region != NULL ? cli->rds_region : cli->common.storage.region;
    options.endpoint = cli->rds_endpoint;
    if (rds_client_new(&options, source, err) != 0)
        return -1;
    options.region = cli->replica.storage.region;
    return rds_client_new(&options, target, err);
}

/* Copies the RDS snapshots after the backups. The first failure of the
 * two steps stays in err; a later one is logged. */
static void replicate_snapshots(struct dr_cli *cli, storage *replica, json_t *summary,
                                stow_error *err)
{
    struct snapshot_replicate_result result = {0};
    rds_client *source = NULL;
    rds_client *target = NULL;
    stow_error snapshot_err = {0};

    cli->snapshot.replica = replica;
    if (open_rds_clients(cli, &source, &target, &snapshot_err) == 0) {
        snapshot_replicate_run(source, target, &cli->snapshot, &result, &snapshot_err);
        if (summary != NULL)
            json_object_set_new(summary, "snapshots",
                                snapshot_replicate_result_json(&result, source, target));
        else
            print_snapshots_text(&result, target);
    }
    if (stow_error_is_set(&snapshot_err) && stow_error_is_set(err))
        stow_log_error(&snapshot_err);
    else if (stow_error_is_set(&snapshot_err))
        *err = snapshot_err;
    snapshot_replicate_result_free(&result);
    rds_client_free(source);
    rds_client_free(target);
}

static int check_replicate_usage(const struct dr_cli *cli, stow_error *err)
{
    if (cli->replica.storage.url == NULL)
        return cli_usage_error(err, "replicate", "--to URL is required: the replica repository");
    if (cli->snapshots && cli->replica.storage.region == NULL)
        return cli_usage_error(err, "replicate", "--snapshots needs --to-region REGION: the "
                                                 "region to copy the snapshots to");
    if (!cli->snapshots && (cli->snapshot.instance_id != NULL ||
                            cli->snapshot.kms_key_id != NULL))
        return cli_usage_error(err, "replicate", "--instance and --kms-key apply to "
                                                 "--snapshots only");
    if (cli->replicate.object_lock_days == 0 &&
        cli->replicate.object_lock_mode != STORAGE_LOCK_NONE)
        return cli_usage_error(err, "replicate", "--object-lock-mode is set but "
                                                 "--object-lock-days is not, so nothing would "
                                                 "be locked");
    return 0;
}

/* Loads --signing-key, which only a locked replica uses. */
static int load_replica_signing_key(const struct dr_cli *cli,
                                    struct keys_signing_secret **signing_key, stow_error *err)
{
    struct keys_passphrase_source source = {cli->signing_passphrase_file,
                                            "--signing-passphrase-file"};

    *signing_key = NULL;
    if (cli->signing_key_path == NULL)
        return 0;
    if (cli->replicate.object_lock_days == 0) {
        stow_log_detail("--signing-key is not used: replicate signs manifests again only with "
                      "--object-lock-days");
        return 0;
    }
    return keys_signing_secret_load(cli->signing_key_path, keys_passphrase_from_source, &source,
                                    signing_key, err);
}

int cmd_replicate(int argc, char **argv)
{
    struct dr_cli cli;
    struct replicate_result result = {0};
    struct keys_signing_secret *signing_key = NULL;
    storage *primary = NULL;
    storage *replica = NULL;
    json_t *summary = NULL;
    stow_error err = {0};
    int rc = parse_dr_command(&cli, "replicate", argc, argv, replicate_options, &err);

    if (rc == 1) {
        fputs(replicate_usage, stdout);
        return STOW_EXIT_OK;
    }
    if (rc != 0 || check_replicate_usage(&cli, &err) != 0)
        return cli_finish(&err);
    if (cli.trust.count == 0 &&
        signature_trust_add_list(&cli.trust, getenv("STOWAGE_TRUSTED_KEYS"), &err) != 0)
        goto done;
    if (load_replica_signing_key(&cli, &signing_key, &err) != 0 ||
        open_both(&cli, &primary, &replica, &err) != 0)
        goto done;
    cli.replicate.signing_key = signing_key;
    cli.replicate.trust = &cli.trust;

    /* Backups first; a run that failed before its first backup shows nothing. */
    if (replicate_run(primary, replica, &cli.replicate, &result, &err) == 0 || result.count > 0) {
        metrics_record_replicate(result.copied + result.reused + result.repaired, result.failed);
        if (cli.json)
            summary = replicate_result_json(&result, primary, replica);
        else
            print_backups_text(&result, replica);
    }

    /* Then the RDS snapshots, unless the run was interrupted. */
    if (cli.snapshots && err.exit_code != STOW_EXIT_INTERRUPTED)
        replicate_snapshots(&cli, replica, summary, &err);
    if (summary != NULL)
        print_json(summary);

done:
    json_decref(summary);
    keys_signing_secret_free(signing_key);
    replicate_result_free(&result);
    storage_free(primary);
    storage_free(replica);
    return cli_finish(&err);
}

/* --- dr status ------------------------------------------------------------ */

/* Opens and checks the replica of dr status. */
static int open_replica(struct dr_cli *cli, storage **replica, stow_error *err)
{
    if (cli_open_repository(&cli->replica, replica, err) == 0 && storage_check(*replica, STORAGE_ACCESS_WRITE, err) == 0)
        return 0;
    name_replica_options(cli, err);
    return -1;
}

/* Loads the primary's catalog for dr status. Returns -1 with err filled
 * when the primary cannot be read. */
static int load_primary(struct dr_cli *cli, storage **primary, const storage *replica,
                        struct catalog *catalog, stow_error *err)
{
    if (cli_open_repository(&cli->common, primary, err) != 0)
        return -1;
    if (check_distinct(cli, *primary, replica, err) != 0)
        return -1;
    if (storage_check(*primary, STORAGE_ACCESS_WRITE, err) != 0)
        return -1;
    return catalog_load(*primary, cli->replicate.name, catalog, err);
}

/* Sets what only the primary can tell (its own side, the replica's
 * missing backups and the lag) to null, for a status built without the
 * primary. Logs an error when the replica has no backups either. */
static void forget_primary_counts(json_t *status, const char *name)
{
    json_t *names = json_object_get(status, "names");
    json_t *entry;
    size_t index;

    json_array_foreach(names, index, entry) {
        json_object_set_new(entry, "primary", json_null());
        json_object_set_new(json_object_get(entry, "replica"), "missing", json_null());
        json_object_set_new(entry, "lag_seconds", json_null());
    }
    if (json_array_size(names) == 0)
        stow_log(STOW_LOG_ERROR, "the replica has no backups%s%s: nothing can be restored from it",
                            name != NULL ? " of " : "", name != NULL ? name : "");
}

/* dr status. In a disaster the primary is what is gone, and the replica's
 * state is what the operator needs: an unreachable primary (exit code 6)
 * still prints the replica's backups and RPO, and then fails the run. */
static int dr_status(struct dr_cli *cli, stow_error *err)
{
    struct catalog primary_catalog = {0};
    struct catalog replica_catalog = {0};
    stow_error primary_err = {0};
    storage *primary = NULL;
    storage *replica = NULL;
    json_t *status = NULL;
    int rc;

    warn_replica_on_aws(cli);
    rc = open_replica(cli, &replica, err);
    if (rc == 0 && load_primary(cli, &primary, replica, &primary_catalog, &primary_err) != 0) {
        catalog_free(&primary_catalog);
        memset(&primary_catalog, 0, sizeof primary_catalog);
        if (primary_err.exit_code != STOW_EXIT_STORAGE) {
            *err = primary_err;
            rc = -1;
        } else {
            stow_log_warn("the primary cannot be read, so only the replica is shown: %s",
                          primary_err.message);
        }
    }
    if (rc == 0)
        rc = catalog_load(replica, cli->replicate.name, &replica_catalog, err);
    if (rc == 0 && !stow_error_is_set(&primary_err) && cli->replicate.name != NULL &&
        primary_catalog.count == 0 && primary_catalog.broken == 0 && replica_catalog.count == 0)
        rc = replicate_reject_unknown_name(primary, cli->replicate.name, err);
    if (rc == 0) {
        status = dr_status_build(&primary_catalog, &replica_catalog, time(NULL));
        json_object_set_new(status, "primary", json_string(primary != NULL
                                                               ? storage_url(primary)
                                                               : cli->common.storage.url));
        if (stow_error_is_set(&primary_err))
            forget_primary_counts(status, cli->replicate.name);
        json_object_set_new(status, "replica", json_string(storage_url(replica)));
        json_object_set_new(status, "primary_error", stow_error_is_set(&primary_err)
                                                         ? json_string(primary_err.message)
                                                         : json_null());
        if (cli->json)
            print_json(status);
        else
            dr_status_print_table(status, stdout);
    }
    if (rc == 0 && stow_error_is_set(&primary_err)) {
        *err = primary_err;
        rc = -1;
    }

    json_decref(status);
    catalog_free(&primary_catalog);
    catalog_free(&replica_catalog);
    storage_free(primary);
    storage_free(replica);
    return rc;
}

int cmd_dr(int argc, char **argv)
{
    struct dr_cli cli;
    stow_error err = {0};
    int rc;

    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fputs(dr_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? STOW_EXIT_USAGE : STOW_EXIT_OK;
    }
    if (strcmp(argv[1], "status") != 0) {
        cli_usage_error(&err, "dr", "unknown dr command: the only one is \"status\"");
        return cli_finish(&err);
    }
    rc = parse_dr_command(&cli, "dr", argc - 1, argv + 1, dr_options, &err);
    if (rc == 1) {
        fputs(dr_usage, stdout);
        return STOW_EXIT_OK;
    }
    if (rc == 0 && cli.replica.storage.url == NULL) {
        stow_fail(&err, STOW_EXIT_USAGE, "--replica URL is required");
        stow_error_hint(&err, "give --replica (env STOWAGE_REPLICA), or set replica, "
                              "replica-region and replica-endpoint in the configuration file: "
                              "the keys to, to-region and to-endpoint apply to replicate only");
    }
    if (!stow_error_is_set(&err))
        dr_status(&cli, &err);
    return cli_finish(&err);
}

/* --- drill ---------------------------------------------------------------- */

static int is_rds_drill(const struct dr_cli *cli)
{
    return cli->scratch != NULL && strcmp(cli->scratch, "rds") == 0;
}

static int check_drill_usage(const struct dr_cli *cli, stow_error *err)
{
    if (cli->scratch != NULL && !is_rds_drill(cli) && strcmp(cli->scratch, "local") != 0)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid --scratch \"%s\": use local or rds",
                         cli->scratch);
    if (!is_rds_drill(cli) && (cli->rds_region != NULL || cli->rds_endpoint != NULL ||
                               cli->snapshot.instance_id != NULL || cli->rds_scratch_options))
        return cli_usage_error(err, "drill", "--rds-region, --instance, --connect-host and the "
                                             "other RDS options apply to --scratch rds only");
    if (is_rds_drill(cli) && cli->rds_region == NULL)
        return cli_usage_error(err, "drill", "--scratch rds needs --rds-region REGION: the "
                                             "replica region that holds the snapshot copies");
    if (is_rds_drill(cli) && (cli->drill.jobs > 1 || cli->drill.spool_directory != NULL))
        return cli_usage_error(err, "drill", "--jobs and --spool-dir apply to local drills only");
    if (cli->drill.spool_directory != NULL && cli->drill.jobs <= 1)
        return cli_usage_error(err, "drill", "--spool-dir applies to --jobs N with N > 1 only");
    return 0;
}

/* Opens the RDS client of the replica region and completes the options of
 * the RDS restore. */
static int prepare_rds_drill(struct dr_cli *cli, rds_client **client, stow_error *err)
{
    struct snapshot_restore_options *restore = &cli->drill.rds_restore;
    struct rds_options options;

    memset(&options, 0, sizeof options);
    options.region = cli->rds_region;
    options.endpoint = cli->rds_endpoint;
    if (rds_client_new(&options, client, err) != 0)
        return -1;
    cli->drill.rds = *client;
    cli->drill.instance_id = cli->snapshot.instance_id;
    restore->scratch.security_groups = cli->security_groups;
    restore->scratch.security_group_count = cli->security_group_count;
    restore->scratch.wait = cli->snapshot.wait;
    restore->databases = cli->databases;
    restore->database_count = cli->database_count;
    return 0;
}

int cmd_drill(int argc, char **argv)
{
    struct dr_cli cli;
    storage *store = NULL;
    rds_client *client = NULL;
    stow_error err = {0};
    int rc = parse_dr_command(&cli, "drill", argc, argv, drill_options, &err);

    if (rc == 1) {
        fputs(drill_usage, stdout);
        return STOW_EXIT_OK;
    }
    if (rc == 0 && cli.drill.secret_key_path == NULL)
        cli.drill.secret_key_path = getenv("STOWAGE_KEY");
    if (rc == 0 && cli.trust.count == 0)
        signature_trust_add_list(&cli.trust, getenv("STOWAGE_TRUSTED_KEYS"), &err);
    cli.drill.trust = &cli.trust;
    if (rc == 0 && check_drill_usage(&cli, &err) == 0 &&
        cli_check_output_path("--report", cli.drill.report_path, &err) == 0)
        cli_check_output_path("--markdown", cli.drill.markdown_path, &err);
    if (stow_error_is_set(&err))
        return cli_finish(&err);

    /* From here on, every failure is a failed drill with its reports. */
    if (strncmp(cli.common.storage.url, "s3://", 5) == 0)
        cli.drill.region = cli.common.storage.region ? cli.common.storage.region
                                                     : s3_default_region();
    if ((!is_rds_drill(&cli) || prepare_rds_drill(&cli, &client, &err) == 0) &&
        cli_open_repository(&cli.common, &store, &err) == 0 && storage_check(store, STORAGE_ACCESS_WRITE, &err) == 0)
        drill_run(store, &cli.drill, &err);
    else
        drill_report_unstarted(cli.common.storage.url, is_rds_drill(&cli) ? cli.rds_region : NULL,
                               &cli.drill, &err);
    storage_free(store);
    rds_client_free(client);
    return cli_finish(&err);
}
