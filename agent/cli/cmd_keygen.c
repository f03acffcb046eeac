/* stowage keygen: create a recipient key pair and a signing key pair. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "keys.h"

/* Passphrases shorter than this get a warning. */
#define KEYGEN_SHORT_PASSPHRASE 12

enum { OPT_OUT = CLI_OPT_FIRST_COMMAND_OPTION, OPT_PASSPHRASE, OPT_PASSPHRASE_FILE, OPT_KIND };

#define SIGNING_SUFFIX ".sign"

static const char usage[] =
    "Usage: stowage keygen --out PATH [--kind both|recipient|signing]\n"
    "                      [--passphrase | --passphrase-file FILE]\n\n"
    "Creates an X25519 recipient key pair: PATH holds the secret key (mode 0600)\n"
    "and PATH.pub the public key. Backups are encrypted to public keys; only the\n"
    "secret key can restore them, so keep it away from the backup host.\n"
    "Also creates an Ed25519 signing key pair: PATH.sign (secret, mode 0600) signs\n"
    "manifests on the backup host (backup --signing-key), and PATH.sign.pub is\n"
    "the trusted key that restore, verify, extract and drill check them with\n"
    "(--trusted-key). Prints the files and their key ids.\n\n"
    "Options:\n"
    "  --out PATH              where to write the secret key (must not exist)\n"
    "  --kind KIND             both (default), recipient (PATH, PATH.pub) or\n"
    "                          signing (PATH.sign, PATH.sign.pub)\n"
    "  --passphrase            protect the secret keys with a passphrase typed on\n"
    "                          the terminal (Argon2id)\n"
    "  --passphrase-file FILE  protect them with the first line of FILE\n";

struct keygen_cli {
    struct cli_common common;
    const char *out;
    const char *passphrase_file;
    int ask_passphrase;
    int recipient;
    int signing;
};

static int parse_kind(struct keygen_cli *cli, const char *value, stow_error *err)
{
    cli->recipient = strcmp(value, "both") == 0 || strcmp(value, "recipient") == 0;
    cli->signing = strcmp(value, "both") == 0 || strcmp(value, "signing") == 0;
    if (!cli->recipient && !cli->signing)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "invalid --kind \"%s\": use both, recipient or signing", value);
    return 0;
}

static int parse_keygen_option(void *context, int code, const char *value, stow_error *err)
{
    struct keygen_cli *cli = context;

    if (code == OPT_OUT)
        cli->out = value;
    else if (code == OPT_PASSPHRASE)
        cli->ask_passphrase = 1;
    else if (code == OPT_PASSPHRASE_FILE)
        cli->passphrase_file = value;
    else if (code == OPT_KIND)
        return parse_kind(cli, value, err);
    else
        return cli_usage_error(err, "keygen", "unknown option");
    return 0;
}

/* Removes a key pair that this run wrote: path and path.pub (for a
 * signing pair X.sign and X.sign.pub). A retry then finds no half-written
 * set of files. */
static void remove_key_pair(const char *path)
{
    char public_path[4200 + 8];

    snprintf(public_path, sizeof public_path, "%s.pub", path);
    unlink(path);
    unlink(public_path);
}

/* Fails with STOW_EXIT_USAGE when the directory that --out names does not
 * exist or is not a directory. */
