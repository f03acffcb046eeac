/* SIGINT, SIGTERM, SIGQUIT and SIGHUP handling with a dedicated signal thread.
 *
 * The signals are blocked in every thread (the mask is set before any
 * other thread starts, and threads inherit it), so no worker thread of
 * ours, libcurl's or zstd's can swallow one. The signal thread waits for
 * them with sigtimedwait, records the signal, and then sends SIGUSR1 to
 * the main thread every 100 ms. SIGUSR1's handler does nothing and is
 * installed without SA_RESTART, so a blocking read, write or waitpid in the
 * main thread returns EINTR and the caller sees stow_interrupted().
 * Repeating the wake-up closes the race of a signal that arrives just
 * before the main thread enters a blocking call.
 *
 * SIGQUIT (Ctrl-\) starts the same cleanup as SIGINT. SIGHUP (a closed
 * terminal) starts it too, unless the process started with SIGHUP ignored
 * (nohup), which stays ignored. A step of
 * stowage run also handles STOW_PARENT_DEATH_SIGNAL, which the kernel
 * sends it when run dies (see cli_main), once per exiting thread of run:
 * a repeat of it is ignored rather than taken for a second signal. So is
 * a repeat of the first signal within STOW_SAME_SIGNAL_SECONDS: a signal
 * to a process group (Ctrl-C, systemd's stop) reaches a step of run both
 * directly and through run, which forwards it.
 *
 * stowage run itself calls stow_interrupt_return_on_second_signal. Its
 * second signal ends the wait for the running step's cleanup, and run
 * still prints its outcome and writes its metrics and state. Only a
 * third signal, or the cleanup timeout, exits at once there. */
#include "common/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/duration.h"
#include "common/log.h"

/* Seconds within which a repeat of the first signal counts as the same
 * delivery (see above), not as a second signal. */
#define STOW_SAME_SIGNAL_SECONDS 1.0

static volatile sig_atomic_t received_signal;
static volatile sig_atomic_t second_signal;  /* with second_signal_returns set */
static atomic_int second_signal_returns;     /* stow_interrupt_return_on_second_signal */
static sigset_t handled_signals;  /* set before the signal thread starts */
static int stops_on_parent_death; /* stow_interrupt_stop_on_parent_death */
static pthread_t main_thread;
static atomic_llong cleanup_timeout_seconds = STOW_CLEANUP_TIMEOUT_DEFAULT;
static pthread_mutex_t leftover_lock = PTHREAD_MUTEX_INITIALIZER;
static char leftover[512];        /* stow_interrupt_set_leftover; empty: none */

static void wake_main_thread(int signum)
{
    (void)signum;
}

static const char *signal_name(int signum)
{
    if (signum == STOW_PARENT_DEATH_SIGNAL)
        return "the end of stowage run (SIGUSR2)";
    if (signum == SIGHUP)
        return "SIGHUP";
    if (signum == SIGQUIT)
        return "SIGQUIT";
    return signum == SIGTERM ? "SIGTERM" : "SIGINT";
}

/* Leaves at once, with what a killed run leaves behind. */
static void exit_without_cleanup(stow_error *err)
{
    pthread_mutex_lock(&leftover_lock);
    stow_error_hint(err, "an open multipart upload or a scratch cluster may remain, which "
                         "stowage gc removes%s%s; the next run takes over the repository lock",
                    leftover[0] != '\0' ? ", and " : "", leftover);
    pthread_mutex_unlock(&leftover_lock);
    stow_log_error(err);
    _exit(STOW_EXIT_INTERRUPTED);
}

/* A second signal means the cleanup itself is stuck (on a stalled request,
 * for example) or unwanted. */
static void exit_on_second_signal(int signum)
{
    stow_error err = {0};

    stow_fail(&err, STOW_EXIT_INTERRUPTED, "received %s while cleaning up: exiting without cleanup",
              signal_name(signum));
    exit_without_cleanup(&err);
}

static void exit_on_cleanup_timeout(int signum, long long timeout)
{
    stow_error err = {0};
    char duration[32];

    stow_duration_format(timeout, duration, sizeof duration);
    stow_fail(&err, STOW_EXIT_INTERRUPTED,
              "the cleanup after %s did not finish within %s (STOWAGE_CLEANUP_TIMEOUT): "
              "exiting without it", signal_name(signum), duration);
    exit_without_cleanup(&err);
}

/* Returns 1 when signum repeats a signal already taken rather than being a
 * new one (see the top of this file). */
static int is_repeat(int signum, const struct timespec *first_signal_at)
{
    return received_signal != 0 &&
           (signum == STOW_PARENT_DEATH_SIGNAL ||
            (signum == received_signal &&
             stow_seconds_since(first_signal_at) < STOW_SAME_SIGNAL_SECONDS));
}

