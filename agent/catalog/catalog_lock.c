/* Catalog locks in the repository: acquire, refresh, take over, release. */
#include "catalog/catalog_lock.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/process.h"
#include "manifest.h"

#define LOCK_FORMAT "stowage-lock"
#define LOCK_VERSION 1
#define ACQUIRE_ATTEMPTS 3
#define REFRESH_MAX_SECONDS 60

struct catalog_lock {
    storage *store;                  /* own handle: the refresh thread's while it runs */
    char name[MANIFEST_NAME_MAX + 1];
    char key[MANIFEST_NAME_MAX + 32];
    struct catalog_lock_holder self; /* what this run writes */
    int64_t stale_after;
    int64_t refresh_interval;        /* seconds */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    int stopping;                    /* guarded by mutex */
    int lost;                        /* guarded by mutex */
    char lost_reason[512];           /* guarded by mutex */
};

static void lock_key(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s.json", CATALOG_LOCKS_DIR, name);
}

static char *lock_document(const struct catalog_lock *lock, stow_error *err)
{
    char started[32];
    char refreshed[32];
    json_t *document;
    char *text;

    manifest_format_time(lock->self.started_at, started);
    manifest_format_time(lock->self.refreshed_at, refreshed);
    document = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "format",
                         LOCK_FORMAT, "format_version", LOCK_VERSION, "name", lock->name,
                         "host", lock->self.host, "boot_id", lock->self.boot_id,
                         "pid_namespace", lock->self.pid_namespace, "pid",
                         (json_int_t)lock->self.pid, "run_id", lock->self.run_id, "command",
                         lock->self.command, "started_at", started, "refreshed_at", refreshed);
    text = document == NULL ? NULL : json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(document);
    if (text == NULL)
        stow_fail(err, STOW_EXIT_FAILURE, "building the lock document of %s failed", lock->name);
    return text;
}

/* Writes this run's lock document under key: the lock itself, or a
 * takeover claim. */
static int write_lock_at(struct catalog_lock *lock, const char *key, int create_only,
                         stow_error *err)
{
    struct storage_put_options options = {create_only, "application/json"};
    char *text = lock_document(lock, err);
    int rc;

    if (text == NULL)
        return -1;
    rc = storage_put(lock->store, key, text, strlen(text), &options, err);
    free(text);
    return rc;
}

static int write_lock(struct catalog_lock *lock, int create_only, stow_error *err)
{
    return write_lock_at(lock, lock->key, create_only, err);
}

static void copy_string(json_t *document, const char *field, char *out, size_t size)
{
    const char *value = json_string_value(json_object_get(document, field));

    snprintf(out, size, "%s", value != NULL ? value : "");
}

/* Fills holder from text. Returns 0 when text is a lock document, else -1. */
static int parse_holder(const stow_buf *text, struct catalog_lock_holder *holder)
{
    json_t *document = json_loadb((const char *)text->data, text->len, JSON_REJECT_DUPLICATES,
                                  NULL);
    const char *format = json_string_value(json_object_get(document, "format"));
    const char *started = json_string_value(json_object_get(document, "started_at"));
    const char *refreshed = json_string_value(json_object_get(document, "refreshed_at"));
    int rc = -1;

    if (format != NULL && strcmp(format, LOCK_FORMAT) == 0 && started != NULL &&
        refreshed != NULL && manifest_parse_time(started, &holder->started_at) == 0 &&
        manifest_parse_time(refreshed, &holder->refreshed_at) == 0 &&
        json_is_string(json_object_get(document, "run_id"))) {
        copy_string(document, "host", holder->host, sizeof holder->host);
        copy_string(document, "boot_id", holder->boot_id, sizeof holder->boot_id);
        copy_string(document, "pid_namespace", holder->pid_namespace,
                    sizeof holder->pid_namespace);
        copy_string(document, "run_id", holder->run_id, sizeof holder->run_id);
        copy_string(document, "command", holder->command, sizeof holder->command);
        holder->pid = (long long)json_integer_value(json_object_get(document, "pid"));
        holder->readable = 1;
        rc = 0;
    }
    json_decref(document);
    return rc;
}

int catalog_lock_read(storage *store, const char *name, struct catalog_lock_holder *holder,
                      stow_error *err)
{
    char key[MANIFEST_NAME_MAX + 32];
    struct storage_object_info info;
    stow_buf text;
    int rc;

    memset(holder, 0, sizeof *holder);
    lock_key(name, key, sizeof key);
    stow_buf_init(&text, CATALOG_LOCK_MAX_BYTES);
    rc = storage_get(store, key, &text, err);
    if (rc == 0 && parse_holder(&text, holder) != 0) {
        /* Not a lock document: judge it by its age alone. */
        rc = storage_head(store, key, &info, err);
        holder->started_at = info.modified;
        holder->refreshed_at = info.modified;
    }
    stow_buf_free(&text);
    return rc;
}

