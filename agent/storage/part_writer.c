/* Stream-to-parts cutting for multipart uploads. */
#include "storage/part_writer.h"

#include <string.h>

#include "storage/part_pool.h"

static uint64_t current_part_size(const struct part_writer *writer)
{
    return storage_part_size_for(writer->part_number, writer->base_part_size,
                                 writer->growth_interval);
}

int part_writer_init(struct part_writer *writer, storage_upload *upload,
                     uint64_t base_part_size, uint32_t growth_interval, stow_error *err)
{
    memset(writer, 0, sizeof *writer);
    writer->upload = upload;
    writer->base_part_size = base_part_size;
    writer->growth_interval = growth_interval;
    writer->part_number = 1;
    stow_buf_init(&writer->part, (size_t)STORAGE_MAX_PART_SIZE);
    return storage_upload_reserve(upload, (size_t)base_part_size, &writer->part, err);
}

static int send_part(struct part_writer *writer, stow_error *err)
{
    if (storage_upload_part(writer->upload, &writer->part, err) != 0)
        return -1;
    writer->part_number++;
    return 0;
}

int part_writer_write(struct part_writer *writer, const void *data, size_t len,
                      stow_error *err)
{
    const uint8_t *cursor = data;

    writer->bytes += len;
    while (len > 0) {
        uint64_t target = current_part_size(writer);
        size_t room = (size_t)(target - writer->part.len);
        size_t take = len < room ? len : room;

        /* part_buf_prefault keeps the buffer aligned, which realloc would not. */
        if (writer->part.cap < target && part_buf_prefault(&writer->part, (size_t)target, err) != 0)
            return -1;
        if (stow_buf_append(&writer->part, cursor, take, err) != 0)
            return -1;
        cursor += take;
        len -= take;
        if (writer->part.len == target && send_part(writer, err) != 0)
            return -1;
    }
    return 0;
}

int part_writer_flush(struct part_writer *writer, stow_error *err)
{
    if (writer->part.len == 0)
        return 0;
    return send_part(writer, err);
}

void part_writer_free(struct part_writer *writer)
{
    stow_buf_free(&writer->part);
}
