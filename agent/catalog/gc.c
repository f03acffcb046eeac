/* Garbage collection of unreferenced objects and unfinished uploads. */
#include "catalog/gc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "catalog/catalog_lock.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "container.h"

#define BACKUP_ID_LENGTH 23

struct string_set {
    char **items;
    size_t count;
    size_t capacity;
};

/* One listed object under backups/. */
struct listed_object {
    char *key;
    struct storage_object_info info;
};

struct object_list {
    struct listed_object *items;
    size_t count;
    size_t capacity;
};

struct gc_state {
    storage *store;
    const struct gc_options *options;
    time_t now;
    struct string_set locked_names;   /* names with a fresh lock */
    struct string_set referenced;     /* object keys of valid manifests, sorted */
    struct string_set manifest_dirs;  /* "backups/NAME/ID/" with a manifest.json, sorted */
    struct object_list objects;
    struct gc_result *result;
    stow_error *err;
};

static int set_add(struct string_set *set, const char *text, size_t len)
{
    if (set->count == set->capacity) {
        size_t capacity = set->capacity == 0 ? 32 : set->capacity * 2;
        char **items = realloc(set->items, capacity * sizeof *items);

        if (items == NULL)
            return -1;
        set->items = items;
        set->capacity = capacity;
    }
    set->items[set->count] = strndup(text, len);
    if (set->items[set->count] == NULL)
        return -1;
    set->count++;
    return 0;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void set_sort(struct string_set *set)
{
    if (set->count > 0)
        qsort(set->items, set->count, sizeof *set->items, compare_strings);
}

/* Searches with bsearch when the set is sorted, else linearly. */
static int set_contains(const struct string_set *set, const char *text, int sorted)
{
    if (sorted)
        return set->count > 0 &&
               bsearch(&text, set->items, set->count, sizeof *set->items, compare_strings) != NULL;
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->items[i], text) == 0)
            return 1;
    }
    return 0;
}

static void set_free(struct string_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        free(set->items[i]);
    free(set->items);
    memset(set, 0, sizeof *set);
}

/* Checks "YYYYMMDDTHHMMSSZ-xxxxxx" as catalog_new_backup_id writes it. */
static int is_backup_id(const char *text, size_t len)
{
    if (len != BACKUP_ID_LENGTH)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        int ok;

        if (i == 8)
            ok = c == 'T';
        else if (i == 15)
            ok = c == 'Z';
        else if (i == 16)
            ok = c == '-';
        else if (i > 16)
            ok = isdigit(c) || (c >= 'a' && c <= 'f');
        else
            ok = isdigit(c);
        if (!ok)
            return 0;
    }
    return 1;
}

/* The parts of a key "backups/NAME/ID/REST". */
struct layout_key {
    char name[MANIFEST_NAME_MAX + 1];
    size_t dir_len;      /* length of "backups/NAME/ID/" */
    const char *rest;    /* what follows the directory */
};

/* Splits key into its parts. Returns 1 when it has the form
 * "backups/NAME/ID/REST" with a valid catalog name and a backup id, else 0. */
static int parse_layout(const char *key, struct layout_key *out)
{
    const char *name = key + strlen(CATALOG_BACKUPS_DIR "/");
    const char *id;
    const char *rest;
    stow_error ignored = {0};

    if (strncmp(key, CATALOG_BACKUPS_DIR "/", strlen(CATALOG_BACKUPS_DIR "/")) != 0)
        return 0;
    id = strchr(name, '/');
    if (id == NULL || (size_t)(id - name) > MANIFEST_NAME_MAX)
        return 0;
    memcpy(out->name, name, (size_t)(id - name));
    out->name[id - name] = '\0';
    id++;
    rest = strchr(id, '/');
    if (rest == NULL || catalog_check_name(out->name, &ignored) != 0 ||
        !is_backup_id(id, (size_t)(rest - id)))
        return 0;
    out->rest = rest + 1;
    out->dir_len = (size_t)(out->rest - key);
    return 1;
}

/* --- what protects a key -------------------------------------------------- */

static int collect_lock(const char *key, const struct storage_object_info *info, void *context)
{
    struct string_set *names = context;
    const char *name = key + strlen(CATALOG_LOCKS_DIR "/");
    size_t len = strlen(name);

    if (len <= 5 || strcmp(name + len - 5, ".json") != 0 || strchr(name, '/') != NULL)
        return 0;
    return set_add(names, name, len - 5);
}

/* Fills locked_names with the names whose lock is fresh and whose holder
 * is not known to be dead. */
