/* Table data over several COPY connections (copy_loader.h). */
#include "copy_loader.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/interrupt.h"
#include "common/log.h"
#include "pg/pgtools.h"

/* Largest piece handed to one PQputCopyData call. libpq grows its output
 * buffer to hold a whole CopyData message, so smaller pieces keep each
 * connection's buffer small. */
#define COPY_SEND_BYTES (64u * 1024)
/* How often a waiting producer looks for SIGINT and SIGTERM. */
#define WAIT_MILLISECONDS 100

/* The session settings that pg_restore gives each of its connections
 * (_doSetFixedOutputState in pg_backup_archiver.c), without
 * transaction_timeout, which PostgreSQL 17 added and older servers reject.
 * pg_restore takes client_encoding, standard_conforming_strings and
 * search_path from the dump. The encoding is set separately, and the
 * dumps stowage writes come from servers with standard_conforming_strings
 * on and an empty search_path. */
static const char session_sql[] =
    "SET statement_timeout = 0; SET lock_timeout = 0; "
    "SET idle_in_transaction_session_timeout = 0; "
    "SET standard_conforming_strings = on; "
    "SELECT pg_catalog.set_config('search_path', '', false); "
    "SET check_function_bodies = false; SET xmloption = content; "
    "SET client_min_messages = warning; SET row_security = off";

struct load_table {
    char *copy;                    /* "COPY schema.name (cols) FROM stdin;" */
    char name[256];                /* schema.name for messages */
};

struct chunk {
    struct chunk *next;
    const struct load_table *table;
    char *data;                    /* whole rows */
    size_t len;
    size_t cap;
};

struct copy_worker {
    copy_loader *loader;
    PGconn *conn;
    PGcancel *cancel;
    pthread_t thread;
    int thread_started;
    const struct load_table *table;  /* table of the open COPY, or NULL */
};

struct copy_loader {
    pthread_mutex_t mutex;
    pthread_cond_t changed;        /* a chunk was queued or freed, or a worker ended */
    struct chunk *free_chunks;
    struct chunk *queue_head;      /* chunks waiting for a worker, oldest first */
    struct chunk *queue_tail;
    int closed;                    /* no chunk will be queued any more */
    int stopping;                  /* workers leave at once, abandoning their COPY */
    int running;                   /* workers whose thread has not ended */
    int failed;                    /* a worker failed, and error describes the failure */
    stow_error error;
    int finished;                  /* copy_loader_finish succeeded */

    struct chunk *chunks;          /* every chunk, for freeing */
    size_t chunk_count;
    struct chunk *filling;         /* the chunk the producer fills, or NULL */
    struct load_table **tables;    /* every table begun, for freeing */
    size_t table_count;
    size_t table_cap;
    struct load_table *current;

    struct copy_worker *workers;
    int worker_count;
};

/* --- Errors --------------------------------------------------------------- */

/* Fails naming the table and libpq's message, on one line. */
static int fail_table(stow_error *err, const char *action, const struct load_table *table,
                      const char *message)
{
    char line[1024];
    size_t len;

    snprintf(line, sizeof line, "%s", message);
    for (char *at = line; *at != '\0'; at++)
        if (*at == '\n')
            *at = ' ';
    len = strlen(line);
    while (len > 0 && line[len - 1] == ' ')
        line[--len] = '\0';
    return stow_fail(err, STOW_EXIT_FAILURE, "%s table %s failed: %s", action, table->name,
                     line);
}

/* Fails with the server's error in result: its primary message and where
 * COPY stopped ("COPY t, line 101"), without the row's contents, which may
 * be confidential. */
static int fail_table_result(stow_error *err, const char *action,
                             const struct load_table *table, const PGresult *result)
{
    const char *primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    const char *where = PQresultErrorField(result, PG_DIAG_CONTEXT);
    char message[1024];
    size_t where_len;

    if (primary == NULL)
        return fail_table(err, action, table, PQresultErrorMessage(result));
    where_len = where == NULL ? 0 : strcspn(where, ":\n");
    snprintf(message, sizeof message, "%s%s%.*s%s", primary, where_len > 0 ? " (" : "",
             (int)where_len, where_len > 0 ? where : "", where_len > 0 ? ")" : "");
    return fail_table(err, action, table, message);
}

static void record_failure(copy_loader *loader, const stow_error *err)
{
    pthread_mutex_lock(&loader->mutex);
    if (!loader->failed) {
        loader->failed = 1;
        loader->error = *err;
    }
    loader->stopping = 1;
    pthread_cond_broadcast(&loader->changed);
    pthread_mutex_unlock(&loader->mutex);
}

