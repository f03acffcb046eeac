/* Recording, prefixing and clearing of struct stow_error. */
#include "common/error.h"

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

int stow_vfail(stow_error *err, int exit_code, const char *fmt, va_list ap)
{
    if (err == NULL || err->exit_code != 0)
        return -1;

    err->exit_code = exit_code == 0 ? STOW_EXIT_FAILURE : exit_code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
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
