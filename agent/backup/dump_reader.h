/* The reader thread of a backup. It reads pg_dump's standard output into a
 * fixed pool of segment buffers and feeds every read to the dump scanner
 * (row counts and table digests). Full segments go to the thread that
 * frames, compresses and encrypts them. The pool bounds the memory at
 * DUMP_READER_SEGMENTS x MEMBERS_SEGMENT_BYTES whatever the speed of
 * either side. */
#ifndef STOWAGE_DUMP_READER_H
#define STOWAGE_DUMP_READER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/work_queue.h"
#include "common/error.h"
#include "dumpscan.h"

/* One being filled, one being compressed, one being hashed. */
#define DUMP_READER_SEGMENTS 3

struct dump_segment {
    uint8_t *data;      /* MEMBERS_SEGMENT_BYTES */
    size_t len;
};

struct dump_reader {
    int fd;                             /* pg_dump's standard output; borrowed */
    dumpscan *scan;                     /* borrowed; used by the reader thread only */
    struct dump_segment segments[DUMP_READER_SEGMENTS];
    struct work_queue free_segments;    /* indexes of segments to fill */
    struct work_queue full_segments;    /* indexes in dump order, then an end mark */
    uint64_t bytes;                     /* read so far; final once the end mark is out */
    atomic_int stopping;
    pthread_t thread;
    int thread_started;
    stow_error failure;                 /* the reader thread's error */
};

/* Allocates the segments and starts the thread on fd. scan may be NULL for
 * no scanning. On failure the caller still calls dump_reader_stop. */
int dump_reader_start(struct dump_reader *reader, int fd, dumpscan *scan, stow_error *err);

/* Waits for the next full segment and sets *segment to its index. Returns 1
 * with a segment, 0 after the last one, -1 on the reader's failure or on
 * SIGINT or SIGTERM. The last segment may be short, or empty if the dump
 * is empty. */
int dump_reader_next(struct dump_reader *reader, int *segment, stow_error *err);

/* Gives a segment back to be filled again; any thread may call it. */
void dump_reader_release(void *reader, int segment);

/* Waits until every segment has been released, after dump_reader_next
 * has returned 0. */
void dump_reader_wait_released(struct dump_reader *reader);

/* Stops the thread and frees the segments. The caller makes the reader's
 * read() return first, by ending pg_dump, unless dump_reader_next has
 * returned 0, and makes sure that no other thread still uses a segment or
 * will release one. */
void dump_reader_stop(struct dump_reader *reader);

#endif