int catalog_lock_is_stale(const struct catalog_lock_holder *holder, time_t now,
                          int64_t stale_after)
{
    return now - holder->refreshed_at > stale_after;
}

void catalog_lock_describe(const struct catalog_lock_holder *holder, char *out, size_t size)
{
    char started[32];
    char refreshed[32];
    int length;

    manifest_format_time(holder->started_at, started);
    manifest_format_time(holder->refreshed_at, refreshed);
    if (!holder->readable)
        length = snprintf(out, size, "an unreadable lock object last modified at %s", refreshed);
    else
        length = snprintf(out, size,
                          "stowage %s on host %s (pid %lld, run %s), started at %s, last "
                          "refreshed at %s",
                          holder->command, holder->host, holder->pid, holder->run_id, started,
                          refreshed);

    /* A host name from the lock object can be long: show where it was cut. */
    if (length > 0 && (size_t)length >= size && size > 4)
        memcpy(out + size - 4, "...", 4);
}

/* --- refresh thread ------------------------------------------------------ */

static void mark_lost(struct catalog_lock *lock, const char *reason)
{
    pthread_mutex_lock(&lock->mutex);
    lock->lost = 1;
    snprintf(lock->lost_reason, sizeof lock->lost_reason, "%s", reason);
    pthread_mutex_unlock(&lock->mutex);
    stow_log(STOW_LOG_ERROR, "lost the lock %s of %s: %s", lock->key, lock->name, reason);
}

/* Rewrites refreshed_at after checking that the lock is still this run's.
 * Returns -1 when the lock is lost. */
static int refresh_once(struct catalog_lock *lock)
{
    struct catalog_lock_holder current;
    stow_error err = {0};
    char reason[512];
    char holder[400];
    int rc = catalog_lock_read(lock->store, lock->name, &current, &err);

    if (rc == STORAGE_NOT_FOUND) {
        mark_lost(lock, "the lock object was deleted by another process");
        return -1;
    }
    if (rc == 0 && strcmp(current.run_id, lock->self.run_id) != 0) {
        catalog_lock_describe(&current, holder, sizeof holder);
        snprintf(reason, sizeof reason, "it now belongs to %s", holder);
        mark_lost(lock, reason);
        return -1;
    }
    if (rc == 0) {
        lock->self.refreshed_at = time(NULL);
        rc = write_lock(lock, 0, &err);
    }
    if (rc != 0)
        stow_log_warn("refreshing the lock %s failed; retrying in %lld s: %s", lock->key,
                      (long long)lock->refresh_interval, err.message);
    else
        stow_log_debug("refreshed the lock %s", lock->key);
    return 0;
}

static void *refresh_thread(void *context)
{
    struct catalog_lock *lock = context;
    struct timespec deadline;

    pthread_mutex_lock(&lock->mutex);
    while (!lock->stopping) {
        int rc = 0;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)lock->refresh_interval;
        while (!lock->stopping && rc == 0)
            rc = pthread_cond_timedwait(&lock->wake, &lock->mutex, &deadline);
        if (lock->stopping)
            break;
        pthread_mutex_unlock(&lock->mutex);
        rc = refresh_once(lock);
        pthread_mutex_lock(&lock->mutex);
        if (rc != 0)
            break;
    }
    pthread_mutex_unlock(&lock->mutex);
    return NULL;
}

/* Starts the refresh thread with every signal blocked, so that SIGINT and
 * SIGTERM reach the main thread. */
static int start_refresh(struct catalog_lock *lock, stow_error *err)
{
    pthread_condattr_t attributes;
    sigset_t all;
    sigset_t previous;
    int rc;

    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&lock->wake, &attributes);
    pthread_condattr_destroy(&attributes);

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    rc = pthread_create(&lock->thread, NULL, refresh_thread, lock);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (rc != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "starting the lock refresh thread failed: %s",
                         strerror(rc));
    lock->thread_started = 1;
    return 0;
}

/* --- acquire and release -------------------------------------------------- */

