/* stowage config show: the effective settings of each database, with the
 * layer each one comes from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "config/config.h"

enum {
    OPT_NAME = 1,
    OPT_JSON,
    OPT_HELP,
    OPT_FIRST_KEY /* key i of the key table has code OPT_FIRST_KEY + i */
};

static const char usage[] =
    "Usage: stowage config show [--name NAME] [--json] [--config FILE] [--KEY VALUE ...]\n\n"
    "Prints the settings that commands would use for one database (--name) or for\n"
    "every [database NAME] section of the configuration file, with the source of\n"
    "each: flag, env STOWAGE_KEY, FILE:LINE or default. Passwords in connection\n"
    "strings and URLs are masked. Any key may be given as a flag, to see how it\n"
    "would override the other layers.\n\n"
    "Options:\n"
    "  --name NAME     the database (catalog name) to show; when the file has\n"
    "                  [database NAME] sections, one of them\n"
    "  --json          print the settings as JSON on stdout\n"
    "  --config FILE   configuration file (env STOWAGE_CONFIG; default\n"
    "                  " CONFIG_DEFAULT_PATH " when it exists)\n\n"
    "Precedence: command-line flag, then STOWAGE_<KEY> (upper case, dashes as\n"
    "underscores), then [database NAME], then [defaults]. See docs/CONFIG.md.\n";

struct flag_value {
    const struct config_key *key;
    const char *value;
};

struct show_cli {
    const char *name;
    int json;
    int help;
    struct flag_value *flags;
    size_t flag_count;
};

/* Builds the getopt table: --name, --json, --help and one option per key. */
static struct option *build_options(void)
{
    size_t key_count;
    const struct config_key *keys = config_keys(&key_count);
    struct option *options = calloc(key_count + 4, sizeof *options);

    if (options == NULL)
        return NULL;
    options[0] = (struct option){"name", required_argument, NULL, OPT_NAME};
    options[1] = (struct option){"json", no_argument, NULL, OPT_JSON};
    options[2] = (struct option){"help", no_argument, NULL, OPT_HELP};
    for (size_t i = 0; i < key_count; i++)
        options[3 + i] = (struct option){keys[i].name,
                                         keys[i].kind == CONFIG_FLAG ? no_argument
                                                                     : required_argument,
                                         NULL, OPT_FIRST_KEY + (int)i};
    return options;
}

static int record_flag(struct show_cli *cli, int code, const char *value, stow_error *err)
{
    size_t key_count;
    const struct config_key *key = &config_keys(&key_count)[code - OPT_FIRST_KEY];

    if (value != NULL && config_check_value(key, value, err) != 0)
        return -1;
    cli->flags[cli->flag_count].key = key;
    cli->flags[cli->flag_count].value = value != NULL ? value : "true";
    cli->flag_count++;
    return 0;
}

