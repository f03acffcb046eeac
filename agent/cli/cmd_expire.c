/* stowage expire: applies a retention policy to each catalog name. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "catalog/catalog_lock.h"
#include "catalog/expire.h"
#include "cli/cli.h"
#include "common/duration.h"
#include "common/log.h"
#include "retention.h"

enum {
    OPT_NAME = CLI_OPT_FIRST_COMMAND_OPTION,
    OPT_KEEP_LAST,
    OPT_KEEP_DAILY,
    OPT_KEEP_WEEKLY,
    OPT_KEEP_MONTHLY,
    OPT_KEEP_WITHIN,
    OPT_TIME_ZONE,
    OPT_DRY_RUN,
    OPT_JSON,
    OPT_LOCK_STALE_AFTER
};

#define KEEP_COUNT_MAX 1000000

static const char usage[] =
    "Usage: stowage expire --repo URL [--name NAME] [--keep-last N] [--keep-daily N]\n"
    "                      [--keep-weekly N] [--keep-monthly N] [--keep-within DURATION]\n"
    "                      [--time-zone ZONE] [--dry-run] [--json]\n\n"
    "Deletes the backups that no keep rule keeps, for each catalog name (or only\n"
    "NAME), after printing the plan: each backup with KEEP or EXPIRE and the rules\n"
    "that keep it. At least one keep rule is required. Whatever the policy, the\n"
    "newest backup, the newest backup whose last verification passed, held\n"
    "backups, and backups under S3 Object Lock until their retention date are\n"
    "kept. The rules are described in docs/RETENTION.md.\n\n"
    "Options:\n"
    "  --name NAME              only the backups of this catalog name (default: every\n"
    "                           name)\n"
    "  --keep-last N            keep the N newest backups\n"
    "  --keep-daily N           keep the newest backup of each of the N newest days\n"
    "                           that have one\n"
    "  --keep-weekly N          the same for ISO 8601 weeks (Monday to Sunday)\n"
    "  --keep-monthly N         the same for calendar months\n"
    "  --keep-within DURATION   keep every backup younger than DURATION: a number\n"
    "                           with s, m (minutes), h, d or w, such as 36h or 2w\n"
    "                           (each --keep rule is off unless given)\n"
    "  --time-zone ZONE         time zone of days, weeks and months (default UTC):\n"
    "                           a tz database name such as Europe/Berlin, or a POSIX\n"
    "                           TZ string\n"
    "  --dry-run                print the plan and delete nothing (takes no lock)\n"
    "  --json                   print the plan and the outcome as JSON on stdout\n"
    "  --lock-stale-after DUR   take over a lock not refreshed for DUR (default 10m;\n"
    "                           s, m, h, d or w)\n\n"
    CLI_REPO_HELP;

struct expire_cli {
    struct cli_common common;
    const char *name;
    struct retention_policy policy;
    int64_t lock_stale_after;
    int dry_run;
    int json;
};

static int parse_count(const char *option, const char *value, int *out, stow_error *err)
{
    long number;

    if (cli_parse_int(option, value, 1, KEEP_COUNT_MAX, &number, err) != 0)
        return -1;
    *out = (int)number;
    return 0;
}

static int parse_expire_option(void *context, int code, const char *value, stow_error *err)
{
    struct expire_cli *cli = context;

    switch (code) {
    case OPT_NAME:
        cli->name = value;
        return 0;
    case OPT_KEEP_LAST:
        return parse_count("--keep-last", value, &cli->policy.keep_last, err);
    case OPT_KEEP_DAILY:
        return parse_count("--keep-daily", value, &cli->policy.keep_daily, err);
    case OPT_KEEP_WEEKLY:
        return parse_count("--keep-weekly", value, &cli->policy.keep_weekly, err);
    case OPT_KEEP_MONTHLY:
        return parse_count("--keep-monthly", value, &cli->policy.keep_monthly, err);
    case OPT_KEEP_WITHIN:
        return stow_duration_parse("--keep-within", value, &cli->policy.keep_within, err);
    case OPT_TIME_ZONE:
        cli->policy.time_zone = value;
        return 0;
    case OPT_DRY_RUN:
        cli->dry_run = 1;
        return 0;
    case OPT_JSON:
        cli->json = 1;
        return 0;
    case OPT_LOCK_STALE_AFTER:
        return stow_duration_parse("--lock-stale-after", value, &cli->lock_stale_after, err);
    default:
        return cli_usage_error(err, "expire", "unknown option");
    }
}

static int parse_arguments(struct expire_cli *cli, int argc, char **argv, stow_error *err)
{
    static const struct option long_options[] = {
        CLI_REPO_LONG_OPTIONS,
        {"name", required_argument, NULL, OPT_NAME},
        {"keep-last", required_argument, NULL, OPT_KEEP_LAST},
        {"keep-daily", required_argument, NULL, OPT_KEEP_DAILY},
        {"keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY},
        {"keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY},
        {"keep-within", required_argument, NULL, OPT_KEEP_WITHIN},
        {"time-zone", required_argument, NULL, OPT_TIME_ZONE},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json", no_argument, NULL, OPT_JSON},
        {"lock-stale-after", required_argument, NULL, OPT_LOCK_STALE_AFTER},
        {NULL, 0, NULL, 0},
    };

    return cli_parse(argc, argv, "expire", long_options, &cli->common, parse_expire_option, cli,
                     NULL, 0, NULL, err);
}

/* Rejects an empty policy or an unknown zone before the repository is
 * opened, and sets TZ before any thread starts (see retention.h). */
