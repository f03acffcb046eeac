/* stowage gc: removes unreferenced objects and abandoned uploads. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_lock.h"
#include "catalog/gc.h"
#include "cli/cli.h"
#include "common/duration.h"
#include "common/log.h"
#include "manifest.h"
#include "scratch_local_gc.h"

enum {
    OPT_OLDER_THAN = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_DRY_RUN,
    OPT_JSON,
    OPT_LOCK_STALE_AFTER,
    OPT_NAME,
    OPT_SCRATCH
};

#define OLDER_THAN_DEFAULT (24 * 3600)

static const char usage[] =
    "Usage: stowage gc --repo URL [--older-than DURATION] [--dry-run] [--json]\n"
    "       stowage gc --scratch [rds] [--rds-region R] [--dry-run]\n"
    "       stowage gc --scratch local [--dry-run] [--json]\n\n"
    "With --scratch or --scratch rds: deletes RDS scratch instances past their\n"
    "stowage:expires-at tag (see stowage snapshot gc-scratch --help); nothing else.\n"
    "With --scratch local: stops and removes local scratch clusters (restore\n"
    "--scratch local) in STOWAGE_SCRATCH_DIR, TMPDIR or /tmp whose stowage process\n"
    "no longer exists, such as one killed with SIGKILL; nothing else.\n\n"
    "Removes what failed or interrupted runs left under backups/: data objects\n"
    "and verification reports of backups without a manifest, and unfinished\n"
    "uploads (S3 multipart uploads, hidden temporary files on file://).\n"
    "Nothing younger than --older-than is removed, nor anything of a catalog name\n"
    "whose lock is fresh (a backup or expire is running; a lock whose process on\n"
    "this host no longer exists protects nothing). On file://, empty backup\n"
    "directories older than --older-than are removed too. Manifests, holds and\n"
    "keys that Stowage did not create are never touched.\n\n"
    "Options:\n"
    "  --older-than DURATION    grace period (default 24h): a number with s,\n"
    "                           m (minutes), h, d or w\n"
    "  --dry-run                report what would be removed, remove nothing\n"
    "  --json                   print the outcome as JSON on stdout\n"
    "  --lock-stale-after DUR   a lock not refreshed for DUR protects nothing\n"
    "                           (default 10m; s, m, h, d or w)\n"
    "  --name NAME              take --repo and the other settings from the\n"
    "                           configuration file's [database NAME] section; gc\n"
    "                           still covers every catalog name in the repository\n\n"
    CLI_REPO_HELP;

struct gc_cli {
    struct cli_common common;
    struct gc_options options;
    int json;
};

static int parse_gc_option(void *context, int code, const char *value, stow_error *err)
{
    struct gc_cli *cli = context;

    switch (code) {
    case OPT_OLDER_THAN:
        return stow_duration_parse("--older-than", value, &cli->options.older_than, err);
    case OPT_DRY_RUN:
        cli->options.dry_run = 1;
        return 0;
    case OPT_JSON:
        cli->json = 1;
        return 0;
    case OPT_LOCK_STALE_AFTER:
        return stow_duration_parse("--lock-stale-after", value, &cli->options.lock_stale_after,
                                   err);
    case OPT_NAME:
        return cli_check_config_section(value, err);
    case OPT_SCRATCH:
        if (strcmp(value, "local") != 0)
            return cli_usage_error(err, "gc", "--scratch takes local or rds");
        return 0;
    default:
        return cli_usage_error(err, "gc", "unknown option");
    }
}

/* Parses gc's arguments with the given option table. Returns 1 after
 * printing the help, -1 on a usage error (err filled). */
static int parse_gc(int argc, char **argv, const struct option *long_options,
                    struct gc_cli *cli, stow_error *err)
{
    memset(cli, 0, sizeof *cli);
    cli_common_init(&cli->common);
    cli->options.older_than = OLDER_THAN_DEFAULT;
    cli->options.lock_stale_after = CATALOG_LOCK_STALE_AFTER_DEFAULT;
    if (cli_parse(argc, argv, "gc", long_options, &cli->common, parse_gc_option, cli, NULL, 0,
                  NULL, err) != 0)
        return -1;
    if (cli->common.help) {
        fputs(usage, stdout);
        return 1;
    }
    return 0;
}

