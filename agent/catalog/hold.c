/* Placing and releasing holds on backups. */
#include "catalog/hold.h"

#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define HOLD_FORMAT "stowage-hold"
#define HOLD_VERSION 1

int hold_key(const struct catalog_entry *entry, char *out, size_t size)
{
    size_t dir_len = strlen(entry->manifest_key) - strlen(CATALOG_MANIFEST_FILE);
    int len = snprintf(out, size, "%.*s%s", (int)dir_len, entry->manifest_key,
                       CATALOG_HOLD_FILE);

    return len < 0 || (size_t)len >= size ? -1 : 0;
}

static void current_user(char *out, size_t size)
{
    const char *name = getenv("USER");
    struct passwd *entry;

    if (name == NULL || name[0] == '\0') {
        entry = getpwuid(geteuid());
        name = entry != NULL ? entry->pw_name : NULL;
    }
    if (name != NULL)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "uid %ld", (long)geteuid());
}

static json_t *hold_document(const struct catalog_entry *entry, const char *reason)
{
    char host[256] = "unknown";
    char user[256];
    char now[32];

    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    current_user(user, sizeof user);
    manifest_format_time(time(NULL), now);
    return json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "format", HOLD_FORMAT,
                     "format_version", HOLD_VERSION, "backup_id", entry->manifest.id, "name",
                     entry->manifest.name, "reason", reason, "held_at", now, "host", host,
                     "user", user);
}

static int check_reason(const char *reason, stow_error *err)
{
    size_t len = strlen(reason);
    json_t *probe;

    if (len == 0)
        return stow_fail(err, STOW_EXIT_USAGE, "the hold reason is empty: say why the backup "
                                               "must be kept");
    if (len > HOLD_REASON_MAX)
        return stow_fail(err, STOW_EXIT_USAGE, "the hold reason is %zu bytes, over the limit "
                                               "of %d", len, HOLD_REASON_MAX);
    probe = json_stringn(reason, len); /* NULL for invalid UTF-8 */
    if (probe == NULL)
        return stow_fail(err, STOW_EXIT_USAGE, "the hold reason is not valid UTF-8");
    json_decref(probe);
    return 0;
}

int hold_place(storage *store, const struct catalog_entry *entry, const char *reason,
               stow_error *err)
{
    static const struct storage_put_options options = {0, "application/json"};
    json_t *document;
    char key[512];
    char *text;
    int rc;

    if (check_reason(reason, err) != 0)
        return -1;
    if (hold_key(entry, key, sizeof key) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "hold key of %s is too long",
                         entry->manifest_key);

    document = hold_document(entry, reason);
    text = document == NULL ? NULL : json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(document);
    if (text == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "building the hold document failed");
    if (entry->held)
        stow_log_info("replacing the earlier hold of backup %s (reason: %s)", entry->manifest.id,
                      entry->hold_reason != NULL ? entry->hold_reason : "unreadable");
    rc = storage_put(store, key, text, strlen(text), &options, err);
    free(text);
    return rc;
}

int hold_release(storage *store, const struct catalog_entry *entry, stow_error *err)
{
    char key[512];

    if (hold_key(entry, key, sizeof key) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "hold key of %s is too long",
                         entry->manifest_key);
    return storage_delete(store, key, err);
}
