/* stowage list and stowage show: read the catalog. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "cli/cli.h"
#include "common/log.h"
#include "signature.h"

enum { OPT_NAME = CLI_OPT_FIRST_COMMAND_OPTION, OPT_JSON, OPT_AT, OPT_TRUSTED_KEY };

#define TRUSTED_KEY_HELP                                                             \
    "  --trusted-key PUBFILE  check manifest signatures with this signing public key\n" \
    "                         (repeatable; env STOWAGE_TRUSTED_KEYS, colon-separated)\n"

static const char list_usage[] =
    "Usage: stowage list --repo URL [--name NAME] [--json]\n\n"
    "Lists the complete backups in the repository, oldest first. A backup whose\n"
    "manifest is missing or invalid is not listed, and neither is one written by\n"
    "a newer stowage (a warning names it). NOTES shows START IN FUTURE for a\n"
    "backup that started more than 300 s after the current time: the clock of\n"
    "the host that took it was wrong, and it counts as the newest backup.\n\n"
    "Options:\n"
    "  --name NAME   only backups of this catalog name (default: every name)\n"
    "  --json        print a JSON array on stdout; \"signature\" shows the signer's\n"
    "                key id and the outcome of the check, \"started_in_future\"\n"
    "                marks a backup that NOTES shows as START IN FUTURE\n"
    TRUSTED_KEY_HELP "\n" CLI_REPO_HELP;

static const char show_usage[] =
    "Usage: stowage show --repo URL BACKUP [--name NAME] [--json]\n\n"
    "Shows one backup: BACKUP is a backup id or \"latest\"; --at TIME picks the\n"
    "newest backup taken at or before TIME (RFC 3339; a time without an offset is UTC).\n\n"
    "Options:\n"
    "  --name NAME   catalog name, needed when the repository holds several\n"
    "                (default: the only one)\n"
    "  --at TIME     the newest backup at or before TIME (RFC 3339; default: the\n"
    "                BACKUP argument)\n"
    "  --json        print the whole manifest as JSON; its \"signature\" member gains\n"
    "                \"checked\" and \"status\", which the signature does not cover\n"
    TRUSTED_KEY_HELP "\n" CLI_REPO_HELP;

struct list_cli {
    struct cli_common common;
    const char *name;
    const char *at;
    int json;
    struct signature_trust trust;
};

static int parse_list_option(void *context, int code, const char *value, stow_error *err)
{
    struct list_cli *cli = context;

    if (code == OPT_NAME)
        cli->name = value;
    else if (code == OPT_JSON)
        cli->json = 1;
    else if (code == OPT_AT)
        cli->at = value;
    else if (code == OPT_TRUSTED_KEY)
        return signature_trust_add_file(&cli->trust, value, err);
    else
        return cli_usage_error(err, "list", "unknown option");
    return 0;
}

static const struct option list_options[] = {
    CLI_REPO_LONG_OPTIONS,
    {"name", required_argument, NULL, OPT_NAME},
    {"json", no_argument, NULL, OPT_JSON},
    {"at", required_argument, NULL, OPT_AT},
    {"trusted-key", required_argument, NULL, OPT_TRUSTED_KEY},
    {NULL, 0, NULL, 0},
};

/* Parses the command line, adding STOWAGE_TRUSTED_KEYS when no --trusted-key
 * was given. */
static int parse_list_command(struct list_cli *cli, const char *command, int argc, char **argv,
                              const char **positional, int max_positional,
                              int *positional_count, stow_error *err)
{
    memset(cli, 0, sizeof *cli);
    cli_common_init(&cli->common);
    if (cli_parse(argc, argv, command, list_options, &cli->common, parse_list_option, cli,
                  positional, max_positional, positional_count, err) != 0)
        return -1;
    if (cli->name != NULL && catalog_check_name(cli->name, err) != 0)
        return -1;
    if (cli->trust.count == 0)
        return signature_trust_add_list(&cli->trust, getenv("STOWAGE_TRUSTED_KEYS"), err);
    return 0;
}

/* Describes the manifest's signature: the signer's key id (null when
 * unsigned), whether it was checked, and the outcome (signature_status_name). */