static int check_policy(struct expire_cli *cli, stow_error *err)
{
    if (retention_policy_is_empty(&cli->policy)) {
        cli_usage_error(err, "expire", "no retention policy given: pass at least one of "
                                       "--keep-last, --keep-daily, --keep-weekly, "
                                       "--keep-monthly or --keep-within");
        return -1;
    }
    if (cli->name != NULL && catalog_check_name(cli->name, err) != 0)
        return -1;
    if (retention_check_time_zone(cli->policy.time_zone, err) != 0)
        return -1;
    if (cli->policy.time_zone != NULL && strcmp(cli->policy.time_zone, "UTC") != 0) {
        setenv("TZ", cli->policy.time_zone, 1);
        tzset();
    }
    return 0;
}

/* The policy as text ("keep-last 3, keep-daily 7; time zone UTC") and as
 * JSON. */
static void describe_policy(const struct retention_policy *policy, char *out, size_t size,
                            json_t **json)
{
    static const char *const names[] = {"keep-last", "keep-daily", "keep-weekly",
                                        "keep-monthly"};
    const int counts[] = {policy->keep_last, policy->keep_daily, policy->keep_weekly,
                          policy->keep_monthly};
    char within[32] = "";
    stow_buf text;

    *json = json_object();
    stow_buf_init(&text, size - 1);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (counts[i] == 0)
            continue;
        stow_buf_printf(&text, NULL, "%s%s %d", text.len > 0 ? ", " : "", names[i], counts[i]);
        json_object_set_new(*json, names[i], json_integer(counts[i]));
    }
    if (policy->keep_within > 0) {
        stow_duration_format(policy->keep_within, within, sizeof within);
        stow_buf_printf(&text, NULL, "%skeep-within %s", text.len > 0 ? ", " : "", within);
        json_object_set_new(*json, "keep-within", json_string(within));
    }
    stow_buf_printf(&text, NULL, "; time zone %s",
                    policy->time_zone != NULL ? policy->time_zone : "UTC");
    json_object_set_new(*json, "time-zone",
                        json_string(policy->time_zone != NULL ? policy->time_zone : "UTC"));
    snprintf(out, size, "%s", text.data != NULL ? (const char *)text.data : "");
    stow_buf_free(&text);
}

static void print_plan(const struct expire_plan *plan, const char *policy_text)
{
    char now[32];

    manifest_format_time(plan->now, now);
    printf("Expiry plan for %s (%s; now %s)\n", plan->name, policy_text, now);
    if (plan->count == 0) {
        printf("no backups\n");
        return;
    }
    printf("%-23s %-20s %-6s %s\n", "ID", "STARTED (UTC)", "ACTION", "REASONS");
    for (size_t i = plan->count; i-- > 0;) {
        const struct expire_item *item = &plan->items[i];
        char started[32];
        char reasons[512];

        manifest_format_time(item->entry->manifest.started_at, started);
        retention_reasons_text(&item->decision, reasons, sizeof reasons);
        printf("%-23s %-20s %-6s %s\n", item->entry->manifest.id, started,
               item->decision.keep ? "KEEP" : "EXPIRE", reasons);
    }
}

/* Counts the outcome of plan after expire_plan_apply (or a dry run). */
static void summarise(const struct expire_plan *plan, size_t *deleted, size_t *skipped,
                      uint64_t *bytes)
{
    *deleted = 0;
    *skipped = 0;
    *bytes = 0;
    for (size_t i = 0; i < plan->count; i++) {
        const struct expire_item *item = &plan->items[i];

        *deleted += item->deleted ? 1 : 0;
        *skipped += item->skipped != NULL ? 1 : 0;
        *bytes += item->bytes_deleted;
    }
}

static void print_outcome(const struct expire_plan *plan, int dry_run)
{
    size_t deleted, skipped;
    uint64_t bytes;
    char size[32];

    summarise(plan, &deleted, &skipped, &bytes);
    for (size_t i = 0; i < plan->count; i++) {
        if (plan->items[i].skipped != NULL)
            printf("kept %s after all: %s\n", plan->items[i].entry->manifest.id,
                   plan->items[i].skipped);
    }
    if (dry_run) {
        printf("%s: dry run, %zu of %zu backups would expire; nothing was deleted\n",
               plan->name, plan->expire_count, plan->count);
        return;
    }
    cli_format_bytes(bytes, size, sizeof size);
    printf("%s: expired %zu of %zu backups (%s deleted), kept %zu\n", plan->name, deleted,
           plan->count, size, plan->count - deleted);
}

