/* Fixed pools of part buffers. */
#include "storage/part_pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

struct part_pool {
    stow_buf *free;     /* free buffers, free[0 .. free_count) */
    size_t free_count;
    size_t count;       /* buffers the pool owns, free or out */
};

/* Moves buf into a new allocation of exactly size bytes (stow_buf_reserve
 * would round up to a power of 2) that starts on a PART_BUFFER_ALIGNMENT
 * boundary. */
static int grow_aligned(stow_buf *buf, size_t size, stow_error *err)
{
    void *grown = NULL;

    if (size > buf->max)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "a part buffer of %zu bytes exceeds the limit of %zu bytes", size,
                         buf->max);
    if (posix_memalign(&grown, PART_BUFFER_ALIGNMENT, size + 1) != 0) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory allocating a transfer buffer of %zu "
                  "bytes", size);
        stow_error_hint(err, "lower --transfers or raise the memory limit; a backup can also "
                             "take a smaller --part-size");
        return -1;
    }

    if (buf->data != NULL) {
        memcpy(grown, buf->data, buf->len);
        free(buf->data);
    }
    buf->data = grown;
    buf->cap = size;
    return 0;
}

int part_buf_prefault(stow_buf *buf, size_t size, stow_error *err)
{
    if ((size > buf->cap || buf->data == NULL) && grow_aligned(buf, size, err) != 0)
        return -1;

    /* Writing the pages makes the kernel back them now; reading would map
     * the shared zero page and leave the footprint to grow later. */
    if (buf->data != NULL)
        memset(buf->data + buf->len, 0, buf->cap - buf->len + 1);
    return 0;
}

int part_pool_new(size_t count, size_t size, struct part_pool **out, stow_error *err)
{
    struct part_pool *pool = calloc(1, sizeof *pool);

    *out = NULL;
    if (pool == NULL || (pool->free = calloc(count ? count : 1, sizeof *pool->free)) == NULL) {
        free(pool);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    pool->count = count;
    pool->free_count = count;
    for (size_t i = 0; i < count; i++)
        stow_buf_init(&pool->free[i], (size_t)STORAGE_MAX_PART_SIZE);

    if (size > 0 && part_pool_reserve(pool, size, err) != 0) {
        part_pool_free(pool);
        return -1;
    }
    *out = pool;
    return 0;
}

int part_pool_reserve(struct part_pool *pool, size_t size, stow_error *err)
{
    for (size_t i = 0; i < pool->free_count; i++) {
        stow_buf *buf = &pool->free[i];

        if (buf->cap >= size)
            continue;
        if (part_buf_prefault(buf, size, err) != 0) {
            stow_error_prefix(err, "allocating part buffers of %zu bytes", size);
            return -1;
        }
    }
    return 0;
}

int part_pool_take(struct part_pool *pool, stow_buf *out, stow_error *err)
{
    if (pool->free_count == 0)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "all %zu part buffers are in use (a caller kept more parts than "
                         "the pool allows)", pool->count);
    pool->free_count--;
    *out = pool->free[pool->free_count];
    out->len = 0;
    out->max = (size_t)STORAGE_MAX_PART_SIZE;
    stow_buf_init(&pool->free[pool->free_count], (size_t)STORAGE_MAX_PART_SIZE);
    return 0;
}

void part_pool_give(struct part_pool *pool, stow_buf *buf)
{
    if (pool->free_count < pool->count) {
        pool->free[pool->free_count++] = *buf;
        stow_buf_init(buf, buf->max);
        return;
    }
    stow_buf_free(buf);
}

size_t part_pool_outstanding(const struct part_pool *pool)
{
    return pool->count - pool->free_count;
}

void part_pool_free(struct part_pool *pool)
{
    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->free_count; i++)
        stow_buf_free(&pool->free[i]);
    free(pool->free);
    free(pool);
}
