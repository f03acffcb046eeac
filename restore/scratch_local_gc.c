/* gc of local scratch clusters left behind by killed stowage processes. */
#include "scratch_local_gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/process.h"
#include "pg/pgtools.h"
#include "scratch_local.h"

#define MARKER_MAX_BYTES 4096

/* The fields of a marker file that decide whether its owner is gone. */
struct scratch_marker {
    long long owner_pid;
    int major;
    char host[256];
    char boot_id[STOW_BOOT_ID_MAX];
    char pid_namespace[64];
};

static void copy_field(json_t *document, const char *field, char *out, size_t size)
{
    const char *value = json_string_value(json_object_get(document, field));

    snprintf(out, size, "%s", value != NULL ? value : "");
}

/* Reads directory/SCRATCH_LOCAL_MARKER. Returns 0 when it is a regular file
 * owned by this user and a valid marker; else fills reason and returns -1. */
static int read_marker(const char *directory, struct scratch_marker *marker, char *reason,
                       size_t size)
{
    char path[PATH_MAX + 32];
    char text[MARKER_MAX_BYTES + 1];
    struct stat info;
    json_t *document;
    const char *format;
    int valid_format;
    ssize_t got;
    int fd;

    snprintf(path, sizeof path, "%s/%s", directory, SCRATCH_LOCAL_MARKER);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(reason, size, "no readable %s: %s", SCRATCH_LOCAL_MARKER, strerror(errno));
        return -1;
    }
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) || info.st_uid != geteuid()) {
        snprintf(reason, size, "%s is not a regular file owned by uid %d",
                 SCRATCH_LOCAL_MARKER, (int)geteuid());
        close(fd);
        return -1;
    }
    got = read(fd, text, MARKER_MAX_BYTES);
    close(fd);
    text[got > 0 ? got : 0] = '\0';

    document = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    format = json_string_value(json_object_get(document, "format"));
    valid_format = format != NULL && strcmp(format, SCRATCH_LOCAL_MARKER_FORMAT) == 0;
    memset(marker, 0, sizeof *marker);
    marker->owner_pid = (long long)json_integer_value(json_object_get(document, "owner_pid"));
    marker->major = (int)json_integer_value(json_object_get(document, "major"));
    copy_field(document, "host", marker->host, sizeof marker->host);
    copy_field(document, "boot_id", marker->boot_id, sizeof marker->boot_id);
    copy_field(document, "pid_namespace", marker->pid_namespace, sizeof marker->pid_namespace);
    json_decref(document);
    if (!valid_format || marker->owner_pid <= 0 || marker->major <= 0) {
        snprintf(reason, size, "%s is not a valid scratch marker", SCRATCH_LOCAL_MARKER);
        return -1;
    }
    return 0;
}

/* Decides whether the owner named by marker is gone and writes the reason
 * into reason. A marker from another host or pid namespace is kept, because
 * its pid means nothing here. */
static enum scratch_gc_action judge_owner(const struct scratch_marker *marker, char *reason,
                                          size_t size)
{
    char host[256] = "";
    char boot_id[STOW_BOOT_ID_MAX];
    char pid_namespace[64];

    gethostname(host, sizeof host - 1);
    stow_boot_id(boot_id, sizeof boot_id);
    stow_pid_namespace(pid_namespace, sizeof pid_namespace);
    if (strcmp(marker->host, host) != 0) {
        snprintf(reason, size, "created on host %.200s", marker->host);
        return SCRATCH_GC_KEEP_RUNNING;
    }
    if (marker->boot_id[0] != '\0' && boot_id[0] != '\0' &&
        strcmp(marker->boot_id, boot_id) != 0) {
        snprintf(reason, size, "owner pid %lld ran before the last boot", marker->owner_pid);
        return SCRATCH_GC_REMOVE;
    }
    if (strcmp(marker->pid_namespace, pid_namespace) != 0) {
        snprintf(reason, size, "owner pid %lld runs in another pid namespace (%s)",
                 marker->owner_pid, marker->pid_namespace);
        return SCRATCH_GC_KEEP_RUNNING;
    }
    if (stow_pid_is_gone(marker->owner_pid)) {
        snprintf(reason, size, "owner pid %lld no longer exists", marker->owner_pid);
        return SCRATCH_GC_REMOVE;
    }
    snprintf(reason, size, "owner pid %lld is running", marker->owner_pid);
    return SCRATCH_GC_KEEP_RUNNING;
}