static int fail_locked(const struct catalog_lock *lock, const struct catalog_lock_holder *holder,
                       stow_error *err)
{
    char description[400];
    char stale[32];

    catalog_lock_describe(holder, description, sizeof description);
    stow_duration_format(lock->stale_after, stale, sizeof stale);
    stow_fail(err, STOW_EXIT_LOCKED, "catalog name %s is locked by %s", lock->name, description);
    stow_error_hint(err, "wait for that run to finish. A lock not refreshed for %s "
                         "(--lock-stale-after) is taken over as stale; delete %s by hand only "
                         "when that run is known to be dead", stale, lock->key);
    return -1;
}

/* Returns 1 when the holder ran on self's host, boot and pid namespace,
 * and its pid no longer exists: it was killed without releasing the lock.
 * Holders that recorded no boot id or namespace never qualify. */
static int died_beside(const struct catalog_lock_holder *self,
                       const struct catalog_lock_holder *holder)
{
    return holder->readable && holder->boot_id[0] != '\0' &&
           holder->pid_namespace[0] != '\0' && strcmp(holder->host, self->host) == 0 &&
           strcmp(holder->boot_id, self->boot_id) == 0 &&
           strcmp(holder->pid_namespace, self->pid_namespace) == 0 &&
           stow_pid_is_gone(holder->pid);
}

static int holder_died_here(const struct catalog_lock *lock,
                            const struct catalog_lock_holder *holder)
{
    return died_beside(&lock->self, holder);
}

/* Fills the host, boot id and pid namespace of this process. */
static void fill_identity(struct catalog_lock_holder *self)
{
    if (gethostname(self->host, sizeof self->host) != 0)
        snprintf(self->host, sizeof self->host, "unknown");
    self->host[sizeof self->host - 1] = '\0';
    stow_boot_id(self->boot_id, sizeof self->boot_id);
    stow_pid_namespace(self->pid_namespace, sizeof self->pid_namespace);
}

int catalog_lock_holder_is_dead(const struct catalog_lock_holder *holder)
{
    struct catalog_lock_holder self;

    memset(&self, 0, sizeof self);
    fill_identity(&self);
    return died_beside(&self, holder);
}

/* Returns 1 when two reads of the lock show the same lock object. */
static int same_holder(const struct catalog_lock_holder *a, const struct catalog_lock_holder *b)
{
    return a->readable == b->readable && a->refreshed_at == b->refreshed_at &&
           strcmp(a->run_id, b->run_id) == 0;
}

/* Writes the key of a claim on the stale lock that holder describes:
 * locks/NAME.takeover-RUN_ID, or locks/NAME.takeover-unreadable-TIME for a
 * lock object that is not a lock document. Without the ".json" suffix, gc
 * does not take a claim for a lock. */
static void claim_key(const struct catalog_lock *lock, const struct catalog_lock_holder *holder,
                      char *out, size_t size)
{
    if (holder->readable)
        snprintf(out, size, "%s/%s.takeover-%s", CATALOG_LOCKS_DIR, lock->name, holder->run_id);
    else
        snprintf(out, size, "%s/%s.takeover-unreadable-%lld", CATALOG_LOCKS_DIR, lock->name,
                 (long long)holder->refreshed_at);
}

/* Reads the run that created the claim at key. Returns 1 with claimant
 * filled, 0 when the claim is gone or unreadable, -1 on failure. */
static int read_claimant(const struct catalog_lock *lock, const char *key,
                         struct catalog_lock_holder *claimant, stow_error *err)
{
    stow_buf text;
    int rc;

    memset(claimant, 0, sizeof *claimant);
    stow_buf_init(&text, CATALOG_LOCK_MAX_BYTES);
    rc = storage_get(lock->store, key, &text, err);
    if (rc == 0)
        rc = parse_holder(&text, claimant) == 0;
    else if (rc == STORAGE_NOT_FOUND)
        rc = 0;
    stow_buf_free(&text);
    return rc;
}

/* Deletes a claim left by a run that stopped during its takeover, and
 * claims again. */
static int replace_claim(struct catalog_lock *lock, const char *key, const char *why,
                         stow_error *err)
{
    stow_log_warn("deleting the takeover claim %s, left by a run that stopped during a "
                  "takeover (%s)",
                  key, why);
    if (storage_delete(lock->store, key, err) != 0)
        return -1;
    return write_lock_at(lock, key, 1, err);
}

/* Claims the right to replace a stale lock with a create-only put of its
 * claim key: of several runs that find the same stale lock, only one
 * deletes it. Returns STORAGE_CONFLICT when another run owns the claim.
 * A claim that carries this run's id is its own: an earlier attempt of the
 * create-only put took effect, but its response was lost. A claim whose
 * run died on this host, or older than stale_after, belongs to a run that
 * stopped during its takeover and is replaced. */
