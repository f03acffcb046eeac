/* The archive digest: a hash of the whole pax archive (the plaintext of
 * the container), recorded in the manifest and checked by every reader
 * after the last byte.
 *
 * Backups record SHA-256 (`plaintext.sha256`), computed with OpenSSL,
 * which uses the CPU's SHA extensions where it has them. `openssl speed`
 * on the benchmark machine gave 1.8 GB/s for SHA-256 and 0.96 GB/s for
 * BLAKE2b. Manifests that earlier builds wrote carry BLAKE2b-256
 * (`plaintext.blake2b_256`) instead, and readers still check it. */
#ifndef STOWAGE_ARCHIVE_HASH_H
#define STOWAGE_ARCHIVE_HASH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define ARCHIVE_HASH_BYTES 32
#define ARCHIVE_HASH_HEX_SIZE (2 * ARCHIVE_HASH_BYTES + 1)

typedef enum {
    ARCHIVE_HASH_SHA256,       /* what backups write */
    ARCHIVE_HASH_BLAKE2B_256,  /* older manifests */
} archive_hash_algorithm;

typedef struct archive_hash archive_hash;

/* The algorithm that new backups record. */
#define ARCHIVE_HASH_DEFAULT ARCHIVE_HASH_SHA256

int archive_hash_new(archive_hash_algorithm algorithm, archive_hash **out, stow_error *err);
void archive_hash_update(archive_hash *hash, const void *data, size_t len);
void archive_hash_final(archive_hash *hash, uint8_t out[ARCHIVE_HASH_BYTES]);
/* Accepts NULL. */
void archive_hash_free(archive_hash *hash);

/* The manifest member that contains the digest: "sha256" or "blake2b_256". */
const char *archive_hash_member(archive_hash_algorithm algorithm);

/* Finds the digest in a manifest's "plaintext" object: BLAKE2b-256 in
 * format_version 1, SHA-256 in later versions. Sets *algorithm and *hex
 * (borrowed from plaintext). Fails with STOW_EXIT_VERIFY naming the backup
 * when that member is not a string, or when both members are present. */
int archive_hash_expected(const json_t *plaintext, int format_version, const char *backup_id,
                          archive_hash_algorithm *algorithm, const char **hex,
                          stow_error *err);

#endif
