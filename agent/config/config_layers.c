/* The configuration of this process and the layers below the command
 * line: environment variables, then the file. */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct config process_config;
static int process_loaded;

int config_load_process(const char *explicit_path, const struct config **out, stow_error *err)
{
    const char *path = explicit_path;

    if (process_loaded) {
        *out = &process_config;
        return 0;
    }
    if (path == NULL && getenv("STOWAGE_CONFIG") != NULL && getenv("STOWAGE_CONFIG")[0] != '\0')
        path = getenv("STOWAGE_CONFIG");
    if (path == NULL && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = CONFIG_DEFAULT_PATH;
    if (path != NULL && config_load_file(path, &process_config, err) != 0) {
        if (path == explicit_path || access(path, F_OK) == 0)
            return -1;
        stow_error_hint(err, "STOWAGE_CONFIG names a missing file; correct or unset it");
        return -1;
    }
    process_loaded = 1;
    *out = &process_config;
    return 0;
}

void config_release_process(void)
{
    config_free(&process_config);
    process_loaded = 0;
}

int config_take_argument(int argc, char **argv, const char **path, stow_error *err)
{
    int kept = 1;

    *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                argv[kept++] = argv[i++];
            break;
        }
        if (strncmp(argv[i], "--config=", 9) == 0) {
            *path = argv[i] + 9;
        } else if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 == argc)
                return stow_fail(err, STOW_EXIT_USAGE, "--config needs a file name");
            *path = argv[++i];
        } else {
            argv[kept++] = argv[i];
        }
    }
    if (*path != NULL && (*path)[0] == '\0')
        return stow_fail(err, STOW_EXIT_USAGE, "--config needs a file name");
    argv[kept] = NULL;
    return kept;
}

static int was_given(int code, const int *given_codes, size_t given_count)
{
    for (size_t i = 0; i < given_count; i++) {
        if (given_codes[i] == code)
            return 1;
    }
    return 0;
}

/* Applies value (the text of a flag option: true or false). */
static int apply_value(const struct option *option, const char *value, config_apply_fn apply,
                       void *context, stow_error *err)
{
    int on = 1;

    if (option->has_arg == no_argument) {
        if (config_parse_flag(value, &on) != 0)
            return stow_fail(err, STOW_EXIT_USAGE, "invalid value \"%s\" (expected true or "
                                                   "false)", value);
        return on ? apply(context, option->val, NULL, err) : 0;
    }
    return apply(context, option->val, value, err);
}

static int apply_environment(const struct option *option, const char *variable,
                             const char *value, config_apply_fn apply, void *context,
                             stow_error *err)
{
    if (apply_value(option, value, apply, context, err) == 0)
        return 0;
    stow_error_prefix(err, "environment variable %s", variable);
    return -1;
}

static int apply_file(const struct config *config, const struct option *option,
                      const struct config_entry *first, size_t count, config_apply_fn apply,
                      void *context, stow_error *err)
{
    const struct config_entry *entry = first;

    for (size_t applied = 0; applied < count; entry++) {
        if (strcmp(entry->key, first->key) != 0)
            continue;
        if (apply_value(option, entry->value, apply, context, err) != 0) {
            stow_error_prefix(err, "%s:%d: %s", config->path != NULL ? config->path : "config",
                              entry->line, entry->key);
            return -1;
        }
        applied++;
    }
    return 0;
}

/* Options that no lower layer sets: help, and in run's steps the metrics
 * outputs (run writes the metrics of every step itself). */
static int layered(const char *option_name)
{
    if (strcmp(option_name, "help") == 0)
        return 0;
    if (getenv(CONFIG_RUN_STEP_ENV) != NULL &&
        (strcmp(option_name, "metrics-file") == 0 || strcmp(option_name, "pushgateway") == 0))
        return 0;
    return 1;
}

int config_apply_layers(const struct config *config, const char *command, const char *name,
                        const struct option *options, const int *given_codes,
                        size_t given_count, config_apply_fn apply, void *context,
                        stow_error *err)
{
    for (const struct option *option = options; option->name != NULL; option++) {
        const struct config_key *key = config_key_find(option->name);
        const struct config_entry *first;
        char variable[128];
        const char *value;
        size_t count = 0;

        if (!layered(option->name) || was_given(option->val, given_codes, given_count))
            continue;

        config_env_name(option->name, variable, sizeof variable);
        value = getenv(variable);
        if (value != NULL && value[0] != '\0') {
            if (apply_environment(option, variable, value, apply, context, err) != 0)
                return -1;
            continue;
        }

        if (key == NULL || !config_key_applies(key, command))
            continue;
        first = config_lookup(config, name, key->name, &count);
        if (count > 0 && apply_file(config, option, first, count, apply, context, err) != 0)
            return -1;
    }
    return 0;
}

const char *config_value(const struct config *config, const char *name, const char *key)
{
    const struct config_entry *entry;
    char variable[128];
    const char *value;
    size_t count;

    config_env_name(key, variable, sizeof variable);
    value = getenv(variable);
    if (value != NULL && value[0] != '\0')
        return value;
    entry = config_lookup(config, name, key, &count);
    return entry != NULL ? entry->value : NULL;
}
