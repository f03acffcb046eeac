/* The backup's data path. pg_dump's standard output is read in segments;
 * each read is also fed to the dump scanner (table row counts and
 * digests). Segments become pax members; the archive bytes are hashed
 * (BLAKE2b-256 of the plaintext) and go into the container (zstd, then
 * secretstream), whose output is cut into upload parts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/backup_job.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "manifest.h"

static int container_to_parts(void *context, const void *data, size_t len, stow_error *err)
{
    struct backup_job *job = context;

    return part_writer_write(&job->parts, data, len, err);
}

static int members_to_container(void *context, const void *data, size_t len, stow_error *err)
{
    struct backup_job *job = context;

    crypto_generichash_update(&job->plain_hash, data, len);
    job->plain_bytes += len;
    return container_writer_write(job->container, data, len, err);
}

static int write_info_member(struct backup_job *job, stow_error *err)
{
    char started[32];
    json_t *info;
    char *text;
    int rc;

    manifest_format_time(job->started_at, started);
    info = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", job->id, "name", job->name,
                     "database", job->server.database, "server_version", job->server.version,
                     "pg_dump_version", job->pg_dump_version, "started_at", started);
    text = info ? json_dumps(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(info);
    if (text == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    rc = members_writer_add(job->members, MEMBERS_INFO_NAME, text, strlen(text),
                            job->started_at, err);
    free(text);
    return rc;
}

static int start_pipeline(struct backup_job *job, stow_error *err)
{
    struct container_writer_options container_options = {
        .backup_id = job->id,
        .compress_level = job->options->compress_level,
        .compress_threads = job->options->compress_threads,
        .encrypt = !job->options->no_encryption,
        .data_key = job->data_key,
    };

    if (catalog_key(job->object_key, sizeof job->object_key, job->name, job->id,
                    CATALOG_DATA_FILE) != 0)
        return stow_fail(err, STOW_EXIT_USAGE, "backup name %s is too long", job->name);
    if (storage_upload_begin(job->store, job->object_key, &job->upload, err) != 0)
        return -1;
    part_writer_init(&job->parts, job->upload, job->options->part_size,
                     job->options->part_growth_interval);
    crypto_generichash_init(&job->plain_hash, NULL, 0, sizeof job->plain_digest);

    if (container_writer_new(&container_options, container_to_parts, job, &job->container,
                             err) != 0 ||
        members_writer_new(members_to_container, job, &job->members, err) != 0 ||
        dumpscan_new(NULL, &job->scan, err) != 0)
        return -1;

    if (write_info_member(job, err) != 0)
        return -1;
    if (!job->options->skip_globals &&
        members_writer_add(job->members, MEMBERS_GLOBALS_NAME, job->globals, job->globals_len,
                           job->started_at, err) != 0)
        return -1;
    return 0;
}

static int write_segment(struct backup_job *job, stow_buf *segment, stow_error *err)
{
    char name[64];

    snprintf(name, sizeof name, "%s%08u", MEMBERS_DUMP_PREFIX, job->dump_segments);
    if (members_writer_add(job->members, name, segment->data, segment->len, time(NULL), err) != 0)
        return -1;
    job->dump_segments++;
    stow_buf_reset(segment);
    return 0;
}

/* Reads pg_dump's output until end of file, cutting segments. */
static int pump_dump_output(struct backup_job *job, struct pg_child *dump, stow_buf *segment,
                            stow_error *err)
{
    for (;;) {
        size_t room = MEMBERS_SEGMENT_BYTES - segment->len;
        ssize_t got = read(dump->stdout_fd, segment->data + segment->len, room);

        if (stow_interrupted())
            return stow_fail_interrupted(err, "the dump");
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "reading the output of",
                                   "pg_dump");
        if (got == 0)
            break;

        if (dumpscan_write(job->scan, segment->data + segment->len, (size_t)got, err) != 0)
            return -1;
        segment->len += (size_t)got;
        job->dump_bytes += (uint64_t)got;
        if (segment->len == MEMBERS_SEGMENT_BYTES && write_segment(job, segment, err) != 0)
            return -1;
    }
    if (segment->len > 0 || job->dump_segments == 0)
        return write_segment(job, segment, err);
    return 0;
}

static int run_pg_dump(struct backup_job *job, stow_error *err)
{
    char *argv[] = {job->pg_dump_path, "--format=custom", "--compress=0", "--no-password",
                    NULL};
    struct pg_child dump;
    stow_buf segment;
    int rc;

    stow_buf_init(&segment, MEMBERS_SEGMENT_BYTES);
    if (stow_buf_reserve(&segment, MEMBERS_SEGMENT_BYTES, err) != 0)
        return -1;
    if (pgtools_spawn(job->pg_dump_path, argv, job->options->conninfo, PG_CHILD_STDOUT_PIPE,
                      &dump, err) != 0) {
        stow_buf_free(&segment);
        return -1;
    }

    rc = pump_dump_output(job, &dump, &segment, err);
    stow_buf_free(&segment);
    if (rc != 0) {
        pgtools_kill(&dump);
        return -1;
    }

    /* A dump that ends badly is never uploaded as a backup, whatever it wrote. */
    if (pgtools_wait(&dump, err) != 0) {
        stow_error_prefix(err, "the dump failed");
        return -1;
    }
    if (dumpscan_finish(job->scan, err) != 0) {
        stow_error_prefix(err, "the dump output is incomplete");
        return -1;
    }
    return 0;
}

static int finish_pipeline(struct backup_job *job, stow_error *err)
{
    if (members_writer_finish(job->members, err) != 0 ||
        container_writer_finish(job->container, err) != 0 ||
        part_writer_flush(&job->parts, err) != 0)
        return -1;
    container_writer_stats(job->container, &job->stats);
    crypto_generichash_final(&job->plain_hash, job->plain_digest, sizeof job->plain_digest);

    if (storage_upload_complete(job->upload, &job->part_list, err) != 0) {
        job->upload = NULL; /* complete frees the upload, also on failure */
        return -1;
    }
    job->upload = NULL;
    return 0;
}

int backup_stream_dump(struct backup_job *job, stow_error *err)
{
    if (start_pipeline(job, err) != 0)
        return -1;

    stow_log_info("dumping database %s with %s", job->server.database, job->pg_dump_path);
    if (run_pg_dump(job, err) != 0)
        return -1;

    if (finish_pipeline(job, err) != 0) {
        stow_error_prefix(err, "uploading the backup object failed");
        return -1;
    }
    stow_log_info("stored %s: %llu bytes in %zu parts (dump %llu bytes, archive %llu bytes)",
                  job->object_key, (unsigned long long)job->part_list.total_size,
                  job->part_list.count, (unsigned long long)job->dump_bytes,
                  (unsigned long long)job->plain_bytes);
    return 0;
}
