/* The replicate flow: per catalog name, under the replica's lock, each
 * backup the replica lacks is copied, checked and committed. */
#include "replicate/replicate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "catalog/catalog_lock.h"
#include "catalog/hold.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "replicate/object_copy.h"
#include "signature.h"

#define REPORT_MAX_BYTES (16u * 1024 * 1024)
#define HOLD_MAX_BYTES (64u * 1024)

/* Keys and sizes under backups/ of one repository, sorted by key. */
struct key_entry {
    char *key;
    uint64_t size;
};

struct key_index {
    struct key_entry *entries;
    size_t count;
    size_t capacity;
};

struct replicate_state {
    storage *primary;
    storage *replica;
    const struct replicate_options *options;
    struct catalog primary_catalog;
    struct catalog replica_catalog;
    struct key_index primary_keys;
    struct key_index replica_keys;
    catalog_lock *lock;          /* the replica's lock of the name being replicated */
    stow_buf manifest_text;      /* the primary's manifest of the backup in hand */
    stow_buf fresh_text;         /* that manifest read again right before the write */
    struct manifest source;      /* manifest_text, parsed */
    int source_verified;         /* 1: a trusted key's signature of source verified */
    stow_buf locked_text;        /* that manifest with the replica's object_lock member */
    const stow_buf *write_text;  /* what the replica gets: manifest_text or locked_text */
    stow_buf replica_text;
    int replace;                 /* 1: the replica's manifest of the backup is replaced */
    struct signature_trust trust;   /* options->trust and, with those, the signing key */
    struct signature_trust own_key; /* the signing key's public key alone */
    struct replicate_result *result;
};

/* --- key index ------------------------------------------------------------ */

static int index_add(const char *key, const struct storage_object_info *info, void *context)
{
    struct key_index *index = context;

    if (index->count == index->capacity) {
        size_t capacity = index->capacity == 0 ? 256 : index->capacity * 2;
        struct key_entry *grown = realloc(index->entries, capacity * sizeof *grown);

        if (grown == NULL)
            return -1;
        index->entries = grown;
        index->capacity = capacity;
    }
    index->entries[index->count].key = strdup(key);
    if (index->entries[index->count].key == NULL)
        return -1;
    index->entries[index->count].size = info->size;
    index->count++;
    return 0;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(((const struct key_entry *)a)->key, ((const struct key_entry *)b)->key);
}

static void index_free(struct key_index *index)
{
    for (size_t i = 0; i < index->count; i++)
        free(index->entries[i].key);
    free(index->entries);
    memset(index, 0, sizeof *index);
}

static int index_load(storage *store, const char *name, struct key_index *index,
                      stow_error *err)
{
    char prefix[128];
    int rc;

    snprintf(prefix, sizeof prefix, "%s/%s%s", CATALOG_BACKUPS_DIR, name ? name : "",
             name ? "/" : "");
    rc = storage_list(store, prefix, index_add, index, err);
    if (rc != 0 && !stow_error_is_set(err))
        rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing %s", storage_url(store));
    if (rc != 0)
        return -1;
    if (index->count > 0)
        qsort(index->entries, index->count, sizeof *index->entries, compare_keys);
    return 0;
}

