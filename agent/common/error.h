/* Errors: one structure carried by every fallible call, and the exit codes
 * that the CLI returns for each class of failure.
 *
 * Convention: a fallible function returns 0 on success and -1 on failure,
 * after filling the caller's struct stow_error. The first failure recorded
 * wins; callers add context with stow_error_prefix() on the way up. No
 * function exits the process, so every caller can still abort an upload or
 * remove a scratch instance. Passwords in connection strings are masked
 * when a message is recorded (stow_redact_passwords), and code that handles
 * other secrets keeps them out of messages. */
#ifndef STOWAGE_ERROR_H
#define STOWAGE_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* Exit codes. Documented in README.md; cron jobs and operators rely on
 * them, so values never change meaning. */
enum stow_exit {
    STOW_EXIT_OK = 0,
    STOW_EXIT_FAILURE = 1,     /* a stage failed: dump, upload, restore */
    STOW_EXIT_USAGE = 2,       /* bad flags, bad configuration, bad key file */
    STOW_EXIT_VERIFY = 3,      /* verification failed: checksum, digest, data */
    STOW_EXIT_LOCKED = 4,      /* another run holds the repository lock */
    STOW_EXIT_OBJECTIVE = 5,   /* an RPO or RTO objective was missed */
    STOW_EXIT_STORAGE = 6,     /* repository unreachable or full, access denied, no bucket */
    STOW_EXIT_DATABASE = 7,    /* database unreachable, login failed, statement rejected */
    STOW_EXIT_KEY = 8,         /* wrong secret key, wrong passphrase, not a recipient */
    STOW_EXIT_INTERRUPTED = 130 /* SIGINT or SIGTERM; cleanup ran */
};

#define STOW_ERROR_MESSAGE_MAX 2048
#define STOW_ERROR_HINT_MAX 512

typedef struct stow_error {
    int exit_code;                         /* 0 while no error is recorded */
    char message[STOW_ERROR_MESSAGE_MAX];  /* what failed, on which value */
    char hint[STOW_ERROR_HINT_MAX];        /* what to do next; may be empty */
} stow_error;

#if defined(__GNUC__)
#define STOW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define STOW_PRINTF(fmt, args)
#endif

void stow_error_clear(stow_error *err);

/* Records a failure unless one is already recorded. Always returns -1 so a
 * caller can write `return stow_fail(err, ...)`. err may be NULL. */
int stow_fail(stow_error *err, int exit_code, const char *fmt, ...) STOW_PRINTF(3, 4);
int stow_vfail(stow_error *err, int exit_code, const char *fmt, va_list ap);

/* Sets the hint line (replaces any earlier hint). */
void stow_error_hint(stow_error *err, const char *fmt, ...) STOW_PRINTF(2, 3);

/* Prepends "CONTEXT: " to the recorded message, for context on the way up. */
void stow_error_prefix(stow_error *err, const char *fmt, ...) STOW_PRINTF(2, 3);

/* Masks passwords in text, in place: the password of a URI's user
 * information ("scheme://user:PASSWORD@host") and the value of a
 * "password=VALUE" conninfo keyword become "*****" (or shorter, so the text
 * never grows). Every recorded error and every log line passes through it,
 * because libpq and argument errors quote connection strings verbatim. */
void stow_redact_passwords(char *text);

/* Returns the length in bytes of the control character at text: 1 for C0
 * (below 0x20) and DEL, 2 for C1 (U+0080 to U+009F in UTF-8), else 0. */
size_t stow_control_length(const char *text);

/* Returns 1 when text contains a control character (see above). */
int stow_has_control_characters(const char *text);

/* Rewrites text in place as one line that cannot drive a terminal: tabs,
 * carriage returns and newlines become spaces, other control characters
 * '?'. Errors and hints are recorded this way, because their text may
 * come from a server, a manifest or a connection string. */
void stow_clean_line(char *text);

/* Returns 1 when an error is recorded. */
int stow_error_is_set(const stow_error *err);

/* Converts an errno value into a failure naming the operation and path. */
int stow_fail_errno(stow_error *err, int exit_code, int errnum, const char *operation,
                    const char *path);

#endif
