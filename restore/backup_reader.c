/* Download → decrypt → decompress → archive members, through a queue of
 * plaintext chunks. */
#include "backup_reader.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/duration.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/work_queue.h"
#include "archive_hash.h"
#include "container.h"
#include "keys.h"

/* The plaintext between the two threads: PLAIN_CHUNKS buffers go round,
 * full ones to the consumer in archive order, emptied ones back. That
 * bounds the plaintext held to 1 MiB however well the data compressed, and
 * costs one copy, where a pipe takes a write and a read. */
#define PLAIN_CHUNKS 4
#define PLAIN_CHUNK_BYTES (256 * 1024)
/* Nice value of the download and decoding thread: weight 335 against the
 * 1024 of nice 0 (kernel/sched/core.c), so it gets a quarter of a CPU that
 * the database backend also wants. */
#define PRODUCER_NICE 5

/* --- Data key ------------------------------------------------------------- */

static int not_a_recipient(const struct manifest *manifest, const char *key_id,
                           stow_error *err)
{
    char ids[512] = "";

    for (size_t i = 0; i < manifest->recipient_count; i++) {
        size_t used = strlen(ids);

        snprintf(ids + used, sizeof ids - used, "%s%s", i ? ", " : "",
                 manifest->recipients[i].key_id);
    }
    stow_fail(err, STOW_EXIT_KEY, "backup %s is not encrypted to key id %s (its recipients: %s)",
              manifest->id, key_id, ids);
    stow_error_hint(err, "pass the secret key of one of those recipients with --key");
    return -1;
}

int backup_open_data_key(const struct manifest *manifest, const char *secret_key_path,
                         const char *passphrase_file, uint8_t **data_key, stow_error *err)
{
    struct keys_passphrase_source source = {passphrase_file, "--passphrase-file"};
    struct keys_secret *secret = NULL;
    const struct keys_public *public_key;
    int rc = -1;

    *data_key = NULL;
    if (!manifest->encrypted)
        return 0;
    if (secret_key_path == NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "backup %s is encrypted and no secret key was given",
                  manifest->id);
        stow_error_hint(err, "pass --key SECFILE or set STOWAGE_KEY");
        return -1;
    }
    if (keys_secret_load(secret_key_path, keys_passphrase_from_source, &source, &secret, err) != 0)
        return -1;

    public_key = keys_secret_public(secret);
    for (size_t i = 0; i < manifest->recipient_count; i++) {
        if (strcmp(manifest->recipients[i].key_id, public_key->id) != 0)
            continue;
        *data_key = sodium_malloc(CONTAINER_DATA_KEY_BYTES);
        if (*data_key == NULL) {
            stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
            goto cleanup;
        }
        rc = keys_unwrap(secret, manifest->recipients[i].wrapped_key, *data_key,
                         CONTAINER_DATA_KEY_BYTES, err);
        goto cleanup;
    }
    not_a_recipient(manifest, public_key->id, err);

cleanup:
    if (rc != 0) {
        backup_data_key_free(*data_key);
        *data_key = NULL;
    }
    keys_secret_free(secret);
    return rc;
}

void backup_data_key_free(uint8_t *data_key)
{
    if (data_key != NULL)
        sodium_free(data_key);
}

/* --- Plaintext queue -------------------------------------------------------- */

/* A full chunk for the consumer; index -1 marks the end of the plaintext. */
struct plain_chunk {
    int index;
    size_t len;
};

struct plain_queue {
    uint8_t *chunks;                  /* PLAIN_CHUNKS x PLAIN_CHUNK_BYTES */
    struct work_queue free_chunks;    /* indexes of emptied chunks */
    struct work_queue full_chunks;    /* struct plain_chunk, then the end mark */
};

