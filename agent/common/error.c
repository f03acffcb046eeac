/* Recording, prefixing and clearing of struct stow_error. */
#include "common/error.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void stow_error_clear(stow_error *err)
{
    if (err == NULL)
        return;
    err->exit_code = 0;
    err->message[0] = '\0';
    err->hint[0] = '\0';
}

/* Replaces text[start, end) with up to five '*' and closes the gap. */
static size_t mask_span(char *text, size_t start, size_t end)
{
    size_t span = end - start;
    size_t stars = span < 5 ? span : 5;

    memset(text + start, '*', stars);
    memmove(text + start + stars, text + end, strlen(text + end) + 1);
    return start + stars;
}

/* Masks "user:PASSWORD@" after each "://". */
static void redact_uri_passwords(char *text)
{
    char *scheme_end = text;

    while ((scheme_end = strstr(scheme_end, "://")) != NULL) {
        char *authority = scheme_end + 3;
        size_t authority_len = strcspn(authority, "/?# \t\n\"'");
        char *at = memchr(authority, '@', authority_len);
        char *colon;

        scheme_end = authority;
        if (at == NULL)
            continue;
        /* The last '@' of the authority ends the user information. */
        while (memchr(at + 1, '@', authority_len - (size_t)(at + 1 - authority)) != NULL)
            at = memchr(at + 1, '@', authority_len - (size_t)(at + 1 - authority));
        colon = memchr(authority, ':', (size_t)(at - authority));
        if (colon != NULL && colon + 1 < at)
            mask_span(text, (size_t)(colon + 1 - text), (size_t)(at - text));
    }
}

/* Masks the value of each "password=VALUE" keyword, quoted or not. */
static void redact_keyword_passwords(char *text)
{
    char *cursor = text;

    while ((cursor = strcasestr(cursor, "password")) != NULL) {
        char *value = cursor + strlen("password");
        size_t end;

        while (*value == ' ')
            value++;
        cursor = value;
        if (*value != '=')
            continue;
        value++;
        while (*value == ' ')
            value++;
        if (*value == '\'') {
            end = 1;
            while (value[end] != '\0' && value[end] != '\'')
                end += value[end] == '\\' && value[end + 1] != '\0' ? 2 : 1;
            if (value[end] == '\'')
                end++;
        } else {
            end = strcspn(value, " \t\n\"");
        }
        if (end > 0)
            cursor = text + mask_span(text, (size_t)(value - text), (size_t)(value - text) + end);
    }
}

void stow_redact_passwords(char *text)
{
    redact_uri_passwords(text);
    redact_keyword_passwords(text);
}

size_t stow_control_length(const char *text)
{
    const unsigned char *c = (const unsigned char *)text;

    if (c[0] < 0x20 || c[0] == 0x7f)
        return c[0] != '\0';
    return c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f ? 2 : 0;
}

int stow_has_control_characters(const char *text)
{
    for (; *text != '\0'; text++) {
        if (stow_control_length(text) > 0)
            return 1;
    }
    return 0;
}

void stow_clean_line(char *text)
{
    char *out = text;

    while (*text != '\0') {
        size_t length = stow_control_length(text);

        if (length == 0)
            *out++ = *text++;
        else {
            *out++ = *text == '\n' || *text == '\r' || *text == '\t' ? ' ' : '?';
            text += length;
        }
    }
    *out = '\0';
}

int stow_vfail(stow_error *err, int exit_code, const char *fmt, va_list ap)
{
    if (err == NULL || err->exit_code != 0)
        return -1;

    err->exit_code = exit_code == 0 ? STOW_EXIT_FAILURE : exit_code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    stow_redact_passwords(err->message);
    stow_clean_line(err->message);
    err->hint[0] = '\0';
    return -1;
}

int stow_fail(stow_error *err, int exit_code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    stow_vfail(err, exit_code, fmt, ap);
    va_end(ap);
    return -1;
}

void stow_error_hint(stow_error *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
    stow_redact_passwords(err->hint);
    stow_clean_line(err->hint);
}

void stow_error_prefix(stow_error *err, const char *fmt, ...)
{
    char context[STOW_ERROR_MESSAGE_MAX];
    char combined[STOW_ERROR_MESSAGE_MAX];
    va_list ap;

    if (err == NULL || err->exit_code == 0)
        return;

    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);

    /* A message longer than the buffer is cut at the end, keeping the context. */
    if (snprintf(combined, sizeof combined, "%s: %s", context, err->message) < 0)
        return;
    stow_redact_passwords(combined);
    stow_clean_line(combined);
    memcpy(err->message, combined, sizeof combined);
}

int stow_error_is_set(const stow_error *err)
{
    return err != NULL && err->exit_code != 0;
}

int stow_fail_errno(stow_error *err, int exit_code, int errnum, const char *operation,
                    const char *path)
{
    return stow_fail(err, exit_code, "%s %s failed: %s", operation, path, strerror(errnum));
}