static json_t *signature_json(json_t *document, const struct signature_trust *trust)
{
    const char *key_id = NULL;
    enum signature_status status = signature_check(document, trust, &key_id);

    return json_pack("{s:s?, s:b, s:s}", "key_id", key_id, "checked", trust->count > 0,
                     "status", signature_status_name(status));
}

static json_t *summary_json(const struct catalog_entry *entry, const struct signature_trust *trust,
                            time_t now)
{
    const struct manifest *m = &entry->manifest;
    json_t *contents = json_object_get(m->document, "contents");
    json_t *summary = json_object();

    json_object_set_new(summary, "id", json_string(m->id));
    json_object_set_new(summary, "name", json_string(m->name));
    json_object_set_new(summary, "database", json_string(m->database));
    json_object_set_new(summary, "kind", json_string("backup"));
    json_object_set(summary, "started_at", json_object_get(m->document, "started_at"));
    json_object_set(summary, "finished_at", json_object_get(m->document, "finished_at"));
    json_object_set_new(summary, "stored_bytes", json_integer((json_int_t)m->stored_bytes));
    json_object_set_new(summary, "plain_bytes", json_integer((json_int_t)m->plain_bytes));
    json_object_set_new(summary, "parts", json_integer((json_int_t)m->parts.count));
    json_object_set_new(summary, "tables",
                        json_integer((json_int_t)json_array_size(json_object_get(contents, "tables"))));
    json_object_set_new(summary, "encrypted", json_boolean(m->encrypted));
    json_object_set_new(summary, "started_in_future",
                        json_boolean(catalog_started_in_future(entry, now)));
    json_object_set_new(summary, "manifest_key", json_string(entry->manifest_key));
    json_object_set_new(summary, "signature", signature_json(m->document, trust));
    if (json_is_object(json_object_get(m->document, "object_lock")))
        json_object_set(summary, "object_lock", json_object_get(m->document, "object_lock"));
    else
        json_object_set_new(summary, "object_lock", json_null());
    if (entry->last_verified_at != 0) {
        char verified[32];

        manifest_format_time(entry->last_verified_at, verified);
        json_object_set_new(summary, "last_verified_at", json_string(verified));
        json_object_set_new(summary, "last_verification",
                            json_string(entry->last_verification_passed ? "passed" : "failed"));
    } else {
        json_object_set_new(summary, "last_verified_at", json_null());
        json_object_set_new(summary, "last_verification", json_null());
    }
    if (entry->held && entry->hold != NULL)
        json_object_set(summary, "hold", entry->hold);
    else if (entry->held)
        json_object_set_new(summary, "hold", json_string("unreadable"));
    else
        json_object_set_new(summary, "hold", json_null());
    return summary;
}

/* Copies text (NULL: "?") into buf as one line without control
 * characters: manifests and hold records carry names from outside. */
static const char *one_line(const char *text, char *buf, size_t size)
{
    snprintf(buf, size, "%s", text != NULL ? text : "?");
    stow_clean_line(buf);
    return buf;
}

static void print_json(json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text != NULL) {
        printf("%s\n", text);
        free(text);
    }
}

static void print_table(const struct catalog *catalog, time_t now)
{
    printf("%-23s %-16s %-20s %8s %10s %6s %-9s %-4s %-27s %s\n", "ID", "NAME", "STARTED (UTC)",
           "DURATION", "STORED", "TABLES", "ENCRYPTED", "HOLD", "LAST VERIFIED", "NOTES");
    for (size_t i = 0; i < catalog->count; i++) {
        const struct manifest *m = &catalog->entries[i].manifest;
        json_t *contents = json_object_get(m->document, "contents");
        const struct catalog_entry *entry = &catalog->entries[i];
        char started[32];
        char stored[32];
        char verified[48] = "never";
        char name[128];

        manifest_format_time(m->started_at, started);
        cli_format_bytes(m->stored_bytes, stored, sizeof stored);
        if (entry->last_verified_at != 0) {
            manifest_format_time(entry->last_verified_at, verified);
            strcat(verified, entry->last_verification_passed ? " passed" : " FAILED");
        }
        printf("%-23s %-16s %-20s %7llds %10s %6zu %-9s %-4s %-27s %s\n", m->id,
               one_line(m->name, name, sizeof name),
               started, (long long)(m->finished_at - m->started_at), stored,
               json_array_size(json_object_get(contents, "tables")),
               m->encrypted ? "yes" : "no", entry->held ? "HELD" : "", verified,
               catalog_started_in_future(entry, now) ? "START IN FUTURE" : "");
    }
}