static int plain_queue_init(struct plain_queue *queue, stow_error *err)
{
    memset(queue, 0, sizeof *queue);
    queue->chunks = malloc((size_t)PLAIN_CHUNKS * PLAIN_CHUNK_BYTES);
    if (queue->chunks == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    if (work_queue_init(&queue->free_chunks, sizeof(int), PLAIN_CHUNKS, err) != 0 ||
        work_queue_init(&queue->full_chunks, sizeof(struct plain_chunk), PLAIN_CHUNKS + 1,
                        err) != 0)
        return -1;
    for (int i = 0; i < PLAIN_CHUNKS; i++)
        work_queue_push(&queue->free_chunks, &i);
    return 0;
}

static uint8_t *plain_chunk_data(const struct plain_queue *queue, int index)
{
    return queue->chunks + (size_t)index * PLAIN_CHUNK_BYTES;
}

/* Wakes a thread blocked on either side. Later pushes and pops fail. */
static void plain_queue_abort(struct plain_queue *queue)
{
    work_queue_abort(&queue->free_chunks);
    work_queue_abort(&queue->full_chunks);
}

static void plain_queue_free(struct plain_queue *queue)
{
    work_queue_destroy(&queue->free_chunks);
    work_queue_destroy(&queue->full_chunks);
    free(queue->chunks);
}

/* --- Producer: download, decrypt, decompress into the queue ----------------- */

struct producer {
    storage *store;
    const struct manifest *manifest;
    const uint8_t *data_key;
    struct plain_queue *queue;
    int filling;                       /* index of the chunk being filled, or -1 */
    size_t filled;                     /* bytes in it */
    archive_hash *plain_hash;
    archive_hash_algorithm plain_algorithm;
    const char *plain_expected;        /* hex, from the manifest */
    uint64_t plain_bytes;
    double fetch_seconds;
    double decode_seconds;
    double queue_wait_seconds;         /* waiting for an emptied chunk: the consumer is behind */
    int consumer_gone;                 /* the consumer stopped reading */
    stow_error err;
    /* Cancelling the downloads: the reader's thread sets cancelled and
     * cancels download while the producer has one. */
    pthread_mutex_t cancel_lock;
    int cancelled;
    int ended_after_cancel;            /* so err may be the cancellation's */
    storage_download *download;
};

static int consumer_gone(struct producer *producer, stow_error *err)
{
    producer->consumer_gone = 1;
    return stow_fail(err, STOW_EXIT_FAILURE, "the restore stopped reading");
}

/* Hands the chunk being filled to the consumer. */
static int pass_chunk(struct producer *producer, stow_error *err)
{
    struct plain_chunk chunk = {producer->filling, producer->filled};

    producer->filling = -1;
    producer->filled = 0;
    if (work_queue_push(&producer->queue->full_chunks, &chunk) != 0)
        return consumer_gone(producer, err);
    return 0;
}

static int take_free_chunk(struct producer *producer, stow_error *err)
{
    struct timespec start;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &start);
    rc = work_queue_pop(&producer->queue->free_chunks, &producer->filling, -1);
    producer->queue_wait_seconds += stow_seconds_since(&start);
    if (rc != 1) {
        producer->filling = -1;
        return consumer_gone(producer, err);
    }
    producer->filled = 0;
    return 0;
}

static int plaintext_to_queue(void *context, const void *data, size_t len, stow_error *err)
{
    struct producer *producer = context;
    const uint8_t *cursor = data;

    archive_hash_update(producer->plain_hash, data, len);
    producer->plain_bytes += len;
    while (len > 0) {
        size_t take;

        if (producer->filling < 0 && take_free_chunk(producer, err) != 0)
            return -1;
        take = PLAIN_CHUNK_BYTES - producer->filled;
        take = len < take ? len : take;
        memcpy(plain_chunk_data(producer->queue, producer->filling) + producer->filled, cursor,
               take);
        producer->filled += take;
        cursor += take;
        len -= take;
        if (producer->filled == PLAIN_CHUNK_BYTES && pass_chunk(producer, err) != 0)
            return -1;
    }
    return 0;
}

/* Passes the last, partly filled chunk and the end mark, also after a
 * failure, so that the consumer stops waiting. The end mark always fits:
 * full_chunks has room for every chunk and the mark. */
static void end_plaintext(struct producer *producer)
{
    struct plain_chunk end = {-1, 0};
    stow_error ignored = {0};

    if (producer->filling >= 0 && producer->filled > 0)
        pass_chunk(producer, &ignored);
    work_queue_push(&producer->queue->full_chunks, &end);
}

/* Names the object in a verification error: the container's messages give
 * only offsets in it. */
static void name_object_on_verify_failure(struct producer *producer)
{
    if (producer->err.exit_code == STOW_EXIT_VERIFY)
        stow_error_prefix(&producer->err, "object %s", producer->manifest->object_key);
}

