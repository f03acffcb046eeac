/* The keys a configuration file may set, and how their values are checked. */
#include "config/config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "common/duration.h"
#include "common/metrics.h"
#include "config/run_state.h"
#include "storage/storage.h"

#define ANY NULL
#define METRICS_JOB_COMMANDS "run,backup,snapshot,replicate,expire,gc,drill"

/* Options that name one invocation's object (--at, --target, --out,
 * --reason, extract's --to) are not keys: a file applies to every run. */
static const struct config_key keys[] = {
    /* Repository, logging and metrics (every command, except as noted). */
    {"repo", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"endpoint", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"region", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"path-style", CONFIG_FLAG, 0, 0, ANY, NULL},
    {"storage-class", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"transfers", CONFIG_COUNT, 1, 64, ANY, "4"},
    {"log-format", CONFIG_TEXT, 0, 0, ANY, "text"},
    {"log-level", CONFIG_TEXT, 0, 0, ANY, "info"},
    /* From a file, metrics are written by the scheduled jobs only, so that
     * an ad hoc list, verify or restore does not replace their series. */
    {"metrics-file", CONFIG_TEXT, 0, 0, METRICS_JOB_COMMANDS, NULL},
    {"pushgateway", CONFIG_TEXT, 0, 0, METRICS_JOB_COMMANDS, NULL},

    /* backup and check */
    {"db", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"recipient", CONFIG_LIST, 0, 0, ANY, NULL},
    {"compress-level", CONFIG_COUNT, 1, 19, ANY, "3"},
    {"compress-threads", CONFIG_COUNT, 0, 64, ANY, "2"},
    {"part-size", CONFIG_SIZE, 0, 0, ANY, "8MiB"},
    {"part-growth-interval", CONFIG_COUNT, 1, 10000, ANY, "900"},
    {"no-encryption", CONFIG_FLAG, 0, 0, ANY, NULL},
    {"no-globals", CONFIG_FLAG, 0, 0, ANY, NULL},
    {"lock-stale-after", CONFIG_DURATION, 0, 0, ANY, "10m"},
    {"signing-key", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"signing-passphrase-file", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"object-lock-days", CONFIG_COUNT, 1, 36500, "backup,replicate", NULL},
    {"object-lock-mode", CONFIG_TEXT, 0, 0, "backup,replicate", "governance"},
    {"db-iam-auth", CONFIG_FLAG, 0, 0, "backup,check,drill", NULL},

    /* restore, verify, extract, drill */
    {"key", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"passphrase-file", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"trusted-key", CONFIG_LIST, 0, 0, ANY, NULL},
    {"scratch", CONFIG_TEXT, 0, 0, "restore,drill", NULL},
    {"with-globals", CONFIG_FLAG, 0, 0, "restore", NULL},
    {"no-owner", CONFIG_FLAG, 0, 0, "restore", NULL},
    {"report", CONFIG_TEXT, 0, 0, "restore,verify,drill", NULL},
    {"markdown", CONFIG_TEXT, 0, 0, "drill", NULL},
    {"rpo-objective", CONFIG_DURATION, 0, 0, ANY, NULL},
    {"rto-objective", CONFIG_DURATION, 0, 0, ANY, NULL},

    /* expire and gc */
    {"keep-last", CONFIG_COUNT, 1, 1000000, "expire", NULL},
    {"keep-daily", CONFIG_COUNT, 1, 1000000, ANY, NULL},
    {"keep-weekly", CONFIG_COUNT, 1, 1000000, ANY, NULL},
    {"keep-monthly", CONFIG_COUNT, 1, 1000000, ANY, NULL},
    {"keep-within", CONFIG_DURATION, 0, 0, "expire", NULL},
    {"time-zone", CONFIG_TEXT, 0, 0, ANY, "UTC"},
    {"older-than", CONFIG_DURATION, 0, 0, "gc", "24h"},

    /* replicate and dr status */
    {"to", CONFIG_TEXT, 0, 0, "replicate", NULL},
    {"to-region", CONFIG_TEXT, 0, 0, "replicate", NULL},
    {"to-endpoint", CONFIG_TEXT, 0, 0, "replicate", NULL},
    {"to-path-style", CONFIG_FLAG, 0, 0, "replicate", NULL},
    {"to-storage-class", CONFIG_TEXT, 0, 0, "replicate", NULL},
    {"replica", CONFIG_TEXT, 0, 0, "dr", NULL},
    {"replica-region", CONFIG_TEXT, 0, 0, "dr", NULL},
    {"replica-endpoint", CONFIG_TEXT, 0, 0, "dr", NULL},
    {"replica-path-style", CONFIG_FLAG, 0, 0, "dr", NULL},
    {"stream", CONFIG_FLAG, 0, 0, "replicate", NULL},
    {"repair", CONFIG_FLAG, 0, 0, "replicate", NULL},
    {"snapshots", CONFIG_FLAG, 0, 0, "replicate", NULL},

    /* RDS snapshots */
    {"instance", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"cluster", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"kms-key", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"rds-region", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"rds-endpoint", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"wait-timeout", CONFIG_DURATION, 0, 0, ANY, "1h"},
    {"poll-interval", CONFIG_DURATION, 0, 0, ANY, "10s"},
    {"instance-class", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"subnet-group", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"security-group", CONFIG_LIST, 0, 0, ANY, NULL},
    {"parameter-group", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"connect-host", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"db-user", CONFIG_TEXT, 0, 0, ANY, NULL},
    {"database", CONFIG_LIST, 0, 0, "snapshot", NULL},
    {"amcheck", CONFIG_FLAG, 0, 0, ANY, NULL},
    {"expires-in", CONFIG_DURATION, 0, 0, ANY, NULL},
    {"match-window", CONFIG_DURATION, 0, 0, ANY, NULL},

    /* stowage run: which steps run, and when a run verifies. */
    {"snapshot", CONFIG_FLAG, 0, 0, "run", NULL},
    {"verify-with", CONFIG_TEXT, 0, 0, "run", "restore"},
    {"verify-every", CONFIG_COUNT, 0, 100000, "run", "7"},
    {"verify-on", CONFIG_TEXT, 0, 0, "run", NULL},
    {"state-file", CONFIG_TEXT, 0, 0, "run", "/var/lib/stowage/run-state.json"},
};

