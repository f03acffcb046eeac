/* Text and JSON-lines logging to stderr, safe to call from several threads. */
#include "common/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_CONTEXT_FIELDS 8

struct log_field {
    char key[32];
    char value[256];
};

static enum stow_log_level log_level = STOW_LOG_INFO;
static enum stow_log_format log_format = STOW_LOG_TEXT;
static struct log_field log_context[LOG_CONTEXT_FIELDS];
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static int status_line_shown; /* guarded by log_mutex */
/* The step of a thread that works beside the main thread's steps, which its
 * lines carry in place of the shared "step" field. NULL for other threads. */
static _Thread_local const char *thread_step;

/* Carriage return, then ECMA-48 "erase in line" (EL) to its end. */
#define ERASE_LINE "\r\033[K"

static const char *const level_names[] = {"error", "warn", "info", "detail", "debug"};

void stow_log_set_format(enum stow_log_format format)
{
    log_format = format;
}

enum stow_log_format stow_log_get_format(void)
{
    return log_format;
}

void stow_log_set_level(enum stow_log_level level)
{
    log_level = level;
}

enum stow_log_level stow_log_get_level(void)
{
    return log_level;
}

const char *stow_log_level_name(enum stow_log_level level)
{
    return level_names[level];
}

int stow_log_level_parse(const char *name, enum stow_log_level *level)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (enum stow_log_level)i;
            return 0;
        }
    }
    return -1;
}

void stow_log_set_thread_step(const char *step)
{
    thread_step = step;
}

/* Returns the value of context field i as this thread logs it. */
static const char *context_value(size_t i)
{
    if (thread_step != NULL && strcmp(log_context[i].key, "step") == 0)
        return thread_step;
    return log_context[i].value;
}

void stow_log_set_context(const char *key, const char *value)
{
    struct log_field *free_slot = NULL;

    pthread_mutex_lock(&log_mutex);
    for (size_t i = 0; i < LOG_CONTEXT_FIELDS; i++) {
        struct log_field *field = &log_context[i];

        if (field->key[0] == '\0') {
            if (free_slot == NULL)
                free_slot = field;
            continue;
        }
        if (strcmp(field->key, key) == 0) {
            if (value == NULL)
                field->key[0] = '\0';
            else
                snprintf(field->value, sizeof field->value, "%s", value);
            pthread_mutex_unlock(&log_mutex);
            return;
        }
    }
    if (value != NULL && free_slot != NULL) {
        snprintf(free_slot->key, sizeof free_slot->key, "%s", key);
        snprintf(free_slot->value, sizeof free_slot->value, "%s", value);
    }
    pthread_mutex_unlock(&log_mutex);
}

static void format_time(char *out, size_t size)
{
    struct timespec now;
    struct tm utc;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    if (snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900,
                 utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                 now.tv_nsec / 1000000) < 0)
        out[0] = '\0';
}

static void write_json_line(enum stow_log_level level, const char *time_text,
                            const char *message)
{
    json_t *line = json_object();
    char *text;

    json_object_set_new(line, "time", json_string(time_text));
    json_object_set_new(line, "level", json_string(level_names[level]));
    for (size_t i = 0; i < LOG_CONTEXT_FIELDS; i++) {
        if (log_context[i].key[0] != '\0')
            json_object_set_new(line, log_context[i].key, json_string(context_value(i)));
    }
    json_object_set_new(line, "message", json_string(message));

    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        fprintf(stderr, "%s\n", text);
        free(text);
    }
    json_decref(line);
}

/* Writes message so that text from outside (a server's error, a field of
 * a manifest) cannot pass for a log line of its own or drive the
 * terminal: a line after a newline starts indented, and other control
 * characters (C0 but tabs, DEL and C1) become '?'. */
static void write_text_message(const char *message)
{
    for (const char *c = message; *c != '\0';) {
        size_t length = stow_control_length(c);

        if (*c == '\n')
            fputs(c[1] == ' ' || c[1] == '\0' ? "\n" : "\n  ", stderr);
        else if (*c == '\t' || length == 0)
            fputc(*c, stderr);
        else
            fputc('?', stderr);
        c += length > 0 ? length : 1;
    }
    fputc('\n', stderr);
}

static void write_text_line(enum stow_log_level level, const char *time_text,
                            const char *message)
{
    fprintf(stderr, "%s %-6s ", time_text, level_names[level]);
    for (size_t i = 0; i < LOG_CONTEXT_FIELDS; i++) {
        if (log_context[i].key[0] != '\0')
            fprintf(stderr, "%s=%s ", log_context[i].key, context_value(i));
    }
    write_text_message(message);
}

void stow_log(enum stow_log_level level, const char *fmt, ...)
{
    char message[4096];
    char time_text[32];
    va_list ap;

    if (level > log_level)
        return;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    stow_redact_passwords(message);
    format_time(time_text, sizeof time_text);

    pthread_mutex_lock(&log_mutex);
    if (status_line_shown) {
        fputs(ERASE_LINE, stderr);
        status_line_shown = 0;
    }
    if (log_format == STOW_LOG_JSON)
        write_json_line(level, time_text, message);
    else
        write_text_line(level, time_text, message);
    fflush(stderr);
    pthread_mutex_unlock(&log_mutex);
}

void stow_log_error(const stow_error *err)
{
    if (err == NULL || err->exit_code == 0)
        return;
    if (err->hint[0] != '\0')
        stow_log(STOW_LOG_ERROR, "%s\n  hint: %s", err->message, err->hint);
    else
        stow_log(STOW_LOG_ERROR, "%s", err->message);
}

void stow_log_status_line(const char *text, int keep)
{
    pthread_mutex_lock(&log_mutex);
    fprintf(stderr, ERASE_LINE "%s%s", text, keep ? "\n" : "");
    fflush(stderr);
    status_line_shown = !keep;
    pthread_mutex_unlock(&log_mutex);
}
