/* Bounded growable byte buffer. */
#include "common/buf.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stow_buf_init(stow_buf *buf, size_t max)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->max = max;
}

int stow_buf_reserve(stow_buf *buf, size_t extra, stow_error *err)
{
    size_t needed;
    size_t new_cap;
    uint8_t *grown;

    if (extra > buf->max || buf->len > buf->max - extra)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "buffer limit of %zu bytes exceeded (have %zu, need %zu more)",
                         buf->max, buf->len, extra);

    needed = buf->len + extra;
    if (needed <= buf->cap && buf->data != NULL)
        return 0;

    new_cap = buf->cap < 256 ? 256 : buf->cap;
    while (new_cap < needed)
        new_cap = new_cap > buf->max / 2 ? buf->max : new_cap * 2;

    grown = realloc(buf->data, new_cap + 1);
    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory growing a buffer to %zu bytes",
                         new_cap);
    buf->data = grown;
    buf->cap = new_cap;
    buf->data[buf->len] = '\0';
    return 0;
}

int stow_buf_append(stow_buf *buf, const void *data, size_t len, stow_error *err)
{
    if (stow_buf_reserve(buf, len, err) != 0)
        return -1;
    if (len > 0)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

int stow_buf_append_str(stow_buf *buf, const char *text, stow_error *err)
{
    return stow_buf_append(buf, text, strlen(text), err);
}

int stow_buf_printf(stow_buf *buf, stow_error *err, const char *fmt, ...)
{
    va_list ap;
    int needed;

    va_start(ap, fmt);
    needed = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (needed < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "invalid format string");

    if (stow_buf_reserve(buf, (size_t)needed, err) != 0)
        return -1;

    va_start(ap, fmt);
    vsnprintf((char *)buf->data + buf->len, (size_t)needed + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)needed;
    return 0;
}

void stow_buf_reset(stow_buf *buf)
{
    buf->len = 0;
    if (buf->data != NULL)
        buf->data[0] = '\0';
}

void stow_buf_free(stow_buf *buf)
{
    if (buf == NULL)
        return;
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void stow_buf_free_secret(stow_buf *buf)
{
    if (buf == NULL)
        return;
    if (buf->data != NULL)
        sodium_memzero(buf->data, buf->cap + 1);
    stow_buf_free(buf);
}
