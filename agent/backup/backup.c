/* The logical backup job.
 *
 * Steps: load the recipients' keys, connect and identify the source, find
 * the pg_dump of the server's major version, check the repository, dump
 * the globals, stream the dump through the pipeline into a multipart
 * upload, then write the manifest. Until the manifest is written nothing
 * of the backup is visible to list, restore or retention; any failure
 * before that aborts the upload. */
#include "backup/backup.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup_job.h"
#include "catalog.h"
#include "catalog/catalog_lock.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "container.h"
#include "keys.h"
#include "manifest.h"
#include "members.h"


static int load_recipients(struct backup_job *job, stow_error *err)
{
    const struct backup_options *options = job->options;

    if (options->no_encryption) {
        if (options->recipient_count > 0)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "--no-encryption and --recipient cannot be used together");
        stow_log_warn("encryption is off (--no-encryption): the backup is stored in plain text");
        return 0;
    }
    if (options->recipient_count == 0) {
        stow_fail(err, STOW_EXIT_USAGE, "no recipient given: backups are encrypted to at "
                                        "least one recipient's public key");
        stow_error_hint(err, "create a key pair with stowage keygen --out KEYFILE and pass "
                             "--recipient KEYFILE.pub, or pass --no-encryption explicitly");
        return -1;
    }

    job->recipients = calloc(options->recipient_count, sizeof *job->recipients);
    if (job->recipients == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    for (size_t i = 0; i < options->recipient_count; i++) {
        struct keys_public *loaded = &job->recipients[job->recipient_count];
        int duplicate = 0;

        if (keys_public_load(options->recipient_files[i], loaded, err) != 0)
            return -1;
        for (size_t j = 0; j < job->recipient_count; j++)
            duplicate |= strcmp(job->recipients[j].id, loaded->id) == 0;
        if (duplicate)
            stow_log_warn("ignoring --recipient %s: key id %s is already a recipient",
                          options->recipient_files[i], loaded->id);
        else
            job->recipient_count++;
    }
    return 0;
}

static int load_signing_key(struct backup_job *job, stow_error *err)
{
    struct keys_passphrase_source source = {job->options->signing_passphrase_file,
                                            "--signing-passphrase-file"};

    if (job->options->signing_key_path == NULL) {
        stow_log_warn("the manifest will not be signed: pass --signing-key or set "
                      "STOWAGE_SIGNING_KEY");
        return 0;
    }
    return keys_signing_secret_load(job->options->signing_key_path, keys_passphrase_from_source,
                                    &source, &job->signing_key, err);
}

/* Checks that the repository can lock objects and fixes the retain-until
 * date of every object of the backup: the start plus object_lock_days. */
static int prepare_object_lock(struct backup_job *job, stow_error *err)
{
    const struct backup_options *options = job->options;
    char until[32];

    if (options->object_lock_days <= 0)
        return 0;
    if (storage_check_object_lock(job->store, err) != 0)
        return -1;
    job->object_lock.mode = options->object_lock_mode;
    job->object_lock.retain_until = job->started_at + (time_t)options->object_lock_days * 86400;
    manifest_format_time(job->object_lock.retain_until, until);
    stow_log_info("backup %s will be locked in %s mode until %s", job->id,
                  storage_lock_mode_name(job->object_lock.mode), until);
    return 0;
}

static int connect_source(struct backup_job *job, stow_error *err)
{
    const char *name;

    if (pgtools_connect(job->options->conninfo, &job->conn, err) != 0 ||
        pgtools_server_info(job->conn, &job->server, err) != 0)
        return -1;

    name = job->options->name != NULL ? job->options->name : job->server.database;
    if (catalog_check_name(name, err) != 0)
        return -1;
    memcpy(job->name, name, strlen(name) + 1); /* catalog_check_name bounds the length */
    stow_log_set_context("database", job->name);
    stow_log_info("connected to database %s on %s:%s (PostgreSQL %s)", job->server.database,
                  job->server.host, job->server.port, job->server.version);
    return 0;
}

static int find_programs(struct backup_job *job, stow_error *err)
{
    char *version = NULL;
    size_t version_len = 0;
    char *argv[] = {job->pg_dump_path, "--version", NULL};

    if (pgtools_find_program(job->server.major, "pg_dump", job->pg_dump_path,
                             sizeof job->pg_dump_path, err) != 0 ||
        pgtools_find_program(job->server.major, "pg_dumpall", job->pg_dumpall_path,
                             sizeof job->pg_dumpall_path, err) != 0)
        return -1;
    if (pgtools_run_capture(job->pg_dump_path, argv, NULL, 4096, &version, &version_len,
                            err) != 0)
        return -1;
    while (version_len > 0 && (version[version_len - 1] == '\n' || version[version_len - 1] == '\r'))
        version[--version_len] = '\0';
    snprintf(job->pg_dump_version, sizeof job->pg_dump_version, "%s", version);
    free(version);
    return 0;
}

