/* The backup's data path, on three threads besides zstd's workers and the
 * upload's:
 *
 *   reader thread   pg_dump's standard output into 4 MiB dump segments,
 *                   each read also fed to the dump scanner (table row
 *                   counts and digests); see backup/dump_reader.h
 *   calling thread  segments become pax members, which go into the
 *                   container (zstd, then secretstream), whose output is
 *                   cut into upload parts
 *   digest thread   SHA-256 of the archive (the pax plaintext) from the
 *                   same buffers; see backup/archive_digest.h
 *
 * pg_dumpall --globals-only runs beside pg_dump: both spend their first
 * tenths of a second reading the catalog, and the globals member, which
 * comes first in the archive, is written once pg_dumpall ends while the
 * reader thread already fills segments.
 *
 * A segment goes back to the reader once the calling thread has
 * compressed it and the digest thread has hashed it. On any failure or
 * interrupt the calling thread stops pg_dump and both threads before it
 * returns. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup_job.h"
#include "backup/dump_reader.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "common/progress.h"
#include "manifest.h"

/* Largest pg_dumpall --globals-only output accepted. */
#define GLOBALS_MAX_BYTES (256u * 1024 * 1024)

static int container_to_parts(void *context, const void *data, size_t len, stow_error *err)
{
    struct backup_job *job = context;

    return part_writer_write(&job->parts, data, len, err);
}

static int members_to_container(void *context, const void *data, size_t len, stow_error *err)
{
    struct backup_job *job = context;
    uintptr_t start = (uintptr_t)data;
    uintptr_t borrowed_start = (uintptr_t)job->borrowed;
    int borrowed = job->borrowed != NULL && start >= borrowed_start &&
                   start - borrowed_start + len <= job->borrowed_len;

    /* After a failure the archive writer still flushes its end blocks when
     * it is freed: they are not hashed once the digest thread is gone, and
     * dropped once the container is. */
    if (job->container == NULL)
        return 0;
    if (job->plain_hash != NULL &&
        archive_digest_add(job->plain_hash, data, len, borrowed, err) != 0)
        return -1;
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
    if (storage_upload_begin_locked(job->store, job->object_key, &job->object_lock, &job->upload,
                                    err) != 0)
        return -1;
    if (part_writer_init(&job->parts, job->upload, job->options->part_size,
                         job->options->part_growth_interval, err) != 0 ||
        archive_digest_start(&job->plain_hash, err) != 0)
        return -1;

    if (container_writer_new(&container_options, container_to_parts, job, &job->container,
                             err) != 0 ||
        members_writer_new(members_to_container, job, &job->members, err) != 0 ||
        dumpscan_new(NULL, &job->scan, err) != 0)
        return -1;

    return write_info_member(job, err);
}

/* A signal ends pg_dumpall too, and then its failure is the interruption,
 * not a missing privilege. */
static int globals_failed(stow_error *err)
{
    if (stow_interrupted() != 0) {
        stow_error_clear(err);
        return stow_fail_interrupted(err, "dumping roles and tablespaces");
    }
    stow_error_prefix(err, "dumping roles and tablespaces failed");
    stow_error_hint(err, "the backup needs a role that may read pg_roles; pass "
                         "--no-globals to leave roles and tablespaces out");
    return -1;
}

/* Starts pg_dumpall for roles without passwords (which RDS allows) and
 * tablespaces, unless --no-globals. */
static int start_globals(struct backup_job *job, struct pg_child *child, int *started,
                         stow_error *err)
{
    char *argv[] = {job->pg_dumpall_path, "--globals-only", "--no-role-passwords",
                    "--no-password", NULL};

    *started = 0;
    if (job->options->skip_globals)
        return 0;
    if (pgtools_spawn(job->pg_dumpall_path, argv, job->options->conninfo,
                      PG_CHILD_STDOUT_PIPE, child, err) != 0)
        return globals_failed(err);
    *started = 1;
    return 0;
}

