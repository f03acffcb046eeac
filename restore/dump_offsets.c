/* Data offsets for a spooled custom-format dump (dump_offsets.h). */
#include "dump_offsets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define READ_BUFFER_BYTES (1024 * 1024)
#define ARCHIVE_FORMAT_CUSTOM 1
#define BLOCK_DATA 1
#define BLOCK_BLOBS 3
/* The flag byte before each entry's offset (pg_backup_archiver.h). */
#define OFFSET_NOT_SET 1
#define OFFSET_SET 2

/* Reads the file through one buffer. A read past the end, a value out of
 * range or a failed pread (which also sets read_errno) sets malformed, and
 * every later read returns -1. */
struct archive_reader {
    int fd;
    uint64_t size;
    uint8_t *buffer;
    uint64_t buffer_start;      /* file offset of buffer[0] */
    size_t buffer_len;
    uint64_t position;          /* file offset of the next byte */
    int version_minor;
    int int_size;
    int offset_size;
    int malformed;
    int read_errno;
};

/* One TOC entry: where its offset is stored and where its data starts. */
struct toc_slot {
    int64_t dump_id;
    uint64_t flag_position;     /* file offset of the flag byte */
    int flag;
    uint64_t data_position;     /* file offset of its data block; 0 while none was found */
};

static int read_byte(struct archive_reader *reader)
{
    uint64_t position = reader->position;

    if (reader->malformed || position >= reader->size) {
        reader->malformed = 1;
        return -1;
    }
    if (position < reader->buffer_start ||
        position >= reader->buffer_start + reader->buffer_len) {
        size_t length = reader->size - position < READ_BUFFER_BYTES
                            ? (size_t)(reader->size - position)
                            : READ_BUFFER_BYTES;
        ssize_t got = pread(reader->fd, reader->buffer, length, (off_t)position);

        if (got <= 0) {
            reader->read_errno = got < 0 ? errno : EIO;
            reader->malformed = 1;
            return -1;
        }
        reader->buffer_start = position;
        reader->buffer_len = (size_t)got;
    }
    reader->position++;
    return reader->buffer[position - reader->buffer_start];
}

/* pg_dump's integers: a sign byte, then int_size bytes, least significant
 * first. */
static int64_t read_int(struct archive_reader *reader)
{
    int sign = read_byte(reader);
    uint64_t magnitude = 0;

    for (int i = 0; i < reader->int_size; i++)
        magnitude |= (uint64_t)(read_byte(reader) & 0xFF) << (8 * i);
    if (magnitude > INT64_MAX)
        reader->malformed = 1;
    return sign ? -(int64_t)magnitude : (int64_t)magnitude;
}

static void skip_bytes(struct archive_reader *reader, int64_t count)
{
    if (count < 0 || (uint64_t)count > reader->size - reader->position)
        reader->malformed = 1;
    else
        reader->position += (uint64_t)count;
}

/* Strings are a length (-1 for NULL) and that many bytes. Returns the
 * length. */
static int64_t skip_string(struct archive_reader *reader)
{
    int64_t length = read_int(reader);

    if (length > 0)
        skip_bytes(reader, length);
    return length;
}

static int read_header(struct archive_reader *reader)
{
    static const char magic[] = "PGDMP";

    for (size_t i = 0; i < sizeof magic - 1; i++)
        if (read_byte(reader) != magic[i])
            return -1;
    if (read_byte(reader) != 1)
        return -1;
    reader->version_minor = read_byte(reader);
    read_byte(reader);                         /* revision */
    reader->int_size = read_byte(reader);
    reader->offset_size = read_byte(reader);
    if (reader->version_minor < 12 || reader->version_minor > 15 || reader->int_size < 1 ||
        reader->int_size > 8 || reader->offset_size < 1 || reader->offset_size > 8 ||
        read_byte(reader) != ARCHIVE_FORMAT_CUSTOM)
        return -1;

    if (reader->version_minor >= 15)
        read_byte(reader);                     /* compression algorithm */
    else
        read_int(reader);                      /* zlib level */
    for (int i = 0; i < 7; i++)
        read_int(reader);                      /* creation time, struct tm fields */
    for (int i = 0; i < 3; i++)
        skip_string(reader);                   /* database, server and pg_dump versions */
    return reader->malformed ? -1 : 0;
}