/* Copies the first failure into err. Call with the mutex held. */
static int loader_failure(copy_loader *loader, stow_error *err)
{
    if (err != NULL)
        *err = loader->error;
    return -1;
}

/* --- One connection's COPY ----------------------------------------------- */

static int begin_copy(struct copy_worker *worker, const struct load_table *table,
                      stow_error *err)
{
    PGresult *result = PQexec(worker->conn, table->copy);
    int rc = 0;

    if (PQresultStatus(result) != PGRES_COPY_IN)
        rc = fail_table(err, "starting COPY into", table, PQerrorMessage(worker->conn));
    PQclear(result);
    if (rc == 0)
        worker->table = table;
    return rc;
}

/* Reads the results of an ended COPY. Fails with the first error. */
static int copy_results(struct copy_worker *worker, const char *action, stow_error *err)
{
    PGresult *result;
    int rc = 0;

    while ((result = PQgetResult(worker->conn)) != NULL) {
        if (rc == 0 && PQresultStatus(result) != PGRES_COMMAND_OK)
            rc = fail_table_result(err, action, worker->table, result);
        PQclear(result);
    }
    worker->table = NULL;
    return rc;
}

static int end_copy(struct copy_worker *worker, stow_error *err)
{
    if (PQputCopyEnd(worker->conn, NULL) != 1) {
        fail_table(err, "loading", worker->table, PQerrorMessage(worker->conn));
        worker->table = NULL;
        return -1;
    }
    return copy_results(worker, "loading", err);
}

/* Ends the open COPY with an error, so the server discards its rows. */
static void abandon_copy(struct copy_worker *worker)
{
    stow_error ignored = {0};

    if (worker->table == NULL)
        return;
    if (PQputCopyEnd(worker->conn, "the restore stopped") == 1)
        copy_results(worker, "loading", &ignored);
    worker->table = NULL;
}

static int send_rows(struct copy_worker *worker, const struct chunk *chunk, stow_error *err)
{
    for (size_t sent = 0; sent < chunk->len;) {
        size_t piece = chunk->len - sent < COPY_SEND_BYTES ? chunk->len - sent : COPY_SEND_BYTES;

        /* After an error the server leaves COPY, and libpq reports "no COPY
         * in progress": the error itself is in the result. */
        if (PQputCopyData(worker->conn, chunk->data + sent, (int)piece) != 1) {
            stow_error ignored = {0};

            fail_table(err, "loading", worker->table, PQerrorMessage(worker->conn));
            copy_results(worker, "loading", stow_error_is_set(err) ? &ignored : err);
            return -1;
        }
        sent += piece;
    }
    return 0;
}

static int load_chunk(struct copy_worker *worker, const struct chunk *chunk, stow_error *err)
{
    if (worker->table != chunk->table) {
        if (worker->table != NULL && end_copy(worker, err) != 0)
            return -1;
        if (begin_copy(worker, chunk->table, err) != 0)
            return -1;
    }
    return send_rows(worker, chunk, err);
}

/* --- Chunks ------------------------------------------------------------------ */

/* Returns the next queued chunk, or NULL when the queue is closed and empty
 * or the loader is stopping. */
static struct chunk *next_chunk(copy_loader *loader)
{
    struct chunk *chunk = NULL;

    pthread_mutex_lock(&loader->mutex);
    while (!loader->stopping && loader->queue_head == NULL && !loader->closed)
        pthread_cond_wait(&loader->changed, &loader->mutex);
    if (!loader->stopping && loader->queue_head != NULL) {
        chunk = loader->queue_head;
        loader->queue_head = chunk->next;
        if (loader->queue_head == NULL)
            loader->queue_tail = NULL;
    }
    pthread_mutex_unlock(&loader->mutex);
    return chunk;
}

/* Puts a loaded chunk back, shrunk to the usual size if a long row grew it. */
static void release_chunk(copy_loader *loader, struct chunk *chunk)
{
    if (chunk->cap > COPY_LOADER_CHUNK_BYTES) {
        char *smaller = realloc(chunk->data, COPY_LOADER_CHUNK_BYTES);

        if (smaller != NULL) {
            chunk->data = smaller;
            chunk->cap = COPY_LOADER_CHUNK_BYTES;
        }
    }
    chunk->len = 0;
    chunk->table = NULL;
    pthread_mutex_lock(&loader->mutex);
    chunk->next = loader->free_chunks;
    loader->free_chunks = chunk;
    pthread_cond_broadcast(&loader->changed);
    pthread_mutex_unlock(&loader->mutex);
}

