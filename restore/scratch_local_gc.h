/* Collection of local scratch clusters whose stowage process was killed
 * (SIGKILL, OOM killer, power loss) before it could remove them. */
#ifndef STOWAGE_SCRATCH_LOCAL_GC_H
#define STOWAGE_SCRATCH_LOCAL_GC_H

#include <limits.h>
#include <stddef.h>

#include "common/error.h"

enum scratch_gc_action {
    SCRATCH_GC_REMOVE,         /* owner gone: stop the server, remove the directory */
    SCRATCH_GC_KEEP_RUNNING,   /* owner pid still exists */
    SCRATCH_GC_KEEP_UNMARKED   /* no valid marker of this user: not ours to judge */
};

struct scratch_gc_item {
    char directory[PATH_MAX];
    enum scratch_gc_action action;
    long long owner_pid;       /* 0 when the marker is missing or invalid */
    char reason[256];          /* why this action, for the report */
    int done;                  /* 1 once removed */
};

struct scratch_gc_result {
    struct scratch_gc_item *items;
    size_t count;
    size_t removed;
};

/* Removes abandoned scratch clusters from the scratch base directory
 * (scratch_local_base_directory). A stowage-scratch-* directory is abandoned
 * when its marker file is owned by this user and names an owner process that
 * no longer exists on this host, or that ran before the last boot. Removal
 * stops the postmaster as scratch_local_remove does (SIGQUIT, an immediate
 * shutdown, then SIGKILL after a timeout, once the pid is known to run in
 * that data directory) and deletes the directory. With dry_run nothing is
 * stopped or removed. Fails only when the base directory cannot be read. */
int scratch_local_gc(int dry_run, struct scratch_gc_result *result, stow_error *err);

void scratch_gc_result_free(struct scratch_gc_result *result);

#endif
