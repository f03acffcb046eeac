/* verify (storage only), verify --against (a live database) and extract. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_reader.h"
#include "common/log.h"
#include "dbverify.h"
#include "pg/pgtools.h"
#include "report.h"
#include "restore.h"

struct member_tally {
    char current[256];
    uint64_t members;
    uint64_t dump_bytes;
    int has_dump;
};

static int count_member(void *context, const char *name, uint64_t offset, const void *data,
                        size_t len, stow_error *err)
{
    struct member_tally *tally = context;

    if (offset == 0 && strcmp(tally->current, name) != 0) {
        snprintf(tally->current, sizeof tally->current, "%s", name);
        tally->members++;
    }
    if (strncmp(name, MEMBERS_DUMP_PREFIX, strlen(MEMBERS_DUMP_PREFIX)) == 0) {
        tally->has_dump = 1;
        tally->dump_bytes += len;
    }
    return 0;
}

static int check_dump_size(const struct manifest *manifest, const struct member_tally *tally,
                           stow_error *err)
{
    json_t *archive = json_object_get(manifest->document, "archive");
    json_int_t expected = json_integer_value(json_object_get(archive, "dump_bytes"));

    if (!tally->has_dump)
        return stow_fail(err, STOW_EXIT_VERIFY, "backup %s holds no database dump", manifest->id);
    if ((uint64_t)expected != tally->dump_bytes)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "backup %s holds %llu bytes of dump, the manifest says %lld",
                         manifest->id, (unsigned long long)tally->dump_bytes,
                         (long long)expected);
    return 0;
}

int restore_verify_storage(storage *store, const struct catalog_entry *entry,
                           const char *secret_key_path, const char *passphrase_file,
                           stow_error *err)
{
    const struct manifest *manifest = &entry->manifest;
    struct member_tally tally = {{0}, 0, 0, 0};
    struct backup_read_stats stats;
    uint8_t *data_key = NULL;
    int rc;

    struct report report;
    stow_error store_err = {0};

    if (backup_open_data_key(manifest, secret_key_path, passphrase_file, &data_key, err) != 0)
        return -1;
    report_begin(&report, REPORT_KIND_STORAGE_CHECK, manifest);
    report_step_begin(&report, "read");

    rc = backup_reader_run(store, manifest, data_key, count_member, &tally, &stats, err);
    backup_data_key_free(data_key);
    if (rc == 0)
        rc = check_dump_size(manifest, &tally, err);

    /* An unreachable store or a wrong key shows nothing about the backup. */
    if (rc != 0 && err->exit_code == STOW_EXIT_VERIFY)
        stow_error_prefix(err, "backup %s failed verification", manifest->id);
    else if (rc != 0)
        stow_error_prefix(err, "verifying backup %s", manifest->id);

    /* Only data problems are recorded, because an interrupted or unreachable
     * check shows nothing about the backup. */
    report_finish(&report, err);
    if ((rc == 0 || err->exit_code == STOW_EXIT_VERIFY) &&
        report_store(&report, store, manifest, &store_err) != 0)
        stow_log_warn("could not record the storage check in the catalog: %s", store_err.message);
    report_free(&report);
    if (rc != 0)
        return -1;
    printf("backup %s verified: %zu parts and their SHA-256, %llu stored bytes, %s"
           "decompression to the end, %llu archive members, archive digest (%.1f s)\n",
           manifest->id, manifest->parts.count, (unsigned long long)stats.stored_bytes,
           manifest->encrypted ? "decryption and " : "", (unsigned long long)tally.members,
           stats.total_seconds);
    return 0;
}

int restore_verify_against(const struct catalog_entry *entry, const char *conninfo,
                           const char *report_path, stow_error *err)
{
    const struct manifest *manifest = &entry->manifest;
    json_t *contents = json_object_get(manifest->document, "contents");
    json_t *differences = NULL;
    struct report report;
    PGconn *conn = NULL;
    size_t count = 0;
    stow_error write_err = {0};
    int rc;

    report_begin(&report, "comparison", manifest);
    report_step_begin(&report, "verify");
    rc = pgtools_connect(conninfo, &conn, err);
    if (rc == 0)
        rc = dbverify_compare(conn, contents, &differences, &count, err);
    PQfinish(conn);
    if (rc == 0) {
        report_set(&report, "verification",
                   json_pack("{s:b, s:I, s:o}", "passed", count == 0, "difference_count",
                             (json_int_t)count, "differences", differences));
        if (count > 0)
            rc = stow_fail(err, STOW_EXIT_VERIFY, "the database differs from backup %s in %zu "
                                                  "places", manifest->id, count);
    }
    report_finish(&report, err);
    report_print_text(&report);
    if (differences != NULL)
        dbverify_print_differences(differences);
    if (report_path != NULL && report_write_file(&report, report_path, &write_err) != 0)
        stow_log_error(&write_err);
    report_free(&report);
    return rc;
}

/* --- extract -------------------------------------------------------------- */

struct extract_target {
    const char *directory;  /* as given to --to, for messages */
    int dir_fd;
    int file_fd;
    char current[256];
    uint64_t files;
    char **created;       /* names of the files this run created, for removal */
    size_t created_capacity;
};

