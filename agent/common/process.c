/* Boot id and pid liveness, for recognising leftovers of killed runs. */
#include "common/process.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

void stow_boot_id(char *out, size_t size)
{
    FILE *file = fopen(BOOT_ID_PATH, "re");

    if (size == 0)
        return;
    out[0] = '\0';
    if (file == NULL)
        return;
    if (fgets(out, (int)size, file) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    fclose(file);
}

int stow_pid_is_gone(long long pid)
{
    if (pid <= 0 || pid != (long long)(pid_t)pid)
        return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void stow_pid_namespace(char *out, size_t size)
{
    ssize_t len;

    if (size == 0)
        return;
    len = readlink("/proc/self/ns/pid", out, size - 1);
    out[len > 0 ? len : 0] = '\0';
}
