/* stowage restore, verify and extract: commands that read a backup back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "cli/cli.h"
#include "common/log.h"
#include "keys.h"
#include "restore.h"
#include "signature.h"

/* Restores from RDS snapshots and points in time (cmd_snapshot.c). */
int cmd_restore_rds(int argc, char **argv);

enum {
    OPT_KEY = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_PASSPHRASE_FILE,
    OPT_NAME,
    OPT_AT,
    OPT_TARGET,
    OPT_SCRATCH,
    OPT_VERIFY,
    OPT_CLEAN,
    OPT_CREATE,
    OPT_WITH_GLOBALS,
    OPT_NO_OWNER,
    OPT_KEEP,
    OPT_REPORT,
    OPT_ALL,
    OPT_AGAINST,
    OPT_TO,
    OPT_TRUSTED_KEY,
    OPT_JOBS,
    OPT_SPOOL_DIR,
    OPT_DB_IAM_AUTH
};

#define READ_HELP                                                                   \
    "Choosing the backup: BACKUP is a backup id or \"latest\"; --at TIME picks the\n" \
    "newest backup taken at or before TIME (RFC 3339; a time without an offset is UTC).\n" \
    "  --name NAME              catalog name, when the repository holds several\n"   \
    "                           (default: the only one)\n"                            \
    "  --at TIME                newest backup at or before TIME (default: the\n"      \
    "                           BACKUP argument)\n"                                   \
    "  --key SECFILE            secret key of a recipient (env STOWAGE_KEY)\n"       \
    "  --passphrase-file FILE   passphrase of a protected key (else asked on the\n"  \
    "                           terminal)\n"                                       \
    "  --trusted-key PUBFILE    signing public key (PATH.sign.pub) whose signature the\n" \
    "                           manifest must carry; repeat for several (env\n"     \
    "                           STOWAGE_TRUSTED_KEYS, colon-separated). Without it,\n" \
    "                           signatures are not checked\n\n" CLI_REPO_HELP