static int claim_takeover(struct catalog_lock *lock, const char *key, stow_error *err)
{
    struct catalog_lock_holder claimant;
    struct storage_object_info info;
    int rc = write_lock_at(lock, key, 1, err);

    if (rc != STORAGE_CONFLICT)
        return rc;
    rc = read_claimant(lock, key, &claimant, err);
    if (rc < 0)
        return -1;
    if (rc == 1 && strcmp(claimant.run_id, lock->self.run_id) == 0)
        return 0;
    if (rc == 1 && holder_died_here(lock, &claimant))
        return replace_claim(lock, key, "its run no longer exists on this host", err);

    rc = storage_head(lock->store, key, &info, err);
    if (rc == STORAGE_NOT_FOUND)
        return STORAGE_CONFLICT; /* released: the caller reads the lock again */
    if (rc != 0)
        return -1;
    if (time(NULL) - info.modified <= lock->stale_after)
        return STORAGE_CONFLICT;
    return replace_claim(lock, key, "older than --lock-stale-after", err);
}

static void log_takeover(const struct catalog_lock *lock, const struct catalog_lock_holder *holder,
                         int holder_dead)
{
    char description[400];
    char stale[32];

    catalog_lock_describe(holder, description, sizeof description);
    stow_duration_format(lock->stale_after, stale, sizeof stale);
    if (holder_dead)
        stow_log_warn("taking over the lock %s of %s: its holder, pid %lld on this host, no "
                      "longer exists; it was held by %s",
                      lock->key, lock->name, holder->pid, description);
    else
        stow_log_warn("taking over the stale lock %s of %s (not refreshed for more than %s): "
                      "it was held by %s",
                      lock->key, lock->name, stale, description);
}

/* Replaces a stale lock, or one whose holder died on this host, with this
 * run's: claim, read the lock again, delete it, create this run's with a
 * create-only put, release the claim. Returns 0 when this run holds the
 * lock, 1 when the lock changed meanwhile (the caller starts over), and
 * fails with STOW_EXIT_LOCKED when another run holds the claim. */
static int replace_stale(struct catalog_lock *lock, const struct catalog_lock_holder *holder,
                         int holder_dead, stow_error *err)
{
    struct catalog_lock_holder current;
    char claim[MANIFEST_NAME_MAX + 96];
    stow_error release_err = {0};
    int rc;

    claim_key(lock, holder, claim, sizeof claim);
    rc = claim_takeover(lock, claim, err);
    if (rc == STORAGE_CONFLICT) {
        stow_fail(err, STOW_EXIT_LOCKED, "another run is taking over the stale lock %s of %s "
                                         "at the same time (it holds %s)",
                  lock->key, lock->name, claim);
        stow_error_hint(err, "run again later; the other run holds the lock once it is done");
        return -1;
    }
    if (rc != 0)
        return -1;

    /* Only the claim holder deletes, and only the lock it judged stale. */
    rc = catalog_lock_read(lock->store, lock->name, &current, err);
    if (rc == STORAGE_NOT_FOUND || (rc == 0 && !same_holder(holder, &current))) {
        rc = 1;
    } else if (rc == 0) {
        log_takeover(lock, holder, holder_dead);
        rc = storage_delete(lock->store, lock->key, err);
        if (rc == 0)
            rc = write_lock(lock, 1, err);
        if (rc == STORAGE_CONFLICT)
            rc = 1; /* a new run created it after the delete */
    }

    if (storage_delete(lock->store, claim, &release_err) != 0)
        stow_log_warn("deleting the takeover claim %s failed; it is replaced once older than "
                      "--lock-stale-after: %s",
                      claim, release_err.message);
    return rc;
}

/* Creates the lock object, taking over a stale one. Other runs may
 * compete, so it tries at most ACQUIRE_ATTEMPTS create-only puts. The
 * store has no conditional delete, so a takeover is guarded by a claim
 * (replace_stale): two runs that find the same stale lock cannot both
 * delete it, nor can one delete the lock the other just created. */