static void queue_chunk(copy_loader *loader, struct chunk *chunk)
{
    chunk->next = NULL;
    pthread_mutex_lock(&loader->mutex);
    if (loader->queue_tail != NULL)
        loader->queue_tail->next = chunk;
    else
        loader->queue_head = chunk;
    loader->queue_tail = chunk;
    pthread_cond_broadcast(&loader->changed);
    pthread_mutex_unlock(&loader->mutex);
}

static void deadline_after(struct timespec *deadline, long milliseconds)
{
    clock_gettime(CLOCK_REALTIME, deadline);
    deadline->tv_nsec += milliseconds * 1000000L;
    deadline->tv_sec += deadline->tv_nsec / 1000000000L;
    deadline->tv_nsec %= 1000000000L;
}

/* Waits for a free chunk. Fails when a worker failed or a signal arrived. */
static struct chunk *take_chunk(copy_loader *loader, stow_error *err)
{
    struct chunk *chunk = NULL;
    struct timespec deadline;

    pthread_mutex_lock(&loader->mutex);
    while (!loader->failed && loader->free_chunks == NULL && !stow_interrupted()) {
        deadline_after(&deadline, WAIT_MILLISECONDS);
        pthread_cond_timedwait(&loader->changed, &loader->mutex, &deadline);
    }
    if (loader->failed)
        loader_failure(loader, err);
    else if (stow_interrupted())
        stow_fail_interrupted(err, "the restore");
    else {
        chunk = loader->free_chunks;
        loader->free_chunks = chunk->next;
    }
    pthread_mutex_unlock(&loader->mutex);
    if (chunk != NULL)
        chunk->table = loader->current;
    return chunk;
}

/* Queues the filled chunk up to its last whole row and carries the rest
 * over into a new one. A chunk without a newline contains part of one long
 * row, so it grows instead. */
static int cut_chunk(copy_loader *loader, stow_error *err)
{
    struct chunk *full = loader->filling;
    char *last_newline = memrchr(full->data, '\n', full->len);
    struct chunk *next;
    size_t rest;

    if (last_newline == NULL) {
        char *larger = realloc(full->data, full->cap * 2);

        if (larger == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory holding a row of table %s "
                             "(%zu bytes so far)", full->table->name, full->len);
        full->data = larger;
        full->cap *= 2;
        return 0;
    }

    next = take_chunk(loader, err);
    if (next == NULL)
        return -1;
    rest = full->len - (size_t)(last_newline + 1 - full->data);
    memcpy(next->data, last_newline + 1, rest);
    next->len = rest;
    full->len -= rest;
    queue_chunk(loader, full);
    loader->filling = next;
    return 0;
}

/* --- Workers ------------------------------------------------------------------ */

static void *run_worker(void *argument)
{
    struct copy_worker *worker = argument;
    copy_loader *loader = worker->loader;
    stow_error err = {0};
    struct chunk *chunk;
    int rc = 0;

    while (rc == 0 && (chunk = next_chunk(loader)) != NULL) {
        rc = load_chunk(worker, chunk, &err);
        release_chunk(loader, chunk);
    }

    pthread_mutex_lock(&loader->mutex);
    if (loader->stopping)
        rc = -1;
    pthread_mutex_unlock(&loader->mutex);
    if (rc == 0 && worker->table != NULL)
        rc = end_copy(worker, &err);
    abandon_copy(worker);
    if (stow_error_is_set(&err))
        record_failure(loader, &err);

    pthread_mutex_lock(&loader->mutex);
    loader->running--;
    pthread_cond_broadcast(&loader->changed);
    pthread_mutex_unlock(&loader->mutex);
    return NULL;
}

static int connect_worker(struct copy_worker *worker, const char *conninfo,
                          const char *encoding, stow_error *err)
{
    PGresult *result;
    int rc = 0;

    if (pgtools_connect(conninfo, &worker->conn, err) != 0)
        return -1;
    result = PQexec(worker->conn, session_sql);
    if (PQresultStatus(result) != PGRES_TUPLES_OK && PQresultStatus(result) != PGRES_COMMAND_OK)
        rc = pgtools_fail(err, STOW_EXIT_DATABASE, worker->conn,
                          "setting up a COPY connection failed");
    PQclear(result);
    if (rc == 0 && PQsetClientEncoding(worker->conn, encoding) != 0)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "the target server rejected the dump's "
                       "encoding %s", encoding);
    if (rc == 0 && (worker->cancel = PQgetCancel(worker->conn)) == NULL)
        rc = stow_fail(err, STOW_EXIT_FAILURE, "out of memory preparing a COPY connection");
    return rc;
}