static const char restore_usage[] =
    "Usage: stowage restore --repo URL BACKUP --key SECFILE --target CONNINFO\n"
    "                       [--clean | --create] [--with-globals] [--no-owner]\n"
    "                       [--verify] [--jobs N [--spool-dir DIR]]\n"
    "       stowage restore --repo URL BACKUP --key SECFILE --scratch local --verify\n"
    "                       [--report FILE] [--keep] [--jobs N [--spool-dir DIR]]\n"
    "       stowage restore --from-snapshot ID | --instance ID --at TIME --scratch rds\n"
    "                       [--verify] [--amcheck]   (stowage restore --scratch rds --help)\n\n"
    "Streams the backup into pg_restore without staging it on disk: every part's\n"
    "SHA-256 is checked, the data is decrypted and decompressed on the way, and\n"
    "pg_restore runs in a single transaction, so a failed restore leaves nothing\n"
    "(except with --jobs N > 1, see below). With --create the restore makes a new\n"
    "database, which appears under its name only when the restore is complete.\n\n"
    "Options:\n"
    "  --target CONNINFO        database to restore into (must hold no tables\n"
    "                           unless --clean, must not exist with --create)\n"
    "  --db-iam-auth            sign in to the --target database with an RDS IAM\n"
    "                           token instead of a password (see stowage backup --help)\n"
    "  --scratch local          restore into a throwaway local PostgreSQL cluster of\n"
    "                           the backup's major version, removed afterwards\n"
    "  --verify                 compare the restored database with the manifest:\n"
    "                           row counts and digests of every table, schemas,\n"
    "                           sequences and extensions. The outcome is recorded\n"
    "                           beside the manifest (stowage list shows it) when it\n"
    "                           passed or failed because of the backup: a check of\n"
    "                           its data failed (exit 3), or pg_restore failed in a\n"
    "                           new scratch cluster (exit 1) without a full disk.\n"
    "                           Other failures (a wrong key, an unreachable\n"
    "                           repository or database, a scratch cluster that\n"
    "                           cannot be created, pg_restore failing in a --target\n"
    "                           database, a full disk, an interruption) are not\n"
    "                           recorded\n"
    "  --report FILE            write the JSON report to FILE (default: none)\n"
    "  --keep                   leave the scratch instance running (also after a\n"
    "                           failure; a SIGINT or SIGTERM removes it)\n"
    "  --clean                  drop and replace objects the target already has\n"
    "  --create                 create the --target database, which must not exist:\n"
    "                           the restore (and --verify) runs in a new database\n"
    "                           named stowage_restore_HEX, which is renamed to the\n"
    "                           --target name when it succeeds and dropped when it\n"
    "                           fails. As nothing appears half restored, --jobs\n"
    "                           defaults to 2 here. Needs the CREATEDB privilege and\n"
    "                           the postgres or template1 database to connect to\n"
    "  --with-globals           create roles and tablespaces first (they stay when\n"
    "                           the restore fails)\n"
    "  --no-owner               skip ownership and privileges (pg_restore --no-owner\n"
    "                           --no-privileges)\n"
    "  --jobs N                 restore over N connections, 1 to 64 (default 1,\n"
    "                           2 with --create).\n"
    "                           With N > 1 pg_restore creates the schema, the table\n"
    "                           data goes over N COPY connections as the backup\n"
    "                           streams (one big table too), and pg_restore --jobs N\n"
    "                           builds the indexes and constraints. Nothing runs in\n"
    "                           a single transaction: data reaches the target before\n"
    "                           the last part is checked, and a failed or interrupted\n"
    "                           restore leaves a partly restored database, which must\n"
    "                           be dropped and recreated (with --create it is dropped\n"
    "                           for you). With --clean, or when the\n"
    "                           backup contains large objects, the decrypted dump is\n"
    "                           instead written to a temporary file as large as the\n"
    "                           dump and checked in full before pg_restore --jobs N\n"
    "                           starts\n"
    "  --spool-dir DIR          directory of the temporary file for the dump's\n"
    "                           table of contents, or the whole dump (default:\n"
    "                           $STOWAGE_SPOOL_DIR, else $TMPDIR, else /tmp)\n" READ_HELP;

static const char verify_usage[] =
    "Usage: stowage verify --repo URL BACKUP|--all --key SECFILE\n"
    "       stowage verify --repo URL BACKUP --key SECFILE --against CONNINFO\n\n"
    "Without --against: reads the stored backup to the end without restoring it,\n"
    "checking every part's SHA-256, the decryption (authentication tags and the\n"
    "final tag), the decompression, the archive members and the archive digest.\n"
    "With --against: compares a live database with the backup's manifest table by\n"
    "table, as a verified restore does.\n\n"
    "Options:\n"
    "  --all                    verify every backup in the catalog; a backup that\n"
    "                           the --key is not a recipient of is skipped and\n"
    "                           nothing is recorded for it (exit 8 when nothing\n"
    "                           else failed)\n"
    "  --against CONNINFO       compare this database with the manifest\n"
    "  --db-iam-auth            sign in to the --against database with an RDS IAM\n"
    "                           token instead of a password (see stowage backup --help)\n"
    "  --report FILE            write the comparison report as JSON (default: none)\n"
    READ_HELP;

static const char extract_usage[] =
    "Usage: stowage extract --repo URL BACKUP --key SECFILE --to DIR\n\n"
    "Writes the backup's archive members as plain files in DIR, for use with the\n"
    "standard tools: backup-info.json, globals.sql and the dump in segments\n"
    "(database.dump.*), which joined in order form a pg_restore archive.\n\n"
    "Options:\n"
    "  --to DIR                 directory to write: a new directory (created) or an\n"
    "                           empty one; a directory that contains files is a usage\n"
    "                           error (exit 2) and gets nothing written into it\n" READ_HELP;