static const char *action_text(const struct gc_item *item, int dry_run)
{
    int upload = item->kind == GC_UPLOAD;

    switch (item->action) {
    case GC_REMOVE:
        if (item->done)
            return upload ? "aborted" : "removed";
        if (dry_run)
            return upload ? "would abort" : "would remove";
        return upload ? "not aborted" : "not removed";
    case GC_KEEP_RECENT:
        return "kept (younger than the grace period)";
    case GC_KEEP_LOCKED:
        return "kept (its catalog name is locked by a running backup, expire, replicate or "
               "rekey)";
    case GC_KEEP_FOREIGN:
        return "kept (not a Stowage container)";
    }
    return "";
}

static void print_text(const struct gc_result *result, const struct gc_options *options)
{
    size_t kept = 0;
    size_t unsized = 0;
    char size[32];
    char unsized_note[96] = "";

    for (size_t i = 0; i < result->count; i++) {
        const struct gc_item *item = &result->items[i];
        char when[32];

        manifest_format_time(item->time, when);
        if (item->kind == GC_UPLOAD)
            printf("%s: upload of %s (upload id %s, initiated %s)\n",
                   action_text(item, options->dry_run), item->key, item->upload_id, when);
        else
            printf("%s: %s (%llu bytes, modified %s)\n", action_text(item, options->dry_run),
                   item->key, (unsigned long long)item->size, when);
        kept += item->action != GC_REMOVE ? 1 : 0;
        unsized += item->action == GC_REMOVE && !item->size_known ? 1 : 0;
    }
    cli_format_bytes(result->bytes, size, sizeof size);
    if (unsized > 0)
        snprintf(unsized_note, sizeof unsized_note,
                 " (not counting %zu S3 multipart uploads, whose size S3 does not list)",
                 unsized);
    printf("gc: %s %zu objects and uploads, %s reclaimed%s, %zu kept%s\n",
           options->dry_run ? "would remove" : "removed", result->removed, size, unsized_note,
           kept, options->dry_run ? "; dry run, nothing was removed" : "");
    if (result->empty_dirs > 0)
        printf("gc: removed %zu empty backup directories\n", result->empty_dirs);
}

/* Prints a JSON document on stdout and releases it. */
static void print_document(json_t *document)
{
    char *text = json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(document);
}

static void print_json(const struct gc_result *result, const struct gc_options *options)
{
    static const char *const actions[] = {"remove", "keep_recent", "keep_locked",
                                          "keep_foreign"};
    json_t *items = json_array();
    json_t *document;

    for (size_t i = 0; i < result->count; i++) {
        const struct gc_item *item = &result->items[i];
        char when[32];

        manifest_format_time(item->time, when);
        json_array_append_new(
            items, json_pack("{s:s, s:s, s:s, s:s?, s:o, s:s, s:b}", "kind",
                             item->kind == GC_UPLOAD ? "upload" : "object", "action",
                             actions[item->action], "key", item->key, "upload_id",
                             item->upload_id, "bytes",
                             item->size_known ? json_integer((json_int_t)item->size)
                                              : json_null(),
                             "time", when, "done", item->done));
    }
    document = json_pack("{s:b, s:I, s:o, s:I, s:I, s:I}", "dry_run", options->dry_run,
                         "older_than_seconds", (json_int_t)options->older_than, "items", items,
                         "removed", (json_int_t)result->removed, "bytes_reclaimed",
                         (json_int_t)result->bytes, "empty_dirs_removed",
                         (json_int_t)result->empty_dirs);
    print_document(document);
}

static const char *scratch_action_text(const struct scratch_gc_item *item, int dry_run)
{
    switch (item->action) {
    case SCRATCH_GC_REMOVE:
        if (item->done)
            return "removed";
        return dry_run ? "would remove" : "not removed";
    case SCRATCH_GC_KEEP_RUNNING:
        return "kept";
    case SCRATCH_GC_KEEP_UNMARKED:
        return "kept (not judged)";
    }
    return "";
}

static size_t count_removable(const struct scratch_gc_result *result)
{
    size_t count = 0;

    for (size_t i = 0; i < result->count; i++)
        count += result->items[i].action == SCRATCH_GC_REMOVE ? 1 : 0;
    return count;
}

static void print_scratch_json(const struct scratch_gc_result *result, int dry_run)
{
    static const char *const actions[] = {"remove", "keep_running", "keep_unmarked"};
    json_t *items = json_array();
    json_t *document;

    for (size_t i = 0; i < result->count; i++) {
        const struct scratch_gc_item *item = &result->items[i];

        json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:b}", "directory",
                                               item->directory, "action", actions[item->action],
                                               "reason", item->reason, "done", item->done));
    }
    document = json_pack("{s:b, s:o, s:I}", "dry_run", dry_run, "items", items, "removed",
                         (json_int_t)result->removed);
    print_document(document);
}

