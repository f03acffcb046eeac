/* SIGINT and SIGTERM handling. A signal thread records the signal and
 * wakes the main thread, and long loops poll stow_interrupted() and unwind
 * through their cleanup paths (abort the upload, stop child processes,
 * remove scratch clusters). A second signal exits at once, without
 * cleanup. */
#ifndef STOWAGE_INTERRUPT_H
#define STOWAGE_INTERRUPT_H

#include "common/error.h"

/* Blocks SIGINT and SIGTERM in every thread and starts the signal thread.
 * Call once, before any other thread starts. */
void stow_interrupt_install(void);

/* Returns the signal number received, or 0. */
int stow_interrupted(void);

/* Records an STOW_EXIT_INTERRUPTED failure naming the signal and the step. */
int stow_fail_interrupted(stow_error *err, const char *step);

#endif
