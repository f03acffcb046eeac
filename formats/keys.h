/* Recipient keys: X25519 key pairs, key ids, and wrapping of a backup's
 * data key for each recipient with libsodium sealed boxes. Signing keys:
 * Ed25519 key pairs that sign manifests, in files of the same format.
 *
 * The host that takes backups needs only public keys. A secret key file may
 * be protected by a passphrase (Argon2id). Key file formats are specified
 * in formats/FORMAT.md. Secret material is held in sodium_malloc'ed memory
 * and wiped when freed. */
#ifndef STOWAGE_KEYS_H
#define STOWAGE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define KEYS_PUBLIC_BYTES 32
#define KEYS_SECRET_BYTES 32
#define KEYS_ID_CHARS 16      /* hex characters of a key id */
#define KEYS_SIGNATURE_BYTES 64

struct keys_public {
    uint8_t key[KEYS_PUBLIC_BYTES];
    char id[KEYS_ID_CHARS + 1];   /* hex of the first 8 bytes of BLAKE2b-256(key) */
};

/* Secret key with its public half; allocate with keys_secret_load. */
struct keys_secret;

/* Obtains the passphrase for the secret key file key_path. On success sets
 * *passphrase to a NUL-terminated string allocated with malloc, which the
 * caller releases with keys_passphrase_free. On failure returns -1 after
 * filling err. */
typedef int (*keys_passphrase_fn)(void *context, const char *key_path, char **passphrase,
                                  stow_error *err);

/* Generates a key pair, writes path (secret, mode 0600, refused if it
 * exists) and path.pub (refused if it exists), and returns the public half.
 * With passphrase non-NULL the secret key is encrypted with a key derived
 * from the passphrase by Argon2id. */
int keys_generate(const char *path, const char *passphrase, struct keys_public *public_out,
                  stow_error *err);

/* Returns 1 when text is a key id: KEYS_ID_CHARS lowercase hex digits. */
int keys_id_valid(const char *text);

/* Reads a public key file. Fails with STOW_EXIT_USAGE naming the file. */
int keys_public_load(const char *path, struct keys_public *out, stow_error *err);

/* Reads a secret key file. Rejects a file that group or others may read or
 * write (STOW_EXIT_USAGE) and a wrong passphrase (STOW_EXIT_KEY).
 * passphrase_fn is called only for a protected file; NULL there is a usage
 * error naming the file. */
int keys_secret_load(const char *path, keys_passphrase_fn passphrase_fn, void *context,
                     struct keys_secret **out, stow_error *err);
const struct keys_public *keys_secret_public(const struct keys_secret *secret);
void keys_secret_free(struct keys_secret *secret);

/* Seals data_key for recipient; out is base64 text, newly allocated. */
int keys_wrap(const struct keys_public *recipient, const uint8_t *data_key, size_t key_len,
              char **out, stow_error *err);

/* Opens a wrapped key. Fails with STOW_EXIT_KEY when it was not sealed for
 * this secret key. */
int keys_unwrap(const struct keys_secret *secret, const char *wrapped, uint8_t *data_key,
                size_t key_len, stow_error *err);

/* --- Signing keys --------------------------------------------------------- */

/* An Ed25519 public key; its id is computed as for a recipient key. A type
 * of its own, so that a signing key cannot be passed where a recipient is
 * expected. */
struct keys_signing_public {
    uint8_t key[KEYS_PUBLIC_BYTES];
    char id[KEYS_ID_CHARS + 1];
};

struct keys_signing_secret;

/* Generates an Ed25519 key pair and writes path (secret: the 32-byte seed,
 * mode 0600) and path.pub, with the same rules as keys_generate. */
int keys_signing_generate(const char *path, const char *passphrase,
                          struct keys_signing_public *public_out, stow_error *err);

/* Reads a signing public key file. Fails with STOW_EXIT_USAGE naming the
 * file, also when it is a recipient key file. */
int keys_signing_public_load(const char *path, struct keys_signing_public *out, stow_error *err);

/* Reads a signing secret key file, with the checks of keys_secret_load. */
int keys_signing_secret_load(const char *path, keys_passphrase_fn passphrase_fn, void *context,
                             struct keys_signing_secret **out, stow_error *err);
const struct keys_signing_public *keys_signing_secret_public(
    const struct keys_signing_secret *secret);
void keys_signing_secret_free(struct keys_signing_secret *secret);

/* Signs message with Ed25519 (crypto_sign_detached). */
void keys_sign(const struct keys_signing_secret *secret, const uint8_t *message, size_t len,
               uint8_t signature[KEYS_SIGNATURE_BYTES]);

/* Returns 1 when signature is signer's valid signature of message, else 0. */
int keys_signature_valid(const struct keys_signing_public *signer, const uint8_t *message,
                         size_t len, const uint8_t signature[KEYS_SIGNATURE_BYTES]);

/* --- Passphrases for the CLI --------------------------------------------- */

#define KEYS_PASSPHRASE_MAX 1023   /* bytes, the terminating NUL excluded */

/* Reads a passphrase: the first line of file_path (its newline, and a
 * carriage return before it, stripped) when file_path is non-NULL, or else
 * a line typed on the controlling terminal with echo off, after writing
 * prompt to the terminal. An empty passphrase is an error. *out is
 * allocated with malloc; release it with keys_passphrase_free. */
int keys_passphrase_read(const char *file_path, const char *prompt, char **out, stow_error *err);

/* Wipes and frees a passphrase. Accepts NULL. */
void keys_passphrase_free(char *passphrase);

/* Passphrase source for keys_passphrase_from_source. */
struct keys_passphrase_source {
    const char *file_path;   /* --passphrase-file, or NULL to ask on the terminal */
    const char *option;      /* the option of file_path, for hints; NULL: --passphrase-file */
};

/* A keys_passphrase_fn whose context is a struct keys_passphrase_source. */
int keys_passphrase_from_source(void *context, const char *key_path, char **passphrase,
                                stow_error *err);

#endif