static void read_entry(struct archive_reader *reader, struct toc_slot *slot)
{
    slot->dump_id = read_int(reader);
    read_int(reader);                          /* had a data dumper */
    for (int i = 0; i < 4; i++)
        skip_string(reader);                   /* tableoid, oid, tag, desc */
    read_int(reader);                          /* section */
    for (int i = 0; i < 5; i++)
        skip_string(reader);                   /* defn, drop, copy, namespace, tablespace */
    if (reader->version_minor >= 14)
        skip_string(reader);                   /* table access method */
    skip_string(reader);                       /* owner */
    skip_string(reader);                       /* "false": tables have no OIDs */
    while (!reader->malformed && skip_string(reader) >= 0)
        ;                                      /* dependencies, up to a NULL */

    slot->flag_position = reader->position;
    slot->flag = read_byte(reader);
    skip_bytes(reader, reader->offset_size);
}

static int compare_slots(const void *left, const void *right)
{
    int64_t a = ((const struct toc_slot *)left)->dump_id;
    int64_t b = ((const struct toc_slot *)right)->dump_id;

    return (a > b) - (a < b);
}

static void skip_chunks(struct archive_reader *reader)
{
    int64_t length;

    while (!reader->malformed && (length = read_int(reader)) != 0)
        skip_bytes(reader, length);
}

/* Records where each entry's data block starts. */
static int read_blocks(struct archive_reader *reader, struct toc_slot *slots, size_t count)
{
    while (!reader->malformed && reader->position < reader->size) {
        uint64_t start = reader->position;
        int type = read_byte(reader);
        struct toc_slot key = {.dump_id = read_int(reader)};
        struct toc_slot *slot = bsearch(&key, slots, count, sizeof *slots, compare_slots);

        if (slot != NULL && slot->data_position == 0)
            slot->data_position = start;
        if (type == BLOCK_DATA) {
            skip_chunks(reader);
        } else if (type == BLOCK_BLOBS) {
            while (!reader->malformed && read_int(reader) != 0)
                skip_chunks(reader);           /* one large object: its OID, then chunks */
        } else {
            return -1;
        }
    }
    return reader->malformed ? -1 : 0;
}

/* Writes OFFSET_SET and the data position into each entry that has data. */
static int write_offsets(const struct archive_reader *reader, const struct toc_slot *slots,
                         size_t count, size_t *filled, stow_error *err)
{
    uint8_t field[1 + 8];

    for (size_t i = 0; i < count; i++) {
        uint64_t position = slots[i].data_position;

        if (slots[i].flag != OFFSET_NOT_SET || position == 0 ||
            (reader->offset_size < 8 && position >> (8 * reader->offset_size) != 0))
            continue;
        field[0] = OFFSET_SET;
        for (int byte = 0; byte < reader->offset_size; byte++)
            field[1 + byte] = (uint8_t)(position >> (8 * byte));
        if (pwrite(reader->fd, field, 1 + (size_t)reader->offset_size,
                   (off_t)slots[i].flag_position) != 1 + reader->offset_size)
            return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing", "the spool file");
        (*filled)++;
    }
    return 0;
}

static int index_archive(struct archive_reader *reader, size_t *filled, stow_error *err)
{
    struct toc_slot *slots;
    int64_t count;
    int rc = 1;

    if (read_header(reader) != 0)
        return 1;
    count = read_int(reader);
    if (reader->malformed || count <= 0 || (uint64_t)count > reader->size)
        return 1;
    slots = calloc((size_t)count, sizeof *slots);
    if (slots == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory indexing the dump");

    for (int64_t i = 0; i < count && !reader->malformed; i++)
        read_entry(reader, &slots[i]);
    qsort(slots, (size_t)count, sizeof *slots, compare_slots);
    if (!reader->malformed && read_blocks(reader, slots, (size_t)count) == 0)
        rc = write_offsets(reader, slots, (size_t)count, filled, err);
    free(slots);
    return rc;
}

int dump_offsets_fill(int fd, uint64_t size, size_t *filled, stow_error *err)
{
    struct archive_reader reader;
    int rc;

    *filled = 0;
    memset(&reader, 0, sizeof reader);
    reader.fd = fd;
    reader.size = size;
    reader.buffer = malloc(READ_BUFFER_BYTES);
    if (reader.buffer == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory indexing the dump");

    rc = index_archive(&reader, filled, err);
    free(reader.buffer);
    if (rc == 1 && reader.read_errno != 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, reader.read_errno, "reading",
                               "the spool file");
    return rc;
}
