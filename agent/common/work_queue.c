/* Bounded queue on a mutex and one condition variable. */
#include "common/work_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int work_queue_init(struct work_queue *queue, size_t item_size, size_t capacity,
                    stow_error *err)
{
    memset(queue, 0, sizeof *queue);
    queue->items = calloc(capacity, item_size);
    if (queue->items == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    queue->item_size = item_size;
    queue->capacity = capacity;
    pthread_mutex_init(&queue->lock, NULL);
    pthread_cond_init(&queue->changed, NULL);
    return 0;
}

void work_queue_destroy(struct work_queue *queue)
{
    if (queue->items == NULL)
        return;
    pthread_mutex_destroy(&queue->lock);
    pthread_cond_destroy(&queue->changed);
    free(queue->items);
    queue->items = NULL;
}

int work_queue_push(struct work_queue *queue, const void *item)
{
    size_t tail;

    pthread_mutex_lock(&queue->lock);
    while (!queue->aborted && queue->count == queue->capacity)
        pthread_cond_wait(&queue->changed, &queue->lock);
    if (queue->aborted) {
        pthread_mutex_unlock(&queue->lock);
        return -1;
    }

    tail = (queue->head + queue->count) % queue->capacity;
    memcpy(queue->items + tail * queue->item_size, item, queue->item_size);
    queue->count++;
    pthread_cond_broadcast(&queue->changed);
    pthread_mutex_unlock(&queue->lock);
    return 0;
}

static void deadline_after(struct timespec *deadline, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, deadline);
    deadline->tv_sec += timeout_ms / 1000;
    deadline->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000L;
    }
}

int work_queue_pop(struct work_queue *queue, void *item, int timeout_ms)
{
    struct timespec deadline;

    if (timeout_ms >= 0)
        deadline_after(&deadline, timeout_ms);

    pthread_mutex_lock(&queue->lock);
    while (!queue->aborted && queue->count == 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&queue->changed, &queue->lock);
        } else if (pthread_cond_timedwait(&queue->changed, &queue->lock, &deadline) ==
                   ETIMEDOUT) {
            pthread_mutex_unlock(&queue->lock);
            return 0;
        }
    }
    if (queue->aborted) {
        pthread_mutex_unlock(&queue->lock);
        return -1;
    }

    memcpy(item, queue->items + queue->head * queue->item_size, queue->item_size);
    queue->head = (queue->head + 1) % queue->capacity;
    queue->count--;
    pthread_cond_broadcast(&queue->changed);
    pthread_mutex_unlock(&queue->lock);
    return 1;
}

void work_queue_abort(struct work_queue *queue)
{
    pthread_mutex_lock(&queue->lock);
    queue->aborted = 1;
    pthread_cond_broadcast(&queue->changed);
    pthread_mutex_unlock(&queue->lock);
}

int work_queue_wait_count(struct work_queue *queue, size_t count)
{
    int rc;

    pthread_mutex_lock(&queue->lock);
    while (!queue->aborted && queue->count != count)
        pthread_cond_wait(&queue->changed, &queue->lock);
    rc = queue->aborted ? -1 : 0;
    pthread_mutex_unlock(&queue->lock);
    return rc;
}

int work_queue_take(struct work_queue *queue, void *item)
{
    int taken = 0;

    pthread_mutex_lock(&queue->lock);
    if (queue->count > 0) {
        memcpy(item, queue->items + queue->head * queue->item_size, queue->item_size);
        queue->head = (queue->head + 1) % queue->capacity;
        queue->count--;
        taken = 1;
    }
    pthread_mutex_unlock(&queue->lock);
    return taken;
}
