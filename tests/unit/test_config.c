/* Tests for agent/config: parsing the INI file, lookups by database, the
 * layers below the command line (environment, file) in cli_parse, and the
 * run schedule's day names. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/progress.h"
#include "config/config.h"
#include "config/run_state.h"

static const char fleet[] =
    "; a fleet of two databases\n"
    "[defaults]\n"
    "repo = file:///backups\n"
    "compress-level = 5\n"
    "recipient = /keys/ops.pub\n"
    "recipient = /keys/dr.pub\n"
    "\n"
    "[database orders]\n"
    "db = host=orders dbname=orders\n"
    "compress-level = 9\n"
    "recipient = /keys/orders.pub\n"
    "\n"
    "[database billing]\n"
    "db = host=billing\n"
    "  dbname=billing\n"
    "path-style = yes\n";

static int parse(const char *text, struct config *config, stow_error *err)
{
    return config_parse_text(text, strlen(text), "fleet.conf", config, err);
}

static void test_parse_sections(void)
{
    struct config config;
    stow_error err = {0};

    CHECK_INT_EQ(0, parse(fleet, &config, &err));
    CHECK_INT_EQ(3, config.count);
    CHECK(config.sections[0].name == NULL);
    CHECK_STR_EQ("orders", config.sections[1].name);
    CHECK_STR_EQ("billing", config.sections[2].name);
    CHECK_INT_EQ(4, config.sections[0].count);
    CHECK_STR_EQ("compress-level", config.sections[1].entries[1].key);
    CHECK_INT_EQ(10, config.sections[1].entries[1].line);
    config_free(&config);
}

static void test_lookup_precedence(void)
{
    struct config config;
    stow_error err = {0};
    const struct config_entry *entry;
    size_t count;

    CHECK_INT_EQ(0, parse(fleet, &config, &err));
    entry = config_lookup(&config, "orders", "compress-level", &count);
    CHECK_INT_EQ(1, count);
    CHECK_STR_EQ("9", entry->value);
    entry = config_lookup(&config, "billing", "compress-level", &count);
    CHECK_STR_EQ("5", entry->value);
    CHECK_INT_EQ(4, entry->line);
    entry = config_lookup(&config, NULL, "compress-level", &count);
    CHECK_STR_EQ("5", entry->value);
    entry = config_lookup(&config, "unknown", "repo", &count);
    CHECK_STR_EQ("file:///backups", entry->value);
    CHECK(config_lookup(&config, "orders", "keep-daily", &count) == NULL);
    CHECK_INT_EQ(0, count);
    config_free(&config);
}

static void test_lookup_list_replaces(void)
{
    struct config config;
    stow_error err = {0};
    const struct config_entry *entry;
    size_t count;

    CHECK_INT_EQ(0, parse(fleet, &config, &err));
    entry = config_lookup(&config, "orders", "recipient", &count);
    CHECK_INT_EQ(1, count);
    CHECK_STR_EQ("/keys/orders.pub", entry->value);
    entry = config_lookup(&config, "billing", "recipient", &count);
    CHECK_INT_EQ(2, count);
    CHECK_STR_EQ("/keys/ops.pub", entry[0].value);
    CHECK_STR_EQ("/keys/dr.pub", entry[1].value);
    config_free(&config);
}

static void test_continuation_line(void)
{
    struct config config;
    stow_error err = {0};
    size_t count;

    CHECK_INT_EQ(0, parse(fleet, &config, &err));
    CHECK_STR_EQ("host=billing dbname=billing",
                 config_lookup(&config, "billing", "db", &count)->value);
    CHECK_STR_EQ("yes", config_lookup(&config, "billing", "path-style", &count)->value);
    config_free(&config);
}

/* Each bad file fails with exit code 2 and names the file, line and cause. */
static void test_errors_name_line(void)
{
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"[defaults]\nrepo = x\nkeep-dayly = 3\n", "fleet.conf:3: unknown key \"keep-dayly\""},
        {"[defaults]\n\n[database a]\ncompress-level = 99\n",
         "fleet.conf:4: invalid value for compress-level: \"99\""},
        {"[defaults]\npart-size = 12parsecs\n", "fleet.conf:2: invalid size for part-size"},
        {"[defaults]\nkeep-within = 7x\n", "fleet.conf:2: "},
        {"[defaults]\npath-style = maybe\n", "fleet.conf:2: invalid value for path-style"},
        {"[defaults]\nrepo = a\nrepo = b\n", "fleet.conf:3: key repo is set again (first on "
                                             "line 2)"},
        {"[defaults]\nrepo =\n", "fleet.conf:2: key repo has no value"},
        {"repo = a\n", "fleet.conf:1: key repo is outside a section"},
        {"[server a]\nrepo = a\n", "fleet.conf:1: unknown section [server a]"},
        {"[database .hidden]\nrepo = a\n", "fleet.conf:1: invalid database name \".hidden\""},
        {"[defaults]\nlog-format = xml\n", "fleet.conf:2: invalid value for log-format: \"xml\""},
        {"[defaults]\nlog-level = loud\n", "fleet.conf:2: invalid value for log-level: \"loud\""},
        {"[defaults]\npushgateway = ftp://gateway/\n",
         "fleet.conf:2: invalid Pushgateway URL \"ftp://gateway/\""},
        {"[defaults]\n[database a]\nstate-file = /tmp/a.json\n",
         "fleet.conf:3: key state-file is set in [database a]"},
        {"[defaults]\nrepo = a\njunk line\n", "fleet.conf:3: syntax error"},
        {"[defaults\nrepo = a\n", "fleet.conf:1: syntax error"},
        {"[defaults]\nname = a\n", "fleet.conf:2: unknown key \"name\""},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config config;
        stow_error err = {0};

        CHECK_INT_EQ(-1, parse(cases[i].text, &config, &err));
        CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
        CHECK_CONTAINS(err.message, cases[i].message);
        CHECK_INT_EQ(0, config.count);
    }
}

