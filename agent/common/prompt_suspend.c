/* SIGTSTP at a prompt with echo off: restore the terminal, stop, and set
 * up the prompt again on SIGCONT. */
#include "common/prompt_suspend.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* The prompt in progress. The handler reads these fields only while
 * active is 1, and prompt_suspend_begin writes them before it installs
 * the handler. */
static struct {
    volatile sig_atomic_t active;
    int fd;
    struct termios saved;
    struct termios quiet;
    const char *prompt;
    int installed;                 /* 1 when previous is an action to put back */
    struct sigaction previous;
} current;

/* Writes text with write(2) only, which is async-signal-safe. */
static void write_prompt(int fd, const char *text)
{
    size_t len = strlen(text);

    while (len > 0) {
        ssize_t written = write(fd, text, len);

        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return;
        text += written;
        len -= (size_t)written;
    }
}

static void suspend_at_prompt(int signum);

static void set_handler(void)
{
    struct sigaction action;

    memset(&action, 0, sizeof action);
    action.sa_handler = suspend_at_prompt;
    sigemptyset(&action.sa_mask);
    /* The prompt's read goes on after the stop rather than failing with EINTR. */
    action.sa_flags = SA_RESTART;
    sigaction(SIGTSTP, &action, NULL);
}

/* Stops the process with SIGTSTP's default action, the stop that shells
 * report as "Stopped". SIGTSTP is blocked in this handler, so the raised
 * signal waits until the unblock, and the process stops there. In an
 * orphaned process group the kernel discards it, and the prompt goes on. */
static void stop_process(void)
{
    struct sigaction stop;
    sigset_t tstp;

    memset(&stop, 0, sizeof stop);
    stop.sa_handler = SIG_DFL;
    sigemptyset(&stop.sa_mask);
    sigaction(SIGTSTP, &stop, NULL);
    sigemptyset(&tstp);
    sigaddset(&tstp, SIGTSTP);
    raise(SIGTSTP);
    pthread_sigmask(SIG_UNBLOCK, &tstp, NULL);
}

static void suspend_at_prompt(int signum)
{
    int saved_errno = errno;

    (void)signum;
    if (current.active)
        tcsetattr(current.fd, TCSANOW, &current.saved);
    stop_process();

    /* Resumed by SIGCONT. A prompt that ended meanwhile has put back the
     * previous action already, unless this handler overwrote it. */
    if (!current.active) {
        sigaction(SIGTSTP, &current.previous, NULL);
        errno = saved_errno;
        return;
    }
    set_handler();
    tcsetattr(current.fd, TCSAFLUSH, &current.quiet);
    write_prompt(current.fd, current.prompt);
    errno = saved_errno;
}

void prompt_suspend_begin(int fd, const struct termios *saved, const struct termios *quiet,
                          const char *prompt)
{
    current.installed = 0;
    if (sigaction(SIGTSTP, NULL, &current.previous) != 0 ||
        current.previous.sa_handler == SIG_IGN)
        return;
    current.fd = fd;
    current.saved = *saved;
    current.quiet = *quiet;
    current.prompt = prompt;
    current.active = 1;
    current.installed = 1;
    set_handler();
}

void prompt_suspend_end(void)
{
    current.active = 0;
    if (current.installed)
        sigaction(SIGTSTP, &current.previous, NULL);
    current.installed = 0;
}
