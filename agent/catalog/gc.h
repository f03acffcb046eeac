/* Garbage collection: removes what failed or interrupted runs left under
 * backups/ and no manifest refers to.
 *
 * Candidates, all inside the catalog layout backups/NAME/ID/ (a valid
 * catalog name and a backup id of the form YYYYMMDDTHHMMSSZ-xxxxxx):
 * - a data.stow in a directory without manifest.json that no valid
 *   manifest names as its object, and that starts with the container
 *   magic (so it is Stowage's);
 * - verification reports (*.json under verifications/) in such a directory;
 * - unfinished uploads (S3 multipart uploads, hidden temporary files on
 *   file://) of keys in the layout.
 * A candidate is removed only when it is older than options->older_than,
 * so that a running backup's upload is spared, and its catalog name holds
 * no fresh lock. The lock check is what protects a running backup on
 * moto, which reports every upload as initiated in 2010. Manifests, hold
 * files and keys outside the layout are never touched. On file://, gc also
 * removes the empty directories under backups/NAME/ that are older than
 * options->older_than (not in a dry run).
 * NOTE: a backup that starts after gc has read the locks and whose upload
 * is listed as old (moto) can lose its upload; on AWS its initiation time
 * protects it. */
#ifndef STOWAGE_GC_H
#define STOWAGE_GC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"
#include "storage/storage.h"

struct gc_options {
    int64_t older_than;        /* seconds: the grace period */
    int64_t lock_stale_after;  /* seconds: locks refreshed longer ago do not protect */
    int dry_run;               /* 1: decide and report, remove nothing */
};

enum gc_kind { GC_OBJECT, GC_UPLOAD };

enum gc_action {
    GC_REMOVE,       /* removed, or would be in a dry run */
    GC_KEEP_RECENT,  /* younger than the grace period */
    GC_KEEP_LOCKED,  /* its catalog name holds a fresh lock */
    GC_KEEP_FOREIGN  /* a data.stow that is not a Stowage container */
};

struct gc_item {
    enum gc_kind kind;
    enum gc_action action;
    char *key;           /* owned */
    char *upload_id;     /* owned; uploads only */
    uint64_t size;       /* bytes, when size_known */
    int size_known;
    time_t time;         /* last modified (objects) or initiated (uploads) */
    int done;            /* removed; never set in a dry run */
};

struct gc_result {
    struct gc_item *items;   /* owned; objects first, then uploads */
    size_t count;
    size_t capacity;
    size_t removed;          /* items with GC_REMOVE */
    uint64_t bytes;          /* known bytes of the items with GC_REMOVE */
    size_t empty_dirs;       /* file:// only: empty backup directories removed */
};

/* Finds the candidates and, unless dry_run, removes those marked
 * GC_REMOVE. Stops at the first failed removal or on SIGINT or SIGTERM;
 * result then shows what was done. */
int gc_run(storage *store, const struct gc_options *options, struct gc_result *result,
           stow_error *err);

/* Accepts a zeroed result. */
void gc_result_free(struct gc_result *result);

#endif