static int read_locks(struct gc_state *state)
{
    struct string_set names = {0};
    int rc = storage_list(state->store, CATALOG_LOCKS_DIR "/", collect_lock, &names, state->err);

    if (rc > 0 || (rc < 0 && !stow_error_is_set(state->err)))
        rc = stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory listing the locks");
    for (size_t i = 0; rc == 0 && i < names.count; i++) {
        struct catalog_lock_holder holder;
        char description[400];
        int read = catalog_lock_read(state->store, names.items[i], &holder, state->err);

        if (read == STORAGE_NOT_FOUND)
            continue;
        if (read != 0) {
            rc = -1;
            break;
        }
        if (catalog_lock_is_stale(&holder, state->now, state->options->lock_stale_after))
            continue;
        catalog_lock_describe(&holder, description, sizeof description);
        if (catalog_lock_holder_is_dead(&holder)) {
            stow_log_info("ignoring the lock of catalog name %s: it was held by %s, whose "
                          "process no longer exists", names.items[i], description);
            continue;
        }
        stow_log_info("skipping catalog name %s: it is locked by %s", names.items[i],
                      description);
        if (set_add(&state->locked_names, names.items[i], strlen(names.items[i])) != 0)
            rc = stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory");
    }
    set_free(&names);
    return rc;
}

/* Fills referenced with the object keys of every valid manifest. */
static int read_references(struct gc_state *state)
{
    struct catalog catalog;
    int rc = 0;

    if (catalog_load(state->store, NULL, &catalog, state->err) != 0)
        return -1;
    for (size_t i = 0; rc == 0 && i < catalog.count; i++) {
        const char *key = catalog.entries[i].manifest.object_key;

        if (set_add(&state->referenced, key, strlen(key)) != 0)
            rc = stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory");
    }
    catalog_free(&catalog);
    set_sort(&state->referenced);
    return rc;
}

static int collect_object(const char *key, const struct storage_object_info *info,
                          void *context)
{
    struct gc_state *state = context;
    struct object_list *list = &state->objects;
    struct layout_key layout;

    if (parse_layout(key, &layout) && strcmp(layout.rest, CATALOG_MANIFEST_FILE) == 0 &&
        set_add(&state->manifest_dirs, key, layout.dir_len) != 0)
        return -1;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity == 0 ? 64 : list->capacity * 2;
        struct listed_object *items = realloc(list->items, capacity * sizeof *items);

        if (items == NULL)
            return -1;
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count].key = strdup(key);
    if (list->items[list->count].key == NULL)
        return -1;
    list->items[list->count].info = *info;
    list->count++;
    return 0;
}

/* --- candidates ------------------------------------------------------------ */

static int add_item(struct gc_state *state, enum gc_kind kind, enum gc_action action,
                    const char *key, const char *upload_id, uint64_t size, int size_known,
                    time_t when)
{
    struct gc_result *result = state->result;
    struct gc_item *item;

    if (result->count == result->capacity) {
        size_t capacity = result->capacity == 0 ? 16 : result->capacity * 2;
        struct gc_item *items = realloc(result->items, capacity * sizeof *items);

        if (items == NULL)
            return stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory");
        result->items = items;
        result->capacity = capacity;
    }
    item = &result->items[result->count];
    memset(item, 0, sizeof *item);
    item->kind = kind;
    item->action = action;
    item->key = strdup(key);
    item->upload_id = upload_id != NULL ? strdup(upload_id) : NULL;
    item->size = size;
    item->size_known = size_known;
    item->time = when;
    result->count++;
    if (item->key == NULL || (upload_id != NULL && item->upload_id == NULL))
        return stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory");
    if (action == GC_REMOVE) {
        result->removed++;
        result->bytes += size_known ? size : 0;
    }
    return 0;
}

/* Returns 1 when key starts with the container magic. Any failure to read
 * it counts as "not a container", which keeps the object. */
static int is_container(struct gc_state *state, const char *key, uint64_t size)
{
    stow_error ignored = {0};
    stow_buf head;
    int rc;

    if (size < CONTAINER_MAGIC_BYTES)
        return 0;
    stow_buf_init(&head, CONTAINER_MAGIC_BYTES);
    rc = storage_get_range(state->store, key, 0, CONTAINER_MAGIC_BYTES, &head, &ignored);
    rc = rc == 0 && head.len == CONTAINER_MAGIC_BYTES &&
         memcmp(head.data, CONTAINER_MAGIC, CONTAINER_MAGIC_BYTES) == 0;
    stow_buf_free(&head);
    return rc;
}

static int is_report(const char *rest)
{
    size_t dir_len = strlen(CATALOG_VERIFICATIONS_DIR "/");
    size_t len = strlen(rest);

    return strncmp(rest, CATALOG_VERIFICATIONS_DIR "/", dir_len) == 0 && len > dir_len + 5 &&
           strchr(rest + dir_len, '/') == NULL && strcmp(rest + len - 5, ".json") == 0;
}

