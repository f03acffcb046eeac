/* Tests for agent/backup/dump_reader.c: pg_dump's output arrives through a
 * pipe from a writer thread in uneven writes, and the segments that come
 * out, released as they are consumed, must give back the same bytes. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/dump_reader.h"
#include "members.h"
#include "unit.h"

#define SAMPLE_DUMP "data/sample.dump"

struct writer {
    int fd;
    const uint8_t *data;
    size_t len;
};

/* Writes in chunks of 1 to 100,000 bytes, then closes the pipe. */
static void *write_input(void *argument)
{
    struct writer *writer = argument;
    size_t at = 0;
    unsigned seed = 7;

    while (at < writer->len) {
        size_t chunk = 1 + (size_t)(rand_r(&seed) % 100000);
        ssize_t written;

        if (chunk > writer->len - at)
            chunk = writer->len - at;
        written = write(writer->fd, writer->data + at, chunk);
        if (written <= 0)
            break;
        at += (size_t)written;
    }
    close(writer->fd);
    return NULL;
}

/* Reads input through a dump reader into out; returns dump_reader_next's
 * last result and the number of segments. */
static int read_through(const uint8_t *input, size_t len, dumpscan *scan, uint8_t *out,
                        size_t *out_len, size_t *segments, stow_error *err)
{
    struct dump_reader reader;
    struct writer writer = {-1, input, len};
    pthread_t thread;
    int fds[2];
    int index, rc;

    *out_len = 0;
    *segments = 0;
    if (pipe(fds) != 0)
        return -2;
    writer.fd = fds[1];
    pthread_create(&thread, NULL, write_input, &writer);

    rc = dump_reader_start(&reader, fds[0], scan, err);
    while (rc == 0 && (rc = dump_reader_next(&reader, &index, err)) == 1) {
        memcpy(out + *out_len, reader.segments[index].data, reader.segments[index].len);
        *out_len += reader.segments[index].len;
        (*segments)++;
        dump_reader_release(&reader, index);
        rc = 0;
    }
    if (rc == 0) {
        dump_reader_wait_released(&reader);
        CHECK_INT_EQ(len, reader.bytes);
    }
    close(fds[0]);
    dump_reader_stop(&reader);
    pthread_join(thread, NULL);
    return rc;
}

static void test_sample_dump_scanned(void)
{
    size_t len = 0, out_len, segments;
    uint8_t *input = (uint8_t *)unit_read_file(SAMPLE_DUMP, &len);
    uint8_t *out = malloc(len + 1);
    dumpscan *scan = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK(input != NULL);
    CHECK_INT_EQ(0, dumpscan_new(NULL, &scan, &err));
    CHECK_INT_EQ(0, read_through(input, len, scan, out, &out_len, &segments, &err));
    CHECK_INT_EQ(len, out_len);
    CHECK(memcmp(input, out, len) == 0);
    CHECK_INT_EQ(1, segments);
    CHECK_INT_EQ(0, dumpscan_finish(scan, &err));
    CHECK(dumpscan_contents(scan)->table_count > 0);
    dumpscan_free(scan);
    free(input);
    free(out);
}

/* Lengths around segment boundaries, without scanning; an input of whole
 * segments ends without an extra empty one, and an empty input gives one
 * empty segment. */
static void test_segment_boundaries(void)
{
    const size_t lengths[] = {0, 1, MEMBERS_SEGMENT_BYTES - 1, MEMBERS_SEGMENT_BYTES,
                              MEMBERS_SEGMENT_BYTES + 1, 4 * (size_t)MEMBERS_SEGMENT_BYTES};
    const size_t expected_segments[] = {1, 1, 1, 1, 2, 4};
    size_t max = 4 * (size_t)MEMBERS_SEGMENT_BYTES;
    uint8_t *input = malloc(max);
    uint8_t *out = malloc(max);

    for (size_t i = 0; i < max; i++)
        input[i] = (uint8_t)(i * 31 + i / 4099);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        size_t out_len, segments;
        stow_error err;

        stow_error_clear(&err);
        CHECK_INT_EQ(0, read_through(input, lengths[i], NULL, out, &out_len, &segments, &err));
        CHECK_INT_EQ(lengths[i], out_len);
        CHECK(memcmp(input, out, lengths[i]) == 0);
        CHECK_INT_EQ(expected_segments[i], segments);
    }
    free(input);
    free(out);
}

static void test_scanner_failure_returned(void)
{
    static const uint8_t garbage[] = "this is not a pg_dump archive";
    uint8_t out[64];
    size_t out_len, segments;
    dumpscan *scan = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, dumpscan_new(NULL, &scan, &err));
    CHECK_INT_EQ(-1, read_through(garbage, sizeof garbage, scan, out, &out_len, &segments, &err));
    CHECK_INT_EQ(STOW_EXIT_FAILURE, err.exit_code);
    CHECK(strlen(err.message) > 0);
    CHECK_INT_EQ(0, segments);
    dumpscan_free(scan);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;

    /* A reader that stops early closes the pipe under the writer, as
     * stowage, which ignores SIGPIPE too, does to pg_dump. */
    signal(SIGPIPE, SIG_IGN);

    unit_run("dump reader sample dump scanned", test_sample_dump_scanned);
    unit_run("dump reader segment boundaries", test_segment_boundaries);
    unit_run("dump reader scanner failure returned", test_scanner_failure_returned);
    return unit_finish();
}