/* Stops the abandoned cluster in directory and removes the directory. The
 * server runs as the directory's owner, which scratch_local_create made it. */
static void remove_abandoned(const char *directory, const struct scratch_marker *marker)
{
    struct scratch_local scratch;
    struct stat info;
    struct passwd *owner;

    memset(&scratch, 0, sizeof scratch);
    snprintf(scratch.directory, sizeof scratch.directory, "%s", directory);
    if ((size_t)snprintf(scratch.data_directory, sizeof scratch.data_directory, "%s/data",
                         directory) >= sizeof scratch.data_directory)
        return;
    scratch.major = marker->major;
    if (stat(directory, &info) == 0) {
        scratch.run_uid = info.st_uid;
        scratch.run_gid = info.st_gid;
    }
    owner = getpwuid(scratch.run_uid);
    snprintf(scratch.run_user, sizeof scratch.run_user, "%s", owner ? owner->pw_name : "");
    scratch.started = scratch_local_postmaster_pid(&scratch) > 0;
    scratch_local_remove(&scratch);
}

static int append_item(struct scratch_gc_result *result, const struct scratch_gc_item *item,
                       stow_error *err)
{
    struct scratch_gc_item *grown =
        realloc(result->items, (result->count + 1) * sizeof *result->items);

    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    result->items = grown;
    result->items[result->count++] = *item;
    return 0;
}

/* Judges one entry of the base directory and removes it when abandoned. */
static int collect_entry(const char *base, const char *name, int dry_run,
                         struct scratch_gc_result *result, stow_error *err)
{
    struct scratch_gc_item item;
    struct scratch_marker marker;
    struct stat info;

    memset(&item, 0, sizeof item);
    if ((size_t)snprintf(item.directory, sizeof item.directory, "%s/%s", base, name) >=
        sizeof item.directory)
        return 0;
    if (lstat(item.directory, &info) != 0 || !S_ISDIR(info.st_mode))
        return 0;

    if (read_marker(item.directory, &marker, item.reason, sizeof item.reason) != 0) {
        item.action = SCRATCH_GC_KEEP_UNMARKED;
    } else {
        item.owner_pid = marker.owner_pid;
        item.action = judge_owner(&marker, item.reason, sizeof item.reason);
    }
    if (item.action == SCRATCH_GC_REMOVE && !dry_run) {
        stow_log_warn("removing the abandoned scratch cluster in %s: %s", item.directory,
                      item.reason);
        remove_abandoned(item.directory, &marker);
        item.done = access(item.directory, F_OK) != 0;
        result->removed += item.done ? 1 : 0;
    }
    return append_item(result, &item, err);
}

int scratch_local_gc(int dry_run, struct scratch_gc_result *result, stow_error *err)
{
    char base[PATH_MAX];
    const char *source;
    struct dirent *entry;
    DIR *directory;
    int rc = 0;

    memset(result, 0, sizeof *result);
    if (scratch_local_base_directory(base, &source, err) != 0)
        return -1;
    directory = opendir(base);
    if (directory == NULL)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "listing scratch directories in",
                               base);
    while (rc == 0 && (entry = readdir(directory)) != NULL) {
        if (strncmp(entry->d_name, SCRATCH_LOCAL_PREFIX, strlen(SCRATCH_LOCAL_PREFIX)) == 0)
            rc = collect_entry(base, entry->d_name, dry_run, result, err);
    }
    closedir(directory);
    return rc;
}

void scratch_gc_result_free(struct scratch_gc_result *result)
{
    free(result->items);
    memset(result, 0, sizeof *result);
}