struct read_cli {
    struct cli_common common;
    struct restore_options restore;
    const char *name;
    const char *at_text;
    struct catalog_time at;       /* parsed at_text */
    const char *scratch;
    const char *against;
    const char *to;
    int all;
    int db_iam_auth;
    const char *command;
    struct signature_trust trust;
};

static int parse_jobs(struct read_cli *cli, const char *value, stow_error *err)
{
    long jobs;

    if (cli_parse_int("--jobs", value, 1, RESTORE_JOBS_MAX, &jobs, err) != 0)
        return -1;
    cli->restore.jobs = (int)jobs;
    return 0;
}

static int parse_read_option(void *context, int code, const char *value, stow_error *err)
{
    struct read_cli *cli = context;

    switch (code) {
    case OPT_KEY: cli->restore.secret_key_path = value; break;
    case OPT_PASSPHRASE_FILE: cli->restore.passphrase_file = value; break;
    case OPT_NAME: cli->name = value; break;
    case OPT_AT: cli->at_text = value; break;
    case OPT_TARGET: cli->restore.target_conninfo = value; break;
    case OPT_SCRATCH: cli->scratch = value; break;
    case OPT_VERIFY: cli->restore.verify = 1; break;
    case OPT_CLEAN: cli->restore.clean = 1; break;
    case OPT_CREATE: cli->restore.create = 1; break;
    case OPT_WITH_GLOBALS: cli->restore.with_globals = 1; break;
    case OPT_NO_OWNER: cli->restore.no_owner = 1; break;
    case OPT_KEEP: cli->restore.keep = 1; break;
    case OPT_REPORT: cli->restore.report_path = value; break;
    case OPT_ALL: cli->all = 1; break;
    case OPT_AGAINST: cli->against = value; break;
    case OPT_TO: cli->to = value; break;
    case OPT_TRUSTED_KEY: return signature_trust_add_file(&cli->trust, value, err);
    case OPT_JOBS: return parse_jobs(cli, value, err);
    case OPT_SPOOL_DIR: cli->restore.spool_directory = value; break;
    case OPT_DB_IAM_AUTH: cli->db_iam_auth = 1; break;
    default: return cli_usage_error(err, cli->command, "unknown option");
    }
    return 0;
}

/* Options of restore, verify and extract. */
#define READ_LONG_OPTIONS \
    CLI_REPO_LONG_OPTIONS, \
    {"key", required_argument, NULL, OPT_KEY}, \
    {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE}, \
    {"name", required_argument, NULL, OPT_NAME}, \
    {"at", required_argument, NULL, OPT_AT}, \
    {"target", required_argument, NULL, OPT_TARGET}, \
    {"scratch", required_argument, NULL, OPT_SCRATCH}, \
    {"verify", no_argument, NULL, OPT_VERIFY}, \
    {"clean", no_argument, NULL, OPT_CLEAN}, \
    {"with-globals", no_argument, NULL, OPT_WITH_GLOBALS}, \
    {"no-owner", no_argument, NULL, OPT_NO_OWNER}, \
    {"keep", no_argument, NULL, OPT_KEEP}, \
    {"report", required_argument, NULL, OPT_REPORT}, \
    {"all", no_argument, NULL, OPT_ALL}, \
    {"against", required_argument, NULL, OPT_AGAINST}, \
    {"to", required_argument, NULL, OPT_TO}, \
    {"trusted-key", required_argument, NULL, OPT_TRUSTED_KEY}, \
    {"db-iam-auth", no_argument, NULL, OPT_DB_IAM_AUTH}

