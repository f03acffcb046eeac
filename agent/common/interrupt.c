/* SIGINT and SIGTERM handling with a dedicated signal thread.
 *
 * Both signals are blocked in every thread (the mask is set before any
 * other thread starts, and threads inherit it), so no worker thread of
 * ours, libcurl's or zstd's can swallow one. The signal thread waits for
 * them with sigtimedwait, records the signal, and then sends SIGUSR1 to
 * the main thread every 100 ms. SIGUSR1's handler does nothing and is
 * installed without SA_RESTART, so a blocking read, write or waitpid in the
 * main thread returns EINTR and the caller sees stow_interrupted().
 * Repeating the wake-up closes the race of a signal that arrives just
 * before the main thread enters a blocking call. */
#include "common/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static volatile sig_atomic_t received_signal;
static pthread_t main_thread;

static void wake_main_thread(int signum)
{
    (void)signum;
}

static const char *signal_name(int signum)
{
    return signum == SIGTERM ? "SIGTERM" : "SIGINT";
}

/* A second signal means the cleanup itself is stuck (a stalled request,
 * say) or unwanted, so the process leaves at once. It leaves behind what
 * a killed run leaves. */
static void exit_without_cleanup(int signum)
{
    stow_error err = {0};

    stow_fail(&err, STOW_EXIT_INTERRUPTED, "received a second %s: exiting without cleanup",
              signal_name(signum));
    stow_error_hint(&err, "an open multipart upload or a scratch cluster may remain, which "
                          "stowage gc removes; the next run takes over the repository lock");
    stow_log_error(&err);
    _exit(STOW_EXIT_INTERRUPTED);
}

static void *wait_for_signals(void *argument)
{
    sigset_t wanted;
    struct timespec interval = {0, 100 * 1000 * 1000};

    (void)argument;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGTERM);
    for (;;) {
        int signum = sigtimedwait(&wanted, NULL, &interval);

        if (signum > 0 && received_signal != 0)
            exit_without_cleanup(signum);
        if (signum > 0) {
            received_signal = signum;
            stow_log_warn("received %s: stopping and cleaning up (a second signal exits at "
                          "once, without cleanup)", signal_name(signum));
        }
        if (received_signal != 0)
            pthread_kill(main_thread, SIGUSR1);
    }
    return NULL;
}

void stow_interrupt_install(void)
{
    struct sigaction action;
    sigset_t blocked;
    pthread_t thread;

    main_thread = pthread_self();
    memset(&action, 0, sizeof action);
    action.sa_handler = wake_main_thread;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    if (pthread_create(&thread, NULL, wait_for_signals, NULL) == 0)
        pthread_detach(thread);
}

int stow_interrupted(void)
{
    return received_signal;
}

int stow_fail_interrupted(stow_error *err, const char *step)
{
    int signum = received_signal;

    return stow_fail(err, STOW_EXIT_INTERRUPTED, "interrupted by %s during %s; cleaned up",
                     signal_name(signum), step);
}
