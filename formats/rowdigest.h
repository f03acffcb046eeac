/* Table digests: an order-independent digest of a table's COPY text rows.
 *
 * Each row (the bytes of one COPY text line, without its newline) is hashed
 * with BLAKE2b-256 (libsodium crypto_generichash, no key). The 32-byte hash
 * is read as four little-endian uint64 lanes, and the lanes of all rows are
 * added lane by lane modulo 2^64. The digest is the four lane sums, each
 * written as 8 little-endian bytes, in hex (64 characters), next to the row
 * count. Addition makes the digest independent of row order, and unlike XOR
 * a duplicated row changes it.
 *
 * The backup computes the digest from the COPY data inside the pg_dump
 * archive; verification computes it from COPY ... TO STDOUT on the restored
 * database. Both feed the same bytes, so equal tables give equal digests.
 *
 * A row may arrive in pieces: rowdigest_row_update() takes any split, and
 * rowdigest_feed() splits a COPY text stream at newlines by itself. Nothing
 * is allocated per row. A rowdigest is a plain value (it contains the
 * BLAKE2b state, which libsodium declares 64-byte aligned, so a heap copy
 * needs an aligned allocation). Not thread-safe; use one per table.
 *
 * Call sodium_init() first (dumpscan_new and dbverify_run do): without it
 * libsodium hashes with its portable code, which gives the same digests
 * but slower. */
#ifndef STOWAGE_ROWDIGEST_H
#define STOWAGE_ROWDIGEST_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define ROWDIGEST_BYTES 32
#define ROWDIGEST_HEX_SIZE (2 * ROWDIGEST_BYTES + 1)

typedef struct rowdigest {
    uint64_t lanes[4];                /* lane sums modulo 2^64 */
    uint64_t rows;                    /* rows added */
    int row_open;                     /* bytes fed since the last row ended */
    crypto_generichash_state row;     /* hash of the open row */
} rowdigest;

/* Sets the digest to the empty table: zero rows, all lanes zero. */
void rowdigest_init(rowdigest *digest);

/* Adds one complete row. */
void rowdigest_add_row(rowdigest *digest, const void *row, size_t len);

/* Appends bytes to the open row, opening one if none is open. */
void rowdigest_row_update(rowdigest *digest, const void *bytes, size_t len);

/* Ends the open row and adds it (an empty row if nothing was fed). */
void rowdigest_row_end(rowdigest *digest);

/* Drops the open row without adding it. */
void rowdigest_row_cancel(rowdigest *digest);

/* Splits COPY text at '\n' and adds each finished row; a row that is not
 * finished stays open for the next call. */
void rowdigest_feed(rowdigest *digest, const void *data, size_t len);

/* Writes the 64 hex characters and a NUL. */
void rowdigest_hex(const rowdigest *digest, char out[ROWDIGEST_HEX_SIZE]);

#endif
