/* Tests for agent/storage/part_pool.c: a fixed set of part buffers that
 * comes back and is handed out again, never more than the pool's count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/part_pool.h"
#include "storage/storage.h"
#include "unit.h"

#define BUFFER_BYTES (64u * 1024)

static void take_reuses_given_buffers(void)
{
    struct part_pool *pool = NULL;
    stow_error err = {0};
    stow_buf first, again;

    CHECK_INT_EQ(0, part_pool_new(2, BUFFER_BYTES, &pool, &err));
    CHECK_INT_EQ(0, part_pool_take(pool, &first, &err));
    CHECK(first.data != NULL);
    CHECK_INT_EQ(BUFFER_BYTES, first.cap);
    CHECK_INT_EQ(0, first.len);
    CHECK_INT_EQ(0, first.data[BUFFER_BYTES - 1]);

    uint8_t *memory = first.data;
    first.len = 100;
    part_pool_give(pool, &first);
    CHECK(first.data == NULL);
    CHECK_INT_EQ(0, part_pool_outstanding(pool));

    CHECK_INT_EQ(0, part_pool_take(pool, &again, &err));
    CHECK(again.data == memory);
    CHECK_INT_EQ(0, again.len);
    CHECK_INT_EQ(STORAGE_MAX_PART_SIZE, again.max);
    part_pool_give(pool, &again);
    part_pool_free(pool);
}

static void take_fails_past_count(void)
{
    struct part_pool *pool = NULL;
    stow_error err = {0};
    stow_buf taken[3];
    stow_buf extra = {(uint8_t *)"untouched", 9, 9, 9};

    CHECK_INT_EQ(0, part_pool_new(3, BUFFER_BYTES, &pool, &err));
    for (int i = 0; i < 3; i++)
        CHECK_INT_EQ(0, part_pool_take(pool, &taken[i], &err));
    CHECK_INT_EQ(3, part_pool_outstanding(pool));

    CHECK_INT_EQ(-1, part_pool_take(pool, &extra, &err));
    CHECK_CONTAINS(err.message, "all 3 part buffers are in use");
    CHECK_STR_EQ("untouched", (const char *)extra.data);
    CHECK_INT_EQ(3, part_pool_outstanding(pool));

    for (int i = 0; i < 3; i++)
        part_pool_give(pool, &taken[i]);
    CHECK_INT_EQ(0, part_pool_outstanding(pool));
    part_pool_free(pool);
}

/* A buffer that did not come from the pool replaces one that is out, and
 * is freed once the pool is full, so the pool never contains more than
 * count. */
static void give_beyond_count_frees(void)
{
    struct part_pool *pool = NULL;
    stow_error err = {0};
    stow_buf taken, foreign, again;

    CHECK_INT_EQ(0, part_pool_new(1, 0, &pool, &err));
    stow_buf_init(&foreign, STORAGE_MAX_PART_SIZE);
    CHECK_INT_EQ(0, stow_buf_append(&foreign, "part", 4, &err));

    part_pool_give(pool, &foreign);
    CHECK(foreign.data == NULL);
    CHECK_INT_EQ(0, part_pool_outstanding(pool));

    CHECK_INT_EQ(0, part_pool_take(pool, &taken, &err));
    CHECK(taken.data == NULL);
    CHECK_INT_EQ(0, taken.cap);
    stow_buf_init(&foreign, STORAGE_MAX_PART_SIZE);
    CHECK_INT_EQ(0, stow_buf_append(&foreign, "part", 4, &err));
    part_pool_give(pool, &foreign);
    CHECK_INT_EQ(0, part_pool_outstanding(pool));

    CHECK_INT_EQ(0, part_pool_take(pool, &again, &err));
    CHECK(again.data != NULL);
    CHECK_INT_EQ(-1, part_pool_take(pool, &taken, &err));
    part_pool_give(pool, &again);
    part_pool_free(pool);
}

static void reserve_grows_free_buffers(void)
{
    struct part_pool *pool = NULL;
    stow_error err = {0};
    stow_buf out, still_small;

    CHECK_INT_EQ(0, part_pool_new(2, 0, &pool, &err));
    CHECK_INT_EQ(0, part_pool_take(pool, &out, &err));
    CHECK_INT_EQ(0, part_pool_reserve(pool, BUFFER_BYTES, &err));
    CHECK_INT_EQ(0, part_pool_take(pool, &still_small, &err));
    CHECK_INT_EQ(BUFFER_BYTES, still_small.cap);
    CHECK_INT_EQ(0, out.cap);

    part_pool_give(pool, &out);
    part_pool_give(pool, &still_small);
    part_pool_free(pool);
}

static void prefault_keeps_contents(void)
{
    stow_error err = {0};
    stow_buf buf;

    stow_buf_init(&buf, BUFFER_BYTES);
    CHECK_INT_EQ(0, stow_buf_append(&buf, "head", 4, &err));
    CHECK_INT_EQ(0, part_buf_prefault(&buf, BUFFER_BYTES, &err));
    CHECK_INT_EQ(BUFFER_BYTES, buf.cap);
    CHECK_INT_EQ(4, buf.len);
    CHECK(memcmp(buf.data, "head", 4) == 0);
    CHECK_INT_EQ(0, (uintptr_t)buf.data % PART_BUFFER_ALIGNMENT);

    CHECK_INT_EQ(-1, part_buf_prefault(&buf, BUFFER_BYTES + 1, &err));
    CHECK_CONTAINS(err.message, "exceeds the limit");
    CHECK_INT_EQ(BUFFER_BYTES, buf.cap);
    stow_buf_free(&buf);
}

/* The pool's own failure paths: a pool that cannot be sized frees what it
 * allocated (the sanitizer build reports a leak otherwise). */
static void new_fails_past_buffer_limit(void)
{
    struct part_pool *pool = (struct part_pool *)&pool;
    stow_error err = {0};

    CHECK_INT_EQ(-1, part_pool_new(2, (size_t)STORAGE_MAX_PART_SIZE + 1, &pool, &err));
    CHECK(pool == NULL);
    CHECK_CONTAINS(err.message, "allocating part buffers of");
}

int main(void)
{
    unit_run("take reuses given buffers", take_reuses_given_buffers);
    unit_run("take fails past count", take_fails_past_count);
    unit_run("give beyond count frees", give_beyond_count_frees);
    unit_run("reserve grows free buffers", reserve_grows_free_buffers);
    unit_run("prefault keeps contents", prefault_keeps_contents);
    unit_run("new fails past buffer limit", new_fails_past_buffer_limit);
    return unit_finish();
}
