/* Streaming parser of pg_dump custom-format archives (see dumpscan.h).
 *
 * The parser is a state machine over the archive's fields. Each field is
 * one read: a byte, an integer, a string, bytes to skip, or a data chunk.
 * The bytes of a read collect in a small scratch area (integers) or in a
 * bounded string buffer. When the read is complete, the handler for the
 * field stores the value and sets up the next read. Data chunks are not
 * buffered: their bytes go straight into the row digest of the table. */
#include "formats/dumpscan.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "formats/dumpscan_internal.h"

/* Block types of the custom format (pg_backup_archiver.h). */
#define BLOCK_DATA 1
#define BLOCK_BLOBS 3

/* ArchiveFormat value of the custom format in the header. */
#define ARCHIVE_FORMAT_CUSTOM 1

enum field {
    FIELD_MAGIC,
    FIELD_VERSION_MAJOR,
    FIELD_VERSION_MINOR,
    FIELD_VERSION_REVISION,
    FIELD_INT_SIZE,
    FIELD_OFFSET_SIZE,
    FIELD_FORMAT,
    FIELD_COMPRESSION,
    FIELD_CREATION_TIME,       /* seven integers: struct tm fields */
    FIELD_DATABASE,
    FIELD_SERVER_VERSION,
    FIELD_DUMP_VERSION,
    FIELD_TOC_COUNT,
    FIELD_ENTRY_DUMP_ID,
    FIELD_ENTRY_HAD_DUMPER,
    FIELD_ENTRY_TABLEOID,
    FIELD_ENTRY_OID,
    FIELD_ENTRY_TAG,
    FIELD_ENTRY_DESC,
    FIELD_ENTRY_SECTION,
    FIELD_ENTRY_DEFN,
    FIELD_ENTRY_DROP,
    FIELD_ENTRY_COPY,
    FIELD_ENTRY_NAMESPACE,
    FIELD_ENTRY_TABLESPACE,
    FIELD_ENTRY_TABLEAM,
    FIELD_ENTRY_OWNER,
    FIELD_ENTRY_WITH_OIDS,
    FIELD_ENTRY_DEPENDENCY,
    FIELD_ENTRY_OFFSET_FLAG,
    FIELD_ENTRY_OFFSET,
    FIELD_BLOCK_TYPE,
    FIELD_BLOCK_ID,
    FIELD_CHUNK_LENGTH,
    FIELD_CHUNK,
    FIELD_OBJECT_OID,
    FIELD_OBJECT_CHUNK_LENGTH,
    FIELD_OBJECT_CHUNK
};

enum read_kind {
    READ_FIXED,            /* need bytes into scratch */
    READ_STRING_LENGTH,    /* an integer, then the string body */
    READ_STRING_BODY,      /* need bytes, kept in string or skipped */
    READ_SKIP,             /* need bytes, ignored */
    READ_CHUNK             /* need bytes of table data or a large object */
};

/* The TOC entry being read: only the fields the scanner uses. */
struct entry {
    int64_t dump_id;
    int had_dumper;
    char *tag;
    char *desc;
    char *defn;
    char *copy;
    char *namespace;
};

struct dumpscan {
    rowdigest digest;              /* rows of the current table's data block */
    struct dumpscan_contents contents;
    struct toc_collector toc;

    uint64_t offset;               /* archive bytes consumed */
    int failed;
    int finished;

    enum field field;
    enum read_kind read;
    size_t need;                   /* bytes still missing from the read */
    unsigned char scratch[16];
    size_t scratch_len;
    stow_buf string;
    int string_keep;
    int string_null;

    int version_minor;
    int int_size;
    int offset_size;
    int time_fields_read;
    int64_t toc_count;
    int64_t toc_read;
    struct entry entry;

    struct data_entry *block;      /* entry whose data block is being read */
    int block_type;
    size_t row_len;                /* bytes of the open row so far */
    unsigned char row_start[2];    /* its first bytes, to spot the end marker */
    int after_end_marker;

    int skip_row_digests;          /* dumpscan_options.skip_row_digests */
    int skip_rows;                 /* dumpscan_options.skip_rows */
    struct dumpscan_output_state output;
    int has_output;                /* dumpscan_set_output was called */
    struct dumpscan_observer observer;
    int observed;                  /* an observer is set */
    int toc_end_pending;           /* the TOC ended, and toc_end was not called yet */
    int observing_block;           /* the observer received table_begin for block */
};

static int corrupt(dumpscan *scanner, stow_error *err, const char *fmt, ...) STOW_PRINTF(3, 4);

static int corrupt(dumpscan *scanner, stow_error *err, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return stow_fail(err, STOW_EXIT_FAILURE, "invalid pg_dump archive at byte %" PRIu64 ": %s",
                     scanner->offset, detail);
}

/* --- Reads ------------------------------------------------------------- */

static void expect_fixed(dumpscan *scanner, enum field field, size_t len)
{
    scanner->field = field;
    scanner->read = READ_FIXED;
    scanner->need = len;
    scanner->scratch_len = 0;
}

