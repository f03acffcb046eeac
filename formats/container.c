/* Container writer and reader: a header, then the zstd-compressed archive
 * in libsodium secretstream frames (or bare zstd when unencrypted). */
#include "formats/container.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define TAG_MESSAGE crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_FINAL crypto_secretstream_xchacha20poly1305_TAG_FINAL

/* zstd job size with worker threads, in bytes: memory grows with it. zstd
 * 1.5 pools up to 2 x threads + 3 job output buffers of about this size,
 * and how many pages of them a backup touches depends on how well its data
 * compresses. With 2 MiB jobs a backup's peak RSS was 5 to 7 MiB above
 * that with 1 MiB jobs: 56 MiB (pgbench) against 59 MiB (real-estate data,
 * 3:1) for a backup to file://, with 2 threads. zstd's own job size (8 MiB
 * at level 3) added about 40 MiB more. */
#define CONTAINER_ZSTD_JOB_BYTES (2 * 1024 * 1024)

/* Each job starts with the end of the previous one as history. With
 * zstd's default for the fast levels, window / 8, a 2 MiB job hashes an
 * eighth more than its own input, and window / 16 (128 KiB at level 3)
 * halves that. A real-estate backup to file:// took 3.49 s with these
 * settings and 3.70 s with 1 MiB jobs and the default history (medians of
 * 8 in one run). Its object kept its size. Compressed with libzstd, the
 * pgbench dump (100:1) came out 3% larger than with the default history
 * and 10% smaller than with 1 MiB jobs. */
#define CONTAINER_ZSTD_OVERLAP_LOG 5

_Static_assert(CONTAINER_FRAME_OVERHEAD_BYTES == crypto_secretstream_xchacha20poly1305_ABYTES,
               "frame overhead must match libsodium's secretstream");
_Static_assert(CONTAINER_STREAM_HEADER_BYTES ==
                   crypto_secretstream_xchacha20poly1305_HEADERBYTES,
               "stream header size must match libsodium's secretstream");
_Static_assert(CONTAINER_DATA_KEY_BYTES == crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "data key size must match libsodium's secretstream");

typedef crypto_secretstream_xchacha20poly1305_state stream_state;

/* --- Helpers shared by both directions ---------------------------------- */

static void put_u16(uint8_t *out, unsigned value)
{
    out[0] = (uint8_t)(value >> 8);
    out[1] = (uint8_t)value;
}

static void put_u32(uint8_t *out, uint32_t value)
{
    out[0] = (uint8_t)(value >> 24);
    out[1] = (uint8_t)(value >> 16);
    out[2] = (uint8_t)(value >> 8);
    out[3] = (uint8_t)value;
}

static unsigned get_u16(const uint8_t *in)
{
    return ((unsigned)in[0] << 8) | in[1];
}

static uint32_t get_u32(const uint8_t *in)
{
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
}

/* Converts a zstd result code into a failure naming the operation. */
static int zstd_fail(stow_error *err, int exit_code, const char *operation, size_t code)
{
    return stow_fail(err, exit_code, "zstd %s failed: %s", operation, ZSTD_getErrorName(code));
}

static int sodium_ready(stow_error *err)
{
    if (sodium_init() < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "libsodium failed to initialize");
    return 0;
}

/* Returns 1 when id is 1 to CONTAINER_BACKUP_ID_MAX visible ASCII characters. */
static int backup_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > CONTAINER_BACKUP_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (id[i] < 0x21 || id[i] > 0x7E)
            return 0;
    }
    return 1;
}

/* --- Header ------------------------------------------------------------- */

/* Writes the header into out (CONTAINER_HEADER_MAX_BYTES) and returns its
 * length. stream_header is NULL when the body is not encrypted. */
