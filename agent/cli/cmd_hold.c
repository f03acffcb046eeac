/* stowage hold and stowage release: keep a backup from expiring, or stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "catalog/hold.h"
#include "cli/cli.h"
#include "common/log.h"

enum { OPT_NAME = CLI_OPT_FIRST_COMMAND_OPTION, OPT_REASON };

static const char hold_usage[] =
    "Usage: stowage hold --repo URL BACKUP --reason TEXT [--name NAME]\n\n"
    "Places a hold on a backup: stowage expire keeps a held backup whatever the\n"
    "policy, until stowage release removes the hold. BACKUP is a backup id or\n"
    "\"latest\". The hold records the reason, the time, this host and the user;\n"
    "holding a held backup replaces its hold.\n\n"
    "Options:\n"
    "  --reason TEXT   why the backup must be kept (required, up to 1024 bytes)\n"
    "  --name NAME     catalog name, needed with \"latest\" when the repository\n"
    "                  holds several\n\n" CLI_REPO_HELP;

static const char release_usage[] =
    "Usage: stowage release --repo URL BACKUP [--name NAME]\n\n"
    "Removes the hold of a backup, so that retention may expire it again.\n"
    "Releasing a backup without a hold succeeds and changes nothing.\n\n"
    "Options:\n"
    "  --name NAME     catalog name, needed with \"latest\" when the repository\n"
    "                  holds several\n\n" CLI_REPO_HELP;

struct hold_cli {
    struct cli_common common;
    const char *command;  /* "hold" or "release", for messages */
    const char *name;
    const char *reason;
};

static const struct option hold_options[] = {
    CLI_REPO_LONG_OPTIONS,
    {"name", required_argument, NULL, OPT_NAME},
    {"reason", required_argument, NULL, OPT_REASON},
    {NULL, 0, NULL, 0},
};

static int parse_hold_option(void *context, int code, const char *value, stow_error *err)
{
    struct hold_cli *cli = context;

    if (code == OPT_NAME)
        cli->name = value;
    else if (code == OPT_REASON)
        cli->reason = value;
    else
        return cli_usage_error(err, cli->command, "unknown option");
    return 0;
}

/* Parses argv for command; returns 1 after printing help, 0 to go on, -1
 * on a usage error. hold requires --reason and release rejects it. */
static int parse_hold_cli(struct hold_cli *cli, const char *command, const char *usage,
                          int argc, char **argv, const char **spec, stow_error *err)
{
    int spec_count = 0;

    memset(cli, 0, sizeof *cli);
    cli_common_init(&cli->common);
    cli->command = command;
    if (cli_parse(argc, argv, command, hold_options, &cli->common, parse_hold_option, cli, spec,
                  1, &spec_count, err) != 0)
        return -1;
    if (cli->name != NULL && catalog_check_name(cli->name, err) != 0)
        return -1;
    if (cli->common.help) {
        fputs(usage, stdout);
        return 1;
    }
    if (spec_count == 0)
        return cli_usage_error(err, command, "name the backup: an id or latest");
    if (strcmp(command, "hold") == 0 && cli->reason == NULL)
        return cli_usage_error(err, command,
                               "--reason is required: say why the backup must be kept");
    if (strcmp(command, "release") == 0 && cli->reason != NULL)
        return cli_usage_error(err, command, "--reason belongs to stowage hold");
    return 0;
}

/* Places or releases the hold on entry and prints what changed. */
typedef int (*hold_action)(storage *store, const struct catalog_entry *entry,
                           const struct hold_cli *cli, stow_error *err);

/* Parses argv, finds the backup it names and runs action on it. Returns
 * the exit code. */
static int run_hold_command(const char *command, const char *usage, hold_action action,
                            int argc, char **argv)
{
    struct hold_cli cli;
    struct catalog catalog = {0};
    const struct catalog_entry *entry = NULL;
    const char *spec = NULL;
    stow_error err = {0};
    storage *store = NULL;
    int rc = parse_hold_cli(&cli, command, usage, argc, argv, &spec, &err);

    if (rc != 0)
        return rc > 0 ? STOW_EXIT_OK : cli_finish(&err);

    if (cli_open_repository(&cli.common, &store, &err) == 0 &&
        catalog_find(store, spec, NULL, cli.name, &catalog, &entry, &err) == 0)
        action(store, entry, &cli, &err);
    catalog_free(&catalog);
    storage_free(store);
    return cli_finish(&err);
}

static int place_hold(storage *store, const struct catalog_entry *entry,
                      const struct hold_cli *cli, stow_error *err)
{
    if (hold_place(store, entry, cli->reason, err) != 0)
        return -1;
    printf("backup %s of %s is held: %s\n", entry->manifest.id, entry->manifest.name,
           cli->reason);
    return 0;
}

static int release_hold(storage *store, const struct catalog_entry *entry,
                        const struct hold_cli *cli, stow_error *err)
{
    if (!entry->held) {
        printf("backup %s of %s has no hold; nothing to release\n", entry->manifest.id,
               entry->manifest.name);
        return 0;
    }
    if (hold_release(store, entry, err) != 0)
        return -1;
    printf("released the hold on backup %s of %s (reason was: %s)\n", entry->manifest.id,
           entry->manifest.name, entry->hold_reason != NULL ? entry->hold_reason : "unreadable");
    return 0;
}

int cmd_hold(int argc, char **argv)
{
    return run_hold_command("hold", hold_usage, place_hold, argc, argv);
}

int cmd_release(int argc, char **argv)
{
    return run_hold_command("release", release_usage, release_hold, argc, argv);
}