/* Returns the index of the first key not below key. */
static size_t index_lower_bound(const struct key_index *index, const char *key)
{
    size_t low = 0;
    size_t high = index->count;

    while (low < high) {
        size_t middle = low + (high - low) / 2;

        if (strcmp(index->entries[middle].key, key) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

static const struct key_entry *index_find(const struct key_index *index, const char *key)
{
    size_t position = index_lower_bound(index, key);

    if (position < index->count && strcmp(index->entries[position].key, key) == 0)
        return &index->entries[position];
    return NULL;
}

/* --- results -------------------------------------------------------------- */

const char *replicate_action_name(enum replicate_action action)
{
    switch (action) {
    case REPLICATE_PRESENT: return "present";
    case REPLICATE_COPIED: return "copied";
    case REPLICATE_REUSED: return "reused";
    case REPLICATE_REPAIRED: return "repaired";
    case REPLICATE_FAILED: return "failed";
    }
    return "unknown";
}

static struct replicate_item *add_item(struct replicate_result *result,
                                       const struct manifest *manifest, stow_error *err)
{
    struct replicate_item *item;

    if (result->count == result->capacity) {
        size_t capacity = result->capacity == 0 ? 16 : result->capacity * 2;
        struct replicate_item *grown = realloc(result->items, capacity * sizeof *grown);

        if (grown == NULL) {
            stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
            return NULL;
        }
        result->items = grown;
        result->capacity = capacity;
    }
    item = &result->items[result->count];
    memset(item, 0, sizeof *item);
    item->id = strdup(manifest->id);
    item->name = strdup(manifest->name);
    item->stored_bytes = manifest->stored_bytes;
    item->parts = manifest->parts.count;
    if (item->id == NULL || item->name == NULL) {
        free(item->id);
        free(item->name);
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        return NULL;
    }
    result->count++;
    return item;
}

static void set_note(struct replicate_item *item, const char *reason)
{
    free(item->note);
    item->note = strdup(reason);
}

void replicate_result_free(struct replicate_result *result)
{
    if (result == NULL)
        return;
    for (size_t i = 0; i < result->count; i++) {
        free(result->items[i].id);
        free(result->items[i].name);
        free(result->items[i].note);
    }
    free(result->items);
    memset(result, 0, sizeof *result);
}

static void count_item(struct replicate_result *result, const struct replicate_item *item)
{
    switch (item->action) {
    case REPLICATE_PRESENT: result->present++; break;
    case REPLICATE_COPIED: result->copied++; break;
    case REPLICATE_REUSED: result->reused++; break;
    case REPLICATE_REPAIRED: result->repaired++; break;
    case REPLICATE_FAILED: result->failed++; break;
    }
    result->reports_copied += item->reports_copied;
}

json_t *replicate_result_json(const struct replicate_result *result, const storage *primary,
                              const storage *replica)
{
    json_t *backups = json_array();

    for (size_t i = 0; i < result->count; i++) {
        const struct replicate_item *item = &result->items[i];
        json_t *entry = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "id", item->id, "name",
                                  item->name, "action", replicate_action_name(item->action),
                                  "stored_bytes", (json_int_t)item->stored_bytes, "parts",
                                  (json_int_t)item->parts, "reports_copied",
                                  (json_int_t)item->reports_copied);

        json_object_set_new(entry, "method", item->method ? json_string(item->method)
                                                          : json_null());
        json_object_set_new(entry, "copy_seconds", json_real(item->copy_seconds));
        json_object_set_new(entry, "check_seconds", json_real(item->check_seconds));
        json_object_set_new(entry, "note", item->note ? json_string(item->note) : json_null());
        if (item->action == REPLICATE_FAILED) {
            json_object_set_new(entry, "error", json_string(item->error.message));
            json_object_set_new(entry, "exit_code", json_integer(item->error.exit_code));
        }
        json_array_append_new(backups, entry);
    }
    json_t *summary;

    summary = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "primary",
                     storage_url(primary), "replica", storage_url(replica), "backups_in_primary",
                     (json_int_t)result->count, "invalid_manifests_in_primary",
                     (json_int_t)result->primary_broken, "present", (json_int_t)result->present,
                     "copied", (json_int_t)result->copied, "reused", (json_int_t)result->reused,
                     "repaired", (json_int_t)result->repaired, "failed",
                     (json_int_t)result->failed, "reports_copied",
                     (json_int_t)result->reports_copied, "backups", backups);
    json_object_set_new(summary, "object_lock",
                        result->object_lock.mode != STORAGE_LOCK_NONE
                            ? manifest_object_lock_to_json(&result->object_lock)
                            : json_null());
    return summary;
}

/* --- one backup ----------------------------------------------------------- */

static const struct catalog_entry *find_replica_entry(const struct replicate_state *state,
                                                      const char *manifest_key)
{
    for (size_t i = 0; i < state->replica_catalog.count; i++) {
        if (strcmp(state->replica_catalog.entries[i].manifest_key, manifest_key) == 0)
            return &state->replica_catalog.entries[i];
    }
    return NULL;
}

/* Copies the primary's verification reports of the backup that the
 * replica lacks. Reports are small, so they go through this host. */
static int copy_reports(struct replicate_state *state, const struct catalog_entry *entry,
                        struct replicate_item *item, stow_error *err)
{
    static const struct storage_put_options create_only = {1, "application/json"};
    size_t directory_len = strlen(entry->manifest_key) - strlen(CATALOG_MANIFEST_FILE);
    char prefix[512];
    stow_buf text;
    int rc = 0;

    snprintf(prefix, sizeof prefix, "%.*s%s/", (int)directory_len, entry->manifest_key,
             CATALOG_VERIFICATIONS_DIR);
    stow_buf_init(&text, REPORT_MAX_BYTES);
    for (size_t i = index_lower_bound(&state->primary_keys, prefix);
         rc == 0 && i < state->primary_keys.count; i++) {
        const char *key = state->primary_keys.entries[i].key;

        if (strncmp(key, prefix, strlen(prefix)) != 0)
            break;
        if (index_find(&state->replica_keys, key) != NULL)
            continue;
        rc = storage_get(state->primary, key, &text, err);
        if (rc == STORAGE_NOT_FOUND) {
            rc = 0; /* removed since the listing */
            continue;
        }
        if (rc == 0)
            rc = storage_put(state->replica, key, text.data, text.len, &create_only, err);
        if (rc == STORAGE_CONFLICT)
            rc = 0; /* another run copied it */
        if (rc == 0)
            item->reports_copied++;
    }
    stow_buf_free(&text);
    return rc;
}

/* Copies the primary's hold of the backup when the replica has none, so
 * that expire on the replica keeps it too. A hold released in the primary
 * stays in the replica: replication never deletes. */
static int copy_hold(struct replicate_state *state, const struct catalog_entry *entry,
                     stow_error *err)
{
    static const struct storage_put_options create_only = {1, "application/json"};
    char key[512];
    stow_buf text;
    int rc;

    if (hold_key(entry, key, sizeof key) != 0 || index_find(&state->primary_keys, key) == NULL ||
        index_find(&state->replica_keys, key) != NULL)
        return 0;
    stow_buf_init(&text, HOLD_MAX_BYTES);
    rc = storage_get(state->primary, key, &text, err);
    if (rc == STORAGE_NOT_FOUND)
        rc = 0; /* released since the listing */
    else if (rc == 0)
        rc = storage_put(state->replica, key, text.data, text.len, &create_only, err);
    if (rc == STORAGE_CONFLICT)
        rc = 0; /* held in the replica meanwhile */
    else if (rc == 0 && text.len > 0)
        stow_log_info("backup %s is held in %s, and now in %s too", entry->manifest.id,
                      storage_url(state->primary), storage_url(state->replica));
    stow_buf_free(&text);
    return rc;
}

static int copy_reports_and_hold(struct replicate_state *state,
                                 const struct catalog_entry *entry, struct replicate_item *item,
                                 stow_error *err)
{
    if (copy_reports(state, entry, item, err) != 0)
        return -1;
    return copy_hold(state, entry, err);
}

/* The Object Lock of what the run writes to the replica, or NULL. */
static const struct storage_object_lock *replica_lock(const struct replicate_state *state)
{
    const struct storage_object_lock *lock = &state->result->object_lock;

    return lock->mode != STORAGE_LOCK_NONE ? lock : NULL;
}

/* Builds the replica's manifest from the primary's bytes. Without a lock it
 * is the same bytes. With one it is the document with the replica's
 * object_lock member, signed again when the primary's manifest was signed. */
static int build_replica_manifest(struct replicate_state *state,
                                  const struct catalog_entry *entry, stow_error *err)
{
    const struct storage_object_lock *lock = replica_lock(state);
    json_error_t parse_error;
    json_t *document;
    char *text = NULL;
    int rc = -1;

    state->write_text = &state->manifest_text;
    if (lock == NULL)
        return 0;

    document = json_loadb((const char *)state->manifest_text.data, state->manifest_text.len,
                          JSON_REJECT_DUPLICATES, &parse_error);
    if (document == NULL)
        return stow_fail(err, STOW_EXIT_VERIFY, "manifest %s in %s is not valid JSON: %s",
                         entry->manifest_key, storage_url(state->primary), parse_error.text);
    json_object_set_new(document, "object_lock", manifest_object_lock_to_json(lock));
    if (json_object_get(document, SIGNATURE_MEMBER) == NULL)
        text = manifest_serialise(document, err);
    else if (state->options->signing_key == NULL) /* signed since the catalog was read */
        stow_fail(err, STOW_EXIT_USAGE, "the manifest of backup %s is signed, and replicate "
                                        "has no --signing-key to sign its locked copy",
                  entry->manifest.id);
    else if (signature_sign(document, state->options->signing_key, err) == 0)
        text = manifest_serialise(document, err);
    if (text != NULL) {
        stow_buf_reset(&state->locked_text);
        rc = stow_buf_append_str(&state->locked_text, text, err);
        state->write_text = &state->locked_text;
    }
    free(text);
    json_decref(document);
    return rc;
}

/* --- the primary's manifest ------------------------------------------------ */

static int same_bytes(const stow_buf *a, const stow_buf *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* Checks the signature of the primary's manifest in state->source before
 * the replica gets it. With trusted keys, only a valid signature by one of
 * them passes. Without, a manifest that is to be signed again for the
 * replica's Object Lock must carry a signature by the signing key itself,
 * the only one this run can check. So a new signature never covers content
 * whose old signature was not checked. Sets state->source_verified. */
static int check_source_signature(struct replicate_state *state, const char *manifest_key,
                                  stow_error *err)
{
    const struct signature_trust *trust = &state->trust;
    int is_signed = json_object_get(state->source.document, SIGNATURE_MEMBER) != NULL;
    int signs_again = replica_lock(state) != NULL && state->options->signing_key != NULL;

    state->source_verified = 0;
    if (trust->count == 0 && signs_again && is_signed)
        trust = &state->own_key;
    if (trust->count > 0) {
        if (signature_check_manifest(&state->source, manifest_key, trust, err) != 0) {
            if (trust == &state->own_key)
                stow_error_prefix(err, "its locked copy would be signed again with key id "
                                       "%s, which needs a signature that this run can check",
                                  state->own_key.keys[0].id);
            return -1;
        }
        state->source_verified = 1;
        return 0;
    }
    if (signs_again && !is_signed)
        stow_log_warn("the manifest of backup %s in %s is not signed, so its copy in %s is not "
                      "signed either",
                      state->source.id, storage_url(state->primary),
                      storage_url(state->replica));
    return 0;
}

/* Reads the primary's manifest of the backup into text. */
static int read_primary_manifest(struct replicate_state *state,
                                 const struct catalog_entry *entry, stow_buf *text,
                                 stow_error *err)
{
    int rc = storage_get(state->primary, entry->manifest_key, text, err);

    if (rc == STORAGE_NOT_FOUND)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "the manifest %s vanished from %s (expired "
                                               "since the listing?)",
                       entry->manifest_key, storage_url(state->primary));
    return rc;
}

/* Takes state->manifest_text as the primary's manifest of the backup:
 * parses it and builds the replica's manifest. Its signature is checked
 * (check_source_signature) only once the replica is to get it, so that a
 * repair run passes over equivalent copies without it. */
static int take_source(struct replicate_state *state, const struct catalog_entry *entry,
                       stow_error *err)
{
    manifest_free(&state->source);
    if (manifest_parse(entry->manifest_key, (const char *)state->manifest_text.data,
                       state->manifest_text.len, &state->source, err) != 0)
        return -1;
    return build_replica_manifest(state, entry, err);
}

/* Returns 1 when the two manifests name the same data object: key, size
 * and every part. */
static int same_object(const struct manifest *a, const struct manifest *b)
{
    if (strcmp(a->object_key, b->object_key) != 0 || a->stored_bytes != b->stored_bytes ||
        a->parts.count != b->parts.count)
        return 0;
    for (size_t i = 0; i < a->parts.count; i++) {
        const struct storage_part *first = &a->parts.parts[i];
        const struct storage_part *second = &b->parts.parts[i];

        if (first->offset != second->offset || first->size != second->size ||
            memcmp(first->sha256, second->sha256, sizeof first->sha256) != 0)
            return 0;
    }
    return 1;
}

/* Reads the primary's manifest again right before the replica's is
 * written, so that a change made during the copy, such as a rekey that
 * added a recipient, reaches the replica. A manifest that changed is taken,
 * and checked as the first one was, when it names the same object. */
static int refresh_source(struct replicate_state *state, const struct catalog_entry *entry,
                          stow_error *err)
{
    struct manifest fresh = {0};
    stow_buf previous;
    int same;

    if (read_primary_manifest(state, entry, &state->fresh_text, err) != 0)
        return -1;
    if (same_bytes(&state->fresh_text, &state->manifest_text))
        return 0;
    if (manifest_parse(entry->manifest_key, (const char *)state->fresh_text.data,
                       state->fresh_text.len, &fresh, err) != 0)
        return -1;
    same = same_object(&fresh, &state->source);
    manifest_free(&fresh);
    if (!same) {
        stow_fail(err, STOW_EXIT_FAILURE, "the manifest of backup %s in %s names another data "
                                          "object than when its copy started",
                  entry->manifest.id, storage_url(state->primary));
        stow_error_hint(err, "run stowage replicate again to copy the backup as it is now");
        return -1;
    }

    stow_log_info("the manifest of backup %s in %s changed while the backup was copied (by a "
                  "rekey, for example); %s gets the current one",
                  entry->manifest.id, storage_url(state->primary), storage_url(state->replica));
    previous = state->manifest_text;
    state->manifest_text = state->fresh_text;
    state->fresh_text = previous;
    if (take_source(state, entry, err) != 0)
        return -1;
    return check_source_signature(state, entry->manifest_key, err);
}

/* Writes the replica's manifest (build_replica_manifest) under the run's
 * Object Lock. A new manifest is written create-only, and one that is
 * already there passes when its bytes are the same. A repair replaces the
 * replica's manifest in one put, so that the replica has a manifest for
 * the backup at every moment. */
static int write_manifest(struct replicate_state *state, const struct catalog_entry *entry,
                          stow_error *err)
{
    static const struct storage_put_options create_only = {1, "application/json"};
    static const struct storage_put_options replace = {0, "application/json"};
    const stow_buf *text = state->write_text;
    int rc;

    if (catalog_lock_check(state->lock, err) != 0)
        return -1;
    rc = storage_put_locked(state->replica, entry->manifest_key, text->data, text->len,
                            state->replace ? &replace : &create_only, replica_lock(state), err);
    if (rc != STORAGE_CONFLICT)
        return rc;

    rc = storage_get(state->replica, entry->manifest_key, &state->replica_text, err);
    if (rc == 0 && (state->replica_text.len != text->len ||
                    memcmp(state->replica_text.data, text->data, text->len) != 0))
        rc = stow_fail(err, STOW_EXIT_FAILURE,
                       "a different manifest appeared at %s in %s while backup %s was copied",
                       entry->manifest_key, storage_url(state->replica), entry->manifest.id);
    else if (rc == STORAGE_NOT_FOUND)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "the manifest at %s in %s conflicted, then "
                                               "vanished",
                       entry->manifest_key, storage_url(state->replica));
    return rc;
}

