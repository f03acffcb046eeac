/* The scanner's rewritten archive (dumpscan_set_output): the bytes it
 * read, passed on in pieces of up to DUMPSCAN_OUTPUT_BUFFER bytes, with the
 * data chunks of each data block cut again to DUMPSCAN_OUTPUT_CHUNK bytes.
 *
 * A chunk is an integer length followed by that many bytes, and a zero
 * length ends the block. The rewritten chunks are built in place: the
 * header of the open chunk is reserved in the buffer, and its length is
 * written once the chunk is closed. */
#include <string.h>

#include "formats/dumpscan_internal.h"

/* No chunk is open. */
#define NO_CHUNK ((size_t)-1)

void dumpscan_output_init(struct dumpscan_output_state *state,
                          const struct dumpscan_output *output)
{
    memset(state, 0, sizeof *state);
    state->output = *output;
    state->chunk_start = NO_CHUNK;
    stow_buf_init(&state->buffer, DUMPSCAN_OUTPUT_BUFFER);
}

void dumpscan_output_free(struct dumpscan_output_state *state)
{
    stow_buf_free(&state->buffer);
}

/* Writes a custom-format integer: a sign byte, then int_size bytes of
 * magnitude, least significant first. */
static void put_int(uint8_t *at, int int_size, uint64_t value)
{
    at[0] = 0;
    for (int i = 1; i <= int_size; i++) {
        at[i] = (uint8_t)(value & 0xff);
        value >>= 8;
    }
}

static size_t int_bytes(int int_size)
{
    return 1 + (size_t)int_size;
}

static void close_chunk(struct dumpscan_output_state *state, int int_size)
{
    size_t header = int_bytes(int_size);
    size_t len;

    if (state->chunk_start == NO_CHUNK)
        return;
    len = state->buffer.len - state->chunk_start - header;
    put_int(state->buffer.data + state->chunk_start, int_size, len);
    state->chunk_start = NO_CHUNK;
}

/* Passes the buffer on, after closing the open chunk. */
int dumpscan_output_flush(struct dumpscan_output_state *state, int int_size, stow_error *err)
{
    close_chunk(state, int_size);
    if (state->buffer.len == 0)
        return 0;
    if (state->output.write(state->output.context, state->buffer.data, state->buffer.len,
                            err) != 0)
        return -1;
    stow_buf_reset(&state->buffer);
    return 0;
}

/* Makes room for len more bytes in the buffer, passing it on when full. */
static int make_room(struct dumpscan_output_state *state, size_t len, int int_size,
                     stow_error *err)
{
    if (state->buffer.len + len > DUMPSCAN_OUTPUT_BUFFER &&
        dumpscan_output_flush(state, int_size, err) != 0)
        return -1;
    return stow_buf_reserve(&state->buffer, len, err);
}

int dumpscan_output_bytes(struct dumpscan_output_state *state, const void *data, size_t len,
                          int int_size, stow_error *err)
{
    const uint8_t *at = data;

    close_chunk(state, int_size);
    while (len > 0) {
        size_t take = len < DUMPSCAN_OUTPUT_BUFFER ? len : DUMPSCAN_OUTPUT_BUFFER;

        if (make_room(state, take, int_size, err) != 0 ||
            stow_buf_append(&state->buffer, at, take, err) != 0)
            return -1;
        at += take;
        len -= take;
    }
    return 0;
}

/* Opens a chunk, with room for at least one byte of data after its
 * header. */
static int open_chunk(struct dumpscan_output_state *state, int int_size, stow_error *err)
{
    size_t header = int_bytes(int_size);

    if (make_room(state, header + 1, int_size, err) != 0)
        return -1;
    state->chunk_start = state->buffer.len;
    memset(state->buffer.data + state->buffer.len, 0, header);
    state->buffer.len += header;
    return 0;
}

int dumpscan_output_chunk_bytes(struct dumpscan_output_state *state, const void *data,
                                size_t len, int int_size, stow_error *err)
{
    const uint8_t *at = data;
    size_t header = int_bytes(int_size);

    while (len > 0) {
        size_t in_chunk;
        size_t take;

        if (state->chunk_start == NO_CHUNK && open_chunk(state, int_size, err) != 0)
            return -1;
        in_chunk = state->buffer.len - state->chunk_start - header;
        take = DUMPSCAN_OUTPUT_CHUNK - in_chunk;
        if (take > DUMPSCAN_OUTPUT_BUFFER - state->buffer.len)
            take = DUMPSCAN_OUTPUT_BUFFER - state->buffer.len;
        if (take > len)
            take = len;
        if (stow_buf_append(&state->buffer, at, take, err) != 0)
            return -1;
        at += take;
        len -= take;
        if (in_chunk + take == DUMPSCAN_OUTPUT_CHUNK)
            close_chunk(state, int_size);
        else if (state->buffer.len == DUMPSCAN_OUTPUT_BUFFER &&
                 dumpscan_output_flush(state, int_size, err) != 0)
            return -1;
    }
    return 0;
}

int dumpscan_output_block_end(struct dumpscan_output_state *state, int int_size,
                              stow_error *err)
{
    size_t header = int_bytes(int_size);

    close_chunk(state, int_size);
    if (make_room(state, header, int_size, err) != 0)
        return -1;
    put_int(state->buffer.data + state->buffer.len, int_size, 0);
    state->buffer.len += header;
    return 0;
}