/* Warns once for each backup that started after now. Such a backup sorts
 * last, so latest, --at and retention take it for the newest. */
static void warn_future_backups(const struct catalog *catalog, time_t now)
{
    for (size_t i = 0; i < catalog->count; i++) {
        const struct manifest *m = &catalog->entries[i].manifest;
        char started[32];

        if (!catalog_started_in_future(&catalog->entries[i], now))
            continue;
        manifest_format_time(m->started_at, started);
        stow_log_warn("backup %s of %s started at %s, after the current time: the clock of the "
                      "host that took it was probably wrong, and it counts as the newest "
                      "backup of %s",
                      m->id, m->name, started, m->name);
    }
}

int cmd_list(int argc, char **argv)
{
    struct list_cli cli;
    struct catalog catalog = {0};
    stow_error err = {0};
    storage *store = NULL;
    time_t now = time(NULL);

    if (parse_list_command(&cli, "list", argc, argv, NULL, 0, NULL, &err) != 0)
        return cli_finish(&err);
    if (cli.common.help) {
        fputs(list_usage, stdout);
        return STOW_EXIT_OK;
    }

    if (cli_open_repository(&cli.common, &store, &err) == 0 &&
        storage_check(store, STORAGE_ACCESS_READ, &err) == 0 && catalog_load(store, cli.name, &catalog, &err) == 0) {
        if (cli.name != NULL && catalog.count == 0)
            catalog_warn_unknown_name(store, cli.name);
        warn_future_backups(&catalog, now);
        if (cli.json) {
            json_t *array = json_array();

            for (size_t i = 0; i < catalog.count; i++)
                json_array_append_new(array, summary_json(&catalog.entries[i], &cli.trust, now));
            print_json(array);
            json_decref(array);
        } else {
            print_table(&catalog, now);
        }
    }
    catalog_free(&catalog);
    storage_free(store);
    return cli_finish(&err);
}

/* A string field of the entry's hold document, or "?" when it is unreadable. */
static const char *hold_field(const struct catalog_entry *entry, const char *field)
{
    static char lines[4][512];  /* one per field of the hold line */
    static size_t next;
    char *line = lines[next++ % 4];

    return one_line(json_string_value(json_object_get(entry->hold, field)), line, sizeof lines[0]);
}

/* Prints the manifest with "checked" and "status" added to its signature
 * member, on a copy: the canonical form leaves that member out, so the
 * output still verifies when saved as the manifest. */
static void print_show_json(json_t *document, const struct signature_trust *trust)
{
    json_t *output = json_copy(document);
    json_t *signature = json_copy(json_object_get(document, SIGNATURE_MEMBER));
    const char *key_id = NULL;
    enum signature_status status = signature_check(document, trust, &key_id);

    if (json_is_object(signature)) {
        json_object_set_new(signature, "checked", json_boolean(trust->count > 0));
        json_object_set_new(signature, "status", json_string(signature_status_name(status)));
        json_object_set(output, SIGNATURE_MEMBER, signature);
    }
    print_json(output);
    json_decref(signature);
    json_decref(output);
}

static void print_signature_text(json_t *document, const struct signature_trust *trust)
{
    const char *key_id = NULL;
    enum signature_status status = signature_check(document, trust, &key_id);

    if (status == SIGNATURE_UNSIGNED)
        printf("signature   none (the manifest is not signed)\n");
    else if (status == SIGNATURE_NOT_CHECKED)
        printf("signature   ed25519 by key id %s, not checked (no --trusted-key)\n", key_id);
    else if (status == SIGNATURE_VALID)
        printf("signature   ed25519 by key id %s, valid: checked with a trusted key\n", key_id);
    else
        printf("signature   %s%s: %s\n", key_id != NULL ? "by key id " : "",
               key_id != NULL ? key_id : "", signature_status_name(status));
}

