/* stowage keygen: create a recipient key pair. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "keys.h"

enum { OPT_OUT = CLI_OPT_FIRST_COMMAND_OPTION, OPT_PASSPHRASE, OPT_PASSPHRASE_FILE };

static const char usage[] =
    "Usage: stowage keygen --out PATH [--passphrase | --passphrase-file FILE]\n\n"
    "Creates an X25519 key pair: PATH holds the secret key (mode 0600) and\n"
    "PATH.pub the public key. Backups are encrypted to public keys; only the\n"
    "secret key can restore them, so keep it away from the backup host.\n"
    "Prints the public key file and its key id.\n\n"
    "Options:\n"
    "  --out PATH              where to write the secret key (must not exist)\n"
    "  --passphrase            protect the secret key with a passphrase typed on\n"
    "                          the terminal (Argon2id)\n"
    "  --passphrase-file FILE  protect it with the first line of FILE\n";

struct keygen_cli {
    struct cli_common common;
    const char *out;
    const char *passphrase_file;
    int ask_passphrase;
};

static int parse_keygen_option(void *context, int code, const char *value, stow_error *err)
{
    struct keygen_cli *cli = context;

    if (code == OPT_OUT)
        cli->out = value;
    else if (code == OPT_PASSPHRASE)
        cli->ask_passphrase = 1;
    else if (code == OPT_PASSPHRASE_FILE)
        cli->passphrase_file = value;
    else
        return cli_usage_error(err, "keygen", "unknown option");
    return 0;
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, OPT_OUT},
        {"passphrase", no_argument, NULL, OPT_PASSPHRASE},
        {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct keygen_cli cli;
    struct keys_public public_key;
    char *passphrase = NULL;
    stow_error err = {0};

    memset(&cli, 0, sizeof cli);
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

    if ((cli.ask_passphrase || cli.passphrase_file != NULL) &&
        keys_passphrase_read(cli.passphrase_file, "Passphrase for the new secret key: ",
                             &passphrase, &err) != 0)
        return cli_finish(&err);

    if (keys_generate(cli.out, passphrase, &public_key, &err) == 0)
        printf("secret key:  %s (keep it safe; needed to restore)\n"
               "public key:  %s.pub\nkey id:      %s\n",
               cli.out, cli.out, public_key.id);
    keys_passphrase_free(passphrase);
    return cli_finish(&err);
}