static const struct option read_options[] = {
    READ_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* restore's options: those of verify and extract, and parallel restore. */
static const struct option restore_options[] = {
    READ_LONG_OPTIONS,
    {"jobs", required_argument, NULL, OPT_JOBS},
    {"create", no_argument, NULL, OPT_CREATE},
    {"spool-dir", required_argument, NULL, OPT_SPOOL_DIR},
    {NULL, 0, NULL, 0},
};

/* Applies --db-iam-auth to the database that restore --target or verify
 * --against connects to. */
static int use_db_iam_auth(const struct read_cli *cli, stow_error *err)
{
    const char *conninfo = cli->restore.target_conninfo != NULL ? cli->restore.target_conninfo
                                                                : cli->against;

    if (!cli->db_iam_auth)
        return 0;
    if (conninfo == NULL)
        return cli_usage_error(err, cli->command, "--db-iam-auth applies to restore --target "
                                                  "and verify --against only");
    return cli_use_db_iam_auth(conninfo, err);
}

/* Parses arguments and resolves BACKUP; returns 1 after printing help. */
static int parse_read_command(struct read_cli *cli, int argc, char **argv, const char **spec,
                              stow_error *err)
{
    int spec_count = 0;

    cli_common_init(&cli->common);
    cli->restore.secret_key_path = getenv("STOWAGE_KEY");
    if (cli_parse(argc, argv, cli->command,
                  strcmp(cli->command, "restore") == 0 ? restore_options : read_options,
                  &cli->common, parse_read_option, cli, spec, 1, &spec_count, err) != 0)
        return -1;
    if (cli->common.help)
        return 1;
    if (cli->trust.count == 0 &&
        signature_trust_add_list(&cli->trust, getenv("STOWAGE_TRUSTED_KEYS"), err) != 0)
        return -1;
    if (cli->at_text != NULL && catalog_parse_time("--at", cli->at_text, &cli->at, err) != 0)
        return -1;
    if (spec_count == 0 && cli->at_text == NULL && !cli->all)
        return cli_usage_error(err, cli->command, "name the backup: an id, latest, or --at TIME");
    if (spec_count > 0 && cli->at_text != NULL)
        return cli_usage_error(err, cli->command, "give BACKUP or --at TIME, not both");
    return use_db_iam_auth(cli, err);
}

/* Checks the options of restore --create. Its new database has a
 * temporary name until complete, so it runs over RESTORE_CREATE_JOBS
 * connections unless --jobs is given. */
static int check_create(struct read_cli *cli, stow_error *err)
{
    if (!cli->restore.create)
        return 0;
    if (cli->restore.target_conninfo == NULL)
        return cli_usage_error(err, "restore", "--create applies to --target CONNINFO only");
    if (cli->restore.clean)
        return cli_usage_error(err, "restore", "--create makes a new database, which has "
                                               "nothing for --clean to drop: give one of them");
    if (cli->restore.jobs == 0)
        cli->restore.jobs = RESTORE_CREATE_JOBS;
    return 0;
}

static int check_restore_target(struct read_cli *cli, stow_error *err)
{
    if (cli->scratch != NULL && strcmp(cli->scratch, "local") != 0)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid --scratch \"%s\": only \"local\" is "
                                               "supported here", cli->scratch);
    if ((cli->scratch == NULL) == (cli->restore.target_conninfo == NULL))
        return cli_usage_error(err, "restore", "give exactly one of --target CONNINFO and "
                                               "--scratch local");
    if (cli->restore.keep && cli->scratch == NULL)
        return cli_usage_error(err, "restore", "--keep applies to --scratch local only");
    if (check_create(cli, err) != 0)
        return -1;
    if (cli->restore.spool_directory != NULL && cli->restore.jobs <= 1)
        return cli_usage_error(err, "restore", "--spool-dir applies to --jobs N with N > 1 "
                                               "only");
    return 0;
}

/* Finds the backup that spec or at names and checks its manifest's
 * signature against the trusted keys. */
