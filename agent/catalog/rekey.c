/* Key rotation: plan every selected backup under the catalog locks, then
 * replace the manifests. */
#include "catalog/rekey.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "catalog/catalog_lock.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "container.h"

#define KEY_ID_LIST_MAX 1024   /* bytes of a comma-separated list of key ids */

struct rekey_item {
    const char *manifest_key;     /* borrowed from the catalog */
    const char *name;             /* catalog name, borrowed from the catalog */
    struct manifest manifest;     /* read again under the lock, with its own document */
    json_t *recipients;           /* the new encryption.recipients, owned */
    char added[KEY_ID_LIST_MAX];
    char removed[KEY_ID_LIST_MAX];
    char kept[KEY_ID_LIST_MAX];   /* recipients after the change */
    const char *signed_by;        /* key id of the current signature, or NULL */
    int skipped;                  /* an unencrypted backup, with no data key to re-wrap */
    int changed;                  /* recipients or signature change */
};

struct name_lock {
    const char *name;             /* borrowed from the catalog */
    catalog_lock *lock;
};

struct rekey_state {
    storage *store;
    const struct rekey_options *options;
    struct signature_trust trust; /* options->trust and the signing key */
    struct catalog catalog;
    struct rekey_item *items;
    size_t count;
    struct name_lock *locks;
    size_t lock_count;
};

static void id_list_add(char *list, const char *key_id)
{
    size_t used = strlen(list);

    snprintf(list + used, KEY_ID_LIST_MAX - used, "%s%s", used > 0 ? ", " : "", key_id);
}

static int id_listed(const char *const *ids, size_t count, const char *key_id)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(ids[i], key_id) == 0)
            return 1;
    }
    return 0;
}

static json_t *recipient_entry(json_t *recipients, const char *key_id)
{
    size_t index;
    json_t *entry;

    json_array_foreach(recipients, index, entry) {
        const char *entry_id = json_string_value(json_object_get(entry, "key_id"));

        if (entry_id != NULL && strcmp(entry_id, key_id) == 0)
            return entry;
    }
    return NULL;
}

/* --- Options and selection ------------------------------------------------- */

static int check_options(const struct rekey_options *options, stow_error *err)
{
    for (size_t i = 0; i < options->add_count; i++) {
        if (id_listed(options->remove, options->remove_count, options->add[i].id))
            return stow_fail(err, STOW_EXIT_USAGE,
                             "key id %s is both added and removed; give it to one of "
                             "--add-recipient and --remove-recipient",
                             options->add[i].id);
    }
    return 0;
}

static int build_trust(struct rekey_state *state, stow_error *err)
{
    const struct rekey_options *options = state->options;

    if (options->trust != NULL)
        state->trust = *options->trust;
    return signature_trust_add_key(&state->trust,
                                   keys_signing_secret_public(options->signing_key), err);
}

static void add_item(struct rekey_state *state, const struct catalog_entry *entry)
{
    struct rekey_item *item = &state->items[state->count++];

    item->manifest_key = entry->manifest_key;
    item->name = entry->manifest.name;
}

/* Returns 1 when every manifest that the catalog could not read was
 * written by a newer stowage. */
static int all_broken_are_newer(const struct catalog *catalog)
{
    for (size_t i = 0; i < catalog->broken; i++) {
        if (catalog->broken_versions[i] == 0)
            return 0;
    }
    return 1;
}

