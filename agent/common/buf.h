/* Growable byte buffer with a hard maximum, for outside input (HTTP
 * bodies, manifests, XML responses) and for staging parts. A hostile or
 * broken peer cannot make a buffer grow past the maximum set at creation. */
#ifndef STOWAGE_BUF_H
#define STOWAGE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct stow_buf {
    uint8_t *data;   /* owned; NUL-terminated past len for text convenience */
    size_t len;      /* bytes in use */
    size_t cap;      /* bytes allocated, excluding the terminating NUL */
    size_t max;      /* hard maximum of len */
} stow_buf;

/* Prepares an empty buffer that may grow to max bytes. Allocates nothing. */
void stow_buf_init(stow_buf *buf, size_t max);

/* Ensures room for len + extra bytes. Fails (STOW_EXIT_FAILURE) past max. */
int stow_buf_reserve(stow_buf *buf, size_t extra, stow_error *err);

int stow_buf_append(stow_buf *buf, const void *data, size_t len, stow_error *err);
int stow_buf_append_str(stow_buf *buf, const char *text, stow_error *err);
int stow_buf_printf(stow_buf *buf, stow_error *err, const char *fmt, ...) STOW_PRINTF(3, 4);

/* Empties the buffer and keeps its allocation. */
void stow_buf_reset(stow_buf *buf);

/* Releases the allocation; the buffer may be reused after stow_buf_init.
 * Accepts a buffer that never allocated. */
void stow_buf_free(stow_buf *buf);

/* Releases the allocation after overwriting it with zeros (key material). */
void stow_buf_free_secret(stow_buf *buf);

#endif