static enum gc_action judge(struct gc_state *state, const char *name, time_t when)
{
    if (set_contains(&state->locked_names, name, 0))
        return GC_KEEP_LOCKED;
    if (state->now - when < state->options->older_than)
        return GC_KEEP_RECENT;
    return GC_REMOVE;
}

static int find_objects(struct gc_state *state)
{
    for (size_t i = 0; i < state->objects.count; i++) {
        const struct listed_object *object = &state->objects.items[i];
        struct layout_key layout;
        char dir[512];
        enum gc_action action;
        int data;

        if (!parse_layout(object->key, &layout) || layout.dir_len >= sizeof dir)
            continue;
        data = strcmp(layout.rest, CATALOG_DATA_FILE) == 0;
        if (!data && !is_report(layout.rest))
            continue;
        memcpy(dir, object->key, layout.dir_len);
        dir[layout.dir_len] = '\0';
        if (set_contains(&state->manifest_dirs, dir, 1) ||
            set_contains(&state->referenced, object->key, 1))
            continue;

        action = judge(state, layout.name, object->info.modified);
        if (action == GC_REMOVE && data && !is_container(state, object->key, object->info.size))
            action = GC_KEEP_FOREIGN;
        if (add_item(state, GC_OBJECT, action, object->key, NULL, object->info.size, 1,
                     object->info.modified) != 0)
            return -1;
    }
    return 0;
}

static int collect_upload(const struct storage_upload_info *upload, void *context)
{
    struct gc_state *state = context;
    struct layout_key layout;

    if (!parse_layout(upload->key, &layout)) {
        stow_log_detail("leaving the upload of %s (upload id %s): not in the catalog layout",
                        upload->key, upload->upload_id);
        return 0;
    }
    return add_item(state, GC_UPLOAD, judge(state, layout.name, upload->initiated),
                    upload->key, upload->upload_id, upload->size, upload->size_known,
                    upload->initiated);
}

/* --- removal ---------------------------------------------------------------- */

static int remove_items(struct gc_state *state)
{
    struct gc_result *result = state->result;

    for (size_t i = 0; i < result->count; i++) {
        struct gc_item *item = &result->items[i];
        int rc;

        if (item->action != GC_REMOVE)
            continue;
        if (stow_interrupted())
            return stow_fail_interrupted(state->err, "removing unreferenced objects");
        if (item->kind == GC_OBJECT)
            rc = storage_delete(state->store, item->key, state->err);
        else
            rc = storage_abort_upload(state->store, item->key, item->upload_id, state->err);
        if (rc != 0) {
            stow_error_prefix(state->err, "gc stopped");
            return -1;
        }
        item->done = 1;
        stow_log_detail("%s %s", item->kind == GC_OBJECT ? "removed" : "aborted the upload of",
                        item->key);
    }
    return 0;
}

int gc_run(storage *store, const struct gc_options *options, struct gc_result *result,
           stow_error *err)
{
    struct gc_state state;
    int rc;

    memset(result, 0, sizeof *result);
    memset(&state, 0, sizeof state);
    state.store = store;
    state.options = options;
    state.now = time(NULL);
    state.result = result;
    state.err = err;

    /* What protects a key: a fresh lock of its name, a manifest beside it,
     * a valid manifest naming it. */
    rc = read_locks(&state);
    if (rc == 0)
        rc = read_references(&state);
    if (rc == 0) {
        rc = storage_list(store, CATALOG_BACKUPS_DIR "/", collect_object, &state, err);
        if (rc > 0 || (rc < 0 && !stow_error_is_set(err)))
            rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing the catalog");
        set_sort(&state.manifest_dirs);
    }

    /* The candidates, then their removal. */
    if (rc == 0)
        rc = find_objects(&state);
    if (rc == 0)
        rc = storage_list_uploads(store, CATALOG_BACKUPS_DIR "/", collect_upload, &state, err);
    if (rc == 0 && !options->dry_run)
        rc = remove_items(&state);
    if (rc == 0 && !options->dry_run)
        storage_remove_empty_dirs(store, CATALOG_BACKUPS_DIR "/", state.now - options->older_than,
                                  &result->empty_dirs);

    set_free(&state.locked_names);
    set_free(&state.referenced);
    set_free(&state.manifest_dirs);
    for (size_t i = 0; i < state.objects.count; i++)
        free(state.objects.items[i].key);
    free(state.objects.items);
    return rc == 0 ? 0 : -1;
}

void gc_result_free(struct gc_result *result)
{
    if (result == NULL)
        return;
    for (size_t i = 0; i < result->count; i++) {
        free(result->items[i].key);
        free(result->items[i].upload_id);
    }
    free(result->items);
    memset(result, 0, sizeof *result);
}