/* Returns 1 when the replica's manifest text is equivalent to the
 * primary's: the same document, apart from the object_lock member of a
 * copy stored under the replica's own Object Lock and the signature that
 * replicate made for that member. */
static int equivalent_manifests(const stow_buf *primary_text, const stow_buf *replica_text)
{
    json_t *primary = json_loadb((const char *)primary_text->data, primary_text->len,
                                 JSON_REJECT_DUPLICATES, NULL);
    json_t *replica = json_loadb((const char *)replica_text->data, replica_text->len,
                                 JSON_REJECT_DUPLICATES, NULL);
    int same = primary != NULL && replica != NULL;

    if (same) {
        json_t *replica_lock_member = json_object_get(replica, "object_lock");

        if (replica_lock_member != NULL && !json_is_null(replica_lock_member) &&
            !json_equal(replica_lock_member, json_object_get(primary, "object_lock"))) {
            json_object_del(primary, "object_lock");
            json_object_del(replica, "object_lock");
            json_object_del(primary, SIGNATURE_MEMBER);
            json_object_del(replica, SIGNATURE_MEMBER);
        }
        same = json_equal(primary, replica);
    }
    json_decref(primary);
    json_decref(replica);
    return same;
}

/* Returns 1 when the replica's manifest of the backup is equivalent to the
 * primary's (equivalent_manifests), whatever the run's Object Lock. Fills
 * err and returns -1 when the manifest cannot be read. */
