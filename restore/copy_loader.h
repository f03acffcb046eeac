/* Table data over several COPY connections, for restore --jobs N.
 *
 * The dump scanner passes each table's rows to the loader as the dump
 * streams (dumpscan_observer). The loader cuts them into chunks of about
 * COPY_LOADER_CHUNK_BYTES at row boundaries and queues them. N threads,
 * each with its own connection, take the next chunk from the queue and
 * send it with COPY ... FROM STDIN. So the chunks of one big table are
 * loaded by all N connections at once, which PostgreSQL allows. A thread
 * whose next chunk belongs to another table ends its COPY first.
 *
 * Memory is bounded: N + 2 chunks, and a chunk grows beyond
 * COPY_LOADER_CHUNK_BYTES only to hold a longer row. Each COPY commits on
 * its own, so a failure leaves the rows loaded so far in the target. */
#ifndef STOWAGE_COPY_LOADER_H
#define STOWAGE_COPY_LOADER_H

#include <stddef.h>

#include "common/error.h"
#include "formats/dumpscan.h"

#define COPY_LOADER_CHUNK_BYTES (1024u * 1024u)

typedef struct copy_loader copy_loader;

/* Opens connections to conninfo (NULL: the PG* variables) with the session
 * settings of pg_restore and the dump's client encoding, and starts one
 * thread per connection. Fails with STOW_EXIT_DATABASE when a connection
 * fails. */
int copy_loader_start(const char *conninfo, int connections, const char *encoding,
                      copy_loader **out, stow_error *err);

/* Starts the rows of table. */
int copy_loader_begin_table(copy_loader *loader, const struct dumpscan_table *table,
                            stow_error *err);

/* Adds COPY text rows of the table begun last; a row may be split across
 * calls. Blocks while the queue is full. Fails with the first loading error
 * of any connection, or when SIGINT or SIGTERM arrived. */
int copy_loader_add_rows(copy_loader *loader, const void *rows, size_t len, stow_error *err);

/* Queues the table's last rows, which must end in a newline. */
int copy_loader_end_table(copy_loader *loader, stow_error *err);

/* Waits until every queued chunk is loaded and every COPY ended, then sets
 * the sequences of contents that have a value in the dump. Fails with the
 * first loading error, which names the table and the server's message. */
int copy_loader_finish(copy_loader *loader, const struct dumpscan_contents *contents,
                       stow_error *err);

/* Cancels what still runs, stops the threads and closes the connections.
 * Accepts NULL. */
void copy_loader_free(copy_loader *loader);

#endif
