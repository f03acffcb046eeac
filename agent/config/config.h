/* The configuration file: INI (parsed by libinih) with a [defaults]
 * section and one [database NAME] section per catalog name, so one file
 * describes a fleet. Keys are the long option names of the commands, and
 * the table of keys (config_keys.c) lists the commands that read each one.
 *
 * Precedence, applied by cli_parse for every option a command accepts:
 * command-line flag, then environment variable STOWAGE_<OPTION> (upper
 * case, dashes as underscores), then [database NAME], then [defaults].
 * A repeatable option replaces the whole list of the lower layers. */
#ifndef STOWAGE_CONFIG_H
#define STOWAGE_CONFIG_H

#include <getopt.h>
#include <stddef.h>

#include "common/error.h"

#define CONFIG_DEFAULT_PATH "/etc/stowage/stowage.conf"
#define CONFIG_FILE_MAX (1024 * 1024)

/* Set by stowage run in the environment of its steps, to run's process
 * id: the steps then take no metrics outputs from the environment or the
 * file, because run writes the metrics of all steps itself, and they stop
 * when run dies. */
#define CONFIG_RUN_STEP_ENV "STOWAGE_RUN_STEP"

enum config_key_kind {
    CONFIG_TEXT,      /* one value */
    CONFIG_FLAG,      /* true/false, yes/no, on/off or 1/0 */
    CONFIG_LIST,      /* repeatable: each line adds a value */
    CONFIG_COUNT,     /* whole number from min to max */
    CONFIG_SIZE,      /* bytes, or a number with KiB, MiB or GiB */
    CONFIG_DURATION,  /* s, m, h, d or w */
};

struct config_key {
    const char *name;
    enum config_key_kind kind;
    long min, max;             /* CONFIG_COUNT only */
    const char *commands;      /* commands that read the key, comma-separated;
                                  NULL: every command that has the option */
    const char *default_value; /* shown by config show; NULL: none */
};

struct config_entry {
    char *key;
    char *value;
    int line;
};

struct config_section {
    char *name;                /* catalog name; NULL for [defaults] */
    int line;                  /* line of the section header */
    struct config_entry *entries;
    size_t count;
    size_t capacity;
};

struct config {
    char *path;                /* NULL when no file was read */
    struct config_section *sections;
    size_t count;
    size_t capacity;
    int secret_line;           /* first line with a password in a value; 0: none */
};

/* --- keys ----------------------------------------------------------------- */

const struct config_key *config_key_find(const char *name);
const struct config_key *config_keys(size_t *count);

/* Returns 1 for a key that only [defaults] may set: state-file, because
 * stowage run --all keeps one state for all databases. */
int config_key_defaults_only(const struct config_key *key);

/* Returns 1 when the key is read by command ("backup", "snapshot create"). */
int config_key_applies(const struct config_key *key, const char *command);

/* Parses a boolean value; returns 0, or -1 when text is not one. */
int config_parse_flag(const char *text, int *out);

/* Checks a value against its key's kind; err names the key only. */
int config_check_value(const struct config_key *key, const char *value, stow_error *err);

/* Writes STOWAGE_<KEY> into out. */
void config_env_name(const char *key, char *out, size_t size);

/* Checks the value of the key's environment variable, if it is set and
 * not empty, as config_check_value does; err names the variable. */
int config_check_env_value(const struct config_key *key, stow_error *err);

/* --- loading -------------------------------------------------------------- */

/* Parses INI text; label names the file in messages. A file that cannot be
 * parsed, an unknown section or key, a repeated key or a bad value fails
 * with STOW_EXIT_USAGE and "LABEL:LINE: ..." in the message. */
int config_parse_text(const char *text, size_t len, const char *label, struct config *out,
                      stow_error *err);

/* Reads and parses the file at path. A file that others can write is
 * rejected, and so is one that others can read while it contains a
 * password. A file that only its group can read gets a warning then. */
int config_load_file(const char *path, struct config *out, stow_error *err);

void config_free(struct config *config);

/* Returns the [database NAME] section, or NULL. */
const struct config_section *config_database(const struct config *config, const char *name);

/* Checks that a file with [database NAME] sections has one for name, so
 * that a mistyped name fails (STOW_EXIT_USAGE, listing the sections)
 * instead of running with [defaults] alone. Without a file, or with a
 * file that has only [defaults], every name passes. */
int config_check_database(const struct config *config, const char *name, stow_error *err);

/* Returns the entries of key for the catalog name (NULL: [defaults] only):
 * those of [database NAME] when it sets the key, else those of
 * [defaults]. Sets *count (0 when neither sets it). The entries of one
 * section share an array, so the others follow the first one in it,
 * perhaps with entries of other keys in between. */
const struct config_entry *config_lookup(const struct config *config, const char *name,
                                         const char *key, size_t *count);

/* Returns the value of key for the catalog name from STOWAGE_<KEY>, else
 * from the file (the first value of a list), or NULL. */
const char *config_value(const struct config *config, const char *name, const char *key);

/* --- the configuration of this process -------------------------------------- */

/* Finds the file to read: the --config argument (explicit is NULL when
 * none was given), else STOWAGE_CONFIG, else CONFIG_DEFAULT_PATH when it
 * exists. A file named by --config or STOWAGE_CONFIG must exist. Loads it
 * once per process; later calls return the same configuration. */
int config_load_process(const char *explicit_path, const struct config **out, stow_error *err);

/* Frees the configuration of this process (end of cli_main). */
void config_release_process(void);

/* Removes "--config FILE" and "--config=FILE" from argv in place (before
 * getopt runs, so commands need no --config option). Returns the new argc
 * and sets *path to the last one given, or NULL. */
int config_take_argument(int argc, char **argv, const char **path, stow_error *err);

/* Handles one option value of a lower layer (env or file), in the way
 * cli_parse handles a flag: value is NULL for a flag set to true. */
typedef int (*config_apply_fn)(void *context, int code, const char *value, stow_error *err);

/* Applies, for every option of the command that the command line did not
 * give (given_codes), the environment variable or else the file's value
 * for the catalog name. */
int config_apply_layers(const struct config *config, const char *command, const char *name,
                        const struct option *options, const int *given_codes,
                        size_t given_count, config_apply_fn apply, void *context,
                        stow_error *err);

#endif