static int produce_parts(struct producer *producer, storage_download *download,
                         container_reader *reader)
{
    stow_buf part;
    int rc = 0;

    stow_buf_init(&part, (size_t)STORAGE_MAX_PART_SIZE);
    for (;;) {
        struct timespec start;
        double blocked;

        if (stow_interrupted()) {
            rc = stow_fail_interrupted(&producer->err, "the download");
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &start);
        rc = storage_download_next(download, &part, &producer->err);
        producer->fetch_seconds += stow_seconds_since(&start);
        if (rc == STORAGE_NOT_FOUND) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        stow_progress_add_bytes(part.len);

        /* The time spent waiting for the consumer is not decoding work. */
        clock_gettime(CLOCK_MONOTONIC, &start);
        blocked = producer->queue_wait_seconds;
        rc = container_reader_write(reader, part.data, part.len, &producer->err);
        blocked = producer->queue_wait_seconds - blocked;
        producer->decode_seconds += stow_seconds_since(&start) - blocked;
        if (rc != 0) {
            name_object_on_verify_failure(producer);
            break;
        }
    }
    stow_buf_free(&part);
    if (rc == 0 && container_reader_finish(reader, &producer->err) != 0) {
        name_object_on_verify_failure(producer);
        rc = -1;
    }
    return rc;
}

static void *run_producer(void *argument)
{
    struct producer *producer = argument;
    const struct manifest *manifest = producer->manifest;
    struct container_reader_options options = {manifest->id, manifest->encrypted,
                                               producer->data_key};
    storage_download *download = NULL;
    container_reader *reader = NULL;

    /* Where the database server shares the CPUs (a scratch cluster, a
     * target on this host), its backend is the bottleneck of the restore,
     * and this thread has time to spare ahead of it. A higher nice value
     * for this thread (inherited by the download threads it starts) gives
     * the backend the CPU when both want it. Best effort. */
    setpriority(PRIO_PROCESS, (id_t)gettid(), PRODUCER_NICE);
    stow_log_set_thread_step("download");
    if (storage_download_begin(producer->store, manifest->object_key, &manifest->parts,
                               &download, &producer->err) == 0) {
        pthread_mutex_lock(&producer->cancel_lock);
        producer->download = download;
        if (producer->cancelled)
            storage_download_cancel(download);
        pthread_mutex_unlock(&producer->cancel_lock);
        if (container_reader_new(&options, plaintext_to_queue, producer, &reader,
                                 &producer->err) == 0)
            produce_parts(producer, download, reader);
    }

    pthread_mutex_lock(&producer->cancel_lock);
    producer->download = NULL;
    producer->ended_after_cancel = producer->cancelled;
    pthread_mutex_unlock(&producer->cancel_lock);
    container_reader_free(reader);
    storage_download_free(download);
    end_plaintext(producer);
    return NULL;
}

/* Ends the downloads in flight, after the consumer failed or when the read
 * is abandoned, so that joining the producer does not wait for their
 * retries. */
static void cancel_downloads(struct producer *producer)
{
    pthread_mutex_lock(&producer->cancel_lock);
    producer->cancelled = 1;
    if (producer->download != NULL)
        storage_download_cancel(producer->download);
    pthread_mutex_unlock(&producer->cancel_lock);
}

/* --- Consumer: archive members from the queue ------------------------------ */

struct consumer {
    struct plain_queue *queue;
    int reading;       /* index of the chunk members_read is reading, or -1 */
};

/* Returns the next chunk, after handing the previous one back; a length
 * of 0 at the end. */
static int read_from_queue(void *context, const void **data, size_t *len, stow_error *err)
{
    struct consumer *consumer = context;
    struct plain_chunk chunk = {-1, 0};

    (void)err;
    if (consumer->reading >= 0)
        work_queue_push(&consumer->queue->free_chunks, &consumer->reading);
    consumer->reading = -1;
    if (work_queue_pop(&consumer->queue->full_chunks, &chunk, -1) != 1 || chunk.index < 0) {
        *data = consumer->queue->chunks;
        *len = 0;
        return 0;
    }
    consumer->reading = chunk.index;
    *data = plain_chunk_data(consumer->queue, chunk.index);
    *len = chunk.len;
    return 0;
}

static int check_plaintext(struct producer *producer, stow_error *err)
{
    const char *expected = producer->plain_expected;
    uint8_t digest[ARCHIVE_HASH_BYTES];
    char actual[ARCHIVE_HASH_HEX_SIZE];

    archive_hash_final(producer->plain_hash, digest);
    manifest_hex(digest, sizeof digest, actual);
    if (producer->plain_bytes != producer->manifest->plain_bytes)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "backup %s decoded to %llu archive bytes, the manifest says %llu",
                         producer->manifest->id, (unsigned long long)producer->plain_bytes,
                         (unsigned long long)producer->manifest->plain_bytes);
    if (strcmp(expected, actual) != 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "backup %s: the archive's %s is %s, the manifest says %s",
                         producer->manifest->id,
                         producer->plain_algorithm == ARCHIVE_HASH_SHA256 ? "SHA-256"
                                                                          : "BLAKE2b-256",
                         actual, expected);
    return 0;
}