static int replica_manifest_matches(struct replicate_state *state,
                                    const struct catalog_entry *entry, stow_error *err)
{
    int rc = storage_get(state->replica, entry->manifest_key, &state->replica_text, err);

    if (rc == STORAGE_NOT_FOUND)
        return 0;
    if (rc != 0)
        return -1;
    return same_bytes(&state->replica_text, &state->manifest_text) ||
           equivalent_manifests(&state->manifest_text, &state->replica_text);
}

/* Decides, for a backup that the replica has, whether it passes the repair
 * check. Returns 1 when it passes, 0 when it must be copied again (the
 * reason goes to item->note, and *object_failed is 1 when the object itself
 * failed), -1 on a failure that is not about the copy. */
static int repair_check(struct replicate_state *state, const struct catalog_entry *entry,
                        struct replicate_item *item, int *object_failed, stow_error *err)
{
    stow_error check_err = {0};
    int matches = replica_manifest_matches(state, entry, err);

    *object_failed = 0;

    if (matches < 0)
        return -1;
    if (!matches) {
        set_note(item, "the replica's manifest differs from the primary's");
        return 0;
    }
    if (object_check(state->replica, &entry->manifest, &item->check_seconds, &check_err) == 0)
        return 1;
    if (check_err.exit_code != STOW_EXIT_VERIFY) {
        *err = check_err;
        return -1;
    }
    set_note(item, check_err.message);
    *object_failed = 1;
    return 0;
}