static int find_trusted_backup(storage *store, const struct read_cli *cli, const char *spec,
                               struct catalog *catalog, const struct catalog_entry **entry,
                               stow_error *err)
{
    const struct catalog_time *at = cli->at_text != NULL ? &cli->at : NULL;

    if (catalog_find(store, spec, at, cli->name, catalog, entry, err) != 0)
        return -1;
    return signature_check_manifest(&(*entry)->manifest, (*entry)->manifest_key, &cli->trust,
                                    err);
}

/* Returns 1 when the arguments ask for an RDS scratch restore. */
static int wants_rds_restore(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scratch=rds") == 0 ||
            (strcmp(argv[i], "--scratch") == 0 && i + 1 < argc && strcmp(argv[i + 1], "rds") == 0) ||
            strncmp(argv[i], "--from-snapshot", 15) == 0 || strncmp(argv[i], "--instance", 10) == 0)
            return 1;
    }
    return 0;
}

int cmd_restore(int argc, char **argv)
{
    struct read_cli cli;
    struct catalog catalog = {0};
    const struct catalog_entry *entry = NULL;
    const char *spec[1] = {NULL};
    stow_error err = {0};
    storage *store = NULL;
    int rc;

    if (wants_rds_restore(argc, argv))
        return cmd_restore_rds(argc, argv);
    memset(&cli, 0, sizeof cli);
    cli.command = "restore";
    rc = parse_read_command(&cli, argc, argv, spec, &err);
    if (rc == 1) {
        fputs(restore_usage, stdout);
        return STOW_EXIT_OK;
    }
    if (rc != 0 || check_restore_target(&cli, &err) != 0 ||
        cli_check_output_path("--report", cli.restore.report_path, &err) != 0)
        return cli_finish(&err);
    cli.restore.scratch_local = cli.scratch != NULL;

    if (cli_open_repository(&cli.common, &store, &err) == 0 &&
        find_trusted_backup(store, &cli, spec[0], &catalog, &entry, &err) == 0)
        restore_run(store, entry, &cli.restore, &err);
    catalog_free(&catalog);
    storage_free(store);
    return cli_finish(&err);
}

/* Outcomes of verify --all. Only verified and failed are findings about a
 * backup. The other backups were not checked, and nothing was recorded. */
struct verify_all_tally {
    size_t total;
    size_t verified;
    size_t failed;          /* a check of the data failed (STOW_EXIT_VERIFY) */
    size_t not_recipient;   /* encrypted to recipients other than the key */
    size_t unchecked;       /* another error, such as an unreachable repository */
    size_t invalid;         /* manifests that failed validation */
    size_t newer;           /* manifests that a newer stowage wrote */
    stow_error first_unchecked;
};

/* Reads the key id of the secret key file, so that backups not encrypted
 * to it are skipped without asking for its passphrase once per backup.
 * Leaves key_id empty when no backup is encrypted or no key was given. */
static int read_key_id(const struct read_cli *cli, const struct catalog *catalog,
                       char key_id[KEYS_ID_CHARS + 1], stow_error *err)
{
    struct keys_passphrase_source source = {cli->restore.passphrase_file, "--passphrase-file"};
    struct keys_secret *secret = NULL;
    int encrypted = 0;

    key_id[0] = '\0';
    for (size_t i = 0; i < catalog->count; i++)
        encrypted |= catalog->entries[i].manifest.encrypted;
    if (!encrypted || cli->restore.secret_key_path == NULL)
        return 0;
    if (keys_secret_load(cli->restore.secret_key_path, keys_passphrase_from_source, &source,
                         &secret, err) != 0)
        return -1;
    snprintf(key_id, KEYS_ID_CHARS + 1, "%s", keys_secret_public(secret)->id);
    keys_secret_free(secret);
    return 0;
}

static int has_recipient(const struct manifest *manifest, const char *key_id)
{
    for (size_t i = 0; i < manifest->recipient_count; i++) {
        if (strcmp(manifest->recipients[i].key_id, key_id) == 0)
            return 1;
    }
    return 0;
}

