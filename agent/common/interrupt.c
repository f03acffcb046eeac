/* Signal flag for SIGINT and SIGTERM. */
#include "common/interrupt.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t received_signal;

static void record_signal(int signum)
{
    received_signal = signum;
}

void stow_interrupt_install(void)
{
    struct sigaction action;

    memset(&action, 0, sizeof action);
    action.sa_handler = record_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int stow_interrupted(void)
{
    return received_signal;
}

int stow_fail_interrupted(stow_error *err, const char *step)
{
    int signum = received_signal;

    return stow_fail(err, STOW_EXIT_INTERRUPTED, "interrupted by %s during %s; cleaned up",
                     signum == SIGTERM ? "SIGTERM" : "SIGINT", step);
}
