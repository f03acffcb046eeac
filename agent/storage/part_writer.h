/* Cuts a byte stream of unknown length into upload parts: part sizes follow
 * storage_part_size_for, so the part count stays under STORAGE_MAX_PARTS
 * for any stream up to the S3 object limit. Fills one part buffer, which
 * storage_upload_part exchanges for a free one, so the upload's buffers
 * are all the memory the parts take. */
#ifndef STOWAGE_PART_WRITER_H
#define STOWAGE_PART_WRITER_H

#include "storage/storage.h"

struct part_writer {
    storage_upload *upload;     /* borrowed */
    stow_buf part;              /* the part being filled */
    uint32_t part_number;       /* 1-based number of that part */
    uint64_t base_part_size;
    uint32_t growth_interval;   /* parts between doublings; 0: default */
    uint64_t bytes;             /* total bytes written */
};

/* Also allocates and prefaults the upload's part buffers for parts of
 * base_part_size bytes (storage_upload_reserve). On failure the writer
 * still needs part_writer_free. */
int part_writer_init(struct part_writer *writer, storage_upload *upload,
                     uint64_t base_part_size, uint32_t growth_interval, stow_error *err);
int part_writer_write(struct part_writer *writer, const void *data, size_t len,
                      stow_error *err);
/* Sends the last, possibly short, part. An empty stream sends none. */
int part_writer_flush(struct part_writer *writer, stow_error *err);
void part_writer_free(struct part_writer *writer);

#endif
