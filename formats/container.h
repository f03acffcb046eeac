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
/* Plaintext bytes per encrypted frame. The final frame is always shorter
 * (0 to CONTAINER_FRAME_PLAIN_BYTES - 1 bytes). */
#define CONTAINER_FRAME_PLAIN_BYTES (64 * 1024)
/* Stored bytes of a full frame: plaintext plus the secretstream overhead
 * (crypto_secretstream_xchacha20poly1305_ABYTES, 17 bytes). */
#define CONTAINER_FRAME_OVERHEAD_BYTES 17
#define CONTAINER_FRAME_STORED_BYTES (CONTAINER_FRAME_PLAIN_BYTES + CONTAINER_FRAME_OVERHEAD_BYTES)

/* Header layout (formats/FORMAT.md has the byte table). */
#define CONTAINER_MAGIC "STOWAGE\0"          /* its first 8 bytes: "STOWAGE" and a zero byte */
#define CONTAINER_MAGIC_BYTES 8
#define CONTAINER_FLAG_ENCRYPTED 0x0001u
#define CONTAINER_FLAG_ZSTD 0x0002u
#define CONTAINER_STREAM_HEADER_BYTES 24     /* secretstream header */
/* Magic, version, flags and header length: enough to learn the length. */
#define CONTAINER_HEADER_PREFIX_BYTES 14
/* Header bytes before the backup id. */
#define CONTAINER_HEADER_FIXED_BYTES 43
#define CONTAINER_HEADER_MAX_BYTES (CONTAINER_HEADER_FIXED_BYTES + CONTAINER_BACKUP_ID_MAX)

/* Receives output bytes. Returns 0, or -1 after filling err to stop. */
typedef int (*container_sink_fn)(void *context, const void *data, size_t len, stow_error *err);

struct container_stats {
    uint64_t plain_bytes;       /* archive bytes in (writer) or out (reader) */
    uint64_t compressed_bytes;  /* zstd stream bytes */
    uint64_t stored_bytes;      /* header + frames */
};

/* A parsed and checked header. */
struct container_header {
    unsigned version;
    unsigned flags;                     /* CONTAINER_FLAG_* */
    size_t length;                      /* header bytes, backup id included */
    uint32_t frame_plain_bytes;         /* CONTAINER_FRAME_PLAIN_BYTES, or 0 when unencrypted */
    uint8_t stream_header[CONTAINER_STREAM_HEADER_BYTES];  /* all zero when unencrypted */
    char backup_id[CONTAINER_BACKUP_ID_MAX + 1];
};

/* Parses and checks a header at the start of data, without expectations
 * about its backup id or encryption (for inspection tools). Fails with
 * STOW_EXIT_VERIFY on a wrong magic, an unsupported version or flags, an
 * invalid field, or fewer than the header's length bytes. */
int container_header_parse(const void *data, size_t len, struct container_header *out,
                           stow_error *err);

/* --- Writer ------------------------------------------------------------- */

typedef struct container_writer container_writer;

struct container_writer_options {
    const char *backup_id;        /* 1 to CONTAINER_BACKUP_ID_MAX visible ASCII characters
                                     (0x21 to 0x7E) */
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