/* Puts an object that an earlier run left, and that passed the check, under
 * the run's Object Lock, which that run may not have asked for. Returns 1,
 * or -1 on failure. */
static int lock_reused_object(struct replicate_state *state, const struct catalog_entry *entry,
                              stow_error *err)
{
    int rc;

    if (replica_lock(state) == NULL)
        return 1;
    rc = storage_lock_object(state->replica, entry->manifest.object_key, replica_lock(state),
                             err);
    if (rc == STORAGE_NOT_FOUND)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "object %s vanished from %s after its check",
                       entry->manifest.object_key, storage_url(state->replica));
    return rc == 0 ? 1 : -1;
}

/* Checks an object that an earlier run, or another tool, left under the
 * backup's key. Returns 1 when it is a complete copy of the backup. */
static int reuse_existing_object(struct replicate_state *state,
                                 const struct catalog_entry *entry, struct replicate_item *item,
                                 stow_error *err)
{
    const struct key_entry *existing = index_find(&state->replica_keys,
                                                  entry->manifest.object_key);
    stow_error check_err = {0};
    char reason[STOW_ERROR_MESSAGE_MAX + 64];

    if (existing == NULL)
        return 0;
    if (existing->size == entry->manifest.stored_bytes &&
        object_check(state->replica, &entry->manifest, &item->check_seconds, &check_err) == 0)
        return lock_reused_object(state, entry, err);
    if (check_err.exit_code != 0 && check_err.exit_code != STOW_EXIT_VERIFY) {
        *err = check_err;
        return -1;
    }
    if (check_err.exit_code == 0)
        snprintf(reason, sizeof reason, "the object under the backup's key has %llu bytes, "
                                        "the backup %llu: it is not a copy of the backup",
                 (unsigned long long)existing->size,
                 (unsigned long long)entry->manifest.stored_bytes);
    else
        snprintf(reason, sizeof reason, "the object under the backup's key is not a copy of "
                                        "the backup: %s",
                 check_err.message);
    stow_log_warn("backup %s: %s in %s; replacing it with a copy", entry->manifest.id, reason,
                  storage_url(state->replica));
    if (item->note == NULL)
        set_note(item, reason);
    return 0;
}

/* Copies the data object, checks the copy, copies the reports and the
 * hold, and commits the manifest. object_failed 1 skips the check of an
 * object already under the key, which has just failed it. */
static int copy_backup(struct replicate_state *state, const struct catalog_entry *entry,
                       struct replicate_item *item, int object_failed, stow_error *err)
{
    struct object_copy_stats stats;
    int reused = object_failed ? 0 : reuse_existing_object(state, entry, item, err);

    if (reused < 0)
        return -1;
    if (!reused) {
        if (object_copy(state->primary, state->replica, &entry->manifest,
                        !state->options->stream, replica_lock(state), &stats, err) != 0)
            return -1;
        item->method = stats.method;
        item->copy_seconds = stats.seconds;
        if (object_check(state->replica, &entry->manifest, &item->check_seconds, err) != 0) {
            stow_error_prefix(err, "the copy failed its check");
            stow_error_hint(err, "check the primary's object with stowage verify --repo %s %s",
                            storage_url(state->primary), entry->manifest.id);
            return -1;
        }
    }
    if (copy_reports_and_hold(state, entry, item, err) != 0 ||
        refresh_source(state, entry, err) != 0 || write_manifest(state, entry, err) != 0)
        return -1;

    if (item->action != REPLICATE_REPAIRED)
        item->action = reused ? REPLICATE_REUSED : REPLICATE_COPIED;
    return 0;
}

