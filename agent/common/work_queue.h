/* A bounded first-in, first-out queue of fixed-size items between threads.
 *
 * Pushing blocks while the queue is full and popping while it is empty, so
 * a fast producer cannot run ahead of its consumer by more than the
 * capacity. work_queue_abort wakes every waiter and makes every later push
 * and pop fail, which is how a failing thread stops the others. */
#ifndef STOWAGE_WORK_QUEUE_H
#define STOWAGE_WORK_QUEUE_H

#include <pthread.h>
#include <stddef.h>

#include "common/error.h"

struct work_queue {
    pthread_mutex_t lock;
    pthread_cond_t changed;     /* an item was pushed or popped, or the queue aborted */
    unsigned char *items;       /* capacity items of item_size bytes */
    size_t item_size;
    size_t capacity;
    size_t head;                /* index of the oldest item */
    size_t count;
    int aborted;
};

int work_queue_init(struct work_queue *queue, size_t item_size, size_t capacity,
                    stow_error *err);
void work_queue_destroy(struct work_queue *queue);

/* Copies item in, waiting for room. Returns 0, or -1 once the queue is
 * aborted. */
int work_queue_push(struct work_queue *queue, const void *item);

/* Copies the oldest item out, waiting up to timeout_ms milliseconds
 * (negative: without a limit). Returns 1 with an item, 0 on timeout, -1
 * once the queue is aborted. */
int work_queue_pop(struct work_queue *queue, void *item, int timeout_ms);

void work_queue_abort(struct work_queue *queue);

/* Waits until the queue contains count items. Returns 0, or -1 once the
 * queue is aborted. */
int work_queue_wait_count(struct work_queue *queue, size_t count);

/* Copies the oldest item out without waiting, also after an abort, so the
 * owner can release what is left once every other thread has stopped.
 * Returns 1 with an item, 0 when the queue is empty. */
int work_queue_take(struct work_queue *queue, void *item);

#endif