static void print_show_text(const struct catalog_entry *entry,
                            const struct signature_trust *trust)
{
    const struct manifest *m = &entry->manifest;
    json_t *doc = m->document;
    json_t *contents = json_object_get(doc, "contents");
    json_t *tables = json_object_get(contents, "tables");
    char stored[32], plain[32];
    char name[128], database[512];
    size_t index;
    json_t *table;

    cli_format_bytes(m->stored_bytes, stored, sizeof stored);
    cli_format_bytes(m->plain_bytes, plain, sizeof plain);
    printf("backup      %s\nname        %s\ndatabase    %s\n", m->id,
           one_line(m->name, name, sizeof name), one_line(m->database, database, sizeof database));
    printf("started     %s\nfinished    %s\n",
           json_string_value(json_object_get(doc, "started_at")),
           json_string_value(json_object_get(doc, "finished_at")));
    printf("server      PostgreSQL %s\n",
           json_string_value(json_object_get(json_object_get(doc, "source"), "server_version")));
    printf("object      %s (%s stored, %zu parts; archive %s)\n", m->object_key, stored,
           m->parts.count, plain);
    printf("encryption  %s", m->encrypted ? "xchacha20poly1305-secretstream, recipients" : "none");
    for (size_t i = 0; i < m->recipient_count; i++)
        printf(" %s", m->recipients[i].key_id);
    printf("\nmanifest    %s\n", entry->manifest_key);
    print_signature_text(doc, trust);
    if (m->lock_mode != STORAGE_LOCK_NONE) {
        char until[32];

        manifest_format_time(m->lock_retain_until, until);
        printf("object lock %s until %s\n", storage_lock_mode_name(m->lock_mode), until);
    }
    if (entry->held)
        printf("hold        held since %s by %s on %s: %s\n", hold_field(entry, "held_at"),
               hold_field(entry, "user"), hold_field(entry, "host"),
               hold_field(entry, "reason"));
    printf("\n%-50s %12s %s\n", "TABLE", "ROWS", "DIGEST");
    json_array_foreach(tables, index, table) {
        char qualified[256];

        snprintf(qualified, sizeof qualified, "%s.%s",
                 json_string_value(json_object_get(table, "schema")),
                 json_string_value(json_object_get(table, "name")));
        stow_clean_line(qualified);
        printf("%-50s %12lld %.16s\n", qualified,
               (long long)json_integer_value(json_object_get(table, "rows")),
               json_string_value(json_object_get(table, "digest")));
    }
}

int cmd_show(int argc, char **argv)
{
    struct list_cli cli;
    struct catalog catalog = {0};
    const struct catalog_entry *entry = NULL;
    const char *spec[1] = {NULL};
    int spec_count = 0;
    struct catalog_time at = {0};
    stow_error err = {0};
    storage *store = NULL;

    if (parse_list_command(&cli, "show", argc, argv, spec, 1, &spec_count, &err) != 0)
        return cli_finish(&err);
    if (cli.common.help) {
        fputs(show_usage, stdout);
        return STOW_EXIT_OK;
    }
    if (cli.at != NULL && catalog_parse_time("--at", cli.at, &at, &err) != 0)
        return cli_finish(&err);
    if (spec_count > 0 && cli.at != NULL) {
        cli_usage_error(&err, "show", "give BACKUP or --at TIME, not both");
        return cli_finish(&err);
    }
    if (spec_count == 0 && cli.at == NULL) {
        cli_usage_error(&err, "show", "name the backup: an id, latest, or --at TIME");
        return cli_finish(&err);
    }

    if (cli_open_repository(&cli.common, &store, &err) == 0 &&
        catalog_find(store, spec[0], cli.at != NULL ? &at : NULL, cli.name, &catalog, &entry,
                     &err) == 0) {
        if (cli.json)
            print_show_json(entry->manifest.document, &cli.trust);
        else
            print_show_text(entry, &cli.trust);
    }
    catalog_free(&catalog);
    storage_free(store);
    return cli_finish(&err);
}