static int start_workers(copy_loader *loader, const char *conninfo, const char *encoding,
                         stow_error *err)
{
    for (int i = 0; i < loader->worker_count; i++) {
        struct copy_worker *worker = &loader->workers[i];
        int rc;

        worker->loader = loader;
        if (connect_worker(worker, conninfo, encoding, err) != 0)
            return -1;
        pthread_mutex_lock(&loader->mutex);
        rc = pthread_create(&worker->thread, NULL, run_worker, worker);
        if (rc == 0) {
            worker->thread_started = 1;
            loader->running++;
        }
        pthread_mutex_unlock(&loader->mutex);
        if (rc != 0)
            return stow_fail(err, STOW_EXIT_FAILURE, "starting a COPY thread failed: %s",
                             strerror(rc));
    }
    return 0;
}

/* --- Public interface ------------------------------------------------------------ */

static int allocate_chunks(copy_loader *loader, size_t count, stow_error *err)
{
    loader->chunks = calloc(count, sizeof *loader->chunks);
    if (loader->chunks == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating COPY chunks");
    loader->chunk_count = count;
    for (size_t i = 0; i < count; i++) {
        struct chunk *chunk = &loader->chunks[i];

        chunk->data = malloc(COPY_LOADER_CHUNK_BYTES);
        if (chunk->data == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating COPY chunks");
        chunk->cap = COPY_LOADER_CHUNK_BYTES;
        chunk->next = loader->free_chunks;
        loader->free_chunks = chunk;
    }
    return 0;
}

int copy_loader_start(const char *conninfo, int connections, const char *encoding,
                      copy_loader **out, stow_error *err)
{
    copy_loader *loader = calloc(1, sizeof *loader);

    *out = NULL;
    if (loader == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the COPY loader");
    pthread_mutex_init(&loader->mutex, NULL);
    pthread_cond_init(&loader->changed, NULL);
    loader->worker_count = connections;
    loader->workers = calloc((size_t)connections, sizeof *loader->workers);
    if (loader->workers == NULL) {
        copy_loader_free(loader);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating the COPY loader");
    }

    /* One chunk per worker, one queued and one being filled. */
    if (allocate_chunks(loader, (size_t)connections + 2, err) != 0 ||
        start_workers(loader, conninfo, encoding, err) != 0) {
        copy_loader_free(loader);
        return -1;
    }
    stow_log_info("loading table data over %d COPY connections", connections);
    *out = loader;
    return 0;
}

int copy_loader_begin_table(copy_loader *loader, const struct dumpscan_table *table,
                            stow_error *err)
{
    struct load_table *entry;

    if (loader->table_count == loader->table_cap) {
        size_t cap = loader->table_cap ? loader->table_cap * 2 : 16;
        struct load_table **grown = realloc(loader->tables, cap * sizeof *grown);

        if (grown == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing tables to load");
        loader->tables = grown;
        loader->table_cap = cap;
    }
    entry = calloc(1, sizeof *entry);
    if (entry == NULL || (entry->copy = strdup(table->copy)) == NULL) {
        free(entry);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing tables to load");
    }
    dumpscan_format_name(table->schema, table->name, entry->name, sizeof entry->name);
    loader->tables[loader->table_count++] = entry;
    loader->current = entry;
    return 0;
}

int copy_loader_add_rows(copy_loader *loader, const void *rows, size_t len, stow_error *err)
{
    const char *cursor = rows;

    if (loader->current == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "internal error: rows outside a table");
    while (len > 0) {
        struct chunk *chunk = loader->filling;
        size_t take;

        if (chunk == NULL && (chunk = loader->filling = take_chunk(loader, err)) == NULL)
            return -1;
        take = chunk->cap - chunk->len < len ? chunk->cap - chunk->len : len;
        memcpy(chunk->data + chunk->len, cursor, take);
        chunk->len += take;
        cursor += take;
        len -= take;
        if (chunk->len == chunk->cap && cut_chunk(loader, err) != 0)
            return -1;
    }
    return 0;
}

int copy_loader_end_table(copy_loader *loader, stow_error *err)
{
    struct chunk *chunk = loader->filling;

    loader->filling = NULL;
    loader->current = NULL;
    if (chunk == NULL)
        return 0;
    if (chunk->len == 0) {
        release_chunk(loader, chunk);
        return 0;
    }
    if (chunk->data[chunk->len - 1] != '\n') {
        release_chunk(loader, chunk);
        return stow_fail(err, STOW_EXIT_FAILURE, "internal error: a table's data ends "
                         "inside a row");
    }
    queue_chunk(loader, chunk);
    return 0;
}

/* Waits until every worker ended, looking for SIGINT and SIGTERM. */
static int wait_for_workers(copy_loader *loader, stow_error *err)
{
    struct timespec deadline;
    int rc = 0;

    pthread_mutex_lock(&loader->mutex);
    loader->closed = 1;
    pthread_cond_broadcast(&loader->changed);
    while (loader->running > 0 && !stow_interrupted()) {
        deadline_after(&deadline, WAIT_MILLISECONDS);
        pthread_cond_timedwait(&loader->changed, &loader->mutex, &deadline);
    }
    if (loader->failed)
        rc = loader_failure(loader, err);
    else if (loader->running > 0)
        rc = stow_fail_interrupted(err, "the restore");
    pthread_mutex_unlock(&loader->mutex);
    return rc;
}

static int set_sequence(PGconn *conn, const struct dumpscan_sequence *sequence,
                        stow_error *err)
{
    static const char sql[] =
        "SELECT pg_catalog.setval(pg_catalog.format('%I.%I', $1::text, $2::text)::regclass, "
        "$3::bigint, $4::boolean)";
    char value[32];
    const char *params[4] = {sequence->schema, sequence->name, value,
                             sequence->is_called ? "true" : "false"};
    PGresult *result;
    int rc = 0;

    snprintf(value, sizeof value, "%lld", (long long)sequence->value);
    result = PQexecParams(conn, sql, 4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        char name[256];

        dumpscan_format_name(sequence->schema, sequence->name, name, sizeof name);
        rc = stow_fail(err, STOW_EXIT_FAILURE, "setting sequence %s failed: %s", name,
                       PQresultErrorMessage(result));
    }
    PQclear(result);
    return rc;
}

int copy_loader_finish(copy_loader *loader, const struct dumpscan_contents *contents,
                       stow_error *err)
{
    size_t set = 0;

    if (loader->filling != NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "internal error: a table's data did not end");
    if (wait_for_workers(loader, err) != 0)
        return -1;

    for (size_t i = 0; i < contents->sequence_count; i++) {
        if (!contents->sequences[i].has_value)
            continue;
        if (set_sequence(loader->workers[0].conn, &contents->sequences[i], err) != 0)
            return -1;
        set++;
    }
    loader->finished = 1;
    stow_log_info("loaded the rows of %zu table%s and set %zu sequence%s", loader->table_count,
                  loader->table_count == 1 ? "" : "s", set, set == 1 ? "" : "s");
    return 0;
}

/* Stops the workers: running COPY commands are cancelled on the server. */
static void stop_workers(copy_loader *loader)
{
    char message[256];

    pthread_mutex_lock(&loader->mutex);
    loader->stopping = 1;
    loader->closed = 1;
    pthread_cond_broadcast(&loader->changed);
    pthread_mutex_unlock(&loader->mutex);

    for (int i = 0; i < loader->worker_count; i++) {
        struct copy_worker *worker = &loader->workers[i];

        if (worker->thread_started && !loader->finished && worker->cancel != NULL)
            PQcancel(worker->cancel, message, sizeof message);
    }
    for (int i = 0; i < loader->worker_count; i++) {
        if (loader->workers[i].thread_started)
            pthread_join(loader->workers[i].thread, NULL);
        loader->workers[i].thread_started = 0;
    }
}

void copy_loader_free(copy_loader *loader)
{
    if (loader == NULL)
        return;
    if (loader->workers != NULL) {
        stop_workers(loader);
        for (int i = 0; i < loader->worker_count; i++) {
            PQfreeCancel(loader->workers[i].cancel);
            PQfinish(loader->workers[i].conn);
        }
    }
    for (size_t i = 0; i < loader->chunk_count; i++)
        free(loader->chunks[i].data);
    for (size_t i = 0; i < loader->table_count; i++) {
        free(loader->tables[i]->copy);
        free(loader->tables[i]);
    }
    free(loader->chunks);
    free(loader->tables);
    free(loader->workers);
    pthread_cond_destroy(&loader->changed);
    pthread_mutex_destroy(&loader->mutex);
    free(loader);
}
