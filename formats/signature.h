/* Manifest signatures: Ed25519 (libsodium crypto_sign_detached) over the
 * canonical serialisation of a manifest without its "signature" member.
 *
 * The signature lives inside the manifest, so that a manifest stays one
 * object and replacing it (stowage rekey) is one atomic put. The member is
 * {"key_id", "algorithm": "ed25519", "value": base64 of 64 bytes}; other
 * members of it are ignored. The canonical form is specified in
 * formats/FORMAT.md ("Manifest signature"). */
#ifndef STOWAGE_SIGNATURE_H
#define STOWAGE_SIGNATURE_H

#include <jansson.h>
#include <stddef.h>

#include "common/error.h"
#include "keys.h"
#include "manifest.h"

#define SIGNATURE_MEMBER "signature"
#define SIGNATURE_ALGORITHM "ed25519"
#define SIGNATURE_TRUSTED_KEYS_MAX 32

/* The signing public keys that a reading command trusts. */
struct signature_trust {
    struct keys_signing_public keys[SIGNATURE_TRUSTED_KEYS_MAX];
    size_t count;
};

enum signature_status {
    SIGNATURE_UNSIGNED,   /* no "signature" member */
    SIGNATURE_MALFORMED,  /* a member without key id, algorithm ed25519 or a 64-byte value */
    SIGNATURE_UNTRUSTED,  /* signed by a key id that is not trusted */
    SIGNATURE_INVALID,    /* signed by a trusted key id, and the signature does not verify */
    SIGNATURE_VALID,
    SIGNATURE_NOT_CHECKED /* no trusted keys were given */
};

/* Adds key to trust. A key given twice is kept once. */
int signature_trust_add_key(struct signature_trust *trust, const struct keys_signing_public *key,
                            stow_error *err);

/* Adds the signing public key file path to trust. */
int signature_trust_add_file(struct signature_trust *trust, const char *path, stow_error *err);

/* Adds each file of a colon-separated list (STOWAGE_TRUSTED_KEYS); empty
 * entries are skipped. list may be NULL. */
int signature_trust_add_list(struct signature_trust *trust, const char *list, stow_error *err);

/* Returns the canonical text of document without its "signature" member:
 * json_dumps with JSON_SORT_KEYS, JSON_COMPACT and JSON_REAL_PRECISION(17),
 * allocated with malloc. */
char *signature_canonical(json_t *document, stow_error *err);

/* Signs document with key and sets its "signature" member, replacing one
 * that is there. */
int signature_sign(json_t *document, const struct keys_signing_secret *key, stow_error *err);

/* Checks the signature of document against trust and sets *key_id to the
 * key id the signature names (borrowed from document), or NULL. Returns
 * SIGNATURE_NOT_CHECKED when trust is empty or NULL. */
enum signature_status signature_check(json_t *document, const struct signature_trust *trust,
                                      const char **key_id);

/* Returns the status as it appears in JSON output: "valid", "unsigned", ... */
const char *signature_status_name(enum signature_status status);

/* Checks a manifest loaded from manifest_key before it is used. With
 * trusted keys, fails with STOW_EXIT_VERIFY unless the manifest has a
 * valid signature by one of them and is stored at the key that its name
 * and id determine. The message names the backup id, the manifest key and
 * the key id.
 * Without trusted keys, logs one warning per process that signatures are
 * not checked, and passes. */
int signature_check_manifest(const struct manifest *manifest, const char *manifest_key,
                             const struct signature_trust *trust, stow_error *err);

#endif