static void take_first_signal(int signum, struct timespec *first_signal_at, long long timeout)
{
    char duration[32];

    received_signal = signum;
    clock_gettime(CLOCK_MONOTONIC, first_signal_at);
    stow_duration_format(timeout, duration, sizeof duration);
    stow_log_warn("received %s: stopping and cleaning up, for at most %s (%s)",
                  signal_name(signum), duration,
                  atomic_load(&second_signal_returns)
                      ? "a second signal stops waiting for the cleanup"
                      : "a second signal exits at once, without cleanup");
}

/* Records a second signal for stow_interrupted_again, or exits at once
 * when the caller did not ask for that or this is the third signal. */
static void take_second_signal(int signum)
{
    if (!atomic_load(&second_signal_returns) || second_signal != 0)
        exit_on_second_signal(signum);
    second_signal = signum;
    stow_log_warn("received %s while cleaning up: not waiting for the cleanup (another signal "
                  "exits at once)", signal_name(signum));
}

static void *wait_for_signals(void *argument)
{
    sigset_t wanted;
    struct timespec interval = {0, 100 * 1000 * 1000};
    struct timespec first_signal_at = {0, 0};

    (void)argument;
    wanted = handled_signals;
    for (;;) {
        int signum = sigtimedwait(&wanted, NULL, &interval);
        long long timeout = atomic_load(&cleanup_timeout_seconds);

        if (signum > 0 && is_repeat(signum, &first_signal_at))
            signum = 0;
        if (signum > 0 && received_signal != 0)
            take_second_signal(signum);
        else if (signum > 0)
            take_first_signal(signum, &first_signal_at, timeout);
        if (received_signal != 0 && stow_seconds_since(&first_signal_at) >= (double)timeout)
            exit_on_cleanup_timeout(received_signal, timeout);
        if (received_signal != 0)
            pthread_kill(main_thread, SIGUSR1);
    }
    return NULL;
}

int stow_interrupt_configure(stow_error *err)
{
    const char *text = getenv("STOWAGE_CLEANUP_TIMEOUT");
    int64_t seconds;

    if (text == NULL || text[0] == '\0')
        return 0;
    if (stow_duration_parse("STOWAGE_CLEANUP_TIMEOUT", text, &seconds, err) != 0)
        return -1;
    atomic_store(&cleanup_timeout_seconds, (long long)seconds);
    return 0;
}

/* Returns 1 unless SIGHUP is ignored, as nohup leaves it. A blocked
 * signal is queued even when its disposition is to ignore it, so an
 * ignored SIGHUP must stay out of the signal thread's set. */
static int hangup_is_ignored(void)
{
    struct sigaction current;

    return sigaction(SIGHUP, NULL, &current) == 0 && current.sa_handler == SIG_IGN;
}

void stow_interrupt_install(void)
{
    struct sigaction action;
    pthread_t thread;

    main_thread = pthread_self();
    memset(&action, 0, sizeof action);
    action.sa_handler = wake_main_thread;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit (ulimit -f) then fails the write with EFBIG, which
     * the caller reports and cleans up after, instead of killing the run. */
    signal(SIGXFSZ, SIG_IGN);

    sigemptyset(&handled_signals);
    sigaddset(&handled_signals, SIGINT);
    sigaddset(&handled_signals, SIGTERM);
    /* The terminal's quit key (Ctrl-\) would otherwise kill the process
     * without cleanup, with echo off at a passphrase prompt, and could
     * write a core file holding key material. */
    sigaddset(&handled_signals, SIGQUIT);
    if (!hangup_is_ignored())
        sigaddset(&handled_signals, SIGHUP);
    if (stops_on_parent_death)
        sigaddset(&handled_signals, STOW_PARENT_DEATH_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &handled_signals, NULL);
    if (pthread_create(&thread, NULL, wait_for_signals, NULL) == 0)
        pthread_detach(thread);
}

void stow_interrupt_stop_on_parent_death(void)
{
    stops_on_parent_death = 1;
}

const char *stow_signal_name(int signum)
{
    return signal_name(signum);
}

void stow_interrupt_set_leftover(const char *leftover_text)
{
    pthread_mutex_lock(&leftover_lock);
    snprintf(leftover, sizeof leftover, "%s", leftover_text != NULL ? leftover_text : "");
    pthread_mutex_unlock(&leftover_lock);
}

int stow_interrupted(void)
{
    return received_signal;
}

void stow_interrupt_return_on_second_signal(void)
{
    atomic_store(&second_signal_returns, 1);
}

int stow_interrupted_again(void)
{
    return second_signal;
}

int stow_fail_interrupted(stow_error *err, const char *step)
{
    int signum = received_signal;

    return stow_fail(err, STOW_EXIT_INTERRUPTED, "interrupted by %s during %s; cleaned up",
                     signal_name(signum), step);
}
