/* Facts about processes on this host that let one run tell whether an
 * earlier run, which recorded its pid, is still alive. */
#ifndef STOWAGE_PROCESS_H
#define STOWAGE_PROCESS_H

#include <stddef.h>

#define STOW_BOOT_ID_MAX 40 /* a UUID (36 characters) and its terminator, with room */

/* Writes the kernel's boot id (/proc/sys/kernel/random/boot_id, a UUID that
 * changes at every boot) into out, or "" when it cannot be read. A pid is
 * meaningful only together with the host and boot it was recorded on. */
void stow_boot_id(char *out, size_t size);

/* Writes the pid namespace of this process (the target of
 * /proc/self/ns/pid, such as "pid:[4026531836]") into out, or "" when it
 * cannot be read. Containers on one host share the boot id but not the pid
 * namespace, so a pid is compared only within one namespace. */
void stow_pid_namespace(char *out, size_t size);

/* Returns 1 when no process with pid exists on this host (kill(pid, 0)
 * fails with ESRCH), 0 when one exists or pid is not positive. A process
 * of another user counts as existing. */
int stow_pid_is_gone(long long pid);

#endif