static void log_outcome(const struct replicate_state *state, const struct replicate_item *item)
{
    double mib = (double)item->stored_bytes / (1024.0 * 1024.0);

    if (item->action == REPLICATE_PRESENT) {
        stow_log_detail("backup %s is already in %s%s", item->id, storage_url(state->replica),
                        item->check_seconds > 0 ? " and passed its check" : "");
        return;
    }
    if (item->action == REPLICATE_REPAIRED && item->method == NULL) {
        stow_log_info("backup %s: replaced its manifest in %s with the primary's; its object "
                      "there passed its check in %.1f s and was kept",
                      item->id, storage_url(state->replica), item->check_seconds);
        return;
    }
    if (item->method == NULL) {
        stow_log_info("backup %s: kept the complete object already in %s (checked in %.1f s) "
                      "and wrote its manifest",
                      item->id, storage_url(state->replica), item->check_seconds);
        return;
    }
    stow_log_info("backup %s %s to %s: %zu parts, %.1f MiB %s in %.1f s (%.1f MiB/s), checked "
                  "in %.1f s",
                  item->id, item->action == REPLICATE_REPAIRED ? "copied again" : "copied",
                  storage_url(state->replica), item->parts, mib, item->method,
                  item->copy_seconds,
                  item->copy_seconds > 0 ? mib / item->copy_seconds : 0.0, item->check_seconds);
}

/* Fails when replacing the replica's manifest of a backup would lose what
 * protects it there. That is the replica's own Object Lock, which a run
 * without object_lock_days would not set again. It is also a signature,
 * when the replacement differs and its own signature was not checked.
 * manifest_differs is 0 when only the object is copied again. */
static int check_replacement(const struct replicate_state *state,
                             const struct catalog_entry *replica_entry, int manifest_differs,
                             stow_error *err)
{
    const struct manifest *current = &replica_entry->manifest;
    json_t *signature = json_object_get(current->document, SIGNATURE_MEMBER);
    const char *key_id = json_string_value(json_object_get(signature, "key_id"));
    int own_lock = current->lock_mode != STORAGE_LOCK_NONE &&
                   (current->lock_mode != state->source.lock_mode ||
                    current->lock_retain_until != state->source.lock_retain_until);
    char until[32];

    if (own_lock && current->lock_retain_until > time(NULL) && replica_lock(state) == NULL) {
        manifest_format_time(current->lock_retain_until, until);
        stow_fail(err, STOW_EXIT_USAGE,
                  "backup %s in %s is stored under S3 Object Lock (%s until %s), and a repair "
                  "without --object-lock-days would replace it with an unlocked copy",
                  current->id, storage_url(state->replica),
                  storage_lock_mode_name(current->lock_mode), until);
        stow_error_hint(err, "run replicate --repair with the --object-lock-days%s of the runs "
                             "that copied it",
                        signature != NULL ? " and --signing-key" : "");
        return -1;
    }
    if (!manifest_differs || signature == NULL || state->source_verified)
        return 0;
    stow_fail(err, STOW_EXIT_VERIFY,
              "the manifest of backup %s in %s is signed (key id %s) and differs from the "
              "primary's, whose signature this run did not check, so it was kept",
              current->id, storage_url(state->replica), key_id != NULL ? key_id : "none");
    stow_error_hint(err, "pass --trusted-key with the signing public key of the primary's "
                         "manifests so that --repair can check the one that would replace it");
    return -1;
}

/* Checks a backup that the replica has, and repairs it when it fails: the
 * object is copied again when it failed, and the manifest is replaced. */
static int repair_backup(struct replicate_state *state, const struct catalog_entry *entry,
                         const struct catalog_entry *replica_entry, struct replicate_item *item,
                         stow_error *err)
{
    int object_failed = 0;
    int rc = repair_check(state, entry, item, &object_failed, err);

    item->action = REPLICATE_PRESENT;
    if (rc < 0)
        return -1;
    if (rc == 1)
        return copy_reports_and_hold(state, entry, item, err);

    if (check_source_signature(state, entry->manifest_key, err) != 0 ||
        check_replacement(state, replica_entry, !object_failed, err) != 0)
        return -1;
    stow_log_warn("backup %s in %s failed the repair check (%s); it is repaired",
                  entry->manifest.id, storage_url(state->replica), item->note);
    state->replace = 1;
    item->action = REPLICATE_REPAIRED;
    return copy_backup(state, entry, item, object_failed, err);
}

/* Brings one backup of the primary into the replica. */
static int replicate_backup(struct replicate_state *state, const struct catalog_entry *entry,
                            struct replicate_item *item, stow_error *err)
{
    const struct catalog_entry *replica_entry = find_replica_entry(state, entry->manifest_key);

    stow_log_set_context("backup_id", entry->manifest.id);
    state->replace = 0;
    if (replica_entry != NULL && !state->options->repair) {
        item->action = REPLICATE_PRESENT;
        return copy_reports_and_hold(state, entry, item, err);
    }

    /* The primary's manifest, to compare and write. */
    if (read_primary_manifest(state, entry, &state->manifest_text, err) != 0 ||
        take_source(state, entry, err) != 0)
        return -1;

    /* With repair, a backup the replica has is checked first. */
    if (replica_entry != NULL)
        return repair_backup(state, entry, replica_entry, item, err);

    if (check_source_signature(state, entry->manifest_key, err) != 0)
        return -1;

    /* An invalid manifest under the key is replaced only on request. */
    if (index_find(&state->replica_keys, entry->manifest_key) != NULL) {
        if (!state->options->repair) {
            stow_fail(err, STOW_EXIT_VERIFY, "%s holds an invalid manifest at %s",
                      storage_url(state->replica), entry->manifest_key);
            stow_error_hint(err, "run stowage replicate --repair to replace it with the "
                                 "primary's");
            return -1;
        }
        set_note(item, "the replica's manifest was invalid");
        stow_log_warn("backup %s in %s has an invalid manifest; it is repaired",
                      entry->manifest.id, storage_url(state->replica));
        state->replace = 1;
        item->action = REPLICATE_REPAIRED;
    }
    return copy_backup(state, entry, item, 0, err);
}