static int take_lock(struct catalog_lock *lock, stow_error *err)
{
    struct catalog_lock_holder holder;

    for (int attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
        int rc = write_lock(lock, 1, err);
        int holder_dead;

        if (rc != STORAGE_CONFLICT)
            return rc;
        rc = catalog_lock_read(lock->store, lock->name, &holder, err);
        if (rc == STORAGE_NOT_FOUND)
            continue; /* released since the put */
        if (rc != 0)
            return -1;
        if (strcmp(holder.run_id, lock->self.run_id) == 0) {
            /* An earlier attempt of this put took effect, but its response
             * was lost and the HTTP retry met the lock it had created. */
            stow_log_detail("the lock %s already carries this run's id", lock->key);
            return 0;
        }
        holder_dead = holder_died_here(lock, &holder);
        if (!holder_dead && !catalog_lock_is_stale(&holder, time(NULL), lock->stale_after))
            return fail_locked(lock, &holder, err);
        rc = replace_stale(lock, &holder, holder_dead, err);
        if (rc != 1)
            return rc;
    }
    stow_fail(err, STOW_EXIT_LOCKED, "could not take the lock %s of %s in %d attempts: other "
                                     "runs are taking it at the same time",
              lock->key, lock->name, ACQUIRE_ATTEMPTS);
    return -1;
}

static void fill_self(struct catalog_lock *lock, const char *command)
{
    uint8_t random[8];

    fill_identity(&lock->self);
    lock->self.pid = (long long)getpid();
    randombytes_buf(random, sizeof random);
    manifest_hex(random, sizeof random, lock->self.run_id);
    snprintf(lock->self.command, sizeof lock->self.command, "%s", command);
    lock->self.started_at = time(NULL);
    lock->self.refreshed_at = lock->self.started_at;
    lock->self.readable = 1;
}

static void free_lock(struct catalog_lock *lock)
{
    storage_free(lock->store);
    pthread_mutex_destroy(&lock->mutex);
    free(lock);
}

int catalog_lock_acquire(storage *store, const struct catalog_lock_options *options,
                         catalog_lock **out, stow_error *err)
{
    struct catalog_lock *lock;

    *out = NULL;
    if (catalog_check_name(options->name, err) != 0)
        return -1;
    lock = calloc(1, sizeof *lock);
    if (lock == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    pthread_mutex_init(&lock->mutex, NULL);
    snprintf(lock->name, sizeof lock->name, "%s", options->name);
    lock_key(lock->name, lock->key, sizeof lock->key);
    lock->stale_after = options->stale_after > 0 ? options->stale_after
                                                 : CATALOG_LOCK_STALE_AFTER_DEFAULT;
    lock->refresh_interval = lock->stale_after / 4;
    if (lock->refresh_interval < 1)
        lock->refresh_interval = 1;
    if (lock->refresh_interval > REFRESH_MAX_SECONDS)
        lock->refresh_interval = REFRESH_MAX_SECONDS;
    fill_self(lock, options->command);

    if (storage_open_copy(store, &lock->store, err) != 0 || take_lock(lock, err) != 0) {
        free_lock(lock);
        return -1;
    }
    if (start_refresh(lock, err) != 0) {
        catalog_lock_release(lock);
        return -1;
    }
    stow_log_detail("took the lock %s (run %s)", lock->key, lock->self.run_id);
    *out = lock;
    return 0;
}

int catalog_lock_check(catalog_lock *lock, stow_error *err)
{
    int rc = 0;

    if (lock == NULL)
        return 0;
    pthread_mutex_lock(&lock->mutex);
    if (lock->lost)
        rc = stow_fail(err, STOW_EXIT_LOCKED, "lost the lock %s of %s: %s", lock->key,
                       lock->name, lock->lost_reason);
    pthread_mutex_unlock(&lock->mutex);
    return rc;
}

void catalog_lock_release(catalog_lock *lock)
{
    struct catalog_lock_holder current;
    stow_error err = {0};
    int rc;

    if (lock == NULL)
        return;
    if (lock->thread_started) {
        pthread_mutex_lock(&lock->mutex);
        lock->stopping = 1;
        pthread_cond_signal(&lock->wake);
        pthread_mutex_unlock(&lock->mutex);
        pthread_join(lock->thread, NULL);
        pthread_cond_destroy(&lock->wake);
    }

    rc = catalog_lock_read(lock->store, lock->name, &current, &err);
    if (rc == 0 && strcmp(current.run_id, lock->self.run_id) == 0)
        rc = storage_delete(lock->store, lock->key, &err);
    else if (rc == 0)
        stow_log_warn("leaving the lock %s in place: it belongs to another run now", lock->key);
    if (rc < 0)
        stow_log_warn("releasing the lock %s failed, so it stays until it is taken over as "
                      "stale: %s",
                      lock->key, err.message);
    else
        stow_log_detail("released the lock %s", lock->key);
    free_lock(lock);
}