/* Selects the backups: all of them (of the name, when given) or one. */
static int select_backups(struct rekey_state *state, stow_error *err)
{
    const struct rekey_options *options = state->options;
    const struct catalog_entry *chosen = NULL;

    if (catalog_load(state->store, options->name, &state->catalog, err) != 0)
        return -1;
    /* After a key leak, a backup left behind by --all would keep the old
     * recipient without a word. */
    if (options->all && state->catalog.broken > 0 && all_broken_are_newer(&state->catalog)) {
        stow_fail(err, STOW_EXIT_USAGE,
                  "rekey --all cannot rekey every backup: manifests written by a newer "
                  "stowage: %zu (the first: %s, format_version %d); nothing was changed",
                  state->catalog.broken, state->catalog.broken_keys[0],
                  state->catalog.broken_versions[0]);
        stow_error_hint(err, "upgrade stowage and run rekey --all again");
        return -1;
    }
    if (options->all && state->catalog.broken > 0) {
        stow_fail(err, STOW_EXIT_VERIFY,
                  "rekey --all cannot rekey every backup: unreadable manifests: %zu (the "
                  "first: %s); nothing was changed",
                  state->catalog.broken, state->catalog.broken_keys[0]);
        stow_error_hint(err, "see the warnings above; restore or remove those manifests, or "
                             "rekey the other backups by id");
        return -1;
    }
    if (!options->all &&
        catalog_resolve(&state->catalog, options->spec, NULL, options->name, &chosen, err) != 0)
        return -1;

    state->items = calloc(state->catalog.count > 0 ? state->catalog.count : 1,
                          sizeof *state->items);
    if (state->items == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    for (size_t i = 0; i < state->catalog.count; i++) {
        if (options->all || &state->catalog.entries[i] == chosen)
            add_item(state, &state->catalog.entries[i]);
    }
    return 0;
}

/* --- Locks ------------------------------------------------------------------ */

static catalog_lock *lock_of(const struct rekey_state *state, const char *name)
{
    for (size_t i = 0; i < state->lock_count; i++) {
        if (strcmp(state->locks[i].name, name) == 0)
            return state->locks[i].lock;
    }
    return NULL;
}

/* Takes the lock of every name among the selected backups. */
static int lock_names(struct rekey_state *state, stow_error *err)
{
    struct catalog_lock_options lock_options = {NULL, "rekey",
                                                state->options->lock_stale_after};

    state->locks = calloc(state->count > 0 ? state->count : 1, sizeof *state->locks);
    if (state->locks == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    for (size_t i = 0; i < state->count; i++) {
        struct name_lock *slot = &state->locks[state->lock_count];
        const char *name = state->items[i].name;

        if (lock_of(state, name) != NULL)
            continue;
        lock_options.name = name;
        if (catalog_lock_acquire(state->store, &lock_options, &slot->lock, err) != 0)
            return -1;
        slot->name = name;
        state->lock_count++;
    }
    return 0;
}

static void unlock_names(struct rekey_state *state)
{
    for (size_t i = 0; i < state->lock_count; i++)
        catalog_lock_release(state->locks[i].lock);
    free(state->locks);
    state->locks = NULL;
    state->lock_count = 0;
}

/* --- Planning ----------------------------------------------------------------- */

/* Reads the manifest again, now that its name is locked. */
static int reload_manifest(struct rekey_state *state, struct rekey_item *item, stow_error *err)
{
    stow_buf text;
    int rc;

    stow_buf_init(&text, MANIFEST_MAX_BYTES);
    rc = storage_get(state->store, item->manifest_key, &text, err);
    if (rc == STORAGE_NOT_FOUND)
        rc = stow_fail(err, STOW_EXIT_FAILURE,
                       "manifest %s was deleted while rekey started; run it again",
                       item->manifest_key);
    if (rc == 0)
        rc = manifest_parse(item->manifest_key, (const char *)text.data, text.len,
                            &item->manifest, err);
    stow_buf_free(&text);
    return rc;
}

/* Requires a signature by a trusted key, or none with accept_unsigned. */
static int check_current_signature(struct rekey_state *state, struct rekey_item *item,
                                   stow_error *err)
{
    enum signature_status status =
        signature_check(item->manifest.document, &state->trust, &item->signed_by);

    if (status == SIGNATURE_UNSIGNED && state->options->accept_unsigned)
        return 0;
    if (signature_check_manifest(&item->manifest, item->manifest_key, &state->trust, err) == 0)
        return 0;
    if (status == SIGNATURE_UNSIGNED)
        stow_error_hint(err, "check the backup with stowage verify, then pass "
                             "--accept-unsigned to sign its manifest as it is");
    return -1;
}

/* Opens the data key with the current recipient's secret key. */
static int open_data_key(const struct rekey_state *state, const struct rekey_item *item,
                         uint8_t *data_key, stow_error *err)
{
    const struct manifest *manifest = &item->manifest;
    const struct keys_public *own = keys_secret_public(state->options->secret);
    char ids[KEY_ID_LIST_MAX] = "";

    for (size_t i = 0; i < manifest->recipient_count; i++) {
        if (strcmp(manifest->recipients[i].key_id, own->id) == 0)
            return keys_unwrap(state->options->secret, manifest->recipients[i].wrapped_key,
                               data_key, CONTAINER_DATA_KEY_BYTES, err);
        id_list_add(ids, manifest->recipients[i].key_id);
    }
    stow_fail(err, STOW_EXIT_KEY, "backup %s is not encrypted to key id %s (its recipients: %s)",
              manifest->id, own->id, ids);
    stow_error_hint(err, "pass the secret key of one of those recipients with --key");
    return -1;
}

/* Checks that every key id to remove is a recipient of the backup. */
static int check_removals(const struct rekey_state *state, const struct rekey_item *item,
                          json_t *recipients, stow_error *err)
{
    const struct rekey_options *options = state->options;
    char ids[KEY_ID_LIST_MAX] = "";
    size_t index;
    json_t *entry;

    for (size_t i = 0; i < options->remove_count; i++) {
        /* With --all a backup without the key is one that an earlier,
         * interrupted run already rekeyed: nothing to do for it. */
        if (recipient_entry(recipients, options->remove[i]) != NULL || options->all)
            continue;
        json_array_foreach(recipients, index, entry)
            id_list_add(ids, json_string_value(json_object_get(entry, "key_id")));
        stow_fail(err, STOW_EXIT_USAGE,
                  "backup %s has no recipient with key id %s, so it cannot be removed (its "
                  "recipients: %s)",
                  item->manifest.id, options->remove[i], ids);
        stow_error_hint(err, "name the backups that have it, or leave out --remove-recipient "
                             "%s",
                        options->remove[i]);
        return -1;
    }
    return 0;
}

/* Seals data_key for each added recipient that the backup does not have. */
static int add_recipients(const struct rekey_state *state, struct rekey_item *item,
                          const uint8_t *data_key, stow_error *err)
{
    const struct rekey_options *options = state->options;

    for (size_t i = 0; i < options->add_count; i++) {
        char *wrapped = NULL;

        if (recipient_entry(item->recipients, options->add[i].id) != NULL)
            continue;
        if (keys_wrap(&options->add[i], data_key, CONTAINER_DATA_KEY_BYTES, &wrapped, err) != 0)
            return -1;
        json_array_append_new(item->recipients, json_pack("{s:s, s:s}", "key_id",
                                                          options->add[i].id, "wrapped_key",
                                                          wrapped));
        free(wrapped);
        id_list_add(item->added, options->add[i].id);
    }
    return 0;
}

/* Builds the new recipient list: the current one without the removed key
 * ids, then the added recipients. */
static int plan_recipients(struct rekey_state *state, struct rekey_item *item,
                           const uint8_t *data_key, stow_error *err)
{
    json_t *current =
        json_object_get(json_object_get(item->manifest.document, "encryption"), "recipients");
    size_t index;
    json_t *entry;

    if (check_removals(state, item, current, err) != 0)
        return -1;
    item->recipients = json_array();
    json_array_foreach(current, index, entry) {
        const char *key_id = json_string_value(json_object_get(entry, "key_id"));

        if (id_listed(state->options->remove, state->options->remove_count, key_id))
            id_list_add(item->removed, key_id);
        else
            json_array_append(item->recipients, entry);
    }
    if (add_recipients(state, item, data_key, err) != 0)
        return -1;

    if (json_array_size(item->recipients) == 0) {
        stow_fail(err, STOW_EXIT_USAGE,
                  "removing %s would leave backup %s with no recipient, and then no key could "
                  "open it",
                  item->removed, item->manifest.id);
        stow_error_hint(err, "add the new recipient with --add-recipient PUBFILE");
        return -1;
    }
    json_array_foreach(item->recipients, index, entry)
        id_list_add(item->kept, json_string_value(json_object_get(entry, "key_id")));
    return 0;
}

/* Returns 1 when the backup already has every recipient to add and none
 * to remove: a backup that an interrupted rotation finished. Its data key
 * is then not needed, and the --key of the rotation, which may no longer
 * open it, is not tried. */
static int recipients_done(const struct rekey_state *state, const struct rekey_item *item)
{
    const struct rekey_options *options = state->options;
    json_t *current =
        json_object_get(json_object_get(item->manifest.document, "encryption"), "recipients");

    if (options->add_count == 0 && options->remove_count == 0)
        return 0;
    for (size_t i = 0; i < options->add_count; i++) {
        if (recipient_entry(current, options->add[i].id) == NULL)
            return 0;
    }
    for (size_t i = 0; i < options->remove_count; i++) {
        if (recipient_entry(current, options->remove[i]) != NULL)
            return 0;
    }
    return 1;
}

static int plan_item(struct rekey_state *state, struct rekey_item *item, stow_error *err)
{
    const char *signer = keys_signing_secret_public(state->options->signing_key)->id;
    uint8_t *data_key = NULL;
    int rc = -1;

    if (reload_manifest(state, item, err) != 0 || check_current_signature(state, item, err) != 0)
        return -1;
    if (!item->manifest.encrypted) {
        item->skipped = 1;
        if (state->options->all)
            return 0;
        return stow_fail(err, STOW_EXIT_USAGE,
                         "backup %s is not encrypted, so it has no data key to re-wrap",
                         item->manifest.id);
    }

    data_key = sodium_malloc(CONTAINER_DATA_KEY_BYTES);
    if (data_key == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    if ((recipients_done(state, item) || open_data_key(state, item, data_key, err) == 0) &&
        plan_recipients(state, item, data_key, err) == 0)
        rc = 0;
    sodium_free(data_key);

    item->changed = item->added[0] != '\0' || item->removed[0] != '\0' ||
                    item->signed_by == NULL || strcmp(item->signed_by, signer) != 0;
    return rc;
}

/* Fails when a key id to remove is in none of the backups: a mistyped id,
 * or a removal that is complete. Each backup alone may lack it with --all
 * (see check_removals). */
static int check_removed_somewhere(const struct rekey_state *state, stow_error *err)
{
    const struct rekey_options *options = state->options;

    for (size_t i = 0; i < options->remove_count; i++) {
        size_t found = 0;

        for (size_t j = 0; j < state->count; j++)
            found += strstr(state->items[j].removed, options->remove[i]) != NULL;
        if (found > 0)
            continue;
        stow_fail(err, STOW_EXIT_USAGE,
                  "no backup of the %zu selected has a recipient with key id %s: nothing to "
                  "remove", state->count, options->remove[i]);
        stow_error_hint(err, "check the key id with stowage show; after a complete removal "
                             "there is nothing left to do");
        return -1;
    }
    return 0;
}

/* Plans every item. With several backups it logs each refusal and fails
 * after the last, so that one run shows them all. */
static int plan_all(struct rekey_state *state, stow_error *err)
{
    stow_error first = {0};
    size_t failed = 0;

    for (size_t i = 0; i < state->count; i++) {
        stow_error item_err = {0};

        if (plan_item(state, &state->items[i], &item_err) == 0)
            continue;
        if (state->count == 1) {
            *err = item_err;
            return -1;
        }
        stow_log_error(&item_err);
        if (failed++ == 0)
            first = item_err;
    }
    if (failed == 0)
        return check_removed_somewhere(state, err);
    return stow_fail(err, first.exit_code,
                     "%zu of %zu backups cannot be rekeyed (see the errors above), so none "
                     "was changed",
                     failed, state->count);
}

/* --- Writing ----------------------------------------------------------------- */

static void print_item(const struct rekey_state *state, const struct rekey_item *item)
{
    const struct manifest *manifest = &item->manifest;
    const char *signer = keys_signing_secret_public(state->options->signing_key)->id;

    if (item->skipped) {
        printf("backup %s (%s): not encrypted, skipped\n", manifest->id, manifest->name);
        return;
    }
    if (!item->changed) {
        printf("backup %s (%s): unchanged; recipients %s\n", manifest->id, manifest->name,
               item->kept);
        return;
    }
    printf("backup %s (%s): %sadded %s; removed %s; recipients %s; signed by key id %s\n",
           manifest->id, manifest->name, state->options->dry_run ? "would be rekeyed: " : "",
           item->added[0] ? item->added : "none", item->removed[0] ? item->removed : "none",
           item->kept, signer);
}

/* Reads the manifest back and checks that its signature verifies. */
static int check_written(struct rekey_state *state, const struct rekey_item *item,
                         stow_error *err)
{
    struct rekey_item written = {.manifest_key = item->manifest_key};
    int rc = reload_manifest(state, &written, err);

    if (rc == 0)
        rc = signature_check_manifest(&written.manifest, written.manifest_key, &state->trust,
                                      err);
    manifest_free(&written.manifest);
    return rc;
}

/* Stores text as the manifest. A manifest under S3 Object Lock keeps its
 * retention: the new version gets the same mode and date while that date
 * is ahead. */
static int put_manifest(struct rekey_state *state, const struct rekey_item *item,
                        const char *text, stow_error *err)
{
    static const struct storage_put_options overwrite = {0, "application/json"};
    struct storage_object_lock lock = {item->manifest.lock_mode,
                                       item->manifest.lock_retain_until};
    int locked = lock.mode != STORAGE_LOCK_NONE && lock.retain_until > time(NULL);

    return storage_put_locked(state->store, item->manifest_key, text, strlen(text), &overwrite,
                              locked ? &lock : NULL, err);
}

static int write_item(struct rekey_state *state, struct rekey_item *item, stow_error *err)
{
    json_t *document = item->manifest.document;
    char *text;
    int rc;

    /* Replacing the array frees the strings that manifest.recipients
     * borrowed; nothing reads them after this point. */
    json_object_set(json_object_get(document, "encryption"), "recipients", item->recipients);
    if (signature_sign(document, state->options->signing_key, err) != 0)
        return -1;
    text = manifest_serialise(document, err);
    if (text == NULL)
        return -1;

    rc = catalog_lock_check(lock_of(state, item->name), err);
    if (rc == 0)
        rc = put_manifest(state, item, text, err);
    free(text);
    if (rc == 0)
        rc = check_written(state, item, err);
    if (rc != 0)
        stow_error_prefix(err, "replacing manifest %s failed", item->manifest_key);
    return rc;
}

static int write_all(struct rekey_state *state, stow_error *err)
{
    size_t written = 0;

    for (size_t i = 0; i < state->count; i++) {
        struct rekey_item *item = &state->items[i];

        /* Between manifests: each one written is whole, and a run again
         * picks up the rest. */
        if (stow_interrupted() != 0) {
            stow_fail_interrupted(err, "rekey");
            stow_error_hint(err, "%zu of %zu backups were rekeyed; run the same rekey again "
                                 "for the rest", written, state->count);
            return -1;
        }
        if (!item->skipped && item->changed && write_item(state, item, err) != 0) {
            stow_error_hint(err, "%zu of %zu backups were rekeyed before this failure; "
                                 "run rekey again for the rest",
                            written, state->count);
            return -1;
        }
        written += !item->skipped && item->changed;
        print_item(state, item);
    }
    return 0;
}

static void state_free(struct rekey_state *state)
{
    unlock_names(state);
    for (size_t i = 0; i < state->count; i++) {
        manifest_free(&state->items[i].manifest);
        json_decref(state->items[i].recipients);
    }
    free(state->items);
    catalog_free(&state->catalog);
}

int rekey_run(storage *store, const struct rekey_options *options, stow_error *err)
{
    struct rekey_state state = {.store = store, .options = options};
    int rc = -1;

    if (check_options(options, err) != 0 || build_trust(&state, err) != 0 ||
        select_backups(&state, err) != 0)
        goto done;
    if (state.count == 0) {
        printf("no backups to rekey\n");
        rc = 0;
        goto done;
    }
    if (!options->dry_run && lock_names(&state, err) != 0)
        goto done;
    if (plan_all(&state, err) != 0)
        goto done;

    if (options->dry_run) {
        for (size_t i = 0; i < state.count; i++)
            print_item(&state, &state.items[i]);
        rc = 0;
    } else {
        rc = write_all(&state, err);
    }

done:
    state_free(&state);
    return rc;
}