static size_t header_encode(uint8_t *out, const char *backup_id, const uint8_t *stream_header)
{
    size_t id_len = strlen(backup_id);
    size_t length = CONTAINER_HEADER_FIXED_BYTES + id_len;
    unsigned flags = CONTAINER_FLAG_ZSTD;

    if (stream_header != NULL)
        flags |= CONTAINER_FLAG_ENCRYPTED;

    memcpy(out, CONTAINER_MAGIC, CONTAINER_MAGIC_BYTES);
    put_u16(out + 8, CONTAINER_FORMAT_VERSION);
    put_u16(out + 10, flags);
    put_u16(out + 12, (unsigned)length);
    put_u32(out + 14, stream_header != NULL ? CONTAINER_FRAME_PLAIN_BYTES : 0);
    if (stream_header != NULL)
        memcpy(out + 18, stream_header, CONTAINER_STREAM_HEADER_BYTES);
    else
        memset(out + 18, 0, CONTAINER_STREAM_HEADER_BYTES);
    out[42] = (uint8_t)id_len;
    memcpy(out + CONTAINER_HEADER_FIXED_BYTES, backup_id, id_len);
    return length;
}

/* Checks magic, version and header length from the first
 * CONTAINER_HEADER_PREFIX_BYTES bytes and returns the header length. */
static int header_check_prefix(const uint8_t *data, size_t *length, stow_error *err)
{
    unsigned version = get_u16(data + 8);

    if (memcmp(data, CONTAINER_MAGIC, CONTAINER_MAGIC_BYTES) != 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "not a Stowage backup object (the first 8 bytes are not \"STOWAGE\\0\")");

    if (version != CONTAINER_FORMAT_VERSION)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "unsupported container format version %u (this build reads version %d)",
                         version, CONTAINER_FORMAT_VERSION);

    *length = get_u16(data + 12);
    if (*length <= CONTAINER_HEADER_FIXED_BYTES || *length > CONTAINER_HEADER_MAX_BYTES)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "invalid container header length %zu (expected %d to %d)", *length,
                         CONTAINER_HEADER_FIXED_BYTES + 1, CONTAINER_HEADER_MAX_BYTES);
    return 0;
}

static int header_check_flags(unsigned flags, stow_error *err)
{
    unsigned known = CONTAINER_FLAG_ENCRYPTED | CONTAINER_FLAG_ZSTD;

    if ((flags & ~known) != 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "unsupported container flags 0x%04x (this build knows 0x%04x)", flags,
                         known);
    if ((flags & CONTAINER_FLAG_ZSTD) == 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "container header lacks the zstd flag; this build reads only "
                         "zstd-compressed bodies");
    return 0;
}

/* Checks the frame size and stream header against the encryption flag. */
static int header_check_stream(const struct container_header *header, stow_error *err)
{
    static const uint8_t zeros[CONTAINER_STREAM_HEADER_BYTES];
    int encrypted = (header->flags & CONTAINER_FLAG_ENCRYPTED) != 0;
    uint32_t expected_frame = encrypted ? CONTAINER_FRAME_PLAIN_BYTES : 0;

    if (header->frame_plain_bytes != expected_frame)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "unsupported frame size %u in the container header (expected %u for "
                         "an %s object)",
                         (unsigned)header->frame_plain_bytes, (unsigned)expected_frame,
                         encrypted ? "encrypted" : "unencrypted");

    if (!encrypted && memcmp(header->stream_header, zeros, sizeof zeros) != 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the container header of an unencrypted object has a non-zero "
                         "stream header");
    return 0;
}

int container_header_parse(const void *data, size_t len, struct container_header *out,
                           stow_error *err)
{
    const uint8_t *bytes = data;
    size_t id_len;

    memset(out, 0, sizeof *out);
    if (len < CONTAINER_HEADER_PREFIX_BYTES)
        return stow_fail(err, STOW_EXIT_VERIFY, "container header is truncated (%zu bytes)", len);
    if (header_check_prefix(bytes, &out->length, err) != 0)
        return -1;
    if (len < out->length)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "container header is truncated (%zu of %zu bytes)", len, out->length);

    out->version = get_u16(bytes + 8);
    out->flags = get_u16(bytes + 10);
    out->frame_plain_bytes = get_u32(bytes + 14);
    memcpy(out->stream_header, bytes + 18, CONTAINER_STREAM_HEADER_BYTES);
    if (header_check_flags(out->flags, err) != 0 || header_check_stream(out, err) != 0)
        return -1;

    id_len = bytes[42];
    if (CONTAINER_HEADER_FIXED_BYTES + id_len != out->length)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "container header length %zu does not match its backup id length %zu",
                         out->length, id_len);
    if (!backup_id_valid((const char *)bytes + CONTAINER_HEADER_FIXED_BYTES, id_len))
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the backup id in the container header contains characters other "
                         "than visible ASCII");
    memcpy(out->backup_id, bytes + CONTAINER_HEADER_FIXED_BYTES, id_len);
    out->backup_id[id_len] = '\0';
    return 0;
}

