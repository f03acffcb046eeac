/* Table digests: an order-independent digest of a table's COPY text rows.
 *
 * Each row (the bytes of one COPY text line, without its newline) is
 * hashed, the hash is read as little-endian uint64 lanes, and the lanes of
 * all rows are added lane by lane modulo 2^64. The digest is the lane sums,
 * each written as 8 little-endian bytes, in hex, next to the row count.
 * Addition makes the digest independent of row order, and unlike XOR a
 * duplicated row changes it. Two row hashes exist (formats/FORMAT.md,
 * "Table digest"):
 *
 *   ROWDIGEST_SUM128_SIPHASH  (current) SipHash-2-4 with 128-bit output
 *       (libsodium crypto_shorthash_siphashx24, all-zero key) for rows of
 *       up to ROWDIGEST_SIPHASH_MAX bytes, and unkeyed BLAKE2b-128 for
 *       longer rows. Two lanes, 32 hex digits.
 *   ROWDIGEST_SUM256_BLAKE2B  (manifests written before the algorithm was
 *       recorded) unkeyed BLAKE2b-256. Four lanes, 64 hex digits.
 *
 * The backup computes the digest from the COPY data inside the pg_dump
 * archive; verification computes it from COPY ... TO STDOUT on the restored
 * database, with the algorithm the manifest names. Both feed the same
 * bytes, so equal tables give equal digests.
 *
 * A row may arrive in pieces: rowdigest_row_update() takes any split, and
 * rowdigest_feed() splits a COPY text stream at newlines by itself. Nothing
 * is allocated: SipHash has no incremental interface in libsodium, so a
 * split row is collected in the rowdigest (up to ROWDIGEST_SIPHASH_MAX
 * bytes, the reason the struct is that large) until it ends or outgrows it.
 * A rowdigest is a plain value (the BLAKE2b state is 64-byte aligned, so a
 * heap copy needs an aligned allocation). Not thread-safe; use one per
 * table.
 *
 * Call sodium_init() first (dumpscan_new and dbverify_run do): without it
 * libsodium hashes with its portable code, which gives the same digests
 * but slower. */
#ifndef STOWAGE_ROWDIGEST_H
#define STOWAGE_ROWDIGEST_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define ROWDIGEST_MAX_BYTES 32
#define ROWDIGEST_HEX_SIZE (2 * ROWDIGEST_MAX_BYTES + 1)

/* Maximum length of a row hashed with SipHash. Longer rows use BLAKE2b-128. */
#define ROWDIGEST_SIPHASH_MAX 65536

typedef enum rowdigest_algorithm {
    ROWDIGEST_SUM256_BLAKE2B = 1,
    ROWDIGEST_SUM128_SIPHASH = 2,
} rowdigest_algorithm;

/* The algorithm that backups record. */
#define ROWDIGEST_CURRENT ROWDIGEST_SUM128_SIPHASH

typedef struct rowdigest {
    crypto_generichash_state row;     /* BLAKE2b state of the open row, when it is hashed
                                       * incrementally */
    rowdigest_algorithm algorithm;
    uint64_t lanes[4];                /* lane sums modulo 2^64; unused lanes stay 0 */
    uint64_t rows;                    /* rows added */
    int row_open;                     /* bytes fed since the last row ended */
    size_t row_len;                   /* bytes of the open row so far */
    unsigned char pending[ROWDIGEST_SIPHASH_MAX]; /* the open row while SipHash applies */
} rowdigest;

/* Sets the digest to the empty table under ROWDIGEST_CURRENT. */
void rowdigest_init(rowdigest *digest);

/* Sets the digest to the empty table under algorithm. */
void rowdigest_init_algorithm(rowdigest *digest, rowdigest_algorithm algorithm);

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

/* Writes the digest's hex digits (32 or 64, by algorithm) and a NUL. */
void rowdigest_hex(const rowdigest *digest, char out[ROWDIGEST_HEX_SIZE]);

/* Number of hex digits of a digest under algorithm. */
size_t rowdigest_hex_length(rowdigest_algorithm algorithm);

/* The algorithm's name in a manifest's contents, and back; the lookup
 * returns 0 for an unknown name. */
const char *rowdigest_algorithm_name(rowdigest_algorithm algorithm);
rowdigest_algorithm rowdigest_algorithm_from_name(const char *name);

#endif
