/* Internals shared by the dump scanner's files: the collection of TOC
 * entries (dumpscan_toc.c) used by the stream parser (dumpscan.c). Not part
 * of the public interface. */
#ifndef STOWAGE_DUMPSCAN_INTERNAL_H
#define STOWAGE_DUMPSCAN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "formats/dumpscan.h"

enum data_kind {
    DATA_TABLE,            /* TABLE DATA: COPY text rows */
    DATA_LARGE_OBJECTS,    /* BLOBS: large objects */
    DATA_OTHER             /* any other entry with data; skipped */
};

/* A TOC entry whose data block the archive must contain. */
struct data_entry {
    int64_t dump_id;
    enum data_kind kind;
    struct dumpscan_table *table;  /* DATA_TABLE, set by toc_collector_resolve */
    int seen;                      /* its block was read */
};

/* The fields of one TOC entry that the scanner keeps (borrowed). */
struct toc_entry_facts {
    int64_t dump_id;
    int had_dumper;
    const char *tag;
    const char *desc;
    const char *defn;
    const char *copy;
    const char *namespace;
};

struct raw_table;
struct raw_sequence;

/* TOC entries as read, merged into the contents once the TOC is complete. */
struct toc_collector {
    struct raw_table *tables;
    size_t table_count;
    size_t table_cap;
    struct raw_sequence *sequences;
    size_t sequence_count;
    size_t sequence_cap;
    struct data_entry *data;       /* in TOC order */
    size_t data_count;
    size_t data_cap;
    size_t cursor;                 /* where the next data block is expected */
};

/* Records one entry: schemas, extensions and the encoding go straight into
 * contents; tables and sequences wait for toc_collector_resolve. */
int toc_collector_add(struct toc_collector *toc, struct dumpscan_contents *contents,
                      const struct toc_entry_facts *facts, stow_error *err);

/* Builds the sorted table and sequence lists of contents. Fails when the
 * TOC lists a table or sequence twice. */
int toc_collector_resolve(struct toc_collector *toc, struct dumpscan_contents *contents,
                          stow_error *err);

/* Finds the data entry with dump_id, or NULL. */
struct data_entry *toc_collector_find_data(struct toc_collector *toc, int64_t dump_id);

/* Returns the first data entry, in TOC order, whose block was not read. */
struct data_entry *toc_collector_first_unseen(struct toc_collector *toc);

/* Accepts a collector that never allocated. */
void toc_collector_free(struct toc_collector *toc);

/* Frees the members of contents and zeroes it. */
void dumpscan_contents_clear(struct dumpscan_contents *contents);

/* Parses pg_dump's "SELECT pg_catalog.setval('name', value, is_called);".
 * Returns 0, or -1 when defn does not have exactly that form. */
int dumpscan_parse_setval(const char *defn, int64_t *value, int *is_called);

/* --- The rewritten archive (dumpscan_output.c) ---------------------------- */

/* Bytes passed to dumpscan_output.write at a time, at most. */
#define DUMPSCAN_OUTPUT_BUFFER (256u * 1024u)

struct dumpscan_output_state {
    struct dumpscan_output output;
    stow_buf buffer;               /* bytes not yet passed on */
    size_t chunk_start;            /* offset in buffer of the open chunk's header */
};

void dumpscan_output_init(struct dumpscan_output_state *state,
                          const struct dumpscan_output *output);
void dumpscan_output_free(struct dumpscan_output_state *state);

/* Archive bytes outside data chunks, passed on unchanged. */
int dumpscan_output_bytes(struct dumpscan_output_state *state, const void *data, size_t len,
                          int int_size, stow_error *err);

/* Bytes of a data block's chunks: they go into chunks of
 * DUMPSCAN_OUTPUT_CHUNK bytes (the last of a block may be shorter). */
int dumpscan_output_chunk_bytes(struct dumpscan_output_state *state, const void *data,
                                size_t len, int int_size, stow_error *err);

/* The data block ended: closes its last chunk and writes the zero length. */
int dumpscan_output_block_end(struct dumpscan_output_state *state, int int_size,
                              stow_error *err);

/* Passes on everything held. */
int dumpscan_output_flush(struct dumpscan_output_state *state, int int_size, stow_error *err);

#endif