/* Writes a name of len characters, first_letter then 'x's. libinih cuts
 * section headers to 49 characters, shorter than the 63 a name may have. */
static void long_name(char first_letter, size_t len, char *out)
{
    out[0] = first_letter;
    memset(out + 1, 'x', len - 1);
    out[len] = '\0';
}

static void test_long_section_names(void)
{
    char orders[70], billing[70], text[400];
    struct config config;
    stow_error err = {0};

    long_name('o', 63, orders);
    long_name('o', 63, billing);
    billing[62] = 'b'; /* shares the first 62 characters with orders */
    snprintf(text, sizeof text, "[database %s]\nrepo = a\n[database %s]\nrepo = b\n", orders,
             billing);
    CHECK_INT_EQ(0, parse(text, &config, &err));
    CHECK_INT_EQ(2, config.count);
    CHECK_STR_EQ(orders, config.sections[0].name);
    CHECK_STR_EQ(billing, config.sections[1].name);
    config_free(&config);

    long_name('o', 64, orders);
    snprintf(text, sizeof text, "[defaults]\nrepo = a\n\n[database %s]\nrepo = b\n", orders);
    CHECK_INT_EQ(-1, parse(text, &config, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "fleet.conf:4: invalid database name");
    CHECK_CONTAINS(err.message, orders);
    CHECK_CONTAINS(err.hint, "1 to 63 letters");
}

static void test_empty_section_exists(void)
{
    struct config config;
    stow_error err = {0};

    CHECK_INT_EQ(0, parse("[defaults]\nrepo = a\n[database quiet]\n; no keys\n", &config,
                          &err));
    CHECK(config_database(&config, "quiet") != NULL);
    config_free(&config);
}

/* An indented line after a key continues its value, even when it starts
 * with '[', as inih reads it. */
static void test_indented_bracket_continues(void)
{
    struct config config;
    stow_error err = {0};
    size_t count;

    CHECK_INT_EQ(0, parse("[database a]\ndb = host=a\n  [x]\ncompress-level = 4\n", &config,
                          &err));
    CHECK_INT_EQ(1, config.count);
    CHECK_STR_EQ("host=a [x]", config_lookup(&config, "a", "db", &count)->value);
    CHECK_STR_EQ("4", config_lookup(&config, "a", "compress-level", &count)->value);
    config_free(&config);
}

static void test_check_database(void)
{
    struct config config;
    stow_error err = {0};

    CHECK_INT_EQ(0, parse(fleet, &config, &err));
    config.path = strdup("fleet.conf");
    CHECK_INT_EQ(0, config_check_database(&config, "orders", &err));
    CHECK_INT_EQ(-1, config_check_database(&config, "ordrs", &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_STR_EQ("no [database ordrs] section in fleet.conf", err.message);
    CHECK_CONTAINS(err.hint, "orders, billing");
    config_free(&config);

    stow_error_clear(&err);
    CHECK_INT_EQ(0, parse("[defaults]\nrepo = a\n", &config, &err));
    config.path = strdup("single.conf");
    CHECK_INT_EQ(0, config_check_database(&config, "anything", &err));
    config_free(&config);
}

/* Every key of the table has a row in docs/CONFIG.md, and every key that
 * a row names is in the table. */
static void test_keys_documented(void)
{
    size_t key_count, len;
    const struct config_key *keys = config_keys(&key_count);
    char *doc = unit_read_file("../../docs/CONFIG.md", &len);
    char quoted[64];

    CHECK(doc != NULL);
    if (doc == NULL)
        return;
    for (size_t i = 0; i < key_count; i++) {
        snprintf(quoted, sizeof quoted, "`%s`", keys[i].name);
        for (const char *row = strstr(doc, "\n| `"); ; row = strstr(row + 1, "\n| `")) {
            const char *cell_end = row != NULL ? strchr(row + 3, '|') : NULL;
            const char *found = row != NULL ? strstr(row, quoted) : NULL;

            if (row == NULL) {
                unit_fail(__FILE__, __LINE__, "key %s has no row in docs/CONFIG.md",
                          keys[i].name);
                break;
            }
            if (found != NULL && found < cell_end)
                break;
        }
    }
    for (const char *row = strstr(doc, "\n| `"); row != NULL; row = strstr(row + 1, "\n| `")) {
        const char *cell_end = strchr(row + 3, '|');

        for (const char *tick = strchr(row, '`'); tick != NULL && tick < cell_end;) {
            const char *close = strchr(tick + 1, '`');
            char name[64];

            if (close == NULL)
                break;
            snprintf(name, sizeof name, "%.*s", (int)(close - tick - 1), tick + 1);
            if (config_key_find(name) == NULL)
                unit_fail(__FILE__, __LINE__, "docs/CONFIG.md documents unknown key %s", name);
            tick = strchr(close + 1, '`');
        }
    }
    free(doc);
}

static void test_long_line_rejected(void)
{
    char text[400];
    struct config config;
    stow_error err = {0};

    snprintf(text, sizeof text, "[defaults]\nrepo = %0300d\n", 7);
    CHECK_INT_EQ(-1, parse(text, &config, &err));
    CHECK_CONTAINS(err.message, "fleet.conf:2: line is longer than");
}

static void test_nul_byte_rejected(void)
{
    static const char text[] = "[defaults]\nrepo = a\0b\n";
    struct config config;
    stow_error err = {0};

    CHECK_INT_EQ(-1, config_parse_text(text, sizeof text - 1, "fleet.conf", &config, &err));
    CHECK_CONTAINS(err.message, "NUL byte");
}

static void test_key_applies(void)
{
    CHECK_INT_EQ(1, config_key_applies(config_key_find("repo"), "backup"));
    CHECK_INT_EQ(1, config_key_applies(config_key_find("to"), "replicate"));
    CHECK_INT_EQ(0, config_key_applies(config_key_find("to"), "extract"));
    CHECK_INT_EQ(1, config_key_applies(config_key_find("database"), "snapshot create"));
    CHECK_INT_EQ(0, config_key_applies(config_key_find("verify-every"), "backup"));
    CHECK(config_key_find("help") == NULL);
    CHECK(config_key_find("config") == NULL);
}

static void test_env_name(void)
{
    char name[64];

    config_env_name("compress-level", name, sizeof name);
    CHECK_STR_EQ("STOWAGE_COMPRESS_LEVEL", name);
    config_env_name("repo", name, sizeof name);
    CHECK_STR_EQ("STOWAGE_REPO", name);
}

/* --- the layers in cli_parse ------------------------------------------------ */

enum { OPT_DB = CLI_OPT_FIRST_COMMAND_OPTION, OPT_RECIPIENT, OPT_NAME, OPT_LEVEL, OPT_NO_GLOBALS };

struct recorded {
    const char *db;
    const char *name;
    const char *level;
    const char *recipients[8];
    size_t recipient_count;
    int no_globals;
};

static int record_option(void *context, int code, const char *value, stow_error *err)
{
    struct recorded *seen = context;

    switch (code) {
    case OPT_DB: seen->db = value; return 0;
    case OPT_NAME: seen->name = value; return 0;
    case OPT_LEVEL:
        seen->level = value;
        if (strcmp(value, "bad") == 0)
            return stow_fail(err, STOW_EXIT_USAGE, "invalid value for --compress-level");
        return 0;
    case OPT_NO_GLOBALS: seen->no_globals = 1; return 0;
    case OPT_RECIPIENT:
        if (seen->recipient_count < 8)
            seen->recipients[seen->recipient_count++] = value;
        return 0;
    default: return stow_fail(err, STOW_EXIT_USAGE, "unknown option");
    }
}

static const struct option test_options[] = {
    CLI_REPO_LONG_OPTIONS,
    {"db", required_argument, NULL, OPT_DB},
    {"recipient", required_argument, NULL, OPT_RECIPIENT},
    {"name", required_argument, NULL, OPT_NAME},
    {"compress-level", required_argument, NULL, OPT_LEVEL},
    {"no-globals", no_argument, NULL, OPT_NO_GLOBALS},
    {NULL, 0, NULL, 0},
};

static char config_path[] = "/tmp/stowage-test-config-XXXXXX";

static void write_config(const char *text, mode_t mode)
{
    int fd = mkstemp(config_path);
    FILE *file = fdopen(fd, "w");

    fputs(text, file);
    fclose(file);
    chmod(config_path, mode);
}

/* Runs cli_parse on the arguments after "backup" with a fresh process
 * configuration. */
static int parse_with(const char *const *arguments, struct cli_common *common,
                      struct recorded *seen, stow_error *err)
{
    char *argv[16] = {"backup", "--config", config_path};
    int argc = 3;

    for (size_t i = 0; arguments[i] != NULL; i++)
        argv[argc++] = (char *)arguments[i];
    argv[argc] = NULL;
    memset(seen, 0, sizeof *seen);
    cli_common_init(common);
    config_release_process();
    return cli_parse(argc, argv, "backup", test_options, common, record_option, seen, NULL, 0,
                     NULL, err);
}

static void test_layers_file_for_database(void)
{
    static const char *const arguments[] = {"--name", "orders", NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    CHECK_INT_EQ(0, parse_with(arguments, &common, &seen, &err));
    CHECK_STR_EQ("host=orders dbname=orders", seen.db);
    CHECK_STR_EQ("9", seen.level);
    CHECK_STR_EQ("file:///backups", common.storage.url);
    CHECK_INT_EQ(1, seen.recipient_count);
    CHECK_STR_EQ("/keys/orders.pub", seen.recipients[0]);
}

static void test_layers_flag_beats_env_and_file(void)
{
    static const char *const arguments[] = {"--name", "orders", "--compress-level", "2",
                                            "--repo", "file:///flag", NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    setenv("STOWAGE_COMPRESS_LEVEL", "4", 1);
    setenv("STOWAGE_REPO", "file:///env", 1);
    CHECK_INT_EQ(0, parse_with(arguments, &common, &seen, &err));
    CHECK_STR_EQ("2", seen.level);
    CHECK_STR_EQ("file:///flag", common.storage.url);
    unsetenv("STOWAGE_COMPRESS_LEVEL");
    unsetenv("STOWAGE_REPO");
}

static void test_layers_env_beats_file(void)
{
    static const char *const arguments[] = {"--name", "orders", NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    setenv("STOWAGE_COMPRESS_LEVEL", "4", 1);
    setenv("STOWAGE_NO_GLOBALS", "true", 1);
    CHECK_INT_EQ(0, parse_with(arguments, &common, &seen, &err));
    CHECK_STR_EQ("4", seen.level);
    CHECK_INT_EQ(1, seen.no_globals);
    unsetenv("STOWAGE_COMPRESS_LEVEL");
    unsetenv("STOWAGE_NO_GLOBALS");
}

static void test_layers_name_from_env(void)
{
    static const char *const arguments[] = {NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    setenv("STOWAGE_NAME", "billing", 1);
    CHECK_INT_EQ(0, parse_with(arguments, &common, &seen, &err));
    CHECK_STR_EQ("billing", seen.name);
    CHECK_STR_EQ("host=billing dbname=billing", seen.db);
    CHECK_INT_EQ(1, common.storage.path_style);
    unsetenv("STOWAGE_NAME");
}

static void test_layers_flag_list_replaces(void)
{
    static const char *const arguments[] = {"--recipient", "/keys/a.pub", "--recipient",
                                            "/keys/b.pub", NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    CHECK_INT_EQ(0, parse_with(arguments, &common, &seen, &err));
    CHECK_INT_EQ(2, seen.recipient_count);
    CHECK_STR_EQ("/keys/a.pub", seen.recipients[0]);
    CHECK_STR_EQ("/keys/b.pub", seen.recipients[1]);
    CHECK(seen.db == NULL);
}

static void test_layers_bad_env_value(void)
{
    static const char *const arguments[] = {NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    setenv("STOWAGE_COMPRESS_LEVEL", "bad", 1);
    CHECK_INT_EQ(-1, parse_with(arguments, &common, &seen, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "environment variable STOWAGE_COMPRESS_LEVEL: invalid value");
    unsetenv("STOWAGE_COMPRESS_LEVEL");
}

static void test_env_value_checked(void)
{
    static const struct {
        const char *variable;
        const char *key;
        const char *value;
    } invalid[] = {
        {"STOWAGE_COMPRESS_LEVEL", "compress-level", "99"},
        {"STOWAGE_COMPRESS_LEVEL", "compress-level", "abc"},
        {"STOWAGE_LOG_FORMAT", "log-format", "xml"},
    };

    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        stow_error err = {0};

        setenv(invalid[i].variable, invalid[i].value, 1);
        CHECK_INT_EQ(-1, config_check_env_value(config_key_find(invalid[i].key), &err));
        CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
        CHECK_CONTAINS(err.message, invalid[i].variable);
        CHECK_CONTAINS(err.message, invalid[i].value);
        unsetenv(invalid[i].variable);
    }

    setenv("STOWAGE_COMPRESS_LEVEL", "7", 1);
    CHECK_INT_EQ(0, config_check_env_value(config_key_find("compress-level"), NULL));
    unsetenv("STOWAGE_COMPRESS_LEVEL");
    CHECK_INT_EQ(0, config_check_env_value(config_key_find("log-format"), NULL));
}

static void test_layers_unknown_flag(void)
{
    static const char *const arguments[] = {"--no-such-option", NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    CHECK_INT_EQ(-1, parse_with(arguments, &common, &seen, &err));
    CHECK_CONTAINS(err.message, "unknown option or missing value: --no-such-option");
}

/* A status line would break JSON lines, whichever layer sets each option. */
static void test_layers_progress_with_json(void)
{
    static const char *const orders[][4] = {
        {"--progress", "--log-format", "json", NULL},
        {"--log-format", "json", "--progress", NULL},
    };
    struct cli_common common;
    struct recorded seen;

    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        stow_error err = {0};

        CHECK_INT_EQ(-1, parse_with(orders[i], &common, &seen, &err));
        CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
        CHECK_CONTAINS(err.message, "--progress cannot be used with --log-format json");
        stow_log_set_format(STOW_LOG_TEXT);
        stow_progress_set_mode(STOW_PROGRESS_AUTO);
    }
}

static void test_layers_pushgateway_scheme(void)
{
    static const char *const arguments[] = {"--pushgateway", "ftp://user:hunter2@gateway/",
                                            NULL};
    struct cli_common common;
    struct recorded seen;
    stow_error err = {0};

    CHECK_INT_EQ(-1, parse_with(arguments, &common, &seen, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "invalid Pushgateway URL");
    CHECK(strstr(err.message, "hunter2") == NULL);
}

static void test_secret_file_modes(void)
{
    struct config config;
    stow_error err = {0};

    chmod(config_path, 0644);
    CHECK_INT_EQ(0, config_load_file(config_path, &config, &err));
    config_free(&config);

    unlink(config_path);
    strcpy(config_path, "/tmp/stowage-test-config-XXXXXX");
    write_config("[defaults]\ndb = host=a password=hunter2\n", 0644);
    CHECK_INT_EQ(-1, config_load_file(config_path, &config, &err));
    CHECK_CONTAINS(err.message, "is readable by others (mode 0644) and line 2 contains a password");
    CHECK(strstr(err.message, "hunter2") == NULL);

    stow_error_clear(&err);
    chmod(config_path, 0600);
    CHECK_INT_EQ(0, config_load_file(config_path, &config, &err));
    config_free(&config);

    chmod(config_path, 0602);
    CHECK_INT_EQ(-1, config_load_file(config_path, &config, &err));
    CHECK_CONTAINS(err.message, "is writable by others");
}

static void test_run_days(void)
{
    stow_error err = {0};
    unsigned mask = 0;

    CHECK_INT_EQ(0, run_parse_days("sunday", &mask, &err));
    CHECK_INT_EQ(1, mask);
    CHECK_INT_EQ(0, run_parse_days("Mon, thu,SAT", &mask, &err));
    CHECK_INT_EQ((1 << 1) | (1 << 4) | (1 << 6), mask);
    CHECK_INT_EQ(-1, run_parse_days("funday", &mask, &err));
    CHECK_CONTAINS(err.message, "invalid value for verify-on: \"funday\"");
}

int main(void)
{
    unit_run("parse sections", test_parse_sections);
    unit_run("lookup precedence", test_lookup_precedence);
    unit_run("lookup list replaces", test_lookup_list_replaces);
    unit_run("continuation line", test_continuation_line);
    unit_run("errors name line", test_errors_name_line);
    unit_run("long line rejected", test_long_line_rejected);
    unit_run("long section names", test_long_section_names);
    unit_run("empty section exists", test_empty_section_exists);
    unit_run("indented bracket continues", test_indented_bracket_continues);
    unit_run("check database", test_check_database);
    unit_run("keys documented", test_keys_documented);
    unit_run("NUL byte rejected", test_nul_byte_rejected);
    unit_run("key applies", test_key_applies);
    unit_run("env name", test_env_name);
    unit_run("env value checked", test_env_value_checked);

    unsetenv("STOWAGE_CONFIG");
    unsetenv("STOWAGE_NAME");
    unsetenv("STOWAGE_REPO");
    write_config(fleet, 0600);
    unit_run("layers file for database", test_layers_file_for_database);
    unit_run("layers flag beats env and file", test_layers_flag_beats_env_and_file);
    unit_run("layers env beats file", test_layers_env_beats_file);
    unit_run("layers name from env", test_layers_name_from_env);
    unit_run("layers flag list replaces", test_layers_flag_list_replaces);
    unit_run("layers bad env value", test_layers_bad_env_value);
    unit_run("layers unknown flag", test_layers_unknown_flag);
    unit_run("layers progress with JSON", test_layers_progress_with_json);
    unit_run("layers pushgateway scheme", test_layers_pushgateway_scheme);
    config_release_process();
    unit_run("secret file modes", test_secret_file_modes);
    unlink(config_path);

    unit_run("run days", test_run_days);
    return unit_finish();
}
