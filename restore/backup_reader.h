/* Reading a stored backup back: ranged downloads with per-part SHA-256
 * checks, decryption, decompression and the archive members, in one
 * stream with bounded memory.
 *
 * A producer thread downloads, decrypts and decompresses into a queue of
 * plaintext chunks, and the caller's thread reads the archive members from
 * the queue and hands their data to on_data. The queue's chunks bound the
 * plaintext held in memory however well the data compressed. */
#ifndef STOWAGE_BACKUP_READER_H
#define STOWAGE_BACKUP_READER_H

#include <stdint.h>

#include "manifest.h"
#include "members.h"
#include "storage/storage.h"

struct backup_read_stats {
    double fetch_seconds;     /* waiting for parts from the repository */
    double decode_seconds;    /* decrypting and decompressing, without the time blocked
                                 on the consumer */
    double total_seconds;     /* wall time of the whole read */
    uint64_t stored_bytes;
    uint64_t plain_bytes;
};

/* Opens the backup's data key with the secret key file (and passphrase file
 * for a protected key). Returns NULL in *data_key for an unencrypted
 * backup. Fails with STOW_EXIT_USAGE when a key is needed but missing and
 * STOW_EXIT_KEY when the key is not a recipient of the backup. Free the key
 * with backup_data_key_free. */
int backup_open_data_key(const struct manifest *manifest, const char *secret_key_path,
                         const char *passphrase_file, uint8_t **data_key, stow_error *err);
void backup_data_key_free(uint8_t *data_key);

typedef struct backup_reader backup_reader;

/* Checks the object's size (a HEAD on S3) and starts downloading,
 * decrypting and decompressing on a thread, which waits once it has filled
 * the plaintext queue. A caller can start the read before it prepares the
 * database, so the first parts arrive meanwhile. manifest, data_key and
 * store must outlive the reader. Fails with STOW_EXIT_VERIFY when the size
 * differs from the manifest. */
int backup_reader_start(storage *store, const struct manifest *manifest,
                        const uint8_t *data_key, backup_reader **out, stow_error *err);

/* Reads the archive members of a started reader, handing their data to
 * on_data, and checks the plaintext digest. Call it once, then
 * backup_reader_free. Fails like backup_reader_run. */
int backup_reader_consume(backup_reader *reader, members_data_fn on_data, void *data_context,
                          struct backup_read_stats *stats, stow_error *err);

/* Stops the thread, after waiting for the downloads in flight, and frees
 * the reader. NULL is ignored. */
void backup_reader_free(backup_reader *reader);

/* Reads the whole backup, after checking the object's size (a HEAD on S3).
 * Fails with STOW_EXIT_VERIFY when the size, a part, the container, the
 * archive or the plaintext digest does not match the manifest. on_data's
 * failures pass through unchanged. */
int backup_reader_run(storage *store, const struct manifest *manifest,
                      const uint8_t *data_key, members_data_fn on_data, void *data_context,
                      struct backup_read_stats *stats, stow_error *err);

#endif