/* Verifies one backup of verify --all and counts its outcome in tally. */
static void verify_listed_backup(storage *store, const struct read_cli *cli,
                                 const struct catalog_entry *entry, const char *key_id,
                                 struct verify_all_tally *tally)
{
    stow_error backup_err = {0};

    /* The signature first: a manifest whose recipients were changed must
     * fail as tampered, not pass as encrypted to another key. */
    if (signature_check_manifest(&entry->manifest, entry->manifest_key, &cli->trust,
                                 &backup_err) == 0) {
        if (entry->manifest.encrypted && key_id[0] != '\0' &&
            !has_recipient(&entry->manifest, key_id)) {
            stow_log_warn("backup %s not verified: it is not encrypted to key id %s of %s",
                          entry->manifest.id, key_id, cli->restore.secret_key_path);
            tally->not_recipient++;
            return;
        }
        if (restore_verify_storage(store, entry, cli->restore.secret_key_path,
                                   cli->restore.passphrase_file, &backup_err) == 0) {
            tally->verified++;
            return;
        }
    }
    stow_log_error(&backup_err);
    if (backup_err.exit_code == STOW_EXIT_VERIFY) {
        tally->failed++;
        return;
    }
    if (!stow_error_is_set(&tally->first_unchecked))
        tally->first_unchecked = backup_err;
    tally->unchecked++;
}

static const char *plural(size_t count, const char *one, const char *many)
{
    return count == 1 ? one : many;
}

static void print_verify_all_summary(const struct verify_all_tally *tally, const char *key_path)
{
    printf("%zu of %zu %s verified", tally->verified, tally->total,
           plural(tally->total, "backup", "backups"));
    if (tally->failed > 0)
        printf("; %zu failed verification", tally->failed);
    if (tally->not_recipient > 0)
        printf("; %zu not verified because the key %s is not a recipient (nothing recorded)",
               tally->not_recipient, key_path);
    if (tally->unchecked > 0)
        printf("; %zu could not be checked (see the log)", tally->unchecked);
    if (tally->invalid > 0)
        printf("; %zu %s invalid (see the log)", tally->invalid,
               plural(tally->invalid, "manifest was", "manifests were"));
    if (tally->newer > 0)
        printf("; %zu %s written by a newer stowage", tally->newer,
               plural(tally->newer, "manifest was", "manifests were"));
    printf("\n");
}

/* Records the error of verify --all: a failed check of the data comes
 * first, then errors that stopped a check, then the key and the format. */
static int fail_verify_all(const struct verify_all_tally *tally, const char *key_path,
                           stow_error *err)
{
    if (tally->failed > 0 || tally->invalid > 0)
        return stow_fail(err, STOW_EXIT_VERIFY, "%zu %s failed verification and %zu %s invalid",
                         tally->failed, plural(tally->failed, "backup", "backups"),
                         tally->invalid, plural(tally->invalid, "manifest is", "manifests are"));
    if (tally->unchecked > 0) {
        stow_fail(err, tally->first_unchecked.exit_code, "%zu backups could not be checked. "
                  "The first error: %s", tally->unchecked, tally->first_unchecked.message);
        stow_error_hint(err, "%s", tally->first_unchecked.hint);
        return -1;
    }
    if (tally->not_recipient > 0) {
        if (tally->not_recipient == tally->total && tally->total == 1)
            stow_fail(err, STOW_EXIT_KEY, "the backup could not be verified: the key %s is not "
                      "one of its recipients", key_path);
        else if (tally->not_recipient == tally->total)
            stow_fail(err, STOW_EXIT_KEY, "none of the %zu backups could be verified: the key %s "
                      "is not a recipient of any of them", tally->total, key_path);
        else
            stow_fail(err, STOW_EXIT_KEY, "%zu of %zu backups could not be verified: the key %s "
                      "is not a recipient of them", tally->not_recipient, tally->total, key_path);
        stow_error_hint(err, "pass the secret key of a recipient with --key (stowage show "
                             "BACKUP lists the recipients' key ids)");
        return -1;
    }
    if (tally->newer > 0) {
        stow_fail(err, STOW_EXIT_USAGE, "%zu manifest%s written by a newer stowage and not "
                  "verified", tally->newer, tally->newer == 1 ? " was" : "s were");
        stow_error_hint(err, "upgrade stowage to verify them");
        return -1;
    }
    return 0;
}