static void print_scratch_text(const struct scratch_gc_result *result, int dry_run)
{
    for (size_t i = 0; i < result->count; i++)
        printf("%s: %s (%s)\n", scratch_action_text(&result->items[i], dry_run),
               result->items[i].directory, result->items[i].reason);
    printf("gc: %s %zu local scratch clusters%s\n", dry_run ? "would remove" : "removed",
           dry_run ? count_removable(result) : result->removed,
           dry_run ? "; dry run, nothing was removed" : "");
}

/* `gc --scratch local` removes local scratch clusters of killed runs. It
 * takes the shared options that apply without a repository: --config,
 * --log-format, --log-level and --help. */
static int run_local_scratch_gc(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"scratch", required_argument, NULL, OPT_SCRATCH},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json", no_argument, NULL, OPT_JSON},
        {"log-format", required_argument, NULL, CLI_OPT_LOG_FORMAT},
        {"log-level", required_argument, NULL, CLI_OPT_LOG_LEVEL},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct scratch_gc_result result = {0};
    struct gc_cli cli;
    stow_error err = {0};
    int rc;

    rc = parse_gc(argc, argv, long_options, &cli, &err);
    if (rc != 0)
        return rc == 1 ? STOW_EXIT_OK : cli_finish(&err);

    if (scratch_local_gc(cli.options.dry_run, &result, &err) == 0) {
        if (cli.json)
            print_scratch_json(&result, cli.options.dry_run);
        else
            print_scratch_text(&result, cli.options.dry_run);
        if (!cli.options.dry_run && result.removed < count_removable(&result)) {
            stow_fail(&err, STOW_EXIT_FAILURE,
                      "%zu abandoned local scratch clusters could not be removed",
                      count_removable(&result) - result.removed);
            stow_error_hint(&err, "see the warnings above; remove what is left by hand");
        }
    }
    scratch_gc_result_free(&result);
    return cli_finish(&err);
}

/* `gc --scratch` removes expired RDS scratch instances instead of
 * repository leftovers: the same work as `snapshot gc-scratch`. */
static int run_scratch_gc(int argc, char **argv)
{
    char **forwarded = calloc((size_t)argc + 2, sizeof *forwarded);
    int count = 0;
    int rc;

    if (forwarded == NULL)
        return STOW_EXIT_FAILURE;
    forwarded[count++] = "snapshot";
    forwarded[count++] = "gc-scratch";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scratch=rds") == 0 ||
            (strcmp(argv[i], "rds") == 0 && strcmp(argv[i - 1], "--scratch") == 0))
            continue;
        if (strcmp(argv[i], "--scratch") != 0)
            forwarded[count++] = argv[i];
    }
    rc = cmd_snapshot(count, forwarded);
    free(forwarded);
    return rc;
}

int cmd_gc(int argc, char **argv)
{
    static const struct option long_options[] = {
        CLI_REPO_LONG_OPTIONS,
        {"older-than", required_argument, NULL, OPT_OLDER_THAN},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json", no_argument, NULL, OPT_JSON},
        {"lock-stale-after", required_argument, NULL, OPT_LOCK_STALE_AFTER},
        {"name", required_argument, NULL, OPT_NAME},
        {NULL, 0, NULL, 0},
    };
    struct gc_cli cli;
    struct gc_result result = {0};
    stow_error err = {0};
    storage *store = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scratch=local") == 0 ||
            (strcmp(argv[i], "--scratch") == 0 && i + 1 < argc &&
             strcmp(argv[i + 1], "local") == 0))
            return run_local_scratch_gc(argc, argv);
        if (strcmp(argv[i], "--scratch") == 0 || strcmp(argv[i], "--scratch=rds") == 0)
            return run_scratch_gc(argc, argv);
    }

    rc = parse_gc(argc, argv, long_options, &cli, &err);
    if (rc != 0)
        return rc == 1 ? STOW_EXIT_OK : cli_finish(&err);

    if (cli_open_repository(&cli.common, &store, &err) == 0 &&
        storage_check(store, cli.options.dry_run ? STORAGE_ACCESS_READ : STORAGE_ACCESS_WRITE,
                      &err) == 0) {
        rc = gc_run(store, &cli.options, &result, &err);
        if (cli.json)
            print_json(&result, &cli.options);
        else if (rc == 0 || result.count > 0)
            print_text(&result, &cli.options);
    }
    gc_result_free(&result);
    storage_free(store);
    return cli_finish(&err);
}