static json_t *plan_json(const struct expire_plan *plan, const stow_error *err)
{
    json_t *backups = json_array();
    size_t deleted, skipped;
    uint64_t bytes;
    char now[32];

    summarise(plan, &deleted, &skipped, &bytes);
    manifest_format_time(plan->now, now);
    for (size_t i = 0; i < plan->count; i++) {
        const struct expire_item *item = &plan->items[i];
        json_t *reasons = json_array();
        char started[32];

        for (size_t r = 0; r < item->decision.reason_count; r++)
            json_array_append_new(reasons, json_string(item->decision.reasons[r]));
        manifest_format_time(item->entry->manifest.started_at, started);
        json_array_append_new(
            backups, json_pack("{s:s, s:s, s:s, s:o, s:I, s:b, s:s?}", "id",
                               item->entry->manifest.id, "started_at", started, "action",
                               item->decision.keep ? "keep" : "expire", "reasons", reasons,
                               "stored_bytes", (json_int_t)item->entry->manifest.stored_bytes,
                               "deleted", item->deleted, "skipped", item->skipped));
    }
    return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:s?}", "name", plan->name, "now",
                     plan->now != 0 ? now : "", "backups", backups,
                     "expire_count", (json_int_t)plan->expire_count, "deleted_count",
                     (json_int_t)deleted, "bytes_deleted", (json_int_t)bytes, "error",
                     stow_error_is_set(err) ? err->message : NULL);
}

/* Plans and applies the policy to one name under its lock. */
static int expire_name(storage *store, const struct expire_cli *cli, const char *name,
                       const char *policy_text, json_t *names_json, stow_error *err)
{
    struct catalog_lock_options lock_options = {name, "expire", cli->lock_stale_after};
    struct expire_plan plan;
    catalog_lock *lock = NULL;
    int rc;

    memset(&plan, 0, sizeof plan);
    snprintf(plan.name, sizeof plan.name, "%s", name);
    rc = cli->dry_run ? 0 : catalog_lock_acquire(store, &lock_options, &lock, err);
    if (rc == 0)
        rc = expire_plan_build(store, name, &cli->policy, time(NULL), &plan, err);
    if (rc == 0 && !cli->json)
        print_plan(&plan, policy_text);
    if (rc == 0 && !cli->dry_run)
        rc = expire_plan_apply(store, &plan, lock, err);
    if (!cli->json && (rc == 0 || plan.items != NULL))
        print_outcome(&plan, cli->dry_run);
    if (cli->json)
        json_array_append_new(names_json, plan_json(&plan, err));

    catalog_lock_release(lock);
    expire_plan_free(&plan);
    return rc;
}

int cmd_expire(int argc, char **argv)
{
    struct expire_cli cli;
    stow_error err = {0};
    storage *store = NULL;
    char **names = NULL;
    size_t name_count = 0;
    char policy_text[256];
    json_t *policy_json = NULL;
    json_t *names_json = json_array();

    /* Each plan line reaches a pipe or a log file as soon as it is
     * decided, so a run that is killed midway leaves what it did. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&cli, 0, sizeof cli);
    cli_common_init(&cli.common);
    if (parse_arguments(&cli, argc, argv, &err) != 0)
        goto done;
    if (cli.common.help) {
        fputs(usage, stdout);
        json_decref(names_json);
        return STOW_EXIT_OK;
    }
    if (check_policy(&cli, &err) != 0)
        goto done;
    describe_policy(&cli.policy, policy_text, sizeof policy_text, &policy_json);

    if (cli_open_repository(&cli.common, &store, &err) != 0 ||
        storage_check(store, cli.dry_run ? STORAGE_ACCESS_READ : STORAGE_ACCESS_WRITE, &err) != 0)
        goto done;
    if (cli.name != NULL) {
        catalog_warn_unknown_name(store, cli.name);
        names = calloc(1, sizeof *names);
        if (names == NULL || (names[0] = strdup(cli.name)) == NULL) {
            stow_fail(&err, STOW_EXIT_FAILURE, "out of memory");
            goto done;
        }
        name_count = 1;
    } else if (catalog_names(store, &names, &name_count, &err) != 0) {
        goto done;
    }

    /* Each name under its own lock; a failure on one name does not stop
     * the others, and the first failure decides the exit code. */
    for (size_t i = 0; i < name_count; i++) {
        stow_error name_err = {0};

        if (expire_name(store, &cli, names[i], policy_text, names_json, &name_err) != 0) {
            if (!stow_error_is_set(&err))
                err = name_err;
            else
                stow_log_error(&name_err);
            if (name_err.exit_code == STOW_EXIT_INTERRUPTED)
                break;
        }
    }
    if (cli.json) {
        json_t *document = json_pack("{s:b, s:O, s:O}", "dry_run", cli.dry_run, "policy",
                                     policy_json, "names", names_json);
        char *text = json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(document);
    }

done:
    catalog_names_free(names, name_count);
    json_decref(policy_json);
    json_decref(names_json);
    storage_free(store);
    return cli_finish(&err);
}
