/* stowage rekey: change the recipients of backups and sign their manifests
 * again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/rekey.h"
#include "cli/cli.h"
#include "common/duration.h"

enum {
    OPT_KEY = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_PASSPHRASE_FILE,
    OPT_ADD_RECIPIENT,
    OPT_REMOVE_RECIPIENT,
    OPT_SIGNING_KEY,
    OPT_SIGNING_PASSPHRASE_FILE,
    OPT_TRUSTED_KEY,
    OPT_ACCEPT_UNSIGNED,
    OPT_ALL,
    OPT_NAME,
    OPT_DRY_RUN,
    OPT_LOCK_STALE_AFTER
};

static const char usage[] =
    "Usage: stowage rekey --repo URL BACKUP|--all --key SECFILE --signing-key FILE\n"
    "                     [--add-recipient PUBFILE]... [--remove-recipient KEYID]...\n"
    "                     [--name NAME] [--dry-run]\n\n"
    "Changes the recipients of backups without reading or rewriting their data:\n"
    "opens each backup's data key with SECFILE (a current recipient), seals it for\n"
    "the added recipients, drops the removed ones, signs the manifest with the\n"
    "signing key and replaces it. Every backup is checked before any manifest is\n"
    "replaced; one that cannot be rekeyed stops the run with nothing changed.\n"
    "A removed recipient's secret key no longer opens the backup, but copies of\n"
    "the old manifest (replicas, object versions) still hold its wrapped key.\n\n"
    "Options:\n"
    "  --all                      every backup (of --name, when given)\n"
    "  --key SECFILE              secret key of a current recipient (env STOWAGE_KEY)\n"
    "  --passphrase-file FILE     passphrase of a protected --key (else asked on the\n"
    "                             terminal)\n"
    "  --add-recipient PUBFILE    public key file of a recipient to add; repeatable\n"
    "  --remove-recipient KEYID   key id of a recipient to remove; repeatable\n"
    "  --signing-key FILE         signing secret key (PATH.sign) that signs the new\n"
    "                             manifests (env STOWAGE_SIGNING_KEY)\n"
    "  --signing-passphrase-file FILE\n"
    "                             passphrase of a protected signing key\n"
    "  --trusted-key PUBFILE      signing public key that may have signed the current\n"
    "                             manifests, besides the signing key's own; repeatable\n"
    "                             (env STOWAGE_TRUSTED_KEYS, colon-separated)\n"
    "  --accept-unsigned          sign manifests that carry no signature as they are\n"
    "                             (check them first with stowage verify)\n"
    "  --name NAME                catalog name, when the repository holds several\n"
    "                             (default: the only one)\n"
    "  --dry-run                  print what would change, and change nothing\n"
    "  --lock-stale-after DUR     take over a lock of the name not refreshed for DUR\n"
    "                             (default 10m; s, m, h, d or w)\n\n" CLI_REPO_HELP;

struct rekey_cli {
    struct cli_common common;
    struct rekey_options options;
    const char *key_path;
    const char *passphrase_file;
    const char *signing_key_path;
    const char *signing_passphrase_file;
    const char *add_files[CLI_MAX_REPEATED];
    size_t add_count;
    const char *remove_ids[CLI_MAX_REPEATED];
    size_t remove_count;
    struct signature_trust trust;
};

static int parse_remove(struct rekey_cli *cli, const char *value, stow_error *err)
{
    if (!keys_id_valid(value)) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid key id \"%s\" for --remove-recipient", value);
        stow_error_hint(err, "give the %d lowercase hex digits that stowage show prints after "
                             "\"recipients\"",
                        KEYS_ID_CHARS);
        return -1;
    }
    return cli_add_repeated(cli->remove_ids, &cli->remove_count, "--remove-recipient", value,
                            err);
}

static int parse_rekey_option(void *context, int code, const char *value, stow_error *err)
{
    struct rekey_cli *cli = context;

    switch (code) {
    case OPT_KEY: cli->key_path = value; return 0;
    case OPT_PASSPHRASE_FILE: cli->passphrase_file = value; return 0;
    case OPT_ADD_RECIPIENT:
        return cli_add_repeated(cli->add_files, &cli->add_count, "--add-recipient", value, err);
    case OPT_REMOVE_RECIPIENT: return parse_remove(cli, value, err);
    case OPT_SIGNING_KEY: cli->signing_key_path = value; return 0;
    case OPT_SIGNING_PASSPHRASE_FILE: cli->signing_passphrase_file = value; return 0;
    case OPT_TRUSTED_KEY: return signature_trust_add_file(&cli->trust, value, err);
    case OPT_ACCEPT_UNSIGNED: cli->options.accept_unsigned = 1; return 0;
    case OPT_ALL: cli->options.all = 1; return 0;
    case OPT_NAME: cli->options.name = value; return 0;
    case OPT_DRY_RUN: cli->options.dry_run = 1; return 0;
    case OPT_LOCK_STALE_AFTER:
        return stow_duration_parse("--lock-stale-after", value, &cli->options.lock_stale_after,
                                   err);
    default: return cli_usage_error(err, "rekey", "unknown option");
    }
}

/* Parses the command line. Returns 1 after --help. */
static int parse_arguments(struct rekey_cli *cli, int argc, char **argv, stow_error *err)
{
    static const struct option options[] = {
        CLI_REPO_LONG_OPTIONS,
        {"key", required_argument, NULL, OPT_KEY},
        {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE},
        {"add-recipient", required_argument, NULL, OPT_ADD_RECIPIENT},
        {"remove-recipient", required_argument, NULL, OPT_REMOVE_RECIPIENT},
        {"signing-key", required_argument, NULL, OPT_SIGNING_KEY},
        {"signing-passphrase-file", required_argument, NULL, OPT_SIGNING_PASSPHRASE_FILE},
        {"trusted-key", required_argument, NULL, OPT_TRUSTED_KEY},
        {"accept-unsigned", no_argument, NULL, OPT_ACCEPT_UNSIGNED},
        {"all", no_argument, NULL, OPT_ALL},
        {"name", required_argument, NULL, OPT_NAME},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"lock-stale-after", required_argument, NULL, OPT_LOCK_STALE_AFTER},
        {NULL, 0, NULL, 0},
    };
    const char *spec[1] = {NULL};
    int spec_count = 0;

    cli_common_init(&cli->common);
    cli->key_path = getenv("STOWAGE_KEY");
    cli->signing_key_path = getenv("STOWAGE_SIGNING_KEY");
    if (cli_parse(argc, argv, "rekey", options, &cli->common, parse_rekey_option, cli, spec, 1,
                  &spec_count, err) != 0)
        return -1;
    if (cli->common.help)
        return 1;
    if (cli->trust.count == 0 &&
        signature_trust_add_list(&cli->trust, getenv("STOWAGE_TRUSTED_KEYS"), err) != 0)
        return -1;

    cli->options.spec = spec[0];
    if ((spec_count > 0) == (cli->options.all != 0))
        return cli_usage_error(err, "rekey", "name one backup (an id or latest) or give --all");
    if (cli->key_path == NULL)
        return cli_usage_error(err, "rekey", "--key SECFILE is required (or set STOWAGE_KEY)");
    if (cli->signing_key_path == NULL)
        return cli_usage_error(err, "rekey", "--signing-key FILE is required (or set "
                                             "STOWAGE_SIGNING_KEY)");
    return 0;
}

