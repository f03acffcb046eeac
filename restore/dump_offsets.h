/* Data offsets for a spooled custom-format dump.
 *
 * pg_dump writes its archive to a pipe for stowage, so the table of
 * contents (TOC) lacks the file offsets of the data blocks. pg_restore
 * --jobs can still restore such a file, but each worker then finds its
 * data by stepping through every data chunk before it, with one lseek per
 * chunk. pg_dump -Z0 writes one chunk per row, so two jobs made 2 million
 * lseek calls for a million rows (strace -c, pgbench scale 10).
 * dump_offsets_fill reads the spooled file once and writes the offsets into
 * the TOC in place, as pg_dump itself does at the end of a dump to a
 * seekable file.
 *
 * The byte layout is the one formats/dumpscan.c reads, archive versions
 * 1.12 to 1.15 (pg_dump 15 writes 1.14 and pg_dump 16 writes 1.15).
 * NOTE: only version 1.14 is tested against the offsets that pg_dump 15
 * writes itself (tests/integration/test_restore_jobs.py). */
#ifndef STOWAGE_DUMP_OFFSETS_H
#define STOWAGE_DUMP_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Fills in the data offsets of the archive of size bytes in fd. Returns 0
 * and sets *filled to the number of TOC entries that got an offset. Returns
 * 1 without changing the file when the archive has another version or a
 * layout this code does not read, so pg_restore searches as before.
 * Returns -1 on an I/O error. */
int dump_offsets_fill(int fd, uint64_t size, size_t *filled, stow_error *err);

#endif
