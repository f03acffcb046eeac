/* pax archive writing and reading with libarchive. */
#include "members.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

struct members_writer {
    struct archive *archive;
    members_sink_fn sink;
    void *sink_context;
    stow_error sink_err;       /* failure raised inside the write callback */
};

static la_ssize_t write_callback(struct archive *archive, void *context, const void *data,
                                 size_t len)
{
    struct members_writer *writer = context;

    if (writer->sink(writer->sink_context, data, len, &writer->sink_err) != 0)
        return -1;
    return (la_ssize_t)len;
}

/* Prefers the sink's own error over libarchive's generic one. */
static int fail_archive(members_writer *writer, stow_error *err, const char *operation)
{
    if (stow_error_is_set(&writer->sink_err)) {
        *err = writer->sink_err;
        return -1;
    }
    return stow_fail(err, STOW_EXIT_FAILURE, "%s failed: %s", operation,
                     archive_error_string(writer->archive));
}

int members_writer_new(members_sink_fn sink, void *sink_context, members_writer **out,
                       stow_error *err)
{
    members_writer *writer = calloc(1, sizeof *writer);

    *out = NULL;
    if (writer == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    writer->sink = sink;
    writer->sink_context = sink_context;
    writer->archive = archive_write_new();
    if (writer->archive == NULL ||
        archive_write_set_format_pax_restricted(writer->archive) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(writer->archive, 0) != ARCHIVE_OK ||
        archive_write_open(writer->archive, writer, NULL, write_callback, NULL) != ARCHIVE_OK) {
        stow_fail(err, STOW_EXIT_FAILURE, "could not start the pax archive: %s",
                  writer->archive ? archive_error_string(writer->archive) : "out of memory");
        members_writer_free(writer);
        return -1;
    }
    *out = writer;
    return 0;
}

int members_writer_add(members_writer *writer, const char *name, const void *data,
                       size_t len, time_t mtime, stow_error *err)
{
    struct archive_entry *entry = archive_entry_new();
    int rc = 0;

    if (entry == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    archive_entry_set_pathname(entry, name);
    archive_entry_set_size(entry, (la_int64_t)len);
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_perm(entry, 0600);
    archive_entry_set_mtime(entry, mtime, 0);

    if (archive_write_header(writer->archive, entry) != ARCHIVE_OK)
        rc = fail_archive(writer, err, "writing archive member header");
    if (rc == 0 && len > 0 && archive_write_data(writer->archive, data, len) != (la_ssize_t)len)
        rc = fail_archive(writer, err, "writing archive member data");
    if (rc == 0 && archive_write_finish_entry(writer->archive) != ARCHIVE_OK)
        rc = fail_archive(writer, err, "finishing archive member");
    archive_entry_free(entry);
    return rc;
}

int members_writer_finish(members_writer *writer, stow_error *err)
{
    if (archive_write_close(writer->archive) != ARCHIVE_OK)
        return fail_archive(writer, err, "closing the pax archive");
    return 0;
}

void members_writer_free(members_writer *writer)
{
    if (writer == NULL)
        return;
    if (writer->archive != NULL)
        archive_write_free(writer->archive);
    free(writer);
}

/* --- Reading -------------------------------------------------------------- */

struct members_reader {
    members_source_fn source;
    void *source_context;
    stow_error source_err;
};

static la_ssize_t read_callback(struct archive *archive, void *context, const void **buffer)
{
    struct members_reader *reader = context;
    size_t len = 0;

    if (reader->source(reader->source_context, buffer, &len, &reader->source_err) != 0)
        return -1;
    return (la_ssize_t)len;
}

int members_name_is_safe(const char *name)
{
    const char *segment = name;

    if (name == NULL || name[0] == '\0' || name[0] == '/')
        return 0;
    while (segment != NULL) {
        if (strncmp(segment, "..", 2) == 0 && (segment[2] == '/' || segment[2] == '\0'))
            return 0;
        segment = strchr(segment, '/');
        if (segment != NULL)
            segment++;
    }
    return 1;
}

static int fail_read(struct archive *archive, struct members_reader *reader, stow_error *err,
                     const char *operation)
{
    if (stow_error_is_set(&reader->source_err)) {
        *err = reader->source_err;
        return -1;
    }
    return stow_fail(err, STOW_EXIT_VERIFY, "the backup's archive is damaged (%s): %s",
                     operation, archive_error_string(archive));
}

static int read_member_data(struct archive *archive, struct members_reader *reader,
                            const char *name, members_data_fn on_data, void *data_context,
                            stow_error *err)
{
    const void *block;
    size_t len;
    la_int64_t offset;
    uint64_t expected = 0;
    int delivered = 0;
    int rc;

    while ((rc = archive_read_data_block(archive, &block, &len, &offset)) == ARCHIVE_OK) {
        if ((uint64_t)offset != expected)
            return stow_fail(err, STOW_EXIT_VERIFY, "archive member %s has a hole at %lld",
                             name, (long long)offset);
        if (on_data(data_context, name, expected, block, len, err) != 0)
            return -1;
        expected += len;
        delivered = 1;
    }
    if (rc != ARCHIVE_EOF)
        return fail_read(archive, reader, err, "reading member data");
    if (!delivered)
        return on_data(data_context, name, 0, "", 0, err);
    return 0;
}

static int read_entries(struct archive *archive, struct members_reader *reader,
                        members_data_fn on_data, void *data_context, stow_error *err)
{
    struct archive_entry *entry;
    int rc;

    while ((rc = archive_read_next_header(archive, &entry)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(entry);

        if (!members_name_is_safe(name) || archive_entry_filetype(entry) != AE_IFREG)
            return stow_fail(err, STOW_EXIT_VERIFY,
                             "the backup's archive holds an unsafe member \"%s\" "
                             "(absolute path, '..', or not a regular file)",
                             name ? name : "");
        if (read_member_data(archive, reader, name, on_data, data_context, err) != 0)
            return -1;
    }
    if (rc != ARCHIVE_EOF)
        return fail_read(archive, reader, err, "reading member header");
    return 0;
}

int members_read(members_source_fn source, void *source_context, members_data_fn on_data,
                 void *data_context, stow_error *err)
{
    struct members_reader reader = {source, source_context, {0}};
    struct archive *archive = archive_read_new();
    int rc;

    if (archive == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    archive_read_support_format_tar(archive);
    if (archive_read_open(archive, &reader, NULL, read_callback, NULL) != ARCHIVE_OK) {
        rc = fail_read(archive, &reader, err, "opening");
        archive_read_free(archive);
        return rc;
    }
    rc = read_entries(archive, &reader, on_data, data_context, err);
    archive_read_free(archive);
    return rc;
}