/* --- per name --------------------------------------------------------------- */

/* Replicates the backups of one catalog name, newest first, under the
 * replica's lock of that name. Returns -1 only for an interruption; other
 * failures are recorded in the items. */
static int replicate_name(struct replicate_state *state, const char *name, stow_error *err)
{
    struct catalog_lock_options lock_options = {name, "replicate",
                                                state->options->lock_stale_after};
    const struct catalog *catalog = &state->primary_catalog;
    stow_error lock_err = {0};
    int rc = 0;

    if (catalog_lock_acquire(state->replica, &lock_options, &state->lock, &lock_err) != 0)
        stow_error_prefix(&lock_err, "cannot replicate the backups of %s", name);

    for (size_t i = catalog->count; rc == 0 && i-- > 0;) {
        const struct catalog_entry *entry = &catalog->entries[i];
        struct replicate_item *item;

        if (strcmp(entry->manifest.name, name) != 0)
            continue;
        if (stow_interrupted()) {
            rc = stow_fail_interrupted(err, "replication");
            break;
        }
        item = add_item(state->result, &entry->manifest, err);
        if (item == NULL) {
            rc = -1;
            break;
        }
        if (stow_error_is_set(&lock_err))
            item->error = lock_err;
        else if (replicate_backup(state, entry, item, &item->error) == 0)
            log_outcome(state, item);

        if (stow_error_is_set(&item->error)) {
            item->action = REPLICATE_FAILED;
            if (item->error.exit_code == STOW_EXIT_INTERRUPTED) {
                *err = item->error;
                rc = -1;
            } else if (!stow_error_is_set(&lock_err)) {
                stow_error_prefix(&item->error, "backup %s was not replicated", item->id);
                stow_log_error(&item->error);
            }
        }
        count_item(state->result, item);
    }
    if (stow_error_is_set(&lock_err))
        stow_log_error(&lock_err);
    catalog_lock_release(state->lock);
    state->lock = NULL;
    stow_log_set_context("backup_id", NULL);
    return rc;
}

/* Collects the distinct catalog names of the primary, sorted. */
static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char **distinct_names(const struct catalog *catalog, size_t *count)
{
    const char **names = calloc(catalog->count + 1, sizeof *names);
    size_t distinct = 0;

    *count = 0;
    if (names == NULL)
        return NULL;
    for (size_t i = 0; i < catalog->count; i++)
        names[i] = catalog->entries[i].manifest.name;
    qsort(names, catalog->count, sizeof *names, compare_names);
    for (size_t i = 0; i < catalog->count; i++) {
        if (distinct == 0 || strcmp(names[distinct - 1], names[i]) != 0)
            names[distinct++] = names[i];
    }
    *count = distinct;
    return names;
}

int replicate_reject_unknown_name(storage *primary, const char *name, stow_error *err)
{
    struct catalog catalog = {0};
    const char **names = NULL;
    size_t count = 0;
    stow_buf list;

    stow_buf_init(&list, 4096);
    if (catalog_load(primary, NULL, &catalog, err) == 0) {
        names = distinct_names(&catalog, &count);
        for (size_t i = 0; i < count; i++)
            stow_buf_printf(&list, NULL, "%s%s", i > 0 ? ", " : "", names[i]);
        if (count == 0)
            stow_fail(err, STOW_EXIT_USAGE, "the repository %s has no backups, of %s or of any "
                                            "other name",
                      storage_url(primary), name);
        else
            stow_fail(err, STOW_EXIT_USAGE, "the repository %s has no backups of %s; its "
                                            "catalog names: %.*s",
                      storage_url(primary), name, (int)list.len, (const char *)list.data);
        stow_error_hint(err, "pass one of its names to --name, or leave --name out for every "
                             "name");
    }
    free(names);
    stow_buf_free(&list);
    catalog_free(&catalog);
    return -1;
}

static int load_state(struct replicate_state *state, stow_error *err)
{
    const char *name = state->options->name;

    if (catalog_load(state->primary, name, &state->primary_catalog, err) != 0)
        return -1;
    if (name != NULL && state->primary_catalog.count == 0 && state->primary_catalog.broken == 0)
        return replicate_reject_unknown_name(state->primary, name, err);
    if (catalog_load(state->replica, name, &state->replica_catalog, err) != 0 ||
        index_load(state->primary, name, &state->primary_keys, err) != 0 ||
        index_load(state->replica, name, &state->replica_keys, err) != 0)
        return -1;
    state->result->primary_broken = state->primary_catalog.broken;
    return 0;
}

/* Sets the run's Object Lock and checks, before anything is written, that
 * the replica bucket has Object Lock enabled. */