static int seal_data_key(struct backup_job *job, stow_error *err)
{
    job->recipients_json = json_array();
    if (job->options->no_encryption)
        return 0;

    job->data_key = sodium_malloc(CONTAINER_DATA_KEY_BYTES);
    if (job->data_key == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    crypto_secretstream_xchacha20poly1305_keygen(job->data_key);

    for (size_t i = 0; i < job->recipient_count; i++) {
        char *wrapped = NULL;

        if (keys_wrap(&job->recipients[i], job->data_key, CONTAINER_DATA_KEY_BYTES, &wrapped,
                      err) != 0)
            return -1;
        json_array_append_new(job->recipients_json,
                              json_pack("{s:s, s:s}", "key_id", job->recipients[i].id,
                                        "wrapped_key", wrapped));
        free(wrapped);
    }
    return 0;
}

static void job_free(struct backup_job *job)
{
    container_writer *container = job->container;

    /* Freeing an unfinished archive writer flushes its end blocks. Without
     * the container they are dropped (members_to_container) instead of
     * reaching the parts of an upload that is aborted or already freed. */
    job->container = NULL;
    members_writer_free(job->members);
    container_writer_free(container);
    storage_upload_abort(job->upload);
    job->upload = NULL;
    part_writer_free(&job->parts);
    dumpscan_free(job->scan);
    storage_part_list_free(&job->part_list);
    json_decref(job->recipients_json);
    if (job->data_key != NULL)
        sodium_free(job->data_key);
    free(job->recipients);
    keys_signing_secret_free(job->signing_key);
    free(job->globals);
    PQfinish(job->conn);
}

/* Deletes the complete data object of a run that failed before it sent
 * its manifest (interrupted, or its lock taken over). Once the manifest's
 * write was sent, a failed response does not prove that it was not stored,
 * so the object stays and gc judges it later. */
static void remove_stored_object(struct backup_job *job)
{
    stow_error err = {0};

    if (storage_delete(job->store, job->object_key, &err) == 0) {
        stow_log_info("deleted the data object %s of backup %s", job->object_key, job->id);
        return;
    }
    stow_log_warn("could not delete the data object %s of backup %s, which has no manifest "
                  "(%s); stowage gc removes it", job->object_key, job->id, err.message);
}

int backup_run(storage *store, const struct backup_options *options,
               struct backup_result *result, stow_error *err)
{
    struct backup_job job;
    struct catalog_lock_options lock_options = {NULL, "backup", options->lock_stale_after};
    catalog_lock *lock = NULL;
    struct timespec start, end, wall;
    int rc = -1;

    memset(&job, 0, sizeof job);
    memset(result, 0, sizeof *result);
    job.options = options;
    job.store = store;
    clock_gettime(CLOCK_MONOTONIC, &start);
    clock_gettime(CLOCK_REALTIME, &wall);
    job.started_at = wall.tv_sec;
    job.started_at_us = wall.tv_nsec / 1000;
    catalog_new_backup_id(job.started_at, job.id);

    /* Everything that can be wrong with the flags or keys fails before any
     * connection, dump or upload starts. */
    if ((options->name != NULL && catalog_check_name(options->name, err) != 0) ||
        load_recipients(&job, err) != 0 || load_signing_key(&job, err) != 0)
        goto cleanup;

    /* A bucket without Object Lock fails before anything is dumped or
     * written. */
    if (prepare_object_lock(&job, err) != 0)
        goto cleanup;

    /* The source decides the pg_dump version and the catalog name. */
    if (connect_source(&job, err) != 0 || find_programs(&job, err) != 0)
        goto cleanup;

    /* A missing bucket or bad credentials fail before the dump starts. */
    if (storage_check(store, STORAGE_ACCESS_WRITE, err) != 0)
        goto cleanup;

    /* One run per catalog name at a time: a second run fails here. */
    lock_options.name = job.name;
    if (catalog_lock_acquire(store, &lock_options, &lock, err) != 0)
        goto cleanup;

    stow_log_set_context("backup_id", job.id);
    stow_log_info("backup %s of %s started into %s", job.id, job.name, storage_url(store));
    if (seal_data_key(&job, err) != 0)
        goto cleanup;

    /* The data object: complete only when the upload completes. */
    if (backup_stream_dump(&job, err) != 0)
        goto cleanup;

    /* The manifest is the commit point: written last, and only while this
     * run still holds the lock, so a run whose lock was taken over cannot
     * commit beside the run that took it. */
    if (catalog_lock_check(lock, err) != 0)
        goto cleanup;
    if (stow_interrupted()) {
        stow_fail_interrupted(err, "the backup, before its manifest was written");
        goto cleanup;
    }
    clock_gettime(CLOCK_REALTIME, &wall);
    job.finished_at = wall.tv_sec;
    job.finished_at_us = wall.tv_nsec / 1000;
    clock_gettime(CLOCK_MONOTONIC, &end);
    job.seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    job.manifest_attempted = 1;
    if (backup_write_manifest(&job, err) != 0)
        goto cleanup;

    snprintf(result->id, sizeof result->id, "%s", job.id);
    snprintf(result->name, sizeof result->name, "%s", job.name);
    result->plain_bytes = job.plain_bytes;
    result->compressed_bytes = job.stats.compressed_bytes;
    result->stored_bytes = job.part_list.total_size;
    result->parts = job.part_list.count;
    result->tables = job.table_count;
    result->seconds = job.seconds;
    rc = 0;

cleanup:
    if (rc != 0 && job.upload != NULL)
        stow_log_warn("aborting the upload of backup %s", job.id);
    if (rc != 0 && job.object_stored && !job.manifest_attempted)
        remove_stored_object(&job);
    job_free(&job);
    catalog_lock_release(lock);
    stow_log_set_context("backup_id", NULL);
    return rc;
}