static int check_out_directory(const char *out, stow_error *err)
{
    char *copy = strdup(out);
    const char *directory;
    struct stat st;
    int found;
    int rc = 0;

    if (copy == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    directory = dirname(copy);
    if (stat(directory, &st) == 0)
        found = 1;
    else if (errno == ENOENT)
        found = 0;
    else
        found = -1; /* EACCES and the like: creating the file reports them */
    if (found == 0 || (found == 1 && !S_ISDIR(st.st_mode))) {
        rc = stow_fail(err, STOW_EXIT_USAGE, "the directory %s of --out %s %s", directory, out,
                       found ? "is not a directory" : "does not exist");
        stow_error_hint(err, "create it with mkdir -p %s, or give --out a path in an existing "
                             "directory",
                        directory);
    }
    free(copy);
    return rc;
}

static int generate(const struct keygen_cli *cli, const char *passphrase, stow_error *err)
{
    struct keys_public recipient;
    struct keys_signing_public signing;
    char signing_path[4200];

    if (snprintf(signing_path, sizeof signing_path, "%s%s", cli->out, SIGNING_SUFFIX) >=
        (int)sizeof signing_path)
        return stow_fail(err, STOW_EXIT_USAGE, "key file path is too long: %s", cli->out);

    /* Both files are checked before either is written, the one named by
     * --out first. */
    if (cli->recipient && access(cli->out, F_OK) == 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "secret key file %s already exists; it is never overwritten", cli->out);
    if (cli->recipient && cli->signing && access(signing_path, F_OK) == 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "signing key file %s already exists; it is never overwritten",
                         signing_path);

    if (cli->recipient && keys_generate(cli->out, passphrase, &recipient, err) != 0)
        return -1;
    if (cli->signing && keys_signing_generate(signing_path, passphrase, &signing, err) != 0) {
        if (cli->recipient)
            remove_key_pair(cli->out);
        return -1;
    }

    /* A signal during the key derivation, which takes most of a second
     * with a passphrase, takes the new keys back. */
    if (stow_interrupted() != 0) {
        if (cli->recipient)
            remove_key_pair(cli->out);
        if (cli->signing)
            remove_key_pair(signing_path);
        return stow_fail_interrupted(err, "the key generation; no key was written");
    }

    if (cli->recipient)
        printf("secret key:          %s (keep it safe; needed to restore)\n"
               "public key:          %s.pub\nkey id:              %s\n",
               cli->out, cli->out, recipient.id);
    if (cli->signing)
        printf("signing secret key:  %s (for the backup host: backup --signing-key)\n"
               "signing public key:  %s.pub (for restores: --trusted-key)\n"
               "signing key id:      %s\n",
               signing_path, signing_path, signing.id);
    return 0;
}

/* Reads the passphrase of new keys from file_path, or twice from the
 * terminal: a typo would otherwise lock the keys, and every backup sealed
 * for them, behind an unknown passphrase. */
static int read_new_passphrase(const char *file_path, char **passphrase, stow_error *err)
{
    char *again = NULL;
    int same;

    if (keys_passphrase_read(file_path, "Passphrase for the new secret keys: ", passphrase,
                             err) != 0)
        return -1;
    if (file_path == NULL) {
        if (keys_passphrase_read(NULL, "The same passphrase again: ", &again, err) != 0) {
            keys_passphrase_free(*passphrase);
            *passphrase = NULL;
            return -1;
        }
        same = strlen(*passphrase) == strlen(again) &&
               sodium_memcmp(*passphrase, again, strlen(again)) == 0;
        keys_passphrase_free(again);
        if (!same) {
            keys_passphrase_free(*passphrase);
            *passphrase = NULL;
            stow_fail(err, STOW_EXIT_USAGE, "the two passphrases differ; no key was written");
            stow_error_hint(err, "run stowage keygen again and type the same passphrase twice");
            return -1;
        }
    }
    if (strlen(*passphrase) < KEYGEN_SHORT_PASSPHRASE)
        stow_log_warn("the passphrase has %zu characters: a guessed passphrase opens the key, "
                      "so use %d or more", strlen(*passphrase), KEYGEN_SHORT_PASSPHRASE);
    return 0;
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, OPT_OUT},
        {"kind", required_argument, NULL, OPT_KIND},
        {"passphrase", no_argument, NULL, OPT_PASSPHRASE},
        {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct keygen_cli cli;
    char *passphrase = NULL;
    stow_error err = {0};

    memset(&cli, 0, sizeof cli);
    cli.recipient = 1;
    cli.signing = 1;
    cli_common_init(&cli.common);
    if (cli_parse(argc, argv, "keygen", options, &cli.common, parse_keygen_option, &cli, NULL,
                  0, NULL, &err) != 0)
        return cli_finish(&err);
    if (cli.common.help) {
        fputs(usage, stdout);
        return STOW_EXIT_OK;
    }
    if (cli.out == NULL) {
        cli_usage_error(&err, "keygen", "--out PATH is required");
        return cli_finish(&err);
    }

    if (check_out_directory(cli.out, &err) != 0)
        return cli_finish(&err);
    if ((cli.ask_passphrase || cli.passphrase_file != NULL) &&
        read_new_passphrase(cli.passphrase_file, &passphrase, &err) != 0)
        return cli_finish(&err);

    generate(&cli, passphrase, &err);
    keys_passphrase_free(passphrase);
    return cli_finish(&err);
}
