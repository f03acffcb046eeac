/* The nameless spool file of a parallel restore. */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"

const char *restore_spool_directory(const char *directory)
{
    const char *variables[] = {"STOWAGE_SPOOL_DIR", "TMPDIR"};

    if (directory != NULL && directory[0] != '\0')
        return directory;
    for (size_t i = 0; i < sizeof variables / sizeof variables[0]; i++) {
        const char *value = getenv(variables[i]);

        if (value != NULL && value[0] != '\0')
            return value;
    }
    return "/tmp";
}

static int check_space(const char *directory, uint64_t bytes, stow_error *err)
{
    struct statvfs fs;
    uint64_t available;
    char needed_text[32];
    char available_text[32];

    if (statvfs(directory, &fs) != 0) {
        stow_fail_errno(err, STOW_EXIT_USAGE, errno, "inspecting the spool directory",
                        directory);
        stow_error_hint(err, "create the directory or choose another with --spool-dir");
        return -1;
    }
    /* NOTE: this counts the dump alone. A scratch cluster on the same
     * filesystem (STOWAGE_SCRATCH_DIR) needs room for the restored database
     * as well, which is not checked. */
    available = (uint64_t)fs.f_bavail * (uint64_t)fs.f_frsize;
    cli_format_bytes(bytes, needed_text, sizeof needed_text);
    cli_format_bytes(available, available_text, sizeof available_text);
    if (available < bytes) {
        stow_fail(err, STOW_EXIT_USAGE,
                  "the spool directory %s has %s available, and restore --jobs needs %s "
                  "for the database dump", directory, available_text, needed_text);
        stow_error_hint(err, "choose a directory with more free space with --spool-dir (or "
                             "STOWAGE_SPOOL_DIR), or stream the restore with --jobs 1");
        return -1;
    }
    stow_log_info("spooling the %s database dump to %s for pg_restore --jobs (%s available)",
                  needed_text, directory, available_text);
    return 0;
}

/* Opens a file without a name in directory, mode 0600. */
static int open_nameless(const char *directory, stow_error *err)
{
    char template[PATH_MAX];
    int fd = open(directory, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);

    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "creating a spool file in",
                               directory);

    /* Filesystems without O_TMPFILE: a named file, unlinked at once. */
    if ((size_t)snprintf(template, sizeof template, "%s/stowage-spool-XXXXXX", directory) >=
        sizeof template)
        return stow_fail(err, STOW_EXIT_USAGE, "the spool directory name %s is too long",
                         directory);
    fd = mkostemp(template, O_CLOEXEC);
    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "creating a spool file in",
                               directory);
    unlink(template);
    return fd;
}

int restore_spool_open(struct restore_spool *spool, const char *directory, uint64_t bytes,
                       stow_error *err)
{
    if (check_space(directory, bytes, err) != 0)
        return -1;
    return restore_spool_open_unreserved(spool, directory, bytes, err);
}

int restore_spool_reserve(struct restore_spool *spool, stow_error *err)
{
    spool->header_only = 0;
    return check_space(spool->directory, spool->expected_bytes, err);
}

int restore_spool_open_unreserved(struct restore_spool *spool, const char *directory,
                                  uint64_t bytes, stow_error *err)
{
    memset(spool, 0, sizeof *spool);
    spool->fd = -1;
    snprintf(spool->directory, sizeof spool->directory, "%s", directory);
    spool->expected_bytes = bytes;
    spool->header_only = 1;

    spool->fd = open_nameless(directory, err);
    if (spool->fd < 0)
        return -1;
    snprintf(spool->path, sizeof spool->path, "/dev/fd/%d", spool->fd);
    return 0;
}

static int fail_out_of_space(struct restore_spool *spool, stow_error *err)
{
    spool->out_of_space = 1;
    if (spool->header_only)
        stow_fail(err, STOW_EXIT_FAILURE,
                  "the spool directory %s ran out of space after %llu bytes of the dump's "
                  "header and table of contents (the table data is not spooled)",
                  spool->directory, (unsigned long long)spool->written_bytes);
    else
        stow_fail(err, STOW_EXIT_FAILURE,
                  "the spool directory %s ran out of space after %llu of %llu bytes",
                  spool->directory, (unsigned long long)spool->written_bytes,
                  (unsigned long long)spool->expected_bytes);
    stow_error_hint(err, "free space there, choose another --spool-dir, or stream "
                         "the restore with --jobs 1");
    return -1;
}

int restore_spool_write(struct restore_spool *spool, const void *data, size_t len,
                        stow_error *err)
{
    const uint8_t *cursor = data;

    if (spool->written_bytes + len > spool->expected_bytes)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the database dump is longer than the %llu bytes the manifest states",
                         (unsigned long long)spool->expected_bytes);
    while (len > 0) {
        ssize_t written = write(spool->fd, cursor, len);

        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0 && (errno == ENOSPC || errno == EDQUOT))
            return fail_out_of_space(spool, err);
        if (written < 0)
            return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing the spool file in",
                                   spool->directory);
        cursor += written;
        len -= (size_t)written;
        spool->written_bytes += (uint64_t)written;
    }
    return 0;
}

int restore_spool_finish(struct restore_spool *spool, stow_error *err)
{
    if (spool->written_bytes != spool->expected_bytes)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the database dump has %llu bytes, the manifest states %llu",
                         (unsigned long long)spool->written_bytes,
                         (unsigned long long)spool->expected_bytes);
    return 0;
}

/* pg_restore reopens /dev/fd/N in each worker, so N must survive its exec.
 * No other thread starts programs during a restore. */
int restore_spool_set_inherited(struct restore_spool *spool, int inherit, stow_error *err)
{
    if (fcntl(spool->fd, F_SETFD, inherit ? 0 : FD_CLOEXEC) != 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "preparing the spool file in",
                               spool->directory);
    return 0;
}

int restore_spool_truncate(struct restore_spool *spool, uint64_t bytes, stow_error *err)
{
    if (ftruncate(spool->fd, (off_t)bytes) != 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "truncating the spool file in",
                               spool->directory);
    spool->written_bytes = bytes;
    return 0;
}

void restore_spool_close(struct restore_spool *spool)
{
    if (spool->fd >= 0)
        close(spool->fd);
    spool->fd = -1;
}