/* Collects pg_dumpall's output and writes it as the globals member. */
static int write_globals(struct backup_job *job, struct pg_child *child, int *started,
                         stow_error *err)
{
    int rc;

    if (!*started)
        return 0;
    *started = 0;
    if (pgtools_capture_output(child, GLOBALS_MAX_BYTES, &job->globals, &job->globals_len,
                               err) != 0)
        return globals_failed(err);
    stow_log_detail("dumped roles and tablespaces (%zu bytes)", job->globals_len);

    /* job->globals lives until the job ends, after the digest thread. */
    job->borrowed = (const uint8_t *)job->globals;
    job->borrowed_len = job->globals_len;
    rc = members_writer_add(job->members, MEMBERS_GLOBALS_NAME, job->globals, job->globals_len,
                            job->started_at, err);
    job->borrowed = NULL;
    job->borrowed_len = 0;
    return rc;
}

static int write_segment(struct backup_job *job, struct dump_reader *reader, int index,
                         stow_error *err)
{
    const struct dump_segment *segment = &reader->segments[index];
    char name[64];
    int rc;

    snprintf(name, sizeof name, "%s%08u", MEMBERS_DUMP_PREFIX, job->dump_segments);
    job->borrowed = segment->data;
    job->borrowed_len = segment->len;
    rc = members_writer_add(job->members, name, segment->data, segment->len, time(NULL), err);
    job->borrowed = NULL;
    job->borrowed_len = 0;
    if (rc != 0)
        return -1;
    job->dump_segments++;
    stow_progress_add_bytes(segment->len);

    /* The segment is refilled once the digest thread is done with it. */
    return archive_digest_release(job->plain_hash, dump_reader_release, reader, index, err);
}

/* Writes the segments that the reader thread hands over until pg_dump's
 * output ends. */
static int pump_dump_output(struct backup_job *job, struct dump_reader *reader,
                            stow_error *err)
{
    int index;
    int rc;

    while ((rc = dump_reader_next(reader, &index, err)) == 1) {
        if (write_segment(job, reader, index, err) != 0)
            return -1;
    }
    if (rc == 0)
        job->dump_bytes = reader->bytes;
    return rc;
}

static int run_pg_dump(struct backup_job *job, stow_error *err)
{
    char *argv[] = {job->pg_dump_path, "--format=custom", "--compress=0", "--no-password",
                    NULL};
    struct pg_child dump;
    struct pg_child globals;
    int globals_running;
    struct dump_reader reader;
    int rc;

    if (start_globals(job, &globals, &globals_running, err) != 0)
        return -1;
    if (stow_interrupted() != 0) {
        if (globals_running)
            pgtools_kill(&globals);
        return stow_fail_interrupted(err, "the start of the dump");
    }
    if (pgtools_spawn(job->pg_dump_path, argv, job->options->conninfo, PG_CHILD_STDOUT_PIPE,
                      &dump, err) != 0) {
        if (globals_running)
            pgtools_kill(&globals);
        return -1;
    }

    rc = dump_reader_start(&reader, dump.stdout_fd, job->scan, err);
    if (rc == 0)
        rc = write_globals(job, &globals, &globals_running, err);
    if (rc == 0)
        rc = pump_dump_output(job, &reader, err);
    if (rc != 0) {
        if (globals_running)
            pgtools_kill(&globals);
        /* The digest thread may still hash or release segments, and ending
         * pg_dump ends the reader thread's read(). */
        archive_digest_free(job->plain_hash);
        job->plain_hash = NULL;
        kill(-dump.pid, SIGTERM);
        dump_reader_stop(&reader);
        pgtools_kill(&dump);
        return -1;
    }
    dump_reader_wait_released(&reader);
    dump_reader_stop(&reader);

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
    if (archive_digest_finish(job->plain_hash, job->plain_digest, err) != 0)
        return -1;

    if (storage_upload_complete(job->upload, &job->part_list, err) != 0) {
        job->upload = NULL; /* complete frees the upload, also on failure */
        return -1;
    }
    job->upload = NULL;
    job->object_stored = 1;
    return 0;
}

static int stream_dump(struct backup_job *job, stow_error *err)
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
    return 0;
}

int backup_stream_dump(struct backup_job *job, stow_error *err)
{
    int rc;

    stow_progress_begin("dumped", 0);
    rc = stream_dump(job, err);
    stow_progress_end();
    archive_digest_free(job->plain_hash);
    job->plain_hash = NULL;
    if (rc != 0)
        return -1;
    stow_log_info("stored %s: %llu bytes in %zu parts (dump %llu bytes, archive %llu bytes)",
                  job->object_key, (unsigned long long)job->part_list.total_size,
                  job->part_list.count, (unsigned long long)job->dump_bytes,
                  (unsigned long long)job->plain_bytes);
    return 0;
}