/* --- Writer ------------------------------------------------------------- */

enum writer_state { WRITER_OPEN, WRITER_FINISHED, WRITER_FAILED };

struct container_writer {
    container_sink_fn sink;
    void *sink_context;
    enum writer_state state;
    int encrypt;
    ZSTD_CCtx *cctx;
    stream_state stream;
    uint8_t header[CONTAINER_HEADER_MAX_BYTES];
    size_t header_len;
    uint64_t frames_sealed;
    struct container_stats stats;
    ZSTD_outBuffer out;                           /* zstd writes into plain */
    uint8_t plain[CONTAINER_FRAME_PLAIN_BYTES];
    uint8_t sealed[CONTAINER_FRAME_STORED_BYTES];
};

static int writer_check_options(const struct container_writer_options *options,
                                container_sink_fn sink, stow_error *err)
{
    if (options == NULL || sink == NULL || options->backup_id == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "container writer needs options, a sink and a backup id");

    if (!backup_id_valid(options->backup_id, strlen(options->backup_id)))
        return stow_fail(err, STOW_EXIT_USAGE,
                         "invalid backup id \"%.80s\" (expected 1 to %d visible ASCII characters)",
                         options->backup_id, CONTAINER_BACKUP_ID_MAX);

    if (options->compress_level < 1 || options->compress_level > 19)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid compression level %d (expected 1 to 19)",
                         options->compress_level);

    if (options->compress_threads < 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "invalid number of compression threads %d (expected 0 or more)",
                         options->compress_threads);

    if (options->encrypt && options->data_key == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "encryption is on but no data key was given");
    return 0;
}

