/* Reader thread: pg_dump's pipe to dump segments, with dump scanning. */
#include "backup/dump_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/interrupt.h"
#include "common/log.h"
#include "members.h"

/* Larger than the 64 KiB default, so pg_dump can write ahead while the
 * reader scans. Linux caps it at /proc/sys/fs/pipe-max-size (1 MiB by
 * default) for unprivileged processes, see pipe(7). */
#define DUMP_PIPE_BYTES (1024 * 1024)

#define SEGMENT_END (-1)
#define SEGMENT_FAILED (-2)

/* How often a waiting main thread looks for SIGINT and SIGTERM. */
#define INTERRUPT_POLL_MS 100

/* Fills one segment. Returns 1 when it is full, 0 at end of file, -1 on
 * failure. */
static int fill_segment(struct dump_reader *reader, struct dump_segment *segment)
{
    segment->len = 0;
    while (segment->len < MEMBERS_SEGMENT_BYTES) {
        ssize_t got = read(reader->fd, segment->data + segment->len,
                           MEMBERS_SEGMENT_BYTES - segment->len);

        if (atomic_load(&reader->stopping))
            return -1;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return stow_fail_errno(&reader->failure, STOW_EXIT_FAILURE, errno,
                                   "reading the output of", "pg_dump");
        if (got == 0)
            return 0;

        if (reader->scan != NULL &&
            dumpscan_write(reader->scan, segment->data + segment->len, (size_t)got,
                           &reader->failure) != 0)
            return -1;
        segment->len += (size_t)got;
        reader->bytes += (uint64_t)got;
    }
    return 1;
}

static void *read_dump(void *argument)
{
    struct dump_reader *reader = argument;
    int handed = 0;
    int index, full, end;

    do {
        if (work_queue_pop(&reader->free_segments, &index, -1) != 1)
            return NULL;
        full = fill_segment(reader, &reader->segments[index]);
        if (full < 0)
            break;

        /* The archive has at least one dump segment, even an empty one. An
         * empty segment after others goes back to the pool unused. */
        if (full == 0 && reader->segments[index].len == 0 && handed > 0) {
            work_queue_push(&reader->free_segments, &index);
            break;
        }
        if (work_queue_push(&reader->full_segments, &index) != 0)
            return NULL;
        handed++;
    } while (full == 1);

    end = full < 0 ? SEGMENT_FAILED : SEGMENT_END;
    work_queue_push(&reader->full_segments, &end);
    return NULL;
}

static void enlarge_pipe(int fd)
{
    if (fcntl(fd, F_SETPIPE_SZ, DUMP_PIPE_BYTES) < 0)
        stow_log_detail("could not enlarge the pipe from pg_dump to %d bytes: %s",
                        DUMP_PIPE_BYTES, strerror(errno));
}

int dump_reader_start(struct dump_reader *reader, int fd, dumpscan *scan, stow_error *err)
{
    memset(reader, 0, sizeof *reader);
    reader->fd = fd;
    reader->scan = scan;
    if (work_queue_init(&reader->free_segments, sizeof(int), DUMP_READER_SEGMENTS, err) != 0 ||
        work_queue_init(&reader->full_segments, sizeof(int), DUMP_READER_SEGMENTS + 1,
                        err) != 0)
        return -1;

    for (int i = 0; i < DUMP_READER_SEGMENTS; i++) {
        reader->segments[i].data = malloc(MEMBERS_SEGMENT_BYTES);
        if (reader->segments[i].data == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        work_queue_push(&reader->free_segments, &i);
    }

    enlarge_pipe(fd);
    if (pthread_create(&reader->thread, NULL, read_dump, reader) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "could not start the dump reader thread");
    reader->thread_started = 1;
    pthread_setname_np(reader->thread, "dump-reader"); /* for top and perf */
    return 0;
}

int dump_reader_next(struct dump_reader *reader, int *segment, stow_error *err)
{
    int rc;

    while ((rc = work_queue_pop(&reader->full_segments, segment, INTERRUPT_POLL_MS)) == 0) {
        if (stow_interrupted())
            return stow_fail_interrupted(err, "the dump");
    }
    if (stow_interrupted())
        return stow_fail_interrupted(err, "the dump");
    if (rc < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "the dump reader thread has stopped");
    if (*segment == SEGMENT_END)
        return 0;
    if (*segment == SEGMENT_FAILED) {
        *err = reader->failure;
        return -1;
    }
    return 1;
}

void dump_reader_release(void *context, int segment)
{
    struct dump_reader *reader = context;

    work_queue_push(&reader->free_segments, &segment);
}

void dump_reader_wait_released(struct dump_reader *reader)
{
    work_queue_wait_count(&reader->free_segments, DUMP_READER_SEGMENTS);
}

void dump_reader_stop(struct dump_reader *reader)
{
    if (reader->thread_started) {
        atomic_store(&reader->stopping, 1);
        work_queue_abort(&reader->free_segments);
        work_queue_abort(&reader->full_segments);
        pthread_join(reader->thread, NULL);
        reader->thread_started = 0;
    }
    for (int i = 0; i < DUMP_READER_SEGMENTS; i++) {
        free(reader->segments[i].data);
        reader->segments[i].data = NULL;
    }
    work_queue_destroy(&reader->free_segments);
    work_queue_destroy(&reader->full_segments);
}