const struct config_key *config_keys(size_t *count)
{
    *count = sizeof keys / sizeof keys[0];
    return keys;
}

const struct config_key *config_key_find(const char *name)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    }
    return NULL;
}

int config_key_defaults_only(const struct config_key *key)
{
    return strcmp(key->name, "state-file") == 0;
}

/* Matches "snapshot create" to the entry "snapshot" as well. */
int config_key_applies(const struct config_key *key, const char *command)
{
    const char *cursor = key->commands;
    size_t first_word = strcspn(command, " ");

    if (cursor == NULL)
        return 1;
    while (*cursor != '\0') {
        size_t len = strcspn(cursor, ",");

        if ((len == strlen(command) || len == first_word) && strncmp(cursor, command, len) == 0)
            return 1;
        cursor += len;
        if (*cursor == ',')
            cursor++;
    }
    return 0;
}

int config_parse_flag(const char *text, int *out)
{
    static const char *const truths[] = {"true", "yes", "on", "1"};
    static const char *const falsehoods[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, truths[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, falsehoods[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Text keys with a fixed set of values, checked as the commands check the
 * option, so that config show rejects what every command would. */
static const struct {
    const char *key;
    const char *values[6]; /* NULL after the last */
    const char *hint;
} choices[] = {
    {"log-format", {"text", "json"}, "use text or json"},
    {"log-level", {"error", "warn", "info", "detail", "debug"},
     "use error, warn, info, detail or debug"},
    {"verify-with", {"restore", "drill"}, "use restore or drill"},
};

static int check_choice(const struct config_key *key, const char *value, stow_error *err)
{
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        if (strcmp(choices[i].key, key->name) != 0)
            continue;
        for (size_t j = 0; choices[i].values[j] != NULL; j++) {
            if (strcmp(choices[i].values[j], value) == 0)
                return 0;
        }
        return stow_fail(err, STOW_EXIT_USAGE, "invalid value for %s: \"%s\" (%s)", key->name,
                         value, choices[i].hint);
    }
    return 0;
}

/* Checks the text keys with a fixed set or form of values. */
static int check_text_value(const struct config_key *key, const char *value, stow_error *err)
{
    enum storage_lock_mode mode;
    unsigned days;

    if (strcmp(key->name, "object-lock-mode") == 0 && storage_lock_mode_parse(value, &mode) != 0)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid value for object-lock-mode: \"%s\" "
                                               "(use governance or compliance)", value);
    if (strcmp(key->name, "verify-on") == 0)
        return run_parse_days(value, &days, err);
    if (strcmp(key->name, "pushgateway") == 0)
        return metrics_check_pushgateway_url(value, err);
    return check_choice(key, value, err);
}

int config_check_value(const struct config_key *key, const char *value, stow_error *err)
{
    long number;
    uint64_t size;
    int64_t seconds;
    int flag;

    switch (key->kind) {
    case CONFIG_FLAG:
        if (config_parse_flag(value, &flag) != 0)
            return stow_fail(err, STOW_EXIT_USAGE, "invalid value for %s: \"%s\" (expected "
                                                   "true or false)", key->name, value);
        return 0;
    case CONFIG_COUNT:
        return cli_parse_int(key->name, value, key->min, key->max, &number, err);
    case CONFIG_SIZE:
        return cli_parse_size(key->name, value, &size, err);
    case CONFIG_DURATION:
        return stow_duration_parse(key->name, value, &seconds, err);
    case CONFIG_TEXT:
    case CONFIG_LIST:
        break;
    }
    return check_text_value(key, value, err);
}

void config_env_name(const char *key, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "STOWAGE_");

    for (const char *c = key; *c != '\0' && used + 1 < size; c++)
        out[used++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
    if (used < size)
        out[used] = '\0';
}

int config_check_env_value(const struct config_key *key, stow_error *err)
{
    char variable[128];
    const char *value;

    config_env_name(key->name, variable, sizeof variable);
    value = getenv(variable);
    if (value == NULL || value[0] == '\0' || config_check_value(key, value, err) == 0)
        return 0;
    stow_error_prefix(err, "environment variable %s", variable);
    return -1;
}
