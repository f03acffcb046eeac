/* State of one backup run, shared by backup.c (the steps),
 * backup_stream.c (the data path) and backup_manifest.c (the commit). */
#ifndef STOWAGE_BACKUP_JOB_H
#define STOWAGE_BACKUP_JOB_H

#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <time.h>

#include "backup/archive_digest.h"
#include "backup/backup.h"
#include "container.h"
#include "dumpscan.h"
#include "keys.h"
#include "members.h"
#include "pg/pgtools.h"
#include "storage/part_writer.h"

struct backup_job {
    const struct backup_options *options;
    storage *store;

    /* Source */
    PGconn *conn;
    struct pg_server_info server;
    char name[64];
    char id[32];
    char pg_dump_path[PATH_MAX];
    char pg_dumpall_path[PATH_MAX];
    char pg_dump_version[128];
    char *globals;                  /* pg_dumpall --globals-only output */
    size_t globals_len;

    /* Keys */
    struct keys_public *recipients;
    size_t recipient_count;
    uint8_t *data_key;              /* sodium_malloc'ed */
    json_t *recipients_json;        /* [{key_id, wrapped_key}] */
    struct storage_object_lock object_lock; /* of every object; mode NONE: not locked */
    struct keys_signing_secret *signing_key; /* NULL: the manifest is not signed */

    /* Data path */
    char object_key[512];
    storage_upload *upload;
    int object_stored;              /* the upload completed: object_key exists */
    int manifest_attempted;         /* the manifest's write was sent */
    struct part_writer parts;
    container_writer *container;
    members_writer *members;
    archive_digest *plain_hash;     /* thread hashing the archive */
    const uint8_t *borrowed;        /* archive bytes that stay valid until */
    size_t borrowed_len;            /* the next release marker */
    uint8_t plain_digest[ARCHIVE_DIGEST_BYTES];
    uint64_t plain_bytes;
    dumpscan *scan;
    uint64_t dump_bytes;
    uint32_t dump_segments;
    size_t table_count;
    struct container_stats stats;
    struct storage_part_list part_list;

    /* Times */
    time_t started_at;
    time_t finished_at;
    long started_at_us;   /* microseconds past started_at, so same-second backups order */
    long finished_at_us;  /* microseconds past finished_at */
    double seconds;
};

int backup_stream_dump(struct backup_job *job, stow_error *err);
int backup_write_manifest(struct backup_job *job, stow_error *err);

#endif
