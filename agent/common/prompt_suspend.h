/* Ctrl-Z (SIGTSTP) at a prompt that has turned the terminal's echo off.
 * Without a handler the process would stop with echo still off, and the
 * shell the user returns to would not echo. */
#ifndef STOWAGE_PROMPT_SUSPEND_H
#define STOWAGE_PROMPT_SUSPEND_H

#include <termios.h>

/* Installs a SIGTSTP handler for the prompt on the terminal fd. On SIGTSTP
 * the handler sets the terminal to *saved and stops the process. Once
 * SIGCONT resumes it, the handler sets *quiet again and writes prompt
 * again. It uses TCSAFLUSH, so input typed before the stop is dropped. The handler
 * may run in any thread. The arguments are copied, except prompt, which
 * must stay valid until prompt_suspend_end. Installs nothing when SIGTSTP
 * is ignored, as a process started with it ignored keeps it so. */
void prompt_suspend_begin(int fd, const struct termios *saved, const struct termios *quiet,
                          const char *prompt);

/* Puts back the SIGTSTP action from before prompt_suspend_begin. Call
 * before restoring the terminal's settings. */
void prompt_suspend_end(void);

#endif