static void expect_byte(dumpscan *scanner, enum field field)
{
    expect_fixed(scanner, field, 1);
}

/* An integer is a sign byte (0 or 1) and int_size bytes of magnitude,
 * least significant first (WriteInt in pg_backup_archiver.c). */
static void expect_int(dumpscan *scanner, enum field field)
{
    expect_fixed(scanner, field, 1 + (size_t)scanner->int_size);
}

static void expect_string(dumpscan *scanner, enum field field)
{
    expect_fixed(scanner, field, 1 + (size_t)scanner->int_size);
    scanner->read = READ_STRING_LENGTH;
}

static void expect_skip(dumpscan *scanner, enum field field, size_t len)
{
    scanner->field = field;
    scanner->read = READ_SKIP;
    scanner->need = len;
}

static void expect_chunk(dumpscan *scanner, enum field field, size_t len)
{
    scanner->field = field;
    scanner->read = READ_CHUNK;
    scanner->need = len;
}

/* Decodes the integer read into scratch. */
static int read_int(dumpscan *scanner, int64_t *value, stow_error *err)
{
    uint64_t magnitude = 0;

    if (scanner->scratch[0] > 1)
        return corrupt(scanner, err, "integer sign byte is %u, expected 0 or 1",
                       scanner->scratch[0]);

    for (int i = scanner->int_size; i >= 1; i--)
        magnitude = (magnitude << 8) | scanner->scratch[i];
    if (magnitude > INT64_MAX)
        return corrupt(scanner, err, "integer out of range");

    *value = scanner->scratch[0] ? -(int64_t)magnitude : (int64_t)magnitude;
    return 0;
}

/* --- String fields ------------------------------------------------------ */

static int desc_is(const struct entry *entry, const char *desc)
{
    return entry->desc != NULL && strcmp(entry->desc, desc) == 0;
}

/* Whether the scanner needs the string of field for the current entry. */
static int string_needed(const dumpscan *scanner, enum field field)
{
    const struct entry *entry = &scanner->entry;

    switch (field) {
    case FIELD_DATABASE:
    case FIELD_SERVER_VERSION:
    case FIELD_DUMP_VERSION:
    case FIELD_ENTRY_TAG:
    case FIELD_ENTRY_DESC:
    case FIELD_ENTRY_NAMESPACE:
        return 1;
    case FIELD_ENTRY_DEFN:
        return desc_is(entry, "SEQUENCE SET") || desc_is(entry, "ENCODING");
    case FIELD_ENTRY_COPY:
        return desc_is(entry, "TABLE DATA");
    default:
        return 0;
    }
}

static int start_string_body(dumpscan *scanner, stow_error *err)
{
    int64_t len = 0;

    if (read_int(scanner, &len, err) != 0)
        return -1;

    stow_buf_reset(&scanner->string);
    scanner->string_null = len == -1;
    if (len < -1)
        return corrupt(scanner, err, "string length %" PRId64 " is negative", len);

    scanner->string_keep = string_needed(scanner, scanner->field);
    if (scanner->string_keep && len > (int64_t)DUMPSCAN_STRING_MAX)
        return corrupt(scanner, err, "string of %" PRId64 " bytes exceeds the limit of %u bytes",
                       len, DUMPSCAN_STRING_MAX);

    scanner->read = READ_STRING_BODY;
    scanner->need = len > 0 ? (size_t)len : 0;
    return 0;
}

/* Returns a copy of the finished string, or NULL for a NULL string or one
 * that was skipped. */