static int parse_show(struct show_cli *cli, int argc, char **argv, stow_error *err)
{
    struct option *options = build_options();
    int code;
    int rc = 0;

    cli->flags = calloc((size_t)argc + 1, sizeof *cli->flags);
    if (options == NULL || cli->flags == NULL) {
        free(options);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    opterr = 0;
    optind = 0;
    while (rc == 0 && (code = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (code == '?' || code == ':')
            rc = cli_unknown_option(err, "config show", argv[optind - 1]);
        else if (code == OPT_NAME)
            cli->name = optarg;
        else if (code == OPT_JSON)
            cli->json = 1;
        else if (code == OPT_HELP)
            cli->help = 1;
        else
            rc = record_flag(cli, code, optarg, err);
    }
    if (rc == 0 && optind < argc)
        rc = cli_usage_error(err, "config show", "config show takes no arguments");
    free(options);
    return rc;
}

/* Returns the value with passwords masked; the caller frees it. */
static char *redacted(const char *value)
{
    char *copy = strdup(value);

    if (copy != NULL)
        stow_redact_passwords(copy);
    return copy;
}

static int add_setting(json_t *settings, const char *key, const char *value, const char *source)
{
    char *shown = redacted(value);
    json_t *item = json_pack("{s:s, s:s?, s:s}", "key", key, "value", shown, "source", source);

    free(shown);
    return item == NULL ? -1 : json_array_append_new(settings, item);
}

/* Adds the settings of one key from the highest layer that sets it. */
static int add_key_settings(const struct show_cli *cli, const struct config *config,
                            const char *name, const struct config_key *key, json_t *settings)
{
    const struct config_entry *entry;
    char variable[128];
    char source[4200];
    size_t count = 0;
    int found = 0;

    for (size_t i = 0; i < cli->flag_count; i++) {
        if (cli->flags[i].key == key) {
            add_setting(settings, key->name, cli->flags[i].value, "flag");
            found = 1;
        }
    }
    config_env_name(key->name, variable, sizeof variable);
    if (!found && getenv(variable) != NULL && getenv(variable)[0] != '\0') {
        snprintf(source, sizeof source, "env %s", variable);
        return add_setting(settings, key->name, getenv(variable), source);
    }
    entry = found ? NULL : config_lookup(config, name, key->name, &count);
    for (size_t shown = 0; shown < count; entry++) {
        if (strcmp(entry->key, key->name) != 0)
            continue;
        snprintf(source, sizeof source, "%s:%d", config->path, entry->line);
        add_setting(settings, key->name, entry->value, source);
        shown++;
    }
    if (!found && count == 0 && key->default_value != NULL)
        add_setting(settings, key->name, key->default_value, "default");
    return 0;
}

static json_t *database_settings(const struct show_cli *cli, const struct config *config,
                                 const char *name)
{
    size_t key_count;
    const struct config_key *keys = config_keys(&key_count);
    json_t *settings = json_array();

    for (size_t i = 0; settings != NULL && i < key_count; i++)
        add_key_settings(cli, config, name, &keys[i], settings);
    return json_pack("{s:s?, s:o}", "name", name, "settings", settings);
}

static void print_text(const json_t *databases, const char *path)
{
    size_t i;
    json_t *database;

    printf("configuration file: %s\n", path != NULL ? path : "(none)");
    json_array_foreach(databases, i, database) {
        const char *name = json_string_value(json_object_get(database, "name"));
        size_t j;
        json_t *setting;

        printf("\n[%s%s]\n", name != NULL ? "database " : "defaults", name != NULL ? name : "");
        json_array_foreach(json_object_get(database, "settings"), j, setting)
            printf("  %-22s %-40s %s\n", json_string_value(json_object_get(setting, "key")),
                   json_string_value(json_object_get(setting, "value")),
                   json_string_value(json_object_get(setting, "source")));
    }
}

/* Checks the environment values that show would print (those of keys no
 * flag sets), so that config show rejects what a command would reject. */
static int check_env_values(const struct show_cli *cli, stow_error *err)
{
    size_t key_count;
    const struct config_key *keys = config_keys(&key_count);

    for (size_t i = 0; i < key_count; i++) {
        int flagged = 0;

        for (size_t j = 0; j < cli->flag_count; j++)
            flagged |= cli->flags[j].key == &keys[i];
        if (!flagged && config_check_env_value(&keys[i], err) != 0)
            return -1;
    }
    return 0;
}

static int show(const struct show_cli *cli, const struct config *config)
{
    json_t *databases = json_array();
    int sections = 0;

    if (cli->name != NULL) {
        json_array_append_new(databases, database_settings(cli, config, cli->name));
    } else {
        for (size_t i = 0; i < config->count; i++) {
            if (config->sections[i].name == NULL)
                continue;
            json_array_append_new(databases,
                                  database_settings(cli, config, config->sections[i].name));
            sections++;
        }
        if (sections == 0)
            json_array_append_new(databases, database_settings(cli, config, NULL));
    }

    if (cli->json) {
        json_t *document = json_pack("{s:s?, s:o}", "config", config->path, "databases",
                                     databases);
        char *text = json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(document);
    } else {
        print_text(databases, config->path);
        json_decref(databases);
    }
    return STOW_EXIT_OK;
}

int cmd_config(int argc, char **argv)
{
    struct show_cli cli;
    const struct config *config = NULL;
    const char *config_path = NULL;
    stow_error err = {0};
    int rc;

    memset(&cli, 0, sizeof cli);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return STOW_EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "show") != 0) {
        cli_usage_error(&err, "config", "unknown config command: the only one is \"show\"");
        return cli_finish(&err);
    }
    argc = config_take_argument(argc - 1, argv + 1, &config_path, &err);
    if (argc >= 0 && parse_show(&cli, argc, argv + 1, &err) == 0 && !cli.help &&
        check_env_values(&cli, &err) == 0 &&
        config_load_process(config_path, &config, &err) == 0 &&
        (cli.name == NULL || config_check_database(config, cli.name, &err) == 0))
        show(&cli, config);
    if (cli.help)
        fputs(usage, stdout);
    free(cli.flags);
    rc = cli_finish(&err);
    return rc;
}