/* Loads the key files that the options name. */
static int load_keys(struct rekey_cli *cli, struct keys_secret **secret,
                     struct keys_signing_secret **signing_key, struct keys_public *added,
                     stow_error *err)
{
    struct keys_passphrase_source source = {cli->passphrase_file, "--passphrase-file"};
    struct keys_passphrase_source signing_source = {cli->signing_passphrase_file,
                                                    "--signing-passphrase-file"};

    for (size_t i = 0; i < cli->add_count; i++) {
        if (keys_public_load(cli->add_files[i], &added[i], err) != 0)
            return -1;
    }
    if (keys_secret_load(cli->key_path, keys_passphrase_from_source, &source, secret, err) != 0 ||
        keys_signing_secret_load(cli->signing_key_path, keys_passphrase_from_source,
                                 &signing_source, signing_key, err) != 0)
        return -1;

    cli->options.secret = *secret;
    cli->options.signing_key = *signing_key;
    cli->options.add = added;
    cli->options.add_count = cli->add_count;
    cli->options.remove = cli->remove_ids;
    cli->options.remove_count = cli->remove_count;
    cli->options.trust = &cli->trust;
    return 0;
}

int cmd_rekey(int argc, char **argv)
{
    struct rekey_cli cli;
    struct keys_public added[CLI_MAX_REPEATED];
    struct keys_secret *secret = NULL;
    struct keys_signing_secret *signing_key = NULL;
    stow_error err = {0};
    storage *store = NULL;
    int rc;

    memset(&cli, 0, sizeof cli);
    rc = parse_arguments(&cli, argc, argv, &err);
    if (rc == 1) {
        fputs(usage, stdout);
        return STOW_EXIT_OK;
    }

    if (rc == 0 && load_keys(&cli, &secret, &signing_key, added, &err) == 0 &&
        cli_open_repository(&cli.common, &store, &err) == 0 && storage_check(store, STORAGE_ACCESS_WRITE, &err) == 0)
        rekey_run(store, &cli.options, &err);

    keys_secret_free(secret);
    keys_signing_secret_free(signing_key);
    storage_free(store);
    return cli_finish(&err);
}
