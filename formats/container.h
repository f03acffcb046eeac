/* The container: how a backup's archive stream is stored.
 *
 *   stored object = header || body
 *   body          = secretstream frames over the zstd-compressed archive
 *                   (or the bare zstd stream when encryption is off)
 *
 * The header binds the backup id and the format version; its bytes are
 * authenticated as additional data of the first encrypted frame, so one
 * backup's object cannot be passed off as another's. The byte layout is
 * specified in formats/FORMAT.md.
 *
 * Both directions are push-style: the caller writes bytes in, and the
 * container hands the transformed bytes to a sink callback. Neither side
 * buffers more than one frame plus the compressor's window. */
#ifndef STOWAGE_CONTAINER_H
#define STOWAGE_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define CONTAINER_FORMAT_VERSION 1
#define CONTAINER_DATA_KEY_BYTES 32
#define CONTAINER_BACKUP_ID_MAX 64
/* Plaintext bytes per encrypted frame (the last frame may be shorter). */
#define CONTAINER_FRAME_PLAIN_BYTES (64 * 1024)

/* Receives output bytes. Returns 0, or -1 after filling err to stop. */
typedef int (*container_sink_fn)(void *context, const void *data, size_t len, stow_error *err);

struct container_stats {
    uint64_t plain_bytes;       /* archive bytes in (writer) or out (reader) */
    uint64_t compressed_bytes;  /* zstd stream bytes */
    uint64_t stored_bytes;      /* header + frames */
};

/* --- Writer ------------------------------------------------------------- */

typedef struct container_writer container_writer;

struct container_writer_options {
    const char *backup_id;        /* printable ASCII, at most CONTAINER_BACKUP_ID_MAX */
    int compress_level;           /* zstd level, 1..19 */
    int compress_threads;         /* zstd worker threads; 0: single-threaded */
    int encrypt;                  /* 0 only with an explicit --no-encryption */
    const uint8_t *data_key;      /* CONTAINER_DATA_KEY_BYTES when encrypt */
};

/* Creates a writer and emits the header to the sink at once. */
int container_writer_new(const struct container_writer_options *options,
                         container_sink_fn sink, void *sink_context,
                         container_writer **out, stow_error *err);
int container_writer_write(container_writer *writer, const void *data, size_t len,
                           stow_error *err);
/* Ends the zstd frame and emits the final (tagged) encrypted frame. */
int container_writer_finish(container_writer *writer, stow_error *err);
void container_writer_stats(const container_writer *writer, struct container_stats *stats);
/* Accepts NULL; wipes key material. */
void container_writer_free(container_writer *writer);

/* --- Reader ------------------------------------------------------------- */

typedef struct container_reader container_reader;

struct container_reader_options {
    const char *expected_backup_id;  /* the header must carry this id */
    int expect_encrypted;            /* from the manifest; a mismatch is an error */
    const uint8_t *data_key;         /* CONTAINER_DATA_KEY_BYTES when encrypted */
};

int container_reader_new(const struct container_reader_options *options,
                         container_sink_fn sink, void *sink_context,
                         container_reader **out, stow_error *err);
/* Feeds stored bytes in any chunking. Fails with STOW_EXIT_VERIFY on a bad
 * header, a frame that does not authenticate, bytes after the final frame,
 * or corrupt compressed data; the message names the byte offset. */
int container_reader_write(container_reader *reader, const void *data, size_t len,
                           stow_error *err);
/* Fails with STOW_EXIT_VERIFY when the stream ended before the final frame
 * (truncation) or the zstd frame is incomplete. */
int container_reader_finish(container_reader *reader, stow_error *err);
void container_reader_stats(const container_reader *reader, struct container_stats *stats);
void container_reader_free(container_reader *reader);

#endif