static int writer_setup_zstd(container_writer *writer,
                             const struct container_writer_options *options, stow_error *err)
{
    size_t rc;

    writer->cctx = ZSTD_createCCtx();
    if (writer->cctx == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a zstd compressor");

    rc = ZSTD_CCtx_setParameter(writer->cctx, ZSTD_c_compressionLevel, options->compress_level);
    if (ZSTD_isError(rc))
        return zstd_fail(err, STOW_EXIT_USAGE, "setting the compression level", rc);

    rc = ZSTD_CCtx_setParameter(writer->cctx, ZSTD_c_checksumFlag, 1);
    if (ZSTD_isError(rc))
        return zstd_fail(err, STOW_EXIT_FAILURE, "enabling the content checksum", rc);

    if (options->compress_threads > 0) {
        rc = ZSTD_CCtx_setParameter(writer->cctx, ZSTD_c_nbWorkers, options->compress_threads);
        if (ZSTD_isError(rc))
            return zstd_fail(err, STOW_EXIT_USAGE, "setting the number of worker threads", rc);

        /* Each job in flight keeps its own input and output buffers. */
        rc = ZSTD_CCtx_setParameter(writer->cctx, ZSTD_c_jobSize, CONTAINER_ZSTD_JOB_BYTES);
        if (ZSTD_isError(rc))
            return zstd_fail(err, STOW_EXIT_FAILURE, "setting the job size", rc);
        rc = ZSTD_CCtx_setParameter(writer->cctx, ZSTD_c_overlapLog, CONTAINER_ZSTD_OVERLAP_LOG);
        if (ZSTD_isError(rc))
            return zstd_fail(err, STOW_EXIT_FAILURE, "setting the job overlap", rc);
    }

    writer->out.dst = writer->plain;
    writer->out.size = sizeof writer->plain;
    writer->out.pos = 0;
    return 0;
}

static int writer_emit(container_writer *writer, const void *data, size_t len, stow_error *err)
{
    if (len == 0)
        return 0;
    if (writer->sink(writer->sink_context, data, len, err) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "the container's output sink failed");
    writer->stats.stored_bytes += len;
    return 0;
}

/* Emits the header and, when encrypting, starts the secretstream whose
 * header the container header carries. */
static int writer_start(container_writer *writer, const struct container_writer_options *options,
                        stow_error *err)
{
    uint8_t stream_header[CONTAINER_STREAM_HEADER_BYTES];

    if (options->encrypt) {
        crypto_secretstream_xchacha20poly1305_init_push(&writer->stream, stream_header,
                                                        options->data_key);
        writer->header_len = header_encode(writer->header, options->backup_id, stream_header);
    } else {
        writer->header_len = header_encode(writer->header, options->backup_id, NULL);
    }
    return writer_emit(writer, writer->header, writer->header_len, err);
}

/* Emits the compressed bytes collected in plain: sealed as one frame when
 * encrypting (the first frame authenticates the header as additional
 * data), as they are otherwise. */
static int writer_flush(container_writer *writer, unsigned char tag, stow_error *err)
{
    const uint8_t *ad = NULL;
    size_t ad_len = 0;
    unsigned long long sealed_len = 0;
    size_t plain_len = writer->out.pos;

    writer->stats.compressed_bytes += plain_len;
    writer->out.pos = 0;
    if (!writer->encrypt)
        return writer_emit(writer, writer->plain, plain_len, err);

    if (writer->frames_sealed == 0) {
        ad = writer->header;
        ad_len = writer->header_len;
    }
    crypto_secretstream_xchacha20poly1305_push(&writer->stream, writer->sealed, &sealed_len,
                                               writer->plain, plain_len, ad, ad_len, tag);
    writer->frames_sealed++;
    return writer_emit(writer, writer->sealed, (size_t)sealed_len, err);
}

int container_writer_new(const struct container_writer_options *options,
                         container_sink_fn sink, void *sink_context,
                         container_writer **out, stow_error *err)
{
    container_writer *writer = NULL;

    *out = NULL;
    if (writer_check_options(options, sink, err) != 0 || sodium_ready(err) != 0)
        return -1;

    writer = calloc(1, sizeof *writer);
    if (writer == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a container writer");
    writer->sink = sink;
    writer->sink_context = sink_context;
    writer->encrypt = options->encrypt != 0;

    if (writer_setup_zstd(writer, options, err) != 0 || writer_start(writer, options, err) != 0)
        goto fail;

    *out = writer;
    return 0;

fail:
    container_writer_free(writer);
    return -1;
}

static int writer_check_open(const container_writer *writer, stow_error *err)
{
    if (writer->state == WRITER_FINISHED)
        return stow_fail(err, STOW_EXIT_FAILURE, "container writer is already finished");
    if (writer->state == WRITER_FAILED)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "container writer stopped after an earlier error");
    return 0;
}

int container_writer_write(container_writer *writer, const void *data, size_t len,
                           stow_error *err)
{
    ZSTD_inBuffer in = {data, len, 0};
    size_t rc;

    if (writer_check_open(writer, err) != 0)
        return -1;

    while (in.pos < in.size) {
        rc = ZSTD_compressStream2(writer->cctx, &writer->out, &in, ZSTD_e_continue);
        if (ZSTD_isError(rc)) {
            zstd_fail(err, STOW_EXIT_FAILURE, "compression", rc);
            goto fail;
        }
        if (writer->out.pos == writer->out.size && writer_flush(writer, TAG_MESSAGE, err) != 0)
            goto fail;
    }

    writer->stats.plain_bytes += len;
    return 0;

fail:
    writer->state = WRITER_FAILED;
    return -1;
}

int container_writer_finish(container_writer *writer, stow_error *err)
{
    ZSTD_inBuffer in = {NULL, 0, 0};
    size_t remaining;

    if (writer_check_open(writer, err) != 0)
        return -1;

    /* Ends the zstd frame; every full buffer is one non-final frame. */
    do {
        remaining = ZSTD_compressStream2(writer->cctx, &writer->out, &in, ZSTD_e_end);
        if (ZSTD_isError(remaining)) {
            zstd_fail(err, STOW_EXIT_FAILURE, "ending the compressed stream", remaining);
            goto fail;
        }
        if (writer->out.pos == writer->out.size && writer_flush(writer, TAG_MESSAGE, err) != 0)
            goto fail;
    } while (remaining != 0);

    /* The rest, shorter than a full frame and possibly empty, is final. */
    if (writer_flush(writer, TAG_FINAL, err) != 0)
        goto fail;

    writer->state = WRITER_FINISHED;
    return 0;

fail:
    writer->state = WRITER_FAILED;
    return -1;
}

void container_writer_stats(const container_writer *writer, struct container_stats *stats)
{
    *stats = writer->stats;
}

void container_writer_free(container_writer *writer)
{
    if (writer == NULL)
        return;
    ZSTD_freeCCtx(writer->cctx);
    sodium_memzero(&writer->stream, sizeof writer->stream);
    free(writer);
}

/* --- Reader ------------------------------------------------------------- */

enum reader_phase { READ_HEADER, READ_FRAMES, READ_ZSTD, READ_DONE, READ_FAILED };

struct container_reader {
    container_sink_fn sink;
    void *sink_context;
    enum reader_phase phase;
    char expected_backup_id[CONTAINER_BACKUP_ID_MAX + 1];
    int expect_encrypted;
    uint8_t data_key[CONTAINER_DATA_KEY_BYTES];   /* wiped once the stream starts */
    ZSTD_DCtx *dctx;
    int zstd_done;                 /* the zstd frame ended, checksum checked */
    stream_state stream;
    struct container_header header;
    uint8_t header_bytes[CONTAINER_HEADER_MAX_BYTES];
    size_t header_have;
    uint64_t frames_opened;
    uint64_t frame_offset;         /* stored offset of the frame being collected */
    struct container_stats stats;
    uint8_t *zstd_out;
    size_t zstd_out_size;
    size_t cipher_have;
    uint8_t cipher[CONTAINER_FRAME_STORED_BYTES];
    uint8_t plain[CONTAINER_FRAME_PLAIN_BYTES];
};

/* Stored byte range of some compressed input, for error messages. */
struct stored_range {
    int is_frame;        /* 1: the frame at start; 0: stored bytes start to end - 1 */
    uint64_t start;
    uint64_t end;
};

static int reader_check_options(const struct container_reader_options *options,
                                container_sink_fn sink, stow_error *err)
{
    if (options == NULL || sink == NULL || options->expected_backup_id == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "container reader needs options, a sink and the expected backup id");
    if (strlen(options->expected_backup_id) > CONTAINER_BACKUP_ID_MAX)
        return stow_fail(err, STOW_EXIT_FAILURE, "expected backup id is longer than %d bytes",
                         CONTAINER_BACKUP_ID_MAX);
    if (options->expect_encrypted && options->data_key == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the object is expected to be encrypted but no data key was given");
    return 0;
}

static int reader_setup(container_reader *reader, const struct container_reader_options *options,
                        stow_error *err)
{
    strcpy(reader->expected_backup_id, options->expected_backup_id);
    reader->expect_encrypted = options->expect_encrypted != 0;
    if (reader->expect_encrypted)
        memcpy(reader->data_key, options->data_key, CONTAINER_DATA_KEY_BYTES);

    reader->dctx = ZSTD_createDCtx();
    reader->zstd_out_size = ZSTD_DStreamOutSize();
    reader->zstd_out = malloc(reader->zstd_out_size);
    if (reader->dctx == NULL || reader->zstd_out == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a zstd decompressor");
    return 0;
}

int container_reader_new(const struct container_reader_options *options,
                         container_sink_fn sink, void *sink_context,
                         container_reader **out, stow_error *err)
{
    container_reader *reader = NULL;

    *out = NULL;
    if (reader_check_options(options, sink, err) != 0 || sodium_ready(err) != 0)
        return -1;

    reader = calloc(1, sizeof *reader);
    if (reader == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a container reader");
    reader->sink = sink;
    reader->sink_context = sink_context;

    if (reader_setup(reader, options, err) != 0) {
        container_reader_free(reader);
        return -1;
    }
    *out = reader;
    return 0;
}

/* Checks the parsed header against what the manifest expects, then starts
 * the secretstream. */
static int reader_accept_header(container_reader *reader, stow_error *err)
{
    int encrypted = (reader->header.flags & CONTAINER_FLAG_ENCRYPTED) != 0;

    if (strcmp(reader->header.backup_id, reader->expected_backup_id) != 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the object belongs to backup %s, expected backup %s",
                         reader->header.backup_id, reader->expected_backup_id);

    if (reader->expect_encrypted && !encrypted)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the manifest says encrypted but the object is not");
    if (!reader->expect_encrypted && encrypted)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the object is encrypted but the manifest says it is not");

    reader->frame_offset = reader->header.length;
    reader->phase = encrypted ? READ_FRAMES : READ_ZSTD;
    if (!encrypted)
        return 0;

    if (crypto_secretstream_xchacha20poly1305_init_pull(&reader->stream,
                                                        reader->header.stream_header,
                                                        reader->data_key) != 0)
        return stow_fail(err, STOW_EXIT_VERIFY, "invalid secretstream header in the object");
    sodium_memzero(reader->data_key, sizeof reader->data_key);
    return 0;
}

/* Collects header bytes from data and sets *used to the bytes taken. The
 * prefix is checked as soon as it is complete, so a wrong magic or version
 * is reported before the rest of the header arrives. */
static int reader_take_header(container_reader *reader, const uint8_t *data, size_t len,
                              size_t *used, stow_error *err)
{
    size_t need = CONTAINER_HEADER_PREFIX_BYTES;
    size_t take;

    if (reader->header_have >= CONTAINER_HEADER_PREFIX_BYTES)
        need = get_u16(reader->header_bytes + 12);

    *used = 0;
    while (*used < len) {
        take = need - reader->header_have < len - *used ? need - reader->header_have
                                                        : len - *used;
        memcpy(reader->header_bytes + reader->header_have, data + *used, take);
        reader->header_have += take;
        *used += take;
        if (reader->header_have < need)
            return 0;

        if (need == CONTAINER_HEADER_PREFIX_BYTES) {
            if (header_check_prefix(reader->header_bytes, &need, err) != 0)
                return -1;
            continue;
        }

        if (container_header_parse(reader->header_bytes, need, &reader->header, err) != 0)
            return -1;
        return reader_accept_header(reader, err);
    }
    return 0;
}

static int fail_corrupt(stow_error *err, const struct stored_range *where, const char *problem)
{
    if (where->is_frame)
        return stow_fail(err, STOW_EXIT_VERIFY, "%s in the frame at offset %llu", problem,
                         (unsigned long long)where->start);
    return stow_fail(err, STOW_EXIT_VERIFY, "%s in stored bytes %llu to %llu", problem,
                     (unsigned long long)where->start, (unsigned long long)where->end - 1);
}

/* Reports bytes after the end of the zstd frame: the last trailing bytes
 * of the range where. */
static int fail_trailing(stow_error *err, const struct stored_range *where, size_t trailing)
{
    if (where->is_frame)
        return fail_corrupt(err, where, "data after the end of the compressed stream");
    return stow_fail(err, STOW_EXIT_VERIFY,
                     "%zu or more bytes after the end of the compressed stream, from offset %llu",
                     trailing, (unsigned long long)(where->end - trailing));
}

/* Decompresses data and hands the plaintext to the sink. Input after the
 * end of the zstd frame is an error. */
static int reader_decompress(container_reader *reader, const uint8_t *data, size_t len,
                             const struct stored_range *where, stow_error *err)
{
    ZSTD_inBuffer in = {data, len, 0};
    ZSTD_outBuffer out = {reader->zstd_out, reader->zstd_out_size, 0};
    int more = len > 0;
    size_t rc;

    if (reader->zstd_done && len > 0)
        return fail_trailing(err, where, len);

    /* A full output buffer may leave more output inside zstd, so the loop
     * runs until the input is used and the output buffer is not full. */
    while (more) {
        out.pos = 0;
        rc = ZSTD_decompressStream(reader->dctx, &out, &in);
        if (ZSTD_isError(rc))
            return fail_corrupt(err, where, ZSTD_getErrorName(rc));
        reader->zstd_done = rc == 0;

        if (out.pos > 0 && reader->sink(reader->sink_context, out.dst, out.pos, err) != 0)
            return stow_fail(err, STOW_EXIT_FAILURE, "the container's output sink failed");
        reader->stats.plain_bytes += out.pos;

        if (reader->zstd_done && in.pos < in.size)
            return fail_trailing(err, where, in.size - in.pos);
        more = !reader->zstd_done && (in.pos < in.size || out.pos == out.size);
    }
    reader->stats.compressed_bytes += len;
    return 0;
}

static int fail_authentication(const container_reader *reader, size_t len, int is_last,
                               stow_error *err)
{
    unsigned long long offset = (unsigned long long)reader->frame_offset;

    if (is_last)
        stow_fail(err, STOW_EXIT_VERIFY,
                  "the last frame at offset %llu (%zu bytes) failed authentication (truncated "
                  "object, bytes after the final frame, changed data, or the data key of "
                  "another object)",
                  offset, len);
    else
        stow_fail(err, STOW_EXIT_VERIFY,
                  "frame at offset %llu failed authentication (changed data, or the data key "
                  "of another object)",
                  offset);

    if (reader->frames_opened == 0)
        stow_error_hint(err, "the first frame also authenticates the container header, so a "
                             "changed header fails here too");
    return -1;
}

/* Checks that a frame's tag fits its place: full frames are never final,
 * and the last, shorter frame always is. */
static int reader_check_tag(const container_reader *reader, unsigned char tag, int is_last,
                            stow_error *err)
{
    unsigned long long offset = (unsigned long long)reader->frame_offset;

    if (tag != TAG_MESSAGE && tag != TAG_FINAL)
        return stow_fail(err, STOW_EXIT_VERIFY, "frame at offset %llu has unexpected tag %u",
                         offset, (unsigned)tag);
    if (tag == TAG_FINAL && !is_last)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "frame at offset %llu has the final tag but the full frame size",
                         offset);
    if (tag != TAG_FINAL && is_last)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the object is truncated: its last frame at offset %llu lacks the "
                         "final tag",
                         offset);
    return 0;
}

/* Decrypts one frame, checks its tag and decompresses its plaintext. */
static int reader_open_frame(container_reader *reader, const uint8_t *frame, size_t len,
                             int is_last, stow_error *err)
{
    const uint8_t *ad = reader->frames_opened == 0 ? reader->header_bytes : NULL;
    size_t ad_len = reader->frames_opened == 0 ? reader->header.length : 0;
    struct stored_range where = {1, reader->frame_offset, reader->frame_offset + len};
    unsigned long long plain_len = 0;
    unsigned char tag = 0;

    if (crypto_secretstream_xchacha20poly1305_pull(&reader->stream, reader->plain, &plain_len,
                                                   &tag, frame, len, ad, ad_len) != 0)
        return fail_authentication(reader, len, is_last, err);

    if (reader_check_tag(reader, tag, is_last, err) != 0)
        return -1;

    reader->frames_opened++;
    if (reader_decompress(reader, reader->plain, (size_t)plain_len, &where, err) != 0)
        return -1;
    reader->frame_offset += len;
    return 0;
}

/* Collects full frames from data and opens each one as soon as it is
 * complete. A frame that lies whole in data is opened without a copy. */
static int reader_take_frames(container_reader *reader, const uint8_t *data, size_t len,
                              stow_error *err)
{
    const size_t frame_len = CONTAINER_FRAME_STORED_BYTES;
    size_t take;

    while (len > 0) {
        if (reader->cipher_have == 0 && len >= frame_len) {
            if (reader_open_frame(reader, data, frame_len, 0, err) != 0)
                return -1;
            data += frame_len;
            len -= frame_len;
            continue;
        }

        take = frame_len - reader->cipher_have < len ? frame_len - reader->cipher_have : len;
        memcpy(reader->cipher + reader->cipher_have, data, take);
        reader->cipher_have += take;
        data += take;
        len -= take;

        if (reader->cipher_have == frame_len) {
            reader->cipher_have = 0;
            if (reader_open_frame(reader, reader->cipher, frame_len, 0, err) != 0)
                return -1;
        }
    }
    return 0;
}

static int reader_check_usable(const container_reader *reader, stow_error *err)
{
    if (reader->phase == READ_FAILED)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "container reader stopped after an earlier error");
    if (reader->phase == READ_DONE)
        return stow_fail(err, STOW_EXIT_FAILURE, "container reader is already finished");
    return 0;
}

static int reader_take(container_reader *reader, const uint8_t *data, size_t len,
                       stow_error *err)
{
    struct stored_range where = {0, reader->stats.stored_bytes, reader->stats.stored_bytes};
    size_t used = 0;

    if (reader->phase == READ_HEADER) {
        if (reader_take_header(reader, data, len, &used, err) != 0)
            return -1;
        data += used;
        len -= used;
        where.start += used;
    }
    if (len == 0)
        return 0;

    if (reader->phase == READ_FRAMES)
        return reader_take_frames(reader, data, len, err);

    where.end = where.start + len;
    return reader_decompress(reader, data, len, &where, err);
}

int container_reader_write(container_reader *reader, const void *data, size_t len,
                           stow_error *err)
{
    if (reader_check_usable(reader, err) != 0)
        return -1;

    if (reader_take(reader, data, len, err) != 0) {
        reader->phase = READ_FAILED;
        return -1;
    }
    reader->stats.stored_bytes += len;
    return 0;
}

/* Explains a stream that ended inside the header. */
static int reader_fail_short_header(const container_reader *reader, stow_error *err)
{
    size_t have = reader->header_have;
    size_t compared = have < CONTAINER_MAGIC_BYTES ? have : CONTAINER_MAGIC_BYTES;

    if (memcmp(reader->header_bytes, CONTAINER_MAGIC, compared) != 0 || have == 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "not a Stowage backup object (%zu bytes, too short for a container "
                         "header, and no container magic)",
                         have);
    return stow_fail(err, STOW_EXIT_VERIFY,
                     "the object is truncated: it ends at offset %zu, inside the container "
                     "header",
                     have);
}

/* Opens the bytes left over after the last full frame as the final frame. */
static int reader_finish_frames(container_reader *reader, stow_error *err)
{
    unsigned long long offset = (unsigned long long)reader->frame_offset;

    if (reader->cipher_have == 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the object is truncated: it ends at offset %llu, at a frame boundary, "
                         "before the final frame",
                         offset);
    if (reader->cipher_have < CONTAINER_FRAME_OVERHEAD_BYTES)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the object is truncated: its last frame at offset %llu has %zu bytes, "
                         "fewer than the %d bytes of a frame's overhead",
                         offset, reader->cipher_have, CONTAINER_FRAME_OVERHEAD_BYTES);

    if (reader_open_frame(reader, reader->cipher, reader->cipher_have, 1, err) != 0)
        return -1;
    if (!reader->zstd_done)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the compressed stream is incomplete at the end of the final frame at "
                         "offset %llu",
                         offset);
    return 0;
}

