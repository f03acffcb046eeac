/* A fixed set of part buffers that an upload or a download allocates once
 * and reuses for every part, so its memory does not depend on the length
 * of the object. Used by one thread at a time.
 *
 * Buffers are prefaulted (every page written once) when they are sized.
 * The process then reaches its peak footprint when the transfer starts,
 * whatever the size of the database. So a memory limit that is too small
 * (a container's cgroup limit, for example) stops the run at its start
 * rather than hours into a dump. */
#ifndef STOWAGE_PART_POOL_H
#define STOWAGE_PART_POOL_H

#include <stddef.h>

#include "common/buf.h"
#include "common/error.h"

struct part_pool;

/* Creates a pool of count buffers of size bytes each, allocated and
 * prefaulted now. size 0 allocates nothing: each buffer grows on first use
 * and keeps its memory when it comes back. */
int part_pool_new(size_t count, size_t size, struct part_pool **out, stow_error *err);

/* Grows every free buffer to at least size bytes and prefaults it. */
int part_pool_reserve(struct part_pool *pool, size_t size, stow_error *err);

/* Moves a free buffer into out (emptied, max STORAGE_MAX_PART_SIZE). out
 * must own no memory. Fails, leaving out untouched, when all count buffers
 * are out, which a caller that keeps fewer than count out never gets. */
int part_pool_take(struct part_pool *pool, stow_buf *out, stow_error *err);

/* Returns the memory of buf to the pool and leaves buf without memory.
 * When the pool already contains count free buffers (buf came from
 * elsewhere), the memory is freed instead, so the pool never contains more
 * than count. */
void part_pool_give(struct part_pool *pool, stow_buf *buf);

/* Buffers taken and not given back. */
size_t part_pool_outstanding(const struct part_pool *pool);

/* Frees the free buffers and the pool; accepts NULL. Buffers still out
 * stay with their holders, who free them with stow_buf_free. */
void part_pool_free(struct part_pool *pool);

/* Part buffers start on a page boundary, as direct I/O to a file://
 * repository needs (storage_file.c). */
#define PART_BUFFER_ALIGNMENT 4096

/* Grows buf to at least size bytes of capacity, in memory aligned to
 * PART_BUFFER_ALIGNMENT, and prefaults the memory past its contents. */
int part_buf_prefault(stow_buf *buf, size_t size, stow_error *err);

#endif