/* --- The reader: producer thread and queue ------------------------------------ */

struct backup_reader {
    struct plain_queue queue;
    struct producer producer;
    pthread_t thread;
    int running;                 /* the producer thread was started and not yet joined */
    struct timespec start;       /* monotonic, when the read began */
};

static void stop_producer(backup_reader *reader, int cancel)
{
    if (!reader->running)
        return;
    if (cancel)
        cancel_downloads(&reader->producer);
    plain_queue_abort(&reader->queue);
    pthread_join(reader->thread, NULL);
    stow_progress_end();
    reader->running = 0;
}

void backup_reader_free(backup_reader *reader)
{
    if (reader == NULL)
        return;
    stop_producer(reader, 1);
    plain_queue_free(&reader->queue);
    archive_hash_free(reader->producer.plain_hash);
    pthread_mutex_destroy(&reader->producer.cancel_lock);
    free(reader);
}

int backup_reader_start(storage *store, const struct manifest *manifest,
                        const uint8_t *data_key, backup_reader **out, stow_error *err)
{
    backup_reader *reader = calloc(1, sizeof *reader);
    struct producer *producer;

    *out = NULL;
    if (reader == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    clock_gettime(CLOCK_MONOTONIC, &reader->start);
    producer = &reader->producer;
    pthread_mutex_init(&producer->cancel_lock, NULL);

    /* Bytes appended to the object would pass the checks of its parts. */
    if (storage_check_object_size(store, manifest->object_key, manifest->stored_bytes,
                                  manifest->id, err) != 0 ||
        archive_hash_expected(json_object_get(manifest->document, "plaintext"),
                              manifest->format_version, manifest->id,
                              &producer->plain_algorithm, &producer->plain_expected, err) != 0 ||
        archive_hash_new(producer->plain_algorithm, &producer->plain_hash, err) != 0 ||
        plain_queue_init(&reader->queue, err) != 0)
        goto failed;

    producer->store = store;
    producer->manifest = manifest;
    producer->data_key = data_key;
    producer->queue = &reader->queue;
    producer->filling = -1;
    stow_progress_begin("read", manifest->stored_bytes);
    if (pthread_create(&reader->thread, NULL, run_producer, producer) != 0) {
        stow_progress_end();
        stow_fail(err, STOW_EXIT_FAILURE, "could not start the download thread");
        goto failed;
    }
    reader->running = 1;
    *out = reader;
    return 0;

failed:
    backup_reader_free(reader);
    return -1;
}

int backup_reader_consume(backup_reader *reader, members_data_fn on_data, void *data_context,
                          struct backup_read_stats *stats, stow_error *err)
{
    struct producer *producer = &reader->producer;
    struct consumer consumer = {&reader->queue, -1};
    stow_error consumer_err = {0};
    int rc;

    rc = members_read(read_from_queue, &consumer, on_data, data_context, &consumer_err);
    stop_producer(reader, rc != 0); /* unblocks the producer if the consumer stopped early */

    memset(stats, 0, sizeof *stats);
    stats->fetch_seconds = producer->fetch_seconds;
    stats->decode_seconds = producer->decode_seconds;
    stats->stored_bytes = producer->manifest->stored_bytes;
    stats->plain_bytes = producer->plain_bytes;
    stats->total_seconds = stow_seconds_since(&reader->start);

    /* The producer's error names the part or frame; prefer it unless it only
     * saw the consumer leave or its downloads cancelled. */
    if (stow_error_is_set(&producer->err) && !producer->consumer_gone &&
        !producer->ended_after_cancel) {
        *err = producer->err;
        return -1;
    }
    if (rc != 0) {
        *err = consumer_err;
        return -1;
    }
    return check_plaintext(producer, err);
}

int backup_reader_run(storage *store, const struct manifest *manifest,
                      const uint8_t *data_key, members_data_fn on_data, void *data_context,
                      struct backup_read_stats *stats, stow_error *err)
{
    backup_reader *reader;
    int rc;

    memset(stats, 0, sizeof *stats);
    if (backup_reader_start(store, manifest, data_key, &reader, err) != 0)
        return -1;
    rc = backup_reader_consume(reader, on_data, data_context, stats, err);
    backup_reader_free(reader);
    return rc;
}
