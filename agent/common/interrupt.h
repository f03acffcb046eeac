/* SIGINT and SIGTERM handling: the handler only records the signal; long
 * loops poll stow_interrupted() and unwind through their cleanup paths
 * (abort the upload, stop child processes, remove scratch clusters). */
#ifndef STOWAGE_INTERRUPT_H
#define STOWAGE_INTERRUPT_H

#include "common/error.h"

/* Installs the handlers without SA_RESTART, so blocking reads return EINTR. */
void stow_interrupt_install(void);

/* Returns the signal number received, or 0. */
int stow_interrupted(void);

/* Records an STOW_EXIT_INTERRUPTED failure naming the signal and the step. */
int stow_fail_interrupted(stow_error *err, const char *step);

#endif
