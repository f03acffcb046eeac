/* Builds and writes a backup's manifest, the commit point of the backup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "backup/backup_job.h"
#include "common/log.h"
#include "manifest.h"
#include "signature.h"

static const char *unless_empty(const char *value)
{
    return value[0] != '\0' ? value : NULL;
}

/* The source server and database. The locale fields are left out when
 * empty: no ICU or builtin locale, no rules, or a name too long to record. */
static json_t *source_json(const struct backup_job *job)
{
    const struct pg_server_info *server = &job->server;

    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s*, s:s*, s:s, s:s*, s:s*}", "host",
                     server->host, "port", server->port, "user", server->user,
                     "server_version", server->version, "server_version_num",
                     server->version_num, "encoding", server->encoding, "lc_collate",
                     unless_empty(server->lc_collate), "lc_ctype",
                     unless_empty(server->lc_ctype), "locale_provider",
                     server->locale_provider, "locale", unless_empty(server->locale),
                     "icu_rules", unless_empty(server->icu_rules));
}

static json_t *tools_json(const struct backup_job *job)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "stowage", STOWAGE_VERSION, "pg_dump",
                     job->pg_dump_version, "zstd", ZSTD_versionString(), "libsodium",
                     sodium_version_string());
}

static json_t *object_json(const struct backup_job *job)
{
    char composite[80];

    manifest_composite_sha256(&job->part_list, composite);
    return json_pack("{s:s, s:I, s:s, s:o}", "key", job->object_key, "stored_bytes",
                     (json_int_t)job->part_list.total_size, "sha256_of_part_sha256s", composite,
                     "parts", manifest_parts_to_json(&job->part_list));
}

static json_t *archive_json(const struct backup_job *job)
{
    return json_pack("{s:s, s:s, s:b, s:s, s:I, s:I, s:I}", "format", "pax", "info_member",
                     MEMBERS_INFO_NAME, "has_globals", !job->options->skip_globals,
                     "dump_member_prefix", MEMBERS_DUMP_PREFIX, "dump_segments",
                     (json_int_t)job->dump_segments, "dump_segment_bytes",
                     (json_int_t)MEMBERS_SEGMENT_BYTES, "dump_bytes",
                     (json_int_t)job->dump_bytes);
}

static json_t *encryption_json(const struct backup_job *job)
{
    if (job->options->no_encryption)
        return json_pack("{s:s}", "algorithm", "none");
    return json_pack("{s:s, s:i, s:O}", "algorithm", "xchacha20poly1305-secretstream",
                     "frame_plain_bytes", CONTAINER_FRAME_PLAIN_BYTES, "recipients",
                     job->recipients_json);
}

static json_t *build_document(const struct backup_job *job)
{
    char started[32], finished[32], plain_hex[65];
    json_t *doc = json_object();

    manifest_format_time_us(job->started_at, job->started_at_us, started);
    manifest_format_time_us(job->finished_at, job->finished_at_us, finished);
    manifest_hex(job->plain_digest, sizeof job->plain_digest, plain_hex);

    json_object_set_new(doc, "format", json_string(MANIFEST_FORMAT));
    json_object_set_new(doc, "format_version", json_integer(MANIFEST_VERSION));
    json_object_set_new(doc, "kind", json_string("backup"));
    json_object_set_new(doc, "id", json_string(job->id));
    json_object_set_new(doc, "name", json_string(job->name));
    json_object_set_new(doc, "database", json_string(job->server.database));
    json_object_set_new(doc, "started_at", json_string(started));
    json_object_set_new(doc, "finished_at", json_string(finished));
    json_object_set_new(doc, "duration_seconds", json_real(job->seconds));
    json_object_set_new(doc, "source", source_json(job));
    json_object_set_new(doc, "tools", tools_json(job));
    json_object_set_new(doc, "object", object_json(job));
    json_object_set_new(doc, "plaintext",
                        json_pack("{s:I, s:s}", "bytes", (json_int_t)job->plain_bytes,
                                  archive_hash_member(ARCHIVE_HASH_DEFAULT), plain_hex));
    json_object_set_new(doc, "compression",
                        json_pack("{s:s, s:i, s:i, s:I}", "algorithm", "zstd", "level",
                                  job->options->compress_level, "threads",
                                  job->options->compress_threads, "compressed_bytes",
                                  (json_int_t)job->stats.compressed_bytes));
    json_object_set_new(doc, "encryption", encryption_json(job));
    json_object_set_new(doc, "archive", archive_json(job));
    json_object_set_new(doc, "contents", dumpscan_to_json(job->scan));
    json_object_set_new(doc, "tags", json_object());
    if (job->object_lock.mode != STORAGE_LOCK_NONE)
        json_object_set_new(doc, "object_lock", manifest_object_lock_to_json(&job->object_lock));
    return doc;
}

/* Returns 1 when key already contains exactly text: an earlier attempt of this
 * create-only put took effect, but its response was lost (a dropped
 * connection), and the HTTP retry then met the object it had created. */
static int manifest_already_written(struct backup_job *job, const char *key, const char *text)
{
    size_t len = strlen(text);
    stow_error ignored = {0};
    stow_buf stored;
    int same;

    stow_buf_init(&stored, len + 1);
    same = storage_get(job->store, key, &stored, &ignored) == 0 && stored.len == len &&
           memcmp(stored.data, text, len) == 0;
    stow_buf_free(&stored);
    return same;
}

int backup_write_manifest(struct backup_job *job, stow_error *err)
{
    static const struct storage_put_options create_only = {1, "application/json"};
    char key[512];
    json_t *doc;
    char *text;
    int rc;

    job->table_count = dumpscan_contents(job->scan)->table_count;
    if (catalog_key(key, sizeof key, job->name, job->id, CATALOG_MANIFEST_FILE) != 0)
        return stow_fail(err, STOW_EXIT_USAGE, "backup name %s is too long", job->name);

    /* The signature covers every other member, so it is added last. */
    doc = build_document(job);
    text = NULL;
    if (job->signing_key == NULL || signature_sign(doc, job->signing_key, err) == 0)
        text = manifest_serialise(doc, err);
    json_decref(doc);
    if (text == NULL)
        return -1;

    rc = storage_put_locked(job->store, key, text, strlen(text), &create_only, &job->object_lock,
                            err);
    if (rc == STORAGE_CONFLICT && manifest_already_written(job, key, text)) {
        stow_log_warn("manifest %s was already stored by an earlier attempt whose response "
                      "was lost", key);
        rc = 0;
    }
    free(text);
    if (rc == STORAGE_CONFLICT)
        return stow_fail(err, STOW_EXIT_FAILURE, "manifest %s already exists", key);
    if (rc != 0) {
        stow_error_prefix(err, "writing the manifest failed, so backup %s is not complete",
                          job->id);
        return -1;
    }
    stow_log_info("backup %s complete: manifest %s", job->id, key);
    return 0;
}
