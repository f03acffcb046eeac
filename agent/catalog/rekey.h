/* Key rotation: re-wraps the data keys of backups for a new set of
 * recipients, signs their manifests again and replaces them.
 *
 * A backup's data key is kept only in its manifest
 * (encryption.recipients[]), so the recipients change without reading or
 * writing the data object. One current recipient's secret key opens the
 * data key; each added recipient gets it sealed anew, and a removed one's
 * entry is dropped. The new manifest replaces the old one with one plain
 * put, under the per-name catalog lock that backup and expire take.
 *
 * The run plans every backup before it writes any. One backup that cannot
 * be rekeyed fails the whole run, and nothing is written. Causes: a key id
 * to remove that it does not have, no recipient left, the secret key not
 * among its recipients, or a signature that does not verify. */
#ifndef STOWAGE_REKEY_H
#define STOWAGE_REKEY_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "keys.h"
#include "signature.h"
#include "storage/storage.h"

struct rekey_options {
    const char *spec;                 /* backup id or "latest"; NULL with all */
    int all;                          /* every backup (of name, when given) */
    const char *name;                 /* catalog name, or NULL */
    const struct keys_secret *secret; /* a current recipient's secret key */
    const struct keys_public *add;    /* recipients to add */
    size_t add_count;
    const char *const *remove;        /* key ids of recipients to remove */
    size_t remove_count;
    const struct keys_signing_secret *signing_key;
    /* Keys that may have signed the manifests as they are; the signing
     * key's own public key is trusted as well. */
    const struct signature_trust *trust;
    int accept_unsigned;              /* sign manifests that carry no signature */
    int dry_run;                      /* plan and report, write nothing */
    int64_t lock_stale_after;         /* seconds; 0: the catalog lock's default */
};

/* Rekeys the backups that options select and prints one line per backup
 * on stdout: what was added and removed, or that nothing changed. Fails
 * with STOW_EXIT_USAGE for a refused change, STOW_EXIT_KEY when the secret
 * key is not a recipient, STOW_EXIT_VERIFY for a manifest whose signature
 * does not verify, and STOW_EXIT_LOCKED when another run holds a name's
 * lock. */
int rekey_run(storage *store, const struct rekey_options *options, stow_error *err);

#endif
