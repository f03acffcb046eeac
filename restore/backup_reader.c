/* Download → decrypt → decompress → archive members, through a pipe. */
#include "backup_reader.h"

#include <errno.h>
#include <fcntl.h>
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
#include "archive_hash.h"
#include "container.h"
#include "keys.h"

#define PIPE_CAPACITY (1024 * 1024)
#define READ_CHUNK (256 * 1024)
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
    struct keys_passphrase_source source = {passphrase_file};
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

/* --- Producer: download, decrypt, decompress into the pipe ---------------- */

struct producer {
    storage *store;
    const struct manifest *manifest;
    const uint8_t *data_key;
    int pipe_fd;                       /* write end */
    archive_hash *plain_hash;
    archive_hash_algorithm plain_algorithm;
    const char *plain_expected;        /* hex, from the manifest */
    uint64_t plain_bytes;
    double fetch_seconds;
    double decode_seconds;
    double pipe_write_seconds;         /* in write(), mostly waiting for the consumer */
    int consumer_gone;                 /* the reader closed its end */
    stow_error err;
};

static int plaintext_to_pipe(void *context, const void *data, size_t len, stow_error *err)
{
    struct producer *producer = context;
    const uint8_t *cursor = data;
    struct timespec start;

    archive_hash_update(producer->plain_hash, data, len);
    producer->plain_bytes += len;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (len > 0) {
        ssize_t written = write(producer->pipe_fd, cursor, len);

        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0 && errno == EPIPE) {
            producer->consumer_gone = 1;
            return stow_fail(err, STOW_EXIT_FAILURE, "the restore stopped reading");
        }
        if (written < 0)
            return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing", "the restore pipe");
        cursor += written;
        len -= (size_t)written;
    }
    producer->pipe_write_seconds += stow_seconds_since(&start);
    return 0;
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

        /* The time blocked in writing to the pipe is not decoding work. */
        clock_gettime(CLOCK_MONOTONIC, &start);
        blocked = producer->pipe_write_seconds;
        rc = container_reader_write(reader, part.data, part.len, &producer->err);
        blocked = producer->pipe_write_seconds - blocked;
        producer->decode_seconds += stow_seconds_since(&start) - blocked;
        if (rc != 0)
            break;
    }
    stow_buf_free(&part);
    if (rc == 0)
        rc = container_reader_finish(reader, &producer->err);
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
    if (storage_download_begin(producer->store, manifest->object_key, &manifest->parts,
                               &download, &producer->err) == 0 &&
        container_reader_new(&options, plaintext_to_pipe, producer, &reader, &producer->err) == 0)
        produce_parts(producer, download, reader);

    container_reader_free(reader);
    storage_download_free(download);
    close(producer->pipe_fd);
    return NULL;
}

/* --- Consumer: archive members from the pipe ------------------------------ */

struct consumer {
    int pipe_fd;       /* read end */
    uint8_t *buffer;
};

static int read_from_pipe(void *context, const void **data, size_t *len, stow_error *err)
{
    struct consumer *consumer = context;

    for (;;) {
        ssize_t got = read(consumer->pipe_fd, consumer->buffer, READ_CHUNK);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "reading", "the restore pipe");
        *data = consumer->buffer;
        *len = (size_t)got;
        return 0;
    }
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

static int start_pipe(int fds[2], stow_error *err)
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "creating", "a pipe");
    fcntl(fds[1], F_SETPIPE_SZ, PIPE_CAPACITY);
    return 0;
}

int backup_reader_run(storage *store, const struct manifest *manifest,
                      const uint8_t *data_key, members_data_fn on_data, void *data_context,
                      struct backup_read_stats *stats, stow_error *err)
{
    struct producer producer = {0};
    struct consumer consumer = {-1, NULL};
    stow_error consumer_err = {0};
    struct timespec start;
    pthread_t thread;
    int fds[2];
    int rc;

    memset(stats, 0, sizeof *stats);
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (archive_hash_expected(json_object_get(manifest->document, "plaintext"),
                              manifest->format_version, manifest->id,
                              &producer.plain_algorithm, &producer.plain_expected, err) != 0 ||
        archive_hash_new(producer.plain_algorithm, &producer.plain_hash, err) != 0)
        return -1;
    if (start_pipe(fds, err) != 0) {
        archive_hash_free(producer.plain_hash);
        return -1;
    }
    producer.store = store;
    producer.manifest = manifest;
    producer.data_key = data_key;
    producer.pipe_fd = fds[1];
    consumer.pipe_fd = fds[0];
    consumer.buffer = malloc(READ_CHUNK);
    stow_progress_begin("read", manifest->stored_bytes);
    if (consumer.buffer == NULL || pthread_create(&thread, NULL, run_producer, &producer) != 0) {
        stow_progress_end();
        close(fds[0]);
        close(fds[1]);
        free(consumer.buffer);
        archive_hash_free(producer.plain_hash);
        return stow_fail(err, STOW_EXIT_FAILURE, "could not start the download thread");
    }

    rc = members_read(read_from_pipe, &consumer, on_data, data_context, &consumer_err);
    close(consumer.pipe_fd); /* unblocks the producer if the consumer stopped early */
    pthread_join(thread, NULL);
    stow_progress_end();
    free(consumer.buffer);

    stats->fetch_seconds = producer.fetch_seconds;
    stats->decode_seconds = producer.decode_seconds;
    stats->stored_bytes = manifest->stored_bytes;
    stats->plain_bytes = producer.plain_bytes;
    stats->total_seconds = stow_seconds_since(&start);

    /* The producer's error names the part or frame; prefer it unless it only
     * saw the consumer leave. */
    if (stow_error_is_set(&producer.err) && !producer.consumer_gone) {
        *err = producer.err;
        rc = -1;
    } else if (rc != 0) {
        *err = consumer_err;
    } else {
        rc = check_plaintext(&producer, err);
    }
    archive_hash_free(producer.plain_hash);
    return rc;
}
