/* Archive digest thread: a queue of pieces, hashed in order. */
#include "backup/archive_digest.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/work_queue.h"
#include "formats/archive_hash.h"

/* Pieces queued ahead of the thread. Most pieces are tar headers and 4 MiB
 * dump segments, so this bounds the copies held to a few KiB. */
#define DIGEST_QUEUE_PIECES 64

struct digest_piece {
    const uint8_t *data;
    size_t len;
    uint8_t *copy;                      /* owned copy of data, or NULL */
    archive_digest_release_fn release;  /* a release marker when set */
    void *release_context;
    int buffer;
    int end;                            /* the last piece: stop hashing */
};

struct archive_digest {
    archive_hash *hash;
    struct work_queue pieces;
    pthread_t thread;
    int thread_started;
};

static void *hash_pieces(void *argument)
{
    archive_digest *digest = argument;
    struct digest_piece piece;

    while (work_queue_pop(&digest->pieces, &piece, -1) == 1 && !piece.end) {
        if (piece.release != NULL) {
            piece.release(piece.release_context, piece.buffer);
            continue;
        }
        archive_hash_update(digest->hash, piece.data, piece.len);
        free(piece.copy);
    }
    return NULL;
}

int archive_digest_start(archive_digest **out, stow_error *err)
{
    archive_digest *digest = NULL;

    *out = NULL;
    digest = calloc(1, sizeof *digest);
    if (digest == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    if (archive_hash_new(ARCHIVE_HASH_DEFAULT, &digest->hash, err) != 0) {
        free(digest);
        return -1;
    }

    if (work_queue_init(&digest->pieces, sizeof(struct digest_piece), DIGEST_QUEUE_PIECES,
                        err) != 0) {
        archive_hash_free(digest->hash);
        free(digest);
        return -1;
    }
    if (pthread_create(&digest->thread, NULL, hash_pieces, digest) != 0) {
        archive_digest_free(digest);
        return stow_fail(err, STOW_EXIT_FAILURE, "could not start the archive digest thread");
    }
    digest->thread_started = 1;
    pthread_setname_np(digest->thread, "archive-digest"); /* for top and perf */
    *out = digest;
    return 0;
}

static int queue_piece(archive_digest *digest, const struct digest_piece *piece,
                       stow_error *err)
{
    if (work_queue_push(&digest->pieces, piece) != 0) {
        free(piece->copy);
        return stow_fail(err, STOW_EXIT_FAILURE, "the archive digest thread has stopped");
    }
    return 0;
}

int archive_digest_add(archive_digest *digest, const void *data, size_t len, int borrowed,
                       stow_error *err)
{
    struct digest_piece piece = {data, len, NULL, NULL, NULL, -1, 0};

    if (len == 0)
        return 0;
    if (!borrowed) {
        piece.copy = malloc(len);
        if (piece.copy == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        memcpy(piece.copy, data, len);
        piece.data = piece.copy;
    }
    return queue_piece(digest, &piece, err);
}

int archive_digest_release(archive_digest *digest, archive_digest_release_fn release,
                           void *context, int buffer, stow_error *err)
{
    struct digest_piece piece = {NULL, 0, NULL, release, context, buffer, 0};

    return queue_piece(digest, &piece, err);
}

int archive_digest_finish(archive_digest *digest, uint8_t out[ARCHIVE_DIGEST_BYTES],
                          stow_error *err)
{
    struct digest_piece piece = {NULL, 0, NULL, NULL, NULL, -1, 1};

    if (queue_piece(digest, &piece, err) != 0)
        return -1;
    pthread_join(digest->thread, NULL);
    digest->thread_started = 0;
    archive_hash_final(digest->hash, out);
    return 0;
}

void archive_digest_free(archive_digest *digest)
{
    struct digest_piece piece;

    if (digest == NULL)
        return;
    if (digest->thread_started) {
        work_queue_abort(&digest->pieces);
        pthread_join(digest->thread, NULL);
    }

    /* Only this thread is left, so the pieces still queued can go. */
    while (work_queue_take(&digest->pieces, &piece) == 1)
        free(piece.copy);
    work_queue_destroy(&digest->pieces);
    archive_hash_free(digest->hash);
    free(digest);
}