static int verify_all(storage *store, const struct read_cli *cli, stow_error *err)
{
    struct catalog catalog = {0};
    struct verify_all_tally tally = {0};
    char key_id[KEYS_ID_CHARS + 1];
    int rc;

    if (catalog_load(store, cli->name, &catalog, err) != 0)
        return -1;
    if (read_key_id(cli, &catalog, key_id, err) != 0) {
        catalog_free(&catalog);
        return -1;
    }

    tally.total = catalog.count;
    for (size_t i = 0; i < catalog.broken; i++) {
        if (catalog.broken_versions[i] != 0)
            tally.newer++;
        else
            tally.invalid++;
    }
    for (size_t i = 0; i < catalog.count; i++)
        verify_listed_backup(store, cli, &catalog.entries[i], key_id, &tally);

    print_verify_all_summary(&tally, cli->restore.secret_key_path);
    rc = fail_verify_all(&tally, cli->restore.secret_key_path, err);
    catalog_free(&catalog);
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    struct read_cli cli;
    struct catalog catalog = {0};
    const struct catalog_entry *entry = NULL;
    const char *spec[1] = {NULL};
    stow_error err = {0};
    storage *store = NULL;
    int rc;

    memset(&cli, 0, sizeof cli);
    cli.command = "verify";
    rc = parse_read_command(&cli, argc, argv, spec, &err);
    if (rc == 1) {
        fputs(verify_usage, stdout);
        return STOW_EXIT_OK;
    }
    if (rc != 0)
        return cli_finish(&err);
    if (cli.all && (spec[0] != NULL || cli.against != NULL)) {
        cli_usage_error(&err, "verify", "--all verifies every backup: give no BACKUP and no "
                                        "--against");
        return cli_finish(&err);
    }

    if (cli_open_repository(&cli.common, &store, &err) != 0) {
        /* nothing to do */
    } else if (cli.all) {
        verify_all(store, &cli, &err);
    } else if (find_trusted_backup(store, &cli, spec[0], &catalog, &entry, &err) == 0) {
        if (cli.against != NULL)
            restore_verify_against(entry, cli.against, cli.restore.report_path, &err);
        else
            restore_verify_storage(store, entry, cli.restore.secret_key_path,
                                   cli.restore.passphrase_file, &err);
    }
    catalog_free(&catalog);
    storage_free(store);
    return cli_finish(&err);
}

int cmd_extract(int argc, char **argv)
{
    struct read_cli cli;
    struct catalog catalog = {0};
    const struct catalog_entry *entry = NULL;
    const char *spec[1] = {NULL};
    stow_error err = {0};
    storage *store = NULL;
    int rc;

    memset(&cli, 0, sizeof cli);
    cli.command = "extract";
    rc = parse_read_command(&cli, argc, argv, spec, &err);
    if (rc == 1) {
        fputs(extract_usage, stdout);
        return STOW_EXIT_OK;
    }
    if (rc == 0 && cli.to == NULL)
        cli_usage_error(&err, "extract", "--to DIR is required");
    if (stow_error_is_set(&err))
        return cli_finish(&err);

    if (cli_open_repository(&cli.common, &store, &err) == 0 &&
        find_trusted_backup(store, &cli, spec[0], &catalog, &entry, &err) == 0)
        restore_extract(store, entry, cli.restore.secret_key_path, cli.restore.passphrase_file,
                        cli.to, &err);
    catalog_free(&catalog);
    storage_free(store);
    return cli_finish(&err);
}
