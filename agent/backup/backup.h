/* The logical backup: pg_dump → archive members → zstd → secretstream →
 * multipart upload, then the manifest as the commit point. */
#ifndef STOWAGE_BACKUP_H
#define STOWAGE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "storage/storage.h"

struct backup_options {
    const char *conninfo;             /* libpq URI or key=value; NULL: PG* variables */
    const char *name;                 /* catalog name; NULL: the database name */
    const char *const *recipient_files; /* public key files */
    size_t recipient_count;
    const char *signing_key_path;     /* signing secret key file; NULL: unsigned manifest */
    const char *signing_passphrase_file; /* for a protected signing key; NULL: the terminal */
    int no_encryption;                /* only with an explicit --no-encryption */
    int compress_level;               /* zstd level */
    int compress_threads;             /* zstd workers */
    uint64_t part_size;               /* first part size in bytes */
    uint32_t part_growth_interval;    /* parts between part-size doublings */
    int skip_globals;                 /* leave out pg_dumpall --globals-only */
    int64_t lock_stale_after;         /* seconds; 0: the catalog lock's default */
    int object_lock_days;             /* S3 Object Lock retention in days; 0: no lock */
    enum storage_lock_mode object_lock_mode; /* used when object_lock_days > 0 */
};

struct backup_result {
    char id[32];
    char name[64];
    uint64_t plain_bytes;
    uint64_t compressed_bytes;
    uint64_t stored_bytes;
    size_t parts;
    size_t tables;
    double seconds;
};

int backup_run(storage *store, const struct backup_options *options,
               struct backup_result *result, stow_error *err);

#endif
