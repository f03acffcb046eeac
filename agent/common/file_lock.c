/* flock(2) on PATH.lock for the read-modify-write of a shared local file. */
#include "common/file_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define LOCK_PATH_MAX 4096
#define LOCK_POLL_MS 20

static void sleep_ms(int ms)
{
    struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&pause, NULL);
}

int stow_file_lock(const char *path, int timeout_ms, int *fd, stow_error *err)
{
    char lock_path[LOCK_PATH_MAX];
    int written = snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    int waited_ms = 0;

    *fd = -1;
    if (written < 0 || (size_t)written >= sizeof lock_path)
        return stow_fail(err, STOW_EXIT_USAGE, "path is too long for its lock file: %s", path);
    *fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "opening lock file", lock_path);

    /* Polling instead of a blocking flock, so that the wait has a deadline
     * and a signal cannot cut it short. */
    while (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;

        if ((saved != EWOULDBLOCK && saved != EINTR) || waited_ms >= timeout_ms) {
            close(*fd);
            *fd = -1;
            if (saved != EWOULDBLOCK && saved != EINTR)
                return stow_fail_errno(err, STOW_EXIT_FAILURE, saved, "locking", lock_path);
            stow_fail(err, STOW_EXIT_LOCKED, "%s is still locked by another stowage process "
                                             "after %d ms",
                      lock_path, timeout_ms);
            stow_error_hint(err, "find the process with: fuser %s", lock_path);
            return -1;
        }
        sleep_ms(LOCK_POLL_MS);
        waited_ms += LOCK_POLL_MS;
    }
    return 0;
}

void stow_file_unlock(int fd)
{
    if (fd < 0)
        return;
    flock(fd, LOCK_UN);
    close(fd);
}
