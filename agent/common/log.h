/* Logging: plain lines on a terminal, JSON lines when asked.
 *
 * Levels have one meaning each: error for a failure that ends the command,
 * warn for a degraded choice that continues (a retry, a takeover), info for
 * milestones (start, end, sizes, rates), detail for one line per part or
 * table, debug for internals. Log lines go to stderr; stdout carries only
 * command output (tables, JSON, reports). Callers never pass secrets. */
#ifndef STOWAGE_LOG_H
#define STOWAGE_LOG_H

#include "common/error.h"

enum stow_log_level {
    STOW_LOG_ERROR = 0,
    STOW_LOG_WARN = 1,
    STOW_LOG_INFO = 2,
    STOW_LOG_DETAIL = 3,
    STOW_LOG_DEBUG = 4
};

enum stow_log_format { STOW_LOG_TEXT = 0, STOW_LOG_JSON = 1 };

void stow_log_set_format(enum stow_log_format format);
enum stow_log_format stow_log_get_format(void);
void stow_log_set_level(enum stow_log_level level);
enum stow_log_level stow_log_get_level(void);

/* Returns the name that stow_log_level_parse accepts for level. */
const char *stow_log_level_name(enum stow_log_level level);

/* Parses "error", "warn", "info", "detail" or "debug". Returns -1 if unknown. */
int stow_log_level_parse(const char *name, enum stow_log_level *level);

/* Context fields added to every later line ("database", "backup_id",
 * "step"). A NULL value removes the field. Values are copied. */
void stow_log_set_context(const char *key, const char *value);

/* Sets the "step" field of the calling thread's lines to step, a static
 * string, for a thread that works beside the main thread's steps (a
 * restore's download). NULL gives the thread the shared field again. */
void stow_log_set_thread_step(const char *step);

void stow_log(enum stow_log_level level, const char *fmt, ...) STOW_PRINTF(2, 3);

/* Logs a recorded error at error level, with its hint on a second line. */
void stow_log_error(const stow_error *err);

/* Replaces the status line (the progress display) at the bottom of stderr
 * with text, using a carriage return and an erase-line sequence. keep 1
 * ends it with a newline so that it stays. Otherwise the next log line
 * erases it first, so that a log line never shares a line with it. */
void stow_log_status_line(const char *text, int keep);

#define stow_log_warn(...) stow_log(STOW_LOG_WARN, __VA_ARGS__)
#define stow_log_info(...) stow_log(STOW_LOG_INFO, __VA_ARGS__)
#define stow_log_detail(...) stow_log(STOW_LOG_DETAIL, __VA_ARGS__)
#define stow_log_debug(...) stow_log(STOW_LOG_DEBUG, __VA_ARGS__)

#endif