static int prepare_object_lock(struct replicate_state *state, stow_error *err)
{
    struct storage_object_lock *lock = &state->result->object_lock;
    char until[32];

    if (state->options->object_lock_days <= 0)
        return 0;
    if (storage_check_object_lock(state->replica, err) != 0)
        return -1;
    lock->mode = state->options->object_lock_mode != STORAGE_LOCK_NONE
                     ? state->options->object_lock_mode
                     : STORAGE_LOCK_GOVERNANCE;
    lock->retain_until = time(NULL) + (time_t)state->options->object_lock_days * 86400;
    manifest_format_time(lock->retain_until, until);
    stow_log_info("copies in %s are stored under S3 Object Lock (%s) until %s",
                  storage_url(state->replica), storage_lock_mode_name(lock->mode), until);
    return 0;
}

/* A locked copy changes the manifest's object_lock member, which its
 * signature covers, so a signed manifest that is to be written needs the
 * signing key. Checked before anything is written. */
static int check_signing_key(const struct replicate_state *state, stow_error *err)
{
    const struct catalog *catalog = &state->primary_catalog;

    if (replica_lock(state) == NULL || state->options->signing_key != NULL)
        return 0;
    for (size_t i = 0; i < catalog->count; i++) {
        const struct catalog_entry *entry = &catalog->entries[i];

        if (find_replica_entry(state, entry->manifest_key) != NULL && !state->options->repair)
            continue;
        if (json_object_get(entry->manifest.document, SIGNATURE_MEMBER) == NULL)
            continue;
        stow_fail(err, STOW_EXIT_USAGE,
                  "the manifest of backup %s is signed, and its copy in %s gets an object_lock "
                  "member for the replica's Object Lock, which the signature covers",
                  entry->manifest.id, storage_url(state->replica));
        stow_error_hint(err, "pass --signing-key FILE (a key that restores from the replica "
                             "trust) so that replicate signs the copied manifests again");
        return -1;
    }
    return 0;
}

/* Gathers the keys that check the primary's signatures. With trusted keys
 * the signing key is trusted too, as in rekey. Without, the signing key
 * alone checks the manifests that it signs again. */
static int prepare_trust(struct replicate_state *state, stow_error *err)
{
    const struct replicate_options *options = state->options;
    const struct keys_signing_public *own;

    if (options->trust != NULL)
        state->trust = *options->trust;
    if (options->signing_key == NULL)
        return 0;
    own = keys_signing_secret_public(options->signing_key);
    if (signature_trust_add_key(&state->own_key, own, err) != 0)
        return -1;
    if (state->trust.count == 0)
        return 0;
    return signature_trust_add_key(&state->trust, own, err);
}

static void free_state(struct replicate_state *state)
{
    catalog_free(&state->primary_catalog);
    catalog_free(&state->replica_catalog);
    index_free(&state->primary_keys);
    index_free(&state->replica_keys);
    stow_buf_free(&state->manifest_text);
    stow_buf_free(&state->fresh_text);
    manifest_free(&state->source);
    stow_buf_free(&state->locked_text);
    stow_buf_free(&state->replica_text);
}

static int summarise_failures(const struct replicate_result *result, const storage *replica,
                              stow_error *err)
{
    const stow_error *first = NULL;

    for (size_t i = 0; i < result->count && first == NULL; i++) {
        if (result->items[i].action == REPLICATE_FAILED)
            first = &result->items[i].error;
    }
    if (first == NULL)
        return 0;
    stow_fail(err, first->exit_code, "%zu of %zu backups were not replicated to %s; the first: "
                                     "%s",
              result->failed, result->count, storage_url(replica), first->message);
    if (first->hint[0] != '\0')
        stow_error_hint(err, "%s", first->hint);
    return -1;
}

int replicate_run(storage *primary, storage *replica, const struct replicate_options *options,
                  struct replicate_result *result, stow_error *err)
{
    struct replicate_state state;
    const char **names = NULL;
    size_t name_count = 0;
    int rc;

    memset(&state, 0, sizeof state);
    memset(result, 0, sizeof *result);
    state.primary = primary;
    state.replica = replica;
    state.options = options;
    state.result = result;
    stow_buf_init(&state.manifest_text, MANIFEST_MAX_BYTES);
    stow_buf_init(&state.fresh_text, MANIFEST_MAX_BYTES);
    stow_buf_init(&state.locked_text, MANIFEST_MAX_BYTES);
    stow_buf_init(&state.replica_text, MANIFEST_MAX_BYTES);

    /* Check the replica's Object Lock and gather the trusted keys, then
     * read both catalogs and key listings once. */
    rc = prepare_object_lock(&state, err);
    if (rc == 0)
        rc = prepare_trust(&state, err);
    if (rc == 0)
        rc = load_state(&state, err);
    if (rc == 0)
        rc = check_signing_key(&state, err);
    if (rc == 0) {
        names = distinct_names(&state.primary_catalog, &name_count);
        if (names == NULL)
            rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    if (rc == 0)
        stow_log_info("replicating %zu backups from %s to %s (%zu already there)",
                      state.primary_catalog.count, storage_url(primary), storage_url(replica),
                      state.replica_catalog.count);

    /* Each name under its own lock in the replica. */
    for (size_t i = 0; rc == 0 && i < name_count; i++)
        rc = replicate_name(&state, names[i], err);

    if (rc == 0) {
        stow_log_info("replication to %s finished: %zu copied, %zu kept from an earlier run, "
                      "%zu repaired, %zu already there, %zu failed",
                      storage_url(replica), result->copied, result->reused, result->repaired,
                      result->present, result->failed);
        rc = summarise_failures(result, replica, err);
    }
    free(names);
    free_state(&state);
    return rc;
}