static int reader_finish_phase(container_reader *reader, stow_error *err)
{
    switch (reader->phase) {
    case READ_HEADER:
        return reader_fail_short_header(reader, err);
    case READ_FRAMES:
        return reader_finish_frames(reader, err);
    case READ_ZSTD:
        if (!reader->zstd_done)
            return stow_fail(err, STOW_EXIT_VERIFY,
                             "the object is truncated: the compressed stream ends at offset "
                             "%llu before its end mark",
                             (unsigned long long)reader->stats.stored_bytes);
        return 0;
    default:
        return stow_fail(err, STOW_EXIT_FAILURE, "container reader is in an invalid state");
    }
}

int container_reader_finish(container_reader *reader, stow_error *err)
{
    if (reader_check_usable(reader, err) != 0)
        return -1;

    if (reader_finish_phase(reader, err) != 0) {
        reader->phase = READ_FAILED;
        return -1;
    }
    reader->phase = READ_DONE;
    return 0;
}

void container_reader_stats(const container_reader *reader, struct container_stats *stats)
{
    *stats = reader->stats;
}

void container_reader_free(container_reader *reader)
{
    if (reader == NULL)
        return;
    ZSTD_freeDCtx(reader->dctx);
    free(reader->zstd_out);
    sodium_memzero(reader->data_key, sizeof reader->data_key);
    sodium_memzero(&reader->stream, sizeof reader->stream);
    free(reader);
}
