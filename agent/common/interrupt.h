/* SIGINT, SIGTERM and SIGHUP handling. A signal thread records the signal and
 * wakes the main thread, and long loops poll stow_interrupted() and unwind
 * through their cleanup paths (abort the upload, stop child processes,
 * remove scratch clusters). A second signal, or a cleanup that outlasts
 * the cleanup timeout, exits at once without finishing the cleanup, unless
 * stow_interrupt_return_on_second_signal was called. */
#ifndef STOWAGE_INTERRUPT_H
#define STOWAGE_INTERRUPT_H

#include <signal.h>
#include <stdint.h>

#include "common/error.h"

/* Seconds the cleanup after a first signal may take by default: within
 * Kubernetes' default grace period of 30 s between SIGTERM and SIGKILL,
 * so that the exit, and its message, come from stowage. */
#define STOW_CLEANUP_TIMEOUT_DEFAULT 20

/* The signal that the kernel sends a step of stowage run when run dies
 * (PR_SET_PDEATHSIG). Not SIGHUP, which a closed session sends and which
 * nohup ignores. */
#define STOW_PARENT_DEATH_SIGNAL SIGUSR2

/* Makes stow_interrupt_install handle STOW_PARENT_DEATH_SIGNAL as it does
 * SIGTERM. Call before it. */
void stow_interrupt_stop_on_parent_death(void);

/* Blocks SIGINT, SIGTERM and, unless it is ignored, SIGHUP in every
 * thread and starts the signal thread. Call once, before any other thread
 * starts. */
void stow_interrupt_install(void);

/* Sets the cleanup timeout from STOWAGE_CLEANUP_TIMEOUT (a duration such
 * as "45s" or "2m"), if set. Fails with STOW_EXIT_USAGE on a bad value. */
int stow_interrupt_configure(stow_error *err);

/* Returns the name of a signal that stow_interrupted returned, for
 * messages ("SIGTERM"). */
const char *stow_signal_name(int signum);

/* Returns the signal number received, or 0. */
int stow_interrupted(void);

/* Makes a second signal (not a repeat of the first within a second) show
 * in stow_interrupted_again and wake the main thread, instead of exiting
 * at once. The caller must then stop waiting for any cleanup and finish
 * promptly. A third signal and the cleanup timeout still exit at once. */
void stow_interrupt_return_on_second_signal(void);

/* Returns the second signal number received, or 0. Stays 0 unless
 * stow_interrupt_return_on_second_signal was called. */
int stow_interrupted_again(void);

/* Sets what an exit without cleanup leaves behind besides uploads and
 * scratch clusters (such as "the temporary database X"), for its message,
 * or clears it with NULL. Call from the main thread. */
void stow_interrupt_set_leftover(const char *leftover_text);

/* Records an STOW_EXIT_INTERRUPTED failure naming the signal and the step. */
int stow_fail_interrupted(stow_error *err, const char *step);

#endif
