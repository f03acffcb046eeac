/* The archive digest (SHA-256 of the pax archive, the manifest's
 * plaintext.sha256; see formats/archive_hash.h), computed on its own thread from the buffers that
 * the data path compresses.
 *
 * The caller passes each piece of the archive in order. A borrowed piece,
 * whose memory stays valid until a later release marker, is hashed in
 * place. Any other piece (tar headers, padding, short members) is copied
 * first. A release marker runs a callback once every piece queued before
 * it has been hashed, which is when a borrowed buffer may be reused. */
#ifndef STOWAGE_ARCHIVE_DIGEST_H
#define STOWAGE_ARCHIVE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/archive_hash.h"

#define ARCHIVE_DIGEST_BYTES ARCHIVE_HASH_BYTES

typedef struct archive_digest archive_digest;

typedef void (*archive_digest_release_fn)(void *context, int buffer);

/* Starts the thread. */
int archive_digest_start(archive_digest **out, stow_error *err);

/* Queues len bytes. borrowed: data stays valid until a later release
 * marker has run, so it is hashed in place. Blocks while the queue is full. */
int archive_digest_add(archive_digest *digest, const void *data, size_t len, int borrowed,
                       stow_error *err);

/* Queues a call of release(context, buffer) after the pieces queued so far. */
int archive_digest_release(archive_digest *digest, archive_digest_release_fn release,
                           void *context, int buffer, stow_error *err);

/* Waits for every queued piece and writes the digest. */
int archive_digest_finish(archive_digest *digest, uint8_t out[ARCHIVE_DIGEST_BYTES],
                          stow_error *err);

/* Stops the thread without waiting for queued pieces and frees everything.
 * Release markers still queued do not run. Accepts NULL. */
void archive_digest_free(archive_digest *digest);

#endif