static int take_string(dumpscan *scanner, char **out, stow_error *err)
{
    const char *text = scanner->string.len > 0 ? (const char *)scanner->string.data : "";

    *out = NULL;
    if (scanner->string_null || !scanner->string_keep)
        return 0;

    if (memchr(text, '\0', scanner->string.len) != NULL)
        return corrupt(scanner, err, "string contains a NUL byte");

    *out = strdup(text);
    if (*out == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory reading a dump string");
    return 0;
}

/* --- Header -------------------------------------------------------------- */

static int on_version(dumpscan *scanner, stow_error *err)
{
    int major = scanner->scratch[0];
    int minor = scanner->scratch[1];
    int revision = scanner->scratch[2];
    char version[32];

    snprintf(version, sizeof version, "%d.%d-%d", major, minor, revision);
    if (major != 1 || minor < 12 || minor > 15)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "unsupported pg_dump archive version %s; stowage reads versions "
                         "1.12 to 1.15", version);

    scanner->version_minor = minor;
    scanner->contents.archive_version = strdup(version);
    if (scanner->contents.archive_version == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    return 0;
}

static int on_header_byte(dumpscan *scanner, stow_error *err)
{
    unsigned value = scanner->scratch[0];

    switch (scanner->field) {
    case FIELD_INT_SIZE:
        if (value < 1 || value > 8)
            return corrupt(scanner, err, "integer size %u is not between 1 and 8", value);
        scanner->int_size = (int)value;
        expect_byte(scanner, FIELD_OFFSET_SIZE);
        return 0;
    case FIELD_OFFSET_SIZE:
        if (value < 1 || value > 16)
            return corrupt(scanner, err, "offset size %u is not between 1 and 16", value);
        scanner->offset_size = (int)value;
        expect_byte(scanner, FIELD_FORMAT);
        return 0;
    case FIELD_FORMAT:
        if (value != ARCHIVE_FORMAT_CUSTOM)
            return stow_fail(err, STOW_EXIT_FAILURE,
                             "the dump is not a custom-format archive (format %u); stowage "
                             "runs pg_dump with -Fc", value);
        if (scanner->version_minor >= 15)
            expect_byte(scanner, FIELD_COMPRESSION);
        else
            expect_int(scanner, FIELD_COMPRESSION);
        return 0;
    default:
        return corrupt(scanner, err, "unexpected header field");
    }
}

/* Version 1.15 stores the compression algorithm as one byte (0: none);
 * earlier versions store the zlib level as an integer (0: none). */
static int on_compression(dumpscan *scanner, stow_error *err)
{
    int64_t compression = scanner->scratch[0];

    if (scanner->version_minor < 15 && read_int(scanner, &compression, err) != 0)
        return -1;
    if (compression != 0)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the dump is compressed; stowage runs pg_dump with -Z0");

    scanner->time_fields_read = 0;
    expect_int(scanner, FIELD_CREATION_TIME);
    return 0;
}

static int on_header_string(dumpscan *scanner, stow_error *err)
{
    char *value;

    if (take_string(scanner, &value, err) != 0)
        return -1;

    switch (scanner->field) {
    case FIELD_DATABASE:
        scanner->contents.database = value;
        expect_string(scanner, FIELD_SERVER_VERSION);
        break;
    case FIELD_SERVER_VERSION:
        scanner->contents.server_version = value;
        expect_string(scanner, FIELD_DUMP_VERSION);
        break;
    default:
        scanner->contents.pg_dump_version = value;
        expect_int(scanner, FIELD_TOC_COUNT);
        break;
    }
    return 0;
}

/* --- TOC entries ----------------------------------------------------------- */

static void entry_clear(struct entry *entry)
{
    free(entry->tag);
    free(entry->desc);
    free(entry->defn);
    free(entry->copy);
    free(entry->namespace);
    memset(entry, 0, sizeof *entry);
}

static int start_entries(dumpscan *scanner, stow_error *err);

static int on_toc_count(dumpscan *scanner, stow_error *err)
{
    if (read_int(scanner, &scanner->toc_count, err) != 0)
        return -1;
    if (scanner->toc_count < 0)
        return corrupt(scanner, err, "TOC entry count %" PRId64 " is negative",
                       scanner->toc_count);

    scanner->toc_read = 0;
    return start_entries(scanner, err);
}

/* Reads the next entry, or moves on to the data blocks after the last. */
static int start_entries(dumpscan *scanner, stow_error *err)
{
    entry_clear(&scanner->entry);
    if (scanner->toc_read < scanner->toc_count) {
        expect_int(scanner, FIELD_ENTRY_DUMP_ID);
        return 0;
    }

    if (toc_collector_resolve(&scanner->toc, &scanner->contents, err) != 0)
        return -1;
    scanner->toc_end_pending = scanner->observed;
    expect_byte(scanner, FIELD_BLOCK_TYPE);
    return 0;
}

static int on_entry_int(dumpscan *scanner, stow_error *err)
{
    int64_t value = 0;

    if (read_int(scanner, &value, err) != 0)
        return -1;

    switch (scanner->field) {
    case FIELD_ENTRY_DUMP_ID:
        if (value <= 0 || value > INT32_MAX)
            return corrupt(scanner, err, "TOC entry id %" PRId64 " is out of range", value);
        scanner->entry.dump_id = value;
        expect_int(scanner, FIELD_ENTRY_HAD_DUMPER);
        return 0;
    case FIELD_ENTRY_HAD_DUMPER:
        scanner->entry.had_dumper = value != 0;
        expect_string(scanner, FIELD_ENTRY_TABLEOID);
        return 0;
    default:
        /* FIELD_ENTRY_SECTION: not needed. */
        expect_string(scanner, FIELD_ENTRY_DEFN);
        return 0;
    }
}

static int finish_entry(dumpscan *scanner, stow_error *err)
{
    struct toc_entry_facts facts = {
        .dump_id = scanner->entry.dump_id,
        .had_dumper = scanner->entry.had_dumper,
        .tag = scanner->entry.tag,
        .desc = scanner->entry.desc,
        .defn = scanner->entry.defn,
        .copy = scanner->entry.copy,
        .namespace = scanner->entry.namespace,
    };

    if (toc_collector_add(&scanner->toc, &scanner->contents, &facts, err) != 0) {
        stow_error_prefix(err, "TOC entry %" PRId64 " (%s %s)", facts.dump_id,
                          facts.desc ? facts.desc : "?", facts.tag ? facts.tag : "?");
        return -1;
    }

    scanner->toc_read++;
    return start_entries(scanner, err);
}

/* The order of strings in an entry (ReadToc in pg_backup_archiver.c). */
static enum field next_string_field(const dumpscan *scanner, enum field field)
{
    switch (field) {
    case FIELD_ENTRY_TABLEOID: return FIELD_ENTRY_OID;
    case FIELD_ENTRY_OID: return FIELD_ENTRY_TAG;
    case FIELD_ENTRY_TAG: return FIELD_ENTRY_DESC;
    case FIELD_ENTRY_DEFN: return FIELD_ENTRY_DROP;
    case FIELD_ENTRY_DROP: return FIELD_ENTRY_COPY;
    case FIELD_ENTRY_COPY: return FIELD_ENTRY_NAMESPACE;
    case FIELD_ENTRY_NAMESPACE: return FIELD_ENTRY_TABLESPACE;
    case FIELD_ENTRY_TABLESPACE:
        return scanner->version_minor >= 14 ? FIELD_ENTRY_TABLEAM : FIELD_ENTRY_OWNER;
    case FIELD_ENTRY_TABLEAM: return FIELD_ENTRY_OWNER;
    case FIELD_ENTRY_OWNER: return FIELD_ENTRY_WITH_OIDS;
    default: return FIELD_ENTRY_DEPENDENCY;
    }
}

static int on_entry_string(dumpscan *scanner, stow_error *err)
{
    struct entry *entry = &scanner->entry;
    char **slot = NULL;

    switch (scanner->field) {
    case FIELD_ENTRY_TAG: slot = &entry->tag; break;
    case FIELD_ENTRY_DESC: slot = &entry->desc; break;
    case FIELD_ENTRY_DEFN: slot = &entry->defn; break;
    case FIELD_ENTRY_COPY: slot = &entry->copy; break;
    case FIELD_ENTRY_NAMESPACE: slot = &entry->namespace; break;
    default: break;
    }
    if (slot != NULL && take_string(scanner, slot, err) != 0)
        return -1;

    switch (scanner->field) {
    case FIELD_ENTRY_DESC:
        expect_int(scanner, FIELD_ENTRY_SECTION);
        return 0;
    case FIELD_ENTRY_DEPENDENCY:
        /* The dependency list ends with a NULL string. */
        if (scanner->string_null)
            expect_byte(scanner, FIELD_ENTRY_OFFSET_FLAG);
        else
            expect_string(scanner, FIELD_ENTRY_DEPENDENCY);
        return 0;
    default:
        expect_string(scanner, next_string_field(scanner, scanner->field));
        return 0;
    }
}

/* The custom format follows each entry with its data offset: a flag byte
 * (1: not set, 2: set, 3: no data) and offset_size bytes. */
static int on_offset_flag(dumpscan *scanner, stow_error *err)
{
    unsigned flag = scanner->scratch[0];

    if (flag < 1 || flag > 3)
        return corrupt(scanner, err, "data offset flag %u is not 1, 2 or 3", flag);
    expect_skip(scanner, FIELD_ENTRY_OFFSET, (size_t)scanner->offset_size);
    return 0;
}

/* --- Data blocks ------------------------------------------------------------ */

/* Size of a block description: "table " and a name of up to 255 bytes. */
#define DESCRIPTION_SIZE 272

/* Writes "table schema.name", or "TOC entry N" for other data, for
 * messages. */
static void describe_block(const struct data_entry *block, char *out, size_t size)
{
    char name[256];

    if (block->table == NULL) {
        snprintf(out, size, "TOC entry %" PRId64, block->dump_id);
        return;
    }
    dumpscan_format_name(block->table->schema, block->table->name, name, sizeof name);
    if (snprintf(out, size, "table %s", name) < 0)
        out[0] = '\0';
}

static int on_block_type(dumpscan *scanner, stow_error *err)
{
    scanner->block_type = scanner->scratch[0];
    if (scanner->block_type != BLOCK_DATA && scanner->block_type != BLOCK_BLOBS)
        return corrupt(scanner, err, "unknown data block type %d", scanner->block_type);
    expect_int(scanner, FIELD_BLOCK_ID);
    return 0;
}

static int on_block_id(dumpscan *scanner, stow_error *err)
{
    int64_t dump_id = 0;
    struct data_entry *block;

    if (read_int(scanner, &dump_id, err) != 0)
        return -1;

    block = toc_collector_find_data(&scanner->toc, dump_id);
    if (block == NULL)
        return corrupt(scanner, err, "data block for entry %" PRId64
                       ", which the TOC does not list with data", dump_id);
    if (block->seen)
        return corrupt(scanner, err, "second data block for entry %" PRId64, dump_id);
    if ((scanner->block_type == BLOCK_BLOBS) != (block->kind == DATA_LARGE_OBJECTS))
        return corrupt(scanner, err, "data block type %d does not match entry %" PRId64,
                       scanner->block_type, dump_id);

    block->seen = 1;
    scanner->block = block;
    rowdigest_init(&scanner->digest);
    scanner->row_len = 0;
    scanner->after_end_marker = 0;

    scanner->observing_block = scanner->observed && block->kind == DATA_TABLE &&
                               block->table != NULL;
    if (scanner->observing_block && scanner->observer.table_begin != NULL &&
        scanner->observer.table_begin(scanner->observer.context, block->table, err) != 0)
        return -1;

    if (scanner->block_type == BLOCK_BLOBS)
        expect_int(scanner, FIELD_OBJECT_OID);
    else
        expect_int(scanner, FIELD_CHUNK_LENGTH);
    return 0;
}

static int end_table_block(dumpscan *scanner, stow_error *err)
{
    struct dumpscan_table *table = scanner->block->table;
    char name[DESCRIPTION_SIZE];

    describe_block(scanner->block, name, sizeof name);
    if (scanner->row_len > 0 || scanner->digest.row_open)
        return corrupt(scanner, err, "the data of %s ends inside a row", name);
    if (table != NULL) {
        table->rows = scanner->digest.rows;
        if (!scanner->skip_row_digests)
            rowdigest_hex(&scanner->digest, table->digest);
        stow_log_detail("%s: %" PRIu64 " rows in the dump", name, table->rows);
    }
    scanner->block = NULL;
    if (scanner->observing_block && scanner->observer.table_end != NULL &&
        scanner->observer.table_end(scanner->observer.context, err) != 0)
        return -1;
    scanner->observing_block = 0;
    return 0;
}

static int on_chunk_length(dumpscan *scanner, stow_error *err)
{
    int64_t len = 0;
    int objects = scanner->field == FIELD_OBJECT_CHUNK_LENGTH;

    if (read_int(scanner, &len, err) != 0)
        return -1;
    if (len < 0 || len > INT32_MAX)
        return corrupt(scanner, err, "data chunk length %" PRId64 " is out of range", len);

    if (len > 0) {
        expect_chunk(scanner, objects ? FIELD_OBJECT_CHUNK : FIELD_CHUNK, (size_t)len);
        return 0;
    }

    /* A zero length ends the data of a table or of one large object. */
    if (objects) {
        expect_int(scanner, FIELD_OBJECT_OID);
        return 0;
    }
    if (end_table_block(scanner, err) != 0)
        return -1;
    if (scanner->has_output &&
        dumpscan_output_block_end(&scanner->output, scanner->int_size, err) != 0)
        return -1;
    expect_byte(scanner, FIELD_BLOCK_TYPE);
    return 0;
}

static int on_object_oid(dumpscan *scanner, stow_error *err)
{
    int64_t oid = 0;

    if (read_int(scanner, &oid, err) != 0)
        return -1;

    /* OID 0 ends the large objects of the block. */
    if (oid == 0) {
        scanner->block = NULL;
        expect_byte(scanner, FIELD_BLOCK_TYPE);
        return 0;
    }
    scanner->contents.large_object_count++;
    expect_int(scanner, FIELD_OBJECT_CHUNK_LENGTH);
    return 0;
}

/* The line "\." is the end-of-data marker that pg_dump writes after the
 * rows; blank lines follow it. */
static int is_end_marker(const unsigned char *row, size_t len)
{
    return len == 2 && row[0] == '\\' && row[1] == '.';
}

/* Ends one COPY text line. */
static int end_row(dumpscan *scanner, stow_error *err)
{
    char name[DESCRIPTION_SIZE];

    if (scanner->after_end_marker) {
        rowdigest_row_cancel(&scanner->digest);
        if (scanner->row_len == 0)
            return 0;
        describe_block(scanner->block, name, sizeof name);
        return corrupt(scanner, err, "the data of %s continues after the end marker", name);
    }

    if (is_end_marker(scanner->row_start, scanner->row_len)) {
        rowdigest_row_cancel(&scanner->digest);
        scanner->after_end_marker = 1;
    } else {
        rowdigest_row_end(&scanner->digest);
    }
    scanner->row_len = 0;
    return 0;
}

static void row_bytes(dumpscan *scanner, const unsigned char *bytes, size_t len)
{
    for (size_t i = 0; i < len && scanner->row_len + i < 2; i++)
        scanner->row_start[scanner->row_len + i] = bytes[i];
    scanner->row_len += len;
    rowdigest_row_update(&scanner->digest, bytes, len);
}

static int observe_rows(dumpscan *scanner, const void *rows, size_t len, stow_error *err)
{
    if (!scanner->observing_block || len == 0 || scanner->observer.table_rows == NULL)
        return 0;
    return scanner->observer.table_rows(scanner->observer.context, rows, len, err);
}

/* Passes a piece of a row that did not arrive whole to the observer. The
 * row's first two bytes wait until the row is known not to be the end
 * marker: until it grows longer, or ends. */
static int observe_row_part(dumpscan *scanner, size_t len_before, const unsigned char *bytes,
                            size_t len, int ends_row, stow_error *err)
{
    static const unsigned char newline = '\n';
    size_t len_after = len_before + len;

    if (scanner->after_end_marker)
        return 0;
    if (len_after <= 2) {
        if (!ends_row || is_end_marker(scanner->row_start, len_after))
            return 0;
        if (observe_rows(scanner, scanner->row_start, len_after, err) != 0)
            return -1;
        return observe_rows(scanner, &newline, 1, err);
    }
    if (len_before <= 2) {
        if (observe_rows(scanner, scanner->row_start, len_before, err) != 0)
            return -1;
    }
    if (observe_rows(scanner, bytes, len, err) != 0)
        return -1;
    return ends_row ? observe_rows(scanner, &newline, 1, err) : 0;
}

static int row_part(dumpscan *scanner, const unsigned char *bytes, size_t len, int ends_row,
                    stow_error *err)
{
    size_t len_before = scanner->row_len;

    row_bytes(scanner, bytes, len);
    if (observe_row_part(scanner, len_before, bytes, len, ends_row, err) != 0)
        return -1;
    return ends_row ? end_row(scanner, err) : 0;
}

static int table_chunk(dumpscan *scanner, const unsigned char *at, size_t len,
                       stow_error *err)
{
    const unsigned char *end = at + len;
    const unsigned char *run = at;     /* whole rows not yet passed to the observer */

    while (at < end) {
        const unsigned char *newline = memchr(at, '\n', (size_t)(end - at));

        /* A row that arrives whole skips the digest's incremental path. */
        if (newline != NULL && scanner->row_len == 0 && !scanner->after_end_marker &&
            !is_end_marker(at, (size_t)(newline - at))) {
            if (scanner->skip_row_digests)
                scanner->digest.rows++;
            else
                rowdigest_add_row(&scanner->digest, at, (size_t)(newline - at));
            at = newline + 1;
            continue;
        }

        if (observe_rows(scanner, run, (size_t)(at - run), err) != 0)
            return -1;
        if (newline == NULL)
            return row_part(scanner, at, (size_t)(end - at), 0, err);
        if (row_part(scanner, at, (size_t)(newline - at), 1, err) != 0)
            return -1;
        at = newline + 1;
        run = at;
    }
    return observe_rows(scanner, run, (size_t)(at - run), err);
}

static int chunk_bytes(dumpscan *scanner, const unsigned char *at, size_t len,
                       stow_error *err)
{
    if (scanner->field == FIELD_OBJECT_CHUNK) {
        scanner->contents.large_object_bytes += len;
        return 0;
    }
    if (scanner->block->kind == DATA_OTHER || scanner->skip_rows)
        return 0;
    return table_chunk(scanner, at, len, err);
}

static void on_chunk_end(dumpscan *scanner)
{
    if (scanner->field == FIELD_OBJECT_CHUNK)
        expect_int(scanner, FIELD_OBJECT_CHUNK_LENGTH);
    else
        expect_int(scanner, FIELD_CHUNK_LENGTH);
}

/* --- Dispatch ------------------------------------------------------------------ */

static int on_fixed(dumpscan *scanner, stow_error *err)
{
    switch (scanner->field) {
    case FIELD_MAGIC:
        if (memcmp(scanner->scratch, "PGDMP", 5) != 0)
            return stow_fail(err, STOW_EXIT_FAILURE,
                             "the dump is not a pg_dump custom-format archive (no PGDMP "
                             "signature); stowage runs pg_dump with -Fc");
        expect_fixed(scanner, FIELD_VERSION_MAJOR, 3);
        return 0;
    case FIELD_VERSION_MAJOR:
        if (on_version(scanner, err) != 0)
            return -1;
        expect_byte(scanner, FIELD_INT_SIZE);
        return 0;
    case FIELD_INT_SIZE:
    case FIELD_OFFSET_SIZE:
    case FIELD_FORMAT:
        return on_header_byte(scanner, err);
    case FIELD_COMPRESSION:
        return on_compression(scanner, err);
    case FIELD_CREATION_TIME:
        if (++scanner->time_fields_read < 7)
            expect_int(scanner, FIELD_CREATION_TIME);
        else
            expect_string(scanner, FIELD_DATABASE);
        return 0;
    case FIELD_TOC_COUNT:
        return on_toc_count(scanner, err);
    case FIELD_ENTRY_DUMP_ID:
    case FIELD_ENTRY_HAD_DUMPER:
    case FIELD_ENTRY_SECTION:
        return on_entry_int(scanner, err);
    case FIELD_ENTRY_OFFSET_FLAG:
        return on_offset_flag(scanner, err);
    case FIELD_BLOCK_TYPE:
        return on_block_type(scanner, err);
    case FIELD_BLOCK_ID:
        return on_block_id(scanner, err);
    case FIELD_CHUNK_LENGTH:
    case FIELD_OBJECT_CHUNK_LENGTH:
        return on_chunk_length(scanner, err);
    case FIELD_OBJECT_OID:
        return on_object_oid(scanner, err);
    default:
        return corrupt(scanner, err, "internal error: field %d read as fixed", scanner->field);
    }
}

static int on_string(dumpscan *scanner, stow_error *err)
{
    if (scanner->field >= FIELD_DATABASE && scanner->field <= FIELD_DUMP_VERSION)
        return on_header_string(scanner, err);
    return on_entry_string(scanner, err);
}

/* Completes every read that needs no more bytes. */
static int complete_reads(dumpscan *scanner, stow_error *err)
{
    for (;;) {
        if (scanner->read == READ_FIXED && scanner->scratch_len == scanner->need) {
            if (on_fixed(scanner, err) != 0)
                return -1;
        } else if (scanner->read == READ_STRING_LENGTH && scanner->scratch_len == scanner->need) {
            if (start_string_body(scanner, err) != 0)
                return -1;
        } else if (scanner->read == READ_STRING_BODY && scanner->need == 0) {
            if (on_string(scanner, err) != 0)
                return -1;
        } else if (scanner->read == READ_SKIP && scanner->need == 0) {
            if (finish_entry(scanner, err) != 0)
                return -1;
        } else if (scanner->read == READ_CHUNK && scanner->need == 0) {
            on_chunk_end(scanner);
        } else {
            return 0;
        }
    }
}

/* Consumes up to len bytes into the current read; sets *used. */
static int consume(dumpscan *scanner, const unsigned char *at, size_t len, size_t *used,
                   stow_error *err)
{
    size_t take;

    switch (scanner->read) {
    case READ_FIXED:
    case READ_STRING_LENGTH:
        take = scanner->need - scanner->scratch_len;
        take = take < len ? take : len;
        memcpy(scanner->scratch + scanner->scratch_len, at, take);
        scanner->scratch_len += take;
        break;
    case READ_STRING_BODY:
        take = scanner->need < len ? scanner->need : len;
        if (scanner->string_keep && stow_buf_append(&scanner->string, at, take, err) != 0)
            return -1;
        scanner->need -= take;
        break;
    case READ_SKIP:
        take = scanner->need < len ? scanner->need : len;
        scanner->need -= take;
        break;
    default:
        take = scanner->need < len ? scanner->need : len;
        if (chunk_bytes(scanner, at, take, err) != 0)
            return -1;
        scanner->need -= take;
        break;
    }
    *used = take;
    return 0;
}

/* --- Public interface -------------------------------------------------------- */

int dumpscan_new(const struct dumpscan_options *options, dumpscan **out, stow_error *err)
{
    const char *timezone = options != NULL && options->timezone ? options->timezone : "UTC";
    const char *bytea = options != NULL && options->bytea_output ? options->bytea_output : "hex";
    dumpscan *scanner = NULL;
    void *memory = NULL;

    *out = NULL;
    if (sodium_init() < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "libsodium failed to initialise");

    /* The row digest contains a 64-byte aligned BLAKE2b state. */
    if (posix_memalign(&memory, _Alignof(dumpscan), sizeof(dumpscan)) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a dump scanner");
    scanner = memory;
    memset(scanner, 0, sizeof *scanner);
    stow_buf_init(&scanner->string, DUMPSCAN_STRING_MAX);
    rowdigest_init(&scanner->digest);
    scanner->contents.table_digest_algorithm = ROWDIGEST_CURRENT;
    scanner->skip_row_digests = options != NULL && options->skip_row_digests;
    scanner->skip_rows = options != NULL && options->skip_rows;
    expect_fixed(scanner, FIELD_MAGIC, 5);

    scanner->contents.timezone = strdup(timezone);
    scanner->contents.bytea_output = strdup(bytea);
    if (scanner->contents.timezone == NULL || scanner->contents.bytea_output == NULL) {
        dumpscan_free(scanner);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a dump scanner");
    }

    *out = scanner;
    return 0;
}

void dumpscan_set_observer(dumpscan *scanner, const struct dumpscan_observer *observer)
{
    scanner->observer = *observer;
    scanner->observed = 1;
}

void dumpscan_set_output(dumpscan *scanner, const struct dumpscan_output *output)
{
    dumpscan_output_init(&scanner->output, output);
    scanner->has_output = 1;
}

/* Passes on the len bytes just consumed for field. The chunk lengths of
 * data blocks are left out, because the output cuts its own chunks. */
static int output_consumed(dumpscan *scanner, enum field field, const unsigned char *at,
                           size_t len, stow_error *err)
{
    struct dumpscan_output_state *output = &scanner->output;
    int int_size = scanner->int_size;

    switch (field) {
    case FIELD_CHUNK:
        return dumpscan_output_chunk_bytes(output, at, len, int_size, err);
    case FIELD_CHUNK_LENGTH:
        return 0;
    case FIELD_ENTRY_OFFSET_FLAG: {
        /* 2 (set) becomes 1 (not set): the offsets of the old layout are wrong. */
        unsigned char flag = len == 1 && at[0] == 2 ? 1 : at[0];

        return dumpscan_output_bytes(output, &flag, len, int_size, err);
    }
    default:
        return dumpscan_output_bytes(output, at, len, int_size, err);
    }
}

/* Tells the observer that the TOC ended, once the bytes up to its end are
 * counted in offset. */
static int report_toc_end(dumpscan *scanner, stow_error *err)
{
    struct dumpscan_toc_summary summary = {.toc_end_offset = scanner->offset};

    scanner->toc_end_pending = 0;
    if (scanner->observer.toc_end == NULL)
        return 0;
    for (size_t i = 0; i < scanner->toc.data_count; i++) {
        enum data_kind kind = scanner->toc.data[i].kind;

        if (kind == DATA_TABLE)
            summary.table_data_count++;
        else if (kind == DATA_LARGE_OBJECTS)
            summary.large_object_count++;
        else
            summary.other_data_count++;
    }
    return scanner->observer.toc_end(scanner->observer.context, &summary, &scanner->contents,
                                     err);
}

int dumpscan_write(dumpscan *scanner, const void *data, size_t len, stow_error *err)
{
    const unsigned char *at = data;

    if (scanner->failed || scanner->finished)
        return stow_fail(err, STOW_EXIT_FAILURE, "the dump scanner %s",
                         scanner->failed ? "already failed" : "is finished");

    while (len > 0) {
        enum field field = scanner->field;
        size_t used = 0;

        if (consume(scanner, at, len, &used, err) != 0 ||
            (scanner->has_output && output_consumed(scanner, field, at, used, err) != 0) ||
            complete_reads(scanner, err) != 0) {
            scanner->failed = 1;
            return -1;
        }
        at += used;
        len -= used;
        scanner->offset += used;
        if (scanner->toc_end_pending && report_toc_end(scanner, err) != 0) {
            scanner->failed = 1;
            return -1;
        }
    }
    return 0;
}

/* Names the part of the archive the stream ended in. */
static int fail_truncated(dumpscan *scanner, stow_error *err)
{
    char name[DESCRIPTION_SIZE];

    if (scanner->offset == 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "the dump is empty");
    if (scanner->field < FIELD_TOC_COUNT)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the dump ended inside the archive header after %" PRIu64
                         " bytes: the dump is truncated", scanner->offset);
    if (scanner->field < FIELD_BLOCK_TYPE)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the dump ended inside the table of contents after %" PRIu64
                         " bytes: the dump is truncated", scanner->offset);
    if (scanner->block != NULL && scanner->block->kind == DATA_LARGE_OBJECTS)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the dump ended inside the large objects: the dump is truncated");

    if (scanner->block == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the dump ended inside a data block header: the dump is truncated");

    describe_block(scanner->block, name, sizeof name);
    return stow_fail(err, STOW_EXIT_FAILURE,
                     "the dump ended inside the data of %s: the dump is truncated", name);
}

int dumpscan_finish(dumpscan *scanner, stow_error *err)
{
    struct data_entry *missing;
    char name[DESCRIPTION_SIZE];

    if (scanner->failed || scanner->finished)
        return stow_fail(err, STOW_EXIT_FAILURE, "the dump scanner %s",
                         scanner->failed ? "already failed" : "is finished");

    scanner->failed = 1;
    if (scanner->field != FIELD_BLOCK_TYPE || scanner->scratch_len != 0)
        return fail_truncated(scanner, err);

    if (scanner->contents.encoding == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "invalid pg_dump archive: the TOC has no ENCODING entry");

    missing = toc_collector_first_unseen(&scanner->toc);
    if (missing != NULL && missing->kind == DATA_LARGE_OBJECTS)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the dump ended before the large objects: the dump is truncated");
    if (missing != NULL) {
        describe_block(missing, name, sizeof name);
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "the dump ended before the data of %s: the dump is truncated", name);
    }

    if (scanner->has_output &&
        dumpscan_output_flush(&scanner->output, scanner->int_size, err) != 0)
        return -1;
    scanner->failed = 0;
    scanner->finished = 1;
    return 0;
}

const struct dumpscan_contents *dumpscan_contents(const dumpscan *scanner)
{
    return &scanner->contents;
}

json_t *dumpscan_to_json(const dumpscan *scanner)
{
    return dumpscan_contents_to_json(&scanner->contents);
}

void dumpscan_free(dumpscan *scanner)
{
    if (scanner == NULL)
        return;

    entry_clear(&scanner->entry);
    stow_buf_free(&scanner->string);
    if (scanner->has_output)
        dumpscan_output_free(&scanner->output);
    toc_collector_free(&scanner->toc);
    dumpscan_contents_clear(&scanner->contents);
    free(scanner);
}