static int remember_created(struct extract_target *target, const char *name)
{
    if (target->files == target->created_capacity) {
        size_t capacity = target->created_capacity == 0 ? 16 : target->created_capacity * 2;
        char **grown = realloc(target->created, capacity * sizeof *grown);

        if (grown == NULL)
            return -1;
        target->created = grown;
        target->created_capacity = capacity;
    }
    target->created[target->files] = strdup(name);
    return target->created[target->files] == NULL ? -1 : 0;
}

/* A failed extract removes what it wrote: a short last segment must not
 * pass for a complete dump. */
static void remove_created(struct extract_target *target, int remove_files)
{
    for (size_t i = 0; i < target->files; i++) {
        if (remove_files)
            unlinkat(target->dir_fd, target->created[i], 0);
        free(target->created[i]);
    }
    free(target->created);
}

/* Records an I/O failure on DIRECTORY/NAME, with the fix for a full disk. */
static int fail_extract_io(const struct extract_target *target, int errnum,
                           const char *operation, const char *name, stow_error *err)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/%s", target->directory, name);
    stow_fail_errno(err, STOW_EXIT_FAILURE, errnum, operation, path);
    if (errnum == ENOSPC || errnum == EDQUOT || errnum == EFBIG)
        stow_error_hint(err, "the file system of %s is full or the file exceeds the file "
                             "size limit (ulimit -f); free space or extract to another "
                             "directory; the files of this extract were removed",
                        target->directory);
    return -1;
}

static int open_member_file(struct extract_target *target, const char *name, stow_error *err)
{
    if (target->file_fd >= 0 && close(target->file_fd) != 0)
        return fail_extract_io(target, errno, "writing", target->current, err);
    snprintf(target->current, sizeof target->current, "%s", name);
    if (strchr(name, '/') != NULL)
        return stow_fail(err, STOW_EXIT_VERIFY, "archive member %s is in a sub-directory; "
                                                "stowage archives have none", name);
    /* O_NOFOLLOW and O_EXCL: a planted link or file cannot redirect a write. */
    target->file_fd = openat(target->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                       O_CLOEXEC, 0600);
    if (target->file_fd < 0) {
        int errnum = errno;

        fail_extract_io(target, errnum, "creating", name, err);
        if (errnum == EEXIST)
            stow_error_hint(err, "extract into an empty or new directory");
        return -1;
    }
    if (remember_created(target, name) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    target->files++;
    return 0;
}

static int write_member(void *context, const char *name, uint64_t offset, const void *data,
                        size_t len, stow_error *err)
{
    struct extract_target *target = context;
    const uint8_t *cursor = data;

    if (!members_name_is_safe(name))
        return stow_fail(err, STOW_EXIT_VERIFY, "unsafe archive member name \"%s\"", name);
    if (offset == 0 && strcmp(target->current, name) != 0 &&
        open_member_file(target, name, err) != 0)
        return -1;
    while (len > 0) {
        ssize_t written = write(target->file_fd, cursor, len);

        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return fail_extract_io(target, errno, "writing", name, err);
        cursor += written;
        len -= (size_t)written;
    }
    return 0;
}

/* Fails with STOW_EXIT_USAGE unless the directory is empty, because the
 * backup's files must not mix with files that were there before. */
static int check_directory_empty(int dir_fd, const char *directory, stow_error *err)
{
    int fd = dup(dir_fd);
    DIR *listing = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *item;
    int empty = 1;

    if (listing == NULL) {
        int errnum = errno;

        if (fd >= 0)
            close(fd);
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errnum, "reading directory", directory);
    }
    while (empty && (item = readdir(listing)) != NULL)
        empty = strcmp(item->d_name, ".") == 0 || strcmp(item->d_name, "..") == 0;
    closedir(listing);
    if (empty)
        return 0;

    stow_fail(err, STOW_EXIT_USAGE, "--to directory %s is not empty", directory);
    stow_error_hint(err, "choose an empty or new directory for --to; nothing was written into %s",
                    directory);
    return -1;
}

int restore_extract(storage *store, const struct catalog_entry *entry,
                    const char *secret_key_path, const char *passphrase_file,
                    const char *directory, stow_error *err)
{
    struct extract_target target = {directory, -1, -1, "", 0, NULL, 0};
    struct backup_read_stats stats;
    uint8_t *data_key = NULL;
    int created_directory;
    int rc;

    created_directory = mkdir(directory, 0700) == 0;
    if (!created_directory && errno != EEXIST)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "creating directory", directory);
    target.dir_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (target.dir_fd < 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "opening directory", directory);
    if (!created_directory && check_directory_empty(target.dir_fd, directory, err) != 0) {
        close(target.dir_fd);
        return -1;
    }

    rc = backup_open_data_key(&entry->manifest, secret_key_path, passphrase_file, &data_key, err);
    if (rc == 0)
        rc = backup_reader_run(store, &entry->manifest, data_key, write_member, &target, &stats,
                               err);
    if (target.file_fd >= 0 && close(target.file_fd) != 0 && rc == 0)
        rc = fail_extract_io(&target, errno, "writing", target.current, err);
    remove_created(&target, rc != 0);
    close(target.dir_fd);
    /* A directory this run created goes too, once empty. */
    if (rc != 0 && created_directory)
        rmdir(directory);
    backup_data_key_free(data_key);
    if (rc == 0)
        printf("extracted %llu files of backup %s into %s\n"
               "  the dump is the database.dump.* files joined in order:\n"
               "  cat %s/database.dump.* | pg_restore -d DBNAME\n",
               (unsigned long long)target.files, entry->manifest.id, directory, directory);
    return rc;
}
