/* The progress display: atomic counters and a redraw thread. */
#include "common/progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define PROGRESS_LINE_MAX 160

static enum stow_progress_mode progress_mode = STOW_PROGRESS_AUTO;
static char progress_command[32] = "stowage";

static struct {
    atomic_int running;
    _Atomic uint64_t bytes;
    _Atomic uint64_t parts;
    uint64_t total;
    const char *action;
    struct timespec started;  /* CLOCK_MONOTONIC */
    int stop;                 /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
} display = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

void stow_progress_set_mode(enum stow_progress_mode mode)
{
    progress_mode = mode;
}

enum stow_progress_mode stow_progress_get_mode(void)
{
    return progress_mode;
}

void stow_progress_set_command(const char *command)
{
    snprintf(progress_command, sizeof progress_command, "%s", command);
}

/* A status line with carriage returns and erase sequences would break a
 * stream of JSON lines, so JSON logs turn the display off. */
static int display_enabled(void)
{
    if (stow_log_get_format() != STOW_LOG_TEXT)
        return 0;
    if (progress_mode == STOW_PROGRESS_ON)
        return 1;
    return progress_mode == STOW_PROGRESS_AUTO && isatty(STDERR_FILENO);
}

/* Writes bytes with a binary unit: "512 B", "12.3 MiB". */
static void format_bytes(double bytes, char *out, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t unit = 0;

    while (bytes >= 1024 && unit + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024;
        unit++;
    }
    snprintf(out, size, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
}

/* Writes seconds as M:SS, or H:MM:SS from an hour on. */
static void format_duration(double seconds, char *out, size_t size)
{
    unsigned long whole = seconds > 0 ? (unsigned long)(seconds + 0.5) : 0;

    if (whole >= 3600)
        snprintf(out, size, "%lu:%02lu:%02lu", whole / 3600, whole / 60 % 60, whole % 60);
    else
        snprintf(out, size, "%lu:%02lu", whole / 60, whole % 60);
}

void stow_progress_format(const char *command, const char *action, uint64_t done,
                          uint64_t total, uint64_t parts, double elapsed, char *out,
                          size_t size)
{
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char done_text[32], total_text[32], rate_text[32], eta_text[32];

    format_bytes((double)done, done_text, sizeof done_text);
    format_bytes(rate, rate_text, sizeof rate_text);
    if (total == 0) {
        snprintf(out, size, "%s: %s %s, %s/s, %llu part%s uploaded", command, done_text,
                 action, rate_text, (unsigned long long)parts, parts == 1 ? "" : "s");
        return;
    }

    format_bytes((double)total, total_text, sizeof total_text);
    if (done >= total)
        snprintf(eta_text, sizeof eta_text, "0:00");
    else if (rate > 0)
        format_duration((double)(total - done) / rate, eta_text, sizeof eta_text);
    else
        snprintf(eta_text, sizeof eta_text, "--:--");
    snprintf(out, size, "%s: %s of %s %s (%.0f%%), %s/s, ETA %s", command, done_text,
             total_text, action, 100.0 * (double)(done < total ? done : total) / (double)total,
             rate_text, eta_text);
}

static double elapsed_seconds(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - display.started.tv_sec) +
           (double)(now.tv_nsec - display.started.tv_nsec) / 1e9;
}

static void draw(int keep)
{
    char line[PROGRESS_LINE_MAX];

    stow_progress_format(progress_command, display.action, atomic_load(&display.bytes),
                         display.total, atomic_load(&display.parts), elapsed_seconds(), line,
                         sizeof line);
    stow_log_status_line(line, keep);
}

static void *redraw_loop(void *argument)
{
    struct timespec deadline;

    (void)argument;
    pthread_mutex_lock(&display.lock);
    while (!display.stop) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += 1000000000L / PROGRESS_REDRAWS_PER_SECOND;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&display.wake, &display.lock, &deadline) == ETIMEDOUT &&
            !display.stop)
            draw(0);
    }
    pthread_mutex_unlock(&display.lock);
    return NULL;
}

void stow_progress_begin(const char *action, uint64_t total_bytes)
{
    stow_progress_end();
    if (!display_enabled())
        return;

    atomic_store(&display.bytes, 0);
    atomic_store(&display.parts, 0);
    display.total = total_bytes;
    display.action = action;
    display.stop = 0;
    clock_gettime(CLOCK_MONOTONIC, &display.started);
    if (pthread_create(&display.thread, NULL, redraw_loop, NULL) != 0) {
        stow_log_debug("the progress display could not start a thread; continuing without it");
        return;
    }
    atomic_store(&display.running, 1);
}

void stow_progress_add_bytes(uint64_t bytes)
{
    if (atomic_load_explicit(&display.running, memory_order_relaxed))
        atomic_fetch_add_explicit(&display.bytes, bytes, memory_order_relaxed);
}

void stow_progress_add_part(void)
{
    if (atomic_load_explicit(&display.running, memory_order_relaxed))
        atomic_fetch_add_explicit(&display.parts, 1, memory_order_relaxed);
}

void stow_progress_end(void)
{
    if (!atomic_load(&display.running))
        return;

    pthread_mutex_lock(&display.lock);
    display.stop = 1;
    pthread_cond_signal(&display.wake);
    pthread_mutex_unlock(&display.lock);
    pthread_join(display.thread, NULL);
    atomic_store(&display.running, 0);
    draw(1);
}
